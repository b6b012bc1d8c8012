//! `qa-deploy` as a new user first runs it: no region, no credentials, or credentials AWS refuses.
//! Each is said once, in one line with the fix, before any work, and exits 1; the SDK's own log
//! messages stay off the terminal unless asked for with `-v`. The real CLI binary runs in a
//! cleared environment (no ~/.aws, instance metadata off unless a test points it somewhere).
//! moto accepts any key, so AWS's refusals of an identity come from a local stand-in answering
//! as AWS does, and from aws-smithy-mocks.

use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_sdk_ecs::config::{Credentials, Region, SharedCredentialsProvider};
use aws_sdk_ecs::operation::list_clusters::ListClustersError;
use aws_smithy_mocks::{mock, mock_client};
use qa_lookup_functions::cli_preflight::{self, EcsProbe, IdentityError, Problem};
use qa_lookup_testbed::workspace_root;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLI: &str = env!("CARGO_BIN_EXE_qa-deploy");

const NO_REGION: &str =
    "no AWS region is set: run aws configure, or set AWS_REGION (or AWS_PROFILE to a profile with a region)";
const NO_CREDENTIALS: &str = "no AWS credentials were found: run aws configure (or aws sso login), or set AWS_PROFILE \
                              to a profile with credentials (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)";

/// Each subcommand that calls AWS, with arguments that would pass its own validation.
fn subcommands(target: &std::path::Path) -> Vec<(&'static str, Vec<String>)> {
    let owned = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    vec![
        (
            "check-env",
            owned(&[
                "check-env",
                "--bucket",
                "lookup-bucket",
                "--key",
                "production.env",
                "--execution-role-arn",
                "arn:aws:iam::123456789012:role/lookup-task-execution",
            ]),
        ),
        (
            "seed",
            owned(&["seed", "--bucket", "lookup-bucket", "--target", target.to_str().expect("a UTF-8 temp path")]),
        ),
        ("wait", owned(&["wait", "--cluster", "qa", "--services", "app,mysql", "--timeout", "5s", "--interval", "1s"])),
        (
            "doctor",
            vec![
                "doctor".into(),
                "--prerequisites".into(),
                workspace_root().join("cfn/prerequisites.env.example").display().to_string(),
                "--deploy".into(),
                workspace_root().join("cfn/deploy.env.example").display().to_string(),
            ],
        ),
        (
            "authorities publish",
            vec![
                "authorities".into(),
                "publish".into(),
                "--bucket".into(),
                "lookup-bucket".into(),
                "--from".into(),
                workspace_root().join("tests/fixtures/authorities").display().to_string(),
            ],
        ),
    ]
}

