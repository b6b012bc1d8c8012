//! Turns one CloudFormation event into exactly one answer, whatever the handler does:
//! returns, fails, panics or runs out of time.

use std::time::{Duration, SystemTime};

use aws_lambda_events::cloudformation::CloudFormationCustomResourceRequest;
use serde_json::Value;
use tokio::time::Instant;
use tracing::Instrument;

use crate::resource::{Action, Failure, Outcome, RequestContext, Resources};
use crate::response::{self, Answer, Envelope, ResponseSender, Status, MAX_PHYSICAL_ID_BYTES};

/// Marks the physical id of a resource whose Create failed, so the Delete that
/// CloudFormation sends during rollback succeeds without touching anything.
pub const NEVER_CREATED_PREFIX: &str = "never-created:";

/// Set (to the delegating resource's description) on a request that one function hands to
/// another to run: that function returns the answer to its caller, which answers
/// CloudFormation. Such an event carries no ResponseURL: the credential stays with the caller.
pub const DELEGATED_FIELD: &str = "QaDelegatedBy";

/// The event to hand to another function with [`DELEGATED_FIELD`]: the same request, without the
/// ResponseURL.
pub fn delegated_event(event: &Value, by: &str) -> Value {
    let mut event = event.clone();
    if let Some(fields) = event.as_object_mut() {
        fields.remove("ResponseURL");
        fields.insert(DELEGATED_FIELD.to_owned(), Value::String(by.to_owned()));
    }
    event
}

/// True when this request was handed over by another function, which answers CloudFormation.
pub fn is_delegated(event: &Value) -> bool {
    event.get(DELEGATED_FIELD).is_some()
}

/// Reads the answer a delegated request returned (the response body CloudFormation would have
/// received) as the delegating handler's result.
pub fn delegated_result(answer: &Value) -> Result<Outcome, Failure> {
    let text = |field: &str| answer.get(field).and_then(Value::as_str).unwrap_or_default().to_owned();
    match text("Status").as_str() {
        "SUCCESS" => {
            let mut outcome = Outcome::new(text("PhysicalResourceId"));
            if let Some(data) = answer.get("Data").and_then(Value::as_object) {
                for (key, value) in data {
                    outcome = outcome.with_data(key, value.as_str().map_or_else(|| value.to_string(), str::to_owned));
                }
            }
            outcome.no_echo = answer.get("NoEcho").and_then(Value::as_bool).unwrap_or(false);
            Ok(outcome)
        }
        "FAILED" => Err(Failure::new(text("Reason"))),
        _ => Err(Failure::new(format!("the delegated request returned no answer: {}", short(answer)))),
    }
}

fn short(value: &Value) -> String {
    let mut text = value.to_string();
    if let Some((cut, _)) = text.char_indices().nth(300) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// How long before the Lambda's deadline the runner gives up on the handler and answers.
    pub deadline_margin: Duration,
}

impl Settings {
    pub const MARGIN_VARIABLE: &'static str = "CFN_DEADLINE_MARGIN_SECONDS";

    /// Reads the margin from the environment. A bad value falls back to the default rather than
    /// failing the function's start: a function that does not start cannot answer CloudFormation.
    pub fn from_env() -> Self {
        const DEFAULT_SECONDS: f64 = 10.0;
        let seconds = match std::env::var(Self::MARGIN_VARIABLE) {
            Ok(text) => text.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 1.0).unwrap_or_else(|| {
                tracing::error!(
                    "{}={text:?} is not a number of seconds of at least 1; using {DEFAULT_SECONDS}",
                    Self::MARGIN_VARIABLE
                );
                DEFAULT_SECONDS
            }),
            Err(_) => DEFAULT_SECONDS,
        };
        Settings { deadline_margin: Duration::from_secs_f64(seconds) }
    }
}

/// What the Lambda runtime tells of this invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub deadline: SystemTime,
    /// Where a person finds this invocation's log, e.g. the CloudWatch group and stream.
    pub log_pointer: String,
}

/// What became of one event: for the log line and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub status: Option<Status>,
    pub delivered: bool,
    /// The handler passed the request on to a new invocation, which answers it.
    pub handed_off: bool,
    /// For a delegated request: the answer, returned to the function that delegated it.
    pub answer: Option<Value>,
}

struct Request {
    envelope: Envelope,
    resource_type: String,
    request_type: String,
    response_url: String,
    /// The id to answer with when the request fails.
    physical_id_on_failure: String,
    /// What to do, or why the event is not a request that can be handled.
    action: Result<Action, String>,
}

