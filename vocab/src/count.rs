//! Counting base tokens over a documents folder.
//!
//! One reader (the calling thread) decodes the `text` column of the shard's row groups and
//! hands batches through a bounded channel to one worker per rayon thread, so memory stays flat
//! whatever the corpus size. A worker runs the tokenizer's own pipeline (added-token split,
//! normalizer, pre-tokenizer) and counts the resulting *words* in a hash map; the BPE model then
//! runs once per distinct word, and the word's count is added to each of its token ids in a
//! dense per-thread `Vec<u64>`. BPE tokenizes each pre-tokenized word independently, so this
//! gives exactly the counts of encoding every document (without special tokens added), while
//! skipping the repeated BPE work and the per-token offsets an `Encoding` carries. For the
//! byte-level layout of Qwen-style tokenizers the words come from `tinyforge-pretok` (the same
//! regex and normalization, without `NormalizedString`'s per-byte bookkeeping); other layouts,
//! and texts holding an added token, take the tokenizer's own pipeline.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ahash::AHashMap;
use arrow::array::{Array, LargeStringArray, StringArray, StringViewArray};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokenizers::{Model, OffsetReferential, OffsetType, PreTokenizer};

use tinyforge_pretok::Splitter;

use crate::base::BaseTokenizer;
use crate::counts::Counts;
use crate::error::{Error, Result};
use tinyforge_task::{Reporter, Shard};

/// Options of one counting run.
#[derive(Debug, Clone)]
pub struct CountConfig {
    pub shard: Shard,
    /// Rows per batch handed to a worker.
    pub batch_rows: usize,
    /// Distinct words a worker holds before it tokenizes them and clears its map; bounds
    /// memory on corpora with a huge vocabulary of words.
    pub word_cache: usize,
}

impl Default for CountConfig {
    fn default() -> Self {
        Self {
            shard: Shard::default(),
            batch_rows: 256,
            word_cache: 1 << 20,
        }
    }
}

/// One row group of one documents file: the unit of work that `--shard` distributes.
#[derive(Debug, Clone)]
struct Unit {
    file: PathBuf,
    row_group: usize,
    rows: u64,
}

/// Every `*.parquet` in `dir`, sorted by file name.
pub fn list_documents(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs_err::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Documents {
            path: dir.to_owned(),
            message: "no *.parquet documents in this folder".into(),
        });
    }
    Ok(files)
}

fn list_units(files: &[PathBuf], shard: Shard) -> Result<Vec<Unit>> {
    let mut units = Vec::new();
    let mut index = 0usize;
    for file in files {
        let handle = fs_err::File::open(file)?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(handle.into_parts().0)
            .map_err(|e| Error::parquet(file, e))?;
        if builder.schema().column_with_name("text").is_none() {
            return Err(Error::Documents {
                path: file.clone(),
                message: "no \"text\" column".into(),
            });
        }
        for (row_group, meta) in builder.metadata().row_groups().iter().enumerate() {
            if shard.owns(index) {
                units.push(Unit {
                    file: file.clone(),
                    row_group,
                    rows: meta.num_rows() as u64,
                });
            }
            index += 1;
        }
    }
    Ok(units)
}

