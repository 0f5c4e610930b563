//! Stage inputs and outputs given as URLs: `s3://bucket/prefix`, `gs://…`, `az://…` (or
//! `abfs://…`), `file:///…`, through the `object_store` crate.
//!
//! The stages themselves read and write local folders; this crate moves whole folders between
//! those and an object store, the way a batch task on a cluster node does:
//!
//! - **Inputs** are downloaded into a local cache folder named by the URL (an object already
//!   there with the same size is not fetched again), and the stage reads the cache.
//! - **Outputs** are written to a local staging folder, then uploaded object by object, each in
//!   one PUT (a multipart upload above 64 MiB, which S3 also makes visible only whole), with the
//!   task's completion marker (a dataset's `manifest.json`) last. Object stores have no rename:
//!   a task is done exactly when its marker exists, and a rerun after a kill finds no marker,
//!   redoes the task (resuming from its staging folder when it is still there) and uploads the
//!   same bytes again.
//!
//! Credentials come from the standard environment and instance chains (`AWS_*`, with
//! `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP=true` for an S3-compatible endpoint; `GOOGLE_*`;
//! `AZURE_*`), read by `object_store`'s `from_env` builders. Every request is retried on
//! connection errors, 5xx, 429 and S3's `SlowDown` with exponential backoff and jitter (0.1 s
//! doubling to 15 s, at most 10 times or 3 minutes).
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutPayload, RetryConfig,
    WriteMultipart,
};

/// Objects above this size are uploaded in parts.
const MULTIPART_BYTES: u64 = 64 << 20;
const PART_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{url}: {message}")]
    Url { url: String, message: String },
    /// A request failed (after its retries). `brief` is one line: the service's error code and
    /// message when it sent one; `cause` is the whole error.
    #[error("{url}: {hint}{brief}")]
    Store {
        url: String,
        hint: &'static str,
        brief: String,
        cause: Box<object_store::Error>,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether `text` names an object-store location rather than a local path.
pub fn is_url(text: &str) -> bool {
    [
        "s3://", "s3a://", "gs://", "az://", "abfs://", "abfss://", "adl://", "azure://", "file://",
    ]
    .iter()
    .any(|scheme| text.starts_with(scheme))
}

/// Splits the URL of one object into its folder's URL and its name
/// (`s3://b/counts/c0.parquet` → `s3://b/counts`, `c0.parquet`); `None` when the URL names a
/// bucket only.
pub fn split_object_url(url: &str) -> Option<(&str, &str)> {
    let (_, rest) = url.split_once("://")?;
    let (folder, name) = url.rsplit_once('/')?;
    (rest.contains('/') && !name.is_empty()).then_some((folder, name))
}

/// A folder in an object store: the store and the prefix under it.
#[derive(Debug, Clone)]
pub struct Remote {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    runtime: Arc<tokio::runtime::Runtime>,
}

/// What an upload or download moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transfer {
    pub objects: usize,
    pub bytes: u64,
    /// Objects already in place with the same size, left alone.
    pub skipped: usize,
}

impl Remote {
    /// Opens `url` with credentials from the environment.
    pub fn open(url: &str) -> Result<Remote> {
        Self::open_with(url, std::iter::empty::<(String, String)>())
    }

    /// Opens `url` with `options` (object_store config keys such as `aws_endpoint`,
    /// `aws_access_key_id`, `allow_http`) on top of the environment.
    pub fn open_with(
        url: &str,
        options: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Remote> {
        let bad = |message: String| Error::Url {
            url: url.to_owned(),
            message,
        };
        let trimmed = url.trim_end_matches('/');
        let parsed = url::Url::parse(trimmed).map_err(|e| bad(format!("not a URL: {e}")))?;
        let (scheme, path) = ObjectStoreScheme::parse(&parsed)
            .map_err(|e| bad(format!("not an object-store URL: {e}")))?;
        let prefix = ObjectPath::parse(path).map_err(|e| bad(e.to_string()))?;
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(15),
                base: 2.0,
            },
            max_retries: 10,
            retry_timeout: Duration::from_secs(180),
        };
        let options: Vec<(String, String)> = options.into_iter().collect();
        let built = |e: object_store::Error| Error::Store {
            url: url.to_owned(),
            hint: "",
            brief: brief(&e),
            cause: Box::new(e),
        };
        // The three cloud builders share their methods but no trait: one body for all.
        macro_rules! cloud {
            ($builder:ty) => {{
                let mut builder = <$builder>::from_env().with_url(trimmed).with_retry(retry);
                for (key, value) in &options {
                    builder = builder.with_config(key.parse().map_err(built)?, value);
                }
                Arc::new(builder.build().map_err(built)?)
            }};
        }
        let store: Arc<dyn ObjectStore> = match scheme {
            ObjectStoreScheme::Local => Arc::new(object_store::local::LocalFileSystem::new()),
            ObjectStoreScheme::AmazonS3 => cloud!(object_store::aws::AmazonS3Builder),
            ObjectStoreScheme::GoogleCloudStorage => {
                cloud!(object_store::gcp::GoogleCloudStorageBuilder)
            }
            ObjectStoreScheme::MicrosoftAzure => {
                cloud!(object_store::azure::MicrosoftAzureBuilder)
            }
            other => return Err(bad(format!("{other:?} URLs are not supported"))),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(Remote {
            url: trimmed.to_owned(),
            store,
            prefix,
            runtime: Arc::new(runtime),
        })
    }

