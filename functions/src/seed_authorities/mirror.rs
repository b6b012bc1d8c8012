//! The seed itself: list, plan, download changed objects into a staging folder beside the files,
//! validate, and only then move them into place and prune what S3 no longer has. A failure
//! before the move leaves the target as it was, and no staging folder behind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::keys::{self, MANIFEST_NAME, STAGING_PREFIX};
use super::layout;
use super::manifest::{Entry, Manifest};
use super::source::{ObjectSource, SourceObject};
use super::validate;

#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Succeed when the prefix holds no objects at all. It does not let through a prefix that
    /// holds objects none of which qa_server would load as an authority (see `layout`): that is
    /// almost always the wrong prefix, and is refused either way.
    pub allow_empty: bool,
    pub max_objects: u64,
    pub max_total_bytes: u64,
    pub concurrency: usize,
}

/// What one seed did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSummary {
    pub files: usize,
    pub bytes: u64,
    /// Downloaded: new or changed since the last seed.
    pub changed: usize,
    pub removed: usize,
    /// SHA-256 over the seeded set's paths, ETags and sizes.
    pub digest: String,
}

/// Counters a progress display reads while the seed runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub files_total: AtomicU64,
    pub bytes_total: AtomicU64,
    pub files_done: AtomicU64,
    pub bytes_done: AtomicU64,
}

/// At most this many problems are listed in one error; the rest are counted.
const LISTED_PROBLEMS: usize = 10;

fn list_problems(problems: &[String]) -> String {
    let mut text = problems.iter().take(LISTED_PROBLEMS).cloned().collect::<Vec<_>>().join("; ");
    if problems.len() > LISTED_PROBLEMS {
        text.push_str(&format!("; and {} more", problems.len() - LISTED_PROBLEMS));
    }
    text
}

