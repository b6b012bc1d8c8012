//! Every running app task loads the seeded authorities, each one verified.
//!
//! qa_server keeps its authorities in each process's memory and its reload URL reloads only
//! the process that answers (REFERENCE.md, "Reload"); the load balancer spreads requests over
//! the tasks, so a reload through it reaches one task at random. Each task is therefore reached
//! on its own address: the function outside the VPC, which can call the AWS APIs, finds them
//! (ECS ListTasks and DescribeTasks for the app container's dynamic host port and container
//! instance, DescribeContainerInstances for the EC2 instance, EC2 DescribeInstances for its
//! private IP); the seeding function, inside the VPC and without a route to those APIs, calls
//! each task's reload URL and reads back its authority list.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::aws::describe;
use crate::seed_authorities::manifest::Manifest;

/// The app's container and port in `cfn/aws-deploy.yaml`'s task definition.
pub const APP_CONTAINER: &str = "qa-server-app";
pub const APP_PORT: i32 = 3000;
/// questioning_authority 5.10 (app/controllers/qa/linked_data_terms_controller.rb): the reload
/// answers the list it has just loaded; 401 on a token that is not the app's.
const RELOAD_PATH: &str = "/authorities/reload/linked_data/authorities";
const LIST_PATH: &str = "/authorities/list/linked_data/authorities";
/// The linked-data configurations questioning_authority 5.10 ships itself
/// (config/authorities/linked_data/): a task serves them whatever the mount holds.
const ENGINE_AUTHORITIES: [&str; 3] = ["GETTY_AAC", "LOC", "OCLC_FAST"];
/// Longer than a reload of a few hundred files takes; short enough that a task that does not
/// answer fails the request in seconds, not at the stack's timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One running app task, where the seeding function reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Target {
    pub task: String,
    pub instance: String,
    /// `private IP:host port`.
    pub address: String,
}

/// The AWS calls that find the tasks, behind a trait so that their logic is tested without AWS.
pub trait TaskDirectory: Send + Sync {
    /// The service's RUNNING tasks with the app container's address.
    fn running_tasks(&self, cluster: &str, service: &str) -> impl Future<Output = Result<Vec<Target>, String>> + Send;
}

/// ECS and EC2, as the function outside the VPC (or a terminal) calls them.
pub struct EcsTasks {
    ecs: aws_sdk_ecs::Client,
    ec2: aws_sdk_ec2::Client,
}

impl EcsTasks {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        EcsTasks { ecs: aws_sdk_ecs::Client::new(config), ec2: aws_sdk_ec2::Client::new(config) }
    }
}

impl TaskDirectory for EcsTasks {
    async fn running_tasks(&self, cluster: &str, service: &str) -> Result<Vec<Target>, String> {
        let mut arns = Vec::new();
        let mut pages = self
            .ecs
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| format!("ecs:ListTasks of service {service}: {}", describe(&e)))?;
            arns.extend(page.task_arns().iter().cloned());
        }
        let mut tasks = Vec::new();
        // DescribeTasks takes at most 100 tasks.
        for chunk in arns.chunks(100) {
            let described = self
                .ecs
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| format!("ecs:DescribeTasks in {cluster}: {}", describe(&e)))?;
            // moto's ListTasks does not filter by service (REFERENCE.md); ECS's does.
            let group = format!("service:{service}");
            tasks.extend(
                described
                    .tasks()
                    .iter()
                    .filter(|t| t.group() == Some(group.as_str()) && t.last_status() == Some("RUNNING"))
                    .cloned(),
            );
        }
        let mut bindings = Vec::new();
        for task in &tasks {
            let id = task.task_arn().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_owned();
            let port = task
                .containers()
                .iter()
                .filter(|c| c.name() == Some(APP_CONTAINER))
                .flat_map(|c| c.network_bindings())
                .find(|b| b.container_port() == Some(APP_PORT))
                .and_then(|b| b.host_port());
            let (Some(port), Some(instance)) = (port, task.container_instance_arn()) else {
                return Err(format!(
                    "task {id} of {service} has no host port for {APP_CONTAINER}:{APP_PORT} on a container instance: \
                     expected a bridge-mode task on EC2, as cfn/aws-deploy.yaml defines it"
                ));
            };
            bindings.push((id, instance.to_owned(), port));
        }
        if bindings.is_empty() {
            return Ok(Vec::new());
        }
        let instance_arns: BTreeSet<String> = bindings.iter().map(|(_, arn, _)| arn.clone()).collect();
        let described = self
            .ecs
            .describe_container_instances()
            .cluster(cluster)
            .set_container_instances(Some(instance_arns.into_iter().collect()))
            .send()
            .await
            .map_err(|e| format!("ecs:DescribeContainerInstances in {cluster}: {}", describe(&e)))?;
        let ec2_of = |arn: &str| {
            described
                .container_instances()
                .iter()
                .find(|c| c.container_instance_arn() == Some(arn))
                .and_then(|c| c.ec2_instance_id())
                .map(str::to_owned)
        };
        let instance_ids: BTreeSet<String> = bindings.iter().filter_map(|(_, arn, _)| ec2_of(arn)).collect();
        let reservations = self
            .ec2
            .describe_instances()
            .set_instance_ids(Some(instance_ids.into_iter().collect()))
            .send()
            .await
            .map_err(|e| format!("ec2:DescribeInstances: {}", describe(&e)))?;
        let ip_of = |id: &str| {
            reservations
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .find(|i| i.instance_id() == Some(id))
                .and_then(|i| i.private_ip_address())
                .map(str::to_owned)
        };
        bindings
            .into_iter()
            .map(|(task, arn, port)| {
                let instance = ec2_of(&arn)
                    .ok_or_else(|| format!("container instance {arn} of task {task} has no EC2 instance"))?;
                let ip = ip_of(&instance)
                    .ok_or_else(|| format!("EC2 instance {instance} of task {task} has no private IP"))?;
                Ok(Target { task, instance, address: format!("{ip}:{port}") })
            })
            .collect()
    }
}

