#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cfn_custom_resource::lambda::run(qa_lookup_functions::resources().await).await
}
