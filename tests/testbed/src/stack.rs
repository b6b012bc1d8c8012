use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::function::{FunctionOptions, LambdaFunction};
use crate::moto::Moto;
use crate::process::{client_env, free_port, venv_program, workspace_root};
use crate::proxy::{Behaviour, Proxy};

/// One row of `describe-stack-events`.
#[derive(Debug, Clone)]
pub struct StackEvent {
    pub id: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

impl StackEvent {
    fn from_json(event: &Value) -> StackEvent {
        let field = |name: &str| event[name].as_str().unwrap_or_default().to_owned();
        StackEvent {
            id: field("EventId"),
            logical_id: field("LogicalResourceId"),
            resource_type: field("ResourceType"),
            status: field("ResourceStatus"),
            reason: field("ResourceStatusReason"),
        }
    }

    pub fn is_stack(&self) -> bool {
        self.resource_type == "AWS::CloudFormation::Stack"
    }
}

/// CloudFormation on moto, driven as a person drives it: `aws` commands against moto started from
/// `moto_launcher.py`, whose custom-resource requests reach the real function under the runtime
/// emulator. A local folder stands in for the authorities access point the seed function mounts.
/// Fields drop in order: the function first.
pub struct StackBed {
    pub function: LambdaFunction,
    pub moto: Moto,
    /// What the seed function sees at its mount path.
    pub mount: PathBuf,
    /// The network between the seeding function and the app tasks.
    _vpc: Proxy,
    work: tempfile::TempDir,
}

impl StackBed {
    pub async fn start(function_binary: &Path) -> StackBed {
        let work = tempfile::Builder::new().prefix("qa-lookup-stacks-").tempdir().expect("a temporary folder");
        let mount = work.path().join("efs-authorities");
        std::fs::create_dir(&mount).expect("the mount folder can be created");
        let moto_port = free_port();
        let endpoint = format!("http://127.0.0.1:{moto_port}");
        let vpc = Proxy::start(String::new(), Behaviour::TasksOnLoopback).await;
        let mut options = FunctionOptions::new(function_binary)
            .timeout(Duration::from_secs(300))
            .instances(4)
            .ship_logs_to(&endpoint)
            .env("AUTHORITIES_MOUNT_PATH", mount.to_str().expect("a UTF-8 path"))
            // The bed serves every function of a stack from one pool of processes, so a variable the
            // template gives one function is set on all: the live-sync function's stack here.
            .env("LIVE_SYNC_STACK", crate::lifecycle::SERVICE_STACK)
            .env("HTTP_PROXY", &vpc.url)
            .env("NO_PROXY", "127.0.0.1,localhost");
        for (key, value) in client_env(&endpoint) {
            options = options.env(key, &value);
        }
        let function = LambdaFunction::start(&options, work.path()).await;
        let ecs_faults = work.path().join("ecs-faults.json");
        std::fs::write(&ecs_faults, "{}").expect("the faults file is written");
        let moto = Moto::start_launcher(work.path(), moto_port, function.invoke_url(), &ecs_faults, &mount);
        StackBed { function, moto, mount, _vpc: vpc, work }
    }

    /// Where the processes' logs and the generated parameter files are.
    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }

