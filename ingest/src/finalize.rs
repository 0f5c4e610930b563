//! The final step once every chunk is done, by one run or by n `--shard` tasks: exact
//! deduplication across chunks (the first occurrence in plan order wins, exactly as if one
//! process had read everything in order), the rejects file and `_manifest.json`.

use arrow::array::{AsArray, BooleanArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use xxhash_rust::xxh3::xxh3_128;

use crate::config::IngestConfig;
use crate::error::{Error, Result};
use crate::part::{PartWriter, schema, write_atomic};
use crate::plan::Plan;
use crate::report::{Counts, Report};
use crate::run::{build_report, count_output};
use crate::state::{ChunkRecord, HashSet128, MANIFEST, REJECTS, State};

pub fn finalize(config: &IngestConfig, plan: &Plan, state: &State) -> Result<Report> {
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
    if config.dedup {
        // Decide sequentially from the hash files (16 bytes a document), then rewrite only
        // the chunks that hold a document seen in an earlier chunk.
        let mut seen: HashSet128 = HashSet128::default();
        let mut to_rewrite = Vec::new();
        for record in &records {
            let hashes = state.read_hashes(record.chunk)?;
            let mut duplicate = false;
            for hash in hashes {
                duplicate |= !seen.insert(hash);
            }
            if duplicate {
                to_rewrite.push(record.chunk);
            }
        }
        // `seen` now holds every hash; a rewrite needs the hashes of earlier chunks only, so
        // rebuild the set incrementally in chunk order while rewriting.
        drop(seen);
        if !to_rewrite.is_empty() {
            let mut earlier: HashSet128 = HashSet128::default();
            let mut next = 0;
            for record in records.iter_mut() {
                if to_rewrite.get(next) == Some(&record.chunk) {
                    rewrite_chunk(config, plan, state, record, &earlier)?;
                    next += 1;
                }
                earlier.extend(state.read_hashes(record.chunk)?);
            }
        }
    }
    let mut counts = Counts::default();
    let mut rejects = Vec::new();
    for record in &records {
        counts.add(&record.counts);
        let path = state.rejects_path(record.chunk);
        if path.exists() {
            rejects.extend(fs_err::read(&path)?);
        }
    }
    let rejects_path = config.out.join(REJECTS);
    write_atomic(&rejects_path, &rejects)?;
    let report = build_report(
        config,
        plan,
        &counts,
        &records,
        true,
        Some(rejects_path.display().to_string()),
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
    Ok(report)
}

/// Rewrites a chunk's parts without the documents whose text appeared in an earlier chunk
/// (or earlier in this chunk). Hashes are recomputed from the parts themselves, so a merge
/// killed half-way and run again gives the same result.
fn rewrite_chunk(
    config: &IngestConfig,
    plan: &Plan,
    state: &State,
    record: &mut ChunkRecord,
    earlier: &HashSet128,
) -> Result<()> {
    let schema = schema(&config.keep_columns);
    let mut seen_here: HashSet128 = HashSet128::default();
    let mut hashes = Vec::new();
    let mut output = Counts::default();
    let mut parts = Vec::new();
    for (index, part) in record.parts.iter().enumerate() {
        let path = config.out.join(&part.file);
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
                let first = !earlier.contains(&hash) && seen_here.insert(hash);
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
