//! `Custom::EnvFileCheck`: before any task starts, the env file that holds qa_server's secrets
//! is checked — present and complete, its bucket not public, readable by the ECS task execution
//! role. Every check runs (concurrently) and every failure is reported, not just the first.
//! Values from the env file never leave [`env_file`]: only key names appear anywhere.

pub mod bucket_policy;
pub mod env_file;
pub mod facts;

use cfn_custom_resource::{lenient, CustomResource, Failure, Outcome, RequestContext};
use serde::Deserialize;

use bucket_policy::DenyMatch;
use env_file::ValueState;
use facts::{EnvFileFacts, PublicAccessBlock, Simulation};

/// qa_server's keys (qa_server_container `.env.example`, REFERENCE.md).
pub const DEFAULT_REQUIRED_KEYS: [&str; 10] = [
    "RAILS_ENV",
    "SECRET_KEY_BASE",
    "RELOAD_TOKEN",
    "MYSQL_HOST",
    "MYSQL_PORT",
    "MYSQL_DATABASE",
    "MYSQL_DATABASE_NAME_PREFIX",
    "MYSQL_USER",
    "MYSQL_PASSWORD",
    "MYSQL_ROOT_PASSWORD",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    pub bucket: String,
    pub key: String,
    pub execution_role_arn: String,
    /// Empty: qa_server's [`DEFAULT_REQUIRED_KEYS`].
    #[serde(default, deserialize_with = "lenient::string_list")]
    pub required_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed(String),
    Failed(String),
    /// The check could not be made; says why. Does not fail the stack by itself.
    NotDetermined(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub object: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failed(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| matches!(c.verdict, Verdict::Failed(_))).collect()
    }

    fn count(&self, wanted: fn(&Verdict) -> bool) -> usize {
        self.checks.iter().filter(|c| wanted(&c.verdict)).count()
    }

    /// The FAILED reason: the failing checks' names first, so a cut reason still names them all.
    pub fn failure_reason(&self) -> String {
        let failed = self.failed();
        let names: Vec<&str> = failed.iter().map(|c| c.name).collect();
        let details: Vec<&str> = failed
            .iter()
            .filter_map(|c| match &c.verdict {
                Verdict::Failed(reason) => Some(reason.as_str()),
                _ => None,
            })
            .collect();
        format!(
            "env file {}: {} of {} checks failed ({}): {}",
            self.object,
            failed.len(),
            self.checks.len(),
            names.join(", "),
            details.join("; ")
        )
    }
}

/// The role's account, from its ARN (`arn:aws:iam::123456789012:role/name`).
fn account_of(role_arn: &str) -> Option<&str> {
    let mut parts = role_arn.split(':');
    (parts.next() == Some("arn") && parts.nth(1) == Some("iam"))
        .then(|| role_arn.split(':').nth(4))
        .flatten()
        .filter(|account| account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()))
}

