"""From a run directory to what users read: ``score`` (summary.json), ``export`` (CSV rows), ``report`` (tables),
``columns`` (every CSV column declared once).
"""
