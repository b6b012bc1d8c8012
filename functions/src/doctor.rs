//! `qa-deploy doctor`: what would make a create-stack fail, found from a terminal in seconds
//! rather than by a 20-45 minute create-and-rollback on AWS. It reads the parameter files that
//! `create-stack --parameters` reads, asks the account, and reports one row per check. It writes
//! nothing to the account and never prints a value from the env file.

pub mod account;
pub mod inputs;
pub mod network;
pub mod parameters;

use std::collections::BTreeMap;

pub use parameters::Parameters;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed(String),
    /// Works today, but deserves a decision.
    Warning(String),
    Failed(String),
    /// Could not be determined; says why.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub area: &'static str,
    pub check: String,
    pub outcome: Outcome,
}

impl Row {
    pub fn new(area: &'static str, check: impl Into<String>, outcome: Outcome) -> Row {
        Row { area, check: check.into(), outcome }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.rows.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).count()
    }

    /// One row per check, grouped by area: ✓ passed, ! warning, ✗ failed, ? not determined.
    pub fn render(&self) -> String {
        let width = self.rows.iter().map(|r| r.area.len()).max().unwrap_or(0);
        let mut text = String::new();
        for row in &self.rows {
            let (mark, detail) = match &row.outcome {
                Outcome::Passed(detail) => ('✓', detail),
                Outcome::Warning(detail) => ('!', detail),
                Outcome::Failed(detail) => ('✗', detail),
                Outcome::Unknown(detail) => ('?', detail),
            };
            text.push_str(&format!("{mark} {:<width$}  {}: {detail}\n", row.area, row.check));
        }
        let count = |wanted: fn(&Outcome) -> bool| self.rows.iter().filter(|r| wanted(&r.outcome)).count();
        let warnings = count(|o| matches!(o, Outcome::Warning(_)));
        let unknown = count(|o| matches!(o, Outcome::Unknown(_)));
        text.push_str(&match self.failed() {
            0 => format!(
                "no problem found ({} checks; {warnings} warning(s), {unknown} not determined): create-stack may go ahead\n",
                self.rows.len()
            ),
            n => format!("{n} problem(s) to fix before create-stack ({} checks)\n", self.rows.len()),
        });
        text
    }
}

/// What to examine: the prerequisites stack always; the service stack when its file is given.
pub struct Request {
    pub prerequisites: Parameters,
    pub deploy: Option<Parameters>,
    pub prerequisites_stack: String,
    pub service_stack: String,
}

/// A stack as it stands, when it exists.
#[derive(Debug, Clone, Default)]
pub struct StackState {
    pub status: String,
    pub outputs: BTreeMap<String, String>,
}

/// Runs every check concurrently.
pub async fn run(config: &aws_config::SdkConfig, request: &Request) -> Report {
    let aws = account::Aws::new(config);
    let (prerequisites_stack, service_stack) =
        tokio::join!(aws.stack(&request.prerequisites_stack), aws.stack(&request.service_stack));
    let prerequisites = &request.prerequisites;
    let mut rows = prerequisites.rows(&request.prerequisites_stack);
    if let Some(deploy) = &request.deploy {
        rows.extend(deploy.rows(&request.service_stack));
    }
    // The prerequisites stack's outputs win over its parameter file: they are what the service imports.
    let from_stack = |key: &str| match &prerequisites_stack {
        Ok(Some(stack)) => stack.outputs.get(key).cloned(),
        _ => None,
    };
    let vpc = from_stack("VpcId").unwrap_or_else(|| prerequisites.value("AWSVpcId").to_owned());
    let subnets = from_stack("SubnetIds")
        .map(|ids| ids.split(',').map(str::to_owned).collect())
        .unwrap_or_else(|| prerequisites.list("SubnetIds"));
    let bucket = from_stack("BucketName").unwrap_or_else(|| prerequisites.value("S3BucketName").to_owned());

    let network_request = network::NetworkRequest {
        vpc: vpc.clone(),
        subnets: subnets.clone(),
        deploy: request.deploy.as_ref().map(|deploy| network::DeployNetwork {
            load_balancer_subnets: deploy.list("LoadBalancerSubnetIds"),
            s3_endpoint_route_tables: deploy.list("S3EndpointRouteTableIds"),
        }),
    };
    let stack_rows = async {
        let mut rows =
            vec![account::stack_row(&request.prerequisites_stack, &prerequisites_stack, "deploy-prerequisites")];
        rows.push(account::bucket_row(&aws, prerequisites.value("S3BucketName"), &prerequisites_stack).await);
        if request.deploy.is_some() {
            rows.push(account::stack_row(&request.service_stack, &service_stack, "deploy"));
        }
        rows
    };
    let deploy_rows = async {
        let Some(deploy) = &request.deploy else {
            return Vec::new();
        };
        let exports = account::exports_row(&aws, &request.prerequisites_stack, &prerequisites_stack);
        let bucket_exists = !matches!(prerequisites_stack, Ok(None));
        let inputs = inputs::rows(
            config,
            &aws,
            deploy,
            bucket_exists.then_some(bucket.as_str()),
            &request.service_stack,
            &service_stack,
        );
        let capacity = account::capacity_rows(&aws, deploy, &subnets);
        let certificate = account::certificate_row(&aws, deploy.value("CertificateArn"));
        let (exports, inputs, capacity, certificate) = tokio::join!(exports, inputs, capacity, certificate);
        let mut rows = vec![exports, certificate];
        rows.extend(capacity);
        rows.extend(inputs);
        rows.extend(inputs::image_rows(deploy));
        rows
    };
    let (network_rows, stack_rows, deploy_rows) =
        tokio::join!(network::rows(&aws.ec2, &network_request), stack_rows, deploy_rows);
    rows.extend(network_rows);
    rows.extend(stack_rows);
    rows.extend(deploy_rows);
    Report { rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_says_what_to_do_and_counts_only_failures_as_problems() {
        let report = Report {
            rows: vec![
                Row::new("Network", "VPC vpc-1", Outcome::Passed("DNS on".into())),
                Row::new("Images", "MysqlImage", Outcome::Warning("floats".into())),
                Row::new("Account", "instance type", Outcome::Unknown("not answered".into())),
            ],
        };
        assert_eq!(report.failed(), 0);
        let text = report.render();
        assert!(text.contains("✓ Network  VPC vpc-1: DNS on"), "{text}");
        assert!(text.contains("! Images   MysqlImage: floats"), "{text}");
        assert!(
            text.ends_with("no problem found (3 checks; 1 warning(s), 1 not determined): create-stack may go ahead\n")
        );
        let failing = Report { rows: vec![Row::new("Account", "certificate", Outcome::Failed("not found".into()))] };
        assert_eq!(failing.failed(), 1);
        assert!(failing.render().contains("✗ Account  certificate: not found"));
    }
}
