use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};

/// What a [`ScriptedEndpoint`] received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub path_and_query: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Script {
    statuses: Vec<u16>,
    received: Vec<RecordedRequest>,
}

/// A local HTTP endpoint standing in for a ResponseURL that misbehaves: it answers each PUT
/// with the next status of its script (200 once the script is used up) and records them.
pub struct ScriptedEndpoint {
    pub url: String,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedEndpoint {
    pub async fn start(statuses: &[u16]) -> ScriptedEndpoint {
        let script = Arc::new(Mutex::new(Script { statuses: statuses.to_vec(), received: Vec::new() }));
        let app = axum::Router::new().fallback(record).with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port for the endpoint");
        let port = listener.local_addr().expect("the endpoint's address").port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ScriptedEndpoint { url: format!("http://127.0.0.1:{port}/response"), script, task }
    }

    pub fn received(&self) -> Vec<RecordedRequest> {
        self.script.lock().expect("the script lock").received.clone()
    }
}

impl Drop for ScriptedEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(script): State<Arc<Mutex<Script>>>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut script = script.lock().expect("the script lock");
    script.received.push(RecordedRequest {
        path_and_query: uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        content_type: headers.get("content-type").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        body: body.to_vec(),
    });
    let status = if script.statuses.is_empty() { 200 } else { script.statuses.remove(0) };
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}
