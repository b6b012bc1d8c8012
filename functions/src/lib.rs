//! The resource types qa-lookup-deploy's Lambda serves. Their `Type` names are listed in the README.

use cfn_custom_resource::Resources;

#[cfg(feature = "fault-injection")]
pub mod test_fault;

/// Every resource type this function serves.
pub fn resources() -> Resources {
    let resources = Resources::new();
    #[cfg(feature = "fault-injection")]
    let resources = resources.with(test_fault::TestFault);
    resources
}
