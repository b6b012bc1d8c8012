//! `qa-deploy why --stack NAME`: why the stack's latest operation failed, in one report a person can
//! act on (issue 13).
//!
//! - **The latest operation**: the events since the stack's last `CREATE_`, `UPDATE_`, `DELETE_` or
//!   `IMPORT_IN_PROGRESS` (a rollback belongs to the operation that failed).
//! - **Root causes**: that operation's first resource failures, without CloudFormation's
//!   cancellations of what was still in progress and without the stack's own summary.
//! - **A custom resource**: the functions behind its `ServiceToken` (and `WorkerFunction`, to which
//!   `Custom::SeedAuthorities` hands the seed) are found in the template, their log groups from
//!   their `LoggingConfig` (else Lambda's default), and the request's lines by CloudFormation's
//!   RequestId, which our runtime puts on every line and at the end of every FAILED reason. The
//!   template and the events stay readable after a rollback deleted the functions; the log groups
//!   are retained.
//! - **ECS**: when a service or a health wait failed, the tasks of the stack's services that stopped
//!   since the operation began because a container exited or failed to start (not the scheduler's
//!   own replacements): stopped reason, each container's exit code and reason, and the last lines of
//!   its awslogs stream (`<prefix>/<container>/<task id>`, ECS developer guide, "Using the awslogs
//!   log driver"). Not only the latest deployment's: after a rollback the failed deployment is no
//!   longer listed by describe-services, while ECS still lists its stopped tasks for a while
//!   (ListTasks API reference: "Recently stopped tasks might appear in the returned results").
//! - **What to do**, for the stack's status.
//!
//! Every printed line is redacted ([`report::redact`]): no pre-signed URL's signature. Env-file
//! values never reach a reason or a log line in the first place (the check names keys only).

pub mod aws;
pub mod report;
pub mod template;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use self::aws::{StoppedTask, WhyAws};
use self::report::{Health, StackEvent};
use self::template::{Named, Template};

/// Root causes shown at most; the first are the ones that matter.
const MAX_CAUSES: usize = 5;
/// A request's log lines shown at most (the last ones: a failure is explained at the end).
const MAX_REQUEST_LINES: usize = 40;
/// Stopped tasks shown per service, newest first, and log lines per container.
const MAX_TASKS_PER_SERVICE: usize = 3;
const CONTAINER_LOG_LINES: i32 = 20;
/// A printed line is cut here.
const MAX_LINE_CHARS: usize = 400;
/// describe-stack-events pages read at most looking for the operation's start.
const MAX_EVENT_PAGES: usize = 20;

/// The report, and whether it reports a failure (exit status 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub text: String,
    pub failed: bool,
}

