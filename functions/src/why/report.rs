//! The pure part of `qa-deploy why`: which events make the stack's latest operation, which of them
//! are root causes, what to do next, and what may be printed of a log line.

/// One row of `describe-stack-events`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackEvent {
    pub logical_id: String,
    pub physical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
    /// Milliseconds since the epoch.
    pub timestamp_ms: i64,
}

impl StackEvent {
    /// An event of the stack itself, not of one of its resources.
    pub fn is_stack(&self, stack_name: &str) -> bool {
        self.resource_type == "AWS::CloudFormation::Stack" && self.logical_id == stack_name
    }
}

/// The stack statuses with which an operation a person asked for begins. A rollback
/// (`ROLLBACK_IN_PROGRESS`, `UPDATE_ROLLBACK_IN_PROGRESS`) is not one: it belongs to the operation
/// that failed, whose first failures explain it.
const OPERATION_STARTS: [&str; 4] =
    ["CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS", "IMPORT_IN_PROGRESS"];

/// Where the latest operation starts in `newest_first` (describe-stack-events' order): the index of
/// its stack-level `*_IN_PROGRESS` event, if the events reach back that far.
pub fn operation_start(newest_first: &[StackEvent], stack_name: &str) -> Option<usize> {
    newest_first.iter().position(|e| e.is_stack(stack_name) && OPERATION_STARTS.contains(&e.status.as_str()))
}

/// CloudFormation's text for a resource it stopped because another failed; not a cause
/// ("Resource creation cancelled": coreos/coreos-kubernetes#454 leaves these out for the same
/// reason; the update and delete forms follow it).
pub fn is_cancellation(reason: &str) -> bool {
    matches!(reason.trim(), "Resource creation cancelled" | "Resource update cancelled" | "Resource deletion cancelled")
}

/// The root causes among one operation's events (oldest first): the resources' failures in the
/// order they came, without the cancellations they caused and without the stack's own summary
/// ("The following resource(s) failed to create: [...]"), at most `limit`.
pub fn root_causes(operation: &[StackEvent], stack_name: &str, limit: usize) -> Vec<StackEvent> {
    operation
        .iter()
        .filter(|e| !e.is_stack(stack_name) && e.status.ends_with("_FAILED") && !is_cancellation(&e.reason))
        .take(limit)
        .cloned()
        .collect()
}

/// How the stack stands, as `why` judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The latest operation completed: nothing to explain.
    Healthy,
    /// Still running; failures so far are shown.
    InProgress,
    /// The latest operation failed (whether or not its rollback succeeded).
    Failed,
}

pub fn health(status: &str) -> Health {
    match status {
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE" => Health::Healthy,
        s if s.ends_with("_IN_PROGRESS") => Health::InProgress,
        _ => Health::Failed,
    }
}

/// What a person does next, for the stack's status (CloudFormation user guide, "Stack status
/// codes": a stack in ROLLBACK_COMPLETE can only be deleted; UPDATE_ROLLBACK_FAILED is left with
/// continue-update-rollback).
pub fn next_steps(stack: &str, status: &str) -> Vec<String> {
    let delete = format!("aws cloudformation delete-stack --stack-name {stack}");
    match status {
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE" => Vec::new(),
        "ROLLBACK_COMPLETE" => vec![
            "fix the cause above".to_owned(),
            format!("delete the stack ({delete}) before creating it again: a stack whose creation rolled back can only be deleted"),
        ],
        "ROLLBACK_FAILED" | "CREATE_FAILED" => vec![
            "fix the cause above".to_owned(),
            format!("delete the stack ({delete}), then create it again"),
        ],
        "UPDATE_ROLLBACK_COMPLETE" => vec![
            "the stack runs its previous configuration: fix the cause above and update it again".to_owned(),
        ],
        "UPDATE_ROLLBACK_FAILED" => vec![
            "fix what the rollback failed on, then aws cloudformation continue-update-rollback --stack-name "
                .to_owned()
                + stack,
        ],
        "DELETE_FAILED" => vec![format!("fix the cause above, then delete the stack again ({delete})")],
        s if s.ends_with("_IN_PROGRESS") => {
            vec![format!("the operation is still running: run qa-deploy why --stack {stack} again when it ends")]
        }
        _ => vec!["fix the cause above and run the operation again".to_owned()],
    }
}

/// The query parameters of a pre-signed URL that are credentials: their values are replaced.
const SECRET_PARAMETERS: [&str; 3] = ["x-amz-signature", "signature", "x-amz-security-token"];

