"""The in-process Hugging Face transformers runner (``runner: hf``), the embedded default backend."""
