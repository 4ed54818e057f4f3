# The README's two commands: `make demo` (set up, run the embedded default, export a CSV) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Install torch before anything that depends on it: on CPU machines this takes the local CPU wheel,
# otherwise pip would fetch a multi-GB CUDA build. Set TORCH_SPEC="" to keep a torch you installed yourself.
TORCH_SPEC ?= torch==2.13.0

.PHONY: env dev-env demo test lint unit integration clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

env: $(BIN)/python
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/pip install -q "$(TORCH_SPEC)"; fi
	$(BIN)/pip install -q -e '.[demo]'

dev-env: env
	$(BIN)/pip install -q -e '.[dev]'

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

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
