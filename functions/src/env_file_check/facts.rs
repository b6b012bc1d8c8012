//! What the check asks AWS, behind a trait so the decisions are tested without the network.

use std::future::Future;

use aws_sdk_s3::error::ProvideErrorMetadata;

use crate::aws::describe;

/// The four Block Public Access settings, by their API names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub const ALL_ON: PublicAccessBlock = PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };

    /// The names of the settings that are off.
    pub fn off(&self) -> Vec<&'static str> {
        [
            ("BlockPublicAcls", self.block_public_acls),
            ("IgnorePublicAcls", self.ignore_public_acls),
            ("BlockPublicPolicy", self.block_public_policy),
            ("RestrictPublicBuckets", self.restrict_public_buckets),
        ]
        .into_iter()
        .filter(|(_, on)| !on)
        .map(|(name, _)| name)
        .collect()
    }
}

/// IAM's answer for one action on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Simulation {
    Allowed,
    /// `implicitDeny` or `explicitDeny`.
    Denied(String),
}

/// An AWS error as a person reads it: its code and message, never the request.
pub type AwsError = String;

pub trait EnvFileFacts: Send + Sync {
    /// The object's bytes; `None` when there is no such key.
    fn object(&self, bucket: &str, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, AwsError>> + Send;
    /// `None` when the bucket has no Block Public Access configuration.
    fn bucket_public_access_block(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<Option<PublicAccessBlock>, AwsError>> + Send;
    fn account_public_access_block(
        &self,
        account_id: &str,
    ) -> impl Future<Output = Result<Option<PublicAccessBlock>, AwsError>> + Send;
    /// `None` when the bucket has no policy.
    fn bucket_policy_is_public(&self, bucket: &str) -> impl Future<Output = Result<Option<bool>, AwsError>> + Send;
    fn bucket_policy(&self, bucket: &str) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;
    /// Grants to everyone or to every AWS account, as `AllUsers READ`; `key` `None` for the bucket's ACL.
    fn public_acl_grants(
        &self,
        bucket: &str,
        key: Option<&str>,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
    fn simulate(
        &self,
        role_arn: &str,
        action: &str,
        resource_arn: &str,
    ) -> impl Future<Output = Result<Simulation, AwsError>> + Send;
}

pub struct AwsFacts {
    pub s3: aws_sdk_s3::Client,
    pub s3control: aws_sdk_s3control::Client,
    pub iam: aws_sdk_iam::Client,
}

impl AwsFacts {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        AwsFacts {
            s3: crate::aws::s3(config),
            s3control: aws_sdk_s3control::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
        }
    }
}

fn is<E: ProvideErrorMetadata>(error: &E, codes: &[&str]) -> bool {
    error.code().is_some_and(|code| codes.contains(&code))
}

const PUBLIC_GROUPS: [(&str, &str); 2] = [
    ("http://acs.amazonaws.com/groups/global/AllUsers", "AllUsers"),
    ("http://acs.amazonaws.com/groups/global/AuthenticatedUsers", "AuthenticatedUsers"),
];

fn public_grants(grants: &[aws_sdk_s3::types::Grant]) -> Vec<String> {
    grants
        .iter()
        .filter_map(|grant| {
            let uri = grant.grantee()?.uri()?;
            let group = PUBLIC_GROUPS.iter().find(|(group_uri, _)| *group_uri == uri)?.1;
            let permission = grant.permission().map(|p| p.as_str()).unwrap_or("some access");
            Some(format!("{group} {permission}"))
        })
        .collect()
}

fn block_from_s3(c: &aws_sdk_s3::types::PublicAccessBlockConfiguration) -> PublicAccessBlock {
    PublicAccessBlock {
        block_public_acls: c.block_public_acls().unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
        block_public_policy: c.block_public_policy().unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
    }
}

const NO_CONFIGURATION: &[&str] = &["NoSuchPublicAccessBlockConfiguration"];
const NO_POLICY: &[&str] = &["NoSuchBucketPolicy"];

impl EnvFileFacts for AwsFacts {
    async fn object(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, AwsError> {
        get_object(&self.s3, bucket, key).await
    }

    async fn bucket_public_access_block(&self, bucket: &str) -> Result<Option<PublicAccessBlock>, AwsError> {
        match self.s3.get_public_access_block().bucket(bucket).send().await {
            Ok(answer) => Ok(Some(answer.public_access_block_configuration().map(block_from_s3).unwrap_or_default())),
            Err(error) if is(&error, NO_CONFIGURATION) => Ok(None),
            Err(error) => Err(describe(&error)),
        }
    }

    async fn account_public_access_block(&self, account_id: &str) -> Result<Option<PublicAccessBlock>, AwsError> {
        if crate::aws::custom_endpoint() {
            // S3 Control addresses `<account>.<endpoint host>`, which a stand-in endpoint does not serve.
            return Err("S3 Control cannot be reached through a custom AWS_ENDPOINT_URL".to_owned());
        }
        match self.s3control.get_public_access_block().account_id(account_id).send().await {
            Ok(answer) => Ok(Some(
                answer
                    .public_access_block_configuration()
                    .map(|c| PublicAccessBlock {
                        block_public_acls: c.block_public_acls().unwrap_or(false),
                        ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
                        block_public_policy: c.block_public_policy().unwrap_or(false),
                        restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
                    })
                    .unwrap_or_default(),
            )),
            Err(error) if is(&error, NO_CONFIGURATION) => Ok(None),
            Err(error) => Err(describe(&error)),
        }
    }

    async fn bucket_policy_is_public(&self, bucket: &str) -> Result<Option<bool>, AwsError> {
        match self.s3.get_bucket_policy_status().bucket(bucket).send().await {
            Ok(answer) => Ok(Some(answer.policy_status().and_then(|s| s.is_public()).unwrap_or(false))),
            Err(error) if is(&error, NO_POLICY) => Ok(None),
            Err(error) => Err(describe(&error)),
        }
    }

    async fn bucket_policy(&self, bucket: &str) -> Result<Option<String>, AwsError> {
        match self.s3.get_bucket_policy().bucket(bucket).send().await {
            Ok(answer) => Ok(answer.policy().map(str::to_owned)),
            Err(error) if is(&error, NO_POLICY) => Ok(None),
            Err(error) => Err(describe(&error)),
        }
    }

    async fn public_acl_grants(&self, bucket: &str, key: Option<&str>) -> Result<Vec<String>, AwsError> {
        match key {
            None => match self.s3.get_bucket_acl().bucket(bucket).send().await {
                Ok(acl) => Ok(public_grants(acl.grants())),
                Err(error) => Err(describe(&error)),
            },
            Some(key) => match self.s3.get_object_acl().bucket(bucket).key(key).send().await {
                Ok(acl) => Ok(public_grants(acl.grants())),
                Err(error) if is(&error, &["NoSuchKey"]) => Ok(Vec::new()),
                Err(error) => Err(describe(&error)),
            },
        }
    }

    async fn simulate(&self, role_arn: &str, action: &str, resource_arn: &str) -> Result<Simulation, AwsError> {
        simulate(&self.iam, role_arn, action, resource_arn).await
    }
}

/// The object's bytes; `None` for a missing key: 404 `NoSuchKey` (or a 404 without a body,
/// so not `NoSuchBucket`). S3 answers that only to a caller with `s3:ListBucket` on the bucket;
/// without it a missing key answers 403 `AccessDenied` like an unreadable object (S3 GetObject
/// API reference, "Permissions"; aws-cli #2041), which stays an error for the caller to explain.
pub async fn get_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, AwsError> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(object) => {
            let bytes = object.body.collect().await.map_err(|e| format!("reading the object failed: {e}"))?;
            Ok(Some(bytes.into_bytes().to_vec()))
        }
        // A 404 without a body (as HeadObject's) reads as `NotFound`.
        Err(error) if is(&error, &["NoSuchKey", "NotFound"]) => Ok(None),
        Err(error) if error.code().is_none() && error.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
            Ok(None)
        }
        Err(error) => Err(describe(&error)),
    }
}

/// True for S3's answer to an object it will not show: 403, with or without `AccessDenied`.
pub fn is_access_denied(error: &str) -> bool {
    error.starts_with("AccessDenied") || error.starts_with("HTTP 403")
}

/// Asks IAM's policy simulator whether the role's identity policies allow `action` on the resource.
pub async fn simulate(
    iam: &aws_sdk_iam::Client,
    role_arn: &str,
    action: &str,
    resource_arn: &str,
) -> Result<Simulation, AwsError> {
    let answer = iam
        .simulate_principal_policy()
        .policy_source_arn(role_arn)
        .action_names(action)
        .resource_arns(resource_arn)
        .send()
        .await
        .map_err(|error| describe(&error))?;
    let decision = answer
        .evaluation_results()
        .first()
        .map(|result| result.eval_decision().as_str().to_owned())
        .ok_or_else(|| "IAM's simulator returned no evaluation".to_owned())?;
    Ok(if decision == "allowed" { Simulation::Allowed } else { Simulation::Denied(decision) })
}
