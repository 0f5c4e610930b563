//! `tinyforge train` and `score` on several processes (Gloo on CPU): `--nproc`, a hand-made
//! launch with `--rank/--world-size/--master-port`, a rank that hangs then dies, and the
//! relaunch that resumes from the last checkpoint.
#![cfg(feature = "train")]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::train::{config, dataset, train_report};
use crate::{json, tinyforge};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rows(table: &Path) -> Vec<(u64, f32)> {
    tinyforge_train::read_loss_table(table).unwrap()
}

#[test]
fn nproc_2_trains_both_rounds_and_scores_like_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(&tmp.path().join("shards"));
    let one = tmp.path().join("one");
    let two = tmp.path().join("two");
    let single = train_report(&config(tmp.path(), &data, &one), &[]);
    // Rank 0 alone prints the report.
    let report = train_report(
        &config(tmp.path(), &data, &two),
        &["--nproc", "2", "--dist-timeout", "60"],
    );
    assert_eq!(report["world_size"], 2);
    assert_eq!(report["zero_stage"], 1);
    assert_eq!(report["complete"], true);
    assert_eq!(report["rounds_done"], 2);
    assert_eq!(report["steps"], single["steps"]);
    let (a, b) = (
        report["last_loss"].as_f64().unwrap(),
        single["last_loss"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-3, "last loss {a} on 2 ranks, {b} on one");
    // The model of round 1 scored every unit of round 1's plan, split over the ranks: the same
    // table as one process's, row for row.
    let (s1, s2) = (
        rows(&one.join("losses/score-round-1.parquet")),
        rows(&two.join("losses/score-round-1.parquet")),
    );
    assert_eq!(s1.len(), s2.len());
    for ((u1, l1), (u2, l2)) in s1.iter().zip(&s2) {
        assert_eq!(u1, u2);
        assert!((l1 - l2).abs() < 1e-3, "unit {u1}: {l1} vs {l2}");
    }
    // Round 1's training losses: one row per unit of its plan.
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(two.join("plans/round-1.json")).unwrap()).unwrap();
    let trained = rows(&two.join("losses/train-round-1"));
    let batch = 8;
    assert_eq!(
        trained.len() as u64,
        plan["steps"].as_u64().unwrap() * batch,
        "{plan}"
    );
    let mut units: Vec<u64> = trained.iter().map(|(u, _)| *u).collect();
    units.sort_unstable();
    units.dedup();
    assert_eq!(units.len(), trained.len(), "a unit recorded twice");

    // `tinyforge score` over 2 ranks writes the table one process writes.
    let ckpt = tinyforge_train::checkpoint::latest(&one.join("checkpoints"))
        .unwrap()
        .unwrap();
    let mut tables = vec![];
    for n in ["1", "2"] {
        let table = tmp.path().join(format!("score-{n}.parquet"));
        tinyforge()
            .args(["score", "--device", "cpu", "--nproc", n, "--checkpoint"])
            .arg(&ckpt)
            .arg("--data")
            .arg(&data)
            .arg("--plan")
            .arg(one.join("plans/round-1.json"))
            .arg("--out")
            .arg(&table)
            .assert()
            .success();
        tables.push(rows(&table));
    }
    assert_eq!(tables[0].len(), tables[1].len());
    for ((u1, l1), (u2, l2)) in tables[0].iter().zip(&tables[1]) {
        assert_eq!(u1, u2);
        assert!((l1 - l2).abs() < 1e-4, "unit {u1}: {l1} vs {l2}");
    }
}

