#!/usr/bin/env bash
# `tinyforge tokenize` from and to an object store against the same run on local folders, in one
# run: the same real documents (bench/tokenize/make_docs.py) tokenized from a folder into a
# folder, then from s3:// into s3:// on a loopback S3 endpoint (moto, scripts/s3-local), with a
# cold cache (the documents downloaded, the shards uploaded, manifest last). Checks that every
# uploaded object equals the local run's file, then prints MB/s and MB/s per core (text MB per
# CPU second, user + sys, of tinyforge alone: moto's own CPU is not counted) and the ratio.
#
#   bench/tokenize/objects.sh            # 30 MB of real text, 1 core
#   MB=60 bench/tokenize/objects.sh
#
# Needs: the project .venv (scripts/setup-python: tokenizers, pyarrow, moto), the data cache from
# scripts/fetch-data, taskset, and a built binary (BIN, default target/debug/tinyforge).
set -euo pipefail
cd "$(dirname "$0")/../.."

MB="${MB:-30}"
CORES="${CORES:-0}"
DATA="${TINYFORGE_DATA:-$HOME/.cache/tinyforge}"
TOKENIZER="${TOKENIZER:-$DATA/raw/qwen3-tokenizer/package/models/tokenizer.json}"
WORK="${WORK:-target/bench-tokenize-objects}"
PYTHON=.venv/bin/python
DOCS="${DOCS:-target/bench-tokenize/docs-$MB}"
BIN="${BIN:-target/debug/tinyforge}"
[ -x "$BIN" ] || { echo "build tinyforge first (or set BIN)" >&2; exit 1; }
mkdir -p "$WORK"
[ -f "$DOCS/part-00000.parquet" ] || "$PYTHON" bench/tokenize/make_docs.py "$DOCS" "$MB" >&2
export RAYON_NUM_THREADS=1

export TINYFORGE_S3_DIR="$WORK/s3"
eval "$(scripts/s3-local start)"
trap 'scripts/s3-local stop' EXIT
scripts/s3-local mkbucket bench
"$PYTHON" - "$DOCS" <<'PY'
import os, sys, boto3
s3 = boto3.client("s3")
for name in sorted(os.listdir(sys.argv[1])):
    if name.endswith(".parquet"):
        s3.upload_file(os.path.join(sys.argv[1], name), "bench", f"docs/{name}")
PY

run() { # name args...
  local name=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$WORK/time-$name" taskset -c "$CORES" \
    env TINYFORGE_CACHE="$WORK/cache" "$BIN" --progress none tokenize "$@" \
    --tokenizer "$TOKENIZER" --threads 1 >"$WORK/$name.json"
}
# Twice each, alternating, from scratch every time (no local output, no cache, no remote
# shards): the faster of the two counts, as this shared machine's timings vary by 10-20%.
for round in 1 2; do
  rm -rf "$WORK/local"
  run "local-$round" "$DOCS" --out "$WORK/local"
  rm -rf "$WORK/cache"
  "$PYTHON" -c 'import boto3; b = boto3.resource("s3").Bucket("bench"); b.objects.filter(Prefix="tokens/").delete()'
  run "s3-$round" s3://bench/docs --out s3://bench/tokens
done

"$PYTHON" - "$WORK" <<'PY'
import json, os, sys, boto3
work = sys.argv[1]
s3 = boto3.client("s3")
local = sorted(n for n in os.listdir(f"{work}/local") if not n.startswith("."))
listed = s3.list_objects_v2(Bucket="bench", Prefix="tokens/")["Contents"]
remote = sorted(o["Key"][len("tokens/"):] for o in listed)
assert remote == local, (remote, local)
for name in local:
    body = s3.get_object(Bucket="bench", Key=f"tokens/{name}")["Body"].read()
    assert body == open(f"{work}/local/{name}", "rb").read(), name
report = json.load(open(f"{work}/local-1.json"))
mb = report["text_bytes"] / 1e6
rows = []
for name in ("local", "s3"):
    times = [tuple(map(float, open(f"{work}/time-{name}-{r}").read().split())) for r in (1, 2)]
    wall, user, system = min(times)
    rows.append((name, wall, user + system, mb / wall, mb / (user + system)))
print(f"\n{len(local)} objects identical to the local files; {mb:.1f} MB of text, 1 core")
print(f"{'mode':<24}{'wall s':>8}{'CPU s':>8}{'MB/s':>8}{'MB/s/core':>11}")
for name, wall, cpu, mbs, per_core in rows:
    label = "folder -> folder" if name == "local" else "s3:// -> s3:// (cold)"
    print(f"{label:<24}{wall:>8.2f}{cpu:>8.2f}{mbs:>8.2f}{per_core:>11.2f}")
print(f"ratio s3 / local: {rows[1][3] / rows[0][3]:.2f}x wall, {rows[1][4] / rows[0][4]:.2f}x per core")
PY