/// What every task must serve once the seed has written the new set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// The authorities of `linked_data/*.json` in the new set, named as qa_server names them.
    pub present: BTreeSet<String>,
    /// Those the seed removed; a task that still serves one did not reload.
    pub removed: BTreeSet<String>,
}

impl Expected {
    pub fn between(before: &Manifest, after: &Manifest) -> Expected {
        let present = linked_data_names(after);
        let removed = linked_data_names(before)
            .difference(&present)
            .filter(|name| !ENGINE_AUTHORITIES.contains(&name.as_str()))
            .cloned()
            .collect();
        Expected { present, removed }
    }
}

/// `File.basename(fn, '.json').upcase` of each `linked_data/*.json` (questioning_authority 5.10,
/// lib/qa/linked_data/authority_service.rb).
fn linked_data_names(manifest: &Manifest) -> BTreeSet<String> {
    manifest
        .files
        .keys()
        .filter_map(|path| path.strip_prefix("linked_data/")?.strip_suffix(".json"))
        .filter(|name| !name.contains('/'))
        .map(str::to_uppercase)
        .collect()
}

/// Whether a task's list is the new set; `Ok` with how many it serves.
pub fn verify(served: &[String], expected: &Expected) -> Result<usize, String> {
    let served_set: BTreeSet<&str> = served.iter().map(String::as_str).collect();
    let missing: Vec<&str> = expected.present.iter().map(String::as_str).filter(|n| !served_set.contains(n)).collect();
    let stale: Vec<&str> = expected.removed.iter().map(String::as_str).filter(|n| served_set.contains(n)).collect();
    if missing.is_empty() && stale.is_empty() {
        return Ok(served.len());
    }
    let mut found = Vec::new();
    if !missing.is_empty() {
        found.push(format!("does not serve {}", few(&missing)));
    }
    if !stale.is_empty() {
        found.push(format!("still serves removed {}", few(&stale)));
    }
    Err(format!("it serves an older set: {}", found.join("; ")))
}

fn few(names: &[&str]) -> String {
    match names.len() {
        0..=5 => names.join(", "),
        n => format!("{} and {} more", names[..5].join(", "), n - 5),
    }
}

/// One task's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskResult {
    pub target: Target,
    /// How many authorities it serves, or why it did not take the new set.
    pub outcome: Result<usize, String>,
}

/// `RELOAD_TOKEN` as ECS hands it to the container: the last `RELOAD_TOKEN=` line, its value as
/// written (ECS keeps quotes and spaces). `None` when it is missing or blank: qa_server then
/// refuses every reload (REFERENCE.md).
pub fn reload_token(env_file: &str) -> Option<String> {
    env_file
        .lines()
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter_map(|line| line.strip_prefix("RELOAD_TOKEN="))
        .next_back()
        .filter(|value| !value.trim().is_empty())
        .map(str::to_owned)
}

/// Reloads every task at once and reads back what each one serves.
pub async fn reload_all(targets: &[Target], token: &str, expected: &Expected) -> Vec<TaskResult> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .expect("an HTTP client builds");
    let reloads = targets.iter().map(|target| {
        let client = &client;
        async move {
            let outcome = reload_one(client, &target.address, token, expected).await;
            TaskResult { target: target.clone(), outcome }
        }
    });
    futures::future::join_all(reloads).await
}

