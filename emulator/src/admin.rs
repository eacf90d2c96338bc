//! Admin API under `/_emulator` (no auth): state, request counts, faults, latency.

use std::sync::atomic::Ordering;

use axum::response::Response;
use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::server::{Ctx, FaultRule, Outcome};
use crate::util;

/// `POST faults` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    #[serde(default)]
    method: Option<String>,
    /// Regex matched against the request path (not the query).
    #[serde(default)]
    path: Option<String>,
    /// Only requests to this vault's listener.
    #[serde(default)]
    vault: Option<String>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default)]
    latency_ms: Option<u64>,
    #[serde(default)]
    drop: Option<bool>,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    probability: Option<f64>,
    /// Handle the request (apply its change), then replace the answer.
    #[serde(default)]
    after: Option<bool>,
    /// Let this many matching requests through before firing.
    #[serde(default)]
    skip: Option<u64>,
    /// Never answer.
    #[serde(default)]
    hang: Option<bool>,
}

fn bad(msg: &str) -> Response {
    util::json(
        StatusCode::BAD_REQUEST,
        &json!({"error": {"code": "BadRequest", "message": msg}}),
    )
}

pub fn request_counts(ctx: &Ctx) -> Value {
    let c = ctx.counts.lock();
    json!({"total": c.total, "by_route": c.by_route, "by_vault": c.by_vault})
}

/// `GET requests/log`: `{"log": [{index, method, route, vault, status, at_us, us}],
/// "truncated": bool}`; `status` is the HTTP status answered, `"dropped"`, `"hung"`, or `null`
/// while in flight (or when the client went away before an answer); `at_us` the arrival in
/// microseconds after the first logged request, `us` how long until the outcome (with the
/// emulated latency; `null` while in flight). Integers, so they survive a JSON round trip.
pub fn request_log(ctx: &Ctx) -> Value {
    let c = ctx.counts.lock();
    let log: Vec<Value> = c
        .log
        .iter()
        .map(|e| {
            let status = match e.outcome {
                Some(Outcome::Status(s)) => json!(s),
                Some(Outcome::Dropped) => json!("dropped"),
                Some(Outcome::Hung) => json!("hung"),
                None => Value::Null,
            };
            let origin = c.origin.unwrap_or(e.arrived);
            let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            let at_us = micros(e.arrived.saturating_duration_since(origin));
            let us = e
                .answered
                .map(|a| micros(a.saturating_duration_since(e.arrived)));
            json!({"index": e.index, "method": e.method, "route": e.route, "vault": e.vault,
                "status": status, "at_us": at_us, "us": us})
        })
        .collect();
    json!({"log": log, "truncated": c.total > c.log.len() as u64})
}

/// Names the field whose JSON type is wrong (serde's own message does not).
fn check_field_types(source: &Value) -> Result<(), String> {
    let Some(obj) = source.as_object() else {
        return Ok(()); // serde says "expected struct FaultSpec"
    };
    for (field, v) in obj {
        let want = match field.as_str() {
            "method" | "path" | "vault" => (v.is_string() || v.is_null())
                .then_some(())
                .ok_or("a string"),
            "status" => v
                .as_u64()
                .filter(|s| *s <= u64::from(u16::MAX))
                .map(|_| ())
                .ok_or("an HTTP status"),
            "retry_after" | "latency_ms" | "count" | "skip" => {
                v.as_u64().map(|_| ()).ok_or("a non-negative integer")
            }
            "drop" | "after" | "hang" => v.as_bool().map(|_| ()).ok_or("true or false"),
            "probability" => v.as_f64().map(|_| ()).ok_or("a number"),
            _ => Ok(()), // unknown fields: serde names them
        };
        if let Err(what) = want {
            return Err(format!("fault: `{field}` must be {what}, not {v}"));
        }
    }
    Ok(())
}

/// A `POST faults` body as a rule, or why it is refused (the 400 message).
pub fn parse_fault(body: &[u8]) -> Result<FaultRule, String> {
    let source: Value = serde_json::from_slice(body).map_err(|e| format!("fault: {e}"))?;
    check_field_types(&source)?;
    let spec = FaultSpec::deserialize(&source).map_err(|e| format!("fault: {e}"))?;
    let method = match spec.method.as_deref() {
        None | Some("") | Some("*") => None,
        Some(m) => Some(
            Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("fault: `{m}` is not an HTTP method"))?,
        ),
    };
    let path_re = spec.path.as_deref().unwrap_or(".*");
    let path = regex::Regex::new(path_re)
        .map_err(|e| format!("fault: path `{path_re}` is not a regex: {e}"))?;
    if let Some(s) = spec.status
        && StatusCode::from_u16(s).is_err()
    {
        return Err(format!("fault: status {s} is not an HTTP status"));
    }
    if let Some(p) = spec.probability
        && !(0.0..=1.0).contains(&p)
    {
        return Err("fault: probability must be between 0 and 1".into());
    }
    if spec.count == Some(0) {
        return Err("fault: `count` must be at least 1 (omit it for a permanent fault)".into());
    }
    let drop = spec.drop.unwrap_or(false);
    let hang = spec.hang.unwrap_or(false);
    let after = spec.after.unwrap_or(false);
    let latency_ms = spec.latency_ms.unwrap_or(0);
    if spec.status.is_none() && !drop && !hang && latency_ms == 0 {
        return Err("fault: set `status`, `drop: true`, `hang: true` or `latency_ms`".into());
    }
    if hang && (drop || spec.status.is_some()) {
        return Err(
            "fault: `hang: true` never answers; it cannot be combined with `status` or `drop`"
                .into(),
        );
    }
    Ok(FaultRule {
        method,
        path,
        vault: spec.vault,
        status: spec.status,
        retry_after: spec.retry_after,
        latency_ms,
        drop,
        remaining: spec.count,
        probability: spec.probability,
        fired: 0,
        after,
        hang,
        skip: spec.skip.unwrap_or(0),
        passed: 0,
        source,
    })
}

