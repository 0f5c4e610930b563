#!/usr/bin/env bash
# Hostile inputs, as a web-scale corpus holds them: seconds and peak memory of tinyforge on
# each, and what it said. With BASELINE_BIN=path (a tinyforge from before the limits, e.g.
# built at a49c391) the same inputs run through it too, but the bomb only when BOMB_BASELINE=1
# (it took 6.8 GB and then panicked there).
#
#   bench/pathological/run.sh                  # BOMB_MB=1024: one JSONL line of 1 GiB, gzipped
#   BASELINE_BIN=/tmp/old/tinyforge bench/pathological/run.sh
#
# Inputs (made here, in BENCH_DIR, default .cache/bench-pathological):
#   bomb.jsonl.gz      a short line, one line of BOMB_MB MiB of 'a' (no newline until its end),
#                      a short line: ingest must reject the middle one by line, offset and size
#                      under max_record_mb (default 32) and keep memory near that bound
#   deep-20k.html,     20,000 and 200,000 nested <div>s: rejected past max_html_depth (512)
#   deep-200k.html     after one linear scan; the ratio of their times is printed
#   long.jsonl         one 20 MB document that is a single pre-token ("aaaa..."), then tokenize:
#                      cut into pieces of max_pretoken_chars (65,536) through the word splitter
#   long-added.jsonl   the same after an added token (<|endoftext|>), which sends the text
#                      through tokenizers' own pipeline instead, with the same cuts
# TINYFORGE_BIN=path skips the build (the data-stage binary, no libtorch).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BOMB_MB="${BOMB_MB:-1024}"
if [ -z "${TINYFORGE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build -q -p tinyforge --bin tinyforge)
fi
BIN="${TINYFORGE_BIN:-$ROOT/target/debug/tinyforge}"
WORK="${BENCH_DIR:-$ROOT/.cache/bench-pathological}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
QWEN="${TINYFORGE_DATA:-$HOME/.cache/tinyforge}/raw/qwen3-tokenizer/package/models/tokenizer.json"
mkdir -p "$WORK"

"$PY" - "$WORK" "$BOMB_MB" <<'PY'
import gzip, json, os, sys
work, mb = sys.argv[1], int(sys.argv[2])
good = json.dumps({"text": "The farmer watches the river from the porch, every morning."}) + "\n"
bomb = os.path.join(work, f"bomb-{mb}.jsonl.gz")
if not os.path.exists(bomb):
    with gzip.open(bomb + ".tmp", "wt", compresslevel=1) as f:
        f.write(good)
        f.write('{"text":"')
        chunk = "a" * (1 << 20)
        for _ in range(mb):
            f.write(chunk)
        f.write('"}\n')
        f.write(good.replace("morning", "evening"))
    os.replace(bomb + ".tmp", bomb)
for n in (20_000, 200_000):
    with open(os.path.join(work, f"deep-{n // 1000}k.html"), "w") as f:
        f.write("<html><body>" + "<div>" * n + "deep" + "</div>" * n + "</body></html>")
with open(os.path.join(work, "long.jsonl"), "w") as f:
    f.write(json.dumps({"text": "a" * 20_000_000}) + "\n")
with open(os.path.join(work, "long-added.jsonl"), "w") as f:
    f.write(json.dumps({"text": "<|endoftext|>" + "a" * 20_000_000}) + "\n")
PY

rows=()
measure() { # label bin args...
  local label=$1 bin=$2; shift 2
  local out="$WORK/$label.out" err="$WORK/$label.err" t="$WORK/$label.time"
  rm -rf "$WORK/$label-docs"
  set +e
  /usr/bin/time -f "%e %M" -o "$t" "$bin" --progress none "$@" > "$out" 2> "$err"
  local rc=$?
  set -e
  read -r secs kb < <(tail -1 "$t")
  local said
  said=$( { grep -ho '"reason": *"[^"]*"' "$WORK/$label-docs/_rejects.jsonl" 2>/dev/null | head -1; tail -1 "$err"; } | head -1 | cut -c1-110)
  rows+=("$(printf '%-24s %6s %9.0f %4s  %s' "$label" "$secs" "$((kb / 1024))" "$rc" "$said")")
}

run_all() { # prefix bin
  local p=$1 bin=$2
  if [ "$p" = new ] || [ "${BOMB_BASELINE:-0}" = 1 ]; then
    measure "$p-bomb-${BOMB_MB}m" "$bin" ingest "$WORK/bomb-$BOMB_MB.jsonl.gz" --out "$WORK/$p-bomb-${BOMB_MB}m-docs" --min-chars 1
  fi
  measure "$p-deep-20k" "$bin" ingest "$WORK/deep-20k.html" --out "$WORK/$p-deep-20k-docs"
  measure "$p-deep-200k" "$bin" ingest "$WORK/deep-200k.html" --out "$WORK/$p-deep-200k-docs"
  measure "$p-long-ingest" "$bin" ingest "$WORK/long.jsonl" --out "$WORK/$p-long-ingest-docs" --min-chars 1
  measure "$p-long-added-ingest" "$bin" ingest "$WORK/long-added.jsonl" --out "$WORK/$p-long-added-ingest-docs" --min-chars 1
  if [ -f "$QWEN" ]; then
    for input in long long-added; do
      rm -rf "$WORK/$p-$input-tokens"
      measure "$p-$input-tokenize" "$bin" tokenize "$WORK/$p-$input-ingest-docs" --tokenizer "$QWEN" --out "$WORK/$p-$input-tokens"
      # The same without a cut: tokenizers' own cost, as tokenize had it before the limit.
      if [ "$p" = new ]; then
        rm -rf "$WORK/$p-$input-uncut-tokens"
        measure "$p-$input-tokenize-uncut" "$bin" tokenize "$WORK/$p-$input-ingest-docs" --tokenizer "$QWEN" --out "$WORK/$p-$input-uncut-tokens" --max-pretoken-chars 1000000000
      fi
    done
  fi
}

run_all new "$BIN"
[ -n "${BASELINE_BIN:-}" ] && run_all old "$BASELINE_BIN"

t20=$(awk '{print $1}' "$WORK/new-deep-20k.time" | tail -1)
t200=$(awk '{print $1}' "$WORK/new-deep-200k.time" | tail -1)
echo
printf '%-24s %6s %9s %4s  %s\n' input seconds "peak MiB" exit "what it said (first reject, or last stderr line)"
printf '%s\n' "${rows[@]}"
echo
echo "deep HTML, 200k against 20k nested: $(awk -v a="$t200" -v b="$t20" 'BEGIN { printf "%.1fx the time for 10x the depth", (b > 0 ? a / b : 0) }')"