async fn reload_one(
    client: &reqwest::Client,
    address: &str,
    token: &str,
    expected: &Expected,
) -> Result<usize, String> {
    // The error never carries the URL: its query is the token.
    let unreachable = |e: reqwest::Error| {
        format!(
            "no answer from {address} ({}): the seeding function's security group must reach the instances' \
             dynamic ports (32768-65535), as cfn/aws-deploy.yaml's SeedFunctionToInstances rule allows",
            e.without_url()
        )
    };
    let reload = client
        .get(format!("http://{address}{RELOAD_PATH}"))
        .query(&[("auth_token", token)])
        .send()
        .await
        .map_err(unreachable)?;
    // qa_server's 401 body repeats the token it was sent: never read it.
    match reload.status().as_u16() {
        200..=299 => {}
        401 => {
            return Err("the reload answered 401: RELOAD_TOKEN differs from the running tasks' token (a task reads \
                        the env file when it starts; restart the tasks after changing it)"
                .to_owned())
        }
        status => return Err(format!("the reload answered HTTP {status}: see the task's log")),
    }
    let list = client.get(format!("http://{address}{LIST_PATH}")).send().await.map_err(unreachable)?;
    if !list.status().is_success() {
        return Err(format!("the authority list answered HTTP {}", list.status().as_u16()));
    }
    let served: Vec<String> = list
        .json()
        .await
        .map_err(|e| format!("the authority list is not a JSON list of names ({})", e.without_url()))?;
    verify(&served, expected)
}

/// One line per task: ✓ serving the new set, ✗ with what it serves or why it was not reached.
pub fn render(results: &[TaskResult]) -> String {
    let lines: Vec<String> = results
        .iter()
        .map(|result| {
            let target = &result.target;
            let place = format!("task {} on {} ({})", target.task, target.instance, target.address);
            match &result.outcome {
                Ok(count) => format!("✓ {place}: serving the new set ({count} linked-data authorities)"),
                Err(reason) => format!("✗ {place}: {reason}"),
            }
        })
        .collect();
    lines.join("\n")
}

/// The failed tasks, for a FAILED reason or a CLI error; `None` when every task took the new set.
pub fn failure(results: &[TaskResult]) -> Option<String> {
    let failed: Vec<TaskResult> = results.iter().filter(|r| r.outcome.is_err()).cloned().collect();
    if failed.is_empty() {
        return None;
    }
    Some(format!(
        "{} of {} running app task(s) did not take the new authorities (the new files are on EFS; tasks started from now \
         on load them): {}",
        failed.len(),
        results.len(),
        render(&failed).replace('\n', "; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed_authorities::manifest::Entry;

    fn manifest(paths: &[&str]) -> Manifest {
        let mut manifest = Manifest::default();
        for path in paths {
            manifest.files.insert(path.to_string(), Entry { key: path.to_string(), etag: "e".into(), size: 1 });
        }
        manifest
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn expected_names_are_upper_cased_linked_data_basenames_and_a_removed_engine_authority_is_not_expected_gone() {
        let before =
            manifest(&["linked_data/loc.json", "linked_data/old_one.json", "linked_data/keep.json", "local.yml"]);
        let after =
            manifest(&["linked_data/keep.json", "linked_data/new_one.json", "linked_data/scenarios/x_validation.yml"]);
        let expected = Expected::between(&before, &after);
        assert_eq!(expected.present, ["KEEP", "NEW_ONE"].map(String::from).into());
        assert_eq!(expected.removed, ["OLD_ONE"].map(String::from).into(), "LOC is questioning_authority's own");
    }

    #[test]
    fn a_task_serving_the_new_set_passes_and_one_serving_the_old_set_is_told_what_differs() {
        let expected = Expected {
            present: ["KEEP", "NEW_ONE"].map(String::from).into(),
            removed: ["OLD_ONE"].map(String::from).into(),
        };
        assert_eq!(verify(&names(&["KEEP", "LOC", "NEW_ONE"]), &expected), Ok(3));
        let reason = verify(&names(&["KEEP", "LOC", "OLD_ONE"]), &expected).unwrap_err();
        assert!(
            reason.contains("does not serve NEW_ONE") && reason.contains("still serves removed OLD_ONE"),
            "{reason}"
        );
    }

    #[test]
    fn the_reload_token_is_the_last_line_as_written_and_blank_is_none() {
        assert_eq!(reload_token("A=1\nRELOAD_TOKEN=first\r\nRELOAD_TOKEN=\"second\"\n").as_deref(), Some("\"second\""));
        assert_eq!(reload_token("RELOAD_TOKEN=  \n"), None);
        assert_eq!(reload_token("# RELOAD_TOKEN=x\nOTHER=1"), None);
    }

    #[test]
    fn a_failure_names_each_failed_task_and_leaves_out_those_that_passed() {
        let target =
            |task: &str| Target { task: task.into(), instance: "i-1".into(), address: "10.0.1.5:49153".into() };
        let results = vec![
            TaskResult { target: target("aaa"), outcome: Ok(17) },
            TaskResult { target: target("bbb"), outcome: Err("the reload answered 401: RELOAD_TOKEN differs".into()) },
        ];
        assert!(render(&results).starts_with("✓ task aaa on i-1 (10.0.1.5:49153): serving the new set (17"));
        let reason = failure(&results).unwrap();
        assert!(
            reason.starts_with("1 of 2 running app task(s)")
                && reason.contains("✗ task bbb")
                && !reason.contains("aaa")
        );
        assert_eq!(failure(&results[..1]), None);
    }
}
