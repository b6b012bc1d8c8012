//! The stack lifecycle end to end, as `make demo` runs it: the README's `aws cloudformation`
//! commands against moto started from `tests/testbed/moto_launcher.py`, whose custom-resource
//! requests (with moto's own ResponseURL) reach the real function under the runtime emulator.
//! Create, update, a failed creation that rolls back, a failed update that rolls back, delete.

use std::path::{Path, PathBuf};

use qa_lookup_testbed::lifecycle::{self, Lifecycle, Settled, BUCKET, PREREQUISITES_STACK, SERVICE_STACK};

const FUNCTION: &str = env!("CARGO_BIN_EXE_custom-resources");
const QA_DEPLOY: &str = env!("CARGO_BIN_EXE_qa-deploy");
const CUSTOM_RESOURCES: [&str; 4] = ["EnvFileCheck", "SeedAuthorities", "DatabaseHealthy", "ServicesHealthy"];

fn expect(settled: &Settled, wanted: &str) {
    assert_eq!(settled.status, wanted, "the stack's events:\n{:#?}", settled.events);
}

/// The prerequisites stack created and the files a user uploads in its bucket.
async fn prepared() -> Lifecycle {
    let mut lifecycle = Lifecycle::start(Path::new(FUNCTION), &lifecycle::authorities_fixture()).await;
    let prerequisites = lifecycle.create_prerequisites().await.expect("the prerequisites stack is created");
    expect(&prerequisites, "CREATE_COMPLETE");
    lifecycle.upload().await.expect("the files are uploaded");
    lifecycle
}

async fn deployed() -> Lifecycle {
    let lifecycle = prepared().await;
    let created = lifecycle.create_service(SERVICE_STACK).await.expect("create-stack runs");
    expect(&created, "CREATE_COMPLETE");
    lifecycle
}

fn source_files(lifecycle: &Lifecycle) -> Vec<PathBuf> {
    lifecycle::files_below(&lifecycle.authorities)
}

