//! `qa-deploy`'s preflight: before a subcommand does any work, what every AWS call needs — a
//! region, credentials, and credentials AWS accepts — each said once, in one line with the fix,
//! instead of as the same failure of every call. Behind two traits, so it is tested without the
//! network: [`AwsSetup`] (the SDK configuration) and [`IdentityProbe`] (one signed call).
//!
//! There is no STS client here to ask `GetCallerIdentity`; the probe is instead one cheap call to
//! the service the subcommand works with (S3 `ListBuckets`, ECS `ListClusters`), and only AWS's
//! answers about the identity itself stop the run ([`identity_error`]). Any other answer, a denied
//! permission or no answer at all, is left to the subcommand, which reports it where it matters.

use std::future::Future;
use std::time::Duration;

use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::error::ProvideErrorMetadata;

/// The longest a reason quoted from the SDK may be; the line stays one line.
const REASON_MAX_CHARS: usize = 300;

/// The probe's one attempt: the subcommand's own calls, with their retries, come after it.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the preflight reads from the SDK configuration.
pub trait AwsSetup: Send + Sync {
    /// `None` when no source (variables, profile, instance metadata) set one.
    fn region(&self) -> Option<String>;
    /// Resolves the credentials the SDK would sign with; their access key id.
    fn access_key_id(&self) -> impl Future<Output = Result<String, CredentialsProblem>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsProblem {
    /// No source had any: no variables, no profile with credentials, no container or instance role.
    NotFound,
    /// A source had some but could not load them (an expired SSO session, a broken profile): why,
    /// in one line.
    NotLoaded(String),
}

impl AwsSetup for aws_config::SdkConfig {
    fn region(&self) -> Option<String> {
        aws_config::SdkConfig::region(self).map(|region| region.to_string()).filter(|region| !region.is_empty())
    }

    async fn access_key_id(&self) -> Result<String, CredentialsProblem> {
        let Some(provider) = self.credentials_provider() else {
            return Err(CredentialsProblem::NotFound);
        };
        match provider.provide_credentials().await {
            Ok(credentials) => Ok(credentials.access_key_id().to_owned()),
            Err(error) => Err(credentials_problem(&error)),
        }
    }
}

/// aws-credential-types' `CredentialsNotLoaded` is the one error meaning "none anywhere"; its type
/// is not reachable from here (no dependency on that crate), its fixed text is.
fn credentials_problem(error: &(dyn std::error::Error + 'static)) -> CredentialsProblem {
    if error.to_string() == "the credential provider was not enabled" {
        CredentialsProblem::NotFound
    } else {
        CredentialsProblem::NotLoaded(one_line_chain(error))
    }
}

/// AWS's answer to a call, when it was an error with a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub message: Option<String>,
}

impl Refusal {
    /// The refusal in an SDK result; `None` for success and for errors without a code (no answer).
    pub fn of<T, E: ProvideErrorMetadata>(result: &Result<T, E>) -> Option<Refusal> {
        let error = result.as_ref().err()?;
        Some(Refusal { code: error.code()?.to_owned(), message: error.message().map(str::to_owned) })
    }
}

/// One cheap call signed with the credentials, whose answer says whether AWS accepts them.
pub trait IdentityProbe: Send + Sync {
    /// AWS's error answer, if it gave one.
    fn ask(&self) -> impl Future<Output = Option<Refusal>> + Send;
}

/// S3 `ListBuckets`, at most one bucket: for the subcommands that work with S3.
pub struct S3Probe {
    s3: aws_sdk_s3::Client,
}

impl S3Probe {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(crate::aws::custom_endpoint())
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder().operation_timeout(PROBE_TIMEOUT).build(),
            )
            .build();
        S3Probe { s3: aws_sdk_s3::Client::from_conf(s3) }
    }

    pub fn with_client(s3: aws_sdk_s3::Client) -> Self {
        S3Probe { s3 }
    }
}

impl IdentityProbe for S3Probe {
    async fn ask(&self) -> Option<Refusal> {
        Refusal::of(&self.s3.list_buckets().max_buckets(1).send().await)
    }
}

/// ECS `ListClusters`, at most one cluster: for the subcommands that work with ECS.
pub struct EcsProbe {
    ecs: aws_sdk_ecs::Client,
}

