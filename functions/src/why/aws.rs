//! The AWS calls `why` makes, behind [`WhyAws`] so the report is tested without the network. Every
//! call only reads.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_cloudformation::error::ProvideErrorMetadata;

use super::report::StackEvent;
use crate::aws::describe;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackSummary {
    pub id: String,
    pub name: String,
    pub status: String,
    pub reason: String,
}

/// One page of `describe-stack-events`, newest first, and the token of the next (older) page.
pub type EventsPage = (Vec<StackEvent>, Option<String>);

/// A log event: when, where and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub timestamp_ms: i64,
    pub stream: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoppedContainer {
    pub name: String,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoppedTask {
    pub arn: String,
    pub task_definition_arn: String,
    /// `service:<name>` for a service's task.
    pub group: String,
    pub stopped_reason: String,
    pub stop_code: String,
    pub stopped_at_ms: Option<i64>,
    pub containers: Vec<StoppedContainer>,
}

impl StoppedTask {
    pub fn id(&self) -> &str {
        self.arn.rsplit('/').next().unwrap_or(&self.arn)
    }
}

/// A container's `awslogs` settings in its task definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsLogs {
    pub group: String,
    pub stream_prefix: Option<String>,
}

pub trait WhyAws: Send + Sync {
    /// `None` when no stack has this name (or id).
    fn stack(&self, name: &str) -> impl Future<Output = Result<Option<StackSummary>, String>> + Send;
    fn events(&self, stack_id: &str, token: Option<String>) -> impl Future<Output = Result<EventsPage, String>> + Send;
    fn template(&self, stack_id: &str) -> impl Future<Output = Result<String, String>> + Send;
    /// Logical id to physical id, for the resources CloudFormation lists.
    fn physical_ids(&self, stack_id: &str) -> impl Future<Output = Result<HashMap<String, String>, String>> + Send;
    /// The events of `group` since `since_ms` that contain `term` (a quoted term of a filter pattern).
    fn find_lines(
        &self,
        group: &str,
        term: &str,
        since_ms: i64,
    ) -> impl Future<Output = Result<Vec<LogLine>, String>> + Send;
    /// The last `count` events of one stream, oldest first.
    fn last_lines(
        &self,
        group: &str,
        stream: &str,
        count: i32,
    ) -> impl Future<Output = Result<Vec<String>, String>> + Send;
    /// The stopped tasks ECS still lists for a service.
    fn stopped_tasks(
        &self,
        cluster: &str,
        service: &str,
    ) -> impl Future<Output = Result<Vec<StoppedTask>, String>> + Send;
    /// Container name to its awslogs settings, for one task definition.
    fn container_logs(
        &self,
        task_definition_arn: &str,
    ) -> impl Future<Output = Result<HashMap<String, AwsLogs>, String>> + Send;
}

pub struct SdkWhyAws {
    cloudformation: aws_sdk_cloudformation::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    ecs: aws_sdk_ecs::Client,
}

impl SdkWhyAws {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        SdkWhyAws {
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
            ecs: aws_sdk_ecs::Client::new(config),
        }
    }

    pub fn with_clients(
        cloudformation: aws_sdk_cloudformation::Client,
        logs: aws_sdk_cloudwatchlogs::Client,
        ecs: aws_sdk_ecs::Client,
    ) -> Self {
        SdkWhyAws { cloudformation, logs, ecs }
    }
}

fn millis(time: Option<&aws_sdk_cloudformation::primitives::DateTime>) -> i64 {
    time.and_then(|t| t.to_millis().ok()).unwrap_or_default()
}

/// How many pages of matching log events one request's lines may take (FilterLogEvents pages by
/// up to 10,000 events or 1 MB).
const MAX_LOG_PAGES: usize = 5;
/// ListTasks returns at most 100 task ARNs a page; the newest are enough.
const MAX_TASKS: i32 = 100;

impl WhyAws for SdkWhyAws {
    async fn stack(&self, name: &str) -> Result<Option<StackSummary>, String> {
        match self.cloudformation.describe_stacks().stack_name(name).send().await {
            Ok(output) => Ok(output.stacks().first().map(|stack| StackSummary {
                id: stack.stack_id().unwrap_or_default().to_owned(),
                name: stack.stack_name().unwrap_or_default().to_owned(),
                status: stack.stack_status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                reason: stack.stack_status_reason().unwrap_or_default().to_owned(),
            })),
            // CloudFormation answers a missing stack with ValidationError "Stack with id X does not
            // exist" (DescribeStacks API reference, "Errors": none specific; the CLI shows this text).
            Err(error)
                if error.code() == Some("ValidationError")
                    && error.message().is_some_and(|m| m.contains("does not exist")) =>
            {
                Ok(None)
            }
            Err(error) => Err(format!("describe-stacks: {}", describe(&error))),
        }
    }

