//! What each RPC decides, in the provider's own types (plugin-framework's `fwserver`): which
//! state survives a failed refresh, that nothing is planned or applied after a decode error, that
//! imported or data state is dropped on error. The tonic layer ([`super`]) only converts around
//! these; resources ([`crate::resources`]) do the work.

use crate::framework::{
    ApplyRequest, DataSource, Diagnostics, PlanRequest, PlanResponse, Resource,
};
use crate::provider::ProviderState;
use crate::value::Value;

/// The type whose static validation a `Validate*Config` call runs.
pub enum Validator<'a> {
    /// A managed resource.
    Resource(&'a dyn Resource),
    /// A data source.
    DataSource(&'a dyn DataSource),
}

/// `ValidateResourceConfig` / `ValidateDataResourceConfig`: the type's own checks run only when
/// the configuration decoded.
pub async fn validate(validator: Validator<'_>, config: &Value, diags: &mut Diagnostics) {
    if diags.has_errors() {
        return;
    }
    match validator {
        Validator::Resource(r) => r.validate(config, diags).await,
        Validator::DataSource(d) => d.validate(config, diags).await,
    }
}

/// `UpgradeResourceState`: the stored state as is (schema version 0 everywhere), or null with an
/// error telling how to recover when it does not fit the schema.
pub fn upgrade(type_name: &str, decoded: Result<Value, String>, diags: &mut Diagnostics) -> Value {
    decoded.unwrap_or_else(|e| {
        diags.error(
            format!("upgrading the stored state of {type_name}: {e}"),
            "hint: the state was written by an incompatible provider version; remove it with \
             `terraform state rm` and import the resource again",
            None,
        );
        Value::Null
    })
}

/// `ReadResource`: the refreshed state. A null current state stays null; when refresh fails the
/// state is kept as it was rather than losing track of the resource; `None` from the resource
/// (the object is gone) is null.
pub async fn read(
    resource: &dyn Resource,
    ctx: &ProviderState,
    current: Value,
    diags: &mut Diagnostics,
) -> Value {
    if diags.has_errors() || current.is_null() {
        return current;
    }
    let new_state = resource
        .read(ctx, &current, diags)
        .await
        .unwrap_or(Value::Null);
    if diags.has_errors() && new_state.is_null() {
        current
    } else {
        new_state
    }
}

/// `PlanResourceChange`: `None` (no planned state) after a decode error.
pub async fn plan(
    resource: &dyn Resource,
    ctx: &ProviderState,
    req: PlanRequest<'_>,
    diags: &mut Diagnostics,
) -> Option<PlanResponse> {
    if diags.has_errors() {
        return None;
    }
    Some(resource.plan(ctx, req, diags).await)
}

/// `ApplyResourceChange`: the new state; after a decode error nothing is applied and the prior
/// state is kept.
pub async fn apply(
    resource: &dyn Resource,
    ctx: &ProviderState,
    req: ApplyRequest<'_>,
    diags: &mut Diagnostics,
) -> Value {
    if diags.has_errors() {
        return req.prior.clone();
    }
    resource.apply(ctx, req, diags).await
}

/// `ImportResourceState`: the imported state, dropped when any error was reported.
pub async fn import(
    resource: &dyn Resource,
    ctx: &ProviderState,
    id: &str,
    diags: &mut Diagnostics,
) -> Option<Value> {
    let imported = resource.import(ctx, id, diags).await;
    imported.filter(|_| !diags.has_errors())
}

/// `ReadDataSource`: the data, or `None` when any error was reported (Terraform then keeps no
/// partial data).
pub async fn read_data(
    ds: &dyn DataSource,
    ctx: &ProviderState,
    config: &Value,
    diags: &mut Diagnostics,
) -> Option<Value> {
    if diags.has_errors() {
        return None;
    }
    let state = ds.read(ctx, config, diags).await;
    (!diags.has_errors()).then_some(state)
}
