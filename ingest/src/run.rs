//! The run: chunks are processed independently and in parallel (read, clean, filter, dedup
//! inside the chunk, write its parts), each committed by its state record. Deduplication
//! across chunks happens once every chunk is done, in [`crate::finalize`].

use std::io::Write;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use tinyforge_task::Reporter;
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use crate::clean::{DropReason, check_length, clean_document};
use crate::config::{IngestConfig, OnError, Shard};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::part::{Docs, PartWriter, schema};
use crate::plan::{InputFile, Plan};
use crate::read::{FieldSpec, Record, Reject, Sink, read_unit};
use crate::report::{Counts, Report};
use crate::state::{ChunkRecord, Fetch, HashSet128, State, clean_output};

/// Options of a run that do not change its output.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Delete this plan's earlier parts and state first.
    pub force: bool,
    /// Only finalize (every chunk must already be done).
    pub merge_only: bool,
    /// Only find the duplicates of this hash bucket (every chunk must be done).
    pub dedup_bucket: Option<Shard>,
    /// Only rewrite these chunks without their duplicates (every bucket must be done).
    pub dedup_rewrite: Option<Shard>,
    /// Called before a step reads a part or a hash file another task wrote (the dedup steps
    /// and the merge), so that a folder staged from an object store downloads only those.
    pub fetch: Option<Fetch>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("force", &self.force)
            .field("merge_only", &self.merge_only)
            .field("dedup_bucket", &self.dedup_bucket)
            .field("dedup_rewrite", &self.dedup_rewrite)
            .field("fetch", &self.fetch.is_some())
            .finish()
    }
}

/// Documents per batch handed from reading to writing.
const BATCH_ROWS: usize = 2048;
const BATCH_BYTES: usize = 4 << 20;

/// Runs this task's chunks, then (for a single task, or `merge_only`) finalizes the folder.
pub fn ingest(
    config: &IngestConfig,
    options: &RunOptions,
    reporter: &dyn Reporter,
) -> Result<Report> {
    let start = Instant::now();
    let plan = Plan::build(config)?;
    // Tasks of one run share the folder; each locks its own name, so a second copy of a task
    // (a requeue while the first still runs) stops here, naming the first.
    let (step, task) = match (options.dedup_bucket, options.dedup_rewrite) {
        (Some(bucket), _) => ("dedup-bucket", bucket),
        (None, Some(rewrite)) => ("dedup-rewrite", rewrite),
        (None, None) => ("ingest", config.shard),
    };
    let _lock = tinyforge_task::TaskLock::acquire(&config.out, step, task)?;
    if options.force {
        clean_output(&config.out, true)?;
    }
    let state = State::open(&config.out, &plan)?.with_fetch(options.fetch.clone());
    let schema = schema(&config.keep_columns);
    let filter = config
        .where_sql
        .as_deref()
        .map(|sql| Filter::new(sql, &schema))
        .transpose()?;
    if let Some(step) = options.dedup_bucket.or(options.dedup_rewrite) {
        // Both steps need every chunk done; the records read here serve the step and the report.
        let mut records = crate::finalize::all_records(config, &plan, &state)?;
        let summary = if options.dedup_bucket.is_some() {
            crate::finalize::dedup_bucket(config, &plan, &state, step)?
        } else {
            crate::finalize::dedup_rewrite(config, &plan, &state, step, &mut records)?
        };
        let mut report = task_report(config, &plan, &records);
        report.shard = step.to_string();
        report.elapsed_s = start.elapsed().as_secs_f64();
        report.dedup = Some(summary);
        return Ok(report);
    }
    let task = plan.task_chunks(config.shard);
    let mut records = Vec::new();
    let mut pending = Vec::new();
    for &chunk in &task {
        match state.finished(chunk)? {
            Some(record) => records.push(record),
            None => pending.push(chunk),
        }
    }
    if options.merge_only && !pending.is_empty() && config.shard.count == 1 {
        return Err(Error::State {
            path: config.out.clone(),
            message: format!(
                "{} of {} chunks are not done yet; run the remaining --shard tasks first",
                pending.len(),
                plan.chunks.len()
            ),
        });
    }
    let resumed = records.len();
    let bytes: u64 = pending.iter().map(|&c| plan.chunks[c].bytes).sum();
    // The count is bytes of input on disk, committed as each chunk's parts are.
    reporter.start("ingest", bytes);
    if resumed > 0 {
        reporter.note(&format!("resumed after {resumed} chunks"));
    }
    remove_stale_temporaries(&state, &pending)?;
    let context = Context {
        config,
        plan: &plan,
        state: &state,
        schema,
        filter,
        reporter,
    };
    records.extend(context.run_chunks(&pending)?);
    records.sort_by_key(|r| r.chunk);

    let mut report = if config.shard.count == 1 {
        reporter.note("merging");
        crate::finalize::finalize(config, &plan, &state)?
    } else {
        task_report(config, &plan, &records)
    };
    report.chunks_task = task.len();
    report.chunks_resumed = resumed;
    report.elapsed_s = start.elapsed().as_secs_f64();
    report.mb_per_s = if report.elapsed_s > 0.0 {
        records.iter().map(|r| r.counts.bytes_in).sum::<u64>() as f64 / 1e6 / report.elapsed_s
    } else {
        0.0
    };
    report.threads = config.threads;
    Ok(report)
}

