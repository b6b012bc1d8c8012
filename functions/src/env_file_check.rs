//! `Custom::EnvFileCheck`: before any task starts, the env file that holds qa_server's secrets
//! is checked — present and complete, its bucket not public, readable by the ECS task execution
//! role, its settings consistent by qa_server's and MariaDB's rules. Every check runs
//! (concurrently) and every failure is reported, not just the first.
//! Values from the env file never leave [`env_file`]: only key names appear anywhere.

pub mod bucket_policy;
pub mod env_file;
pub mod facts;

use cfn_custom_resource::{lenient, CustomResource, Failure, Outcome, RequestContext};
use serde::Deserialize;

use bucket_policy::DenyMatch;
use env_file::{EnvFile, QaServerFacts, RailsEnv, Shape, ValueState, YamlHazard};
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
    let contents = read_contents(&object);
    let mut checks = vec![
        check_object(bucket, key, &object),
        check_bucket_block(bucket, bucket_block),
        check_account_block(account, account_block),
        check_policy_status(bucket, policy_public),
        check_acls(bucket, key, bucket_acl, object_acl),
        check_role_policies(role, &object_arn, &bucket_arn, read_object, locate_bucket),
        check_bucket_policy_denies(bucket, role, &object_arn, policy),
        check_contents(key, &contents, &required),
    ];
    checks.extend(QA_SERVER_RULES.iter().map(|&(name, rule)| {
        let verdict = match &contents {
            Contents::File(file) => rule(key, &file.qa_server),
            Contents::Nothing | Contents::NotUtf8 => {
                Verdict::NotDetermined("not checked: there are no contents to read".into())
            }
        };
        Check { name, verdict }
    }));
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
        // Without s3:ListBucket, S3 answers 403 for a missing key too (S3 GetObject API
        // reference, "Permissions"; aws-cli #2041): the two cannot be told apart.
        Err(error) if facts::is_access_denied(error) => Verdict::Failed(format!(
            "object s3://{bucket}/{key}: expected the env file, found {error} — the object is missing or this function may not read it \
             (S3 answers 403, not 404, for a missing key to a caller without s3:ListBucket on the bucket); upload it if it is missing \
             (aws s3 cp production.env s3://{bucket}/{key}), else give the check function s3:GetObject on arn:aws:s3:::{bucket}/{key}, \
             and s3:ListBucket on arn:aws:s3:::{bucket} so that a missing object reads as missing"
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

/// The object's text, parsed; values stay inside [`env_file`].
enum Contents {
    /// No object, an empty one, or one that could not be read: the object check says which.
    Nothing,
    NotUtf8,
    File(EnvFile),
}

fn read_contents(object: &Fetched<Option<Vec<u8>>>) -> Contents {
    match object {
        Ok(Some(bytes)) if !bytes.is_empty() => match std::str::from_utf8(bytes) {
            Ok(text) => Contents::File(env_file::parse(text)),
            Err(_) => Contents::NotUtf8,
        },
        _ => Contents::Nothing,
    }
}

fn check_contents(key: &str, contents: &Contents, required: &[String]) -> Check {
    let name = "contents complete";
    let file = match contents {
        // The object check already fails for these.
        Contents::Nothing => {
            return Check { name, verdict: Verdict::NotDetermined("not checked: there are no contents to read".into()) }
        }
        Contents::NotUtf8 => {
            return Check {
                name,
                verdict: Verdict::Failed(format!(
                    "{key}: is not UTF-8 text, which ECS requires — save it as UTF-8 and upload it again"
                )),
            }
        }
        Contents::File(file) => file,
    };
    let mut problems = Vec::new();
    if file.byte_order_mark {
        problems.push(
            "saved with a UTF-8 byte-order mark (BOM), which ECS would read as part of the first name; save it as UTF-8 without BOM"
                .to_owned(),
        );
    }
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

// qa_server's consistency rules (REFERENCE.md, "The service being deployed": qa_server's
// config/database.yml and MariaDB's entrypoint), judged on the values as ECS passes them. Each
// applies only when its keys are set: "contents complete" reports the missing ones.

type Rule = fn(&str, &QaServerFacts) -> Verdict;

/// The rules' check names, in the order they are reported.
const QA_SERVER_RULES: [(&str, Rule); 5] = [
    ("RAILS_ENV valid", rails_env_rule),
    ("database name matches RAILS_ENV", database_name_rule),
    ("MYSQL_USER not root", user_rule),
    ("MYSQL_PORT is 3306", port_rule),
    ("database.yml reads the values as written", database_yml_rule),
];

fn not_set(what: &str) -> Verdict {
    Verdict::NotDetermined(format!("not checked: {what} (see contents complete)"))
}

/// What ECS does with a value's quotes or spaces, for a reason; `None` for other shapes.
fn kept_by_ecs(shape: Shape) -> Option<&'static str> {
    match shape {
        Shape::Quoted => Some("in quotes, which ECS keeps as part of the value"),
        Shape::Padded => Some("with spaces before or after it, which ECS keeps as part of the value"),
        Shape::LetterCase | Shape::Other => None,
    }
}

fn rails_env_rule(key: &str, facts: &QaServerFacts) -> Verdict {
    match facts.rails_env {
        None => not_set("RAILS_ENV is not set"),
        Some(RailsEnv::Invalid(shape)) => {
            let (found, fix) = match shape {
                Shape::Quoted => (
                    "it in quotes: ECS keeps the quotes, so the app would look for an environment whose name includes them, which config/database.yml does not define",
                    "remove the quotes (write RAILS_ENV=production with no quotes)",
                ),
                Shape::Padded => (
                    "spaces before or after it: ECS keeps them, so the app would look for an environment whose name includes them, which config/database.yml does not define",
                    "remove the spaces",
                ),
                Shape::LetterCase => (
                    "one of them with capital letters: environment names are case-sensitive",
                    "write it in lower case",
                ),
                Shape::Other => (
                    "another value: qa_server's config/database.yml defines no database for it",
                    "set RAILS_ENV to one of the three",
                ),
            };
            Verdict::Failed(format!(
                "{key}: RAILS_ENV must be exactly production, staging or integration, found {found} — {fix} and upload the file again"
            ))
        }
        Some(env) => Verdict::Passed(format!("RAILS_ENV is {}", env.name().unwrap_or_default())),
    }
}

fn database_name_rule(key: &str, facts: &QaServerFacts) -> Verdict {
    // What config/database.yml connects to: the prefix alone for production, else with a suffix.
    let expected = |env: RailsEnv| match env.database_suffix() {
        Some("") | None => "MYSQL_DATABASE_NAME_PREFIX".to_owned(),
        Some(suffix) => format!("MYSQL_DATABASE_NAME_PREFIX followed by {suffix}"),
    };
    match (facts.rails_env, facts.database_name_matches) {
        (Some(env), Some(true)) => Verdict::Passed(format!(
            "MYSQL_DATABASE equals {} (RAILS_ENV={})",
            expected(env),
            env.name().unwrap_or_default()
        )),
        (Some(env), Some(false)) => Verdict::Failed(format!(
            "{key}: MYSQL_DATABASE must equal {expected} (with RAILS_ENV={env_name}, qa_server's config/database.yml names the database so), found a different MYSQL_DATABASE — \
             MariaDB creates MYSQL_DATABASE and grants MYSQL_USER that database only, so rake db:migrate would fail (qa_server's start script \
             swallows it: the home page answers, every database page answers 500); make the two match and upload the file again (MariaDB creates MYSQL_DATABASE only on an empty \
             data directory: if it has started already, keep MYSQL_DATABASE and change MYSQL_DATABASE_NAME_PREFIX or RAILS_ENV)",
            expected = expected(env),
            env_name = env.name().unwrap_or_default(),
        )),
        (Some(RailsEnv::Invalid(_)), None) => Verdict::NotDetermined(
            "not checked: RAILS_ENV is not production, staging or integration (see RAILS_ENV valid)".into(),
        ),
        _ => not_set("RAILS_ENV, MYSQL_DATABASE or MYSQL_DATABASE_NAME_PREFIX is not set"),
    }
}

fn user_rule(key: &str, facts: &QaServerFacts) -> Verdict {
    match facts.user_is_root {
        None => not_set("MYSQL_USER is not set"),
        Some(false) => Verdict::Passed("MYSQL_USER is not root".into()),
        Some(true) => Verdict::Failed(format!(
            "{key}: MYSQL_USER must not be root, found root — MariaDB's entrypoint refuses MYSQL_USER=root (root is set up from \
             MYSQL_ROOT_PASSWORD) and the database container exits; set MYSQL_USER to another name, e.g. qa_server, and upload the file again"
        )),
    }
}

fn port_rule(key: &str, facts: &QaServerFacts) -> Verdict {
    match facts.port_3306 {
        None => not_set("MYSQL_PORT is not set"),
        Some(Ok(())) => Verdict::Passed("MYSQL_PORT is 3306".into()),
        Some(Err(shape)) => {
            let found = kept_by_ecs(shape).map(|how| format!("it {how}")).unwrap_or_else(|| "another value".into());
            Verdict::Failed(format!(
                "{key}: MYSQL_PORT must be 3306, found {found} — Rails always connects to 3306 (qa_server's config/database.yml \
                 sets no port) and only the entrypoint's wait (nc -z $MYSQL_HOST $MYSQL_PORT, with no deadline) reads MYSQL_PORT, \
                 so the app would wait for a port MariaDB does not listen on; set MYSQL_PORT=3306 and upload the file again"
            ))
        }
    }
}

fn database_yml_rule(key: &str, facts: &QaServerFacts) -> Verdict {
    let judged: Vec<(&str, YamlHazard)> = env_file::DATABASE_YML_KEYS
        .iter()
        .zip(facts.database_yml)
        .filter_map(|(name, judged)| Some((*name, judged?.err()?)))
        .collect();
    if facts.database_yml.iter().all(Option::is_none) {
        return not_set("MYSQL_USER, MYSQL_PASSWORD, MYSQL_HOST and MYSQL_DATABASE_NAME_PREFIX are not set");
    }
    if judged.is_empty() {
        return Verdict::Passed("the database settings read the same in Rails' YAML and in MariaDB".into());
    }
    let found: Vec<String> = judged
        .iter()
        .map(|(name, hazard)| {
            let how = match hazard {
                YamlHazard::ReservedStart => "starts with a character YAML reserves (* & ! @ ` % [ ] { } | > , # or - ? : and a space), so Rails does not boot",
                YamlHazard::ColonSpace => "has ': ' inside or ends with ':', which YAML reads as a mapping, so Rails does not boot",
                YamlHazard::Comment => "has ' #' inside, where YAML cuts it (a comment), so Rails and MariaDB disagree",
                YamlHazard::Quoted => "is in quotes, which YAML strips and MariaDB's entrypoint keeps, so the two disagree",
                YamlHazard::Padded => "has spaces before or after it, which YAML strips and ECS and MariaDB keep",
                YamlHazard::NotAString => "is a number, boolean, date or null to YAML (e.g. 0123, yes, off, 1:30, ~), which may not come back as the same text",
            };
            format!("{name} {how}")
        })
        .collect();
    Verdict::Failed(format!(
        "{key}: qa_server's config/database.yml pastes MYSQL_USER, MYSQL_PASSWORD, MYSQL_HOST and MYSQL_DATABASE_NAME_PREFIX \
         into YAML unquoted; expected values YAML reads as written, found: {} — start it with a letter and use letters, digits, \
         '_' and '-' (a random password of those that starts with a letter is safe), then upload the file again (a changed MYSQL_PASSWORD also needs ALTER USER \
         in the database once it has started)",
        found.join("; ")
    ))
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
            "env file s3://lookup-bucket/production.env: 3 of 13 checks failed (bucket Block Public Access, no public ACL grants, contents complete): "
        ), "{reason}");
        // The rules whose keys are missing are left to "contents complete".
        for name in ["database name matches RAILS_ENV", "MYSQL_USER not root", "MYSQL_PORT is 3306"] {
            let check = report.checks.iter().find(|c| c.name == name).unwrap();
            assert!(matches!(&check.verdict, Verdict::NotDetermined(why) if why.contains("is not set")), "{check:?}");
        }
    }

    /// qa_server's env file with distinctive values, so that a reason showing one is caught.
    fn qa_env(rails_env: &str, prefix: &str, database: &str, user: &str, port: &str) -> String {
        format!(
            "RAILS_ENV={rails_env}\nSECRET_KEY_BASE=Kx9-skb-secret\nRELOAD_TOKEN=Kx9-reload\nMYSQL_HOST=qa-mariadb\nMYSQL_PORT={port}\n\
             MYSQL_DATABASE={database}\nMYSQL_DATABASE_NAME_PREFIX={prefix}\nMYSQL_USER={user}\nMYSQL_PASSWORD=Kx9-db-pw\nMYSQL_ROOT_PASSWORD=Kx9-root-pw\n"
        )
    }

    /// Values from [`qa_env`]'s cases that no reason, passed or not, may show ("root", "3306" and
    /// the environment names are the rules' own words).
    const VALUES: [&str; 12] = [
        "Kx9-",
        "qadb_k4",
        "qauser_m2",
        "3307",
        "\"3306\"",
        "\"production\"",
        "'staging'",
        "production\t",
        "Staging",
        "development",
        "\"p w\"",
        "'quoted key base'",
    ];

    /// Every check's verdict for the file, asserting that no verdict shows a value.
    async fn verdicts(text: &str) -> Vec<Check> {
        let facts = FakeFacts { object: Ok(Some(text.as_bytes().to_vec())), ..Default::default() };
        let report = run_checks(&facts, &properties()).await;
        let everything = format!("{report:?}\n{}\n{}", report.failure_reason(), render(&report));
        for value in VALUES {
            assert!(!everything.contains(value), "{value:?} leaked: {everything}");
        }
        report.checks
    }

    #[tokio::test]
    async fn qa_server_settings_that_agree_pass_every_rule() {
        for text in [
            qa_env("production", "qadb_k4", "qadb_k4", "qauser_m2", "3306"),
            qa_env("staging", "qadb_k4", "qadb_k4_staging", "qauser_m2", "3306"),
            qa_env("integration", "qadb_k4", "qadb_k4_integration", "qauser_m2", "3306"),
            // Quotes on keys that YAML does not read stay: they are part of those values.
            qa_env("production", "qadb_k4", "qadb_k4", "qauser_m2", "3306")
                .replace("SECRET_KEY_BASE=Kx9-skb-secret", "SECRET_KEY_BASE='quoted key base'"),
        ] {
            let checks = verdicts(&text).await;
            let failed: Vec<&Check> = checks.iter().filter(|c| matches!(c.verdict, Verdict::Failed(_))).collect();
            assert!(failed.is_empty(), "{failed:#?}");
            for (name, _) in QA_SERVER_RULES {
                let check = checks.iter().find(|c| c.name == name).unwrap();
                assert!(matches!(check.verdict, Verdict::Passed(_)), "{check:?}");
            }
        }
    }

    #[tokio::test]
    async fn each_qa_server_rule_fails_alone_with_what_was_expected_found_and_the_fix() {
        let good = |rails_env, database, user, port| qa_env(rails_env, "qadb_k4", database, user, port);
        let cases = [
            (
                good("\"production\"", "qadb_k4", "qauser_m2", "3306"),
                "RAILS_ENV valid",
                "production.env: RAILS_ENV must be exactly production, staging or integration, found it in quotes: ECS keeps the quotes, \
                 so the app would look for an environment whose name includes them, which config/database.yml does not define — \
                 remove the quotes (write RAILS_ENV=production with no quotes) and upload the file again",
            ),
            (good("'staging'", "qadb_k4_staging", "qauser_m2", "3306"), "RAILS_ENV valid", "found it in quotes"),
            (good("production\t", "qadb_k4", "qauser_m2", "3306"), "RAILS_ENV valid", "found spaces before or after it"),
            (good("Staging", "qadb_k4_staging", "qauser_m2", "3306"), "RAILS_ENV valid", "with capital letters"),
            (good("development", "qadb_k4", "qauser_m2", "3306"), "RAILS_ENV valid", "found another value"),
            (
                good("staging", "qadb_k4", "qauser_m2", "3306"),
                "database name matches RAILS_ENV",
                "production.env: MYSQL_DATABASE must equal MYSQL_DATABASE_NAME_PREFIX followed by _staging (with RAILS_ENV=staging, \
                 qa_server's config/database.yml names the database so), found a different MYSQL_DATABASE — MariaDB creates \
                 MYSQL_DATABASE and grants MYSQL_USER that database only, so rake db:migrate would fail (qa_server's start script \
                 swallows it: the home page answers, every database page answers 500); make the two match and upload the file again",
            ),
            (
                good("production", "qadb_k4_production", "qauser_m2", "3306"),
                "database name matches RAILS_ENV",
                "MYSQL_DATABASE must equal MYSQL_DATABASE_NAME_PREFIX (with RAILS_ENV=production,",
            ),
            (
                good("integration", "qadb_k4_staging", "qauser_m2", "3306"),
                "database name matches RAILS_ENV",
                "MYSQL_DATABASE must equal MYSQL_DATABASE_NAME_PREFIX followed by _integration (with RAILS_ENV=integration,",
            ),
            (
                good("production", "qadb_k4", "root", "3306"),
                "MYSQL_USER not root",
                "production.env: MYSQL_USER must not be root, found root — MariaDB's entrypoint refuses MYSQL_USER=root",
            ),
            (
                good("production", "qadb_k4", "qauser_m2", "3307"),
                "MYSQL_PORT is 3306",
                "production.env: MYSQL_PORT must be 3306, found another value — Rails always connects to 3306",
            ),
            (
                good("production", "qadb_k4", "qauser_m2", "\"3306\""),
                "MYSQL_PORT is 3306",
                "MYSQL_PORT must be 3306, found it in quotes, which ECS keeps as part of the value —",
            ),
        ];
        for (text, check, expected) in cases {
            let checks = verdicts(&text).await;
            let failed: Vec<&Check> = checks.iter().filter(|c| matches!(c.verdict, Verdict::Failed(_))).collect();
            assert_eq!(failed.iter().map(|c| c.name).collect::<Vec<_>>(), [check], "{text:?}: {failed:#?}");
            let Verdict::Failed(reason) = &failed[0].verdict else { unreachable!() };
            assert!(reason.contains(expected), "{expected:?} not in {reason:?}");
            assert!(reason.contains("upload the file again"), "names the fix: {reason}");
        }
    }

    #[tokio::test]
    async fn a_password_that_breaks_database_yml_fails_naming_the_key_and_not_the_value() {
        for (password, expected) in [
            ("*Kx9-star", "MYSQL_PASSWORD starts with a character YAML reserves"),
            ("Kx9-pw #tail", "MYSQL_PASSWORD has ' #' inside"),
            ("\"Kx9-quoted\"", "MYSQL_PASSWORD is in quotes"),
            ("Kx9-a: b", "MYSQL_PASSWORD has ': ' inside"),
        ] {
            let text = qa_env("production", "qadb_k4", "qadb_k4", "qauser_m2", "3306")
                .replace("MYSQL_PASSWORD=Kx9-db-pw", &format!("MYSQL_PASSWORD={password}"));
            let checks = verdicts(&text).await;
            let failed: Vec<&Check> = checks.iter().filter(|c| matches!(c.verdict, Verdict::Failed(_))).collect();
            assert_eq!(failed.len(), 1, "{password}: {failed:#?}");
            assert_eq!(failed[0].name, "database.yml reads the values as written");
            let Verdict::Failed(reason) = &failed[0].verdict else { unreachable!() };
            assert!(reason.contains(expected), "{expected:?} not in {reason}");
            assert!(reason.contains("upload the file again"), "{reason}");
        }
    }

    #[tokio::test]
    async fn an_invalid_rails_env_leaves_the_database_name_undetermined() {
        let checks = verdicts(&qa_env("\"production\"", "qadb_k4", "qadb_k4_staging", "qauser_m2", "3306")).await;
        let database = checks.iter().find(|c| c.name == "database name matches RAILS_ENV").unwrap();
        assert_eq!(
            database.verdict,
            Verdict::NotDetermined(
                "not checked: RAILS_ENV is not production, staging or integration (see RAILS_ENV valid)".into()
            )
        );
    }

    #[tokio::test]
    async fn a_byte_order_mark_is_named_instead_of_a_bad_first_name() {
        let text = format!("\u{feff}{}", qa_env("production", "qadb_k4", "qadb_k4", "qauser_m2", "3306"));
        let checks = verdicts(&text).await;
        let failed: Vec<&Check> = checks.iter().filter(|c| matches!(c.verdict, Verdict::Failed(_))).collect();
        assert_eq!(failed.len(), 1, "{failed:#?}");
        assert_eq!(
            failed[0].verdict,
            Verdict::Failed(
                "production.env: expected VAR=VALUE lines with every required key set — saved with a UTF-8 byte-order mark (BOM), \
                 which ECS would read as part of the first name; save it as UTF-8 without BOM; fix the file (cfn/.env.example lists \
                 the keys) and upload it again"
                    .into()
            )
        );
    }

    #[tokio::test]
    async fn bucket_policy_deny_for_the_role_fails() {
        let policy = serde_json::json!({"Statement": [{"Sid": "LockedDown", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::lookup-bucket/*"}]});
        let failures = failures(FakeFacts { policy: Ok(Some(policy.to_string())), ..Default::default() }).await;
        assert!(failures[0].contains("LockedDown denies s3:GetObject to execution role"), "{failures:?}");
    }

    /// S3's answers for a missing object on AWS. moto answers 404 NoSuchKey either way; AWS
    /// answers 403 AccessDenied to a caller without s3:ListBucket on the bucket (S3 GetObject API
    /// reference, "Permissions"; aws-cli #2041). The S3 client and its error parsing are real.
    mod mocked_s3_because_moto_answers_404_for_a_missing_key_either_way {
        use aws_sdk_s3::operation::get_object::GetObjectOutput;
        use aws_smithy_mocks::{create_mock_http_client, mock, MockResponseInterceptor, Rule};

        use super::*;

        /// An S3 client whose every call is answered by `rules` (no `test-util` on aws-sdk-s3).
        fn mocked_s3(rules: &[&Rule]) -> aws_sdk_s3::Client {
            let interceptor = rules.iter().fold(MockResponseInterceptor::new(), |i, rule| i.with_rule(rule));
            let config = aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    "AKIDMOCKED",
                    "mocked",
                    None,
                    None,
                    "mocked",
                ))
                .http_client(create_mock_http_client())
                .interceptor(interceptor)
                .build();
            aws_sdk_s3::Client::from_conf(config)
        }

        /// The fake's facts, but the object is read from a mocked S3 through the real SDK call.
        struct WithMockedS3 {
            s3: aws_sdk_s3::Client,
        }

        impl EnvFileFacts for WithMockedS3 {
            async fn object(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, AwsError> {
                super::super::facts::get_object(&self.s3, bucket, key).await
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
                FakeFacts::default().simulate(role, action, resource).await
            }
        }

        fn s3_error(code: &str, message: &str) -> String {
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
                 <RequestId>4Q5JZ3CV0GHTVSW6</RequestId><HostId>mocked</HostId></Error>"
            )
        }

        /// GetObject answered by `status` and `body`: the report, after asserting one call was made.
        async fn report_for(status: u16, body: Option<String>) -> Report {
            let rule = mock!(aws_sdk_s3::Client::get_object).sequence().http_status(status, body).build();
            let report = run_checks(&WithMockedS3 { s3: mocked_s3(&[&rule]) }, &properties()).await;
            assert_eq!(rule.num_calls(), 1);
            report
        }

        fn only_failure(report: &Report) -> (&'static str, String) {
            let failed = report.failed();
            assert_eq!(failed.len(), 1, "{report:#?}");
            match &failed[0].verdict {
                Verdict::Failed(reason) => (failed[0].name, reason.clone()),
                _ => unreachable!(),
            }
        }

        #[tokio::test]
        async fn aws_answers_403_for_a_missing_key_without_list_bucket_mocked() {
            let report = report_for(403, Some(s3_error("AccessDenied", "Access Denied"))).await;
            let (name, reason) = only_failure(&report);
            assert_eq!(name, "object present");
            assert_eq!(
                reason,
                "object s3://lookup-bucket/production.env: expected the env file, found AccessDenied: Access Denied — the object is \
                 missing or this function may not read it (S3 answers 403, not 404, for a missing key to a caller without s3:ListBucket \
                 on the bucket); upload it if it is missing (aws s3 cp production.env s3://lookup-bucket/production.env), else give the \
                 check function s3:GetObject on arn:aws:s3:::lookup-bucket/production.env, and s3:ListBucket on arn:aws:s3:::lookup-bucket \
                 so that a missing object reads as missing"
            );
            let contents = report.checks.iter().find(|c| c.name == "contents complete").unwrap();
            assert!(matches!(contents.verdict, Verdict::NotDetermined(_)), "{contents:?}");
        }

        #[tokio::test]
        async fn aws_answers_403_without_a_body_the_same_mocked() {
            let (name, reason) = only_failure(&report_for(403, None).await);
            assert_eq!(name, "object present");
            assert!(reason.contains("the object is missing or this function may not read it"), "{reason}");
        }

        #[tokio::test]
        async fn with_list_bucket_a_missing_key_answers_404_no_such_key_mocked() {
            let body = s3_error("NoSuchKey", "The specified key does not exist.");
            let (name, reason) = only_failure(&report_for(404, Some(body)).await);
            assert_eq!(name, "object present");
            assert_eq!(
                reason,
                "object s3://lookup-bucket/production.env: expected the env file, found no such key — upload it \
                 (aws s3 cp production.env s3://lookup-bucket/production.env) or fix the key"
            );
            let (_, reason) = only_failure(&report_for(404, None).await);
            assert!(reason.contains("found no such key"), "a 404 without a body too: {reason}");
        }

        #[tokio::test]
        async fn a_missing_bucket_is_not_a_missing_key_mocked() {
            let report = report_for(404, Some(s3_error("NoSuchBucket", "The specified bucket does not exist"))).await;
            assert_eq!(report.checks.len(), 1, "{report:#?}");
            assert_eq!(report.checks[0].name, "bucket exists");
        }

        #[tokio::test]
        async fn an_object_read_through_the_sdk_is_checked_mocked() {
            let rule = mock!(aws_sdk_s3::Client::get_object).then_output(|| {
                GetObjectOutput::builder()
                    .body(aws_sdk_s3::primitives::ByteStream::from_static(super::COMPLETE.as_bytes()))
                    .build()
            });
            let report = run_checks(&WithMockedS3 { s3: mocked_s3(&[&rule]) }, &properties()).await;
            assert!(report.failed().is_empty(), "{report:#?}");
        }
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
