//! Judging each service from what the wait has seen of it and of its tasks, and choosing the one
//! task call a poll may make after DescribeServices.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::SystemTime;

use super::ecs::{Listing, Service, Task};

/// This many stopped tasks of a service's current deployment since the wait began end it. One
/// fewer than the deployment circuit breaker's smallest threshold (3 failed tasks; ECS developer
/// guide, "deployment circuit breaker"): the wait fails with the tasks' stopped reasons while
/// CloudFormation still waits on the service, before the breaker's generic message can.
pub const STOPS_TO_FAIL: usize = 2;

/// DescribeTasks takes at most 100 tasks.
const DESCRIBE_TASKS_LIMIT: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    Waiting,
    /// It will not become healthy without a fix.
    Failing {
        why: String,
        /// The stopped tasks that explain it are in [`ServiceState::stopped`], or none are left to find.
        explained: bool,
    },
}

/// One service as the last poll saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    pub name: String,
    pub running: i32,
    pub desired: i32,
    /// Running tasks of the current deployment that pass their health checks, once any were seen.
    pub healthy_tasks: Option<usize>,
    pub notes: Vec<String>,
    /// Why its tasks stopped since the wait began, each distinct reason once.
    pub stopped: Vec<String>,
    pub verdict: Verdict,
}

/// `app 1/2 running, 1 healthy (rollout IN_PROGRESS)` or `mysql 1/1 running, healthy`.
impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{} running", self.name, self.running, self.desired)?;
        match (&self.verdict, self.healthy_tasks) {
            (Verdict::Healthy, _) => write!(f, ", healthy")?,
            (_, Some(healthy)) => write!(f, ", {healthy} healthy")?,
            (_, None) => {}
        }
        if !self.notes.is_empty() {
            write!(f, " ({})", self.notes.join(", "))?;
        }
        Ok(())
    }
}

