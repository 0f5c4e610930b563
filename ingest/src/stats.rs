//! `tinyforge stats`: SQL over a documents folder through DataFusion. The folder is the table
//! `docs`.

use std::path::Path;

use arrow::array::RecordBatch;

use crate::error::{Error, Result};

/// The queries of the default summary, by title.
pub const SUMMARY_QUERIES: [(&str, &str); 4] = [
    (
        "totals",
        "SELECT count(*) AS documents, sum(character_length(text)) AS characters, \
         sum(octet_length(text)) AS bytes, count(DISTINCT lang) AS languages, \
         count(DISTINCT source) AS sources FROM docs",
    ),
    (
        "by_lang",
        "SELECT lang, count(*) AS documents, sum(character_length(text)) AS characters, \
         round(100.0 * sum(character_length(text)) / sum(sum(character_length(text))) OVER (), 2) AS pct_characters \
         FROM docs GROUP BY lang ORDER BY characters DESC, lang",
    ),
    (
        "by_source",
        "SELECT source, count(*) AS documents, sum(character_length(text)) AS characters, \
         round(100.0 * sum(character_length(text)) / sum(sum(character_length(text))) OVER (), 2) AS pct_characters \
         FROM docs GROUP BY source ORDER BY characters DESC, source",
    ),
    (
        "length_chars",
        "SELECT min(n) AS min, approx_percentile_cont(0.1) WITHIN GROUP (ORDER BY n) AS p10, \
         approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY n) AS p50, \
         approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY n) AS p90, \
         approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY n) AS p99, max(n) AS max, \
         round(avg(n), 1) AS mean FROM (SELECT character_length(text) AS n FROM docs)",
    ),
];

/// Runs SQL queries against the documents folder `dir`, registered as the table `docs`.
pub fn query(dir: &Path, queries: &[&str], threads: usize) -> Result<Vec<Vec<RecordBatch>>> {
    if !dir.is_dir() {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{}: no such documents folder", dir.display()),
        )));
    }
    let table = tinyforge_sql::Table::Folder {
        dir,
        extension: ".parquet",
    };
    Ok(tinyforge_sql::query(table, "docs", queries, threads)?)
}

/// The default summary: `(title, rows)` per query of [`SUMMARY_QUERIES`].
pub fn summary(dir: &Path, threads: usize) -> Result<Vec<(&'static str, Vec<RecordBatch>)>> {
    let sql: Vec<&str> = SUMMARY_QUERIES.iter().map(|(_, sql)| *sql).collect();
    let results = query(dir, &sql, threads)?;
    Ok(SUMMARY_QUERIES
        .iter()
        .map(|(title, _)| *title)
        .zip(results)
        .collect())
}

/// Rows as JSON objects (numbers stay numbers).
pub fn to_json_rows(batches: &[RecordBatch]) -> Vec<serde_json::Value> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{
        DataType, Float32Type, Float64Type, Int32Type, Int64Type, UInt32Type, UInt64Type,
    };
    use arrow::util::display::ArrayFormatter;
    let mut rows = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut object = serde_json::Map::new();
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                let value = if column.is_null(row) {
                    serde_json::Value::Null
                } else {
                    match column.data_type() {
                        DataType::Int64 => column.as_primitive::<Int64Type>().value(row).into(),
                        DataType::Int32 => column.as_primitive::<Int32Type>().value(row).into(),
                        DataType::UInt64 => column.as_primitive::<UInt64Type>().value(row).into(),
                        DataType::UInt32 => column.as_primitive::<UInt32Type>().value(row).into(),
                        DataType::Float64 => column.as_primitive::<Float64Type>().value(row).into(),
                        DataType::Float32 => {
                            f64::from(column.as_primitive::<Float32Type>().value(row)).into()
                        }
                        DataType::Boolean => column.as_boolean().value(row).into(),
                        _ => match ArrayFormatter::try_new(column.as_ref(), &Default::default()) {
                            Ok(formatter) => formatter.value(row).to_string().into(),
                            Err(_) => serde_json::Value::Null,
                        },
                    }
                };
                object.insert(field.name().clone(), value);
            }
            rows.push(serde_json::Value::Object(object));
        }
    }
    rows
}

/// Rows as a text table.
pub fn to_table(batches: &[RecordBatch]) -> Result<String> {
    Ok(arrow::util::pretty::pretty_format_batches(batches)?.to_string())
}
