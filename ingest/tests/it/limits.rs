//! Pathological inputs meet named limits: a record over `max_record_mb` (a JSONL line, a text
//! or HTML file, a Parquet cell) is rejected with its place and exact size and never held
//! whole, and the records after it are read; an HTML page nested past `max_html_depth` is
//! rejected after one linear scan instead of a parse whose time grows with the square of the
//! depth. The inputs are made here, not committed.

use super::*;

const MIB: usize = 1 << 20;

fn limited(inputs: Vec<InputOptions>, out: &Path) -> IngestOptions {
    IngestOptions {
        max_record_mb: Some(1.0),
        ..config(inputs, out)
    }
}

/// A JSONL line of `len` bytes (with its newline) whose text is `a`s.
fn line_of(len: usize) -> String {
    let head = r#"{"text":""#;
    let tail = "\"}\n";
    format!("{head}{}{tail}", "a".repeat(len - head.len() - tail.len()))
}

#[test]
fn a_jsonl_line_over_the_limit_is_rejected_by_line_offset_and_size_and_the_rest_read() -> Result {
    let dir = tempfile::tempdir()?;
    let good = format!("{}\n", serde_json::json!({ "text": EN }));
    let big = line_of(3 * MIB + 17);
    let raw = format!("{good}{big}{good}{}", line_of(MIB));
    for (name, bytes) in [
        ("plain.jsonl", raw.clone().into_bytes()),
        ("gz.jsonl.gz", gzip(raw.as_bytes())),
        ("zst.jsonl.zst", zstd::encode_all(raw.as_bytes(), 3)?),
    ] {
        std::fs::write(dir.path().join(name), bytes)?;
        let out = dir.path().join(format!("out-{name}"));
        let report = run(limited(vec![input(&dir.path().join(name))], &out))?;
        // The two short lines and the one of exactly 1 MiB; the 3 MiB one rejected.
        assert_eq!(
            report.documents_out, 2,
            "{name}: exact duplicates dedup to one"
        );
        let rejects = rejects(&out)?;
        assert_eq!(rejects.len(), 1, "{name}: {rejects:?}");
        let reject = &rejects[0];
        assert_eq!(reject["location"]["line"]["line"], 2, "{name}: {reject}");
        assert_eq!(
            reject["location"]["line"]["offset"],
            good.len() as u64,
            "{name}"
        );
        let reason = reject["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!(
                "record of {} bytes is over the limit of {MIB} bytes (max_record_mb = 1)",
                big.len()
            )),
            "{name}: {reason}"
        );
        // What the reject file keeps of it is its head, not the record.
        assert!(reject["raw"].as_str().unwrap().len() <= 64 * 1024);
    }
    Ok(())
}

#[test]
fn an_oversized_last_line_without_a_newline_is_rejected_too() -> Result {
    let dir = tempfile::tempdir()?;
    let good = format!("{}\n", serde_json::json!({ "text": EN }));
    let mut big = line_of(2 * MIB);
    big.pop();
    std::fs::write(dir.path().join("a.jsonl"), format!("{good}{big}"))?;
    let out = dir.path().join("out");
    let report = run(limited(vec![input(&dir.path().join("a.jsonl"))], &out))?;
    assert_eq!(report.documents_out, 1);
    let rejects = rejects(&out)?;
    assert_eq!(rejects.len(), 1);
    assert!(
        rejects[0]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("record of {} bytes", big.len())),
        "{}",
        rejects[0]
    );
    Ok(())
}

#[test]
fn text_and_html_files_over_the_limit_are_rejected_whole() -> Result {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("big.txt"), "word ".repeat(MIB))?;
    std::fs::write(dir.path().join("small.txt"), EN)?;
    std::fs::write(
        dir.path().join("big.html"),
        format!("<html><body><p>{}</p></body></html>", "x".repeat(2 * MIB)),
    )?;
    let out = dir.path().join("out");
    let report = run(limited(vec![input(dir.path())], &out))?;
    assert_eq!(report.documents_out, 1);
    let rejects = rejects(&out)?;
    assert_eq!(rejects.len(), 2, "{rejects:?}");
    for reject in &rejects {
        let reason = reject["reason"].as_str().unwrap();
        assert!(
            reason.contains("is over the limit of 1048576 bytes"),
            "{reason}"
        );
        assert!(
            reject["file"].as_str().unwrap().contains("big."),
            "{reject}"
        );
    }
    Ok(())
}

#[test]
fn deeply_nested_html_is_rejected_in_linear_time_and_ordinary_pages_pass() -> Result {
    let dir = tempfile::tempdir()?;
    let deep = format!(
        "<html><body>{}deep{}</body></html>",
        "<div>".repeat(200_000),
        "</div>".repeat(200_000)
    );
    std::fs::write(dir.path().join("deep.html"), deep)?;
    let page = format!(
        "<html><body>{}<p>{EN}</p>{}</body></html>",
        "<div><section>".repeat(100),
        "</section></div>".repeat(100)
    );
    std::fs::write(dir.path().join("page.html"), page)?;
    let out = dir.path().join("out");
    let report = run(config(vec![input(dir.path())], &out))?;
    assert_eq!(report.documents_out, 1);
    assert_eq!(read_docs(&out)?[0].text, EN);
    let rejects = rejects(&out)?;
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    let reason = rejects[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("nested over 513 deep, past max_html_depth = 512"),
        "{reason}"
    );
    Ok(())
}

#[test]
fn a_parquet_cell_over_the_limit_is_rejected_by_row() -> Result {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("docs.parquet");
    let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, false)]));
    let big = "b".repeat(2 * MIB);
    let texts = StringArray::from(vec![EN, big.as_str(), ZH]);
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(texts)])?;
    let mut writer = ArrowWriter::try_new(std::fs::File::create(&path)?, schema, None)?;
    writer.write(&batch)?;
    writer.close()?;
    let out = dir.path().join("out");
    let report = run(limited(vec![input(&path)], &out))?;
    assert_eq!(report.documents_out, 2);
    let rejects = rejects(&out)?;
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0]["location"]["row"]["row"], 1, "{}", rejects[0]);
    assert!(
        rejects[0]["reason"]
            .as_str()
            .unwrap()
            .contains("record of 2097152 bytes")
    );
    Ok(())
}

#[test]
fn a_json_array_element_over_the_limit_stops_its_file_with_its_index() -> Result {
    let dir = tempfile::tempdir()?;
    let big = "c".repeat(2 * MIB);
    let array = serde_json::json!([{ "text": EN }, { "text": big }, { "text": ZH }]);
    std::fs::write(dir.path().join("a.json"), serde_json::to_vec(&array)?)?;
    let small = serde_json::json!([{ "text": ZH }]);
    std::fs::write(dir.path().join("b.json"), serde_json::to_vec(&small)?)?;
    let out = dir.path().join("out");
    let report = run(limited(vec![input(dir.path())], &out))?;
    // The element before it, and the other file; not the one after it in the same array.
    assert_eq!(report.documents_out, 2);
    let rejects = rejects(&out)?;
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!(
        rejects[0]["location"]["record"]["record"], 1,
        "{}",
        rejects[0]
    );
    let reason = rejects[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("record of at least")
            && reason.contains("the rest of the file is not read"),
        "{reason}"
    );
    Ok(())
}
