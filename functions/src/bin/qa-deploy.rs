//! `qa-deploy`: the custom resources' work from a terminal, with the same code.
//! The SDK's standard variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials) select the account.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use qa_lookup_functions::{aws, env_file_check};

#[derive(Parser)]
#[command(name = "qa-deploy", version, about = "Deploy-time checks and jobs for the QA Authority Lookup Service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the env file: present and complete, its bucket not public, readable by the execution role.
    CheckEnv(CheckEnvArgs),
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

async fn check_env(args: CheckEnvArgs) -> ExitCode {
    let facts = env_file_check::facts::AwsFacts::new(&aws::sdk_config().await);
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

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::CheckEnv(args) => check_env(args).await,
    }
}
