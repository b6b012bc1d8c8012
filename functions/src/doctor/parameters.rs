//! The parameter files `create-stack --parameters file://…` reads, judged against the template's
//! own Parameters section (embedded at build time, so the doctor knows the shipped defaults and
//! rules): unknown keys, missing values, AllowedValues, AllowedPattern, MinValue/MaxValue. Those
//! are what CloudFormation rejects a create-stack for before it creates anything.

use std::collections::BTreeMap;
use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

use super::{Outcome, Row};

pub const PREREQUISITES_TEMPLATE: &str = include_str!("../../../cfn/aws-prerequisites.yaml");
pub const DEPLOY_TEMPLATE: &str = include_str!("../../../cfn/aws-deploy.yaml");

/// One parameter as the template declares it.
#[derive(Debug, Clone, Default)]
struct Declared {
    default: Option<String>,
    allowed_values: Vec<String>,
    allowed_pattern: Option<String>,
    min_value: Option<f64>,
    max_value: Option<f64>,
}

/// A stack's parameters: the files' values over the template's defaults.
#[derive(Debug, Clone)]
pub struct Parameters {
    /// The files, for messages.
    pub files: String,
    given: BTreeMap<String, String>,
    declared: BTreeMap<String, Declared>,
}

fn scalar(yaml: &Yaml) -> Option<String> {
    match yaml {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn declared(template: &str) -> BTreeMap<String, Declared> {
    let Ok(documents) = YamlLoader::load_from_str(template) else {
        return BTreeMap::new();
    };
    let Some(parameters) = documents.first().and_then(|d| d["Parameters"].as_hash()) else {
        return BTreeMap::new();
    };
    parameters
        .iter()
        .filter_map(|(name, body)| {
            let number = |key: &str| scalar(&body[key]).and_then(|v| v.parse().ok());
            let declared = Declared {
                default: scalar(&body["Default"]),
                allowed_values: body["AllowedValues"]
                    .as_vec()
                    .map(|v| v.iter().filter_map(scalar).collect())
                    .unwrap_or_default(),
                allowed_pattern: scalar(&body["AllowedPattern"]),
                min_value: number("MinValue"),
                max_value: number("MaxValue"),
            };
            Some((name.as_str()?.to_owned(), declared))
        })
        .collect()
}

impl Parameters {
    /// Reads `files` in order (later values win, as in `make deploy`) for `template`. An
    /// unreadable file or one not in CloudFormation's format is a usage mistake, said in one line.
    pub fn read(template: &str, files: &[&Path]) -> Result<Parameters, String> {
        let mut given = BTreeMap::new();
        for file in files {
            let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            given.extend(parse(&text).map_err(|e| format!("{}: {e}", file.display()))?);
        }
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        Ok(Parameters { files: names.join(" + "), given, declared: declared(template) })
    }

    /// For tests: values given directly.
    pub fn from_values(template: &str, values: &[(&str, &str)]) -> Parameters {
        Parameters {
            files: "(given)".into(),
            given: values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            declared: declared(template),
        }
    }

    /// The given value, else the template's default.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.given.get(key).or_else(|| self.declared.get(key)?.default.as_ref()).map(String::as_str)
    }

    pub fn value(&self, key: &str) -> &str {
        self.get(key).unwrap_or_default()
    }

    /// A comma-separated value as its items.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.value(key).split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }

    /// What CloudFormation would refuse before creating anything; one passing row when nothing.
    pub fn rows(&self, stack: &str) -> Vec<Row> {
        let mut problems = Vec::new();
        for key in self.given.keys().filter(|key| !self.declared.contains_key(*key)) {
            problems.push(format!("{key} is not a parameter of the template (create-stack fails: \"Parameters: [{key}] do not exist in the template\") — remove it or fix its name"));
        }
        for (key, rule) in &self.declared {
            let Some(value) = self.get(key) else {
                problems.push(format!("{key} has no value and no default (create-stack fails: \"Parameters: [{key}] must have values\") — add it to {}", self.files));
                continue;
            };
            problems.extend(rule_problem(key, value, rule));
        }
        let area = "Parameters";
        if problems.is_empty() {
            let check =
                format!("{stack}: {} ({} given, the rest the template's defaults)", self.files, self.given.len());
            return vec![Row::new(area, check, Outcome::Passed("every value within the template's rules".into()))];
        }
        problems
            .into_iter()
            .map(|problem| Row::new(area, format!("{stack}: {}", self.files), Outcome::Failed(problem)))
            .collect()
    }
}

fn rule_problem(key: &str, value: &str, rule: &Declared) -> Option<String> {
    if !rule.allowed_values.is_empty() && !rule.allowed_values.iter().any(|allowed| allowed == value) {
        return Some(format!("{key}={value:?}: expected one of {} — fix the value", rule.allowed_values.join(", ")));
    }
    if let Some(pattern) = &rule.allowed_pattern {
        // CloudFormation matches the whole value; the templates' patterns are anchored.
        let matches = regex_lite::Regex::new(pattern).map(|re| re.is_match(value)).unwrap_or(true);
        if !matches {
            return Some(format!(
                "{key}={value:?}: does not match the template's AllowedPattern {pattern} — fix the value"
            ));
        }
    }
    if rule.min_value.is_some() || rule.max_value.is_some() {
        let number: Option<f64> = value.parse().ok();
        let low = rule.min_value.unwrap_or(f64::MIN);
        let high = rule.max_value.unwrap_or(f64::MAX);
        if !number.is_some_and(|n| (low..=high).contains(&n)) {
            return Some(format!("{key}={value:?}: expected a number from {low} to {high} — fix the value"));
        }
    }
    None
}

/// `[{"ParameterKey": …, "ParameterValue": …}, …]`, the format `--parameters file://` reads.
fn parse(text: &str) -> Result<BTreeMap<String, String>, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        parameter_key: String,
        parameter_value: Option<String>,
    }
    let entries: Vec<Entry> = serde_json::from_str(text).map_err(|e| {
        format!("not a CloudFormation parameters file ({e}): expected [{{\"ParameterKey\": \"…\", \"ParameterValue\": \"…\"}}, …]")
    })?;
    Ok(entries.into_iter().map(|e| (e.parameter_key, e.parameter_value.unwrap_or_default())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_parameters_are_read_despite_their_intrinsic_function_tags() {
        let deploy = declared(DEPLOY_TEMPLATE);
        assert_eq!(deploy["AuthoritiesPrefix"].default.as_deref(), Some("authorities/"));
        assert_eq!(deploy["InstanceType"].default.as_deref(), Some("m5.large"));
        assert_eq!(deploy["AppDesiredCount"].max_value, Some(4.0));
        assert!(deploy["LambdaCodeBucket"].default.is_none());
        let prerequisites = declared(PREREQUISITES_TEMPLATE);
        assert!(prerequisites.contains_key("SubnetIds") && prerequisites["AWSVpcId"].default.is_none());
    }

    #[test]
    fn unknown_missing_and_out_of_rule_values_are_each_a_row_with_the_fix() {
        let parameters = Parameters::from_values(
            DEPLOY_TEMPLATE,
            &[("LambdaCodeKey", "code.tar"), ("AppDesiredCount", "9"), ("Typo", "x"), ("LambdaArchitecture", "arm")],
        );
        let rows = parameters.rows("lookup-service");
        let text: Vec<&str> = rows
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Failed(why) => Some(why.as_str()),
                _ => None,
            })
            .collect();
        let all = text.join("\n");
        assert!(all.contains("Typo is not a parameter"), "{all}");
        assert!(all.contains("LambdaCodeBucket has no value and no default"), "{all}");
        assert!(all.contains("LambdaCodeKey=\"code.tar\": does not match"), "{all}");
        assert!(all.contains("AppDesiredCount=\"9\": expected a number from 1 to 4"), "{all}");
        assert!(all.contains("LambdaArchitecture=\"arm\": expected one of arm64, x86_64"), "{all}");
    }

    #[test]
    fn the_shipped_examples_are_within_the_rules() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cfn");
        for (template, example) in
            [(PREREQUISITES_TEMPLATE, "prerequisites.env.example"), (DEPLOY_TEMPLATE, "deploy.env.example")]
        {
            let parameters = Parameters::read(template, &[&root.join(example)]).unwrap();
            let rows = parameters.rows("example");
            assert!(rows.iter().all(|r| matches!(r.outcome, Outcome::Passed(_))), "{example}: {rows:?}");
        }
    }

    #[test]
    fn a_file_in_another_format_is_one_line_naming_the_expected_one() {
        let error = parse("{\"LambdaCodeKey\": \"x.zip\"}").unwrap_err();
        assert!(error.contains("expected [{\"ParameterKey\""), "{error}");
    }
}
