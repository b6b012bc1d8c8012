//! `Custom::SeedAuthorities`: mirrors `s3://Bucket/Prefix` onto the authorities EFS access point
//! (mounted at `AUTHORITIES_MOUNT_PATH`) before the app starts — all or nothing, only what
//! changed, every file validated, no key able to land outside the mount.

pub mod delegate;
pub mod keys;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod mirror;
pub mod source;
pub mod validate;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cfn_custom_resource::runner::{delegated_event, delegated_result, is_delegated};
use cfn_custom_resource::{lenient, CustomResource, Failure, Outcome, RequestContext};
use serde::Deserialize;
use serde_json::Value;

use crate::authorities_reload::{self, Expected, Target};
use delegate::{AwsWorker, SeedWorker};
pub use mirror::{seed, Progress, SeedOptions, SeedSummary};
use source::ObjectSource;

/// Where the Lambda's `FileSystemConfigs` mounts the authorities access point.
pub const MOUNT_PATH_VARIABLE: &str = "AUTHORITIES_MOUNT_PATH";
pub const DEFAULT_PREFIX: &str = "authorities/";
pub const DEFAULT_MAX_OBJECTS: u64 = 10_000;
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 1 << 30;
/// Many small files: enough requests in flight to hide each one's latency.
pub const DEFAULT_CONCURRENCY: usize = 64;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    pub bucket: String,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Any new value re-runs the seed through a stack update when only S3 content changed.
    #[serde(default)]
    pub source_version: Option<String>,
    /// Lets a prefix with no objects at all through; a prefix whose objects hold no authority
    /// qa_server would load is refused regardless (see `layout`).
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub allow_empty: Option<bool>,
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub remove_on_delete: Option<bool>,
    #[serde(default, deserialize_with = "lenient::option_u64")]
    pub max_objects: Option<u64>,
    #[serde(default, deserialize_with = "lenient::option_u64")]
    pub max_total_bytes: Option<u64>,
    #[serde(default, deserialize_with = "lenient::option_u64")]
    pub concurrency: Option<u64>,
    /// The in-VPC function that runs the seed: when given, this (outside) function checks that
    /// it reaches S3, runs the seed in it and answers CloudFormation (see [`delegate`]).
    #[serde(default)]
    pub worker_function: Option<String>,
    /// With `ReloadService`: on Update, every running task of that service reloads the new set
    /// and is verified (see [`crate::authorities_reload`]); the token is `RELOAD_TOKEN` in
    /// `s3://Bucket/EnvFileKey`. On Create the app starts after the seed: nothing to reload.
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub reload_service: Option<String>,
    #[serde(default)]
    pub env_file_key: Option<String>,
    /// The tasks to reload, found by the function outside the VPC and handed to the seeding
    /// function with the request; not a template property.
    #[serde(default)]
    pub reload_targets: Option<Vec<Target>>,
    /// Set with the targets while the stack rolls back: a task that does not take the restored
    /// set is reported, and the rollback goes on (failing it would leave UPDATE_ROLLBACK_FAILED).
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub reload_best_effort: Option<bool>,
}

fn default_prefix() -> String {
    DEFAULT_PREFIX.to_owned()
}

impl Properties {
    pub fn options(&self) -> SeedOptions {
        SeedOptions {
            allow_empty: self.allow_empty.unwrap_or(false),
            max_objects: self.max_objects.unwrap_or(DEFAULT_MAX_OBJECTS),
            max_total_bytes: self.max_total_bytes.unwrap_or(DEFAULT_MAX_TOTAL_BYTES),
            concurrency: self.concurrency.map(|c| c.clamp(1, 256) as usize).unwrap_or(DEFAULT_CONCURRENCY),
        }
    }
}

/// Logs progress every `every` until dropped.
pub fn log_progress(progress: Arc<Progress>, every: Duration) -> tokio::task::JoinHandle<()> {
    let started = Instant::now();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            tracing::info!(
                files = progress.files_done.load(Ordering::Relaxed),
                files_total = progress.files_total.load(Ordering::Relaxed),
                bytes = progress.bytes_done.load(Ordering::Relaxed),
                bytes_total = progress.bytes_total.load(Ordering::Relaxed),
                elapsed_s = started.elapsed().as_secs(),
                "seeding"
            );
        }
    })
}

pub struct SeedAuthorities<S, W = AwsWorker> {
    source: S,
    target: Option<PathBuf>,
    /// Where a seed with a `WorkerFunction` runs.
    worker: Option<W>,
}