impl EcsProbe {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let ecs = aws_sdk_ecs::config::Builder::from(config)
            .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_ecs::config::timeout::TimeoutConfig::builder().operation_timeout(PROBE_TIMEOUT).build(),
            )
            .build();
        EcsProbe { ecs: aws_sdk_ecs::Client::from_conf(ecs) }
    }

    pub fn with_client(ecs: aws_sdk_ecs::Client) -> Self {
        EcsProbe { ecs }
    }
}

impl IdentityProbe for EcsProbe {
    async fn ask(&self) -> Option<Refusal> {
        Refusal::of(&self.ecs.list_clusters().max_results(1).send().await)
    }
}

/// What is wrong with the identity itself, whatever the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityError {
    /// Temporary credentials past their expiry.
    Expired,
    /// An access key (or session token) AWS does not know.
    Invalid,
    /// A secret access key that does not belong to the access key id.
    WrongSecret,
    /// A session token that is malformed or does not go with the key.
    BadSessionToken,
}

/// The error codes with which AWS refuses the identity before looking at any permission: S3's
/// (XML), the query protocol's (IAM, STS, EC2) and the JSON protocol's (ECS, Lambda). A denied
/// permission (`AccessDenied`, `AccessDeniedException`) is not one: the identity is fine. Nor is a
/// skewed clock (`RequestTimeTooSkewed`): the SDK corrects it on its retries.
pub fn identity_error(code: &str) -> Option<IdentityError> {
    match code {
        "ExpiredToken" | "ExpiredTokenException" | "TokenRefreshRequired" => Some(IdentityError::Expired),
        "InvalidAccessKeyId" | "InvalidClientTokenId" | "UnrecognizedClientException" | "AuthFailure" => {
            Some(IdentityError::Invalid)
        }
        "SignatureDoesNotMatch" | "InvalidSignatureException" => Some(IdentityError::WrongSecret),
        "InvalidToken" => Some(IdentityError::BadSessionToken),
        _ => None,
    }
}

/// Why a subcommand cannot call AWS; [`Problem::line`] says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NoRegion,
    Credentials(CredentialsProblem),
    Identity { error: IdentityError, access_key_id: String, refusal: Refusal },
}

impl Problem {
    /// One line naming the problem and its fix, `qa-deploy <subcommand>: ...`.
    pub fn line(&self, subcommand: &str) -> String {
        const OTHER_PROFILE: &str = "or set AWS_PROFILE to a profile with valid credentials";
        let said = match self {
            Problem::NoRegion => "no AWS region is set: run aws configure, or set AWS_REGION \
                                  (or AWS_PROFILE to a profile with a region)"
                .to_owned(),
            Problem::Credentials(CredentialsProblem::NotFound) => "no AWS credentials were found: run aws configure \
                                                                   (or aws sso login), or set AWS_PROFILE to a \
                                                                   profile with credentials (or AWS_ACCESS_KEY_ID \
                                                                   and AWS_SECRET_ACCESS_KEY)"
                .to_owned(),
            Problem::Credentials(CredentialsProblem::NotLoaded(reason)) => format!(
                "the AWS credentials could not be loaded ({reason}): run aws configure (or aws sso login), \
                 or set AWS_PROFILE to a profile with credentials"
            ),
            Problem::Identity { error, access_key_id, refusal } => {
                let key = masked(access_key_id);
                let answer = match &refusal.message {
                    Some(message) => one_line(&format!("{}: {message}", refusal.code)),
                    None => one_line(&refusal.code),
                };
                match error {
                    IdentityError::Expired => format!(
                        "the AWS credentials of access key {key} have expired (AWS said {answer}): renew them \
                         (aws sso login, or new temporary credentials), {OTHER_PROFILE}"
                    ),
                    IdentityError::Invalid => format!(
                        "AWS does not accept the credentials of access key {key} (AWS said {answer}): run aws \
                         configure with a current access key, {OTHER_PROFILE}"
                    ),
                    IdentityError::WrongSecret => format!(
                        "the secret access key does not belong to access key {key} (AWS said {answer}): run aws \
                         configure with the matching secret, {OTHER_PROFILE}"
                    ),
                    IdentityError::BadSessionToken => format!(
                        "AWS does not accept the session token of access key {key} (AWS said {answer}): renew the \
                         temporary credentials, unset AWS_SESSION_TOKEN for a long-term key, {OTHER_PROFILE}"
                    ),
                }
            }
        };
        format!("qa-deploy {subcommand}: {said}")
    }
}

