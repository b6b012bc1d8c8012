//! The local AWS test bed: moto on 127.0.0.1, the real Lambda binary under the cargo-lambda
//! runtime emulator, and CloudFormation's part — events whose ResponseURL is a real pre-signed
//! S3 URL, and the stored answers read back. Every process it starts stops when its guard drops,
//! also when a test fails.

mod endpoint;
mod function;
pub mod lifecycle;
mod logs;
mod moto;
mod process;
mod proxy;
mod stack;
mod testbed;

pub use endpoint::{RecordedRequest, ScriptedEndpoint};
pub use function::{FunctionOptions, LambdaFunction};
pub use logs::{Invocations, Target};
pub use moto::Moto;
pub use process::{client_env, free_port, workspace_root};
pub use proxy::{Behaviour, Proxy};
pub use stack::{StackBed, StackEvent};
pub use testbed::{Event, StoredResponse, TestBed};