    async fn events(&self, stack_id: &str, token: Option<String>) -> Result<EventsPage, String> {
        let output = self
            .cloudformation
            .describe_stack_events()
            .stack_name(stack_id)
            .set_next_token(token)
            .send()
            .await
            .map_err(|error| format!("describe-stack-events: {}", describe(&error)))?;
        let events = output
            .stack_events()
            .iter()
            .map(|e| StackEvent {
                logical_id: e.logical_resource_id().unwrap_or_default().to_owned(),
                physical_id: e.physical_resource_id().unwrap_or_default().to_owned(),
                resource_type: e.resource_type().unwrap_or_default().to_owned(),
                status: e.resource_status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                reason: e.resource_status_reason().unwrap_or_default().to_owned(),
                timestamp_ms: millis(e.timestamp()),
            })
            .collect();
        Ok((events, output.next_token().map(str::to_owned)))
    }

    async fn template(&self, stack_id: &str) -> Result<String, String> {
        let output = self
            .cloudformation
            .get_template()
            .stack_name(stack_id)
            .send()
            .await
            .map_err(|error| format!("get-template: {}", describe(&error)))?;
        Ok(output.template_body().unwrap_or_default().to_owned())
    }

    async fn physical_ids(&self, stack_id: &str) -> Result<HashMap<String, String>, String> {
        let output = self
            .cloudformation
            .describe_stack_resources()
            .stack_name(stack_id)
            .send()
            .await
            .map_err(|error| format!("describe-stack-resources: {}", describe(&error)))?;
        Ok(output
            .stack_resources()
            .iter()
            .filter_map(|r| Some((r.logical_resource_id()?.to_owned(), r.physical_resource_id()?.to_owned())))
            .collect())
    }

    async fn find_lines(&self, group: &str, term: &str, since_ms: i64) -> Result<Vec<LogLine>, String> {
        let mut lines = Vec::new();
        let mut token = None;
        for _ in 0..MAX_LOG_PAGES {
            // A quoted term matches it anywhere in the event, hyphens included (CloudWatch Logs user
            // guide, "Filter pattern syntax": "Matching terms in unstructured log events").
            let output = self
                .logs
                .filter_log_events()
                .log_group_name(group)
                .filter_pattern(format!("\"{term}\""))
                .start_time(since_ms)
                .set_next_token(token)
                .send()
                .await
                .map_err(|error| format!("filter-log-events in {group}: {}", describe(&error)))?;
            lines.extend(output.events().iter().map(|e| LogLine {
                timestamp_ms: e.timestamp().unwrap_or_default(),
                stream: e.log_stream_name().unwrap_or_default().to_owned(),
                message: e.message().unwrap_or_default().to_owned(),
            }));
            token = output.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(lines)
    }

    async fn last_lines(&self, group: &str, stream: &str, count: i32) -> Result<Vec<String>, String> {
        // Without startFromHead, GetLogEvents returns the latest events first page (GetLogEvents API
        // reference, "startFromHead": "the default value is false"), each page oldest first.
        let output = self
            .logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .limit(count)
            .start_from_head(false)
            .send()
            .await
            .map_err(|error| format!("get-log-events {group} {stream}: {}", describe(&error)))?;
        Ok(output.events().iter().map(|e| e.message().unwrap_or_default().to_owned()).collect())
    }

    async fn stopped_tasks(&self, cluster: &str, service: &str) -> Result<Vec<StoppedTask>, String> {
        let listed = self
            .ecs
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Stopped)
            .max_results(MAX_TASKS)
            .send()
            .await
            .map_err(|error| format!("ecs list-tasks {cluster} {service}: {}", describe(&error)))?;
        if listed.task_arns().is_empty() {
            return Ok(Vec::new());
        }
        let described = self
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(listed.task_arns().to_vec()))
            .send()
            .await
            .map_err(|error| format!("ecs describe-tasks {cluster}: {}", describe(&error)))?;
        Ok(described
            .tasks()
            .iter()
            .map(|task| StoppedTask {
                arn: task.task_arn().unwrap_or_default().to_owned(),
                task_definition_arn: task.task_definition_arn().unwrap_or_default().to_owned(),
                group: task.group().unwrap_or_default().to_owned(),
                stopped_reason: task.stopped_reason().unwrap_or_default().to_owned(),
                stop_code: task.stop_code().map(|c| c.as_str().to_owned()).unwrap_or_default(),
                stopped_at_ms: task.stopped_at().and_then(|t| t.to_millis().ok()),
                containers: task
                    .containers()
                    .iter()
                    .map(|c| StoppedContainer {
                        name: c.name().unwrap_or_default().to_owned(),
                        exit_code: c.exit_code(),
                        reason: c.reason().map(str::to_owned),
                    })
                    .collect(),
            })
            .collect())
    }

    async fn container_logs(&self, task_definition_arn: &str) -> Result<HashMap<String, AwsLogs>, String> {
        let output = self
            .ecs
            .describe_task_definition()
            .task_definition(task_definition_arn)
            .send()
            .await
            .map_err(|error| format!("ecs describe-task-definition {task_definition_arn}: {}", describe(&error)))?;
        let containers = output.task_definition().map(|td| td.container_definitions()).unwrap_or_default();
        Ok(containers
            .iter()
            .filter_map(|container| {
                let config = container.log_configuration()?;
                if config.log_driver().as_str() != "awslogs" {
                    return None;
                }
                let options = config.options()?;
                let group = options.get("awslogs-group")?.clone();
                let stream_prefix = options.get("awslogs-stream-prefix").cloned();
                Some((container.name()?.to_owned(), AwsLogs { group, stream_prefix }))
            })
            .collect())
    }
}
