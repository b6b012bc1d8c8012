use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::process::workspace_root;
use crate::stack::{StackBed, StackEvent};

pub const PREREQUISITES_STACK: &str = "lookup-prerequisites-demo";
pub const SERVICE_STACK: &str = "lookup-service-demo";
pub const BUCKET: &str = "qa-lookup-demo";
const ENV_FILE_KEY: &str = "production.env";
const LAMBDA_CODE_KEY: &str = "lambda/custom-resources-placeholder.zip";
/// Far above what a stack takes on moto (seconds), far below CloudFormation's hour.
const STACK_DEADLINE: Duration = Duration::from_secs(180);

/// How a stack operation ended.
#[derive(Debug)]
pub struct Settled {
    pub stack_id: String,
    pub status: String,
    pub events: Vec<StackEvent>,
}

impl Settled {
    /// The reason of the first event of `logical_id` in `status`.
    pub fn reason(&self, logical_id: &str, status: &str) -> Option<&str> {
        self.events.iter().find(|e| e.logical_id == logical_id && e.status == status).map(|e| e.reason.as_str())
    }

    pub fn has(&self, logical_id: &str, status: &str) -> bool {
        self.reason(logical_id, status).is_some()
    }

    /// Where the first event of `logical_id` in `status` stands among the operation's events.
    pub fn position(&self, logical_id: &str, status: &str) -> Option<usize> {
        self.events.iter().position(|e| e.logical_id == logical_id && e.status == status)
    }
}

/// A seeded file as the mount shows it: an update that rewrites it changes its inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub inode: u64,
    pub len: u64,
}

/// The stack lifecycle that `make demo` shows and `tests/end_to_end/stack_lifecycle.rs` checks, step by step,
/// each step printing what it runs and what CloudFormation reports.
pub struct Lifecycle {
    pub bed: StackBed,
    /// The authority files uploaded to S3.
    pub authorities: PathBuf,
    started: Instant,
    vpc: String,
    subnets: Vec<String>,
    /// The VPC's main route table, which serves the subnets (no NAT, no S3 endpoint: the
    /// service stack creates the S3 gateway endpoint on it, as the README says).
    route_table: String,
}

impl Lifecycle {
    pub async fn start(function_binary: &Path, authorities: &Path) -> Lifecycle {
        let started = Instant::now();
        let bed = StackBed::start(function_binary).await;
        let lifecycle = Lifecycle {
            bed,
            authorities: authorities.to_path_buf(),
            started,
            vpc: String::new(),
            subnets: Vec::new(),
            route_table: String::new(),
        };
        lifecycle.say(&format!(
            "moto on {} (launched by tests/testbed/moto_launcher.py); the function under the runtime emulator; \
             logs in {} (kept if a step fails)",
            lifecycle.bed.moto.endpoint,
            lifecycle.bed.work_dir().display()
        ));
        lifecycle
    }

    pub fn say(&self, text: &str) {
        println!("[{:>5.1}s] {text}", self.started.elapsed().as_secs_f64());
    }

    fn show_event(&self, stack: &str, event: &StackEvent) {
        let reason = if event.reason.is_empty() { String::new() } else { format!(" - {}", event.reason) };
        if event.is_stack() {
            self.say(&format!("  {stack}: {}{reason}", event.status));
        } else {
            self.say(&format!("  {stack}: {} ({}) {}{reason}", event.logical_id, event.resource_type, event.status));
        }
    }

    /// Runs `aws ARGS…`, printing it as a user would type it.
    pub async fn aws(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        self.say(&format!("$ aws {}", args.join(" ")));
        self.bed.aws(args).await
    }

