"""The ``vllm`` runner: launches or attaches to a vLLM OpenAI server and records its engine steps.

Importing this package is cheap and imports neither vLLM nor torch: :mod:`.plugin` runs inside every vLLM
process (through the ``vllm.general_plugins`` entry point) and must stay light until it is enabled.
"""
