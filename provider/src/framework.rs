//! The provider's own, Terraform-native vocabulary: diagnostics with attribute paths, and the
//! traits each resource and data source implements. The gRPC layer ([`crate::grpc`]) translates between
//! these and protobuf/msgpack; resources never see either.

use std::fmt;

use async_trait::async_trait;

use crate::provider::ProviderState;
use crate::schema::Schema;
use crate::value::Value;

/// One step of an attribute path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathStep {
    /// An attribute of an object.
    Attr(String),
    /// A map key.
    Key(String),
    /// A list index.
    Index(i64),
}

/// A path to an attribute (`targets[0].vault_url`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttrPath(pub Vec<PathStep>);

impl AttrPath {
    /// The path of a top-level attribute.
    pub fn attr(name: &str) -> Self {
        AttrPath(vec![PathStep::Attr(name.to_string())])
    }
    /// This path followed by an attribute.
    pub fn then_attr(mut self, name: &str) -> Self {
        self.0.push(PathStep::Attr(name.to_string()));
        self
    }
    /// This path followed by a list index.
    pub fn then_index(mut self, i: i64) -> Self {
        self.0.push(PathStep::Index(i));
        self
    }
    /// This path followed by a map key.
    pub fn then_key(mut self, k: &str) -> Self {
        self.0.push(PathStep::Key(k.to_string()));
        self
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Attr(a) if i == 0 => write!(f, "{a}")?,
                PathStep::Attr(a) => write!(f, ".{a}")?,
                PathStep::Key(k) => write!(f, "[\"{k}\"]")?,
                PathStep::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Error or warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Stops the operation.
    Error,
    /// Shown to the user; the operation continues.
    Warning,
}

/// A diagnostic as Terraform shows it: a one-line summary, a detail (hints go here), and the
/// attribute it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// One sentence: `<verb>ing <object>: <cause>`.
    pub summary: String,
    /// More detail and `hint:` lines.
    pub detail: String,
    /// The attribute it is about, if any.
    pub path: Option<AttrPath>,
}

/// The diagnostics collected during one call.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds an error.
    pub fn error(
        &mut self,
        summary: impl Into<String>,
        detail: impl Into<String>,
        path: Option<AttrPath>,
    ) {
        self.0.push(Diagnostic {
            severity: Severity::Error,
            summary: summary.into(),
            detail: detail.into(),
            path,
        });
    }
    /// Adds a warning.
    pub fn warning(
        &mut self,
        summary: impl Into<String>,
        detail: impl Into<String>,
        path: Option<AttrPath>,
    ) {
        self.0.push(Diagnostic {
            severity: Severity::Warning,
            summary: summary.into(),
            detail: detail.into(),
            path,
        });
    }
    /// Whether any error was recorded.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
}

/// What Terraform proposes for a resource (`PlanResourceChange`).
pub struct PlanRequest<'a> {
    /// State before (null on create).
    pub prior: &'a Value,
    /// Terraform's proposed new state: config merged with prior computed values (null on destroy).
    pub proposed: &'a Value,
    /// The configuration as written (unknowns possible).
    pub config: &'a Value,
}

/// A planned change.
pub struct PlanResponse {
    /// The planned new state (unknown where apply decides).
    pub planned: Value,
    /// Attributes whose change replaces the resource.
    pub requires_replace: Vec<AttrPath>,
}

/// What Terraform asks to apply (`ApplyResourceChange`).
pub struct ApplyRequest<'a> {
    /// State before (null on create).
    pub prior: &'a Value,
    /// The planned state (null on destroy).
    pub planned: &'a Value,
    /// The configuration.
    pub config: &'a Value,
}

/// A managed resource type.
#[async_trait]
pub trait Resource: Send + Sync {
    /// `rotor_policy`, `rotor_secret_link`, ...
    fn type_name(&self) -> &'static str;
    /// Its schema.
    fn schema(&self) -> Schema;
    /// Static validation of configuration (values may be unknown). No Azure calls.
    async fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Refresh: the current state, or `None` when the object no longer exists.
    async fn read(
        &self,
        ctx: &ProviderState,
        state: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value>;
    /// Plan a create, update or destroy (proposed null).
    async fn plan(
        &self,
        ctx: &ProviderState,
        req: PlanRequest<'_>,
        diags: &mut Diagnostics,
    ) -> PlanResponse;
    /// Apply a planned change; returns the new state (null after destroy).
    async fn apply(
        &self,
        ctx: &ProviderState,
        req: ApplyRequest<'_>,
        diags: &mut Diagnostics,
    ) -> Value;
    /// Import by id; `None` (with diagnostics) when it cannot be imported.
    async fn import(&self, ctx: &ProviderState, id: &str, diags: &mut Diagnostics)
    -> Option<Value>;
}

/// A data source type.
#[async_trait]
pub trait DataSource: Send + Sync {
    /// `rotor_applications`, `rotor_matches`.
    fn type_name(&self) -> &'static str;
    /// Its schema.
    fn schema(&self) -> Schema;
    /// Static validation of configuration. No Azure calls.
    async fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Read it: the config with computed attributes filled in.
    async fn read(&self, ctx: &ProviderState, config: &Value, diags: &mut Diagnostics) -> Value;
}

/// Plans computed attributes that have no value yet as unknown (create), keeping the rest of
/// `proposed` as is. Terraform rejects a create whose computed attributes stay null.
pub fn unknown_if_null(schema: &Schema, proposed: &Value) -> Value {
    let Some(attrs) = proposed.as_object() else {
        return proposed.clone();
    };
    let mut out = attrs.clone();
    for a in &schema.attributes {
        let computed = matches!(
            a.mode,
            crate::schema::Mode::Computed | crate::schema::Mode::OptionalComputed
        );
        if computed && out.get(a.name).is_none_or(Value::is_null) {
            out.insert(a.name.to_string(), Value::Unknown);
        }
    }
    Value::Object(out)
}

/// Reads an optional integer attribute, reporting a non-integer on its path.
pub fn get_i64(obj: &Value, name: &str, diags: &mut Diagnostics) -> Option<i64> {
    let v = obj.attr(name);
    if v.is_null() || v.is_unknown() {
        return None;
    }
    match v.as_i64() {
        Some(i) => Some(i),
        None => {
            diags.error(
                format!("reading `{name}`: expected a whole number"),
                "",
                Some(AttrPath::attr(name)),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_terraform() {
        let p = AttrPath::attr("targets")
            .then_index(0)
            .then_attr("vault_url");
        assert_eq!(p.to_string(), "targets[0].vault_url");
        assert_eq!(
            AttrPath::attr("tags").then_key("a").to_string(),
            "tags[\"a\"]"
        );
    }
}
