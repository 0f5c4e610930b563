//! Round trip of every input format.

use super::*;

#[test]
fn jsonl_plain_gzip_and_zstd() -> Result {
    let dir = tempfile::tempdir()?;
    let raw = jsonl_lines();
    std::fs::write(dir.path().join("a.jsonl"), &raw)?;
    std::fs::write(dir.path().join("b.jsonl.gz"), gzip(raw.as_bytes()))?;
    std::fs::write(
        dir.path().join("c.ndjson.zst"),
        zstd::encode_all(raw.as_bytes(), 3)?,
    )?;
    for name in ["a.jsonl", "b.jsonl.gz", "c.ndjson.zst"] {
        let out = dir.path().join(format!("out-{name}"));
        let mut inp = input(&dir.path().join(name));
        inp.keep = Some(vec!["url".into(), "extra".into()]);
        inp.source = Some("web".into());
        let report = run(config(vec![inp], &out))?;
        assert_eq!(report.documents_in, 3, "{name}");
        assert_eq!(report.documents_out, 3, "{name}");
        let docs = read_docs(&out)?;
        assert_eq!(docs[0].text, EN);
        assert_eq!(docs[0].lang, "en");
        assert_eq!(docs[0].source, "web");
        assert_eq!(docs[0].meta, vec![Some("a".into()), None]);
        assert_eq!(docs[1].text, ZH);
        assert_eq!(docs[1].lang, "zh");
        assert_eq!(
            docs[1].meta,
            vec![Some("b".into()), Some(r#"{"deep":[1,2]}"#.into())]
        );
        // Cleaned: control characters gone, \r\n -> \n, trimmed.
        assert_eq!(
            docs[2].text,
            "Second\nline of english text for the reader here."
        );
        assert!(out.join("_manifest.json").exists());
    }
    Ok(())
}

#[test]
fn json_arrays_with_joined_fields_and_ids() -> Result {
    let dir = tempfile::tempdir()?;
    let poems = serde_json::json!([
        {"author": "李白", "title": "静夜思", "paragraphs": ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"], "id": "p1"},
        {"author": "王维", "title": "鹿柴", "paragraphs": ["空山不见人，但闻人语响。", "返景入深林，复照青苔上。"], "id": "p2"},
    ]);
    std::fs::write(
        dir.path().join("poems.json"),
        serde_json::to_vec_pretty(&poems)?,
    )?;
    // A .json file holding one object (like the sotu speeches) is one record.
    std::fs::write(
        dir.path().join("one.json"),
        serde_json::to_vec(
            &serde_json::json!({"author": "x", "title": "T", "paragraphs": ["只有一首诗，写在这里。"], "id": "p3"}),
        )?,
    )?;
    let out = dir.path().join("out");
    let mut inp = input(dir.path());
    inp.text_fields = Some(vec!["title".into(), "paragraphs".into()]);
    inp.id = Some("id".into());
    inp.keep = Some(vec!["author".into()]);
    let report = run(config(vec![inp], &out))?;
    assert_eq!(report.documents_out, 3);
    let docs = read_docs(&out)?;
    assert_eq!(
        docs[1].text,
        "静夜思\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"
    );
    assert_eq!(docs[0].text, "T\n只有一首诗，写在这里。");
    assert_eq!(docs[1].meta, vec![Some("李白".into())]);
    // Ids come from the id field (hashed with the source), so they do not depend on paths.
    let again = dir.path().join("again");
    std::fs::create_dir(dir.path().join("moved"))?;
    std::fs::copy(
        dir.path().join("poems.json"),
        dir.path().join("moved/renamed.json"),
    )?;
    let mut inp = input(&dir.path().join("moved"));
    inp.text_fields = Some(vec!["title".into(), "paragraphs".into()]);
    inp.id = Some("id".into());
    inp.source = Some(docs[1].source.clone());
    run(config(vec![inp], &again))?;
    let moved = read_docs(&again)?;
    assert_eq!(moved[0].id, docs[1].id);
    Ok(())
}

#[test]
fn parquet_text_and_list_columns_by_row_group() -> Result {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("in.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("body", DataType::Utf8, true),
        Field::new("lines", DataType::new_list(DataType::Utf8, true), true),
        Field::new("year", DataType::Int64, true),
    ]));
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(3))
        .build();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(&path)?, schema.clone(), Some(props))?;
    let bodies: Vec<Option<String>> = (0..7)
        .map(|i| Some(format!("document number {i} with enough words in it")))
        .collect();
    let mut lists = arrow::array::ListBuilder::new(arrow::array::StringBuilder::new());
    for i in 0..7 {
        lists.values().append_value(format!("line a{i}"));
        lists.values().append_value(format!("line b{i}"));
        lists.append(true);
    }
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(bodies)),
            Arc::new(lists.finish()),
            Arc::new(arrow::array::Int64Array::from(
                (0..7).map(|i| 1990 + i).collect::<Vec<_>>(),
            )),
        ],
    )?;
    writer.write(&batch)?;
    writer.close()?;

    let out = dir.path().join("out");
    let mut inp = input(&path);
    inp.text = Some("body".into());
    inp.keep = Some(vec!["year".into()]);
    // Tiny parts: each row group becomes its own chunk.
    let mut options = config(vec![inp], &out);
    options.part_size_mb = Some(1e-6);
    let report = run(options)?;
    assert_eq!(
        report.chunks_total, 3,
        "7 rows in row groups of 3 -> 3 units"
    );
    let docs = read_docs(&out)?;
    assert_eq!(docs.len(), 7);
    assert_eq!(docs[6].text, "document number 6 with enough words in it");
    assert_eq!(docs[6].meta, vec![Some("1996".into())]);

    let out = dir.path().join("out-lines");
    let mut inp = input(&path);
    inp.text = Some("lines".into());
    run(config(vec![inp], &out))?;
    assert_eq!(read_docs(&out)?[2].text, "line a2\nline b2");
    Ok(())
}

