//! What the wait sees of ECS, behind [`EcsView`] so that the decisions can be tested without the
//! network. [`aws_sdk_ecs::Client`] is the real view.

use std::future::Future;
use std::time::SystemTime;

use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ecs::types::DesiredStatus;

/// A service as DescribeServices reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// ACTIVE, DRAINING or INACTIVE.
    pub status: String,
    pub desired: i32,
    pub running: i32,
    pub deployments: Vec<Deployment>,
}

impl Service {
    /// The deployment ECS is rolling out: the one whose status is PRIMARY.
    pub fn primary(&self) -> Option<&Deployment> {
        self.deployments.iter().find(|d| d.status == "PRIMARY")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    /// PRIMARY, ACTIVE or INACTIVE.
    pub status: String,
    /// The task definition ARN this deployment runs.
    pub task_definition: String,
    /// IN_PROGRESS, COMPLETED or FAILED; absent without the deployment circuit breaker.
    pub rollout_state: Option<String>,
    pub rollout_reason: Option<String>,
    /// Tasks that failed to launch or failed their health checks (REFERENCE.md, "ECS health").
    pub failed_tasks: i32,
}

/// A task as DescribeTasks reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub arn: String,
    /// `service:<name>` for a service's tasks.
    pub group: String,
    /// For a service's tasks: the id of the deployment that started it.
    pub started_by: String,
    pub task_definition: String,
    pub last_status: String,
    /// HEALTHY, UNHEALTHY or UNKNOWN; moto reports none (REFERENCE.md).
    pub health: Option<String>,
    pub stopped_reason: Option<String>,
    pub stopped_at: Option<SystemTime>,
    pub containers: Vec<Container>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub health: Option<String>,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
}

/// DescribeServices' answer: the services found, and the names it did not find with its reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribedServices {
    pub found: Vec<Service>,
    pub missing: Vec<(String, String)>,
}

/// Which tasks to list: those ECS keeps running, or those stopped in the last hour or so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Running,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsError {
    pub message: String,
    /// Asking again will not help: a missing cluster, a denied permission, a bad parameter.
    pub lasting: bool,
}

/// The four ECS calls the wait makes.
pub trait EcsView: Sync {
    /// One call for up to 10 services.
    fn describe_services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> impl Future<Output = Result<DescribedServices, EcsError>> + Send;

    /// One call: the first 100 task ARNs of the whole cluster (its services' tasks are few).
    fn list_tasks(&self, cluster: &str, listing: Listing)
        -> impl Future<Output = Result<Vec<String>, EcsError>> + Send;

    /// One call for up to 100 tasks.
    fn describe_tasks(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> impl Future<Output = Result<Vec<Task>, EcsError>> + Send;

    /// One call: the names of the task definition's essential containers that define a health check.
    fn health_checked_containers(
        &self,
        task_definition: &str,
    ) -> impl Future<Output = Result<Vec<String>, EcsError>> + Send;
}

/// Service errors that asking again will not cure.
const LASTING_ERRORS: [&str; 5] = [
    "ClusterNotFoundException",
    "AccessDeniedException",
    "InvalidParameterException",
    "ClientException",
    "UnrecognizedClientException",
];

fn ecs_error<E, R>(operation: &str, error: SdkError<E, R>) -> EcsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error.as_service_error() {
        Some(service_error) => {
            let code = service_error.code().unwrap_or("an unnamed error");
            let message = service_error.message().unwrap_or_default();
            EcsError { message: format!("ECS {operation}: {code}: {message}"), lasting: LASTING_ERRORS.contains(&code) }
        }
        None => EcsError { message: format!("ECS {operation}: {}", DisplayErrorContext(&error)), lasting: false },
    }
}

fn text(value: Option<&str>) -> String {
    value.unwrap_or_default().to_owned()
}

fn to_service(service: &aws_sdk_ecs::types::Service) -> Service {
    Service {
        name: text(service.service_name()),
        status: text(service.status()),
        desired: service.desired_count(),
        running: service.running_count(),
        deployments: service
            .deployments()
            .iter()
            .map(|deployment| Deployment {
                id: text(deployment.id()),
                status: text(deployment.status()),
                task_definition: text(deployment.task_definition()),
                rollout_state: deployment.rollout_state().map(|state| state.as_str().to_owned()),
                rollout_reason: deployment.rollout_state_reason().map(str::to_owned),
                failed_tasks: deployment.failed_tasks(),
            })
            .collect(),
    }
}

fn to_task(task: &aws_sdk_ecs::types::Task) -> Task {
    Task {
        arn: text(task.task_arn()),
        group: text(task.group()),
        started_by: text(task.started_by()),
        task_definition: text(task.task_definition_arn()),
        last_status: text(task.last_status()),
        health: task.health_status().map(|health| health.as_str().to_owned()),
        stopped_reason: task.stopped_reason().map(str::to_owned),
        stopped_at: task.stopped_at().and_then(|at| SystemTime::try_from(*at).ok()),
        containers: task
            .containers()
            .iter()
            .map(|container| Container {
                name: text(container.name()),
                health: container.health_status().map(|health| health.as_str().to_owned()),
                reason: container.reason().map(str::to_owned),
                exit_code: container.exit_code(),
            })
            .collect(),
    }
}

impl EcsView for aws_sdk_ecs::Client {
    async fn describe_services(&self, cluster: &str, names: &[String]) -> Result<DescribedServices, EcsError> {
        let output = self
            .describe_services()
            .cluster(cluster)
            .set_services(Some(names.to_vec()))
            .send()
            .await
            .map_err(|error| ecs_error("DescribeServices", error))?;
        let missing = output
            .failures()
            .iter()
            .map(|failure| {
                let arn = failure.arn().unwrap_or_default();
                let name = arn.rsplit('/').next().unwrap_or(arn).to_owned();
                (name, text(failure.reason()))
            })
            .collect();
        Ok(DescribedServices { found: output.services().iter().map(to_service).collect(), missing })
    }

    async fn list_tasks(&self, cluster: &str, listing: Listing) -> Result<Vec<String>, EcsError> {
        let desired_status = match listing {
            Listing::Running => DesiredStatus::Running,
            Listing::Stopped => DesiredStatus::Stopped,
        };
        let output = self
            .list_tasks()
            .cluster(cluster)
            .desired_status(desired_status)
            .max_results(100)
            .send()
            .await
            .map_err(|error| ecs_error("ListTasks", error))?;
        Ok(output.task_arns().to_vec())
    }

    async fn describe_tasks(&self, cluster: &str, arns: &[String]) -> Result<Vec<Task>, EcsError> {
        let output = self
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(arns.to_vec()))
            .send()
            .await
            .map_err(|error| ecs_error("DescribeTasks", error))?;
        Ok(output.tasks().iter().map(to_task).collect())
    }

    async fn health_checked_containers(&self, task_definition: &str) -> Result<Vec<String>, EcsError> {
        let output = self
            .describe_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .map_err(|error| ecs_error("DescribeTaskDefinition", error))?;
        let containers = output.task_definition().map(|d| d.container_definitions()).unwrap_or_default();
        Ok(containers
            .iter()
            // A container is essential unless its definition says otherwise.
            .filter(|c| c.essential().unwrap_or(true) && c.health_check().is_some())
            .map(|c| text(c.name()))
            .collect())
    }
}
