"""Make a random-init Hugging Face teacher the way its users' teachers are made: a transformers
model saved with save_pretrained (safetensors, config.json), for tinyforge's inheritance tests.

usage: make_teacher.py OUT_DIR KIND
KIND: llama-gqa-tied (Llama 3 / SmolLM2 layout: grouped-query attention, tied embeddings) or
      qwen2 (q/k/v biases, GQA, untied).
Weights are drawn with std 0.1 (and norms, biases away from their init) so the logits are far
from uniform and a wrong index anywhere shows."""
import sys
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

out, kind = sys.argv[1], sys.argv[2]
torch.manual_seed(7)
common = dict(hidden_size=96, intermediate_size=160, num_hidden_layers=4, num_attention_heads=6,
              num_key_value_heads=2, head_dim=16, vocab_size=300, max_position_embeddings=512,
              rms_norm_eps=1e-5, rope_theta=20000.0, initializer_range=0.1)
if kind == "llama-gqa-tied":
    model = LlamaForCausalLM(LlamaConfig(tie_word_embeddings=True, **common))
elif kind == "qwen2":
    model = Qwen2ForCausalLM(Qwen2Config(tie_word_embeddings=False, use_sliding_window=False,
                                         **common))
else:
    sys.exit(f"unknown kind {kind}")
with torch.no_grad():
    for name, p in model.named_parameters():
        if p.dim() == 1:
            if name.endswith("bias"):
                p.uniform_(-0.3, 0.3)
            else:
                p.uniform_(0.5, 1.5)
model.save_pretrained(out, safe_serialization=True)
print(out)
