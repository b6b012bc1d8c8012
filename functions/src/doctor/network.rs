//! The network the stacks are given: read with EC2's Describe calls, judged by the rules the
//! stacks depend on (each with its source), so that a wrong subnet or a missing route is found
//! here and not after a create that waits out its health checks.

use aws_sdk_ec2::types::{Filter, Route, VpcAttributeName};

use super::{Outcome, Row};
use crate::aws::describe;
use crate::seed_authorities::delegate::{describe_tables, s3_route, RouteTable};

const AREA: &str = "Network";

pub struct NetworkRequest {
    pub vpc: String,
    /// The instances', EFS mount targets' and seeding function's subnets.
    pub subnets: Vec<String>,
    pub deploy: Option<DeployNetwork>,
}

pub struct DeployNetwork {
    /// Empty: the instances' subnets.
    pub load_balancer_subnets: Vec<String>,
    /// The route tables the service stack gives an S3 gateway endpoint.
    pub s3_endpoint_route_tables: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Vpc {
    pub id: String,
    pub dns_support: bool,
    pub dns_hostnames: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Subnet {
    pub id: String,
    pub vpc: String,
    pub zone: String,
    pub public_ip_on_launch: bool,
}

/// A route table as far as these checks care.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub id: String,
    pub main: bool,
    pub subnets: Vec<String>,
    /// `igw-…` of an active 0.0.0.0/0 route to an internet gateway.
    pub internet_gateway: Option<String>,
    /// An active 0.0.0.0/0 route to a NAT gateway or instance, described.
    pub nat: Option<String>,
    /// How it reaches S3, if it does (see `delegate::s3_route`).
    pub s3: Option<String>,
}

/// What EC2 said; `Err` holds why it could not be asked.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub vpc: Option<Vpc>,
    pub subnets: Vec<Subnet>,
    pub tables: Vec<Table>,
}

impl Facts {
    fn subnet(&self, id: &str) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.id == id)
    }

    /// The table serving `subnet`: its own association, else the VPC's main table.
    fn table_of(&self, subnet: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.subnets.iter().any(|s| s == subnet))
            .or_else(|| self.tables.iter().find(|t| t.main))
    }
}

pub async fn rows(ec2: &aws_sdk_ec2::Client, request: &NetworkRequest) -> Vec<Row> {
    match fetch(ec2, request).await {
        Ok(facts) => judge(&facts, request),
        Err(why) => vec![Row::new(AREA, format!("VPC {}", request.vpc), Outcome::Unknown(why))],
    }
}

fn filter(name: &str, values: &[String]) -> Filter {
    Filter::builder().name(name).set_values(Some(values.to_vec())).build()
}

fn is_not_found(error: &str) -> bool {
    error.contains("NotFound") || error.contains("Malformed")
}