#[test]
fn text_and_html_files_are_one_document_each() -> Result {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("site/sub"))?;
    std::fs::write(dir.path().join("site/a.txt"), format!("\u{feff}{EN}\n"))?;
    std::fs::write(
        dir.path().join("site/sub/b.html"),
        "<html><head><title>T</title><style>p{color:red}</style><script>var x = 1;</script></head>\
         <body><h1>Heading here</h1><p>First paragraph &amp; more text.</p><ul><li>item one</li></ul></body></html>",
    )?;
    std::fs::write(dir.path().join("site/ignored.png"), [0u8, 1, 2])?;
    let out = dir.path().join("out");
    let mut inp = input(&dir.path().join("site"));
    inp.keep = Some(vec!["path".into()]);
    let report = run(config(vec![inp], &out))?;
    assert_eq!(report.files, 2, "the .png is not an input");
    let docs = read_docs(&out)?;
    let html = docs
        .iter()
        .find(|d| d.meta[0].as_deref() == Some("sub/b.html"))
        .expect("html doc");
    assert!(html.text.contains("Heading here"), "{}", html.text);
    assert!(
        html.text.contains("First paragraph & more text."),
        "{}",
        html.text
    );
    assert!(
        !html.text.contains("color:red") && !html.text.contains("var x"),
        "{}",
        html.text
    );
    let txt = docs
        .iter()
        .find(|d| d.meta[0].as_deref() == Some("a.txt"))
        .expect("txt doc");
    assert_eq!(txt.text, EN);
    assert_eq!(txt.source, "site");
    Ok(())
}

#[test]
fn where_filter_and_length_rules() -> Result {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("a.jsonl"),
        jsonl_lines() + "{\"text\": \"tiny\"}\n{\"text\": \"   \"}\n",
    )?;
    let out = dir.path().join("out");
    let mut options = config(vec![input(&dir.path().join("a.jsonl"))], &out);
    options.min_chars = Some(10);
    options.where_sql = Some("lang = 'en' AND length(text) > 60".into());
    let report = run(options)?;
    assert_eq!(report.documents_in, 5);
    assert_eq!(report.dropped.empty, 1);
    assert_eq!(report.dropped.too_short, 1);
    assert_eq!(report.dropped.filtered, 2, "zh and the shorter english one");
    let docs = read_docs(&out)?;
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].text, EN);
    assert_eq!(report.by_lang["en"].documents, 1);
    Ok(())
}