fn slash_path(path: &Path) -> String {
    path.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

struct Planned {
    object: SourceObject,
    relative: PathBuf,
}

pub async fn seed(
    source: &impl ObjectSource,
    bucket: &str,
    prefix: &str,
    target: &Path,
    options: &SeedOptions,
    progress: &Progress,
) -> Result<SeedSummary, String> {
    let from = format!("s3://{bucket}/{prefix}");
    if !std::fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
        return Err(format!(
            "target {} is not a folder: expected the authorities access point mounted there — check the function's \
             FileSystemConfigs and AUTHORITIES_MOUNT_PATH",
            target.display()
        ));
    }

    let listed = source.list(bucket, prefix).await?;
    let objects: Vec<SourceObject> = listed.into_iter().filter(|o| !(o.key.ends_with('/') && o.size == 0)).collect();
    let mut unsafe_keys = Vec::new();
    let mut planned = Vec::new();
    for object in objects {
        match keys::relative_path(&object.key, prefix) {
            Ok(relative) => planned.push(Planned { object, relative }),
            Err(why) => unsafe_keys.push(format!("{:?}: {why}", object.key)),
        }
    }
    if !unsafe_keys.is_empty() {
        return Err(format!(
            "{} key(s) under {from} would not land safely inside {} — nothing was written; rename or remove them in S3: {}",
            unsafe_keys.len(),
            target.display(),
            list_problems(&unsafe_keys)
        ));
    }
    if planned.is_empty() && !options.allow_empty {
        return Err(format!(
            "no authority files under {from}: the app would start with none — upload them \
             (aws s3 sync config/authorities {from}) or set AllowEmpty to true"
        ));
    }
    // Decided from the listing, before anything is downloaded or written.
    let listed_keys: Vec<&str> = planned.iter().map(|p| p.object.key.as_str()).collect();
    if let Some(reason) = layout::refusal(bucket, prefix, &listed_keys) {
        return Err(reason);
    }
    let total_bytes: u64 = planned.iter().map(|p| p.object.size).sum();
    if planned.len() as u64 > options.max_objects {
        return Err(format!(
            "{} objects under {from}, more than the limit of {} — check the prefix, or raise MaxObjects",
            planned.len(),
            options.max_objects
        ));
    }
    if total_bytes > options.max_total_bytes {
        return Err(format!(
            "{total_bytes} bytes under {from}, more than the limit of {} — check the prefix, or raise MaxTotalBytes",
            options.max_total_bytes
        ));
    }
    let new_paths: BTreeSet<String> = planned.iter().map(|p| slash_path(&p.relative)).collect();
    if let Some(clash) = planned.iter().find_map(|p| {
        p.relative
            .ancestors()
            .skip(1)
            .map(slash_path)
            .find(|a| new_paths.contains(a))
            .map(|a| (a, p.object.key.clone()))
    }) {
        return Err(format!(
            "under {from}, {:?} is both a file and the folder of {:?} — rename one of them in S3",
            clash.0, clash.1
        ));
    }

    // Decided from the listing alone so far; from here on the target is read and written.
    let _lock = super::lock::hold(target).await?;
    let old = Manifest::read(target);
    let changed: Vec<&Planned> = planned
        .iter()
        .filter(|p| {
            let unchanged = old
                .files
                .get(&slash_path(&p.relative))
                .is_some_and(|e| e.etag == p.object.etag && e.size == p.object.size)
                && std::fs::symlink_metadata(target.join(&p.relative))
                    .is_ok_and(|m| m.is_file() && m.len() == p.object.size);
            !unchanged
        })
        .collect();
    progress.files_total.store(changed.len() as u64, Ordering::Relaxed);
    progress.bytes_total.store(changed.iter().map(|p| p.object.size).sum(), Ordering::Relaxed);

    remove_stale_staging(target);
    let staging = target.join(format!("{STAGING_PREFIX}{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&staging)
        .map_err(|e| format!("cannot create {}: {e} — is the access point writable?", staging.display()))?;
    let result =
        stage_and_commit(source, bucket, &from, target, &staging, &changed, &old, &planned, options, progress).await;
    let _ = std::fs::remove_dir_all(&staging);
    let removed = result?;

    let mut hasher = Sha256::new();
    for p in &planned {
        hasher.update(format!("{}\t{}\t{}\n", slash_path(&p.relative), p.object.etag, p.object.size));
    }
    Ok(SeedSummary {
        files: planned.len(),
        bytes: total_bytes,
        changed: changed.len(),
        removed,
        digest: format!("{:x}", hasher.finalize()),
    })
}

/// A staging folder left by a seed that was stopped (the Lambda's deadline, a crash).
fn remove_stale_staging(target: &Path) {
    let Ok(entries) = std::fs::read_dir(target) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
            let _ = match entry.file_type() {
                Ok(kind) if kind.is_dir() => std::fs::remove_dir_all(entry.path()),
                _ => std::fs::remove_file(entry.path()),
            };
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn stage_and_commit(
    source: &impl ObjectSource,
    bucket: &str,
    from: &str,
    target: &Path,
    staging: &Path,
    changed: &[&Planned],
    old: &Manifest,
    planned: &[Planned],
    options: &SeedOptions,
    progress: &Progress,
) -> Result<usize, String> {
    let downloads = tokio::sync::Semaphore::new(options.concurrency.max(1));
    let results = futures::future::join_all(changed.iter().map(|planned| {
        let downloads = &downloads;
        async move {
            let _turn = downloads.acquire().await.map_err(|_| "the download queue closed".to_owned())?;
            stage_one(source, bucket, staging, planned, progress).await
        }
    }))
    .await;
    let problems: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if !problems.is_empty() {
        return Err(format!(
            "{} of {} changed file(s) from {from} failed — nothing was changed in {}; fix them in S3 and update the stack: {}",
            problems.len(),
            changed.len(),
            target.display(),
            list_problems(&problems)
        ));
    }

    // Everything is staged and valid. Before moving anything, make sure each path can be taken
    // without following a link or replacing a file the seed did not write.
    let mut conflicts = Vec::new();
    for p in changed {
        if let Err(problem) = check_path(target, &p.relative, old) {
            conflicts.push(format!("{:?}: {problem}", p.object.key));
        }
    }
    if !conflicts.is_empty() {
        return Err(format!("nothing was changed in {}: {}", target.display(), list_problems(&conflicts)));
    }
    for p in changed {
        prepare_folders(target, &p.relative)
            .map_err(|e| format!("{:?}: cannot prepare its folder: {e}", p.object.key))?;
        std::fs::rename(staging.join(&p.relative), target.join(&p.relative))
            .map_err(|e| format!("{:?}: cannot move it into place: {e}", p.object.key))?;
    }

    let current: BTreeSet<String> = planned.iter().map(|p| slash_path(&p.relative)).collect();
    let removed = prune(target, old, &current);

    let manifest = Manifest {
        files: planned
            .iter()
            .map(|p| {
                let entry = Entry { key: p.object.key.clone(), etag: p.object.etag.clone(), size: p.object.size };
                (slash_path(&p.relative), entry)
            })
            .collect::<BTreeMap<_, _>>(),
    };
    let staged_manifest = staging.join(MANIFEST_NAME);
    std::fs::write(&staged_manifest, manifest.to_bytes())
        .and_then(|_| std::fs::rename(&staged_manifest, target.join(MANIFEST_NAME)))
        .map_err(|e| format!("the files are in place but the manifest could not be written: {e}"))?;
    Ok(removed)
}

/// Objects up to this size are fetched into memory, then written and validated in one step of a
/// blocking thread; larger ones are streamed to disk. Memory stays within concurrency × this.
const IN_MEMORY_MAX: u64 = 256 * 1024;

/// Downloads one object into the staging folder and validates it.
async fn stage_one(
    source: &impl ObjectSource,
    bucket: &str,
    staging: &Path,
    planned: &Planned,
    progress: &Progress,
) -> Result<(), String> {
    let key = &planned.object.key;
    let staged = staging.join(&planned.relative);
    let checked = if planned.object.size <= IN_MEMORY_MAX {
        let body = source.fetch(bucket, key).await.map_err(|e| format!("{key:?}: {e}"))?;
        progress.files_done.fetch_add(1, Ordering::Relaxed);
        progress.bytes_done.fetch_add(body.len() as u64, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || -> std::io::Result<Option<String>> {
            staged.parent().map_or(Ok(()), std::fs::create_dir_all)?;
            std::fs::write(&staged, &body)?;
            Ok(validate::problem_in(&staged, &body))
        })
        .await
    } else {
        if let Some(parent) = staged.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| format!("{key:?}: cannot stage it: {e}"))?;
        }
        let bytes = source.download(bucket, key, &staged).await.map_err(|e| format!("{key:?}: {e}"))?;
        progress.files_done.fetch_add(1, Ordering::Relaxed);
        progress.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || std::io::Result::Ok(validate::problem(&staged))).await
    };
    match checked {
        Ok(Ok(None)) => Ok(()),
        Ok(Ok(Some(problem))) => Err(format!("{key:?}: {problem}")),
        Ok(Err(e)) => Err(format!("{key:?}: cannot stage it: {e}")),
        Err(_) => Err(format!("{key:?}: validation crashed")),
    }
}

