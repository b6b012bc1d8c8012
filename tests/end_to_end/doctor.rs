//! `qa-deploy doctor` against moto, on the network and stacks of the stack lifecycle: a good
//! account passes, then each fault alone is one ✗ row with its fix, and no env-file value is
//! ever printed.

use std::path::Path;

use qa_lookup_testbed::lifecycle::{self, Lifecycle, BUCKET, SERVICE_STACK};

const FUNCTION: &str = env!("CARGO_BIN_EXE_custom-resources");
const QA_DEPLOY: &str = env!("CARGO_BIN_EXE_qa-deploy");

/// The ✗ rows of a doctor's output.
fn failed_rows(printed: &str) -> Vec<&str> {
    printed.lines().filter(|line| line.starts_with('✗')).collect()
}

/// Exactly one ✗ row, containing each of `wanted`.
fn one_failure(exit: Option<i32>, printed: &str, wanted: &[&str]) {
    assert_eq!(exit, Some(1), "{printed}");
    let failed = failed_rows(printed);
    assert_eq!(failed.len(), 1, "expected one failed row:\n{printed}");
    for text in wanted {
        assert!(failed[0].contains(text), "the failed row lacks {text:?}:\n{printed}");
    }
}

fn passes(exit: Option<i32>, printed: &str) {
    assert_eq!(exit, Some(0), "{printed}");
    assert!(failed_rows(printed).is_empty(), "{printed}");
    assert!(printed.contains("no problem found"), "{printed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_before_the_prerequisites_passes_a_good_network_and_names_subnets_in_one_zone_and_dns_hostnames_off() {
    let mut lifecycle = Lifecycle::start(Path::new(FUNCTION), &lifecycle::authorities_fixture()).await;
    lifecycle.create_network().await.expect("the network is created");
    let qa_deploy = Path::new(QA_DEPLOY);
    let (exit, printed) = lifecycle.doctor(qa_deploy, &[], None).await;
    passes(exit, &printed);
    assert!(printed.contains(&format!("✓ Account     bucket name {BUCKET}: free")), "{printed}");

    let (vpc, subnets) = lifecycle.network();
    let (vpc, first) = (vpc.to_owned(), subnets[0].clone());
    let same_zone =
        ["ec2", "create-subnet", "--vpc-id", &vpc, "--cidr-block", "10.42.3.0/24", "--availability-zone", "us-east-1a"];
    let same_zone = lifecycle.bed.aws(&same_zone).await.expect("a second subnet in us-east-1a");
    let same_zone = same_zone["Subnet"]["SubnetId"].as_str().unwrap().to_owned();
    lifecycle
        .bed
        .aws(&["ec2", "modify-subnet-attribute", "--subnet-id", &same_zone, "--map-public-ip-on-launch"])
        .await
        .unwrap();
    let one_zone = format!("{first},{same_zone}");
    let (exit, printed) = lifecycle.doctor(qa_deploy, &[("SubnetIds", &one_zone)], None).await;
    one_failure(exit, &printed, &["in us-east-1a", "set SubnetIds to subnets in two zones"]);

    let off = ["ec2", "modify-vpc-attribute", "--vpc-id", &vpc, "--enable-dns-hostnames", "{\"Value\":false}"];
    lifecycle.bed.aws(&off).await.unwrap();
    let (exit, printed) = lifecycle.doctor(qa_deploy, &[], None).await;
    one_failure(
        exit,
        &printed,
        &["DNS hostnames off", &format!("modify-vpc-attribute --vpc-id {vpc} --enable-dns-hostnames")],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_before_the_service_passes_then_names_each_fault_alone_and_never_prints_an_env_file_value() {
    let mut lifecycle = Lifecycle::start(Path::new(FUNCTION), &lifecycle::authorities_fixture()).await;
    assert_eq!(lifecycle.create_prerequisites().await.expect("create-stack runs").status, "CREATE_COMPLETE");
    lifecycle.upload().await.expect("the files are uploaded");
    let qa_deploy = Path::new(QA_DEPLOY);
    let doctor = |changes: &'static [(&'static str, &'static str)]| {
        lifecycle.doctor(qa_deploy, &[], Some((SERVICE_STACK, changes)))
    };
    let mut printed_all = String::new();

    let (exit, printed) = doctor(&[]).await;
    passes(exit, &printed);
    for row in ["the seeding function reaches S3", "a layout qa_server loads", "exports of", "Lambda code s3://"] {
        assert!(printed.contains(row), "no {row:?} row:\n{printed}");
    }
    printed_all.push_str(&printed);

    let (exit, printed) = doctor(&[("S3EndpointRouteTableIds", "")]).await;
    one_failure(exit, &printed, &["the VPC's main route table", "set S3EndpointRouteTableIds to rtb-"]);
    printed_all.push_str(&printed);

    const MISSING: &str = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000";
    let (exit, printed) = doctor(&[("CertificateArn", MISSING)]).await;
    one_failure(exit, &printed, &["certificate", "found none in us-east-1"]);

    let broken = lifecycle.bed.work_dir().join("broken.yml");
    std::fs::write(&broken, "term:\n  - id: 1\n   bad: [\n").unwrap();
    let key = format!("s3://{BUCKET}/authorities/broken.yml");
    lifecycle.bed.aws(&["s3", "cp", &broken.to_string_lossy(), &key, "--quiet"]).await.unwrap();
    let (exit, printed) = doctor(&[]).await;
    one_failure(exit, &printed, &["broken.yml", "invalid YAML at line"]);
    lifecycle.bed.aws(&["s3", "rm", &key, "--quiet"]).await.unwrap();

    lifecycle.make_bucket_public().await.unwrap();
    let (exit, printed) = doctor(&[]).await;
    assert_eq!(exit, Some(1), "{printed}");
    assert!(failed_rows(&printed).iter().all(|row| row.contains("Env file")), "{printed}");
    assert!(printed.contains("put-bucket-acl --bucket qa-lookup-demo --acl private"), "{printed}");
    printed_all.push_str(&printed);

    // A failed creation leaves ROLLBACK_COMPLETE, which only delete-stack clears.
    let failed = lifecycle.create_service(SERVICE_STACK).await.expect("create-stack runs");
    assert_eq!(failed.status, "ROLLBACK_COMPLETE");
    lifecycle.make_bucket_private().await.unwrap();
    let (exit, printed) = doctor(&[]).await;
    one_failure(exit, &printed, &["ROLLBACK_COMPLETE", &format!("delete-stack --stack-name {SERVICE_STACK}")]);
    printed_all.push_str(&printed);

    // upload() writes cfn/.env.example with "demo-secret" for every CHANGEME.
    assert!(!printed_all.contains("demo-secret"), "an env-file value was printed:\n{printed_all}");
}
