"""capbench's metrics: pure functions from raw run records to the numbers capbench prints.

Imported as ``capbench.metrics`` (this folder is mounted into the ``capbench`` package). Nothing here imports
torch, transformers, gradio or any runner; everything is a pure function of its arguments. The formulas are
specified in ``docs/metrics.md``; every function's docstring states its formula and units.
"""
