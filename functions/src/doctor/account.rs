//! What the account already holds that a create-stack runs into: stacks of the same name, the
//! bucket name, the prerequisites' exports, the certificate, the AMI and the instance type.

use std::time::{Duration, SystemTime};

use super::parameters::DEPLOY_TEMPLATE;
use super::{Outcome, Parameters, Row, StackState};
use crate::aws::describe;

/// The clients the doctor uses.
pub struct Aws {
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub s3: aws_sdk_s3::Client,
    pub acm: aws_sdk_acm::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub sts: aws_sdk_sts::Client,
    pub region: String,
}

impl Aws {
    pub fn new(config: &aws_config::SdkConfig) -> Aws {
        Aws {
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            s3: crate::aws::s3(config),
            acm: aws_sdk_acm::Client::new(config),
            ssm: aws_sdk_ssm::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
        }
    }

    /// The stack named `name`, `None` when there is none.
    pub async fn stack(&self, name: &str) -> Result<Option<StackState>, String> {
        match self.cloudformation.describe_stacks().stack_name(name).send().await {
            Ok(found) => Ok(found.stacks().first().map(|stack| StackState {
                status: stack.stack_status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                outputs: stack
                    .outputs()
                    .iter()
                    .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                    .collect(),
            })),
            // CloudFormation answers ValidationError "Stack with id … does not exist".
            Err(error) if describe(&error).contains("does not exist") => Ok(None),
            Err(error) => Err(format!("cloudformation:DescribeStacks: {}", describe(&error))),
        }
    }
}

const AREA: &str = "Account";

/// Whether `make <target>` can create or update the stack as it stands.
pub fn stack_row(name: &str, state: &Result<Option<StackState>, String>, target: &str) -> Row {
    let check = format!("stack {name}");
    let outcome = match state {
        Err(why) => Outcome::Unknown(why.clone()),
        Ok(None) => Outcome::Passed("not created yet: create-stack creates it".into()),
        Ok(Some(stack)) => match stack.status.as_str() {
            "ROLLBACK_COMPLETE" => Outcome::Failed(format!(
                "found ROLLBACK_COMPLETE (its creation failed and rolled back): such a stack can only be deleted — \
                 see why with qa-deploy why --stack {name}, then aws cloudformation delete-stack --stack-name {name}"
            )),
            status if status.ends_with("_IN_PROGRESS") && status != "REVIEW_IN_PROGRESS" => Outcome::Failed(format!(
                "found {status}: another operation is running — wait for it (aws cloudformation wait \
                 stack-update-complete --stack-name {name}, or watch describe-stack-events)"
            )),
            status if status.ends_with("_FAILED") => Outcome::Failed(format!(
                "found {status}: it must be repaired first — see qa-deploy why --stack {name}; for \
                 UPDATE_ROLLBACK_FAILED, aws cloudformation continue-update-rollback --stack-name {name}"
            )),
            status => Outcome::Passed(format!("exists ({status}): make {target} updates it")),
        },
    };
    Row::new(AREA, check, outcome)
}

/// A new bucket's name must be free: AWS::S3::Bucket does not adopt an existing bucket, not even
/// this account's own (a retained bucket of an earlier prerequisites stack, for instance).
pub async fn bucket_row(aws: &Aws, name: &str, prerequisites: &Result<Option<StackState>, String>) -> Row {
    let check = format!("bucket name {name}");
    if let Ok(Some(stack)) = prerequisites {
        if stack.outputs.get("BucketName").map(String::as_str) == Some(name) {
            return Row::new(AREA, check, Outcome::Passed("the prerequisites stack's own bucket".into()));
        }
    }
    let outcome = match aws.s3.head_bucket().bucket(name).send().await {
        Ok(_) => Outcome::Failed(format!(
            "expected a free name, found a bucket of that name in this account (perhaps retained from an earlier \
             prerequisites stack); create-stack would fail with \"{name} already exists\" — set S3BucketName to a new \
             name, or empty and delete that bucket first"
        )),
        Err(error) => match error.raw_response().map(|r| r.status().as_u16()) {
            Some(404) => Outcome::Passed("free".into()),
            Some(403) => Outcome::Failed(
                "expected a free name, found it taken by another AWS account (bucket names are global) — choose another S3BucketName"
                    .into(),
            ),
            Some(301) => Outcome::Failed(
                "expected a free name, found a bucket of that name in another region — choose another S3BucketName".into(),
            ),
            _ => Outcome::Unknown(format!("s3:HeadBucket: {}", describe(&error))),
        },
    };
    Row::new(AREA, check, outcome)
}

