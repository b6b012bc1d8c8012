//! Sequences of ECS and Lambda answers that moto cannot give (REFERENCE.md, "Local stand-ins"):
//! its services never change state by themselves, its containers always report HEALTHY, its tasks
//! stop with no reason or exit code, and it cannot run the function asynchronously (it would need
//! Docker). The SDK clients are real, their answers scripted with aws-smithy-mocks.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::types as sdk;
use aws_sdk_lambda::operation::invoke::{InvokeError, InvokeOutput};
use aws_sdk_lambda::types::InvocationType;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use cfn_custom_resource::response::{ResponseSender, SendError};
use cfn_custom_resource::runner::{answer_event, Invocation, Report, Settings};
use cfn_custom_resource::Resources;
use serde_json::{json, Value};

use super::*;

const CLUSTER: &str = "qa";

fn service(name: &str, running: i32, rollout: &str) -> sdk::Service {
    let deployment = sdk::Deployment::builder()
        .id(format!("ecs-svc/{name}"))
        .status("PRIMARY")
        .desired_count(1)
        .running_count(running)
        .rollout_state(sdk::DeploymentRolloutState::from(rollout))
        .build();
    sdk::Service::builder()
        .service_name(name)
        .status("ACTIVE")
        .desired_count(1)
        .running_count(running)
        .deployments(deployment)
        .build()
}

fn services(list: Vec<sdk::Service>) -> DescribeServicesOutput {
    DescribeServicesOutput::builder().set_services(Some(list)).build()
}

fn both(app_running: i32, mysql_running: i32) -> DescribeServicesOutput {
    let rollout = |running| if running == 1 { "COMPLETED" } else { "IN_PROGRESS" };
    services(vec![
        service("app", app_running, rollout(app_running)),
        service("mysql", mysql_running, rollout(mysql_running)),
    ])
}

fn task_arn(service: &str) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/{CLUSTER}/{service}-1")
}

fn task(service: &str, last_status: &str, task_health: Option<&str>, container_health: &str) -> sdk::Task {
    let container =
        sdk::Container::builder().name(service).health_status(sdk::HealthStatus::from(container_health)).build();
    sdk::Task::builder()
        .task_arn(task_arn(service))
        .group(format!("service:{service}"))
        .started_by(format!("ecs-svc/{service}"))
        .task_definition_arn(format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{service}:7"))
        .last_status(last_status)
        .set_health_status(task_health.map(sdk::HealthStatus::from))
        .containers(container)
        .build()
}

fn tasks(list: Vec<sdk::Task>) -> DescribeTasksOutput {
    DescribeTasksOutput::builder().set_tasks(Some(list)).build()
}

fn listed(services: &[&str]) -> ListTasksOutput {
    ListTasksOutput::builder().set_task_arns(Some(services.iter().map(|s| task_arn(s)).collect())).build()
}

fn request(timeout: Duration) -> WaitRequest {
    WaitRequest::new(CLUSTER, &["app".into(), "mysql".into()], timeout, Duration::from_secs(15), SystemTime::now())
        .unwrap()
}

/// Every rule's calls, against two calls a poll (one DescribeServices each).
fn assert_at_most_two_calls_a_poll(describe_services: &Rule, others: &[&Rule]) {
    let polls = describe_services.num_calls();
    let task_calls: usize = others.iter().map(|rule| rule.num_calls()).sum();
    assert!(task_calls <= polls, "{task_calls} task calls in {polls} polls: more than 8 ECS calls a minute at 15 s");
}

#[tokio::test(start_paused = true)]
async fn mocked_pending_then_healthy_as_moto_services_never_become() {
    let describe_services = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| both(0, 0))
        .output(|| both(1, 1))
        .repeatedly()
        .build();
    let list_tasks = mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| listed(&["app", "mysql"]));
    let describe_tasks = mock!(aws_sdk_ecs::Client::describe_tasks).then_output(|| {
        // Real ECS reports task-level health; moto only the containers'.
        tasks(vec![task("app", "RUNNING", Some("HEALTHY"), "HEALTHY"), task("mysql", "RUNNING", None, "HEALTHY")])
    });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe_services, &list_tasks, &describe_tasks]);

    let mut lines = Vec::new();
    let end = wait(&ecs, &request(Duration::from_secs(600)), |line| lines.push(line.to_owned())).await;

    assert_eq!(
        lines,
        [
            "app 0/1 running (rollout IN_PROGRESS); mysql 0/1 running (rollout IN_PROGRESS)",
            "app 1/1 running; mysql 1/1 running",
            "app 1/1 running, healthy; mysql 1/1 running, healthy",
        ]
    );
    assert_eq!(end, WaitEnd::Healthy { states: lines[2].clone() });
    assert_at_most_two_calls_a_poll(&describe_services, &[&list_tasks, &describe_tasks]);
}