async fn fetch(ec2: &aws_sdk_ec2::Client, request: &NetworkRequest) -> Result<Facts, String> {
    let mut facts = Facts::default();
    let vpc = &request.vpc;
    match ec2.describe_vpcs().vpc_ids(vpc).send().await {
        Ok(found) if !found.vpcs().is_empty() => {
            let attribute = |name: VpcAttributeName| ec2.describe_vpc_attribute().vpc_id(vpc).attribute(name).send();
            let (support, hostnames) = tokio::join!(
                attribute(VpcAttributeName::EnableDnsSupport),
                attribute(VpcAttributeName::EnableDnsHostnames)
            );
            let support = support.map_err(|e| format!("ec2:DescribeVpcAttribute: {}", describe(&e)))?;
            let hostnames = hostnames.map_err(|e| format!("ec2:DescribeVpcAttribute: {}", describe(&e)))?;
            facts.vpc = Some(Vpc {
                id: vpc.clone(),
                dns_support: support.enable_dns_support().and_then(|a| a.value()).unwrap_or(false),
                dns_hostnames: hostnames.enable_dns_hostnames().and_then(|a| a.value()).unwrap_or(false),
            });
        }
        Ok(_) => {}
        Err(error) => {
            let error = describe(&error);
            if !is_not_found(&error) {
                return Err(format!("ec2:DescribeVpcs: {error}"));
            }
        }
    }
    let mut wanted: Vec<String> = request.subnets.clone();
    if let Some(deploy) = &request.deploy {
        wanted.extend(deploy.load_balancer_subnets.iter().cloned());
    }
    wanted.sort();
    wanted.dedup();
    // One call per subnet: a batch fails whole on one unknown id.
    let described =
        futures::future::join_all(wanted.iter().map(|id| ec2.describe_subnets().subnet_ids(id).send())).await;
    for (id, answer) in wanted.iter().zip(described) {
        match answer {
            Ok(found) => facts.subnets.extend(found.subnets().iter().map(|s| Subnet {
                id: s.subnet_id().unwrap_or(id).to_owned(),
                vpc: s.vpc_id().unwrap_or_default().to_owned(),
                zone: s.availability_zone().unwrap_or_default().to_owned(),
                public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
            })),
            Err(error) => {
                let error = describe(&error);
                if !is_not_found(&error) {
                    return Err(format!("ec2:DescribeSubnets: {error}"));
                }
            }
        }
    }
    if facts.vpc.is_none() {
        return Ok(facts);
    }
    let region = ec2.config().region().map(|r| r.to_string()).unwrap_or_default();
    let (prefix_lists, tables) = tokio::join!(
        ec2.describe_prefix_lists().filters(filter("prefix-list-name", &[format!("com.amazonaws.{region}.s3")])).send(),
        ec2.describe_route_tables().filters(filter("vpc-id", std::slice::from_ref(vpc))).send()
    );
    let prefix_lists = prefix_lists.map_err(|e| format!("ec2:DescribePrefixLists: {}", describe(&e)))?;
    let s3_prefix_list = prefix_lists.prefix_lists().iter().find_map(|pl| pl.prefix_list_id()).map(str::to_owned);
    let tables = tables.map_err(|e| format!("ec2:DescribeRouteTables: {}", describe(&e)))?;
    let default_route = |route: &&Route| {
        route.destination_cidr_block() == Some("0.0.0.0/0") && route.state().is_none_or(|s| s.as_str() == "active")
    };
    facts.tables = tables
        .route_tables()
        .iter()
        .map(|table| {
            let routes = table.routes();
            Table {
                id: table.route_table_id().unwrap_or_default().to_owned(),
                main: table.associations().iter().any(|a| a.main() == Some(true)),
                subnets: table.associations().iter().filter_map(|a| a.subnet_id()).map(str::to_owned).collect(),
                internet_gateway: routes
                    .iter()
                    .filter(default_route)
                    .find_map(|r| r.gateway_id().filter(|g| g.starts_with("igw-")))
                    .map(str::to_owned),
                nat: routes.iter().filter(default_route).find_map(|r| {
                    r.nat_gateway_id()
                        .map(|nat| format!("NAT gateway {nat}"))
                        .or_else(|| r.instance_id().map(|i| format!("NAT instance {i}")))
                }),
                s3: routes.iter().find_map(|r| s3_route(r, s3_prefix_list.as_deref())),
            }
        })
        .collect();
    Ok(facts)
}