/// One ECS call about tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskCall {
    List(Listing),
    Describe(Vec<String>),
    DescribeDefinition(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskHealth {
    Healthy,
    Unhealthy,
    /// Its health checks have not passed yet.
    NotYet,
    /// Only its task definition tells whether UNKNOWN means "no health check" or "not checked yet".
    NeedsDefinition,
}

/// What the wait has learned of the services' tasks, poll after poll.
#[derive(Debug)]
pub struct Seen {
    services: Vec<String>,
    /// Stopped tasks count from here.
    since: SystemTime,
    /// The services' tasks by ARN; `None` until described.
    tasks: BTreeMap<String, Option<Task>>,
    /// Listed tasks of other services, or of none: not worth describing again.
    others: HashSet<String>,
    /// Task definition → its essential containers that define a health check.
    health_checks: HashMap<String, Vec<String>>,
    stopped_listed: bool,
    previous_call: Option<TaskCall>,
}

impl Seen {
    pub fn new(services: &[String], since: SystemTime) -> Self {
        Seen {
            services: services.to_vec(),
            since,
            tasks: BTreeMap::new(),
            others: HashSet::new(),
            health_checks: HashMap::new(),
            stopped_listed: false,
            previous_call: None,
        }
    }

    pub fn record_listing(&mut self, listing: Listing, arns: Vec<String>) {
        for arn in arns {
            if !self.others.contains(&arn) {
                self.tasks.entry(arn).or_insert(None);
            }
        }
        if listing == Listing::Stopped {
            self.stopped_listed = true;
        }
    }

    /// ECS leaves out of `described` the tasks it no longer knows; they are forgotten too.
    pub fn record_tasks(&mut self, requested: &[String], described: Vec<Task>) {
        for arn in requested {
            self.tasks.remove(arn);
        }
        for task in described {
            if self.services.iter().any(|name| task.group == format!("service:{name}")) {
                self.tasks.insert(task.arn.clone(), Some(task));
            } else {
                self.others.insert(task.arn);
            }
        }
    }

    pub fn record_health_checks(&mut self, task_definition: String, containers: Vec<String>) {
        self.health_checks.insert(task_definition, containers);
    }

    fn tasks_of<'a>(&'a self, service: &str) -> impl Iterator<Item = &'a Task> + 'a {
        let group = format!("service:{service}");
        self.tasks.values().flatten().filter(move |task| task.group == group)
    }

    /// Running tasks of the service's current deployment.
    fn live_tasks(&self, service: &Service) -> Vec<&Task> {
        let Some(primary) = service.primary() else { return Vec::new() };
        self.tasks_of(&service.name)
            .filter(|task| task.started_by == primary.id && task.last_status == "RUNNING")
            .collect()
    }

    fn stopped_tasks(&self, service: &str, deployment: &str) -> Vec<&Task> {
        self.tasks_of(service)
            .filter(|task| task.started_by == deployment && task.last_status == "STOPPED")
            .filter(|task| task.stopped_at.is_none_or(|at| at >= self.since))
            .collect()
    }

    fn undescribed(&self) -> Vec<String> {
        self.tasks.iter().filter(|(_, task)| task.is_none()).map(|(arn, _)| arn.clone()).collect()
    }

    /// Described tasks that have not stopped: describing them again shows their health and stops.
    fn watched(&self) -> Vec<String> {
        self.tasks.values().flatten().filter(|task| task.last_status != "STOPPED").map(|t| t.arn.clone()).collect()
    }

    /// Where the task carries no task-level health, as on moto, its containers' health decides.
    fn task_health(&self, task: &Task) -> TaskHealth {
        match task.health.as_deref() {
            Some("HEALTHY") => return TaskHealth::Healthy,
            Some("UNHEALTHY") => return TaskHealth::Unhealthy,
            _ => {}
        }
        let container_reports = |name: &str, status: &str| {
            task.containers.iter().any(|c| c.name == name && c.health.as_deref() == Some(status))
        };
        if task.containers.iter().any(|c| c.health.as_deref() == Some("UNHEALTHY")) {
            return TaskHealth::Unhealthy;
        }
        if !task.containers.is_empty() && task.containers.iter().all(|c| c.health.as_deref() == Some("HEALTHY")) {
            return TaskHealth::Healthy;
        }
        match self.health_checks.get(&task.task_definition) {
            None => TaskHealth::NeedsDefinition,
            Some(checked) if checked.iter().all(|name| container_reports(name, "HEALTHY")) => TaskHealth::Healthy,
            Some(_) => TaskHealth::NotYet,
        }
    }

    /// `expected`: the task definitions the wait was given; a service whose current deployment runs
    /// an older revision of one of them has not started the deployment the wait is for.
    pub fn judge(&self, service: &Service, expected: &[String]) -> ServiceState {
        let primary = service.primary();
        let awaited = primary.and_then(|p| awaited_revision(&p.task_definition, expected));
        let live = self.live_tasks(service);
        let health: Vec<TaskHealth> = live.iter().map(|task| self.task_health(task)).collect();
        let healthy = health.iter().filter(|h| **h == TaskHealth::Healthy).count();
        let unhealthy = health.iter().filter(|h| **h == TaskHealth::Unhealthy).count();
        let failed_deployment = service.deployments.iter().find(|d| d.rollout_state.as_deref() == Some("FAILED"));
        // A failed deployment's tasks explain its failure; otherwise the current deployment's.
        let explaining_deployment = failed_deployment.or(primary).map(|d| d.id.as_str()).unwrap_or_default();
        let stopped_tasks = self.stopped_tasks(&service.name, explaining_deployment);
        let current_stops = match primary {
            Some(primary) => {
                self.stopped_tasks(&service.name, &primary.id).len().max(primary.failed_tasks.max(0) as usize)
            }
            None => 0,
        };
        let rollout = primary.and_then(|p| p.rollout_state.as_deref());

        let mut notes = Vec::new();
        if service.deployments.len() > 1 {
            notes.push(format!("{} deployments", service.deployments.len()));
        }
        if let Some(state) = rollout.filter(|state| *state != "COMPLETED") {
            notes.push(format!("rollout {state}"));
        }
        if unhealthy > 0 {
            notes.push(format!("{unhealthy} unhealthy"));
        }
        if current_stops > 0 {
            notes.push(format!("{current_stops} stopped"));
        }
        if service.desired == 0 {
            notes.push("desired count 0".to_owned());
        }
        if let Some(revision) = awaited {
            notes.push(format!("deployment of {revision} not started yet"));
        }

        let failing = |why: String| Verdict::Failing {
            why,
            explained: !stopped_tasks.is_empty() || (self.stopped_listed && self.undescribed().is_empty()),
        };
        let verdict = if service.status != "ACTIVE" {
            Verdict::Failing {
                why: format!("the service is {}: it is being deleted or was deleted", service.status),
                explained: true,
            }
        } else if let Some(deployment) = failed_deployment {
            let reason = deployment.rollout_reason.as_deref().map_or("ECS gave no reason", |r| r.trim_end_matches('.'));
            failing(format!("its deployment {} failed: {reason}", deployment.id))
        } else if current_stops >= STOPS_TO_FAIL {
            failing(format!("{current_stops} tasks of its current deployment stopped since the wait began"))
        } else if awaited.is_none()
            && service.deployments.len() == 1
            && matches!(rollout, None | Some("COMPLETED"))
            && service.desired > 0
            && service.running == service.desired
            && live.len() >= service.running as usize
            && healthy == live.len()
        {
            Verdict::Healthy
        } else {
            Verdict::Waiting
        };

        ServiceState {
            name: service.name.clone(),
            running: service.running,
            desired: service.desired,
            healthy_tasks: (!live.is_empty()).then_some(healthy),
            notes,
            stopped: distinct_reasons(&service.name, &stopped_tasks),
            verdict,
        }
    }

    /// The task call this poll needs most, if any; a poll makes at most one (with DescribeServices,
    /// two calls a poll: 8 a minute at 15 s).
    pub fn choose_call(&mut self, services: &[Service], states: &[ServiceState]) -> Option<TaskCall> {
        let call = self.most_needed_call(services, states);
        self.previous_call = call.clone();
        call
    }

    fn most_needed_call(&self, services: &[Service], states: &[ServiceState]) -> Option<TaskCall> {
        let unexplained = states.iter().any(|s| matches!(s.verdict, Verdict::Failing { explained: false, .. }));
        // A deployment's first failed task is looked up at once, so that the reason is at hand
        // when enough have stopped to fail: before the circuit breaker's own message.
        let failures_unseen = services.iter().any(|service| {
            service.primary().is_some_and(|p| p.failed_tasks > 0 && self.stopped_tasks(&service.name, &p.id).is_empty())
        });
        if (unexplained || failures_unseen) && !self.stopped_listed {
            return Some(TaskCall::List(Listing::Stopped));
        }
        let undescribed = self.undescribed();
        if !undescribed.is_empty() {
            let mut arns = undescribed;
            arns.extend(self.watched());
            arns.truncate(DESCRIBE_TASKS_LIMIT);
            return Some(TaskCall::Describe(arns));
        }
        // Listing twice in a row finds nothing new; ECS's list may lag its counts.
        let listed_last_poll = self.previous_call == Some(TaskCall::List(Listing::Running));
        if !listed_last_poll && services.iter().any(|s| s.running.max(0) as usize > self.live_tasks(s).len()) {
            return Some(TaskCall::List(Listing::Running));
        }
        let needs_definition = services
            .iter()
            .flat_map(|service| self.live_tasks(service))
            .find(|task| self.task_health(task) == TaskHealth::NeedsDefinition);
        if let Some(task) = needs_definition {
            return Some(TaskCall::DescribeDefinition(task.task_definition.clone()));
        }
        let mut watched = self.watched();
        watched.truncate(DESCRIBE_TASKS_LIMIT);
        (!watched.is_empty()).then_some(TaskCall::Describe(watched))
    }
}