#[tokio::test(start_paused = true)]
async fn mocked_healthy_task_that_stops_with_a_reason_fails_the_wait_quoting_it_as_moto_tasks_cannot() {
    let failed_rollout = || {
        let mut mysql = service("mysql", 0, "FAILED");
        mysql.deployments = Some(vec![sdk::Deployment::builder()
            .id("ecs-svc/mysql")
            .status("PRIMARY")
            .rollout_state(sdk::DeploymentRolloutState::Failed)
            .rollout_state_reason("ECS deployment circuit breaker: tasks failed to start.")
            .failed_tasks(3)
            .build()]);
        services(vec![service("app", 0, "IN_PROGRESS"), mysql])
    };
    let describe_services = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| services(vec![service("app", 0, "IN_PROGRESS"), service("mysql", 1, "COMPLETED")]))
        .times(2)
        .output(|| services(vec![service("app", 0, "IN_PROGRESS"), service("mysql", 0, "IN_PROGRESS")]))
        .output(failed_rollout)
        .repeatedly()
        .build();
    let list_tasks = mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| listed(&["mysql"]));
    let describe_tasks = mock!(aws_sdk_ecs::Client::describe_tasks)
        .sequence()
        .output(|| tasks(vec![task("mysql", "RUNNING", Some("HEALTHY"), "HEALTHY")]))
        .output(|| {
            let mut stopped = task("mysql", "STOPPED", Some("UNKNOWN"), "UNKNOWN");
            stopped.stopped_reason = Some("Essential container in task exited".into());
            stopped.stopped_at = Some(SystemTime::now().into());
            stopped.containers = Some(vec![sdk::Container::builder().name("mysql").exit_code(1).build()]);
            tasks(vec![stopped])
        })
        .repeatedly()
        .build();
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe_services, &list_tasks, &describe_tasks]);

    let mut lines = Vec::new();
    let end = wait(&ecs, &request(Duration::from_secs(600)), |line| lines.push(line.to_owned())).await;

    assert_eq!(lines[1], "app 0/1 running (rollout IN_PROGRESS); mysql 1/1 running, healthy");
    assert_eq!(lines[2], "app 0/1 running (rollout IN_PROGRESS); mysql 0/1 running (rollout IN_PROGRESS, 1 stopped)");
    let WaitEnd::Failed { reason } = end else { panic!("expected a failure, got {end:?}") };
    assert!(
        reason.starts_with(
            "mysql: its deployment ecs-svc/mysql failed: ECS deployment circuit breaker: tasks failed to start. \
             Stopped tasks: mysql: Essential container in task exited (container mysql, exit 1)."
        ),
        "{reason}"
    );
    assert_eq!(describe_services.num_calls(), 4, "it fails on the poll that sees the failed rollout");
    assert_at_most_two_calls_a_poll(&describe_services, &[&list_tasks, &describe_tasks]);
}

#[tokio::test(start_paused = true)]
async fn mocked_health_checks_failing_until_the_timeout_give_the_last_state_as_moto_containers_are_always_healthy() {
    let describe_services = mock!(aws_sdk_ecs::Client::describe_services)
        .then_output(|| services(vec![service("app", 1, "COMPLETED"), service("mysql", 1, "COMPLETED")]));
    let list_tasks = mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| listed(&["app", "mysql"]));
    let describe_tasks = mock!(aws_sdk_ecs::Client::describe_tasks)
        .sequence()
        .output(|| {
            tasks(vec![task("app", "RUNNING", Some("UNKNOWN"), "UNKNOWN"), task("mysql", "RUNNING", None, "HEALTHY")])
        })
        .output(|| {
            tasks(vec![
                task("app", "RUNNING", Some("UNHEALTHY"), "UNHEALTHY"),
                task("mysql", "RUNNING", None, "HEALTHY"),
            ])
        })
        .repeatedly()
        .build();
    let describe_task_definition = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(|| {
        let check = sdk::HealthCheck::builder().command("CMD-SHELL").command("exit 1").build().unwrap();
        let app = sdk::ContainerDefinition::builder().name("app").health_check(check).build();
        DescribeTaskDefinitionOutput::builder()
            .task_definition(sdk::TaskDefinition::builder().container_definitions(app).build())
            .build()
    });
    let ecs = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&describe_services, &list_tasks, &describe_tasks, &describe_task_definition]
    );

    let mut lines = Vec::new();
    let end = wait(&ecs, &request(Duration::from_secs(120)), |line| lines.push(line.to_owned())).await;

    assert_eq!(lines[2], "app 1/1 running, 0 healthy; mysql 1/1 running, healthy", "health checks not passed yet");
    let WaitEnd::TimedOut { reason } = end else { panic!("expected a timeout, got {end:?}") };
    assert!(
        reason.starts_with(
            "not healthy within 2m: app 1/1 running, 0 healthy (1 unhealthy); mysql 1/1 running, healthy. \
             See the services' events in the ECS console"
        ),
        "{reason}"
    );
    assert_eq!(describe_services.num_calls(), 9, "polls at 0 s, 15 s, … 120 s");
    assert_eq!(describe_task_definition.num_calls(), 1, "task definitions do not change");
    assert_at_most_two_calls_a_poll(&describe_services, &[&list_tasks, &describe_tasks, &describe_task_definition]);
}

