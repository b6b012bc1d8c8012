//! `Custom::EnvFileCheck` and `qa-deploy check-env` against moto: the real Lambda binary under
//! the runtime emulator and the real CLI binary, on buckets broken one way or several.
//! (moto does not implement iam:SimulatePrincipalPolicy, so that check reads "not determined"
//! here; its decisions are tested with aws-smithy-mocks in the unit tests.)

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketCannedAcl, ObjectCannedAcl, PublicAccessBlockConfiguration};
use qa_lookup_testbed::{FunctionOptions, TestBed};
use serde_json::json;

const FUNCTION: &str = env!("CARGO_BIN_EXE_custom-resources");
const CLI: &str = env!("CARGO_BIN_EXE_qa-deploy");
const CHECK: &str = "Custom::EnvFileCheck";
const ROLE: &str = "arn:aws:iam::123456789012:role/lookup-task-execution";

/// Values no log, answer or output may ever show.
const SECRETS: [&str; 4] =
    ["Zq7-secret-key-base-41f", "Zq7-reload-token-88a", "Zq7-db-password-13c", "Zq7-root-password-6d2"];

fn complete_env_file() -> String {
    format!(
        "# qa_server\nRAILS_ENV=production\nSECRET_KEY_BASE={}\nRELOAD_TOKEN={}\nMYSQL_HOST=qa-mariadb\nMYSQL_PORT=3306\n\
         MYSQL_DATABASE=qa_server\nMYSQL_DATABASE_NAME_PREFIX=qa_server\nMYSQL_USER=qa_server\nMYSQL_PASSWORD={}\nMYSQL_ROOT_PASSWORD={}\n",
        SECRETS[0], SECRETS[1], SECRETS[2], SECRETS[3]
    )
}

async fn start() -> TestBed {
    TestBed::start(FunctionOptions::new(FUNCTION).timeout(Duration::from_secs(30))).await
}

fn all_on() -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build()
}

/// A bucket as the prerequisites stack makes it, holding `production.env`.
async fn well_configured(bed: &TestBed, bucket: &str, contents: &str) {
    bed.s3.create_bucket().bucket(bucket).send().await.expect("moto creates the bucket");
    bed.s3.put_public_access_block().bucket(bucket).public_access_block_configuration(all_on()).send().await.unwrap();
    put_env_file(bed, bucket, "production.env", contents).await;
}

async fn put_env_file(bed: &TestBed, bucket: &str, key: &str, contents: &str) {
    bed.s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(contents.as_bytes().to_vec()))
        .send()
        .await
        .unwrap();
}

fn properties(bucket: &str, key: &str) -> serde_json::Value {
    json!({"Bucket": bucket, "Key": key, "ExecutionRoleArn": ROLE})
}

async fn lambda_answer(bed: &TestBed, bucket: &str, key: &str) -> qa_lookup_testbed::StoredResponse {
    let create = bed.create(CHECK, "EnvFileCheck", properties(bucket, key)).await;
    bed.invoke(&create).await;
    let answer = bed.stored_response(&create).await;
    assert_eq!(answer.versions, 1, "exactly one answer");
    assert!(answer.bytes.len() <= 4096);
    // The log is complete for this request before a test looks for a secret in it.
    bed.function.logs_after_request(create.body["RequestId"].as_str().unwrap_or_default()).await;
    answer
}

