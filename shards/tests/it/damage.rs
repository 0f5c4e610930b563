use tinyforge_shards::{Dataset, Error, FORMAT_VERSION, verify};

use crate::{documents, header, stream, write_dataset};

#[test]
fn a_flipped_byte_is_named_by_verify_and_fails_reads() {
    let dir = tempfile::tempdir().unwrap();
    let docs = documents(300, 80, 30_000, 0, 5);
    let manifest = write_dataset(dir.path(), &header(30_000, 0, 128), 4_000, &docs, None);
    let clean = verify(dir.path(), &tinyforge_task::Silent).unwrap();
    assert!(clean.ok(), "{:?}", clean.problems);
    assert_eq!(clean.tokens, manifest.total_tokens);

    // Flip one byte inside frame 3 of shard 1: the frame offsets come from a fresh reader so
    // the test does not depend on the layout constants.
    let shard = 1;
    let victim = dir.path().join(&manifest.shards[shard].file);
    let mut bytes = std::fs::read(&victim).unwrap();
    let frame_table_at = frame_offset(&bytes, 3);
    bytes[frame_table_at + 5] ^= 0x40;
    std::fs::write(&victim, &bytes).unwrap();

    let report = verify(dir.path(), &tinyforge_task::Silent).unwrap();
    assert!(!report.ok());
    let framed: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.frame.is_some())
        .collect();
    assert_eq!(framed.len(), 1, "{:?}", report.problems);
    assert_eq!(framed[0].file, manifest.shards[shard].file);
    assert_eq!(framed[0].frame, Some(3));
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("file checksum mismatch"))
    );

    // Reads touching the frame fail; others still succeed and are right.
    let dataset = Dataset::open(dir.path()).unwrap();
    let frame_start = dataset.shard_start(shard) + 3 * 128;
    let error = dataset.read_range(frame_start + 10, 5).unwrap_err();
    assert!(
        matches!(
            &error,
            Error::FrameChecksum { frame: 3, .. } | Error::CorruptFrame { frame: 3, .. }
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains(&manifest.shards[shard].file),
        "{error}"
    );
    // A whole-frame read (decoded straight into the caller's buffer, past the cache) fails
    // the same way.
    let error = dataset.read_range(frame_start, 128).unwrap_err();
    assert!(
        matches!(
            &error,
            Error::FrameChecksum { frame: 3, .. } | Error::CorruptFrame { frame: 3, .. }
        ),
        "{error}"
    );
    let expected = stream(&docs, 0);
    assert_eq!(dataset.read_range(0, 1000).unwrap(), expected[..1000]);
    assert_eq!(
        dataset.window(2, 128).unwrap(),
        expected[256..385],
        "an aligned window reads one frame plus the next frame's first token"
    );
    let chunks: Vec<_> = dataset.iter_chunks().collect();
    assert!(
        chunks.last().unwrap().is_err(),
        "the scan ends with the error"
    );
}

#[test]
fn a_truncated_or_missing_shard_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let docs = documents(100, 50, 500, 1, 9);
    let manifest = write_dataset(dir.path(), &header(500, 1, 32), 1_000, &docs, None);
    let first = dir.path().join(&manifest.shards[0].file);
    let bytes = std::fs::read(&first).unwrap();
    std::fs::write(&first, &bytes[..bytes.len() - 10]).unwrap();
    let dataset = Dataset::open(dir.path()).unwrap();
    assert!(dataset.read_range(0, 10).is_err());
    let report = verify(dir.path(), &tinyforge_task::Silent).unwrap();
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].file, manifest.shards[0].file);

    std::fs::remove_file(dir.path().join(&manifest.shards[1].file)).unwrap();
    let report = verify(dir.path(), &tinyforge_task::Silent).unwrap();
    assert_eq!(report.problems.len(), 2);
}

#[test]
fn a_manifest_of_another_version_is_refused() {
    // Version 1 stored interleaved ids: read as byte planes they would be wrong tokens.
    let dir = tempfile::tempdir().unwrap();
    write_dataset(
        dir.path(),
        &header(500, 1, 32),
        1_000,
        &documents(10, 5, 500, 1, 1),
        None,
    );
    let path = dir.path().join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&format!("\"version\": {FORMAT_VERSION}"), "\"version\": 1");
    std::fs::write(&path, text).unwrap();
    let error = Dataset::open(dir.path()).err().unwrap();
    assert!(matches!(error, Error::Version { .. }), "{error}");
}

/// The file offset of frame `frame`'s compressed bytes, parsed from the shard's trailer.
fn frame_offset(bytes: &[u8], frame: usize) -> usize {
    let trailer = &bytes[bytes.len() - 48..];
    let word =
        |i: usize| u64::from_le_bytes(trailer[i * 8..i * 8 + 8].try_into().unwrap()) as usize;
    let (frames, docs) = (word(0), word(1));
    let table = bytes.len() - 48 - docs * 16 - frames * 32;
    let entry = &bytes[table + frame * 32..table + frame * 32 + 8];
    u64::from_le_bytes(entry.try_into().unwrap()) as usize
}
