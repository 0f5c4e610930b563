//! End to end: `tinyforge stats` over a folder written by `tinyforge ingest`.

use std::path::Path;

use crate::tinyforge;
use serde_json::Value;

fn docs(dir: &Path) -> std::path::PathBuf {
    let input = dir.join("in.jsonl");
    let mut raw = String::new();
    for i in 0..30 {
        raw.push_str(&serde_json::json!({"text": format!("English document number {i} about the state of the union.")}).to_string());
        raw.push('\n');
    }
    for i in 0..10 {
        raw.push_str(
            &serde_json::json!({"text": format!("这是第{i}篇中文文档，内容是关于诗歌的。")})
                .to_string(),
        );
        raw.push('\n');
    }
    std::fs::write(&input, raw).unwrap();
    let out = dir.join("docs");
    let status = tinyforge()
        .arg("ingest")
        .arg(&input)
        .args(["--source", "mix", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

#[test]
fn default_summary_as_json_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = docs(dir.path());
    let output = tinyforge()
        .arg("stats")
        .arg(&out)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["totals"]["documents"], 40);
    assert_eq!(summary["totals"]["sources"], 1);
    let by_lang = summary["by_lang"].as_array().unwrap();
    let en = by_lang.iter().find(|r| r["lang"] == "en").unwrap();
    assert_eq!(en["documents"], 30);
    let zh = by_lang.iter().find(|r| r["lang"] == "zh").unwrap();
    assert_eq!(zh["documents"], 10);
    assert_eq!(
        zh["characters"],
        10 * "这是第0篇中文文档，内容是关于诗歌的。".chars().count()
    );
    let lengths = &summary["length_chars"];
    assert!(lengths["min"].as_i64().unwrap() <= lengths["p50"].as_f64().unwrap() as i64);
    assert!(lengths["p50"].as_f64().unwrap() <= lengths["max"].as_f64().unwrap());

    let output = tinyforge().arg("stats").arg(&out).output().unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("by_lang") && table.contains("| en ") && table.contains("p50"),
        "{table}"
    );
}

#[test]
fn any_sql_query() {
    let dir = tempfile::tempdir().unwrap();
    let out = docs(dir.path());
    let output = tinyforge()
        .arg("stats")
        .arg(&out)
        .args([
            "--sql",
            "SELECT lang, count(*) AS n FROM docs WHERE text LIKE '%union%' GROUP BY lang",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows, serde_json::json!([{"lang": "en", "n": 30}]));

    let output = tinyforge()
        .arg("stats")
        .arg(&out)
        .args(["--sql", "SELECT nosuch FROM docs"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("nosuch"));
}