impl SeedAuthorities<source::S3Source> {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let target = std::env::var_os(MOUNT_PATH_VARIABLE).filter(|v| !v.is_empty()).map(PathBuf::from);
        SeedAuthorities { source: source::S3Source::new(config), target, worker: Some(AwsWorker::new(config)) }
    }
}

impl<S: ObjectSource + 'static> SeedAuthorities<S> {
    pub fn with_source(source: S, target: Option<PathBuf>) -> Self {
        SeedAuthorities { source, target, worker: None }
    }
}

impl<S: ObjectSource + 'static, W: SeedWorker> SeedAuthorities<S, W> {
    pub fn with_worker(source: S, target: Option<PathBuf>, worker: W) -> Self {
        SeedAuthorities { source, target, worker: Some(worker) }
    }

    /// The seeding function named by `WorkerFunction`, unless this request was delegated to us.
    fn delegate_to<'a>(&self, context: &RequestContext, properties: &'a Properties) -> Option<&'a str> {
        properties.worker_function.as_deref().filter(|name| !name.is_empty() && !is_delegated(&context.event))
    }

    /// Runs the request in the seeding function, after checking (for Create and Update) that its
    /// subnets reach S3; its answer is this one's.
    async fn delegate(
        &self,
        context: &RequestContext,
        properties: &Properties,
        function: &str,
        check_routes: bool,
    ) -> Result<Outcome, Failure> {
        let who = format!("{} {}", Self::TYPE, context.logical_id);
        let fail = |reason: String| Failure::new(format!("{who}: {reason}"));
        let Some(worker) = &self.worker else {
            return Err(fail(format!("this function cannot run the seed in {function}")));
        };
        if check_routes {
            let permission = "; this function's role needs ec2:DescribeSubnets, ec2:DescribePrefixLists, \
                              ec2:DescribeRouteTables and lambda:GetFunctionConfiguration";
            let subnets = worker.subnets(function).await.map_err(|e| fail(format!("{e}{permission}")))?;
            let tables = worker.route_tables(&subnets).await.map_err(|e| fail(format!("{e}{permission}")))?;
            if let Some(reason) = delegate::unreachable(&tables) {
                return Err(fail(reason));
            }
            tracing::info!(logical_id = %context.logical_id, routes = ?tables, "the seeding function reaches S3");
        }
        // Kept to answer CloudFormation after the seeding function gives up or times out.
        let within = context
            .handler_deadline
            .saturating_duration_since(std::time::Instant::now())
            .saturating_sub(Duration::from_secs(5));
        let mut event = delegated_event(&context.event, &who);
        if let (true, Some(cluster), Some(service)) = (
            context.event["RequestType"] == "Update",
            properties.cluster.as_deref(),
            properties.reload_service.as_deref(),
        ) {
            let targets = worker
                .running_tasks(cluster, service)
                .await
                .map_err(|e| fail(format!("{e}; this function's role needs ecs:ListTasks, ecs:DescribeTasks, ecs:DescribeContainerInstances and ec2:DescribeInstances")))?;
            tracing::info!(logical_id = %context.logical_id, tasks = targets.len(), "app tasks to reload after the seed");
            event["ResourceProperties"]["ReloadTargets"] = serde_json::to_value(&targets).expect("targets serialise");
            let rolling_back = worker.rolling_back(&context.stack_id).await.unwrap_or_else(|e| {
                tracing::warn!("cannot tell whether the stack rolls back ({e}); every task must take the set");
                false
            });
            if rolling_back {
                event["ResourceProperties"]["ReloadBestEffort"] = Value::from("true");
            }
        }
        let answer = worker
            .run(function, event, within)
            .await
            .map_err(|e| fail(format!("the seeding function {function} {e}")))?;
        delegated_result(&answer)
    }

    fn target(&self, context: &RequestContext) -> Result<&Path, Failure> {
        self.target.as_deref().ok_or_else(|| {
            Failure::new(format!(
                "{} {}: this function has no {MOUNT_PATH_VARIABLE}: expected the path where the authorities access point \
                 is mounted (e.g. /mnt/authorities) — serve this resource with the in-VPC seeding function",
                Self::TYPE,
                context.logical_id
            ))
        })
    }

    async fn seed(&self, context: &RequestContext, properties: &Properties) -> Result<Outcome, Failure> {
        let target = self.target(context)?;
        let fail = |reason: String| Failure::new(format!("{} {}: {reason}", Self::TYPE, context.logical_id));
        let before = manifest::Manifest::read(target);
        let progress = Arc::new(Progress::default());
        let logger = log_progress(progress.clone(), Duration::from_secs(5));
        let result =
            seed(&self.source, &properties.bucket, &properties.prefix, target, &properties.options(), &progress).await;
        logger.abort();
        let summary = result.map_err(fail)?;
        tracing::info!(
            files = summary.files,
            bytes = summary.bytes,
            changed = summary.changed,
            removed = summary.removed,
            digest = %summary.digest,
            "seeded {} from s3://{}/{}",
            target.display(),
            properties.bucket,
            properties.prefix
        );
        let mut outcome = Outcome::new(format!("seed-authorities:{}", target.display()))
            .with_data("Files", summary.files)
            .with_data("Bytes", summary.bytes)
            .with_data("Changed", summary.changed)
            .with_data("Removed", summary.removed)
            .with_data("Digest", summary.digest);
        if let Some(targets) = &properties.reload_targets {
            let expected = Expected::between(&before, &manifest::Manifest::read(target));
            let report = self.reload(properties, targets, &expected).await.map_err(fail)?;
            outcome = outcome.with_data("ReloadedTasks", targets.len()).with_data("ReloadReport", report);
        }
        Ok(outcome)
    }

    /// Every target reloads the new set and shows it; the report, or why not every task took it.
    async fn reload(&self, properties: &Properties, targets: &[Target], expected: &Expected) -> Result<String, String> {
        if targets.is_empty() {
            tracing::info!("no running app task to reload");
            return Ok("no running app task".to_owned());
        }
        let key = properties.env_file_key.as_deref().filter(|k| !k.is_empty()).ok_or_else(|| {
            "the reload needs EnvFileKey (the env file holding RELOAD_TOKEN) beside ReloadService".to_owned()
        })?;
        let env_file = format!("s3://{}/{key}", properties.bucket);
        let text = self.source.fetch(&properties.bucket, key).await.map_err(|e| {
            format!(
                "cannot read {env_file} for RELOAD_TOKEN: {e}; the seeding function's role needs s3:GetObject on it"
            )
        })?;
        let token = authorities_reload::reload_token(&String::from_utf8_lossy(&text)).ok_or_else(|| {
            format!(
                "RELOAD_TOKEN is missing or blank in {env_file}: qa_server then refuses every reload, so the {} running \
                 task(s) keep the old set — set RELOAD_TOKEN, restart the tasks (they read the env file when they \
                 start) and update again",
                targets.len()
            )
        })?;
        let started = Instant::now();
        let results = authorities_reload::reload_all(targets, &token, expected).await;
        let report = authorities_reload::render(&results);
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "reloaded the app tasks:\n{report}");
        match authorities_reload::failure(&results) {
            Some(reason) if properties.reload_best_effort == Some(true) => {
                tracing::warn!(
                    "rolling back: {reason}; the rollback goes on — restart those tasks (aws ecs stop-task) so that \
                     they start with the restored files"
                );
                Ok(report)
            }
            Some(reason) => Err(reason),
            None => Ok(report),
        }
    }
}

