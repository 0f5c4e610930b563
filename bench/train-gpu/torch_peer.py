"""PyTorch peer for GPU training benchmarks: the same LLaMA-style decoder (pre-RMSNorm, SwiGLU, RoPE,
untied embedding/head, flash attention via scaled_dot_product_attention) trained with bf16 autocast and
fused AdamW, eager or torch.compile. Run it on the same GPU in the same run as tinyforge and compare ratios.

  python3 torch_peer.py --mode eager   --dim 1792 --layers 20 --heads 14 --ffn 4864 --vocab 48000 --seq 2048 --batch 8
  python3 torch_peer.py --mode compile ...

Prints one line per step and a final SUMMARY line (median step time over steps after warm-up,
tokens/s, model TFLOP/s counted as 6*N*tokens + attention, peak memory).

tinyforge copy (bench/train-gpu/): identical on CUDA, with the model in peer_model.py (shared with
bench/train-dist/ddp_peer.py); `--device cpu` runs the same model in
float32 (no autocast: tinyforge's CPU path is fp32 too) with the default (foreach) AdamW, for a
CPU-sized comparison on machines without a GPU."""
import argparse, time
import torch

from peer_model import Model

p = argparse.ArgumentParser()
p.add_argument("--mode", choices=["eager", "compile"], default="eager")
p.add_argument("--dim", type=int, default=1792); p.add_argument("--layers", type=int, default=20)
p.add_argument("--heads", type=int, default=14); p.add_argument("--ffn", type=int, default=4864)
p.add_argument("--vocab", type=int, default=48000); p.add_argument("--seq", type=int, default=2048)
p.add_argument("--batch", type=int, default=8); p.add_argument("--steps", type=int, default=13)
p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
a = p.parse_args()
D, L, H, FF, V, T, B = a.dim, a.layers, a.heads, a.ffn, a.vocab, a.seq, a.batch
dev = a.device
cuda = dev == "cuda"
sync = torch.cuda.synchronize if cuda else (lambda: None)
m = Model(D, L, H, FF, V, T, torch.bfloat16 if cuda else torch.float32).to(dev)
n = sum(q.numel() for q in m.parameters())
opt = torch.optim.AdamW(m.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, fused=cuda)
f = torch.compile(m) if a.mode == "compile" else m
tokens = B * T
flops = 6 * n * tokens + 6 * L * D * T * tokens  # 6*N*tokens + causal attention (fwd+bwd)
print(f"torch {torch.__version__} {a.mode} {dev} threads {torch.get_num_threads()} params {n/1e9:.3f}B shape d{D} L{L} h{H} ffn{FF} V{V} T{T} B{B}")
times = []
for i in range(a.steps):
    x = torch.randint(0, V, (B, T), device=dev); y = torch.randint(0, V, (B, T), device=dev)
    sync(); t0 = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        loss = f(x, y)
    opt.zero_grad(set_to_none=True); loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step()
    l = loss.item(); sync(); dt = time.perf_counter() - t0
    if i >= 3:
        times.append(dt)
    print(f"step {i} loss {l:.3f} {dt:.3f}s {tokens/dt:.0f} tok/s {flops/dt/1e12:.1f} TFLOP/s")
times.sort(); md = times[len(times) // 2]
print(f"SUMMARY torch-{a.mode} median {md:.4f}s {tokens/md:.0f} tok/s {flops/md/1e12:.1f} TFLOP/s "
      f"peak {(torch.cuda.max_memory_allocated() if cuda else 0)/2**30:.1f} GiB")
