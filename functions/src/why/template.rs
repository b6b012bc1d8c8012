//! What `why` reads in the stack's template (`get-template`, JSON or YAML): which functions serve a
//! custom resource and where they log, and the stack's ECS services.
//!
//! The YAML reader keeps the text of a short-form intrinsic and drops its tag (`!Ref X` reads as
//! `X`, `!GetAtt F.Arn` as `F.Arn`), so a value that names one of the template's resources (or
//! `Resource.Attribute`) is read as a reference to it; any other text is a literal.

use std::collections::HashMap;

use yaml_rust2::{Yaml, YamlLoader};

/// A template value: one of its resources, or a literal (a name, an ARN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    Resource(String),
    Literal(String),
}

/// A function serving a custom resource, and the log group its LoggingConfig names (`None`: Lambda's
/// default, `/aws/lambda/<function name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInTemplate {
    pub function: Named,
    pub log_group: Option<Named>,
}

pub struct Template {
    resources: HashMap<String, Yaml>,
}

impl Template {
    pub fn parse(body: &str) -> Result<Template, String> {
        let docs = YamlLoader::load_from_str(body).map_err(|error| format!("the template does not parse: {error}"))?;
        let resources = docs
            .first()
            .and_then(|doc| doc["Resources"].as_hash())
            .map(|hash| {
                hash.iter().filter_map(|(name, value)| Some((name.as_str()?.to_owned(), value.clone()))).collect()
            })
            .unwrap_or_default();
        Ok(Template { resources })
    }

    pub fn resource_type(&self, logical_id: &str) -> Option<&str> {
        self.resources.get(logical_id)?["Type"].as_str()
    }

    fn property(&self, logical_id: &str, name: &str) -> Option<&Yaml> {
        let value = &self.resources.get(logical_id)?["Properties"][name];
        (!value.is_badvalue() && !value.is_null()).then_some(value)
    }

    /// `Ref`, `Fn::GetAtt` (long or short form) or a plain string, as a resource or a literal.
    fn named(&self, value: &Yaml) -> Option<Named> {
        let target = match value {
            Yaml::String(text) => text.clone(),
            Yaml::Hash(_) => {
                let reference = &value["Ref"];
                let attribute = &value["Fn::GetAtt"];
                let name = reference
                    .as_str()
                    .or_else(|| attribute.as_str())
                    .or_else(|| attribute.as_vec().and_then(|parts| parts.first()?.as_str()))?;
                return Some(Named::Resource(name.split('.').next().unwrap_or(name).to_owned()));
            }
            _ => return None,
        };
        let head = target.split('.').next().unwrap_or(&target);
        Some(if self.resources.contains_key(head) { Named::Resource(head.to_owned()) } else { Named::Literal(target) })
    }

    /// The functions behind a custom resource: its `ServiceToken`, and a `WorkerFunction` it hands the
    /// work to (`Custom::SeedAuthorities`), each with its LoggingConfig's log group.
    pub fn functions_of(&self, logical_id: &str) -> Vec<FunctionInTemplate> {
        ["ServiceToken", "WorkerFunction"]
            .iter()
            .filter_map(|property| self.named(self.property(logical_id, property)?))
            .map(|function| {
                let log_group = match &function {
                    Named::Resource(name) => {
                        self.resources.get(name).and_then(|f| self.named(&f["Properties"]["LoggingConfig"]["LogGroup"]))
                    }
                    Named::Literal(_) => None,
                };
                FunctionInTemplate { function, log_group }
            })
            .collect()
    }

    /// The logical ids of the template's ECS services, with their `Cluster` property.
    pub fn ecs_services(&self) -> Vec<(String, Option<Named>)> {
        let mut services: Vec<(String, Option<Named>)> = self
            .resources
            .keys()
            .filter(|name| self.resource_type(name) == Some("AWS::ECS::Service"))
            .map(|name| (name.clone(), self.property(name, "Cluster").and_then(|c| self.named(c))))
            .collect();
        services.sort_by(|a, b| a.0.cmp(&b.0));
        services
    }
}

