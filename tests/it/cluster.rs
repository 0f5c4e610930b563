//! The data stages under a real scheduler: a one-machine Slurm cluster (Debian's slurm-wlm and
//! munge, started by `scripts/slurm-local`) runs `configs/cluster/prepare-data.sh`, the shipped
//! chain of dependent arrays (ingest chunks, dedup buckets, dedup rewrites, the docs merge,
//! vocab count, the vocab merge's hash buckets, tokenize, the merges), and the result is the
//! bytes of one process.

use std::path::Path;
use std::process::Command;

use tinyforge_shards::Dataset;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Stops the cluster at the end if this test started it.
struct Cluster {
    conf: String,
    started_here: bool,
}

impl Cluster {
    /// Starts the cluster, or says why it cannot (not root and no Slurm installed).
    fn start() -> Result<Cluster, String> {
        let script = root().join("scripts/slurm-local");
        let running = Command::new(&script)
            .arg("status")
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?
            .status
            .success();
        let output = Command::new(&script)
            .arg("start")
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        if !output.status.success() {
            return Err(format!(
                "scripts/slurm-local start failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let conf = stdout
            .lines()
            .find_map(|line| line.strip_prefix("export SLURM_CONF="))
            .ok_or_else(|| format!("no SLURM_CONF in {stdout:?}"))?
            .trim()
            .to_owned();
        Ok(Cluster {
            conf,
            started_here: !running,
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.started_here {
            let _ = Command::new(root().join("scripts/slurm-local"))
                .arg("stop")
                .output();
        }
    }
}

fn tinyforge() -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("tinyforge"));
    command.args(["--progress", "none"]);
    command
}

fn succeeds(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The documents folder's files by name (the manifest with its folder's path taken out).
fn docs_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = crate::plain_files(dir);
    for (name, bytes) in &mut files {
        if name == "_manifest.json" {
            *bytes = String::from_utf8(std::mem::take(bytes))
                .unwrap()
                .replace(&dir.display().to_string(), "DOCS")
                .into_bytes();
        }
    }
    files
}

#[test]
fn slurm_arrays_give_the_bytes_of_one_process() {
    let cluster = match Cluster::start() {
        Ok(cluster) => cluster,
        Err(why) => return crate::skip_unless_required("one-machine Slurm cluster", &why),
    };
    let tmp = tempfile::tempdir().unwrap();
    // The ingest tests' config over every fixture format, tiny parts: several chunks.
    let config = crate::ingest::write_config(tmp.path());
    let tokenizer = root().join("vocab/tests/fixtures/spm_bpe.json");
    let out = tmp.path().join("cluster");
    let output = Command::new(root().join("configs/cluster/prepare-data.sh"))
        .arg(&config)
        .arg(&tokenizer)
        .arg(&out)
        .args(["--chunks", "3", "--buckets", "3", "--rewrites", "2"])
        .args(["--count-buckets", "2"])
        .args(["--counts", "2", "--tokenize", "3", "--wait"])
        .env("SLURM_CONF", &cluster.conf)
        .env("TINYFORGE", assert_cmd::cargo::cargo_bin("tinyforge"))
        .output()
        .unwrap();
    let logs = || {
        let mut text = String::new();
        for entry in std::fs::read_dir(out.join("logs")).into_iter().flatten() {
            let path = entry.unwrap().path();
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<_> = log.lines().rev().take(5).collect();
            text += &format!("== {}\n{}\n", path.display(), tail.join("\n"));
        }
        text
    };
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        logs()
    );
    let jobs = String::from_utf8_lossy(&output.stdout);
    assert_eq!(jobs.lines().count(), 8, "one job per step: {jobs}");
    for bucket in 0..2 {
        assert!(out.join(format!("counts/sums/b{bucket}.parquet")).is_file());
    }

    let single = tmp.path().join("single");
    let docs = single.join("docs");
    succeeds(
        tinyforge()
            .arg("ingest")
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(&docs),
    );
    let tokens = single.join("tokens");
    succeeds(
        tinyforge()
            .arg("tokenize")
            .arg(&docs)
            .arg("--tokenizer")
            .arg(&tokenizer)
            .arg("--out")
            .arg(&tokens),
    );
    let counts = single.join("counts.parquet");
    succeeds(
        tinyforge()
            .args(["vocab", "count"])
            .arg(&docs)
            .arg("--tokenizer")
            .arg(&tokenizer)
            .arg("--out")
            .arg(&counts),
    );

    let ours = docs_files(&out.join("docs"));
    assert!(ours.iter().filter(|(n, _)| n.ends_with(".parquet")).count() > 3);
    assert!(
        ours == docs_files(&docs),
        "documents differ from one process's"
    );
    assert!(
        std::fs::read(out.join("counts.parquet")).unwrap() == std::fs::read(&counts).unwrap(),
        "merged counts differ from one process's"
    );
    let merged = Dataset::open(out.join("tokens")).unwrap();
    let one = Dataset::open(&tokens).unwrap();
    assert_eq!(merged.total_tokens(), one.total_tokens());
    let n = one.total_tokens() as usize;
    assert!(merged.read_range(0, n).unwrap() == one.read_range(0, n).unwrap());
}
