"""Sweeps: a grid of run configurations, each point its own ``capbench run`` process (``capbench sweep``).

``spec`` (the sweep file and its expansion into points with content-hash ids), ``point`` (one point's
process and outcome), ``manifest`` (the sweep's own record: points, status, attempts, durations),
``runner`` (the sweep loop: lock, resume, the local executor, Ctrl-C, results) and ``ray_executor`` (points
as tasks on a Ray cluster).
"""
