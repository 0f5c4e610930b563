//! Summing partial counts (one per `--shard i/n` task) with SQL (tinyforge-sql, DataFusion).

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, UInt32Type, UInt64Type};
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::counts::Counts;
use crate::error::{Error, Result};
use tinyforge_task::Shard;

/// The query: one row per token id, counts summed; a token id spelled differently in two
/// partials means they were made with different tokenizers.
const SQL: &str = "SELECT token_id, min(token) AS token, max(token) AS token_check, \
                   sum(count) AS count FROM counts GROUP BY token_id ORDER BY token_id";

/// What a partial's metadata says about it.
struct PartialInfo {
    path: PathBuf,
    sha: String,
    shard: Shard,
    documents: u64,
    bytes: u64,
}

fn partial_info(path: &Path) -> Result<PartialInfo> {
    let file = fs_err::File::open(path)?;
    let reader =
        SerializedFileReader::new(file.into_parts().0).map_err(|e| Error::parquet(path, e))?;
    let counts_meta = Counts::read_metadata(path, reader.metadata().file_metadata())?;
    Ok(PartialInfo {
        path: path.to_owned(),
        sha: counts_meta.0,
        shard: counts_meta.1,
        documents: counts_meta.2,
        bytes: counts_meta.3,
    })
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
        let mut seen: Vec<Option<&Path>> = vec![None; n as usize];
        for info in infos {
            if let Some(earlier) = seen[info.shard.index as usize] {
                return Err(Error::InvalidOption(format!(
                    "shard {} appears twice: {} and {}",
                    info.shard,
                    earlier.display(),
                    info.path.display()
                )));
            }
            seen[info.shard.index as usize] = Some(&info.path);
        }
        let missing: Vec<String> = (0..n)
            .filter(|&i| seen[i as usize].is_none())
            .map(|i| format!("{i}/{n}"))
            .collect();
        if !missing.is_empty() {
            return Err(Error::InvalidOption(format!(
                "partials are incomplete: shard(s) {} missing",
                missing.join(", ")
            )));
        }
    }
    Ok(())
}

/// Sums `partials` into one counts table.
pub fn merge_counts(partials: &[PathBuf]) -> Result<Counts> {
    if partials.is_empty() {
        return Err(Error::InvalidOption("no partial counts to merge".into()));
    }
    let infos = partials
        .iter()
        .map(|p| partial_info(p))
        .collect::<Result<Vec<_>>>()?;
    check_partials(&infos)?;
    let paths: Vec<String> = partials
        .iter()
        .map(|p| Ok(fs_err::canonicalize(p)?.to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;

    let batches = tinyforge_sql::query(tinyforge_sql::Table::Files(&paths), "counts", &[SQL], 1)
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
    Ok(Counts {
        counts,
        tokens,
        tokenizer_sha256: infos[0].sha.clone(),
        shard: Shard::default(),
        documents: infos.iter().map(|i| i.documents).sum(),
        bytes: infos.iter().map(|i| i.bytes).sum(),
    })
}
