//! The resource types qa-lookup-deploy's Lambda serves. Their `Type` names are listed in the README.

use cfn_custom_resource::Resources;

pub mod authorities_publish;
pub mod authorities_reload;
pub mod aws;
pub mod cli_preflight;
pub mod doctor;
pub mod env_file_check;
pub mod live_sync;
pub mod seed_authorities;
pub mod services_healthy;
pub mod why;

#[cfg(feature = "fault-injection")]
pub mod test_fault;

/// Every resource type this function serves, with the SDK's standard configuration.
pub async fn resources() -> Resources {
    resources_with(&aws::sdk_config().await)
}

/// Every resource type this function serves, with `config`.
pub fn resources_with(config: &aws_config::SdkConfig) -> Resources {
    let resources = Resources::new()
        .with(env_file_check::EnvFileCheck::new(config))
        .with(seed_authorities::SeedAuthorities::new(config))
        .with(services_healthy::ServicesHealthy::new(config));
    #[cfg(feature = "fault-injection")]
    let resources = resources.with(test_fault::TestFault);
    resources
}