/// The CLI with nothing configured but what `env` sets: no ~/.aws, no instance metadata.
async fn qa_deploy(args: &[String], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().expect("a temporary HOME");
    tokio::process::Command::new(CLI)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("qa-deploy runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exit 1, nothing on stdout, and exactly `line` on stderr: no check run, no SDK structures.
fn assert_one_line(output: &Output, line: &str) {
    let printed = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(output.stdout.is_empty(), "nothing on stdout: {}", String::from_utf8_lossy(&output.stdout));
    assert_eq!(printed, format!("{line}\n"), "exactly one line");
    for noise in ["dispatch failure", "checks failed", "IMDS", "WARN", "aws_config", "{", "Some(", "Error {"] {
        assert!(!printed.contains(noise), "{noise:?} in {printed}");
    }
}

#[tokio::test]
async fn no_region_is_one_line_with_the_fix_before_any_work_for_every_subcommand() {
    let target = tempfile::tempdir().unwrap();
    for (name, args) in subcommands(target.path()) {
        let output = qa_deploy(&args, &[]).await;
        assert_one_line(&output, &format!("qa-deploy {name}: {NO_REGION}"));
        // The region is said first, whether or not there are credentials.
        let with_keys =
            qa_deploy(&args, &[("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "x")]).await;
        assert_one_line(&with_keys, &format!("qa-deploy {name}: {NO_REGION}"));
    }
}

#[tokio::test]
async fn a_region_without_credentials_is_one_line_with_the_fix_for_every_subcommand() {
    let target = tempfile::tempdir().unwrap();
    for (name, args) in subcommands(target.path()) {
        let output = qa_deploy(&args, &[("AWS_REGION", "eu-west-1")]).await;
        assert_one_line(&output, &format!("qa-deploy {name}: {NO_CREDENTIALS}"));
    }
}

#[tokio::test]
async fn the_sdks_instance_metadata_warnings_show_only_with_verbose_or_rust_log() {
    // Instance metadata on, at a port where nothing listens: the SDK warns of every probe.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let imds = format!("http://127.0.0.1:{closed}");
    let target = tempfile::tempdir().unwrap();
    let (_, args) = subcommands(target.path()).remove(0);
    let env = [("AWS_EC2_METADATA_DISABLED", "false"), ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.as_str())];

    let quiet = qa_deploy(&args, &env).await;
    assert_one_line(&quiet, &format!("qa-deploy check-env: {NO_REGION}"));

    let verbose_args: Vec<String> = std::iter::once("-v".to_owned()).chain(args.iter().cloned()).collect();
    let verbose = qa_deploy(&verbose_args, &env).await;
    assert_eq!(verbose.status.code(), Some(1));
    let printed = stderr(&verbose);
    assert!(printed.contains("aws_config") && printed.contains("IMDS"), "-v shows the SDK's messages: {printed}");
    assert!(printed.ends_with(&format!("qa-deploy check-env: {NO_REGION}\n")), "{printed}");

    let with_rust_log = qa_deploy(&args, &[env[0], env[1], ("RUST_LOG", "aws_config=warn")]).await;
    assert!(stderr(&with_rust_log).contains("aws_config"), "RUST_LOG decides: {}", stderr(&with_rust_log));
}

/// A stand-in for AWS that refuses every request's identity as AWS does: S3's XML error,
/// ECS's JSON error. Counts the requests.
struct RefusingAws {
    endpoint: String,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RefusingAws {
    async fn start() -> RefusingAws {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let Some(head) = read_request_head(&mut stream).await else { return };
                    counted.fetch_add(1, Ordering::Relaxed);
                    let response = if head.contains("x-amz-target:") {
                        let body = r#"{"__type":"ExpiredTokenException","message":"The security token included in the request is expired"}"#;
                        format!(
                            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.1\r\n\
                             x-amzn-errortype: ExpiredTokenException:\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidAccessKeyId</Code>\
                                    <Message>The AWS Access Key Id you provided does not exist in our records.</Message>\
                                    <AWSAccessKeyId>AKIAIOSFODNN7EXAMPLE</AWSAccessKeyId><RequestId>R1</RequestId></Error>";
                        format!(
                            "HTTP/1.1 403 Forbidden\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\
                             connection: close\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        RefusingAws { endpoint, requests, task }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for RefusingAws {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The request line and headers, lower-cased; the body (these calls' are small) read after them.
async fn read_request_head(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 {
            return None;
        }
        received.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&received).to_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while received.len() < end + 4 + length {
                let read = stream.read(&mut buffer).await.ok()?;
                if read == 0 {
                    break;
                }
                received.extend_from_slice(&buffer[..read]);
            }
            return Some(text[..end].to_owned());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_aws_refuses_an_answer_moto_never_gives_is_one_line_and_no_check_runs() {
    let aws = RefusingAws::start().await;
    let target = tempfile::tempdir().unwrap();
    let env = [
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("AWS_ENDPOINT_URL", aws.endpoint.as_str()),
    ];
    let expected = [
        (
            "check-env",
            "AWS does not accept the credentials of access key …MPLE (AWS said InvalidAccessKeyId: The AWS Access \
             Key Id you provided does not exist in our records.): run aws configure with a current access key, or \
             set AWS_PROFILE to a profile with valid credentials",
        ),
        (
            "seed",
            "AWS does not accept the credentials of access key …MPLE (AWS said InvalidAccessKeyId: The AWS Access \
             Key Id you provided does not exist in our records.): run aws configure with a current access key, or \
             set AWS_PROFILE to a profile with valid credentials",
        ),
        (
            "wait",
            "the AWS credentials of access key …MPLE have expired (AWS said ExpiredTokenException: The security \
             token included in the request is expired): renew them (aws sso login, or new temporary credentials), \
             or set AWS_PROFILE to a profile with valid credentials",
        ),
    ];
    for ((name, args), (expected_name, said)) in subcommands(target.path()).into_iter().zip(expected) {
        assert_eq!(name, expected_name);
        let before = aws.requests();
        let output = qa_deploy(&args, &env).await;
        assert_one_line(&output, &format!("qa-deploy {name}: {said}"));
        assert_eq!(aws.requests() - before, 1, "{name}: one probe, then nothing: no check, no listing, no poll");
    }
}

#[tokio::test]
async fn an_expired_session_as_ecs_answers_it_and_moto_does_not_stops_the_wait_in_one_line() {
    let expired = mock!(aws_sdk_ecs::Client::list_clusters).then_error(|| {
        ListClustersError::generic(
            aws_sdk_ecs::error::ErrorMetadata::builder()
                .code("ExpiredTokenException")
                .message("The security token included in the request is expired")
                .build(),
        )
    });
    let probe = EcsProbe::with_client(mock_client!(aws_sdk_ecs, [&expired]));
    let config = aws_config::SdkConfig::builder()
        .region(Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "ASIAEXAMPLESESSION42",
            "secret",
            Some("token".to_owned()),
            None,
            "test",
        )))
        .build();
    let problem = cli_preflight::preflight(&config, &probe).await.unwrap_err();
    assert!(matches!(&problem, Problem::Identity { error: IdentityError::Expired, .. }), "{problem:?}");
    assert_eq!(
        problem.line("wait"),
        "qa-deploy wait: the AWS credentials of access key …ON42 have expired (AWS said ExpiredTokenException: The \
         security token included in the request is expired): renew them (aws sso login, or new temporary \
         credentials), or set AWS_PROFILE to a profile with valid credentials"
    );
}

#[tokio::test]
async fn a_denied_probe_is_not_an_identity_problem_and_the_subcommand_goes_on() {
    let denied = mock!(aws_sdk_ecs::Client::list_clusters).then_error(|| {
        ListClustersError::generic(
            aws_sdk_ecs::error::ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not authorized to perform: ecs:ListClusters")
                .build(),
        )
    });
    let probe = EcsProbe::with_client(mock_client!(aws_sdk_ecs, [&denied]));
    let config = aws_config::SdkConfig::builder()
        .region(Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new("AKIA1", "s", None, None, "test")))
        .build();
    assert_eq!(cli_preflight::preflight(&config, &probe).await, Ok(()));
}

#[tokio::test]
async fn a_configuration_without_a_credentials_provider_has_no_credentials() {
    let probe = EcsProbe::with_client(mock_client!(aws_sdk_ecs, []));
    let config = aws_config::SdkConfig::builder().region(Region::new("eu-west-1")).build();
    let problem = cli_preflight::preflight(&config, &probe).await.unwrap_err();
    assert_eq!(problem.line("wait"), format!("qa-deploy wait: {NO_CREDENTIALS}"));
}
