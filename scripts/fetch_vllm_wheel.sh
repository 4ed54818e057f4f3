#!/usr/bin/env bash
# Put the vLLM 0.33.0 release wheel into the wheel cache (no install), for the test that checks the recorded
# facts of its sources (tests/unit/runners/test_vllm_compat.py). ~340 MB once; reused after. Prints the wheel's path.
#   CAPBENCH_WHEEL_CACHE (default ~/.cache/capbench-wheels)
set -euo pipefail
CACHE="${CAPBENCH_WHEEL_CACHE:-$HOME/.cache/capbench-wheels}"
mkdir -p "$CACHE"
found=$(ls "$CACHE"/vllm-0.33.0-*.whl 2>/dev/null | head -n 1 || true)
if [[ -z "$found" ]]; then
    echo "downloading the vllm 0.33.0 wheel into $CACHE (not installed) ..." >&2
    python3 -m pip download --disable-pip-version-check -q --no-deps vllm==0.33.0 -d "$CACHE" >&2
    found=$(ls "$CACHE"/vllm-0.33.0-*.whl | head -n 1)
fi
printf '%s\n' "$found"