fn remove_stale_temporaries(state: &State, pending: &[usize]) -> Result<()> {
    // Temporary names embed the chunk number; only this task's unfinished chunks are touched,
    // so tasks sharing the folder never delete each other's files in flight.
    let prefixes: Vec<String> = pending
        .iter()
        .flat_map(|&c| {
            let record = state.record_path(c);
            let stem = record
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let digits = stem.trim_start_matches("chunk-").to_owned();
            [format!("part-{digits}"), format!("chunk-{digits}.")]
        })
        .collect();
    for dir in [&state.out, &state.dir] {
        tinyforge_task::remove_temporaries(dir, |target| {
            prefixes.iter().any(|p| target.starts_with(p.as_str()))
        })?;
    }
    Ok(())
}

fn task_report(config: &IngestConfig, plan: &Plan, records: &[ChunkRecord]) -> Report {
    let mut counts = Counts::default();
    for record in records {
        counts.add(&record.counts);
    }
    build_report(config, plan, &counts, records, false, None)
}

pub(crate) fn build_report(
    config: &IngestConfig,
    plan: &Plan,
    counts: &Counts,
    records: &[ChunkRecord],
    complete: bool,
    rejects_file: Option<String>,
) -> Report {
    Report {
        out: config.out_name.clone(),
        complete,
        shard: config.shard.to_string(),
        files: plan.files.len(),
        chunks_total: plan.chunks.len(),
        chunks_task: 0,
        chunks_resumed: 0,
        parts: records.iter().map(|r| r.parts.len()).sum(),
        documents_in: counts.records,
        bytes_in: counts.bytes_in,
        documents_out: counts.documents,
        bytes_out: counts.text_bytes,
        parquet_bytes: records.iter().flat_map(|r| &r.parts).map(|p| p.bytes).sum(),
        dropped: counts.dropped.clone(),
        by_lang: counts.by_lang.clone(),
        by_source: counts.by_source.clone(),
        rejects: records.iter().map(|r| r.rejects).sum(),
        rejects_file,
        elapsed_s: 0.0,
        mb_per_s: 0.0,
        threads: config.threads,
        dedup: None,
    }
}

struct Context<'a> {
    config: &'a IngestConfig,
    plan: &'a Plan,
    state: &'a State,
    schema: SchemaRef,
    filter: Option<Filter>,
    reporter: &'a dyn Reporter,
}