/// The rows, from what EC2 said.
pub fn judge(facts: &Facts, request: &NetworkRequest) -> Vec<Row> {
    let vpc_check = format!("VPC {}", request.vpc);
    let Some(vpc) = &facts.vpc else {
        return vec![Row::new(
            AREA,
            vpc_check,
            Outcome::Failed(
                "expected an existing VPC, found none with this id in this region — set AWSVpcId to your VPC's id \
                 (aws ec2 describe-vpcs --query 'Vpcs[].[VpcId,CidrBlock]')"
                    .into(),
            ),
        )];
    };
    let mut rows = vec![dns_row(vpc, vpc_check)];
    let subnets_check = format!("subnets {}", request.subnets.join(", "));
    match subnet_problem(facts, &request.subnets, &vpc.id) {
        Some(problem) => rows.push(Row::new(AREA, subnets_check, Outcome::Failed(problem))),
        // The prerequisites template puts one EFS mount target in each of exactly two subnets;
        // an instance in a third subnet's zone would find no mount target to mount.
        None if request.subnets.len() != 2 => rows.push(Row::new(
            AREA,
            subnets_check,
            Outcome::Failed(format!(
                "expected exactly two subnets (the prerequisites stack mounts EFS in two), found {} — set SubnetIds \
                 to two subnets in different Availability Zones",
                request.subnets.len()
            )),
        )),
        None => {
            rows.push(zones_row(facts, &request.subnets, subnets_check, "SubnetIds"));
            rows.push(instances_internet_row(facts, &request.subnets));
        }
    }
    let Some(deploy) = &request.deploy else {
        return rows;
    };
    let (lb_subnets, lb_parameter) = if deploy.load_balancer_subnets.is_empty() {
        (&request.subnets, "SubnetIds (LoadBalancerSubnetIds is empty)")
    } else {
        (&deploy.load_balancer_subnets, "LoadBalancerSubnetIds")
    };
    let lb_check = format!("load balancer subnets {}", lb_subnets.join(", "));
    match subnet_problem(facts, lb_subnets, &vpc.id) {
        Some(problem) => rows.push(Row::new(AREA, lb_check, Outcome::Failed(problem))),
        None => {
            rows.push(zones_row(facts, lb_subnets, lb_check.clone(), lb_parameter));
            rows.push(load_balancer_public_row(facts, lb_subnets, lb_check));
        }
    }
    if subnet_problem(facts, &request.subnets, &vpc.id).is_none() {
        rows.push(seed_reaches_s3_row(facts, &request.subnets, &deploy.s3_endpoint_route_tables));
    }
    rows
}

// The EFS mount helper mounts by DNS name, which needs both (REFERENCE "AWS behaviour";
// EFS user guide, "Mounting with an IP address": DNS names do not work with DNS hostnames off).
fn dns_row(vpc: &Vpc, check: String) -> Row {
    let off: Vec<(&str, &str)> = [
        (!vpc.dns_support, ("DNS resolution", "--enable-dns-support")),
        (!vpc.dns_hostnames, ("DNS hostnames", "--enable-dns-hostnames")),
    ]
    .into_iter()
    .filter_map(|(off, what)| off.then_some(what))
    .collect();
    if off.is_empty() {
        return Row::new(AREA, check, Outcome::Passed("DNS resolution and DNS hostnames on".into()));
    }
    let names: Vec<&str> = off.iter().map(|(name, _)| *name).collect();
    let fixes: Vec<String> = off
        .iter()
        .map(|(_, flag)| format!("aws ec2 modify-vpc-attribute --vpc-id {} {flag} '{{\"Value\":true}}'", vpc.id))
        .collect();
    Row::new(
        AREA,
        check,
        Outcome::Failed(format!(
            "expected DNS resolution and DNS hostnames on (the tasks mount EFS by its DNS name), found {} off — {}",
            names.join(" and "),
            fixes.join("; ")
        )),
    )
}

fn subnet_problem(facts: &Facts, subnets: &[String], vpc: &str) -> Option<String> {
    let missing: Vec<&str> = subnets.iter().filter(|s| facts.subnet(s).is_none()).map(String::as_str).collect();
    if !missing.is_empty() {
        return Some(format!(
            "expected existing subnets, found no subnet {} in this region — use ids from aws ec2 describe-subnets \
             --filters Name=vpc-id,Values={vpc} --query 'Subnets[].[SubnetId,AvailabilityZone]'",
            missing.join(", ")
        ));
    }
    let elsewhere: Vec<String> = subnets
        .iter()
        .filter_map(|s| facts.subnet(s))
        .filter(|s| s.vpc != vpc)
        .map(|s| format!("{} (in {})", s.id, s.vpc))
        .collect();
    (!elsewhere.is_empty()).then(|| {
        format!(
            "expected subnets of {vpc}, found {} — choose subnets of {vpc}, or set AWSVpcId to theirs",
            elsewhere.join(", ")
        )
    })
}

