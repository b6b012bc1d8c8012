//! `explain` against a fake AWS: what is read where, and what the report says.

use std::collections::HashMap;
use std::sync::Mutex;

use super::aws::{AwsLogs, EventsPage, LogLine, StackSummary, StoppedContainer, StoppedTask, WhyAws};
use super::report::StackEvent;
use super::*;

const STACK: &str = "lookup-service-demo";
const TEMPLATE: &str = r#"
Resources:
  CheckAndWaitFunctionLogGroup: {Type: AWS::Logs::LogGroup}
  LogGroup: {Type: AWS::Logs::LogGroup}
  CheckAndWaitFunction:
    Type: AWS::Lambda::Function
    Properties:
      LoggingConfig: {LogGroup: !Ref CheckAndWaitFunctionLogGroup}
  EnvFileCheck:
    Type: Custom::EnvFileCheck
    Properties:
      ServiceToken: !GetAtt CheckAndWaitFunction.Arn
  ServicesHealthy:
    Type: Custom::ServicesHealthy
    Properties:
      ServiceToken: !GetAtt CheckAndWaitFunction.Arn
  Cluster: {Type: AWS::ECS::Cluster}
  AppService:
    Type: AWS::ECS::Service
    Properties:
      Cluster: !Ref Cluster
"#;

#[derive(Default)]
struct FakeAws {
    status: String,
    /// Oldest first; served newest first in pages of two.
    events: Vec<StackEvent>,
    lines: HashMap<String, Vec<String>>,
    tasks: Vec<StoppedTask>,
    asked: Mutex<Vec<String>>,
}

impl WhyAws for FakeAws {
    async fn stack(&self, name: &str) -> Result<Option<StackSummary>, String> {
        Ok((name == STACK).then(|| StackSummary {
            id: "arn:stack".into(),
            name: STACK.into(),
            status: self.status.clone(),
            reason: String::new(),
        }))
    }

    async fn events(&self, _: &str, token: Option<String>) -> Result<EventsPage, String> {
        let newest_first: Vec<StackEvent> = self.events.iter().rev().cloned().collect();
        let from: usize = token.map_or(0, |t| t.parse().unwrap());
        let to = (from + 2).min(newest_first.len());
        Ok((newest_first[from..to].to_vec(), (to < newest_first.len()).then(|| to.to_string())))
    }

    async fn template(&self, _: &str) -> Result<String, String> {
        Ok(TEMPLATE.into())
    }

    async fn physical_ids(&self, _: &str) -> Result<HashMap<String, String>, String> {
        // After a rollback only the retained log groups are left.
        Ok(HashMap::from([
            ("CheckAndWaitFunctionLogGroup".into(), "lookup-CheckAndWaitFunctionLogGroup-1".into()),
            ("LogGroup".into(), "lookup-LogGroup-1".into()),
        ]))
    }

    async fn find_lines(&self, group: &str, term: &str, since_ms: i64) -> Result<Vec<LogLine>, String> {
        self.asked.lock().unwrap().push(format!("find {group} {term} {since_ms}"));
        let lines = self.lines.get(group).cloned().unwrap_or_default();
        Ok(lines
            .into_iter()
            .filter(|l| l.contains(term))
            .enumerate()
            .map(|(at, message)| LogLine { timestamp_ms: at as i64, stream: "s".into(), message })
            .collect())
    }

    async fn last_lines(&self, group: &str, stream: &str, count: i32) -> Result<Vec<String>, String> {
        self.asked.lock().unwrap().push(format!("last {group} {stream} {count}"));
        Ok(self.lines.get(&format!("{group} {stream}")).cloned().unwrap_or_default())
    }

    async fn stopped_tasks(&self, cluster: &str, service: &str) -> Result<Vec<StoppedTask>, String> {
        self.asked.lock().unwrap().push(format!("tasks {cluster} {service}"));
        Ok(self.tasks.clone())
    }

    async fn container_logs(&self, _: &str) -> Result<HashMap<String, AwsLogs>, String> {
        Ok(HashMap::from([(
            "qa-server-app".into(),
            AwsLogs { group: "lookup-LogGroup-1".into(), stream_prefix: Some("app".into()) },
        )]))
    }
}

