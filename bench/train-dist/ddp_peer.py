"""PyTorch peer for the data-parallel benchmark: the LLaMA-style decoder of bench/train-gpu/peer_model.py
(pre-RMSNorm, SwiGLU, RoPE, untied head; the model torch_peer.py trains) under torch.nn.parallel.DistributedDataParallel, launched by
torchrun, Gloo on CPU (float32) or NCCL on CUDA (bf16 autocast). The global batch is split over the
ranks as tinyforge splits it. Each step also times a bare all-reduce of a flat fp32 buffer of the
model's size (the collective tinyforge's plain data parallel runs once per step; DDP runs it in
buckets overlapped with backward, so it has no separate time of its own).

  torchrun --nproc-per-node 2 bench/train-dist/ddp_peer.py --device cpu --dim 64 --layers 2 ...

Rank 0 prints a SUMMARY line: median step time, tokens/s of the whole batch, median all-reduce time."""
import argparse, os, sys, time
import torch, torch.nn as nn
import torch.distributed as dist

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train-gpu"))
from peer_model import Model  # noqa: E402  (the same model as bench/train-gpu/torch_peer.py)

p = argparse.ArgumentParser()
p.add_argument("--device", choices=["cuda", "cpu"], default="cpu")
p.add_argument("--dim", type=int, default=64); p.add_argument("--layers", type=int, default=2)
p.add_argument("--heads", type=int, default=4); p.add_argument("--ffn", type=int, default=176)
p.add_argument("--vocab", type=int, default=4096); p.add_argument("--seq", type=int, default=256)
p.add_argument("--batch", type=int, default=16, help="global batch (sequences)")
p.add_argument("--steps", type=int, default=23)
a = p.parse_args()
D, L, H, FF, V, T = a.dim, a.layers, a.heads, a.ffn, a.vocab, a.seq
cuda = a.device == "cuda"
dist.init_process_group("nccl" if cuda else "gloo")
rank, world = dist.get_rank(), dist.get_world_size()
assert a.batch % world == 0, "the batch must split evenly over the ranks"
B = a.batch // world
dev = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
if cuda:
    torch.cuda.set_device(dev)

torch.manual_seed(0)
m = Model(D, L, H, FF, V, T, torch.bfloat16 if cuda else torch.float32).to(dev)
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
