#!/usr/bin/env bash
# tinyforge ingest against DuckDB on the same real JSONL, in one run. DuckDB runs at three
# depths of the job (see peer_duckdb.py): the conversion alone (read_json -> zstd Parquet), plus
# the length rule and exact dedup (the same documents on this input), plus the cleaning SQL can
# say (control characters, NFC, trim). Prints MB/s, MB/s per core (input MB per second of CPU
# time, user + sys) and peak RSS of each, and tinyforge's ratio to each.
#
#   bench/ingest/run.sh [THREADS]     (default: 1; also try 2)
#
# Builds the data-stage binary first (no libtorch: a binary built with `--features train`, as
# scripts/test builds it, loads libtorch at start, about 0.3 s of CPU and 400 MiB of RSS that
# are not ingest's). TINYFORGE_BIN=path skips the build.
# Needs: the real corpus (scripts/fetch-data), cargo, and DuckDB in
# the project venv (.venv/bin/pip install duckdb==2.0.0).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
THREADS="${1:-1}"
RAW="${TINYFORGE_DATA:-$HOME/.cache/tinyforge}/raw"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
if [ -z "${TINYFORGE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build -q -p tinyforge --bin tinyforge)
fi
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
print(f"{name:15s} {mb:8.1f} MB in {wall:6.2f} s wall, {cpu:6.2f} s CPU: {mb / wall:7.1f} MB/s, {mb / cpu:7.1f} MB/s per core, peak RSS {rss / 1024:7.1f} MiB")
open(f"{sys.argv[0]}.none", "w") if False else None
PY
  echo "$name $(echo "$BYTES / 1000000 / ($user + $sys)" | bc -l)" >> "$WORK/per_core"
}

rm -f "$WORK/per_core"
rm -rf "$WORK/tinyforge-out" "$WORK"/duckdb-*.parquet
echo "input: $INPUT ($(echo "$BYTES / 1000000" | bc) MB), threads: $THREADS, machine: $(nproc) cores"
measure tinyforge "$BIN" --progress none ingest "$INPUT" --source bench --keep author --id-field id \
  --out "$WORK/tinyforge-out" --threads "$THREADS" --force
for mode in convert dedup clean; do
  measure "duckdb-$mode" "$PY" "$ROOT/bench/ingest/peer_duckdb.py" "$mode" "$INPUT" \
    "$WORK/duckdb-$mode.parquet" "$THREADS" 16
done
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
rates = dict(line.split() for line in open(f"{work}/per_core"))
report = json.load(open(f"{work}/tinyforge.out"))
print(f"tinyforge wrote {report['documents_out']} documents ({report['dropped']}), by lang {dict((k, v['documents']) for k, v in report['by_lang'].items())}")
for mode in ("convert", "dedup", "clean"):
    rows = open(f"{work}/duckdb-{mode}.out").read().strip()
    ratio = float(rates["tinyforge"]) / float(rates[f"duckdb-{mode}"])
    print(f"ratio (tinyforge / duckdb {mode:7s}, MB/s per core): {ratio:.2f}   (duckdb wrote {rows} rows)")
PY