impl Context<'_> {
    /// Without a `--where` filter, documents are deduplicated as they arrive and collected a
    /// row group at a time; with one, a batch at a time, filtered, then deduplicated.
    fn dedup_on_add(&self) -> bool {
        self.filter.is_none()
    }

    fn run_chunks(&self, pending: &[usize]) -> Result<Vec<ChunkRecord>> {
        let next = AtomicUsize::new(0);
        let abort = AtomicBool::new(false);
        let workers = self.config.threads.min(pending.len()).max(1);
        let results: Vec<Result<Vec<ChunkRecord>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let position = next.fetch_add(1, Ordering::Relaxed);
                            if position >= pending.len() || abort.load(Ordering::Relaxed) {
                                return Ok(done);
                            }
                            let chunk = pending[position];
                            // A panic (a bug, or a library's on input it cannot take) names
                            // the chunk's input; chunks finished before it stay done.
                            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                self.process_chunk(chunk, &abort)
                            }))
                            .unwrap_or_else(|payload| Err(self.panicked(chunk, &*payload)));
                            match outcome {
                                Ok(Chunk::Done(record)) => {
                                    self.reporter.committed(chunk as u64);
                                    done.push(record);
                                }
                                // The worker whose error set the flag reports it.
                                Ok(Chunk::Aborted) => return Ok(done),
                                Err(err) => {
                                    abort.store(true, Ordering::Relaxed);
                                    return Err(err);
                                }
                            }
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Internal("a worker panicked".into())))
                })
                .collect()
        });
        // Workers stopped by another's error end without one, so the first error is the cause.
        let mut records = Vec::new();
        for result in results {
            records.extend(result?);
        }
        Ok(records)
    }

    /// The error for a worker that panicked on `chunk`: the panic's message and the input the
    /// chunk reads (its first files, with their row groups or byte ranges).
    fn panicked(&self, chunk: usize, payload: &(dyn std::any::Any + Send)) -> Error {
        let message = tinyforge_task::panic_message(payload);
        let units = &self.plan.units[self.plan.chunks[chunk].units.clone()];
        let mut input: Vec<String> = units
            .iter()
            .take(4)
            .map(|unit| {
                let file = &self.plan.files[unit.file].rel;
                match (&unit.row_group, &unit.range) {
                    (Some(group), _) => format!("{file} row group {group}"),
                    (_, Some(range)) => format!("{file} bytes {}..{}", range.start, range.end),
                    _ => file.clone(),
                }
            })
            .collect();
        if units.len() > 4 {
            input.push(format!("and {} more", units.len() - 4));
        }
        panic_error(chunk, &input.join(", "), &message)
    }

    fn process_chunk(&self, chunk: usize, abort: &AtomicBool) -> Result<Chunk> {
        fail::fail_point!("ingest::chunk");
        let range = self.plan.chunks[chunk].units.clone();
        let mut sink = ChunkSink::new(self, chunk, abort)?;
        for unit in &self.plan.units[range] {
            let file = &self.plan.files[unit.file];
            sink.start_file(file);
            let flow = read_unit(
                file,
                unit.row_group,
                unit.range.clone(),
                &sink.specs[file.input].clone(),
                &mut sink,
            );
            if let Some(err) = sink.error.take() {
                return Err(err);
            }
            // The sink breaks on its own error (taken above) or on the abort flag.
            if flow.is_break() {
                return Ok(Chunk::Aborted);
            }
            self.reporter.advance(unit.bytes);
        }
        sink.finish().map(Chunk::Done)
    }
}

/// How a worker left a chunk: finished, or stopped because another worker failed (whose
/// error is the one to report).
enum Chunk {
    Done(ChunkRecord),
    Aborted,
}

/// An empty batch of documents with room for a whole batch: a row group when documents are
/// deduplicated as they arrive (see `Context::dedup_on_add`).
fn batch_docs(config: &IngestConfig, by_row_group: bool) -> Docs {
    let bytes = if by_row_group {
        // And room for the document that ends it.
        let group = config.row_group_bytes.min(256 << 20) as usize;
        group + group / 8
    } else {
        BATCH_BYTES
    };
    Docs::with_capacity(config.keep_columns.len(), BATCH_ROWS, bytes)
}

