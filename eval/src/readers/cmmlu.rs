//! CMMLU (Li et al., 2023): `{dev,test}/<subject>.csv` with columns `,Question,A,B,C,D,Answer`.
//!
//! Prompt (lm-evaluation-harness `cmmlu` template): a preamble
//! `以下是单项选择题，请直接给出正确答案的选项。\n\n` (the harness names the subject in Chinese; the
//! files only carry the English file name, so the subject is left out), then
//! `{Question}\nA. {A}\nB. {B}\nC. {C}\nD. {D}\n答案：` scored with the continuations
//! ` A`, ` B`, ` C`, ` D`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::item::McItem;

pub(crate) const LETTERS: [&str; 4] = ["A", "B", "C", "D"];

/// Reads every `*.csv` of a CMMLU split folder, subjects in file-name order.
pub fn read_cmmlu_dir(dir: &Path) -> Result<Vec<McItem>> {
    let mut files: Vec<_> = fs_err::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::MissingData {
            path: dir.to_path_buf(),
            hint: "no CMMLU *.csv files".into(),
        });
    }
    let mut items = Vec::new();
    for file in files {
        items.extend(read_cmmlu(&file)?);
    }
    Ok(items)
}

/// Reads one CMMLU subject file.
pub fn read_cmmlu(path: &Path) -> Result<Vec<McItem>> {
    let subject = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let file = fs_err::File::open(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(file);
    let header = reader.headers().map_err(|e| Error::parse(path, e))?.clone();
    let column = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            Error::malformed(
                path,
                "line 1",
                format!(
                    "no {name:?} column in header {:?}",
                    header.iter().collect::<Vec<_>>()
                ),
            )
        })
    };
    let question_col = column("Question")?;
    let choice_cols = [column("A")?, column("B")?, column("C")?, column("D")?];
    let answer_col = column("Answer")?;
    let mut items = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            Error::malformed(path, format!("line {line}"), e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let location = format!("line {line}");
        let field = |col: usize, name: &str| {
            record
                .get(col)
                .ok_or_else(|| Error::malformed(path, &location, format!("missing {name} field")))
        };
        let question = field(question_col, "Question")?;
        let choices: Vec<&str> = choice_cols
            .iter()
            .zip(LETTERS)
            .map(|(&c, l)| field(c, l))
            .collect::<Result<_>>()?;
        let answer = field(answer_col, "Answer")?.trim();
        let gold = LETTERS.iter().position(|l| *l == answer).ok_or_else(|| {
            Error::malformed(
                path,
                &location,
                format!("answer {answer:?} is not one of A, B, C, D"),
            )
        })?;
        let mut context = format!("{}\n", question.trim());
        for (letter, choice) in LETTERS.iter().zip(&choices) {
            context.push_str(&format!("{letter}. {choice}\n"));
        }
        context.push_str("答案：");
        let id = record
            .get(0)
            .filter(|s| !s.is_empty())
            .map_or_else(|| format!("{line}"), str::to_string);
        items.push(McItem {
            id: format!("{subject}/{id}"),
            group: subject.clone(),
            preamble: "以下是单项选择题，请直接给出正确答案的选项。\n\n".to_string(),
            contexts: vec![context],
            continuations: LETTERS.iter().map(|l| format!(" {l}")).collect(),
            gold,
        });
    }
    Ok(items)
}
