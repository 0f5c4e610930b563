//! `tinyforge report`: the HTML page of a training run, rendered by a real headless Chromium
//! (Debian's package, installed on first use by scripts/chromium) and checked from its
//! screenshot: the loss curve and the round-2 selection histogram must be drawn, not just
//! present in the file.
#![cfg(feature = "train")]

use std::path::Path;

use crate::{json, tinyforge};

/// Called by the training test with its finished two-round run and an eval of it.
pub(crate) fn run_report_renders_in_chromium(run: &Path, eval: &Path) {
    let summary = json(
        &tinyforge()
            .arg("report")
            .arg(run)
            .arg("--eval")
            .arg(eval)
            .assert()
            .success()
            .get_output()
            .stdout,
    );
    // The loss curve and round 2's histogram against round 1's losses.
    assert_eq!(summary["pictures"], 2, "{summary}");
    assert_eq!(
        summary["sections"],
        serde_json::json!(["run", "loss", "rounds", "data", "eval"])
    );
    let html_path = run.join("report.html");
    let html = std::fs::read_to_string(&html_path).unwrap();
    for needle in ["unigram (same tokens)", "softmax", "held out", "<svg"] {
        assert!(html.contains(needle), "the page lacks {needle:?}");
    }
    // Self-contained: nothing to fetch, nothing to run.
    assert!(!html.contains("<script") && !html.contains("src=\"http"));

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = std::process::Command::new(root.join("scripts/chromium"))
        .output()
        .unwrap();
    if !found.status.success() {
        return crate::skip_unless_required(
            "headless Chromium (scripts/chromium)",
            &String::from_utf8_lossy(&found.stderr),
        );
    }
    let chromium = String::from_utf8(found.stdout).unwrap().trim().to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let shot = tmp.path().join("report.png");
    let out = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            tmp.path().join("profile").display()
        ))
        .arg("--window-size=1100,3800")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!(
            "file://{}",
            html_path.canonicalize().unwrap().display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success() && shot.is_file(),
        "{chromium}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (width, height, pixels) = rgb_pixels(&shot);
    let count = |f: &dyn Fn(u8, u8, u8) -> bool| {
        pixels
            .chunks_exact(3)
            .filter(|p| f(p[0], p[1], p[2]))
            .count()
    };
    let blue = count(&|r, g, b| b > 180 && r < 90 && g < 90);
    let red = count(&|r, g, b| r > 180 && g < 90 && b < 90);
    let dark = count(&|r, g, b| r < 90 && g < 90 && b < 90);
    let white = count(&|r, g, b| r > 240 && g > 240 && b > 240);
    let total = (width * height) as usize;
    // Blue: the training loss line and the histogram of all units; red: the validation points
    // and the selected units; dark: text, axes and table rules.
    assert!(
        blue > 1500 && red > 600 && dark > 5000 && white > total / 2,
        "{width}×{height} screenshot: {blue} blue, {red} red, {dark} dark, {white} white pixels"
    );
}

/// The screenshot as 8-bit RGB.
fn rgb_pixels(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, rgb)
}
