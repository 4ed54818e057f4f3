"""What a run serves: prompts and requests (``prompts``), and prompts of exact token counts (``fixed_length``).

The request types are the package's API: ``from capbench.workload import Request, Workload, load_prompts``.
"""

from capbench.workload.prompts import (
    Likelihood,
    Prompt,
    PromptSet,
    Request,
    Workload,
    build_requests,
    build_workload,
    load_prompts,
)

__all__ = [
    "Likelihood",
    "Prompt",
    "PromptSet",
    "Request",
    "Workload",
    "build_requests",
    "build_workload",
    "load_prompts",
]