    /// The URL this folder was opened with (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key of `name` relative to the folder; `..` steps up (a merged dataset's manifest
    /// names its shards as `../tasks/t0/…`), never above the bucket.
    fn key(&self, name: &str) -> ObjectPath {
        let mut parts: Vec<String> = self.prefix.parts().map(|p| p.as_ref().to_owned()).collect();
        for part in name.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                part => parts.push(part.to_owned()),
            }
        }
        ObjectPath::from_iter(parts)
    }

    fn error(&self, name: &str, source: object_store::Error) -> Error {
        let text = source.to_string();
        let hint = if text.contains("NoSuchBucket") {
            "the bucket does not exist: "
        } else if text.contains("InvalidAccessKeyId")
            || text.contains("SignatureDoesNotMatch")
            || text.contains("AccessDenied")
            || text.contains("403")
        {
            "access denied (check the credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, \
             the instance role, GOOGLE_APPLICATION_CREDENTIALS or AZURE_*): "
        } else if matches!(source, object_store::Error::NotFound { .. }) {
            "no such object: "
        } else {
            ""
        };
        let url = if name.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{name}", self.url)
        };
        Error::Store {
            url,
            hint,
            brief: brief(&source),
            cause: Box::new(source),
        }
    }

    /// Every object under the folder: its name relative to the folder, and its size; sorted.
    pub fn list(&self) -> Result<Vec<(String, u64)>> {
        Ok(self
            .objects()?
            .into_iter()
            .map(|object| (object.name, object.size))
            .collect())
    }

    /// Every object under the folder with its size and modification time; sorted by name.
    pub fn objects(&self) -> Result<Vec<Object>> {
        let prefix = self.prefix.clone();
        let listed: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(self.store.list(Some(&prefix)).try_collect())
            .map_err(|e| self.error("", e))?;
        let mut objects: Vec<Object> = listed
            .into_iter()
            .filter_map(|meta| {
                let name: Vec<_> = meta.location.prefix_match(&prefix)?.collect();
                let name = name
                    .iter()
                    .map(|part| part.as_ref())
                    .collect::<Vec<_>>()
                    .join("/");
                (!name.is_empty()).then(|| Object {
                    name,
                    size: meta.size,
                    modified: std::time::SystemTime::from(meta.last_modified),
                })
            })
            .collect();
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(objects)
    }

    /// The path from this folder to `other`'s, `/`-separated (`../tasks/t0`), when both are in
    /// the same bucket (or container, or file system); `None` otherwise.
    pub fn relative_path_to(&self, other: &Remote) -> Option<String> {
        let root = |url: &str| -> Option<String> {
            let (scheme, rest) = url.split_once("://")?;
            Some(format!(
                "{scheme}://{}",
                rest.split('/').next().unwrap_or("")
            ))
        };
        if root(&self.url)? != root(&other.url)? {
            return None;
        }
        let from: Vec<_> = self.prefix.parts().collect();
        let to: Vec<_> = other.prefix.parts().collect();
        let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
        let mut parts: Vec<String> = vec!["..".to_owned(); from.len() - common];
        parts.extend(to[common..].iter().map(|p| p.as_ref().to_owned()));
        Some(parts.join("/"))
    }

    /// The size of object `name`, or `None` when there is none.
    pub fn size(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.object(name)?.map(|object| object.size))
    }

    /// Object `name`'s size and time (one HEAD), or `None` when there is none.
    pub fn object(&self, name: &str) -> Result<Option<Object>> {
        match self.runtime.block_on(self.store.head(&self.key(name))) {
            Ok(meta) => Ok(Some(Object {
                name: name.to_owned(),
                size: meta.size,
                modified: std::time::SystemTime::from(meta.last_modified),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(name, e)),
        }
    }

    /// Makes the local file `path` a copy of object `name` (one HEAD; a GET unless `path`
    /// already is one: same size and time); `Ok(false)` when there is no such object.
    pub fn sync_object(&self, name: &str, path: &Path) -> Result<bool> {
        let Some(object) = self.object(name)? else {
            return Ok(false);
        };
        if !is_copy(path, &object) {
            self.fetch(name, path)?;
        }
        Ok(true)
    }

    /// The bytes of object `name`.
    pub fn get(&self, name: &str) -> Result<Vec<u8>> {
        let key = self.key(name);
        self.runtime
            .block_on(async {
                let result = self.store.get(&key).await?;
                result.bytes().await
            })
            .map(|bytes| bytes.to_vec())
            .map_err(|e| self.error(name, e))
    }

    /// The bytes of object `name`, or `None` when there is none (one GET).
    pub fn get_if_exists(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self.get(name) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(Error::Store { cause, .. })
                if matches!(*cause, object_store::Error::NotFound { .. }) =>
            {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Bytes `range` of object `name` (one ranged GET).
    pub fn get_range(&self, name: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
        self.runtime
            .block_on(self.store.get_range(&self.key(name), range))
            .map(|bytes| bytes.to_vec())
            .map_err(|e| self.error(name, e))
    }

    /// Writes object `name` with `bytes`, in one PUT.
    pub fn put(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        self.runtime
            .block_on(self.store.put(&self.key(name), PutPayload::from(bytes)))
            .map_err(|e| self.error(name, e))?;
        Ok(())
    }

    /// Writes object `name` from the local file `path`, whole: one PUT, or a multipart upload
    /// that becomes visible only when complete.
    pub fn put_file(&self, name: &str, path: &Path) -> Result<u64> {
        let key = self.key(name);
        let size = fs_err::metadata(path)?.len();
        if size <= MULTIPART_BYTES {
            self.put(name, fs_err::read(path)?)?;
            return Ok(size);
        }
        let mut file = fs_err::File::open(path)?;
        self.runtime
            .block_on(async {
                let upload = self.store.put_multipart(&key).await?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
                let mut buffer = vec![0u8; PART_BYTES];
                loop {
                    let n = std::io::Read::read(&mut file, &mut buffer).map_err(|e| {
                        object_store::Error::Generic {
                            store: "local file",
                            source: Box::new(e),
                        }
                    })?;
                    if n == 0 {
                        break;
                    }
                    writer.wait_for_capacity(4).await?;
                    writer.write(&buffer[..n]);
                }
                writer.finish().await
            })
            .map_err(|e| self.error(name, e))?;
        Ok(size)
    }

    /// Downloads object `name` to the local file `path` (written atomically, given the
    /// object's modification time so that [`Remote::upload`] knows it unchanged); returns its
    /// size.
    pub fn fetch(&self, name: &str, path: &Path) -> Result<u64> {
        let key = self.key(name);
        let (bytes, modified) = self
            .runtime
            .block_on(async {
                let result = self.store.get(&key).await?;
                let modified = result.meta.last_modified;
                Ok::<_, object_store::Error>((result.bytes().await?, modified))
            })
            .map_err(|e| self.error(name, e))?;
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        tinyforge_task::write_atomic(path, &bytes)?;
        fs_err::File::options()
            .write(true)
            .open(path)?
            .set_modified(std::time::SystemTime::from(modified))?;
        Ok(bytes.len() as u64)
    }

    /// Downloads every object under the folder for which `wanted(name)` holds into `dir` (the
    /// same relative names), each written atomically (`tinyforge_task::write_atomic`) and given
    /// the object's modification time; an object whose local copy has its size and time is not
    /// fetched again.
    pub fn download(&self, dir: &Path, wanted: impl Fn(&str) -> bool) -> Result<Transfer> {
        let mut transfer = Transfer::default();
        for object in self.objects()? {
            if !wanted(&object.name) {
                continue;
            }
            let local = dir.join(&object.name);
            if is_copy(&local, &object) {
                transfer.skipped += 1;
                continue;
            }
            self.fetch(&object.name, &local)?;
            transfer.objects += 1;
            transfer.bytes += object.size;
        }
        Ok(transfer)
    }

    /// Uploads every file of `dir` (recursively; hidden files such as locks and temporaries
    /// excepted) under the same relative names, in the order of `kind(name).rank` (0 for data,
    /// higher for completion markers: a marker goes up after everything it vouches for), by
    /// name within a rank. Objects are written whole, so one that exists with the file's size
    /// is complete; it is sent again only when the file may have changed since: never for a
    /// `write_once` kind (a stage's deterministic output), else when the file is newer than the
    /// object (written here after the object was uploaded or downloaded). `on_object` runs
    /// after each upload.
    pub fn upload(
        &self,
        dir: &Path,
        kind: &dyn Fn(&str) -> FileKind,
        on_object: &dyn Fn(&str, u64),
    ) -> Result<Transfer> {
        let mut files = Vec::new();
        collect_files(dir, dir, &mut files)?;
        files.sort_by(|a, b| kind(a).rank.cmp(&kind(b).rank).then_with(|| a.cmp(b)));
        let remote: std::collections::HashMap<String, Object> = self
            .objects()?
            .into_iter()
            .map(|object| (object.name.clone(), object))
            .collect();
        let mut transfer = Transfer::default();
        for name in files {
            let path = dir.join(&name);
            let meta = fs_err::metadata(&path)?;
            let size = meta.len();
            let current = remote.get(&name).is_some_and(|object| {
                object.size == size
                    && (kind(&name).write_once
                        || meta.modified().is_ok_and(|m| m <= object.modified))
            });
            if current {
                transfer.skipped += 1;
                continue;
            }
            self.put_file(&name, &path)?;
            transfer.objects += 1;
            transfer.bytes += size;
            on_object(&name, size);
        }
        Ok(transfer)
    }
}

/// Whether the local file at `path` is a download of `object` (its size and time).
fn is_copy(path: &Path, object: &Object) -> bool {
    fs_err::metadata(path)
        .is_ok_and(|m| m.len() == object.size && m.modified().ok() == Some(object.modified))
}

/// How [`Remote::upload`] treats a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileKind {
    /// Upload order: 0 for data, higher for completion markers.
    pub rank: u8,
    /// The file's bytes never change once written (an object of its size is this file).
    pub write_once: bool,
}

impl FileKind {
    /// A stage output that never changes once written.
    pub const DATA: FileKind = FileKind {
        rank: 0,
        write_once: true,
    };
    /// A completion marker, uploaded after every data file.
    pub const MARKER: FileKind = FileKind {
        rank: 1,
        write_once: true,
    };
}

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Relative to the listed folder, `/`-separated.
    pub name: String,
    pub size: u64,
    pub modified: std::time::SystemTime,
}

/// One line for an object-store error: an S3-style `<Code>`/`<Message>` and the HTTP status when
/// the service sent them (its XML body is long and repeated down the error chain), else the
/// error's first line.
fn brief(error: &object_store::Error) -> String {
    let text = error.to_string();
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].to_owned())
    };
    let status = text.find("status code: ").map(|at| {
        text[at + 13..]
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
    });
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => match status {
            Some(status) => format!("{code}: {message} (HTTP {status})"),
            None => format!("{code}: {message}"),
        },
        _ => {
            let line = text.lines().next().unwrap_or("").to_owned();
            if line.len() > 400 {
                format!("{}...", &line[..line.floor_char_boundary(400)])
            } else {
                line
            }
        }
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            let parts: Vec<_> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}

