//! Pruning: select the kept tokens, renumber them compactly in their original order, drop the
//! merges that involve a dropped token, write `tokenizer.json`, `id_map.json` and `report.json`
//! into the output folder, and check the written tokenizer loads back with the expected ids.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::base::{BaseTokenizer, Family};
use crate::counts::Counts;
use crate::coverage::CoverageCurve;
use crate::error::{Error, Result};
use crate::idmap::{ID_MAP_FORMAT, ID_MAP_VERSION, IdMap};
use crate::select::{Target, select};
use tinyforge_model::ModelConfig;

/// What to prune to, and for which model the parameter shares are reported.
#[derive(Debug, Clone)]
pub struct PruneConfig {
    pub target: Target,
    /// The model the vocabulary is for (its `vocab_size` is replaced by the pruned and the
    /// base vocabulary's sizes in the report).
    pub model: Option<ModelConfig>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PruneReport {
    pub base_tokenizer: PathBuf,
    pub base_tokenizer_sha256: String,
    pub family: Family,
    pub target: Target,
    pub base_vocab_size: usize,
    pub vocab_size: usize,
    pub kept: KeptBreakdown,
    pub base_merges: usize,
    pub merges: usize,
    /// Counted tokens whose token is kept, over all counted tokens.
    pub coverage: f64,
    /// Coverage of the plain top-`vocab_size` tokens by count, for comparison.
    pub top_k_coverage: f64,
    pub total_tokens: u64,
    pub documents: u64,
    pub monotone_id_map: bool,
    pub model: Option<ModelReport>,
    pub outputs: Outputs,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct KeptBreakdown {
    /// Added/special tokens and ids the post-processor, padding or unk refer to.
    pub specials: usize,
    /// Byte tokens that spell any text.
    pub alphabet: usize,
    /// Tokens chosen by frequency.
    pub by_frequency: usize,
    /// Tokens added only because a kept token's merges need them.
    pub merge_closure: usize,
    /// Frequent tokens skipped because their merge closure did not fit the budget.
    pub skipped_for_closure: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelReport {
    pub name: String,
    pub shape: ModelConfig,
    pub params: u64,
    pub embedding_head_params: u64,
    pub embedding_head_share: f64,
    pub base_params: u64,
    pub base_embedding_head_share: f64,
    /// The paper's rule: coverage > 90% and embedding + head < 20%.
    pub meets_paper_rule: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Outputs {
    pub tokenizer: PathBuf,
    pub tokenizer_sha256: String,
    /// `tokenizer_config.json` (the base's carried over, renumbered) and
    /// `special_tokens_map.json`, when the tokenizer has an EOS; none otherwise.
    pub tokenizer_config: Option<PathBuf>,
    /// The EOS token the folder declares, and where it came from.
    pub eos_token: Option<String>,
    pub id_map: PathBuf,
    pub report: PathBuf,
}

/// Prunes `base` with `counts` into `out_dir` and returns the report (also written there).
pub fn prune(
    base: &BaseTokenizer,
    counts: &Counts,
    config: &PruneConfig,
    out_dir: &Path,
) -> Result<PruneReport> {
    let selection = select(base, &counts.counts, config.target)?;

    // Model-vocabulary ids first, then added tokens outside it: `tokenizers` numbers the
    // latter after the model vocabulary. Within each group the original order is kept.
    let mut new_to_old: Vec<u32> = Vec::with_capacity(selection.len());
    for in_model in [true, false] {
        new_to_old.extend(
            (0..base.id_space() as u32)
                .filter(|&id| selection.kept(id) && base.in_model[id as usize] == in_model),
        );
    }
    let mut new_id: Vec<Option<u32>> = vec![None; base.id_space()];
    for (new, &old) in new_to_old.iter().enumerate() {
        new_id[old as usize] = Some(new as u32);
    }
    let monotone = new_to_old.windows(2).all(|w| w[0] < w[1]);
    let kept_merges: Vec<usize> = base
        .merges
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            selection.kept(m.left) && selection.kept(m.right) && selection.kept(m.result)
        })
        .map(|(i, _)| i)
        .collect();

    let json = crate::rewrite::pruned_json(base, &new_id, &kept_merges).map_err(Error::Internal)?;
    let bytes = json
        .to_bytes()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let tokenizer_sha256 = hex::encode(Sha256::digest(&bytes));
    fs_err::create_dir_all(out_dir)?;
    let tokenizer_path = out_dir.join("tokenizer.json");
    write_atomic(&tokenizer_path, &bytes)?;
    verify_written(&tokenizer_path, base, &new_to_old)?;

    // The configs transformers reads first, carried over from the base folder with the new
    // ids, so that `AutoTokenizer.from_pretrained(out_dir)` loads the compact tokenizer.
    let base_config = tinyforge_model::read_tokenizer_config(base.path()).map_err(|e| {
        Error::MalformedTokenizer {
            path: base.path().to_owned(),
            message: e.to_string(),
        }
    })?;
    let id_of = |token: &str| {
        let old = base
            .tokens
            .iter()
            .position(|t| t.as_deref() == Some(token))?;
        new_id[old]
    };
    let eos = tinyforge_model::default_eos(base_config.as_ref(), &|t| id_of(t).is_some());
    let tokenizer_config = match &eos {
        Some((eos, _)) => {
            tinyforge_model::write_tokenizer_config(
                out_dir,
                base_config.as_ref(),
                eos,
                &id_of,
                &|old| new_id.get(old as usize).copied().flatten(),
                None,
            )
            .map_err(|e| Error::MalformedTokenizer {
                path: base.path().to_owned(),
                message: e.to_string(),
            })?;
            Some(out_dir.join(tinyforge_model::TOKENIZER_CONFIG_FILE))
        }
        None => None,
    };

    let id_map_path = out_dir.join("id_map.json");
    IdMap {
        format: ID_MAP_FORMAT.into(),
        version: ID_MAP_VERSION,
        base_tokenizer_sha256: base.sha256().to_owned(),
        tokenizer_sha256: tokenizer_sha256.clone(),
        base_vocab_size: base.id_space() as u32,
        vocab_size: new_to_old.len() as u32,
        monotone,
        new_to_old: new_to_old.clone(),
    }
    .write(&id_map_path)?;

    let total = counts.total();
    let covered: u64 = new_to_old.iter().map(|&o| counts.counts[o as usize]).sum();
    let coverage = if total == 0 {
        1.0
    } else {
        covered as f64 / total as f64
    };
    let vocab_size = new_to_old.len();
    let base_vocab_size = base.tokens.iter().filter(|t| t.is_some()).count();
    let model = config.model.as_ref().map(|shape| {
        let with_vocab = |v: usize| ModelConfig {
            vocab_size: v,
            ..shape.clone()
        };
        let (pruned, full) = (with_vocab(vocab_size), with_vocab(base_vocab_size));
        let share = pruned.embedding_share();
        ModelReport {
            name: shape.name.clone(),
            params: pruned.param_count(),
            embedding_head_params: pruned.embedding_params(),
            embedding_head_share: share,
            base_params: full.param_count(),
            base_embedding_head_share: full.embedding_share(),
            meets_paper_rule: coverage > 0.9 && share < 0.2,
            shape: pruned,
        }
    });
    let report_path = out_dir.join("report.json");
    let report = PruneReport {
        base_tokenizer: base.path().to_owned(),
        base_tokenizer_sha256: base.sha256().to_owned(),
        family: base.family(),
        target: config.target,
        base_vocab_size,
        vocab_size,
        kept: KeptBreakdown {
            specials: selection.specials,
            alphabet: selection.alphabet,
            by_frequency: selection.by_frequency,
            merge_closure: selection.closure_added,
            skipped_for_closure: selection.skipped_for_closure,
        },
        base_merges: base.merges.len(),
        merges: kept_merges.len(),
        coverage,
        top_k_coverage: CoverageCurve::new(&counts.counts).at(vocab_size),
        total_tokens: total,
        documents: counts.documents,
        monotone_id_map: monotone,
        model,
        outputs: Outputs {
            tokenizer: tokenizer_path,
            tokenizer_sha256,
            tokenizer_config,
            eos_token: eos.map(|(token, _)| token),
            id_map: id_map_path,
            report: report_path.clone(),
        },
    };
    let mut report_bytes =
        serde_json::to_vec_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
    report_bytes.push(b'\n');
    write_atomic(&report_path, &report_bytes)?;
    Ok(report)
}

/// Loads the written file with `tokenizers` and checks every kept token has its new id.
fn verify_written(path: &Path, base: &BaseTokenizer, new_to_old: &[u32]) -> Result<()> {
    let pruned = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::TokenizerLoad {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let size = pruned.get_vocab_size(true);
    if size != new_to_old.len() {
        return Err(Error::Internal(format!(
            "{}: vocabulary size {size}, expected {}",
            path.display(),
            new_to_old.len()
        )));
    }
    for (new, &old) in new_to_old.iter().enumerate() {
        let token = base.token(old).unwrap_or_default();
        if pruned.token_to_id(token) != Some(new as u32) {
            return Err(Error::Internal(format!(
                "{}: token {token:?} has id {:?}, expected {new}",
                path.display(),
                pruned.token_to_id(token)
            )));
        }
    }
    Ok(())
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(tinyforge_task::write_atomic(path, bytes)?)
}
