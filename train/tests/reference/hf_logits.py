"""Reference check for tinyforge's model: load a tinyforge checkpoint folder with Hugging Face
transformers' AutoModelForCausalLM (LlamaForCausalLM or Qwen2ForCausalLM, CPU, float32) and compare its logits and per-sequence losses with
the ones tinyforge computed on the same token ids.

usage: hf_logits.py CHECKPOINT_DIR TINYFORGE_OUTPUT.safetensors TOLERANCE
The safetensors file holds `ids` [B, T+1] (int64), `logits` [B, T, V] and `losses` [B] (float32).
Prints a JSON line with the maximum absolute differences; exits 1 above the tolerance."""
import json, sys
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

ckpt, ours_path, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
ours = load_file(ours_path)
model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32, attn_implementation="eager")
model.eval()
ids = ours["ids"]
with torch.no_grad():
    logits = model(input_ids=ids[:, :-1]).logits.float()
ce = torch.nn.functional.cross_entropy(
    logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none"
).view(ids.shape[0], -1).mean(1)
d_logits = (logits - ours["logits"]).abs().max().item()
d_loss = (ce - ours["losses"]).abs().max().item()
print(json.dumps({"max_abs_logit_diff": d_logits, "max_abs_loss_diff": d_loss,
                  "logit_scale": logits.abs().max().item(), "transformers_loss": ce.mean().item()}))
sys.exit(0 if d_logits <= tol and d_loss <= tol else 1)
