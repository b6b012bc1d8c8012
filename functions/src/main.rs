//! The Lambda: CloudFormation's custom-resource requests, and the live sync's SQS batches.

use qa_lookup_functions::{aws, live_sync, resources_with};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = aws::lambda_sdk_config().await;
    let config = &config;
    cfn_custom_resource::lambda::run_with(resources_with(config), |event| async move {
        live_sync::handle(config, &event.payload, event.context.deadline()).await
    })
    .await
}
