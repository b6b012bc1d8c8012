//! `Custom::ServicesHealthy`: holds the stack until the named ECS services run healthy tasks, and
//! fails it soon, quoting ECS's stopped reasons, when they will not. A wait longer than one Lambda
//! invocation is handed on to a new invocation of the function; only the last one answers.
//! `qa-deploy wait` runs the same wait from a terminal.

mod ecs;
mod health;
#[cfg(test)]
mod mocked;
mod terminal;
mod wait;

use std::time::{Duration, SystemTime};

use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use cfn_custom_resource::{lenient, CustomResource, Failure, Outcome, RequestContext};
use serde::de::{self, Deserializer, Unexpected};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

pub use ecs::{Container, Deployment, DescribedServices, EcsError, EcsView, Listing, Service, Task};
pub use terminal::wait_in_terminal;
pub use wait::{wait, WaitEnd, WaitRequest};

/// The top-level field a handed-on event carries: when the wait began, in RFC 3339.
pub const STARTED_AT_FIELD: &str = "QaWaitStartedAt";

/// Kept before the handler's deadline for the poll under way and the hand-off itself: a poll
/// makes two ECS calls of at most 20 s each, the invoke at most 10 s.
pub const HAND_OFF_RESERVE: Duration = Duration::from_secs(60);

/// CloudFormation's longest ServiceTimeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    pub cluster: String,
    #[serde(deserialize_with = "lenient::string_list")]
    pub services: Vec<String>,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default = "default_poll_interval", deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// Changes with every task definition revision, so that such an Update waits again; a
    /// service still running an older revision of one of these has not started the deployment
    /// waited for.
    #[serde(default, deserialize_with = "lenient::string_list")]
    pub task_definitions: Vec<String>,
    /// How long a service may not exist yet: the wait runs beside the services' creation, not
    /// after it (CloudFormation completes an ECS service only once it is stable, hours on failing
    /// tasks). Default 0: a missing service fails at once.
    #[serde(default = "no_grace", deserialize_with = "duration")]
    pub missing_service_grace: Duration,
}

fn no_grace() -> Duration {
    Duration::ZERO
}

fn default_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(15)
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(text.trim())
        .map_err(|_| de::Error::invalid_value(Unexpected::Str(&text), &"a duration such as \"30m\" or \"15s\""))
}

/// An ECS client whose calls give up in time for the hand-off (see [`HAND_OFF_RESERVE`]).
pub fn ecs_client(config: &aws_config::SdkConfig) -> aws_sdk_ecs::Client {
    let timeouts = aws_sdk_ecs::config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(Duration::from_secs(8))
        .operation_timeout(Duration::from_secs(20))
        .build();
    aws_sdk_ecs::Client::from_conf(aws_sdk_ecs::config::Builder::from(config).timeout_config(timeouts).build())
}

pub struct ServicesHealthy {
    ecs: aws_sdk_ecs::Client,
    lambda: aws_sdk_lambda::Client,
    /// This function, to hand a long wait on to; set by Lambda.
    function_name: Option<String>,
}

