//! The Lambda entry point: logging, settings, and the runtime loop.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

use crate::resource::Resources;
use crate::response::HttpSender;
use crate::runner::{answer_event, Invocation, Settings};

/// JSON lines inside Lambda (CloudWatch Logs Insights reads their fields), plain text elsewhere.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let _ = if in_lambda {
        builder.json().flatten_event(true).with_current_span(false).without_time().try_init()
    } else {
        builder.try_init()
    };
}

/// Serves `resources` until the Lambda environment shuts the process down.
pub async fn run(resources: Resources) -> Result<(), lambda_runtime::Error> {
    run_with(resources, |_event| async { None }).await
}

/// As [`run`], and an event that is not a CloudFormation request (it has no `RequestType`), such
/// as a batch from an event source mapping, goes to `other` first: its answer is the invocation's
/// result; `None` leaves the event to the runner, which logs that nobody can be answered.
pub async fn run_with<F, Fut>(resources: Resources, other: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(LambdaEvent<Value>) -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    init_logging();
    let settings = Settings::from_env();
    let sender = HttpSender::default();
    tracing::info!(serves = ?resources.types(), margin_s = settings.deadline_margin.as_secs_f64(), "custom-resource function ready");
    let resources = &resources;
    let (settings, sender, other) = (&settings, &sender, &other);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        if event.payload.get("RequestType").is_none() {
            if let Some(answer) = other(event.clone()).await {
                return Ok::<Value, lambda_runtime::Error>(answer);
            }
        }
        let invocation = Invocation {
            deadline: event.context.deadline(),
            // The request id lets `filter-log-events` find this request's lines (each carries it).
            log_pointer: format!(
                "CloudWatch Logs group {} stream {}, request {}",
                event.context.env_config.log_group,
                event.context.env_config.log_stream,
                event.payload.get("RequestId").and_then(Value::as_str).unwrap_or("unknown")
            ),
        };
        let report = answer_event(resources, sender, settings, event.payload, &invocation).await;
        if let Some(answer) = report.answer {
            return Ok::<Value, lambda_runtime::Error>(answer);
        }
        // Returning an error would make Lambda retry an event that has already been answered.
        Ok::<Value, lambda_runtime::Error>(serde_json::json!({
            "status": report.status.map(|s| s.as_str()),
            "delivered": report.delivered,
            "handed_off": report.handed_off,
        }))
    }))
    .await
}
