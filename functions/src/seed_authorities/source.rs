//! Where authority files come from: S3, behind a trait so the mirror is tested without the network.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::io::AsyncWriteExt;

use crate::aws::describe;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceObject {
    pub key: String,
    pub etag: String,
    pub size: u64,
}

pub trait ObjectSource: Send + Sync {
    fn list(&self, bucket: &str, prefix: &str) -> impl Future<Output = Result<Vec<SourceObject>, String>> + Send;
    /// Streams the object into a new file at `destination`; memory does not grow with its size.
    fn download(&self, bucket: &str, key: &str, destination: &Path)
        -> impl Future<Output = Result<u64, String>> + Send;
    /// The whole object in memory, for a small one.
    fn fetch(&self, bucket: &str, key: &str) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
}

pub struct S3Source {
    s3: aws_sdk_s3::Client,
}

impl S3Source {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        S3Source { s3: crate::aws::s3(config) }
    }

    async fn download_once(&self, bucket: &str, key: &str, destination: &Path) -> Result<u64, String> {
        let object = self.s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| describe(&e))?;
        let mut body = object.body.into_async_read();
        let file = tokio::fs::File::create(destination)
            .await
            .map_err(|e| format!("cannot write {}: {e}", destination.display()))?;
        // Each write of a tokio file is a trip to a blocking thread: 1 MiB at a time, not 8 KiB.
        let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let bytes = tokio::io::copy(&mut body, &mut file).await.map_err(|e| format!("download broke off: {e}"))?;
        file.flush().await.map_err(|e| format!("cannot write {}: {e}", destination.display()))?;
        Ok(bytes)
    }

    async fn fetch_once(&self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        let object = self.s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| describe(&e))?;
        let body = object.body.collect().await.map_err(|e| format!("download broke off: {e}"))?;
        Ok(body.to_vec())
    }
}

/// The SDK retries throttling and 5xx answers itself; this also retries a body that breaks off.
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(3).with_jitter()
}

impl ObjectSource for S3Source {
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<SourceObject>, String> {
        let mut pages = self.s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| format!("listing s3://{bucket}/{prefix} failed: {}", describe(&e)))?;
            for object in page.contents() {
                objects.push(SourceObject {
                    key: object.key().unwrap_or_default().to_owned(),
                    etag: object.e_tag().unwrap_or_default().trim_matches('"').to_owned(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                });
            }
        }
        Ok(objects)
    }

    async fn download(&self, bucket: &str, key: &str, destination: &Path) -> Result<u64, String> {
        (|| self.download_once(bucket, key, destination))
            .retry(backoff())
            .notify(|e, delay| retrying(key, e, delay))
            .await
    }

    async fn fetch(&self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        (|| self.fetch_once(bucket, key)).retry(backoff()).notify(|e, delay| retrying(key, e, delay)).await
    }
}

fn retrying(key: &str, error: &String, delay: Duration) {
    tracing::warn!(key, retry_in_ms = delay.as_millis() as u64, "download failed: {error}")
}
