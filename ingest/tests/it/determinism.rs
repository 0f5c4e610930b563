//! Same bytes twice; one task equals n tasks merged, byte for byte, duplicates across tasks
//! included; a merge killed half-way can be run again.

use super::*;

/// Many small files with duplicates both inside a file and across files far apart, so that
/// with tiny parts duplicates land in different chunks and different tasks.
fn corpus(dir: &Path) -> Result<PathBuf> {
    let root = dir.join("corpus");
    std::fs::create_dir_all(&root)?;
    for file in 0..12 {
        let mut raw = String::new();
        for line in 0..40 {
            let text = match (file * 40 + line) % 7 {
                0 => format!("{EN} shared across files {}", line % 5),
                3 => format!("{ZH}{}", line % 3),
                _ => format!("{EN} file {file} line {line}"),
            };
            raw.push_str(&serde_json::json!({"text": text, "k": line}).to_string());
            raw.push('\n');
        }
        if file == 4 {
            raw.push_str("{broken json\n");
        }
        let path = root.join(format!("f{file:02}.jsonl"));
        if file % 3 == 0 {
            std::fs::write(path.with_extension("jsonl.gz"), gzip(raw.as_bytes()))?;
        } else {
            std::fs::write(path, raw)?;
        }
    }
    Ok(root)
}

fn options(root: &Path, out: &Path) -> IngestOptions {
    let mut inp = input(root);
    inp.keep = Some(vec!["k".into()]);
    let mut options = config(vec![inp], out);
    options.part_size_mb = Some(0.004);
    options.row_group_mb = Some(0.002);
    options
}

#[test]
fn same_bytes_twice_and_across_thread_counts() -> Result {
    let dir = tempfile::tempdir()?;
    let root = corpus(dir.path())?;
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let first = run(options(&root, &a))?;
    let mut single_thread = options(&root, &b);
    single_thread.threads = Some(1);
    run(single_thread)?;
    assert!(first.chunks_total > 4, "{} chunks", first.chunks_total);
    assert!(first.dropped.duplicate > 0);
    assert_eq!(first.rejects, 1);
    assert_eq!(folder_bytes(&a)?, folder_bytes(&b)?);
    // No duplicate text survives.
    let docs = read_docs(&a)?;
    let unique: std::collections::HashSet<_> = docs.iter().map(|d| &d.text).collect();
    assert_eq!(unique.len(), docs.len());
    assert_eq!(docs.len() as u64, first.documents_out);
    Ok(())
}

#[test]
fn four_tasks_merged_equal_one_run() -> Result {
    let dir = tempfile::tempdir()?;
    let root = corpus(dir.path())?;
    let single = dir.path().join("single");
    let one = run(options(&root, &single))?;

    let sharded = dir.path().join("sharded");
    for index in [2, 0, 3, 1] {
        let report = run_shard(options(&root, &sharded), Shard { index, count: 4 })?;
        assert!(!report.complete);
    }
    // Before the merge, tasks left some cross-task duplicates in place.
    let before = read_docs(&sharded)?;
    assert!(before.len() > read_docs(&single)?.len());
    let merged = merge(options(&root, &sharded))?;
    assert!(merged.complete);
    assert_eq!(folder_bytes(&sharded)?, folder_bytes(&single)?);
    assert_eq!(merged.documents_out, one.documents_out);
    assert_eq!(merged.dropped, one.dropped);
    assert_eq!(merged.by_lang, one.by_lang);
    assert_eq!(merged.by_source, one.by_source);

    // Merging again changes nothing.
    merge(options(&root, &sharded))?;
    assert_eq!(folder_bytes(&sharded)?, folder_bytes(&single)?);
    Ok(())
}

