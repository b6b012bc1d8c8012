//! `Custom::SeedAuthorities` and `qa-deploy seed` against moto: the real Lambda binary under the
//! runtime emulator with a local folder standing in for the authorities access point, and the
//! real CLI, through a proxy that makes S3 fail where a test needs it.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use qa_lookup_testbed::{Behaviour, FunctionOptions, Proxy, StoredResponse, TestBed};
use serde_json::json;

const FUNCTION: &str = env!("CARGO_BIN_EXE_custom-resources");
const CLI: &str = env!("CARGO_BIN_EXE_qa-deploy");
const SEED: &str = "Custom::SeedAuthorities";
const BUCKET: &str = "lookup-authorities";

/// The real qa_server configuration when it is beside the repository, else the small sample.
fn source_folder() -> PathBuf {
    qa_lookup_testbed::lifecycle::authorities_fixture()
}

/// Relative path → bytes of every file below `folder`, hidden names (the seed's own) left out.
fn tree(folder: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, folder: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(folder).unwrap().flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, files);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(folder, folder, &mut files);
    files
}

/// Every file below `folder`, hidden ones too, with its inode and modification time.
fn identities(folder: &Path) -> BTreeMap<String, (u64, i64, i64)> {
    let mut found = BTreeMap::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap().flatten() {
            let metadata = entry.path().symlink_metadata().unwrap();
            if metadata.is_dir() {
                pending.push(entry.path());
                continue;
            }
            let relative = entry.path().strip_prefix(folder).unwrap().to_string_lossy().into_owned();
            found.insert(relative, (metadata.ino(), metadata.mtime(), metadata.mtime_nsec()));
        }
    }
    found
}

async fn upload(bed: &TestBed, prefix: &str, files: &BTreeMap<String, Vec<u8>>) {
    for (relative, bytes) in files {
        put(bed, &format!("{prefix}{relative}"), bytes).await;
    }
}

async fn put(bed: &TestBed, key: &str, bytes: &[u8]) {
    bed.s3.put_object().bucket(BUCKET).key(key).body(ByteStream::from(bytes.to_vec())).send().await.unwrap();
}

struct Seeding {
    bed: TestBed,
    target: tempfile::TempDir,
}

async fn start() -> Seeding {
    let target = tempfile::tempdir().unwrap();
    let options = FunctionOptions::new(FUNCTION)
        .timeout(Duration::from_secs(60))
        .env("AUTHORITIES_MOUNT_PATH", target.path().to_str().unwrap());
    let bed = TestBed::start(options).await;
    bed.s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    Seeding { bed, target }
}

impl Seeding {
    async fn create(&self, properties: serde_json::Value) -> StoredResponse {
        let create = self.bed.create(SEED, "SeedAuthorities", properties).await;
        self.bed.invoke(&create).await;
        let answer = self.bed.stored_response(&create).await;
        assert_eq!(answer.versions, 1);
        answer
    }

    async fn update(&self, physical_id: &str, properties: serde_json::Value) -> StoredResponse {
        let update = self.bed.update(SEED, "SeedAuthorities", physical_id, properties.clone(), properties).await;
        self.bed.invoke(&update).await;
        self.bed.stored_response(&update).await
    }