    /// The network a user already has: a VPC with two subnets in two zones.
    pub async fn create_network(&mut self) -> Result<(), String> {
        let vpc = self.bed.aws(&["ec2", "create-vpc", "--cidr-block", "10.42.0.0/16"]).await?;
        self.vpc = vpc["Vpc"]["VpcId"].as_str().unwrap_or_default().to_owned();
        for (cidr, zone) in [("10.42.1.0/24", "us-east-1a"), ("10.42.2.0/24", "us-east-1b")] {
            let subnet = self
                .bed
                .aws(&[
                    "ec2",
                    "create-subnet",
                    "--vpc-id",
                    &self.vpc,
                    "--cidr-block",
                    cidr,
                    "--availability-zone",
                    zone,
                ])
                .await?;
            self.subnets.push(subnet["Subnet"]["SubnetId"].as_str().unwrap_or_default().to_owned());
        }
        let tables = self
            .bed
            .aws(&[
                "ec2",
                "describe-route-tables",
                "--filters",
                &format!("Name=vpc-id,Values={}", self.vpc),
                "Name=association.main,Values=true",
            ])
            .await?;
        self.route_table = tables["RouteTables"][0]["RouteTableId"].as_str().unwrap_or_default().to_owned();
        // Public subnets as most accounts' are: DNS hostnames on (a new VPC has them off), an
        // internet gateway on the main route table, public IPs on launch.
        let dns_on =
            ["ec2", "modify-vpc-attribute", "--vpc-id", &self.vpc, "--enable-dns-hostnames", "{\"Value\":true}"];
        self.bed.aws(&dns_on).await?;
        let gateway = self.bed.aws(&["ec2", "create-internet-gateway"]).await?;
        let gateway = gateway["InternetGateway"]["InternetGatewayId"].as_str().unwrap_or_default().to_owned();
        self.bed
            .aws(&["ec2", "attach-internet-gateway", "--internet-gateway-id", &gateway, "--vpc-id", &self.vpc])
            .await?;
        let route =
            ["--route-table-id", &self.route_table, "--destination-cidr-block", "0.0.0.0/0", "--gateway-id", &gateway];
        self.bed.aws(&[&["ec2", "create-route"][..], &route[..]].concat()).await?;
        for subnet in &self.subnets {
            self.bed
                .aws(&["ec2", "modify-subnet-attribute", "--subnet-id", subnet, "--map-public-ip-on-launch"])
                .await?;
        }
        self.say(&format!(
            "the network: {} with subnets {} (main route table {})",
            self.vpc,
            self.subnets.join(", "),
            self.route_table
        ));
        Ok(())
    }

    /// `create-stack` with `--template-body file://cfn/TEMPLATE` and `extra` arguments, then its
    /// progress to the end.
    pub async fn create_stack(
        &self,
        stack: &str,
        template: &str,
        parameters: &Path,
        extra: &[&str],
    ) -> Result<Settled, String> {
        let template = format!("file://cfn/{template}");
        let parameters = format!("file://{}", parameters.display());
        let mut args = vec!["cloudformation", "create-stack", "--stack-name", stack];
        args.extend(["--template-body", &template, "--parameters", &parameters]);
        args.extend_from_slice(extra);
        let stack_id = stack_id(&self.aws(&args).await?)?;
        self.settle(stack, &stack_id, 0).await
    }

    async fn settle(&self, stack: &str, stack_id: &str, earlier: usize) -> Result<Settled, String> {
        let (status, events) =
            self.bed.settle(stack_id, earlier, STACK_DEADLINE, |event| self.show_event(stack, event)).await?;
        Ok(Settled { stack_id: stack_id.to_owned(), status, events })
    }

    /// Step 1 of the README: the prerequisites stack, with a parameters file like a user's (on
    /// the network created first, unless it is there already).
    pub async fn create_prerequisites(&mut self) -> Result<Settled, String> {
        if self.vpc.is_empty() {
            self.create_network().await?;
        }
        let parameters = self.prerequisites_parameters(&[]);
        self.create_stack(PREREQUISITES_STACK, "aws-prerequisites.yaml", &parameters, &[]).await
    }