/// A function's name from its ARN (`arn:aws:lambda:region:account:function:NAME[:qualifier]`), or
/// the name itself.
pub fn function_name(arn_or_name: &str) -> String {
    match arn_or_name.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest).to_owned(),
        None => arn_or_name.to_owned(),
    }
}

/// Lambda's default log group for a function (Lambda developer guide, "Configuring CloudWatch log
/// groups": `/aws/lambda/<function name>`).
pub fn default_log_group(function: &str) -> String {
    format!("/aws/lambda/{function}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
Resources:
  CheckAndWaitFunctionLogGroup:
    Type: AWS::Logs::LogGroup
  SeedFunction:
    Type: AWS::Lambda::Function
    Properties:
      LoggingConfig: {LogGroup: !Ref SeedFunctionLogGroup}
  SeedFunctionLogGroup:
    Type: AWS::Logs::LogGroup
  CheckAndWaitFunction:
    Type: AWS::Lambda::Function
    Properties:
      LoggingConfig: {LogGroup: !Ref CheckAndWaitFunctionLogGroup}
  PlainFunction:
    Type: AWS::Lambda::Function
  EnvFileCheck:
    Type: Custom::EnvFileCheck
    Properties:
      ServiceToken: !GetAtt CheckAndWaitFunction.Arn
  SeedAuthorities:
    Type: Custom::SeedAuthorities
    Properties:
      ServiceToken: !GetAtt CheckAndWaitFunction.Arn
      WorkerFunction: !Ref SeedFunction
  Elsewhere:
    Type: AWS::CloudFormation::CustomResource
    Properties:
      ServiceToken: arn:aws:lambda:us-east-1:123456789012:function:shared-fn
  Cluster:
    Type: AWS::ECS::Cluster
  AppService:
    Type: AWS::ECS::Service
    Properties:
      Cluster: !Ref Cluster
"#;

    fn resource(name: &str) -> Named {
        Named::Resource(name.into())
    }

    #[test]
    fn a_custom_resource_is_served_by_the_function_of_its_service_token_logging_to_its_log_group() {
        let template = Template::parse(YAML).unwrap();
        assert_eq!(
            template.functions_of("EnvFileCheck"),
            [FunctionInTemplate {
                function: resource("CheckAndWaitFunction"),
                log_group: Some(resource("CheckAndWaitFunctionLogGroup"))
            }]
        );
    }

    #[test]
    fn the_seed_is_served_by_two_functions_each_with_its_log_group() {
        let template = Template::parse(YAML).unwrap();
        let functions = template.functions_of("SeedAuthorities");
        assert_eq!(functions.len(), 2);
        assert_eq!(functions[1].function, resource("SeedFunction"));
        assert_eq!(functions[1].log_group, Some(resource("SeedFunctionLogGroup")));
    }

    #[test]
    fn a_literal_arn_is_a_function_elsewhere_with_the_default_log_group() {
        let template = Template::parse(YAML).unwrap();
        let functions = template.functions_of("Elsewhere");
        let Named::Literal(arn) = &functions[0].function else { panic!("{functions:?}") };
        assert_eq!(function_name(arn), "shared-fn");
        assert_eq!(default_log_group(&function_name(arn)), "/aws/lambda/shared-fn");
        assert_eq!(functions[0].log_group, None);
    }

    #[test]
    fn json_templates_and_long_form_intrinsics_read_the_same() {
        let json = r#"{"Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"LoggingConfig": {"LogGroup": {"Ref": "Logs"}}}},
            "Logs": {"Type": "AWS::Logs::LogGroup"},
            "Check": {"Type": "Custom::EnvFileCheck", "Properties": {"ServiceToken": {"Fn::GetAtt": ["Fn", "Arn"]}}}}}"#;
        let template = Template::parse(json).unwrap();
        assert_eq!(
            template.functions_of("Check"),
            [FunctionInTemplate { function: resource("Fn"), log_group: Some(resource("Logs")) }]
        );
    }

    #[test]
    fn the_ecs_services_come_with_their_cluster() {
        let template = Template::parse(YAML).unwrap();
        assert_eq!(template.ecs_services(), [("AppService".to_owned(), Some(resource("Cluster")))]);
    }
}