/// Region, then credentials, then whether AWS accepts them: the first problem found.
pub async fn preflight(setup: &impl AwsSetup, probe: &impl IdentityProbe) -> Result<(), Problem> {
    if setup.region().is_none() {
        return Err(Problem::NoRegion);
    }
    let access_key_id = setup.access_key_id().await.map_err(Problem::Credentials)?;
    if let Some(refusal) = probe.ask().await {
        if let Some(error) = identity_error(&refusal.code) {
            return Err(Problem::Identity { error, access_key_id, refusal });
        }
        // The subcommand's own calls meet this too, and say what it means for them.
        tracing::debug!(code = %refusal.code, "the identity probe was refused, not for the identity");
    }
    Ok(())
}

/// The terminal's log filter when `RUST_LOG` is not set: qa-deploy's own messages, not the SDK's
/// (instance-metadata probes, the credential chain) unless asked for with `-v` (`-vv`: debug).
pub fn log_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "off,qa_deploy=info,qa_lookup_functions=info,cfn_custom_resource=info",
        1 => "info",
        _ => "debug",
    }
}

/// The last four characters of an access key id, as `aws configure list` shows it.
fn masked(access_key_id: &str) -> String {
    let chars: Vec<char> = access_key_id.chars().collect();
    let shown: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("…{shown}")
}

