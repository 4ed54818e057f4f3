"""Sweeps: a grid of run configurations, each point its own ``capbench run`` process (``capbench sweep``).

``spec`` (the sweep file and its expansion into points with content-hash ids), ``point`` (one point's
process and outcome), ``manifest`` (the sweep's own record: points, status, attempts, durations),
``local`` and ``ray_executor`` (where points run), ``runner`` (the sweep loop: resume, Ctrl-C, results).
"""