/// Worker threads a count uses (rayon's pool size; `RAYON_NUM_THREADS` sets it).
pub fn worker_threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Counts the base tokens of every document of `docs_dir` that belongs to `config.shard`.
pub fn count_documents(
    docs_dir: &Path,
    base: &BaseTokenizer,
    config: &CountConfig,
    reporter: &dyn Reporter,
) -> Result<Counts> {
    let files = list_documents(docs_dir)?;
    let units = list_units(&files, config.shard)?;
    // The count is documents, reported after each batch.
    reporter.start("vocab count", units.iter().map(|u| u.rows).sum());
    let workers = worker_threads();
    let (sender, receiver) = crossbeam_channel::bounded::<Batch>(2 * workers);
    let results: Mutex<Vec<Result<Vec<u64>>>> = Mutex::new(Vec::new());
    let mut read_result: Result<(u64, u64)> = Ok((0, 0));
    let splitter = Splitter::new(base.tokenizer());
    tracing::debug!(fast = splitter.is_some(), "pre-tokenizer");
    let splitter = splitter.as_ref();

    // The reader runs on this thread (not a pool thread), so a one-thread pool still has a
    // worker to drain the channel.
    rayon::in_place_scope(|scope| {
        for _ in 0..workers {
            let receiver = receiver.clone();
            let results = &results;
            scope.spawn(move |_| {
                let mut worker = Worker::new(base, splitter, config.word_cache);
                let outcome = (|| -> Result<Vec<u64>> {
                    for batch in receiver.iter() {
                        worker.count_batch(&batch)?;
                        reporter.advance(batch.texts.len() as u64);
                    }
                    worker.flush()?;
                    Ok(std::mem::take(&mut worker.dense))
                })();
                // Dropping the receiver on error makes the reader's next send fail and stop.
                drop(receiver);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(outcome);
            });
        }
        drop(receiver);
        read_result = read_units(&units, config.batch_rows, &sender);
        drop(sender);
    });

    let mut dense = vec![0u64; base.id_space()];
    for outcome in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        for (total, add) in dense.iter_mut().zip(outcome?) {
            *total += add;
        }
    }
    let (documents, bytes) = read_result?;
    Ok(Counts {
        counts: dense,
        tokens: base.tokens.clone(),
        tokenizer_sha256: base.sha256().to_owned(),
        shard: config.shard,
        bucket: None,
        documents,
        bytes,
    })
}

/// Texts of one batch with where they came from (for error messages).
struct Batch {
    file: PathBuf,
    first_row: u64,
    texts: Vec<String>,
}

fn read_units(
    units: &[Unit],
    batch_rows: usize,
    sender: &crossbeam_channel::Sender<Batch>,
) -> Result<(u64, u64)> {
    let (mut documents, mut bytes) = (0u64, 0u64);
    for unit in units {
        let handle = fs_err::File::open(&unit.file)?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(handle.into_parts().0)
            .map_err(|e| Error::parquet(&unit.file, e))?;
        let text_index = builder
            .parquet_schema()
            .columns()
            .iter()
            .position(|c| c.path().parts() == ["text"])
            .ok_or_else(|| Error::Documents {
                path: unit.file.clone(),
                message: "no top-level \"text\" column".into(),
            })?;
        let mask = ProjectionMask::leaves(builder.parquet_schema(), [text_index]);
        let first_row: u64 = builder.metadata().row_groups()[..unit.row_group]
            .iter()
            .map(|rg| rg.num_rows() as u64)
            .sum();
        let reader = builder
            .with_row_groups(vec![unit.row_group])
            .with_projection(mask)
            .with_batch_size(batch_rows.max(1))
            .build()
            .map_err(|e| Error::parquet(&unit.file, e))?;
        let mut row = first_row;
        for record_batch in reader {
            let record_batch = record_batch.map_err(|e| Error::parquet(&unit.file, e))?;
            let texts =
                text_values(record_batch.column(0).as_ref()).ok_or_else(|| Error::Documents {
                    path: unit.file.clone(),
                    message: format!(
                        "column \"text\" has type {}, expected a string type",
                        record_batch.column(0).data_type()
                    ),
                })?;
            let batch_bytes: u64 = texts.iter().map(|t| t.len() as u64).sum();
            let count = texts.len() as u64;
            let batch = Batch {
                file: unit.file.clone(),
                first_row: row,
                texts,
            };
            if sender.send(batch).is_err() {
                // Every worker stopped: one of them failed and holds the error.
                return Ok((documents, bytes));
            }
            row += count;
            documents += count;
            bytes += batch_bytes;
        }
    }
    Ok((documents, bytes))
}

/// The non-null strings of a text column (nulls are documents without text: nothing to count).
fn text_values(array: &dyn Array) -> Option<Vec<String>> {
    fn owned<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Vec<String> {
        values.flatten().map(str::to_owned).collect()
    }
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        Some(owned(a.iter()))
    } else if let Some(a) = any.downcast_ref::<LargeStringArray>() {
        Some(owned(a.iter()))
    } else {
        any.downcast_ref::<StringViewArray>()
            .map(|a| owned(a.iter()))
    }
}