/// The cross-chunk dedup as array tasks: B hash buckets, then rewrite tasks, then the merge;
/// or the merge alone with B buckets run one after the other. Every way gives the one-run
/// folder, manifest included, byte for byte.
#[test]
fn hash_buckets_as_tasks_equal_one_run() -> Result {
    let dir = tempfile::tempdir()?;
    let root = corpus(dir.path())?;
    let single = dir.path().join("single");
    run(options(&root, &single))?;
    let step = |out: &Path, options: RunOptions, buckets: Option<u32>| {
        let mut config = self::options(&root, out).resolve("test", Shard::ALL)?;
        config.dedup_buckets = buckets;
        ingest(&config, &options, &tinyforge_task::Silent)
    };

    let arrays = dir.path().join("arrays");
    for index in 0..3 {
        run_shard(options(&root, &arrays), Shard { index, count: 3 })?;
    }
    let early = step(
        &arrays,
        RunOptions {
            dedup_rewrite: Some(Shard { index: 0, count: 2 }),
            ..RunOptions::default()
        },
        Some(5),
    )
    .unwrap_err();
    assert!(
        early.to_string().contains("dedup bucket 0/5 is not done"),
        "{early}"
    );
    let mut duplicates = 0;
    for index in [4, 1, 0, 3, 2] {
        let bucket = Shard { index, count: 5 };
        let options = || RunOptions {
            dedup_bucket: Some(bucket),
            ..RunOptions::default()
        };
        let report = step(&arrays, options(), None)?;
        let summary = report.dedup.expect("a bucket task reports its bucket");
        assert_eq!((summary.buckets, summary.buckets_run), (5, 1));
        duplicates += summary.duplicates;
        // Run again (a requeued task): already done.
        let again = step(&arrays, options(), None)?.dedup.unwrap();
        assert_eq!(again.buckets_run, 0);
    }
    assert!(duplicates > 0);
    let mut rewritten = 0;
    for index in [1, 0] {
        let report = step(
            &arrays,
            RunOptions {
                dedup_rewrite: Some(Shard { index, count: 2 }),
                ..RunOptions::default()
            },
            None,
        )?;
        rewritten += report.dedup.unwrap().chunks_rewritten;
    }
    assert!(rewritten > 0);
    let merge = RunOptions {
        merge_only: true,
        ..RunOptions::default()
    };
    let merged = step(&arrays, merge.clone(), None)?;
    let summary = merged.dedup.unwrap();
    assert_eq!(
        (
            summary.buckets,
            summary.buckets_run,
            summary.chunks_rewritten
        ),
        (5, 0, 0)
    );

    let one_process = dir.path().join("one-process");
    for index in 0..3 {
        run_shard(options(&root, &one_process), Shard { index, count: 3 })?;
    }
    let merged = step(&one_process, merge, Some(7))?.dedup.unwrap();
    assert_eq!((merged.buckets, merged.buckets_run), (7, 7));
    assert_eq!(merged.duplicates, duplicates);
    assert_eq!(merged.chunks_rewritten, rewritten);

    // The manifest names its folder; otherwise the same bytes.
    let manifest = |out: &Path| -> Result<String> {
        let text = std::fs::read_to_string(out.join("_manifest.json"))?;
        Ok(text.replace(&out.display().to_string(), "OUT"))
    };
    for out in [&arrays, &one_process] {
        assert_eq!(
            folder_bytes(out)?,
            folder_bytes(&single)?,
            "{}",
            out.display()
        );
        assert_eq!(manifest(out)?, manifest(&single)?, "{}", out.display());
    }
    Ok(())
}

#[test]
fn merge_refuses_missing_tasks_and_other_configs() -> Result {
    let dir = tempfile::tempdir()?;
    let root = corpus(dir.path())?;
    let out = dir.path().join("out");
    run_shard(options(&root, &out), Shard { index: 0, count: 2 })?;
    let config = options(&root, &out).resolve("test", Shard::ALL)?;
    let err = ingest(
        &config,
        &RunOptions {
            merge_only: true,
            ..RunOptions::default()
        },
        &tinyforge_task::Silent,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not done yet"), "{err}");
    let mut other = options(&root, &out);
    other.min_chars = Some(3);
    let err = run_shard(other, Shard { index: 1, count: 2 }).unwrap_err();
    assert!(err.to_string().contains("other inputs or options"), "{err}");
    Ok(())
}

#[test]
fn resume_skips_finished_chunks() -> Result {
    let dir = tempfile::tempdir()?;
    let root = corpus(dir.path())?;
    let reference = dir.path().join("reference");
    run(options(&root, &reference))?;
    let out = dir.path().join("out");
    let first = run(options(&root, &out))?;
    // Simulate a kill after some chunks: drop the commit records (and outputs) of the rest,
    // and leave a half-written temporary behind.
    let state = out.join("_state");
    let mut removed = 0;
    for entry in std::fs::read_dir(&state)? {
        let path = entry?.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("chunk-0000")
            && name.ends_with(".json")
            && name.as_str() >= "chunk-00003.json"
        {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    std::fs::remove_file(out.join("_manifest.json"))?;
    std::fs::remove_file(out.join("part-00005.parquet"))?;
    std::fs::write(out.join(".part-00006.parquet.tmp-999"), b"partial")?;
    let second = run(options(&root, &out))?;
    assert_eq!(second.chunks_resumed, first.chunks_total - removed);
    assert_eq!(second.documents_out, first.documents_out);
    assert!(!out.join(".part-00006.parquet.tmp-999").exists());
    assert_eq!(folder_bytes(&out)?, folder_bytes(&reference)?);
    Ok(())
}
