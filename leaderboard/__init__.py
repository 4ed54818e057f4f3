"""The Gradio CAP leaderboard, imported as ``capbench.leaderboard`` (also a Hugging Face Space: README.md).

Pure data logic, no Gradio: ``data`` (load and validate ``capbench export`` CSVs), ``table`` (labels, filters,
sorting, display formatting, CSV download), ``pareto`` (the cost-accuracy front), ``radar`` (CAP axis
normalization), ``escape`` (strings from files as text), ``details`` (one run's provenance). ``plots`` builds
the plotly figures; ``app`` lays everything out in Gradio (``capbench leaderboard``).
"""
