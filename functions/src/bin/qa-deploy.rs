//! `qa-deploy`: the custom resources' work from a terminal, with the same code.
//! The SDK's standard variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials) select the account.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "qa-deploy", version, about = "Deploy-time checks and jobs for the QA Authority Lookup Service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Wait until ECS services run healthy tasks: exit 0 healthy, 1 failed, 2 timed out
    Wait(WaitArgs),
}

#[derive(clap::Args)]
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Wait(args) => {
            qa_lookup_functions::services_healthy::wait_in_terminal(
                &args.cluster,
                &args.services,
                args.timeout,
                args.interval,
            )
            .await
        }
    }
}
