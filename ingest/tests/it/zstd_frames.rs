//! A JSONL file compressed as several zstd frames that all declare their decompressed size is
//! read as byte ranges cut at frame boundaries: the documents, ids and rejects of a whole read,
//! the same bytes for any task count. Any other zstd file is read whole, as before.

use super::*;

/// A zstd frame made by the library, declaring its decompressed size or not.
fn frame(data: &[u8], content_size: bool, checksum: bool) -> Result<Vec<u8>> {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3)?;
    encoder.include_contentsize(content_size)?;
    encoder.include_checksum(checksum)?;
    if content_size {
        encoder.set_pledged_src_size(Some(data.len() as u64))?;
    }
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

/// A skippable frame: no data, which every reader skips.
fn skippable(payload: &[u8]) -> Vec<u8> {
    let mut out = 0x184D_2A5Au32.to_le_bytes().to_vec();
    out.extend((payload.len() as u32).to_le_bytes());
    out.extend(payload);
    out
}

/// The test's JSON Lines: records that compress about 2:1 (hex noise), so that a part holds a
/// few frames' worth of documents; some blank lines; malformed lines (bad JSON, invalid UTF-8)
/// here and there, in later frames too. Returns the bytes and the offsets of the bad lines.
fn corpus() -> (Vec<u8>, Vec<u64>) {
    let mut raw = Vec::new();
    let mut bad = Vec::new();
    let mut seed = 7u64;
    for i in 0..2500usize {
        let noise: String = (0..(i * 37) % 160)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                char::from(b"0123456789abcdef"[(seed >> 60) as usize])
            })
            .collect();
        let text = format!("{EN} {i} {noise}");
        raw.extend(
            serde_json::json!({"text": text, "n": i})
                .to_string()
                .as_bytes(),
        );
        raw.push(b'\n');
        if i % 400 == 17 {
            bad.push(raw.len() as u64);
            raw.extend(b"{not json\n");
        }
        if i == 1801 {
            bad.push(raw.len() as u64);
            raw.extend(b"{\"text\": \"bad \xff bytes in this line\"}\n");
        }
        if i % 700 == 5 {
            raw.extend(b"  \n");
        }
    }
    (raw, bad)
}

/// Where the frames cut the corpus: every few KiB, in the middle of lines, and at the edge
/// cases of a range's first line: a frame that starts a line, one that starts a byte into a
/// line, one whose first byte is a newline, an empty frame.
fn frame_cuts(raw: &[u8]) -> Vec<usize> {
    let line_start = |from: usize| from + raw[from..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut cuts = Vec::new();
    let mut at = 0;
    for step in 1.. {
        at += 2500 + (step * 3571) % 5000;
        if at >= raw.len() {
            break;
        }
        let cut = match step % 6 {
            1 => line_start(at),
            2 => line_start(at) + 1,
            3 => line_start(at) - 1,
            4 => line_start(at) - 2,
            _ => at,
        };
        if cut >= raw.len() {
            break;
        }
        cuts.push(cut);
        if step == 9 {
            cuts.push(*cuts.last().unwrap());
        }
    }
    cuts
}

/// Where a frame starts: in the file, and in the decompressed stream.
type FrameStart = (u64, u64);

/// The corpus as frames cut at `cuts`, declaring their sizes or not, with checksums on every
/// other frame and a skippable frame after the fifth; and where each frame starts.
fn frames(raw: &[u8], cuts: &[usize], content_size: bool) -> Result<(Vec<u8>, Vec<FrameStart>)> {
    let mut bounds = vec![0];
    bounds.extend(cuts);
    bounds.push(raw.len());
    let mut file = Vec::new();
    let mut starts = Vec::new();
    for (index, pair) in bounds.windows(2).enumerate() {
        starts.push((file.len() as u64, pair[0] as u64));
        file.extend(frame(&raw[pair[0]..pair[1]], content_size, index % 2 == 1)?);
        if index == 4 {
            file.extend(skippable(b"an index, say"));
        }
    }
    Ok((file, starts))
}

fn write(dir: &Path, folder: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(folder).join("big.jsonl.zst");
    std::fs::create_dir_all(path.parent().unwrap())?;
    std::fs::write(&path, bytes)?;
    Ok(path)
}

/// Every file is named `big.jsonl.zst` and labelled `s`, so that ids agree across folders.
fn options(path: &Path, out: &Path, part_bytes: u64) -> IngestOptions {
    let mut inp = input(path);
    inp.source = Some("s".into());
    let mut options = config(vec![inp], out);
    options.part_size_mb = Some(part_bytes as f64 / (1 << 20) as f64);
    options.row_group_mb = Some(0.01);
    options
}

/// The byte offset of each reject, whether it names a line or a bare offset.
fn reject_offsets(out: &Path) -> Result<Vec<u64>> {
    let text = std::fs::read_to_string(out.join("_rejects.jsonl"))?;
    text.lines()
        .map(|line| {
            let reject: serde_json::Value = serde_json::from_str(line)?;
            let location = &reject["location"];
            location["line"]["offset"]
                .as_u64()
                .or(location["offset"]["offset"].as_u64())
                .ok_or_else(|| anyhow::anyhow!("no offset in {line}"))
        })
        .collect()
}

/// The documents a whole read gives: each good line's byte offset in the decompressed stream,
/// and its id (the hash of the source, the file's path and that offset).
fn good_lines(raw: &[u8], bad: &[u64]) -> Vec<(u64, u64)> {
    let mut lines = Vec::new();
    let mut offset = 0u64;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if !line.iter().all(u8::is_ascii_whitespace) && !bad.contains(&offset) {
            let mut key = b"s\0big.jsonl.zst\0".to_vec();
            key.extend(offset.to_le_bytes());
            lines.push((offset, xxhash_rust::xxh3::xxh3_64(&key)));
        }
        offset += line.len() as u64;
    }
    lines
}

