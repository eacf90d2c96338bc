//! Azure Resource Manager: just enough to find the vaults of a subscription.

use axum::response::Response;
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{Audience, AuthError, Caller, Ctx, Req};
use crate::state::{Store, Subscription, Vault};
use crate::util;

#[derive(Debug, Clone)]
pub enum Route {
    ListSubscriptions,
    ListResources(String),
    ListVaults(String, Option<String>),
    GetVault(String, String, String),
}

impl Route {
    pub fn template(&self) -> &'static str {
        match self {
            Route::ListSubscriptions => "/subscriptions",
            Route::ListResources(_) => "/subscriptions/{subscriptionId}/resources",
            Route::ListVaults(_, None) => {
                "/subscriptions/{subscriptionId}/providers/Microsoft.KeyVault/vaults"
            }
            Route::ListVaults(_, Some(_)) => {
                "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}/providers/Microsoft.KeyVault/vaults"
            }
            Route::GetVault(..) => {
                "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}/providers/Microsoft.KeyVault/vaults/{vaultName}"
            }
        }
    }
}

fn ieq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Route the segments after `/subscriptions`.
pub fn route(method: &Method, s: &[&str]) -> Option<Route> {
    if method != Method::GET {
        return None;
    }
    match s {
        [] => Some(Route::ListSubscriptions),
        [sub, r] if ieq(r, "resources") => Some(Route::ListResources((*sub).to_string())),
        [sub, p, ns, t]
            if ieq(p, "providers") && ieq(ns, "Microsoft.KeyVault") && ieq(t, "vaults") =>
        {
            Some(Route::ListVaults((*sub).to_string(), None))
        }
        [sub, g, rg, p, ns, t]
            if ieq(g, "resourceGroups")
                && ieq(p, "providers")
                && ieq(ns, "Microsoft.KeyVault")
                && ieq(t, "vaults") =>
        {
            Some(Route::ListVaults(
                (*sub).to_string(),
                Some((*rg).to_string()),
            ))
        }
        [sub, g, rg, p, ns, t, name]
            if ieq(g, "resourceGroups")
                && ieq(p, "providers")
                && ieq(ns, "Microsoft.KeyVault")
                && ieq(t, "vaults") =>
        {
            Some(Route::GetVault(
                (*sub).to_string(),
                (*rg).to_string(),
                (*name).to_string(),
            ))
        }
        _ => None,
    }
}

fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut r = util::json(
        status,
        &json!({"error": {"code": code, "message": message}}),
    );
    if let Ok(v) = HeaderValue::from_str(&util::guid()) {
        r.headers_mut().insert("x-ms-request-id", v);
    }
    r
}

fn vault_json(store: &Store, v: &Vault) -> Value {
    json!({
        "id": format!("/subscriptions/{}/resourceGroups/{}/providers/Microsoft.KeyVault/vaults/{}", v.subscription_id, v.resource_group, v.name),
        "name": v.name,
        "type": "Microsoft.KeyVault/vaults",
        "location": v.location,
        "tags": {},
        "properties": {
            "vaultUri": v.url,
            "tenantId": store.tenant_id,
            "sku": {"family": "A", "name": "standard"},
            "enableRbacAuthorization": true,
            "enableSoftDelete": true,
            "softDeleteRetentionInDays": 90,
            "provisioningState": "Succeeded",
        },
    })
}

/// Whether the caller may read the subscription.
fn can_read(store: &Store, caller: Caller, sub: &Subscription) -> bool {
    match caller {
        Caller::App(_) => false,
        Caller::Principal(i) => match &store.principals[i].subscription_roles {
            None => true,
            Some(m) => m
                .keys()
                .any(|k| k == "*" || ieq(k, &sub.id) || ieq(k, &sub.name)),
        },
    }
}

fn forbidden(store: &Store, caller: Caller, action: &str, scope: &str) -> Response {
    let oid = match caller {
        Caller::Principal(i) => store.principals[i].object_id.clone(),
        Caller::App(i) => store.apps[i].sp_object_id.clone(),
    };
    arm_error(
        StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        &format!(
            "The client '{oid}' with object id '{oid}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."
        ),
    )
}

