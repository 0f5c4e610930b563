//! Stage folders as object-store URLs against a real S3 endpoint on loopback (moto's server,
//! started by `scripts/s3-local`): documents in from `s3://`, token shards out to `s3://`, a
//! task killed mid-upload and rerun on a machine without its staging folder, the same objects
//! as a local run; a missing bucket named in the error.

use std::path::{Path, PathBuf};
use std::process::Command;

use tinyforge_store::{FileKind, Remote};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A moto server in its own state folder, stopped on drop.
struct S3 {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl S3 {
    /// The server, or `None` after [`crate::skip_unless_required`] when moto cannot start.
    fn start_or_skip(dir: &Path) -> Option<S3> {
        match Self::start_with(dir, &[]) {
            Ok(s3) => Some(s3),
            Err(why) => {
                crate::skip_unless_required("S3 endpoint (moto, from scripts/setup-python)", &why);
                None
            }
        }
    }

    /// `env` goes to the server (moto checks credentials with INITIAL_NO_AUTH_ACTION_COUNT=0).
    fn start_with(dir: &Path, env: &[(&str, &str)]) -> Result<S3, String> {
        let output = Command::new(root().join("scripts/s3-local"))
            .arg("start")
            .env("TINYFORGE_S3_DIR", dir)
            .envs(env.iter().copied())
            .output()
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        let env = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.strip_prefix("export "))
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(S3 {
            dir: dir.to_owned(),
            env,
        })
    }

