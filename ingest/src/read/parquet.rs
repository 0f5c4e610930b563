//! Parquet inputs, one row group at a time, reading only the columns the spec names.

use std::ops::ControlFlow;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{FieldSpec, Record, Reject, Sink};
use crate::error::Location;
use crate::plan::InputFile;

pub(super) fn read_row_group(
    file: &InputFile,
    row_group: Option<usize>,
    spec: &FieldSpec,
    sink: &mut dyn Sink,
) -> ControlFlow<()> {
    let groups = match &file.row_groups {
        Some(Ok(groups)) => groups,
        Some(Err(reason)) => {
            return sink.reject(Reject {
                location: Location::File,
                reason: reason.clone(),
                raw: None,
                raw_bytes: file.size,
            });
        }
        None => return ControlFlow::Continue(()),
    };
    let Some(group) = row_group else {
        // A file without row groups holds no rows.
        return ControlFlow::Continue(());
    };
    let first_row = groups[group].first_row;
    let unit_bytes = groups[group].bytes;
    let fail = |sink: &mut dyn Sink, reason: String| {
        sink.reject(Reject {
            location: Location::RowGroup { row_group: group },
            reason,
            raw: None,
            raw_bytes: unit_bytes,
        })
    };
    let opened = file
        .chunk_source()
        .map_err(|err| err.to_string())
        .and_then(|source| {
            ParquetRecordBatchReaderBuilder::try_new(source)
                .map_err(|err| format!("corrupt Parquet file: {err}"))
        });
    let builder = match opened {
        Ok(builder) => builder,
        Err(reason) => return fail(sink, reason),
    };
    let arrow_schema = builder.schema().clone();
    let column_names: Vec<&str> = arrow_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    for name in spec.text.fields().into_iter().chain(spec.id.as_deref()) {
        if !column_names.contains(&name) {
            let reason = format!(
                "missing field `{name}` (columns: {})",
                column_names.join(", ")
            );
            return fail(sink, reason);
        }
    }
    let wanted: Vec<usize> = column_names
        .iter()
        .enumerate()
        .filter(|&(_, &name)| {
            spec.text.fields().contains(&name)
                || spec.id.as_deref() == Some(name)
                || spec.keep.iter().any(|(keep, _)| keep == name)
        })
        .map(|(index, _)| index)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    let reader = builder
        .with_row_groups(vec![group])
        .with_projection(mask)
        .with_batch_size(1024)
        .build();
    let reader = match reader {
        Ok(reader) => reader,
        Err(err) => return fail(sink, format!("cannot read row group: {err}")),
    };
    let mut row = first_row;
    for batch in reader {
        let batch = match batch {
            Ok(batch) => batch,
            Err(err) => {
                let location = Location::Row {
                    row_group: group,
                    row,
                };
                let reason = format!("corrupt data: {err}");
                return sink.reject(Reject {
                    location,
                    reason,
                    raw: None,
                    raw_bytes: 0,
                });
            }
        };
        let columns = match Columns::new(&batch, spec) {
            Ok(columns) => columns,
            Err(reason) => return fail(sink, reason),
        };
        for index in 0..batch.num_rows() {
            let mut text = String::new();
            for column in &columns.text {
                for line in column.lines(index) {
                    if !line.is_empty() {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(line);
                    }
                }
            }
            if text.len() as u64 > spec.max_record_bytes {
                // The cell is in memory already (a row group is read whole, bounded by the
                // writer's row-group size); what is bounded here is what goes on downstream.
                let size = text.len() as u64;
                text.truncate(text.floor_char_boundary(super::RAW_LIMIT));
                sink.reject(Reject {
                    location: Location::Row {
                        row_group: group,
                        row,
                    },
                    reason: super::too_large(size, true, spec.max_record_bytes),
                    raw: Some(text),
                    raw_bytes: size,
                })?;
                row += 1;
                continue;
            }
            let id_value = columns.id.as_ref().and_then(|c| c.scalar(index));
            if let (Some(name), None) = (&spec.id, &id_value) {
                let location = Location::Row {
                    row_group: group,
                    row,
                };
                let reject = Reject {
                    location,
                    reason: format!("missing id field `{name}` (null)"),
                    raw: Some(text),
                    raw_bytes: 0,
                };
                sink.reject(reject)?;
                row += 1;
                continue;
            }
            let mut meta = vec![None; spec.meta_len];
            for (slot, column) in &columns.keep {
                meta[*slot] = column.scalar(index);
            }
            let raw_bytes = text.len() as u64;
            sink.record(Record {
                index: row,
                text: &text,
                id_value: id_value.as_deref(),
                meta: &meta,
                raw_bytes,
            })?;
            row += 1;
        }
    }
    ControlFlow::Continue(())
}

