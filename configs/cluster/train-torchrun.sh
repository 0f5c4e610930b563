#!/bin/bash
# Train on N machines with torchrun: run this on every machine (same command), HEAD being the
# first machine's address. torchrun's agent serves the rendezvous store; tinyforge joins it
# (TORCHELASTIC_USE_AGENT_STORE) and reads RANK, WORLD_SIZE and LOCAL_RANK. With --max-restarts a
# failed rank restarts the whole group, which resumes from the newest checkpoint.
#
#   HEAD=10.0.0.1 NODES=2 configs/cluster/train-torchrun.sh
set -euo pipefail
torchrun --no-python --nnodes "${NODES:-2}" --nproc-per-node "${GPUS:-8}" --max-restarts 3 \
  --rdzv-backend c10d --rdzv-endpoint "${HEAD:?set HEAD to the first machine}:29400" \
  tinyforge --progress json train configs/train-pangu-1b-pro.toml \
  --data /shared/tokens --out /shared/runs/pangu-1b-pro
