#!/usr/bin/env bash
# Reading token shards: the tinyforge-shards reader (zstd frames, checksums) against NumPy
# memmap over the uncompressed Megatron-style .bin of the same tokens, one thread each, pinned to
# the same core, in one run: sequential tokens/s and random `window` reads/s (seq_len 2048), plus
# the reader's open time for a 100,000-shard manifest.
#
#   bench/read/run.sh                 # uses (or makes) bench/tokenize's output
#   SEQ_LEN=1024 WINDOWS=500000 bench/read/run.sh
#
# Needs what bench/tokenize/run.sh needs.
set -euo pipefail
cd "$(dirname "$0")/../.."

SEQ_LEN="${SEQ_LEN:-2048}"
WINDOWS="${WINDOWS:-200000}"
CORE="${CORE:-0}"
WORK="${WORK:-target/bench-tokenize}"
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"

if [ ! -f "$WORK/shards/manifest.json" ] || [ ! -f "$WORK/peer.bin" ]; then
  WORK="$WORK" bench/tokenize/run.sh >&2
fi
[ -n "${NO_BUILD:-}" ] || cargo build -q -p tinyforge-shards --example read_bench
BIN="${BIN:-target/debug/examples/read_bench}"
DTYPE=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['dtype'])" "$WORK/peer.json")
# Warm the page cache for both, so the comparison is decoding, not the disk.
cat "$WORK"/shards/*.tfs "$WORK/peer.bin" >/dev/null

taskset -c "$CORE" "$BIN" "$WORK/shards" "$SEQ_LEN" "$WINDOWS" >"$WORK/read-tinyforge.json"
taskset -c "$CORE" "$PYTHON" bench/read/peer.py "$WORK/peer" "$DTYPE" "$SEQ_LEN" "$WINDOWS" >"$WORK/read-peer.json"

"$PYTHON" - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
ours, peer = json.load(open(f"{work}/read-tinyforge.json")), json.load(open(f"{work}/read-peer.json"))
assert ours["tokens"] == peer["tokens"], "the two read different token counts"
print(f"{ours['tokens']:,} tokens, seq_len {ours['seq_len']}, {ours['windows']:,} random windows, 1 thread")
print("per CPU-second of the one thread (wall-clock rates in brackets; the machine is shared)")
print(f"{'':22} {'sequential tokens/s':>30} {'random windows/s':>26}")
for name, r in [("tinyforge (zstd)", ours), ("numpy memmap (raw)", peer)]:
    print(f"{name:22} {r['sequential_tokens_per_cpu_s']:16,.0f} [{r['sequential_tokens_per_s']:11,.0f}] "
          f"{r['random_windows_per_cpu_s']:14,.0f} [{r['random_windows_per_s']:9,.0f}]")
seq = ours["sequential_tokens_per_cpu_s"] / peer["sequential_tokens_per_cpu_s"]
rnd = ours["random_windows_per_cpu_s"] / peer["random_windows_per_cpu_s"]
print(f"ratio tinyforge / memmap per core: sequential {seq:.2f}x, random windows {rnd:.2f}x (goal >= 0.5x)")
print(f"open: dataset {ours['open_s'] * 1e3:.2f} ms; manifest of {ours['open_100k_shards']:,} shards "
      f"{ours['open_100k_shards_s'] * 1e3:.0f} ms")
PY
