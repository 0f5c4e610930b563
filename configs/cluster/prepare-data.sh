#!/usr/bin/env bash
# The data stages of tinyforge as dependent Slurm arrays, from raw corpus to merged token shards:
#
#   configs/cluster/prepare-data.sh INGEST_CONFIG TOKENIZER OUT [--chunks N] [--buckets B]
#       [--rewrites M] [--tokenize K] [--counts C] [--count-buckets V] [--wait]
#
#   1. ingest, N tasks (--shard auto): the input's chunks, each task every N-th   OUT/docs
#   2. ingest, B tasks (--dedup-bucket auto): duplicates by content-hash bucket; a task holds
#      16 bytes per document / B
#   3. ingest, M tasks (--dedup-rewrite auto): chunks without their duplicates
#   4. ingest, 1 task (--merge): the manifest                                    OUT/docs/_manifest.json
#   5. vocab count, C tasks (--shard auto), then vocab merge (with --count-buckets V > 1, first
#      V tasks of vocab merge --bucket auto, each summing the token ids of one hash bucket over
#      every partial, then the join)                                              OUT/counts.parquet
#   6. tokenize, K tasks (--shard auto), each a contiguous part of the documents  OUT/tokens/tasks/tI
#   7. shards merge: one dataset over the K task folders                          OUT/tokens
#
# Each step starts when the one before it succeeded (afterok); a failed task stops the chain.
# Every step resumes: resubmitting the script after a failure redoes only unfinished work (the
# ingest chunks and buckets, the tokenize shards already written are kept), and the result is
# the same bytes as one process running `tinyforge ingest` and `tinyforge tokenize` whole.
# OUT must be on storage every node sees. The job ids print on stdout; logs go to OUT/logs.
# Environment: TINYFORGE (the binary; default tinyforge on PATH), SBATCH_EXTRA (more sbatch
# flags for every step, e.g. "--partition=cpu --account=data").
#
# Example (a one-machine cluster from scripts/slurm-local):
#   eval "$(scripts/slurm-local start)"
#   configs/cluster/prepare-data.sh configs/ingest-demo.toml ~/.cache/tinyforge/qwen3/tokenizer.json \
#     out/cluster --chunks 4 --buckets 4 --tokenize 4 --wait
set -euo pipefail

usage() { sed -n '2,4p' "$0" >&2; exit 2; }
[[ $# -ge 3 ]] || usage
CONFIG="$(realpath "$1")"; TOKENIZER="$(realpath "$2")"; OUT="$3"; shift 3
CHUNKS=8 BUCKETS=8 REWRITES="" TOKENIZE="" COUNTS="" COUNT_BUCKETS=1 WAIT=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --chunks) CHUNKS="$2"; shift 2 ;;
    --buckets) BUCKETS="$2"; shift 2 ;;
    --rewrites) REWRITES="$2"; shift 2 ;;
    --tokenize) TOKENIZE="$2"; shift 2 ;;
    --counts) COUNTS="$2"; shift 2 ;;
    --count-buckets) COUNT_BUCKETS="$2"; shift 2 ;;
    --wait) WAIT=(--wait); shift ;;
    *) echo "prepare-data.sh: unknown option $1" >&2; usage ;;
  esac
done
REWRITES="${REWRITES:-$CHUNKS}" TOKENIZE="${TOKENIZE:-$CHUNKS}" COUNTS="${COUNTS:-$CHUNKS}"
mkdir -p "$OUT/logs" "$OUT/tokens/tasks" "$OUT/counts/sums"
OUT="$(realpath "$OUT")"
touch "$OUT/logs/.submitted"
STAGE="$(cd "$(dirname "$0")" && pwd)/stage.sbatch"
DOCS="$OUT/docs"
# shellcheck disable=SC2206
EXTRA=(${SBATCH_EXTRA:-})

submit() { # submit NAME TASKS DEPENDENCY ARGS...
  local name="$1" tasks="$2" after="$3"; shift 3
  local flags=(--parsable --job-name="tf-$name" --output="$OUT/logs/$name-%A_%a.out" "${EXTRA[@]}")
  # Always an array, of one task too: `--shard auto` and `%a` read the array task id.
  flags+=(--array="0-$((tasks - 1))")
  [[ -n "$after" ]] && flags+=(--dependency="afterok:$after" --kill-on-invalid-dep=yes)
  local id
  id="$(sbatch "${flags[@]}" "$STAGE" "$@")"
  echo "$name $id"
  LAST="${id%%;*}"
}

ingest=(ingest --config "$CONFIG" --out "$DOCS")
submit ingest "$CHUNKS" "" "${ingest[@]}" --shard auto
submit dedup-buckets "$BUCKETS" "$LAST" "${ingest[@]}" --dedup-bucket auto
submit dedup-rewrite "$REWRITES" "$LAST" "${ingest[@]}" --dedup-buckets "$BUCKETS" --dedup-rewrite auto
submit docs-merge 1 "$LAST" "${ingest[@]}" --dedup-buckets "$BUCKETS" --merge
DOCS_DONE="$LAST"
submit vocab-count "$COUNTS" "$DOCS_DONE" vocab count "$DOCS" --tokenizer "$TOKENIZER" \
  --shard auto --out "$OUT/counts/c%a.parquet"
COUNTED="$LAST"
PARTIALS="$OUT/counts/c*.parquet"
if [[ "$COUNT_BUCKETS" -gt 1 ]]; then
  # Every bucket task reads every partial: a shell in the job expands the list.
  id="$(sbatch --parsable --job-name=tf-count-buckets --array="0-$((COUNT_BUCKETS - 1))" \
    --output="$OUT/logs/count-buckets-%A_%a.out" "${EXTRA[@]}" \
    --dependency="afterok:$COUNTED" --kill-on-invalid-dep=yes --wrap "set -e
  ${TINYFORGE:-tinyforge} --progress json vocab merge $PARTIALS --bucket auto \
    --out $OUT/counts/sums/b\$SLURM_ARRAY_TASK_ID.parquet")"
  echo "count-buckets $id"
  COUNTED="${id%%;*}"
  PARTIALS="$OUT/counts/sums/b*.parquet"
fi
submit tokenize "$TOKENIZE" "$DOCS_DONE" tokenize "$DOCS" --tokenizer "$TOKENIZER" \
  --shard auto --out "$OUT/tokens/tasks/t%a"
TOKENIZED="$LAST"
# The two merges take every task's output: a shell in the job expands the lists.
flags=(--parsable --job-name=tf-merges --output="$OUT/logs/merges-%j.out" "${EXTRA[@]}"
  --dependency="afterok:$COUNTED:$TOKENIZED" --kill-on-invalid-dep=yes "${WAIT[@]}")
id="$(sbatch "${flags[@]}" --wrap "set -e
  ${TINYFORGE:-tinyforge} --progress json vocab merge $PARTIALS --out $OUT/counts.parquet
  ${TINYFORGE:-tinyforge} --progress json shards merge $OUT/tokens/tasks/t* --out $OUT/tokens")"
echo "merges $id"
if [[ ${#WAIT[@]} -gt 0 ]]; then
  # sbatch --wait returns 0 for a job cancelled because a dependency failed: check it ran.
  [[ "$OUT/tokens/manifest.json" -nt "$OUT/logs/.submitted" &&
     "$OUT/counts.parquet" -nt "$OUT/logs/.submitted" ]] || {
    echo "prepare-data.sh: a step failed; see $OUT/logs" >&2
    exit 1
  }
fi
