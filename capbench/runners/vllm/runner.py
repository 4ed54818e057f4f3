"""The ``vllm`` runner: launch a vLLM OpenAI server (or attach to one) and drive it with the load generator.

Launch (no ``base_url``): capbench starts ``python -m vllm.entrypoints.openai.api_server`` with the model,
``--enforce-eager`` when asked, ``--dtype`` when given, and the pass-through ``engine_args``, as a managed
subprocess (:mod:`.server`) whose log goes to ``<run>/vllm/server.log``; it waits for ``/health`` (at most
``server_start_timeout_s``), and stops the server when the run ends, also on Ctrl-C or an error. The step
recorder plugin (:mod:`.plugin`) is enabled in the server by environment variable and writes
``<run>/passes.jsonl`` and ``<run>/vllm/engine-dp<R>.json`` (the settings vLLM resolved), merged into
``run.json`` ``engine``.

Attach (``base_url``): the server is someone else's; capbench records what it can see from outside (timings,
``/metrics``), and no engine steps.

Either way the requests go through the ``openai`` runner's client, and ``/metrics`` is scraped at the start of
the measured phase, every ``metrics_interval_s``, and at the end into ``<run>/server_metrics.jsonl``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from capbench.errors import CapbenchError
from capbench.records.pass_codec import routing_measured
from capbench.records.sink import RecordSink
from capbench.runners.openai.runner import OpenAIRunner
from capbench.runners.vllm.adapter import ENGINE_DIR, PASSES_FILE, RECORDER_VERSION
from capbench.runners.vllm.compat import TESTED_VERSIONS
from capbench.runners.vllm.config import VLLMConfig
from capbench.runners.vllm.engine_args import to_cli_args
from capbench.runners.vllm.plugin import ENV_RECORD_DIR, ENV_RECORD_EXPERTS
from capbench.runners.vllm.server import ManagedServer, plugin_path
from capbench.workload import Workload

ENV_VLLM_PYTHON = "CAPBENCH_VLLM_PYTHON"
SERVER_LOG = "server.log"
SERVER_ENV_DEFAULTS = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "VLLM_HOST_IP": "127.0.0.1"}
"""Set for a launched server unless the environment already sets them."""


def vllm_python(configured: str | None = None) -> str:
    """The interpreter to launch vLLM with: ``configured`` (the ``vllm_python`` setting), else
    ``$CAPBENCH_VLLM_PYTHON``, else this one."""
    return configured or os.environ.get(ENV_VLLM_PYTHON) or sys.executable


def compile_cache_root() -> Path:
    """Where a recorded server keeps vLLM's compile cache (``VLLM_CACHE_ROOT``): capbench's own cache, keyed by
    the recorder's version, ``<capbench cache>/vllm-compile/recorder-v<N>``.

    vLLM's compile cache (Inductor artifacts, and on CPU the AOT-compiled Dynamo trace) holds the traced
    routing op, and vLLM's cache key does not include capbench: a recorded run that loaded an artifact
    compiled without the recorder would count nothing, and an unrecorded run that loaded a recorded artifact
    would call an op its process never registered. So recorded runs never share a cache root with unrecorded
    ones (which keep vLLM's default, or the user's ``VLLM_CACHE_ROOT``), nor with another recorder version.
    """
    from capbench.paths import cache_dir

    return cache_dir() / "vllm-compile" / f"recorder-v{RECORDER_VERSION}"


def vllm_env(
    gpus: list[int] | None = None, record_dir: Path | None = None, record_experts: bool = True
) -> tuple[dict[str, str], Path | None]:
    """The environment of a vLLM process capbench starts, and the plugin directory to remove after it ends.

    This process's environment plus :data:`SERVER_ENV_DEFAULTS` (unless set) and ``CUDA_VISIBLE_DEVICES`` from
    ``gpus``. With ``record_dir``, also what loads capbench's step recorder: the plugin directory first on
    ``PYTHONPATH``, the record directory, whether to record experts, vLLM's V1 model runner (the one the
    adapter hooks; on GPU, vLLM picks V2 when Triton is present) unless ``VLLM_USE_V2_MODEL_RUNNER`` is set,
    and a compile cache of its own (:func:`compile_cache_root`).
    """
    env = dict(os.environ)
    for key, value in SERVER_ENV_DEFAULTS.items():
        env.setdefault(key, value)
    env.pop(ENV_RECORD_DIR, None)
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
    if record_dir is None:
        return env, None
    plugin_dir = plugin_path()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(plugin_dir), env.get("PYTHONPATH")) if p)
    env[ENV_RECORD_DIR] = str(record_dir.resolve())
    env[ENV_RECORD_EXPERTS] = "1" if record_experts else "0"
    env.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")
    env["VLLM_CACHE_ROOT"] = str(compile_cache_root())
    return env, plugin_dir


def check_v1_runner(environ: Mapping[str, str]) -> None:
    """The recorder hooks vLLM's V1 model runner: a run that forces V2 is refused with the switch to use."""
    if environ.get("VLLM_USE_V2_MODEL_RUNNER", "").strip().lower() in ("1", "true"):
        raise CapbenchError(
            "VLLM_USE_V2_MODEL_RUNNER=1 selects vLLM's V2 model runner, which capbench's step recorder does not "
            "hook: unset it (capbench launches recorded servers with VLLM_USE_V2_MODEL_RUNNER=0, the V1 runner) "
            "or run with --no-record-steps"
        )