/// Two ranks started by hand (rank 0 serves the store), as a scheduler without torchrun would.
fn start_pair(cfg: &Path, timeout: u64) -> (Child, Child) {
    let port = free_port().to_string();
    let bin = assert_cmd::cargo::cargo_bin("tinyforge");
    let mut ranks = (0..2).map(|rank| {
        Command::new(&bin)
            .env("OMP_NUM_THREADS", "1")
            .args(["--progress", "none", "train"])
            .arg(cfg)
            .args(["--rank", &rank.to_string(), "--world-size", "2"])
            .args([
                "--master-port",
                &port,
                "--dist-timeout",
                &timeout.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    });
    (ranks.next().unwrap(), ranks.next().unwrap())
}

fn wait_for(path: &Path) {
    let t0 = Instant::now();
    while !path.exists() && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(path.exists(), "{} never appeared", path.display());
}

/// Rank 0's exit after rank 1 fails: non-zero, within `limit`, and its stderr.
fn rank0_fails(rank0: &mut Child, limit: Duration) -> String {
    let t0 = Instant::now();
    let status = rank0.wait().unwrap();
    let waited = t0.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(rank0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "rank 0 should fail: {err}");
    assert!(waited < limit, "rank 0 took {waited:?} to give up: {err}");
    err
}

fn newest_step(out: &Path) -> u64 {
    let last = tinyforge_train::checkpoint::latest(&out.join("checkpoints"))
        .unwrap()
        .unwrap();
    tinyforge_train::checkpoint::read_state(&last).unwrap().step
}

#[test]
fn a_killed_or_hung_rank_stops_the_other_and_a_relaunch_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(&tmp.path().join("shards"));
    let out = tmp.path().join("run");
    let cfg = config(tmp.path(), &data, &out);
    let timeout = 8;

    // 1. Rank 1 is killed (SIGKILL) after the first checkpoint: rank 0 fails at its next
    //    collective, long before the timeout, and names it once its heartbeat is stale.
    let (mut rank0, mut rank1) = start_pair(&cfg, 600);
    wait_for(&out.join("checkpoints/step-00000005"));
    rank1.kill().unwrap();
    let _ = rank1.wait();
    let err = rank0_fails(&mut rank0, Duration::from_secs(30));
    eprintln!("rank 0 after rank 1 was killed: {err}");
    assert!(
        err.contains("rank 1 (silent for"),
        "the error should name rank 1: {err}"
    );
    let after_kill = newest_step(&out);

    // 2. A relaunch of the pair resumes; then rank 1 hangs (SIGSTOP) after a later checkpoint:
    //    rank 0 gives up within the timeout and names it.
    let (mut rank0, mut rank1) = start_pair(&cfg, timeout);
    let next = (after_kill / 5 + 1) * 5;
    wait_for(&out.join(format!("checkpoints/step-{next:08}")));
    let pid1 = rank1.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid1])
            .status()
            .unwrap()
            .success()
    );
    let err = rank0_fails(&mut rank0, Duration::from_secs(timeout + 20));
    eprintln!("rank 0 after rank 1 hung: {err}");
    assert!(
        err.contains("rank 1 (silent for"),
        "the error should name rank 1: {err}"
    );
    let _ = rank1.kill();
    let _ = rank1.wait();

    // 3. A relaunch on one machine's `--nproc 2` resumes from the newest checkpoint and ends.
    let resumed_from = newest_step(&out);
    assert!(resumed_from >= next);
    let r = train_report(&cfg, &["--nproc", "2", "--dist-timeout", "60"]);
    assert_eq!(r["resumed_from_step"], resumed_from, "{r}");
    assert_eq!(r["complete"], true);
    assert_eq!(r["rounds_done"], 2);

    // 4. One process reads the finished folder (another world size): nothing left to do.
    let again = train_report(&cfg, &[]);
    assert_eq!(again["steps"], r["steps"]);
}

/// PyTorch's own launcher (the venv's torchrun, agent store and all) starts tinyforge's ranks.
#[test]
fn torchrun_launches_tinyforge_train() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let torchrun = root.join(".venv/bin/torchrun");
    if !torchrun.exists() {
        let why = format!("{} missing: run scripts/setup-python", torchrun.display());
        return crate::skip_unless_required("torchrun", &why);
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(&tmp.path().join("shards"));
    let out = tmp.path().join("torchrun");
    let cfg = config(tmp.path(), &data, &out);
    let bin = assert_cmd::cargo::cargo_bin("tinyforge");
    let run = Command::new(torchrun)
        .env("OMP_NUM_THREADS", "1")
        .args(["--standalone", "--nproc-per-node", "2", "--no-python"])
        .arg(bin)
        .args(["--progress", "none", "train"])
        .arg(&cfg)
        .args(["--steps", "6", "--dist-timeout", "60"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r = json(&run.stdout);
    assert_eq!(r["world_size"], 2);
    assert_eq!(r["steps"], 6);
    assert!(out.join("checkpoints/step-00000006").exists());
}

/// A batch that does not split over the ranks is refused with the fix, and the `--nproc`
/// launcher reports which rank failed first.
#[test]
fn an_uneven_batch_is_refused_and_the_launcher_names_the_failed_rank() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(&tmp.path().join("shards"));
    let cfg = config(tmp.path(), &data, &tmp.path().join("uneven"));
    let out = tinyforge()
        .arg("train")
        .arg(&cfg)
        .args(["--nproc", "3", "--dist-timeout", "20"])
        .assert()
        .failure()
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("batch_size 8 does not split over 3 ranks") && err.contains("(e.g. 9)"),
        "{err}"
    );
    assert!(
        err.contains("of 3 exited with status 1 first")
            && err.contains("run the same command again"),
        "{err}"
    );
}
