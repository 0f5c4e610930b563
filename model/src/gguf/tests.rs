use serde_json::json;

use super::format::read;
use super::*;
use crate::config::{AttentionBias, ModelOptions};
use crate::tensors::tensor_specs;
use crate::weights::write_safetensors;
use crate::{CONFIG_FILE, MODEL_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE};

#[test]
fn q_and_k_rows_are_interleaved_per_head() {
    // Two heads of four rows, one column: head 0 is rows 0..4, whose rotary pairs in the
    // rotate-half layout are (0, 2) and (1, 3); interleaved they become 0, 2, 1, 3.
    let rows: Vec<f32> = (0..8).map(|r| r as f32).collect();
    assert_eq!(
        permute_rows(&rows, 8, 1, 2),
        [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]
    );
    // Whole rows move: a [4, 2] matrix with one head of four.
    let m = [10.0, 11.0, 20.0, 21.0, 30.0, 31.0, 40.0, 41.0];
    assert_eq!(
        permute_rows(&m, 4, 2, 1),
        [10.0, 11.0, 30.0, 31.0, 20.0, 21.0, 40.0, 41.0]
    );
    // One head of six: pairs (0, 3), (1, 4), (2, 5).
    let rows: Vec<f32> = (0..6).map(|r| r as f32).collect();
    assert_eq!(permute_rows(&rows, 6, 1, 1), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
}

#[test]
fn types_parse_and_print_by_their_command_line_names() {
    for ty in GgufType::ALL {
        assert_eq!(ty.to_string().parse::<GgufType>().unwrap(), ty);
    }
    assert_eq!("Q8_0".parse::<GgufType>().unwrap(), GgufType::Q8_0);
    let err = "q4_k".parse::<GgufType>().unwrap_err().to_string();
    assert!(err.contains("\"q4_k\"") && err.contains("q8_0"), "{err}");
    assert_eq!(serde_json::to_value(GgufType::BF16).unwrap(), json!("bf16"));
}

/// A tensor as `write_safetensors` takes it: name, shape, values.
type Tensor = (String, Vec<usize>, Vec<f32>);

/// A tiny checkpoint folder: 64 wide (Q8_0 rows), FFN 80 (ffn_down's rows are not whole
/// blocks), GQA, q/k/v/o biases, vocab 8 of which the tokenizer defines 6.
fn checkpoint(dir: &Path) -> (ModelConfig, Vec<Tensor>) {
    let cfg = ModelOptions {
        kv_heads: Some(2),
        ffn_dim: Some(80),
        attention_bias: Some(AttentionBias::All),
        ..ModelOptions::load("tiny").unwrap()
    }
    .resolve(Some(8))
    .unwrap();
    let tensors: Vec<Tensor> = tensor_specs(&cfg)
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let values = (0..s.numel())
                .map(|j| ((i * 31 + j * 7) % 97) as f32 / 97.0 - 0.5)
                .collect();
            (s.name.clone(), s.shape.clone(), values)
        })
        .collect();
    write_safetensors(&dir.join(MODEL_FILE), &tensors, false).unwrap();
    fs_err::write(dir.join(CONFIG_FILE), cfg.hf_config(Some(3)).to_string()).unwrap();
    let tokenizer = json!({
        "version": "1.0",
        "added_tokens": [
            {"id": 3, "content": "<|endoftext|>", "special": true},
            {"id": 5, "content": "<think>", "special": false},
        ],
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": super::vocab::QWEN2_REGEX}, "behavior": "Isolated",
             "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false,
             "use_regex": false},
        ]},
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 4},
                  "merges": [["a", "b"], "Ġ a"]},
    });
    fs_err::write(dir.join(TOKENIZER_FILE), tokenizer.to_string()).unwrap();
    let config = json!({"eos_token": "<|endoftext|>", "pad_token": null, "chat_template": "{{ x }}",
        "added_tokens_decoder": {"3": {"content": "<|endoftext|>", "special": true}}});
    fs_err::write(dir.join(TOKENIZER_CONFIG_FILE), config.to_string()).unwrap();
    (cfg, tensors)
}