/// A multi-frame file cut into ranges of a few frames, or of about one frame each, gives the
/// documents (ids from decompressed byte offsets, texts, everything) and rejects (by byte
/// offset) of the same content read whole: as one frame, or as frames that do not declare
/// their size (both read whole, as before). Three tasks give the bytes of one run.
#[test]
fn a_multi_frame_zstd_file_is_split_at_frames() -> Result {
    let dir = tempfile::tempdir()?;
    let (raw, bad) = corpus();
    let cuts = frame_cuts(&raw);
    assert!(cuts.len() > 40, "{} frames", cuts.len() + 1);
    let (many, starts) = frames(&raw, &cuts, true)?;
    let (unknown, _) = frames(&raw, &cuts, false)?;
    let many_path = write(dir.path(), "many", &many)?;
    let one_path = write(dir.path(), "one", &frame(&raw, true, true)?)?;
    let unknown_path = write(dir.path(), "unknown", &unknown)?;
    let size = many.len() as u64;
    // About six ranges; then (nearly) one range per frame.
    let (part, fine) = (size / 6, size / (starts.len() as u64 * 2));

    let whole = dir.path().join("out-one");
    let report = run(options(&one_path, &whole, part))?;
    assert_eq!(report.chunks_total, 1, "a single frame is read whole");
    let docs = read_docs(&whole)?;
    assert_eq!(
        docs.iter().map(|d| d.id).collect::<Vec<_>>(),
        good_lines(&raw, &bad)
            .iter()
            .map(|&(_, id)| id)
            .collect::<Vec<_>>(),
        "ids are decompressed byte offsets"
    );
    assert!(docs.len() > 2000);
    assert_eq!(reject_offsets(&whole)?, bad);
    let whole_rejects = rejects(&whole)?;
    assert!(
        whole_rejects[5]["reason"]
            .as_str()
            .unwrap()
            .contains("invalid UTF-8"),
        "{whole_rejects:?}"
    );

    let out = dir.path().join("out-unknown");
    let report = run(options(&unknown_path, &out, fine))?;
    assert_eq!(
        report.chunks_total, 1,
        "frames without a size are read whole"
    );
    assert_eq!(read_docs(&out)?, docs);
    assert_eq!(reject_offsets(&out)?, bad);

    let split = dir.path().join("out-many");
    let report = run(options(&many_path, &split, part))?;
    assert!(
        (5..=8).contains(&report.chunks_total),
        "{} chunks",
        report.chunks_total
    );
    assert_eq!(read_docs(&split)?, docs);
    assert_eq!(reject_offsets(&split)?, bad);
    assert_eq!(report.rejects, bad.len() as u64);
    let split_rejects = rejects(&split)?;
    for (a, b) in whole_rejects.iter().zip(&split_rejects) {
        assert_eq!(a["reason"], b["reason"]);
        assert_eq!(a["raw"], b["raw"]);
    }
    // Rejects of later ranges name the byte alone, as for a plain file.
    assert!(
        split_rejects
            .iter()
            .any(|r| r["location"]["offset"]["offset"].is_u64()),
        "{split_rejects:?}"
    );

    let out = dir.path().join("out-fine");
    let report = run(options(&many_path, &out, fine))?;
    assert!(
        report.chunks_total as usize > starts.len() * 3 / 4,
        "{} chunks for {} frames",
        report.chunks_total,
        starts.len()
    );
    assert_eq!(read_docs(&out)?, docs);
    assert_eq!(reject_offsets(&out)?, bad);

    let tasks = dir.path().join("tasks");
    for index in [1, 2, 0] {
        run_shard(options(&many_path, &tasks, part), Shard { index, count: 3 })?;
    }
    merge(options(&many_path, &tasks, part))?;
    assert!(
        folder_bytes(&tasks)? == folder_bytes(&split)?,
        "3 tasks differ from one run"
    );
    Ok(())
}

