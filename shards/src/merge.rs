//! Joining the datasets of `--shard i/n` tasks into one without copying a byte of token data:
//! the merged `manifest.json` names the tasks' shard files by paths relative to its own folder.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::manifest::{Manifest, ShardEntry};

/// Merges the datasets in `task_dirs` into a manifest written to `out` (created if missing).
///
/// Task outputs (manifests with a `task` field) are put in task order whatever order they are
/// given in, and must be the complete set of one run. Datasets without a `task` field are joined
/// in the order given. Returns the merged manifest.
///
/// `out` and the datasets may all be object-store URLs in one bucket instead of local folders:
/// the manifests are read with one GET each and the merged one is written with one PUT (its
/// shard paths relative inside the bucket). There is no lock then: object stores have none, and
/// a second merge of the same tasks writes the same bytes.
///
/// The files named in `carry` that the first dataset holds beside its manifest (its tokenizer
/// files) are copied into `out` before the manifest is written.
pub fn merge(task_dirs: &[PathBuf], out: &Path, carry: &[&str]) -> Result<Manifest> {
    if task_dirs.is_empty() {
        return Err(Error::Merge("no datasets to merge".into()));
    }
    let out_url = url_of(out);
    if task_dirs
        .iter()
        .any(|dir| url_of(dir).is_some() != out_url.is_some())
    {
        return Err(Error::Merge(
            "give --out and every dataset as local folders, or all as object-store URLs".into(),
        ));
    }
    let mut parts = task_dirs
        .iter()
        .map(|dir| Ok((dir.clone(), Manifest::read_any(dir)?)))
        .collect::<Result<Vec<_>>>()?;
    order_tasks(&mut parts)?;
    let header = parts[0].1.header();
    for (dir, manifest) in &parts {
        if manifest.header() != header {
            return Err(Error::Merge(format!(
                "{} differs from {} in tokenizer, vocabulary, dtype, EOS or frame size",
                dir.display(),
                parts[0].0.display()
            )));
        }
    }
    let Some(out_url) = out_url else {
        let _lock =
            tinyforge_task::TaskLock::acquire(out, "shards-merge", tinyforge_task::Shard::ALL)?;
        let out_abs = fs_err::canonicalize(out)?;
        let mut prefixes = Vec::with_capacity(parts.len());
        for (dir, _) in &parts {
            prefixes.push(relative_path(&out_abs, &fs_err::canonicalize(dir)?));
        }
        for name in carry {
            let from = parts[0].0.join(name);
            if from.is_file() {
                tinyforge_task::write_atomic(&out.join(name), &fs_err::read(&from)?)?;
            }
        }
        let merged = joined(header, parts, &prefixes);
        merged.write(out)?;
        return Ok(merged);
    };
    let remote = tinyforge_store::Remote::open(out_url)?;
    let mut prefixes = Vec::with_capacity(parts.len());
    for (dir, _) in &parts {
        let task = tinyforge_store::Remote::open(url_of(dir).unwrap_or_default())?;
        let prefix = remote.relative_path_to(&task).ok_or_else(|| {
            Error::Merge(format!(
                "{} is not in the bucket of {out_url}: a merged manifest names shards by paths \
                 inside one bucket",
                dir.display()
            ))
        })?;
        prefixes.push(PathBuf::from(prefix));
    }
    let first = tinyforge_store::Remote::open(url_of(&parts[0].0).unwrap_or_default())?;
    for name in carry {
        if let Some(bytes) = first.get_if_exists(name)? {
            remote.put(name, bytes)?;
        }
    }
    let merged = joined(header, parts, &prefixes);
    remote.put(crate::MANIFEST_FILE, merged.to_bytes()?)?;
    Ok(merged)
}

fn url_of(path: &Path) -> Option<&str> {
    path.to_str().filter(|text| tinyforge_store::is_url(text))
}

/// The manifest of `parts` in order, each shard named through its dataset's `prefixes` entry.
fn joined(
    header: crate::manifest::DatasetHeader,
    parts: Vec<(PathBuf, Manifest)>,
    prefixes: &[PathBuf],
) -> Manifest {
    let mut shards = Vec::new();
    for ((_, manifest), prefix) in parts.into_iter().zip(prefixes) {
        for entry in manifest.shards {
            let file = join_slash(prefix, &entry.file);
            shards.push(ShardEntry { file, ..entry });
        }
    }
    Manifest::new(header, None, shards)
}

fn order_tasks(parts: &mut [(PathBuf, Manifest)]) -> Result<()> {
    let with_task = parts.iter().filter(|(_, m)| m.task.is_some()).count();
    if with_task == 0 {
        return Ok(());
    }
    if with_task != parts.len() {
        return Err(Error::Merge(
            "some datasets are task outputs (--shard i/n) and some are not".into(),
        ));
    }
    parts.sort_by_key(|(_, m)| m.task.as_ref().map(|t| t.index));
    let first = parts[0]
        .1
        .task
        .clone()
        .ok_or_else(|| Error::Internal("task vanished".into()))?;
    if parts.len() != first.count as usize {
        return Err(Error::Merge(format!(
            "{} task outputs given, the run has {} tasks",
            parts.len(),
            first.count
        )));
    }
    for (position, (dir, manifest)) in parts.iter().enumerate() {
        let Some(task) = &manifest.task else { continue };
        if task.run != first.run || task.count != first.count {
            return Err(Error::Merge(format!(
                "{} belongs to another run (other inputs or settings)",
                dir.display()
            )));
        }
        if task.index as usize != position {
            return Err(Error::Merge(format!(
                "task {position}/{} is missing (or given twice)",
                first.count
            )));
        }
    }
    Ok(())
}

/// The path from folder `from` to folder `to`, both absolute.
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for component in &to[common..] {
        path.push(component.as_os_str());
    }
    path
}

/// `prefix/file` with `/` separators, as the manifest spells paths.
fn join_slash(prefix: &Path, file: &str) -> String {
    let mut parts: Vec<String> = prefix
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.push(file.to_owned());
    parts.retain(|p| !p.is_empty() && p != ".");
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_and_descend() {
        let rel = relative_path(Path::new("/a/b/merged"), Path::new("/a/b/tasks/t0"));
        assert_eq!(
            join_slash(&rel, "shard-000000.tfs"),
            "../tasks/t0/shard-000000.tfs"
        );
        let same = relative_path(Path::new("/a/b"), Path::new("/a/b"));
        assert_eq!(join_slash(&same, "shard-000001.tfs"), "shard-000001.tfs");
        let inside = relative_path(Path::new("/a"), Path::new("/a/t1"));
        assert_eq!(join_slash(&inside, "x.tfs"), "t1/x.tfs");
    }
}
