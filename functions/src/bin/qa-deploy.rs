//! `qa-deploy`: the custom resources' work from a terminal, with the same code.
//! The SDK's standard variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials) select the account.
//! Before any work a subcommand checks that it can call AWS at all (see `cli_preflight`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use qa_lookup_functions::cli_preflight::{self, EcsProbe, IdentityProbe, S3Probe};
use qa_lookup_functions::seed_authorities::{self, Progress, SeedOptions};
use qa_lookup_functions::{aws, env_file_check};

#[derive(Parser)]
#[command(name = "qa-deploy", version, about = "Deploy-time checks and jobs for the QA Authority Lookup Service")]
struct Cli {
    /// Show the AWS SDK's own log messages too (-vv: debug); RUST_LOG, when set, decides instead.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Before create-stack: check the parameter files against the account (network, inputs in S3,
    /// certificate, AMI, capacity, stacks, images): exit 0 nothing failed, 1 something did.
    Doctor(DoctorArgs),
    /// Authority files: publish a local tree to its S3 prefix.
    #[command(subcommand)]
    Authorities(AuthoritiesCommand),
    /// Check the env file: present and complete, its bucket not public, readable by the execution role.
    CheckEnv(CheckEnvArgs),
    /// Mirror the authority files from S3 into a folder: all or nothing, only what changed, validated.
    Seed(SeedArgs),
    /// Wait until ECS services run healthy tasks: exit 0 healthy, 1 failed, 2 timed out
    Wait(WaitArgs),
    /// Why the stack's latest operation failed: root causes, their log lines, stopped tasks, what to do
    /// (exit 0 healthy, 1 failure reported)
    Why(WhyArgs),
}

#[derive(Subcommand)]
enum AuthoritiesCommand {
    /// Validate a local tree with the seed's rules, then upload what changed (by content) and
    /// delete what is gone under the prefix; --dry-run prints the plan only.
    Publish(PublishArgs),
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("destination").required(true).args(["stack", "bucket"]))]
struct PublishArgs {
    /// The local folder of authority files (as qa_server's config/authorities).
    #[arg(long)]
    from: PathBuf,
    /// The service stack: its bucket and prefix; after the upload its seeding function seeds the
    /// access point and every running app task reloads, each verified (exit 1 if one did not).
    #[arg(long)]
    stack: Option<String>,
    /// Only upload, to this bucket (nothing is reloaded).
    #[arg(long)]
    bucket: Option<String>,
    #[arg(long, default_value = seed_authorities::DEFAULT_PREFIX, conflicts_with = "stack")]
    prefix: String,
    /// Print what would be uploaded and deleted, change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct DoctorArgs {
    /// The prerequisites stack's parameter file (as for create-stack --parameters file://…).
    #[arg(long)]
    prerequisites: PathBuf,
    /// The service stack's parameter files, later ones overriding earlier ones; with them, also
    /// everything the service stack needs.
    #[arg(long)]
    deploy: Vec<PathBuf>,
    /// The prerequisites stack's name (default: the deploy file's PrerequisitesStackName).
    #[arg(long)]
    prerequisites_stack: Option<String>,
    /// The service stack's name.
    #[arg(long, default_value = "lookup-service")]
    stack: String,
}

#[derive(Args)]
struct SeedArgs {
    #[arg(long)]
    bucket: String,
    #[arg(long, default_value = seed_authorities::DEFAULT_PREFIX)]
    prefix: String,
    /// The folder to fill (in AWS, the authorities access point's mount).
    #[arg(long)]
    target: PathBuf,
    /// Downloads at once.
    #[arg(long, default_value_t = seed_authorities::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// Succeed when there are no files under the prefix.
    #[arg(long)]
    allow_empty: bool,
    #[arg(long, default_value_t = seed_authorities::DEFAULT_MAX_OBJECTS)]
    max_objects: u64,
    #[arg(long, default_value_t = seed_authorities::DEFAULT_MAX_TOTAL_BYTES)]
    max_total_bytes: u64,
}