    fn no_staging_left(&self) {
        let debris: Vec<_> = std::fs::read_dir(self.target.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".seed-staging-"))
            .collect();
        assert!(debris.is_empty(), "staging debris: {debris:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_update_delete_mirror_the_source_and_touch_only_what_changed() {
    let seeding = start().await;
    let mut source = tree(&source_folder());
    // Larger than what is fetched into memory: streamed to disk.
    let large: String = (0..25_000).map(|i| format!("- term {i}\n")).collect();
    source.insert("zz_streamed_to_disk.yml".into(), large.into_bytes());
    upload(&seeding.bed, "authorities/", &source).await;

    let created = seeding.create(json!({"Bucket": BUCKET, "SourceVersion": "1"})).await;
    assert_eq!(created.status(), "SUCCESS", "{}", created.json);
    let physical_id = created.physical_id().to_owned();
    assert_eq!(physical_id, format!("seed-authorities:{}", seeding.target.path().display()));
    assert_eq!(created.json["Data"]["Files"], source.len().to_string());
    assert_eq!(created.json["Data"]["Changed"], source.len().to_string());
    assert_eq!(tree(seeding.target.path()), source, "the target equals the source (diff -r)");
    seeding.no_staging_left();

    // One changed, one added, one removed.
    let mut names = source.keys().cloned();
    let (changed, removed) = (names.next().unwrap(), names.next().unwrap());
    let before = identities(seeding.target.path());
    let changed_bytes =
        if changed.ends_with(".json") { b"{\"changed\": true}\n".to_vec() } else { b"changed: true\n".to_vec() };
    put(&seeding.bed, &format!("authorities/{changed}"), &changed_bytes).await;
    put(&seeding.bed, "authorities/added/new_authority.yml", b"terms:\n  - id: 1\n    term: new\n").await;
    seeding.bed.s3.delete_object().bucket(BUCKET).key(format!("authorities/{removed}")).send().await.unwrap();
    source.insert(changed.clone(), changed_bytes);
    source.insert("added/new_authority.yml".into(), b"terms:\n  - id: 1\n    term: new\n".to_vec());
    source.remove(&removed);

    let updated = seeding.update(&physical_id, json!({"Bucket": BUCKET, "SourceVersion": "2"})).await;
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.json);
    assert_eq!(updated.physical_id(), physical_id, "an Update never asks for a replacement");
    assert_eq!(
        (updated.json["Data"]["Changed"].as_str(), updated.json["Data"]["Removed"].as_str()),
        (Some("2"), Some("1"))
    );
    assert_eq!(tree(seeding.target.path()), source);
    let after = identities(seeding.target.path());
    for (path, identity) in &before {
        let touched = *path == changed || *path == removed || path.starts_with(".seed");
        if !touched {
            assert_eq!(after.get(path), Some(identity), "{path} was touched");
        }
    }

    // Nothing changed in S3: nothing is downloaded.
    let again = seeding.update(&physical_id, json!({"Bucket": BUCKET, "SourceVersion": "3"})).await;
    assert_eq!(again.json["Data"]["Changed"], "0", "{}", again.json);
    assert_eq!(again.json["Data"]["Digest"], updated.json["Data"]["Digest"]);