    /// The prerequisites stack's parameters file, naming the network, with `changes` on top.
    pub fn prerequisites_parameters(&self, changes: &[(&str, &str)]) -> PathBuf {
        let subnets = self.subnets.join(",");
        let mut values = vec![("AWSVpcId", self.vpc.as_str()), ("SubnetIds", &subnets), ("S3BucketName", BUCKET)];
        values.extend_from_slice(changes);
        self.bed.parameters_file("prerequisites.env.example", "prerequisites-demo.env", &values)
    }

    /// The network's VPC and subnets.
    pub fn network(&self) -> (&str, &[String]) {
        (&self.vpc, &self.subnets)
    }

    /// `qa-deploy doctor` as the README shows it, for the prerequisites stack (with
    /// `prerequisites_changes`) and, with `service`, the service stack of that name with its
    /// changes in its parameters: the exit
    /// status and what it printed, which is shown too.
    pub async fn doctor(
        &self,
        qa_deploy: &Path,
        prerequisites_changes: &[(&str, &str)],
        service: Option<(&str, &[(&str, &str)])>,
    ) -> (Option<i32>, String) {
        let prerequisites = self.prerequisites_parameters(prerequisites_changes);
        let mut command = tokio::process::Command::new(qa_deploy);
        command.arg("doctor").arg("--prerequisites").arg(&prerequisites);
        command.args(["--prerequisites-stack", PREREQUISITES_STACK]);
        let mut shown = format!("$ qa-deploy doctor --prerequisites {}", prerequisites.display());
        if let Some((stack, changes)) = service {
            let deploy = self.service_parameters(stack, changes);
            command.arg("--deploy").arg(&deploy).args(["--stack", stack]);
            shown.push_str(&format!(" --deploy {} --stack {stack}", deploy.display()));
        }
        self.say(&shown);
        let output = command
            .envs(crate::process::client_env(&self.bed.moto.endpoint))
            .env_remove("RUST_LOG")
            .output()
            .await
            .expect("qa-deploy runs");
        let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        for line in printed.lines() {
            self.say(&format!("  {line}"));
        }
        (output.status.code(), printed)
    }

    /// Step 2 and 3 of the README: the env file, the authority files and the function's zip in
    /// the prerequisites' bucket. The zip is a placeholder: moto keeps it, the runtime emulator
    /// runs the real binary.
    pub async fn upload(&self) -> Result<(), String> {
        let env_file = self.bed.work_dir().join(ENV_FILE_KEY);
        let example = std::fs::read_to_string(workspace_root().join("cfn/.env.example")).map_err(|e| e.to_string())?;
        std::fs::write(&env_file, example.replace("CHANGEME", "demo-secret")).map_err(|e| e.to_string())?;
        self.aws(&["s3", "cp", &env_file.to_string_lossy(), &format!("s3://{BUCKET}/{ENV_FILE_KEY}"), "--quiet"])
            .await?;
        let authorities = self.authorities.to_string_lossy();
        self.aws(&["s3", "sync", &authorities, &format!("s3://{BUCKET}/authorities/"), "--quiet"]).await?;
        let zip = self.bed.work_dir().join("custom-resources-placeholder.zip");
        let bootstrap = self.bed.work_dir().join("bootstrap");
        std::fs::write(&bootstrap, "#!/bin/sh\n").map_err(|e| e.to_string())?;
        let zipped = std::process::Command::new(workspace_root().join(".venv/bin/python"))
            .args(["-m", "zipfile", "-c"])
            .arg(&zip)
            .arg(&bootstrap)
            .status()
            .map_err(|e| e.to_string())?;
        if !zipped.success() {
            return Err("python -m zipfile could not write the placeholder zip".into());
        }
        self.aws(&["s3", "cp", &zip.to_string_lossy(), &format!("s3://{BUCKET}/{LAMBDA_CODE_KEY}"), "--quiet"]).await?;
        self.say(&format!(
            "uploaded {ENV_FILE_KEY}, {} authority files from {} and the Lambda zip (a placeholder) to s3://{BUCKET}",
            files_below(&self.authorities).len(),
            self.authorities.display()
        ));
        Ok(())
    }