/// A column seen as text: strings as they are, lists of strings as lines, anything else cast
/// to its text form.
enum TextColumn {
    Strings(ArrayRef),
    Lists(ArrayRef),
}

impl TextColumn {
    fn new(array: &ArrayRef, name: &str, for_text: bool) -> Result<TextColumn, String> {
        match array.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(TextColumn::Strings(
                arrow::compute::cast(array, &DataType::Utf8).map_err(|e| e.to_string())?,
            )),
            DataType::List(item) | DataType::LargeList(item)
                if matches!(
                    item.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) =>
            {
                let target = DataType::List(std::sync::Arc::new(arrow::datatypes::Field::new(
                    "item",
                    DataType::Utf8,
                    true,
                )));
                Ok(TextColumn::Lists(
                    arrow::compute::cast(array, &target).map_err(|e| e.to_string())?,
                ))
            }
            other if for_text => Err(format!(
                "field `{name}` is not text (Parquet column of type {other})"
            )),
            _ => arrow::compute::cast(array, &DataType::Utf8)
                .map(TextColumn::Strings)
                .map_err(|err| format!("field `{name}` cannot be read as text: {err}")),
        }
    }

    fn lines(&self, row: usize) -> Vec<&str> {
        match self {
            TextColumn::Strings(array) => {
                let strings = array.as_string::<i32>();
                if strings.is_null(row) {
                    vec![]
                } else {
                    vec![strings.value(row)]
                }
            }
            TextColumn::Lists(array) => {
                let lists = array.as_list::<i32>();
                if lists.is_null(row) {
                    return vec![];
                }
                let offsets = lists.value_offsets();
                let values = lists.values().as_string::<i32>();
                (offsets[row] as usize..offsets[row + 1] as usize)
                    .filter(|i| !values.is_null(*i))
                    .map(|i| values.value(i))
                    .collect()
            }
        }
    }

    fn scalar(&self, row: usize) -> Option<String> {
        match self {
            TextColumn::Strings(array) => {
                let strings = array.as_string::<i32>();
                (!strings.is_null(row)).then(|| strings.value(row).to_owned())
            }
            TextColumn::Lists(_) => {
                Some(serde_json::to_string(&self.lines(row)).unwrap_or_default())
            }
        }
    }
}

struct Columns {
    text: Vec<TextColumn>,
    id: Option<TextColumn>,
    keep: Vec<(usize, TextColumn)>,
}

impl Columns {
    fn new(batch: &RecordBatch, spec: &FieldSpec) -> Result<Columns, String> {
        let column = |name: &str| batch.column_by_name(name);
        let mut text = Vec::new();
        for name in spec.text.fields() {
            let array = column(name).ok_or_else(|| format!("missing field `{name}`"))?;
            text.push(TextColumn::new(array, name, true)?);
        }
        let id = match &spec.id {
            Some(name) => {
                let array = column(name).ok_or_else(|| format!("missing id field `{name}`"))?;
                Some(TextColumn::new(array, name, false)?)
            }
            None => None,
        };
        let mut keep = Vec::new();
        for (name, slot) in &spec.keep {
            if let Some(array) = column(name) {
                keep.push((*slot, TextColumn::new(array, name, false)?));
            }
        }
        Ok(Columns { text, id, keep })
    }
}
