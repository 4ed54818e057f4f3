"""The ``openai`` runner: any OpenAI-compatible server (vLLM, SGLang, TGI, ...) driven over HTTP."""
