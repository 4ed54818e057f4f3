#!/usr/bin/env bash
# Create (or bring up to date) a capbench virtual environment from the lock:
#     bash scripts/dev_env.sh VENV EXTRA        # EXTRA: demo (`make demo`) or dev (`make test`)
#
# Environment:
#   CAPBENCH_LOCK  the constraints file every install goes through (default requirements/dev.lock); empty =
#                  the newest releases pyproject.toml allows (`make test-latest`, `make lock`).
#   TORCH_SPEC     torch, installed first (default torch==2.13.0: on our machines pip takes the local CPU
#                  wheel for it; anything later would pull a multi-GB CUDA build); empty = keep the torch the
#                  environment already has (the lock's torch pin is then left out of the constraints).
#   PYTHON         the interpreter that creates the venv (default python3).
#
# Steps: venv (if missing), pip itself (the locked pip), torch, capbench editable with the extra, then
# `python -m capbench.run.versions stamp LOCK` writes VENV/capbench-lock.json, so every run records the lock's
# sha256 and whether the environment still matches it. Progress and timings go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -ne 2 ]]; then
    echo "usage: scripts/dev_env.sh VENV demo|dev" >&2
    exit 2
fi
VENV="$1"
EXTRA="$2"
LOCK="${CAPBENCH_LOCK-requirements/dev.lock}"
TORCH_SPEC="${TORCH_SPEC-torch==2.13.0}"
PYTHON="${PYTHON:-python3}"
STARTED=$SECONDS
log() { printf '[dev-env +%ss] %s\n' "$((SECONDS - STARTED))" "$*" >&2; }

CONSTRAINTS=()
if [[ -n "$LOCK" ]]; then
    [[ -f "$LOCK" ]] || { log "lock file $LOCK not found"; exit 1; }
    if [[ -z "$TORCH_SPEC" ]]; then  # the user's own torch: constrain everything else
        filtered="$(mktemp /tmp/capbench-lock-notorch.XXXXXX)"
        trap 'rm -f "$filtered"' EXIT
        grep -viE '^torch==' "$LOCK" >"$filtered"
        CONSTRAINTS=(-c "$filtered")
    else
        CONSTRAINTS=(-c "$LOCK")
    fi
    log "installing $EXTRA into $VENV from $LOCK"
else
    log "installing $EXTRA into $VENV from the newest releases pyproject.toml allows (no lock)"
fi

pip_q() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

[[ -x "$VENV/bin/python" ]] || { "$PYTHON" -m venv "$VENV"; log "created $VENV"; }
pip_q install "${CONSTRAINTS[@]}" --upgrade pip
if [[ -n "$TORCH_SPEC" ]]; then pip_q install "${CONSTRAINTS[@]}" "$TORCH_SPEC"; fi
pip_q install "${CONSTRAINTS[@]}" -e ".[$EXTRA]"
if [[ -n "$LOCK" ]]; then
    "$VENV/bin/python" -m capbench.run.versions stamp "$LOCK" >/dev/null
else
    rm -f "$VENV/capbench-lock.json"
fi
log "done ($(du -sh "$VENV" | cut -f1))"