/// Runs every check concurrently and reports each.
pub async fn run_checks(facts: &impl EnvFileFacts, properties: &Properties) -> Report {
    let Properties { bucket, key, execution_role_arn: role, required_keys } = properties;
    let object_arn = format!("arn:aws:s3:::{bucket}/{key}");
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let account = account_of(role);
    let (
        object,
        bucket_block,
        account_block,
        policy_public,
        policy,
        bucket_acl,
        object_acl,
        read_object,
        locate_bucket,
    ) = tokio::join!(
        facts.object(bucket, key),
        facts.bucket_public_access_block(bucket),
        async {
            match account {
                Some(account) => facts.account_public_access_block(account).await,
                None => Err(format!("the execution role ARN {role:?} names no account")),
            }
        },
        facts.bucket_policy_is_public(bucket),
        facts.bucket_policy(bucket),
        facts.public_acl_grants(bucket, None),
        facts.public_acl_grants(bucket, Some(key)),
        facts.simulate(role, "s3:GetObject", &object_arn),
        facts.simulate(role, "s3:GetBucketLocation", &bucket_arn),
    );
    if let Err(error) = &object {
        if error.starts_with("NoSuchBucket") {
            let verdict = Verdict::Failed(format!(
                "bucket {bucket}: expected the env file's bucket, found no such bucket — create it with the prerequisites stack or fix the Bucket property"
            ));
            return Report {
                object: format!("s3://{bucket}/{key}"),
                checks: vec![Check { name: "bucket exists", verdict }],
            };
        }
    }
    let required: Vec<String> = if required_keys.is_empty() {
        DEFAULT_REQUIRED_KEYS.iter().map(|k| k.to_string()).collect()
    } else {
        required_keys.clone()
    };
    let checks = vec![
        check_object(bucket, key, &object),
        check_bucket_block(bucket, bucket_block),
        check_account_block(account, account_block),
        check_policy_status(bucket, policy_public),
        check_acls(bucket, key, bucket_acl, object_acl),
        check_role_policies(role, &object_arn, &bucket_arn, read_object, locate_bucket),
        check_bucket_policy_denies(bucket, role, &object_arn, policy),
        check_contents(key, &object, &required),
    ];
    Report { object: format!("s3://{bucket}/{key}"), checks }
}

type Fetched<T> = Result<T, facts::AwsError>;

fn check_object(bucket: &str, key: &str, object: &Fetched<Option<Vec<u8>>>) -> Check {
    let name = "object present";
    let verdict = match object {
        Ok(Some(bytes)) if !key.ends_with(".env") => Verdict::Failed(format!(
            "object s3://{bucket}/{key}: ECS reads only files whose name ends in .env, found {key:?} ({} bytes) — rename it, e.g. {key}.env, and set the key to match",
            bytes.len()
        )),
        Ok(Some(bytes)) if bytes.is_empty() => Verdict::Failed(format!(
            "object s3://{bucket}/{key}: expected the env file, found an empty object — upload the filled-in env file (cfn/.env.example lists its keys)"
        )),
        Ok(Some(bytes)) => Verdict::Passed(format!("s3://{bucket}/{key}, {} bytes", bytes.len())),
        Ok(None) => Verdict::Failed(format!(
            "object s3://{bucket}/{key}: expected the env file, found no such key — upload it (aws s3 cp production.env s3://{bucket}/{key}) or fix the key"
        )),
        Err(error) => Verdict::Failed(format!(
            "object s3://{bucket}/{key}: could not be read ({error}) — check the bucket name and the check function's s3:GetObject permission"
        )),
    };
    Check { name, verdict }
}

fn check_bucket_block(bucket: &str, block: Fetched<Option<PublicAccessBlock>>) -> Check {
    let name = "bucket Block Public Access";
    let fix = format!(
        "turn on all four Block Public Access settings (aws s3api put-public-access-block --bucket {bucket} \
         --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true)"
    );
    let verdict = match block {
        Ok(Some(block)) if block == PublicAccessBlock::ALL_ON => Verdict::Passed("all four settings on".into()),
        Ok(Some(block)) => {
            let off = block.off();
            let verb = if off.len() == 1 { "is" } else { "are" };
            Verdict::Failed(format!("bucket {bucket}: {} {verb} off — {fix}", off.join(", ")))
        }
        Ok(None) => Verdict::Failed(format!("bucket {bucket}: has no Block Public Access configuration, so all four settings are off — {fix}")),
        Err(error) => Verdict::Failed(format!(
            "bucket {bucket}: its Block Public Access settings could not be read ({error}) — give the check function s3:GetBucketPublicAccessBlock on the bucket"
        )),
    };
    Check { name, verdict }
}

