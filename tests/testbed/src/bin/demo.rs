//! `make demo`: the whole stack lifecycle on 127.0.0.1, with the README's `aws cloudformation`
//! commands against moto, whose custom-resource requests reach the real function under the
//! cargo-lambda runtime emulator: create, update, a failure that rolls back, delete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use qa_lookup_testbed::client_env;
use qa_lookup_testbed::lifecycle::{self, Lifecycle, Settled, PREREQUISITES_STACK, SERVICE_STACK};

const FAILING_STACK: &str = "lookup-service-demo-public-bucket";

struct Summary {
    /// Step, result, and how long it took when it is a stack operation.
    rows: Vec<(String, String, Option<f64>)>,
    failed: bool,
}

impl Summary {
    /// A stack operation that did not end in `wanted` stops the demo: the next steps build on it.
    fn record(
        &mut self,
        lifecycle: &Lifecycle,
        step: &str,
        wanted: &str,
        settled: &Settled,
        since: Instant,
    ) -> Result<(), String> {
        let ok = settled.status == wanted;
        self.failed |= !ok;
        let mark = if ok { "ok  " } else { "FAIL" };
        lifecycle.say(&format!("{mark} {step}: {} (wanted {wanted})", settled.status));
        self.rows.push((format!("{mark} {step}"), settled.status.clone(), Some(since.elapsed().as_secs_f64())));
        if ok {
            Ok(())
        } else {
            Err(format!("{step}: the stack ended {}, not {wanted}", settled.status))
        }
    }

    fn check(&mut self, lifecycle: &Lifecycle, step: &str, ok: bool, detail: &str) {
        self.failed |= !ok;
        let mark = if ok { "ok  " } else { "FAIL" };
        lifecycle.say(&format!("{mark} {step}: {detail}"));
        self.rows.push((format!("{mark} {step}"), detail.to_owned(), None));
    }
}

/// How many files each folder holds directly, folders in order: the seeded tree in a few lines.
fn files_per_folder<'a>(files: impl Iterator<Item = &'a PathBuf>) -> BTreeMap<String, usize> {
    let mut folders = BTreeMap::new();
    for file in files {
        let folder = match file.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => format!("./{}/", parent.display()),
            None => "./".to_owned(),
        };
        *folders.entry(folder).or_insert(0) += 1;
    }
    folders
}

fn heading(text: &str) {
    println!("\n== {text}");
}

/// `qa-deploy doctor`: exit 0 (nothing failed) is what lets the next create-stack go ahead.
async fn doctor(lifecycle: &Lifecycle, summary: &mut Summary, qa_deploy: &Path, service: Option<&str>) {
    let started = Instant::now();
    let (exit, printed) = lifecycle.doctor(qa_deploy, &[], service.map(|stack| (stack, &[][..]))).await;
    let verdict = printed.lines().last().unwrap_or_default().to_owned();
    let step = if service.is_some() { "doctor before the service" } else { "doctor before the prerequisites" };
    let detail = format!("exit {}, {:.1} s: {verdict}", exit.unwrap_or(-1), started.elapsed().as_secs_f64());
    summary.check(lifecycle, step, exit == Some(0), &detail);
}