#[test]
fn exports_every_type_with_llama_names_metadata_and_vocabulary() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, tensors) = checkpoint(tmp.path());
    let original = |name: &str| &tensors.iter().find(|t| t.0 == name).unwrap().2;
    for ty in GgufType::ALL {
        let out = tmp.path().join(format!("model-{ty}.gguf"));
        let report = export_gguf(tmp.path(), &out, ty).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(report.bytes, bytes.len() as u64);
        assert_eq!(report.parameters, cfg.param_count());
        assert_eq!((report.vocab_size, report.vocab_defined), (8, 6));
        let gguf = read::parse(&bytes);
        assert_eq!(report.tensors, gguf.tensors.len());
        assert_eq!(gguf.metadata[0].0, "general.architecture");
        let get = |k: &str| gguf.get(k).unwrap_or_else(|| panic!("no {k}")).clone();
        assert_eq!(get("llama.block_count"), Value::U32(2));
        assert_eq!(get("llama.attention.head_count_kv"), Value::U32(2));
        assert_eq!(get("llama.rope.dimension_count"), Value::U32(16));
        assert_eq!(get("llama.feed_forward_length"), Value::U32(80));
        assert_eq!(get("general.file_type"), Value::U32(ty.file_type()));
        assert!(gguf.get("llama.attention.key_length").is_none());
        let tokens = vec![
            "a",
            "b",
            "ab",
            "<|endoftext|>",
            "Ġ",
            "<think>",
            "[PAD6]",
            "[PAD7]",
        ];
        assert_eq!(
            get("tokenizer.ggml.tokens"),
            Value::Strs(tokens.into_iter().map(String::from).collect())
        );
        assert_eq!(
            get("tokenizer.ggml.token_type"),
            Value::I32s(vec![1, 1, 1, 3, 1, 4, 5, 5])
        );
        assert_eq!(
            get("tokenizer.ggml.merges"),
            Value::Strs(vec!["a b".into(), "Ġ a".into()])
        );
        assert_eq!(get("tokenizer.ggml.pre"), Value::Str("qwen2".into()));
        assert_eq!(get("tokenizer.ggml.eos_token_id"), Value::U32(3));
        assert_eq!(get("tokenizer.ggml.bos_token_id"), Value::U32(3));
        assert!(gguf.get("tokenizer.ggml.padding_token_id").is_none());
        assert_eq!(get("tokenizer.ggml.add_bos_token"), Value::Bool(false));
        assert_eq!(get("tokenizer.chat_template"), Value::Str("{{ x }}".into()));

        // Data starts aligned, tensors at aligned offsets, in llama.cpp's names and dims.
        assert_eq!(gguf.data_start % 32, 0);
        assert!(gguf.tensors.iter().all(|t| t.offset % 32 == 0));
        let q = gguf.tensor("blk.1.attn_q.weight");
        assert_eq!(q.dims, [64, 64]);
        assert_eq!(gguf.tensor("blk.0.attn_k.weight").dims, [64, 32]);
        assert_eq!(gguf.tensor("blk.0.ffn_down.weight").dims, [80, 64]);
        assert_eq!(gguf.tensor("output.weight").dims, [64, 8]);
        assert_eq!(gguf.tensor("blk.0.attn_norm.weight").ty, GgmlType::F32);
        assert_eq!(gguf.tensor("blk.0.attn_output.bias").ty, GgmlType::F32);
        assert_eq!(q.ty, ty.ggml());
        let down = gguf.tensor("blk.0.ffn_down.weight").ty;
        if ty == GgufType::Q8_0 {
            assert_eq!(down, GgmlType::F16);
            assert_eq!(
                report.f16_fallback,
                ["blk.0.ffn_down.weight", "blk.1.ffn_down.weight"]
            );
        } else {
            assert_eq!(down, ty.ggml());
            assert!(report.f16_fallback.is_empty());
        }

        // Values: permuted Q/K (weights and biases), the rest as they were, within the type.
        let tolerance = match ty {
            GgufType::F32 => 0.0,
            GgufType::F16 => 1e-3,
            GgufType::BF16 => 4e-3,
            GgufType::Q8_0 => 0.5 / 127.0 + 1e-3,
        };
        for (gguf_name, hf_name, heads) in [
            (
                "blk.0.attn_q.weight",
                "model.layers.0.self_attn.q_proj.weight",
                Some(4),
            ),
            (
                "blk.0.attn_k.weight",
                "model.layers.0.self_attn.k_proj.weight",
                Some(2),
            ),
            (
                "blk.0.attn_k.bias",
                "model.layers.0.self_attn.k_proj.bias",
                Some(2),
            ),
            (
                "blk.1.attn_v.weight",
                "model.layers.1.self_attn.v_proj.weight",
                None,
            ),
            ("token_embd.weight", "model.embed_tokens.weight", None),
            (
                "blk.1.ffn_down.weight",
                "model.layers.1.mlp.down_proj.weight",
                None,
            ),
        ] {
            let want = original(hf_name);
            let want = match heads {
                Some(h) => {
                    let rows = want.len() / if hf_name.ends_with("bias") { 1 } else { 64 };
                    permute_rows(want, rows, want.len() / rows, h)
                }
                None => want.clone(),
            };
            let got = gguf.values(&bytes, gguf_name);
            let worst = want
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            let tolerance = if gguf_name.ends_with("bias") {
                0.0
            } else {
                tolerance
            };
            assert!(worst <= tolerance, "{ty} {gguf_name}: {worst}");
        }
    }
}

