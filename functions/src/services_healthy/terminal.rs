//! `qa-deploy wait`: the wait with a live status line on a terminal, plain lines elsewhere.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use super::wait::{wait, WaitEnd, WaitRequest};

/// Exit status 0 when healthy, 1 when failed (or the wait could not run), 2 when timed out.
pub async fn wait_in_terminal(cluster: &str, services: &[String], timeout: Duration, interval: Duration) -> ExitCode {
    let started = tokio::time::Instant::now();
    let request = match WaitRequest::new(cluster, services, timeout, interval, SystemTime::now()) {
        Ok(request) => request,
        Err(problem) => {
            eprintln!("qa-deploy wait: {problem}");
            return ExitCode::from(1);
        }
    };
    let ecs = super::ecs_client(&crate::aws::sdk_config().await);
    let on_terminal = std::io::stderr().is_terminal();
    let status_line_shown = Cell::new(false);
    let show = |line: &str| {
        let elapsed = humantime::format_duration(Duration::from_secs(started.elapsed().as_secs()));
        if on_terminal {
            // Rewrite the one status line: carriage return, then clear to the end of the line.
            eprint!("\r\x1b[K[{elapsed}] {line}");
            let _ = std::io::stderr().flush();
            status_line_shown.set(true);
        } else {
            eprintln!("[{elapsed}] {line}");
        }
    };
    let end = wait(&ecs, &request, show).await;
    if status_line_shown.get() {
        eprintln!();
    }
    match end {
        WaitEnd::Healthy { states } => {
            println!("healthy: {states}");
            ExitCode::SUCCESS
        }
        WaitEnd::Failed { reason } => {
            eprintln!("failed: {reason}");
            ExitCode::from(1)
        }
        WaitEnd::TimedOut { reason } => {
            eprintln!("timed out: {reason}");
            ExitCode::from(2)
        }
        WaitEnd::HandOff => unreachable!("a wait without a hand-off time never hands off"),
    }
}
