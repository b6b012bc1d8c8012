use std::process::Command;
use std::time::Duration;

use crate::process::{free_port, venv_program, workspace_root, Guarded};

/// moto's real HTTP AWS emulator, on 127.0.0.1 and a free port.
pub struct Moto {
    pub endpoint: String,
    process: Guarded,
}

impl Moto {
    pub fn start(log_dir: &std::path::Path) -> Moto {
        Self::start_with_env(log_dir, &[])
    }

    /// With settings moto reads from its environment, such as `MOTO_ECS_SERVICE_RUNNING`
    /// (the running count of every ECS service it creates).
    pub fn start_with_env(log_dir: &std::path::Path, env: &[(&str, &str)]) -> Moto {
        let port = free_port();
        let mut command = Command::new(venv_program("moto_server"));
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]).envs(env.iter().copied());
        let mut process = Guarded::spawn("moto", &mut command, log_dir);
        process.wait_for_port(port, Duration::from_secs(60));
        Moto { endpoint: format!("http://127.0.0.1:{port}"), process }
    }

    /// moto from `tests/testbed/moto_launcher.py` on `port`: its Lambda invocations go to the
    /// runtime emulator at `invoke_url`, and its CloudFormation behaves as AWS's does (see
    /// `tests/testbed/launcher/`); ECS tasks stop as `ecs_faults` (a JSON file) says; the app
    /// tasks' qa_server stand-ins read `authorities` (the access point's stand-in).
    pub fn start_launcher(
        log_dir: &std::path::Path,
        port: u16,
        invoke_url: &str,
        ecs_faults: &std::path::Path,
        authorities: &std::path::Path,
    ) -> Moto {
        let mut command = Command::new(venv_program("python"));
        command
            .arg(workspace_root().join("tests/testbed/moto_launcher.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("QA_LAMBDA_INVOKE_URL", invoke_url)
            .env("QA_TESTBED_ECS_FAULTS", ecs_faults)
            .env("QA_TESTBED_AUTHORITIES_DIR", authorities)
            // The health waits poll ECS every 5 s of real time: ECS runs at a quarter of AWS's pace here
            // (a task starts in 7.5 s), so that the race between the wait and the deployment
            // circuit breaker is run as on AWS, not decided by the bed's clock.
            .env("QA_TESTBED_ECS_TIME_SCALE", "0.25")
            .env("MOTO_PORT", port.to_string());
        let mut process = Guarded::spawn("moto", &mut command, log_dir);
        process.wait_for_port(port, Duration::from_secs(60));
        Moto { endpoint: format!("http://127.0.0.1:{port}"), process }
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// An SDK configuration for this moto: static test credentials, us-east-1, its endpoint.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config(&self.endpoint).await
    }

    /// Keeps ECS tasks in the state they are in: by default moto moves a task on
    /// (RUNNING → DEACTIVATING → …) each time it is described.
    pub async fn hold_ecs_tasks(&self) {
        let transition = r#"{"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1000000}}"#;
        let response = reqwest::Client::new()
            .post(format!("{}/moto-api/state-manager/set-transition", self.endpoint))
            .header("content-type", "application/json")
            .body(transition)
            .send()
            .await
            .expect("moto's state manager answers");
        assert!(response.status().is_success(), "moto's state manager answered {}", response.status());
    }

    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config().await).force_path_style(true).build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

/// An SDK configuration for the moto at `endpoint`. The SDK is built without its default
/// HTTP client (one TLS stack for the workspace), so every configuration names one.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "testbed"))
        .endpoint_url(endpoint)
        .load()
        .await
}
