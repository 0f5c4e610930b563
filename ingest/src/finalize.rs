//! The final step once every chunk is done, by one run or by n `--shard` tasks: exact
//! deduplication across chunks (the first occurrence in plan order wins, exactly as if one
//! process had read everything in order), the rejects file and `_manifest.json`.

use arrow::array::{AsArray, BooleanArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use xxhash_rust::xxh3::xxh3_128;

use tinyforge_task::Shard;

use crate::config::IngestConfig;
use crate::dedup::{self, Drops};
use crate::error::{Error, Result};
use crate::part::{PartWriter, schema, write_atomic};
use crate::plan::Plan;
use crate::report::{Counts, Report};
use crate::run::{build_report, count_output};
use crate::state::{ChunkRecord, HashSet128, MANIFEST, REJECTS, State};

/// What the deduplication steps did, on stdout (never in the manifest, whose bytes must not
/// depend on how the work was split).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DedupSummary {
    /// Hash buckets the duplicates were found in.
    pub buckets: u32,
    /// Buckets this process computed (the others were done by `--dedup-bucket` tasks).
    pub buckets_run: u32,
    /// Of this process's buckets: distinct hashes and later occurrences.
    pub distinct: u64,
    pub duplicates: u64,
    /// Chunks this process rewrote without their duplicates.
    pub chunks_rewritten: usize,
}

/// Every chunk's record, in plan order; an error names how many are missing.
pub(crate) fn all_records(
    config: &IngestConfig,
    plan: &Plan,
    state: &State,
) -> Result<Vec<ChunkRecord>> {
    let mut records = Vec::with_capacity(plan.chunks.len());
    let mut missing = 0;
    for chunk in 0..plan.chunks.len() {
        match state.finished(chunk)? {
            Some(record) => records.push(record),
            None => missing += 1,
        }
    }
    if missing > 0 {
        return Err(Error::State {
            path: config.out.clone(),
            message: format!(
                "{missing} of {} chunks are not done yet; run the remaining --shard tasks, then merge again",
                plan.chunks.len()
            ),
        });
    }
    Ok(records)
}

/// The bucket count: the config's, else that of the drops files already written, else 1.
fn bucket_count(config: &IngestConfig) -> Result<u32> {
    Ok(match config.dedup_buckets {
        Some(n) => n,
        None => dedup::buckets_on_disk(&config.out)?.unwrap_or(1),
    })
}

/// Runs each of `buckets` that is not done yet, adding what it found to `summary`.
fn run_buckets(
    state: &State,
    plan: &Plan,
    buckets: impl IntoIterator<Item = Shard>,
    summary: &mut DedupSummary,
) -> Result<()> {
    for bucket in buckets {
        if !dedup::bucket_done(state, bucket)? {
            let stats = dedup::run_bucket(state, plan.chunks.len(), bucket)?;
            summary.buckets_run += 1;
            summary.distinct += stats.distinct;
            summary.duplicates += stats.duplicates;
        }
    }
    Ok(())
}

/// Rewrites each of `records` (in chunk order) that holds duplicates and is not merged yet.
fn rewrite_records<'r>(
    config: &IngestConfig,
    plan: &Plan,
    state: &State,
    records: impl IntoIterator<Item = &'r mut ChunkRecord>,
    summary: &mut DedupSummary,
) -> Result<()> {
    let mut drops = Drops::open(state, summary.buckets)?;
    for record in records {
        let set = drops.for_chunk(record.chunk)?;
        if !set.is_empty() && !record.merged {
            rewrite_chunk(config, plan, state, record, &set)?;
            summary.chunks_rewritten += 1;
        }
    }
    Ok(())
}

/// `--dedup-bucket b/B`: finds the duplicates of one hash bucket (every chunk must be done:
/// the caller has checked with [`all_records`]).
pub fn dedup_bucket(
    config: &IngestConfig,
    plan: &Plan,
    state: &State,
    bucket: Shard,
) -> Result<DedupSummary> {
    if let Some(n) = config.dedup_buckets
        && n != bucket.count
    {
        return Err(Error::Config {
            file: "flags".into(),
            key: "dedup_buckets".into(),
            message: format!("is {n}, but this task is bucket {bucket}"),
        });
    }
    let mut summary = DedupSummary {
        buckets: bucket.count,
        ..DedupSummary::default()
    };
    run_buckets(state, plan, [bucket], &mut summary)?;
    Ok(summary)
}