/// Whether `relative` can be written: its folders may be missing, links (replaced, never
/// followed) or files an earlier seed wrote; the path itself may not be a folder.
fn check_path(target: &Path, relative: &Path, old: &Manifest) -> Result<(), String> {
    let mut path = target.to_path_buf();
    let components: Vec<Component> = relative.components().collect();
    for (index, component) in components.iter().enumerate() {
        path.push(component);
        let last = index + 1 == components.len();
        match std::fs::symlink_metadata(&path) {
            Err(_) => return Ok(()),
            Ok(m) if m.file_type().is_symlink() => {}
            Ok(m) if m.is_dir() && last => return Err(format!("{} is a folder", path.display())),
            Ok(m) if m.is_dir() => {}
            Ok(_) if last => {}
            Ok(_) if old.files.contains_key(&slash_path(path.strip_prefix(target).unwrap_or(&path))) => {}
            Ok(_) => return Err(format!("{} is a file the seed did not write; move it away", path.display())),
        }
    }
    Ok(())
}

/// Makes every folder of `relative` a real folder: links and earlier seeded files in the way
/// are removed (never followed).
fn prepare_folders(target: &Path, relative: &Path) -> std::io::Result<()> {
    let mut path = target.to_path_buf();
    let folders: Vec<Component> = relative.parent().map(|p| p.components().collect()).unwrap_or_default();
    for component in folders {
        path.push(component);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => std::fs::remove_file(&path)?,
            Err(_) => {}
        }
        std::fs::create_dir(&path)?;
    }
    Ok(())
}

/// Removes the files an earlier seed wrote that are not in `current`; returns how many.
pub fn prune(target: &Path, old: &Manifest, current: &BTreeSet<String>) -> usize {
    old.files
        .keys()
        .filter(|path| !current.contains(*path))
        .filter(|gone| remove_seeded_file(target, Path::new(gone)))
        .count()
}

