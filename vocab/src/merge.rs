//! Summing partial counts (one per `--shard i/n` task) with SQL (tinyforge-sql, DataFusion),
//! in one process or partitioned: bucket `b/B` sums only the token ids `i % B == b` of every
//! partial (an array task of its own), and joining the B bucket tables gives the one-process
//! table. The table is one row per token id, so a merge never holds more than the vocabulary;
//! buckets split the summing of many partials over machines.

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, UInt32Type, UInt64Type};
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::counts::Counts;
use crate::error::{Error, Result};
use tinyforge_task::Shard;

/// The query: one row per token id (of the bucket, for a bucket task), counts summed; a token id
/// spelled differently in two partials means they were made with different tokenizers.
fn sql(bucket: Option<Shard>) -> String {
    let filter = match bucket {
        Some(b) => format!("WHERE token_id % {} = {} ", b.count, b.index),
        None => String::new(),
    };
    format!(
        "SELECT token_id, min(token) AS token, max(token) AS token_check, sum(count) AS count \
         FROM counts {filter}GROUP BY token_id ORDER BY token_id"
    )
}

/// What a partial's metadata says about it.
struct PartialInfo {
    path: PathBuf,
    sha: String,
    shard: Shard,
    bucket: Option<Shard>,
    documents: u64,
    bytes: u64,
}

fn partial_info(path: &Path) -> Result<PartialInfo> {
    let file = fs_err::File::open(path)?;
    let reader =
        SerializedFileReader::new(file.into_parts().0).map_err(|e| Error::parquet(path, e))?;
    let meta = Counts::read_metadata(path, reader.metadata().file_metadata())?;
    Ok(PartialInfo {
        path: path.to_owned(),
        sha: meta.sha,
        shard: meta.shard,
        bucket: meta.bucket,
        documents: meta.documents,
        bytes: meta.bytes,
    })
}