// An Application Load Balancer needs subnets in at least two Availability Zones (ELBv2
// CreateLoadBalancer, Subnets); EFS gets one mount target per subnet, one per zone.
fn zones_row(facts: &Facts, subnets: &[String], check: String, parameter: &str) -> Row {
    let mut zones: Vec<&str> = subnets.iter().filter_map(|s| facts.subnet(s)).map(|s| s.zone.as_str()).collect();
    let named: Vec<String> =
        subnets.iter().filter_map(|s| facts.subnet(s)).map(|s| format!("{} in {}", s.id, s.zone)).collect();
    zones.sort();
    zones.dedup();
    if zones.len() >= 2 {
        return Row::new(
            AREA,
            check,
            Outcome::Passed(format!("in {} different zones ({})", zones.len(), named.join(", "))),
        );
    }
    Row::new(
        AREA,
        check,
        Outcome::Failed(format!(
            "expected two subnets in different Availability Zones (the load balancer needs two zones, EFS one mount \
             target per zone), found {} — set {parameter} to subnets in two zones",
            named.join(", ")
        )),
    )
}

// Container instances reach the ECS endpoint and pull images over the internet: through a public
// IP and an internet gateway, or through NAT (ECS developer guide, "Container instance networking").
fn instances_internet_row(facts: &Facts, subnets: &[String]) -> Row {
    let check = "container instances reach ECS and the image registries";
    let mut problems = Vec::new();
    let mut ways = Vec::new();
    for subnet in subnets.iter().filter_map(|s| facts.subnet(s)) {
        let Some(table) = facts.table_of(&subnet.id) else {
            problems.push(format!("{}: no route table serves it", subnet.id));
            continue;
        };
        match (&table.nat, &table.internet_gateway, subnet.public_ip_on_launch) {
            (Some(nat), _, _) => ways.push(format!("{} via {nat}", subnet.id)),
            (None, Some(igw), true) => ways.push(format!("{} via {igw} with public IPs", subnet.id)),
            (None, Some(igw), false) => problems.push(format!(
                "{}: its route table {} leads to {igw} but the subnet gives instances no public IP — \
                 aws ec2 modify-subnet-attribute --subnet-id {} --map-public-ip-on-launch",
                subnet.id, table.id, subnet.id
            )),
            (None, None, _) => problems.push(format!(
                "{}: its route table {} has no 0.0.0.0/0 route to an internet gateway or a NAT gateway — add one, \
                 or choose subnets that have it",
                subnet.id, table.id
            )),
        }
    }
    if problems.is_empty() {
        Row::new(AREA, check, Outcome::Passed(ways.join(", ")))
    } else {
        Row::new(
            AREA,
            check,
            Outcome::Failed(format!(
                "expected a way to the internet from every instance subnet (tasks never start otherwise), found {}",
                problems.join("; ")
            )),
        )
    }
}

// An internet-facing load balancer needs public subnets (ELBv2 CreateLoadBalancer; REFERENCE).
fn load_balancer_public_row(facts: &Facts, subnets: &[String], check: String) -> Row {
    let private: Vec<String> = subnets
        .iter()
        .filter(|s| facts.table_of(s).and_then(|t| t.internet_gateway.as_ref()).is_none())
        .map(|s| {
            let table = facts.table_of(s).map(|t| t.id.as_str()).unwrap_or("none");
            format!("{s} (route table {table})")
        })
        .collect();
    if private.is_empty() {
        return Row::new(AREA, check, Outcome::Passed("public: each has a route to an internet gateway".into()));
    }
    Row::new(
        AREA,
        check,
        Outcome::Failed(format!(
            "expected public subnets for the internet-facing load balancer, found no route to an internet gateway from {} \
             — set LoadBalancerSubnetIds to two public subnets in different zones",
            private.join(", ")
        )),
    )
}

