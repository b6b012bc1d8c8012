//! `qa-deploy authorities publish`: a local authority tree to its S3 prefix, judged first by the
//! seed's own rules (safe names, a layout qa_server loads, every file parses, the limits), so
//! that what the seed would refuse is never uploaded. Only what changed goes up, judged by
//! content, not by size and time as `aws s3 sync` judges (aws-cli #1074, #3415: a same-size
//! change is skipped): the ETag where it is the MD5 of the data, else the SHA-256 checksum S3
//! keeps for each upload (the bucket's SSE-KMS ETags are no MD5s: S3 API reference,
//! `Object.ETag`; `HeadObject` with checksum mode returns the checksum); objects no longer in the
//! tree are deleted after the uploads, so a seed in between sees a superset, never a gap.
//! With `--stack`, the stack's seeding function then seeds its access point and every running app
//! task reloads, each verified (see [`crate::authorities_reload`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use md5::Digest;

use crate::aws::describe;
use crate::seed_authorities::source::SourceObject;
use crate::seed_authorities::{self, keys, layout, validate};

/// Uploads at once.
const CONCURRENCY: usize = 16;

/// A file of the local tree, with its key and content digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub path: PathBuf,
    pub key: String,
    pub md5: String,
    /// The SHA-256 of the content, base64 as S3 keeps it (`x-amz-checksum-sha256`).
    pub sha256: String,
    pub size: u64,
}

/// What a publish does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub added: Vec<LocalFile>,
    pub changed: Vec<LocalFile>,
    pub removed: Vec<String>,
    pub unchanged: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }

    pub fn render(&self, destination: &str) -> String {
        let mut text = format!(
            "{destination}: {} added, {} changed, {} removed, {} unchanged\n",
            self.added.len(),
            self.changed.len(),
            self.removed.len(),
            self.unchanged
        );
        for (mark, keys) in [
            ('+', self.added.iter().map(|f| f.key.as_str()).collect::<Vec<_>>()),
            ('~', self.changed.iter().map(|f| f.key.as_str()).collect()),
            ('-', self.removed.iter().map(String::as_str).collect()),
        ] {
            for key in keys {
                text.push_str(&format!("  {mark} {key}\n"));
            }
        }
        text
    }
}

/// The S3 calls a publish makes, behind a trait so that its logic is tested without AWS.
pub trait Bucket: Send + Sync {
    fn list(&self, bucket: &str, prefix: &str) -> impl Future<Output = Result<Vec<SourceObject>, String>> + Send;
    /// Uploads with the file's SHA-256, which S3 checks and keeps.
    fn put(&self, bucket: &str, file: &LocalFile) -> impl Future<Output = Result<(), String>> + Send;
    /// The SHA-256 S3 keeps for the object (base64), or `None` when it keeps none.
    fn sha256(&self, bucket: &str, key: &str) -> impl Future<Output = Result<Option<String>, String>> + Send;
    fn delete(&self, bucket: &str, keys: &[String]) -> impl Future<Output = Result<(), String>> + Send;
}

