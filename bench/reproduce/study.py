#!/usr/bin/env python3
"""The paper's four findings at small scale, every number from a tinyforge run made here.

Driven by bench/reproduce/run.sh (which builds or finds the binary and fetches the corpus):

    bench/reproduce/run.sh [--preset toy|cpu|gpu] [--arms tokenizer,architecture,inheritance,rounds]
                           [--seeds N] [--work DIR] [--ingest-config TOML]

Data: the ingest config's corpus (default configs/ingest-demo.toml), split by document id into
training documents (id % 16 != 0) and held-out documents (id % 16 == 0, never trained on); a
fixed, evenly spread sample of the held-out documents (`heldout.jsonl`, the preset's byte budget)
is what every arm is measured on, as **bits per byte** (`tinyforge eval --perplexity-text`), which
compares models whatever their vocabularies.

Arms (each at every seed; mean ± standard deviation over seeds):
  tokenizer     compact vocabularies of several sizes pruned from the base (Qwen3), at one total
                parameter budget with depth adjusted to hold it (width fixed); coverage beside.
  architecture  depth / width / FFN-ratio shapes at one budget; Spearman correlation of bits per
                byte with depth, width and ratio (the paper: deeper is better, so negative).
  inheritance   a larger teacher trained here; students of one shape by random init and by
                `tinyforge inherit` with l1, l2, taylor, activation and mask, trained the same steps.
  rounds        one round; two rounds (r = 0.5) by softmax(loss); two rounds by uniform draw (same
                compute: the control the paper lacks); three rounds; and the forgetting curve (the
                loss of round 1's first batches under each checkpoint of the two-round run).

Every run lives under WORK/runs/<arm>/<variant>/seed-<s>/ with its train report, eval report and
config; a finished run (its `study.json`) is reused, so a rerun skips it and a killed study
resumes (a killed train run resumes from its last checkpoint). The report, WORK/report.md and
WORK/report.json, names the run folder behind every number; pictures are WORK/*.svg.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

PAPER = {
    "tokenizer": "compact vocabulary beats the full one at a fixed budget (+1.70 avg; 48k of ~100k tokens)",
    "architecture": "deeper and narrower is better at a fixed budget (Spearman 0.528 of depth with accuracy)",
    "inheritance": "inherited beats random; random < l1 < l2 < taylor < mask (+3.26 avg)",
    "rounds": "two rounds at r = 0.5 beat one (+1.49 avg); a third adds nothing",
}

# Presets: steps, shapes and budgets. `toy` exists for the test (every arm, one seed, seconds).
PRESETS = {
    "toy": dict(
        seeds=1, steps=12, batch=8, seq_len=64, width=32, vocab=2000, vocab_sizes=[500, 1000, 2000],
        budget=180_000, heldout_bytes=6_000, teacher=dict(dim=64, layers=4, heads=4, kv_heads=2, ffn_dim=176),
        teacher_steps=16, student=dict(dim=32, layers=2, heads=2, kv_heads=1, ffn_dim=96),
        mask_steps=4, calib=8, device="cpu", tasks=None, limit=None, head_dim=8,
        architectures=[(1, 2.0), (2, 2.0), (2, 4.0), (3, 2.67), (4, 2.0), (4, 2.67), (6, 2.67), (8, 2.0)],
    ),
    "cpu": dict(
        seeds=3, steps=100, batch=16, seq_len=128, width=64, vocab=8000, vocab_sizes=[2000, 4000, 8000],
        budget=1_600_000, heldout_bytes=60_000, teacher=dict(dim=192, layers=6, heads=6, kv_heads=2, ffn_dim=512),
        teacher_steps=400, student=dict(dim=96, layers=3, heads=3, kv_heads=1, ffn_dim=256),
        mask_steps=100, calib=64, device="cpu", tasks=None, limit=None, head_dim=16,
        architectures=[(1, 2.67), (2, 2.67), (3, 2.67), (4, 2.0), (4, 4.0), (6, 2.67), (8, 2.67), (12, 2.0)],
    ),
    "gpu": dict(
        seeds=3, steps=2000, batch=64, seq_len=512, width=384, vocab=16000, vocab_sizes=[8000, 16000, 32000, 64000],
        budget=60_000_000, heldout_bytes=2_000_000, teacher=dict(dim=1024, layers=16, heads=16, kv_heads=4, ffn_dim=2816),
        teacher_steps=8000, student=dict(dim=512, layers=8, heads=8, kv_heads=2, ffn_dim=1408),
        mask_steps=400, calib=256, device="cuda", tasks="arc_easy,hellaswag,c3", limit=None, head_dim=64,
        architectures=[(4, 2.67), (6, 2.67), (8, 2.67), (12, 2.0), (12, 4.0), (16, 2.67), (24, 2.67), (32, 2.0)],
    ),
}


class Study:
    def __init__(self, args):
        self.args = args
        self.p = dict(PRESETS[args.preset])
        if args.seeds:
            self.p["seeds"] = args.seeds
        self.work = Path(args.work)
        self.bin = args.bin
        self.root = Path(__file__).resolve().parents[2]
        self.log = self.work / "study.log"
        self.arm = None
        self.arm_seeds = {k: int(v) for k, v in (kv.split("=") for kv in args.arm_seeds.split(",") if kv)}
        self.work.mkdir(parents=True, exist_ok=True)

    # ---- running tinyforge ----------------------------------------------------------------
    def tf(self, *argv, out=None):
        """Run `tinyforge ARGV`, which must succeed; its stdout parsed as JSON when it is JSON."""
        cmd = [self.bin, "--progress", "none", *map(str, argv)]
        t0 = time.time()
        with open(self.log, "a") as log:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        if proc.returncode != 0:
            sys.exit(f"study: `{' '.join(cmd)}` failed (exit {proc.returncode}); see {self.log}")
        say(f"  {argv[0]} {argv[1] if len(argv) > 1 else ''}: {time.time() - t0:.1f} s")
        try:
            value = json.loads(proc.stdout)
        except json.JSONDecodeError:
            value = None
        if out is not None and value is not None:
            write_json(out, value)
        return value

    # ---- data -----------------------------------------------------------------------------
    def prepare(self):
        w = self.work
        cfg = self.args.ingest_config
        if not (w / "docs/_manifest.json").exists():
            self.tf("ingest", "--config", cfg, "--where", "id % 16 <> 0", "--out", w / "docs")
        if not (w / "heldout-docs/_manifest.json").exists():
            self.tf("ingest", "--config", cfg, "--where", "id % 16 = 0", "--out", w / "heldout-docs")
        if not (w / "heldout.jsonl").exists():
            write_heldout_sample(w / "heldout-docs", w / "heldout.jsonl", self.p["heldout_bytes"])
        if not (w / "counts.parquet").exists():
            self.tf("vocab", "count", w / "docs", "--out", w / "counts.parquet")

    def vocab(self, size):
        """A compact tokenizer of `size` tokens and the training documents in it."""
        d = self.work / f"vocab-{size}"
        if not (d / "report.json").exists():
            self.tf("vocab", "prune", "--counts", self.work / "counts.parquet", "--size", size, "--out", d)
        tokens = self.work / f"tokens-{size}"
        if not (tokens / "manifest.json").exists():
            self.tf("tokenize", self.work / "docs", "--tokenizer", d / "tokenizer.json", "--out", tokens)
        return d, tokens, read_json(d / "report.json")

    # ---- one run --------------------------------------------------------------------------
    def run(self, arm, variant, seed, *, model, tokens, tokenizer, rounds=None, steps=None,
            init_from=None):
        """Train one variant at one seed and measure it; cached by its study.json."""
        d = self.work / "runs" / arm / variant / f"seed-{seed}"
        done = d / "study.json"
        if done.exists():
            return read_json(done)
        d.mkdir(parents=True, exist_ok=True)
        p = self.p
        steps = steps or p["steps"]
        # Round 1 is a seeded sample of `steps` batches; later rounds are fractions of it.
        rounds = [dict(r) for r in (rounds or [{}])]
        rounds[0]["fraction"] = fraction_for(tokens, steps, p["seq_len"], p["batch"])
        lines = [
            f"model = {json.dumps(str(model))}",
            f"data = {json.dumps(str(tokens))}",
            f"out = {json.dumps(str(d / 'train'))}",
            f"seq_len = {p['seq_len']}",
            f"batch_size = {p['batch']}",
            f"micro_batch = {p['batch']}",
            "lr = 3e-3",
            f"ref_batch_tokens = {p['batch'] * p['seq_len']}",
            f"seed = {seed}",
            f"device = {json.dumps(p['device'])}",
            "val_units = 32",
            "eval_every = 0",
            f"checkpoint_every = {max(1, steps // 4)}",
            "keep_checkpoints = 100",
            "rounds = [" + ", ".join(toml_inline(r) for r in rounds) + "]",
        ]
        config = d / "train.toml"
        config.write_text("\n".join(lines) + "\n")
        argv = ["train", config]
        if init_from:
            argv += ["--init-from", init_from]
        train = self.tf(*argv, out=d / "train-report.json")
        eval_args = ["eval", "--checkpoint", d / "train", "--tokenizer", tokenizer,
                     "--device", p["device"], "--perplexity-text", self.work / "heldout.jsonl",
                     "--out", d / "eval"]
        eval_args += ["--tasks", p["tasks"] or "none"]
        if p["tasks"] and p["limit"]:
            eval_args += ["--limit", p["limit"]]
        report = self.tf(*eval_args)
        result = {
            "arm": arm, "variant": variant, "seed": seed, "run": str(d),
            "params": train["params"], "steps": train["steps"], "tokens": train["tokens"],
            "train_loss": train["last_loss"], "val_loss": train["last_val_loss"],
            "bits_per_byte": report["perplexity"]["bits_per_byte"],
            "unigram_bits_per_byte": report["perplexity"]["unigram"]["bits_per_byte"],
            "tasks": {t["task"]: t["acc_norm"] for t in report["tasks"]},
        }
        write_json(done, result)
        return result

    def shape(self, name, dim, layers, ffn_dim, heads=None, kv_heads=None):
        path = self.work / "models" / f"{name}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        heads = heads or max(1, dim // self.p["head_dim"])
        text = (f'name = "{name}"\ndim = {dim}\nlayers = {layers}\nheads = {heads}\n'
                f"kv_heads = {kv_heads or heads}\nffn_dim = {ffn_dim}\nmax_seq_len = 512\n")
        path.write_text(text)
        return path

    # ---- arms -----------------------------------------------------------------------------
    def arm_rounds(self):
        p = self.p
        _, tokens, _ = self.vocab(p["vocab"])
        tok = self.work / f"vocab-{p['vocab']}/tokenizer.json"
        model = self.shape("rounds", p["width"], 2, ffn(p["width"], 2.67))
        n = p["steps"]
        soft = {"fraction": 0.5, "select": "softmax-loss", "temperature": 1.0}
        variants = {
            # The same optimizer steps as the two-round arms: 1.5 N batches, each seen once.
            "one-round": ([{}], n + n // 2),
            "two-rounds-softmax": ([{}, soft], n),
            "two-rounds-uniform": ([{}, {"fraction": 0.5, "select": "uniform"}], n),
            # 1.75 N steps: the third round re-draws half of the second's batches.
            "three-rounds-softmax": ([{}, soft, soft], n),
        }
        rows = []
        for name, (rounds, steps) in variants.items():
            runs = [self.run("rounds", name, seed, model=model, tokens=tokens, tokenizer=tok,
                             rounds=rounds, steps=steps)
                    for seed in self.seeds()]
            rows.append(summarize_runs(name, runs))
        forgetting = self.forgetting(tokens)
        # How far softmax(loss) moved the draw from a uniform one with the same keyed noise.
        overlap = []
        for seed in self.seeds():
            a, b = (round_units(self.work / "runs/rounds" / v / f"seed-{seed}/train/plans/round-2.json")
                    for v in ("two-rounds-softmax", "two-rounds-uniform"))
            overlap.append(len(a & b) / max(1, len(a)))
        return {"rows": rows, "forgetting": forgetting, "softmax_uniform_overlap": mean_std(overlap)}

    def forgetting(self, tokens):
        """Mean loss of round 1's first batches under every checkpoint of the two-round run."""
        seed = self.seeds()[0]
        run = self.work / "runs/rounds/two-rounds-softmax" / f"seed-{seed}" / "train"
        out = run.parent / "forgetting.json"
        if out.exists():
            return read_json(out)
        batches = max(1, self.p["steps"] // 8)
        points = []
        for ckpt in sorted((run / "checkpoints").iterdir()):
            table = run.parent / "forgetting" / f"{ckpt.name}.parquet"
            table.parent.mkdir(exist_ok=True)
            s = self.tf("score", "--checkpoint", ckpt, "--data", tokens, "--plan", run / "plans/round-1.json",
                        "--limit-batches", batches, "--device", self.p["device"], "--out", table)
            points.append({"checkpoint": str(ckpt), "step": int(ckpt.name.split("-")[1]),
                           "mean_loss": s["mean_loss"]})
        result = {"run": str(run), "first_batches": batches, "points": points}
        write_json(out, result)
        return result

    def arm_architecture(self):
        p = self.p
        _, tokens, _ = self.vocab(p["vocab"])
        tok = self.work / f"vocab-{p['vocab']}/tokenizer.json"
        rows = []
        for layers, ratio in p["architectures"]:
            dim = width_for_budget(p["budget"], p["vocab"], layers, ratio, p["head_dim"])
            name = f"L{layers}-d{dim}-r{ratio:g}"
            model = self.shape(name, dim, layers, ffn(dim, ratio))
            runs = [self.run("architecture", name, seed, model=model, tokens=tokens, tokenizer=tok)
                    for seed in self.seeds()]
            row = summarize_runs(name, runs)
            row.update(layers=layers, width=dim, ratio=ratio)
            rows.append(row)
        corr = {k: spearman([r[k] for r in rows], [r["bits_per_byte"]["mean"] for r in rows])
                for k in ("layers", "width", "ratio", "params")}
        return {"rows": rows, "spearman_with_bits_per_byte": corr}

    def arm_tokenizer(self):
        p = self.p
        rows = []
        base = read_json(self.vocab(p["vocab_sizes"][0])[0] / "report.json")
        for size in [*p["vocab_sizes"], None]:
            if size is None:
                # The base tokenizer itself, unpruned.
                size = base["base_vocab_size"]
                vdir = Path(base["base_tokenizer"]).parent
                tokens = self.work / "tokens-base"
                coverage = 1.0
            else:
                vdir, tokens, report = self.vocab(size)
                coverage = report["coverage"]
            layers = layers_for_budget(p["budget"], size, p["width"], 2.67)
            name = f"V{size}-L{layers}" if layers >= 1 else f"V{size}"
            if layers < 1:
                need = params(size, p["width"], 0, 0)
                rows.append({"variant": name, "vocab": size, "coverage": coverage,
                             "skipped": f"its embeddings and head alone are {need:,} parameters, over the budget"})
                continue
            if not (tokens / "manifest.json").exists():
                self.tf("tokenize", self.work / "docs", "--tokenizer", vdir / "tokenizer.json", "--out", tokens)
            model = self.shape(name, p["width"], layers, ffn(p["width"], 2.67))
            runs = [self.run("tokenizer", name, seed, model=model, tokens=tokens, tokenizer=vdir / "tokenizer.json")
                    for seed in self.seeds()]
            row = summarize_runs(name, runs)
            row.update(vocab=size, layers=layers, coverage=coverage)
            rows.append(row)
        return {"rows": rows, "base_vocab": base["base_vocab_size"], "budget": p["budget"], "width": p["width"]}

    def arm_inheritance(self):
        p = self.p
        _, tokens, _ = self.vocab(p["vocab"])
        tok = self.work / f"vocab-{p['vocab']}/tokenizer.json"
        t = p["teacher"]
        teacher_model = self.shape("teacher", t["dim"], t["layers"], t["ffn_dim"], t["heads"], t["kv_heads"])
        teacher = self.run("inheritance", "teacher", 0, model=teacher_model, tokens=tokens, tokenizer=tok,
                           steps=p["teacher_steps"])
        teacher_ckpt = Path(teacher["run"]) / "train"
        s = p["student"]
        student_model = self.shape("student", s["dim"], s["layers"], s["ffn_dim"], s["heads"], s["kv_heads"])
        rows = []
        for criterion in ["random", "l1", "l2", "taylor", "activation", "mask"]:
            runs = []
            for seed in self.seeds():
                init = None
                if criterion != "random":
                    init = self.work / "students" / f"{criterion}-seed-{seed}"
                    if not (init / "config.json").exists():
                        self.tf("inherit", "--teacher", newest_checkpoint(teacher_ckpt), "--student", student_model,
                                "--calib", tokens, "--criterion", criterion, "--calib-sequences", p["calib"],
                                "--mask-steps", p["mask_steps"], "--seed", seed, "--out", init, "--overwrite")
                runs.append(self.run("inheritance", criterion, seed, model=student_model, tokens=tokens,
                                     tokenizer=tok, init_from=init))
            rows.append(summarize_runs(criterion, runs))
        return {"rows": rows, "teacher": teacher}

    def seeds(self):
        return list(range(1, self.arm_seeds.get(self.arm, self.p["seeds"]) + 1))


# ---- shapes and budgets -------------------------------------------------------------------
def ffn(dim, ratio):
    return max(16, int(math.ceil(dim * ratio / 16)) * 16)


def params(vocab, dim, layers, ffn_dim):
    """Untied LLaMA: embeddings + head, per layer 4 d² attention + 3 d·F FFN + 2 norms, final norm."""
    return 2 * vocab * dim + layers * (4 * dim * dim + 3 * dim * ffn_dim + 2 * dim) + dim


def width_for_budget(budget, vocab, layers, ratio, step):
    """The widest multiple of `step` (the head width) whose model fits the budget."""
    dim = step
    while params(vocab, dim + step, layers, ffn(dim + step, ratio)) <= budget:
        dim += step
    return dim


def layers_for_budget(budget, vocab, dim, ratio):
    per_layer = params(vocab, dim, 1, ffn(dim, ratio)) - params(vocab, dim, 0, 0)
    return (budget - params(vocab, dim, 0, 0)) // per_layer


# ---- statistics ---------------------------------------------------------------------------
def mean_std(xs):
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return {"mean": m, "std": s, "n": len(xs), "values": xs}


def summarize_runs(variant, runs):
    return {
        "variant": variant,
        "bits_per_byte": mean_std([r["bits_per_byte"] for r in runs]),
        "val_loss": mean_std([r["val_loss"] for r in runs]),
        # The unigram fit on the scored tokens themselves: the same for every seed of a tokenizer.
        "unigram_bits_per_byte": runs[0]["unigram_bits_per_byte"],
        "params": runs[0]["params"],
        "steps": runs[0]["steps"],
        "tasks": {t: mean_std([r["tasks"][t] for r in runs]) for t in runs[0]["tasks"]},
        "runs": [r["run"] for r in runs],
    }


def ranks(xs):
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(xs, ys):
    """Spearman's rho (Pearson of the ranks, ties averaged); None when either side is constant."""
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    if sx == 0 or sy == 0:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(rx, ry)) / (sx * sy)