/// Keeps the answers a CloudFormation response URL would receive.
#[derive(Default)]
struct Answers(Mutex<Vec<Value>>);

impl ResponseSender for Answers {
    async fn send(&self, _url: &str, body: Vec<u8>, _budget: Duration) -> Result<u32, SendError> {
        self.0.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
        Ok(200)
    }
}

fn event(request_type: &str, properties: Value) -> Value {
    let mut event = json!({
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-custom-resource-response.invalid/r?X-Amz-Signature=secret",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/qa/1",
        "RequestId": "request-1",
        "ResourceType": "Custom::ServicesHealthy",
        "LogicalResourceId": "ServicesHealthy",
        "ResourceProperties": properties,
    });
    if request_type != "Create" {
        event["PhysicalResourceId"] = json!("services-healthy:qa");
    }
    event
}

fn properties(timeout: &str) -> Value {
    json!({
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:qa-lookup-custom-resources",
        "ServiceTimeout": "2100", "Cluster": CLUSTER, "Services": ["app", "mysql"],
        "Timeout": timeout, "PollInterval": "15s", "TaskDefinitions": ["app:7", "mysql:7"]
    })
}

/// One invocation whose Lambda deadline is two minutes away: with the 60 s kept for the hand-off,
/// it polls at 0, 15, 30 and 45 s.
async fn invoke(resource: ServicesHealthy, answers: &Answers, event: Value) -> Report {
    let settings = Settings { deadline_margin: Duration::from_secs(2) };
    let invocation =
        Invocation { deadline: SystemTime::now() + Duration::from_secs(120), log_pointer: "the log".into() };
    answer_event(&Resources::new().with(resource), answers, &settings, event, &invocation).await
}

#[tokio::test(start_paused = true)]
async fn mocked_wait_longer_than_an_invocation_is_handed_on_twice_and_answered_once_as_moto_cannot_invoke_lambda() {
    let describe_services = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| both(0, 0))
        .times(9)
        .output(|| both(1, 1))
        .repeatedly()
        .build();
    let list_tasks = mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| listed(&["app", "mysql"]));
    let describe_tasks = mock!(aws_sdk_ecs::Client::describe_tasks).then_output(|| {
        tasks(vec![
            task("app", "RUNNING", Some("HEALTHY"), "HEALTHY"),
            task("mysql", "RUNNING", Some("HEALTHY"), "HEALTHY"),
        ])
    });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe_services, &list_tasks, &describe_tasks]);
    let handed_on = Arc::new(Mutex::new(Vec::<Value>::new()));
    let invoke_rule = mock!(aws_sdk_lambda::Client::invoke).then_compute_output({
        let handed_on = handed_on.clone();
        move |input| {
            assert_eq!(input.function_name(), Some("qa-lookup-custom-resources"));
            assert_eq!(input.invocation_type(), Some(&InvocationType::Event));
            let payload = serde_json::from_slice(input.payload().unwrap().as_ref()).unwrap();
            handed_on.lock().unwrap().push(payload);
            InvokeOutput::builder().status_code(202).build()
        }
    });
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [&invoke_rule]);
    let resource =
        || ServicesHealthy::with_clients(ecs.clone(), lambda.clone(), Some("qa-lookup-custom-resources".into()));
    let answers = Answers::default();

    let original = event("Create", properties("30m"));
    let first = invoke(resource(), &answers, original.clone()).await;
    assert!(first.handed_off && answers.0.lock().unwrap().is_empty(), "{first:?}");
    let second_event = handed_on.lock().unwrap()[0].clone();
    let second = invoke(resource(), &answers, second_event.clone()).await;
    assert!(second.handed_off && answers.0.lock().unwrap().is_empty(), "{second:?}");
    let third_event = handed_on.lock().unwrap()[1].clone();
    let third = invoke(resource(), &answers, third_event.clone()).await;

    assert!(!third.handed_off && third.delivered, "{third:?}");
    let answers = answers.0.into_inner().unwrap();
    assert_eq!(answers.len(), 1, "exactly one answer across the three invocations: {answers:?}");
    assert_eq!(answers[0]["Status"], "SUCCESS", "{}", answers[0]);
    assert_eq!(answers[0]["PhysicalResourceId"], "services-healthy:qa");
    assert_eq!(invoke_rule.num_calls(), 2);
    assert_eq!(describe_services.num_calls(), 11, "4 polls, 4 polls, then 3");
    // The hand-off is the original event plus when the wait began, the same in every hand-off.
    let started_at = &second_event[STARTED_AT_FIELD];
    assert!(started_at.is_string(), "{second_event}");
    assert_eq!(&third_event[STARTED_AT_FIELD], started_at);
    let mut without_start = third_event.clone();
    without_start.as_object_mut().unwrap().remove(STARTED_AT_FIELD);
    assert_eq!(without_start, original);
}

