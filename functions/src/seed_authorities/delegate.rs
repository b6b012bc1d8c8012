//! The seed as CloudFormation sees it: answered by the function outside the VPC, run in the
//! seeding function inside it. Lambda gives an in-VPC function no public IP, so it reaches S3
//! (the authority files, and CloudFormation's response URL) only through an S3 gateway endpoint
//! or a NAT gateway (AWS::CloudFormation::CustomResource reference; crhelper #34, #40); without
//! one, a seed answered from inside the VPC waits out its ServiceTimeout, and the rollback's
//! Delete waits again. Here the outside function first reads the seeding function's subnets'
//! route tables and fails in seconds, naming them and the fix, when none reaches S3; then it
//! runs the seed in the seeding function with a deadline, and answers CloudFormation whatever
//! happens. The seeding function needs S3 only for the objects.

use std::future::Future;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde_json::Value;

use crate::authorities_reload::{EcsTasks, Target, TaskDirectory};
use crate::aws::describe;

/// One route table serving some of the seeding function's subnets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    pub id: String,
    /// The seeding function's subnets it serves.
    pub subnets: Vec<String>,
    /// The VPC's main route table, serving subnets without a table of their own.
    pub main: bool,
    /// How it reaches S3, e.g. "S3 gateway endpoint vpce-…" or "NAT gateway nat-…"; `None`: it does not.
    pub s3_route: Option<String>,
}

/// The AWS calls the delegation makes, behind a trait so that its logic is tested without AWS.
pub trait SeedWorker: Send + Sync + 'static {
    /// The subnets of the seeding function's VpcConfig.
    fn subnets(&self, function: &str) -> impl Future<Output = Result<Vec<String>, String>> + Send;

    /// The route tables that serve `subnets`, each with how it reaches S3.
    fn route_tables(&self, subnets: &[String]) -> impl Future<Output = Result<Vec<RouteTable>, String>> + Send;

    /// True while the stack rolls an update back: the seed then restores the old set, and a task
    /// that does not take it is reported rather than failing the rollback too.
    fn rolling_back(&self, stack_id: &str) -> impl Future<Output = Result<bool, String>> + Send;

    /// The running tasks of `service` to reload after the seed.
    fn running_tasks(&self, cluster: &str, service: &str) -> impl Future<Output = Result<Vec<Target>, String>> + Send;

    /// Runs `event` in `function` and returns what it returned, within `within`.
    fn run(&self, function: &str, event: Value, within: Duration)
        -> impl Future<Output = Result<Value, String>> + Send;
}

/// Why the seeding function cannot reach S3, with the fix; `None` when every subnet's route table
/// has a route to S3.
pub fn unreachable(tables: &[RouteTable]) -> Option<String> {
    let missing: Vec<&RouteTable> = tables.iter().filter(|table| table.s3_route.is_none()).collect();
    if missing.is_empty() {
        return None;
    }
    let described = describe_tables(&missing);
    let ids: Vec<&str> = missing.iter().map(|table| table.id.as_str()).collect();
    Some(format!(
        "the seeding function cannot reach S3 from its subnets: route table {} has no S3 gateway endpoint \
         and no 0.0.0.0/0 route to a NAT gateway (Lambda gives a function in a VPC no public IP, so an \
         internet gateway does not serve it). Nothing was written. Fix: set the parameter \
         S3EndpointRouteTableIds to {} and update the stack (it creates the S3 gateway endpoint), or \
         route the subnets through a NAT gateway",
        described,
        ids.join(",")
    ))
}

/// "rtb-… (subnets …, the VPC's main route table), …": route tables as a person finds them.
pub fn describe_tables(tables: &[&RouteTable]) -> String {
    let described: Vec<String> = tables
        .iter()
        .map(|table| {
            let main = if table.main { ", the VPC's main route table" } else { "" };
            format!("{} (subnets {}{main})", table.id, table.subnets.join(", "))
        })
        .collect();
    described.join(", ")
}

