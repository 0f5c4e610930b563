"""Reference check for tinyforge's AdamW over flat buffers: torch.optim.AdamW (foreach=False) with
two parameter groups (weight decay on the masked entries, none elsewhere) fed the same gradients
at the same learning rates.

usage: adamw.py IN.safetensors OUT.safetensors
IN holds `init` [N], `mask` [N] (1 = decay), `grads` [S, N], `lrs` [S] and `hp` [beta1, beta2,
eps, weight_decay]; OUT gets `params` [N] after S steps."""
import sys
import torch
from safetensors.torch import load_file, save_file

t = load_file(sys.argv[1])
b1, b2, eps, wd = t["hp"].tolist()
mask = t["mask"].bool()
decay = torch.nn.Parameter(t["init"][mask].clone())
plain = torch.nn.Parameter(t["init"][~mask].clone())
opt = torch.optim.AdamW(
    [{"params": [decay], "weight_decay": wd}, {"params": [plain], "weight_decay": 0.0}],
    lr=1.0, betas=(b1, b2), eps=eps, foreach=False,
)
for g, lr in zip(t["grads"], t["lrs"].tolist()):
    for group in opt.param_groups:
        group["lr"] = lr
    decay.grad = g[mask].clone()
    plain.grad = g[~mask].clone()
    opt.step()
out = t["init"].clone()
out[mask] = decay.detach()
out[~mask] = plain.detach()
save_file({"params": out}, sys.argv[2])
