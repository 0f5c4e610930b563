#!/usr/bin/env bash
# Round-2 plan from a loss table of N units: tinyforge vs NumPy (Gumbel keys + argpartition) on
# the same table, in one run. Prints wall time, peak RSS (from /usr/bin/time -v) and the ratios.
#
# usage: bench/sampler/run.sh [N_UNITS=100000000] [WORK_DIR=/tmp/tinyforge-bench-sampler]
#   env: BATCH_UNITS (default 64), FRACTION (default 0.5)
# The loss table takes about 6 bytes per unit on disk (12 GB uncompressed at 10^9 for NumPy to
# hold in memory, plus its keys and indices): check `df -h` and `free -g` first.
set -euo pipefail
N=${1:-100000000}
WORK=${2:-/tmp/tinyforge-bench-sampler}
B=${BATCH_UNITS:-64}
FRACTION=${FRACTION:-0.5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=python3
[ -x "$ROOT/.venv/bin/python" ] && PY="$ROOT/.venv/bin/python"
"$PY" -c "import numpy, pyarrow" 2>/dev/null || { echo "need numpy and pyarrow for $PY (scripts/setup-python or pip install numpy pyarrow)"; exit 1; }
mkdir -p "$WORK"
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; free disk in $WORK: $(df -h "$WORK" | awk 'NR==2{print $4}')"

cd "$ROOT"
# TINYFORGE_BIN: a tinyforge already built (otherwise the data-only build, `cargo build --bin
# tinyforge`, is made here).
BIN="${TINYFORGE_BIN:-$ROOT/target/debug/tinyforge}"
[ -n "${TINYFORGE_BIN:-}" ] || cargo build -q --bin tinyforge
GEN="$ROOT/target/debug/examples/gen_losses"
[ -x "$GEN" ] || cargo build -q -p tinyforge-sampler --example gen_losses

PLAN="$WORK/round1-$N.json"
LOSSES="$WORK/losses-$N.parquet"
"$BIN" --progress none plan new --units "$N" --batch-units "$B" --seed 1 --out "$PLAN" > /dev/null
if [ ! -f "$LOSSES" ]; then
  echo "== generating $LOSSES"
  "$GEN" "$PLAN" "$LOSSES"
fi
echo "== loss table: $(du -h "$LOSSES" | cut -f1) for $N units (batch $B units, fraction $FRACTION)"

# "Elapsed (wall clock) time (h:mm:ss or m:ss): 0:12.34" -> seconds; RSS in KB -> MB.
measure() { # name, then the command
  local name=$1; shift
  /usr/bin/time -v "$@" > "$WORK/$name.out" 2> "$WORK/$name.time" || { cat "$WORK/$name.time"; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$WORK/$name.time")
  rss=$(awk -F': ' '/Maximum resident set size/{printf "%.0f", $2/1024}' "$WORK/$name.time")
  echo "$name $wall $rss" >> "$WORK/results.txt"
  printf '%-28s wall %8.2f s   peak RSS %7d MB\n' "$name" "$wall" "$rss"
}
rm -f "$WORK/results.txt"
measure tinyforge-unit-softmax "$BIN" --progress none sample --plan "$PLAN" --losses "$LOSSES" \
  --out "$WORK/round2-unit.json" --fraction "$FRACTION" --select unit-softmax --seed 7
measure numpy-unit-softmax "$PY" "$ROOT/bench/sampler/peer_numpy.py" "$LOSSES" "$WORK/numpy-round2.u32" "$FRACTION" "$B"
grep -h "numpy:" "$WORK/numpy-unit-softmax.time" || true
measure tinyforge-batch-softmax "$BIN" --progress none sample --plan "$PLAN" --losses "$LOSSES" \
  --out "$WORK/round2-batch.json" --fraction "$FRACTION" --select softmax-loss --seed 7

awk '
  { wall[$1] = $2; rss[$1] = $3 }
  END {
    printf "== unit-level selection of %s: tinyforge is %.2fx the speed of NumPy, with %.2fx its peak memory\n",
      "r*N units", wall["numpy-unit-softmax"] / wall["tinyforge-unit-softmax"], rss["tinyforge-unit-softmax"] / rss["numpy-unit-softmax"]
    printf "== batch-level (the paper default) tinyforge: %.2f s, %d MB\n", wall["tinyforge-batch-softmax"], rss["tinyforge-batch-softmax"]
  }' "$WORK/results.txt"