/// Collects one chunk's records into documents and parts.
struct ChunkSink<'a> {
    context: &'a Context<'a>,
    chunk: usize,
    abort: &'a AtomicBool,
    specs: Vec<Arc<FieldSpec>>,
    sources: Vec<Arc<str>>,
    file_input: usize,
    file_rel: String,
    file_path: PathBuf,
    docs: Docs,
    /// The bytes a document id hashes, reused.
    id_key: Vec<u8>,
    seen: HashSet128,
    hashes: Vec<u128>,
    writer: Option<PartWriter>,
    parts: Vec<crate::part::PartInfo>,
    counts: Counts,
    /// Records read per input (their source's `records`).
    records_by_input: Vec<u64>,
    raw_since_roll: u64,
    roll_pending: bool,
    rejects: Option<std::io::BufWriter<fs_err::File>>,
    rejects_tmp: PathBuf,
    reject_count: u64,
    error: Option<Error>,
}

impl<'a> ChunkSink<'a> {
    fn new(context: &'a Context<'a>, chunk: usize, abort: &'a AtomicBool) -> Result<Self> {
        let config = context.config;
        let specs = config
            .inputs
            .iter()
            .map(|i| Arc::new(FieldSpec::new(i, config)))
            .collect();
        let sources = config
            .inputs
            .iter()
            .map(|i| Arc::from(i.source.as_str()))
            .collect();
        let writer = Some(PartWriter::create(
            &config.out,
            &context.plan.part_name(chunk, 0),
            &context.schema,
            config.zstd_level,
            config.row_group_bytes,
        )?);
        let rejects_path = context.state.rejects_path(chunk);
        let rejects_tmp = tinyforge_task::temp_path(&rejects_path);
        Ok(ChunkSink {
            context,
            chunk,
            abort,
            specs,
            sources,
            file_input: 0,
            file_rel: String::new(),
            file_path: PathBuf::new(),
            docs: batch_docs(config, context.dedup_on_add()),
            id_key: Vec::new(),
            seen: HashSet128::default(),
            hashes: Vec::new(),
            writer,
            parts: Vec::new(),
            counts: Counts::default(),
            records_by_input: vec![0; config.inputs.len()],
            raw_since_roll: 0,
            roll_pending: false,
            rejects: None,
            rejects_tmp,
            reject_count: 0,
            error: None,
        })
    }

    fn start_file(&mut self, file: &InputFile) {
        self.file_input = file.input;
        self.file_rel.clone_from(&file.rel);
        self.file_path.clone_from(&file.path);
    }

    /// Counts a record's input and decides part rollover. Rollover depends only on the bytes of
    /// input records, so every run of the plan cuts parts at the same records.
    fn account(&mut self, raw_bytes: u64) -> Result<()> {
        if self.roll_pending {
            self.flush()?;
            self.roll()?;
        }
        self.counts.records += 1;
        self.counts.bytes_in += raw_bytes;
        // Folded into `counts.by_source` at the end: no map lookup per record.
        self.records_by_input[self.file_input] += 1;
        self.raw_since_roll += raw_bytes;
        if self.raw_since_roll >= self.context.config.part_bytes {
            self.roll_pending = true;
        }
        Ok(())
    }

    fn roll(&mut self) -> Result<()> {
        if let Some(writer) = self.writer.take() {
            self.parts.push(writer.finish()?);
        }
        let config = self.context.config;
        let name = self.context.plan.part_name(self.chunk, self.parts.len());
        self.writer = Some(PartWriter::create(
            &config.out,
            &name,
            &self.context.schema,
            config.zstd_level,
            config.row_group_bytes,
        )?);
        self.roll_pending = false;
        self.raw_since_roll = 0;
        Ok(())
    }

