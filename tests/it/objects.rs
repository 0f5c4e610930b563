//! Stage folders as object-store URLs against a real S3 endpoint on loopback (moto's server,
//! started by `scripts/s3-local`): documents in from `s3://`, token shards out to `s3://`, a
//! task killed mid-upload and rerun on a machine without its staging folder, the same objects
//! as a local run; a missing bucket named in the error.

use std::path::{Path, PathBuf};
use std::process::Command;

use tinyforge_store::Remote;

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
        .upload(&fixtures.join("docs"), &[], &|_, _| {})
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
        .upload(&data, &["manifest.json"], &|_, _| {})
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
