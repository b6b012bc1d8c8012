//! `Custom::TestFault`: a resource type that misbehaves on request, so the end-to-end tests can
//! show that every fault still ends in one answer. Built only with the `fault-injection` feature.

use cfn_custom_resource::{lenient, CustomResource, Failure, Outcome, RequestContext};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum Behaviour {
    Succeed,
    Fail,
    Panic,
    Hang,
    FailWithLongReason,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    pub behaviour: Behaviour,
    /// Typed properties as CloudFormation sends them: strings.
    #[serde(default, deserialize_with = "lenient::option_u64")]
    pub count: Option<u64>,
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub enabled: Option<bool>,
}

pub struct TestFault;

impl TestFault {
    async fn behave(&self, context: &RequestContext, properties: &Properties) -> Result<Outcome, Failure> {
        match properties.behaviour {
            Behaviour::Succeed => Ok(Outcome::new(format!("test-fault-{}", context.logical_id))
                .with_data("Count", properties.count.unwrap_or(0))
                .with_data("Enabled", properties.enabled.unwrap_or(false))),
            Behaviour::Fail => Err(Failure::new(format!(
                "Custom::TestFault {}: asked to fail — expected Behaviour Succeed, found Fail; set Behaviour to Succeed",
                context.logical_id
            ))),
            Behaviour::Panic => panic!("Custom::TestFault asked to panic"),
            Behaviour::Hang => std::future::pending().await,
            Behaviour::FailWithLongReason => Err(Failure::new(format!(
                "Custom::TestFault {}: a long reason: {}",
                context.logical_id,
                "ünïcödé ".repeat(1300)
            ))),
        }
    }
}

impl CustomResource for TestFault {
    const TYPE: &'static str = "Custom::TestFault";
    type Properties = Properties;

    async fn create(&self, context: &RequestContext, properties: Properties) -> Result<Outcome, Failure> {
        self.behave(context, &properties).await
    }

    async fn delete(
        &self,
        context: &RequestContext,
        physical_id: &str,
        properties: Option<Properties>,
    ) -> Result<Outcome, Failure> {
        match properties {
            Some(properties) => self.behave(context, &properties).await.map(|_| Outcome::new(physical_id)),
            None => Ok(Outcome::new(physical_id)),
        }
    }
}
