//! Fuzzing the JSON Lines (plain, gzip, zstd), JSON and HTML readers through `ingest`, the way
//! a user meets them: one input file, valid as made here, then mutated (bytes flipped,
//! inserted, deleted, cut, moved, repeated until lines and nesting grow past the limits) or
//! replaced by random bytes, and ingested with a small `max_record_mb`. Whatever the file:
//!
//! 1. the run never panics (a worker's panic would come back as an internal error) and, under
//!    `--on-error skip`, always succeeds: bad input is rejected, never fatal;
//! 2. every reject names the file and where in it (a JSONL line and byte offset or a stream
//!    offset, a JSON element or line and column, an HTML file as the one record it is), and
//!    under `--on-error fail` the error does;
//! 3. memory stays within a stated bound of `max_record_mb`, however large the file.
//!
//! Each test runs in a process of its own ([`in_own_process`]), where a counting allocator
//! measures the run (its worker thread included) alone.

use proptest::prelude::*;
use tinyforge_testkit::{Mutation, fuzz_config, in_own_process, mutate, peak_during};

use super::*;

/// Cases per test: a few seconds each in the dev profile.
const CASES: u32 = 64;
/// The cases are the same on every run (CI must not flake on a newly drawn input); set
/// `PROPTEST_RNG_SEED` (and `PROPTEST_CASES`) to explore others.
const SEED: u64 = 0x1e57_f00d;

/// The largest record the runs take (`max_record_mb` = 1/16): 64 KiB.
const MAX_RECORD_MB: f64 = 1.0 / 16.0;
const MAX_RECORD: usize = 64 << 10;
/// Mutated files grow up to 4 MiB, 64 times the largest record: a reader that held a file,
/// or a line, whole would stand out against the bound below.
const MAX_FILE: usize = 4 << 20;

/// What a run takes whatever its input: the JSON readers' 1 MiB line buffer and 64 KiB read
/// buffer, the Parquet part writer and its row group (64 KiB of text with `row_group_mb` as
/// below), the plan, the state files, the rejects writer, the final merge.
const FIXED: usize = 3 << 20;
/// What one record may take per byte of it: a JSON element parsed into a `serde_json::Value`
/// (a one-byte number in an array becomes a 32-byte `Value`; an object entry a `String` key
/// and a map node) and written back as text for the rejects file; an HTML page's DOM and
/// rendering; cleaning's copies of the text.
const PER_RECORD_BYTE: usize = 40;
/// The bound: memory grows with the largest record a run takes, never with the file.
const BOUND: usize = FIXED + PER_RECORD_BYTE * MAX_RECORD;

/// The valid files the mutations start from, by name (the extension picks the reader).
fn originals() -> Vec<(&'static str, Vec<u8>)> {
    let records = [
        serde_json::json!({"id": 1, "text": EN, "url": "https://a.example/1", "n": 1.5}),
        serde_json::json!({"id": "b", "text": ["第一行", ZH, null], "url": null, "deep": {"x": [1, {"y": "z"}]}}),
        serde_json::json!({"id": 3, "text": "escapes \" \\ \u{1} \u{e9} \u{10348} and\ttabs", "url": 7}),
        serde_json::json!({"text": "no id here, so rejected", "url": "c"}),
        serde_json::json!({"id": 5, "text": 42}),
    ];
    let mut jsonl = String::new();
    for record in &records {
        jsonl.push_str(&record.to_string());
        jsonl.push('\n');
    }
    jsonl.push_str("\r\n   \n{\"id\": 6, \"text\": \"last line without a newline\"}");
    let array = serde_json::to_vec_pretty(&records).unwrap();
    let html = format!(
        "<!doctype html><html><head><title>t</title><style>p {{ color: red }}</style>\
         <script>if (a < b) {{ x = '<div>' }}</script></head><body><h1>Title &amp; more</h1>\
         <div><section><p>{EN}<br>{ZH}</p><ul><li>one<li>two</ul></section></div>\
         <table><tr><td>a</td><td colspan=2>b</td></tr><tr><td>c<table><tr><td>d</td></tr>\
         </table></td></tr></table><pre>  kept\n  as is</pre><!-- <div><div> -->\
         <a href=\"x\">link</a><img src=y alt=z/></body></html>"
    );
    vec![
        ("docs.jsonl", jsonl.clone().into_bytes()),
        ("docs.jsonl.gz", gzip(jsonl.as_bytes())),
        (
            "docs.jsonl.zst",
            zstd::encode_all(jsonl.as_bytes(), 3).unwrap(),
        ),
        ("docs.json", array),
        ("page.html", html.into_bytes()),
    ]
}

