#!/usr/bin/env bash
# The trainer on a GPU, in one prepared script (about 8 minutes on an H200): correct first, then
# fast. Built here, run there: bench/gpu/bundle.sh packs the binaries and data into out/gpu;
# this script unpacks them, points them at the machine's own PyTorch 2.11.0 and writes every log
# and the final table into one folder.
#
#   bench/gpu/run.sh                         # DEVICE=cuda (default)
#   DEVICE=cpu bench/gpu/run.sh              # every step on CPU, small sizes: proves the script
#
# 1. Correct on the device:
#    a. tiny and a 100M-parameter shape: the same weights and tokens in bf16 on the device and
#       fp32 on CPU, logits and loss within the tolerances device_parity states; the attention
#       kernel the dispatcher picks (flash wanted) and whether libtorch_cuda is loaded;
#    b. 50 training steps on the demo's real shards, the loss going down;
#    c. a run stopped at step 20 and started again continues at step 20 to 30;
#    d. `tinyforge score` on the device against CPU (same checkpoint, same plan), and
#       `tinyforge eval --tasks arc_easy` on the device against the CPU backend.
# 2. Fast: bench/train-gpu/run.sh at pangu-1b-pro (1792 x 20, 14 heads, FFN 4864, 48k vocab,
#    8 x 2048 tokens a step) against PyTorch eager and torch.compile in the same call.
#
# Environment: DEVICE, BUNDLE (default out/gpu), PYTHON (the machine's python with torch),
# OUT (logs; default a new temporary folder), STEPS1 (default 50).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DEVICE="${DEVICE:-cuda}"
BUNDLE="${BUNDLE:-out/gpu}"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
TORCH_LIB="$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Binaries: the bundle's (unpacked once), else this checkout's build.
BIN="$OUT/bin"; mkdir -p "$BIN"
for b in tinyforge device_parity collectives; do
  if [[ -f "$BUNDLE/bin/$b.xz" ]]; then
    "$PYTHON" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      "$BUNDLE/bin/$b.xz" "$BIN/$b"
    chmod +x "$BIN/$b"
  elif [[ -x "target/debug/$b" ]]; then ln -sf "$ROOT/target/debug/$b" "$BIN/$b"
  elif [[ -x "target/debug/examples/$b" ]]; then ln -sf "$ROOT/target/debug/examples/$b" "$BIN/$b"
  else echo "gpu: no $b: run bench/gpu/bundle.sh (or build it here)" >&2; exit 1; fi
done
TF="$BIN/tinyforge"
[[ -d "$BUNDLE/data" ]] && export TINYFORGE_DATA="$ROOT/$BUNDLE/data"
TOKENS="$BUNDLE/tokens"; VOCAB="$BUNDLE/vocab"; CKPT="$BUNDLE/checkpoint"
for need in "$TOKENS/manifest.json" "$VOCAB/tokenizer.json" "$CKPT/model.safetensors"; do
  [[ -e "$need" ]] || { echo "gpu: $need missing: run bench/gpu/bundle.sh" >&2; exit 1; }