# ---- files --------------------------------------------------------------------------------
def write_heldout_sample(docs, out, budget):
    """An evenly spread sample of the held-out documents, about `budget` bytes, as JSONL."""
    import pyarrow.parquet as pq

    texts = []
    for part in sorted(Path(docs).glob("*.parquet")):
        texts += pq.read_table(part, columns=["text"]).column("text").to_pylist()
    total = sum(len(t.encode()) for t in texts)
    stride = max(1, total // max(1, budget))
    picked, size = [], 0
    # Take every document whose running byte offset crosses a multiple of the stride.
    offset = 0
    for t in texts:
        n = len(t.encode())
        if offset // stride != (offset + n) // stride or n >= stride:
            picked.append(t)
            size += n
        offset += n
        if size >= budget:
            break
    with open(out, "w") as f:
        for t in picked:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")


def fraction_for(tokens, steps, seq_len, batch):
    """The round-1 fraction that gives exactly `steps` batches of the dataset at `tokens` (the
    trainer holds out min(32, units / 10) units first)."""
    total = read_json(Path(tokens) / "manifest.json")["total_tokens"]
    units = (total - 1) // seq_len
    drawable = units - min(32, units // 10)
    batches = drawable // batch
    if steps > batches:
        sys.exit(f"study: {tokens} holds {batches} batches of {batch} x {seq_len}; {steps} asked")
    return min(1.0, (steps + 0.5) / batches)


def round_units(plan):
    """The unit ids a list plan (a selected round) trains on."""
    import numpy as np

    header = read_json(plan)
    width = header["order"]["id_width"]
    ids = np.fromfile(Path(plan).parent / header["order"]["file"], dtype="<u4" if width == 4 else "<u8")
    return set(ids.tolist())


def newest_checkpoint(run):
    return sorted((Path(run) / "checkpoints").iterdir())[-1]


def toml_inline(d):
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in d.items()) + " }"


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, value):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)


