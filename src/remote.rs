//! Stage folders given as object-store URLs (`s3://`, `gs://`, `az://`, `file://`): an input is
//! downloaded into the local cache and the stage reads that; an output is written to a local
//! staging folder and uploaded when the stage is done, its completion marker last
//! (`tinyforge_store` has the rules). Local paths pass through untouched.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tinyforge_store::{
    FileKind, Remote, Transfer, cache_root, is_url, local_folder, split_object_url,
};

use crate::progress::Progress;

fn url_of(path: &Path) -> Option<&str> {
    path.to_str().filter(|text| is_url(text))
}

/// The local folder a stage reads `arg` from: `arg` itself, or the objects under the URL
/// downloaded (those `wanted` names) into `$TINYFORGE_CACHE/inputs/…`.
pub fn input_folder(
    arg: &Path,
    progress: &Progress,
    wanted: impl Fn(&str) -> bool,
) -> anyhow::Result<PathBuf> {
    let Some(url) = url_of(arg) else {
        return Ok(arg.to_owned());
    };
    let remote = Remote::open(url)?;
    let local = local_folder(&cache_root().join("inputs"), url);
    progress.message(format!("downloading {url}"));
    let got = remote
        .download(&local, wanted)
        .with_context(|| format!("downloading {url} into {}", local.display()))?;
    if got.objects + got.skipped == 0 {
        anyhow::bail!("{url}: no objects under this prefix");
    }
    tracing::info!(
        url,
        objects = got.objects,
        bytes = got.bytes,
        cached = got.skipped,
        "downloaded"
    );
    Ok(local)
}

/// The object a URL names, opened: its folder and its name.
fn object(url: &str) -> anyhow::Result<(Remote, String)> {
    let (folder, name) = split_object_url(url)
        .with_context(|| format!("{url}: name an object (s3://bucket/path/file), not a bucket"))?;
    Ok((Remote::open(folder)?, name.to_owned()))
}

/// The local file a stage reads `arg` from: `arg` itself, or the object it names downloaded
/// into `$TINYFORGE_CACHE/inputs/…` (not fetched again while the copy has its size and time).
pub fn input_file(arg: &Path) -> anyhow::Result<PathBuf> {
    let Some(url) = url_of(arg) else {
        return Ok(arg.to_owned());
    };
    let (remote, name) = object(url)?;
    let path = local_folder(&cache_root().join("inputs"), remote.url()).join(&name);
    let found = remote
        .sync_object(&name, &path)
        .with_context(|| format!("downloading {url}"))?;
    anyhow::ensure!(found, "{url}: no such object");
    Ok(path)
}

/// Where a stage writes one file `arg` (and the files it writes beside it): the path itself,
/// or a path in a staging folder that [`OutputFile::publish`] uploads.
pub struct OutputFile {
    pub local: PathBuf,
    remote: Option<Remote>,
}

impl OutputFile {
    pub fn new(arg: &Path) -> anyhow::Result<OutputFile> {
        let Some(url) = url_of(arg) else {
            return Ok(OutputFile {
                local: arg.to_owned(),
                remote: None,
            });
        };
        let (remote, name) = object(url)?;
        let staging = local_folder(&cache_root().join("staging"), remote.url());
        fs_err::create_dir_all(&staging)?;
        Ok(OutputFile {
            local: staging.join(name),
            remote: Some(remote),
        })
    }

    /// Uploads the file, after the `beside` files written next to it (their local paths).
    pub fn publish(&self, beside: &[PathBuf]) -> anyhow::Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        for path in beside.iter().chain([&self.local]) {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("{}: no file name", path.display()))?;
            remote
                .put_file(name, path)
                .with_context(|| format!("uploading {}", path.display()))?;
        }
        Ok(())
    }

    /// The name of `path` (one of the files written) for reports: its URL or its path.
    pub fn name_of(&self, path: &Path) -> String {
        match (&self.remote, path.file_name()) {
            (Some(remote), Some(name)) => format!("{}/{}", remote.url(), name.to_string_lossy()),
            _ => path.display().to_string(),
        }
    }
}

/// Where a stage writes `arg`: the folder itself, or a staging folder uploaded by [`Output::publish`].
pub struct Output {
    pub local: PathBuf,
    pub remote: Option<Remote>,
}

