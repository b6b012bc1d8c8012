//! Live sync (the service template's `LiveSync` parameter): a change under the authorities
//! prefix reaches EFS and every running app task without a command.
//!
//! S3 sends each change to EventBridge (the bucket's `EventBridgeConfiguration`), a rule puts it
//! on an SQS queue, and Lambda's SQS event source mapping hands this function a batch once its
//! batching window closes (AWS Lambda developer guide, "Using Lambda with Amazon SQS": records
//! are gathered until the window expires or the batch is full), so a burst such as an `aws s3
//! sync` of 200 files is one batch and one seed. A batch is handled as `qa-deploy authorities
//! publish --stack` handles its upload: this function (outside the VPC) finds the running app
//! tasks (the service stack's settings read from CloudFormation, as the CLI reads them), the
//! seeding function seeds and reloads them, verified; the seed's lock keeps two seeds
//! of the access point apart, and a broken file fails the seed before anything is written.
//! A failure is logged with its reason and counted in a CloudWatch metric through the embedded
//! metric format (a JSON line on stdout that CloudWatch Logs turns into a metric: CloudWatch
//! user guide, "Specification: Embedded metric format"), which the template's alarm watches;
//! the batch's messages go back to the queue for another try, and to its dead-letter queue after
//! the last.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::authorities_publish::{seed_request, stack_target};
use crate::authorities_reload::{EcsTasks, TaskDirectory};
use crate::seed_authorities::delegate::{AwsWorker, SeedWorker};

/// The metric the template's alarm watches.
pub const METRIC_NAMESPACE: &str = "QaLookupDeploy";
pub const FAILURE_METRIC: &str = "LiveSyncFailures";

/// The service stack this function keeps in sync (`LIVE_SYNC_STACK`, set by cfn/aws-live-sync.yaml).
pub fn stack_from_env() -> Option<String> {
    std::env::var("LIVE_SYNC_STACK").ok().filter(|v| !v.is_empty())
}

/// The batch's message ids and the object keys its S3 events name; `None` when the event is not
/// an SQS batch.
pub fn read_batch(event: &Value) -> Option<(Vec<String>, BTreeSet<String>)> {
    let records = event.get("Records")?.as_array()?;
    if records.iter().any(|r| r.get("eventSource").and_then(Value::as_str) != Some("aws:sqs")) {
        return None;
    }
    let ids = records.iter().filter_map(|r| r.get("messageId")?.as_str().map(str::to_owned)).collect();
    let keys = records
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(r.get("body")?.as_str()?).ok())
        .filter_map(|body| body.pointer("/detail/object/key")?.as_str().map(str::to_owned))
        .collect();
    Some((ids, keys))
}

/// The embedded-metric-format line for one batch: 1 failure or 0.
pub fn metric_line(stack: &str, failed: bool, now_ms: u128) -> String {
    json!({
        "_aws": {
            "Timestamp": now_ms as u64,
            "CloudWatchMetrics": [{
                "Namespace": METRIC_NAMESPACE,
                "Dimensions": [["Stack"]],
                "Metrics": [{"Name": FAILURE_METRIC, "Unit": "Count"}],
            }],
        },
        "Stack": stack,
        FAILURE_METRIC: u8::from(failed),
    })
    .to_string()
}

/// The answer for the event source mapping (`ReportBatchItemFailures`): none failed, or all.
fn batch_answer(failed: &[String]) -> Value {
    json!({"batchItemFailures": failed.iter().map(|id| json!({"itemIdentifier": id})).collect::<Vec<_>>()})
}

/// Handles an SQS batch of S3 changes; `None` for any other event.
pub async fn handle(config: &aws_config::SdkConfig, event: &Value, deadline: SystemTime) -> Option<Value> {
    let (ids, keys) = read_batch(event)?;
    let Some(stack) = stack_from_env() else {
        tracing::error!(
            "an SQS batch arrived, but this function has no LIVE_SYNC_STACK: it is not the live-sync function"
        );
        return Some(batch_answer(&ids));
    };
    let shown: Vec<&str> = keys.iter().take(5).map(String::as_str).collect();
    tracing::info!(
        messages = ids.len(),
        objects = keys.len(),
        "live sync of {stack}: {} changed object(s) ({}{})",
        keys.len(),
        shown.join(", "),
        if keys.len() > shown.len() { ", …" } else { "" }
    );
    let result = sync(config, &stack, deadline).await;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    println!("{}", metric_line(&stack, result.is_err(), now_ms));
    Some(match result {
        Ok(report) => {
            tracing::info!("live sync: every running app task serves the new set\n{report}");
            batch_answer(&[])
        }
        Err(reason) => {
            tracing::error!(
                "live sync of {stack} failed: {reason}. The running tasks keep the set they had; the batch goes \
                 back to the queue for another try (then to its dead-letter queue). Fix the files in S3; \
                 qa-deploy authorities publish --stack {stack} runs the same steps from a terminal"
            );
            batch_answer(&ids)
        }
    })
}

async fn sync(config: &aws_config::SdkConfig, stack: &str, deadline: SystemTime) -> Result<String, String> {
    let stack = &stack_target(&aws_sdk_cloudformation::Client::new(config), stack).await?;
    let targets = EcsTasks::new(config).running_tasks(&stack.cluster, &stack.service).await?;
    let within = deadline.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(Duration::from_secs(5));
    let answer = AwsWorker::new(config)
        .run(&stack.seed_function, seed_request(stack, &targets), within)
        .await
        .map_err(|e| format!("the seeding function {} {e}", stack.seed_function))?;
    match cfn_custom_resource::runner::delegated_result(&answer) {
        Ok(outcome) => Ok(outcome.data.get("ReloadReport").cloned().unwrap_or_default()),
        Err(failure) => Err(failure.reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, key: &str) -> Value {
        let body = json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {"object": {"key": key}}});
        json!({"messageId": id, "eventSource": "aws:sqs", "body": body.to_string()})
    }

    #[test]
    fn a_batch_names_its_messages_and_each_changed_key_once() {
        let event = json!({"Records": [record("m1", "authorities/a.yml"), record("m2", "authorities/a.yml"), record("m3", "authorities/b.yml")]});
        let (ids, keys) = read_batch(&event).unwrap();
        assert_eq!(ids, ["m1", "m2", "m3"]);
        assert_eq!(keys, ["authorities/a.yml", "authorities/b.yml"].map(String::from).into());
        assert_eq!(read_batch(&json!({"RequestType": "Create"})), None, "not a batch");
        assert_eq!(read_batch(&json!({"Records": [{"eventSource": "aws:s3"}]})), None, "S3's own notification");
    }

    #[test]
    fn the_metric_line_is_an_embedded_metric_format_document() {
        let line: Value = serde_json::from_str(&metric_line("lookup-service", true, 1_700_000_000_000)).unwrap();
        let metrics = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(metrics["Namespace"], METRIC_NAMESPACE);
        assert_eq!(metrics["Metrics"][0]["Name"], FAILURE_METRIC);
        assert_eq!(line["Stack"], "lookup-service");
        assert_eq!(line[FAILURE_METRIC], 1);
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000u64);
    }

    #[test]
    fn a_failed_batch_returns_every_message() {
        assert_eq!(batch_answer(&["m1".into(), "m2".into()])["batchItemFailures"][1]["itemIdentifier"], "m2");
        assert_eq!(batch_answer(&[])["batchItemFailures"], json!([]));
    }
}
