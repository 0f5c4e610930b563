#!/usr/bin/env bash
# Documents -> token shards: `tinyforge tokenize` against a Megatron-style peer (Python HF
# `tokenizers` encode_batch + NumPy .bin/.idx, bench/tokenize/peer.py) on the same real
# documents with the same tokenizer (Qwen3 by default), the same cores and thread count, in one
# run. Checks that both wrote the same token stream (zstd -dc of the shards == the peer's .bin),
# then prints MB/s and tokens/s per core for each and the ratio.
#
#   bench/tokenize/run.sh                  # 30 MB of real text, 1 core
#   MB=60 CORES=0,1 bench/tokenize/run.sh  # 60 MB, 2 cores
#
# Needs: python3 with tokenizers, numpy, pyarrow (the project .venv has them), the data cache
# from scripts/fetch-data, zstd and taskset.
set -euo pipefail
cd "$(dirname "$0")/../.."

MB="${MB:-30}"
CORES="${CORES:-0}"
THREADS=$(( $(tr -cd ',' <<<"$CORES" | wc -c) + 1 ))
DATA="${TINYFORGE_DATA:-$HOME/.cache/tinyforge}"
TOKENIZER="${TOKENIZER:-$DATA/raw/qwen3-tokenizer/package/models/tokenizer.json}"
WORK="${WORK:-target/bench-tokenize}"
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
DOCS="${DOCS:-$WORK/docs-$MB}"

mkdir -p "$WORK"
if [ ! -f "$DOCS/part-00000.parquet" ]; then
  "$PYTHON" bench/tokenize/make_docs.py "$DOCS" "$MB" >&2
fi
BIN="${BIN:-${TINYFORGE_BIN:-target/debug/tinyforge}}"
[ -n "${NO_BUILD:-}${TINYFORGE_BIN:-}" ] || cargo build -q -p tinyforge --bin tinyforge
# TOKENIZE_CMD overrides the command (e.g. the library-only example tokenize/examples/tokenize_cli.rs).
read -r -a TOKENIZE_CMD <<<"${TOKENIZE_CMD:-$BIN --progress none tokenize}"
"$PYTHON" -c 'import tokenizers; print("python tokenizers", tokenizers.__version__)' >&2
# rayon (tinyforge and the Rust core of Python tokenizers) reads RAYON_NUM_THREADS.
export RAYON_NUM_THREADS="$THREADS" TOKENIZERS_PARALLELISM=true
echo "cores: $CORES ($THREADS threads)" >&2

rm -rf "$WORK/shards" "$WORK/peer.bin" "$WORK/peer.idx"
# /usr/bin/time records CPU seconds (user + sys) next to wall time: on a shared machine the CPU
# time is the fair per-core measure, since wall time includes waiting for other processes.
/usr/bin/time -f "%e %U %S" -o "$WORK/time-tinyforge" taskset -c "$CORES" "${TOKENIZE_CMD[@]}" "$DOCS" --tokenizer "$TOKENIZER" \
  --out "$WORK/shards" --threads "$THREADS" >"$WORK/tinyforge.json"
/usr/bin/time -f "%e %U %S" -o "$WORK/time-peer" taskset -c "$CORES" "$PYTHON" bench/tokenize/peer.py "$DOCS" "$TOKENIZER" "$WORK/peer" >"$WORK/peer.json"

# Same token stream, or the timing means nothing. `zstd -dc` decodes a shard's frames (the header
# and index are skippable frames); each frame holds its ids as byte planes (docs/FORMAT.md), which
# NumPy puts back together with the frame sizes from the shard's index.
"$PYTHON" - "$WORK" <<'PY'
import json, subprocess, sys
import numpy as np
work = sys.argv[1]
manifest = json.load(open(f"{work}/shards/manifest.json"))
width = {"u16": 2, "u32": 4}[manifest["dtype"]]
parts = []
for shard in manifest["shards"]:
    path = f"{work}/shards/{shard['file']}"
    raw = open(path, "rb").read()
    frames, docs = (int.from_bytes(raw[-48 + 8 * i:-40 + 8 * i], "little") for i in range(2))
    table = raw[len(raw) - 48 - 16 * docs - 32 * frames:len(raw) - 48 - 16 * docs]
    stored = np.frombuffer(subprocess.run(["zstd", "-dcq", path], check=True, capture_output=True).stdout, np.uint8)
    at = 0
    for f in range(frames):
        n = int.from_bytes(table[32 * f + 12:32 * f + 16], "little")
        planes = stored[at:at + n * width].reshape(width, n).astype(np.uint32)
        parts.append(sum(planes[k] << (8 * k) for k in range(width)))
        at += n * width
ours = np.concatenate(parts)
peer = np.fromfile(f"{work}/peer.bin", dtype=json.load(open(f"{work}/peer.json"))["dtype"])
assert len(ours) == len(peer) and (ours == peer.astype(np.uint32)).all(), "token streams differ"
PY
echo "token streams identical" >&2

"$PYTHON" - "$WORK" "$THREADS" <<'PY'
import json, os, sys
work, threads = sys.argv[1], int(sys.argv[2])
ours, peer = json.load(open(f"{work}/tinyforge.json")), json.load(open(f"{work}/peer.json"))
assert ours["tokens"] == peer["tokens"] and ours["documents"] == peer["documents"]
peer_bytes = os.path.getsize(f"{work}/peer.bin") + os.path.getsize(f"{work}/peer.idx")
print(f"documents {ours['documents']}, {ours['text_bytes']/1e6:.1f} MB of text, {ours['tokens']:,} tokens "
      f"({ours['dtype']}), {threads} thread(s)")
print(f"output: tinyforge {ours['bytes']/1e6:.1f} MB (compression {ours['compression_ratio']:.2f}x), "
      f"peer .bin+.idx {peer_bytes/1e6:.1f} MB")
def cpu(name):
    wall, user, system = map(float, open(f"{work}/time-{name}").read().split()[-3:])
    return wall, user + system
rows = [("tinyforge", *cpu("tinyforge")), ("megatron-style python", *cpu("peer"))]
print(f"{'':22} {'wall s':>7} {'cpu s':>7} {'MB/s/core':>10} {'tokens/s/core':>14}   (per core = per CPU-second)")
for name, wall, cpu_s in rows:
    print(f"{name:22} {wall:7.2f} {cpu_s:7.2f} {ours['text_bytes']/1e6/cpu_s:10.2f} {ours['tokens']/cpu_s:14,.0f}")
print(f"ratio (tinyforge / peer) per core: {rows[1][2] / rows[0][2]:.2f}x  (wall-clock ratio {rows[1][1] / rows[0][1]:.2f}x)")
PY
