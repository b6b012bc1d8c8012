//! The AWS SDK configuration shared by the resources and the CLI.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// The SDK's standard configuration: region, credentials, and `AWS_ENDPOINT_URL` when set. Every
/// AWS call goes through the one HTTPS client, rustls with ring (see the root Cargo.toml), trusting
/// the system's roots: the CLI runs where a proxy may re-sign TLS with its own authority.
pub async fn sdk_config() -> aws_config::SdkConfig {
    load(aws_smithy_http_client::tls::TrustStore::default()).await
}

/// The Lambda's configuration: as [`sdk_config`], trusting only Amazon Trust Services' roots.
/// The function talks to AWS endpoints alone, whose certificates chain to them (AWS Security
/// Blog, "How to prepare for AWS's move to its own certificate authority"; re:Post, "S3 and
/// CloudFront certificate migration": S3 since March 2021, EC2 and others before). The system's
/// bundle would be parsed again for every client at set-up (aws-smithy-http-client loads its
/// roots in `validate_base_client_config`): most of the function's cold start (README, "How fast").
/// In the China Regions, which that migration does not cover, the system's roots stay.
pub async fn lambda_sdk_config() -> aws_config::SdkConfig {
    load(lambda_trust_store(std::env::var("AWS_REGION").unwrap_or_default().as_str())).await
}

const AMAZON_TRUST_SERVICES_ROOTS: &str = include_str!("amazon-trust-services-roots.pem");

fn lambda_trust_store(region: &str) -> aws_smithy_http_client::tls::TrustStore {
    use aws_smithy_http_client::tls::TrustStore;
    if region.starts_with("cn-") {
        return TrustStore::default();
    }
    TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS.as_bytes())
}

async fn load(trust_store: aws_smithy_http_client::tls::TrustStore) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider, TlsContext};
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(TlsContext::builder().with_trust_store(trust_store).build().expect("a rustls TLS context"))
        .build_https();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lambda_trusts_amazon_trust_services_five_roots_and_the_system_s_in_the_china_regions() {
        use rustls_pki_types::{pem::PemObject, CertificateDer};
        let roots = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_ROOTS.as_bytes());
        assert_eq!(roots.collect::<Result<Vec<_>, _>>().unwrap().len(), 5);
        assert!(format!("{:?}", lambda_trust_store("eu-west-1")).contains("enable_native_roots: false"));
        assert!(format!("{:?}", lambda_trust_store("cn-north-1")).contains("enable_native_roots: true"));
    }

    /// The client parses its roots when it is built (`validate_base_client_config`), and
    /// panics on one it cannot parse.
    #[tokio::test]
    async fn an_sdk_client_is_built_on_amazon_trust_services_roots() {
        let config = load(lambda_trust_store("us-east-1")).await;
        let _ = aws_sdk_s3::Client::new(&config);
    }
}