#[test]
fn big_input_rolls_over_into_several_parts() -> Result {
    let dir = tempfile::tempdir()?;
    let mut raw = String::new();
    for i in 0..3000 {
        raw.push_str(&serde_json::json!({"text": format!("{EN} number {i}")}).to_string());
        raw.push('\n');
    }
    // Compressed: read whole (a plain file this big would be split into byte ranges).
    std::fs::write(dir.path().join("big.jsonl.gz"), gzip(raw.as_bytes()))?;
    let out = dir.path().join("out");
    let mut options = config(vec![input(&dir.path().join("big.jsonl.gz"))], &out);
    options.part_size_mb = Some(0.1);
    options.row_group_mb = Some(0.02);
    let report = run(options)?;
    assert_eq!(report.chunks_total, 1);
    assert!(report.parts >= 3, "{} parts", report.parts);
    assert!(out.join("part-00000.parquet").exists() && out.join("part-00000_001.parquet").exists());
    let docs = read_docs(&out)?;
    assert_eq!(docs.len(), 3000);
    assert!(
        docs[2999].text.ends_with("number 2999"),
        "parts sort in document order"
    );
    let meta = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(
        out.join("part-00000.parquet"),
    )?)?;
    assert!(parquet::file::reader::FileReader::metadata(&meta).num_row_groups() > 1);
    Ok(())
}

#[test]
fn demo_config_parses() -> Result {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/ingest-demo.toml");
    let options = IngestOptions::from_file(&path)?;
    let config = options.resolve("ingest-demo.toml", Shard::ALL)?;
    assert_eq!(config.inputs.len(), 6);
    assert!(config.inputs[0].paths[0].ends_with("songci/ci.song.*.json"));
    assert!(!config.inputs[0].paths[0].contains('$'));
    let _ = OnError::Skip;
    Ok(())
}

/// A plain JSONL file bigger than two parts is read as byte ranges, one chunk each: every line
/// exactly once, in order, with the ids of a whole read, and the same bytes for any task count.
#[test]
fn a_big_plain_jsonl_file_is_split_into_byte_ranges() -> Result {
    let dir = tempfile::tempdir()?;
    let mut raw = String::new();
    for i in 0..3000 {
        // Lines of different lengths, so range boundaries fall inside lines and on their ends.
        let pad = "x".repeat(i % 97);
        raw.push_str(&serde_json::json!({"text": format!("{EN} number {i} {pad}")}).to_string());
        raw.push('\n');
        if i % 500 == 7 {
            raw.push_str("{not json\n");
        }
    }
    let path = dir.path().join("big.jsonl");
    std::fs::write(&path, &raw)?;
    let options = |out: &Path, part_mb: f64| {
        let mut options = config(vec![input(&path)], out);
        options.part_size_mb = Some(part_mb);
        options.row_group_mb = Some(0.02);
        options
    };
    let whole = dir.path().join("whole");
    let one = run(options(&whole, 10.0))?;
    assert_eq!(one.chunks_total, 1);
    let split = dir.path().join("split");
    let many = run(options(&split, 0.05))?;
    assert!(many.chunks_total >= 8, "{} chunks", many.chunks_total);
    assert_eq!(many.rejects, 6);
    let (a, b) = (read_docs(&whole)?, read_docs(&split)?);
    assert_eq!(b.len(), 3000);
    assert_eq!(
        a.iter().map(|d| (d.id, &d.text)).collect::<Vec<_>>(),
        b.iter().map(|d| (d.id, &d.text)).collect::<Vec<_>>()
    );
    // Rejected lines are named by byte offset.
    let rejects = std::fs::read_to_string(split.join("_rejects.jsonl"))?;
    assert_eq!(rejects.lines().count(), 6);
    assert!(rejects.contains("byte"), "{rejects}");

    let tasks = dir.path().join("tasks");
    for index in [2, 0, 1] {
        run_shard(options(&tasks, 0.05), Shard { index, count: 3 })?;
    }
    merge(options(&tasks, 0.05))?;
    let parts = |dir: &Path| -> Result<Vec<(String, Vec<u8>)>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".parquet") {
                files.push((name, std::fs::read(&path)?));
            }
        }
        files.sort();
        Ok(files)
    };
    assert!(
        parts(&tasks)? == parts(&split)?,
        "3 tasks differ from one run"
    );
    Ok(())
}