def say(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- the report ---------------------------------------------------------------------------
def fmt(ms, places=4):
    return f"{ms['mean']:.{places}f} ± {ms['std']:.{places}f}" if ms["n"] > 1 else f"{ms['mean']:.{places}f}"


def bar_svg(title, rows, path):
    """Bits per byte per variant with ± one standard deviation."""
    ok = [r for r in rows if "bits_per_byte" in r]
    w, h, left, top, bottom = 760, 60 + 34 * len(ok), 230, 40, 30
    values = [r["bits_per_byte"]["mean"] + r["bits_per_byte"]["std"] for r in ok]
    values += [r["unigram_bits_per_byte"] for r in ok]
    lo = min(min(r["bits_per_byte"]["mean"] - r["bits_per_byte"]["std"], r["unigram_bits_per_byte"]) for r in ok)
    lo, hi = lo - 0.05 * (max(values) - lo + 1e-9), max(values) * 1.0 + 1e-9
    x = lambda v: left + (w - left - 20) * (v - lo) / (hi - lo)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="13">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="15">{esc(title)}</text>']
    for i, r in enumerate(ok):
        y = top + 34 * i
        m, sd = r["bits_per_byte"]["mean"], r["bits_per_byte"]["std"]
        out.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{esc(r["variant"])}</text>')
        out.append(f'<rect x="{left}" y="{y + 4}" width="{max(1, x(m) - left):.1f}" height="20" fill="#4878d0"/>')
        out.append(f'<line x1="{x(m - sd):.1f}" x2="{x(m + sd):.1f}" y1="{y + 14}" y2="{y + 14}" stroke="black" stroke-width="2"/>')
        out.append(f'<text x="{x(m + sd) + 6:.1f}" y="{y + 18}">{m:.4f}</text>')
        u = x(r["unigram_bits_per_byte"])
        out.append(f'<line x1="{u:.1f}" x2="{u:.1f}" y1="{y + 1}" y2="{y + 27}" stroke="#d65f5f" stroke-width="2" stroke-dasharray="4,2"/>')
    out.append(f'<text x="{left}" y="{h - 8}" fill="#555">bits per byte on held-out documents (lower is better; axis from {lo:.3f}); dashed red: unigram baseline</text>')
    out.append("</svg>")
    Path(path).write_text("\n".join(out) + "\n")


def line_svg(title, points, path, xlabel, ylabel):
    w, h, left, top, bottom = 760, 360, 70, 40, 50
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) + 1e-9
    y0, y1 = min(ys), max(ys) + 1e-9
    X = lambda v: left + (w - left - 20) * (v - x0) / (x1 - x0)
    Y = lambda v: h - bottom - (h - top - bottom) * (v - y0) / (y1 - y0)
    path_d = " ".join(f"{'M' if i == 0 else 'L'}{X(a):.1f},{Y(b):.1f}" for i, (a, b) in enumerate(points))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="13">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="15">{esc(title)}</text>',
           f'<line x1="{left}" x2="{w - 20}" y1="{h - bottom}" y2="{h - bottom}" stroke="black"/>',
           f'<line x1="{left}" x2="{left}" y1="{top}" y2="{h - bottom}" stroke="black"/>',
           f'<path d="{path_d}" fill="none" stroke="#d65f5f" stroke-width="2"/>']
    for a, b in points:
        out.append(f'<circle cx="{X(a):.1f}" cy="{Y(b):.1f}" r="3" fill="#d65f5f"/>')
        out.append(f'<text x="{X(a):.1f}" y="{h - bottom + 16}" text-anchor="middle">{a:g}</text>')
    out.append(f'<text x="{left - 6}" y="{Y(y1):.1f}" text-anchor="end">{y1:.3f}</text>')
    out.append(f'<text x="{left - 6}" y="{Y(y0):.1f}" text-anchor="end">{y0:.3f}</text>')
    out.append(f'<text x="{w / 2}" y="{h - 10}" text-anchor="middle">{esc(xlabel)}</text>')
    out.append(f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">{esc(ylabel)}</text>')
    out.append("</svg>")
    Path(path).write_text("\n".join(out) + "\n")


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def report(study, arms, seconds):
    work = study.work
    commit = subprocess.run(["git", "-C", str(study.root), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    machine = f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}, {platform.system()}"
    meta = {"commit": commit, "machine": machine, "preset": study.args.preset, "seeds": study.p["seeds"],
            "settings": study.p, "seconds": seconds, "held_out": str(work / "heldout.jsonl")}
    seeds = ", ".join(f"{name} {arm['seeds']}" for name, arm in arms.items())
    lines = [f"# The paper's four findings at small scale ({study.args.preset} preset)", "",
             f"Commit `{commit}`, {machine}; seeds per arm: {seeds}; this invocation {seconds / 60:.1f} min. "
             "Every number is bits per byte on the same held-out documents (never trained on), "
             "mean ± std over seeds; the run folder behind each is in report.json. "
             "Beside each, the unigram baseline: the frequencies of the scored tokens, fit on those "
             "very tokens (so optimistic); a model above it has learned less than which tokens are common.", ""]
    for name, arm in arms.items():
        lines += [f"## {name}", "", f"Paper: {PAPER[name]}.", ""]
        rows = arm["rows"]
        extra = {"tokenizer": ["vocab", "layers", "coverage"], "architecture": ["layers", "width", "ratio"]}.get(name, [])
        head = ["variant", *extra, "params", "steps", "bits/byte", "unigram bits/byte", "val loss"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            if "skipped" in r:
                cells = [r["variant"]] + [f"{r[k]:.3f}" if isinstance(r.get(k), float) else str(r.get(k, "-"))
                                          for k in extra]
                lines.append("| " + " | ".join(cells) + f" | - | - | not run: {r['skipped']} | - | - |")
                continue
            cells = [r["variant"]] + [f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in extra]
            cells += [f"{r['params']:,}", str(r["steps"]), fmt(r["bits_per_byte"]),
                      f"{r['unigram_bits_per_byte']:.4f}", fmt(r["val_loss"], 3)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        bar_svg(f"{name}: held-out bits per byte", rows, work / f"{name}.svg")
        lines += [f"![{name}]({name}.svg)", ""]
        if name == "architecture":
            corr = arm["spearman_with_bits_per_byte"]
            lines.append("Spearman correlation with bits per byte (negative: more of it is better): " +
                         ", ".join(f"{k} {v:+.3f}" if v is not None else f"{k} n/a" for k, v in corr.items()) +
                         ". The paper's 0.528 is depth against accuracy, so its sign here is negative.")
            lines.append("")
        if name == "inheritance":
            t = arm["teacher"]
            lines.append(f"Teacher: {t['params']:,} parameters, {t['steps']} steps, {t['bits_per_byte']:.4f} bits/byte ({t['run']}).")
            lines.append("")
        if name == "rounds":
            o = arm["softmax_uniform_overlap"]
            lines += [f"Round 2's units under softmax(loss) and under the uniform draw overlap by "
                      f"{100 * o['mean']:.0f}% (both draws use the same keyed Gumbel noise, so what differs "
                      "between them is due to the batch losses alone).", ""]
        if name == "rounds" and arm["forgetting"]["points"]:
            f = arm["forgetting"]
            pts = [(p["step"], p["mean_loss"]) for p in f["points"]]
            line_svg(f"forgetting: loss of round 1's first {f['first_batches']} batches", pts,
                     work / "forgetting.svg", "checkpoint step", "mean loss (nats/token)")
            lines += ["Forgetting: the loss of round 1's first batches under each checkpoint of the "
                      f"two-round run ({f['run']}): " + ", ".join(f"step {a}: {b:.3f}" for a, b in pts) + ".",
                      "", "![forgetting](forgetting.svg)", ""]
    write_json(work / "report.json", {**meta, "arms": arms})
    (work / "report.md").write_text("\n".join(lines) + "\n")
    return work / "report.md"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="a tinyforge built with --features train")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--arms", default="tokenizer,architecture,inheritance,rounds")
    ap.add_argument("--seeds", type=int, help="seeds per variant (default: the preset's)")
    ap.add_argument("--arm-seeds", default="", help="per-arm seeds, e.g. inheritance=1,rounds=5")
    ap.add_argument("--work", help="study folder (default: target/study-PRESET)")
    ap.add_argument("--ingest-config", default="configs/ingest-demo.toml")
    args = ap.parse_args()
    args.work = args.work or f"target/study-{args.preset}"
    study = Study(args)
    t0 = time.time()
    say(f"study: preset {args.preset}, work {study.work}")
    study.prepare()
    arms = {}
    for name in args.arms.split(","):
        if name not in PAPER:
            sys.exit(f"study: unknown arm {name!r}; arms: {', '.join(PAPER)}")
        say(f"study: arm {name}")
        study.arm = name
        arms[name] = getattr(study, f"arm_{name}")()
        arms[name]["seeds"] = len(study.seeds())
    path = report(study, arms, time.time() - t0)
    say(f"study: report in {path}")
    print(json.dumps({"report": str(path), "json": str(study.work / "report.json"),
                      "arms": list(arms), "seconds": time.time() - t0}))


if __name__ == "__main__":
    main()