/// How a route reaches S3, if it does.
pub fn s3_route(route: &aws_sdk_ec2::types::Route, s3_prefix_list: Option<&str>) -> Option<String> {
    if route.state().is_some_and(|state| state.as_str() != "active") {
        return None;
    }
    let gateway = route.gateway_id().unwrap_or_default();
    if route.destination_prefix_list_id().is_some_and(|pl| Some(pl) == s3_prefix_list) && gateway.starts_with("vpce-") {
        return Some(format!("S3 gateway endpoint {gateway}"));
    }
    if route.destination_cidr_block() != Some("0.0.0.0/0") {
        return None;
    }
    if let Some(nat) = route.nat_gateway_id() {
        return Some(format!("NAT gateway {nat}"));
    }
    if let Some(instance) = route.instance_id().or(route.network_interface_id()) {
        return Some(format!("NAT instance {instance}"));
    }
    route.transit_gateway_id().map(|tgw| format!("transit gateway {tgw} (assumed to lead to NAT)"))
}

/// The seeding function's AWS calls: Lambda for its configuration and the run, EC2 for routes.
pub struct AwsWorker {
    lambda: aws_sdk_lambda::Client,
    ec2: aws_sdk_ec2::Client,
    tasks: EcsTasks,
    cloudformation: aws_sdk_cloudformation::Client,
    region: String,
}

impl AwsWorker {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        AwsWorker {
            lambda: aws_sdk_lambda::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            tasks: EcsTasks::new(config),
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
        }
    }
}

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder().name(name).set_values(Some(values.iter().map(|v| v.to_string()).collect())).build()
}

impl SeedWorker for AwsWorker {
    async fn subnets(&self, function: &str) -> Result<Vec<String>, String> {
        let configuration = self
            .lambda
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
            .map_err(|e| format!("lambda:GetFunctionConfiguration of {function}: {}", describe(&e)))?;
        let subnets = configuration.vpc_config().map(|vpc| vpc.subnet_ids().to_vec()).unwrap_or_default();
        if subnets.is_empty() {
            return Err(format!("the seeding function {function} has no subnets: it must run in the VPC"));
        }
        Ok(subnets)
    }

    async fn route_tables(&self, subnets: &[String]) -> Result<Vec<RouteTable>, String> {
        let described = self
            .ec2
            .describe_subnets()
            .set_subnet_ids(Some(subnets.to_vec()))
            .send()
            .await
            .map_err(|e| format!("ec2:DescribeSubnets: {}", describe(&e)))?;
        let vpc = described.subnets().iter().find_map(|s| s.vpc_id()).unwrap_or_default().to_owned();
        let s3_name = format!("com.amazonaws.{}.s3", self.region);
        let prefix_lists = self
            .ec2
            .describe_prefix_lists()
            .filters(filter("prefix-list-name", &[&s3_name]))
            .send()
            .await
            .map_err(|e| format!("ec2:DescribePrefixLists: {}", describe(&e)))?;
        let s3_prefix_list = prefix_lists.prefix_lists().iter().find_map(|pl| pl.prefix_list_id()).map(str::to_owned);
        let tables = self
            .ec2
            .describe_route_tables()
            .filters(filter("vpc-id", &[&vpc]))
            .send()
            .await
            .map_err(|e| format!("ec2:DescribeRouteTables: {}", describe(&e)))?;
        let mut found: Vec<RouteTable> = Vec::new();
        for subnet in subnets {
            let own = tables
                .route_tables()
                .iter()
                .find(|table| table.associations().iter().any(|a| a.subnet_id() == Some(subnet.as_str())));
            let table = own.or_else(|| {
                tables.route_tables().iter().find(|t| t.associations().iter().any(|a| a.main() == Some(true)))
            });
            let Some(table) = table else {
                return Err(format!("no route table serves subnet {subnet} in {vpc}"));
            };
            let id = table.route_table_id().unwrap_or_default().to_owned();
            match found.iter_mut().find(|known| known.id == id) {
                Some(known) => known.subnets.push(subnet.clone()),
                None => found.push(RouteTable {
                    id,
                    subnets: vec![subnet.clone()],
                    main: own.is_none(),
                    s3_route: table.routes().iter().find_map(|route| s3_route(route, s3_prefix_list.as_deref())),
                }),
            }
        }
        Ok(found)
    }