/// Each of `n` tasks (or buckets) exactly once: `index_of` gives a table's index.
fn check_complete(
    infos: &[PartialInfo],
    n: u32,
    what: &str,
    index_of: impl Fn(&PartialInfo) -> u32,
) -> Result<()> {
    let mut seen: Vec<Option<&Path>> = vec![None; n as usize];
    for info in infos {
        let index = index_of(info);
        if let Some(earlier) = seen[index as usize] {
            return Err(Error::InvalidOption(format!(
                "{what} {index}/{n} appears twice: {} and {}",
                earlier.display(),
                info.path.display()
            )));
        }
        seen[index as usize] = Some(&info.path);
    }
    let missing: Vec<String> = (0..n)
        .filter(|&i| seen[i as usize].is_none())
        .map(|i| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() {
        return Err(Error::InvalidOption(format!(
            "partials are incomplete: {what}(s) {} missing",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// Checks that bucket tables belong together: every bucket of one split once, each over the
/// same partials (the same documents and bytes).
fn check_buckets(infos: &[PartialInfo]) -> Result<u32> {
    let Some(first) = infos[0].bucket else {
        return Err(Error::Internal("not a bucket table".into()));
    };
    for info in infos {
        let Some(bucket) = info.bucket else {
            return Err(Error::InvalidOption(format!(
                "{} is a bucket table and {} is not: join the buckets first",
                infos[0].path.display(),
                info.path.display()
            )));
        };
        if bucket.count != first.count
            || (info.documents, info.bytes) != (infos[0].documents, infos[0].bytes)
        {
            return Err(Error::InvalidOption(format!(
                "{} (bucket {bucket}, {} documents) and {} (bucket {first}, {} documents) \
                 come from different merges",
                info.path.display(),
                info.documents,
                infos[0].path.display(),
                infos[0].documents
            )));
        }
    }
    check_complete(infos, first.count, "bucket", |i| {
        i.bucket.map_or(0, |b| b.index)
    })?;
    Ok(first.count)
}

/// Checks that the partials belong together: one tokenizer, and when they all come from the
/// same `--shard i/n` split, every task exactly once.
fn check_partials(infos: &[PartialInfo]) -> Result<()> {
    let first = &infos[0];
    for other in &infos[1..] {
        if other.sha != first.sha {
            return Err(Error::TokenizerMismatch {
                first: first.path.clone(),
                first_sha: first.sha.clone(),
                other: other.path.clone(),
                other_sha: other.sha.clone(),
            });
        }
    }
    let n = first.shard.count;
    if n > 1 && infos.iter().all(|i| i.shard.count == n) {
        check_complete(infos, n, "shard", |i| i.shard.index)?;
    }
    Ok(())
}

/// Sums `partials` into one counts table; with `bucket` b/B, only the token ids of that bucket
/// (a table for a later join). Partials that are the B bucket tables of one merge are joined
/// into the whole table.
pub fn merge_counts(partials: &[PathBuf], bucket: Option<Shard>) -> Result<Counts> {
    if partials.is_empty() {
        return Err(Error::InvalidOption("no partial counts to merge".into()));
    }
    let infos = partials
        .iter()
        .map(|p| partial_info(p))
        .collect::<Result<Vec<_>>>()?;
    check_partials(&infos)?;
    let joining = infos.iter().any(|i| i.bucket.is_some());
    if joining {
        check_buckets(&infos)?;
        if bucket.is_some() {
            return Err(Error::InvalidOption(
                "--bucket splits partial counts; these are bucket tables already".into(),
            ));
        }
    }
    if let Some(b) = bucket
        && (b.count == 0 || b.index >= b.count)
    {
        return Err(Error::InvalidOption(format!("bucket {b}: no such bucket")));
    }
    let paths: Vec<String> = partials
        .iter()
        .map(|p| Ok(fs_err::canonicalize(p)?.to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;

    let query = sql(bucket);
    let batches = tinyforge_sql::query(
        tinyforge_sql::Table::Files(&paths),
        "counts",
        &[query.as_str()],
        1,
    )
    .map_err(|e| Error::DataFusion(e.to_string()))?
    .remove(0);

    let mut counts: Vec<u64> = Vec::new();
    let mut tokens: Vec<Option<String>> = Vec::new();
    let cast_err = |e: arrow::error::ArrowError| Error::DataFusion(e.to_string());
    for batch in batches {
        let ids = cast(batch.column(0), &DataType::UInt32).map_err(cast_err)?;
        let ids = ids.as_primitive::<UInt32Type>();
        let low = cast(batch.column(1), &DataType::Utf8).map_err(cast_err)?;
        let high = cast(batch.column(2), &DataType::Utf8).map_err(cast_err)?;
        let (low, high) = (low.as_string::<i32>(), high.as_string::<i32>());
        let sums = cast(batch.column(3), &DataType::UInt64).map_err(cast_err)?;
        let sums = sums.as_primitive::<UInt64Type>();
        for row in 0..batch.num_rows() {
            let id = ids.value(row) as usize;
            if low.value(row) != high.value(row) {
                return Err(Error::Counts {
                    path: partials[0].clone(),
                    message: format!(
                        "token_id {id} is {:?} in one partial and {:?} in another",
                        low.value(row),
                        high.value(row)
                    ),
                });
            }
            if sums.is_null(row) {
                return Err(Error::Internal(format!("null sum for token_id {id}")));
            }
            if id >= counts.len() {
                counts.resize(id + 1, 0);
                tokens.resize(id + 1, None);
            }
            counts[id] = sums.value(row);
            tokens[id] = Some(low.value(row).to_owned());
        }
    }
    // Bucket tables each carry the whole run's totals; partials carry their own.
    let (documents, bytes) = if joining {
        (infos[0].documents, infos[0].bytes)
    } else {
        (
            infos.iter().map(|i| i.documents).sum(),
            infos.iter().map(|i| i.bytes).sum(),
        )
    };
    Ok(Counts {
        counts,
        tokens,
        tokenizer_sha256: infos[0].sha.clone(),
        shard: Shard::default(),
        bucket,
        documents,
        bytes,
    })
}
