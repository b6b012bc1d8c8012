//! The function's lines in CloudWatch Logs, as Lambda ships them: each invocation's lines in the log
//! group of the function invoked (its `LoggingConfig.LogGroup`, else `/aws/lambda/<name>`), one
//! stream per execution environment, named as Lambda names them (Lambda developer guide,
//! "Configuring CloudWatch log groups": `YYYY/MM/DD/[$LATEST]<id>` in the default group,
//! `YYYY/MM/DD/<function name>[$LATEST]<id>` in a custom one).
//!
//! Here one pool of processes serves every function, so which function a line belongs to is
//! followed per invocation: the launcher names the function and its group on each invocation it
//! posts ([`Invocations::expect`], by the invocation's body), the runtime API's proxy sees which
//! Lambda request id that body became ([`Invocations::started`]), and each line our runtime logs
//! during an invocation carries that request id (lambda_runtime's `Lambda runtime invoke` span).
//! A line without one belongs to its process's last invocation; lines before the first (the
//! start-up line) are not shipped. The reasons' log pointer still names the pool's own
//! `AWS_LAMBDA_LOG_GROUP_NAME`: one process cannot have each function's.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use tokio::sync::mpsc;

/// The function an invocation is for, and where its lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub function: String,
    pub log_group: String,
}

/// Which function each invocation is for.
#[derive(Debug, Default)]
pub struct Invocations {
    by_body: Mutex<HashMap<String, Target>>,
    by_request: Mutex<HashMap<String, Target>>,
}

/// The same JSON, however it is spaced or ordered, as one text (the emulator may write it anew).
/// Keys are sorted here: serde_json keeps insertion order when a dependency turns on its
/// `preserve_order` feature (the SDK's HTTP client does).
fn canonical(body: &[u8]) -> String {
    fn sorted(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<(String, serde_json::Value)> =
                    map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(entries.into_iter().collect())
            }
            serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted).collect()),
            other => other,
        }
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .map(|value| sorted(value).to_string())
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned())
}

impl Invocations {
    /// The launcher posts `body` for `target`.
    pub fn expect(&self, body: &[u8], target: Target) {
        self.by_body.lock().unwrap().insert(canonical(body), target);
    }

    /// The runtime API handed `body` to a process as Lambda request `request_id`.
    pub fn started(&self, request_id: &str, body: &[u8]) {
        if let Some(target) = self.by_body.lock().unwrap().get(&canonical(body)).cloned() {
            self.by_request.lock().unwrap().insert(request_id.to_owned(), target);
        }
    }

    fn target_of(&self, request_id: &str) -> Option<Target> {
        self.by_request.lock().unwrap().get(request_id).cloned()
    }
}

/// The Lambda request id on one of our runtime's JSON lines.
fn lambda_request_id(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value["spans"].as_array()?.iter().find_map(|span| span["requestId"].as_str().map(str::to_owned))
}

/// `YYYY/MM/DD` of a moment, in UTC.
fn utc_date(at: SystemTime) -> String {
    // Days to civil date: Howard Hinnant's algorithm (public domain).
    let days = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64 / 86_400 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}/{month:02}/{day:02}")
}

/// The stream an execution environment writes to in `target`'s group.
fn stream_name(target: &Target, environment: &str) -> String {
    let date = utc_date(SystemTime::now());
    if target.log_group == format!("/aws/lambda/{}", target.function) {
        format!("{date}/[$LATEST]{environment}")
    } else {
        format!("{date}/{}[$LATEST]{environment}", target.function)
    }
}

/// Reads the processes' output: every line to the shared log file, and the invocations' lines to
/// CloudWatch Logs.
pub(crate) struct Shipper {
    lines: mpsc::UnboundedSender<(usize, String)>,
    task: tokio::task::JoinHandle<()>,
}

impl Shipper {
    pub fn start(endpoint: Option<&str>, invocations: Arc<Invocations>) -> Shipper {
        let (lines, mut received) = mpsc::unbounded_channel::<(usize, String)>();
        let endpoint = endpoint.map(str::to_owned);
        let task = tokio::spawn(async move {
            let Some(endpoint) = endpoint else {
                while received.recv().await.is_some() {}
                return;
            };
            let mut cloudwatch = CloudWatch::new(&endpoint).await;
            while let Some(first) = received.recv().await {
                let mut batch = vec![first];
                while let Ok(next) = received.try_recv() {
                    batch.push(next);
                }
                cloudwatch.ship(&invocations, batch).await;
            }
        });
        Shipper { lines, task }
    }

