#!/usr/bin/env bash
# Data-parallel training throughput, one run, same machine: tinyforge (`tinyforge train
# --synthetic --nproc N`, c10d Gloo on CPU / NCCL on GPU, ZeRO-1 and plain data parallel) against
# PyTorch's DistributedDataParallel under torchrun (ddp_peer.py), the same model shape and global
# batch, at 1, 2 and 4 processes. Prints tokens/s, the time per step in collectives (tinyforge:
# its gradient reduce + parameter gather, as the run reports it; peer: a bare all-reduce of a
# flat buffer of the model's size) and the ratios.
#
#   bench/train-dist/run.sh                 # CPU: the tiny shape, vocab 4096, seq 256, batch 16
#   NPROCS="1 2" STEPS=13 bench/train-dist/run.sh
#   DEVICE=cuda MODEL=pangu-1b-pro ...      # one process per GPU (needs that many GPUs)
#
# Environment: TINYFORGE (default target/debug/tinyforge, `cargo build --features train`),
# PYTHON (a python with torch 2.11 and torchrun; default .venv/bin/python), NPROCS, SEQ, BATCH,
# STEPS, OUT (logs folder).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/train-dist"
DEVICE="${DEVICE:-cpu}"
TINYFORGE="${TINYFORGE:-$ROOT/target/debug/tinyforge}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
NPROCS="${NPROCS:-1 2 4}"
DIM=64; LAYERS=2; HEADS=4; FFN=176; VOCAB="${VOCAB:-4096}"
SEQ="${SEQ:-256}"; BATCH="${BATCH:-16}"; STEPS="${STEPS:-23}"
MODEL_FILE="$OUT/model.toml"
printf 'name = "tiny"\ndim = %s\nlayers = %s\nheads = %s\nffn_dim = %s\nvocab_size = %s\nmax_seq_len = %s\n' \
  "$DIM" "$LAYERS" "$HEADS" "$FFN" "$VOCAB" "$SEQ" > "$MODEL_FILE"
TORCH_LIB="$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
TORCHRUN="$(dirname "$PYTHON")/torchrun"
[[ -x "$TORCHRUN" ]] || TORCHRUN="$PYTHON -m torch.distributed.run"
CORES="$(nproc)"
echo "# $(date -u +%FT%TZ) device=$DEVICE cores=$CORES seq=$SEQ global batch=$BATCH steps=$STEPS nprocs=($NPROCS)"

for n in $NPROCS; do
  threads=$(( CORES / n > 0 ? CORES / n : 1 ))
  for z in 1 0; do
    echo "## tinyforge nproc $n zero_stage $z ($threads threads per rank)"
    OMP_NUM_THREADS=$threads "$TINYFORGE" train --synthetic --model "$MODEL_FILE" --seq-len "$SEQ" \
      --batch-size "$BATCH" --steps "$STEPS" --device "$DEVICE" --nproc "$n" --zero-stage "$z" \
      --progress none > "$OUT/tinyforge-$n-z$z.json" 2> "$OUT/tinyforge-$n-z$z.log"
    grep -E '"(tokens_per_s|median_comm_s)"' "$OUT/tinyforge-$n-z$z.json" | tr -d ' \n'; echo
  done
  echo "## torch ddp nproc $n"
  OMP_NUM_THREADS=$threads PYTHONUNBUFFERED=1 $TORCHRUN --standalone --nproc-per-node "$n" \
    "$HERE/ddp_peer.py" --device "$DEVICE" --dim "$DIM" --layers "$LAYERS" --heads "$HEADS" \
    --ffn "$FFN" --vocab "$VOCAB" --seq "$SEQ" --batch "$BATCH" --steps "$STEPS" \
    > "$OUT/torch-$n.log" 2>&1 || { tail -n 20 "$OUT/torch-$n.log"; exit 1; }
  grep -E "^SUMMARY" "$OUT/torch-$n.log"
done

"$PYTHON" - "$OUT" $NPROCS <<'PY'
import json, re, sys
out, ns = sys.argv[1], sys.argv[2:]
print()
print("| processes | tinyforge ZeRO-1 tok/s | tinyforge DP tok/s | torch DDP tok/s | ZeRO-1 / DDP | DP / DDP "
      "| tinyforge comm s/step (ZeRO-1, DP) | torch all-reduce s |")
print("|---|---|---|---|---|---|---|---|")
for n in ns:
    z1 = json.load(open(f"{out}/tinyforge-{n}-z1.json"))
    z0 = json.load(open(f"{out}/tinyforge-{n}-z0.json"))
    line = [l for l in open(f"{out}/torch-{n}.log") if l.startswith("SUMMARY")][0]
    s = re.search(r"median ([\d.]+)s (\d+) tok/s allreduce ([\d.]+)s", line)
    t_tps, t_ar = float(s.group(2)), float(s.group(3))
    print(f"| {n} | {z1['tokens_per_s']:,.0f} | {z0['tokens_per_s']:,.0f} | {t_tps:,.0f} | "
          f"{z1['tokens_per_s'] / t_tps:.2f}x | {z0['tokens_per_s'] / t_tps:.2f}x | "
          f"{z1['median_comm_s']:.5f}, {z0['median_comm_s']:.5f} | {t_ar:.5f} |")
PY