def probe_vllm(python: str) -> dict[str, Any]:
    """``{"version", "status", "problems"}`` of the vLLM that ``python`` would run (:mod:`.compat`, run in that
    interpreter on vLLM's source, nothing imported); a clear error when it has no vLLM."""
    plugin_dir = plugin_path()
    env = {**os.environ, "PYTHONPATH": str(plugin_dir)}
    try:
        done = subprocess.run(
            [python, "-m", "capbench.runners.vllm.compat"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CapbenchError(f"cannot run the vLLM interpreter {python!r}: {exc}") from exc
    finally:
        shutil.rmtree(plugin_dir, ignore_errors=True)
    result: dict[str, Any] | None = None
    if done.returncode == 0 and done.stdout.strip():
        try:
            result = json.loads(done.stdout.strip().splitlines()[-1])
        except json.JSONDecodeError:
            result = None
    if result is None or result.get("version") is None or result.get("status") is None:
        tail = "\n".join(done.stderr.strip().splitlines()[-3:]) or "no vllm package found"
        raise CapbenchError(
            f"{python} cannot run vLLM ({tail}). Point vllm_python (or ${ENV_VLLM_PYTHON}) at the Python of an "
            "environment with vLLM installed; on a CPU-only machine, `make vllm-env` builds one"
        )
    return result


def served_name(config: VLLMConfig, launched: str) -> str:
    """The model name a launched server serves under: ``served_model_name`` if given, else ``launched`` (what
    ``--model`` was given: a local directory is passed as its absolute path, so a relative path works)."""
    name = config.engine_args.get("served_model_name")
    if isinstance(name, list) and name:
        return str(name[0])
    if isinstance(name, str) and name:
        return name.split()[0]
    return launched


def read_engine_files(run_dir: Path) -> list[dict[str, Any]]:
    """The ``vllm/engine-dp<R>.json`` files the plugin wrote, by data-parallel rank."""
    out = []
    for path in sorted((run_dir / ENGINE_DIR).glob("engine-dp*.json")):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(out, key=lambda e: e.get("dp_rank", 0))


MAX_REASONS = 10
"""Distinct reasons :func:`routing_check` lists before it counts the rest together."""


def routing_check(passes: Path, settle_s: float = 2.0) -> dict[str, Any]:
    """How many recorded steps passed the routing self-check, and why the others did not (from ``passes.jsonl``,
    once it stopped growing: the plugin writes each step a few ms after it ends).

    ``{"steps", "measured", "not_measured", "reasons": {reason: steps}}``; warm-up steps included."""
    import time

    deadline = time.monotonic() + settle_s
    size = -1
    while time.monotonic() < deadline:
        current = passes.stat().st_size if passes.exists() else 0
        if current == size:
            break
        size = current
        time.sleep(0.2)
    steps = measured = 0
    reasons: dict[str, int] = {}
    if passes.exists():
        with passes.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line: the reader warns about it
                steps += 1
                if routing_measured(record):
                    measured += 1
                else:
                    reason = record.get("routing_error") or "routing not recorded (see routing_unavailable_reason)"
                    if reason not in reasons and len(reasons) >= MAX_REASONS:
                        reason = "other reasons"
                    reasons[reason] = reasons.get(reason, 0) + 1
    return {"steps": steps, "measured": measured, "not_measured": steps - measured, "reasons": reasons}


class VLLMRunner:
    """Launches or attaches to a vLLM server; the ``openai`` runner's client sends the requests."""

    name = "vllm"

    def __init__(self, config: VLLMConfig | Any, model_dir: Path | None, run_dir: Path | None = None) -> None:
        """``config``: this runner's settings (:class:`VLLMConfig`), or a whole run spec they are taken from."""
        self.config = config if isinstance(config, VLLMConfig) else VLLMConfig.from_spec(config)
        config = self.config
        self.run_dir = run_dir
        self.server: ManagedServer | None = None
        self._plugin_dir: Path | None = None
        self.version: str | None = None
        self.adapter: dict[str, Any] = {}
        self.facts: dict[str, Any] = {}
        self.launched = config.launches
        assert config.client is not None
        try:
            if self.launched:
                base_url = self._launch(model_dir)
                local = str(model_dir) if model_dir is not None else None
                client = config.client.serving(base_url, served_name(config, self.launched_model), local)
            else:
                client = config.client
            self.client = OpenAIRunner(client, model_dir)
        except BaseException:
            self.close()
            raise
        self.model_name = self.client.model_name

    # --- the server --------------------------------------------------------------------------------------

    def _server_args(self) -> list[str]:
        args = dict(self.config.engine_args)  # keys already normalized and checked by RunSpec
        if self.config.enforce_eager:
            args["enforce_eager"] = True
        if self.config.dtype is not None:
            args["dtype"] = self.config.dtype
        if self.config.top_k is not None:  # experts per token at inference: vLLM reads the model config's value
            overrides = args.get("hf_overrides") or {}
            if not isinstance(overrides, dict) or "num_experts_per_tok" in overrides:
                raise CapbenchError("top_k sets hf_overrides.num_experts_per_tok: do not set it in engine_args too")
            args["hf_overrides"] = {**overrides, "num_experts_per_tok": self.config.top_k}
        return to_cli_args(args)

    def _launch(self, model_dir: Path | None) -> str:
        if self.run_dir is None:
            raise CapbenchError("the vllm runner needs a run directory to launch a server into")
        python = vllm_python(self.config.vllm_python)
        self.adapter = probe_vllm(python)
        self.version = self.adapter["version"]
        if self.config.record_steps:
            from capbench.runners.vllm.compat import refusal_message

            check_v1_runner(os.environ)
            if self.adapter["status"] == "refused":
                raise CapbenchError(refusal_message(self.version, self.adapter["problems"]))
            if self.adapter["status"] == "compatible_untested":
                print(
                    f"warning: vLLM {self.version} has everything capbench's step recorder uses but is not a tested "
                    f"version (tested: {', '.join(TESTED_VERSIONS)}); run.json says adapter_status: "
                    "compatible_untested",
                    file=sys.stderr,
                )
        model = str(model_dir.resolve()) if model_dir is not None else self.config.model
        assert model is not None
        self.launched_model = model
        record_dir = self.run_dir if self.config.record_steps else None
        env, self._plugin_dir = vllm_env(self.config.gpus, record_dir, self.config.record_experts)
        self.server = ManagedServer(python, model, self._server_args(), env, self.run_dir / ENGINE_DIR / SERVER_LOG)
        print(f"starting vLLM {self.version} (log: {self.server.log_path})", file=sys.stderr)
        self.server.start()
        self.server.wait_ready(self.config.server_start_timeout_s)
        if self.config.record_steps and not read_engine_files(self.run_dir):
            raise CapbenchError(
                "vLLM started but capbench's step recorder did not report (no vllm/engine-dp0.json): the plugin "
                "was not loaded (a VLLM_PLUGINS allow-list without 'capbench'?) or vLLM runs its V2 model runner "
                "(forced by a feature that needs it), which the adapter does not hook (VLLM_USE_V2_MODEL_RUNNER=0 "
                f"selects V1); see {self.server.log_path}. Run with --no-record-steps to benchmark without step "
                "records."
            )
        return self.server.base_url

    def gpu_indices(self) -> list[int] | None:
        """GPUs a launched engine on CUDA uses, for power sampling and the GPU count: ``gpus`` if given, else
        the first TP×PP×DP visible ones (``CUDA_VISIBLE_DEVICES`` order). None: not launched, or not on CUDA."""
        engines = self.engine_files()
        if not engines or engines[0].get("device") != "cuda":
            return None
        if self.config.gpus is not None:
            return list(self.config.gpus)
        first = engines[0]
        world = int(first["tensor_parallel_size"]) * int(first["pipeline_parallel_size"])
        world *= int(first["data_parallel_size"])
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible:
            indices = [int(v) for v in visible.split(",") if v.strip().isdigit()]
            return indices[:world] if len(indices) >= world else None
        return list(range(world))

    # --- run.json facts ----------------------------------------------------------------------------------

    def model_config(self) -> dict[str, Any] | None:
        """The model's config: from ``model_path`` (a local directory) when there is one, else the configuration
        the launched engine loaded (a model id vLLM resolved), as its plugin recorded it."""
        local = self.client.model_config()
        if local is not None:
            return local
        loaded = self.loaded_model()
        config = loaded.get("config") if loaded else None
        return dict(config) if isinstance(config, dict) else None

    def check_prompt_logprobs(self) -> None:
        """Refuse (before the run) an engine that returns no prompt log-probabilities (the openai client's probe)."""
        self.client.check_prompt_logprobs()

    def context_length(self) -> int | None:
        """The context the engine enforces: a launched engine's resolved ``max_model_len``, else the client's."""
        engines = self.engine_files()
        value = engines[0].get("max_model_len") if engines else None
        if isinstance(value, int) and value > 0:
            return value
        return self.client.context_length()

    def model_config_source(self) -> str | None:
        """Where :meth:`model_config` came from (``run.json`` ``model.config_source``)."""
        if self.client.model_config() is not None:
            return "model_path config.json"
        return "the configuration the launched vLLM engine loaded" if self.model_config() is not None else None

    def loaded_model(self) -> dict[str, Any] | None:
        """What the plugin recorded of the model vLLM loaded (config, quantization, hf_overrides), or None."""
        engines = self.engine_files()
        loaded = engines[0].get("loaded_model") if engines else None
        return loaded if isinstance(loaded, dict) else None

    def engine_files(self) -> list[dict[str, Any]]:
        return read_engine_files(self.run_dir) if self.run_dir is not None and self.launched else []

    def engine_info(self) -> dict[str, Any]:
        """The client's view, plus (launched) the command line and what vLLM resolved, from the plugin."""
        info = self.client.engine_info()
        info["name"] = self.name
        info["mode"] = "launched" if self.launched else "attached"
        info["tested_versions"] = list(TESTED_VERSIONS)
        if not self.launched:
            info["step_records"] = False
            info["step_records_reason"] = "attached to a server capbench did not launch: no engine steps visible"
            return info
        assert self.server is not None
        info.update(
            version=self.version,
            adapter_status=self.adapter["status"] if self.config.record_steps else None,
            compile_cache_root=str(compile_cache_root()) if self.config.record_steps else None,
            command=self.server.command,
            engine_args=self.config.engine_args,
            server_log=str(Path(ENGINE_DIR) / SERVER_LOG),
            server_start_s=self.server.ready_s,
            server_exit_code=self.server.process.poll() if self.server.process else self.server.exit_code,
            step_records=self.config.record_steps,
        )
        engines = self.engine_files()
        if engines:
            first = engines[0]
            resolved = {
                k: v for k, v in first.items() if k not in ("written_ns", "dp_rank", "recorder", "loaded_model")
            }
            info.update(resolved)
            info["device"] = first.get("device", info.get("device"))
            info["replicas"] = [
                {k: e.get(k) for k in ("dp_rank", "routing_observed", "routing_unavailable_reason")} for e in engines
            ]
        elif self.config.record_steps:
            info["step_records_reason"] = "the plugin did not report"
        else:
            info["step_records_reason"] = "record_steps: false"
        return info

    def dtypes(self) -> dict[str, str] | None:
        """From the model config, with the dtype vLLM really computes in when the plugin reported it."""
        base = self.client.dtypes()
        if base is None and self.model_config() is not None:
            from capbench.arch.dtypes import dtypes_from_config

            base = dtypes_from_config(self.model_config() or {})
        engines = self.engine_files()
        if base is None or not engines:
            return base
        dtype = engines[0].get("dtype")
        kv = engines[0].get("kv_cache_dtype")
        out = dict(base)
        if dtype:
            out["compute"] = str(dtype)
            if not engines[0].get("quantization"):  # vLLM casts unquantized weights to its dtype
                out.update(weights=str(dtype), experts=str(dtype), embeddings=str(dtype))
                out.pop("router", None)
        if kv not in (None, "auto"):
            out["kv"] = str(kv)
        elif dtype:
            out["kv"] = str(dtype)
        return out

    # --- the run -----------------------------------------------------------------------------------------

    def execute(self, workload: Workload, sink: RecordSink) -> None:
        """Drive the server through the ``openai`` runner; scrape ``/metrics`` around the measured phase."""
        from capbench.records.schema import SERVER_METRICS_FILE
        from capbench.runners.vllm.scrape import MetricsScraper

        scraper = None
        if self.run_dir is not None:
            scraper = MetricsScraper(
                self.client.base_url,
                self.run_dir / SERVER_METRICS_FILE,
                self.config.metrics_interval_s,
                headers=self.client.headers,
            )

        def measured_start() -> None:
            if scraper is not None:
                scraper.scrape("start")
                scraper.start_periodic()

        self.client.on_measured_start = measured_start
        try:
            self.client.execute(workload, sink)
        except CapbenchError:
            if self.server is not None:  # the server died: it closes its sockets just before it can be reaped
                self.server.wait_exit(5.0)
            raise
        finally:
            if scraper is not None:
                scraper.stop()
                scraper.scrape("end")
            engine = self.engine_info()
            if self.launched and self.config.record_steps and self.run_dir is not None:
                engine["routing_check"] = routing_check(self.run_dir / PASSES_FILE)
            self.facts = {**self.client.facts, "engine": engine, "dtypes": self.dtypes()}

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self._plugin_dir is not None:
            shutil.rmtree(self._plugin_dir, ignore_errors=True)
            self._plugin_dir = None