/// Removes a file an earlier seed wrote, unless a link on its way would lead outside; then
/// folders left empty. Returns whether it removed the file.
fn remove_seeded_file(target: &Path, relative: &Path) -> bool {
    let mut folder = target.to_path_buf();
    for component in relative.parent().map(|p| p.components().collect::<Vec<_>>()).unwrap_or_default() {
        folder.push(component);
        if !std::fs::symlink_metadata(&folder).is_ok_and(|m| m.is_dir()) {
            return false;
        }
    }
    let path = target.join(relative);
    if std::fs::symlink_metadata(&path).is_err() || std::fs::remove_file(&path).is_err() {
        return false;
    }
    let mut parent = path.parent();
    while let Some(folder) = parent.filter(|f| *f != target) {
        if std::fs::remove_dir(folder).is_err() {
            break;
        }
        parent = folder.parent();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects in memory; `download` writes their bytes.
    struct FakeSource(Vec<(String, Vec<u8>)>);

    impl ObjectSource for FakeSource {
        async fn list(&self, _: &str, _: &str) -> Result<Vec<SourceObject>, String> {
            Ok(self
                .0
                .iter()
                .map(|(key, bytes)| SourceObject {
                    key: key.clone(),
                    etag: format!("{:x}", bytes.len()),
                    size: bytes.len() as u64,
                })
                .collect())
        }
        async fn download(&self, _: &str, key: &str, destination: &Path) -> Result<u64, String> {
            let bytes = &self.0.iter().find(|(k, _)| k == key).unwrap().1;
            std::fs::write(destination, bytes).map_err(|e| e.to_string())?;
            Ok(bytes.len() as u64)
        }
        async fn fetch(&self, _: &str, key: &str) -> Result<Vec<u8>, String> {
            Ok(self.0.iter().find(|(k, _)| k == key).unwrap().1.clone())
        }
    }

    fn options() -> SeedOptions {
        SeedOptions { allow_empty: false, max_objects: 10, max_total_bytes: 1000, concurrency: 4 }
    }

    async fn run(objects: &[(&str, &str)], target: &Path, options: &SeedOptions) -> Result<SeedSummary, String> {
        let source = FakeSource(objects.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect());
        seed(&source, "b", "p/", target, options, &Progress::default()).await
    }

    #[tokio::test]
    async fn limits_are_enforced_before_anything_is_written_and_can_be_raised() {
        let target = tempfile::tempdir().unwrap();
        let many: Vec<(String, &str)> = (0..11).map(|i| (format!("p/{i}.yml"), "a: 1\n")).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let error = run(&many, target.path(), &options()).await.unwrap_err();
        assert!(
            error.contains(
                "11 objects under s3://b/p/, more than the limit of 10 — check the prefix, or raise MaxObjects"
            ),
            "{error}"
        );
        let big = "x".repeat(1001);
        let error = run(&[("p/big.yml", &big)], target.path(), &options()).await.unwrap_err();
        assert!(error.contains("raise MaxTotalBytes"), "{error}");
        assert!(std::fs::read_dir(target.path()).unwrap().next().is_none());
        let raised = SeedOptions { max_objects: 11, ..options() };
        assert_eq!(run(&many, target.path(), &raised).await.unwrap().files, 11);
    }

    #[tokio::test]
    async fn a_file_and_a_folder_of_the_same_name_are_refused() {
        let target = tempfile::tempdir().unwrap();
        let error = run(&[("p/top.yml", "t: 1"), ("p/a", "x"), ("p/a/b.yml", "y: 1")], target.path(), &options())
            .await
            .unwrap_err();
        assert!(error.contains("\"a\" is both a file and the folder of \"p/a/b.yml\""), "{error}");
    }

    #[tokio::test]
    async fn a_file_the_seed_did_not_write_is_never_replaced_by_a_folder() {
        let target = tempfile::tempdir().unwrap();
        std::fs::write(target.path().join("notes"), b"mine").unwrap();
        let error =
            run(&[("p/top.yml", "t: 1"), ("p/notes/a.yml", "a: 1")], target.path(), &options()).await.unwrap_err();
        assert!(error.contains("is a file the seed did not write"), "{error}");
        assert_eq!(std::fs::read(target.path().join("notes")).unwrap(), b"mine");
    }

    /// Every file below `folder`, hidden ones (the manifest) too, with its bytes.
    fn snapshot(folder: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut found = BTreeMap::new();
        let mut pending = vec![folder.to_path_buf()];
        while let Some(current) = pending.pop() {
            for entry in std::fs::read_dir(&current).unwrap().flatten() {
                if entry.file_type().unwrap().is_dir() {
                    pending.push(entry.path());
                    found.insert(entry.path(), Vec::new());
                } else {
                    found.insert(entry.path(), std::fs::read(entry.path()).unwrap());
                }
            }
        }
        found
    }

    #[tokio::test]
    async fn a_large_object_is_streamed_to_disk_and_validated_like_a_small_one() {
        let target = tempfile::tempdir().unwrap();
        let large = format!("a: {}\n", "x".repeat(IN_MEMORY_MAX as usize));
        let options = SeedOptions { max_total_bytes: 1 << 20, ..options() };
        run(&[("p/large.yml", &large), ("p/small.yml", "b: 1")], target.path(), &options).await.unwrap();
        assert_eq!(std::fs::read_to_string(target.path().join("large.yml")).unwrap(), large);
        let broken = format!("{large}b: [\n");
        let error = run(&[("p/large.yml", &broken)], target.path(), &options).await.unwrap_err();
        assert!(error.contains("\"p/large.yml\": invalid YAML at line"), "{error}");
        assert_eq!(std::fs::read_to_string(target.path().join("large.yml")).unwrap(), large);
    }

    #[tokio::test]
    async fn top_level_yml_alone_is_seeded() {
        let target = tempfile::tempdir().unwrap();
        let summary = run(&[("p/languages.yml", "terms: []")], target.path(), &options()).await.unwrap();
        assert_eq!(summary.files, 1);
        assert!(target.path().join("languages.yml").is_file());
    }

    #[tokio::test]
    async fn linked_data_json_alone_is_seeded() {
        let target = tempfile::tempdir().unwrap();
        let objects = [("p/linked_data/loc.json", "{}"), ("p/linked_data/scenarios/loc_validation.yml", "a: 1")];
        assert_eq!(run(&objects, target.path(), &options()).await.unwrap().files, 2);
        assert!(target.path().join("linked_data/loc.json").is_file());
    }

    #[tokio::test]
    async fn scenarios_alone_are_refused_even_with_allow_empty_and_nothing_is_written() {
        let target = tempfile::tempdir().unwrap();
        let allowed = SeedOptions { allow_empty: true, ..options() };
        let error =
            run(&[("p/linked_data/scenarios/loc_validation.yml", "a: 1")], target.path(), &allowed).await.unwrap_err();
        assert!(error.starts_with("no authority qa_server would load under s3://b/p/"), "{error}");
        assert!(error.contains("AllowEmpty does not apply: it only allows a prefix with no objects at all"), "{error}");
        assert!(std::fs::read_dir(target.path()).unwrap().next().is_none(), "something was written");
    }

    #[tokio::test]
    async fn a_nested_tree_is_refused_naming_the_deeper_prefix_and_the_old_files_stay() {
        let target = tempfile::tempdir().unwrap();
        run(&[("p/old.yml", "old: 1"), ("p/linked_data/old.json", "{}")], target.path(), &options()).await.unwrap();
        let before = snapshot(target.path());
        let nested = [
            ("p/config/authorities/languages.yml", "terms: []"),
            ("p/config/authorities/linked_data/loc.json", "{}"),
            ("p/config/authorities/linked_data/scenarios/loc_validation.yml", "a: 1"),
        ];
        let error = run(&nested, target.path(), &options()).await.unwrap_err();
        assert!(error.contains("they sit under s3://b/p/config/authorities/ (1 top-level *.yml, 1 linked_data/*.json)"));
        assert!(
            error.ends_with(
                "nothing was written — set AuthoritiesPrefix (the resource's Prefix; for qa-deploy seed, --prefix) \
                 to p/config/authorities/"
            ),
            "{error}"
        );
        assert_eq!(snapshot(target.path()), before, "the old files and manifest, byte for byte, and no staging");
    }

    #[tokio::test]
    async fn an_empty_prefix_passes_only_with_allow_empty() {
        let target = tempfile::tempdir().unwrap();
        let error = run(&[("p/", "")], target.path(), &options()).await.unwrap_err();
        assert!(error.contains("no authority files under s3://b/p/"), "{error}");
        let allowed = SeedOptions { allow_empty: true, ..options() };
        assert_eq!(run(&[("p/", "")], target.path(), &allowed).await.unwrap().files, 0);
    }

    #[tokio::test]
    async fn pruning_removes_only_what_a_seed_wrote() {
        let target = tempfile::tempdir().unwrap();
        run(&[("p/a.yml", "a: 1"), ("p/d/b.yml", "b: 1")], target.path(), &options()).await.unwrap();
        std::fs::write(target.path().join("local.yml"), b"mine: 1").unwrap();
        let summary = run(&[("p/a.yml", "a: 1")], target.path(), &options()).await.unwrap();
        assert_eq!((summary.changed, summary.removed), (0, 1));
        assert!(!target.path().join("d").exists(), "an emptied folder goes too");
        assert!(target.path().join("local.yml").exists(), "a file the seed never wrote stays");
    }
}
