use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::logs::{Invocations, Shipper};
use crate::process::{free_port, venv_program, workspace_root, Guarded};
use crate::proxy::{Behaviour, Proxy};

/// How the function is deployed: its binary, its timeout, its environment.
#[derive(Debug, Clone)]
pub struct FunctionOptions {
    pub binary: PathBuf,
    /// The function's configured timeout: the runtime tells the function its deadline from it.
    pub timeout: Duration,
    pub env: Vec<(String, String)>,
    /// How many copies poll for invocations: Lambda runs concurrent invocations in separate
    /// execution environments, so one long request does not hold up another.
    pub instances: usize,
    /// Where CloudWatch Logs is (moto): each invocation's lines go to its function's log group.
    pub logs_endpoint: Option<String>,
}

impl FunctionOptions {
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        FunctionOptions {
            binary: binary.into(),
            timeout: Duration::from_secs(30),
            env: Vec::new(),
            instances: 1,
            logs_endpoint: None,
        }
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn instances(mut self, instances: usize) -> Self {
        self.instances = instances.max(1);
        self
    }

    /// Ships the lines of invocations that name their function (see `logs`) to CloudWatch Logs there.
    pub fn ship_logs_to(mut self, endpoint: &str) -> Self {
        self.logs_endpoint = Some(endpoint.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// The real Lambda binary, polling the cargo-lambda runtime emulator as it polls Lambda's
/// runtime API in AWS.
pub struct LambdaFunction {
    invoke_url: String,
    client: reqwest::Client,
    instances: Vec<Guarded>,
    _shipper: Shipper,
    _deadline_proxy: Proxy,
    _invoke_proxy: Proxy,
    _emulator: Guarded,
}

impl LambdaFunction {
    pub const LOG_GROUP: &'static str = "/aws/lambda/qa-lookup-custom-resources";
    pub const LOG_STREAM: &'static str = "2026/11/25/[$LATEST]testbed";
    /// How long a line may take from the function's standard error to its log, on a loaded machine.
    const LOG_WAIT: Duration = Duration::from_secs(20);

    pub async fn start(options: &FunctionOptions, log_dir: &Path) -> LambdaFunction {
        let emulator_port = free_port();
        let invoke_wait = options.timeout + Duration::from_secs(60);
        let mut emulator = Guarded::spawn(
            "runtime-emulator",
            Command::new(venv_program("cargo-lambda"))
                .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P"])
                .arg(emulator_port.to_string())
                .args(["--timeout", &invoke_wait.as_secs().to_string()])
                .current_dir(workspace_root()),
            log_dir,
        );
        emulator.wait_for_port(emulator_port, Duration::from_secs(30));
        let emulator_url = format!("http://127.0.0.1:{emulator_port}");

        // cargo-lambda's emulator sends `Lambda-Runtime-Deadline-Ms: 600000`, a moment in 1970, where
        // Lambda sends the invocation's deadline; the proxy sets it as Lambda would.
        let invocations = Arc::new(Invocations::default());
        let proxy =
            Proxy::start(emulator_url.clone(), Behaviour::SetDeadline(options.timeout, invocations.clone())).await;
        let invoke_proxy = Proxy::start(emulator_url.clone(), Behaviour::NameInvocations(invocations.clone())).await;
        let proxy_port = proxy.port;
        let mut command = Command::new(&options.binary);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{proxy_port}/.rt"))
            .env("AWS_LAMBDA_FUNCTION_NAME", "qa-lookup-custom-resources")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", Self::LOG_GROUP)
            .env("AWS_LAMBDA_LOG_STREAM_NAME", Self::LOG_STREAM)
            .env("RUST_BACKTRACE", "0");
        for (key, value) in &options.env {
            command.env(key, value);
        }
        // One log for all instances, in the order things happened; their lines also go to CloudWatch Logs.
        let log_path = log_dir.join("function.log");
        let shipper = Shipper::start(options.logs_endpoint.as_deref(), invocations);
        let instances = (0..options.instances)
            .map(|n| {
                let (instance, stderr) =
                    Guarded::spawn_reading_stderr(&format!("function-{}", n + 1), &mut command, &log_path);
                let log = std::fs::OpenOptions::new().append(true).open(&log_path).expect("the log file opens");
                shipper.follow(n, stderr, log);
                instance
            })
            .collect();
        LambdaFunction {
            invoke_url: format!("{}/2015-03-31/functions/_/invocations", invoke_proxy.url),
            client: reqwest::Client::new(),
            instances,
            _shipper: shipper,
            _deadline_proxy: proxy,
            _invoke_proxy: invoke_proxy,
            _emulator: emulator,
        }
    }

    /// Invokes the function with `event` and returns what the function returned to Lambda.
    pub async fn invoke(&self, event: &serde_json::Value) -> serde_json::Value {
        let response =
            self.client.post(&self.invoke_url).body(event.to_string()).send().await.unwrap_or_else(|error| {
                panic!("the runtime emulator did not take the invocation: {error}\n{}", self.logs())
            });
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "invocation answered {status}: {text}\n{}", self.logs());
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    }

    /// Where an invocation is posted, as Lambda's Invoke API takes it.
    pub fn invoke_url(&self) -> &str {
        &self.invoke_url
    }

    /// Everything the function's instances have logged so far, in order.
    pub fn logs(&self) -> String {
        self.instances.first().map(Guarded::log).unwrap_or_default()
    }

    /// The log once `complete` holds for it, or as it is after `LOG_WAIT`. An invocation returns
    /// before its last lines have passed through the shipper into the log file, so a test that
    /// judges a line waits for it (or for the line that ends the invocation) instead of reading once.
    pub async fn logs_once(&self, complete: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Self::LOG_WAIT;
        loop {
            let logs = self.logs();
            if complete(&logs) || tokio::time::Instant::now() >= deadline {
                return logs;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The log once it has the line that ends the invocation of request `request_id`: the answer
    /// delivered, or not, or no ResponseURL to deliver it to.
    pub async fn logs_after_request(&self, request_id: &str) -> String {
        self.logs_once(|logs| {
            logs.lines().any(|line| {
                line.contains(request_id)
                    && ["answered CloudFormation", "could not deliver the answer", "the event has no ResponseURL"]
                        .iter()
                        .any(|end| line.contains(end))
            })
        })
        .await
    }
}
