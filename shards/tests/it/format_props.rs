use proptest::prelude::*;
use tinyforge_shards::{Dataset, verify};

use crate::{header, stream, write_dataset};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any documents, frame size and shard size: every range reads back as written, the
    /// sequential scan equals the stream, and verify passes.
    #[test]
    fn any_dataset_reads_back(
        docs in prop::collection::vec(prop::collection::vec(1u32..70_000, 0..40), 0..40),
        frame_tokens in 1u32..50,
        shard_tokens in 1u64..200,
        ranges in prop::collection::vec((0.0f64..1.0, 0usize..120), 1..20),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let vocab = if docs.iter().flatten().any(|&t| t >= 65_536) { 70_000 } else { 65_536 };
        let manifest = write_dataset(dir.path(), &header(vocab, 0, frame_tokens), shard_tokens, &docs, None);
        let expected = stream(&docs, 0);
        prop_assert_eq!(manifest.total_tokens, expected.len() as u64);
        let dataset = Dataset::open(dir.path()).unwrap();
        let scanned: Vec<u32> = dataset.iter_chunks().flat_map(|c| c.unwrap()).collect();
        prop_assert_eq!(&scanned, &expected);
        for (at, len) in ranges {
            let start = (at * expected.len() as f64) as usize;
            let len = len.min(expected.len() - start);
            prop_assert_eq!(dataset.read_range(start as u64, len).unwrap(), &expected[start..start + len]);
        }
        let report = verify(dir.path(), &tinyforge_task::Silent).unwrap();
        prop_assert!(report.ok(), "{:?}", report.problems);
    }
}
