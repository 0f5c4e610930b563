//! The run: a reader thread streams documents, the calling thread encodes each batch on a rayon
//! pool, a writer thread compresses and writes shards. Bounded channels between the three keep
//! memory flat; batches stay in order, so the output does not depend on the thread count.

use std::path::{Path, PathBuf};
use std::time::Instant;
use tinyforge_task::{Reporter, Shard, TaskLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tinyforge_shards::{
    DatasetHeader, DatasetWriter, Dtype, MANIFEST_FILE, Manifest, ShardEntry, ShardOptions,
    TaskInfo,
};

use crate::encode::{DEFAULT_MAX_PRETOKEN_CHARS, Encoded, TokenizerInfo};
use crate::error::{Error, Result};
use crate::input::{DocBatch, Inputs};
use crate::report::{LongPretokens, TokenizeReport};

/// Where partial progress is recorded; removed never (a finished run keeps it, marked complete).
pub const PROGRESS_FILE: &str = "_progress.json";

/// A validated tokenize job.
#[derive(Debug, Clone)]
pub struct TokenizeConfig {
    pub docs_dir: PathBuf,
    pub tokenizer: PathBuf,
    pub out: PathBuf,
    /// This task's contiguous part of the documents (row groups).
    pub task: Shard,
    pub shard_tokens: u64,
    pub frame_tokens: u32,
    pub zstd_level: i32,
    /// Rows per batch handed to the encoder.
    pub batch_rows: usize,
    /// Encoder threads (0: rayon's default, one per core).
    pub threads: usize,
    /// The EOS token (default: guessed from the vocabulary).
    pub eos: Option<String>,
    /// Characters of one pre-token the model encodes at a time; a longer one is encoded in
    /// pieces of this many (see [`TokenizerInfo::load`]).
    pub max_pretoken_chars: usize,
}

impl TokenizeConfig {
    /// Defaults for everything but the paths.
    pub fn new(docs_dir: PathBuf, tokenizer: PathBuf, out: PathBuf) -> Self {
        Self {
            docs_dir,
            tokenizer,
            out,
            task: Shard::ALL,
            shard_tokens: 1 << 28,
            frame_tokens: 2048,
            zstd_level: tinyforge_shards::DEFAULT_ZSTD_LEVEL,
            batch_rows: 1024,
            threads: 0,
            eos: None,
            max_pretoken_chars: DEFAULT_MAX_PRETOKEN_CHARS,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.shard_tokens == 0
            || self.frame_tokens == 0
            || self.batch_rows == 0
            || self.max_pretoken_chars == 0
        {
            return Err(Error::Config(
                "shard tokens, frame tokens, batch rows and max pre-token characters must be \
                 positive"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The resume record in the output folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProgressRecord {
    run: String,
    task: Shard,
    /// Documents of this task covered by `shards`.
    documents_done: u64,
    text_bytes_done: u64,
    /// Pre-tokens over the limit in the documents covered by `shards`, and their documents.
    #[serde(default)]
    long_pretokens: u64,
    #[serde(default)]
    long_pretoken_documents: u64,
    shards: Vec<ShardEntry>,
    complete: bool,
}

/// Tokenizes the documents of `config.task` into `config.out`.
pub fn tokenize(config: &TokenizeConfig, reporter: &dyn Reporter) -> Result<TokenizeReport> {
    config.validate()?;
    let started = Instant::now();
    let tokenizer = TokenizerInfo::load(
        &config.tokenizer,
        config.eos.as_deref(),
        config.max_pretoken_chars,
    )?;
    let inputs = Inputs::list(&config.docs_dir)?;
    let run = run_fingerprint(config, &tokenizer, &inputs);
    let groups = inputs.task_groups(config.task);
    let header = DatasetHeader {
        tokenizer_sha256: tokenizer.sha256.clone(),
        vocab_size: tokenizer.vocab_size,
        dtype: Dtype::for_vocab(tokenizer.vocab_size),
        eos_id: tokenizer.eos_id,
        frame_tokens: config.frame_tokens,
    };
    let task = (!config.task.is_all()).then(|| TaskInfo {
        index: config.task.index,
        count: config.task.count,
        run: run.clone(),
    });
    let _lock = TaskLock::acquire(&config.out, "tokenize", config.task)?;
    // What a killed writer of this folder left (the lock says none runs now).
    tinyforge_task::remove_temporaries(&config.out, |_| true)?;
    let progress_path = config.out.join(PROGRESS_FILE);
    let mut record = load_progress(&progress_path, &run, config.task, &config.out)?;
    let resumed_shards = record.shards.len();
    if record.complete && config.out.join(MANIFEST_FILE).is_file() {
        let manifest = Manifest::read(&config.out)?;
        return TokenizeReport::build(
            &config.out,
            &manifest,
            (&tokenizer.eos_token, tokenizer.eos_source),
            long_pretokens(&record, config),
            (record.text_bytes_done, 0),
            resumed_shards,
            started.elapsed(),
        );
    }
    let task_rows: u64 = groups.iter().map(|g| g.rows).sum();
    // The count is documents; a shard is committed when its progress is recorded.
    reporter.start("tokenize", task_rows - record.documents_done);
    if resumed_shards > 0 {
        reporter.note(&format!("resumed after {resumed_shards} shards"));
    }

    let options = ShardOptions {
        zstd_level: config.zstd_level,
        ..ShardOptions::from_header(&header)
    };
    let mut writer = DatasetWriter::new(
        &config.out,
        options,
        config.shard_tokens,
        record.shards.clone(),
    )?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads)
        .thread_name(|i| format!("tokenize-{i}"))
        .build()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let (batch_tx, batch_rx) = crossbeam_channel::bounded::<DocBatch>(2);
    let (encoded_tx, encoded_rx) = crossbeam_channel::bounded::<(DocBatch, Vec<Encoded>)>(2);
    let skip = record.documents_done;
    let mut text_bytes_this_run = 0u64;

    std::thread::scope(|scope| -> Result<()> {
        // Each thread owns its channel end, so a stage that stops closes its channels and the
        // stage beside it wakes up instead of blocking forever.
        let (inputs, groups) = (&inputs, &groups);
        let reader = scope.spawn(move || {
            // A closed channel means a later stage failed: stop quietly, it reports the error.
            inputs.read(groups, skip, config.batch_rows, |batch| {
                Ok(batch_tx.send(batch).is_ok())
            })
        });
        let (record, writer, progress_path) = (&mut record, &mut writer, &progress_path);
        let writer_thread = scope.spawn(move || -> Result<()> {
            // Text bytes and long pre-tokens of documents written since the last finished shard.
            let mut pending = Pending::default();
            for (batch, encoded) in encoded_rx.iter() {
                for (row, ((id, doc), text)) in
                    batch.ids.iter().zip(&encoded).zip(&batch.texts).enumerate()
                {
                    record.documents_done += 1;
                    pending.text_bytes += text.len() as u64;
                    if doc.long_pretokens > 0 {
                        pending.long_pretokens += u64::from(doc.long_pretokens);
                        pending.long_pretoken_documents += 1;
                        // The first few by name; the report counts them all.
                        if record.long_pretoken_documents + pending.long_pretoken_documents
                            <= LONG_PRETOKENS_NAMED
                        {
                            tracing::warn!(
                                "{}: row {}: {} pre-tokens over {} characters, encoded in pieces",
                                batch.path.display(),
                                batch.first_row + row as u64,
                                doc.long_pretokens,
                                config.max_pretoken_chars
                            );
                        }
                    }
                    if let Some(entry) = writer.push_document(*id, &doc.ids)? {
                        // The shard ends with this document: everything up to here is durable.
                        pending.settle(record);
                        record.shards.push(entry);
                        reporter.committed(record.shards.len() as u64 - 1);
                        save_progress(progress_path, record)?;
                    }
                }
                reporter.advance(batch.len() as u64);
            }
            pending.settle(record);
            Ok(())
        });
        let mut result = Ok(());
        for batch in batch_rx.iter() {
            text_bytes_this_run += batch.bytes;
            match pool.install(|| tokenizer.encode_batch(&batch)) {
                Ok(tokens) => {
                    if encoded_tx.send((batch, tokens)).is_err() {
                        break;
                    }
                }
                Err(error) => {
                    result = Err(error);
                    break;
                }
            }
        }
        drop(encoded_tx);
        drop(batch_rx);
        let written = writer_thread
            .join()
            .map_err(|_| Error::Internal("writer thread panicked".into()))?;
        let read = reader
            .join()
            .map_err(|_| Error::Internal("reader thread panicked".into()))?;
        // The first failure in pipeline order: a bad file before a bad encode before a bad write.
        read.and(result).and(written)
    })?;
    record.shards = writer.finish()?;
    // The tokenizer beside the shards, before the manifest that marks the folder done.
    tokenizer.write_folder_files(&config.out)?;
    let manifest = Manifest::new(header, task, record.shards.clone());
    manifest.write(&config.out)?;
    record.complete = true;
    save_progress(&progress_path, &record)?;
    TokenizeReport::build(
        &config.out,
        &manifest,
        (&tokenizer.eos_token, tokenizer.eos_source),
        long_pretokens(&record, config),
        (record.text_bytes_done, text_bytes_this_run),
        resumed_shards,
        started.elapsed(),
    )
}

/// Documents named in the log for their long pre-tokens.
const LONG_PRETOKENS_NAMED: u64 = 10;

/// What documents written since the last finished shard add to the progress record.
#[derive(Default)]
struct Pending {
    text_bytes: u64,
    long_pretokens: u64,
    long_pretoken_documents: u64,
}

impl Pending {
    fn settle(&mut self, record: &mut ProgressRecord) {
        let done = std::mem::take(self);
        record.text_bytes_done += done.text_bytes;
        record.long_pretokens += done.long_pretokens;
        record.long_pretoken_documents += done.long_pretoken_documents;
    }
}

fn long_pretokens(record: &ProgressRecord, config: &TokenizeConfig) -> LongPretokens {
    LongPretokens {
        max_chars: config.max_pretoken_chars,
        pretokens: record.long_pretokens,
        documents: record.long_pretoken_documents,
    }
}

/// Everything the output depends on: a rerun with a different value must not resume.
fn run_fingerprint(config: &TokenizeConfig, tokenizer: &TokenizerInfo, inputs: &Inputs) -> String {
    let mut hash = Sha256::new();
    // Shards of another format version never join this run's.
    hash.update(tinyforge_shards::FORMAT_VERSION.to_le_bytes());
    hash.update(tokenizer.sha256.as_bytes());
    hash.update(tokenizer.eos_id.to_le_bytes());
    for (file, path) in inputs.files.iter().enumerate() {
        hash.update(
            path.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        for group in inputs.groups.iter().filter(|g| g.file == file) {
            hash.update(group.rows.to_le_bytes());
            hash.update(group.compressed_bytes.to_le_bytes());
        }
    }
    hash.update(config.shard_tokens.to_le_bytes());
    hash.update(config.frame_tokens.to_le_bytes());
    hash.update(config.zstd_level.to_le_bytes());
    hash.update(config.task.count.to_le_bytes());
    // Only a limit other than the default: runs from before the limit existed still resume.
    if config.max_pretoken_chars != DEFAULT_MAX_PRETOKEN_CHARS {
        hash.update(config.max_pretoken_chars.to_le_bytes());
    }
    hex::encode(&hash.finalize()[..16])
}

fn load_progress(path: &Path, run: &str, task: Shard, out: &Path) -> Result<ProgressRecord> {
    let fresh = ProgressRecord {
        run: run.to_owned(),
        task,
        documents_done: 0,
        text_bytes_done: 0,
        long_pretokens: 0,
        long_pretoken_documents: 0,
        shards: Vec::new(),
        complete: false,
    };
    if !path.is_file() {
        if out.join(MANIFEST_FILE).is_file() {
            return Err(Error::OtherRun {
                path: out.to_path_buf(),
                detail: "a dataset without a progress record".into(),
            });
        }
        return Ok(fresh);
    }
    let record: ProgressRecord =
        serde_json::from_slice(&fs_err::read(path)?).map_err(|e| Error::OtherRun {
            path: path.to_path_buf(),
            detail: format!("unreadable progress record: {e}"),
        })?;
    if record.run != run || record.task != task {
        return Err(Error::OtherRun {
            path: out.to_path_buf(),
            detail: format!("run {} task {}", record.run, record.task),
        });
    }
    // A recorded shard must still be there, whole; otherwise redo everything after the last good one.
    let good = record
        .shards
        .iter()
        .take_while(|s| fs_err::metadata(out.join(&s.file)).is_ok_and(|m| m.len() == s.bytes))
        .count();
    if good < record.shards.len() {
        tracing::warn!(
            "{}: {} recorded shards are missing or damaged; starting over",
            out.display(),
            record.shards.len() - good
        );
        return Ok(fresh);
    }
    Ok(record)
}

fn save_progress(path: &Path, record: &ProgressRecord) -> Result<()> {
    let json = serde_json::to_vec_pretty(record).map_err(|e| Error::Internal(e.to_string()))?;
    tinyforge_task::write_atomic(path, &json)?;
    Ok(())
}
