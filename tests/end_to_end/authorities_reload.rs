//! Authority changes reach every running app task, verified: `qa-deploy authorities publish
//! --stack` and a stack update with a new `AuthoritiesSourceVersion`, on moto's CloudFormation
//! with the bed's ECS running a qa_server stand-in per app task on its host port
//! (`tests/testbed/launcher/qa_server_standin.py`), reached by the seeding function over the
//! bed's VPC (`Behaviour::TasksOnLoopback`).

use std::path::Path;
use std::process::Output;

use qa_lookup_testbed::client_env;
use qa_lookup_testbed::lifecycle::{self, Lifecycle, Settled, SERVICE_STACK};
use serde_json::Value;

const FUNCTION: &str = env!("CARGO_BIN_EXE_custom-resources");
const QA_DEPLOY: &str = env!("CARGO_BIN_EXE_qa-deploy");
/// The env file's RELOAD_TOKEN in the bed (cfn/.env.example's placeholder replaced).
const TOKEN: &str = "demo-secret";

fn expect(settled: &Settled, wanted: &str) {
    assert_eq!(settled.status, wanted, "the stack's events:\n{:#?}", settled.events);
}

/// The running app tasks: their ids and the 127.0.0.1 port of each one's stand-in (its host port).
async fn app_tasks(lifecycle: &Lifecycle) -> Vec<(String, u16)> {
    let cluster = format!("{SERVICE_STACK}-cluster");
    let outputs = lifecycle.bed.outputs(SERVICE_STACK).await.expect("describe-stacks");
    let cluster = outputs.iter().find(|(k, _)| k == "ClusterName").map(|(_, v)| v.clone()).unwrap_or(cluster);
    let listed = lifecycle.aws(&["ecs", "list-tasks", "--cluster", &cluster]).await.expect("list-tasks");
    let arns: Vec<&str> = listed["taskArns"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let mut args = vec!["ecs", "describe-tasks", "--cluster", &cluster, "--tasks"];
    args.extend(arns.iter().copied());
    let described = lifecycle.aws(&args).await.expect("describe-tasks");
    let group = format!("service:{SERVICE_STACK}-app");
    let mut tasks: Vec<(String, u16)> = described["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["group"] == group.as_str() && t["lastStatus"] == "RUNNING")
        .map(|t| {
            let id = t["taskArn"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
            let port = t["containers"][0]["networkBindings"][0]["hostPort"].as_u64().expect("a host port") as u16;
            (id, port)
        })
        .collect();
    tasks.sort();
    tasks
}

/// What a task's stand-in has loaded: its names and how many reloads it took.
async fn state(port: u16) -> (Vec<String>, u64) {
    let state: Value =
        reqwest::get(format!("http://127.0.0.1:{port}/testbed/state")).await.unwrap().json().await.unwrap();
    let names = state["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect();
    (names, state["reloads"].as_u64().unwrap())
}

async fn publish(lifecycle: &Lifecycle, from: &Path) -> Output {
    tokio::process::Command::new(QA_DEPLOY)
        .args(["authorities", "publish", "--stack", SERVICE_STACK, "--from"])
        .arg(from)
        .envs(client_env(&lifecycle.bed.moto.endpoint))
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("qa-deploy runs")
}

fn printed(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// One linked-data file of the tree other than `except`.
fn a_linked_data_file(tree: &Path, except: &[&str]) -> String {
    let mut names: Vec<String> = std::fs::read_dir(tree.join("linked_data"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !except.contains(&n.as_str()))
        .collect();
    names.sort();
    names.into_iter().next().expect("a linked-data authority in the fixture")
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_with_the_stack_reloads_every_task_verified_an_update_reloads_them_and_a_task_that_ignores_it_fails_the_publish_naming_it(
) {
    let mut lifecycle = Lifecycle::start(Path::new(FUNCTION), &lifecycle::authorities_fixture()).await;
    expect(&lifecycle.create_prerequisites().await.expect("create-stack runs"), "CREATE_COMPLETE");
    lifecycle.upload().await.expect("the files are uploaded");
    let created =
        lifecycle.create_service_with(SERVICE_STACK, &[("AppDesiredCount", "2")]).await.expect("create-stack runs");
    expect(&created, "CREATE_COMPLETE");
    let tasks = app_tasks(&lifecycle).await;
    assert_eq!(tasks.len(), 2, "two app tasks run: {tasks:?}");

    // A same-size change, an added and a removed authority.
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("authorities");
    lifecycle::copy_tree(&lifecycle.authorities, &tree);
    let removed = a_linked_data_file(&tree, &[]);
    let changed = a_linked_data_file(&tree, &[&removed]);
    let text = std::fs::read_to_string(tree.join("linked_data").join(&changed)).unwrap();
    let flipped = if text.contains("\"label\"") {
        text.replacen("\"label\"", "\"lebal\"", 1)
    } else {
        text.replacen(' ', "\t", 1)
    };
    assert_eq!(flipped.len(), text.len());
    std::fs::write(tree.join("linked_data").join(&changed), flipped).unwrap();
    std::fs::copy(tree.join("linked_data").join(&changed), tree.join("linked_data/added_by_publish.json")).unwrap();
    std::fs::remove_file(tree.join("linked_data").join(&removed)).unwrap();
    let removed_name = removed.trim_end_matches(".json").to_uppercase();

    let output = publish(&lifecycle, &tree).await;
    let text = printed(&output);
    assert!(output.status.success(), "{text}");
    for (task, port) in &tasks {
        assert!(text.contains(&format!("✓ task {task} ")), "{task} is verified: {text}");
        let (names, reloads) = state(*port).await;
        assert!(names.contains(&"ADDED_BY_PUBLISH".to_owned()) && !names.contains(&removed_name), "{task}: {names:?}");
        assert_eq!(reloads, 1, "{task} reloaded once");
    }
    assert!(text.contains("every running task serves the new set (2 task(s)"), "{text}");
    assert!(!text.contains(TOKEN), "the token is never printed: {text}");

    // The stack's own update reloads every task too.
    let updated = lifecycle
        .update_service(SERVICE_STACK, &[("AppDesiredCount", "2"), ("AuthoritiesSourceVersion", "2")])
        .await
        .expect("update-stack runs");
    expect(&updated, "UPDATE_COMPLETE");
    for (task, port) in &tasks {
        assert_eq!(state(*port).await.1, 2, "{task} reloaded by the update");
    }

    // A task that answers the reload without reloading fails the publish, and is named.
    let (ignoring, ignoring_port) = &tasks[0];
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{ignoring_port}/testbed/ignore-reload"))
        .send()
        .await
        .unwrap();
    std::fs::copy(tree.join("linked_data/added_by_publish.json"), tree.join("linked_data/added_again.json")).unwrap();
    let output = publish(&lifecycle, &tree).await;
    let text = printed(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("✗ task {ignoring} ")) && text.contains("does not serve ADDED_AGAIN"), "{text}");
    assert!(!text.contains(&format!("✗ task {} ", tasks[1].0)), "the other task took it: {text}");
    assert!(state(tasks[1].1).await.0.contains(&"ADDED_AGAIN".to_owned()));
    assert!(!text.contains(TOKEN), "the token is never printed: {text}");

    // An update fails on that task too, and its rollback completes: the rollback's seed restores
    // the old properties' set and its reload reports the task instead of failing the rollback.
    let reloads_before = state(tasks[1].1).await.1;
    let updated = lifecycle
        .update_service(SERVICE_STACK, &[("AppDesiredCount", "2"), ("AuthoritiesSourceVersion", "3")])
        .await
        .expect("update-stack runs");
    expect(&updated, "UPDATE_ROLLBACK_COMPLETE");
    let reason = updated.reason("SeedAuthorities", "UPDATE_FAILED").unwrap_or_default();
    assert!(reason.contains(&format!("✗ task {ignoring} ")), "{reason}");
    assert!(!reason.contains(TOKEN));
    assert_eq!(state(tasks[1].1).await.1, reloads_before + 2, "the other task reloaded by the update and the rollback");
}

/// The live-sync lines of the bed's function log (every line every function printed, in order).
fn live_sync_lines(lifecycle: &Lifecycle) -> Vec<String> {
    lifecycle
        .bed
        .function_log()
        .lines()
        .filter(|l| l.contains("live sync") || l.contains("LiveSyncFailures"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn live_sync_makes_a_burst_of_200_changes_one_seed_that_reaches_the_task_and_a_broken_file_changes_nothing_and_is_counted(
) {
    let mut lifecycle = Lifecycle::start(Path::new(FUNCTION), &lifecycle::authorities_fixture()).await;
    expect(&lifecycle.create_prerequisites().await.expect("create-stack runs"), "CREATE_COMPLETE");
    lifecycle.upload().await.expect("the files are uploaded");
    expect(&lifecycle.create_service(SERVICE_STACK).await.expect("create-stack runs"), "CREATE_COMPLETE");
    let live_sync =
        lifecycle.create_live_sync("lookup-live-sync-demo", SERVICE_STACK).await.expect("create-stack runs");
    expect(&live_sync, "CREATE_COMPLETE");
    let tasks = app_tasks(&lifecycle).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let (_, port) = tasks[0];

    // A burst: aws s3 sync of 200 new authorities.
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("authorities");
    lifecycle::copy_tree(&lifecycle.authorities, &tree);
    let model = a_linked_data_file(&tree, &[]);
    for n in 0..200 {
        std::fs::copy(tree.join("linked_data").join(&model), tree.join(format!("linked_data/burst_{n:03}.json")))
            .unwrap();
    }
    let destination = format!("s3://{}/authorities/", lifecycle::BUCKET);
    lifecycle.aws(&["s3", "sync", &tree.to_string_lossy(), &destination, "--quiet"]).await.expect("aws s3 sync");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let names = state(port).await.0;
        if names.contains(&"BURST_000".to_owned()) && names.contains(&"BURST_199".to_owned()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the burst did not reach the task: {:#?}",
            live_sync_lines(&lifecycle)
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let lines = live_sync_lines(&lifecycle);
    let syncs: Vec<&String> = lines.iter().filter(|l| l.contains("changed object(s)")).collect();
    assert_eq!(syncs.len(), 1, "one batch, one seed: {lines:#?}");
    // aws s3 sync also uploads the copied tree's files again (their times are newer): all one batch.
    let uploaded = lifecycle::files_below(&tree).len();
    assert!(syncs[0].contains(&format!("{uploaded} changed object(s)")), "{lines:#?}");

    // A broken file: the seed refuses it, the task keeps its set, the failure is counted.
    let before = state(port).await;
    let broken = tree.join("linked_data/broken_one.json");
    std::fs::write(&broken, "{ not json").unwrap();
    lifecycle
        .aws(&["s3", "cp", &broken.to_string_lossy(), &format!("{destination}linked_data/broken_one.json"), "--quiet"])
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let failure = loop {
        let lines = live_sync_lines(&lifecycle);
        if let Some(line) = lines.iter().find(|l| l.contains("live sync of") && l.contains("failed")) {
            break line.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no failure logged: {lines:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert!(failure.contains("broken_one.json"), "the reason names the file: {failure}");
    let metric = live_sync_lines(&lifecycle).into_iter().find(|l| l.contains("\"LiveSyncFailures\":1"));
    assert!(metric.is_some_and(|m| m.contains("\"CloudWatchMetrics\"")), "the failure is counted in the metric");
    assert_eq!(state(port).await, before, "the running set is untouched");
    assert!(!std::fs::read_dir(&lifecycle.bed.mount).unwrap().flatten().any(|e| e.file_name() == "broken_one.json"));
    assert!(!lifecycle.bed.mount.join("linked_data/broken_one.json").exists(), "nothing was written");
}