/// One case: which file, what damage, and what a bad record does.
#[derive(Debug, Clone)]
struct Case {
    file: u8,
    damage: Damage,
    fail: bool,
}

#[derive(Debug, Clone)]
enum Damage {
    Mutated(Vec<Mutation>),
    Random(Vec<u8>),
}

fn case() -> impl Strategy<Value = Case> {
    let damage = prop_oneof![
        4 => prop::collection::vec(any::<(u8, u32, u32, u16)>(), 1..5)
            .prop_map(|m| Damage::Mutated(m.into_iter().map(Mutation::pick).collect())),
        1 => prop::collection::vec(any::<u8>(), 0..2000).prop_map(Damage::Random),
    ];
    (any::<u8>(), damage, prop::bool::weighted(0.2)).prop_map(|(file, damage, fail)| Case {
        file,
        damage,
        fail,
    })
}

/// The kinds of location each reader gives a reject (`Location` as the rejects file spells it).
fn locations(name: &str) -> &'static [&'static str] {
    if name.ends_with(".html") {
        // The page is the record: a page too deep, too large or unparsable is rejected whole;
        // invalid UTF-8 by its offset.
        &["file", "offset"]
    } else if name.ends_with(".json") {
        &["line_column", "record"]
    } else {
        // A line, or where a compressed stream broke.
        &["line", "offset"]
    }
}

/// A case's verdict (the suite's `Result` is anyhow's).
type Outcome = std::result::Result<(), TestCaseError>;

/// One file ingested as the fuzz cases are: the run's result, its peak memory, the file's path
/// and the output folder (both in `dir`).
struct Measured {
    result: tinyforge_ingest::Result<tinyforge_ingest::Report>,
    peak: usize,
    path: PathBuf,
    out: PathBuf,
}

fn ingest_measured(dir: &Path, name: &str, bytes: &[u8], fail: bool) -> Measured {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let out = dir.join("out");
    let mut input = input(&path);
    if !name.ends_with(".html") {
        input.id = Some("id".into());
        input.keep = Some(vec!["url".into()]);
    }
    let options = IngestOptions {
        max_record_mb: Some(MAX_RECORD_MB),
        row_group_mb: Some(MAX_RECORD_MB),
        part_size_mb: Some(1.0),
        threads: Some(1),
        on_error: Some(if fail { OnError::Fail } else { OnError::Skip }),
        ..config(vec![input], &out)
    };
    let config: IngestConfig = options.resolve("fuzz", Shard::ALL).unwrap();
    let (result, peak) =
        peak_during(|| ingest(&config, &RunOptions::default(), &tinyforge_task::Silent));
    Measured {
        result,
        peak,
        path,
        out,
    }
}

