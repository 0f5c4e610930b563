#!/usr/bin/env bash
# Counting throughput: `tinyforge vocab count` against the paper's method (Python HF
# `tokenizers` encode_batch + collections.Counter, bench/vocab/peer.py) on the same documents
# and the same base tokenizer (Qwen3 by default), in one run, both pinned to the same cores
# with the same thread count. Prints MB/s and tokens/s per core for each and the ratio, and
# checks both produced identical counts.
#
#   bench/vocab/run.sh                 # 30 MB of real text, 1 core
#   MB=60 CORES=0,1 bench/vocab/run.sh # 60 MB, 2 cores
#
# Needs: python3 with `tokenizers` and `pyarrow` (pip install --user tokenizers pyarrow), the
# data cache from scripts/fetch-data, and taskset (util-linux).
set -euo pipefail
cd "$(dirname "$0")/../.."

MB="${MB:-30}"
CORES="${CORES:-0}"
THREADS=$(( $(tr -cd ',' <<<"$CORES" | wc -c) + 1 ))
DATA="${TINYFORGE_DATA:-$HOME/.cache/tinyforge}"
TOKENIZER="${TOKENIZER:-$DATA/raw/qwen3-tokenizer/package/models/tokenizer.json}"
WORK="${WORK:-target/bench-vocab}"
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"

mkdir -p "$WORK"
if [ ! -f "$WORK/docs-$MB/part-00000.parquet" ]; then
  echo "writing ${MB} MB of documents to $WORK/docs-$MB" >&2
  "$PYTHON" bench/vocab/make_docs.py "$WORK/docs-$MB" "$MB" >&2
fi
# TINYFORGE_BIN: a tinyforge already built (otherwise the data-only build is made here).
BIN="${TINYFORGE_BIN:-target/debug/tinyforge}"
[ -n "${TINYFORGE_BIN:-}" ] || cargo build -q -p tinyforge --bin tinyforge
"$PYTHON" -c 'import tokenizers; print("python tokenizers", tokenizers.__version__)' >&2

# Same pinning and thread count for both: rayon (tinyforge and the Rust core of Python
# tokenizers) reads RAYON_NUM_THREADS; TOKENIZERS_PARALLELISM keeps encode_batch parallel.
export RAYON_NUM_THREADS="$THREADS" TOKENIZERS_PARALLELISM=true
echo "cores: $CORES ($THREADS threads)" >&2

taskset -c "$CORES" "$BIN" --progress none vocab count "$WORK/docs-$MB" \
  --tokenizer "$TOKENIZER" --out "$WORK/counts.parquet" >"$WORK/tinyforge.json"
taskset -c "$CORES" "$PYTHON" bench/vocab/peer.py "$WORK/docs-$MB" "$TOKENIZER" \
  "$WORK/peer-counts.json" >"$WORK/peer.json"

"$PYTHON" - "$WORK" "$THREADS" <<'PY'
import json, sys
import pyarrow.parquet as pq
work, threads = sys.argv[1], int(sys.argv[2])
ours = json.load(open(f"{work}/tinyforge.json"))
peer = json.load(open(f"{work}/peer.json"))
# Same result, or the timing means nothing.
table = pq.read_table(f"{work}/counts.parquet").to_pydict()
mine = {i: c for i, c in zip(table["token_id"], table["count"]) if c}
theirs = {int(k): v for k, v in json.load(open(f"{work}/peer-counts.json")).items()}
assert mine == theirs, "counts differ between tinyforge and the Python peer"
rows = []
for name, seconds in [("tinyforge", ours["count_s"]), ("python (paper)", peer["count_s"])]:
    mbps = ours["bytes"] / 1e6 / seconds / threads
    tps = ours["total_tokens"] / seconds / threads
    rows.append((name, seconds, mbps, tps))
print(f"documents {ours['documents']}, {ours['bytes']/1e6:.1f} MB, {ours['total_tokens']} tokens,"
      f" {threads} thread(s); counts identical")
for name, seconds, mbps, tps in rows:
    print(f"{name:16} {seconds:8.2f} s  {mbps:8.2f} MB/s/core  {tps:12,.0f} tokens/s/core")
print(f"ratio (tinyforge / python) per core: {rows[1][1] / rows[0][1]:.2f}x")
PY
