//! Every kind of bad input is counted, written to the rejects file with its file and line or
//! offset, and stops the run under `--on-error fail`.

use super::*;

fn fail_message(path: &Path, text_fields: Option<Vec<String>>) -> String {
    let out = path.parent().unwrap().join(format!(
        "fail-{}",
        path.file_name().unwrap().to_string_lossy()
    ));
    let mut inp = input(path);
    inp.text_fields = text_fields;
    let mut options = config(vec![inp], &out);
    options.on_error = Some(OnError::Fail);
    run(options).unwrap_err().to_string()
}

#[test]
fn malformed_lines_invalid_utf8_and_missing_fields() -> Result {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bad.jsonl");
    let mut raw = Vec::new();
    raw.extend(format!("{}\n", serde_json::json!({"text": EN})).as_bytes());
    raw.extend(b"{\"text\": \"unterminated\n");
    raw.extend(b"{\"text\": \"bad \xff\xfe bytes here in this line\"}\n");
    raw.extend(b"{\"body\": \"no text field here\"}\n");
    raw.extend(b"{\"text\": 42}\n");
    raw.extend(b"[1, 2]\n");
    raw.extend(format!("{}\n", serde_json::json!({"text": ZH})).as_bytes());
    std::fs::write(&path, &raw)?;
    let out = dir.path().join("out");
    let report = run(config(vec![input(&path)], &out))?;
    assert_eq!(report.documents_out, 2);
    assert_eq!(report.dropped.malformed, 5);
    let rejects = rejects(&out)?;
    assert_eq!(rejects.len(), 5);
    let lines: Vec<u64> = rejects
        .iter()
        .map(|r| r["location"]["line"]["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![2, 3, 4, 5, 6]);
    assert!(
        rejects[0]["reason"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );
    assert!(
        rejects[1]["reason"]
            .as_str()
            .unwrap()
            .contains("invalid UTF-8")
    );
    assert!(
        rejects[2]["reason"]
            .as_str()
            .unwrap()
            .contains("missing field `text`")
    );
    assert!(rejects[3]["reason"].as_str().unwrap().contains("not text"));
    assert!(
        rejects[4]["reason"]
            .as_str()
            .unwrap()
            .contains("expected a JSON object")
    );
    assert_eq!(rejects[2]["raw"], "{\"body\": \"no text field here\"}");
    assert!(rejects[0]["file"].as_str().unwrap().ends_with("bad.jsonl"));
    let third_line = raw
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .unwrap()
        .0 as u64
        + 1;
    assert_eq!(
        rejects[1]["location"]["line"]["offset"].as_u64(),
        Some(third_line)
    );

    let message = fail_message(&path, None);
    assert!(
        message.contains("bad.jsonl") && message.contains("line 2"),
        "{message}"
    );
    Ok(())
}

#[test]
fn truncated_gzip_and_zstd_keep_what_came_before() -> Result {
    let dir = tempfile::tempdir()?;
    // Enough records that the compressed stream holds many blocks (a zstd block is up to 128 KiB
    // of text and decodes only whole), so cutting it in half keeps some of them.
    let mut raw = String::new();
    for i in 0..20_000 {
        raw.push_str(
            &serde_json::json!({"text": format!("{EN} {i} {}", "x".repeat(i % 50))}).to_string(),
        );
        raw.push('\n');
    }
    let gz = gzip(raw.as_bytes());
    std::fs::write(dir.path().join("cut.jsonl.gz"), &gz[..gz.len() / 2])?;
    let zst = zstd::encode_all(raw.as_bytes(), 3)?;
    std::fs::write(dir.path().join("cut.jsonl.zst"), &zst[..zst.len() / 2])?;
    for name in ["cut.jsonl.gz", "cut.jsonl.zst"] {
        let path = dir.path().join(name);
        let out = dir.path().join(format!("out-{name}"));
        let report = run(config(vec![input(&path)], &out))?;
        assert_eq!(report.dropped.malformed, 1, "{name}");
        assert!(
            report.documents_out > 100 && report.documents_out < 20_000,
            "{name}: {}",
            report.documents_out
        );
        let rejects = rejects(&out)?;
        let reason = rejects[0]["reason"].as_str().unwrap();
        assert!(
            reason.contains("truncated")
                && reason.contains(if name.ends_with("gz") { "gzip" } else { "zstd" }),
            "{name}: {reason}"
        );
        assert!(rejects[0]["location"]["offset"]["offset"].as_u64().unwrap() > 0);
        let message = fail_message(&path, None);
        assert!(
            message.contains(name) && message.contains("truncated"),
            "{message}"
        );
    }
    Ok(())
}

#[test]
fn truncated_json_array_and_corrupt_parquet() -> Result {
    let dir = tempfile::tempdir()?;
    let array = serde_json::to_string_pretty(
        &serde_json::json!([{"text": EN}, {"text": ZH}, {"text": "third document in the array"}]),
    )?;
    let json = dir.path().join("cut.json");
    std::fs::write(&json, &array[..array.len() - 40])?;
    let parquet = dir.path().join("corrupt.parquet");
    std::fs::write(
        &parquet,
        b"PAR1 this is not really parquet data at all, no footer",
    )?;
    let out = dir.path().join("out");
    let report = run(config(vec![input(&json), input(&parquet)], &out))?;
    assert_eq!(
        report.documents_out, 2,
        "the two complete records before the cut"
    );
    assert_eq!(report.dropped.malformed, 2);
    let rejects = rejects(&out)?;
    assert!(
        rejects[0]["reason"]
            .as_str()
            .unwrap()
            .contains("truncated JSON"),
        "{}",
        rejects[0]
    );
    assert!(
        rejects[0]["location"]["line_column"]["line"]
            .as_u64()
            .unwrap()
            > 1
    );
    assert!(
        rejects[1]["file"]
            .as_str()
            .unwrap()
            .ends_with("corrupt.parquet")
    );
    assert!(
        rejects[1]["reason"]
            .as_str()
            .unwrap()
            .contains("corrupt Parquet"),
        "{}",
        rejects[1]
    );
    let message = fail_message(&parquet, None);
    assert!(
        message.contains("corrupt.parquet") && message.contains("corrupt Parquet"),
        "{message}"
    );
    Ok(())
}

#[test]
fn missing_field_in_json_array_and_text_file_utf8() -> Result {
    let dir = tempfile::tempdir()?;
    let poems = dir.path().join("poems.json");
    std::fs::write(
        &poems,
        serde_json::to_vec(&serde_json::json!([
            {"title": "a", "paragraphs": ["一二三四五六七八九十"]},
            {"title": "b"},
        ]))?,
    )?;
    let text = dir.path().join("latin1.txt");
    std::fs::write(&text, b"caf\xe9 au lait, a text in latin-1 encoding")?;
    let out = dir.path().join("out");
    let mut inp = input(&poems);
    inp.text_fields = Some(vec!["title".into(), "paragraphs".into()]);
    let report = run(config(vec![inp, input(&text)], &out))?;
    assert_eq!(report.documents_out, 1);
    let rejects = rejects(&out)?;
    assert_eq!(rejects[0]["location"]["record"]["record"], 1);
    assert!(
        rejects[0]["reason"]
            .as_str()
            .unwrap()
            .contains("missing field `paragraphs`")
    );
    assert_eq!(rejects[0]["raw"], r#"{"title":"b"}"#);
    assert_eq!(rejects[1]["location"]["offset"]["offset"], 3);
    assert!(
        rejects[1]["reason"]
            .as_str()
            .unwrap()
            .contains("invalid UTF-8")
    );
    let message = fail_message(&poems, Some(vec!["title".into(), "paragraphs".into()]));
    assert!(
        message.contains("poems.json")
            && message.contains("record 1")
            && message.contains("paragraphs"),
        "{message}"
    );
    Ok(())
}
