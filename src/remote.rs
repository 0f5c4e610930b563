//! Stage folders given as object-store URLs (`s3://`, `gs://`, `az://`, `file://`): an input is
//! downloaded into the local cache and the stage reads that; an output is written to a local
//! staging folder and uploaded when the stage is done, its completion marker last
//! (`tinyforge_store` has the rules). Local paths pass through untouched.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tinyforge_store::{Remote, Transfer, cache_root, is_url, local_folder};

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

/// Where a stage writes `arg`: the folder itself, or a staging folder uploaded by [`publish`].
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
        Ok(match remote.size(marker)? {
            Some(_) => Some(remote.get(marker)?),
            None => None,
        })
    }

    /// Uploads the staging folder, `marker` last; nothing for a local output.
    pub fn publish(&self, marker: &str, progress: &Progress) -> anyhow::Result<Option<Transfer>> {
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
            .upload(&self.local, &[marker], &|_, _| {
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

/// A transfer in a report.
pub fn transfer_json(transfer: &Transfer) -> serde_json::Value {
    serde_json::json!({
        "objects": transfer.objects,
        "bytes": transfer.bytes,
        "already_there": transfer.skipped,
    })
}
