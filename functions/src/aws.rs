//! The AWS SDK configuration shared by the resources and the CLI.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// The SDK's standard configuration: region, credentials, and `AWS_ENDPOINT_URL` when set. Every
/// AWS call goes through the one HTTPS client, rustls with ring (see the root Cargo.toml).
pub async fn sdk_config() -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let https = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https).load().await
}

/// True when `AWS_ENDPOINT_URL` points the SDK at a stand-in such as moto, which needs
/// path-style S3 addressing.
pub fn custom_endpoint() -> bool {
    std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|v| !v.is_empty())
}

/// An S3 client; path-style addressing where a stand-in endpoint needs it.
pub fn s3(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(custom_endpoint()).build())
}

/// An AWS error as a person reads it: its code and message, else the HTTP status, else the
/// cause (network, credentials). Never the request.
pub fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(error: &SdkError<E, HttpResponse>) -> String {
    if let (Some(code), message) = (error.code(), error.message()) {
        return match message {
            Some(message) => format!("{code}: {message}"),
            None => code.to_owned(),
        };
    }
    if let Some(response) = error.raw_response() {
        return format!("HTTP {} with no error code", response.status().as_u16());
    }
    let mut chain = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    let mut text = format!("no answer from AWS: {}", chain.join(": "));
    if let Some((cut, _)) = text.char_indices().nth(300) {
        text.truncate(cut);
        text.push('…');
    }
    text
}