fn text(event: &Value, field: &str) -> String {
    event.get(field).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn never_created_id(request_id: &str) -> String {
    format!("{NEVER_CREATED_PREFIX}{request_id}")
}

/// Reads the envelope even from a malformed event, so it can still be answered.
fn read_request(event: &Value) -> Result<Request, String> {
    let envelope = Envelope {
        stack_id: text(event, "StackId"),
        request_id: text(event, "RequestId"),
        logical_id: text(event, "LogicalResourceId"),
    };
    let response_url = text(event, "ResponseURL");
    if response_url.is_empty() && !is_delegated(event) {
        return Err("the event has no ResponseURL".to_owned());
    }
    let physical_id_on_failure = match text(event, "PhysicalResourceId") {
        id if !id.is_empty() => id,
        _ => never_created_id(&envelope.request_id),
    };
    let mut parsed = event.clone();
    if let (Some(fields), true) = (parsed.as_object_mut(), response_url.is_empty()) {
        // A delegated request has no ResponseURL; the request type still needs the field.
        fields.insert("ResponseURL".to_owned(), Value::String(String::new()));
    }
    let action = match serde_json::from_value(parsed) {
        Ok(CloudFormationCustomResourceRequest::Create(create)) => {
            Ok(Action::Create { properties: create.resource_properties })
        }
        Ok(CloudFormationCustomResourceRequest::Update(update)) => Ok(Action::Update {
            physical_id: update.physical_resource_id,
            properties: update.resource_properties,
            old_properties: update.old_resource_properties,
        }),
        Ok(CloudFormationCustomResourceRequest::Delete(delete)) => {
            Ok(Action::Delete { physical_id: delete.physical_resource_id, properties: delete.resource_properties })
        }
        Ok(_) => Err("unknown RequestType".to_owned()),
        Err(error) => Err(error.to_string()),
    };
    Ok(Request {
        envelope,
        resource_type: text(event, "ResourceType"),
        request_type: text(event, "RequestType"),
        response_url,
        physical_id_on_failure,
        action,
    })
}

/// Handles one event and sends its one answer, unless the handler handed the request on to a new
/// invocation that answers it. Never returns before the answer was delivered or the attempt to
/// deliver it ended.
///
/// Every line logged meanwhile, the handler's included, is in a `request` span carrying
/// CloudFormation's `request_id` and the `logical_id`: in Lambda's JSON lines they appear on each
/// line, so `filter-log-events --filter-pattern '"<RequestId>"'` finds one request's lines
/// (`qa-deploy why` does), as the reason's log pointer names the request.
pub async fn answer_event(
    resources: &Resources,
    sender: &impl ResponseSender,
    settings: &Settings,
    event: Value,
    invocation: &Invocation,
) -> Report {
    let span = tracing::info_span!(
        "request",
        request_id = %text(&event, "RequestId"),
        logical_id = %text(&event, "LogicalResourceId")
    );
    answer_event_in_span(resources, sender, settings, event, invocation).instrument(span).await
}

async fn answer_event_in_span(
    resources: &Resources,
    sender: &impl ResponseSender,
    settings: &Settings,
    event: Value,
    invocation: &Invocation,
) -> Report {
    let started = Instant::now();
    let deadline = started + invocation.deadline.duration_since(SystemTime::now()).unwrap_or_default();
    let request = match read_request(&event) {
        Ok(request) => request,
        Err(problem) => {
            tracing::error!(
                request_type = %text(&event, "RequestType"),
                logical_id = %text(&event, "LogicalResourceId"),
                resource_type = %text(&event, "ResourceType"),
                outcome = "not answered",
                "{problem}: this is not a CloudFormation custom-resource request, so there is no one to answer"
            );
            return Report { status: None, delivered: false, handed_off: false, answer: None };
        }
    };

    let Some(answer) = decide(resources, settings, &request, &event, deadline).await else {
        tracing::info!(
            request_type = %request.request_type, logical_id = %request.envelope.logical_id,
            resource_type = %request.resource_type, outcome = "handed off",
            duration_ms = started.elapsed().as_millis() as u64,
            "handed the request on to a new invocation, which answers it"
        );
        return Report { status: None, delivered: false, handed_off: true, answer: None };
    };
    let body = response::body(&request.envelope, &answer, &invocation.log_pointer);
    if is_delegated(&event) {
        tracing::info!(
            request_type = %request.request_type, logical_id = %request.envelope.logical_id,
            resource_type = %request.resource_type, outcome = answer.status.as_str(),
            duration_ms = started.elapsed().as_millis() as u64,
            delegated_by = %text(&event, DELEGATED_FIELD), "returned the answer to the function that delegated it"
        );
        let returned = serde_json::from_slice(&body).ok();
        return Report { status: Some(answer.status), delivered: true, handed_off: false, answer: returned };
    }
    let budget = deadline.saturating_duration_since(Instant::now()).saturating_sub(Duration::from_secs(1));
    let delivery = sender.send(&request.response_url, body, budget.max(Duration::from_secs(1))).await;

    let duration_ms = started.elapsed().as_millis() as u64;
    let status = answer.status.as_str();
    let response_url = response::redact_url(&request.response_url);
    let fields = (&request.request_type, &request.envelope.logical_id, &request.resource_type);
    match &delivery {
        Ok(http_status) => tracing::info!(
            request_type = %fields.0, logical_id = %fields.1, resource_type = %fields.2,
            outcome = status, physical_id = %answer.physical_id, reason = answer.reason.as_deref().unwrap_or(""),
            duration_ms, http_status, %response_url, "answered CloudFormation"
        ),
        Err(error) => tracing::error!(
            request_type = %fields.0, logical_id = %fields.1, resource_type = %fields.2,
            outcome = status, physical_id = %answer.physical_id, reason = answer.reason.as_deref().unwrap_or(""),
            duration_ms, %response_url,
            "could not deliver the answer to CloudFormation: {}; the stack waits for its ServiceTimeout", error.message
        ),
    }
    Report { status: Some(answer.status), delivered: delivery.is_ok(), handed_off: false, answer: None }
}

/// The answer to send; `None` when the handler handed the request on to a new invocation.
async fn decide(
    resources: &Resources,
    settings: &Settings,
    request: &Request,
    event: &Value,
    deadline: Instant,
) -> Option<Answer> {
    let failed = |reason: String| Answer {
        status: Status::Failed,
        reason: Some(reason),
        physical_id: request.physical_id_on_failure.clone(),
        data: Default::default(),
        no_echo: false,
    };
    let who = format!("{} {}", request.resource_type, request.envelope.logical_id);
    let action = match &request.action {
        Ok(action) => action.clone(),
        Err(problem) => {
            return Some(failed(format!(
                "{who}: the event is not a valid CloudFormation custom-resource request ({problem}); \
                 it must come from CloudFormation with RequestType Create, Update or Delete"
            )))
        }
    };
    if let Action::Delete { physical_id, .. } = &action {
        if physical_id.starts_with(NEVER_CREATED_PREFIX) {
            tracing::info!(logical_id = %request.envelope.logical_id, "its Create failed: nothing to delete");
            return Some(Answer {
                status: Status::Success,
                reason: None,
                physical_id: physical_id.clone(),
                data: Default::default(),
                no_echo: false,
            });
        }
    }
    if !resources.serves(&request.resource_type) {
        let served = match resources.types() {
            types if types.is_empty() => "no resource types yet".to_owned(),
            types => types.join(", "),
        };
        return Some(failed(format!(
            "{who}: this function does not serve resource type {:?}; it serves {served}. \
             Fix the resource's Type in the template or point its ServiceToken at the right function",
            request.resource_type,
        )));
    }

    let handler_deadline = deadline.checked_sub(settings.deadline_margin).unwrap_or(deadline);
    let time_allowed = handler_deadline.saturating_duration_since(Instant::now());
    let context = RequestContext {
        stack_id: request.envelope.stack_id.clone(),
        request_id: request.envelope.request_id.clone(),
        logical_id: request.envelope.logical_id.clone(),
        resource_type: request.resource_type.clone(),
        handler_deadline: handler_deadline.into_std(),
        event: event.clone(),
    };
    if time_allowed.is_zero() {
        return Some(failed(format!(
            "{who}: the function's time limit leaves no time to work after the {} s kept to answer; \
             raise the function's Timeout (or lower {})",
            settings.deadline_margin.as_secs(),
            Settings::MARGIN_VARIABLE
        )));
    }
    let handler = resources.dispatch(context, action).expect("the type is served");
    // A spawned task leaves the caller's span behind: the handler's lines keep the request's.
    let mut task = tokio::spawn(handler.instrument(tracing::Span::current()));
    let result = match tokio::time::timeout_at(handler_deadline, &mut task).await {
        Ok(joined) => joined,
        Err(_) => {
            task.abort();
            return Some(failed(format!(
                "{who}: did not finish within {} s, the function's time limit less a {} s margin to answer. \
                 See the log for how far it got; raise the function's Timeout if the work is legitimately longer",
                time_allowed.as_secs(),
                settings.deadline_margin.as_secs()
            )));
        }
    };
    let answer = match result {
        Ok(Ok(outcome)) if outcome.is_handed_off() => return None,
        Ok(Ok(outcome)) => success(&who, outcome).unwrap_or_else(failed),
        Ok(Err(Failure { reason })) => failed(reason),
        Err(join_error) => {
            let detail = match join_error.try_into_panic() {
                Ok(payload) => payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
                Err(error) => error.to_string(),
            };
            tracing::error!(logical_id = %request.envelope.logical_id, panic = %detail, "the handler panicked");
            failed(format!(
                "{who}: internal error — the function crashed while handling {} (details in the log). \
                 This is a bug: please report it with the log; retrying the stack operation may not help",
                request.request_type
            ))
        }
    };
    Some(answer)
}

fn success(who: &str, outcome: Outcome) -> Result<Answer, String> {
    let length = outcome.physical_id.len();
    if outcome.physical_id.is_empty() || length > MAX_PHYSICAL_ID_BYTES {
        return Err(format!(
            "{who}: internal error — the handler returned a physical id of {length} bytes; \
             CloudFormation needs 1 to {MAX_PHYSICAL_ID_BYTES}. This is a bug: please report it"
        ));
    }
    Ok(Answer {
        status: Status::Success,
        reason: None,
        physical_id: outcome.physical_id,
        data: outcome.data,
        no_echo: outcome.no_echo,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::resource::CustomResource;
    use crate::response::SendError;

    #[derive(Default)]
    struct RecordingSender {
        bodies: Mutex<Vec<Value>>,
    }

    impl ResponseSender for RecordingSender {
        async fn send(&self, _url: &str, body: Vec<u8>, _budget: Duration) -> Result<u32, SendError> {
            self.bodies.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
            Ok(200)
        }
    }

    #[derive(Deserialize)]
    struct NoProperties {}

    /// Sleeps on Create, fails on Delete: so a successful Delete shows it was not called.
    struct Sleeper;

    impl CustomResource for Sleeper {
        const TYPE: &'static str = "Custom::Sleeper";
        type Properties = NoProperties;

        async fn create(&self, _: &RequestContext, _: NoProperties) -> Result<Outcome, Failure> {
            std::future::pending().await
        }

        async fn update(
            &self,
            _: &RequestContext,
            id: &str,
            _: NoProperties,
            _: Option<NoProperties>,
        ) -> Result<Outcome, Failure> {
            Ok(Outcome::new(id))
        }

        async fn delete(&self, _: &RequestContext, _: &str, _: Option<NoProperties>) -> Result<Outcome, Failure> {
            Err(Failure::new("Delete was called"))
        }
    }

    /// Hands every Create on to "another invocation".
    struct Relay;

    impl CustomResource for Relay {
        const TYPE: &'static str = "Custom::Relay";
        type Properties = NoProperties;

        async fn create(&self, _: &RequestContext, _: NoProperties) -> Result<Outcome, Failure> {
            Ok(Outcome::handed_off())
        }

        async fn update(
            &self,
            _: &RequestContext,
            id: &str,
            _: NoProperties,
            _: Option<NoProperties>,
        ) -> Result<Outcome, Failure> {
            Ok(Outcome::new(id))
        }

        async fn delete(&self, _: &RequestContext, id: &str, _: Option<NoProperties>) -> Result<Outcome, Failure> {
            Ok(Outcome::new(id))
        }
    }

    fn event(request_type: &str, physical_id: &str) -> Value {
        json!({
            "RequestType": request_type, "ResponseURL": "https://example.invalid/r?X-Amz-Signature=s",
            "StackId": "stack", "RequestId": "request", "ResourceType": "Custom::Sleeper",
            "LogicalResourceId": "Nap", "PhysicalResourceId": physical_id, "ResourceProperties": {}
        })
    }

    async fn answer(event: Value, seconds_left: u64) -> (Report, Vec<Value>) {
        let sender = RecordingSender::default();
        let settings = Settings { deadline_margin: Duration::from_secs(2) };
        let invocation = Invocation {
            deadline: SystemTime::now() + Duration::from_secs(seconds_left),
            log_pointer: "the log".into(),
        };
        let report =
            answer_event(&Resources::new().with(Sleeper).with(Relay), &sender, &settings, event, &invocation).await;
        (report, sender.bodies.into_inner().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn handler_past_the_deadline_less_the_margin_is_answered_failed_once() {
        let (report, bodies) = answer(event("Create", ""), 4).await;
        assert_eq!(report, Report { status: Some(Status::Failed), delivered: true, handed_off: false, answer: None });
        assert_eq!(bodies.len(), 1);
        assert!(bodies[0]["Reason"].as_str().unwrap().contains("Custom::Sleeper Nap: did not finish within 1 s"));
        assert_eq!(bodies[0]["PhysicalResourceId"], "never-created:request");
    }

    #[tokio::test]
    async fn time_limit_shorter_than_the_margin_is_explained() {
        let (_, bodies) = answer(event("Create", ""), 1).await;
        assert!(bodies[0]["Reason"].as_str().unwrap().contains("raise the function's Timeout"), "{}", bodies[0]);
    }

    #[tokio::test]
    async fn delete_of_a_never_created_resource_succeeds_without_the_handler() {
        let (_, bodies) = answer(event("Delete", "never-created:earlier"), 30).await;
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0]["Status"], "SUCCESS");
        assert_eq!(bodies[0]["PhysicalResourceId"], "never-created:earlier");
    }

    #[tokio::test]
    async fn failed_update_keeps_the_physical_id() {
        let mut update = event("Update", "slept");
        update["ResourceProperties"] = json!("not an object");
        update["OldResourceProperties"] = json!({});
        let (_, bodies) = answer(update, 30).await;
        assert_eq!(bodies[0]["Status"], "FAILED");
        assert_eq!(bodies[0]["PhysicalResourceId"], "slept", "a failed Update must not look like a replacement");
    }

    #[tokio::test]
    async fn event_without_response_url_is_not_answered() {
        let mut event = event("Create", "");
        event.as_object_mut().unwrap().remove("ResponseURL");
        let (report, bodies) = answer(event, 30).await;
        assert_eq!(report, Report { status: None, delivered: false, handed_off: false, answer: None });
        assert!(bodies.is_empty());
    }

    #[tokio::test]
    async fn handed_off_request_is_left_to_the_invocation_it_was_handed_to() {
        let mut create = event("Create", "");
        create["ResourceType"] = json!("Custom::Relay");
        let (report, bodies) = answer(create, 30).await;
        assert_eq!(report, Report { status: None, delivered: false, handed_off: true, answer: None });
        assert!(bodies.is_empty(), "this invocation must not answer: {bodies:?}");
    }

    #[tokio::test]
    async fn event_handed_on_with_a_field_of_the_handler_is_answered_once() {
        let mut update = event("Update", "relayed");
        update["ResourceType"] = json!("Custom::Relay");
        update["OldResourceProperties"] = json!({});
        update["ContinuedSince"] = json!("2026-11-25T10:00:00Z");
        let (report, bodies) = answer(update, 30).await;
        assert_eq!(report, Report { status: Some(Status::Success), delivered: true, handed_off: false, answer: None });
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0]["PhysicalResourceId"], "relayed");
    }

    #[tokio::test]
    async fn delegated_request_returns_its_answer_instead_of_sending_it() {
        let mut update = delegated_event(&event("Update", "relayed"), "Custom::Relay Nap on the controller");
        update["ResourceType"] = json!("Custom::Relay");
        update["OldResourceProperties"] = json!({});
        let (report, bodies) = answer(update, 30).await;
        assert!(bodies.is_empty(), "nothing is sent: the delegating function answers CloudFormation");
        let answer = report.answer.expect("the answer is returned");
        assert_eq!(answer["Status"], "SUCCESS");
        assert_eq!(delegated_result(&answer).unwrap().physical_id, "relayed");
    }

    #[test]
    fn a_delegated_failure_keeps_its_reason() {
        let answer = json!({"Status": "FAILED", "Reason": "Custom::SeedAuthorities Seed: broken.yml", "PhysicalResourceId": "x"});
        assert_eq!(delegated_result(&answer).unwrap_err().reason, "Custom::SeedAuthorities Seed: broken.yml");
        assert!(delegated_result(&json!({"errorMessage": "boom"})).is_err());
    }
}