/// The revision in `expected` of the same family as `running`, when `running` is not it: the
/// deployment the wait is for has not started yet (CloudFormation updates the service after the
/// wait began).
fn awaited_revision<'a>(running: &str, expected: &'a [String]) -> Option<&'a str> {
    let family = |arn: &str| arn.rsplit('/').next().and_then(|rest| rest.split(':').next()).map(str::to_owned);
    let running_family = family(running)?;
    let wanted = expected.iter().find(|arn| family(arn).as_deref() == Some(running_family.as_str()))?;
    let short = |arn: &'a str| arn.rsplit('/').next().unwrap_or(arn);
    (short(wanted) != running.rsplit('/').next().unwrap_or(running)).then(|| short(wanted))
}

/// `mysql: Essential container in task exited (container mysql, exit 1)`, once per distinct text,
/// with how many tasks gave it.
fn distinct_reasons(service: &str, tasks: &[&Task]) -> Vec<String> {
    let mut counted: Vec<(String, usize)> = Vec::new();
    for task in tasks {
        let quote = stop_reason(service, task);
        match counted.iter_mut().find(|(text, _)| *text == quote) {
            Some((_, count)) => *count += 1,
            None => counted.push((quote, 1)),
        }
    }
    counted.into_iter().map(|(text, count)| if count == 1 { text } else { format!("{text} ({count} tasks)") }).collect()
}