/// `text` with the values of pre-signed URLs' signature (and session token) query parameters
/// replaced by `<redacted>`: a ResponseURL's signature lets anyone answer for the stack
/// (aws-cdk#21224). Parameter names are matched without regard to case.
pub fn redact(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = lower[at..].find(['?', '&']) {
        let start = at + found + 1;
        at = start;
        let Some(name) = SECRET_PARAMETERS.iter().find(|name| lower[start..].starts_with(&format!("{name}="))) else {
            continue;
        };
        let value_start = start + name.len() + 1;
        let value_end = text[value_start..]
            .find(|c: char| c == '&' || c == '"' || c == '\'' || c == '\\' || c.is_whitespace())
            .map_or(text.len(), |end| value_start + end);
        out.push_str(&text[copied..value_start]);
        out.push_str("<redacted>");
        copied = value_end;
        at = value_end;
    }
    out.push_str(&text[copied..]);
    out
}

/// A log line as printed: a JSON line (our function's) as `LEVEL message key=value…`, other text as
/// it is; on one line, redacted, cut to `max_chars`.
pub fn printable(line: &str, max_chars: usize) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(line.trim()) {
        Ok(serde_json::Value::Object(fields)) => {
            let mut parts = Vec::new();
            for key in ["level", "message"] {
                if let Some(value) = fields.get(key).and_then(serde_json::Value::as_str) {
                    parts.push(value.to_owned());
                }
            }
            for (key, value) in &fields {
                if ["level", "message", "target", "timestamp", "spans", "span"].contains(&key.as_str()) {
                    continue;
                }
                match value {
                    serde_json::Value::String(text) => parts.push(format!("{key}={text}")),
                    serde_json::Value::Number(_) | serde_json::Value::Bool(_) => parts.push(format!("{key}={value}")),
                    _ => {}
                }
            }
            parts.join(" ")
        }
        _ => line.to_owned(),
    };
    let mut text = redact(&text.split_whitespace().collect::<Vec<_>>().join(" "));
    if let Some((cut, _)) = text.char_indices().nth(max_chars) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// The CloudFormation RequestId of a custom resource's failure: our runtime's reason ends with