/// A multi-frame file that is truncated, or whose later frame header is damaged, is read whole
/// (its headers do not add up): what comes before the damage is kept, and the reject names the
/// byte offset where the stream broke. Damage inside a frame's blocks (the headers are fine)
/// does not stop the split: that frame's range is rejected where it broke, later ranges are
/// read.
#[test]
fn a_damaged_multi_frame_zstd_file_is_read_whole() -> Result {
    let dir = tempfile::tempdir()?;
    let (raw, bad) = corpus();
    let cuts = frame_cuts(&raw);
    let (many, starts) = frames(&raw, &cuts, true)?;
    let part = many.len() as u64 / 6;
    let one_path = write(dir.path(), "one", &frame(&raw, true, false)?)?;
    let whole = dir.path().join("out-one");
    run(options(&one_path, &whole, part))?;
    let docs = read_docs(&whole)?;

    // Cut in the middle of frame 20; the magic number of frame 30 broken.
    let (middle, _) = starts[20];
    let cut = (middle + starts[21].0) as usize / 2;
    let mut damaged = many.clone();
    let (frame_30, stream_30) = starts[30];
    damaged[frame_30 as usize] ^= 0x40;
    for (name, bytes) in [("cut", &many[..cut]), ("damaged", &damaged[..])] {
        let path = write(dir.path(), name, bytes)?;
        let out = dir.path().join(format!("out-{name}"));
        let report = run(options(&path, &out, part))?;
        assert_eq!(report.chunks_total, 1, "{name}");
        let got = read_docs(&out)?;
        assert!(got.len() > 100 && got.len() < docs.len(), "{name}");
        assert_eq!(got[..], docs[..got.len()], "{name}");
        let rejects = rejects(&out)?;
        let last = rejects.last().unwrap();
        let reason = last["reason"].as_str().unwrap();
        let offset = last["location"]["offset"]["offset"].as_u64().unwrap();
        if name == "cut" {
            assert!(reason.contains("truncated zstd stream"), "{reason}");
            assert!(offset > starts[19].1 && offset <= starts[21].1, "{offset}");
        } else {
            assert!(reason.contains("zstd stream"), "{reason}");
            assert_eq!(offset, stream_30, "{reason}");
        }
        // The bad lines before the break are named as in a whole read.
        let before: Vec<u64> = bad.iter().copied().filter(|&b| b < offset).collect();
        assert_eq!(
            reject_offsets(&out)?[..rejects.len() - 1],
            before[..],
            "{name}"
        );
    }

    // A byte of frame 31's block flipped (it has a checksum): about a range per frame.
    let mut corrupt = many.clone();
    let (frame_31, _) = starts[31];
    corrupt[(frame_31 + starts[32].0) as usize / 2] ^= 0x55;
    let path = write(dir.path(), "corrupt", &corrupt)?;
    let out = dir.path().join("out-corrupt");
    let report = run(options(
        &path,
        &out,
        many.len() as u64 / (starts.len() as u64 * 2),
    ))?;
    assert!(report.chunks_total > 20, "{} chunks", report.chunks_total);
    let broken: Vec<u64> = rejects(&out)?
        .iter()
        .filter(|r| r["reason"].as_str().unwrap().contains("zstd stream"))
        .map(|r| r["location"]["offset"]["offset"].as_u64().unwrap())
        .collect();
    assert!(!broken.is_empty());
    for offset in broken {
        assert!(offset >= starts[30].1 && offset <= starts[32].1, "{offset}");
    }
    // Everything before frame 30 and from frame 35 on is there, as in a whole read.
    let got = read_docs(&out)?;
    assert!(got.len() < docs.len());
    let lines = good_lines(&raw, &bad);
    let head = lines.iter().filter(|&&(at, _)| at < starts[30].1).count();
    let tail = lines.iter().filter(|&&(at, _)| at >= starts[35].1).count();
    assert!(head > 100 && tail > 100);
    assert_eq!(got[..head], docs[..head]);
    assert_eq!(got[got.len() - tail..], docs[docs.len() - tail..]);
    Ok(())
}