impl ServicesHealthy {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let timeouts = aws_sdk_lambda::config::timeout::TimeoutConfig::builder()
            .operation_timeout(Duration::from_secs(10))
            .build();
        let lambda = aws_sdk_lambda::config::Builder::from(config).timeout_config(timeouts).build();
        Self::with_clients(
            ecs_client(config),
            aws_sdk_lambda::Client::from_conf(lambda),
            std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok().filter(|name| !name.is_empty()),
        )
    }

    pub fn with_clients(
        ecs: aws_sdk_ecs::Client,
        lambda: aws_sdk_lambda::Client,
        function_name: Option<String>,
    ) -> Self {
        ServicesHealthy { ecs, lambda, function_name }
    }

    async fn wait_until_healthy(&self, context: &RequestContext, properties: &Properties) -> Result<Outcome, Failure> {
        let fail = |reason: String| Failure::new(format!("{} {}: {reason}", Self::TYPE, context.logical_id));
        let fix_properties = |problem: String| {
            fail(format!("{problem}. Fix the resource's Properties in the template and update the stack"))
        };
        if properties.timeout > MAX_TIMEOUT {
            return Err(fix_properties(format!(
                "Timeout {} is longer than 1h, CloudFormation's longest ServiceTimeout",
                humantime::format_duration(properties.timeout)
            )));
        }
        check_against_service_timeout(&context.event, properties.timeout).map_err(fix_properties)?;
        let started_at = wait_started_at(&context.event);
        let request = WaitRequest::new(
            &properties.cluster,
            &properties.services,
            properties.timeout,
            properties.poll_interval,
            started_at,
        )
        .map_err(fix_properties)?
        .with_hand_off_at(hand_off_at(context.handler_deadline))
        .with_task_definitions(&properties.task_definitions)
        .with_missing_grace(properties.missing_service_grace);

        let logical_id = context.logical_id.as_str();
        let log_progress = |line: &str| tracing::info!(logical_id, cluster = %request.cluster, "{line}");
        match wait(&self.ecs, &request, log_progress).await {
            WaitEnd::Healthy { .. } => Ok(Outcome::new(physical_id(&request.cluster))),
            WaitEnd::Failed { reason } | WaitEnd::TimedOut { reason } => Err(fail(reason)),
            WaitEnd::HandOff => self.hand_off(context, started_at).await.map_err(fail),
        }
    }

    /// Sends the original event, with when the wait began, to a new invocation of this function.
    async fn hand_off(&self, context: &RequestContext, started_at: SystemTime) -> Result<Outcome, String> {
        let Some(function_name) = &self.function_name else {
            return Err("the wait needs longer than this invocation may run, and AWS_LAMBDA_FUNCTION_NAME is not \
                        set, so it cannot be handed on to a new invocation. Run it in Lambda, or shorten Timeout"
                .to_owned());
        };
        let started = humantime::format_rfc3339_seconds(started_at).to_string();
        let mut event = context.event.clone();
        if let Some(fields) = event.as_object_mut() {
            fields.insert(STARTED_AT_FIELD.to_owned(), Value::String(started.clone()));
        }
        let payload = serde_json::to_vec(&event).expect("a JSON value always serialises");
        self.lambda
            .invoke()
            .function_name(function_name)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|error| {
                format!(
                    "the wait needs longer than this invocation may run, but handing it on to a new invocation of \
                     {function_name} failed: {}. The function's role needs lambda:InvokeFunction on the function \
                     itself",
                    DisplayErrorContext(&error)
                )
            })?;
        tracing::info!(logical_id = %context.logical_id, wait_started_at = %started, "handed the wait on to a new invocation");
        Ok(Outcome::handed_off())
    }
}

/// When to hand the wait on rather than start another poll.
fn hand_off_at(handler_deadline: std::time::Instant) -> Instant {
    Instant::from_std(handler_deadline).checked_sub(HAND_OFF_RESERVE).unwrap_or_else(Instant::now)
}

/// Stable for one cluster: an Update of the same cluster is not a replacement.
fn physical_id(cluster: &str) -> String {
    format!("services-healthy:{cluster}")
}

/// When the wait began: in an earlier invocation if this one continues it, else now.
fn wait_started_at(event: &Value) -> SystemTime {
    let now = SystemTime::now();
    event
        .get(STARTED_AT_FIELD)
        .and_then(Value::as_str)
        .and_then(|text| humantime::parse_rfc3339(text).ok())
        .map_or(now, |started| started.min(now))
}

/// CloudFormation stops waiting after the resource's ServiceTimeout; a wait as long would end in
/// CloudFormation's timeout instead of this resource's reason.
fn check_against_service_timeout(event: &Value, timeout: Duration) -> Result<(), String> {
    let service_timeout = event
        .pointer("/ResourceProperties/ServiceTimeout")
        .and_then(|value| value.as_u64().or_else(|| value.as_str()?.trim().parse().ok()));
    match service_timeout {
        Some(seconds) if timeout.as_secs() >= seconds => Err(format!(
            "Timeout {} is not shorter than the resource's ServiceTimeout ({seconds} s), so CloudFormation would \
             stop waiting before the wait could say why. Set ServiceTimeout a few minutes above Timeout",
            humantime::format_duration(timeout)
        )),
        _ => Ok(()),
    }
}

impl CustomResource for ServicesHealthy {
    const TYPE: &'static str = "Custom::ServicesHealthy";
    type Properties = Properties;

    /// Create and Update (a new task definition is a new deployment) wait the same way.
    async fn create(&self, context: &RequestContext, properties: Properties) -> Result<Outcome, Failure> {
        self.wait_until_healthy(context, &properties).await
    }

    /// Nothing was created: a wait leaves nothing behind.
    async fn delete(&self, _: &RequestContext, physical_id: &str, _: Option<Properties>) -> Result<Outcome, Failure> {
        Ok(Outcome::new(physical_id))
    }
}
