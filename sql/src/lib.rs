//! SQL for the data stages, through DataFusion: queries over a folder or a list of Parquet
//! files registered as one table, and row predicates planned once and evaluated on Arrow
//! batches. The only crate that calls DataFusion: its generics are instantiated here, at the
//! build profile's low optimisation, rather than in every optimised stage crate (they took
//! 430 CPU-seconds of a from-scratch build there), and DataFusion's deep recursion gets the
//! stacks it needs in unoptimised builds in one place.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

/// Stack of the threads that plan and run queries: unoptimised DataFusion recurses deeply.
const STACK_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Parsing, planning or running SQL failed.
    #[error("{0}")]
    Sql(String),
    /// A predicate does not give a boolean.
    #[error("is not a condition (it gives {0})")]
    NotACondition(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(error: datafusion::error::DataFusionError) -> Self {
        Error::Sql(error.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the rows of the table come from.
pub enum Table<'a> {
    /// Every `*.<extension>` Parquet file of a folder.
    Folder { dir: &'a Path, extension: &'a str },
    /// These Parquet files, read as one table.
    Files(&'a [String]),
}

/// Runs `queries` in order against `table` registered as `name`, on `threads` threads.
pub fn query(
    table: Table<'_>,
    name: &str,
    queries: &[&str],
    threads: usize,
) -> Result<Vec<Vec<RecordBatch>>> {
    let threads = threads.max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_stack_size(STACK_BYTES)
        .enable_all()
        .build()?;
    // Planning runs on the thread that blocks on it: one with room, whatever the caller's.
    let run = || {
        runtime.block_on(async {
            let config = SessionConfig::new().with_target_partitions(threads);
            let context = SessionContext::new_with_config(config);
            match table {
                Table::Folder { dir, extension } => {
                    let mut url = dir.display().to_string();
                    if !url.ends_with('/') {
                        url.push('/');
                    }
                    let options = ParquetReadOptions::default().file_extension(extension);
                    context.register_parquet(name, &url, options).await?;
                }
                Table::Files(paths) => {
                    let frame = context
                        .read_parquet(paths.to_vec(), ParquetReadOptions::default())
                        .await?;
                    context.register_table(name, frame.into_view())?;
                }
            }
            let mut results = Vec::new();
            for sql in queries {
                results.push(context.sql(sql).await?.collect().await?);
            }
            Ok(results)
        })
    };
    on_big_stack(run)
}

/// Runs `work` on a thread with a [`STACK_BYTES`] stack and waits for it.
fn on_big_stack<T: Send>(work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(STACK_BYTES)
            .spawn_scoped(scope, work)?
            .join()
            .map_err(|_| Error::Sql("the SQL thread panicked".into()))?
    })
}

/// A row predicate (`--where`): SQL parsed and planned once against a schema, then evaluated on
/// every batch (no query engine run, no async).
#[derive(Debug, Clone)]
pub struct Filter {
    sql: String,
    expr: Arc<dyn PhysicalExpr>,
}

impl Filter {
    /// Plans `sql` against `schema`; an unknown column or a type error is reported here.
    pub fn new(sql: &str, schema: &SchemaRef) -> Result<Filter> {
        on_big_stack(|| {
            let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
            let context = SessionContext::new();
            let expr = context.parse_sql_expr(sql, &df_schema)?;
            let expr = context.create_physical_expr(expr, &df_schema)?;
            Ok(Filter {
                sql: sql.to_owned(),
                expr,
            })
        })
    }

    /// The SQL it was made from.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Which rows pass (a NULL result does not pass, as in SQL).
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let value = self.expr.evaluate(batch)?;
        let array = value.into_array(batch.num_rows())?;
        let Some(mask) = array.as_boolean_opt() else {
            return Err(Error::NotACondition(array.data_type().to_string()));
        };
        Ok(mask.iter().map(|v| Some(v == Some(true))).collect())
    }
}