impl Output {
    pub fn new(arg: &Path) -> anyhow::Result<Output> {
        Ok(match url_of(arg) {
            None => Output {
                local: arg.to_owned(),
                remote: None,
            },
            Some(url) => Output {
                local: local_folder(&cache_root().join("staging"), url),
                remote: Some(Remote::open(url)?),
            },
        })
    }

    /// The completion marker's bytes when the remote output already has it (the task is done).
    pub fn finished(&self, marker: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(remote) = &self.remote else {
            return Ok(None);
        };
        Ok(remote.get_if_exists(marker)?)
    }

    /// Makes the staging folder hold the remote folder's objects that `wanted` names, as
    /// they are there (a local file that differs, such as one a killed task wrote and never
    /// uploaded, is replaced: the remote folder is the truth). Nothing for a local output.
    pub fn pull(
        &self,
        progress: &Progress,
        wanted: impl Fn(&str) -> bool,
    ) -> anyhow::Result<Option<Transfer>> {
        let Some(remote) = &self.remote else {
            return Ok(None);
        };
        progress.message(format!("reading the state of {}", remote.url()));
        let got = remote.download(&self.local, wanted).with_context(|| {
            format!("downloading {} into {}", remote.url(), self.local.display())
        })?;
        Ok(Some(got))
    }

    /// For a staged output: a fetch that makes one file of the staging folder a copy of its
    /// object when a step is about to read it (a file written here and not uploaded yet has no
    /// object and is used as it is).
    pub fn fetcher(&self) -> Option<tinyforge_ingest::Fetch> {
        let remote = self.remote.clone()?;
        let local = self.local.clone();
        Some(std::sync::Arc::new(move |name: &str| {
            let path = local.join(name);
            match remote.sync_object(name, &path) {
                Ok(true) => Ok(()),
                Ok(false) if path.is_file() => Ok(()),
                Ok(false) => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{}/{name}: no such object", remote.url()),
                )),
                Err(err) => Err(std::io::Error::other(err.to_string())),
            }
        }))
    }

    /// Uploads the staging folder, `marker` last; nothing for a local output.
    pub fn publish(&self, marker: &str, progress: &Progress) -> anyhow::Result<Option<Transfer>> {
        self.publish_with(&|name| kind(name, marker), progress)
    }

    /// Uploads what changed in the staging folder, in the order `kind` gives; nothing for a
    /// local output.
    pub fn publish_with(
        &self,
        kind: &dyn Fn(&str) -> FileKind,
        progress: &Progress,
    ) -> anyhow::Result<Option<Transfer>> {
        let Some(remote) = &self.remote else {
            return Ok(None);
        };
        progress.message(format!("uploading to {}", remote.url()));
        // Test hook: die like a kill after this many objects, to check that a rerun finishes
        // the upload with the same bytes.
        let abort_after: Option<usize> = std::env::var("TINYFORGE_TEST_ABORT_AFTER_UPLOADS")
            .ok()
            .and_then(|v| v.parse().ok());
        let sent = std::sync::atomic::AtomicUsize::new(0);
        let transfer = remote
            .upload(&self.local, kind, &|_, _| {
                let n = sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if abort_after == Some(n) {
                    std::process::abort();
                }
            })
            .with_context(|| format!("uploading {} to {}", self.local.display(), remote.url()))?;
        Ok(Some(transfer))
    }

    /// The output's name for reports: the URL or the path.
    pub fn name(&self) -> String {
        match &self.remote {
            Some(remote) => remote.url().to_owned(),
            None => self.local.display().to_string(),
        }
    }
}

/// A stage output's files are deterministic (a rerun writes the same bytes): write-once, the
/// marker last.
fn kind(name: &str, marker: &str) -> FileKind {
    if name == marker {
        FileKind::MARKER
    } else {
        FileKind::DATA
    }
}

/// A transfer in a report.
pub fn transfer_json(transfer: &Transfer) -> serde_json::Value {
    serde_json::json!({
        "objects": transfer.objects,
        "bytes": transfer.bytes,
        "already_there": transfer.skipped,
    })
}