    async fn rolling_back(&self, stack_id: &str) -> Result<bool, String> {
        let described = self
            .cloudformation
            .describe_stacks()
            .stack_name(stack_id)
            .send()
            .await
            .map_err(|e| format!("cloudformation:DescribeStacks: {}", describe(&e)))?;
        let status = described.stacks().first().and_then(|s| s.stack_status()).map(|s| s.as_str().to_owned());
        Ok(status.is_some_and(|s| s.ends_with("ROLLBACK_IN_PROGRESS")))
    }

    async fn running_tasks(&self, cluster: &str, service: &str) -> Result<Vec<Target>, String> {
        self.tasks.running_tasks(cluster, service).await
    }

    async fn run(&self, function: &str, event: Value, within: Duration) -> Result<Value, String> {
        let payload = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
        let invoked = tokio::time::timeout(
            within,
            self.lambda
                .invoke()
                .function_name(function)
                .invocation_type(InvocationType::RequestResponse)
                .payload(Blob::new(payload))
                .send(),
        )
        .await
        .map_err(|_| {
            format!(
                "did not finish within {} s: see its log for how far it got (a seeding function that cannot \
                 reach S3 hangs on its first request)",
                within.as_secs()
            )
        })?
        .map_err(|e| format!("could not be invoked: {}", describe(&e)))?;
        let returned = invoked.payload().map(|p| p.as_ref().to_vec()).unwrap_or_default();
        if let Some(error) = invoked.function_error() {
            return Err(format!(
                "failed ({error}): {}",
                String::from_utf8_lossy(&returned).chars().take(500).collect::<String>()
            ));
        }
        serde_json::from_slice(&returned).map_err(|e| format!("returned no JSON answer ({e})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(id: &str, subnets: &[&str], main: bool, route: Option<&str>) -> RouteTable {
        RouteTable {
            id: id.into(),
            subnets: subnets.iter().map(|s| s.to_string()).collect(),
            main,
            s3_route: route.map(str::to_owned),
        }
    }

    #[test]
    fn every_route_table_with_a_route_to_s3_passes() {
        let tables = [
            table("rtb-1", &["subnet-a"], false, Some("S3 gateway endpoint vpce-1")),
            table("rtb-2", &["subnet-b"], true, Some("NAT gateway nat-1")),
        ];
        assert_eq!(unreachable(&tables), None);
    }

    #[test]
    fn public_subnets_of_the_default_vpc_name_the_main_route_table_and_the_parameter_that_fixes_them() {
        let reason = unreachable(&[table("rtb-0abc", &["subnet-a", "subnet-b"], true, None)]).unwrap();
        assert!(reason.contains("rtb-0abc (subnets subnet-a, subnet-b, the VPC's main route table)"), "{reason}");
        assert!(reason.contains("set the parameter S3EndpointRouteTableIds to rtb-0abc"), "{reason}");
        assert!(reason.contains("no public IP"), "{reason}");
    }

    #[test]
    fn routes_that_serve_s3_and_routes_that_do_not() {
        use aws_sdk_ec2::types::{Route, RouteState};
        let endpoint = Route::builder().destination_prefix_list_id("pl-63a5400a").gateway_id("vpce-1").build();
        assert_eq!(s3_route(&endpoint, Some("pl-63a5400a")).as_deref(), Some("S3 gateway endpoint vpce-1"));
        assert_eq!(s3_route(&endpoint, Some("pl-dynamodb")), None, "another service's endpoint");
        let nat = Route::builder().destination_cidr_block("0.0.0.0/0").nat_gateway_id("nat-1").build();
        assert_eq!(s3_route(&nat, None).as_deref(), Some("NAT gateway nat-1"));
        let internet = Route::builder().destination_cidr_block("0.0.0.0/0").gateway_id("igw-1").build();
        assert_eq!(s3_route(&internet, None), None, "no public IP for a Lambda function");
        let blackhole = Route::builder()
            .destination_cidr_block("0.0.0.0/0")
            .nat_gateway_id("nat-1")
            .state(RouteState::Blackhole)
            .build();
        assert_eq!(s3_route(&blackhole, None), None);
    }
}
