//! `make bench-publish`: one changed authority file, from the command to every app task verified
//! (`qa-deploy authorities publish --stack`: upload, seed through the stack's seeding function,
//! reload and read back each task), side by side with `aws s3 sync` of the same change, which
//! only uploads it and reaches no task. The real configuration, two app tasks (qa_server
//! stand-ins), the release binaries under the runtime emulator, moto as AWS; in an order that
//! alternates from run to run, median of the runs.
//!
//! Usage: bench-publish FUNCTION_BINARY QA_DEPLOY_BINARY [RUNS]

use std::path::{Path, PathBuf};
use std::time::Instant;

use qa_lookup_testbed::client_env;
use qa_lookup_testbed::lifecycle::{self, Lifecycle, BUCKET, SERVICE_STACK};

/// A top-level YAML authority of the tree, changed (and made longer, so aws s3 sync sees it).
fn change_one_file(tree: &Path, run: usize) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(tree)
        .expect("the tree")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    let file = files.first().expect("a YAML authority");
    let mut text = std::fs::read_to_string(file).expect("readable");
    text.push_str(&format!("\n# benchmark change {run}\n"));
    std::fs::write(file, text).expect("writable");
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (function, qa_deploy) = match &args[..] {
        [_, function, qa_deploy, ..] => (PathBuf::from(function), PathBuf::from(qa_deploy)),
        _ => return Err("usage: bench-publish FUNCTION_BINARY QA_DEPLOY_BINARY [RUNS]".into()),
    };
    let runs: usize = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(5);
    let mut lifecycle = Lifecycle::start(&function, &lifecycle::authorities_fixture()).await;
    lifecycle.create_prerequisites().await?;
    lifecycle.upload().await?;
    let created = lifecycle.create_service_with(SERVICE_STACK, &[("AppDesiredCount", "2")]).await?;
    if created.status != "CREATE_COMPLETE" {
        return Err(format!("the service stack ended {}", created.status));
    }
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tree = work.path().join("authorities");
    lifecycle::copy_tree(&lifecycle.authorities, &tree);
    let files = lifecycle::files_below(&tree).len();
    let destination = format!("s3://{BUCKET}/authorities/");
    let (mut ours, mut s3sync) = (Vec::new(), Vec::new());
    for run in 0..runs {
        for tool in if run % 2 == 0 { ["ours", "s3sync"] } else { ["s3sync", "ours"] } {
            change_one_file(&tree, run * 2 + usize::from(tool == "s3sync"));
            let started = Instant::now();
            if tool == "ours" {
                let output = tokio::process::Command::new(&qa_deploy)
                    .args(["authorities", "publish", "--stack", SERVICE_STACK, "--from"])
                    .arg(&tree)
                    .envs(client_env(&lifecycle.bed.moto.endpoint))
                    .output()
                    .await
                    .map_err(|e| e.to_string())?;
                if !output.status.success() {
                    return Err(format!("publish failed: {}", String::from_utf8_lossy(&output.stderr)));
                }
                ours.push(started.elapsed().as_secs_f64());
            } else {
                lifecycle.aws(&["s3", "sync", &tree.to_string_lossy(), &destination, "--delete", "--quiet"]).await?;
                s3sync.push(started.elapsed().as_secs_f64());
            }
        }
    }
    let (ours, s3sync) = (median(ours), median(s3sync));
    println!(
        "bench publish_one_changed_file files={files} tasks=2 runs={runs} ours_s={ours:.3} s3sync_s={s3sync:.3} ratio={:.2} \
         (ours: upload, seed, every task reloaded and verified; aws s3 sync: the upload only)",
        ours / s3sync
    );
    Ok(())
}