/// The error and its causes, `: `-separated, each said once, on one line, cut to a readable length.
fn one_line_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let text = one_line(&cause.to_string());
        if !text.is_empty() && !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    let mut text = parts.join(": ");
    if let Some((cut, _)) = text.char_indices().nth(REASON_MAX_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Whitespace, newlines included, as single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Setup {
        region: Option<&'static str>,
        credentials: Result<&'static str, CredentialsProblem>,
    }

    impl AwsSetup for Setup {
        fn region(&self) -> Option<String> {
            self.region.map(str::to_owned)
        }

        async fn access_key_id(&self) -> Result<String, CredentialsProblem> {
            self.credentials.clone().map(str::to_owned)
        }
    }

    #[derive(Default)]
    struct Probe {
        answer: Option<Refusal>,
        asked: AtomicUsize,
    }

    impl IdentityProbe for Probe {
        async fn ask(&self) -> Option<Refusal> {
            self.asked.fetch_add(1, Ordering::Relaxed);
            self.answer.clone()
        }
    }

    fn refusal(code: &str, message: &str) -> Option<Refusal> {
        Some(Refusal { code: code.to_owned(), message: Some(message.to_owned()) })
    }

    const READY: Setup = Setup { region: Some("eu-west-1"), credentials: Ok("AKIAEXAMPLEKEY1234") };

    #[tokio::test]
    async fn no_region_is_said_first_with_the_fix_and_nothing_is_asked() {
        let probe = Probe::default();
        let setup = Setup { region: None, credentials: Err(CredentialsProblem::NotFound) };
        let problem = preflight(&setup, &probe).await.unwrap_err();
        assert_eq!(
            problem.line("check-env"),
            "qa-deploy check-env: no AWS region is set: run aws configure, or set AWS_REGION (or AWS_PROFILE to \
             a profile with a region)"
        );
        assert_eq!(probe.asked.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn no_credentials_is_one_line_with_the_fix_and_nothing_is_asked() {
        let probe = Probe::default();
        let setup = Setup { region: Some("eu-west-1"), credentials: Err(CredentialsProblem::NotFound) };
        let line = preflight(&setup, &probe).await.unwrap_err().line("seed");
        assert!(line.starts_with("qa-deploy seed: no AWS credentials were found: run aws configure"), "{line}");
        assert!(line.contains("AWS_PROFILE") && !line.contains('\n'), "{line}");
        assert_eq!(probe.asked.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn credentials_that_fail_to_load_say_why() {
        let setup = Setup {
            region: Some("eu-west-1"),
            credentials: Err(CredentialsProblem::NotLoaded("the SSO session has expired".into())),
        };
        let line = preflight(&setup, &Probe::default()).await.unwrap_err().line("wait");
        assert!(line.contains("could not be loaded (the SSO session has expired): run aws configure"), "{line}");
    }

    #[tokio::test]
    async fn an_accepted_identity_passes_even_without_the_permission_to_probe() {
        for answer in [None, refusal("AccessDenied", "not authorized"), refusal("AccessDeniedException", "no")] {
            assert_eq!(preflight(&READY, &Probe { answer, ..Probe::default() }).await, Ok(()));
        }
    }

    #[tokio::test]
    async fn a_refused_identity_is_one_line_naming_the_masked_key_and_aws_answer() {
        let probe = Probe { answer: refusal("ExpiredToken", "The provided token has expired."), ..Probe::default() };
        let line = preflight(&READY, &probe).await.unwrap_err().line("check-env");
        assert_eq!(
            line,
            "qa-deploy check-env: the AWS credentials of access key …1234 have expired (AWS said ExpiredToken: The \
             provided token has expired.): renew them (aws sso login, or new temporary credentials), or set \
             AWS_PROFILE to a profile with valid credentials"
        );
        assert!(!line.contains("AKIAEXAMPLEKEY"), "only the key's last four characters");
    }

    #[test]
    fn identity_codes_of_every_protocol_are_recognised_and_permissions_are_not() {
        for (code, error) in [
            ("ExpiredToken", IdentityError::Expired),
            ("ExpiredTokenException", IdentityError::Expired),
            ("TokenRefreshRequired", IdentityError::Expired),
            ("InvalidAccessKeyId", IdentityError::Invalid),
            ("InvalidClientTokenId", IdentityError::Invalid),
            ("UnrecognizedClientException", IdentityError::Invalid),
            ("AuthFailure", IdentityError::Invalid),
            ("SignatureDoesNotMatch", IdentityError::WrongSecret),
            ("InvalidSignatureException", IdentityError::WrongSecret),
            ("InvalidToken", IdentityError::BadSessionToken),
        ] {
            assert_eq!(identity_error(code), Some(error), "{code}");
        }
        for code in ["AccessDenied", "AccessDeniedException", "RequestTimeTooSkewed", "NoSuchBucket", "Throttling"] {
            assert_eq!(identity_error(code), None, "{code}");
        }
    }

    #[test]
    fn every_line_is_one_line() {
        let refused = Refusal {
            code: "SignatureDoesNotMatch".into(),
            message: Some("The request signature\n  we calculated does not match.".into()),
        };
        let problems = [
            Problem::NoRegion,
            Problem::Credentials(CredentialsProblem::NotFound),
            Problem::Credentials(CredentialsProblem::NotLoaded("x".into())),
            Problem::Identity { error: IdentityError::WrongSecret, access_key_id: "AK".into(), refusal: refused },
        ];
        for problem in problems {
            let line = problem.line("seed");
            assert!(!line.contains('\n') && line.starts_with("qa-deploy seed: "), "{line}");
        }
    }

    #[derive(Debug)]
    struct Chain(&'static str, Option<Box<Chain>>);

    impl std::fmt::Display for Chain {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Chain {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|c| c as _)
        }
    }

    #[test]
    fn a_credential_error_is_its_causes_on_one_line() {
        let inner = Chain("no credentials found in chain. Attempted:\n  Environment: not set\n  Profile: none", None);
        let error = Chain("an error occurred while loading credentials", Some(Box::new(inner)));
        assert_eq!(
            credentials_problem(&error),
            CredentialsProblem::NotLoaded(
                "an error occurred while loading credentials: no credentials found in chain. Attempted: \
                 Environment: not set Profile: none"
                    .into()
            )
        );
        assert_eq!(
            credentials_problem(&Chain("the credential provider was not enabled", None)),
            CredentialsProblem::NotFound
        );
    }

    #[test]
    fn the_sdk_is_quiet_unless_asked() {
        assert!(log_filter(0).starts_with("off,"), "nothing but qa-deploy's own targets by default");
        assert!(log_filter(0).contains("qa_deploy=info"));
        assert_eq!(log_filter(1), "info");
        assert_eq!(log_filter(2), "debug");
    }
}