    /// `aws ARGS…` against this moto from the repository's root (so `file://cfn/…` works), its
    /// JSON output parsed (`Null` when it prints nothing); the CLI's own message on failure.
    pub async fn aws(&self, args: &[&str]) -> Result<Value, String> {
        let output = tokio::process::Command::new(venv_program("aws"))
            .args(["--endpoint-url", &self.moto.endpoint, "--output", "json"])
            .args(args)
            .current_dir(workspace_root())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "")
            .output()
            .await
            .map_err(|error| format!("the AWS CLI did not run: {error}"))?;
        if !output.status.success() {
            let command = args.iter().take(2).copied().collect::<Vec<_>>().join(" ");
            return Err(format!("aws {command} failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|error| format!("the AWS CLI printed no JSON ({error}): {text}"))
    }

    /// `describe-stacks` of one stack (its name, or its id once it is deleted).
    pub async fn describe(&self, stack: &str) -> Result<Value, String> {
        let described = self.aws(&["cloudformation", "describe-stacks", "--stack-name", stack]).await?;
        Ok(described["Stacks"][0].clone())
    }

    pub async fn outputs(&self, stack: &str) -> Result<Vec<(String, String)>, String> {
        let described = self.describe(stack).await?;
        let outputs = described["Outputs"].as_array().cloned().unwrap_or_default();
        Ok(outputs
            .iter()
            .map(|o| {
                (
                    o["OutputKey"].as_str().unwrap_or_default().to_owned(),
                    o["OutputValue"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    /// The stack's events, oldest first.
    pub async fn events(&self, stack: &str) -> Result<Vec<StackEvent>, String> {
        let events = self.aws(&["cloudformation", "describe-stack-events", "--stack-name", stack]).await?;
        let mut events: Vec<StackEvent> =
            events["StackEvents"].as_array().cloned().unwrap_or_default().iter().map(StackEvent::from_json).collect();
        events.reverse();
        Ok(events)
    }

    /// Polls the stack's events until its status no longer ends in IN_PROGRESS, calling `progress`
    /// with each event after the first `earlier` (those of earlier operations); returns that status
    /// and this operation's events. An error after `within`.
    pub async fn settle(
        &self,
        stack: &str,
        earlier: usize,
        within: Duration,
        mut progress: impl FnMut(&StackEvent),
    ) -> Result<(String, Vec<StackEvent>), String> {
        let deadline = Instant::now() + within;
        let mut shown = earlier;
        loop {
            let status = self.describe(stack).await?["StackStatus"].as_str().unwrap_or_default().to_owned();
            let events = self.events(stack).await?;
            for event in events.iter().skip(shown) {
                progress(event);
            }
            shown = shown.max(events.len());
            if !status.ends_with("IN_PROGRESS") {
                return Ok((status, events.into_iter().skip(earlier).collect()));
            }
            if Instant::now() > deadline {
                return Err(format!("stack {stack} is still {status} after {within:?}"));
            }
            // Each poll runs the AWS CLI twice (a Python start each): often enough to show events as
            // they come, rarely enough not to starve the stacks under test of CPU.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }

    /// Writes a copy of the parameters file `example` (under `cfn/`) with some values set, as a user
    /// edits their copy; returns its path.
    pub fn parameters_file(&self, example: &str, name: &str, values: &[(&str, &str)]) -> PathBuf {
        let text = std::fs::read_to_string(workspace_root().join("cfn").join(example)).expect("the example exists");
        let mut parameters: Vec<Value> = serde_json::from_str(&text).expect("the example is a JSON list");
        for (key, value) in values {
            match parameters.iter_mut().find(|p| p["ParameterKey"] == *key) {
                Some(parameter) => parameter["ParameterValue"] = Value::from(*value),
                None => parameters.push(serde_json::json!({"ParameterKey": key, "ParameterValue": value})),
            }
        }
        let path = self.work.path().join(name);
        std::fs::write(&path, serde_json::to_string_pretty(&parameters).expect("JSON")).expect("the file is written");
        path
    }

    /// Makes the tasks of a task definition revision (`family:revision`), family, or with a
    /// container of that name stop as an essential container that exits does: ECS's stopped
    /// reason, the container's reason and exit code, and the lines it printed before (in its
    /// awslogs stream). The launcher reads this at every task start.
    pub fn stop_tasks(
        &self,
        task_definition: &str,
        stopped_reason: &str,
        reason: &str,
        exit_code: i32,
        log_lines: &[&str],
    ) {
        let path = self.work.path().join("ecs-faults.json");
        let mut faults: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default())
            .unwrap_or_else(|_| serde_json::json!({}));
        faults[task_definition] = serde_json::json!(
            {"stoppedReason": stopped_reason, "reason": reason, "exitCode": exit_code, "logLines": log_lines}
        );
        std::fs::write(&path, faults.to_string()).expect("the faults file is written");
    }

    /// Leaves the work folder (the logs) in place when the bed stops.
    pub fn keep_logs(&mut self) {
        self.work.disable_cleanup(true);
    }

    /// Every log line of the function so far.
    pub fn function_log(&self) -> String {
        self.function.logs()
    }
}
