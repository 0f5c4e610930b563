#!/usr/bin/env bash
# Peak memory of one task of the cross-chunk exact dedup, one bucket (a single process holding
# every document's hash, as before hash partitioning) against one of B buckets, on the same
# synthetic hashes in one run: DOCS documents in 1,000 chunks, 20% of them copies of an earlier
# one. Runs `find_duplicates`, the code `tinyforge ingest --dedup-bucket` runs over the chunks'
# hash files (ingest/examples/dedup_memory.rs), so the file reads are left out.
#
#   bench/dedup/run.sh [DOCS] [B]        (default: 100000000 documents, 8 buckets)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DOCS="${1:-100000000}"
B="${2:-8}"
(cd "$ROOT" && cargo build -q -p tinyforge-ingest --example dedup_memory)
BIN="$ROOT/target/debug/examples/dedup_memory"
run() { # bucket -> "rss_kib seconds"
  local log
  log="$(mktemp)"
  /usr/bin/time -v "$BIN" "$DOCS" 1000 0.2 "$1" > "$log.out" 2> "$log"
  echo "$(awk -F: '/Maximum resident/ {gsub(/ /, "", $2); print $2}' "$log") \
$(awk -F: '/Elapsed \(wall/ {print $NF}' "$log") $(cat "$log.out")" >&2
  awk -F: '/Maximum resident/ {gsub(/ /, "", $2); print $2}' "$log"
  rm -f "$log" "$log.out"
}
one=$(run 0/1)
part=$(run "0/$B")
printf '\n%-22s %12s\n' "task" "peak RSS MiB"
printf '%-22s %12d\n' "1 bucket (all hashes)" $((one / 1024)) "bucket 0 of $B" $((part / 1024))
awk -v a="$one" -v b="$part" 'BEGIN { printf "ratio (1 bucket / 1 of B): %.2f\n", a / b }'
