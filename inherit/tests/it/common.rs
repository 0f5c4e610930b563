use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};
use tinyforge_inherit::{Criterion, Depth, InheritConfig, InheritReport, MaskOptions};
use tinyforge_model::{AttentionBias, ModelConfig, ModelOptions};
use tinyforge_shards::{DatasetHeader, DatasetWriter, Dtype, Manifest, ShardOptions};
use tinyforge_train::Model;

pub const EOS: u32 = 256;

/// State of the Union text (train's fixture) as byte-level tokens: vocab 257, EOS 256.
pub fn fixture_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../train/tests/fixtures/sotu.txt");
    std::fs::read_to_string(path).expect("fixture")
}

/// A token dataset of `paragraphs` (each a document), its tokens mapped by `map` (byte ->
/// token id), declared as coming from the tokenizer with `tokenizer_sha256`.
pub fn dataset(dir: &Path, paragraphs: &[&str], tokenizer_sha256: &str, vocab: u32) -> PathBuf {
    let header = DatasetHeader {
        tokenizer_sha256: tokenizer_sha256.to_string(),
        vocab_size: vocab,
        dtype: Dtype::U16,
        eos_id: EOS,
        frame_tokens: 1024,
    };
    let mut w =
        DatasetWriter::new(dir, ShardOptions::from_header(&header), 1 << 20, vec![]).unwrap();
    for (i, para) in paragraphs.iter().enumerate() {
        let tokens: Vec<u32> = para.bytes().map(u32::from).collect();
        w.push_document(i as u64, &tokens).unwrap();
    }
    let shards = w.finish().unwrap();
    Manifest::new(header, None, shards).write(dir).unwrap();
    dir.to_path_buf()
}

/// The fixture as documents of about 1,000 bytes (whole sentences): the first 90% for
/// calibration and training, the last 10% held out.
pub fn split_fixture() -> (Vec<String>, Vec<String>) {
    let text = fixture_text();
    let mut docs = vec![String::new()];
    for sentence in text.split_inclusive(". ") {
        if docs.last().unwrap().len() > 1000 {
            docs.push(String::new());
        }
        docs.last_mut().unwrap().push_str(sentence);
    }
    let held = (docs.len() / 10).max(1);
    let (train, val) = docs.split_at(docs.len() - held);
    (train.to_vec(), val.to_vec())
}

pub fn calib_dataset(dir: &Path) -> PathBuf {
    let (train, _) = split_fixture();
    let refs: Vec<&str> = train.iter().map(String::as_str).collect();
    dataset(dir, &refs, &"0".repeat(64), 257)
}

/// A teacher shape: 96 wide, 4 layers, 6 heads of 16 over 2 key/value heads, FFN 160.
pub fn teacher_config(kv_heads: usize, tied: bool, bias: AttentionBias) -> ModelConfig {
    ModelOptions {
        name: Some("teacher".into()),
        dim: Some(96),
        layers: Some(4),
        heads: Some(6),
        kv_heads: Some(kv_heads),
        head_dim: Some(16),
        ffn_dim: Some(160),
        vocab_size: Some(300),
        max_seq_len: Some(256),
        init_std: Some(0.1),
        tied_embeddings: Some(tied),
        attention_bias: Some(bias),
        ..Default::default()
    }
    .resolve(None)
    .unwrap()
}

/// A random teacher (norms and biases away from their init) saved as a Hugging Face folder.
pub fn random_teacher(dir: &Path, cfg: &ModelConfig, seed: u64) -> PathBuf {
    tch::set_num_threads(1);
    let model = Model::new(cfg, Device::Cpu, Kind::Float, seed).unwrap();
    tch::no_grad(|| {
        for s in model.specs().iter().filter(|s| s.shape.len() == 1) {
            let mut v = model.flat().detach().narrow(0, s.offset, s.numel);
            if s.role.is_bias() {
                let _ = v.uniform_(-0.3, 0.3);
            } else {
                let _ = v.uniform_(0.5, 1.5);
            }
        }
    });
    save_hf(dir, &model);
    dir.to_path_buf()
}

pub fn save_hf(dir: &Path, model: &Model) {
    std::fs::create_dir_all(dir).unwrap();
    tinyforge_train::checkpoint::write_model_files(dir, model, Some(EOS)).unwrap();
}

pub fn student_options(
    dim: usize,
    layers: usize,
    heads: usize,
    kv: usize,
    ffn: usize,
) -> ModelOptions {
    ModelOptions {
        name: Some("student".into()),
        dim: Some(dim),
        layers: Some(layers),
        heads: Some(heads),
        kv_heads: Some(kv),
        ffn_dim: Some(ffn),
        ..Default::default()
    }
}

pub fn config(teacher: &Path, student: ModelOptions, calib: &Path, out: &Path) -> InheritConfig {
    InheritConfig {
        teacher: teacher.to_path_buf(),
        student,
        id_map: None,
        calib: calib.to_path_buf(),
        calib_sequences: 8,
        calib_len: 32,
        batch: 4,
        criterion: Criterion::L2,
        depth: Depth::Block,
        grad_budget_bytes: 1 << 30,
        mask: MaskOptions {
            steps: 30,
            ..MaskOptions::default()
        },
        device: device(),
        seed: 1,
        out: out.to_path_buf(),
        overwrite: false,
    }
}

/// Where inheritance runs in these tests: `TINYFORGE_TEST_DEVICE` (`cuda` on a GPU machine),
/// else the CPU. Results are always compared on the CPU in float32.
pub fn device() -> Device {
    let name = std::env::var("TINYFORGE_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    tinyforge_train::torch_device(name.parse().unwrap())
}

pub fn run(cfg: &InheritConfig) -> InheritReport {
    tinyforge_inherit::inherit(cfg, &tinyforge_task::Silent).unwrap()
}

/// Token windows `[B, T]` from the fixture text (bytes), for comparing logits.
pub fn sample_ids(batch: i64, len: i64) -> Tensor {
    let text = fixture_text();
    let bytes: Vec<i64> = text
        .bytes()
        .take((batch * len) as usize)
        .map(i64::from)
        .collect();
    Tensor::from_slice(&bytes).view([batch, len])
}

pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// The project venv's Python with torch, transformers and safetensors (or a skip that fails
/// under `TINYFORGE_REQUIRE_REFERENCES`).
pub fn venv_python() -> Option<PathBuf> {
    tinyforge_testkit::venv_python("torch, transformers, safetensors")
}
