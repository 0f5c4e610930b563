#!/usr/bin/env bash
# Training throughput, one run, same machine: tinyforge (`tinyforge train --synthetic`) against the
# PyTorch peer (torch_peer.py: eager and torch.compile, bf16 autocast, fused AdamW) on the same
# LLaMA shape and batch. Prints a table of median step time, tokens/s, model FLOP/s (6·N·tokens +
# causal attention, the same count on both sides) and the ratios.
#
#   bench/train-gpu/run.sh                    # GPU: pangu-1b-pro, seq 2048, batch 8, 13 steps
#   DEVICE=cpu bench/train-gpu/run.sh         # CPU-sized: the tiny shape (dim 64, 2 layers)
#
# Environment: TINYFORGE (binary; default target/debug/tinyforge, built with
# `cargo build --features train`; or the lighter example binary target/debug/examples/synthetic
# from `cargo build -p tinyforge-train --example synthetic`), PYTHON (a python with torch 2.11;
# default .venv/bin/python, else python3), MODEL, SEQ, BATCH, MICRO, STEPS, MODES ("eager compile"), OUT (logs folder).
# On a GPU machine with its own PyTorch (e.g. a lent H100/H200 whose python3 holds torch 2.11.0)
# carry a built binary and point TINYFORGE at it: the script puts that python's torch/lib on
# LD_LIBRARY_PATH so the binary finds the same libtorch it was built against.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/train-gpu"
DEVICE="${DEVICE:-cuda}"
TINYFORGE="${TINYFORGE:-$ROOT/target/debug/tinyforge}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"

if [[ "$DEVICE" == cpu ]]; then
  # The tiny config's shape (configs/models/tiny.toml) with a 4096-token vocabulary.
  MODEL="${MODEL:-tiny}"; DIM=64; LAYERS=2; HEADS=4; FFN=176; VOCAB="${VOCAB:-4096}"
  SEQ="${SEQ:-256}"; BATCH="${BATCH:-16}"; STEPS="${STEPS:-23}"; MODES="${MODES:-eager compile}"
  MODEL_FILE="$OUT/model.toml"
  printf 'name = "tiny"\ndim = %s\nlayers = %s\nheads = %s\nffn_dim = %s\nvocab_size = %s\nmax_seq_len = %s\n' \
    "$DIM" "$LAYERS" "$HEADS" "$FFN" "$VOCAB" "$SEQ" > "$MODEL_FILE"
else
  MODEL="${MODEL:-pangu-1b-pro}"; DIM=1792; LAYERS=20; HEADS=14; FFN=4864; VOCAB=48000
  SEQ="${SEQ:-2048}"; BATCH="${BATCH:-8}"; STEPS="${STEPS:-13}"; MODES="${MODES:-eager compile}"
  MODEL_FILE="$MODEL"
fi
MICRO="${MICRO:-$BATCH}"

TORCH_LIB="$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "# $(date -u +%FT%TZ) device=$DEVICE model=$MODEL seq=$SEQ batch=$BATCH micro=$MICRO steps=$STEPS"
echo "# torch: $("$PYTHON" -c 'import torch; print(torch.__version__, "threads", torch.get_num_threads(), "cuda", torch.cuda.is_available())')"
[[ "$DEVICE" == cuda ]] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

echo "## tinyforge"
if [[ "$(basename "$TINYFORGE")" == synthetic* ]]; then
  "$TINYFORGE" "$MODEL_FILE" "$SEQ" "$BATCH" "$MICRO" "$STEPS" "$DEVICE" > "$OUT/tinyforge.json"
else
  "$TINYFORGE" train --synthetic --model "$MODEL_FILE" --seq-len "$SEQ" --batch-size "$BATCH" \
    --micro-batch "$MICRO" --steps "$STEPS" --device "$DEVICE" --progress none > "$OUT/tinyforge.json"
fi
cat "$OUT/tinyforge.json"

for mode in $MODES; do
  echo "## torch $mode"
  PYTHONUNBUFFERED=1 "$PYTHON" "$HERE/torch_peer.py" --mode "$mode" --device "$DEVICE" --dim "$DIM" \
    --layers "$LAYERS" --heads "$HEADS" --ffn "$FFN" --vocab "$VOCAB" --seq "$SEQ" --batch "$BATCH" \
    --steps "$STEPS" 2>&1 | tee "$OUT/torch-$mode.log" | grep -E "^(torch|SUMMARY)"
done

"$PYTHON" - "$OUT" $MODES <<'PY'
import json, re, sys
out, modes = sys.argv[1], sys.argv[2:]
tf = json.load(open(f"{out}/tinyforge.json"))
rows = [("tinyforge", tf["median_step_s"], tf["tokens_per_s"], tf["model_flops_per_s"] / 1e12)]
for m in modes:
    line = [l for l in open(f"{out}/torch-{m}.log") if l.startswith("SUMMARY")]
    if not line:
        print(f"torch {m}: no SUMMARY line (see {out}/torch-{m}.log)"); continue
    s = re.search(r"median ([\d.]+)s (\d+) tok/s ([\d.]+) TFLOP/s", line[0])
    step = float(s.group(1))
    rows.append((f"torch {m}", step, float(s.group(2)), tf["model_flops_per_s"] / 1e12 * tf["median_step_s"] / step))
print()
print(f"| run | median step (s) | tokens/s | model TFLOP/s | tinyforge / this |")
print(f"|---|---|---|---|---|")
for name, step, tps, tfl in rows:
    print(f"| {name} | {step:.4f} | {tps:,.0f} | {tfl:.3f} | {rows[0][2] / tps:.2f}x |")
PY