fn stop_reason(service: &str, task: &Task) -> String {
    let reason = task.stopped_reason.as_deref().unwrap_or("stopped without a reason");
    let containers: Vec<String> = task
        .containers
        .iter()
        .filter(|c| c.reason.is_some() || c.exit_code.is_some_and(|code| code != 0))
        .map(|c| {
            let mut parts = vec![format!("container {}", c.name)];
            parts.extend(c.reason.clone());
            parts.extend(c.exit_code.map(|code| format!("exit {code}")));
            parts.join(", ")
        })
        .collect();
    if containers.is_empty() {
        format!("{service}: {reason}")
    } else {
        format!("{service}: {reason} ({})", containers.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::services_healthy::ecs::{Container, Deployment};

    fn service(name: &str, running: i32, desired: i32, rollout: &str) -> Service {
        Service {
            name: name.into(),
            status: "ACTIVE".into(),
            desired,
            running,
            deployments: vec![Deployment {
                id: format!("ecs-svc/{name}"),
                status: "PRIMARY".into(),
                task_definition: format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{name}:1"),
                rollout_state: Some(rollout.into()),
                rollout_reason: None,
                failed_tasks: 0,
            }],
        }
    }

    fn task(service: &str, id: &str, last_status: &str, health: Option<&str>, container_health: &str) -> Task {
        Task {
            arn: format!("arn:aws:ecs:us-east-1:123456789012:task/qa/{id}"),
            group: format!("service:{service}"),
            started_by: format!("ecs-svc/{service}"),
            task_definition: format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{service}:1"),
            last_status: last_status.into(),
            health: health.map(str::to_owned),
            stopped_reason: None,
            stopped_at: None,
            containers: vec![Container {
                name: service.into(),
                health: Some(container_health.into()),
                reason: None,
                exit_code: None,
            }],
        }
    }

    fn seen_with(tasks: Vec<Task>) -> Seen {
        let mut seen = Seen::new(&["app".into(), "mysql".into()], SystemTime::now() - Duration::from_secs(60));
        let arns: Vec<String> = tasks.iter().map(|t| t.arn.clone()).collect();
        seen.record_listing(Listing::Running, arns.clone());
        seen.record_tasks(&arns, tasks);
        seen
    }

    #[test]
    fn progress_reads_like_the_issue_says() {
        let mut seen = seen_with(vec![
            task("app", "a1", "RUNNING", Some("HEALTHY"), "HEALTHY"),
            task("app", "a2", "RUNNING", Some("UNKNOWN"), "UNKNOWN"),
            task("mysql", "m1", "RUNNING", None, "HEALTHY"),
        ]);
        seen.record_health_checks(
            "arn:aws:ecs:us-east-1:123456789012:task-definition/app:1".into(),
            vec!["app".into()],
        );
        let app = seen.judge(&service("app", 2, 2, "COMPLETED"), &[]);
        let mysql = seen.judge(&service("mysql", 1, 1, "COMPLETED"), &[]);
        assert_eq!(format!("{app}; {mysql}"), "app 2/2 running, 1 healthy; mysql 1/1 running, healthy");
        assert_eq!(app.verdict, Verdict::Waiting);
        assert_eq!(mysql.verdict, Verdict::Healthy);
    }

    #[test]
    fn counts_alone_are_not_healthy_until_the_tasks_are_seen() {
        let seen = seen_with(Vec::new());
        let mysql = seen.judge(&service("mysql", 1, 1, "COMPLETED"), &[]);
        assert_eq!(mysql.verdict, Verdict::Waiting);
        assert_eq!(mysql.to_string(), "mysql 1/1 running");
    }

    #[test]
    fn unknown_health_needs_the_task_definition_and_without_checks_is_healthy() {
        let mut seen = seen_with(vec![task("app", "a1", "RUNNING", Some("UNKNOWN"), "UNKNOWN")]);
        let app = service("app", 1, 1, "COMPLETED");
        let states = vec![seen.judge(&app, &[])];
        let call = seen.choose_call(std::slice::from_ref(&app), &states);
        let definition = "arn:aws:ecs:us-east-1:123456789012:task-definition/app:1";
        assert_eq!(call, Some(TaskCall::DescribeDefinition(definition.into())));
        seen.record_health_checks(definition.into(), Vec::new());
        assert_eq!(seen.judge(&app, &[]).verdict, Verdict::Healthy, "no container defines a health check");
    }

    #[test]
    fn a_second_deployment_or_a_rollout_in_progress_is_not_healthy() {
        let seen = seen_with(vec![task("app", "a1", "RUNNING", Some("HEALTHY"), "HEALTHY")]);
        let mut app = service("app", 1, 1, "IN_PROGRESS");
        assert_eq!(seen.judge(&app, &[]).verdict, Verdict::Waiting);
        app.deployments[0].rollout_state = Some("COMPLETED".into());
        let mut old = app.deployments[0].clone();
        old.id = "ecs-svc/old".into();
        old.status = "ACTIVE".into();
        app.deployments.push(old);
        let state = seen.judge(&app, &[]);
        assert_eq!(state.verdict, Verdict::Waiting);
        assert_eq!(state.to_string(), "app 1/1 running, 1 healthy (2 deployments)");
    }

    #[test]
    fn three_stopped_tasks_fail_quoting_each_distinct_reason_once() {
        let stopped = |id: &str, exit_code: i32| {
            let mut task = task("mysql", id, "STOPPED", None, "UNKNOWN");
            task.stopped_reason = Some("Essential container in task exited".into());
            task.stopped_at = Some(SystemTime::now());
            task.containers[0].exit_code = Some(exit_code);
            task
        };
        let seen = seen_with(vec![stopped("m1", 1), stopped("m2", 1), stopped("m3", 137)]);
        let state = seen.judge(&service("mysql", 0, 1, "IN_PROGRESS"), &[]);
        assert!(matches!(&state.verdict, Verdict::Failing { explained: true, why } if why.contains("3 tasks")));
        assert_eq!(
            state.stopped,
            [
                "mysql: Essential container in task exited (container mysql, exit 1) (2 tasks)",
                "mysql: Essential container in task exited (container mysql, exit 137)",
            ]
        );
    }

    #[test]
    fn tasks_stopped_before_the_wait_began_do_not_count() {
        let mut old = task("mysql", "m0", "STOPPED", None, "UNKNOWN");
        old.stopped_at = Some(SystemTime::now() - Duration::from_secs(3600));
        let seen = seen_with(vec![old]);
        assert!(seen.judge(&service("mysql", 0, 1, "IN_PROGRESS"), &[]).stopped.is_empty());
    }

    #[test]
    fn a_failed_rollout_without_known_stopped_tasks_lists_them_first() {
        let mut seen = seen_with(Vec::new());
        let mut mysql = service("mysql", 0, 1, "FAILED");
        mysql.deployments[0].rollout_reason = Some("ECS deployment circuit breaker: tasks failed to start.".into());
        let states = vec![seen.judge(&mysql, &[])];
        assert!(matches!(states[0].verdict, Verdict::Failing { explained: false, .. }));
        assert_eq!(seen.choose_call(std::slice::from_ref(&mysql), &states), Some(TaskCall::List(Listing::Stopped)));
        seen.record_listing(Listing::Stopped, Vec::new());
        assert!(
            matches!(seen.judge(&mysql, &[]).verdict, Verdict::Failing { explained: true, .. }),
            "nothing to quote"
        );
    }

    #[test]
    fn listing_alternates_with_other_calls_when_ecs_lists_fewer_tasks_than_it_counts() {
        let mut seen = seen_with(vec![task("mysql", "m1", "RUNNING", None, "HEALTHY")]);
        let services = [service("app", 1, 1, "COMPLETED"), service("mysql", 1, 1, "COMPLETED")];
        let states: Vec<_> = services.iter().map(|s| seen.judge(s, &[])).collect();
        assert_eq!(seen.choose_call(&services, &states), Some(TaskCall::List(Listing::Running)));
        seen.record_listing(Listing::Running, Vec::new());
        assert!(matches!(seen.choose_call(&services, &states), Some(TaskCall::Describe(_))));
        assert_eq!(seen.choose_call(&services, &states), Some(TaskCall::List(Listing::Running)));
    }

    #[test]
    fn a_service_still_on_an_older_revision_waits_for_the_deployment_of_the_new_one() {
        let seen = seen_with(vec![task("app", "a1", "RUNNING", Some("HEALTHY"), "HEALTHY")]);
        let app = service("app", 1, 1, "COMPLETED");
        let new = "arn:aws:ecs:us-east-1:123456789012:task-definition/app:2".to_owned();
        let other = "arn:aws:ecs:us-east-1:123456789012:task-definition/mysql:9".to_owned();
        let state = seen.judge(&app, &[new, other.clone()]);
        assert_eq!(state.verdict, Verdict::Waiting);
        assert_eq!(state.to_string(), "app 1/1 running, 1 healthy (deployment of app:2 not started yet)");
        assert_eq!(seen.judge(&app, &[other]).verdict, Verdict::Healthy, "another family's revision is no concern");
    }

    #[test]
    fn two_stopped_tasks_fail_before_the_circuit_breakers_smallest_threshold_of_three() {
        let stopped = |id: &str| {
            let mut task = task("app", id, "STOPPED", None, "UNKNOWN");
            task.stopped_reason = Some("Essential container in task exited".into());
            task.stopped_at = Some(SystemTime::now());
            task
        };
        let seen = seen_with(vec![stopped("a1"), stopped("a2")]);
        let state = seen.judge(&service("app", 0, 1, "IN_PROGRESS"), &[]);
        assert!(matches!(&state.verdict, Verdict::Failing { explained: true, why } if why.contains("2 tasks")));
    }
}