fn check_account_block(account: Option<&str>, block: Fetched<Option<PublicAccessBlock>>) -> Check {
    let name = "account Block Public Access";
    let account = account.unwrap_or("?");
    let verdict = match block {
        Ok(Some(block)) if block == PublicAccessBlock::ALL_ON => {
            Verdict::Passed(format!("account {account}: all four settings on"))
        }
        Ok(Some(block)) => Verdict::Passed(format!(
            "account {account}: {} off (the bucket's own settings decide)",
            block.off().join(", ")
        )),
        Ok(None) => Verdict::Passed(format!("account {account}: not configured (the bucket's own settings decide)")),
        Err(error) => {
            Verdict::NotDetermined(format!("not checked: the account-level setting could not be read ({error})"))
        }
    };
    Check { name, verdict }
}

fn check_policy_status(bucket: &str, public: Fetched<Option<bool>>) -> Check {
    let name = "bucket policy not public";
    let verdict = match public {
        Ok(None) => Verdict::Passed("no bucket policy".into()),
        Ok(Some(false)) => Verdict::Passed("the bucket policy is not public".into()),
        Ok(Some(true)) => Verdict::Failed(format!(
            "bucket {bucket}: its policy makes it public (GetBucketPolicyStatus IsPublic) — remove the statements that allow Principal \"*\" \
             (aws s3api get-bucket-policy --bucket {bucket}) and turn on BlockPublicPolicy"
        )),
        Err(error) => Verdict::Failed(format!(
            "bucket {bucket}: its policy status could not be read ({error}) — give the check function s3:GetBucketPolicyStatus on the bucket"
        )),
    };
    Check { name, verdict }
}

fn check_acls(bucket: &str, key: &str, bucket_acl: Fetched<Vec<String>>, object_acl: Fetched<Vec<String>>) -> Check {
    let name = "no public ACL grants";
    let mut problems = Vec::new();
    for (what, acl, fix) in [
        (format!("bucket {bucket}"), bucket_acl, format!("aws s3api put-bucket-acl --bucket {bucket} --acl private")),
        (
            format!("object s3://{bucket}/{key}"),
            object_acl,
            format!("aws s3api put-object-acl --bucket {bucket} --key {key} --acl private"),
        ),
    ] {
        match acl {
            Ok(grants) if grants.is_empty() => {}
            Ok(grants) => problems.push(format!("{what}: its ACL grants {} — make it private ({fix})", grants.join(", "))),
            Err(error) => problems.push(format!(
                "{what}: its ACL could not be read ({error}) — give the check function s3:GetBucketAcl and s3:GetObjectAcl"
            )),
        }
    }
    let verdict = if problems.is_empty() {
        Verdict::Passed("no grant to AllUsers or AuthenticatedUsers".into())
    } else {
        Verdict::Failed(problems.join("; "))
    };
    Check { name, verdict }
}

fn check_role_policies(
    role: &str,
    object_arn: &str,
    bucket_arn: &str,
    read_object: Fetched<Simulation>,
    locate_bucket: Fetched<Simulation>,
) -> Check {
    let name = "execution role may read";
    let mut denied = Vec::new();
    let mut unknown = Vec::new();
    for (action, resource, simulation) in
        [("s3:GetObject", object_arn, read_object), ("s3:GetBucketLocation", bucket_arn, locate_bucket)]
    {
        match simulation {
            Ok(Simulation::Allowed) => {}
            Ok(Simulation::Denied(decision)) => denied.push(format!("{action} on {resource} ({decision})")),
            Err(error) if error.starts_with("NoSuchEntity") => denied.push(format!("{action} ({error})")),
            Err(error) => unknown.push(format!("{action}: {error}")),
        }
    }
    let verdict = if !denied.is_empty() {
        Verdict::Failed(format!(
            "execution role {role}: expected its policies to allow reading the env file, found they do not allow {} — \
             make sure the role exists and add an Allow for s3:GetObject on {object_arn} and s3:GetBucketLocation on {bucket_arn}",
            denied.join(" or ")
        ))
    } else if !unknown.is_empty() {
        Verdict::NotDetermined(format!(
            "not determined: IAM's policy simulator could not be asked ({}) — the check function needs iam:SimulatePrincipalPolicy on the role",
            unknown.join("; ")
        ))
    } else {
        Verdict::Passed(format!("{role} may s3:GetObject the file and s3:GetBucketLocation the bucket"))
    };
    Check { name, verdict }
}

