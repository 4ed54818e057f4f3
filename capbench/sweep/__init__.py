"""Sweeps: a grid of run configurations, each point its own ``capbench run`` process (``capbench sweep``).

``spec`` (the sweep file and its expansion into points with content-hash ids), ``point`` (one point's
process and outcome), ``manifest`` (the sweep's own record: points, status, attempts, durations), ``local``
(the sweep loop: lock, resume, the local executor, Ctrl-C, results), ``ray_executor`` (the driver side of
points as tasks on a Ray cluster), ``ray_worker`` (the task that runs one point on a worker) and ``archive``
(a run directory packed on the worker and unpacked strictly on the driver).
"""