/// Reads the tree under `from` and judges it as the seed would judge it in S3: every problem
/// found, nothing uploaded when there is one. Hidden entries (`.git`, `.DS_Store`) are left
/// out; a link is followed only when it stays inside `from`.
pub fn read_tree(from: &Path, bucket: &str, prefix: &str) -> Result<Vec<LocalFile>, String> {
    let root =
        from.canonicalize().map_err(|e| format!("{}: {e} — give the folder of the authority files", from.display()))?;
    if !root.is_dir() {
        return Err(format!("{} is not a folder — give the folder of the authority files", from.display()));
    }
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|e| format!("cannot read {}: {e}", folder.display()))?;
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let Ok(resolved) = path.canonicalize() else {
                problems.push(format!("{}: a link to nothing", path.display()));
                continue;
            };
            if !resolved.starts_with(&root) {
                problems.push(format!(
                    "{}: a link out of {} (to {}) — copy the file in instead",
                    path.display(),
                    root.display(),
                    resolved.display()
                ));
                continue;
            }
            if resolved.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap_or(&path);
            let Some(relative) = relative.to_str() else {
                problems.push(format!("{}: the name is not UTF-8", path.display()));
                continue;
            };
            let key = format!("{prefix}{relative}");
            if let Err(why) = keys::relative_path(&key, prefix) {
                problems.push(format!("{relative}: {why}"));
                continue;
            }
            if let Some(problem) = validate::problem(&resolved) {
                problems.push(format!("{relative}: {problem}"));
                continue;
            }
            match std::fs::read(&resolved) {
                Ok(bytes) => files.push(LocalFile {
                    path: resolved,
                    key,
                    md5: md5_hex(&bytes),
                    sha256: sha256_base64(&bytes),
                    size: bytes.len() as u64,
                }),
                Err(error) => problems.push(format!("{relative}: cannot be read: {error}")),
            }
        }
    }
    if !problems.is_empty() {
        problems.sort();
        return Err(format!(
            "{} problem(s) in {} — nothing was uploaded; fix them and publish again: {}",
            problems.len(),
            from.display(),
            problems.join("; ")
        ));
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    let keys: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
    if let Some(reason) = layout::refusal(bucket, prefix, &keys) {
        return Err(format!(
            "{} — nothing was uploaded",
            reason.replace(&format!("s3://{bucket}/{prefix}"), &from.display().to_string())
        ));
    }
    if files.is_empty() {
        return Err(format!("no authority files in {} — nothing was uploaded", from.display()));
    }
    let total: u64 = files.iter().map(|f| f.size).sum();
    if files.len() as u64 > seed_authorities::DEFAULT_MAX_OBJECTS || total > seed_authorities::DEFAULT_MAX_TOTAL_BYTES {
        return Err(format!(
            "{} files, {total} bytes: more than the seed takes by default ({} files, {} bytes) — nothing was uploaded",
            files.len(),
            seed_authorities::DEFAULT_MAX_OBJECTS,
            seed_authorities::DEFAULT_MAX_TOTAL_BYTES
        ));
    }
    Ok(files)
}