/// `--dedup-rewrite i/n`: rewrites the chunks i, i+n, ... of `records` (every chunk's) that
/// hold duplicates (every bucket must be done).
pub fn dedup_rewrite(
    config: &IngestConfig,
    plan: &Plan,
    state: &State,
    task: Shard,
    records: &mut [ChunkRecord],
) -> Result<DedupSummary> {
    let mut summary = DedupSummary {
        buckets: bucket_count(config)?,
        ..DedupSummary::default()
    };
    let owned = records.iter_mut().filter(|r| task.owns(r.chunk));
    rewrite_records(config, plan, state, owned, &mut summary)?;
    Ok(summary)
}

pub fn finalize(config: &IngestConfig, plan: &Plan, state: &State) -> Result<Report> {
    let mut records = all_records(config, plan, state)?;
    let mut summary = None;
    if config.dedup {
        // Each bucket not already done by a `--dedup-bucket` task is run here, one after the
        // other, so memory stays one bucket's; then the chunks holding a document seen in an
        // earlier chunk are rewritten (those a `--dedup-rewrite` task did are marked merged).
        let buckets = bucket_count(config)?;
        let mut done = DedupSummary {
            buckets,
            ..DedupSummary::default()
        };
        let all = (0..buckets).map(|index| Shard {
            index,
            count: buckets,
        });
        run_buckets(state, plan, all, &mut done)?;
        rewrite_records(config, plan, state, records.iter_mut(), &mut done)?;
        summary = Some(done);
    }
    let mut counts = Counts::default();
    // The chunks' rejects are copied through, never held: a corpus may reject millions of
    // records.
    let rejects_path = config.out.join(REJECTS);
    let mut rejects = tinyforge_task::AtomicFile::create(&rejects_path)?;
    for record in &records {
        counts.add(&record.counts);
        let path = state.rejects_path(record.chunk);
        if path.exists() {
            std::io::copy(&mut fs_err::File::open(&path)?, &mut rejects)?;
        }
    }
    rejects.commit()?;
    let report = build_report(
        config,
        plan,
        &counts,
        &records,
        true,
        Some(config.name_of(&rejects_path)),
    );
    let manifest = serde_json::json!({
        "format": "tinyforge-documents",
        "version": 1,
        "fingerprint": plan.fingerprint,
        "columns": schema(&config.keep_columns).fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>(),
        "documents": counts.documents,
        "text_bytes": counts.text_bytes,
        "parts": records.iter().flat_map(|r| r.parts.iter()).collect::<Vec<_>>(),
        "summary": &report,
    });
    let bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|err| Error::Internal(err.to_string()))?;
    write_atomic(&config.out.join(MANIFEST), &bytes)?;
    Ok(Report {
        dedup: summary,
        ..report
    })
}

/// Rewrites a chunk's parts without the documents whose hash is in `drops` (they appeared in
/// an earlier chunk) or appeared earlier in this chunk. Hashes are recomputed from the parts
/// themselves, and the chunk is marked merged, so a merge killed half-way and run again gives
/// the same result.
fn rewrite_chunk(
    config: &IngestConfig,
    plan: &Plan,
    state: &State,
    record: &mut ChunkRecord,
    drops: &HashSet128,
) -> Result<()> {
    let schema = schema(&config.keep_columns);
    let mut seen_here: HashSet128 = HashSet128::default();
    let mut hashes = Vec::new();
    let mut output = Counts::default();
    let mut parts = Vec::new();
    for (index, part) in record.parts.iter().enumerate() {
        let path = config.out.join(&part.file);
        state.fetch(&path)?;
        let file = fs_err::File::open(&path)?.into_parts().0;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(8192).build())
            .map_err(|source| Error::Parquet {
                path: path.clone(),
                source,
            })?;
        let mut writer = PartWriter::create(
            &config.out,
            &plan.part_name(record.chunk, index),
            &schema,
            config.zstd_level,
            config.row_group_bytes,
        )?;
        for batch in reader {
            let batch = batch?;
            let texts = batch.column(1).as_string::<i32>();
            let mut keep = Vec::with_capacity(batch.num_rows());
            for row in 0..batch.num_rows() {
                let hash = xxh3_128(texts.value(row).as_bytes());
                let first = !drops.contains(&hash) && seen_here.insert(hash);
                if first {
                    hashes.push(hash);
                }
                keep.push(first);
            }
            let batch = arrow::compute::filter_record_batch(&batch, &BooleanArray::from(keep))?;
            count_output(&mut output, &batch);
            writer.append(&batch)?;
        }
        parts.push(writer.finish()?);
    }
    state.write_hashes(record.chunk, &hashes)?;
    record.counts.clear_output();
    record.counts.add(&Counts {
        by_lang: output.by_lang.clone(),
        by_source: output.by_source.clone(),
        documents: output.documents,
        text_bytes: output.text_bytes,
        ..Counts::default()
    });
    record.counts.dropped.duplicate = record.counts.candidates - record.counts.documents;
    record.parts = parts;
    record.merged = true;
    state.commit(record)
}
