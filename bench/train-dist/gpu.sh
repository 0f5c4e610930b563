#!/usr/bin/env bash
# The distributed checks that need a GPU, in one prepared script for a machine with one GPU
# (an H200 lent for a few minutes): c10d's NCCL backend through tinyforge's shim.
#
#   1. world size 1 over NCCL: every collective checked, then the all-reduce time of the
#      pangu-1b-pro flat fp32 gradient (951,983,872 elements, 3.8 GB);
#   2. two processes on the one GPU, each its own "node" (a distinct NCCL_HOSTID; traffic over
#      loopback sockets: NCCL_SOCKET_IFNAME=lo NCCL_IB_DISABLE=1): the same checks and timing;
#   3. `tinyforge train --synthetic` at pangu-1b-pro, seq 2048, global batch 8: one rank, then the
#      two ranks of 2 (ZeRO-1), tokens/s and collective seconds per step.
#
#   bench/train-dist/gpu.sh                         # on the GPU machine
#   DEVICE=cpu bench/train-dist/gpu.sh              # the same steps on CPU over Gloo, small sizes
#
# Environment: TINYFORGE, COLLECTIVES (default: unpacked from bench/gpu/bundle.sh's out/gpu/bin
# when there, else target/debug/tinyforge and target/debug/examples/collectives), PYTHON (whose
# torch/lib the binaries load), OUT (logs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEVICE="${DEVICE:-cuda}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
unpack() { # name default
  local xz="$ROOT/${BUNDLE:-out/gpu}/bin/$1.xz"
  if [[ -f "$xz" ]]; then
    mkdir -p "$OUT/bin"
    "$PYTHON" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$xz" "$OUT/bin/$1"
    chmod +x "$OUT/bin/$1"
    echo "$OUT/bin/$1"
  else
    echo "$2"
  fi
}
TINYFORGE="${TINYFORGE:-$(unpack tinyforge "$ROOT/target/debug/tinyforge")}"
COLLECTIVES="${COLLECTIVES:-$(unpack collectives "$ROOT/target/debug/examples/collectives")}"
TORCH_LIB="$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [[ "$DEVICE" == cuda ]]; then
  BACKEND=nccl; NUMEL=951983872; ITERS="${ITERS:-10}"; ITERS2="${ITERS2:-3}"
  MODEL="${MODEL:-pangu-1b-pro}"; SEQ="${SEQ:-2048}"; BATCH="${BATCH:-8}"; STEPS="${STEPS:-8}"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
  BACKEND=gloo; NUMEL="${NUMEL:-4000000}"; ITERS="${ITERS:-5}"; ITERS2="${ITERS2:-5}"
  MODEL="${MODEL:-tiny}"; SEQ="${SEQ:-128}"; BATCH="${BATCH:-8}"; STEPS="${STEPS:-8}"
fi
echo "# $(date -u +%FT%TZ) device=$DEVICE backend=$BACKEND elements=$NUMEL model=$MODEL seq=$SEQ batch=$BATCH"
port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Two ranks by hand on one machine (one GPU): each its own NCCL "host", both on cuda:0.
pair() { # log-prefix command...
  local name=$1; shift
  local p; p=$(port)
  local pids=()
  for r in 0 1; do
    RANK=$r WORLD_SIZE=2 LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$p \
      NCCL_HOSTID="tinyforge-rank$r" NCCL_SOCKET_IFNAME=lo NCCL_IB_DISABLE=1 \
      "$@" > "$OUT/$name-rank$r.json" 2> "$OUT/$name-rank$r.log" &
    pids+=($!)
  done
  local rc=0
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  if [[ $rc != 0 ]]; then tail -n 20 "$OUT/$name"-rank*.log; return 1; fi
}

echo "## 1. one rank over $BACKEND"
"$COLLECTIVES" "$BACKEND" "$NUMEL" "$ITERS" > "$OUT/collectives-1.json" 2> "$OUT/collectives-1.log" \
  || { tail -n 20 "$OUT/collectives-1.log"; exit 1; }
cat "$OUT/collectives-1.json"
echo "## 2. two ranks on one device"
pair collectives-2 "$COLLECTIVES" "$BACKEND" "$NUMEL" "$ITERS2"
cat "$OUT/collectives-2-rank0.json"
echo "## 3. training, one rank then two"
"$TINYFORGE" train --synthetic --model "$MODEL" --seq-len "$SEQ" --batch-size "$BATCH" --micro-batch $((BATCH / 2)) \
  --steps "$STEPS" --device "$DEVICE" --progress none > "$OUT/train-1.json" 2> "$OUT/train-1.log" \
  || { tail -n 20 "$OUT/train-1.log"; exit 1; }
pair train-2 "$TINYFORGE" train --synthetic --model "$MODEL" --seq-len "$SEQ" --batch-size "$BATCH" \
  --micro-batch $((BATCH / 2)) --steps "$STEPS" --device "$DEVICE" --zero-stage 1 --progress none

"$PYTHON" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
c1 = json.load(open(f"{out}/collectives-1.json")); c2 = json.load(open(f"{out}/collectives-2-rank0.json"))
t1 = json.load(open(f"{out}/train-1.json")); t2 = json.load(open(f"{out}/train-2-rank0.json"))
print()
print("| check | ranks | result |")
print("|---|---|---|")
for c in (c1, c2):
    print(f"| {c['backend']} collectives + all-reduce of {c['elements']:,} fp32 | {c['world']} | "
          f"median {c['median_s']*1e3:.1f} ms, bus {c['busbw_gb_per_s']:.1f} GB/s, {c['checks']} |")
for t in (t1, t2):
    print(f"| train --synthetic {t['model']} | {t['world_size']} | {t['tokens_per_s']:,.0f} tok/s, "
          f"collectives {t['median_comm_s']*1e3:.1f} ms/step, optimizer {t['optimizer_bytes_per_rank']/2**30:.2f} GiB/rank |")
PY
