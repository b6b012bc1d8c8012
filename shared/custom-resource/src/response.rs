//! The answer to CloudFormation: a JSON body of at most 4096 bytes, PUT to the pre-signed
//! `ResponseURL` with retries, its signature never logged.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceResponse, CloudFormationCustomResourceResponseStatus,
};
use backon::{ExponentialBuilder, Retryable};

/// CloudFormation rejects larger bodies with "Response object is too long" (aws-cdk#23958).
pub const MAX_BODY_BYTES: usize = 4096;
/// CloudFormation's limit on a physical resource id.
pub const MAX_PHYSICAL_ID_BYTES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "SUCCESS",
            Status::Failed => "FAILED",
        }
    }
}

/// The fields copied from the request into every answer.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    pub stack_id: String,
    pub request_id: String,
    pub logical_id: String,
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub status: Status,
    pub reason: Option<String>,
    pub physical_id: String,
    pub data: HashMap<String, String>,
    pub no_echo: bool,
}

/// Serialises the answer within [`MAX_BODY_BYTES`]. A FAILED reason ends with `log_pointer`
/// (where the details are); a long one is cut at a character boundary first. A SUCCESS whose
/// `Data` cannot fit becomes a FAILED.
pub fn body(envelope: &Envelope, answer: &Answer, log_pointer: &str) -> Vec<u8> {
    let encode = |status: Status, reason: Option<&str>, data: &HashMap<String, String>| {
        let mut response = CloudFormationCustomResourceResponse::default();
        response.status = match status {
            Status::Success => CloudFormationCustomResourceResponseStatus::Success,
            Status::Failed => CloudFormationCustomResourceResponseStatus::Failed,
        };
        response.reason = reason.map(str::to_owned);
        response.physical_resource_id = answer.physical_id.clone();
        response.stack_id = envelope.stack_id.clone();
        response.request_id = envelope.request_id.clone();
        response.logical_resource_id = envelope.logical_id.clone();
        response.no_echo = answer.no_echo;
        response.data = data.clone();
        let mut value = serde_json::to_value(&response).expect("a response of strings always serialises");
        if reason.is_none() {
            value.as_object_mut().map(|fields| fields.remove("Reason"));
        }
        serde_json::to_vec(&value).expect("a JSON value always serialises")
    };

    if answer.status == Status::Success && answer.reason.is_none() {
        let encoded = encode(Status::Success, None, &answer.data);
        if encoded.len() <= MAX_BODY_BYTES {
            return encoded;
        }
    }
    // Data is of no use on a FAILED answer; a SUCCESS whose Data cannot fit must fail.
    let no_data = HashMap::new();
    let (status, reason, data) = match answer.status {
        Status::Success if encode(Status::Success, None, &answer.data).len() <= MAX_BODY_BYTES => {
            (Status::Success, answer.reason.clone().unwrap_or_default(), &answer.data)
        }
        Status::Success => {
            let data_bytes = serde_json::to_vec(&answer.data).map(|v| v.len()).unwrap_or_default();
            let reason = format!(
                "the resource succeeded but its Data is {data_bytes} bytes, more than CloudFormation's \
                 {MAX_BODY_BYTES}-byte response allows; this is a bug in the function, please report it"
            );
            (Status::Failed, reason, &no_data)
        }
        Status::Failed => (Status::Failed, answer.reason.clone().unwrap_or_default(), &no_data),
    };
    let whole = encode(status, Some(&format!("{reason} ({log_pointer})")), data);
    if whole.len() <= MAX_BODY_BYTES {
        return whole;
    }
    let suffix = format!(" … (cut; full text in {log_pointer})");
    let with_kept =
        |keep: usize| encode(status, Some(&format!("{}{suffix}", cut_at_char_boundary(&reason, keep))), data);
    // The longest prefix that fits: escaping makes the encoded length grow with the prefix, unevenly.
    let (mut fits, mut too_long) = (0, reason.len());
    while too_long - fits > 1 {
        let middle = (fits + too_long) / 2;
        if with_kept(middle).len() <= MAX_BODY_BYTES {
            fits = middle;
        } else {
            too_long = middle;
        }
    }
    with_kept(fits)
}

fn cut_at_char_boundary(text: &str, max_bytes: usize) -> &str {
    let mut end = max_bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The URL without its query string — the query is the pre-signed credential (aws-cdk#21224).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let had_query = parsed.query().is_some();
            parsed.set_query(None);
            parsed.set_fragment(None);
            let _ = parsed.set_password(None);
            let mut text = parsed.to_string();
            if had_query {
                text.push_str("?<signature redacted>");
            }
            text
        }
        Err(_) => "<unparseable ResponseURL>".to_owned(),
    }
}

#[derive(Debug)]
pub struct SendError {
    /// What happened, without the URL's query string.
    pub message: String,
}

