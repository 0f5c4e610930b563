#!/usr/bin/env bash
# The paper's four findings (compact tokenizer, depth first, parameter inheritance, multiple
# rounds) at small scale on real data, in one command; every number from a run made here:
#
#   bench/reproduce/run.sh                       # the CPU default (3 seeds; about an hour on 2 cores)
#   bench/reproduce/run.sh --preset toy          # every arm, one seed, a few minutes (the test's size)
#   bench/reproduce/run.sh --preset gpu          # larger shapes on CUDA
#   bench/reproduce/run.sh --arms rounds,architecture --seeds 5 --work target/study-rounds
#
# Writes WORK/report.md, WORK/report.json (each number with the run folder behind it) and
# WORK/*.svg; finished runs are reused, so a rerun or a killed study picks up where it stopped.
# TINYFORGE_BIN: a tinyforge built with --features train (otherwise it is built here).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
scripts/fetch-data all >/dev/null
BIN="${TINYFORGE_BIN:-target/debug/tinyforge}"
[ -n "${TINYFORGE_BIN:-}" ] || cargo build -q --features train --bin tinyforge
exec .venv/bin/python bench/reproduce/study.py --bin "$BIN" "$@"
