//! The CloudFormation custom-resource protocol, apart from any AWS service a resource works with.
//!
//! A resource type implements [`CustomResource`]; [`lambda::run`] serves a set of them as a
//! Lambda function whose every request ends in exactly one answer to CloudFormation.

pub mod lambda;
pub mod properties;
pub mod resource;
pub mod response;
pub mod runner;

pub use properties::lenient;
pub use resource::{CustomResource, Failure, Outcome, RequestContext, Resources};