// The seeding function has no public IP (Lambda in a VPC): S3 only through an S3 gateway
// endpoint or NAT (AWS::CloudFormation::CustomResource reference; crhelper #34, #40). A route
// table carries a service's prefix-list route from one endpoint only, so a second S3 endpoint on
// it fails (AWS MDAA docs, S3ImageLayerEndpointProps.external).
fn seed_reaches_s3_row(facts: &Facts, subnets: &[String], endpoint_tables: &[String]) -> Row {
    let check = "the seeding function reaches S3";
    let mut tables: Vec<RouteTable> = Vec::new();
    for subnet in subnets {
        let Some(table) = facts.table_of(subnet) else { continue };
        match tables.iter_mut().find(|t| t.id == table.id) {
            Some(known) => known.subnets.push(subnet.clone()),
            None => tables.push(RouteTable {
                id: table.id.clone(),
                subnets: vec![subnet.clone()],
                main: !table.subnets.contains(subnet),
                s3_route: table.s3.clone().or_else(|| table.nat.clone()),
            }),
        }
    }
    let unknown: Vec<&String> =
        endpoint_tables.iter().filter(|id| !facts.tables.iter().any(|t| &t.id == *id)).collect();
    if !unknown.is_empty() {
        return Row::new(
            AREA,
            check,
            Outcome::Failed(format!(
                "S3EndpointRouteTableIds names {}, not a route table of the VPC — set it to {} (the subnets' route tables)",
                unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                tables.iter().map(|t| t.id.as_str()).collect::<Vec<_>>().join(",")
            )),
        );
    }
    let doubled: Vec<String> = endpoint_tables
        .iter()
        .filter_map(|id| facts.tables.iter().find(|t| &t.id == id))
        .filter_map(|t| {
            t.s3.as_ref().filter(|s3| s3.starts_with("S3 gateway endpoint")).map(|s3| format!("{} has {s3}", t.id))
        })
        .collect();
    if !doubled.is_empty() {
        return Row::new(
            AREA,
            check,
            Outcome::Failed(format!(
                "S3EndpointRouteTableIds asks for a new S3 gateway endpoint on route tables that already have one ({}), \
                 which EC2 refuses — leave S3EndpointRouteTableIds empty",
                doubled.join(", ")
            )),
        );
    }
    let missing: Vec<&RouteTable> =
        tables.iter().filter(|t| t.s3_route.is_none() && !endpoint_tables.contains(&t.id)).collect();
    if missing.is_empty() {
        let ways: Vec<String> = tables
            .iter()
            .map(|t| match &t.s3_route {
                Some(way) => format!("{} via {way}", t.id),
                None => format!("{} via the S3 endpoint the stack creates", t.id),
            })
            .collect();
        return Row::new(AREA, check, Outcome::Passed(ways.join(", ")));
    }
    let described = describe_tables(&missing);
    let all: Vec<&str> = tables.iter().filter(|t| t.s3_route.is_none()).map(|t| t.id.as_str()).collect();
    Row::new(
        AREA,
        check,
        Outcome::Failed(format!(
            "expected an S3 gateway endpoint or a NAT route (Lambda gives a function in a VPC no public IP), found none on \
             route table {} — set S3EndpointRouteTableIds to {} in the deploy parameters (the stack creates the endpoint), \
             or route the subnets through a NAT gateway",
            described,
            all.join(",")
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(id: &str, zone: &str, public_ip: bool) -> Subnet {
        Subnet { id: id.into(), vpc: "vpc-1".into(), zone: zone.into(), public_ip_on_launch: public_ip }
    }

    fn public_facts() -> Facts {
        Facts {
            vpc: Some(Vpc { id: "vpc-1".into(), dns_support: true, dns_hostnames: true }),
            subnets: vec![subnet("subnet-a", "us-east-1a", true), subnet("subnet-b", "us-east-1b", true)],
            tables: vec![Table {
                id: "rtb-main".into(),
                main: true,
                internet_gateway: Some("igw-1".into()),
                ..Table::default()
            }],
        }
    }

    fn request(endpoint_tables: &[&str]) -> NetworkRequest {
        NetworkRequest {
            vpc: "vpc-1".into(),
            subnets: vec!["subnet-a".into(), "subnet-b".into()],
            deploy: Some(DeployNetwork {
                load_balancer_subnets: vec![],
                s3_endpoint_route_tables: endpoint_tables.iter().map(|s| s.to_string()).collect(),
            }),
        }
    }

    fn failures(rows: &[Row]) -> Vec<String> {
        rows.iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Failed(why) => Some(format!("{}: {why}", r.check)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn public_subnets_in_two_zones_with_the_endpoint_parameter_pass() {
        let rows = judge(&public_facts(), &request(&["rtb-main"]));
        assert!(failures(&rows).is_empty(), "{rows:#?}");
        assert_eq!(rows.len(), 6, "{rows:#?}");
    }

    #[test]
    fn the_default_network_without_the_endpoint_parameter_names_the_main_route_table_and_the_value() {
        let failed = failures(&judge(&public_facts(), &request(&[])));
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].contains("rtb-main (subnets subnet-a, subnet-b, the VPC's main route table)"), "{failed:?}");
        assert!(failed[0].contains("set S3EndpointRouteTableIds to rtb-main"), "{failed:?}");
    }

    #[test]
    fn subnets_in_one_zone_name_the_zone() {
        let mut facts = public_facts();
        facts.subnets[1].zone = "us-east-1a".into();
        let failed = failures(&judge(&facts, &request(&["rtb-main"])));
        assert!(failed.iter().any(|f| f.contains("subnet-a in us-east-1a, subnet-b in us-east-1a")), "{failed:?}");
    }

    #[test]
    fn three_subnets_are_refused_as_the_stack_mounts_efs_in_two() {
        let mut facts = public_facts();
        facts.subnets.push(subnet("subnet-c", "us-east-1c", true));
        let mut three = request(&["rtb-main"]);
        three.subnets.push("subnet-c".into());
        let failed = failures(&judge(&facts, &three));
        assert!(
            failed.iter().any(|f| f.contains("expected exactly two subnets") && f.contains("found 3")),
            "{failed:?}"
        );
    }

    #[test]
    fn dns_hostnames_off_gives_the_command_that_turns_it_on() {
        let mut facts = public_facts();
        facts.vpc.as_mut().unwrap().dns_hostnames = false;
        let failed = failures(&judge(&facts, &request(&["rtb-main"])));
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].contains("--enable-dns-hostnames"), "{failed:?}");
    }

    #[test]
    fn private_subnets_behind_nat_need_public_load_balancer_subnets() {
        let mut facts = public_facts();
        facts.tables[0] =
            Table { id: "rtb-main".into(), main: true, nat: Some("NAT gateway nat-1".into()), ..Table::default() };
        let failed = failures(&judge(&facts, &request(&[])));
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].contains("set LoadBalancerSubnetIds to two public subnets"), "{failed:?}");
    }

    #[test]
    fn an_internet_gateway_without_public_ips_names_the_subnet_attribute() {
        let mut facts = public_facts();
        facts.subnets[0].public_ip_on_launch = false;
        let failed = failures(&judge(&facts, &request(&["rtb-main"])));
        assert!(failed.iter().any(|f| f.contains("--subnet-id subnet-a --map-public-ip-on-launch")), "{failed:?}");
    }

    #[test]
    fn a_second_s3_endpoint_on_a_table_that_has_one_is_refused_before_ec2_refuses_it() {
        let mut facts = public_facts();
        facts.tables[0].s3 = Some("S3 gateway endpoint vpce-1".into());
        let failed = failures(&judge(&facts, &request(&["rtb-main"])));
        assert!(failed.iter().any(|f| f.contains("leave S3EndpointRouteTableIds empty")), "{failed:?}");
        assert!(failures(&judge(&facts, &request(&[]))).is_empty());
    }

    #[test]
    fn unknown_ids_are_said_as_such() {
        let facts = Facts::default();
        let failed = failures(&judge(&facts, &request(&[])));
        assert!(failed[0].contains("expected an existing VPC"), "{failed:?}");
        let mut facts = public_facts();
        facts.subnets.pop();
        let failed = failures(&judge(&facts, &request(&[])));
        assert!(failed.iter().any(|f| f.contains("found no subnet subnet-b")), "{failed:?}");
    }
}