async fn cli(bed: &TestBed, bucket: &str, key: &str) -> (i32, String) {
    let output = tokio::process::Command::new(CLI)
        .args(["check-env", "--bucket", bucket, "--key", key, "--execution-role-arn", ROLE])
        .envs(qa_lookup_testbed::client_env(&bed.moto.endpoint))
        .output()
        .await
        .expect("qa-deploy runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn well_configured_bucket_passes_create_update_and_delete_needs_no_aws() {
    let bed = start().await;
    well_configured(&bed, "lookup-good", &complete_env_file()).await;

    let created = lambda_answer(&bed, "lookup-good", "production.env").await;
    assert_eq!(created.status(), "SUCCESS", "{}", created.json);
    assert_eq!(created.physical_id(), "env-file-check:s3://lookup-good/production.env");
    assert_eq!(created.json["Data"]["NotDetermined"], "2", "the account setting and IAM's simulator, on moto");

    let update = bed
        .update(
            CHECK,
            "EnvFileCheck",
            created.physical_id(),
            properties("lookup-good", "production.env"),
            properties("lookup-good", "production.env"),
        )
        .await;
    bed.invoke(&update).await;
    let updated = bed.stored_response(&update).await;
    assert_eq!((updated.status(), updated.physical_id()), ("SUCCESS", created.physical_id()));

    // Delete calls no AWS API: it succeeds even for a bucket that is gone.
    let delete = bed.delete(CHECK, "EnvFileCheck", created.physical_id(), properties("no-such-bucket", "x.env")).await;
    bed.invoke(&delete).await;
    assert_eq!(bed.stored_response(&delete).await.status(), "SUCCESS");

    let (status, output) = cli(&bed, "lookup-good", "production.env").await;
    assert_eq!(status, 0, "{output}");
    assert!(output.contains("✓ object present"), "{output}");
    assert!(output.contains("? execution role may read"), "{output}");
    assert!(output.contains("? account Block Public Access") && output.contains("not checked"), "{output}");
}

/// Each condition alone: the Lambda's FAILED reason and the CLI's ✗ row say it, and only it.
#[tokio::test(flavor = "multi_thread")]
async fn each_failing_condition_alone_through_the_lambda_and_the_cli() {
    let bed = start().await;
    let s3 = &bed.s3;
    let mut cases: Vec<(&str, &str, &str)> = Vec::new();

    well_configured(&bed, "no-block", &complete_env_file()).await;
    s3.delete_public_access_block().bucket("no-block").send().await.unwrap();
    cases.push(("no-block", "production.env", "bucket no-block: has no Block Public Access configuration"));

    well_configured(&bed, "one-off", &complete_env_file()).await;
    let one_off = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(false)
        .restrict_public_buckets(true)
        .build();
    s3.put_public_access_block().bucket("one-off").public_access_block_configuration(one_off).send().await.unwrap();
    cases.push(("one-off", "production.env", "bucket one-off: BlockPublicPolicy is off — turn on all four Block Public Access settings (aws s3api put-public-access-block"));

    well_configured(&bed, "public-bucket-acl", &complete_env_file()).await;
    s3.put_bucket_acl().bucket("public-bucket-acl").acl(BucketCannedAcl::PublicRead).send().await.unwrap();
    cases.push((
        "public-bucket-acl",
        "production.env",
        "bucket public-bucket-acl: its ACL grants AllUsers READ — make it private",
    ));

    well_configured(&bed, "public-object-acl", &complete_env_file()).await;
    s3.put_object_acl()
        .bucket("public-object-acl")
        .key("production.env")
        .acl(ObjectCannedAcl::AuthenticatedRead)
        .send()
        .await
        .unwrap();
    cases.push((
        "public-object-acl",
        "production.env",
        "object s3://public-object-acl/production.env: its ACL grants AuthenticatedUsers READ",
    ));

    well_configured(&bed, "denied", &complete_env_file()).await;
    let deny = json!({"Version": "2012-10-17", "Statement": [{"Sid": "NoReads", "Effect": "Deny",
        "Principal": {"AWS": ROLE}, "Action": "s3:GetBucketLocation", "Resource": "arn:aws:s3:::denied"}]});
    s3.put_bucket_policy().bucket("denied").policy(deny.to_string()).send().await.unwrap();
    cases.push(("denied", "production.env", "NoReads denies s3:GetBucketLocation to execution role"));

    well_configured(&bed, "missing", &complete_env_file()).await;
    cases.push(("missing", "staging.env", "object s3://missing/staging.env: expected the env file, found no such key"));

    well_configured(&bed, "suffix", &complete_env_file()).await;
    put_env_file(&bed, "suffix", "production.txt", &complete_env_file()).await;
    cases.push(("suffix", "production.txt", "ECS reads only files whose name ends in .env"));

    well_configured(&bed, "empty", "").await;
    cases.push(("empty", "production.env", "found an empty object"));

    let incomplete = complete_env_file().replace(&format!("MYSQL_PASSWORD={}", SECRETS[2]), "MYSQL_PASSWORD=CHANGEME")
        + "not a variable\n";
    well_configured(&bed, "incomplete", &incomplete).await;
    cases.push((
        "incomplete",
        "production.env",
        "malformed lines (line 12: no '=': expected VAR=VALUE); still CHANGEME in MYSQL_PASSWORD",
    ));

    cases.push((
        "no-such-bucket",
        "production.env",
        "bucket no-such-bucket: expected the env file's bucket, found no such bucket",
    ));

    for (bucket, key, expected) in cases {
        let answer = lambda_answer(&bed, bucket, key).await;
        assert_eq!(answer.status(), "FAILED", "{bucket}: {}", answer.json);
        assert!(
            answer.reason().starts_with("Custom::EnvFileCheck EnvFileCheck: env file s3://"),
            "{}",
            answer.reason()
        );
        assert!(answer.reason().contains(" 1 of "), "{bucket}: exactly one check fails: {}", answer.reason());
        assert!(answer.reason().contains(expected), "{bucket}: {expected:?} not in {:?}", answer.reason());
        assert!(answer.physical_id().starts_with("never-created:"));

        let (status, output) = cli(&bed, bucket, key).await;
        assert_eq!(status, 1, "{bucket}: {output}");
        assert_eq!(output.matches('✗').count(), 1, "{bucket}: {output}");
        assert!(output.contains(expected), "{bucket}: {expected:?} not in {output}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn several_failures_together_are_all_named_within_the_answer_limit_and_no_value_leaks() {
    let bed = start().await;
    let file =
        complete_env_file().replace("RELOAD_TOKEN=", "#RELOAD_TOKEN=").replace("MYSQL_USER=qa_server", "MYSQL_USER=");
    well_configured(&bed, "broken", &file).await;
    bed.s3.delete_public_access_block().bucket("broken").send().await.unwrap();
    bed.s3.put_bucket_acl().bucket("broken").acl(BucketCannedAcl::PublicReadWrite).send().await.unwrap();
    let public = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::broken/*"}]});
    bed.s3.put_bucket_policy().bucket("broken").policy(public.to_string()).send().await.unwrap();

    let started = Instant::now();
    let answer = lambda_answer(&bed, "broken", "production.env").await;
    let elapsed = started.elapsed();
    println!("misconfigured bucket: FAILED answer stored {:.2} s after the event was sent", elapsed.as_secs_f64());
    assert_eq!(answer.status(), "FAILED");
    assert!(
        answer.reason().contains("4 of 13 checks failed (bucket Block Public Access, bucket policy not public, no public ACL grants, contents complete)"),
        "{}",
        answer.reason()
    );
    assert!(answer.reason().contains("missing RELOAD_TOKEN; empty MYSQL_USER"), "{}", answer.reason());

    let (status, output) = cli(&bed, "broken", "production.env").await;
    assert_eq!(status, 1);
    assert_eq!(output.matches('✗').count(), 4, "{output}");

    let everything = format!("{}\n{}\n{output}", String::from_utf8_lossy(&answer.bytes), bed.function.logs());
    for secret in SECRETS {
        assert!(!everything.contains(secret), "{secret} reached a log, an answer or the CLI's output");
    }
    // The good bucket's run too: its log lines name each check.
    well_configured(&bed, "fine", &complete_env_file()).await;
    assert_eq!(lambda_answer(&bed, "fine", "production.env").await.status(), "SUCCESS");
    let logs = bed.function.logs_once(|logs| logs.contains("\"check\":\"contents complete\"")).await;
    assert!(logs.contains("\"check\":\"contents complete\""), "{logs}");
    for secret in SECRETS {
        assert!(!logs.contains(secret), "{secret} reached the function's log");
    }
}

/// qa_server's config/database.yml appends _staging to MYSQL_DATABASE_NAME_PREFIX for
/// RAILS_ENV=staging: a MYSQL_DATABASE without it would leave the app without its tables (500 on every database page).
#[tokio::test(flavor = "multi_thread")]
async fn a_staging_env_whose_database_lacks_the_staging_suffix_fails_naming_the_relation() {
    let bed = start().await;
    // The database named like its prefix, as for production: qa_lookup_7f, not qa_lookup_7f_staging.
    let staging = complete_env_file().replace("RAILS_ENV=production", "RAILS_ENV=staging").replace(
        "=qa_server\nMYSQL_DATABASE_NAME_PREFIX=qa_server\n",
        "=qa_lookup_7f\nMYSQL_DATABASE_NAME_PREFIX=qa_lookup_7f\n",
    );
    assert!(staging.contains("MYSQL_DATABASE=qa_lookup_7f\n"), "{staging}");
    well_configured(&bed, "staging-db", &staging).await;

    let answer = lambda_answer(&bed, "staging-db", "production.env").await;
    println!("staging env without the _staging suffix: {}", answer.reason());
    assert_eq!(answer.status(), "FAILED", "{}", answer.json);
    assert!(
        answer.reason().starts_with(
            "Custom::EnvFileCheck EnvFileCheck: env file s3://staging-db/production.env: 1 of 13 checks failed \
             (database name matches RAILS_ENV): production.env: MYSQL_DATABASE must equal MYSQL_DATABASE_NAME_PREFIX \
             followed by _staging (with RAILS_ENV=staging, qa_server's config/database.yml names the database so), \
             found a different MYSQL_DATABASE — "
        ),
        "{}",
        answer.reason()
    );
    assert!(answer.reason().contains("make the two match and upload the file again"), "{}", answer.reason());

    let (status, output) = cli(&bed, "staging-db", "production.env").await;
    assert_eq!(status, 1, "{output}");
    assert_eq!(output.matches('✗').count(), 1, "{output}");
    assert!(output.contains("✗ database name matches RAILS_ENV"), "{output}");
    assert!(output.contains("✓ RAILS_ENV valid") && output.contains("RAILS_ENV is staging"), "{output}");

    let everything = format!("{}\n{}\n{output}", String::from_utf8_lossy(&answer.bytes), bed.function.logs());
    for value in SECRETS.iter().copied().chain(["qa_lookup_7f"]) {
        assert!(!everything.contains(value), "{value} reached a log, an answer or the CLI's output");
    }
}