/// The prerequisites' exports the service template imports, read from the template itself.
pub fn imported_exports(template: &str) -> Vec<String> {
    let marker = "${PrerequisitesStackName}-";
    let mut names: Vec<String> = template
        .match_indices(marker)
        .map(|(at, _)| {
            template[at + marker.len()..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

pub async fn exports_row(aws: &Aws, stack: &str, state: &Result<Option<StackState>, String>) -> Row {
    let check = format!("exports of {stack}");
    match state {
        Ok(None) => {
            return Row::new(
                AREA,
                check,
                Outcome::Failed(format!(
                    "expected the prerequisites stack, found no stack {stack} — create the prerequisites stack first \
                     (make deploy-prerequisites, or the README's step 1), or set PrerequisitesStackName to its name"
                )),
            )
        }
        Err(why) => return Row::new(AREA, check, Outcome::Unknown(why.clone())),
        Ok(Some(_)) => {}
    }
    let mut exported = Vec::new();
    let mut pages = aws.cloudformation.list_exports().into_paginator().send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(page) => exported.extend(page.exports().iter().filter_map(|e| e.name()).map(str::to_owned)),
            Err(error) => {
                return Row::new(
                    AREA,
                    check,
                    Outcome::Unknown(format!("cloudformation:ListExports: {}", describe(&error))),
                )
            }
        }
    }
    let wanted = imported_exports(DEPLOY_TEMPLATE);
    let missing: Vec<String> =
        wanted.iter().map(|name| format!("{stack}-{name}")).filter(|name| !exported.contains(name)).collect();
    if missing.is_empty() {
        return Row::new(AREA, check, Outcome::Passed(format!("all {} the service imports", wanted.len())));
    }
    Row::new(
        AREA,
        check,
        Outcome::Failed(format!(
            "expected the {} exports the service imports, found {} missing ({}) — the stack is from an older or \
             changed aws-prerequisites.yaml: update it (make deploy-prerequisites)",
            wanted.len(),
            missing.len(),
            missing.join(", ")
        )),
    )
}

/// Certificates in ACM are regional: the load balancer uses one of its own region (ACM user
/// guide, "Supported Regions").
pub async fn certificate_row(aws: &Aws, arn: &str) -> Row {
    let check = "certificate";
    if arn.is_empty() {
        return Row::new(AREA, check, Outcome::Passed("none given (CertificateArn empty): HTTP only".into()));
    }
    let region = arn.split(':').nth(3).unwrap_or_default();
    if region != aws.region {
        return Row::new(
            AREA,
            check,
            Outcome::Failed(format!(
                "{arn}: expected a certificate in {} (the stack's region), found one of {region} — request or import it in {}",
                aws.region, aws.region
            )),
        );
    }
    let described = match aws.acm.describe_certificate().certificate_arn(arn).send().await {
        Ok(described) => described,
        Err(error) => {
            let why = describe(&error);
            let outcome = if why.contains("ResourceNotFound") || why.contains("InvalidArn") {
                Outcome::Failed(format!(
                    "{arn}: expected an issued certificate, found none in {} ({why}) — check the ARN with aws acm list-certificates",
                    aws.region
                ))
            } else {
                Outcome::Unknown(format!("acm:DescribeCertificate: {why}"))
            };
            return Row::new(AREA, check, outcome);
        }
    };
    let Some(certificate) = described.certificate() else {
        return Row::new(
            AREA,
            check,
            Outcome::Unknown("acm:DescribeCertificate answered without a certificate".into()),
        );
    };
    let status = certificate.status().map(|s| s.as_str().to_owned()).unwrap_or_default();
    let not_after = certificate.not_after().and_then(|t| SystemTime::try_from(*t).ok());
    Row::new(AREA, check, certificate_outcome(arn, &status, not_after, SystemTime::now()))
}

/// ISSUED and valid for at least a month; a shorter validity is a warning (ACM renews the
/// certificates it issued when their validation still works; imported ones must be re-imported).
pub fn certificate_outcome(arn: &str, status: &str, not_after: Option<SystemTime>, now: SystemTime) -> Outcome {
    if status != "ISSUED" {
        return Outcome::Failed(format!(
            "{arn}: expected ISSUED, found {status} — complete its validation (aws acm describe-certificate \
             --certificate-arn {arn} shows the DNS record), or use an issued certificate"
        ));
    }
    let Some(not_after) = not_after else {
        return Outcome::Passed("ISSUED".into());
    };
    let left = not_after.duration_since(now).unwrap_or(Duration::ZERO);
    let days = left.as_secs() / 86_400;
    if left.is_zero() {
        Outcome::Failed(format!("{arn}: expired — renew or re-import it, or use another certificate"))
    } else if days < 30 {
        Outcome::Warning(format!("{arn}: ISSUED but expires in {days} days — make sure it is renewed"))
    } else {
        Outcome::Passed(format!("ISSUED, valid for {days} more days"))
    }
}

/// Task memory (MiB) of the template's task definitions: what ECS reserves per task.
fn task_memory(name: &str) -> u64 {
    let documents = yaml_rust2::YamlLoader::load_from_str(DEPLOY_TEMPLATE).unwrap_or_default();
    documents.first().and_then(|d| d["Resources"][name]["Properties"]["Memory"].as_str()?.parse().ok()).unwrap_or(0)
}

/// The AMI parameter resolves, and the instance type exists in the subnets' zones and holds the
/// tasks during a rolling deployment.
pub async fn capacity_rows(aws: &Aws, deploy: &Parameters, subnets: &[String]) -> Vec<Row> {
    let instance_type = deploy.value("InstanceType").to_owned();
    let (ami, offered, memory) = tokio::join!(
        ami_row(aws, deploy.value("EcsAmiId")),
        offered_row(aws, &instance_type, subnets),
        aws.ec2.describe_instance_types().instance_types(instance_type.as_str().into()).send()
    );
    let check = format!("instance type {instance_type} holds the tasks");
    let architecture_row = memory.as_ref().ok().and_then(|types| {
        let architectures = types.instance_types().first()?.processor_info()?.supported_architectures();
        let names: Vec<&str> = architectures.iter().map(|a| a.as_str()).collect();
        Some(Row::new(
            AREA,
            format!("instance type {instance_type} runs the amd64 image"),
            architecture_outcome(&names),
        ))
    });
    let memory_row = match memory {
        Ok(types) => match types.instance_types().first().and_then(|t| t.memory_info()?.size_in_mib()) {
            Some(mib) => {
                let count: u64 = deploy.value("InstanceCount").parse().unwrap_or(1);
                let app_tasks: u64 = deploy.value("AppDesiredCount").parse().unwrap_or(1);
                Row::new(
                    AREA,
                    check,
                    capacity_outcome(
                        mib as u64,
                        count,
                        app_tasks,
                        task_memory("AppTaskDefinition"),
                        task_memory("MysqlTaskDefinition"),
                    ),
                )
            }
            None => Row::new(
                AREA,
                check,
                Outcome::Failed(format!("EC2 knows no instance type {instance_type} — fix InstanceType")),
            ),
        },
        Err(error) => {
            Row::new(AREA, check, Outcome::Unknown(format!("ec2:DescribeInstanceTypes: {}", describe(&error))))
        }
    };
    [ami, offered, memory_row].into_iter().chain(architecture_row).collect()
}

/// The qa_server image is published for amd64 only: on an arm64 (Graviton) instance every start
/// fails with "exec format error".
pub fn architecture_outcome(architectures: &[&str]) -> Outcome {
    if architectures.contains(&"x86_64") {
        Outcome::Passed("x86_64, as the qa_server image (amd64 only) needs".to_owned())
    } else {
        Outcome::Failed(format!(
            "expected an x86_64 instance type, found {} (Graviton) — the qa_server image is published for amd64 only \
             and would fail with \"exec format error\"; choose an x86_64 InstanceType such as m5.large",
            architectures.join(", ")
        ))
    }
}

/// ECS registers about 90% of an instance's memory (the rest is the OS and the agent's); a
/// rolling deployment of the app (MaximumPercent 200) runs each new task beside the old one, the
/// database's (MaximumPercent 100) does not.
pub fn capacity_outcome(instance_mib: u64, instances: u64, app_tasks: u64, app_mib: u64, database_mib: u64) -> Outcome {
    let registered = instance_mib * 9 / 10;
    let needed = 2 * app_tasks * app_mib + database_mib;
    let largest = app_mib.max(database_mib);
    if registered < largest {
        return Outcome::Failed(format!(
            "expected room for a {largest} MiB task on one instance, found about {registered} MiB registered per instance — choose a larger InstanceType"
        ));
    }
    if instances * registered < needed {
        return Outcome::Failed(format!(
            "expected {needed} MiB for a rolling deployment (2 x {app_tasks} app task(s) of {app_mib} MiB + the {database_mib} MiB database), \
             found about {} MiB on {instances} instance(s) — the deployment would wait for capacity; raise InstanceCount or choose a larger InstanceType",
            instances * registered
        ));
    }
    Outcome::Passed(format!(
        "about {} MiB registered on {instances} instance(s) for {needed} MiB at a rolling deployment",
        instances * registered
    ))
}

async fn ami_row(aws: &Aws, parameter: &str) -> Row {
    let check = "ECS AMI parameter";
    let outcome = match aws.ssm.get_parameter().name(parameter).send().await {
        Ok(found) => match found.parameter().and_then(|p| p.value()) {
            Some(ami) => Outcome::Passed(format!("{parameter} resolves to {ami}")),
            None => {
                Outcome::Failed(format!("{parameter}: has no value — set EcsAmiId to an ECS-optimized AMI parameter"))
            }
        },
        Err(error) if describe(&error).contains("ParameterNotFound") => Outcome::Failed(format!(
            "{parameter}: expected AWS's public ECS-optimized AMI parameter, found none in {} — set EcsAmiId to \
             /aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
            aws.region
        )),
        Err(error) => Outcome::Unknown(format!("ssm:GetParameter: {}", describe(&error))),
    };
    Row::new(AREA, check, outcome)
}

async fn offered_row(aws: &Aws, instance_type: &str, subnets: &[String]) -> Row {
    let check = format!("instance type {instance_type} in the subnets' zones");
    let zones = match aws.ec2.describe_subnets().set_subnet_ids(Some(subnets.to_vec())).send().await {
        Ok(found) => {
            let mut zones: Vec<String> =
                found.subnets().iter().filter_map(|s| s.availability_zone()).map(str::to_owned).collect();
            zones.sort();
            zones.dedup();
            zones
        }
        Err(error) => {
            return Row::new(AREA, check, Outcome::Unknown(format!("the subnets' zones: {}", describe(&error))))
        }
    };
    let filter = |name: &str, values: Vec<String>| {
        aws_sdk_ec2::types::Filter::builder().name(name).set_values(Some(values)).build()
    };
    let offerings = aws
        .ec2
        .describe_instance_type_offerings()
        .location_type(aws_sdk_ec2::types::LocationType::AvailabilityZone)
        .filters(filter("instance-type", vec![instance_type.to_owned()]))
        .filters(filter("location", zones.clone()))
        .send()
        .await;
    let outcome = match offerings {
        Ok(found) => {
            let offered: Vec<&str> = found.instance_type_offerings().iter().filter_map(|o| o.location()).collect();
            let missing: Vec<&str> = zones.iter().map(String::as_str).filter(|z| !offered.contains(z)).collect();
            if missing.is_empty() {
                Outcome::Passed(format!("offered in {}", zones.join(", ")))
            } else {
                Outcome::Failed(format!(
                    "expected {instance_type} in every zone of the subnets, found it not offered in {} — choose another \
                     InstanceType (aws ec2 describe-instance-type-offerings --location-type availability-zone) or other subnets",
                    missing.join(", ")
                ))
            }
        }
        Err(error) => Outcome::Unknown(format!("ec2:DescribeInstanceTypeOfferings: {}", describe(&error))),
    };
    Row::new(AREA, check, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_imports_every_output_the_prerequisites_export() {
        let imported = imported_exports(DEPLOY_TEMPLATE);
        assert!(
            imported.contains(&"SubnetIds".to_owned()) && imported.contains(&"AuthoritiesAccessPointArn".to_owned())
        );
        let prerequisites = super::super::parameters::PREREQUISITES_TEMPLATE;
        for name in &imported {
            assert!(prerequisites.contains(&format!("${{AWS::StackName}}-{name}")), "{name} is not exported");
        }
    }

    #[test]
    fn the_default_instance_holds_a_rolling_deployment_of_one_app_task_and_not_of_two() {
        let (app, database) = (task_memory("AppTaskDefinition"), task_memory("MysqlTaskDefinition"));
        assert_eq!((app, database), (2560, 1536));
        // m5.large: 8 GiB.
        assert!(matches!(capacity_outcome(8192, 1, 1, app, database), Outcome::Passed(_)));
        let two = capacity_outcome(8192, 1, 2, app, database);
        assert!(matches!(&two, Outcome::Failed(why) if why.contains("raise InstanceCount")), "{two:?}");
        let small = capacity_outcome(2048, 3, 1, app, database);
        assert!(matches!(&small, Outcome::Failed(why) if why.contains("larger InstanceType")), "{small:?}");
    }

    #[test]
    fn a_graviton_instance_type_is_refused_for_the_amd64_image() {
        assert!(matches!(architecture_outcome(&["i386", "x86_64"]), Outcome::Passed(_)));
        let graviton = architecture_outcome(&["arm64"]);
        assert!(
            matches!(&graviton, Outcome::Failed(why) if why.contains("found arm64 (Graviton)") && why.contains("exec format error") && why.contains("m5.large")),
            "{graviton:?}"
        );
    }

    #[test]
    fn a_certificate_must_be_issued_and_not_about_to_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let day = Duration::from_secs(86_400);
        let arn = "arn:aws:acm:us-east-1:123456789012:certificate/x";
        assert!(
            matches!(certificate_outcome(arn, "PENDING_VALIDATION", None, now), Outcome::Failed(w) if w.contains("complete its validation"))
        );
        assert!(
            matches!(certificate_outcome(arn, "ISSUED", Some(now - day), now), Outcome::Failed(w) if w.contains("expired"))
        );
        assert!(
            matches!(certificate_outcome(arn, "ISSUED", Some(now + day * 10), now), Outcome::Warning(w) if w.contains("10 days"))
        );
        assert!(matches!(certificate_outcome(arn, "ISSUED", Some(now + day * 200), now), Outcome::Passed(_)));
    }

    #[test]
    fn a_rolled_back_stack_must_be_deleted_and_says_how() {
        let state = Ok(Some(StackState { status: "ROLLBACK_COMPLETE".into(), ..StackState::default() }));
        let row = stack_row("lookup-service", &state, "deploy");
        assert!(
            matches!(&row.outcome, Outcome::Failed(w) if w.contains("delete-stack --stack-name lookup-service")),
            "{row:?}"
        );
        let updating = Ok(Some(StackState { status: "UPDATE_COMPLETE".into(), ..StackState::default() }));
        assert!(matches!(stack_row("s", &updating, "deploy").outcome, Outcome::Passed(_)));
        assert!(matches!(stack_row("s", &Ok(None), "deploy").outcome, Outcome::Passed(_)));
    }
}