fn time(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Explains the stack's latest operation; an error when the stack cannot be read at all.
pub async fn explain(aws: &impl WhyAws, stack_name: &str) -> Result<Explanation, String> {
    let Some(stack) = aws.stack(stack_name).await? else {
        return Err(format!(
            "no stack named {stack_name} in this account and region: check --stack (make why STAGE=s reads \
             lookup-service-s) and AWS_REGION / AWS_PROFILE"
        ));
    };
    let mut out = String::new();
    let health = report::health(&stack.status);
    if health == Health::Healthy {
        writeln!(out, "Stack {}: {} — healthy, its latest operation completed.", stack.name, stack.status).ok();
        return Ok(Explanation { text: out, failed: false });
    }

    let (operation, older) = latest_operation(aws, &stack.id, &stack.name).await?;
    let started_ms = operation.first().map(|e| e.timestamp_ms).unwrap_or_default();
    let causes = report::root_causes(&operation, &stack.name, MAX_CAUSES);
    writeln!(out, "Stack {}: {}", stack.name, stack.status).ok();
    if !stack.reason.is_empty() {
        writeln!(out, "  {}", report::printable(&stack.reason, MAX_LINE_CHARS)).ok();
    }
    if let Some(first) = operation.first() {
        writeln!(out, "Latest operation: {} at {}", first.status.trim_end_matches("_IN_PROGRESS"), time(started_ms))
            .ok();
    }
    if causes.is_empty() {
        let said = if health == Health::InProgress { "no failure so far" } else { "no resource reported a failure" };
        writeln!(out, "\n{said}.").ok();
        steps(&mut out, &stack.name, &stack.status);
        return Ok(Explanation { text: out, failed: health == Health::Failed });
    }

    let template = aws.template(&stack.id).await.and_then(|body| Template::parse(&body));
    let ids = physical_ids(aws, &stack.id, &operation, &older).await;
    writeln!(out, "\nRoot cause{}:", if causes.len() > 1 { "s" } else { "" }).ok();
    for cause in &causes {
        writeln!(
            out,
            "  {} ({}) {} at {}",
            cause.logical_id,
            cause.resource_type,
            cause.status,
            time(cause.timestamp_ms)
        )
        .ok();
        writeln!(out, "    {}", report::printable(&cause.reason, 2 * MAX_LINE_CHARS)).ok();
        if is_custom(&cause.resource_type) {
            match &template {
                Ok(template) => request_log(aws, &mut out, template, &ids, cause, started_ms).await,
                Err(error) => {
                    writeln!(out, "    (its function's log could not be found: {error})").ok();
                }
            }
        }
    }
    if causes.iter().any(|c| c.resource_type == "AWS::ECS::Service" || c.resource_type == "Custom::ServicesHealthy") {
        if let Ok(template) = &template {
            stopped_tasks(aws, &mut out, template, &ids, started_ms).await;
        }
    }
    steps(&mut out, &stack.name, &stack.status);
    Ok(Explanation { text: out, failed: true })
}

fn is_custom(resource_type: &str) -> bool {
    resource_type.starts_with("Custom::") || resource_type == "AWS::CloudFormation::CustomResource"
}

fn steps(out: &mut String, stack: &str, status: &str) {
    let steps = report::next_steps(stack, status);
    if !steps.is_empty() {
        writeln!(out, "\nWhat to do:").ok();
        for step in steps {
            writeln!(out, "  - {step}").ok();
        }
    }
}

/// The latest operation's events, oldest first, and the older events read on the way.
async fn latest_operation(
    aws: &impl WhyAws,
    stack_id: &str,
    stack_name: &str,
) -> Result<(Vec<StackEvent>, Vec<StackEvent>), String> {
    let mut newest_first = Vec::new();
    let mut token = None;
    for _ in 0..MAX_EVENT_PAGES {
        let (page, next) = aws.events(stack_id, token).await?;
        newest_first.extend(page);
        token = next;
        if token.is_none() || report::operation_start(&newest_first, stack_name).is_some() {
            break;
        }
    }
    let start = report::operation_start(&newest_first, stack_name).unwrap_or(newest_first.len().saturating_sub(1));
    let older = newest_first.split_off((start + 1).min(newest_first.len()));
    newest_first.reverse();
    Ok((newest_first, older))
}

/// Logical id to physical id: what describe-stack-resources lists, and for what a rollback already
/// deleted, the last physical id its events carried.
async fn physical_ids(
    aws: &impl WhyAws,
    stack_id: &str,
    operation: &[StackEvent],
    older: &[StackEvent],
) -> HashMap<String, String> {
    let mut ids = aws.physical_ids(stack_id).await.unwrap_or_default();
    for event in operation.iter().rev().chain(older) {
        if !event.physical_id.is_empty() {
            ids.entry(event.logical_id.clone()).or_insert_with(|| event.physical_id.clone());
        }
    }
    ids
}

fn resolve(named: &Named, ids: &HashMap<String, String>) -> Option<String> {
    match named {
        Named::Resource(logical_id) => ids.get(logical_id).cloned(),
        Named::Literal(text) => Some(text.clone()),
    }
}

/// The custom resource's request, in the logs of each function that served it.
async fn request_log(
    aws: &impl WhyAws,
    out: &mut String,
    template: &Template,
    ids: &HashMap<String, String>,
    cause: &StackEvent,
    since_ms: i64,
) {
    let mut groups = BTreeSet::new();
    for served in template.functions_of(&cause.logical_id) {
        let group = match &served.log_group {
            Some(group) => resolve(group, ids),
            None => resolve(&served.function, ids).map(|f| template::default_log_group(&template::function_name(&f))),
        };
        groups.extend(group);
    }
    if groups.is_empty() {
        writeln!(
            out,
            "    (the log group of the function behind its ServiceToken was not found: its log was not read)"
        )
        .ok();
        return;
    }
    let groups_said = groups.iter().cloned().collect::<Vec<_>>().join(", ");
    let Some(request_id) = report::request_id(cause) else {
        writeln!(
            out,
            "    (the reason names no request id: the function's log is in {groups_said}, around {})",
            time(cause.timestamp_ms)
        )
        .ok();
        return;
    };
    let mut found = Vec::new();
    for group in &groups {
        match aws.find_lines(group, &request_id, since_ms).await {
            Ok(lines) => found.extend(lines),
            Err(error) => {
                writeln!(out, "    ({error})").ok();
            }
        }
    }
    // In the order they were written, across the functions' streams.
    found.sort_by_key(|line| line.timestamp_ms);
    let lines: Vec<String> = found.into_iter().map(|line| line.message).collect();
    if lines.is_empty() {
        writeln!(out, "    No log line of request {request_id} in {groups_said}.").ok();
        return;
    }
    writeln!(out, "    Log of request {request_id} ({groups_said}):").ok();
    if lines.len() > MAX_REQUEST_LINES {
        writeln!(out, "      … {} earlier lines not shown", lines.len() - MAX_REQUEST_LINES).ok();
    }
    for line in &lines[lines.len().saturating_sub(MAX_REQUEST_LINES)..] {
        writeln!(out, "      {}", report::printable(line, MAX_LINE_CHARS)).ok();
    }
}

/// A task that stopped because a container exited or could not start, not one the scheduler
/// replaced or a deployment scaled in.
fn failed_task(task: &StoppedTask) -> bool {
    matches!(task.stop_code.as_str(), "EssentialContainerExited" | "TaskFailedToStart")
        || task.containers.iter().any(|c| c.exit_code.is_some_and(|code| code != 0))
}

/// The service's name and cluster from its physical id (a service ARN,
/// `arn:aws:ecs:region:account:service/<cluster>/<name>`, or the older form without the cluster).
fn service_and_cluster(physical_id: &str, cluster: Option<String>) -> (String, String) {
    let path = physical_id.split_once(":service/").map_or(physical_id, |(_, path)| path);
    match path.split_once('/') {
        Some((in_arn, name)) => (name.to_owned(), in_arn.to_owned()),
        None => (path.to_owned(), cluster.unwrap_or_else(|| "default".to_owned())),
    }
}

async fn stopped_tasks(
    aws: &impl WhyAws,
    out: &mut String,
    template: &Template,
    ids: &HashMap<String, String>,
    since_ms: i64,
) {
    let mut task_definitions = HashMap::new();
    for (logical_id, cluster) in template.ecs_services() {
        let Some(physical_id) = ids.get(&logical_id) else { continue };
        let (service, cluster) = service_and_cluster(physical_id, cluster.and_then(|c| resolve(&c, ids)));
        let mut tasks = match aws.stopped_tasks(&cluster, &service).await {
            Ok(tasks) => tasks,
            Err(error) => {
                writeln!(out, "\nECS service {service}: its stopped tasks could not be listed ({error})").ok();
                continue;
            }
        };
        // moto's ListTasks ignores serviceName (REFERENCE.md): the group says whose task it is.
        let group = format!("service:{service}");
        tasks.retain(|t| t.group == group && t.stopped_at_ms.is_some_and(|at| at >= since_ms) && failed_task(t));
        tasks.sort_by_key(|t| std::cmp::Reverse(t.stopped_at_ms));
        if tasks.is_empty() {
            writeln!(out, "\nECS service {service}: no task failed since the operation began.").ok();
            continue;
        }
        writeln!(out, "\nECS service {service}: {} task(s) failed since the operation began; the latest:", tasks.len())
            .ok();
        for task in tasks.iter().take(MAX_TASKS_PER_SERVICE) {
            let revision = task.task_definition_arn.rsplit('/').next().unwrap_or_default();
            writeln!(
                out,
                "  task {} ({revision}) stopped at {}: {}",
                task.id(),
                time(task.stopped_at_ms.unwrap_or_default()),
                task.stopped_reason
            )
            .ok();
            if !task_definitions.contains_key(&task.task_definition_arn) {
                let logs = aws.container_logs(&task.task_definition_arn).await;
                task_definitions.insert(task.task_definition_arn.clone(), logs);
            }
            let logs = &task_definitions[&task.task_definition_arn];
            for container in &task.containers {
                let exit = container.exit_code.map_or("no exit code".to_owned(), |code| format!("exit code {code}"));
                let reason =
                    container.reason.as_deref().filter(|r| !r.is_empty()).map(|r| format!(", {r}")).unwrap_or_default();
                writeln!(out, "    container {}: {exit}{reason}", container.name).ok();
                container_log(aws, out, logs, &container.name, task.id()).await;
            }
        }
    }
}

async fn container_log(
    aws: &impl WhyAws,
    out: &mut String,
    logs: &Result<HashMap<String, aws::AwsLogs>, String>,
    container: &str,
    task_id: &str,
) {
    let settings = match logs {
        Ok(logs) => logs.get(container),
        Err(error) => {
            writeln!(out, "      (its log settings could not be read: {error})").ok();
            return;
        }
    };
    let Some(settings) = settings else {
        writeln!(out, "      (no awslogs log configuration: its output is not in CloudWatch Logs)").ok();
        return;
    };
    let Some(prefix) = &settings.stream_prefix else {
        writeln!(
            out,
            "      (log group {}: without awslogs-stream-prefix the stream is named by the container id)",
            settings.group
        )
        .ok();
        return;
    };
    let stream = format!("{prefix}/{container}/{task_id}");
    match aws.last_lines(&settings.group, &stream, CONTAINER_LOG_LINES).await {
        Ok(lines) if lines.is_empty() => {
            writeln!(out, "      (no lines in {} {stream})", settings.group).ok();
        }
        Ok(lines) => {
            writeln!(out, "      last log lines ({} {stream}):", settings.group).ok();
            for line in lines {
                writeln!(out, "        {}", report::printable(&line, MAX_LINE_CHARS)).ok();
            }
        }
        Err(error) => {
            writeln!(out, "      ({error})").ok();
        }
    }
}

/// `qa-deploy why`: the report on stdout; exit 0 healthy, 1 failure reported (or the stack could
/// not be read, said on stderr).
pub async fn run(config: &aws_config::SdkConfig, stack: &str) -> std::process::ExitCode {
    match explain(&aws::SdkWhyAws::new(config), stack).await {
        Ok(explanation) => {
            print!("{}", explanation.text);
            if explanation.failed {
                std::process::ExitCode::FAILURE
            } else {
                std::process::ExitCode::SUCCESS
            }
        }
        Err(problem) => {
            eprintln!("qa-deploy why: {}", report::redact(&problem));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests;
