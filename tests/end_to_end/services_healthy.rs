//! `Custom::ServicesHealthy` and `qa-deploy wait` end to end, on moto's ECS: through the real
//! Lambda binary under the runtime emulator (each answer read back from a pre-signed URL) and
//! through the CLI binary. moto's services report the running count they were created with,
//! `MOTO_ECS_SERVICE_RUNNING` (REFERENCE.md); what moto cannot do is covered by the `mocked_`
//! sequences in `functions/src/services_healthy/mocked.rs`.

use std::process::Output;
use std::time::Duration;

use aws_sdk_ecs::types::{ContainerDefinition, HealthCheck, LaunchType};
use qa_lookup_testbed::{Event, FunctionOptions, Moto, ScriptedEndpoint, StoredResponse, TestBed};
use serde_json::{json, Value};

const FUNCTION: &str = env!("CARGO_BIN_EXE_custom-resources");
const QA_DEPLOY: &str = env!("CARGO_BIN_EXE_qa-deploy");
const SERVICES_HEALTHY: &str = "Custom::ServicesHealthy";
const CLUSTER: &str = "qa";

/// moto with every service running one task; the function with time for a few polls before it
/// would hand the wait on (60 s before its deadline).
async fn start() -> TestBed {
    let function =
        FunctionOptions::new(FUNCTION).timeout(Duration::from_secs(90)).env("CFN_DEADLINE_MARGIN_SECONDS", "2");
    TestBed::start_with_moto_env(function, &[("MOTO_ECS_SERVICE_RUNNING", "1")]).await
}

async fn ecs(moto: &Moto) -> aws_sdk_ecs::Client {
    aws_sdk_ecs::Client::new(&moto.sdk_config().await)
}

struct Deployed {
    service: &'static str,
    definition: String,
    deployment: String,
}

/// Cluster `qa` with services app and mysql, their containers defining health checks; each
/// service gets one task of its deployment, as ECS would start it, whose container moto reports
/// HEALTHY. moto counts one running task per service whatever `app_desired` is.
async fn deploy(moto: &Moto, app_desired: i32) -> Vec<Deployed> {
    deploy_with_tasks(moto, app_desired, &["app", "mysql"]).await
}

async fn deploy_with_tasks(moto: &Moto, app_desired: i32, tasks_for: &[&str]) -> Vec<Deployed> {
    let ecs = ecs(moto).await;
    let mut deployed = Vec::new();
    ecs.create_cluster().cluster_name(CLUSTER).send().await.expect("moto creates the cluster");
    for (service, desired) in [("app", app_desired), ("mysql", 1)] {
        let check = HealthCheck::builder().command("CMD-SHELL").command("exit 0").build().expect("a command");
        let container =
            ContainerDefinition::builder().name(service).image("example").memory(256).health_check(check).build();
        let registered = ecs
            .register_task_definition()
            .family(service)
            .container_definitions(container)
            .send()
            .await
            .expect("moto registers the task definition");
        let definition = registered.task_definition().and_then(|d| d.task_definition_arn()).expect("an ARN");
        let created = ecs
            .create_service()
            .cluster(CLUSTER)
            .service_name(service)
            .task_definition(definition)
            .desired_count(desired)
            .send()
            .await
            .expect("moto creates the service");
        let deployment = created.service().and_then(|s| s.deployments().first()).and_then(|d| d.id()).expect("an id");
        if tasks_for.contains(&service) {
            run_service_task(moto, service, definition, deployment).await;
        }
        deployed.push(Deployed { service, definition: definition.to_owned(), deployment: deployment.to_owned() });
    }
    moto.hold_ecs_tasks().await;
    deployed
}

/// moto starts no tasks for a service: start one as its deployment would.
async fn run_service_task(moto: &Moto, service: &str, definition: &str, deployment: &str) {
    ecs(moto)
        .await
        .run_task()
        .cluster(CLUSTER)
        .task_definition(definition)
        .launch_type(LaunchType::Fargate)
        .started_by(deployment)
        .group(format!("service:{service}"))
        .send()
        .await
        .expect("moto runs the task");
}