fn check_bucket_policy_denies(bucket: &str, role: &str, object_arn: &str, policy: Fetched<Option<String>>) -> Check {
    let name = "no bucket-policy Deny for the role";
    let policy = match policy {
        Ok(None) => return Check { name, verdict: Verdict::Passed("no bucket policy".into()) },
        Ok(Some(policy)) => policy,
        Err(error) => {
            return Check {
                name,
                verdict: Verdict::NotDetermined(format!(
                    "not determined: the bucket policy could not be read ({error})"
                )),
            }
        }
    };
    let mut denies = Vec::new();
    let mut may_deny = Vec::new();
    for (action, resource) in
        [("s3:GetObject", object_arn.to_owned()), ("s3:GetBucketLocation", format!("arn:aws:s3:::{bucket}"))]
    {
        match bucket_policy::deny_statements(&policy, role, action, &resource) {
            Ok(found) => {
                for deny in found {
                    match deny {
                        DenyMatch::Denies(statement) => denies.push(format!("{statement} denies {action}")),
                        DenyMatch::MayDeny(statement) => may_deny.push(format!("{statement} may deny {action}")),
                    }
                }
            }
            Err(error) => return Check { name, verdict: Verdict::NotDetermined(format!("not determined: {error}")) },
        }
    }
    let verdict = if !denies.is_empty() {
        Verdict::Failed(format!(
            "bucket {bucket}: its policy's {} to execution role {role} — narrow those Deny statements so they exclude the role",
            denies.join(", ")
        ))
    } else if !may_deny.is_empty() {
        Verdict::NotDetermined(format!(
            "not determined: in the bucket policy, {} (depends on a Condition or a Not* element) — make sure it excludes the execution role",
            may_deny.join(", ")
        ))
    } else {
        Verdict::Passed("no Deny statement applies to the role".into())
    };
    Check { name, verdict }
}

fn check_contents(key: &str, object: &Fetched<Option<Vec<u8>>>, required: &[String]) -> Check {
    let name = "contents complete";
    let bytes = match object {
        Ok(Some(bytes)) if !bytes.is_empty() => bytes,
        // The object check already fails for these.
        _ => {
            return Check { name, verdict: Verdict::NotDetermined("not checked: there are no contents to read".into()) }
        }
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Check {
            name,
            verdict: Verdict::Failed(format!(
                "{key}: is not UTF-8 text, which ECS requires — save it as UTF-8 and upload it again"
            )),
        };
    };
    let file = env_file::parse(text);
    let mut problems = Vec::new();
    if !file.malformed_lines.is_empty() {
        let lines: Vec<String> =
            file.malformed_lines.iter().map(|(number, why)| format!("line {number}: {why}")).collect();
        problems.push(format!("malformed lines ({})", lines.join("; ")));
    }
    let missing: Vec<&str> = required.iter().filter(|k| !file.variables.contains_key(*k)).map(String::as_str).collect();
    let empty: Vec<&str> =
        required.iter().filter(|k| file.variables.get(*k) == Some(&ValueState::Empty)).map(String::as_str).collect();
    let placeholder: Vec<&str> = required
        .iter()
        .filter(|k| file.variables.get(*k) == Some(&ValueState::Placeholder))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        problems.push(format!("missing {}", missing.join(", ")));
    }
    if !empty.is_empty() {
        problems.push(format!("empty {}", empty.join(", ")));
    }
    if !placeholder.is_empty() {
        problems.push(format!("still {} in {}", env_file::PLACEHOLDER, placeholder.join(", ")));
    }
    let verdict = if problems.is_empty() {
        Verdict::Passed(format!("{} variables; all {} required keys set", file.variables.len(), required.len()))
    } else {
        Verdict::Failed(format!(
            "{key}: expected VAR=VALUE lines with every required key set — {}; fix the file (cfn/.env.example lists the keys) and upload it again",
            problems.join("; ")
        ))
    };
    Check { name, verdict }
}