    fn add_record(&mut self, record: Record<'_>) -> Result<()> {
        self.account(record.raw_bytes)?;
        let cleaned = clean_document(record.text);
        let text = &*cleaned.text;
        if let Err(reason) = check_length(text, self.context.config.min_chars) {
            match reason {
                DropReason::Empty => self.counts.dropped.empty += 1,
                DropReason::TooShort => self.counts.dropped.too_short += 1,
            }
            return Ok(());
        }
        let hash = xxh3_128(text.as_bytes());
        if self.context.dedup_on_add() {
            self.counts.candidates += 1;
            if self.context.config.dedup && !self.seen.insert(hash) {
                self.counts.dropped.duplicate += 1;
                return Ok(());
            }
        }
        let source = self.sources[self.file_input].clone();
        let key = &mut self.id_key;
        key.clear();
        key.extend_from_slice(source.as_bytes());
        key.push(0);
        match record.id_value {
            Some(value) => {
                key.extend_from_slice(b"id:");
                key.extend_from_slice(value.as_bytes());
            }
            None => {
                key.extend_from_slice(self.file_rel.as_bytes());
                key.push(0);
                key.extend_from_slice(&record.index.to_le_bytes());
            }
        }
        self.docs.ids.push(xxh3_64(key));
        self.docs.langs.push(cleaned.lang());
        self.docs.hashes.push(hash);
        self.docs.sources.push(source);
        for (column, value) in self.docs.meta.iter_mut().zip(record.meta) {
            column.append_option(value.as_deref());
        }
        self.docs.text_bytes += text.len();
        self.docs.texts.append_value(text);
        let full = if self.context.dedup_on_add() {
            // Exactly the rest of the writer's row group: it is written without a copy.
            let room = self.writer.as_ref().map_or(u64::MAX, PartWriter::room);
            self.docs.text_bytes as u64 >= room
        } else {
            self.docs.len() >= BATCH_ROWS || self.docs.text_bytes >= BATCH_BYTES
        };
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Filters and deduplicates the collected documents and appends them to the current part.
    fn flush(&mut self) -> Result<()> {
        if self.docs.is_empty() {
            return Ok(());
        }
        let empty = batch_docs(self.context.config, self.context.dedup_on_add());
        let mut docs = std::mem::replace(&mut self.docs, empty);
        let mut batch = docs.take_batch(&self.context.schema)?;
        let mut hashes = docs.hashes;
        if let Some(filter) = &self.context.filter {
            let mask = filter.evaluate(&batch)?;
            let kept = mask.true_count();
            self.counts.dropped.filtered += (batch.num_rows() - kept) as u64;
            if kept < batch.num_rows() {
                batch = arrow::compute::filter_record_batch(&batch, &mask)?;
                hashes = hashes
                    .into_iter()
                    .zip(mask.iter())
                    .filter(|(_, keep)| *keep == Some(true))
                    .map(|(h, _)| h)
                    .collect();
            }
        }
        if !self.context.dedup_on_add() {
            self.counts.candidates += hashes.len() as u64;
        }
        let batch = if self.context.config.dedup && !self.context.dedup_on_add() {
            let keep: Vec<bool> = hashes.iter().map(|h| self.seen.insert(*h)).collect();
            let kept = keep.iter().filter(|k| **k).count();
            self.counts.dropped.duplicate += (hashes.len() - kept) as u64;
            if kept < hashes.len() {
                let mask = arrow::array::BooleanArray::from(keep.clone());
                hashes = hashes
                    .into_iter()
                    .zip(keep)
                    .filter(|(_, k)| *k)
                    .map(|(h, _)| h)
                    .collect();
                arrow::compute::filter_record_batch(&batch, &mask)?
            } else {
                batch
            }
        } else {
            batch
        };
        count_output(&mut self.counts, &batch);
        self.hashes.extend(hashes);
        match self.writer.as_mut() {
            Some(writer) => writer.append(&batch),
            None => Err(Error::Internal("part writer missing".into())),
        }
    }

    fn add_reject(&mut self, reject: Reject) -> Result<()> {
        self.account(reject.raw_bytes)?;
        self.counts.dropped.malformed += 1;
        self.reject_count += 1;
        if self.context.config.on_error == OnError::Fail {
            return Err(Error::BadInput {
                path: self.file_path.clone(),
                location: reject.location,
                reason: reject.reason,
            });
        }
        let at = reject.location.to_string();
        let line = serde_json::json!({
            "file": self.file_path.display().to_string(),
            "location": reject.location,
            "at": at,
            "reason": reject.reason,
            "source": &*self.sources[self.file_input],
            "raw": reject.raw,
        });
        if self.rejects.is_none() {
            self.rejects = Some(std::io::BufWriter::new(fs_err::File::create(
                &self.rejects_tmp,
            )?));
        }
        if let Some(out) = self.rejects.as_mut() {
            // Writing a `Value` fails only in the file below (an fs-err error naming it).
            serde_json::to_writer(&mut *out, &line).map_err(|err| Error::Io(err.into()))?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<ChunkRecord> {
        self.flush()?;
        for (source, &records) in self.sources.iter().zip(&self.records_by_input) {
            if records > 0 {
                self.counts
                    .by_source
                    .entry(source.to_string())
                    .or_default()
                    .records += records;
            }
        }
        if let Some(writer) = self.writer.take() {
            self.parts.push(writer.finish()?);
        }
        let state = self.context.state;
        state.write_hashes(self.chunk, &self.hashes)?;
        let rejects_path = state.rejects_path(self.chunk);
        match self.rejects.take() {
            Some(out) => {
                let file = out
                    .into_inner()
                    .map_err(|err| Error::Io(err.into_error()))?;
                file.sync_all()?;
                fs_err::rename(&self.rejects_tmp, &rejects_path)?;
            }
            None if rejects_path.exists() => fs_err::remove_file(&rejects_path)?,
            None => {}
        }
        let record = ChunkRecord {
            fingerprint: state.fingerprint().to_owned(),
            chunk: self.chunk,
            parts: self.parts,
            counts: self.counts,
            rejects: self.reject_count,
            merged: false,
        };
        state.commit(&record)?;
        Ok(record)
    }

    fn handle(&mut self, result: Result<()>) -> ControlFlow<()> {
        if let Err(err) = result {
            self.error = Some(err);
            return ControlFlow::Break(());
        }
        if self.abort.load(Ordering::Relaxed) {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// Adds the documents of `batch` (schema of [`schema`]) to the output counts, a run of rows
/// of the same language and source at a time.
pub(crate) fn count_output(counts: &mut Counts, batch: &RecordBatch) {
    use arrow::array::AsArray;
    let texts = batch.column(1).as_string::<i32>();
    let langs = batch.column(2).as_string::<i32>();
    let sources = batch.column(3).as_string::<i32>();
    let mut run: Option<(&str, &str)> = None;
    let (mut documents, mut text_bytes) = (0, 0);
    for row in 0..batch.num_rows() {
        let key = (langs.value(row), sources.value(row));
        if run != Some(key) {
            if let Some((lang, source)) = run {
                counts.output(lang, source, documents, text_bytes);
            }
            run = Some(key);
            (documents, text_bytes) = (0, 0);
        }
        documents += 1;
        text_bytes += texts.value_length(row) as u64;
    }
    if let Some((lang, source)) = run {
        counts.output(lang, source, documents, text_bytes);
    }
}

impl Sink for ChunkSink<'_> {
    fn record(&mut self, record: Record<'_>) -> ControlFlow<()> {
        let result = self.add_record(record);
        self.handle(result)
    }

    fn reject(&mut self, reject: Reject) -> ControlFlow<()> {
        let result = self.add_reject(reject);
        self.handle(result)
    }
}

fn panic_error(chunk: usize, input: &str, message: &str) -> Error {
    Error::Internal(format!(
        "a worker panicked on chunk {chunk} ({input}): {message}; the chunks finished before it \
         are kept, and a rerun resumes from them"
    ))
}
