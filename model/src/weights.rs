//! safetensors I/O: a checkpoint folder's weights (one `model.safetensors`, or the shards a
//! `model.safetensors.index.json` lists), memory-mapped and converted to f32 one tensor at a
//! time, so reading a model never holds two copies of it; and a writer for f32 tensors.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::tensors::{TensorSpec, tensor_specs};
use crate::{INDEX_FILE, MODEL_FILE};

/// Tensors by name from the safetensors files of one checkpoint folder.
pub struct Weights {
    dir: PathBuf,
    maps: BTreeMap<String, memmap2::Mmap>,
    /// Tensor name -> (file, shape, dtype).
    index: HashMap<String, (String, Vec<usize>, Dtype)>,
}

impl Weights {
    /// Open `dir/model.safetensors.index.json` (sharded) or `dir/model.safetensors`.
    pub fn open(dir: &Path) -> Result<Self> {
        let index_path = dir.join(INDEX_FILE);
        let files: Vec<String> = if index_path.exists() {
            let json: serde_json::Value = serde_json::from_slice(&fs_err::read(&index_path)?)
                .map_err(|source| Error::Json {
                    path: index_path.clone(),
                    source,
                })?;
            let map = json["weight_map"]
                .as_object()
                .ok_or_else(|| Error::checkpoint(&index_path, "has no `weight_map` object"))?;
            let mut files: Vec<String> = map
                .values()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            files.sort();
            files.dedup();
            files
        } else if dir.join(MODEL_FILE).exists() {
            vec![MODEL_FILE.to_string()]
        } else {
            return Err(Error::checkpoint(
                dir,
                format!("no {MODEL_FILE} (nor {INDEX_FILE})"),
            ));
        };
        let mut maps = BTreeMap::new();
        let mut index = HashMap::new();
        for file in files {
            let path = dir.join(&file);
            let handle = fs_err::File::open(&path)?;
            // SAFETY: the file is opened read-only and only read through this map; a checkpoint
            // is not modified while it is read (writers write under temporary names).
            #[expect(
                unsafe_code,
                reason = "mmap: the file is our checkpoint, opened read-only and not changed while mapped"
            )]
            let map = unsafe { memmap2::Mmap::map(handle.file()) }
                .map_err(|e| Error::checkpoint(&path, format!("cannot map: {e}")))?;
            let tensors = SafeTensors::deserialize(&map)
                .map_err(|e| Error::checkpoint(&path, format!("not a safetensors file: {e}")))?;
            for (name, view) in tensors.tensors() {
                index.insert(name, (file.clone(), view.shape().to_vec(), view.dtype()));
            }
            maps.insert(file, map);
        }
        Ok(Weights {
            dir: dir.to_path_buf(),
            maps,
            index,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.index.get(name).map(|(_, s, _)| s.as_slice())
    }

    /// The tensor `name` as f32 (from F32, BF16 or F16), checked against `shape`.
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (file, stored, dtype) = self
            .index
            .get(name)
            .ok_or_else(|| Error::checkpoint(&self.dir, format!("missing tensor {name}")))?;
        let path = self.dir.join(file);
        if stored != shape {
            return Err(Error::checkpoint(
                &path,
                format!("tensor {name} has shape {stored:?}, the config implies {shape:?}"),
            ));
        }
        let tensors = SafeTensors::deserialize(&self.maps[file])
            .map_err(|e| Error::checkpoint(&path, e.to_string()))?;
        let view = tensors
            .tensor(name)
            .map_err(|e| Error::checkpoint(&path, format!("{name}: {e}")))?;
        floats_of(*dtype, view.data()).ok_or_else(|| {
            Error::checkpoint(
                &path,
                format!("tensor {name} has dtype {dtype:?}; expected F32, BF16 or F16"),
            )
        })
    }

    /// Check that the files hold exactly the tensors of `cfg` with their shapes: every one
    /// present, nothing else (an unknown tensor means an architecture this decoder would
    /// silently get wrong). Tolerated extras: a tied model's saved `lm_head.weight` and the
    /// `rotary_emb.inv_freq` buffers older `transformers` saved.
    pub fn check(&self, cfg: &ModelConfig) -> Result<Vec<TensorSpec>> {
        let specs = tensor_specs(cfg);
        for s in &specs {
            match self.shape(&s.name) {
                None => {
                    return Err(Error::checkpoint(
                        &self.dir,
                        format!("missing tensor {} (config.json implies it)", s.name),
                    ));
                }
                Some(shape) if shape != s.shape.as_slice() => {
                    return Err(Error::checkpoint(
                        &self.dir,
                        format!(
                            "tensor {} has shape {shape:?}, config.json implies {:?}",
                            s.name, s.shape
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let known: std::collections::HashSet<&str> =
            specs.iter().map(|s| s.name.as_str()).collect();
        let mut extra: Vec<&str> = self
            .names()
            .filter(|n| !known.contains(n))
            .filter(|n| !n.ends_with("rotary_emb.inv_freq"))
            .filter(|n| !(cfg.tied_embeddings && *n == "lm_head.weight"))
            .collect();
        extra.sort();
        if let Some(first) = extra.first() {
            return Err(Error::checkpoint(
                &self.dir,
                format!(
                    "holds {} tensor(s) this LLaMA-family decoder does not have, e.g. {first}",
                    extra.len()
                ),
            ));
        }
        Ok(specs)
    }
}

/// Write f32 tensors to one safetensors file (`name`, shape, values), as F32 or BF16.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    bf16: bool,
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, values)| {
            if bf16 {
                values
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect()
            } else {
                values.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
        })
        .collect();
    let dtype = if bf16 { Dtype::BF16 } else { Dtype::F32 };
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, shape, _), data) in tensors.iter().zip(&bytes) {
        let view = safetensors::tensor::TensorView::new(dtype, shape.clone(), data)
            .map_err(|e| Error::checkpoint(path, format!("{name}: {e}")))?;
        views.push((name.clone(), view));
    }
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::tensor::serialize_to_file(views, Some(metadata), path)
        .map_err(|e| Error::checkpoint(path, format!("cannot write: {e}")))
}

/// Little-endian F32, BF16 or F16 values as f32 (None for any other dtype).
pub(crate) fn floats_of(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelOptions;

    #[test]
    fn writes_and_reads_single_and_sharded_folders() {
        let cfg = ModelOptions {
            kv_heads: Some(2),
            tied_embeddings: Some(true),
            ..ModelOptions::load("tiny").unwrap()
        }
        .resolve(Some(50))
        .unwrap();
        let specs = tensor_specs(&cfg);
        let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let values = (0..s.numel()).map(|j| (i * 7 + j) as f32 * 0.25).collect();
                (s.name.clone(), s.shape.clone(), values)
            })
            .collect();
        let single = tempfile::tempdir().unwrap();
        write_safetensors(&single.path().join(MODEL_FILE), &tensors, false).unwrap();
        let weights = Weights::open(single.path()).unwrap();
        weights.check(&cfg).unwrap();
        for (name, shape, want) in &tensors {
            assert_eq!(&weights.f32(name, shape).unwrap(), want);
        }
        // The same tensors split over two shards with an index, in bf16 (0.25 steps are exact).
        let sharded = tempfile::tempdir().unwrap();
        let (a, b) = tensors.split_at(5);
        write_safetensors(
            &sharded.path().join("model-00001-of-00002.safetensors"),
            a,
            true,
        )
        .unwrap();
        write_safetensors(
            &sharded.path().join("model-00002-of-00002.safetensors"),
            b,
            true,
        )
        .unwrap();
        let mut map = serde_json::Map::new();
        for (i, (name, _, _)) in tensors.iter().enumerate() {
            let file = if i < 5 { 1 } else { 2 };
            map.insert(
                name.clone(),
                format!("model-0000{file}-of-00002.safetensors").into(),
            );
        }
        let index = serde_json::json!({"metadata": {}, "weight_map": map});
        fs_err::write(sharded.path().join(INDEX_FILE), index.to_string()).unwrap();
        let weights = Weights::open(sharded.path()).unwrap();
        weights.check(&cfg).unwrap();
        let (name, shape, first) = &tensors[3];
        assert_eq!(&weights.f32(name, shape).unwrap()[..10], &first[..10]);
        // A tensor the config does not imply is refused by name.
        let mut more = tensors.clone();
        more.push((
            "model.layers.0.mlp.extra.weight".into(),
            vec![2],
            vec![0.0, 1.0],
        ));
        write_safetensors(&single.path().join(MODEL_FILE), &more, false).unwrap();
        let err = Weights::open(single.path())
            .unwrap()
            .check(&cfg)
            .unwrap_err();
        assert!(err.to_string().contains("mlp.extra"), "{err}");
    }
}
