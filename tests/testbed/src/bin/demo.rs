//! `make demo`: moto and the real Lambda binary on 127.0.0.1, and requests through it as
//! CloudFormation sends them; each stored answer, read back from the pre-signed URL's object,
//! is printed. It grows with each resource type the function serves.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use qa_lookup_testbed::{Event, FunctionOptions, TestBed};
use serde_json::json;

fn step(started: Instant, text: &str) {
    println!("[{:>5.1}s] {text}", started.elapsed().as_secs_f64());
}

async fn show(bed: &TestBed, started: Instant, title: &str, event: &Event) {
    step(
        started,
        &format!(
            "{title}: {} {} {}",
            event.body["RequestType"].as_str().unwrap_or_default(),
            event.body["ResourceType"].as_str().unwrap_or_default(),
            event.body["LogicalResourceId"].as_str().unwrap_or_default()
        ),
    );
    bed.invoke(event).await;
    let stored = bed.stored_response(event).await;
    let key = &event.response_key;
    println!("         answer stored at s3://{}/{key} ({} bytes):", bed.responses_bucket, stored.bytes.len());
    let pretty = serde_json::to_string_pretty(&stored.json).unwrap_or_default();
    for line in pretty.lines() {
        println!("           {line}");
    }
}

#[tokio::main]
async fn main() {
    let function = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        eprintln!("usage: demo PATH-TO-FUNCTION-BINARY   (make demo builds it and passes it)");
        std::process::exit(2);
    });
    let started = Instant::now();
    step(started, "starting moto (the local AWS emulator), the cargo-lambda runtime emulator and the function");
    let bed = TestBed::start(FunctionOptions::new(&function).timeout(Duration::from_secs(60))).await;
    step(started, &format!("moto listens on {}; logs in {}", bed.moto.endpoint, bed.log_dir().display()));

    let properties = json!({"Behaviour": "Succeed", "Count": "3", "Enabled": "true"});
    let create = bed.create("Custom::TestFault", "DemoProbe", properties.clone()).await;
    show(&bed, started, "1. a request that succeeds", &create).await;
    let physical_id = bed.stored_response(&create).await.physical_id().to_owned();

    let broken = bed.create("Custom::TestFault", "DemoBroken", json!({"Count": "three"})).await;
    show(&bed, started, "2. a template mistake: a wrongly typed property", &broken).await;
    let never_created = bed.stored_response(&broken).await.physical_id().to_owned();

    let rollback = bed.delete("Custom::TestFault", "DemoBroken", &never_created, json!({"Count": "three"})).await;
    show(&bed, started, "3. the rollback's Delete of what was never created", &rollback).await;

    let delete = bed.delete("Custom::TestFault", "DemoProbe", &physical_id, properties).await;
    show(&bed, started, "4. the stack's Delete", &delete).await;

    let summary = bed.function.logs().lines().filter(|l| l.contains("answered CloudFormation")).count();
    step(
        started,
        &format!("done: 4 requests, {summary} answers delivered, each exactly once; stopping moto and the function"),
    );
}