/// A user's copy of the authorities with one YAML file changed, published to the service stack.
async fn publish(lifecycle: &Lifecycle, summary: &mut Summary, qa_deploy: &Path) -> Result<(), String> {
    let tree = lifecycle.bed.work_dir().join("my-authorities");
    lifecycle::copy_tree(&lifecycle.authorities, &tree);
    let changed = lifecycle::files_below(&tree)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "yml"))
        .ok_or("no YAML authority to change")?;
    let mut text = std::fs::read_to_string(tree.join(&changed)).map_err(|e| e.to_string())?;
    text.push_str("\n# changed for the publish step of the demo\n");
    std::fs::write(tree.join(&changed), text).map_err(|e| e.to_string())?;
    lifecycle.say(&format!("$ qa-deploy authorities publish --from {} --stack {SERVICE_STACK}", tree.display()));
    let started = Instant::now();
    let output = tokio::process::Command::new(qa_deploy)
        .args(["authorities", "publish", "--stack", SERVICE_STACK, "--from"])
        .arg(&tree)
        .envs(client_env(&lifecycle.bed.moto.endpoint))
        .output()
        .await
        .map_err(|e| format!("qa-deploy did not run: {e}"))?;
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    for line in printed.lines() {
        println!("           {line}");
    }
    summary.check(
        lifecycle,
        "publish reached every task",
        output.status.success() && printed.contains("✓ task"),
        &format!("exit {}, {:.1} s", output.status.code().unwrap_or(-1), started.elapsed().as_secs_f64()),
    );
    Ok(())
}