fn properties(services: &str, timeout: &str) -> Value {
    json!({"Cluster": CLUSTER, "Services": services, "Timeout": timeout, "PollInterval": "1s",
           "TaskDefinitions": ["arn:aws:ecs:us-east-1:123456789012:task-definition/app:1"]})
}

async fn one_answer(bed: &TestBed, event: &Event) -> StoredResponse {
    let stored = bed.stored_response(event).await;
    assert_eq!(stored.versions, 1, "expected exactly one answer, found {}", stored.versions);
    stored
}

/// `qa-deploy wait` against this moto, as a person would run it with the SDK's variables set.
async fn qa_deploy_wait(moto: &Moto, services: &str, timeout: &str) -> Output {
    tokio::process::Command::new(QA_DEPLOY)
        .args(["wait", "--cluster", CLUSTER, "--services", services, "--timeout", timeout, "--interval", "1s"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(qa_lookup_testbed::client_env(&moto.endpoint))
        .output()
        .await
        .expect("qa-deploy runs")
}

fn printed(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn healthy_services_succeed_through_the_lambda_and_the_cli() {
    let bed = start().await;
    deploy(&bed.moto, 1).await;

    let create = bed.create(SERVICES_HEALTHY, "ServicesHealthy", properties("app,mysql", "1m")).await;
    bed.invoke(&create).await;
    let created = one_answer(&bed, &create).await;
    assert_eq!(created.status(), "SUCCESS", "{}\n{}", created.json, bed.function.logs());
    assert_eq!(created.physical_id(), "services-healthy:qa");
    let progress = "app 1/1 running, healthy; mysql 1/1 running, healthy";
    let logs = bed.function.logs_once(|logs| logs.contains(progress)).await;
    assert!(logs.contains(progress), "progress in the log:\n{logs}");

    let update = bed
        .update(
            SERVICES_HEALTHY,
            "ServicesHealthy",
            created.physical_id(),
            properties("app,mysql", "2m"),
            properties("app,mysql", "1m"),
        )
        .await;
    bed.invoke(&update).await;
    let updated = one_answer(&bed, &update).await;
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.json);
    assert_eq!(updated.physical_id(), created.physical_id(), "an Update must not ask for a replacement");

    let delete =
        bed.delete(SERVICES_HEALTHY, "ServicesHealthy", created.physical_id(), properties("app,mysql", "2m")).await;
    bed.invoke(&delete).await;
    assert_eq!(one_answer(&bed, &delete).await.status(), "SUCCESS");

    let output = qa_deploy_wait(&bed.moto, "app,mysql", "30s").await;
    assert_eq!(output.status.code(), Some(0), "{}", printed(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("healthy: app 1/1 running, healthy; mysql 1/1 running, healthy"),
        "{}",
        printed(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_service_fails_at_once_naming_it_through_the_lambda_and_the_cli() {
    let bed = start().await;
    deploy(&bed.moto, 1).await;

    let create = bed.create(SERVICES_HEALTHY, "ServicesHealthy", properties("app,mysqll", "4m")).await;
    bed.invoke(&create).await;
    let answer = one_answer(&bed, &create).await;
    assert_eq!(answer.status(), "FAILED");
    assert!(
        answer
            .reason()
            .starts_with("Custom::ServicesHealthy ServicesHealthy: no service mysqll (ECS: MISSING) in cluster qa"),
        "{}",
        answer.reason()
    );

    let output = qa_deploy_wait(&bed.moto, "app,mysqll", "10m").await;
    assert_eq!(output.status.code(), Some(1), "{}", printed(&output));
    assert!(
        printed(&output).contains("failed: no service mysqll (ECS: MISSING) in cluster qa"),
        "{}",
        printed(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn service_short_of_its_desired_count_times_out_with_the_last_state_through_the_lambda_and_the_cli() {
    let bed = start().await;
    deploy(&bed.moto, 2).await;
    let last_state = "app 1/2 running, 1 healthy (rollout IN_PROGRESS); mysql 1/1 running, healthy";

    let create = bed.create(SERVICES_HEALTHY, "ServicesHealthy", properties("app,mysql", "3s")).await;
    bed.invoke(&create).await;
    let answer = one_answer(&bed, &create).await;
    assert_eq!(answer.status(), "FAILED");
    assert!(
        answer
            .reason()
            .starts_with(&format!("Custom::ServicesHealthy ServicesHealthy: not healthy within 3s: {last_state}")),
        "{}",
        answer.reason()
    );

    let output = qa_deploy_wait(&bed.moto, "app,mysql", "3s").await;
    assert_eq!(output.status.code(), Some(2), "{}", printed(&output));
    assert!(
        printed(&output).contains(&format!("timed out: not healthy within 3s: {last_state}")),
        "{}",
        printed(&output)
    );
    assert!(
        printed(&output).contains(&format!("] {last_state}")),
        "a plain progress line per poll when not on a terminal"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hand_off_that_lambda_refuses_answers_failed_rather_than_go_silent() {
    // moto's Lambda has no such function: the asynchronous invoke fails.
    let function =
        FunctionOptions::new(FUNCTION).timeout(Duration::from_secs(64)).env("CFN_DEADLINE_MARGIN_SECONDS", "2");
    let bed = TestBed::start_with_moto_env(function, &[("MOTO_ECS_SERVICE_RUNNING", "1")]).await;
    deploy(&bed.moto, 2).await;

    let create = bed.create(SERVICES_HEALTHY, "ServicesHealthy", properties("app,mysql", "2m")).await;
    bed.invoke(&create).await;
    let answer = one_answer(&bed, &create).await;
    assert_eq!(answer.status(), "FAILED");
    assert!(
        answer.reason().contains("handing it on to a new invocation of qa-lookup-custom-resources failed"),
        "{}",
        answer.reason()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_longer_than_an_invocation_is_handed_on_and_the_next_invocation_answers_once() {
    // Lambda's asynchronous invoke, standing in: it accepts the event; the test delivers it.
    let lambda = ScriptedEndpoint::start(&[]).await;
    let lambda_url = lambda.url.trim_end_matches("/response").to_owned();
    let function = FunctionOptions::new(FUNCTION)
        .timeout(Duration::from_secs(64))
        .env("CFN_DEADLINE_MARGIN_SECONDS", "2")
        .env("AWS_ENDPOINT_URL_LAMBDA", &lambda_url);
    let bed = TestBed::start_with_moto_env(function, &[("MOTO_ECS_SERVICE_RUNNING", "1")]).await;
    let deployed = deploy_with_tasks(&bed.moto, 1, &["mysql"]).await;

    let create = bed.create(SERVICES_HEALTHY, "ServicesHealthy", properties("app,mysql", "2m")).await;
    let returned = bed.invoke(&create).await;
    assert_eq!(returned["handed_off"], true, "{returned}\n{}", bed.function.logs());
    let handed_on = lambda.received();
    assert_eq!(handed_on.len(), 1);
    assert_eq!(handed_on[0].path_and_query, "/2015-03-31/functions/qa-lookup-custom-resources/invocations");
    let next_event: Value = serde_json::from_slice(&handed_on[0].body).expect("the event, as JSON");
    assert!(next_event["QaWaitStartedAt"].is_string(), "{next_event}");
    assert_eq!(next_event["RequestId"], create.body["RequestId"]);

    let app = deployed.iter().find(|d| d.service == "app").expect("app was deployed");
    run_service_task(&bed.moto, app.service, &app.definition, &app.deployment).await;
    bed.function.invoke(&next_event).await;

    let answer = one_answer(&bed, &create).await;
    assert_eq!(answer.status(), "SUCCESS", "{}\n{}", answer.json, bed.function.logs());
    assert_eq!(answer.physical_id(), "services-healthy:qa");
}