impl<S: ObjectSource + 'static, W: SeedWorker> CustomResource for SeedAuthorities<S, W> {
    const TYPE: &'static str = "Custom::SeedAuthorities";
    type Properties = Properties;

    async fn create(&self, context: &RequestContext, properties: Properties) -> Result<Outcome, Failure> {
        match self.delegate_to(context, &properties) {
            Some(function) => self.delegate(context, &properties, function, true).await,
            None => self.seed(context, &properties).await,
        }
    }

    /// The files outlive the stack unless `RemoveOnDelete` asks otherwise.
    async fn delete(
        &self,
        context: &RequestContext,
        physical_id: &str,
        properties: Option<Properties>,
    ) -> Result<Outcome, Failure> {
        let remove = properties.as_ref().and_then(|p| p.remove_on_delete).unwrap_or(false);
        if let Some(function) = properties.as_ref().and_then(|p| self.delegate_to(context, p)) {
            if remove {
                return self.delegate(context, properties.as_ref().expect("checked above"), function, false).await;
            }
            tracing::info!(logical_id = %context.logical_id, "left the seeded files in place");
            return Ok(Outcome::new(physical_id));
        }
        match (&self.target, remove) {
            (Some(target), true) => {
                let removed = remove_seeded(target);
                tracing::info!(logical_id = %context.logical_id, removed, "removed the seeded files");
            }
            _ => tracing::info!(logical_id = %context.logical_id, "left the seeded files in place"),
        }
        Ok(Outcome::new(physical_id))
    }
}

/// Removes what the seeds wrote, as listed in the manifest (links never followed), and the manifest.
fn remove_seeded(target: &Path) -> usize {
    let removed = mirror::prune(target, &manifest::Manifest::read(target), &Default::default());
    let _ = std::fs::remove_file(target.join(keys::MANIFEST_NAME));
    removed
}