    fn var(&self, name: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("s3-local printed no {name}"))
    }

    fn bucket(&self, name: &str) {
        let output = Command::new(root().join("scripts/s3-local"))
            .args(["mkbucket", name])
            .env("TINYFORGE_S3_DIR", &self.dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A folder of the store, opened with the endpoint's settings (the test process's own
    /// environment has none).
    fn remote(&self, url: &str) -> Remote {
        let options = [
            ("aws_endpoint", self.var("AWS_ENDPOINT_URL")),
            ("aws_access_key_id", self.var("AWS_ACCESS_KEY_ID")),
            ("aws_secret_access_key", self.var("AWS_SECRET_ACCESS_KEY")),
            ("aws_region", self.var("AWS_REGION")),
            ("aws_allow_http", "true"),
        ];
        Remote::open_with(url, options.map(|(k, v)| (k.to_owned(), v.to_owned()))).unwrap()
    }

    fn tinyforge(&self, cache: &Path) -> Command {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("tinyforge"));
        command
            .args(["--progress", "none"])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("TINYFORGE_CACHE", cache)
            .env_remove("TINYFORGE_TEST_ABORT_AFTER_UPLOADS");
        command
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/s3-local"))
            .arg("stop")
            .env("TINYFORGE_S3_DIR", &self.dir)
            .output();
    }
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn tokenize_from_and_to_s3_survives_a_kill_mid_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(s3) = S3::start_or_skip(&tmp.path().join("s3")) else {
        return;
    };
    s3.bucket("corpus");
    let fixtures = root().join("tokenize/tests/fixtures");
    let sent = s3
        .remote("s3://corpus/docs")
        .upload(&fixtures.join("docs"), &|_| FileKind::DATA, &|_, _| {})
        .unwrap();
    assert!(sent.objects > 1);

    let tokenize = |command: &mut Command, docs: &str, out: &str| {
        command
            .arg("tokenize")
            .arg(docs)
            .arg("--tokenizer")
            .arg(fixtures.join("tokenizer.json"))
            .args([
                "--out",
                out,
                "--shard-tokens",
                "2500",
                "--frame-tokens",
                "200",
            ])
            .output()
            .unwrap()
    };
    let local = tmp.path().join("local");
    let done = tokenize(
        &mut s3.tinyforge(&tmp.path().join("cache0")),
        fixtures.join("docs").to_str().unwrap(),
        local.to_str().unwrap(),
    );
    assert!(done.status.success(), "{}", stderr(&done));
    let expected = crate::plain_files(&local);
    assert!(expected.len() > 4, "{} files", expected.len());

    // Killed after two objects: shards are there, the marker is not.
    let url = "s3://corpus/tokens/t0";
    let killed = tokenize(
        s3.tinyforge(&tmp.path().join("cache1"))
            .env("TINYFORGE_TEST_ABORT_AFTER_UPLOADS", "2"),
        "s3://corpus/docs",
        url,
    );
    assert!(!killed.status.success());
    let remote = s3.remote(url);
    let listed = remote.list().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(remote.size("manifest.json").unwrap(), None);

    // Rerun on another machine (no staging folder): the same objects, the marker last.
    let rerun = tokenize(
        &mut s3.tinyforge(&tmp.path().join("cache2")),
        "s3://corpus/docs",
        url,
    );
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    let report: serde_json::Value = serde_json::from_slice(&rerun.stdout).unwrap();
    assert_eq!(report["out"], url);
    assert_eq!(report["uploaded"]["already_there"], 2, "{report}");
    let objects: Vec<(String, Vec<u8>)> = remote
        .list()
        .unwrap()
        .into_iter()
        .map(|(name, _)| {
            let bytes = remote.get(&name).unwrap();
            (name, bytes)
        })
        .collect();
    assert!(
        objects == expected,
        "the objects differ from the local run's files"
    );

    // Done: a third run only finds the marker.
    let again = tokenize(
        &mut s3.tinyforge(&tmp.path().join("cache3")),
        "s3://corpus/docs",
        url,
    );
    assert!(again.status.success(), "{}", stderr(&again));
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["already_done"], true, "{report}");

    let verify = s3
        .tinyforge(&tmp.path().join("cache4"))
        .args(["shards", "verify", url])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", stderr(&verify));

    // Read in place: the manifest one GET, every frame a ranged GET.
    let inspect = |dataset: &str| {
        let output = s3
            .tinyforge(&tmp.path().join("cache6"))
            .args([
                "shards",
                "inspect",
                dataset,
                "--unit",
                "3",
                "--seq-len",
                "32",
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        String::from_utf8_lossy(&output.stdout).replace(dataset, "DATASET")
    };
    assert_eq!(inspect(url), inspect(local.to_str().unwrap()));

    let missing = tokenize(
        &mut s3.tinyforge(&tmp.path().join("cache5")),
        "s3://no-such-bucket/docs",
        "s3://corpus/tokens/t9",
    );
    assert!(!missing.status.success());
    let text = stderr(&missing);
    assert!(
        text.contains("s3://no-such-bucket/docs") && text.contains("bucket does not exist"),
        "{text}"
    );

    // A server that checks credentials refuses the test's keys: one line naming the URL and
    // what to check.
    let strict = S3::start_with(
        &tmp.path().join("s3-strict"),
        &[("INITIAL_NO_AUTH_ACTION_COUNT", "0")],
    )
    .unwrap();
    let refused = tokenize(
        &mut strict.tinyforge(&tmp.path().join("cache7")),
        "s3://corpus/docs",
        "s3://corpus/tokens/t9",
    );
    assert!(!refused.status.success());
    let text = stderr(&refused);
    // The first request is the output's marker check (a HEAD: a 403 without a body).
    assert!(
        text.contains("s3://corpus/tokens/t9")
            && text.contains("access denied")
            && text.contains("AWS_ACCESS_KEY_ID"),
        "{text}"
    );
}

/// The trainer reads its shards in place from S3 (ranged GETs through the frame cache) and
/// trains the same weights as from the local folder.
#[cfg(feature = "train")]
#[test]
fn training_reads_shards_from_s3_like_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(s3) = S3::start_or_skip(&tmp.path().join("s3")) else {
        return;
    };
    s3.bucket("train");
    let data = crate::train::dataset(&tmp.path().join("data"));
    s3.remote("s3://train/tokens")
        .upload(
            &data,
            &|name| {
                if name == "manifest.json" {
                    FileKind::MARKER
                } else {
                    FileKind::DATA
                }
            },
            &|_, _| {},
        )
        .unwrap();
    let mut weights = Vec::new();
    for (name, source) in [
        ("local", data.clone()),
        ("s3", PathBuf::from("s3://train/tokens")),
    ] {
        let out = tmp.path().join(name);
        let config = crate::train::config(tmp.path(), &source, &out);
        let output = s3
            .tinyforge(&tmp.path().join("cache"))
            .env("OMP_NUM_THREADS", "1")
            .arg("train")
            .arg(&config)
            .args(["--steps", "6"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        weights.push(crate::train::final_model(&out));
    }
    assert!(
        weights[0] == weights[1],
        "training from s3:// gave other weights"
    );
}

/// Array tasks write to S3 and the merges run there: `shards merge` of task prefixes into one
/// manifest (the same bytes as a local merge of the same tasks), `shards verify` of the merged
/// dataset in place (nothing downloaded), `vocab count` partials to S3 and `vocab merge` of
/// them (the same table as a local merge).
#[test]
fn merges_of_array_tasks_run_on_s3() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(s3) = S3::start_or_skip(&tmp.path().join("s3")) else {
        return;
    };
    s3.bucket("corpus");
    let fixtures = root().join("tokenize/tests/fixtures");
    s3.remote("s3://corpus/docs")
        .upload(&fixtures.join("docs"), &|_| FileKind::DATA, &|_, _| {})
        .unwrap();
    let cache = tmp.path().join("cache");
    let run = |args: &[&str]| {
        let output = s3.tinyforge(&cache).args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let tokenizer = fixtures.join("tokenizer.json");
    let tokenizer = tokenizer.to_str().unwrap();
    let local = tmp.path().join("local");
    let local_docs = fixtures.join("docs");
    for task in ["0/2", "1/2"] {
        let name = format!("t{}", &task[..1]);
        for (docs, out) in [
            (
                local_docs.to_str().unwrap().to_owned(),
                local.join("tasks").join(&name).display().to_string(),
            ),
            (
                "s3://corpus/docs".to_owned(),
                format!("s3://corpus/tasks/{name}"),
            ),
        ] {
            run(&[
                "tokenize",
                &docs,
                "--tokenizer",
                tokenizer,
                "--out",
                &out,
                "--shard",
                task,
                "--shard-tokens",
                "2500",
                "--frame-tokens",
                "200",
            ]);
        }
    }
    let merged = local.join("tokens");
    let tasks = |root: &str| [format!("{root}/tasks/t1"), format!("{root}/tasks/t0")];
    let local_root = local.display().to_string();
    let [t1, t0] = tasks(&local_root);
    run(&[
        "shards",
        "merge",
        &t1,
        &t0,
        "--out",
        merged.to_str().unwrap(),
    ]);
    let [t1, t0] = tasks("s3://corpus");
    let report = run(&["shards", "merge", &t1, &t0, "--out", "s3://corpus/tokens"]);
    assert!(report["shards"].as_u64().unwrap() > 1, "{report}");
    let remote = s3.remote("s3://corpus/tokens");
    assert_eq!(
        remote.get("manifest.json").unwrap(),
        fs_err::read(merged.join("manifest.json")).unwrap(),
        "the S3 merge wrote another manifest than the local one"
    );

    // Verified in place: every shard read where the manifest points, no copy in the cache.
    let verify_cache = tmp.path().join("verify-cache");
    let output = s3
        .tinyforge(&verify_cache)
        .args(["shards", "verify", "s3://corpus/tokens"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["shards"],
        run(&["shards", "verify", merged.to_str().unwrap()])["shards"]
    );
    assert!(!verify_cache.exists(), "verify downloaded the dataset");

    // Damage one task's shard on S3: the merged dataset's verify names it.
    let t0 = s3.remote("s3://corpus/tasks/t0");
    let (shard, _) = t0
        .list()
        .unwrap()
        .into_iter()
        .find(|(name, _)| name.ends_with(".tfs"))
        .unwrap();
    let mut bytes = t0.get(&shard).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    t0.put(&shard, bytes).unwrap();
    let output = s3
        .tinyforge(&verify_cache)
        .args(["shards", "verify", "s3://corpus/tokens"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains(&shard), "{}", stderr(&output));

    // Vocabulary counts: partials to S3, merged there.
    for task in ["0/2", "1/2"] {
        let i = &task[..1];
        run(&[
            "vocab",
            "count",
            local_docs.to_str().unwrap(),
            "--tokenizer",
            tokenizer,
            "--shard",
            task,
            "--out",
            &format!("{local_root}/c-{i}.parquet"),
        ]);
        let report = run(&[
            "vocab",
            "count",
            "s3://corpus/docs",
            "--tokenizer",
            tokenizer,
            "--shard",
            task,
            "--out",
            &format!("s3://corpus/counts/c-{i}.parquet"),
        ]);
        assert_eq!(report["out"], format!("s3://corpus/counts/c-{i}.parquet"));
    }
    run(&[
        "vocab",
        "merge",
        &format!("{local_root}/c-1.parquet"),
        &format!("{local_root}/c-0.parquet"),
        "--out",
        &format!("{local_root}/counts.parquet"),
    ]);
    let report = run(&[
        "vocab",
        "merge",
        "s3://corpus/counts/c-1.parquet",
        "s3://corpus/counts/c-0.parquet",
        "--out",
        "s3://corpus/counts.parquet",
    ]);
    assert_eq!(report["partials"], 2, "{report}");
    let root_remote = s3.remote("s3://corpus");
    assert_eq!(
        root_remote.get("counts.parquet").unwrap(),
        fs_err::read(local.join("counts.parquet")).unwrap()
    );
    assert!(root_remote.size("counts.coverage.svg").unwrap().is_some());
    // The same merge as an array of two hash buckets, then the join.
    for bucket in ["0/2", "1/2"] {
        let report = run(&[
            "vocab",
            "merge",
            "s3://corpus/counts/c-0.parquet",
            "s3://corpus/counts/c-1.parquet",
            "--bucket",
            bucket,
            "--out",
            &format!("s3://corpus/sums/b-{}.parquet", &bucket[..1]),
        ]);
        assert_eq!(report["bucket"], bucket, "{report}");
    }
    run(&[
        "vocab",
        "merge",
        "s3://corpus/sums/b-1.parquet",
        "s3://corpus/sums/b-0.parquet",
        "--out",
        "s3://corpus/joined.parquet",
    ]);
    assert_eq!(
        root_remote.get("joined.parquet").unwrap(),
        fs_err::read(local.join("counts.parquet")).unwrap(),
        "the joined buckets differ from the one-process merge"
    );
    let missing = s3
        .tinyforge(&cache)
        .args([
            "vocab",
            "merge",
            "s3://corpus/counts/c-7.parquet",
            "--out",
            "x.parquet",
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("s3://corpus/counts/c-7.parquet"),
        "{}",
        stderr(&missing)
    );
}

/// Ingest reads its raw corpus from S3 and writes its folder there as array tasks on machines
/// that share nothing but the bucket (each its own cache): chunk tasks (one killed mid-upload
/// and rerun elsewhere), dedup bucket tasks, rewrite tasks and the merge. The objects are the
/// files of one process reading a local copy, no task copies a raw file to disk, and a bucket
/// task fetches hash files, never parts.
#[test]
fn ingest_array_tasks_from_and_to_s3_write_one_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(s3) = S3::start_or_skip(&tmp.path().join("s3")) else {
        return;
    };
    s3.bucket("corpus");
    let fixtures = root().join("ingest/tests/fixtures/real");
    let sent = s3
        .remote("s3://corpus/raw")
        .upload(&fixtures, &|_| FileKind::DATA, &|_, _| {})
        .unwrap();
    assert!(sent.objects >= 10, "{sent:?}");
    let local_config = crate::ingest::write_config(tmp.path());
    let s3_config = tmp.path().join("s3-config");
    std::fs::create_dir_all(&s3_config).unwrap();
    let config = crate::ingest::write_config_reading(&s3_config, "s3://corpus/raw");
    let single = tmp.path().join("single");
    let ingest = |cache: &str, args: &[&str], extra_env: &[(&str, &str)]| {
        let config = if cache == "c-single" {
            &local_config
        } else {
            &config
        };
        s3.tinyforge(&tmp.path().join(cache))
            .arg("ingest")
            .arg("--config")
            .arg(config)
            .args(args)
            .envs(extra_env.iter().copied())
            .output()
            .unwrap()
    };
    let json = |output: &std::process::Output| -> serde_json::Value {
        assert!(output.status.success(), "{}", stderr(output));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    json(&ingest(
        "c-single",
        &["--out", single.to_str().unwrap()],
        &[],
    ));

    let url = "s3://corpus/docs";
    for task in ["0/3", "2/3"] {
        let report = json(&ingest(
            &format!("c-{task}"),
            &["--out", url, "--shard", task],
            &[],
        ));
        assert_eq!(report["out"], url, "{report}");
    }
    let killed = ingest(
        "c-killed",
        &["--out", url, "--shard", "1/3"],
        &[("TINYFORGE_TEST_ABORT_AFTER_UPLOADS", "2")],
    );
    assert!(!killed.status.success());
    let early = ingest("c-early", &["--out", url, "--merge"], &[]);
    assert!(!early.status.success());
    assert!(
        stderr(&early).contains("not done yet"),
        "{}",
        stderr(&early)
    );
    json(&ingest("c-rerun", &["--out", url, "--shard", "1/3"], &[]));

    for bucket in ["1/2", "0/2"] {
        let cache = format!("c-bucket-{bucket}");
        let report = json(&ingest(
            &cache,
            &["--out", url, "--dedup-bucket", bucket],
            &[],
        ));
        assert_eq!(report["dedup"]["buckets_run"], 1, "{report}");
        let staged = crate::walk_files(&tmp.path().join(&cache));
        assert!(
            !staged.iter().any(|name| name.ends_with(".parquet")),
            "a bucket task downloaded parts: {staged:?}"
        );
        assert!(staged.iter().any(|name| name.ends_with(".hashes")));
    }
    // Raw files are read in place: no chunk task's cache holds one.
    for cache in ["c-0/3", "c-2/3", "c-rerun"] {
        let staged = crate::walk_files(&tmp.path().join(cache));
        assert!(
            !staged
                .iter()
                .any(|name| name.ends_with(".jsonl") || name.ends_with(".rs")),
            "{cache} copied raw files: {staged:?}"
        );
        assert!(
            staged.iter().any(|name| name.ends_with(".parquet")),
            "{staged:?}"
        );
    }
    for task in ["0/2", "1/2"] {
        json(&ingest(
            &format!("c-rewrite-{task}"),
            &["--out", url, "--dedup-rewrite", task],
            &[],
        ));
    }
    let merged = json(&ingest("c-merge", &["--out", url, "--merge"], &[]));
    assert_eq!(merged["complete"], true, "{merged}");
    assert_eq!(merged["dedup"]["buckets_run"], 0, "{merged}");

    let remote = s3.remote(url);
    let objects: Vec<(String, Vec<u8>)> = remote
        .list()
        .unwrap()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("_state/"))
        .map(|(name, _)| {
            let mut bytes = remote.get(&name).unwrap();
            if name == "_manifest.json" {
                bytes = String::from_utf8(bytes)
                    .unwrap()
                    .replace(url, "OUT")
                    .into_bytes();
            }
            (name, bytes)
        })
        .collect();
    let expected: Vec<(String, Vec<u8>)> = crate::plain_files(&single)
        .into_iter()
        .map(|(name, bytes)| {
            if name == "_manifest.json" {
                let text = String::from_utf8(bytes).unwrap();
                (
                    name,
                    text.replace(single.to_str().unwrap(), "OUT").into_bytes(),
                )
            } else {
                (name, bytes)
            }
        })
        .collect();
    let names = |files: &[(String, Vec<u8>)]| files.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&objects), names(&expected));
    for ((name, got), (_, want)) in objects.iter().zip(&expected) {
        assert!(got == want, "{name} differs from the one-process folder's");
    }

    // The folder on S3 is a documents input as it is.
    let count = s3
        .tinyforge(&tmp.path().join("c-count"))
        .args(["vocab", "count", url, "--out"])
        .arg(tmp.path().join("counts.parquet"))
        .arg("--tokenizer")
        .arg(root().join("tokenize/tests/fixtures/tokenizer.json"))
        .output()
        .unwrap();
    let report = json(&count);
    assert_eq!(report["documents"], merged["documents_out"], "{report}");
}