    /// Step 4 of the README: the service stack.
    pub async fn create_service(&self, stack: &str) -> Result<Settled, String> {
        self.create_service_with(stack, &[]).await
    }

    /// Step 4 with some parameters changed, such as no S3 endpoint for the seeding function.
    pub async fn create_service_with(&self, stack: &str, changes: &[(&str, &str)]) -> Result<Settled, String> {
        let parameters = self.service_parameters(stack, changes);
        self.create_stack(stack, "aws-deploy.yaml", &parameters, &["--capabilities", "CAPABILITY_IAM"]).await
    }

    /// A copy of `cfn/deploy.env.example` for this bed, with `changes` on top.
    fn service_parameters(&self, stack: &str, changes: &[(&str, &str)]) -> PathBuf {
        let mut values = vec![
            ("PrerequisitesStackName", PREREQUISITES_STACK),
            ("LambdaCodeBucket", BUCKET),
            ("LambdaCodeKey", LAMBDA_CODE_KEY),
            ("LambdaArchitecture", "x86_64"),
            ("S3EndpointRouteTableIds", &self.route_table),
        ];
        values.extend_from_slice(changes);
        self.bed.parameters_file("deploy.env.example", &format!("{stack}.env"), &values)
    }

    /// The optional live-sync stack (cfn/aws-live-sync.yaml) for the service stack `service`.
    pub async fn create_live_sync(&self, stack: &str, service: &str) -> Result<Settled, String> {
        let values = [
            ("ServiceStackName", service),
            ("PrerequisitesStackName", PREREQUISITES_STACK),
            ("LambdaCodeBucket", BUCKET),
            ("LambdaCodeKey", LAMBDA_CODE_KEY),
            ("LambdaArchitecture", "x86_64"),
        ];
        let parameters = self.bed.parameters_file("live-sync.env.example", &format!("{stack}.env"), &values);
        self.create_stack(stack, "aws-live-sync.yaml", &parameters, &["--capabilities", "CAPABILITY_IAM"]).await
    }

    /// The README's update: the same command with some parameters changed, such as a new
    /// `AuthoritiesSourceVersion`.
    pub async fn update_service(&self, stack: &str, changes: &[(&str, &str)]) -> Result<Settled, String> {
        let parameters = format!("file://{}", self.service_parameters(stack, changes).display());
        let args = [
            "cloudformation",
            "update-stack",
            "--stack-name",
            stack,
            "--template-body",
            "file://cfn/aws-deploy.yaml",
            "--parameters",
            &parameters,
            "--capabilities",
            "CAPABILITY_IAM",
        ];
        let earlier = self.bed.events(stack).await?.len();
        let stack_id = stack_id(&self.aws(&args).await?)?;
        self.settle(stack, &stack_id, earlier).await
    }

    /// `delete-stack`, then its progress followed by the stack's id (its name is gone once deleted).
    pub async fn delete_stack(&self, stack: &str) -> Result<Settled, String> {
        let stack_id = stack_id(&self.bed.describe(stack).await?)?;
        let earlier = self.bed.events(stack).await?.len();
        self.aws(&["cloudformation", "delete-stack", "--stack-name", stack]).await?;
        self.settle(stack, &stack_id, earlier).await
    }

    /// `qa-deploy why --stack STACK` against this moto, printed as a user would type it: its exit
    /// status and what it printed (stdout, then stderr).
    pub async fn why(&self, qa_deploy: &Path, stack: &str) -> Result<(i32, String), String> {
        self.say(&format!("$ qa-deploy why --stack {stack}"));
        let output = tokio::process::Command::new(qa_deploy)
            .args(["why", "--stack", stack])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(crate::process::client_env(&self.bed.moto.endpoint))
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .await
            .map_err(|error| format!("{} did not run: {error}", qa_deploy.display()))?;
        let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        Ok((output.status.code().unwrap_or(-1), printed))
    }