#[derive(Args)]
struct CheckEnvArgs {
    #[arg(long)]
    bucket: String,
    /// The env file's key; ECS needs it to end in .env.
    #[arg(long)]
    key: String,
    /// The ECS task execution role that must read it.
    #[arg(long)]
    execution_role_arn: String,
    /// Comma-separated keys the file must set (default: qa_server's).
    #[arg(long, value_delimiter = ',')]
    required_keys: Vec<String>,
}

/// The SDK configuration, once the preflight found a region and credentials AWS accepts; else
/// the problem said in one line, and exit status 1.
async fn aws_ready<P: IdentityProbe>(
    subcommand: &str,
    probe: impl FnOnce(&aws_config::SdkConfig) -> P,
) -> Result<aws_config::SdkConfig, ExitCode> {
    let config = aws::sdk_config().await;
    match cli_preflight::preflight(&config, &probe(&config)).await {
        Ok(()) => Ok(config),
        Err(problem) => {
            eprintln!("{}", problem.line(subcommand));
            Err(ExitCode::FAILURE)
        }
    }
}

async fn check_env(args: CheckEnvArgs) -> ExitCode {
    let config = match aws_ready("check-env", S3Probe::new).await {
        Ok(config) => config,
        Err(exit) => return exit,
    };
    let facts = env_file_check::facts::AwsFacts::new(&config);
    let properties = env_file_check::Properties {
        bucket: args.bucket,
        key: args.key,
        execution_role_arn: args.execution_role_arn,
        required_keys: args.required_keys,
    };
    let report = env_file_check::run_checks(&facts, &properties).await;
    print!("{}", env_file_check::render(&report));
    if report.failed().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn publish(args: PublishArgs) -> ExitCode {
    use qa_lookup_functions::authorities_publish::{self as publish, Bucket, S3Bucket};
    let fail = |problem: String| {
        eprintln!("qa-deploy authorities publish: {problem}");
        ExitCode::FAILURE
    };
    let config = match aws_ready("authorities publish", S3Probe::new).await {
        Ok(config) => config,
        Err(exit) => return exit,
    };
    let stack = match &args.stack {
        Some(name) => match publish::stack_target(&aws_sdk_cloudformation::Client::new(&config), name).await {
            Ok(stack) => Some(stack),
            Err(problem) => return fail(problem),
        },
        None => None,
    };
    let (bucket_name, prefix) = match &stack {
        Some(stack) => (stack.bucket.clone(), stack.prefix.clone()),
        None => (args.bucket.clone().unwrap_or_default(), args.prefix.clone()),
    };
    let prefix = if prefix.ends_with('/') { prefix } else { format!("{prefix}/") };
    let local = match publish::read_tree(&args.from, &bucket_name, &prefix) {
        Ok(local) => local,
        Err(problem) => return fail(problem),
    };
    let bucket = S3Bucket::new(&config);
    let remote = match bucket.list(&bucket_name, &prefix).await {
        Ok(remote) => remote,
        Err(problem) => return fail(problem),
    };
    let plan = match publish::settle_by_checksum(publish::plan(local, &remote), &bucket, &bucket_name).await {
        Ok(plan) => plan,
        Err(problem) => return fail(format!(
            "expected to read the SHA-256 S3 keeps for each changed-looking object (HeadObject), found an error: {problem} \
             — nothing was uploaded; check that you may s3:GetObject under the prefix, then publish again"
        )),
    };
    let destination = format!("s3://{bucket_name}/{prefix}");
    print!("{}", plan.render(&destination));
    if args.dry_run {
        println!("dry run: nothing was changed");
        return ExitCode::SUCCESS;
    }
    let started = std::time::Instant::now();
    if plan.is_empty() {
        println!("nothing to publish");
    } else if let Err(problem) = publish::apply(&bucket, &bucket_name, &plan).await {
        return fail(problem);
    } else {
        println!("published to {destination}");
    }
    let Some(stack) = stack else {
        println!(
            "nothing was reloaded: the running tasks serve the files on EFS until the stack seeds again \
             (publish with --stack, or update the stack with a new AuthoritiesSourceVersion)"
        );
        return ExitCode::SUCCESS;
    };
    reload_stack(&config, &stack, started).await
}

/// The stack's seeding function seeds the access point and reloads every running app task.
async fn reload_stack(
    config: &aws_config::SdkConfig,
    stack: &qa_lookup_functions::authorities_publish::StackTarget,
    started: std::time::Instant,
) -> ExitCode {
    use qa_lookup_functions::authorities_publish::seed_request;
    use qa_lookup_functions::authorities_reload::{EcsTasks, TaskDirectory};
    use qa_lookup_functions::seed_authorities::delegate::{AwsWorker, SeedWorker};
    let fail = |problem: String| {
        eprintln!("qa-deploy authorities publish: {problem}");
        ExitCode::FAILURE
    };
    let targets = match EcsTasks::new(config).running_tasks(&stack.cluster, &stack.service).await {
        Ok(targets) => targets,
        Err(problem) => return fail(problem),
    };
    println!(
        "seeding the authorities access point through {} and reloading {} running task(s) of {}",
        stack.seed_function,
        targets.len(),
        stack.service
    );
    // The seeding function's own timeout (cfn/aws-deploy.yaml) bounds the wait.
    let answer = match AwsWorker::new(config)
        .run(&stack.seed_function, seed_request(stack, &targets), Duration::from_secs(900))
        .await
    {
        Ok(answer) => answer,
        Err(problem) => return fail(format!("the seeding function {} {problem}", stack.seed_function)),
    };
    match cfn_custom_resource::runner::delegated_result(&answer) {
        Ok(outcome) => {
            let report = outcome.data.get("ReloadReport").cloned().unwrap_or_default();
            println!("{report}");
            println!(
                "every running task serves the new set ({} task(s), {:.1} s from the upload)",
                targets.len(),
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(failure) => fail(failure.reason.replace("; ✗", "\n✗").replace(": ✗", ":\n✗")),
    }
}

async fn doctor(args: DoctorArgs) -> ExitCode {
    use qa_lookup_functions::doctor::{self, parameters, Parameters};
    let prerequisites = Parameters::read(parameters::PREREQUISITES_TEMPLATE, &[args.prerequisites.as_path()]);
    let files: Vec<&std::path::Path> = args.deploy.iter().map(PathBuf::as_path).collect();
    let deploy = (!files.is_empty()).then(|| Parameters::read(parameters::DEPLOY_TEMPLATE, &files)).transpose();
    let (prerequisites, deploy) = match (prerequisites, deploy) {
        (Ok(prerequisites), Ok(deploy)) => (prerequisites, deploy),
        (Err(problem), _) | (_, Err(problem)) => {
            eprintln!("qa-deploy doctor: {problem}");
            return ExitCode::from(64);
        }
    };
    let config = match aws_ready("doctor", S3Probe::new).await {
        Ok(config) => config,
        Err(exit) => return exit,
    };
    let prerequisites_stack = args.prerequisites_stack.unwrap_or_else(|| {
        deploy.as_ref().map_or("lookup-prerequisites", |d| d.value("PrerequisitesStackName")).to_owned()
    });
    let request = doctor::Request { prerequisites, deploy, prerequisites_stack, service_stack: args.stack };
    let report = doctor::run(&config, &request).await;
    print!("{}", report.render());
    if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A progress bar on a terminal; elsewhere a line every few seconds.
fn show_progress(progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    if !std::io::stderr().is_terminal() {
        return seed_authorities::log_progress(progress, Duration::from_secs(5));
    }
    tokio::spawn(async move {
        let bar = indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template("{bar:40} {binary_bytes}/{binary_total_bytes} {msg} {elapsed}")
                .expect("a valid progress template"),
        );
        loop {
            bar.set_length(progress.bytes_total.load(Ordering::Relaxed));
            bar.set_position(progress.bytes_done.load(Ordering::Relaxed));
            bar.set_message(format!(
                "{}/{} files",
                progress.files_done.load(Ordering::Relaxed),
                progress.files_total.load(Ordering::Relaxed)
            ));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

async fn seed(args: SeedArgs) -> ExitCode {
    let config = match aws_ready("seed", S3Probe::new).await {
        Ok(config) => config,
        Err(exit) => return exit,
    };
    let source = seed_authorities::source::S3Source::new(&config);
    let options = SeedOptions {
        allow_empty: args.allow_empty,
        max_objects: args.max_objects,
        max_total_bytes: args.max_total_bytes,
        concurrency: args.concurrency,
    };
    // As aws s3 sync and rclone do; the Lambda keeps refusing a missing mount.
    if let Err(error) = std::fs::create_dir_all(&args.target) {
        eprintln!("qa-deploy seed: cannot create {}: {error}", args.target.display());
        return ExitCode::FAILURE;
    }
    let progress = Arc::new(Progress::default());
    let display = show_progress(progress.clone());
    let result = seed_authorities::seed(&source, &args.bucket, &args.prefix, &args.target, &options, &progress).await;
    display.abort();
    match result {
        Ok(summary) => {
            println!(
                "seeded {} from s3://{}/{}: {} files, {} bytes, {} changed, {} removed, digest {}",
                args.target.display(),
                args.bucket,
                args.prefix,
                summary.files,
                summary.bytes,
                summary.changed,
                summary.removed,
                summary.digest
            );
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("qa-deploy seed: {reason}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Args)]
struct WaitArgs {
    /// The ECS cluster's name or ARN
    #[arg(long)]
    cluster: String,
    /// The services, comma-separated (e.g. app,mysql)
    #[arg(long, value_delimiter = ',', required = true)]
    services: Vec<String>,
    /// How long to wait, e.g. 10m or 90s
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// How often to look
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    interval: std::time::Duration,
}

async fn wait(args: WaitArgs) -> ExitCode {
    // `wait_in_terminal` loads the configuration again, for ECS; this one only checks it.
    if let Err(exit) = aws_ready("wait", EcsProbe::new).await {
        return exit;
    }
    qa_lookup_functions::services_healthy::wait_in_terminal(&args.cluster, &args.services, args.timeout, args.interval)
        .await
}

#[derive(Args)]
struct WhyArgs {
    /// The stack's name (or id)
    #[arg(long)]
    stack: String,
}

async fn why(args: WhyArgs) -> ExitCode {
    match aws_ready("why", EcsProbe::new).await {
        Ok(config) => qa_lookup_functions::why::run(&config, &args.stack).await,
        Err(exit) => exit,
    }
}

/// The shared logging setup reads its filter from `RUST_LOG`; without one the terminal gets
/// qa-deploy's own messages only, not the SDK's (see `cli_preflight::log_filter`). Set before
/// any other thread runs.
fn init_logging(verbose: u8) {
    if std::env::var_os("RUST_LOG").is_none_or(|filter| filter.is_empty()) {
        std::env::set_var("RUST_LOG", cli_preflight::log_filter(verbose));
    }
    cfn_custom_resource::lambda::init_logging();
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // Not clap's usual 2: for `wait` that means "timed out".
            return if error.use_stderr() { ExitCode::from(64) } else { ExitCode::SUCCESS };
        }
    };
    init_logging(cli.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a Tokio runtime");
    runtime.block_on(async {
        match cli.command {
            Command::Doctor(args) => doctor(args).await,
            Command::Authorities(AuthoritiesCommand::Publish(args)) => publish(args).await,
            Command::CheckEnv(args) => check_env(args).await,
            Command::Seed(args) => seed(args).await,
            Command::Wait(args) => wait(args).await,
            Command::Why(args) => why(args).await,
        }
    })
}
