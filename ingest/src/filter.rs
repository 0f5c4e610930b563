//! The `--where` predicate: SQL planned once against the documents schema (by tinyforge-sql,
//! through DataFusion), then evaluated on every batch of documents.

use arrow::array::{BooleanArray, RecordBatch};
use arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Filter(tinyforge_sql::Filter);

impl Filter {
    /// Plans `sql` against `schema`; an unknown column or a type error is reported here, before
    /// any input is read.
    pub fn new(sql: &str, schema: &SchemaRef) -> Result<Filter> {
        tinyforge_sql::Filter::new(sql, schema)
            .map(Filter)
            .map_err(|err| config_error(sql, err))
    }

    /// Which rows pass (a NULL result does not pass, as in SQL).
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        self.0
            .evaluate(batch)
            .map_err(|err| config_error(self.0.sql(), err))
    }
}

fn config_error(sql: &str, err: tinyforge_sql::Error) -> Error {
    Error::Config {
        file: "--where".into(),
        key: sql.into(),
        message: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::part::{Docs, schema};

    #[test]
    fn filters_by_language_and_length() {
        let schema = schema(&[]);
        let mut docs = Docs::with_capacity(0, 3, 64);
        for (text, lang) in [
            ("short", "en"),
            ("a much longer english text", "en"),
            ("很长很长的中文文本内容", "zh"),
        ] {
            docs.ids.push(1);
            docs.texts.append_value(text);
            docs.langs.push(lang);
            docs.sources.push("s".into());
        }
        let batch = docs.take_batch(&schema).unwrap();
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