/// The resource: Create and Update check, Delete succeeds at once without calling AWS.
pub struct EnvFileCheck<F> {
    facts: F,
}

impl EnvFileCheck<facts::AwsFacts> {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        EnvFileCheck { facts: facts::AwsFacts::new(config) }
    }
}

impl<F: EnvFileFacts + 'static> EnvFileCheck<F> {
    pub fn with_facts(facts: F) -> Self {
        EnvFileCheck { facts }
    }

    async fn check(&self, context: &RequestContext, properties: &Properties) -> Result<Outcome, Failure> {
        let report = run_checks(&self.facts, properties).await;
        for check in &report.checks {
            let (outcome, detail) = match &check.verdict {
                Verdict::Passed(detail) => ("passed", detail),
                Verdict::Failed(detail) => ("failed", detail),
                Verdict::NotDetermined(detail) => ("not determined", detail),
            };
            tracing::info!(logical_id = %context.logical_id, check = check.name, outcome, "{detail}");
        }
        if !report.failed().is_empty() {
            return Err(Failure::new(format!("{} {}: {}", Self::TYPE, context.logical_id, report.failure_reason())));
        }
        let not_determined = report.count(|v| matches!(v, Verdict::NotDetermined(_)));
        Ok(Outcome::new(format!("env-file-check:{}", report.object))
            .with_data("Object", &report.object)
            .with_data("Passed", report.count(|v| matches!(v, Verdict::Passed(_))))
            .with_data("NotDetermined", not_determined))
    }
}

impl<F: EnvFileFacts + 'static> CustomResource for EnvFileCheck<F> {
    const TYPE: &'static str = "Custom::EnvFileCheck";
    type Properties = Properties;

    async fn create(&self, context: &RequestContext, properties: Properties) -> Result<Outcome, Failure> {
        self.check(context, &properties).await
    }

    async fn delete(
        &self,
        _context: &RequestContext,
        physical_id: &str,
        _: Option<Properties>,
    ) -> Result<Outcome, Failure> {
        Ok(Outcome::new(physical_id))
    }
}

/// One row per check for a terminal: ✓ passed, ✗ failed, ? not determined.
pub fn render(report: &Report) -> String {
    let width = report.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut text = format!("env file {}\n", report.object);
    for check in &report.checks {
        let (mark, detail) = match &check.verdict {
            Verdict::Passed(detail) => ('✓', detail),
            Verdict::Failed(detail) => ('✗', detail),
            Verdict::NotDetermined(detail) => ('?', detail),
        };
        text.push_str(&format!("{mark} {:<width$}  {detail}\n", check.name));
    }
    let failed = report.failed().len();
    text.push_str(&match failed {
        0 => "all checks passed or could not be determined; nothing to fix\n".to_owned(),
        n => format!("{n} check{} failed\n", if n == 1 { "" } else { "s" }),
    });
    text
}

#[cfg(test)]
mod tests {
    use super::facts::{AwsError, EnvFileFacts, PublicAccessBlock, Simulation};
    use super::*;

    const ROLE: &str = "arn:aws:iam::123456789012:role/lookup-execution";
    const COMPLETE: &str = "RAILS_ENV=production\nSECRET_KEY_BASE=s3cr3t-base\nRELOAD_TOKEN=t0ken\nMYSQL_HOST=qa-mariadb\n\
        MYSQL_PORT=3306\nMYSQL_DATABASE=qa\nMYSQL_DATABASE_NAME_PREFIX=qa\nMYSQL_USER=qa\nMYSQL_PASSWORD=pw\nMYSQL_ROOT_PASSWORD=root-pw\n";

