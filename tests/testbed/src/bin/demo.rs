//! `make demo`: moto and the real Lambda binary on 127.0.0.1, and the custom resources' requests
//! as CloudFormation sends them, with real pre-signed response URLs; each stored answer is printed.
//! It grows with each capability: the whole stack lifecycle comes with the templates on moto.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use qa_lookup_testbed::{Event, FunctionOptions, StoredResponse, TestBed};
use serde_json::json;

const BUCKET: &str = "lookup-demo";
const ROLE: &str = "arn:aws:iam::123456789012:role/lookup-task-execution";

fn step(started: Instant, text: &str) {
    println!("[{:>5.1}s] {text}", started.elapsed().as_secs_f64());
}

async fn show(bed: &TestBed, started: Instant, title: &str, event: &Event) -> StoredResponse {
    let field = |name: &str| event.body[name].as_str().unwrap_or_default().to_owned();
    step(
        started,
        &format!("{title}: {} {} {}", field("RequestType"), field("ResourceType"), field("LogicalResourceId")),
    );
    bed.invoke(event).await;
    let stored = bed.stored_response(event).await;
    println!("         CloudFormation receives ({} bytes, {} answer):", stored.bytes.len(), stored.versions);
    for line in serde_json::to_string_pretty(&stored.json).unwrap_or_default().lines() {
        println!("           {line}");
    }
    stored
}

fn files_below(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path.strip_prefix(folder).unwrap_or(&path).to_path_buf());
            }
        }
    }
    files.sort();
    files
}

async fn put(bed: &TestBed, key: &str, bytes: Vec<u8>) {
    bed.s3
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .expect("moto stores the object");
}

#[tokio::main]
async fn main() {
    let function = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        eprintln!("usage: demo PATH-TO-FUNCTION-BINARY   (make demo builds it and passes it)");
        std::process::exit(2);
    });
    let root = qa_lookup_testbed::workspace_root();
    let real = root.join("../shared/fixtures/qa_server_config/authorities");
    let authorities = if real.is_dir() { real } else { root.join("tests/fixtures/authorities") };
    let mount = tempfile::Builder::new().prefix("qa-lookup-demo-authorities-").tempdir().expect("a folder");

    let started = Instant::now();
    step(started, "starting moto (the local AWS emulator), the cargo-lambda runtime emulator and the function");
    let options = FunctionOptions::new(&function)
        .timeout(Duration::from_secs(120))
        .env("AUTHORITIES_MOUNT_PATH", mount.path().to_str().expect("a UTF-8 path"));
    let bed = TestBed::start(options).await;
    step(started, &format!("moto listens on {}; logs in {}", bed.moto.endpoint, bed.log_dir().display()));

    bed.s3.create_bucket().bucket(BUCKET).send().await.expect("moto creates the bucket");
    let all_on = aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build();
    bed.s3.put_public_access_block().bucket(BUCKET).public_access_block_configuration(all_on).send().await.unwrap();
    let env_file = std::fs::read_to_string(root.join("cfn/.env.example"))
        .expect("cfn/.env.example")
        .replace("CHANGEME", "demo-secret");
    put(&bed, "production.env", env_file.into_bytes()).await;
    let sources = files_below(&authorities);
    for relative in &sources {
        put(&bed, &format!("authorities/{}", relative.display()), std::fs::read(authorities.join(relative)).unwrap())
            .await;
    }
    step(
        started,
        &format!(
            "uploaded the env file and {} authority files from {} to s3://{BUCKET}",
            sources.len(),
            authorities.display()
        ),
    );

    let check = json!({"Bucket": BUCKET, "Key": "production.env", "ExecutionRoleArn": ROLE});
    let event = bed.create("Custom::EnvFileCheck", "EnvFileCheck", check.clone()).await;
    show(&bed, started, "1. the env-file check on a private bucket", &event).await;

    let seed = json!({"Bucket": BUCKET, "SourceVersion": "1"});
    let event = bed.create("Custom::SeedAuthorities", "SeedAuthorities", seed).await;
    let seeded = show(&bed, started, "2. seeding the authorities", &event).await;
    let files = files_below(mount.path());
    step(started, &format!("   the mount {} now holds {} files, e.g.:", mount.path().display(), files.len()));
    for file in files.iter().take(5) {
        println!("           {}", file.display());
    }

    let changed = sources
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "yml"))
        .cloned()
        .unwrap_or_else(|| sources[0].clone());
    let mut bytes = std::fs::read(authorities.join(&changed)).unwrap();
    bytes.extend_from_slice(b"\n# changed for the demo\n");
    put(&bed, &format!("authorities/{}", changed.display()), bytes).await;
    step(started, &format!("changed {} in S3", changed.display()));
    let update = json!({"Bucket": BUCKET, "SourceVersion": "2"});
    let event = bed
        .update(
            "Custom::SeedAuthorities",
            "SeedAuthorities",
            seeded.physical_id(),
            update,
            json!({"Bucket": BUCKET, "SourceVersion": "1"}),
        )
        .await;
    show(&bed, started, "3. a stack update with a new SourceVersion: only the changed file is copied", &event).await;

    bed.s3.delete_public_access_block().bucket(BUCKET).send().await.unwrap();
    bed.s3.put_bucket_acl().bucket(BUCKET).acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead).send().await.unwrap();
    step(started, "made the bucket public: Block Public Access off, ACL public-read");
    let event = bed.create("Custom::EnvFileCheck", "EnvFileCheck", check).await;
    show(&bed, started, "4. the env-file check on the public bucket", &event).await;

    let answers = bed.function.logs().lines().filter(|l| l.contains("answered CloudFormation")).count();
    step(
        started,
        &format!("done: 4 requests, {answers} answers delivered, each exactly once; stopping moto and the function"),
    );
}