/// A local folder for `url` under `root`: `root/<host-or-bucket>/<xxh3 of the URL>` (stable,
/// so a rerun on the same machine finds what it downloaded or staged before).
pub fn local_folder(root: &Path, url: &str) -> PathBuf {
    let trimmed = url.trim_end_matches('/');
    let bucket = trimmed
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or("objects"))
        .filter(|b| !b.is_empty())
        .unwrap_or("local");
    let hash = xxhash_rust::xxh3::xxh3_64(trimmed.as_bytes());
    root.join(bucket).join(format!("{hash:016x}"))
}

/// The cache root: `TINYFORGE_CACHE`, else `$XDG_CACHE_HOME/tinyforge/objects`, else
/// `~/.cache/tinyforge/objects`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("TINYFORGE_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("tinyforge").join("objects")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker_last(name: &str) -> FileKind {
        if name == "manifest.json" {
            FileKind::MARKER
        } else {
            FileKind::DATA
        }
    }

    #[test]
    fn file_urls_round_trip_a_folder_marker_last() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs_err::create_dir_all(src.join("sub")).unwrap();
        fs_err::write(src.join("manifest.json"), b"{}").unwrap();
        fs_err::write(src.join("a.tfs"), b"aaaa").unwrap();
        fs_err::write(src.join("sub/b.tfs"), b"bb").unwrap();
        fs_err::write(src.join(".lock"), b"").unwrap();
        let dst = tmp.path().join("remote");
        let remote = Remote::open(&format!("file://{}", dst.display())).unwrap();
        let order = std::sync::Mutex::new(Vec::new());
        let sent = remote
            .upload(&src, &marker_last, &|name, _| {
                order.lock().unwrap().push(name.to_owned())
            })
            .unwrap();
        assert_eq!(sent.objects, 3);
        assert_eq!(
            *order.lock().unwrap(),
            ["a.tfs", "sub/b.tfs", "manifest.json"]
        );
        assert_eq!(
            remote.list().unwrap(),
            [
                ("a.tfs".to_owned(), 4),
                ("manifest.json".to_owned(), 2),
                ("sub/b.tfs".to_owned(), 2)
            ]
        );
        // Again: nothing changed, nothing is sent; a file written since is sent again.
        let again = remote.upload(&src, &marker_last, &|_, _| {}).unwrap();
        assert_eq!((again.objects, again.skipped), (0, 3));
        // A file rewritten with the same size: sent again unless its kind is write-once.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs_err::write(src.join("a.tfs"), b"AAAA").unwrap();
        let again = remote.upload(&src, &marker_last, &|_, _| {}).unwrap();
        assert_eq!((again.objects, again.skipped), (0, 3));
        assert_eq!(remote.get("a.tfs").unwrap(), b"aaaa");
        let mutable = |_: &str| FileKind::default();
        let again = remote.upload(&src, &mutable, &|_, _| {}).unwrap();
        assert_eq!((again.objects, again.skipped), (1, 2));
        assert_eq!(remote.get("a.tfs").unwrap(), b"AAAA");
        assert_eq!(remote.get_range("a.tfs", 1..3).unwrap(), b"AA");
        let sub = Remote::open(&format!("file://{}/sub", dst.display())).unwrap();
        assert_eq!(sub.get("../a.tfs").unwrap(), b"AAAA");
        assert_eq!(sub.relative_path_to(&remote).as_deref(), Some(".."));
        assert_eq!(remote.relative_path_to(&sub).as_deref(), Some("sub"));
        let elsewhere = Remote::open("s3://other-bucket/x").unwrap();
        assert_eq!(remote.relative_path_to(&elsewhere), None);
        assert_eq!(remote.size("missing").unwrap(), None);
        assert_eq!(remote.get_if_exists("missing").unwrap(), None);
        assert_eq!(remote.get_if_exists("a.tfs").unwrap().unwrap(), b"AAAA");
        let err = remote.get("missing").unwrap_err().to_string();
        assert!(
            err.contains("no such object") && err.contains("/missing"),
            "{err}"
        );

        let back = tmp.path().join("back");
        let got = remote
            .download(&back, |name| name.ends_with(".tfs"))
            .unwrap();
        assert_eq!((got.objects, got.bytes), (2, 6));
        assert_eq!(fs_err::read(back.join("sub/b.tfs")).unwrap(), b"bb");
        assert!(!back.join("manifest.json").exists());
        let again = remote.download(&back, |_| true).unwrap();
        assert_eq!((again.objects, again.skipped), (1, 2));
        // What was downloaded is not sent back.
        let back_up = remote.upload(&back, &mutable, &|_, _| {}).unwrap();
        assert_eq!((back_up.objects, back_up.skipped), (0, 3));
    }

    #[test]
    fn urls_and_local_folders() {
        assert!(is_url("s3://bucket/x") && is_url("file:///tmp/x") && !is_url("docs/"));
        assert_eq!(
            split_object_url("s3://b/counts/c0.parquet"),
            Some(("s3://b/counts", "c0.parquet"))
        );
        assert_eq!(
            split_object_url("s3://b/c.parquet"),
            Some(("s3://b", "c.parquet"))
        );
        assert_eq!(split_object_url("s3://b"), None);
        assert_eq!(split_object_url("s3://b/dir/"), None);
        let a = local_folder(Path::new("/c"), "s3://bucket/docs/");
        assert_eq!(a, local_folder(Path::new("/c"), "s3://bucket/docs"));
        assert!(a.starts_with("/c/bucket"));
        assert_ne!(a, local_folder(Path::new("/c"), "s3://bucket/docs2"));
        let err = Remote::open("s3://").unwrap_err().to_string();
        assert!(err.contains("s3://"), "{err}");
    }
}
