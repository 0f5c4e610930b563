//! The `--where` predicate: SQL parsed and planned once by DataFusion against the documents
//! schema, then evaluated on every batch of documents (no query engine run, no async).

use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Filter {
    sql: String,
    expr: Arc<dyn PhysicalExpr>,
}

impl Filter {
    /// Plans `sql` against `schema`; an unknown column or a type error is reported here, before
    /// any input is read.
    pub fn new(sql: &str, schema: &SchemaRef) -> Result<Filter> {
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        let context = SessionContext::new();
        let expr = context
            .parse_sql_expr(sql, &df_schema)
            .map_err(|err| Error::Config {
                file: "--where".into(),
                key: sql.into(),
                message: err.to_string(),
            })?;
        let expr = context
            .create_physical_expr(expr, &df_schema)
            .map_err(|err| Error::Config {
                file: "--where".into(),
                key: sql.into(),
                message: err.to_string(),
            })?;
        Ok(Filter {
            sql: sql.to_owned(),
            expr,
        })
    }

    /// Which rows pass (a NULL result does not pass, as in SQL).
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let value = self.expr.evaluate(batch)?;
        let array = value.into_array(batch.num_rows())?;
        let Some(mask) = array.as_boolean_opt() else {
            return Err(Error::Config {
                file: "--where".into(),
                key: self.sql.clone(),
                message: format!("is not a condition (it gives {})", array.data_type()),
            });
        };
        // NULL counts as false.
        Ok(mask.iter().map(|v| Some(v == Some(true))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::part::{Docs, schema};

    #[test]
    fn filters_by_language_and_length() {
        let schema = schema(&[]);
        let mut docs = Docs::with_columns(0);
        for (text, lang) in [
            ("short", "en"),
            ("a much longer english text", "en"),
            ("很长很长的中文文本内容", "zh"),
        ] {
            docs.ids.push(1);
            docs.texts.push(text.into());
            docs.langs.push(lang);
            docs.sources.push("s".into());
        }
        let batch = docs.to_batch(&schema).unwrap();
        let filter = Filter::new("lang IN ('zh', 'en') AND length(text) > 8", &schema).unwrap();
        let mask = filter.evaluate(&batch).unwrap();
        assert_eq!(
            mask.iter().collect::<Vec<_>>(),
            vec![Some(false), Some(true), Some(true)]
        );
        assert!(Filter::new("nosuch > 1", &schema).is_err());
        let not_bool = Filter::new("length(text)", &schema).unwrap();
        assert!(not_bool.evaluate(&batch).is_err());
    }
}