    /// A well-configured bucket; each test breaks one thing.
    #[derive(Clone)]
    struct FakeFacts {
        object: Result<Option<Vec<u8>>, AwsError>,
        bucket_block: Result<Option<PublicAccessBlock>, AwsError>,
        policy_public: Result<Option<bool>, AwsError>,
        policy: Result<Option<String>, AwsError>,
        bucket_grants: Vec<String>,
        simulation: Result<Simulation, AwsError>,
    }

    impl Default for FakeFacts {
        fn default() -> Self {
            FakeFacts {
                object: Ok(Some(COMPLETE.as_bytes().to_vec())),
                bucket_block: Ok(Some(PublicAccessBlock::ALL_ON)),
                policy_public: Ok(None),
                policy: Ok(None),
                bucket_grants: Vec::new(),
                simulation: Ok(Simulation::Allowed),
            }
        }
    }

    impl EnvFileFacts for FakeFacts {
        async fn object(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, AwsError> {
            self.object.clone()
        }
        async fn bucket_public_access_block(&self, _: &str) -> Result<Option<PublicAccessBlock>, AwsError> {
            self.bucket_block.clone()
        }
        async fn account_public_access_block(&self, _: &str) -> Result<Option<PublicAccessBlock>, AwsError> {
            Err("AccessDenied: not allowed".into())
        }
        async fn bucket_policy_is_public(&self, _: &str) -> Result<Option<bool>, AwsError> {
            self.policy_public.clone()
        }
        async fn bucket_policy(&self, _: &str) -> Result<Option<String>, AwsError> {
            self.policy.clone()
        }
        async fn public_acl_grants(&self, _: &str, key: Option<&str>) -> Result<Vec<String>, AwsError> {
            Ok(if key.is_none() { self.bucket_grants.clone() } else { Vec::new() })
        }
        async fn simulate(&self, _: &str, _: &str, _: &str) -> Result<Simulation, AwsError> {
            self.simulation.clone()
        }
    }

    fn properties() -> Properties {
        Properties {
            bucket: "lookup-bucket".into(),
            key: "production.env".into(),
            execution_role_arn: ROLE.into(),
            required_keys: Vec::new(),
        }
    }

