use std::sync::Arc;

use tinyforge_shards::{
    Dataset, Dtype, Error, Manifest, PrefetchOptions, ReaderOptions, TaskInfo, merge,
};

use crate::{documents, header, stream, write_dataset};

#[test]
fn u16_and_u32_datasets_read_back_exactly() {
    for (vocab, eos) in [(50_000u32, 0u32), (151_700, 151_643)] {
        let dir = tempfile::tempdir().unwrap();
        let docs = documents(300, 120, vocab, eos, u64::from(vocab));
        let header = header(vocab, eos, 64);
        let manifest = write_dataset(dir.path(), &header, 5_000, &docs, None);
        assert_eq!(
            manifest.dtype,
            if vocab <= 65_536 {
                Dtype::U16
            } else {
                Dtype::U32
            }
        );
        assert!(manifest.shards.len() > 2, "the test needs several shards");
        let expected = stream(&docs, eos);
        let dataset = Dataset::open(dir.path()).unwrap();
        assert_eq!(dataset.total_tokens(), expected.len() as u64);
        assert_eq!(dataset.documents(), docs.len() as u64);
        assert_eq!(dataset.read_range(0, expected.len()).unwrap(), expected);
        let scanned: Vec<u32> = dataset.iter_chunks().flat_map(|c| c.unwrap()).collect();
        assert_eq!(scanned, expected);
        // u16 files are half the size of u32 ones for the same number of tokens (before zstd).
        let width = if manifest.dtype == Dtype::U16 { 2 } else { 4 };
        let shard = std::fs::read(dir.path().join(&manifest.shards[0].file)).unwrap();
        let mut raw = Vec::new();
        zstd::stream::copy_decode(&shard[..], &mut raw).unwrap();
        assert_eq!(
            raw.len() as u64,
            manifest.shards[0].tokens * width,
            "zstd -d yields the raw tokens"
        );
    }
}

#[test]
fn windows_across_frame_and_shard_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let docs = documents(200, 90, 1000, 999, 7);
    let header = header(1000, 999, 16);
    let manifest = write_dataset(dir.path(), &header, 700, &docs, None);
    let expected = stream(&docs, 999);
    let dataset = Dataset::open_with(
        dir.path(),
        ReaderOptions {
            cache_frames: 3,
            open_files: 2,
        },
    )
    .unwrap();
    let starts: Vec<u64> = (0..dataset.shard_count())
        .map(|s| dataset.shard_start(s))
        .collect();
    assert!(starts.len() > 3);
    for seq_len in [1usize, 15, 16, 17, 100, 701] {
        let units = dataset.unit_count(seq_len);
        assert_eq!(units, (expected.len() as u64 - 1) / seq_len as u64);
        for unit in 0..units {
            let start = unit as usize * seq_len;
            let window = dataset.window(unit, seq_len).unwrap();
            assert_eq!(
                window,
                expected[start..start + seq_len + 1],
                "unit {unit} seq_len {seq_len}"
            );
        }
        assert!(matches!(
            dataset.window(units, seq_len),
            Err(Error::OutOfRange { .. })
        ));
    }
    // Ranges that start right at, just before and just after each shard boundary.
    for &s in &starts[1..] {
        for start in [s - 1, s, s + 1] {
            let len = 40.min(expected.len() - start as usize);
            assert_eq!(
                dataset.read_range(start, len).unwrap(),
                expected[start as usize..start as usize + len]
            );
        }
    }
    assert!(dataset.read_range(expected.len() as u64 - 3, 4).is_err());
    assert_eq!(manifest.total_tokens, expected.len() as u64);
}

#[test]
fn documents_are_found_by_token() {
    let dir = tempfile::tempdir().unwrap();
    let docs = documents(50, 30, 300, 1, 3);
    write_dataset(dir.path(), &header(300, 1, 8), 100, &docs, None);
    let dataset = Dataset::open(dir.path()).unwrap();
    let mut start = 0u64;
    for (i, doc) in docs.iter().enumerate() {
        let end = start + doc.len() as u64 + 1;
        for token in [start, end - 1] {
            let found = dataset.document_at(token).unwrap();
            assert_eq!(
                (found.index, found.id, found.start, found.end),
                (i as u64, i as u64, start, end)
            );
        }
        start = end;
    }
}

