#!/usr/bin/env python3
"""Check GGUF files written by tinyforge (`export_gguf`) against real consumers.

    check_gguf.py CHECKPOINT FILE.gguf [FILE.gguf ...]

For each file:
  1. gguf-py's GGUFReader reads it; the llama.* metadata equal config.json's, every tensor has
     llama.cpp's name, the reversed shape of its safetensors tensor, and the file type's ggml
     type (F32 for 1-D tensors; F16 for Q8_0 matrices whose rows are not 32-value blocks), and
     its bytes equal gguf-py's own encoding of the safetensors tensor (Q and K rows permuted
     as convert_hf_to_gguf.py's LlamaModel does).
  2. transformers loads it (`from_pretrained(dir, gguf_file=name)`) and its logits on a few token
     sequences equal the safetensors checkpoint's within the type's tolerance (TOLERANCE).
  3. transformers' tokenizer built from the GGUF file is compared with tokenizer.json on
     multilingual text (reported; transformers builds llama-architecture byte-level BPE with the
     GPT-2 pre-tokenizer whatever tokenizer.ggml.pre says, so a Qwen-style tokenizer differs on
     digits and some punctuation; --strict-tokenizer makes that a failure).
  4. When llama-cpp-python is installed: llama.cpp's logits and tokenization, the same way.

Prints one table row per file and exits 1 on any mismatch.

    check_gguf.py --make-byte-tokenizer VOCAB_SIZE DIR

writes a byte-level BPE tokenizer.json of at most VOCAB_SIZE ids into DIR (for a checkpoint
folder without a tokenizer, such as eval's tiny-llama fixture).
"""

import argparse
import json
import os
import sys

import numpy as np

# Max |logit difference| per file type, relative to the reference's max |logit| (F32: absolute).
TOLERANCE = {0: ("f32", 1e-5), 1: ("f16", 2e-3), 32: ("bf16", 1e-2), 7: ("q8_0", 3e-2)}
TEXTS = [
    "The quick brown fox jumps over the lazy dog. It was 1999, and 42 people agreed!",
    "机器学习是人工智能的一个分支。我们在2024年训练了一个小模型。",
    "def forward(self, x):\n    return self.proj(x) ** 2  # square it\n\tprint(f'{x!r}')",
    "Grüße aus Zürich — naïve café, 東京タワー, Привет мир, 🙂 emoji",
]
GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30


def field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        return None
    values = [f.parts[i] for i in f.data]
    if f.types and f.types[0].name == "STRING":
        return bytes(values[0]).decode()
    if f.types and f.types[0].name == "ARRAY":
        if f.types[-1].name == "STRING":
            return [bytes(v).decode() for v in values]
        return [v.tolist()[0] for v in values]
    return values[0].tolist()[0]


def hf_names(config):
    """llama.cpp's name -> (Hugging Face name) for every tensor of the config."""
    names = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight"}
    if not config.get("tie_word_embeddings", False):
        names["output.weight"] = "lm_head.weight"
    parts = {
        "attn_norm.weight": "input_layernorm.weight",
        "attn_q.weight": "self_attn.q_proj.weight",
        "attn_k.weight": "self_attn.k_proj.weight",
        "attn_v.weight": "self_attn.v_proj.weight",
        "attn_output.weight": "self_attn.o_proj.weight",
        "ffn_norm.weight": "post_attention_layernorm.weight",
        "ffn_gate.weight": "mlp.gate_proj.weight",
        "ffn_up.weight": "mlp.up_proj.weight",
        "ffn_down.weight": "mlp.down_proj.weight",
    }
    if config.get("attention_bias") or config.get("model_type") == "qwen2":
        for p in "qkv":
            parts[f"attn_{p}.bias"] = f"self_attn.{p}_proj.bias"
    if config.get("attention_bias"):
        parts["attn_output.bias"] = "self_attn.o_proj.bias"
    for i in range(config["num_hidden_layers"]):
        for g, h in parts.items():
            names[f"blk.{i}.{g}"] = f"model.layers.{i}.{h}"
    return names