    async fn failures(facts: FakeFacts) -> Vec<String> {
        let report = run_checks(&facts, &properties()).await;
        report
            .failed()
            .iter()
            .map(|c| match &c.verdict {
                Verdict::Failed(reason) => reason.clone(),
                _ => unreachable!(),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_well_configured_bucket_passes_and_says_what_it_could_not_check() {
        let report = run_checks(&FakeFacts::default(), &properties()).await;
        assert!(report.failed().is_empty(), "{report:#?}");
        let account = report.checks.iter().find(|c| c.name == "account Block Public Access").unwrap();
        assert!(matches!(&account.verdict, Verdict::NotDetermined(why) if why.starts_with("not checked")));
    }

    #[tokio::test]
    async fn each_public_signal_fails_alone_with_its_fix() {
        let one_off = PublicAccessBlock { block_public_policy: false, ..PublicAccessBlock::ALL_ON };
        let cases = [
            (FakeFacts { bucket_block: Ok(Some(one_off)), ..Default::default() },
             "bucket lookup-bucket: BlockPublicPolicy is off — turn on all four Block Public Access settings (aws s3api put-public-access-block"),
            (FakeFacts { bucket_block: Ok(None), ..Default::default() }, "has no Block Public Access configuration"),
            (FakeFacts { policy_public: Ok(Some(true)), ..Default::default() }, "its policy makes it public"),
            (FakeFacts { bucket_grants: vec!["AllUsers READ".into()], ..Default::default() }, "its ACL grants AllUsers READ — make it private"),
        ];
        for (facts, expected) in cases {
            let failures = failures(facts).await;
            assert_eq!(failures.len(), 1, "{failures:?}");
            assert!(failures[0].contains(expected), "{expected:?} not in {failures:?}");
        }
    }

    #[tokio::test]
    async fn object_problems_fail_with_what_was_found() {
        let missing = failures(FakeFacts { object: Ok(None), ..Default::default() }).await;
        assert!(missing[0].contains("found no such key — upload it"), "{missing:?}");
        let empty = failures(FakeFacts { object: Ok(Some(Vec::new())), ..Default::default() }).await;
        assert!(empty[0].contains("found an empty object"), "{empty:?}");
        let no_bucket =
            run_checks(&FakeFacts { object: Err("NoSuchBucket: gone".into()), ..Default::default() }, &properties())
                .await;
        assert_eq!(no_bucket.checks.len(), 1, "one clear failure instead of one per check");
        let wrong_suffix =
            run_checks(&FakeFacts::default(), &Properties { key: "production.txt".into(), ..properties() }).await;
        assert!(wrong_suffix.failure_reason().contains("ECS reads only files whose name ends in .env"));
    }

    #[tokio::test]
    async fn contents_report_line_numbers_and_key_names_never_values() {
        let text = format!("{COMPLETE}oops\nSECRET_KEY_BASE=CHANGEME\nRELOAD_TOKEN=\n").replace("MYSQL_USER=qa\n", "");
        let failures = failures(FakeFacts { object: Ok(Some(text.into_bytes())), ..Default::default() }).await;
        let reason = &failures[0];
        assert!(reason.contains("line 10: no '='"), "{reason}");
        assert!(reason.contains("missing MYSQL_USER"), "{reason}");
        assert!(reason.contains("empty RELOAD_TOKEN"), "{reason}");
        assert!(reason.contains("still CHANGEME in SECRET_KEY_BASE"), "{reason}");
        for secret in ["s3cr3t-base", "t0ken", "root-pw", "oops"] {
            assert!(!reason.contains(secret), "{secret} leaked: {reason}");
        }
    }

    #[tokio::test]
    async fn several_failures_are_all_named_first() {
        let facts = FakeFacts {
            bucket_block: Ok(None),
            bucket_grants: vec!["AuthenticatedUsers FULL_CONTROL".into()],
            object: Ok(Some(b"RAILS_ENV=production\n".to_vec())),
            ..Default::default()
        };
        let report = run_checks(&facts, &properties()).await;
        let reason = report.failure_reason();
        assert!(reason.starts_with(
            "env file s3://lookup-bucket/production.env: 3 of 8 checks failed (bucket Block Public Access, no public ACL grants, contents complete): "
        ), "{reason}");
    }

    #[tokio::test]
    async fn bucket_policy_deny_for_the_role_fails() {
        let policy = serde_json::json!({"Statement": [{"Sid": "LockedDown", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::lookup-bucket/*"}]});
        let failures = failures(FakeFacts { policy: Ok(Some(policy.to_string())), ..Default::default() }).await;
        assert!(failures[0].contains("LockedDown denies s3:GetObject to execution role"), "{failures:?}");
    }

    mod mocked_iam_because_moto_does_not_implement_simulate_principal_policy {
        use aws_sdk_iam::operation::simulate_principal_policy::{
            SimulatePrincipalPolicyError, SimulatePrincipalPolicyOutput,
        };
        use aws_sdk_iam::types::{EvaluationResult, PolicyEvaluationDecisionType};
        use aws_smithy_mocks::{mock, mock_client};

        use super::*;

        /// The fake's facts, but the role check asks a mocked IAM through the real SDK call.
        struct WithMockedIam {
            iam: aws_sdk_iam::Client,
        }

        impl EnvFileFacts for WithMockedIam {
            async fn object(&self, b: &str, k: &str) -> Result<Option<Vec<u8>>, AwsError> {
                FakeFacts::default().object(b, k).await
            }
            async fn bucket_public_access_block(&self, b: &str) -> Result<Option<PublicAccessBlock>, AwsError> {
                FakeFacts::default().bucket_public_access_block(b).await
            }
            async fn account_public_access_block(&self, a: &str) -> Result<Option<PublicAccessBlock>, AwsError> {
                FakeFacts::default().account_public_access_block(a).await
            }
            async fn bucket_policy_is_public(&self, b: &str) -> Result<Option<bool>, AwsError> {
                FakeFacts::default().bucket_policy_is_public(b).await
            }
            async fn bucket_policy(&self, b: &str) -> Result<Option<String>, AwsError> {
                FakeFacts::default().bucket_policy(b).await
            }
            async fn public_acl_grants(&self, b: &str, k: Option<&str>) -> Result<Vec<String>, AwsError> {
                FakeFacts::default().public_acl_grants(b, k).await
            }
            async fn simulate(&self, role: &str, action: &str, resource: &str) -> Result<Simulation, AwsError> {
                super::super::facts::simulate(&self.iam, role, action, resource).await
            }
        }

        fn decision(decision: PolicyEvaluationDecisionType) -> SimulatePrincipalPolicyOutput {
            let result =
                EvaluationResult::builder().eval_action_name("s3:GetObject").eval_decision(decision).build().unwrap();
            SimulatePrincipalPolicyOutput::builder().evaluation_results(result).build()
        }

        async fn role_check(iam: aws_sdk_iam::Client) -> Verdict {
            let report = run_checks(&WithMockedIam { iam }, &properties()).await;
            report.checks.into_iter().find(|c| c.name == "execution role may read").unwrap().verdict
        }

        #[tokio::test]
        async fn allowed_passes() {
            let rule = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .sequence()
                .output(|| decision(PolicyEvaluationDecisionType::Allowed))
                .repeatedly()
                .build();
            let verdict = role_check(mock_client!(aws_sdk_iam, [&rule])).await;
            assert!(matches!(verdict, Verdict::Passed(_)), "{verdict:?}");
            assert_eq!(rule.num_calls(), 2, "s3:GetObject and s3:GetBucketLocation");
        }

        #[tokio::test]
        async fn implicit_deny_fails_naming_the_action_and_the_fix() {
            let rule = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .match_requests(|r| r.action_names() == ["s3:GetObject"])
                .then_output(|| decision(PolicyEvaluationDecisionType::ImplicitDeny));
            let allowed = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .then_output(|| decision(PolicyEvaluationDecisionType::Allowed));
            let verdict = role_check(mock_client!(aws_sdk_iam, [&rule, &allowed])).await;
            let Verdict::Failed(reason) = verdict else { panic!("{verdict:?}") };
            assert!(
                reason.contains("s3:GetObject on arn:aws:s3:::lookup-bucket/production.env (implicitDeny)"),
                "{reason}"
            );
            assert!(reason.contains("add an Allow for s3:GetObject"), "{reason}");
        }

        #[tokio::test]
        async fn no_permission_to_simulate_is_not_determined_and_does_not_fail() {
            let rule = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .sequence()
                .error(|| {
                    SimulatePrincipalPolicyError::generic(
                        aws_sdk_iam::error::ErrorMetadata::builder()
                            .code("AccessDenied")
                            .message("not authorized to perform iam:SimulatePrincipalPolicy")
                            .build(),
                    )
                })
                .repeatedly()
                .build();
            let verdict = role_check(mock_client!(aws_sdk_iam, [&rule])).await;
            let Verdict::NotDetermined(reason) = verdict else { panic!("{verdict:?}") };
            assert!(reason.contains("AccessDenied: not authorized"), "{reason}");
        }

        #[tokio::test]
        async fn a_role_that_does_not_exist_fails() {
            let rule = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .sequence()
                .error(|| {
                    SimulatePrincipalPolicyError::generic(
                        aws_sdk_iam::error::ErrorMetadata::builder()
                            .code("NoSuchEntity")
                            .message("role not found")
                            .build(),
                    )
                })
                .repeatedly()
                .build();
            let verdict = role_check(mock_client!(aws_sdk_iam, [&rule])).await;
            assert!(
                matches!(&verdict, Verdict::Failed(reason) if reason.contains("make sure the role exists")),
                "{verdict:?}"
            );
        }
    }
}
