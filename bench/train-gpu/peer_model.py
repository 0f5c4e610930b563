"""The PyTorch peers' model (torch_peer.py here, bench/train-dist/ddp_peer.py): a LLaMA-style
decoder with pre-RMSNorm, SwiGLU, RoPE, an untied embedding/head and causal
scaled_dot_product_attention (flash where available). `forward(x, y)` returns the mean
cross-entropy."""
import torch, torch.nn as nn, torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(s, d):
        super().__init__(); s.w = nn.Parameter(torch.ones(d))
    def forward(s, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5)).to(x.dtype) * s.w


class Block(nn.Module):
    def __init__(s, D, H, FF):
        super().__init__()
        s.D, s.H, s.HD = D, H, D // H
        s.n1, s.n2 = RMSNorm(D), RMSNorm(D)
        s.qkv = nn.Linear(D, 3 * D, bias=False); s.o = nn.Linear(D, D, bias=False)
        s.up = nn.Linear(D, 2 * FF, bias=False); s.down = nn.Linear(FF, D, bias=False)
    def forward(s, h, cos, sin):
        b, t, _ = h.shape
        HD = s.HD
        q, k, v = s.qkv(s.n1(h)).view(b, t, 3, s.H, HD).permute(2, 0, 3, 1, 4)
        def rope(x):
            x1, x2 = x[..., : HD // 2], x[..., HD // 2 :]
            return x * cos + torch.cat([-x2, x1], -1) * sin
        att = F.scaled_dot_product_attention(rope(q), rope(k), v, is_causal=True)
        h = h + s.o(att.transpose(1, 2).reshape(b, t, s.D))
        g, u = s.up(s.n2(h)).chunk(2, -1)
        return h + s.down(F.silu(g) * u)


class Model(nn.Module):
    """`dt`: the RoPE tables' dtype (bf16 under CUDA autocast, fp32 on CPU)."""
    def __init__(s, D, L, H, FF, V, T, dt):
        super().__init__()
        s.V = V
        HD = D // H
        s.emb = nn.Embedding(V, D); s.blocks = nn.ModuleList(Block(D, H, FF) for _ in range(L))
        s.norm = RMSNorm(D); s.head = nn.Linear(D, V, bias=False)
        inv = 1.0 / (10000 ** (torch.arange(0, HD, 2).float() / HD))
        fr = torch.arange(T).float()[:, None] * inv[None]; fr = torch.cat([fr, fr], 1)
        s.register_buffer("cos", fr.cos().to(dt)); s.register_buffer("sin", fr.sin().to(dt))
    def forward(s, x, y):
        h = s.emb(x)
        for blk in s.blocks:
            h = blk(h, s.cos, s.sin)
        return F.cross_entropy(s.head(s.norm(h)).view(-1, s.V).float(), y.view(-1))