/// The MD5 of `bytes` in hex: an S3 ETag of a single-part upload.
pub fn md5_hex(bytes: &[u8]) -> String {
    md5::Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `bytes`, base64, as S3's `x-amz-checksum-sha256`.
pub fn sha256_base64(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

/// The files `plan` found changed by their ETag (an ETag that is no MD5 says nothing of the
/// content) whose SHA-256 in S3 is the local one: unchanged after all.
pub async fn settle_by_checksum(mut plan: Plan, target: &impl Bucket, bucket: &str) -> Result<Plan, String> {
    let changed = std::mem::take(&mut plan.changed);
    let judged: Vec<Result<(LocalFile, bool), String>> = futures::stream::iter(changed)
        .map(|file| async move {
            let kept = target.sha256(bucket, &file.key).await.map_err(|e| format!("{}: {e}", file.key))?;
            let same = kept.as_deref() == Some(file.sha256.as_str());
            Ok((file, same))
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    for judged in judged {
        match judged? {
            (_, true) => plan.unchanged += 1,
            (file, false) => plan.changed.push(file),
        }
    }
    Ok(plan)
}

/// Added, changed (by content) and removed, against what the prefix holds.
pub fn plan(local: Vec<LocalFile>, remote: &[SourceObject]) -> Plan {
    let remote: BTreeMap<&str, &SourceObject> =
        remote.iter().filter(|o| !(o.key.ends_with('/') && o.size == 0)).map(|o| (o.key.as_str(), o)).collect();
    let local_keys: std::collections::BTreeSet<String> = local.iter().map(|f| f.key.clone()).collect();
    let mut plan = Plan::default();
    for file in local {
        match remote.get(file.key.as_str()) {
            None => plan.added.push(file),
            // A multipart ETag ("…-N") is no MD5: such an object is uploaded again.
            Some(object) if object.etag.trim_matches('"') != file.md5 => plan.changed.push(file),
            Some(_) => plan.unchanged += 1,
        }
    }
    plan.removed = remote.keys().filter(|key| !local_keys.contains(**key)).map(|key| key.to_string()).collect();
    plan
}

/// Uploads the added and changed files, then deletes the removed keys.
pub async fn apply(target: &impl Bucket, bucket: &str, plan: &Plan) -> Result<(), String> {
    let uploads: Vec<&LocalFile> = plan.added.iter().chain(&plan.changed).collect();
    let failures: Vec<String> = futures::stream::iter(uploads)
        .map(|file| async move { target.put(bucket, file).await.err().map(|e| format!("{}: {e}", file.key)) })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    if !failures.is_empty() {
        return Err(format!(
            "{} upload(s) failed, nothing was deleted — publish again once S3 answers: {}",
            failures.len(),
            failures.join("; ")
        ));
    }
    if !plan.removed.is_empty() {
        target.delete(bucket, &plan.removed).await?;
    }
    Ok(())
}

/// S3 through the SDK.
pub struct S3Bucket {
    s3: aws_sdk_s3::Client,
    source: seed_authorities::source::S3Source,
}

impl S3Bucket {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        S3Bucket { s3: crate::aws::s3(config), source: seed_authorities::source::S3Source::new(config) }
    }
}

impl Bucket for S3Bucket {
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<SourceObject>, String> {
        use seed_authorities::source::ObjectSource;
        self.source.list(bucket, prefix).await
    }

    async fn put(&self, bucket: &str, file: &LocalFile) -> Result<(), String> {
        let body = aws_sdk_s3::primitives::ByteStream::from_path(&file.path).await.map_err(|e| e.to_string())?;
        self.s3
            .put_object()
            .bucket(bucket)
            .key(&file.key)
            .checksum_sha256(&file.sha256)
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        Ok(())
    }

    async fn sha256(&self, bucket: &str, key: &str) -> Result<Option<String>, String> {
        let head = self
            .s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        Ok(head.checksum_sha256().map(str::to_owned))
    }

    async fn delete(&self, bucket: &str, keys: &[String]) -> Result<(), String> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        // DeleteObjects takes at most 1,000 keys (S3 API reference).
        for chunk in keys.chunks(1000) {
            let objects: Vec<ObjectIdentifier> =
                chunk.iter().filter_map(|key| ObjectIdentifier::builder().key(key).build().ok()).collect();
            let delete = Delete::builder().set_objects(Some(objects)).quiet(true).build().map_err(|e| e.to_string())?;
            let answer = self
                .s3
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| format!("deleting the removed files failed: {}", describe(&e)))?;
            if let Some(error) = answer.errors().first() {
                return Err(format!(
                    "deleting {} failed: {} — publish again",
                    error.key().unwrap_or_default(),
                    error.message().unwrap_or_default()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn remote(key: &str, text: &str) -> SourceObject {
        SourceObject { key: key.into(), etag: format!("\"{}\"", md5_hex(text.as_bytes())), size: text.len() as u64 }
    }

    #[test]
    fn a_same_size_change_an_addition_and_a_removal_are_planned_and_the_rest_left_alone() {
        let folder = tempfile::tempdir().unwrap();
        write(folder.path(), "agrovoc.yml", "term: b\n");
        write(folder.path(), "linked_data/loc.json", "{}");
        write(folder.path(), "new.yml", "x: 1\n");
        write(folder.path(), ".git/config", "ignored");
        let local = read_tree(folder.path(), "b", "authorities/").unwrap();
        assert_eq!(local.len(), 3, "hidden entries are left out: {local:?}");
        let plan = plan(
            local,
            &[
                remote("authorities/agrovoc.yml", "term: a\n"),
                remote("authorities/linked_data/loc.json", "{}"),
                remote("authorities/gone.yml", ""),
            ],
        );
        assert_eq!(plan.added.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(), ["authorities/new.yml"]);
        assert_eq!(plan.changed.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(), ["authorities/agrovoc.yml"]);
        assert_eq!(plan.removed, ["authorities/gone.yml"]);
        assert_eq!(plan.unchanged, 1);
    }

    /// S3 as AWS answers for the bucket's SSE-KMS objects: an ETag that is no MD5 of the data
    /// (S3 API reference, `Object.ETag`), and the SHA-256 each upload sent, kept and returned
    /// by HeadObject with checksum mode (moto's ETags are MD5s, so only this shows the case).
    struct KmsBucket {
        kept: BTreeMap<String, Option<String>>,
    }

    impl Bucket for KmsBucket {
        async fn list(&self, _: &str, _: &str) -> Result<Vec<SourceObject>, String> {
            Ok(vec![])
        }
        async fn put(&self, _: &str, _: &LocalFile) -> Result<(), String> {
            Ok(())
        }
        async fn sha256(&self, _: &str, key: &str) -> Result<Option<String>, String> {
            self.kept.get(key).cloned().ok_or_else(|| format!("no object {key}"))
        }
        async fn delete(&self, _: &str, _: &[String]) -> Result<(), String> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn under_sse_kms_a_file_is_judged_by_the_sha256_s3_keeps_not_by_its_etag() {
        let folder = tempfile::tempdir().unwrap();
        write(folder.path(), "same.yml", "term: a\n");
        write(folder.path(), "edited.yml", "term: b\n");
        write(folder.path(), "old-upload.yml", "term: c\n");
        let local = read_tree(folder.path(), "b", "authorities/").unwrap();
        let kms = |key: &str, text: &str| SourceObject {
            key: key.into(),
            etag: "\"7a3f0c2e9b1d4e6f8a0b2c4d6e8f0a1b\"".into(),
            size: text.len() as u64,
        };
        let remote = [
            kms("authorities/same.yml", "term: a\n"),
            kms("authorities/edited.yml", "term: x\n"),
            kms("authorities/old-upload.yml", "term: c\n"),
        ];
        let by_etag = plan(local, &remote);
        assert_eq!(by_etag.changed.len(), 3, "no SSE-KMS ETag is an MD5");
        let bucket = KmsBucket {
            kept: BTreeMap::from([
                ("authorities/same.yml".to_owned(), Some(sha256_base64(b"term: a\n"))),
                ("authorities/edited.yml".to_owned(), Some(sha256_base64(b"term: x\n"))),
                // Uploaded before publish sent checksums: S3 keeps none, so it goes up again.
                ("authorities/old-upload.yml".to_owned(), None),
            ]),
        };
        let settled = settle_by_checksum(by_etag, &bucket, "b").await.unwrap();
        let changed: Vec<&str> = settled.changed.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(changed, ["authorities/edited.yml", "authorities/old-upload.yml"]);
        assert_eq!(settled.unchanged, 1);
        assert_eq!(
            sha256_base64(b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            "base64 of SHA-256, as S3 writes it"
        );
    }

    #[test]
    fn a_broken_file_or_a_link_out_of_the_tree_refuses_the_whole_publish_naming_each() {
        let folder = tempfile::tempdir().unwrap();
        write(folder.path(), "good.yml", "a: 1\n");
        write(folder.path(), "broken.yml", "a: [\n");
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret.yml", "a: 1\n");
        std::os::unix::fs::symlink(outside.path().join("secret.yml"), folder.path().join("link.yml")).unwrap();
        let error = read_tree(folder.path(), "b", "authorities/").unwrap_err();
        assert!(error.contains("broken.yml: invalid YAML"), "{error}");
        assert!(error.contains("link.yml") && error.contains("a link out of"), "{error}");
        assert!(error.contains("nothing was uploaded"), "{error}");
    }

    #[test]
    fn a_tree_qa_server_loads_nothing_from_is_refused_as_the_seed_refuses_it() {
        let folder = tempfile::tempdir().unwrap();
        write(folder.path(), "config/authorities/agrovoc.yml", "a: 1\n");
        let error = read_tree(folder.path(), "b", "authorities/").unwrap_err();
        assert!(error.contains("no authority qa_server would load"), "{error}");
    }
}

/// What `publish --stack` needs of a service stack: where its seed reads, the seeding function
/// that writes the access point, and the app service whose tasks reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackTarget {
    pub stack_id: String,
    pub bucket: String,
    pub prefix: String,
    pub env_file_key: String,
    pub allow_empty: String,
    pub seed_function: String,
    pub cluster: String,
    pub service: String,
}

/// Reads the stack's parameters (with their defaults), the prerequisites stack's bucket export
/// and the physical ids of `SeedFunction` and `Cluster` (cfn/aws-deploy.yaml's names).
pub async fn stack_target(cloudformation: &aws_sdk_cloudformation::Client, stack: &str) -> Result<StackTarget, String> {
    let described = cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| format!("stack {stack}: cloudformation:DescribeStacks: {}", describe(&e)))?;
    let found = described.stacks().first().ok_or_else(|| format!("stack {stack} does not exist"))?;
    let parameter = |name: &str| {
        found
            .parameters()
            .iter()
            .find(|p| p.parameter_key() == Some(name))
            .and_then(|p| p.parameter_value())
            .map(str::to_owned)
            .ok_or_else(|| {
                format!("stack {stack} has no parameter {name}: expected a service stack of cfn/aws-deploy.yaml")
            })
    };
    let prerequisites = parameter("PrerequisitesStackName")?;
    let export = format!("{prerequisites}-BucketName");
    let mut bucket = None;
    let mut pages = cloudformation.list_exports().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("cloudformation:ListExports: {}", describe(&e)))?;
        if let Some(value) = page.exports().iter().find(|e| e.name() == Some(export.as_str())).and_then(|e| e.value()) {
            bucket = Some(value.to_owned());
        }
    }
    let bucket =
        bucket.ok_or_else(|| format!("no export {export}: is the prerequisites stack {prerequisites} there?"))?;
    let physical_id = |logical: &'static str| async move {
        cloudformation
            .describe_stack_resource()
            .stack_name(stack)
            .logical_resource_id(logical)
            .send()
            .await
            .map_err(|e| format!("stack {stack}: resource {logical}: {}", describe(&e)))?
            .stack_resource_detail()
            .and_then(|r| r.physical_resource_id())
            .map(str::to_owned)
            .ok_or_else(|| format!("stack {stack} has no {logical} yet"))
    };
    Ok(StackTarget {
        stack_id: found.stack_id().unwrap_or(stack).to_owned(),
        bucket,
        prefix: parameter("AuthoritiesPrefix")?,
        env_file_key: parameter("EnvFileKey")?,
        allow_empty: parameter("AllowEmptyAuthorities").unwrap_or_else(|_| "false".to_owned()),
        seed_function: physical_id("SeedFunction").await?,
        cluster: physical_id("Cluster").await?,
        // cfn/aws-deploy.yaml names it so that the seed can name it without a dependency.
        service: format!("{stack}-app"),
    })
}

/// The stack's own seed as an Update request handed to its seeding function, which runs it (the
/// same atomic seed), reloads `targets` and returns the answer instead of sending it to
/// CloudFormation (see `cfn_custom_resource::runner::delegated_event`).
pub fn seed_request(stack: &StackTarget, targets: &[crate::authorities_reload::Target]) -> serde_json::Value {
    let properties = serde_json::json!({
        "ServiceToken": "qa-deploy",
        "Bucket": stack.bucket,
        "Prefix": stack.prefix,
        "AllowEmpty": stack.allow_empty,
        "EnvFileKey": stack.env_file_key,
        "ReloadTargets": targets,
    });
    let request = serde_json::json!({
        "RequestType": "Update",
        "ServiceToken": "qa-deploy",
        "ResponseURL": "",
        "StackId": stack.stack_id,
        "RequestId": uuid::Uuid::new_v4().to_string(),
        "LogicalResourceId": "SeedAuthorities",
        "PhysicalResourceId": "qa-deploy-authorities-publish",
        "ResourceType": "Custom::SeedAuthorities",
        "ResourceProperties": properties,
        "OldResourceProperties": properties,
    });
    cfn_custom_resource::runner::delegated_event(&request, "qa-deploy authorities publish")
}