/// Delivers a response body to a `ResponseURL` within `budget`.
pub trait ResponseSender: Send + Sync {
    fn send(&self, url: &str, body: Vec<u8>, budget: Duration) -> impl Future<Output = Result<u32, SendError>> + Send;
}

/// PUTs with `Content-Type: ""` — a set content type can break the pre-signed signature
/// (binxio/cfn-secret-provider#3) — retrying connection errors, timeouts and 5xx.
pub struct HttpSender {
    client: reqwest::Client,
}

impl Default for HttpSender {
    fn default() -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .expect("the HTTP client builds with its default TLS roots");
        HttpSender { client }
    }
}

enum Attempt {
    Retryable(String),
    Final(String),
}

impl HttpSender {
    async fn put_once(&self, url: &str, body: &[u8], timeout: Duration) -> Result<u32, Attempt> {
        let response = self
            .client
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "")
            .body(body.to_vec())
            .timeout(timeout)
            .send()
            .await
            .map_err(|error| Attempt::Retryable(error.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(u32::from(status.as_u16()));
        }
        let detail = response.text().await.unwrap_or_default();
        let detail = cut_at_char_boundary(detail.trim(), 300).to_owned();
        let message = format!("the response URL answered HTTP {status}: {detail}");
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(Attempt::Retryable(message))
        } else {
            Err(Attempt::Final(message))
        }
    }
}

impl ResponseSender for HttpSender {
    async fn send(&self, url: &str, body: Vec<u8>, budget: Duration) -> Result<u32, SendError> {
        let started = tokio::time::Instant::now();
        let per_attempt = budget.min(Duration::from_secs(10));
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(3))
            .with_max_times(8)
            .with_jitter();
        let attempts = (|| async {
            let left = budget.saturating_sub(started.elapsed()).min(per_attempt);
            self.put_once(url, &body, left.max(Duration::from_millis(100))).await
        })
        .retry(backoff)
        .when(|attempt| matches!(attempt, Attempt::Retryable(_)) && started.elapsed() < budget)
        .notify(|attempt, delay| {
            if let Attempt::Retryable(message) = attempt {
                tracing::warn!(response_url = %redact_url(url), retry_in_ms = delay.as_millis() as u64, "{message}");
            }
        });
        match tokio::time::timeout(budget, attempts).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(Attempt::Retryable(message) | Attempt::Final(message))) => Err(SendError { message }),
            Err(_) => {
                Err(SendError { message: format!("no answer from the response URL within {} s", budget.as_secs()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            stack_id: "arn:aws:cloudformation:…:stack/s/1".into(),
            request_id: "r-1".into(),
            logical_id: "Seed".into(),
        }
    }

    fn failed(reason: &str) -> Answer {
        Answer {
            status: Status::Failed,
            reason: Some(reason.into()),
            physical_id: "id".into(),
            data: HashMap::new(),
            no_echo: false,
        }
    }

    #[test]
    fn short_answers_are_left_as_they_are() {
        let body = body(&envelope(), &failed("bucket b: missing"), "log stream x");
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["Reason"], "bucket b: missing (log stream x)");
        assert_eq!(parsed["Status"], "FAILED");
    }

    #[test]
    fn long_reason_is_cut_at_a_character_boundary_and_points_to_the_log() {
        for filler in ["x", "é", "\"", "\u{1}", "🦀"] {
            let reason = filler.repeat(10_000);
            let body = body(&envelope(), &failed(&reason), "log stream 2026/11/25/[$LATEST]abc");
            assert!(body.len() <= MAX_BODY_BYTES, "{filler}: {} bytes", body.len());
            assert!(body.len() > MAX_BODY_BYTES - 16, "{filler}: cut too much, {} bytes", body.len());
            let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let reason = parsed["Reason"].as_str().unwrap();
            assert!(reason.starts_with(filler));
            assert!(reason.ends_with("(cut; full text in log stream 2026/11/25/[$LATEST]abc)"), "{reason}");
        }
    }

    #[test]
    fn success_whose_data_cannot_fit_becomes_failed() {
        let mut answer = failed("");
        answer.status = Status::Success;
        answer.reason = None;
        answer.data.insert("Big".into(), "y".repeat(5000));
        let body = body(&envelope(), &answer, "log");
        assert!(body.len() <= MAX_BODY_BYTES);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["Status"], "FAILED");
        assert!(parsed["Reason"].as_str().unwrap().contains("Data is"), "{parsed}");
    }

    #[test]
    fn redaction_drops_the_signature() {
        let url = "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3A/abc?X-Amz-Signature=secret&X-Amz-Credential=AKIA";
        let redacted = redact_url(url);
        assert!(!redacted.contains("secret") && !redacted.contains("AKIA"), "{redacted}");
        assert!(
            redacted.starts_with("https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3A/abc")
        );
    }
}