async fn run(lifecycle: &mut Lifecycle, summary: &mut Summary, qa_deploy: &Path) -> Result<(), String> {
    heading("0. The network a user has, and qa-deploy doctor on it before any create-stack");
    lifecycle.create_network().await?;
    doctor(lifecycle, summary, qa_deploy, None).await;

    heading(
        "1. The prerequisites stack, then the env file and the authority files in its bucket, and the doctor again",
    );
    let since = Instant::now();
    let prerequisites = lifecycle.create_prerequisites().await?;
    summary.record(lifecycle, "prerequisites created", "CREATE_COMPLETE", &prerequisites, since)?;
    lifecycle.upload().await?;
    doctor(lifecycle, summary, qa_deploy, Some(SERVICE_STACK)).await;

    heading(
        "2-3. The service stack: the env check, the seed (checked and answered outside the VPC, run inside it) and \
         the health waits beside the services, answered by the real function",
    );
    let since = Instant::now();
    let created = lifecycle.create_service(SERVICE_STACK).await?;
    summary.record(lifecycle, "service created", "CREATE_COMPLETE", &created, since)?;
    for (key, value) in lifecycle.bed.outputs(SERVICE_STACK).await? {
        println!("           output {key} = {value}");
    }
    let seeded = lifecycle.seeded();
    if let Some(summary) = lifecycle.last_seed_summary() {
        lifecycle.say(&format!("the seed function logged: {summary}"));
    }
    lifecycle.say(&format!("the mount (a local folder standing in for EFS) holds {} files:", seeded.len()));
    for (folder, files) in files_per_folder(seeded.keys()) {
        println!("           {folder:<60} {files:>4} files");
    }
    let sources = lifecycle::files_below(&lifecycle.authorities).len();
    summary.check(
        lifecycle,
        "authorities seeded",
        seeded.len() == sources,
        &format!("{} of {sources} files", seeded.len()),
    );

    heading("4. Update: one authority file changed in S3, the stack updated with a new AuthoritiesSourceVersion");
    let changed = lifecycle.change_one_authority().await?;
    lifecycle.say(&format!("changed authorities/{} in S3", changed.display()));
    let since = Instant::now();
    let updated = lifecycle.update_service(SERVICE_STACK, &[("AuthoritiesSourceVersion", "2")]).await?;
    summary.record(lifecycle, "service updated", "UPDATE_COMPLETE", &updated, since)?;
    let after = lifecycle.seeded();
    let rewritten: Vec<&PathBuf> =
        after.iter().filter(|(path, state)| seeded.get(*path) != Some(state)).map(|(p, _)| p).collect();
    lifecycle.say(&format!("files written again by the update: {rewritten:?}"));
    if let Some(seeded) = lifecycle.last_seed_summary() {
        lifecycle.say(&format!("the seed function logged: {seeded}"));
    }
    summary.check(
        lifecycle,
        "only the changed file copied",
        rewritten == [&changed],
        &format!("{} of {} files rewritten", rewritten.len(), after.len()),
    );

    heading(
        "4b. qa-deploy authorities publish --stack: one file changed locally, every app task reloaded and verified",
    );
    publish(lifecycle, summary, qa_deploy).await?;

    heading(
        "5. Failure: the env file's bucket made public, then a second service stack (in the same subnets, whose \
         route table already has the first stack's S3 endpoint: S3EndpointRouteTableIds empty)",
    );
    lifecycle.make_bucket_public().await?;
    let since = Instant::now();
    let failed = lifecycle.create_service_with(FAILING_STACK, &[("S3EndpointRouteTableIds", "")]).await?;
    summary.record(lifecycle, "creation failed and rolled back", "ROLLBACK_COMPLETE", &failed, since)?;
    let reason = failed.reason("EnvFileCheck", "CREATE_FAILED").unwrap_or_default().to_owned();
    lifecycle.say(&format!("describe-stack-events: EnvFileCheck CREATE_FAILED - {reason}"));
    summary.check(
        lifecycle,
        "our reason in the events",
        reason.contains("public"),
        "EnvFileCheck CREATE_FAILED names the public bucket",
    );
    summary.check(
        lifecycle,
        "the rollback's Delete answered",
        failed.has("EnvFileCheck", "DELETE_COMPLETE"),
        "EnvFileCheck DELETE_COMPLETE",
    );
    // qa-deploy is built beside the demo (make demo builds both).
    let (status, why) = lifecycle.why(qa_deploy, FAILING_STACK).await?;
    print!("{why}");
    summary.check(
        lifecycle,
        "qa-deploy why explains it",
        status == 1 && why.contains("EnvFileCheck") && why.contains("Log of request"),
        &format!("exit {status}: the root cause, its function's log lines, what to do"),
    );
    lifecycle.make_bucket_private().await?;
    let since = Instant::now();
    let cleaned = lifecycle.delete_stack(FAILING_STACK).await?;
    summary.record(lifecycle, "rolled-back stack deleted", "DELETE_COMPLETE", &cleaned, since)?;

    heading("6. Delete: the service stack, then the prerequisites stack");
    let since = Instant::now();
    let deleted = lifecycle.delete_stack(SERVICE_STACK).await?;
    summary.record(lifecycle, "service deleted", "DELETE_COMPLETE", &deleted, since)?;
    let since = Instant::now();
    let deleted = lifecycle.delete_stack(PREREQUISITES_STACK).await?;
    summary.record(lifecycle, "prerequisites deleted", "DELETE_COMPLETE", &deleted, since)?;
    let remaining = lifecycle.seeded().len();
    summary.check(
        lifecycle,
        "authorities remain",
        remaining == after.len(),
        &format!("{remaining} files on the mount"),
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    let function = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        eprintln!("usage: demo PATH-TO-FUNCTION-BINARY   (make demo builds it and passes it)");
        std::process::exit(64);
    });
    let started = Instant::now();
    let mut lifecycle = Lifecycle::start(&function, &lifecycle::authorities_fixture()).await;
    let mut summary = Summary { rows: Vec::new(), failed: false };
    // make demo builds qa-deploy beside the function.
    let qa_deploy = function.with_file_name("qa-deploy");
    let outcome = run(&mut lifecycle, &mut summary, &qa_deploy).await;

    println!("\n== Summary ({:.1} s)", started.elapsed().as_secs_f64());
    for (step, result, seconds) in &summary.rows {
        if let Some(seconds) = seconds {
            println!("  {step:<40} {result:<20} {seconds:>5.1} s");
        } else {
            println!("  {step:<40} {result}");
        }
    }
    let problem = match outcome {
        Err(error) => Some(format!("demo stopped: {error}")),
        Ok(()) if summary.failed => Some("demo: a step did not end as expected".to_owned()),
        Ok(()) => None,
    };
    if let Some(problem) = problem {
        lifecycle.bed.keep_logs();
        eprintln!("{problem}\nlogs kept in {}", lifecycle.bed.work_dir().display());
        drop(lifecycle);
        std::process::exit(1);
    }
}
