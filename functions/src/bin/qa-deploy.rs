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
enum Command {}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {}
}
