//! The inputs in S3, judged by the code that judges them at create (the env-file check, the
//! seed), and the images, whose tags decide what runs at each task start.

use super::account::Aws;
use super::{Outcome, Parameters, Row, StackState};
use crate::aws::describe;
use crate::env_file_check::{self, Verdict};
use crate::seed_authorities::{self, source::S3Source, Progress, SeedOptions};

pub async fn rows(
    config: &aws_config::SdkConfig,
    aws: &Aws,
    deploy: &Parameters,
    bucket: Option<&str>,
    service_stack: &str,
    service: &Result<Option<StackState>, String>,
) -> Vec<Row> {
    let zip = zip_row(aws, deploy.value("LambdaCodeBucket"), deploy.value("LambdaCodeKey"));
    let Some(bucket) = bucket else {
        let why = "not checked: the prerequisites stack creates the bucket they go in — create it first, upload them, run the doctor again";
        return vec![
            Row::new("Inputs", "the env file and the authority files", Outcome::Unknown(why.into())),
            zip.await,
        ];
    };
    let (env, authorities, zip) = tokio::join!(
        env_file_rows(config, aws, deploy, bucket, service_stack, service),
        authorities_row(config, deploy, bucket),
        zip
    );
    let mut rows = env;
    rows.push(authorities);
    rows.push(zip);
    rows
}

/// The env-file check's own checks. Before the service stack exists its execution role does
/// not either: that one check waits for the stack's EnvFileCheck.
async fn env_file_rows(
    config: &aws_config::SdkConfig,
    aws: &Aws,
    deploy: &Parameters,
    bucket: &str,
    service_stack: &str,
    service: &Result<Option<StackState>, String>,
) -> Vec<Row> {
    let area = "Env file";
    let role = match (service, execution_role(aws, service_stack).await) {
        (Ok(Some(_)), Some(role)) => Some(role),
        _ => None,
    };
    let account = aws.sts.get_caller_identity().send().await.ok().and_then(|i| i.account().map(str::to_owned));
    let stand_in = format!("arn:aws:iam::{}:role/{service_stack}-TaskExecutionRole", account.unwrap_or_default());
    let properties = env_file_check::Properties {
        bucket: bucket.to_owned(),
        key: deploy.value("EnvFileKey").to_owned(),
        execution_role_arn: role.clone().unwrap_or(stand_in),
        required_keys: deploy.list("RequiredEnvKeys"),
    };
    let facts = env_file_check::facts::AwsFacts::new(config);
    let report = env_file_check::run_checks(&facts, &properties).await;
    let mut passed = Vec::new();
    let mut rows = Vec::new();
    for check in &report.checks {
        let outcome = match &check.verdict {
            Verdict::Passed(_) if check.name == "execution role may read" && role.is_none() => {
                Outcome::Unknown("the service stack creates the role; its EnvFileCheck checks this at create".into())
            }
            Verdict::Failed(_) if check.name == "execution role may read" && role.is_none() => {
                Outcome::Unknown("the service stack creates the role; its EnvFileCheck checks this at create".into())
            }
            Verdict::Passed(_) => {
                passed.push(check.name);
                continue;
            }
            Verdict::Failed(why) => Outcome::Failed(why.clone()),
            Verdict::NotDetermined(why) => Outcome::Unknown(why.clone()),
        };
        rows.push(Row::new(area, format!("{} {}", report.object, check.name), outcome));
    }
    if !passed.is_empty() {
        let detail = format!("{} checks passed ({})", passed.len(), passed.join(", "));
        rows.insert(0, Row::new(area, report.object.clone(), Outcome::Passed(detail)));
    }
    rows
}

async fn execution_role(aws: &Aws, stack: &str) -> Option<String> {
    let found = aws
        .cloudformation
        .describe_stack_resource()
        .stack_name(stack)
        .logical_resource_id("TaskExecutionRole")
        .send()
        .await
        .ok()?;
    let name = found.stack_resource_detail()?.physical_resource_id()?.to_owned();
    let identity = aws.sts.get_caller_identity().send().await.ok()?;
    Some(format!("arn:aws:iam::{}:role/{name}", identity.account()?))
}