done
if [[ "$DEVICE" == cuda ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt" || true
  PARITY_SEQ=1024; PARITY_BATCH=4; SEQ=256; BATCH=16; STEPS1="${STEPS1:-50}"; EVAL_LIMIT=200
else
  PARITY_SEQ=64; PARITY_BATCH=2; SEQ=64; BATCH=8; STEPS1="${STEPS1:-50}"; EVAL_LIMIT=20
fi
echo "# $(date -u +%FT%TZ) device=$DEVICE commit=$(git rev-parse --short HEAD 2>/dev/null || echo ?) out=$OUT"
: > "$OUT/checks.tsv"
check() { # name pass(0/1) detail
  printf '%s\t%s\t%s\n' "$1" "$( [[ $2 == 1 ]] && echo pass || echo FAIL )" "$3" | tee -a "$OUT/checks.tsv"
}
jq_py() { "$PYTHON" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
# A line from a JSON report: fmt FILE TEMPLATE, nested keys joined by _ ({runtime_cuda_available}).
fmt() {
  "$PYTHON" - "$1" "$2" <<'PY'
import json, sys
def flat(d, pre=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{pre}{k}_"))
        else:
            out[f"{pre}{k}"] = v
    return out
print(sys.argv[2].format(**flat(json.load(open(sys.argv[1])))))
PY
}

echo "## 1a. parity"
printf 'name = "m100"\ndim = 640\nlayers = 12\nheads = 10\nffn_dim = 1792\nvocab_size = 32000\nmax_seq_len = 2048\n' > "$OUT/m100.toml"
for m in tiny "$OUT/m100.toml"; do
  n=$(basename "$m" .toml)
  ok=1; "$BIN/device_parity" "$m" "$PARITY_SEQ" "$PARITY_BATCH" "$DEVICE" auto > "$OUT/parity-$n.json" || ok=0
  check "parity $n" $ok "$(fmt "$OUT/parity-$n.json" '{params:,} params {precision}: loss {loss_rel_err:.1e} (tol {loss_tol}), logits {logit_rel_err:.1e} (tol {logit_tol}), sdp {sdp_backend}, cuda {runtime_cuda_available}')"
done
if [[ "$DEVICE" == cuda ]]; then
  flash=$(jq_py "$OUT/parity-m100.json" 'int(d["sdp_backend"] in ("flash_attention", "cudnn_attention"))')
  check "flash attention chosen" "$flash" "$(jq_py "$OUT/parity-m100.json" 'd["sdp_backend"]')"
  cuda=$(jq_py "$OUT/parity-m100.json" 'int(d["runtime"]["cuda_available"])')
  check "libtorch_cuda loaded" "$cuda" "$(jq_py "$OUT/parity-m100.json" 'd["runtime"]')"
fi

echo "## 1b. $STEPS1 steps on real shards"
cfg="$OUT/train.toml"
printf 'model = "tiny"\nseq_len = %s\nbatch_size = %s\nlr = 3e-3\nwarmup = 0.0\nref_batch_tokens = 4096\ncheckpoint_every = 10\neval_every = 0\nval_units = 32\n' \
  "$SEQ" "$BATCH" > "$cfg"
"$TF" --progress none train "$cfg" --data "$TOKENS" --out "$OUT/run" --device "$DEVICE" --steps "$STEPS1" \
  > "$OUT/train.json" 2> "$OUT/train.log" || { tail -n 20 "$OUT/train.log"; exit 1; }
down=$(jq_py "$OUT/train.json" 'int(d["last_loss"] < d["first_loss"] - 0.5)')
check "loss goes down" "$down" "$(fmt "$OUT/train.json" '{first_loss:.3f} -> {last_loss:.3f} over {steps} steps, {mean_tokens_per_s:,.0f} tok/s on {device}')"

echo "## 1c. stop at 20, resume to 30"
"$TF" --progress none train "$cfg" --data "$TOKENS" --out "$OUT/resume" --device "$DEVICE" --steps 20 > "$OUT/resume-1.json" 2> "$OUT/resume-1.log"
"$TF" --progress none train "$cfg" --data "$TOKENS" --out "$OUT/resume" --device "$DEVICE" --steps 30 > "$OUT/resume-2.json" 2> "$OUT/resume-2.log"
ok=$(jq_py "$OUT/resume-2.json" 'int(d["resumed_from_step"] == 20 and d["steps"] == 30)')
check "resume continues at step 20" "$ok" "$(fmt "$OUT/resume-2.json" 'resumed from {resumed_from_step}, ended at {steps}')"

echo "## 1d. score and eval on the device against CPU"
for dev in "$DEVICE" cpu; do
  "$TF" --progress none score --device "$dev" --checkpoint "$CKPT" --data "$TOKENS" \
    --plan "$OUT/run/plans/round-1.json" --limit-batches 8 --out "$OUT/score-$dev.parquet" > "$OUT/score-$dev.json" 2> "$OUT/score-$dev.log"
  "$TF" --progress none eval --device "$dev" --checkpoint "$CKPT" --tokenizer "$VOCAB/tokenizer.json" --tasks arc_easy \
    --limit "$EVAL_LIMIT" --out "$OUT/eval-$dev" > "$OUT/eval-$dev.json" 2> "$OUT/eval-$dev.log"
done
"$PYTHON" - "$OUT" "$DEVICE" > "$OUT/agree.txt" <<'PY'
import json, sys
import pyarrow.parquet as pq
out, dev = sys.argv[1:]
a, b = pq.read_table(f"{out}/score-{dev}.parquet"), pq.read_table(f"{out}/score-cpu.parquet")
ua, ub = a.column("unit_id").to_pylist(), b.column("unit_id").to_pylist()
la, lb = a.column("loss").to_pylist(), b.column("loss").to_pylist()
d = max(abs(x - y) / y for x, y in zip(la, lb))
print(f"score {int(ua == ub and d < 2e-2)} {len(ua)} units, max relative loss difference {d:.2e} (tol 2e-2)")
def samples(d):
    return {r["id"]: r for r in map(json.loads, open(f"{out}/eval-{d}/samples/arc_easy.jsonl"))}
sa, sb = samples(dev), samples("cpu")
same_ids = sa.keys() == sb.keys()
ll = max(abs(x - y) / max(abs(y), 1e-9) for k in sb for x, y in zip(sa[k]["loglikelihoods"], sb[k]["loglikelihoods"]))
agree = sum(sa[k]["prediction"] == sb[k]["prediction"] for k in sb) / max(len(sb), 1)
ea, eb = (json.load(open(f"{out}/eval-{d}.json"))["tasks"][0] for d in (dev, "cpu"))
print(f"eval {int(same_ids and ll < 2e-2 and agree >= 0.95)} {len(sb)} items, max relative log-likelihood "
      f"difference {ll:.2e} (tol 2e-2), predictions agree on {agree:.0%} (tol 95%), acc_norm "
      f"{ea['acc_norm']:.3f} vs cpu {eb['acc_norm']:.3f}")
PY
read -r _ ok detail < <(grep '^score' "$OUT/agree.txt"); check "score on $DEVICE = cpu" "$ok" "$detail"
read -r _ ok detail < <(grep '^eval' "$OUT/agree.txt"); check "eval on $DEVICE vs cpu" "$ok" "$detail"

echo "## 2. speed"
if [[ "$DEVICE" == cuda ]]; then
  TINYFORGE="$TF" OUT="$OUT/train-gpu" bench/train-gpu/run.sh | tee "$OUT/train-gpu.txt"
else
  TINYFORGE="$TF" OUT="$OUT/train-gpu" DEVICE=cpu MODES=eager STEPS=8 bench/train-gpu/run.sh | tee "$OUT/train-gpu.txt"
fi

echo
echo "| check | result | detail |"
echo "|---|---|---|"
while IFS=$'\t' read -r name res detail; do echo "| $name | $res | $detail |"; done < "$OUT/checks.tsv"
grep -E '^\|' "$OUT/train-gpu.txt" || true
! grep -q FAIL "$OUT/checks.tsv"