    /// Replaces one authority file in S3 with a changed copy; returns its path below the prefix.
    pub async fn change_one_authority(&self) -> Result<PathBuf, String> {
        let sources = files_below(&self.authorities);
        let changed = sources
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == "yml"))
            .or(sources.first())
            .cloned()
            .ok_or("no authority files to change")?;
        let mut bytes = std::fs::read(self.authorities.join(&changed)).map_err(|e| e.to_string())?;
        bytes.extend_from_slice(b"\n# changed for the demo\n");
        let copy = self.bed.work_dir().join("changed-authority");
        std::fs::write(&copy, bytes).map_err(|e| e.to_string())?;
        let key = format!("s3://{BUCKET}/authorities/{}", changed.display());
        self.aws(&["s3", "cp", &copy.to_string_lossy(), &key, "--quiet"]).await?;
        Ok(changed)
    }

    /// The env file's bucket made public: Block Public Access off and a public-read ACL.
    pub async fn make_bucket_public(&self) -> Result<(), String> {
        self.aws(&["s3api", "delete-public-access-block", "--bucket", BUCKET]).await?;
        self.aws(&["s3api", "put-bucket-acl", "--bucket", BUCKET, "--acl", "public-read"]).await?;
        Ok(())
    }

    pub async fn make_bucket_private(&self) -> Result<(), String> {
        self.aws(&["s3api", "put-bucket-acl", "--bucket", BUCKET, "--acl", "private"]).await?;
        let all_on = "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true";
        self.aws(&[
            "s3api",
            "put-public-access-block",
            "--bucket",
            BUCKET,
            "--public-access-block-configuration",
            all_on,
        ])
        .await?;
        Ok(())
    }

    /// What the seed function logged of its last seed: files, changed and removed.
    pub fn last_seed_summary(&self) -> Option<String> {
        let log = self.bed.function_log();
        let line = log.lines().rev().find(|line| line.contains("\"message\":\"seeded "))?;
        let seeded: serde_json::Value = serde_json::from_str(line).ok()?;
        Some(format!("{} files, {} changed, {} removed", seeded["files"], seeded["changed"], seeded["removed"]))
    }

    /// The seeded files below the mount, each with its inode and size.
    pub fn seeded(&self) -> BTreeMap<PathBuf, FileState> {
        files_below(&self.bed.mount)
            .into_iter()
            .filter_map(|relative| {
                let metadata = std::fs::metadata(self.bed.mount.join(&relative)).ok()?;
                Some((relative, FileState { inode: metadata.ino(), len: metadata.len() }))
            })
            .collect()
    }
}

/// The `StackId` of what create-stack, update-stack or describe-stacks printed.
fn stack_id(printed: &serde_json::Value) -> Result<String, String> {
    printed["StackId"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("expected a StackId from the AWS CLI, got {printed}"))
}

/// The files below `folder`, relative to it, sorted; hidden files (the seed's manifest) left out.
/// A copy of `from`'s files and folders at `to` (created), as a user's local copy of a tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("the copy's folder can be created");
    for entry in std::fs::read_dir(from).expect("the tree can be read").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("a file can be copied");
        }
    }
}

pub fn files_below(folder: &Path) -> Vec<PathBuf> {
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

/// The authority files the demo and the tests upload: the real qa_server configuration beside
/// the repository when it is there, otherwise the sample in `tests/fixtures`.
pub fn authorities_fixture() -> PathBuf {
    let real = workspace_root().join("../shared/fixtures/qa_server_config/authorities");
    if real.is_dir() {
        real
    } else {
        workspace_root().join("tests/fixtures/authorities")
    }
}
