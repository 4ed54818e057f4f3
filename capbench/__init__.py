"""capbench: Cost, Accuracy and Performance benchmarking of Mixture-of-Experts LLM serving.

One import root. ``capbench.metrics``, ``capbench.hardware_profiles`` and ``capbench.leaderboard`` are the
top-level ``metrics/``, ``hardware_profiles/`` and ``leaderboard/`` folders, mounted here by relative symlinks.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
