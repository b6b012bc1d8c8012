use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::process::{free_port, venv_program, workspace_root, Guarded};

/// How the function is deployed: its binary, its timeout, its environment.
#[derive(Debug, Clone)]
pub struct FunctionOptions {
    pub binary: PathBuf,
    /// The function's configured timeout: the runtime tells the function its deadline from it.
    pub timeout: Duration,
    pub env: Vec<(String, String)>,
}

impl FunctionOptions {
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        FunctionOptions { binary: binary.into(), timeout: Duration::from_secs(30), env: Vec::new() }
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
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
    function: Guarded,
    deadline_proxy: tokio::task::JoinHandle<()>,
    _emulator: Guarded,
}

impl LambdaFunction {
    pub const LOG_GROUP: &'static str = "/aws/lambda/qa-lookup-custom-resources";
    pub const LOG_STREAM: &'static str = "2026/11/25/[$LATEST]testbed";

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

        let (proxy_port, deadline_proxy) = start_deadline_proxy(emulator_url.clone(), options.timeout).await;
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
        let function = Guarded::spawn("function", &mut command, log_dir);
        LambdaFunction {
            invoke_url: format!("{emulator_url}/2015-03-31/functions/_/invocations"),
            client: reqwest::Client::new(),
            function,
            deadline_proxy,
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

    /// Everything the function has logged so far.
    pub fn logs(&self) -> String {
        self.function.log()
    }
}

impl Drop for LambdaFunction {
    fn drop(&mut self) {
        self.deadline_proxy.abort();
    }
}

struct Upstream {
    base: String,
    client: reqwest::Client,
    function_timeout: Duration,
}

/// cargo-lambda's emulator sends `Lambda-Runtime-Deadline-Ms: 600000`, a moment in 1970, where
/// Lambda sends the invocation's deadline in milliseconds since the epoch. This proxy sits where
/// the runtime API is and sets the deadline as Lambda would: now plus the function's timeout.
async fn start_deadline_proxy(base: String, function_timeout: Duration) -> (u16, tokio::task::JoinHandle<()>) {
    let upstream = Arc::new(Upstream { base, client: reqwest::Client::new(), function_timeout });
    let app = axum::Router::new().fallback(forward).with_state(upstream);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port for the runtime API proxy");
    let port = listener.local_addr().expect("the proxy's address").port();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, task)
}

async fn forward(
    State(upstream): State<Arc<Upstream>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = upstream.client.request(method, format!("{}{path}", upstream.base)).body(body);
    for (name, value) in &headers {
        if name != "host" {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(error) => return (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    if uri.path().ends_with("/runtime/invocation/next") {
        let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + upstream.function_timeout;
        headers.insert("lambda-runtime-deadline-ms", HeaderValue::from(deadline.as_millis() as u64));
    }
    headers.remove("content-length");
    headers.remove("transfer-encoding");
    let body = answer.bytes().await.unwrap_or_default();
    (status, headers, body).into_response()
}