    // Delete leaves the files by default, removes them when asked.
    let delete = seeding.bed.delete(SEED, "SeedAuthorities", &physical_id, json!({"Bucket": BUCKET})).await;
    seeding.bed.invoke(&delete).await;
    assert_eq!(seeding.bed.stored_response(&delete).await.status(), "SUCCESS");
    assert_eq!(tree(seeding.target.path()), source, "the data outlives the stack");
    let delete = seeding
        .bed
        .delete(SEED, "SeedAuthorities", &physical_id, json!({"Bucket": BUCKET, "RemoveOnDelete": "true"}))
        .await;
    seeding.bed.invoke(&delete).await;
    assert_eq!(seeding.bed.stored_response(&delete).await.status(), "SUCCESS");
    assert!(tree(seeding.target.path()).is_empty());
    assert!(!seeding.target.path().join(".seed-manifest.json").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn unsafe_keys_fail_the_whole_seed_naming_the_key_and_write_nothing() {
    let seeding = start().await;
    put(&seeding.bed, "authorities/good.yml", b"terms: []\n").await;
    let long = format!("authorities/{}.yml", "x".repeat(256));
    for key in [
        "authorities/../escape.yml",
        "authorities//root.yml",
        "authorities/dir\\..\\win.yml",
        "authorities/a/./b.yml",
        long.as_str(),
    ] {
        put(&seeding.bed, key, b"terms: []\n").await;
        let answer = seeding.create(json!({"Bucket": BUCKET})).await;
        assert_eq!(answer.status(), "FAILED", "{key}");
        assert!(answer.reason().contains(&format!("{key:?}")), "{key} not named in {}", answer.reason());
        assert!(answer.reason().contains("nothing was written"), "{}", answer.reason());
        assert!(std::fs::read_dir(seeding.target.path()).unwrap().next().is_none(), "{key}: something was written");
        seeding.bed.s3.delete_object().bucket(BUCKET).key(key).send().await.unwrap();
    }
    let outside = seeding.target.path().parent().unwrap().join("escape.yml");
    assert!(!outside.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_json_and_yaml_fail_naming_key_and_line_and_leave_the_old_files() {
    let seeding = start().await;
    upload(&seeding.bed, "authorities/", &tree(&source_folder())).await;
    let created = seeding.create(json!({"Bucket": BUCKET})).await;
    assert_eq!(created.status(), "SUCCESS");
    let before = tree(seeding.target.path());

    put(&seeding.bed, "authorities/linked_data/broken.json", b"{\n  \"a\": 1,\n  oops\n}\n").await;
    put(&seeding.bed, "authorities/broken.yml", b"terms:\n  - id: 1\n   term: [\n").await;
    put(&seeding.bed, "authorities/fine_new.yml", b"terms: []\n").await;
    let answer = seeding.update(created.physical_id(), json!({"Bucket": BUCKET, "SourceVersion": "2"})).await;
    assert_eq!(answer.status(), "FAILED");
    let reason = answer.reason();
    assert!(reason.contains("\"authorities/linked_data/broken.json\": invalid JSON at line 3"), "{reason}");
    assert!(reason.contains("\"authorities/broken.yml\": invalid YAML at line"), "{reason}");
    assert!(reason.contains("nothing was changed"), "{reason}");
    assert_eq!(answer.physical_id(), created.physical_id(), "a failed Update keeps its id");
    assert_eq!(tree(seeding.target.path()), before, "the old files, byte for byte");
    seeding.no_staging_left();
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_prefix_fails_unless_allowed() {
    let seeding = start().await;
    let answer = seeding.create(json!({"Bucket": BUCKET, "Prefix": "nothing-here/"})).await;
    assert_eq!(answer.status(), "FAILED");
    assert!(
        answer
            .reason()
            .contains("no authority files under s3://lookup-authorities/nothing-here/: the app would start with none"),
        "{}",
        answer.reason()
    );
    let allowed = seeding.create(json!({"Bucket": BUCKET, "Prefix": "nothing-here/", "AllowEmpty": "true"})).await;
    assert_eq!(allowed.status(), "SUCCESS", "{}", allowed.json);
    assert_eq!(allowed.json["Data"]["Files"], "0");
}

/// Upstream's buckets keep the files under `config/authorities/` (REFERENCE.md, "The service
/// being deployed"): with the default prefix qa_server would load nothing from the mount.
#[tokio::test(flavor = "multi_thread")]
async fn files_under_a_deeper_prefix_are_refused_naming_it_and_nothing_is_written() {
    let seeding = start().await;
    let source = tree(&source_folder());
    upload(&seeding.bed, "authorities/config/authorities/", &source).await;
    put(&seeding.bed, "authorities/config/locales/qa_server.en.yml", b"en:\n  qa_server: {}\n").await;

    let answer = seeding.create(json!({"Bucket": BUCKET, "AllowEmpty": "true"})).await;
    assert_eq!(answer.status(), "FAILED", "{}", answer.json);
    let reason = answer.reason();
    assert!(
        reason.starts_with(
            "Custom::SeedAuthorities SeedAuthorities: no authority qa_server would load under \
             s3://lookup-authorities/authorities/: expected local authorities (*.yml) directly under the prefix or \
             linked-data authorities (linked_data/*.json)"
        ),
        "{reason}"
    );
    assert!(reason.contains("they sit under s3://lookup-authorities/authorities/config/authorities/ ("), "{reason}");
    assert!(
        reason.contains(
            "nothing was written — set AuthoritiesPrefix (the resource's Prefix; for qa-deploy seed, --prefix) to \
             authorities/config/authorities/"
        ),
        "{reason}"
    );
    assert!(std::fs::read_dir(seeding.target.path()).unwrap().next().is_none(), "something was written");

    let (ok, output) = cli_seed(&seeding.bed.moto.endpoint, seeding.target.path()).await;
    assert!(!ok, "{output}");
    assert!(output.contains("--prefix) to authorities/config/authorities/"), "{output}");
    assert!(std::fs::read_dir(seeding.target.path()).unwrap().next().is_none(), "something was written");

    let fixed = seeding.create(json!({"Bucket": BUCKET, "Prefix": "authorities/config/authorities/"})).await;
    assert_eq!(fixed.status(), "SUCCESS", "{}", fixed.json);
    assert_eq!(tree(seeding.target.path()), source);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_in_the_target_is_replaced_never_followed() {
    let seeding = start().await;
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("keep.txt"), b"not yours").unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), seeding.target.path().join("linked_data")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path().join("keep.txt"), seeding.target.path().join("languages.yml")).unwrap();
    put(&seeding.bed, "authorities/linked_data/loc.json", b"{}").await;
    put(&seeding.bed, "authorities/languages.yml", b"terms: []\n").await;
    let answer = seeding.create(json!({"Bucket": BUCKET})).await;
    assert_eq!(answer.status(), "SUCCESS", "{}", answer.json);
    assert_eq!(tree(elsewhere.path()).len(), 1, "nothing written through the link");
    assert_eq!(std::fs::read(elsewhere.path().join("keep.txt")).unwrap(), b"not yours");
    assert!(seeding.target.path().join("linked_data").symlink_metadata().unwrap().is_dir());
    assert!(seeding.target.path().join("languages.yml").symlink_metadata().unwrap().is_file());
}

async fn cli_seed(endpoint: &str, target: &Path) -> (bool, String) {
    let output = tokio::process::Command::new(CLI)
        .args(["seed", "--bucket", BUCKET, "--target"])
        .arg(target)
        .envs(qa_lookup_testbed::client_env(endpoint))
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_failing_midway_leaves_the_old_files_identical() {
    let seeding = start().await;
    let source = tree(&source_folder());
    upload(&seeding.bed, "authorities/", &source).await;
    let (ok, output) = cli_seed(&seeding.bed.moto.endpoint, seeding.target.path()).await;
    assert!(ok, "{output}");
    assert!(output.contains(&format!("{} files", source.len())), "{output}");
    let before = tree(seeding.target.path());

    // Every object changes; S3 then fails on one of them, whatever the retries.
    let failing = source.keys().nth(source.len() / 2).unwrap().clone();
    for (relative, bytes) in &source {
        let mut changed = bytes.clone();
        changed.extend_from_slice(b"\n");
        put(&seeding.bed, &format!("authorities/{relative}"), &changed).await;
    }
    let proxy =
        Proxy::start(seeding.bed.moto.endpoint.clone(), Behaviour::FailGets(format!("authorities/{failing}"))).await;
    let (ok, output) = cli_seed(&proxy.url, seeding.target.path()).await;
    assert!(!ok, "{output}");
    assert!(proxy.failed() > 1, "the failing GET was retried");
    assert!(output.contains(&format!("\"authorities/{failing}\"")), "the failing key is named: {output}");
    assert!(output.contains("nothing was changed"), "{output}");
    assert_eq!(tree(seeding.target.path()), before, "the old files, byte for byte");
    seeding.no_staging_left();
}

#[tokio::test(flavor = "multi_thread")]
async fn four_seeds_of_one_target_at_once_all_succeed_one_after_another() {
    let seeding = start().await;
    let source = tree(&source_folder());
    upload(&seeding.bed, "authorities/", &source).await;
    let target = seeding.target.path().join("fresh");
    let endpoint = &seeding.bed.moto.endpoint;
    let runs = futures::future::join_all((0..4).map(|_| cli_seed(endpoint, &target))).await;
    for (ok, output) in &runs {
        assert!(ok, "every seed succeeds: {output}");
    }
    assert_eq!(tree(&target), source);
    let downloaded: usize =
        runs.iter().filter(|(_, output)| output.contains(&format!("{} changed", source.len()))).count();
    assert_eq!(downloaded, 1, "one seed downloads, the others wait and find nothing to do: {runs:#?}");
}