#[test]
fn prefetch_yields_plan_order_from_background_threads() {
    let dir = tempfile::tempdir().unwrap();
    let docs = documents(400, 60, 5000, 0, 11);
    write_dataset(dir.path(), &header(5000, 0, 32), 2000, &docs, None);
    let dataset = Arc::new(Dataset::open(dir.path()).unwrap());
    let seq_len = 24;
    let units = dataset.unit_count(seq_len);
    // A lazy plan: a fixed stride through the units (a permutation when gcd(stride, units) = 1).
    let plan: Vec<u64> = (0..units).map(|i| (i * 7919) % units).collect();
    let lazy = plan.clone().into_iter();
    let options = PrefetchOptions {
        threads: 3,
        depth: 5,
    };
    let got: Vec<(u64, Vec<u32>)> = dataset
        .prefetch(lazy, seq_len, options)
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(got.len(), plan.len());
    for ((unit, window), &planned) in got.iter().zip(&plan) {
        assert_eq!(*unit, planned);
        assert_eq!(*window, dataset.window(planned, seq_len).unwrap());
    }
    // Dropping a prefetcher half way stops its threads (the test would hang otherwise).
    let mut partial = dataset.prefetch(plan.clone(), seq_len, options);
    assert!(partial.next().is_some());
    drop(partial);
    // An out-of-range unit is an error in its place, then the iterator ends.
    let results: Vec<_> = dataset
        .prefetch(vec![0, units, 1], seq_len, options)
        .collect();
    assert_eq!(results.len(), 2);
    assert!(results[1].is_err());
}

#[test]
fn merge_joins_task_outputs_in_task_order_without_copying() {
    let root = tempfile::tempdir().unwrap();
    let docs = documents(120, 50, 700, 5, 21);
    let header = header(700, 5, 16);
    let parts = [&docs[..30], &docs[30..31], &docs[31..100], &docs[100..]];
    let mut dirs = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let dir = root.path().join(format!("tasks/t{i}"));
        let task = TaskInfo {
            index: i as u32,
            count: 4,
            run: "run-a".into(),
        };
        write_dataset(&dir, &header, 300, part, Some(task));
        dirs.push(dir);
    }
    // Given out of order: merge sorts by task index.
    dirs.swap(0, 3);
    let out = root.path().join("merged");
    let merged = merge(&dirs, &out, &[]).unwrap();
    assert!(merged.task.is_none());
    assert!(
        merged
            .shards
            .iter()
            .all(|s| s.file.starts_with("../tasks/t"))
    );
    let written = Manifest::read(&out).unwrap();
    assert_eq!(written, merged);
    let dataset = Dataset::open(&out).unwrap();
    let expected = stream(&docs, 5);
    assert_eq!(dataset.read_range(0, expected.len()).unwrap(), expected);
    // No shard data under the merged folder: only the manifest (beside the task's lock file).
    let entries: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".lock"))
        .collect();
    assert_eq!(entries, ["manifest.json"]);

    // The same dataset by URL: the manifest one GET, every index and frame a ranged GET, the
    // merged manifest's `../tasks/...` names resolved in the store.
    let url = format!("file://{}", out.display());
    let remote = Dataset::open(&url).unwrap();
    assert_eq!(remote.read_range(0, expected.len()).unwrap(), expected);
    assert_eq!(remote.read_range(777, 300).unwrap(), expected[777..1077]);
    let missing = Dataset::open(format!("file://{}/nothing-here", root.path().display()));
    let err = missing.err().expect("no manifest there").to_string();
    assert!(err.contains("nothing-here/manifest.json"), "{err}");

    let incomplete = merge(&dirs[..3], &root.path().join("bad"), &[]);
    assert!(matches!(incomplete, Err(Error::Merge(_))), "{incomplete:?}");
}

#[test]
fn opening_a_huge_manifest_touches_no_shard() {
    let dir = tempfile::tempdir().unwrap();
    let shards = (0..100_000)
        .map(|i| tinyforge_shards::ShardEntry {
            file: tinyforge_shards::shard_file_name(i),
            tokens: 1_000_000,
            documents: 1000,
            frames: 16,
            bytes: 1_200_000,
            checksum: tinyforge_shards::checksum_string(i as u64),
        })
        .collect();
    let manifest = Manifest::new(header(48_000, 2, 65_536), None, shards);
    manifest.write(dir.path()).unwrap();
    let dataset = Dataset::open(dir.path()).unwrap();
    assert_eq!(dataset.total_tokens(), 100_000_000_000);
    assert_eq!(dataset.shard_start(99_999), 99_999_000_000);
    // The files do not exist: the first read names the missing shard.
    let error = dataset
        .window(98_000_000_000 / 1024, 1024)
        .unwrap_err()
        .to_string();
    assert!(error.contains("shard-098000.tfs"), "{error}");
}