/// Per-thread counting state.
struct Worker<'a> {
    base: &'a BaseTokenizer,
    /// The fast pre-tokenizer, when the base tokenizer has its layout.
    splitter: Option<&'a Splitter>,
    /// Words from the tokenizer's own pipeline (already in the model's alphabet).
    words: AHashMap<String, u64>,
    /// Words from the fast pre-tokenizer (slices of the normalized text).
    raw_words: AHashMap<String, u64>,
    normalized: String,
    word_cache: usize,
    dense: Vec<u64>,
}

impl<'a> Worker<'a> {
    fn new(base: &'a BaseTokenizer, splitter: Option<&'a Splitter>, word_cache: usize) -> Self {
        Self {
            base,
            splitter,
            words: AHashMap::new(),
            raw_words: AHashMap::new(),
            normalized: String::new(),
            word_cache: word_cache.max(1),
            dense: vec![0; base.id_space()],
        }
    }

    fn count_batch(&mut self, batch: &Batch) -> Result<()> {
        let base: &'a BaseTokenizer = self.base;
        let tokenizer = base.tokenizer();
        for (i, text) in batch.texts.iter().enumerate() {
            let fail = |e: tokenizers::Error| Error::Encode {
                path: batch.file.clone(),
                row: batch.first_row + i as u64,
                message: e.to_string(),
            };
            let raw_words = &mut self.raw_words;
            let fast = self.splitter.is_some_and(|splitter| {
                splitter.split(text, &mut self.normalized, |word| {
                    match raw_words.get_mut(word) {
                        Some(n) => *n += 1,
                        None => {
                            raw_words.insert(word.to_owned(), 1);
                        }
                    }
                })
            });
            if fast {
                if self.words.len() + self.raw_words.len() >= self.word_cache {
                    self.flush_at(batch, i)?;
                }
                continue;
            }
            let mut pretokenized = tokenizer
                .get_added_vocabulary()
                .extract_and_normalize(tokenizer.get_normalizer(), text);
            if let Some(pre) = tokenizer.get_pre_tokenizer() {
                pre.pre_tokenize(&mut pretokenized).map_err(fail)?;
            }
            for (word, _, tokens) in
                pretokenized.get_splits(OffsetReferential::Original, OffsetType::None)
            {
                match tokens {
                    // Added tokens were matched before normalization and carry their id.
                    Some(tokens) => tokens.iter().for_each(|t| self.dense[t.id as usize] += 1),
                    None if word.is_empty() => {}
                    None => match self.words.get_mut(word) {
                        Some(n) => *n += 1,
                        None => {
                            self.words.insert(word.to_owned(), 1);
                        }
                    },
                }
            }
            if self.words.len() + self.raw_words.len() >= self.word_cache {
                self.flush_at(batch, i)?;
            }
        }
        Ok(())
    }

    /// [`Worker::flush`], with an error naming the row that filled the cache.
    fn flush_at(&mut self, batch: &Batch, i: usize) -> Result<()> {
        self.flush().map_err(|e| match e {
            Error::Encode { message, .. } => Error::Encode {
                path: batch.file.clone(),
                row: batch.first_row + i as u64,
                message,
            },
            other => other,
        })
    }

    /// Tokenizes every distinct word seen since the last flush and adds its count.
    fn flush(&mut self) -> Result<()> {
        let base: &'a BaseTokenizer = self.base;
        let model = base.tokenizer().get_model();
        let tokenize = |word: &str| {
            model.tokenize(word).map_err(|e| Error::Encode {
                path: base.path().to_owned(),
                row: 0,
                message: format!("word {word:?}: {e}"),
            })
        };
        for (word, n) in self.words.drain() {
            for token in tokenize(&word)? {
                self.dense[token.id as usize] += n;
            }
        }
        if let Some(splitter) = self.splitter {
            let mut input = String::new();
            for (word, n) in self.raw_words.drain() {
                splitter.model_input(&word, &mut input);
                for token in tokenize(&input)? {
                    self.dense[token.id as usize] += n;
                }
            }
        }
        Ok(())
    }
}
