use tinyforge_vocab::merge_counts;
use tinyforge_vocab::{BaseTokenizer, CountConfig, Counts, Shard, count_documents};

use crate::common::{corpus, fixture, reference_counts, write_docs};

fn count(dir: &std::path::Path, base: &BaseTokenizer, shard: Shard) -> Counts {
    let config = CountConfig {
        shard,
        // Tiny caches and batches so that the flush and batching paths run on a small corpus.
        batch_rows: 7,
        word_cache: 64,
    };
    count_documents(dir, base, &config, &tinyforge_task::Silent).unwrap()
}

#[test]
fn counts_equal_plain_encoding_for_both_families() {
    let docs = corpus();
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    let tmp = tempfile::tempdir().unwrap();
    write_docs(tmp.path(), &docs, 2, 40);
    for name in ["bytelevel_bpe.json", "spm_bpe.json"] {
        let base = BaseTokenizer::load(&fixture(name)).unwrap();
        let counts = count(tmp.path(), &base, Shard::default());
        assert_eq!(counts.counts, reference_counts(&base, &texts), "{name}");
        assert_eq!(counts.documents, docs.len() as u64);
        let bytes: usize = texts.iter().map(|t| t.len()).sum();
        assert_eq!(counts.bytes, bytes as u64);
        assert!(counts.total() > 10_000, "{name}: {}", counts.total());
    }
}

#[test]
fn one_run_equals_sharded_runs_merged() {
    let docs = corpus();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("docs");
    write_docs(&dir, &docs, 3, 25);
    let base = BaseTokenizer::load(&fixture("bytelevel_bpe.json")).unwrap();
    let whole = count(&dir, &base, Shard::default());
    let mut partials = Vec::new();
    for index in 0..4 {
        let part = count(&dir, &base, Shard { index, count: 4 });
        assert!(part.documents > 0, "every shard has work");
        let path = tmp.path().join(format!("part-{index}.parquet"));
        part.write(&path).unwrap();
        partials.push(path);
    }
    let merged = merge_counts(&partials, None).unwrap();
    assert_eq!(merged.counts, whole.counts);
    assert_eq!(merged.tokens, whole.tokens);
    assert_eq!(merged.documents, whole.documents);
    assert_eq!(merged.bytes, whole.bytes);

    // Written and read back, the merged table is the same table.
    let path = tmp.path().join("merged.parquet");
    merged.write(&path).unwrap();
    assert_eq!(Counts::read(&path).unwrap(), merged);

    let err = merge_counts(&partials[..3], None).unwrap_err().to_string();
    assert!(err.contains("3/4"), "{err}");
    let twice = [partials[0].clone(), partials[0].clone()];
    let err = merge_counts(&twice, None).unwrap_err().to_string();
    assert!(err.contains("twice"), "{err}");

    // Partitioned: bucket b of 3 sums the ids i % 3 == b of every partial; the buckets joined
    // are the one-process table, byte for byte once written.
    let mut buckets = Vec::new();
    for index in [2, 0, 1] {
        let bucket = Shard { index, count: 3 };
        let table = merge_counts(&partials, Some(bucket)).unwrap();
        assert_eq!(table.bucket, Some(bucket));
        assert_eq!(table.documents, whole.documents);
        for (id, token) in table.tokens.iter().enumerate() {
            assert!(
                token.is_none() || id % 3 == index as usize,
                "id {id} in bucket {index}"
            );
        }
        let path = tmp.path().join(format!("bucket-{index}.parquet"));
        table.write(&path).unwrap();
        assert_eq!(Counts::read(&path).unwrap(), table);
        buckets.push(path);
    }
    let joined = merge_counts(&buckets, None).unwrap();
    assert_eq!(joined, merged);
    let joined_path = tmp.path().join("joined.parquet");
    joined.write(&joined_path).unwrap();
    assert_eq!(
        std::fs::read(&joined_path).unwrap(),
        std::fs::read(&path).unwrap()
    );
    let err = merge_counts(&buckets[..2], None).unwrap_err().to_string();
    assert!(err.contains("bucket(s) 1/3 missing"), "{err}");
    let mixed = [buckets[0].clone(), partials[0].clone()];
    let err = merge_counts(&mixed, None).unwrap_err().to_string();
    assert!(err.contains("is a bucket table and"), "{err}");
    let err = merge_counts(&buckets, Some(Shard { index: 0, count: 2 }))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bucket tables already"), "{err}");
    let base_counts = Counts::read(&buckets[0]).unwrap();
    let mut bucket_table = base_counts.clone();
    let err = bucket_table
        .check_against(&buckets[0], &base)
        .unwrap_err()
        .to_string();
    assert!(err.contains("join all 3 buckets"), "{err}");
}

#[test]
fn merge_refuses_counts_of_another_tokenizer() {
    let docs = corpus();
    let tmp = tempfile::tempdir().unwrap();
    let docs_dir = tmp.path().join("docs");
    write_docs(&docs_dir, &docs[..20], 1, 10);
    let mut paths = Vec::new();
    for name in ["bytelevel_bpe.json", "spm_bpe.json"] {
        let base = BaseTokenizer::load(&fixture(name)).unwrap();
        // Outside the documents folder, which `count` reads whole.
        let path = tmp.path().join(format!("{name}.parquet"));
        count(&docs_dir, &base, Shard::default())
            .write(&path)
            .unwrap();
        paths.push(path);
    }
    let err = merge_counts(&paths, None).unwrap_err().to_string();
    assert!(err.contains("same tokenizer"), "{err}");
}

#[test]
fn missing_text_column_and_empty_folder_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let base = BaseTokenizer::load(&fixture("bytelevel_bpe.json")).unwrap();
    let err = count_documents(
        tmp.path(),
        &base,
        &CountConfig::default(),
        &tinyforge_task::Silent,
    )
    .unwrap_err();
    assert!(err.to_string().contains("no *.parquet"), "{err}");
}
