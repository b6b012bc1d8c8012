use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::logs::{Invocations, Target};

/// What the proxy changes on the way through.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// On the Lambda runtime API: sets each invocation's deadline to now plus the function's timeout,
    /// and notes which Lambda request each invocation became.
    SetDeadline(Duration, Arc<Invocations>),
    /// In front of the emulator's Invoke API: notes the function each invocation is for (headers
    /// `X-Qa-Function-Name` and `X-Qa-Log-Group`, set by the launcher), which Lambda's API has no
    /// place for, and passes the invocation on without them.
    NameInvocations(Arc<Invocations>),
    /// In front of S3: answers 500 to every GET whose path contains this text, as a failing S3 would.
    FailGets(String),
    /// The VPC as the seeding function sees it, as its `HTTP_PROXY`: a request for
    /// `http://<instance IP>:<host port>/…` reaches the task's qa_server stand-in, which the
    /// bed's ECS runs on that port of 127.0.0.1 (`tests/testbed/launcher/ecs.py`).
    TasksOnLoopback,
}

struct Upstream {
    base: String,
    client: reqwest::Client,
    behaviour: Behaviour,
    failed: AtomicUsize,
}

/// An HTTP proxy on 127.0.0.1 that forwards everything to `upstream` but for its [`Behaviour`].
pub struct Proxy {
    pub port: u16,
    pub url: String,
    upstream: Arc<Upstream>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: String, behaviour: Behaviour) -> Proxy {
        let upstream = Arc::new(Upstream {
            base: upstream,
            client: reqwest::Client::new(),
            behaviour,
            failed: AtomicUsize::new(0),
        });
        let app = axum::Router::new().fallback(forward).with_state(upstream.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port for the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { port, url: format!("http://127.0.0.1:{port}"), upstream, task }
    }

    /// How many requests a [`Behaviour::FailGets`] proxy has failed.
    pub fn failed(&self) -> usize {
        self.upstream.failed.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    State(upstream): State<Arc<Upstream>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Behaviour::FailGets(fragment) = &upstream.behaviour {
        if method == Method::GET && uri.path().contains(fragment.as_str()) {
            upstream.failed.fetch_add(1, Ordering::Relaxed);
            let error = "<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>";
            return (StatusCode::INTERNAL_SERVER_ERROR, error).into_response();
        }
    }
    if let Behaviour::NameInvocations(invocations) = &upstream.behaviour {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        if let (Some(function), Some(log_group)) = (header("x-qa-function-name"), header("x-qa-log-group")) {
            invocations.expect(&body, Target { function, log_group });
        }
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let base = match (&upstream.behaviour, uri.port_u16()) {
        (Behaviour::TasksOnLoopback, Some(port)) => format!("http://127.0.0.1:{port}"),
        _ => upstream.base.clone(),
    };
    let mut request = upstream.client.request(method, format!("{base}{path}")).body(body);
    for (name, value) in &headers {
        if name != "host" && !name.as_str().starts_with("x-qa-") {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(error) => return (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    headers.remove("content-length");
    headers.remove("transfer-encoding");
    let body = answer.bytes().await.unwrap_or_default();
    if let Behaviour::SetDeadline(timeout, invocations) = &upstream.behaviour {
        if uri.path().ends_with("/runtime/invocation/next") {
            let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + *timeout;
            headers.insert("lambda-runtime-deadline-ms", HeaderValue::from(deadline.as_millis() as u64));
            if let Some(request_id) = headers.get("lambda-runtime-aws-request-id").and_then(|v| v.to_str().ok()) {
                invocations.started(request_id, &body);
            }
        }
    }
    (status, headers, body).into_response()
}