pub fn handle(ctx: &Ctx, route: Route, req: &Req) -> Response {
    let caller = match ctx.authenticate(&req.headers) {
        Ok((c, Audience::Arm | Audience::Main)) => c,
        Ok(_) => {
            return arm_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationTokenAudience",
                "The access token has been obtained for wrong audience or resource. It should exactly match one of the allowed audiences 'https://management.core.windows.net/','https://management.azure.com/'.",
            );
        }
        Err(AuthError::Missing) => {
            return arm_error(
                StatusCode::UNAUTHORIZED,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            );
        }
        Err(AuthError::Expired) => {
            return arm_error(
                StatusCode::UNAUTHORIZED,
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            );
        }
        Err(_) => {
            return arm_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            );
        }
    };
    if !req.query.contains_key("api-version") {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    let store = ctx.store.read();
    let sub_of = |s: &str| {
        store
            .subscriptions
            .iter()
            .find(|x| ieq(&x.id, s) || ieq(&x.name, s))
            .cloned()
    };
    let not_found = |s: &str| {
        arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{s}' could not be found."),
        )
    };
    match route {
        Route::ListSubscriptions => {
            let value: Vec<Value> = store
                .subscriptions
                .iter()
                .filter(|s| can_read(&store, caller, s))
                .map(|s| {
                    json!({
                        "id": format!("/subscriptions/{}", s.id),
                        "subscriptionId": s.id,
                        "displayName": s.name,
                        "state": "Enabled",
                        "tenantId": store.tenant_id,
                    })
                })
                .collect();
            util::json(StatusCode::OK, &json!({"value": value}))
        }
        Route::ListResources(s) | Route::ListVaults(s, _) | Route::GetVault(s, _, _)
            if sub_of(&s).is_none() =>
        {
            not_found(&s)
        }
        Route::ListResources(s) => {
            let Some(sub) = sub_of(&s) else {
                return not_found(&s);
            };
            if !can_read(&store, caller, &sub) {
                return forbidden(
                    &store,
                    caller,
                    "Microsoft.Resources/subscriptions/resources/read",
                    &format!("/subscriptions/{}", sub.id),
                );
            }
            // Only vaults exist here; a filter on another resource type matches nothing.
            let wants_vaults = match req.query.get("$filter") {
                None => true,
                Some(f) => {
                    let f = f.to_ascii_lowercase();
                    !f.contains("resourcetype") || f.contains("microsoft.keyvault/vaults")
                }
            };
            let value: Vec<Value> = if wants_vaults {
                store
                    .vaults
                    .iter()
                    .filter(|v| v.subscription_id == sub.id)
                    .map(|v| vault_json(&store, v))
                    .collect()
            } else {
                Vec::new()
            };
            util::json(StatusCode::OK, &json!({"value": value}))
        }
        Route::ListVaults(s, rg) => {
            let Some(sub) = sub_of(&s) else {
                return not_found(&s);
            };
            if !can_read(&store, caller, &sub) {
                return forbidden(
                    &store,
                    caller,
                    "Microsoft.KeyVault/vaults/read",
                    &format!("/subscriptions/{}", sub.id),
                );
            }
            let value: Vec<Value> = store
                .vaults
                .iter()
                .filter(|v| v.subscription_id == sub.id)
                .filter(|v| rg.as_ref().is_none_or(|g| ieq(g, &v.resource_group)))
                .map(|v| vault_json(&store, v))
                .collect();
            util::json(StatusCode::OK, &json!({"value": value}))
        }
        Route::GetVault(s, rg, name) => {
            let Some(sub) = sub_of(&s) else {
                return not_found(&s);
            };
            if !can_read(&store, caller, &sub) {
                return forbidden(
                    &store,
                    caller,
                    "Microsoft.KeyVault/vaults/read",
                    &format!("/subscriptions/{}/resourceGroups/{rg}", sub.id),
                );
            }
            match store.vaults.iter().find(|v| {
                v.subscription_id == sub.id && ieq(&v.resource_group, &rg) && ieq(&v.name, &name)
            }) {
                Some(v) => util::json(StatusCode::OK, &vault_json(&store, v)),
                None => arm_error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    &format!(
                        "The Resource 'Microsoft.KeyVault/vaults/{name}' under resource group '{rg}' was not found."
                    ),
                ),
            }
        }
    }
}