/// `POST fidelity`: the given fields replace the current ones (others are kept) and the
/// throttling windows start afresh; the result.
pub fn set_fidelity(ctx: &Ctx, body: &[u8]) -> Result<Value, String> {
    let patch: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut store = ctx.store.write();
    store.fidelity = store.fidelity.merged(patch)?;
    // New settings start with fresh throttling windows.
    *ctx.throttle.lock() = Default::default();
    Ok(json!(store.fidelity))
}

pub fn handle(ctx: &Ctx, method: &Method, path: &str, body: Bytes) -> Response {
    let sub = path
        .strip_prefix("/_emulator")
        .unwrap_or("")
        .trim_matches('/');
    match (method, sub) {
        (&Method::GET, "state") => util::json(StatusCode::OK, &ctx.store.read().to_json()),
        (&Method::GET, "requests") => util::json(StatusCode::OK, &request_counts(ctx)),
        (&Method::GET, "requests/log") => util::json(StatusCode::OK, &request_log(ctx)),
        (&Method::DELETE, "requests") => {
            ctx.reset_counts();
            util::empty(StatusCode::NO_CONTENT)
        }
        (&Method::GET, "faults") => {
            let f = ctx.faults.lock();
            let list: Vec<Value> = f
                .iter()
                .map(|r| {
                    let mut v = r.source.clone();
                    v["fired"] = json!(r.fired);
                    v["remaining"] = json!(r.remaining);
                    v["after"] = json!(r.after);
                    v["hang"] = json!(r.hang);
                    // as configured; then how many skips are still to come
                    v["skip"] = json!(r.skip + r.passed);
                    v["skip_remaining"] = json!(r.skip);
                    v
                })
                .collect();
            util::json(StatusCode::OK, &json!({"faults": list}))
        }
        (&Method::POST, "faults") => match parse_fault(&body) {
            Ok(rule) => {
                ctx.faults.lock().push(rule);
                util::empty(StatusCode::NO_CONTENT)
            }
            Err(msg) => bad(&msg),
        },
        (&Method::POST, "oidc/token") => mint_oidc(ctx, &body),
        (&Method::GET, "oidc/jwks") => util::json(StatusCode::OK, &ctx.issuers.lock().all_jwks()),
        (&Method::DELETE, "faults") => {
            ctx.faults.lock().clear();
            util::empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, "latency") => {
            let v: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return bad(&format!("latency: {e}")),
            };
            let Some(ms) = v.get("ms").and_then(Value::as_u64) else {
                return bad("latency: body must be {\"ms\": N}");
            };
            ctx.latency_ms.store(ms, Ordering::Relaxed);
            util::empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, "age") => {
            let v: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return bad(&format!("age: {e}")),
            };
            let secs = v.get("seconds").and_then(Value::as_i64).or_else(|| {
                v.get("days")
                    .and_then(Value::as_i64)
                    .map(|d| d.checked_mul(86_400).unwrap_or(i64::MAX))
            });
            let Some(secs) = secs else {
                return bad("age: body must be {\"days\": N} or {\"seconds\": N}");
            };
            match ctx.store.write().age(secs) {
                Ok(()) => util::empty(StatusCode::NO_CONTENT),
                Err(e) => bad(&format!("age: {e}")),
            }
        }
        (&Method::GET, "fidelity") => util::json(StatusCode::OK, &json!(ctx.store.read().fidelity)),
        (&Method::POST, "fidelity") => match set_fidelity(ctx, &body) {
            Ok(v) => util::json(StatusCode::OK, &v),
            Err(e) => bad(&format!("fidelity: {e}")),
        },
        (&Method::POST, "propagation") => {
            let v: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return bad(&format!("propagation: {e}")),
            };
            let Some(ms) = v.get("ms").and_then(Value::as_u64) else {
                return bad("propagation: body must be {\"ms\": N}");
            };
            ctx.store.write().propagation_delay = std::time::Duration::from_millis(ms);
            util::empty(StatusCode::NO_CONTENT)
        }
        _ => crate::server::not_implemented(method, path),
    }
}

/// `POST /_emulator/oidc/token` `{issuer, subject, audience?, lifetime_secs?, claims?}` →
/// `{token, kid}`: a token signed by the issuer's key; `claims` replaces the standard claims
/// entirely (to mint what a real issuer never would).
fn mint_oidc(ctx: &Ctx, body: &[u8]) -> Response {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad(&format!("the body is not JSON: {e}")),
    };
    let Some(issuer) = v.get("issuer").and_then(Value::as_str) else {
        return bad("`issuer` (the OIDC issuer URL, as in a federated credential) is required");
    };
    let signer = match ctx.issuers.lock().signer(issuer) {
        Ok(s) => s,
        Err(e) => {
            return util::json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"error": format!("{e}")}),
            );
        }
    };
    let token = if let Some(claims) = v.get("claims") {
        if !claims.is_object() {
            return bad("`claims` must be an object");
        }
        signer.mint_claims(claims)
    } else {
        let Some(subject) = v.get("subject").and_then(Value::as_str) else {
            return bad("`subject` (or `claims`) is required");
        };
        let audience = v
            .get("audience")
            .and_then(Value::as_str)
            .unwrap_or("api://AzureADTokenExchange");
        let lifetime = v
            .get("lifetime_secs")
            .and_then(Value::as_u64)
            .unwrap_or(600);
        signer.mint(subject, audience, std::time::Duration::from_secs(lifetime))
    };
    util::json(
        StatusCode::OK,
        &json!({"token": token, "kid": signer.kid()}),
    )
}