#[tokio::test(flavor = "multi_thread")]
async fn creation_completes_with_outputs_and_the_seeded_tree() {
    let lifecycle = prepared().await;
    let created = lifecycle.create_service(SERVICE_STACK).await.expect("create-stack runs");

    expect(&created, "CREATE_COMPLETE");
    for resource in CUSTOM_RESOURCES {
        assert!(created.has(resource, "CREATE_COMPLETE"), "{resource} answered SUCCESS: {:#?}", created.events);
    }
    let outputs = lifecycle.bed.outputs(SERVICE_STACK).await.expect("describe-stacks");
    let output = |key: &str| outputs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default();
    assert_eq!(output("ServiceUrl"), format!("http://{}/", output("LoadBalancerDNSName")));
    assert!(output("ClusterName").starts_with(SERVICE_STACK), "{outputs:?}");
    let sources = source_files(&lifecycle);
    assert_eq!(lifecycle::files_below(&lifecycle.bed.mount), sources, "the mount holds exactly the uploaded files");
    for file in &sources {
        assert_eq!(
            std::fs::read(lifecycle.bed.mount.join(file)).unwrap(),
            std::fs::read(lifecycle.authorities.join(file)).unwrap(),
            "{} is seeded byte for byte",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_with_a_new_source_version_copies_only_the_changed_file() {
    let lifecycle = deployed().await;
    let before = lifecycle.seeded();
    let changed = lifecycle.change_one_authority().await.expect("the file is changed in S3");

    let updated =
        lifecycle.update_service(SERVICE_STACK, &[("AuthoritiesSourceVersion", "2")]).await.expect("update-stack runs");

    expect(&updated, "UPDATE_COMPLETE");
    assert!(updated.has("SeedAuthorities", "UPDATE_COMPLETE"), "{:#?}", updated.events);
    assert!(!updated.has("EnvFileCheck", "UPDATE_IN_PROGRESS"), "only the seed's properties changed");
    let after = lifecycle.seeded();
    let rewritten: Vec<&PathBuf> =
        after.iter().filter(|(path, state)| before.get(*path) != Some(state)).map(|(p, _)| p).collect();
    assert_eq!(rewritten, [&changed], "only the changed file is written again");
    let seeded = std::fs::read_to_string(lifecycle.bed.mount.join(&changed)).unwrap();
    assert!(seeded.ends_with("# changed for the demo\n"), "the new content is in place");
    assert_eq!(
        lifecycle.last_seed_summary().as_deref(),
        Some(&*format!("{} files, 1 changed, 0 removed", after.len()))
    );
}

/// A new app image is a new task definition revision: the health wait's Update waits for that
/// revision's own deployment, not the old one's healthy tasks.
#[tokio::test(flavor = "multi_thread")]
async fn an_update_with_a_new_image_waits_for_the_new_deployment() {
    let lifecycle = deployed().await;

    let updated =
        lifecycle.update_service(SERVICE_STACK, &[("AppImageTag", "v2.0.1")]).await.expect("update-stack runs");

    expect(&updated, "UPDATE_COMPLETE");
    let healthy = updated.position("ServicesHealthy", "UPDATE_COMPLETE").expect("the wait is updated");
    let deployed = updated.position("AppService", "UPDATE_COMPLETE").expect("the app service is updated");
    assert!(healthy > deployed, "the wait ends after the new deployment is stable: {:#?}", updated.events);
    assert!(!updated.has("DatabaseHealthy", "UPDATE_IN_PROGRESS"), "the database's task definition is unchanged");
    let outputs = lifecycle.bed.outputs(SERVICE_STACK).await.expect("describe-stacks");
    let output = |key: &str| outputs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default();
    let services = lifecycle
        .bed
        .aws(&[
            "ecs",
            "describe-services",
            "--cluster",
            &output("ClusterName"),
            "--services",
            &output("AppServiceName"),
        ])
        .await
        .expect("describe-services");
    let deployments = services["services"][0]["deployments"].as_array().cloned().unwrap_or_default();
    assert_eq!(deployments.len(), 1, "one deployment left: {deployments:?}");
    assert!(deployments[0]["taskDefinition"].as_str().unwrap_or_default().ends_with(":2"), "{deployments:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_public_env_bucket_fails_the_creation_with_our_reason_and_the_rollback_completes() {
    let lifecycle = prepared().await;
    lifecycle.make_bucket_public().await.expect("the bucket is made public");

    let failed = lifecycle.create_service(SERVICE_STACK).await.expect("create-stack runs");

    expect(&failed, "ROLLBACK_COMPLETE");
    let reason = failed.reason("EnvFileCheck", "CREATE_FAILED").expect("EnvFileCheck CREATE_FAILED in the events");
    assert!(reason.starts_with("Custom::EnvFileCheck EnvFileCheck:"), "names the resource: {reason}");
    assert!(reason.contains(&format!("s3://{BUCKET}/production.env")), "names the file: {reason}");
    assert!(reason.contains("AllUsers READ"), "says what was found: {reason}");
    assert!(
        reason.contains("aws s3api put-bucket-acl --bucket qa-lookup-demo --acl private"),
        "gives the fix: {reason}"
    );
    let rollback = failed.reason(SERVICE_STACK, "ROLLBACK_IN_PROGRESS").expect("the rollback starts");
    assert!(rollback.contains("[EnvFileCheck]"), "{rollback}");
    assert!(failed.has("EnvFileCheck", "DELETE_COMPLETE"), "the rollback's Delete is answered: {:#?}", failed.events);
    assert!(lifecycle.bed.function_log().contains("its Create failed: nothing to delete"));
    assert!(!failed.has("ServicesHealthy", "CREATE_IN_PROGRESS"), "the health wait, after the services, never starts");
    for service in ["MysqlService", "AppService"] {
        assert!(!failed.has(service, "CREATE_IN_PROGRESS"), "{service} waits for the env-file check: never created");
    }
    let everything_said = format!("{:?}\n{}", failed.events, lifecycle.bed.function_log());
    assert!(!everything_said.contains("demo-secret"), "no value of the env file reaches an event or a log");

    let (status, why) = lifecycle.why(Path::new(QA_DEPLOY), SERVICE_STACK).await.expect("qa-deploy why runs");
    println!("{why}");
    assert_eq!(status, 1, "a failure is reported:\n{why}");
    assert!(why.contains("Stack lookup-service-demo: ROLLBACK_COMPLETE"), "{why}");
    assert!(why.contains("EnvFileCheck (Custom::EnvFileCheck) CREATE_FAILED"), "the root cause:\n{why}");
    assert!(why.contains("AllUsers READ"), "its reason:\n{why}");
    assert!(!why.contains("Resource creation cancelled"), "a cancellation is no root cause:\n{why}");
    assert!(why.contains("Log of request "), "the function's lines for that request:\n{why}");
    assert!(why.contains("INFO answered CloudFormation request_type=Create logical_id=EnvFileCheck"), "{why}");
    assert!(why.contains("check=no public ACL grants outcome=failed"), "the check's own lines:\n{why}");
    assert!(
        why.contains("delete the stack (aws cloudformation delete-stack --stack-name lookup-service-demo) before creating it again"),
        "{why}"
    );
    assert!(!why.contains("demo-secret"), "no env-file value:\n{why}");
    assert!(!why.contains("cfnresponse?stack="), "no ResponseURL query (the signature):\n{why}");

    let deleted = lifecycle.delete_stack(SERVICE_STACK).await.expect("delete-stack runs");
    expect(&deleted, "DELETE_COMPLETE");
}

/// Lambda gives a function in a VPC no public IP: without an S3 gateway endpoint or NAT the
/// seeding function cannot reach S3. The function outside the VPC answers for the seed and
/// checks the routes first: the stack fails in seconds, naming the route table and the fix,
/// instead of waiting out the seed's 20-minute ServiceTimeout (and again for the Delete).
#[tokio::test(flavor = "multi_thread")]
async fn a_seeding_function_without_a_route_to_s3_fails_the_stack_in_seconds_naming_the_route_table() {
    let lifecycle = prepared().await;

    let started = std::time::Instant::now();
    let failed = lifecycle
        .create_service_with(SERVICE_STACK, &[("S3EndpointRouteTableIds", "")])
        .await
        .expect("create-stack runs");

    expect(&failed, "ROLLBACK_COMPLETE");
    let reason =
        failed.reason("SeedAuthorities", "CREATE_FAILED").expect("SeedAuthorities CREATE_FAILED in the events");
    assert!(reason.contains("the seeding function cannot reach S3"), "{reason}");
    assert!(reason.contains("the VPC's main route table"), "{reason}");
    assert!(reason.contains("set the parameter S3EndpointRouteTableIds to rtb-"), "{reason}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "failed in seconds, not after a ServiceTimeout");
    assert!(!failed.has("AppService", "CREATE_IN_PROGRESS"), "the app never started");
}

/// CloudFormation completes an ECS service only once it is stable: hours on tasks that keep
/// failing, or the circuit breaker's message without the tasks' reason. The health wait runs
/// beside the services and fails the stack first, quoting ECS's stopped reason and the exit code;
/// CloudFormation then cancels the app service's creation and rolls back. `qa-deploy why` then
/// shows the stopped tasks with the last lines the container printed (its awslogs stream).
#[tokio::test(flavor = "multi_thread")]
async fn app_tasks_that_keep_stopping_fail_the_stack_with_their_reason_before_the_service_completes() {
    let lifecycle = prepared().await;
    let printed = ["Migrating to qa_server_production", "Mysql2::Error::ConnectionError: Access denied for user 'qa'"];
    lifecycle.bed.stop_tasks("qa-server-app", "Essential container in task exited", "", 1, &printed);

    let failed = lifecycle.create_service(SERVICE_STACK).await.expect("create-stack runs");

    expect(&failed, "ROLLBACK_COMPLETE");
    let reason =
        failed.reason("ServicesHealthy", "CREATE_FAILED").expect("ServicesHealthy CREATE_FAILED in the events");
    assert!(reason.contains("Essential container in task exited (container qa-server-app, exit 1)"), "{reason}");
    assert_eq!(
        failed.reason("AppService", "CREATE_FAILED"),
        Some("Resource creation cancelled"),
        "{:#?}",
        failed.events
    );
    assert!(!failed.has("AppService", "CREATE_COMPLETE"), "the wait failed before the service completed");
    assert!(failed.has("DatabaseHealthy", "CREATE_COMPLETE"), "the database was healthy first: {:#?}", failed.events);
    assert!(failed.has("SeedAuthorities", "DELETE_COMPLETE"), "the rollback deletes what was created");

    let (status, why) = lifecycle.why(Path::new(QA_DEPLOY), SERVICE_STACK).await.expect("qa-deploy why runs");
    println!("{why}");
    assert_eq!(status, 1, "{why}");
    assert!(why.contains("ServicesHealthy (Custom::ServicesHealthy) CREATE_FAILED"), "{why}");
    assert!(!why.contains("Resource creation cancelled"), "{why}");
    assert!(why.contains(&format!("ECS service {SERVICE_STACK}-app: ")), "{why}");
    assert!(why.contains("stopped at") && why.contains("Essential container in task exited"), "{why}");
    assert!(why.contains("container qa-server-app: exit code 1"), "{why}");
    assert!(why.contains("last log lines ("), "{why}");
    for line in printed {
        assert!(why.contains(line), "the container's last lines: {line}\n{why}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_update_rolls_the_seed_back_to_its_old_properties() {
    let lifecycle = deployed().await;
    let before = lifecycle.seeded();

    let updated = lifecycle
        .update_service(SERVICE_STACK, &[("AuthoritiesPrefix", "no-such-prefix/"), ("AuthoritiesSourceVersion", "2")])
        .await
        .expect("update-stack runs");

    expect(&updated, "UPDATE_ROLLBACK_COMPLETE");
    let reason =
        updated.reason("SeedAuthorities", "UPDATE_FAILED").expect("SeedAuthorities UPDATE_FAILED in the events");
    assert!(reason.contains("no-such-prefix/"), "names what it looked for: {reason}");
    assert_eq!(
        updated.events.iter().filter(|e| e.logical_id == "SeedAuthorities" && e.status == "UPDATE_COMPLETE").count(),
        1,
        "the rollback's Update with the old properties succeeds: {:#?}",
        updated.events
    );
    assert_eq!(lifecycle.seeded(), before, "the seeded files are as they were");
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_completes_and_the_authorities_remain() {
    let lifecycle = deployed().await;
    let seeded = lifecycle.seeded();

    let deleted = lifecycle.delete_stack(SERVICE_STACK).await.expect("delete-stack runs");

    expect(&deleted, "DELETE_COMPLETE");
    for resource in CUSTOM_RESOURCES {
        assert!(deleted.has(resource, "DELETE_COMPLETE"), "{resource} answered its Delete: {:#?}", deleted.events);
    }
    // Reverse dependency order: what depends on a resource is gone before its Delete starts.
    for (dependent, dependency) in [
        ("AppService", "DatabaseHealthy"),
        ("ServicesHealthy", "SeedAuthorities"),
        ("AppService", "SeedAuthorities"),
        ("MysqlService", "EnvFileCheck"),
        ("SeedAuthorities", "SeedFunction"),
        ("EnvFileCheck", "CheckAndWaitFunction"),
    ] {
        let gone = deleted.position(dependent, "DELETE_COMPLETE");
        let started = deleted.position(dependency, "DELETE_IN_PROGRESS");
        assert!(gone < started && gone.is_some(), "{dependent} is deleted before {dependency}: {:#?}", deleted.events);
    }
    assert_eq!(lifecycle.seeded(), seeded, "the authorities remain on the file system");

    let deleted = lifecycle.delete_stack(PREREQUISITES_STACK).await.expect("delete-stack runs");
    expect(&deleted, "DELETE_COMPLETE");
    let kept = lifecycle
        .bed
        .aws(&[
            "s3api",
            "list-objects-v2",
            "--bucket",
            BUCKET,
            "--prefix",
            "authorities/",
            "--query",
            "length(Contents)",
        ])
        .await
        .expect("the retained bucket is listed");
    assert_eq!(
        kept.as_u64(),
        Some(source_files(&lifecycle).len() as u64),
        "the retained bucket keeps the authority files"
    );
    assert_eq!(lifecycle.seeded(), seeded, "the authorities remain after the prerequisites stack is gone");
}
