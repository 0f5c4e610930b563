#!/usr/bin/env bash
# The paper's inheritance criteria table (§5, Table 5) at small scale, in one command:
# real text (the demo corpora) through tinyforge ingest -> vocab (a 4,000-token compact
# tokenizer pruned from Qwen3's) -> tokenize, a 2.6M-parameter teacher trained by tinyforge,
# then a 3-layer, 96-wide student initialised by random init, L1, L2, Taylor, activation and a
# learned mask, each trained the same steps. Prints held-out loss at step 0 and after training
# (mean ± std over seeds) beside the paper's ordering; writes criteria.md / criteria.json.
#
#   bench/inherit/run.sh                      # 600 teacher steps, 150 student steps, 3 seeds
#   TEACHER_STEPS=300 STEPS=100 SEEDS=2 bench/inherit/run.sh
#
# Held-out documents: those whose (hashed) id is 0 modulo 16, a 1/16 sample of the corpus, never
# trained on. Finished stages and arms are reused on a rerun (delete $WORK to start over).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
WORK="${WORK:-target/bench-inherit}"
TEACHER_STEPS="${TEACHER_STEPS:-600}"
STEPS="${STEPS:-150}"
SEEDS="${SEEDS:-3}"
scripts/fetch-data all >/dev/null
# TINYFORGE_BIN: a tinyforge built with --features train (otherwise it is built here).
BIN="${TINYFORGE_BIN:-target/debug/tinyforge}"
[ -n "${TINYFORGE_BIN:-}" ] || cargo build -q --features train --bin tinyforge
TF() { "$BIN" --progress none "$@"; }
mkdir -p "$WORK"
[ -n "$(ls "$WORK"/docs/*.parquet 2>/dev/null)" ] ||
  TF ingest --config configs/ingest-demo.toml --where "id % 16 <> 0" --out "$WORK/docs" >"$WORK/ingest.json"
[ -n "$(ls "$WORK"/heldout-docs/*.parquet 2>/dev/null)" ] ||
  TF ingest --config configs/ingest-demo.toml --where "id % 16 = 0" --out "$WORK/heldout-docs" >"$WORK/ingest-heldout.json"
[ -f "$WORK/vocab/counts.parquet" ] || TF vocab count "$WORK/docs" --out "$WORK/vocab/counts.parquet" >/dev/null
[ -f "$WORK/vocab/tokenizer.json" ] || TF vocab prune --counts "$WORK/vocab/counts.parquet" --size 4000 --out "$WORK/vocab" >/dev/null
[ -f "$WORK/tokens/manifest.json" ] || TF tokenize "$WORK/docs" --tokenizer "$WORK/vocab/tokenizer.json" --out "$WORK/tokens" >/dev/null
[ -f "$WORK/heldout/manifest.json" ] || TF tokenize "$WORK/heldout-docs" --tokenizer "$WORK/vocab/tokenizer.json" --out "$WORK/heldout" >/dev/null
cargo run -q --example criteria -p tinyforge-inherit -- \
  --data "$WORK/tokens" --held-out "$WORK/heldout" --work "$WORK/arms" \
  --teacher-steps "$TEACHER_STEPS" --steps "$STEPS" --seeds "$SEEDS"
