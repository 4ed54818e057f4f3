"""Accuracy tasks: offline task data, answer extraction and the lm-eval bridge."""
