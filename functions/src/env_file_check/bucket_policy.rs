//! The part of "can the execution role read it" that IAM's simulator cannot answer for a role:
//! explicit Deny statements in the bucket policy (REFERENCE.md: SimulatePrincipalPolicy's
//! ResourcePolicy input is for IAM users only).

use serde_json::Value;

/// A Deny statement that stops `role_arn` from `action` on `resource`.
#[derive(Debug, PartialEq, Eq)]
pub enum DenyMatch {
    /// It applies: the statement's Sid (or its position).
    Denies(String),
    /// It may apply, depending on a Condition or a Not* element the check does not evaluate.
    MayDeny(String),
}

pub fn deny_statements(policy: &str, role_arn: &str, action: &str, resource: &str) -> Result<Vec<DenyMatch>, String> {
    let policy: Value = serde_json::from_str(policy).map_err(|e| format!("the bucket policy is not JSON: {e}"))?;
    let statements = match &policy["Statement"] {
        Value::Array(statements) => statements.clone(),
        statement @ Value::Object(_) => vec![statement.clone()],
        _ => return Ok(Vec::new()),
    };
    let account = role_arn.split(':').nth(4).unwrap_or_default();
    let mut found = Vec::new();
    for (index, statement) in statements.iter().enumerate() {
        if statement["Effect"] != "Deny" {
            continue;
        }
        let name = statement["Sid"].as_str().map(str::to_owned).unwrap_or_else(|| format!("statement {}", index + 1));
        let principal =
            statement.get("NotPrincipal").is_some() || principal_matches(&statement["Principal"], role_arn, account);
        let action = statement.get("NotAction").is_some()
            || strings(&statement["Action"])
                .iter()
                .any(|p| glob(&p.to_ascii_lowercase(), &action.to_ascii_lowercase()));
        let resource =
            statement.get("NotResource").is_some() || strings(&statement["Resource"]).iter().any(|p| glob(p, resource));
        if !(principal && action && resource) || only_denies_plain_http(statement) {
            continue;
        }
        let uncertain =
            ["NotPrincipal", "NotAction", "NotResource", "Condition"].iter().any(|k| statement.get(*k).is_some());
        found.push(if uncertain { DenyMatch::MayDeny(name) } else { DenyMatch::Denies(name) });
    }
    Ok(found)
}

/// The common TLS-only statement: ECS fetches env files over HTTPS, so it never applies.
fn only_denies_plain_http(statement: &Value) -> bool {
    statement["Condition"] == serde_json::json!({"Bool": {"aws:SecureTransport": "false"}})
}

fn principal_matches(principal: &Value, role_arn: &str, account: &str) -> bool {
    if principal == "*" {
        return true;
    }
    strings(&principal["AWS"])
        .iter()
        .any(|p| p == "*" || p == role_arn || p == account || *p == format!("arn:aws:iam::{account}:root"))
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// IAM's wildcards: `*` any run of characters, `?` any one.
fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut p, mut t, mut star, mut mark) = (0, 0, None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ROLE: &str = "arn:aws:iam::123456789012:role/lookup-execution";
    const OBJECT: &str = "arn:aws:s3:::lookup-bucket/production.env";

    fn check(statement: Value) -> Vec<DenyMatch> {
        let policy = json!({"Version": "2012-10-17", "Statement": [statement]}).to_string();
        deny_statements(&policy, ROLE, "s3:GetObject", OBJECT).unwrap()
    }

    #[test]
    fn deny_to_everyone_on_the_object_applies() {
        let found = check(
            json!({"Sid": "NoReads", "Effect": "Deny", "Principal": "*", "Action": "s3:Get*", "Resource": "arn:aws:s3:::lookup-bucket/*"}),
        );
        assert_eq!(found, [DenyMatch::Denies("NoReads".into())]);
    }

    #[test]
    fn deny_to_the_role_or_its_account_applies() {
        for principal in
            [json!({"AWS": ROLE}), json!({"AWS": ["arn:aws:iam::123456789012:root"]}), json!({"AWS": "123456789012"})]
        {
            let found = check(json!({"Effect": "Deny", "Principal": principal, "Action": "s3:*", "Resource": OBJECT}));
            assert_eq!(found, [DenyMatch::Denies("statement 1".into())]);
        }
    }

    #[test]
    fn deny_elsewhere_or_to_others_does_not_apply() {
        assert!(
            check(json!({"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": OBJECT})).is_empty()
        );
        assert!(check(
            json!({"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::other/*"})
        )
        .is_empty());
        assert!(check(json!({"Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "*", "Resource": "*"})).is_empty());
        assert!(check(json!({"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"})).is_empty());
    }

    #[test]
    fn conditional_deny_may_apply_except_the_tls_only_one() {
        let found =
            check(json!({"Sid": "FromVpc", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": OBJECT,
            "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}}));
        assert_eq!(found, [DenyMatch::MayDeny("FromVpc".into())]);
        let tls_only =
            check(json!({"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": OBJECT,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}));
        assert!(tls_only.is_empty());
    }
}
