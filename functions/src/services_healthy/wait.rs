//! The poll loop that `Custom::ServicesHealthy` and `qa-deploy wait` share.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::ecs::{EcsError, EcsView, Service};
use super::health::{Seen, ServiceState, TaskCall, Verdict};

/// DescribeServices takes at most 10 services.
const MAX_SERVICES: usize = 10;

#[derive(Debug, Clone)]
pub struct WaitRequest {
    pub cluster: String,
    pub services: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    /// When the wait began, perhaps in an earlier invocation: stopped tasks count from then.
    pub started_at: SystemTime,
    /// `started_at` plus `timeout`, on this process's clock.
    pub deadline: Instant,
    /// The wait ends with [`WaitEnd::HandOff`] rather than start a poll after this.
    pub hand_off_at: Option<Instant>,
    /// The task definitions the services must run: a service still on an older revision of one
    /// of them has not started the deployment waited for.
    pub task_definitions: Vec<String>,
    /// How long after `started_at` a service may not exist yet (CloudFormation creates it beside
    /// the wait) before the wait fails; zero fails at once.
    pub missing_grace: Duration,
}

impl WaitRequest {
    /// Checks what a person gave; the error names the setting and what it must be.
    pub fn new(
        cluster: &str,
        services: &[String],
        timeout: Duration,
        interval: Duration,
        started_at: SystemTime,
    ) -> Result<WaitRequest, String> {
        let cluster = cluster.trim();
        if cluster.is_empty() {
            return Err("the cluster is empty: give the ECS cluster's name or ARN".to_owned());
        }
        let mut names: Vec<String> = Vec::new();
        for name in services.iter().map(|name| name.trim()).filter(|name| !name.is_empty()) {
            if !names.iter().any(|known| known == name) {
                names.push(name.to_owned());
            }
        }
        if names.is_empty() || names.len() > MAX_SERVICES {
            return Err(format!(
                "{} services given: name 1 to {MAX_SERVICES} ECS services (one DescribeServices call)",
                names.len()
            ));
        }
        if interval < Duration::from_secs(1) || interval > timeout {
            return Err(format!(
                "the poll interval {} must be at least 1s and at most the timeout {}",
                humantime::format_duration(interval),
                humantime::format_duration(timeout)
            ));
        }
        let left = (started_at + timeout).duration_since(SystemTime::now()).unwrap_or_default();
        Ok(WaitRequest {
            cluster: cluster.to_owned(),
            services: names,
            interval,
            timeout,
            started_at,
            deadline: Instant::now() + left,
            hand_off_at: None,
            task_definitions: Vec::new(),
            missing_grace: Duration::ZERO,
        })
    }

    pub fn with_hand_off_at(mut self, at: Instant) -> Self {
        self.hand_off_at = Some(at);
        self
    }

    pub fn with_task_definitions(mut self, task_definitions: &[String]) -> Self {
        self.task_definitions =
            task_definitions.iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
        self
    }

    pub fn with_missing_grace(mut self, grace: Duration) -> Self {
        self.missing_grace = grace;
        self
    }

