//! C3 (Sun et al., 2020): `c3-{m,d}-{dev,test}.json`, a JSON array of records
//! `[[passage lines], [{question, choice[], answer}], id]`. One record holds a passage and one or
//! more questions about it; the published sizes (test: 2,002 mixed-genre, 1,890 dialogue) count
//! questions, so each question becomes one item.
//!
//! Prompt (OpenCompass `CLUE_C3` PPL template, joined as a base model sees it):
//! `文章：{passage lines joined by \n}\n问题：{question}\n答案：` + `{choice}`.

use std::path::Path;

use serde::Deserialize;

use super::json_array::top_level_elements;
use crate::error::{Error, Result};
use crate::item::McItem;

#[derive(Deserialize)]
struct Question {
    question: String,
    choice: Vec<String>,
    answer: String,
}

#[derive(Deserialize)]
struct Record(Vec<String>, Vec<Question>, String);

/// Reads one C3 file; `genre` ("m" or "d") becomes the items' group.
pub fn read_c3(path: &Path, genre: &str) -> Result<Vec<McItem>> {
    let text = fs_err::read_to_string(path)?;
    let mut items = Vec::new();
    for element in top_level_elements(&text).map_err(|e| Error::parse(path, e))? {
        let location = format!("line {}", element.line);
        let record: Record = serde_json::from_str(element.text).map_err(|e| {
            Error::malformed(
                path,
                &location,
                format!("not a C3 record [[passage], [questions], id]: {e}"),
            )
        })?;
        let passage = record.0.join("\n");
        for (number, q) in record.1.iter().enumerate() {
            let gold = q
                .choice
                .iter()
                .position(|c| *c == q.answer)
                .ok_or_else(|| {
                    Error::malformed(
                        path,
                        &location,
                        format!(
                            "record {} question {}: answer {:?} is not one of the choices {:?}",
                            record.2,
                            number + 1,
                            q.answer,
                            q.choice
                        ),
                    )
                })?;
            let item = McItem {
                id: format!("{}#{}", record.2, number + 1),
                group: genre.to_string(),
                preamble: String::new(),
                contexts: vec![format!("文章：{passage}\n问题：{}\n答案：", q.question)],
                continuations: q.choice.clone(),
                gold,
            };
            item.validate().map_err(|m| {
                Error::malformed(
                    path,
                    &location,
                    format!("record {} question {}: {m}", record.2, number + 1),
                )
            })?;
            items.push(item);
        }
    }
    Ok(items)
}
