"""PyTorch peer for the data-parallel benchmark: the LLaMA-style decoder of bench/train-gpu/torch_peer.py
(pre-RMSNorm, SwiGLU, RoPE, untied head) under torch.nn.parallel.DistributedDataParallel, launched by
torchrun, Gloo on CPU (float32) or NCCL on CUDA (bf16 autocast). The global batch is split over the
ranks as tinyforge splits it. Each step also times a bare all-reduce of a flat fp32 buffer of the
model's size (the collective tinyforge's plain data parallel runs once per step; DDP runs it in
buckets overlapped with backward, so it has no separate time of its own).

  torchrun --nproc-per-node 2 bench/train-dist/ddp_peer.py --device cpu --dim 64 --layers 2 ...

Rank 0 prints a SUMMARY line: median step time, tokens/s of the whole batch, median all-reduce time."""
import argparse, os, time
import torch, torch.nn as nn, torch.nn.functional as F
import torch.distributed as dist

p = argparse.ArgumentParser()
p.add_argument("--device", choices=["cuda", "cpu"], default="cpu")
p.add_argument("--dim", type=int, default=64); p.add_argument("--layers", type=int, default=2)
p.add_argument("--heads", type=int, default=4); p.add_argument("--ffn", type=int, default=176)
p.add_argument("--vocab", type=int, default=4096); p.add_argument("--seq", type=int, default=256)
p.add_argument("--batch", type=int, default=16, help="global batch (sequences)")
p.add_argument("--steps", type=int, default=23)
a = p.parse_args()
D, L, H, FF, V, T = a.dim, a.layers, a.heads, a.ffn, a.vocab, a.seq
HD = D // H
cuda = a.device == "cuda"
dist.init_process_group("nccl" if cuda else "gloo")
rank, world = dist.get_rank(), dist.get_world_size()
assert a.batch % world == 0, "the batch must split evenly over the ranks"
B = a.batch // world
dev = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
if cuda:
    torch.cuda.set_device(dev)

class RMSNorm(nn.Module):
    def __init__(s, d):
        super().__init__(); s.w = nn.Parameter(torch.ones(d))
    def forward(s, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5)).to(x.dtype) * s.w

class Block(nn.Module):
    def __init__(s):
        super().__init__()
        s.n1, s.n2 = RMSNorm(D), RMSNorm(D)
        s.qkv = nn.Linear(D, 3 * D, bias=False); s.o = nn.Linear(D, D, bias=False)
        s.up = nn.Linear(D, 2 * FF, bias=False); s.down = nn.Linear(FF, D, bias=False)
    def forward(s, h, cos, sin):
        b, t, _ = h.shape
        q, k, v = s.qkv(s.n1(h)).view(b, t, 3, H, HD).permute(2, 0, 3, 1, 4)
        def rope(x):
            x1, x2 = x[..., : HD // 2], x[..., HD // 2 :]
            return x * cos + torch.cat([-x2, x1], -1) * sin
        att = F.scaled_dot_product_attention(rope(q), rope(k), v, is_causal=True)
        h = h + s.o(att.transpose(1, 2).reshape(b, t, D))
        g, u = s.up(s.n2(h)).chunk(2, -1)
        return h + s.down(F.silu(g) * u)

class Model(nn.Module):
    def __init__(s):
        super().__init__()
        s.emb = nn.Embedding(V, D); s.blocks = nn.ModuleList(Block() for _ in range(L))
        s.norm = RMSNorm(D); s.head = nn.Linear(D, V, bias=False)
        inv = 1.0 / (10000 ** (torch.arange(0, HD, 2).float() / HD))
        fr = torch.arange(T).float()[:, None] * inv[None]; fr = torch.cat([fr, fr], 1)
        dt = torch.bfloat16 if cuda else torch.float32
        s.register_buffer("cos", fr.cos().to(dt)); s.register_buffer("sin", fr.sin().to(dt))
    def forward(s, x, y):
        h = s.emb(x)
        for blk in s.blocks:
            h = blk(h, s.cos, s.sin)
        return F.cross_entropy(s.head(s.norm(h)).view(-1, V).float(), y.view(-1))

torch.manual_seed(0)
m = Model().to(dev)
n = sum(q.numel() for q in m.parameters())
ddp = nn.parallel.DistributedDataParallel(m)
opt = torch.optim.AdamW(m.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, fused=cuda)
flat = torch.zeros(n, device=dev)
sync = torch.cuda.synchronize if cuda else (lambda: None)
tokens = a.batch * T
if rank == 0:
    print(f"torch {torch.__version__} ddp {a.device} world {world} threads {torch.get_num_threads()} "
          f"params {n/1e6:.3f}M T{T} global batch {a.batch}")
times, comm = [], []
g = torch.Generator().manual_seed(rank)
for i in range(a.steps):
    x = torch.randint(0, V, (B, T), generator=g).to(dev); y = torch.randint(0, V, (B, T), generator=g).to(dev)
    dist.barrier(); sync(); t0 = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        loss = ddp(x, y)
    opt.zero_grad(set_to_none=True); loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step()
    l = loss.item(); sync(); dt = time.perf_counter() - t0
    dist.barrier(); sync(); c0 = time.perf_counter(); dist.all_reduce(flat); sync(); dc = time.perf_counter() - c0
    if i >= 3:
        times.append(dt); comm.append(dc)
times.sort(); comm.sort()
md, mc = times[len(times) // 2], comm[len(comm) // 2]
if rank == 0:
    print(f"SUMMARY torch-ddp world {world} median {md:.4f}s {tokens/md:.0f} tok/s allreduce {mc:.5f}s")
dist.destroy_process_group()