/// "(CloudWatch Logs group G stream S, request R)", and a failed Create answers the physical id
/// `never-created:R`.
pub fn request_id(event: &StackEvent) -> Option<String> {
    let from_reason = event
        .reason
        .rsplit_once(", request ")
        .map(|(_, rest)| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect::<String>());
    from_reason
        .filter(|id| !id.is_empty() && id != "unknown")
        .or_else(|| {
            event.physical_id.strip_prefix(cfn_custom_resource::runner::NEVER_CREATED_PREFIX).map(str::to_owned)
        })
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: &str = "lookup-service-demo";

    fn event(logical_id: &str, resource_type: &str, status: &str, reason: &str) -> StackEvent {
        StackEvent {
            logical_id: logical_id.into(),
            resource_type: resource_type.into(),
            status: status.into(),
            reason: reason.into(),
            ..StackEvent::default()
        }
    }

    fn stack(status: &str, reason: &str) -> StackEvent {
        event(STACK, "AWS::CloudFormation::Stack", status, reason)
    }

    /// A failed create as describe-stack-events lists it, newest first.
    fn failed_create() -> Vec<StackEvent> {
        let mut oldest_first = vec![
            stack("CREATE_IN_PROGRESS", "User Initiated"),
            event("LogGroup", "AWS::Logs::LogGroup", "CREATE_COMPLETE", ""),
            event("EnvFileCheck", "Custom::EnvFileCheck", "CREATE_IN_PROGRESS", ""),
            event("SeedAuthorities", "Custom::SeedAuthorities", "CREATE_IN_PROGRESS", ""),
            event("EnvFileCheck", "Custom::EnvFileCheck", "CREATE_FAILED", "the bucket is public"),
            event("SeedAuthorities", "Custom::SeedAuthorities", "CREATE_FAILED", "Resource creation cancelled"),
            stack(
                "ROLLBACK_IN_PROGRESS",
                "The following resource(s) failed to create: [EnvFileCheck, SeedAuthorities]. Rollback requested by user.",
            ),
            event("EnvFileCheck", "Custom::EnvFileCheck", "DELETE_COMPLETE", ""),
            stack("ROLLBACK_COMPLETE", ""),
        ];
        oldest_first.reverse();
        oldest_first
    }

    #[test]
    fn the_operation_starts_at_the_stacks_last_create_update_or_delete_not_at_its_rollback() {
        let events = failed_create();
        assert_eq!(operation_start(&events, STACK), Some(8));
        let mut update = vec![stack("UPDATE_ROLLBACK_IN_PROGRESS", ""), stack("UPDATE_IN_PROGRESS", "User Initiated")];
        update.extend(failed_create());
        assert_eq!(operation_start(&update, STACK), Some(1), "the update, not the older create");
        assert_eq!(operation_start(&events[..3], STACK), None, "not within these events");
    }

    #[test]
    fn root_causes_are_the_first_failures_without_the_cancellations_and_the_stack_summary() {
        let mut operation = failed_create();
        operation.reverse();
        let causes = root_causes(&operation, STACK, 5);
        assert_eq!(causes.len(), 1, "{causes:#?}");
        assert_eq!(causes[0].logical_id, "EnvFileCheck");
        assert_eq!(causes[0].reason, "the bucket is public");
    }

    #[test]
    fn a_stack_named_like_a_resource_type_is_still_told_from_its_resources() {
        let nested = event(STACK, "AWS::CloudFormation::Stack", "CREATE_FAILED", "nested failed");
        let other = event("Child", "AWS::CloudFormation::Stack", "CREATE_FAILED", "nested failed");
        assert_eq!(root_causes(&[nested, other], STACK, 5).len(), 1, "a nested stack is a resource");
    }

    #[test]
    fn cancellations_of_every_kind_are_not_causes() {
        for text in ["Resource creation cancelled", "Resource update cancelled", "Resource deletion cancelled"] {
            assert!(is_cancellation(text), "{text}");
        }
        assert!(!is_cancellation("Resource handler returned message: cancelled by the user's code"));
    }

    #[test]
    fn health_and_what_to_do_follow_the_status() {
        assert_eq!(health("CREATE_COMPLETE"), Health::Healthy);
        assert_eq!(health("UPDATE_COMPLETE"), Health::Healthy);
        assert_eq!(health("UPDATE_ROLLBACK_COMPLETE"), Health::Failed, "the update failed, even if rolled back");
        assert_eq!(health("ROLLBACK_COMPLETE"), Health::Failed);
        assert_eq!(health("UPDATE_IN_PROGRESS"), Health::InProgress);
        assert!(next_steps(STACK, "CREATE_COMPLETE").is_empty());
        let steps = next_steps(STACK, "ROLLBACK_COMPLETE").join("\n");
        assert!(
            steps.contains("delete the stack (aws cloudformation delete-stack --stack-name lookup-service-demo) before creating it again"),
            "{steps}"
        );
        assert!(next_steps(STACK, "UPDATE_ROLLBACK_FAILED")[0]
            .contains("continue-update-rollback --stack-name lookup-service-demo"));
        assert!(next_steps(STACK, "UPDATE_ROLLBACK_COMPLETE")[0].contains("update it again"));
    }

    #[test]
    fn presigned_url_signatures_and_tokens_are_redacted_and_the_rest_kept() {
        let url = "PUT https://s3.amazonaws.com/cfn-responses/arn%3Aaws?X-Amz-Algorithm=AWS4-HMAC-SHA256\
                   &X-Amz-Credential=AKIA%2F20261126&X-Amz-Security-Token=FwoGZX&X-Amz-Signature=0a1b2c3d done";
        assert_eq!(
            redact(url),
            "PUT https://s3.amazonaws.com/cfn-responses/arn%3Aaws?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIA%2F20261126&X-Amz-Security-Token=<redacted>&X-Amz-Signature=<redacted> done"
        );
        let legacy = r#"{"url":"https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIA&Expires=1&Signature=abc%2Bdef"}"#;
        assert_eq!(
            redact(legacy),
            r#"{"url":"https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIA&Expires=1&Signature=<redacted>"}"#
        );
        assert_eq!(redact("?x-amz-signature=LOWER"), "?x-amz-signature=<redacted>", "any case");
        assert_eq!(
            redact("a Signature=kept when not a query parameter"),
            "a Signature=kept when not a query parameter"
        );
        assert_eq!(redact("ünïcödé ?Signature=s&b=1"), "ünïcödé ?Signature=<redacted>&b=1");
    }

    #[test]
    fn a_json_line_prints_as_level_message_and_fields_on_one_redacted_line() {
        let line = r#"{"level":"ERROR","message":"could not deliver","response_url":"https://x/r?X-Amz-Signature=s3cr3t","duration_ms":12,"target":"cfn","spans":[{"request_id":"r"}]}"#;
        assert_eq!(
            printable(line, 300),
            "ERROR could not deliver response_url=https://x/r?X-Amz-Signature=<redacted> duration_ms=12"
        );
        assert_eq!(printable("plain\ntext  here", 300), "plain text here");
        assert_eq!(printable("abcdef", 3), "abc…");
    }

    #[test]
    fn the_request_id_comes_from_our_reason_or_a_never_created_id() {
        let mut failed = event("EnvFileCheck", "Custom::EnvFileCheck", "CREATE_FAILED", "");
        failed.reason = "bad (CloudWatch Logs group g stream s, request 5b2d-7e10)".into();
        assert_eq!(request_id(&failed).as_deref(), Some("5b2d-7e10"));
        failed.reason = "CloudFormation did not receive a response".into();
        failed.physical_id = "never-created:ab-12".into();
        assert_eq!(request_id(&failed).as_deref(), Some("ab-12"));
        failed.physical_id = "lookup-EnvFileCheck-1".into();
        assert_eq!(request_id(&failed), None);
    }
}
