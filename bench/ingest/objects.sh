#!/usr/bin/env bash
# `tinyforge ingest` from and to an object store against the same run on local files, in one
# run: the same real JSONL (bench/ingest/make_jsonl.py) ingested from a file into a folder, then
# from s3:// into s3:// on a loopback S3 endpoint (moto, scripts/s3-local), cold: the raw file
# read in place with ranged GETs (16 MiB parts: byte ranges of about one part each, each read
# in 8 MiB GETs with the next one fetched ahead), the parts staged and
# uploaded, markers and manifest last. Checks that every uploaded object equals the local run's
# file (the manifest's folder name aside), then prints MB/s and MB/s per core (input MB per CPU
# second, user + sys, of tinyforge alone: moto's own CPU is not counted) and the ratio.
#
#   bench/ingest/objects.sh              # the bench corpus (about 100 MB), 1 thread on core 0
#
# Needs: the project .venv (scripts/setup-python: moto, boto3), the data cache from
# scripts/fetch-data, taskset, and a built binary (BIN, default target/debug/tinyforge).
set -euo pipefail
cd "$(dirname "$0")/../.."

CORES="${CORES:-0}"
RAW="${TINYFORGE_DATA:-$HOME/.cache/tinyforge}/raw"
WORK="${WORK:-target/bench-ingest-objects}"
PYTHON=.venv/bin/python
BIN="${BIN:-target/debug/tinyforge}"
[ -x "$BIN" ] || { echo "build tinyforge first (or set BIN)" >&2; exit 1; }
mkdir -p "$WORK"
INPUT="${INPUT:-.cache/bench-ingest/corpus.jsonl}"
if [ ! -s "$INPUT" ]; then
  mkdir -p "$(dirname "$INPUT")"
  "$PYTHON" bench/ingest/make_jsonl.py "$RAW" "$INPUT" >&2
fi

export TINYFORGE_S3_DIR="$WORK/s3"
eval "$(scripts/s3-local start)"
trap 'scripts/s3-local stop' EXIT
scripts/s3-local mkbucket bench
"$PYTHON" - "$INPUT" <<'PY'
import sys, boto3
boto3.client("s3").upload_file(sys.argv[1], "bench", "raw/corpus.jsonl")
PY

run() { # name input out
  /usr/bin/time -f "%e %U %S" -o "$WORK/time-$1" taskset -c "$CORES" \
    env TINYFORGE_CACHE="$WORK/cache" "$BIN" --progress none ingest "$2" --out "$3" \
    --source bench --keep author --id-field id --threads 1 --part-size-mb 16 >"$WORK/$1.json"
}
# Twice each, alternating, from scratch every time (no output, no cache, no remote parts): the
# faster of the two counts, as this shared machine's timings vary by 10-20%.
for round in 1 2; do
  rm -rf "$WORK/local"
  run "local-$round" "$INPUT" "$WORK/local"
  rm -rf "$WORK/cache"
  "$PYTHON" -c 'import boto3; b = boto3.resource("s3").Bucket("bench"); b.objects.filter(Prefix="docs/").delete()'
  run "s3-$round" s3://bench/raw/corpus.jsonl s3://bench/docs
done

"$PYTHON" - "$WORK" "$INPUT" <<'PY'
import json, os, sys, boto3
work, raw = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3")
local = sorted(n for n in os.listdir(f"{work}/local") if not n.startswith(".") and n != "_state")
keys = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix="docs/"):
    keys += [o["Key"][len("docs/"):] for o in page.get("Contents", [])]
remote = sorted(k for k in keys if not k.startswith("_state/"))
assert remote == local, (remote, local)
for name in local:
    body = s3.get_object(Bucket="bench", Key=f"docs/{name}")["Body"].read()
    mine = open(f"{work}/local/{name}", "rb").read()
    if name == "_manifest.json":
        body = body.replace(b"s3://bench/docs", b"OUT")
        mine = mine.replace(f"{work}/local".encode(), b"OUT")
    assert body == mine, name
cached = [f for _, _, files in os.walk(f"{work}/cache") for f in files if f.endswith(".jsonl") and f != "_rejects.jsonl" and not f.endswith(".rejects.jsonl")]
assert not cached, f"the raw file was copied: {cached}"
mb = os.path.getsize(raw) / 1e6
report = json.load(open(f"{work}/s3-1.json"))
rows = []
for name in ("local", "s3"):
    times = [tuple(map(float, open(f"{work}/time-{name}-{r}").read().split())) for r in (1, 2)]
    wall, user, system = min(times)
    rows.append((name, wall, user + system, mb / wall, mb / (user + system)))
print(f"\n{len(local)} objects identical to the local files ({report['chunks_total']} chunks, "
      f"{report['documents_out']} documents); {mb:.1f} MB of JSONL, 1 thread")
print(f"{'mode':<24}{'wall s':>8}{'CPU s':>8}{'MB/s':>8}{'MB/s/core':>11}")
for name, wall, cpu, mbs, per_core in rows:
    label = "file -> folder" if name == "local" else "s3:// -> s3:// (cold)"
    print(f"{label:<24}{wall:>8.2f}{cpu:>8.2f}{mbs:>8.2f}{per_core:>11.2f}")
print(f"ratio s3 / local: {rows[1][3] / rows[0][3]:.2f}x wall, {rows[1][4] / rows[0][4]:.2f}x per core")
PY