    /// A missing service is still expected to appear.
    fn may_be_missing(&self) -> bool {
        SystemTime::now() < self.started_at + self.missing_grace
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEnd {
    /// Every service is healthy; `states` is the last progress line.
    Healthy {
        states: String,
    },
    Failed {
        reason: String,
    },
    TimedOut {
        reason: String,
    },
    /// The next poll would start after [`WaitRequest::hand_off_at`].
    HandOff,
}

enum PollError {
    /// Waiting will not change it.
    Final(String),
    /// ECS did not answer this time.
    Passing(String),
}

/// Polls until every service is healthy, one fails, the deadline passes or the hand-off time
/// comes. `progress` receives a line per poll, such as
/// `app 1/2 running, 1 healthy; mysql 1/1 running, healthy`.
pub async fn wait(ecs: &impl EcsView, request: &WaitRequest, mut progress: impl FnMut(&str)) -> WaitEnd {
    let mut seen = Seen::new(&request.services, request.started_at);
    let mut last_states: Vec<ServiceState> = Vec::new();
    loop {
        let error = match poll(ecs, request, &mut seen).await {
            Ok(states) => {
                let line = one_line(&states);
                progress(&line);
                if states.iter().all(|state| state.verdict == Verdict::Healthy) {
                    return WaitEnd::Healthy { states: line };
                }
                if let Some(reason) = failure(&states) {
                    return WaitEnd::Failed { reason };
                }
                last_states = states;
                None
            }
            Err(PollError::Final(reason)) => return WaitEnd::Failed { reason },
            Err(PollError::Passing(message)) => {
                progress(&format!("{message}; asking again"));
                Some(message)
            }
        };
        let now = Instant::now();
        if now >= request.deadline {
            return WaitEnd::TimedOut { reason: timed_out(request, &last_states, error.as_deref()) };
        }
        let next_poll = (now + request.interval).min(request.deadline);
        if request.hand_off_at.is_some_and(|at| next_poll > at) {
            return WaitEnd::HandOff;
        }
        tokio::time::sleep_until(next_poll).await;
    }
}

/// One DescribeServices call, then at most one task call.
async fn poll(ecs: &impl EcsView, request: &WaitRequest, seen: &mut Seen) -> Result<Vec<ServiceState>, PollError> {
    let cluster = &request.cluster;
    let described = ecs.describe_services(cluster, &request.services).await.map_err(|e| poll_error(cluster, e))?;
    let not_yet: Vec<ServiceState> = if request.may_be_missing() {
        described.missing.iter().map(|(name, _)| not_created_yet(name)).collect()
    } else {
        Vec::new()
    };
    if !described.missing.is_empty() && not_yet.is_empty() {
        let missing: Vec<String> =
            described.missing.iter().map(|(name, reason)| format!("{name} (ECS: {reason})")).collect();
        return Err(PollError::Final(format!(
            "no service {} in cluster {cluster}{}. Check the service names against the cluster's services \
             (aws ecs list-services --cluster {cluster})",
            missing.join(", "),
            if request.missing_grace.is_zero() {
                String::new()
            } else {
                format!(" within {} of the wait's start", humantime::format_duration(request.missing_grace))
            }
        )));
    }
    let mut services = described.found;
    services.sort_by_key(|service| request.services.iter().position(|name| *name == service.name));
    let in_order = |mut states: Vec<ServiceState>| {
        states.extend(not_yet.iter().cloned());
        states.sort_by_key(|state| request.services.iter().position(|name| *name == state.name));
        states
    };

    let states = judge(seen, &services, &request.task_definitions);
    if failure(&states).is_some() {
        return Ok(in_order(states));
    }
    let Some(call) = seen.choose_call(&services, &states) else { return Ok(in_order(states)) };
    match call {
        TaskCall::List(listing) => {
            let arns = ecs.list_tasks(cluster, listing).await.map_err(|e| poll_error(cluster, e))?;
            seen.record_listing(listing, arns);
        }
        TaskCall::Describe(arns) => {
            let tasks = ecs.describe_tasks(cluster, &arns).await.map_err(|e| poll_error(cluster, e))?;
            seen.record_tasks(&arns, tasks);
        }
        TaskCall::DescribeDefinition(definition) => {
            let containers = ecs.health_checked_containers(&definition).await.map_err(|e| poll_error(cluster, e))?;
            seen.record_health_checks(definition, containers);
        }
    }
    Ok(in_order(judge(seen, &services, &request.task_definitions)))
}

fn judge(seen: &Seen, services: &[Service], expected: &[String]) -> Vec<ServiceState> {
    services.iter().map(|service| seen.judge(service, expected)).collect()
}

/// A service CloudFormation has not created yet: waited for within the grace.
fn not_created_yet(name: &str) -> ServiceState {
    ServiceState {
        name: name.to_owned(),
        running: 0,
        desired: 0,
        healthy_tasks: None,
        notes: vec!["not created yet".to_owned()],
        stopped: Vec::new(),
        verdict: super::health::Verdict::Waiting,
    }
}

fn poll_error(cluster: &str, error: EcsError) -> PollError {
    if error.lasting {
        PollError::Final(format!(
            "cluster {cluster}: {}. Waiting will not change that: check the cluster name and that the caller \
             may call ecs:DescribeServices, ecs:ListTasks, ecs:DescribeTasks and ecs:DescribeTaskDefinition",
            error.message.trim_end_matches('.')
        ))
    } else {
        PollError::Passing(error.message)
    }
}

fn one_line(states: &[ServiceState]) -> String {
    states.iter().map(ServiceState::to_string).collect::<Vec<_>>().join("; ")
}

fn stopped_reasons(states: &[ServiceState]) -> Vec<&str> {
    states.iter().flat_map(|state| state.stopped.iter().map(String::as_str)).collect()
}

/// The reason to fail with, once every failing service's stopped tasks have been looked at.
fn failure(states: &[ServiceState]) -> Option<String> {
    let mut failing = Vec::new();
    for state in states {
        match &state.verdict {
            Verdict::Failing { explained: false, .. } => return None,
            Verdict::Failing { why, .. } => failing.push(format!("{}: {why}", state.name)),
            _ => {}
        }
    }
    if failing.is_empty() {
        return None;
    }
    let stopped = stopped_reasons(states);
    let quoted = if stopped.is_empty() {
        "No stopped task was found to quote: see the service's events in the ECS console.".to_owned()
    } else {
        format!("Stopped tasks: {}.", stopped.join("; "))
    };
    Some(format!(
        "{}. {quoted} Fix the cause (the containers' logs tell more) and deploy again. Last state: {}",
        failing.join("; "),
        one_line(states)
    ))
}

fn timed_out(request: &WaitRequest, last_states: &[ServiceState], last_error: Option<&str>) -> String {
    let mut reason = format!("not healthy within {}", humantime::format_duration(request.timeout));
    if last_states.is_empty() {
        reason.push_str(": ECS never answered");
    } else {
        reason.push_str(&format!(": {}", one_line(last_states)));
    }
    let stopped = stopped_reasons(last_states);
    if !stopped.is_empty() {
        reason.push_str(&format!(". Stopped tasks: {}", stopped.join("; ")));
    }
    if let Some(error) = last_error {
        reason.push_str(&format!(". The last ECS call failed: {error}"));
    }
    reason.push_str(
        ". See the services' events in the ECS console for what keeps them from running healthy tasks; \
         raise the timeout if they only need longer",
    );
    reason
}