/// The seed's own code into a temporary folder that is removed afterwards: the same listing,
/// key, layout, limit and parse checks as at create, nothing written to the account.
async fn authorities_row(config: &aws_config::SdkConfig, deploy: &Parameters, bucket: &str) -> Row {
    let prefix = deploy.value("AuthoritiesPrefix");
    let check = format!("s3://{bucket}/{prefix}");
    let folder = match tempfile::tempdir() {
        Ok(folder) => folder,
        Err(error) => return Row::new("Authorities", check, Outcome::Unknown(format!("no temporary folder: {error}"))),
    };
    let options = SeedOptions {
        allow_empty: deploy.value("AllowEmptyAuthorities") == "true",
        max_objects: seed_authorities::DEFAULT_MAX_OBJECTS,
        max_total_bytes: seed_authorities::DEFAULT_MAX_TOTAL_BYTES,
        concurrency: seed_authorities::DEFAULT_CONCURRENCY,
    };
    let source = S3Source::new(config);
    let seeded = seed_authorities::seed(&source, bucket, prefix, folder.path(), &options, &Progress::default()).await;
    let outcome = match seeded {
        Ok(summary) => Outcome::Passed(format!(
            "{} files, {} bytes, each one parses, a layout qa_server loads",
            summary.files, summary.bytes
        )),
        Err(reason) => Outcome::Failed(reason.replace(&folder.path().display().to_string(), "the access point")),
    };
    Row::new("Authorities", check, outcome)
}

async fn zip_row(aws: &Aws, bucket: &str, key: &str) -> Row {
    let check = format!("Lambda code s3://{bucket}/{key}");
    let outcome = match aws.s3.head_object().bucket(bucket).key(key).send().await {
        Ok(object) => Outcome::Passed(format!("{} bytes", object.content_length().unwrap_or(0))),
        Err(error) => match error.raw_response().map(|r| r.status().as_u16()) {
            Some(404) => Outcome::Failed(
                "expected the custom-resource zip, found no such object — make package STAGE=… builds and uploads it \
                 and writes LambdaCodeBucket and LambdaCodeKey"
                    .into(),
            ),
            Some(403) => Outcome::Failed(
                "expected the custom-resource zip, found it unreadable to you (403: missing, or no s3:GetObject) — \
                 upload it with make package, or check the bucket and key"
                    .into(),
            ),
            _ => Outcome::Unknown(format!("s3:HeadObject: {}", describe(&error))),
        },
    };
    Row::new("Inputs", check, outcome)
}

/// A tag that can move (`latest`, or a version without its patch number) changes what runs at
/// the next task start without any deployment: upstream deployments broke on `mariadb:latest`.
pub fn image_rows(deploy: &Parameters) -> Vec<Row> {
    let app = format!("{}:{}", deploy.value("AppImage"), deploy.value("AppImageTag"));
    [("AppImageTag", app), ("MysqlImage", deploy.value("MysqlImage").to_owned())]
        .into_iter()
        .map(|(parameter, image)| {
            let tag = image.rsplit_once(':').map(|(_, tag)| tag).unwrap_or("latest");
            let outcome = if floats(tag) {
                Outcome::Warning(format!(
                    "{image}: the tag can move, so a restarted task may run another version than the one tested \
                     (upstream deployments broke on mariadb:latest) — pin {parameter} to a full version or a digest"
                ))
            } else {
                Outcome::Passed(format!("{image}: pinned"))
            };
            Row::new("Images", parameter, outcome)
        })
        .collect()
}

/// `latest`, or a version number with fewer than three parts (`10.6`, `v2`); a full version or
/// a git commit id is pinned.
pub fn floats(tag: &str) -> bool {
    if tag == "latest" {
        return true;
    }
    let version = tag.trim_start_matches('v');
    let numeric_parts = version
        .split(['.', '-'])
        .take_while(|part| part.chars().all(|c| c.is_ascii_digit()) && !part.is_empty())
        .count();
    let starts_numeric = version.chars().next().is_some_and(|c| c.is_ascii_digit());
    starts_numeric && numeric_parts < 3 && !(version.len() >= 7 && version.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_and_versions_without_a_patch_number_float() {
        for tag in ["latest", "10.6", "v2", "11", "10.6-jammy"] {
            assert!(floats(tag), "{tag}");
        }
        for tag in ["10.6.21", "v2.0.0", "e980413", "1a2b3c4d5e6f", "10.6.21-jammy"] {
            assert!(!floats(tag), "{tag}");
        }
    }

    #[test]
    fn the_example_images_are_warnings_that_name_the_parameter() {
        let deploy = Parameters::from_values(super::super::parameters::DEPLOY_TEMPLATE, &[]);
        let rows = image_rows(&deploy);
        assert!(rows.iter().all(|r| matches!(r.outcome, Outcome::Warning(_))), "{rows:?}");
        assert!(matches!(&rows[1].outcome, Outcome::Warning(w) if w.contains("mariadb:10.6")));
    }
}
