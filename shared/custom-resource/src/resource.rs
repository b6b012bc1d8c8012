//! What a custom resource type implements, and the registry the runner dispatches on.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// What a successful Create, Update or Delete answers — or, from [`Outcome::handed_off`], that
/// another invocation of the function answers instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Stable across updates; a different id on Update tells CloudFormation to replace.
    pub physical_id: String,
    /// Readable with `!GetAtt`. Shown in stack events unless `no_echo`.
    pub data: HashMap<String, String>,
    pub no_echo: bool,
    handed_off: bool,
}

impl Outcome {
    pub fn new(physical_id: impl Into<String>) -> Self {
        Outcome { physical_id: physical_id.into(), data: HashMap::new(), no_echo: false, handed_off: false }
    }

    /// The handler has passed the request on to a new invocation of the function (with
    /// [`RequestContext::event`]), which will answer it: this invocation sends no answer.
    /// Return it only once the hand-off is certain; if it failed, return a [`Failure`] instead,
    /// or no one answers and the stack waits for its ServiceTimeout.
    pub fn handed_off() -> Self {
        Outcome { handed_off: true, ..Outcome::new("") }
    }

    pub fn is_handed_off(&self) -> bool {
        self.handed_off
    }

    pub fn with_data(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.data.insert(key.into(), value.to_string());
        self
    }
}

/// A failure whose reason a person can act on: the resource, what was expected, what was
/// found, and the fix. It becomes the FAILED answer's `Reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
}

impl Failure {
    pub fn new(reason: impl Into<String>) -> Self {
        Failure { reason: reason.into() }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// What a handler knows of the request besides its properties.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub stack_id: String,
    pub request_id: String,
    pub logical_id: String,
    pub resource_type: String,
    /// When the runner stops waiting for the handler and answers FAILED itself.
    pub handler_deadline: Instant,
    /// The event as CloudFormation sent it, for handlers that hand work on to a new invocation.
    pub event: Value,
}

/// A custom resource type. Handlers must be idempotent: CloudFormation's asynchronous
/// invocation can deliver one request twice (REFERENCE.md, "CloudFormation custom resources").
pub trait CustomResource: Send + Sync + 'static {
    /// The `Type` in templates, e.g. `Custom::SeedAuthorities`.
    const TYPE: &'static str;
    type Properties: DeserializeOwned + Send + 'static;

    fn create(
        &self,
        context: &RequestContext,
        properties: Self::Properties,
    ) -> impl Future<Output = Result<Outcome, Failure>> + Send;

    /// `old_properties` is `None` when the old ones no longer parse (the type's schema changed).
    /// By default an Update does what a Create does; return the same physical id to keep the
    /// resource, another to have CloudFormation replace it.
    fn update(
        &self,
        context: &RequestContext,
        physical_id: &str,
        properties: Self::Properties,
        old_properties: Option<Self::Properties>,
    ) -> impl Future<Output = Result<Outcome, Failure>> + Send {
        let _ = (physical_id, old_properties);
        self.create(context, properties)
    }

    /// `properties` is `None` when they no longer parse: a Delete must still be able to succeed.
    fn delete(
        &self,
        context: &RequestContext,
        physical_id: &str,
        properties: Option<Self::Properties>,
    ) -> impl Future<Output = Result<Outcome, Failure>> + Send;
}

/// One request, its properties still raw JSON; the runner has already checked the envelope.
#[derive(Debug, Clone)]
pub enum Action {
    Create { properties: Value },
    Update { physical_id: String, properties: Value, old_properties: Value },
    Delete { physical_id: String, properties: Value },
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

trait ErasedResource: Send + Sync {
    fn handle(self: Arc<Self>, context: RequestContext, action: Action) -> BoxFuture<Result<Outcome, Failure>>;
}

impl<R: CustomResource> ErasedResource for R {
    fn handle(self: Arc<Self>, context: RequestContext, action: Action) -> BoxFuture<Result<Outcome, Failure>> {
        Box::pin(async move {
            let invalid = |message: String| {
                Failure::new(format!(
                    "{} {}: {message}. Fix the resource's Properties in the template and update the stack.",
                    R::TYPE,
                    context.logical_id
                ))
            };
            match action {
                Action::Create { properties } => {
                    let properties = crate::properties::parse(properties).map_err(invalid)?;
                    self.create(&context, properties).await
                }
                Action::Update { physical_id, properties, old_properties } => {
                    let properties = crate::properties::parse(properties).map_err(invalid)?;
                    let old_properties = crate::properties::parse(old_properties).ok();
                    self.update(&context, &physical_id, properties, old_properties).await
                }
                Action::Delete { physical_id, properties } => {
                    let properties = crate::properties::parse(properties).ok();
                    self.delete(&context, &physical_id, properties).await
                }
            }
        })
    }
}

/// The resource types one function serves, by `Type`.
#[derive(Clone, Default)]
pub struct Resources {
    by_type: BTreeMap<&'static str, Arc<dyn ErasedResource>>,
}

impl Resources {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with<R: CustomResource>(mut self, resource: R) -> Self {
        self.by_type.insert(R::TYPE, Arc::new(resource));
        self
    }

    pub fn types(&self) -> Vec<&'static str> {
        self.by_type.keys().copied().collect()
    }

    pub(crate) fn serves(&self, resource_type: &str) -> bool {
        self.by_type.contains_key(resource_type)
    }

    /// Runs the handler; `None` when the type is not served.
    pub(crate) fn dispatch(
        &self,
        context: RequestContext,
        action: Action,
    ) -> Option<BoxFuture<Result<Outcome, Failure>>> {
        let resource = self.by_type.get(context.resource_type.as_str())?.clone();
        Some(resource.handle(context, action))
    }
}