fn check_case(originals: &[(&'static str, Vec<u8>)], case: &Case) -> Outcome {
    let (name, original) = &originals[case.file as usize % originals.len()];
    let bytes = match &case.damage {
        Damage::Mutated(mutations) => mutate(original.clone(), mutations, MAX_FILE),
        Damage::Random(bytes) => bytes.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let Measured {
        result,
        peak,
        path,
        out,
    } = ingest_measured(dir.path(), name, &bytes, case.fail);
    prop_assert!(
        peak <= BOUND,
        "{}: {} bytes of input took {} bytes at once, over the bound of {}",
        name,
        bytes.len(),
        peak,
        BOUND
    );
    let kinds = locations(name);
    match result {
        Ok(_) => {
            let rejects_path = out.join("_rejects.jsonl");
            if !rejects_path.exists() {
                return Ok(());
            }
            let text = std::fs::read_to_string(&rejects_path).unwrap();
            for line in text.lines() {
                let reject: serde_json::Value = serde_json::from_str(line).unwrap();
                prop_assert_eq!(reject["file"].as_str(), Some(path.to_str().unwrap()));
                let kind = match &reject["location"] {
                    serde_json::Value::String(unit) => unit.as_str(),
                    serde_json::Value::Object(map) => map.keys().next().unwrap().as_str(),
                    other => panic!("location {other}"),
                };
                prop_assert!(
                    kinds.contains(&kind),
                    "{}: reject at {}: {}",
                    name,
                    kind,
                    reject
                );
                prop_assert!(!reject["reason"].as_str().unwrap().is_empty());
            }
        }
        Err(tinyforge_ingest::Error::BadInput {
            path: bad,
            location,
            ..
        }) if case.fail => {
            prop_assert_eq!(&bad, &path);
            let kind = serde_json::to_value(&location).unwrap();
            let kind = match &kind {
                serde_json::Value::String(unit) => unit.clone(),
                serde_json::Value::Object(map) => map.keys().next().unwrap().clone(),
                other => panic!("location {other}"),
            };
            prop_assert!(
                kinds.contains(&kind.as_str()),
                "{}: error at {}",
                name,
                kind
            );
        }
        Err(error) => prop_assert!(false, "{}: the run failed: {}", name, error),
    }
    Ok(())
}

#[test]
fn damaged_inputs_are_rejected_by_place_within_bounds() {
    in_own_process(
        "fuzz::damaged_inputs_are_rejected_by_place_within_bounds",
        || {
            let originals = originals();
            proptest!(fuzz_config(CASES, SEED), |(case in case())| {
                check_case(&originals, &case)?;
            });
        },
    );
}

/// The undamaged files pass every check and are read (the property is not vacuous), and a file
/// grown far past the largest record stays within the bound.
#[test]
fn the_originals_and_huge_lines_stay_within_bounds() {
    in_own_process(
        "fuzz::the_originals_and_huge_lines_stay_within_bounds",
        || {
            let originals = originals();
            for file in 0..originals.len() as u8 {
                for damage in [
                    Damage::Mutated(Vec::new()),
                    // The first record repeated into a line (an element, a page) of megabytes.
                    Damage::Mutated(vec![Mutation::Repeat {
                        at: 20,
                        len: 40,
                        times: u16::MAX,
                    }]),
                ] {
                    for fail in [false, true] {
                        let case = Case {
                            file,
                            damage: damage.clone(),
                            fail,
                        };
                        check_case(&originals, &case).unwrap();
                    }
                }
            }
        },
    );
}

// Inputs that once broke a bound, kept as cases of their own.

/// A 114-byte piece of a line repeated until the file held 35,000 broken lines: the final
/// merge read every chunk's rejects into memory to write `_rejects.jsonl` (5.8 MB at 8,928
/// rejects, growing with the file). Now copied through; the run stays within the bound.
#[test]
fn many_rejects_are_copied_through_not_held() {
    in_own_process("fuzz::many_rejects_are_copied_through_not_held", || {
        let case = Case {
            file: 0,
            damage: Damage::Mutated(vec![Mutation::Repeat {
                at: 189705793,
                len: 114,
                times: 35000,
            }]),
            fail: false,
        };
        check_case(&originals(), &case).unwrap();
    });
}

/// The issue's bomb, scaled to test time: a gzipped file of a few hundred kilobytes whose middle
/// line decompresses to 256 MiB with no newline until its end, between two short records. The
/// line is rejected by its line, offset and size (at least the limit: a compressed line is read
/// no further than that), both short records are kept, and the run stays within the same bound
/// as every fuzz case: memory follows `max_record_mb`, not the line.
#[test]
fn a_gzip_bomb_line_is_rejected_by_offset_within_the_bound() {
    in_own_process(
        "fuzz::a_gzip_bomb_line_is_rejected_by_offset_within_the_bound",
        || {
            let first = format!("{}\n", serde_json::json!({"id": 1, "text": EN}));
            let last = format!("{}\n", serde_json::json!({"id": 3, "text": ZH}));
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(first.as_bytes()).unwrap();
            encoder.write_all(br#"{"id": 2, "text": ""#).unwrap();
            let block = vec![b'a'; 1 << 20];
            for _ in 0..256 {
                encoder.write_all(&block).unwrap();
            }
            encoder.write_all(b"\"}\n").unwrap();
            encoder.write_all(last.as_bytes()).unwrap();
            let bomb = encoder.finish().unwrap();
            assert!(bomb.len() < 1 << 20, "{} bytes compressed", bomb.len());

            let dir = tempfile::tempdir().unwrap();
            let run = ingest_measured(dir.path(), "bomb.jsonl.gz", &bomb, false);
            let report = run.result.unwrap();
            assert!(
                run.peak <= BOUND,
                "256 MiB line: {} bytes at once, over the bound of {BOUND}",
                run.peak
            );
            assert_eq!(report.documents_out, 2);
            let rejects = super::rejects(&run.out).unwrap();
            assert_eq!(rejects.len(), 1, "{rejects:?}");
            let reject = &rejects[0];
            assert_eq!(reject["file"].as_str(), run.path.to_str());
            assert_eq!(reject["location"]["line"]["line"], 2, "{reject}");
            assert_eq!(reject["location"]["line"]["offset"], first.len() as u64);
            let reason = reject["reason"].as_str().unwrap();
            let line = r#"{"id": 2, "text": ""#.len() + (256 << 20) + "\"}\n".len();
            assert!(
                reason.contains(&format!(
                    "record of {line} bytes is over the limit of 65536 bytes"
                )),
                "{reason}"
            );
        },
    );
}
