//! The AWS SDK configuration shared by the resources and the CLI.

/// The SDK's standard configuration: region, credentials, and `AWS_ENDPOINT_URL` when set.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// True when `AWS_ENDPOINT_URL` points the SDK at a stand-in such as moto, which needs
/// path-style S3 addressing.
pub fn custom_endpoint() -> bool {
    std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|v| !v.is_empty())
}