#[test]
fn tied_models_have_no_output_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, _) = checkpoint(tmp.path());
    let tied = ModelConfig {
        tied_embeddings: true,
        ..cfg
    };
    let tensors: Vec<_> = tensor_specs(&tied)
        .iter()
        .map(|s| (s.name.clone(), s.shape.clone(), vec![0.25; s.numel()]))
        .collect();
    write_safetensors(&tmp.path().join(MODEL_FILE), &tensors, false).unwrap();
    fs_err::write(
        tmp.path().join(CONFIG_FILE),
        tied.hf_config(None).to_string(),
    )
    .unwrap();
    let out = tmp.path().join("tied.gguf");
    export_gguf(tmp.path(), &out, GgufType::F16).unwrap();
    let gguf = read::parse(&std::fs::read(&out).unwrap());
    assert!(gguf.tensors.iter().all(|t| t.name != "output.weight"));
    assert!(gguf.tensors.iter().any(|t| t.name == "token_embd.weight"));
}

#[test]
fn bad_tokenizers_are_refused_by_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    checkpoint(tmp.path());
    let out = tmp.path().join("x.gguf");
    let tokenizer = tmp.path().join(TOKENIZER_FILE);
    let good = fs_err::read_to_string(&tokenizer).unwrap();
    let fails = |text: &str| {
        fs_err::write(&tokenizer, text).unwrap();
        export_gguf(tmp.path(), &out, GgufType::F32)
            .unwrap_err()
            .to_string()
    };
    let e = fails("{not json");
    assert!(
        e.contains("tokenizer.json") && e.contains("invalid JSON"),
        "{e}"
    );
    let e = fails(r#"{"model": {"type": "Unigram", "vocab": []}}"#);
    assert!(
        e.contains("tokenizer.json") && e.contains("`model.type` = \"Unigram\""),
        "{e}"
    );
    let e =
        fails(r#"{"pre_tokenizer": {"type": "Metaspace"}, "model": {"type": "BPE", "vocab": {}}}"#);
    assert!(
        e.contains("tokenizer.json") && e.contains("`pre_tokenizer`"),
        "{e}"
    );
    // A vocabulary larger than the model's.
    let e = fails(&good.replace(r#""Ġ":4"#, r#""Ġ":4,"c":8"#));
    assert!(
        e.contains("tokenizer.json") && e.contains("vocab_size is 8"),
        "{e}"
    );
    let e = fails(&good.replace(r#""Ġ a""#, r#""Ġa""#));
    assert!(e.contains("`model.merges[1]` = \"Ġa\""), "{e}");
    // No tokenizer at all.
    fs_err::remove_file(&tokenizer).unwrap();
    let e = export_gguf(tmp.path(), &out, GgufType::F32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("tokenizer.json: missing"), "{e}");
    // A tokenizer_config.json role whose token is not in the vocabulary.
    fs_err::write(&tokenizer, &good).unwrap();
    let config = tmp.path().join(TOKENIZER_CONFIG_FILE);
    fs_err::write(&config, json!({"bos_token": "<s>"}).to_string()).unwrap();
    let e = export_gguf(tmp.path(), &out, GgufType::F32)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tokenizer_config.json") && e.contains("`bos_token` \"<s>\""),
        "{e}"
    );
    assert!(!out.exists());
}

#[test]
fn key_and_value_lengths_are_written_when_heads_are_not_dim_wide() {
    let cfg = ModelOptions {
        head_dim: Some(32),
        ..ModelOptions::load("tiny").unwrap()
    }
    .resolve(Some(8))
    .unwrap();
    let m = model_metadata(&cfg, GgufType::Q8_0).unwrap();
    let get = |k: &str| m.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    assert_eq!(get("llama.attention.key_length"), Some(Value::U32(32)));
    assert_eq!(get("llama.attention.value_length"), Some(Value::U32(32)));
    assert_eq!(get("llama.rope.dimension_count"), Some(Value::U32(32)));
    assert_eq!(get("general.file_type"), Some(Value::U32(7)));
}