    /// Follows one process's output: each line is appended to `log` and shipped.
    pub fn follow(&self, instance: usize, output: impl Read + Send + 'static, mut log: std::fs::File) {
        let lines = self.lines.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(output);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                let _ = log.write_all(&line);
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                line.clear();
                if lines.send((instance, text)).is_err() {
                    break;
                }
            }
        });
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct CloudWatch {
    client: aws_sdk_cloudwatchlogs::Client,
    /// Each process's execution-environment id and its last invocation's target.
    environments: HashMap<usize, (String, Option<Target>)>,
    streams: HashSet<(String, String)>,
}

impl CloudWatch {
    async fn new(endpoint: &str) -> CloudWatch {
        let config = crate::moto::sdk_config(endpoint).await;
        CloudWatch {
            client: aws_sdk_cloudwatchlogs::Client::new(&config),
            environments: HashMap::new(),
            streams: HashSet::new(),
        }
    }

    async fn ship(&mut self, invocations: &Invocations, batch: Vec<(usize, String)>) {
        let mut by_stream: Vec<((String, String), Vec<String>)> = Vec::new();
        for (instance, line) in batch {
            let environment =
                self.environments.entry(instance).or_insert_with(|| (uuid::Uuid::new_v4().simple().to_string(), None));
            if let Some(target) = lambda_request_id(&line).and_then(|id| invocations.target_of(&id)) {
                environment.1 = Some(target);
            }
            let Some(target) = &environment.1 else { continue };
            let key = (target.log_group.clone(), stream_name(target, &environment.0));
            match by_stream.last_mut() {
                Some((last, lines)) if *last == key => lines.push(line),
                _ => by_stream.push((key, vec![line])),
            }
        }
        for ((group, stream), lines) in by_stream {
            if let Err(error) = self.put(&group, &stream, lines).await {
                eprintln!("testbed: the function's lines could not be shipped to {group} {stream}: {error}");
            }
        }
    }

    async fn put(&mut self, group: &str, stream: &str, lines: Vec<String>) -> Result<(), String> {
        let key = (group.to_owned(), stream.to_owned());
        if !self.streams.contains(&key) {
            self.create_stream(group, stream).await?;
            self.streams.insert(key);
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
        let events = lines
            .into_iter()
            .map(|message| InputLogEvent::builder().timestamp(now).message(message).build().expect("both fields set"))
            .collect();
        let put =
            self.client.put_log_events().log_group_name(group).log_stream_name(stream).set_log_events(Some(events));
        put.send().await.map(|_| ()).map_err(|e| format!("{e:?}"))
    }

    /// The stream, and Lambda's default group if it is missing (a custom group is the template's).
    async fn create_stream(&self, group: &str, stream: &str) -> Result<(), String> {
        let create = || self.client.create_log_stream().log_group_name(group).log_stream_name(stream).send();
        match create().await {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some("ResourceAlreadyExistsException") => Ok(()),
            Err(error) if error.code() == Some("ResourceNotFoundException") => {
                let _ = self.client.create_log_group().log_group_name(group).send().await;
                create().await.map(|_| ()).map_err(|e| format!("{e:?}"))
            }
            Err(error) => Err(format!("{error:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(utc_date(UNIX_EPOCH), "1970/01/01");
        assert_eq!(utc_date(UNIX_EPOCH + Duration::from_secs(1_795_000_000)), "2026/11/18");
        assert_eq!(utc_date(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000/02/29");
    }

    #[test]
    fn streams_are_named_as_lambda_names_them() {
        let default = Target { function: "f".into(), log_group: "/aws/lambda/f".into() };
        let custom = Target { function: "f".into(), log_group: "stack-FunctionLogGroup-1".into() };
        assert!(stream_name(&default, "abc").ends_with("/[$LATEST]abc"), "{}", stream_name(&default, "abc"));
        assert!(stream_name(&custom, "abc").ends_with("/f[$LATEST]abc"), "{}", stream_name(&custom, "abc"));
    }

    #[test]
    fn a_line_is_followed_to_its_invocation_by_the_lambda_request_id() {
        let invocations = Invocations::default();
        let target = Target { function: "f".into(), log_group: "g".into() };
        invocations.expect(b"{\"RequestId\": \"r\", \"A\": 1}", target.clone());
        invocations.started("lambda-1", b"{\"A\":1,\"RequestId\":\"r\"}");
        let line = r#"{"message":"x","spans":[{"requestId":"lambda-1","name":"Lambda runtime invoke"}]}"#;
        assert_eq!(lambda_request_id(line).and_then(|id| invocations.target_of(&id)), Some(target));
        assert_eq!(lambda_request_id("thread 'main' panicked"), None);
    }
}
