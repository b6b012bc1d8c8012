use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use serde_json::{json, Value};

use crate::function::{FunctionOptions, LambdaFunction};
use crate::moto::Moto;

/// A custom-resource event as CloudFormation sends it, and where its answer will be stored.
#[derive(Debug, Clone)]
pub struct Event {
    pub body: Value,
    /// The key in the responses bucket that the pre-signed ResponseURL writes to.
    pub response_key: String,
}

impl Event {
    pub fn set(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.body[field] = value.into();
        self
    }

    pub fn remove(mut self, field: &str) -> Self {
        if let Value::Object(map) = &mut self.body {
            map.remove(field);
        }
        self
    }

    pub fn response_url(&self) -> &str {
        self.body["ResponseURL"].as_str().unwrap_or_default()
    }

    /// The pre-signed URL's signature: it must never reach a log.
    pub fn signature(&self) -> String {
        let url = self.response_url();
        url.split("X-Amz-Signature=")
            .nth(1)
            .map(|s| s.split('&').next().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }
}

/// What CloudFormation would have received: every version stored under the response key.
#[derive(Debug)]
pub struct StoredResponse {
    pub versions: usize,
    pub bytes: Vec<u8>,
    pub json: Value,
}

impl StoredResponse {
    pub fn status(&self) -> &str {
        self.json["Status"].as_str().unwrap_or_default()
    }

    pub fn reason(&self) -> &str {
        self.json["Reason"].as_str().unwrap_or_default()
    }

    pub fn physical_id(&self) -> &str {
        self.json["PhysicalResourceId"].as_str().unwrap_or_default()
    }
}

/// moto and the real function under the runtime emulator, with a versioned bucket that
/// receives the answers through pre-signed URLs. Fields drop in order: the function first.
pub struct TestBed {
    pub function: LambdaFunction,
    pub s3: aws_sdk_s3::Client,
    pub moto: Moto,
    pub responses_bucket: String,
    log_dir: tempfile::TempDir,
}

impl TestBed {
    pub const STACK_ID: &'static str =
        "arn:aws:cloudformation:us-east-1:123456789012:stack/qa-lookup-test/5b2d7e10-ca8a-11f0-8de9-0a1b2c3d4e5f";

    pub async fn start(options: FunctionOptions) -> TestBed {
        Self::start_with_moto_env(options, &[]).await
    }

    /// With settings for moto, see [`Moto::start_with_env`].
    pub async fn start_with_moto_env(options: FunctionOptions, moto_env: &[(&str, &str)]) -> TestBed {
        let log_dir = tempfile::Builder::new().prefix("qa-lookup-testbed-").tempdir().expect("a temporary folder");
        let moto = Moto::start_with_env(log_dir.path(), moto_env);
        let s3 = moto.s3().await;
        let responses_bucket = "cloudformation-custom-resource-responses".to_owned();
        s3.create_bucket().bucket(&responses_bucket).send().await.expect("moto creates the responses bucket");
        s3.put_bucket_versioning()
            .bucket(&responses_bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("moto turns on versioning, so a second answer would show");
        let mut options = options;
        for (key, value) in crate::process::client_env(&moto.endpoint) {
            options = options.env(key, &value);
        }
        let function = LambdaFunction::start(&options, log_dir.path()).await;
        TestBed { function, s3, moto, responses_bucket, log_dir }
    }

    pub fn log_dir(&self) -> &std::path::Path {
        self.log_dir.path()
    }

    /// A real pre-signed PUT URL on moto's S3, as CloudFormation puts in `ResponseURL`.
    pub async fn presigned_put_url(&self, key: &str) -> String {
        let presigned = self
            .s3
            .put_object()
            .bucket(&self.responses_bucket)
            .key(key)
            .presigned(PresigningConfig::expires_in(Duration::from_secs(7200)).expect("a valid expiry"))
            .await
            .expect("the SDK pre-signs a PUT");
        presigned.uri().to_owned()
    }

    async fn event(&self, request_type: &str, resource_type: &str, logical_id: &str, properties: Value) -> Event {
        let request_id = uuid::Uuid::new_v4().to_string();
        let response_key =
            format!("{}%7C{logical_id}%7C{request_id}", Self::STACK_ID.replace(':', "%3A").replace('/', "%2F"));
        let mut properties = properties;
        properties["ServiceToken"] = json!("arn:aws:lambda:us-east-1:123456789012:function:qa-lookup-custom-resources");
        properties["ServiceTimeout"] = json!("300");
        let body = json!({
            "RequestType": request_type,
            "ServiceToken": properties["ServiceToken"],
            "ResponseURL": self.presigned_put_url(&response_key).await,
            "StackId": Self::STACK_ID,
            "RequestId": request_id,
            "LogicalResourceId": logical_id,
            "ResourceType": resource_type,
            "ResourceProperties": properties,
        });
        Event { body, response_key }
    }

    pub async fn create(&self, resource_type: &str, logical_id: &str, properties: Value) -> Event {
        self.event("Create", resource_type, logical_id, properties).await
    }

    pub async fn update(
        &self,
        resource_type: &str,
        logical_id: &str,
        physical_id: &str,
        properties: Value,
        old: Value,
    ) -> Event {
        let event = self.event("Update", resource_type, logical_id, properties).await;
        event.set("PhysicalResourceId", physical_id).set("OldResourceProperties", old)
    }

    pub async fn delete(&self, resource_type: &str, logical_id: &str, physical_id: &str, properties: Value) -> Event {
        self.event("Delete", resource_type, logical_id, properties).await.set("PhysicalResourceId", physical_id)
    }

    /// Invokes the function with the event, as Lambda does for CloudFormation.
    pub async fn invoke(&self, event: &Event) -> Value {
        self.function.invoke(&event.body).await
    }

    /// The answer stored under the event's response key, with how many were stored.
    pub async fn stored_response(&self, event: &Event) -> StoredResponse {
        let versions = self
            .s3
            .list_object_versions()
            .bucket(&self.responses_bucket)
            .prefix(&event.response_key)
            .send()
            .await
            .expect("moto lists versions")
            .versions()
            .iter()
            .filter(|v| v.key() == Some(event.response_key.as_str()))
            .count();
        let object =
            self.s3.get_object().bucket(&self.responses_bucket).key(&event.response_key).send().await.unwrap_or_else(
                |error| {
                    panic!(
                        "no answer stored for {}: {error:?}\nfunction log:\n{}",
                        event.response_key,
                        self.function.logs()
                    )
                },
            );
        let bytes = object.body.collect().await.expect("the stored answer reads").into_bytes().to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|error| {
            panic!("the stored answer is not JSON ({error}): {}", String::from_utf8_lossy(&bytes))
        });
        StoredResponse { versions, bytes, json }
    }
}