fn event(logical_id: &str, resource_type: &str, status: &str, reason: &str, at: i64) -> StackEvent {
    StackEvent {
        logical_id: logical_id.into(),
        physical_id: String::new(),
        resource_type: resource_type.into(),
        status: status.into(),
        reason: reason.into(),
        timestamp_ms: at,
    }
}

fn stack_event(status: &str, reason: &str, at: i64) -> StackEvent {
    event(STACK, "AWS::CloudFormation::Stack", status, reason, at)
}

const REQUEST: &str = "5b2d7e10-ca8a-11f0";

fn failed_env_check() -> FakeAws {
    let mut function = event("CheckAndWaitFunction", "AWS::Lambda::Function", "CREATE_COMPLETE", "", 1_100);
    function.physical_id = "lookup-CheckAndWaitFunction-1".into();
    let reason = format!(
        "Custom::EnvFileCheck EnvFileCheck: s3://b/production.env is public (AllUsers READ) (CloudWatch Logs group \
         x stream y, request {REQUEST})"
    );
    FakeAws {
        status: "ROLLBACK_COMPLETE".into(),
        events: vec![
            stack_event("CREATE_IN_PROGRESS", "User Initiated", 500),
            stack_event("CREATE_COMPLETE", "", 900),
            stack_event("UPDATE_IN_PROGRESS", "User Initiated", 1_000),
            function,
            event("EnvFileCheck", "Custom::EnvFileCheck", "CREATE_FAILED", &reason, 1_200),
            event("SeedAuthorities", "Custom::SeedAuthorities", "CREATE_FAILED", "Resource creation cancelled", 1_201),
            stack_event("ROLLBACK_IN_PROGRESS", "The following resource(s) failed to create: [EnvFileCheck].", 1_300),
            stack_event("ROLLBACK_COMPLETE", "", 1_400),
        ],
        lines: HashMap::from([(
            "lookup-CheckAndWaitFunctionLogGroup-1".into(),
            vec![
                format!(r#"{{"level":"INFO","message":"checked","spans":[{{"request_id":"{REQUEST}"}}]}}"#),
                format!(
                    r#"{{"level":"INFO","message":"answered CloudFormation","response_url":"https://s3/r?X-Amz-Signature=abc","spans":[{{"request_id":"{REQUEST}"}}]}}"#
                ),
                r#"{"level":"INFO","message":"another request","spans":[{"request_id":"other"}]}"#.into(),
            ],
        )]),
        ..FakeAws::default()
    }
}

#[tokio::test]
async fn a_healthy_stack_says_so_and_reads_nothing_else() {
    let aws = FakeAws { status: "UPDATE_COMPLETE".into(), ..FakeAws::default() };
    let explanation = explain(&aws, STACK).await.unwrap();
    assert!(!explanation.failed);
    assert_eq!(
        explanation.text,
        "Stack lookup-service-demo: UPDATE_COMPLETE — healthy, its latest operation completed.\n"
    );
    assert!(aws.asked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_stack_is_an_error_naming_it_and_the_fix() {
    let error = explain(&FakeAws::default(), "lookup-service-nope").await.unwrap_err();
    assert!(
        error.starts_with("no stack named lookup-service-nope in this account and region: check --stack"),
        "{error}"
    );
}

#[tokio::test]
async fn a_failed_custom_resource_shows_its_reason_its_requests_log_lines_and_what_to_do() {
    let aws = failed_env_check();
    let explanation = explain(&aws, STACK).await.unwrap();
    let text = &explanation.text;
    assert!(explanation.failed);
    assert!(text.contains("Latest operation: UPDATE at"), "the latest operation, not the older create:\n{text}");
    assert!(text.contains("EnvFileCheck (Custom::EnvFileCheck) CREATE_FAILED"), "{text}");
    assert!(text.contains("is public (AllUsers READ)"), "{text}");
    assert!(!text.contains("SeedAuthorities"), "a cancellation is no cause:\n{text}");
    assert!(text.contains(&format!("Log of request {REQUEST} (lookup-CheckAndWaitFunctionLogGroup-1):")), "{text}");
    assert!(text.contains("INFO checked"), "{text}");
    assert!(text.contains("response_url=https://s3/r?X-Amz-Signature=<redacted>"), "{text}");
    assert!(!text.contains("abc") && !text.contains("another request"), "{text}");
    assert!(
        text.contains("delete the stack (aws cloudformation delete-stack --stack-name lookup-service-demo)"),
        "{text}"
    );
    let asked = aws.asked.lock().unwrap();
    assert_eq!(
        *asked,
        [format!("find lookup-CheckAndWaitFunctionLogGroup-1 {REQUEST} 1000")],
        "from the operation's start, in the function's own group"
    );
}

#[tokio::test]
async fn a_failed_health_wait_shows_the_failed_tasks_exit_codes_and_last_log_lines() {
    let mut service = event("AppService", "AWS::ECS::Service", "UPDATE_COMPLETE", "", 1_050);
    service.physical_id = "arn:aws:ecs:us-east-1:123456789012:service/lookup-cluster/lookup-service-demo-app".into();
    let task = |id: &str, at: i64, code: &str, exit: i32| StoppedTask {
        arn: format!("arn:aws:ecs:us-east-1:123456789012:task/lookup-cluster/{id}"),
        task_definition_arn: "arn:aws:ecs:us-east-1:123456789012:task-definition/qa-server-app:2".into(),
        group: "service:lookup-service-demo-app".into(),
        stopped_reason: "Essential container in task exited".into(),
        stop_code: code.into(),
        stopped_at_ms: Some(at),
        containers: vec![StoppedContainer { name: "qa-server-app".into(), exit_code: Some(exit), reason: None }],
    };
    let mut other_service = task("t-other", 1_150, "EssentialContainerExited", 1);
    other_service.group = "service:somebody-else".into();
    let aws = FakeAws {
        status: "UPDATE_ROLLBACK_COMPLETE".into(),
        events: vec![
            stack_event("UPDATE_IN_PROGRESS", "User Initiated", 1_000),
            service,
            event("ServicesHealthy", "Custom::ServicesHealthy", "UPDATE_FAILED", "app: tasks stopped", 1_200),
            event("AppService", "AWS::ECS::Service", "UPDATE_FAILED", "Resource update cancelled", 1_201),
            stack_event("UPDATE_ROLLBACK_IN_PROGRESS", "", 1_300),
            stack_event("UPDATE_ROLLBACK_COMPLETE", "", 1_400),
        ],
        tasks: vec![
            task("t-before", 900, "EssentialContainerExited", 1),
            task("t-1", 1_100, "EssentialContainerExited", 1),
            task("t-2", 1_150, "EssentialContainerExited", 1),
            task("t-replaced", 1_160, "ServiceSchedulerInitiated", 0),
            other_service,
        ],
        lines: HashMap::from([(
            "lookup-LogGroup-1 app/qa-server-app/t-2".into(),
            vec!["rake aborted!".into(), "Mysql2::Error: Access denied for user 'qa'".into()],
        )]),
        ..FakeAws::default()
    };
    let explanation = explain(&aws, STACK).await.unwrap();
    let text = &explanation.text;
    assert!(explanation.failed);
    assert!(text.contains("ECS service lookup-service-demo-app: 2 task(s) failed since the operation began"), "{text}");
    assert!(text.find("task t-2").unwrap() < text.find("task t-1").unwrap(), "newest first:\n{text}");
    assert!(!text.contains("t-before") && !text.contains("t-replaced") && !text.contains("t-other"), "{text}");
    assert!(
        text.contains("(qa-server-app:2) stopped at") && text.contains("Essential container in task exited"),
        "{text}"
    );
    assert!(text.contains("container qa-server-app: exit code 1"), "{text}");
    assert!(text.contains("last log lines (lookup-LogGroup-1 app/qa-server-app/t-2):"), "{text}");
    assert!(text.contains("        Mysql2::Error: Access denied for user 'qa'"), "{text}");
    assert!(text.contains("the stack runs its previous configuration"), "{text}");
    assert!(aws.asked.lock().unwrap().contains(&"tasks lookup-cluster lookup-service-demo-app".to_owned()));
}

#[test]
fn a_services_name_and_cluster_come_from_its_arn_or_the_template() {
    assert_eq!(
        service_and_cluster("arn:aws:ecs:us-east-1:1:service/c1/app", None),
        ("app".to_owned(), "c1".to_owned())
    );
    assert_eq!(
        service_and_cluster("arn:aws:ecs:us-east-1:1:service/app", Some("c2".into())),
        ("app".to_owned(), "c2".to_owned())
    );
}
