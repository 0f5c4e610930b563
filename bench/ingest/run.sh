#!/usr/bin/env bash
# tinyforge ingest against DuckDB (read_json -> Parquet, zstd) on the same real JSONL, in one
# run. Prints MB/s, MB/s per core (input MB per second of CPU time, user + sys) and peak RSS
# of each, and the ratio.
#
#   bench/ingest/run.sh [THREADS]     (default: 1; also try 2)
#
# Needs: the real corpus (scripts/fetch-data), a built tinyforge (cargo build), and DuckDB in
# the project venv (.venv/bin/pip install duckdb==2.0.0).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
THREADS="${1:-1}"
RAW="${TINYFORGE_DATA:-$HOME/.cache/tinyforge}/raw"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
BIN="${TINYFORGE_BIN:-$ROOT/target/debug/tinyforge}"
WORK="${BENCH_DIR:-$ROOT/.cache/bench-ingest}"
mkdir -p "$WORK"
[ -x "$BIN" ] || { echo "build tinyforge first: cargo build" >&2; exit 1; }
"$PY" -c "import duckdb" 2>/dev/null || { echo "DuckDB missing: $PY -m pip install duckdb==2.0.0" >&2; exit 1; }

INPUT="$WORK/corpus.jsonl"
[ -s "$INPUT" ] || "$PY" "$ROOT/bench/ingest/make_jsonl.py" "$RAW" "$INPUT"
BYTES=$(stat -c %s "$INPUT")
cat "$INPUT" > /dev/null   # warm the page cache for both

measure() { # name command...
  local name=$1; shift
  local log="$WORK/$name.time"
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -v "$@" > "$WORK/$name.out" 2> "$log"
  end=$(date +%s.%N)
  local wall user sys rss
  wall=$(echo "$end - $start" | bc -l)
  user=$(grep "User time" "$log" | awk '{print $NF}')
  sys=$(grep "System time" "$log" | awk '{print $NF}')
  rss=$(grep "Maximum resident" "$log" | awk '{print $NF}')
  python3 - "$name" "$BYTES" "$wall" "$user" "$sys" "$rss" <<'PY'
import sys
name, size, wall, user, sys_t, rss = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:6]), int(sys.argv[6])
mb = size / 1e6
cpu = user + sys_t
print(f"{name:10s} {mb:8.1f} MB in {wall:6.2f} s wall, {cpu:6.2f} s CPU: {mb / wall:7.1f} MB/s, {mb / cpu:7.1f} MB/s per core, peak RSS {rss / 1024:7.1f} MiB")
open(f"{sys.argv[0]}.none", "w") if False else None
PY
  echo "$name $(echo "$BYTES / 1000000 / ($user + $sys)" | bc -l)" >> "$WORK/per_core"
}

rm -f "$WORK/per_core"
rm -rf "$WORK/tinyforge-out" "$WORK/duckdb.parquet"
echo "input: $INPUT ($(echo "$BYTES / 1000000" | bc) MB), threads: $THREADS, machine: $(nproc) cores"
measure tinyforge "$BIN" --progress none ingest "$INPUT" --source bench --keep author --id-field id \
  --out "$WORK/tinyforge-out" --threads "$THREADS" --force
measure duckdb "$PY" "$ROOT/bench/ingest/peer_duckdb.py" "$INPUT" "$WORK/duckdb.parquet" "$THREADS"
python3 - "$WORK/per_core" "$WORK/tinyforge.out" <<'PY'
import json, sys
rates = dict(line.split() for line in open(sys.argv[1]))
report = json.load(open(sys.argv[2]))
print(f"tinyforge wrote {report['documents_out']} documents ({report['dropped']}), by lang {dict((k, v['documents']) for k, v in report['by_lang'].items())}")
print(f"ratio (tinyforge / duckdb, MB/s per core): {float(rates['tinyforge']) / float(rates['duckdb']):.2f}")
PY