def permute(weights, n_head, n_head_kv):
    """convert_hf_to_gguf.py's LlamaModel.permute (HF rotate-half rows -> interleaved)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


def check_reader(path, config, errors):
    """Step 1; returns the file type."""
    from gguf import GGMLQuantizationType, GGUFReader
    from gguf.quants import quantize
    from safetensors import safe_open

    reader = GGUFReader(path)
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    want = {
        "general.architecture": "llama",
        "general.alignment": 32,
        "llama.block_count": config["num_hidden_layers"],
        "llama.embedding_length": config["hidden_size"],
        "llama.feed_forward_length": config["intermediate_size"],
        "llama.attention.head_count": heads,
        "llama.attention.head_count_kv": config.get("num_key_value_heads", heads),
        "llama.context_length": config["max_position_embeddings"],
        "llama.rope.dimension_count": head_dim,
        "llama.vocab_size": config["vocab_size"],
        "tokenizer.ggml.model": "gpt2",
    }
    for key, value in want.items():
        got = field(reader, key)
        if got != value:
            errors.append(f"{key} = {got!r}, expected {value!r}")
    for key, value in [
        ("llama.attention.layer_norm_rms_epsilon", config.get("rms_norm_eps", 1e-6)),
        ("llama.rope.freq_base", config.get("rope_theta", 10000.0)),
    ]:
        got = field(reader, key)
        if got is None or abs(got - value) > 1e-6 * max(1.0, abs(value)):
            errors.append(f"{key} = {got!r}, expected {value!r}")
    if len(field(reader, "tokenizer.ggml.tokens") or []) != config["vocab_size"]:
        errors.append("tokenizer.ggml.tokens does not have vocab_size entries")
    file_type = field(reader, "general.file_type")
    if file_type not in TOLERANCE:
        errors.append(f"general.file_type = {file_type!r}")
        return file_type
    matrix_type = {0: GGML_F32, 1: GGML_F16, 32: GGML_BF16, 7: GGML_Q8_0}[file_type]
    names = hf_names(config)
    tensors = {}
    ckpt = config["__dir__"]
    files = ["model.safetensors"]
    if os.path.exists(os.path.join(ckpt, "model.safetensors.index.json")):
        with open(os.path.join(ckpt, "model.safetensors.index.json")) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    for file in files:
        with safe_open(os.path.join(ckpt, file), "pt") as f:
            for k in f.keys():
                tensors[k] = f.get_tensor(k).float().numpy()
    shapes = {k: list(v.shape) for k, v in tensors.items()}
    kv_heads = config.get("num_key_value_heads", heads)
    seen = set()
    for t in reader.tensors:
        seen.add(t.name)
        hf = names.get(t.name)
        if hf is None:
            errors.append(f"unexpected tensor {t.name}")
            continue
        dims = [int(d) for d in t.shape]
        if dims != shapes[hf][::-1]:
            errors.append(f"{t.name}: dims {dims}, expected {shapes[hf][::-1]}")
        ty = int(t.tensor_type)
        if len(dims) == 1:
            expected = GGML_F32
        elif matrix_type == GGML_Q8_0 and dims[0] % 32 != 0:
            expected = GGML_F16
        else:
            expected = matrix_type
        if ty != expected:
            errors.append(f"{t.name}: ggml type {t.tensor_type.name}, expected {expected}")
            continue
        # The bytes: gguf-py's own encoding of the (Q/K-permuted) safetensors tensor.
        values = tensors[hf]
        if ".attn_q." in t.name:
            values = permute(values, heads, heads)
        elif ".attn_k." in t.name:
            values = permute(values, heads, kv_heads)
        reference = quantize(values, GGMLQuantizationType(expected))
        if np.asarray(t.data).tobytes() != np.ascontiguousarray(reference).tobytes():
            errors.append(f"{t.name}: bytes differ from gguf-py's {t.tensor_type.name} encoding")
    missing = set(names) - seen
    if missing:
        errors.append(f"missing tensors: {sorted(missing)[:4]}")
    return file_type


def sequences(ckpt, vocab_size):
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, vocab_size, size=n).tolist() for n in (1, 7, 24)]
    tok = os.path.join(ckpt, "tokenizer.json")
    if os.path.exists(tok):
        from tokenizers import Tokenizer

        t = Tokenizer.from_file(tok)
        seqs += [t.encode(text).ids[:48] for text in TEXTS[:3]]
    return [s for s in seqs if s]


def max_diff(got, want):
    if any(g.shape != w.shape for g, w in zip(got, want)):
        return float("inf")
    return max(float(np.abs(g - w).max()) for g, w in zip(got, want))


def logits_of(model, seqs):
    import torch

    with torch.no_grad():
        return [model(torch.tensor([s])).logits[0].float().numpy() for s in seqs]


def check_tokenizer(ids_of, ckpt):
    """(matching texts, total, first difference) against tokenizer.json."""
    from tokenizers import Tokenizer

    ref = Tokenizer.from_file(os.path.join(ckpt, "tokenizer.json"))
    same, first = 0, None
    for text in TEXTS:
        want, got = ref.encode(text).ids, ids_of(text)
        if want == got:
            same += 1
        elif first is None:
            k = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
            first = f"{text[:24]!r}: token {k}: {want[k:k+3]} vs {got[k:k+3]}"
    return same, len(TEXTS), first


def llama_cpp_logits(path, seqs, n_ctx):
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=n_ctx, logits_all=True, verbose=False, n_threads=2)
    out = []
    for s in seqs:
        llm.reset()
        llm.eval(s)
        out.append(np.array(llm.scores[: len(s)], dtype=np.float32))
    return llm, out


def make_byte_tokenizer(vocab_size, out_dir):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # one id left over, so the GGUF pads it
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TEXTS * 4, trainer)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    print(f"wrote {out_dir}/tokenizer.json ({tok.get_vocab_size()} tokens)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("gguf", nargs="*")
    ap.add_argument("--strict-tokenizer", action="store_true",
                    help="fail when transformers' GGUF tokenizer differs from tokenizer.json")
    ap.add_argument("--make-byte-tokenizer", nargs=2, metavar=("VOCAB_SIZE", "DIR"))
    args = ap.parse_args()
    if args.make_byte_tokenizer:
        make_byte_tokenizer(int(args.make_byte_tokenizer[0]), args.make_byte_tokenizer[1])
        return 0
    if not args.checkpoint or not args.gguf:
        ap.error("need CHECKPOINT and at least one GGUF file")

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    ckpt = args.checkpoint
    with open(os.path.join(ckpt, "config.json")) as f:
        config = json.load(f)
    config["__dir__"] = ckpt
    has_tokenizer = os.path.exists(os.path.join(ckpt, "tokenizer.json"))
    ref = AutoModelForCausalLM.from_pretrained(ckpt, torch_dtype=torch.float32).eval()
    seqs = sequences(ckpt, config["vocab_size"])
    want = logits_of(ref, seqs)
    scale = max(float(np.abs(w).max()) for w in want)
    try:
        import llama_cpp  # noqa: F401

        have_llama_cpp = True
    except ImportError:
        have_llama_cpp = False

    failed = False
    rows = []
    for path in args.gguf:
        errors = []
        file_type = check_reader(path, config, errors)
        name, tolerance = TOLERANCE.get(file_type, ("?", 0.0))
        if name != "f32":
            tolerance *= scale
        row = {"file": os.path.basename(path), "type": name, "tol": tolerance}
        directory, base = os.path.split(os.path.abspath(path))
        try:
            model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=base, torch_dtype=torch.float32)
            row["hf_diff"] = max_diff(logits_of(model.eval(), seqs), want)
            if not row["hf_diff"] <= tolerance:
                errors.append(f"transformers logits differ by {row['hf_diff']:.3g} > {tolerance}")
        except Exception as e:  # a file transformers cannot load is a failure, not a crash
            errors.append(f"transformers: {type(e).__name__}: {e}"[:300])
        if has_tokenizer:
            try:
                tok = AutoTokenizer.from_pretrained(directory, gguf_file=base)
                same, total, first = check_tokenizer(lambda t: tok.encode(t, add_special_tokens=False), ckpt)
                row["hf_tok"] = f"{same}/{total}"
                if first:
                    row["hf_tok_first_diff"] = first
                    if args.strict_tokenizer:
                        errors.append(f"transformers' GGUF tokenizer differs: {first}")
            except Exception as e:  # a consumer limitation to report, not a crash
                row["hf_tok"] = f"error: {type(e).__name__}: {e}"[:160]
                if args.strict_tokenizer:
                    errors.append(row["hf_tok"])
        if have_llama_cpp:
            n_ctx = max(len(s) for s in seqs) + 8
            llm, got = llama_cpp_logits(path, seqs, n_ctx)
            row["llama_diff"] = max_diff(got, want)
            if not row["llama_diff"] <= tolerance:
                errors.append(f"llama.cpp logits differ by {row['llama_diff']:.3g} > {tolerance}")
            if has_tokenizer:
                same, total, first = check_tokenizer(
                    lambda t: llm.tokenize(t.encode(), add_bos=False, special=False), ckpt)
                row["llama_tok"] = f"{same}/{total}"
                if first:
                    row["llama_tok_first_diff"] = first
                    errors.append(f"llama.cpp tokenization differs: {first}")
            del llm
        row["ok"] = not errors
        row["errors"] = errors
        failed |= bool(errors)
        rows.append(row)

    print(f"checkpoint {ckpt}: {len(seqs)} sequences, max |logit| {scale:.3g}, "
          f"llama-cpp-python {'yes' if have_llama_cpp else 'not installed'}")
    cols = ["file", "type", "tol", "hf_diff", "llama_diff", "hf_tok", "llama_tok", "ok"]
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)
    table = [[fmt(r.get(c, "-")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)))
    for r in rows:
        for key in ("hf_tok_first_diff", "llama_tok_first_diff"):
            if key in r:
                print(f"{r['file']}: {key}: {r[key]}")
        for e in r["errors"]:
            print(f"{r['file']}: FAIL: {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