#[tokio::test(start_paused = true)]
async fn mocked_hand_off_that_fails_answers_failed_rather_than_go_silent() {
    let describe_services = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| both(0, 0));
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe_services]);
    let invoke_rule = mock!(aws_sdk_lambda::Client::invoke).then_error(|| {
        InvokeError::ResourceNotFoundException(
            aws_sdk_lambda::types::error::ResourceNotFoundException::builder().message("Function not found").build(),
        )
    });
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [&invoke_rule]);
    let answers = Answers::default();

    let resource = ServicesHealthy::with_clients(ecs, lambda, Some("qa-lookup-custom-resources".into()));
    let report = invoke(resource, &answers, event("Create", properties("30m"))).await;

    assert!(!report.handed_off && report.delivered, "{report:?}");
    let answers = answers.0.into_inner().unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0]["Status"], "FAILED");
    let reason = answers[0]["Reason"].as_str().unwrap();
    assert!(
        reason.contains("handing it on to a new invocation of qa-lookup-custom-resources failed")
            && reason.contains("lambda:InvokeFunction"),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn mocked_continued_wait_counts_its_timeout_from_when_the_first_invocation_began() {
    let describe_services = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| both(0, 0));
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe_services]);
    let lambda = mock_client!(
        aws_sdk_lambda,
        RuleMode::MatchAny,
        [&mock!(aws_sdk_lambda::Client::invoke).then_output(|| InvokeOutput::builder().status_code(202).build())]
    );
    let answers = Answers::default();
    let mut continued = event("Update", properties("10m"));
    continued["OldResourceProperties"] = properties("10m");
    let began = SystemTime::now() - Duration::from_secs(11 * 60);
    continued[STARTED_AT_FIELD] = json!(humantime::format_rfc3339_seconds(began).to_string());

    let resource = ServicesHealthy::with_clients(ecs, lambda, Some("qa-lookup-custom-resources".into()));
    invoke(resource, &answers, continued).await;

    let answers = answers.0.into_inner().unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0]["Status"], "FAILED");
    let reason = answers[0]["Reason"].as_str().unwrap();
    assert!(reason.starts_with("Custom::ServicesHealthy ServicesHealthy: not healthy within 10m: app 0/1 running (rollout IN_PROGRESS); mysql 0/1 running (rollout IN_PROGRESS)"), "{reason}");
    assert_eq!(describe_services.num_calls(), 1, "one last look, then the timeout");
}

#[tokio::test]
async fn delete_succeeds_at_once_without_calling_aws() {
    let describe_services = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| both(0, 0));
    let invoke_rule = mock!(aws_sdk_lambda::Client::invoke).then_output(|| InvokeOutput::builder().build());
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe_services]);
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [&invoke_rule]);
    let answers = Answers::default();

    let resource = ServicesHealthy::with_clients(ecs, lambda, None);
    invoke(resource, &answers, event("Delete", properties("30m"))).await;

    let answers = answers.0.into_inner().unwrap();
    assert_eq!(
        (answers[0]["Status"].as_str(), answers[0]["PhysicalResourceId"].as_str()),
        (Some("SUCCESS"), Some("services-healthy:qa"))
    );
    assert_eq!(describe_services.num_calls() + invoke_rule.num_calls(), 0);
}

#[tokio::test]
async fn timeout_not_shorter_than_the_service_timeout_is_refused_before_waiting() {
    let describe_services = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| both(0, 0));
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe_services]);
    let lambda = mock_client!(
        aws_sdk_lambda,
        RuleMode::MatchAny,
        [&mock!(aws_sdk_lambda::Client::invoke).then_output(|| InvokeOutput::builder().build())]
    );
    let answers = Answers::default();

    let resource = ServicesHealthy::with_clients(ecs, lambda, None);
    invoke(resource, &answers, event("Create", properties("45m"))).await;

    let answers = answers.0.into_inner().unwrap();
    let reason = answers[0]["Reason"].as_str().unwrap();
    assert!(reason.contains("Timeout 45m is not shorter than the resource's ServiceTimeout (2100 s)"), "{reason}");
    assert_eq!(describe_services.num_calls(), 0);
}
