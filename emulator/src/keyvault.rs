//! Key Vault data plane (api-version 2025-07-01): secrets and enough of certificates.

use std::collections::BTreeMap;

use axum::response::Response;
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::server::{Audience, AuthError, Caller, Ctx, Req};
use crate::state::{
    CertEntry, CertVersion, Deleted, PrivateKey, SecretEntry, SecretVersion, Vault,
};
use crate::util;

mod import;
mod keys;

/// Largest secret value Key Vault accepts (25 KiB).
pub const MAX_VALUE_BYTES: usize = 25 * 1024;
/// Most tags on one secret.
pub const MAX_TAGS: usize = 15;
/// Days a deleted secret stays recoverable.
pub const RECOVERABLE_DAYS: i64 = 90;
const RECOVERY_LEVEL: &str = "Recoverable+Purgeable";

/// Key Vault object names: 1-127 letters, digits and dashes.
pub fn valid_object_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[derive(Debug, Clone)]
pub enum Route {
    SetSecret(String),
    GetSecret(String, Option<String>),
    UpdateSecret(String, Option<String>),
    DeleteSecret(String),
    ListSecrets,
    ListVersions(String),
    ListDeleted,
    GetDeleted(String),
    PurgeDeleted(String),
    RecoverDeleted(String),
    CreateCertificate(String),
    ImportCertificate(String),
    CertificateOperation(String),
    GetCertificate(String, Option<String>),
    ListCertificates,
    ListCertificateVersions(String),
    GetKey(String, Option<String>),
    ListKeys,
    ListKeyVersions(String),
    Sign(String, Option<String>),
}

impl Route {
    pub fn template(&self) -> &'static str {
        match self {
            Route::SetSecret(_) => "/secrets/{name}",
            Route::GetSecret(_, None) => "/secrets/{name}",
            Route::GetSecret(_, Some(_)) => "/secrets/{name}/{version}",
            Route::UpdateSecret(..) => "/secrets/{name}/{version}",
            Route::DeleteSecret(_) => "/secrets/{name}",
            Route::ListSecrets => "/secrets",
            Route::ListVersions(_) => "/secrets/{name}/versions",
            Route::ListDeleted => "/deletedsecrets",
            Route::GetDeleted(_) => "/deletedsecrets/{name}",
            Route::PurgeDeleted(_) => "/deletedsecrets/{name}",
            Route::RecoverDeleted(_) => "/deletedsecrets/{name}/recover",
            Route::CreateCertificate(_) => "/certificates/{name}/create",
            Route::ImportCertificate(_) => "/certificates/{name}/import",
            Route::CertificateOperation(_) => "/certificates/{name}/pending",
            Route::GetCertificate(_, None) => "/certificates/{name}",
            Route::GetCertificate(_, Some(_)) => "/certificates/{name}/{version}",
            Route::ListCertificates => "/certificates",
            Route::ListCertificateVersions(_) => "/certificates/{name}/versions",
            Route::GetKey(_, None) => "/keys/{name}",
            Route::GetKey(_, Some(_)) => "/keys/{name}/{version}",
            Route::ListKeys => "/keys",
            Route::ListKeyVersions(_) => "/keys/{name}/versions",
            Route::Sign(..) => "/keys/{name}/{version}/sign",
        }
    }
}

pub fn route(method: &Method, segs: &[String]) -> Option<Route> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let n = |x: &str| x.to_string();
    let v = |x: &str| (!x.is_empty()).then(|| x.to_string());
    Some(match (method, s.as_slice()) {
        (&Method::GET, ["secrets"] | ["secrets", ""]) => Route::ListSecrets,
        (&Method::PUT, ["secrets", name]) => Route::SetSecret(n(name)),
        (&Method::GET, ["secrets", name, "versions"]) => Route::ListVersions(n(name)),
        (&Method::GET, ["secrets", name]) => Route::GetSecret(n(name), None),
        (&Method::GET, ["secrets", name, ver]) => Route::GetSecret(n(name), v(ver)),
        (&Method::PATCH, ["secrets", name]) => Route::UpdateSecret(n(name), None),
        (&Method::PATCH, ["secrets", name, ver]) => Route::UpdateSecret(n(name), v(ver)),
        (&Method::DELETE, ["secrets", name]) => Route::DeleteSecret(n(name)),
        (&Method::GET, ["deletedsecrets"]) => Route::ListDeleted,
        (&Method::GET, ["deletedsecrets", name]) => Route::GetDeleted(n(name)),
        (&Method::DELETE, ["deletedsecrets", name]) => Route::PurgeDeleted(n(name)),
        (&Method::POST, ["deletedsecrets", name, "recover"]) => Route::RecoverDeleted(n(name)),
        (&Method::POST, ["certificates", name, "create"]) => Route::CreateCertificate(n(name)),
        (&Method::POST, ["certificates", name, "import"]) => Route::ImportCertificate(n(name)),
        (&Method::GET, ["certificates", name, "pending"]) => Route::CertificateOperation(n(name)),
        (&Method::GET, ["certificates"]) => Route::ListCertificates,
        (&Method::GET, ["certificates", name, "versions"]) => {
            Route::ListCertificateVersions(n(name))
        }
        (&Method::GET, ["certificates", name]) => Route::GetCertificate(n(name), None),
        (&Method::GET, ["certificates", name, ver]) => Route::GetCertificate(n(name), v(ver)),
        (&Method::GET, ["keys"] | ["keys", ""]) => Route::ListKeys,
        (&Method::GET, ["keys", name, "versions"]) => Route::ListKeyVersions(n(name)),
        (&Method::GET, ["keys", name]) => Route::GetKey(n(name), None),
        (&Method::GET, ["keys", name, ver]) => Route::GetKey(n(name), v(ver)),
        (&Method::POST, ["keys", name, "sign"]) => Route::Sign(n(name), None),
        (&Method::POST, ["keys", name, ver, "sign"]) => Route::Sign(n(name), v(ver)),
        _ => return None,
    })
}

/// Data-plane operations, each needing one of the RBAC roles below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    GetSecret,
    ReadSecretMetadata,
    SetSecret,
    DeleteSecret,
    RecoverSecret,
    PurgeSecret,
    ReadCertificate,
    CreateCertificate,
    ImportCertificate,
    ReadKey,
    SignKey,
}

impl Op {
    fn action(self) -> &'static str {
        match self {
            Op::GetSecret => "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            Op::ReadSecretMetadata => "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            Op::SetSecret => "Microsoft.KeyVault/vaults/secrets/setSecret/action",
            Op::DeleteSecret => "Microsoft.KeyVault/vaults/secrets/delete",
            Op::RecoverSecret => "Microsoft.KeyVault/vaults/deletedSecrets/recover/action",
            Op::PurgeSecret => "Microsoft.KeyVault/vaults/deletedSecrets/delete",
            Op::ReadCertificate => "Microsoft.KeyVault/vaults/certificates/read",
            Op::CreateCertificate => "Microsoft.KeyVault/vaults/certificates/create/action",
            Op::ImportCertificate => "Microsoft.KeyVault/vaults/certificates/import/action",
            Op::ReadKey => "Microsoft.KeyVault/vaults/keys/read",
            Op::SignKey => "Microsoft.KeyVault/vaults/keys/sign/action",
        }
    }

    /// Whether a built-in role grants this operation (the data actions of Azure's built-in
    /// role definitions: Certificates Officer has `certificates/*` only — no key or secret
    /// access; Certificate User reads certificates, their secrets and keys; Crypto User and
    /// Crypto Officer read and sign with keys; Reader reads metadata, keys included).
    fn granted_by(self, role: &str) -> bool {
        let r = role.to_ascii_lowercase();
        match r.as_str() {
            "key vault administrator" => true,
            "key vault secrets officer" => matches!(
                self,
                Op::GetSecret
                    | Op::ReadSecretMetadata
                    | Op::SetSecret
                    | Op::DeleteSecret
                    | Op::RecoverSecret
                    | Op::PurgeSecret
            ),
            "key vault secrets user" => matches!(self, Op::GetSecret | Op::ReadSecretMetadata),
            "key vault reader" => matches!(
                self,
                Op::ReadSecretMetadata | Op::ReadCertificate | Op::ReadKey
            ),
            "key vault certificates officer" => {
                matches!(
                    self,
                    Op::ReadCertificate | Op::CreateCertificate | Op::ImportCertificate
                )
            }
            "key vault certificate user" => matches!(
                self,
                Op::ReadCertificate | Op::GetSecret | Op::ReadSecretMetadata | Op::ReadKey
            ),
            "key vault crypto officer" | "key vault crypto user" => {
                matches!(self, Op::ReadKey | Op::SignKey)
            }
            "key vault crypto service encryption user" => matches!(self, Op::ReadKey),
            _ => false,
        }
    }
}

fn kv_error(status: StatusCode, code: &str, message: &str, inner: Option<&str>) -> Response {
    let mut err = json!({"code": code, "message": message});
    if let Some(i) = inner {
        err["innererror"] = json!({"code": i});
    }
    util::json(status, &json!({"error": err}))
}

fn challenge(ctx: &Ctx, message: &str) -> Response {
    let tenant = ctx.store.read().tenant_id.clone();
    let mut r = kv_error(StatusCode::UNAUTHORIZED, "Unauthorized", message, None);
    let value = format!(
        "Bearer authorization=\"{}/{tenant}\", resource=\"https://vault.azure.net\"",
        ctx.main_url
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
    }
    r
}

fn secret_not_found(name: &str, version: Option<&str>) -> Response {
    let what = match version {
        Some(v) => format!("{name}/{v}"),
        None => name.to_string(),
    };
    kv_error(
        StatusCode::NOT_FOUND,
        "SecretNotFound",
        &format!(
            "A secret with (name/id) {what} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
        None,
    )
}

fn deleted_not_found(name: &str) -> Response {
    kv_error(
        StatusCode::NOT_FOUND,
        "SecretNotFound",
        &format!("Deleted Secret not found: {name}"),
        None,
    )
}

fn bad(message: &str) -> Response {
    kv_error(StatusCode::BAD_REQUEST, "BadParameter", message, None)
}

pub fn handle(ctx: &Ctx, vault: usize, route: Route, req: &Req) -> Response {
    let caller = match ctx.authenticate(&req.headers) {
        Ok((c, Audience::Vault)) => c,
        Ok(_) => {
            return challenge(
                ctx,
                "AKV10022: Invalid audience. The token was issued for another resource.",
            );
        }
        Err(AuthError::Missing) => {
            return challenge(ctx, "AKV10000: Request is missing a Bearer or PoP token.");
        }
        Err(AuthError::Expired) => return challenge(ctx, "AKV10013: Token has expired."),
        Err(AuthError::Unknown) => {
            return challenge(ctx, "AKV10032: Invalid issuer or unknown token.");
        }
    };
    let Some(api_version) = req.query.get("api-version").cloned() else {
        return bad("The 'api-version' query parameter is required.");
    };
    let fid = ctx.store.read().fidelity.clone();
    if !fid
        .api_versions
        .iter()
        .any(|v| v.eq_ignore_ascii_case(&api_version))
    {
        let latest = fid.api_versions.last().map(String::as_str).unwrap_or("");
        return bad(&format!(
            "The specified version ({api_version}) is not recognized. Consider using the latest supported version ({latest})."
        ));
    }
    let op = match &route {
        Route::GetSecret(..) => Op::GetSecret,
        Route::ListSecrets | Route::ListVersions(_) | Route::ListDeleted | Route::GetDeleted(_) => {
            Op::ReadSecretMetadata
        }
        Route::SetSecret(_) | Route::UpdateSecret(..) => Op::SetSecret,
        Route::DeleteSecret(_) => Op::DeleteSecret,
        Route::RecoverDeleted(_) => Op::RecoverSecret,
        Route::PurgeDeleted(_) => Op::PurgeSecret,
        Route::CreateCertificate(_) => Op::CreateCertificate,
        Route::ImportCertificate(_) => Op::ImportCertificate,
        Route::CertificateOperation(_)
        | Route::GetCertificate(..)
        | Route::ListCertificates
        | Route::ListCertificateVersions(_) => Op::ReadCertificate,
        Route::GetKey(..) | Route::ListKeys | Route::ListKeyVersions(_) => Op::ReadKey,
        Route::Sign(..) => Op::SignKey,
    };
    if let Some(r) = authorize(ctx, vault, caller, op, &route) {
        return r;
    }
    let ctx_api = ApiCtx {
        api_version: &api_version,
        fidelity: &fid,
    };
    let writes = matches!(
        route,
        Route::SetSecret(_)
            | Route::UpdateSecret(..)
            | Route::DeleteSecret(_)
            | Route::PurgeDeleted(_)
            | Route::RecoverDeleted(_)
            | Route::CreateCertificate(_)
            | Route::ImportCertificate(_)
    );
    if writes {
        let mut store = ctx.store.write();
        let Some(v) = store.vaults.get_mut(vault) else {
            return util::empty(StatusCode::INTERNAL_SERVER_ERROR);
        };
        return match route {
            Route::SetSecret(name) => set_secret(v, &name, req),
            Route::UpdateSecret(name, ver) => update_secret(v, &name, ver.as_deref(), req),
            Route::DeleteSecret(name) => delete_secret(v, &name, &fid),
            Route::PurgeDeleted(name) => purge_deleted(v, &name, &fid),
            Route::RecoverDeleted(name) => recover_deleted(v, &name, &fid),
            Route::CreateCertificate(name) => create_certificate(v, &name, req, &fid),
            Route::ImportCertificate(name) => import::import_certificate(v, &name, req),
            _ => util::empty(StatusCode::INTERNAL_SERVER_ERROR),
        };
    }
    let store = ctx.store.read();
    let Some(v) = store.vaults.get(vault) else {
        return util::empty(StatusCode::INTERNAL_SERVER_ERROR);
    };
    match route {
        Route::GetSecret(name, ver) => get_secret(v, &name, ver.as_deref()),
        Route::ListSecrets => list_secrets(v, req, &ctx_api),
        Route::ListVersions(name) => list_versions(v, &name, req, &ctx_api),
        Route::ListDeleted => list_deleted(v, req, &ctx_api),
        Route::GetDeleted(name) => get_deleted(v, &name),
        Route::CertificateOperation(name) => certificate_operation(v, &name),
        Route::GetCertificate(name, ver) => get_certificate(v, &name, ver.as_deref()),
        Route::ListCertificates => list_certificates(v, req, &ctx_api),
        Route::ListCertificateVersions(name) => list_certificate_versions(v, &name, req, &ctx_api),
        Route::GetKey(name, ver) => keys::get_key(v, &name, ver.as_deref()),
        Route::ListKeys => keys::list_keys(v, req, &ctx_api),
        Route::ListKeyVersions(name) => keys::list_key_versions(v, &name, req, &ctx_api),
        Route::Sign(name, ver) => keys::sign(v, &name, ver.as_deref(), req),
        _ => util::empty(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

struct ApiCtx<'a> {
    api_version: &'a str,
    fidelity: &'a crate::fidelity::Fidelity,
}

fn authorize(ctx: &Ctx, vault: usize, caller: Caller, op: Op, route: &Route) -> Option<Response> {
    let store = ctx.store.read();
    let v = store.vaults.get(vault)?;
    let (appid, oid, roles) = match caller {
        Caller::Principal(i) => {
            let p = &store.principals[i];
            let mut roles = Vec::new();
            for (k, rs) in &p.vault_roles {
                if k == "*" || k.eq_ignore_ascii_case(&v.name) {
                    roles.extend(rs.iter().cloned());
                }
            }
            (p.client_id.clone(), p.object_id.clone(), roles)
        }
        Caller::App(i) => (
            store.apps[i].app_id.clone(),
            store.apps[i].sp_object_id.clone(),
            Vec::new(),
        ),
    };
    if roles.iter().any(|r| op.granted_by(r)) {
        return None;
    }
    let object = match route {
        Route::SetSecret(n)
        | Route::GetSecret(n, _)
        | Route::UpdateSecret(n, _)
        | Route::DeleteSecret(n)
        | Route::ListVersions(n)
        | Route::GetDeleted(n)
        | Route::PurgeDeleted(n)
        | Route::RecoverDeleted(n) => format!("/secrets/{n}"),
        Route::CreateCertificate(n)
        | Route::ImportCertificate(n)
        | Route::CertificateOperation(n)
        | Route::GetCertificate(n, _)
        | Route::ListCertificateVersions(n) => format!("/certificates/{n}"),
        Route::GetKey(n, _) | Route::ListKeyVersions(n) | Route::Sign(n, _) => {
            format!("/keys/{n}")
        }
        _ => String::new(),
    };
    let message = format!(
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={appid};oid={oid};iss=https://sts.windows.net/{tenant}/\r\nAction: '{action}'\r\nResource: '/subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.keyvault/vaults/{name}{object}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: {name};location={loc}\r\n",
        tenant = store.tenant_id,
        action = op.action(),
        sub = v.subscription_id,
        rg = v.resource_group.to_ascii_lowercase(),
        name = v.name.to_ascii_lowercase(),
        loc = v.location,
    );
    Some(kv_error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &message,
        Some("ForbiddenByRbac"),
    ))
}

fn attributes(x: &SecretVersion) -> Value {
    let mut a = Map::new();
    a.insert("enabled".into(), json!(x.enabled));
    if let Some(nbf) = x.nbf {
        a.insert("nbf".into(), json!(nbf));
    }
    if let Some(exp) = x.exp {
        a.insert("exp".into(), json!(exp));
    }
    a.insert("created".into(), json!(x.created));
    a.insert("updated".into(), json!(x.updated));
    a.insert("recoverableDays".into(), json!(RECOVERABLE_DAYS));
    a.insert("recoveryLevel".into(), json!(RECOVERY_LEVEL));
    Value::Object(a)
}

/// SecretBundle (with the value when `with_value`).
fn bundle(v: &Vault, e: &SecretEntry, x: &SecretVersion, with_value: bool) -> Map<String, Value> {
    let mut m = Map::new();
    if with_value {
        m.insert("value".into(), json!(x.value));
    }
    if let Some(ct) = &x.content_type {
        m.insert("contentType".into(), json!(ct));
    }
    m.insert(
        "id".into(),
        json!(format!("{}secrets/{}/{}", v.url, e.name, x.version)),
    );
    m.insert("attributes".into(), attributes(x));
    if !x.tags.is_empty() {
        m.insert("tags".into(), json!(x.tags));
    }
    if let Some(kid) = &x.kid {
        m.insert("kid".into(), json!(kid));
        m.insert("managed".into(), json!(true));
    }
    if let Some(p) = &x.previous_version {
        m.insert("previousVersion".into(), json!(p));
    }
    m
}

fn item(v: &Vault, e: &SecretEntry, x: &SecretVersion, with_version: bool) -> Map<String, Value> {
    let mut m = Map::new();
    let id = if with_version {
        format!("{}secrets/{}/{}", v.url, e.name, x.version)
    } else {
        format!("{}secrets/{}", v.url, e.name)
    };
    m.insert("id".into(), json!(id));
    m.insert("attributes".into(), attributes(x));
    if !x.tags.is_empty() {
        m.insert("tags".into(), json!(x.tags));
    }
    if let Some(ct) = &x.content_type {
        m.insert("contentType".into(), json!(ct));
    }
    if x.kid.is_some() {
        m.insert("managed".into(), json!(true));
    }
    m
}

fn add_deleted(m: &mut Map<String, Value>, v: &Vault, e: &SecretEntry, d: &Deleted) {
    m.insert(
        "recoveryId".into(),
        json!(format!("{}deletedsecrets/{}", v.url, e.name)),
    );
    m.insert("deletedDate".into(), json!(d.deleted_date));
    m.insert("scheduledPurgeDate".into(), json!(d.scheduled_purge_date));
}

fn check_name(name: &str) -> Option<Response> {
    (!valid_object_name(name))
        .then(|| bad(&format!("The request URI contains an invalid name: {name}")))
}

fn parse_json(req: &Req) -> Result<Value, Response> {
    serde_json::from_slice(&req.body)
        .map_err(|e| bad(&format!("The request body is not valid JSON: {e}")))
}

/// Attributes, tags and content type from a set/update body.
struct Changes {
    content_type: Option<Option<String>>,
    tags: Option<BTreeMap<String, String>>,
    enabled: Option<bool>,
    nbf: Option<Option<i64>>,
    exp: Option<Option<i64>>,
}

fn parse_changes(body: &Value) -> Result<Changes, Response> {
    let content_type = match body.get("contentType") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) if s.len() <= 255 => Some(Some(s.clone())),
        Some(Value::String(_)) => return Err(bad("contentType must be at most 255 characters.")),
        Some(_) => return Err(bad("contentType must be a string.")),
    };
    let tags = match body.get("tags") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => {
            if m.len() > MAX_TAGS {
                return Err(bad(&format!(
                    "The number of tags ({}) exceeds the maximum of {MAX_TAGS}.",
                    m.len()
                )));
            }
            let mut t = BTreeMap::new();
            for (k, v) in m {
                let Some(s) = v.as_str() else {
                    return Err(bad(&format!("Tag '{k}' must have a string value.")));
                };
                if k.is_empty() || k.chars().count() > 512 {
                    return Err(bad("Tag names must be 1-512 characters."));
                }
                if s.chars().count() > 256 {
                    return Err(bad(&format!(
                        "The value of tag '{k}' exceeds 256 characters."
                    )));
                }
                t.insert(k.clone(), s.to_string());
            }
            Some(t)
        }
        Some(_) => return Err(bad("tags must be an object of strings.")),
    };
    let attrs = body.get("attributes").cloned().unwrap_or(Value::Null);
    let enabled = match attrs.get("enabled") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(bad("attributes.enabled must be a boolean.")),
    };
    let time = |k: &str| -> Result<Option<Option<i64>>, Response> {
        match attrs.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => v
                .as_i64()
                .map(|n| Some(Some(n)))
                .ok_or_else(|| bad(&format!("attributes.{k} must be a Unix time in seconds."))),
        }
    };
    Ok(Changes {
        content_type,
        tags,
        enabled,
        nbf: time("nbf")?,
        exp: time("exp")?,
    })
}

fn conflict_deleted(name: &str) -> Response {
    kv_error(
        StatusCode::CONFLICT,
        "Conflict",
        &format!(
            "Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."
        ),
        Some("ObjectIsDeletedButRecoverable"),
    )
}

fn set_secret(v: &mut Vault, name: &str, req: &Req) -> Response {
    if let Some(r) = check_name(name) {
        return r;
    }
    let body = match parse_json(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(value) = body.get("value").and_then(Value::as_str) else {
        return bad("The request body must contain a string property 'value'.");
    };
    if value.len() > MAX_VALUE_BYTES {
        return bad(&format!(
            "The secret value is {} bytes; Key Vault accepts at most {MAX_VALUE_BYTES} bytes (25 KB).",
            value.len()
        ));
    }
    let ch = match parse_changes(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let key = name.to_ascii_lowercase();
    if purging(v, &key) {
        return being_deleted(name);
    }
    if let Some(e) = v.secrets.get(&key) {
        if e.deleted.as_ref().is_some_and(|d| !d.settled()) {
            return being_deleted(&e.name);
        }
        if e.deleted.is_some() {
            return conflict_deleted(&e.name);
        }
        if e.latest().is_some_and(|x| x.kid.is_some()) {
            return kv_error(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!("Secret {name} is managed by a certificate and cannot be set directly."),
                None,
            );
        }
    }
    let now = util::now().unix_timestamp();
    let stub = vault_stub(v);
    let x = SecretVersion {
        version: util::hex32(),
        value: value.to_string(),
        content_type: ch.content_type.flatten(),
        tags: ch.tags.unwrap_or_default(),
        enabled: ch.enabled.unwrap_or(true),
        nbf: ch.nbf.flatten(),
        exp: ch.exp.flatten(),
        created: now,
        updated: now,
        kid: None,
        visible_at: None,
        previous_version: None,
    };
    let e = v.secrets.entry(key).or_insert_with(|| SecretEntry {
        name: name.to_string(),
        versions: Vec::new(),
        deleted: None,
        recovering_until: None,
    });
    e.versions.push(x);
    match e.latest() {
        Some(x) => util::json(StatusCode::OK, &Value::Object(bundle(&stub, e, x, true))),
        None => util::empty(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

fn active<'a>(v: &'a Vault, name: &str) -> Option<&'a SecretEntry> {
    v.secrets
        .get(&name.to_ascii_lowercase())
        .filter(|e| e.deleted.is_none() && !e.recovering())
}

/// A purge of `key` (lowercase) is still in progress.
fn purging(v: &Vault, key: &str) -> bool {
    v.purging
        .get(key)
        .is_some_and(|t| *t > std::time::Instant::now())
}

fn being_deleted(name: &str) -> Response {
    kv_error(
        StatusCode::CONFLICT,
        "Conflict",
        &format!("Secret {name} is currently being deleted."),
        Some("ObjectIsBeingDeleted"),
    )
}

fn get_secret(v: &Vault, name: &str, version: Option<&str>) -> Response {
    let Some(e) = active(v, name) else {
        return secret_not_found(name, version);
    };
    let x = match version {
        None => e.latest(),
        Some(ver) => e
            .versions
            .iter()
            .find(|x| x.visible() && x.version.eq_ignore_ascii_case(ver)),
    };
    let Some(x) = x else {
        return secret_not_found(name, version);
    };
    if !x.enabled {
        return kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Operation get is not allowed on a disabled secret.",
            Some("SecretDisabled"),
        );
    }
    util::json(StatusCode::OK, &Value::Object(bundle(v, e, x, true)))
}

fn update_secret(v: &mut Vault, name: &str, version: Option<&str>, req: &Req) -> Response {
    let body = match parse_json(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ch = match parse_changes(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let stub = vault_stub(v);
    let Some(e) = v
        .secrets
        .get_mut(&name.to_ascii_lowercase())
        .filter(|e| e.deleted.is_none() && !e.recovering())
    else {
        return secret_not_found(name, version);
    };
    let idx = match version {
        None => e.versions.len().checked_sub(1),
        Some(ver) => e
            .versions
            .iter()
            .position(|x| x.version.eq_ignore_ascii_case(ver)),
    };
    let Some(idx) = idx else {
        return secret_not_found(name, version);
    };
    let x = &mut e.versions[idx];
    if let Some(ct) = ch.content_type {
        x.content_type = ct;
    }
    if let Some(t) = ch.tags {
        x.tags = t;
    }
    if let Some(en) = ch.enabled {
        x.enabled = en;
    }
    if let Some(n) = ch.nbf {
        x.nbf = n;
    }
    if let Some(n) = ch.exp {
        x.exp = n;
    }
    x.updated = util::now().unix_timestamp();
    let e = &*e;
    util::json(
        StatusCode::OK,
        &Value::Object(bundle(&stub, e, &e.versions[idx], false)),
    )
}

/// A Vault with only the fields `bundle` reads (avoids cloning every secret).
fn vault_stub(v: &Vault) -> Vault {
    Vault {
        name: v.name.clone(),
        url: v.url.clone(),
        subscription_id: String::new(),
        resource_group: String::new(),
        location: String::new(),
        secrets: BTreeMap::new(),
        certificates: BTreeMap::new(),
        purging: Default::default(),
    }
}

fn delete_secret(v: &mut Vault, name: &str, fid: &crate::fidelity::Fidelity) -> Response {
    let stub = vault_stub(v);
    let Some(e) = v
        .secrets
        .get_mut(&name.to_ascii_lowercase())
        .filter(|e| e.deleted.is_none() && !e.recovering())
    else {
        return secret_not_found(name, None);
    };
    let now = util::now().unix_timestamp();
    let d = Deleted {
        deleted_date: now,
        scheduled_purge_date: now + RECOVERABLE_DAYS * 86_400,
        settles_at: std::time::Instant::now()
            + std::time::Duration::from_millis(fid.delete_delay_ms),
    };
    e.deleted = Some(d.clone());
    let Some(x) = e.latest() else {
        return util::empty(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let mut m = bundle(&stub, e, x, false);
    add_deleted(&mut m, &stub, e, &d);
    util::json(StatusCode::OK, &Value::Object(m))
}

fn get_deleted(v: &Vault, name: &str) -> Response {
    let Some(e) = v.secrets.get(&name.to_ascii_lowercase()) else {
        return deleted_not_found(name);
    };
    let (Some(d), Some(x)) = (e.deleted.as_ref().filter(|d| d.settled()), e.latest()) else {
        return deleted_not_found(name);
    };
    let mut m = bundle(v, e, x, false);
    add_deleted(&mut m, v, e, d);
    util::json(StatusCode::OK, &Value::Object(m))
}

fn purge_deleted(v: &mut Vault, name: &str, fid: &crate::fidelity::Fidelity) -> Response {
    let key = name.to_ascii_lowercase();
    match v.secrets.get(&key).and_then(|e| e.deleted.as_ref()) {
        Some(d) if !d.settled() => being_deleted(name),
        Some(_) => {
            v.secrets.remove(&key);
            let now = std::time::Instant::now();
            v.purging.retain(|_, t| *t > now);
            v.purging.insert(
                key,
                now + std::time::Duration::from_millis(fid.purge_delay_ms),
            );
            util::empty(StatusCode::NO_CONTENT)
        }
        None => deleted_not_found(name),
    }
}

fn recover_deleted(v: &mut Vault, name: &str, fid: &crate::fidelity::Fidelity) -> Response {
    let stub = vault_stub(v);
    let Some(e) = v.secrets.get_mut(&name.to_ascii_lowercase()) else {
        return deleted_not_found(name);
    };
    match &e.deleted {
        None => return deleted_not_found(name),
        Some(d) if !d.settled() => return being_deleted(name),
        Some(_) => {}
    }
    e.deleted = None;
    e.recovering_until =
        Some(std::time::Instant::now() + std::time::Duration::from_millis(fid.recover_delay_ms));
    let Some(x) = e.latest() else {
        return util::empty(StatusCode::INTERNAL_SERVER_ERROR);
    };
    util::json(StatusCode::OK, &Value::Object(bundle(&stub, e, x, false)))
}

/// A page token: the offset, and whether the empty page at that offset was already served.
fn skiptoken_encode(offset: usize, empty_served: bool) -> String {
    let e = if empty_served { ":e" } else { "" };
    util::b64url(format!("kv:{offset}{e}").as_bytes())
}

fn skiptoken_decode(t: &str) -> Option<(usize, bool)> {
    let s = String::from_utf8(util::b64_decode_any(t)?).ok()?;
    let s = s.strip_prefix("kv:")?;
    let (n, e) = match s.strip_suffix(":e") {
        Some(n) => (n, true),
        None => (s, false),
    };
    Some((n.parse().ok()?, e))
}

/// `((offset, empty page served), page size)` from `maxresults` and `$skiptoken`.
fn paging(req: &Req) -> Result<((usize, bool), usize), Response> {
    let size = match req.query.get("maxresults") {
        None => 25,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=25).contains(&n) => n,
            _ => {
                return Err(bad(&format!(
                    "Invalid maxresults value '{s}': it must be between 1 and 25."
                )));
            }
        },
    };
    let offset = match req.query.get("$skiptoken") {
        None => (0, false),
        Some(t) => skiptoken_decode(t).ok_or_else(|| bad("Invalid $skiptoken."))?,
    };
    Ok((offset, size))
}

/// One page of a list. `list` names the list for the seeded empty-page draw (never the port,
/// so the same seed gives the same pages in every run).
fn page<I: Iterator<Item = Value>>(
    items: I,
    (offset, empty_served): (usize, bool),
    size: usize,
    base: String,
    list: &str,
    api: &ApiCtx<'_>,
    req: &Req,
) -> Response {
    let link = |offset: usize, empty_served: bool| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("api-version", api.api_version);
        q.append_pair("$skiptoken", &skiptoken_encode(offset, empty_served));
        if let Some(m) = req.query.get("maxresults") {
            q.append_pair("maxresults", m);
        }
        format!("{base}?{}", q.finish())
    };
    let p = api.fidelity.empty_page_probability;
    let empty_here = |offset: usize| p > 0.0 && api.fidelity.draw(&format!("{list}#{offset}")) < p;
    if !empty_served && empty_here(offset) {
        // Azure's empty page: nothing, but a link to go on.
        return util::json(
            StatusCode::OK,
            &json!({"value": [], "nextLink": link(offset, true)}),
        );
    }
    let mut it = items.skip(offset);
    let value: Vec<Value> = it.by_ref().take(size).collect();
    let more = it.next().is_some();
    let next = if more {
        Some(link(offset + size, false))
    } else if !value.is_empty() && empty_here(offset + value.len()) {
        // one more, empty, final page
        Some(link(offset + value.len(), true))
    } else {
        None
    };
    util::json(StatusCode::OK, &json!({"value": value, "nextLink": next}))
}

fn list_secrets(v: &Vault, req: &Req, api: &ApiCtx<'_>) -> Response {
    let (offset, size) = match paging(req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let items = v
        .secrets
        .values()
        .filter(|e| e.deleted.is_none() && !e.recovering())
        .filter_map(|e| e.latest().map(|x| Value::Object(item(v, e, x, false))));
    page(
        items,
        offset,
        size,
        format!("{}secrets", v.url),
        "secrets",
        api,
        req,
    )
}

fn list_versions(v: &Vault, name: &str, req: &Req, api: &ApiCtx<'_>) -> Response {
    let (offset, size) = match paging(req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(e) = active(v, name) else {
        return secret_not_found(name, None);
    };
    let shown: Vec<&SecretVersion> = e.versions.iter().filter(|x| x.visible()).collect();
    let ids: Vec<&str> = shown.iter().map(|x| x.version.as_str()).collect();
    let items = api
        .fidelity
        .order_versions(&ids)
        .into_iter()
        .map(|i| Value::Object(item(v, e, shown[i], true)));
    page(
        items,
        offset,
        size,
        format!("{}secrets/{}/versions", v.url, e.name),
        &format!("secrets/{}/versions", e.name.to_ascii_lowercase()),
        api,
        req,
    )
}

fn list_deleted(v: &Vault, req: &Req, api: &ApiCtx<'_>) -> Response {
    let (offset, size) = match paging(req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let items = v.secrets.values().filter_map(|e| {
        let d = e.deleted.as_ref().filter(|d| d.settled())?;
        let x = e.latest()?;
        let mut m = item(v, e, x, false);
        add_deleted(&mut m, v, e, d);
        Some(Value::Object(m))
    });
    page(
        items,
        offset,
        size,
        format!("{}deletedsecrets", v.url),
        "deletedsecrets",
        api,
        req,
    )
}

// ---- certificates ---------------------------------------------------------------------------

fn cert_not_found(name: &str) -> Response {
    kv_error(
        StatusCode::NOT_FOUND,
        "CertificateNotFound",
        &format!(
            "A certificate with (name/id) {name} was not found in this key vault. If you recently deleted this certificate you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
        None,
    )
}

fn cert_attributes(c: &CertVersion) -> Value {
    json!({
        "enabled": c.enabled,
        "nbf": c.nbf,
        "exp": c.exp,
        "created": c.created,
        "updated": c.updated,
        "recoverableDays": RECOVERABLE_DAYS,
        "recoveryLevel": RECOVERY_LEVEL,
    })
}

fn cert_bundle(v: &Vault, e: &CertEntry, c: &CertVersion) -> Value {
    let mut policy = c.policy.clone();
    if let Value::Object(m) = &mut policy {
        m.insert(
            "id".into(),
            json!(format!("{}certificates/{}/policy", v.url, e.name)),
        );
    }
    let mut m = Map::new();
    m.insert(
        "id".into(),
        json!(format!("{}certificates/{}/{}", v.url, e.name, c.version)),
    );
    m.insert(
        "kid".into(),
        json!(format!("{}keys/{}/{}", v.url, e.name, c.version)),
    );
    m.insert(
        "sid".into(),
        json!(format!("{}secrets/{}/{}", v.url, e.name, c.version)),
    );
    m.insert("x5t".into(), json!(util::b64url(&util::sha1(&c.der))));
    m.insert("cer".into(), json!(util::b64(&c.der)));
    if let Some(ct) = c.policy.pointer("/secret_props/contentType") {
        m.insert("contentType".into(), ct.clone());
    }
    m.insert("attributes".into(), cert_attributes(c));
    m.insert("policy".into(), policy);
    if !c.tags.is_empty() {
        m.insert("tags".into(), json!(c.tags));
    }
    Value::Object(m)
}

fn operation_json(v: &Vault, e: &CertEntry) -> Value {
    let last = e.versions.last();
    let done = last.is_none_or(CertVersion::ready);
    let mut op = json!({
        "id": format!("{}certificates/{}/pending", v.url, e.name),
        "issuer": {"name": "Self"},
        "csr": last.map(|c| c.csr.clone()),
        "cancellation_requested": false,
        "status": if done { "completed" } else { "inProgress" },
        "status_details": if done { "" } else { "Pending certificate created. Certificate request is in progress. This may take some time based on the issuer provider. Please check again later." },
        "request_id": e.pending_request_id,
    });
    if done {
        op["target"] = json!(format!("{}certificates/{}", v.url, e.name));
    }
    op
}

/// While the operation is in progress: `Retry-After` (seconds) and `retry-after-ms` (what the
/// official SDKs' pollers read first) until it completes.
fn operation_response(v: &Vault, e: &CertEntry, status: StatusCode) -> Response {
    let mut r = util::json(status, &operation_json(v, e));
    if let Some(c) = e.versions.last().filter(|c| !c.ready()) {
        let left = c
            .ready_at
            .saturating_duration_since(std::time::Instant::now());
        let ms = left.as_millis().max(1) as u64;
        let h = r.headers_mut();
        if let Ok(x) = HeaderValue::from_str(&ms.to_string()) {
            h.insert("retry-after-ms", x);
        }
        if let Ok(x) = HeaderValue::from_str(&ms.div_ceil(1000).to_string()) {
            h.insert(http::header::RETRY_AFTER, x);
        }
    }
    r
}

fn subject_cn(subject: &str) -> String {
    subject
        .split(',')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("CN"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| subject.to_string())
}

fn create_certificate(
    v: &mut Vault,
    name: &str,
    req: &Req,
    fid: &crate::fidelity::Fidelity,
) -> Response {
    if let Some(r) = check_name(name) {
        return r;
    }
    let body = match parse_json(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut policy = body.get("policy").cloned().unwrap_or_else(|| json!({}));
    let x509 = policy.get("x509_props").cloned().unwrap_or(json!({}));
    let subject = x509
        .get("subject")
        .and_then(Value::as_str)
        .unwrap_or("CN=DefaultPolicy")
        .to_string();
    let months = x509
        .get("validity_months")
        .and_then(Value::as_i64)
        .unwrap_or(12)
        .clamp(1, 1200);
    let issuer = policy
        .pointer("/issuer/name")
        .and_then(Value::as_str)
        .unwrap_or("Self");
    if !issuer.eq_ignore_ascii_case("Self") && !issuer.eq_ignore_ascii_case("Unknown") {
        return bad(&format!(
            "rotor-emulator issues self-signed certificates only (issuer '{issuer}')."
        ));
    }
    let tags: BTreeMap<String, String> = body
        .get("tags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    if tags.len() > MAX_TAGS {
        return bad("The number of tags exceeds the maximum of 15.");
    }
    let enabled = body
        .pointer("/attributes/enabled")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let key = name.to_ascii_lowercase();
    if v.secrets.get(&key).is_some_and(|e| e.deleted.is_some()) {
        return conflict_deleted(name);
    }
    let now = util::now();
    let nbf = now - time::Duration::minutes(5);
    let exp = now + time::Duration::days(30 * months);
    let key_props = policy.get("key_props").cloned().unwrap_or(json!({}));
    let kty = key_props
        .get("kty")
        .and_then(Value::as_str)
        .unwrap_or("RSA")
        .to_ascii_uppercase();
    let key_size = key_props
        .get("key_size")
        .and_then(Value::as_u64)
        .unwrap_or(2048);
    let key_spec = match kty.as_str() {
        "RSA" | "RSA-HSM" => match key_size {
            2048 => KeySpec::Rsa(rcgen::RsaKeySize::_2048),
            3072 => KeySpec::Rsa(rcgen::RsaKeySize::_3072),
            4096 => KeySpec::Rsa(rcgen::RsaKeySize::_4096),
            n => {
                return bad(&format!(
                    "Invalid key size {n}: RSA keys are 2048, 3072 or 4096 bits."
                ));
            }
        },
        "EC" | "EC-HSM" => KeySpec::P256,
        k => return bad(&format!("Invalid key type '{k}'.")),
    };
    // Key Vault answers 409 to a create while an earlier operation on the certificate is
    // still pending.
    let pending = std::time::Instant::now();
    if v.certificates
        .get(&key)
        .is_some_and(|e| e.versions.iter().any(|cv| cv.ready_at > pending))
    {
        return kv_error(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "There was a conflict while creating certificate '{name}': a certificate operation is already pending. This can happen when multiple operations are performed in parallel against the pending certificate. To avoid this error, perform operations against the pending certificate in a sequential manner."
            ),
            None,
        );
    }
    let (der, pem, csr, key_der) = match generate_cert(&subject, nbf, exp, key_spec) {
        Ok(x) => x,
        Err(e) => {
            return kv_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!("generating the certificate: {e}"),
                None,
            );
        }
    };
    // Fill the policy defaults Key Vault reports back.
    if let Value::Object(m) = &mut policy {
        let kp = match key_spec {
            KeySpec::Rsa(_) => {
                json!({"exportable": true, "kty": kty, "key_size": key_size, "reuse_key": false})
            }
            KeySpec::P256 => {
                json!({"exportable": true, "kty": kty, "crv": "P-256", "reuse_key": false})
            }
        };
        m.insert("key_props".into(), kp);
        m.entry("secret_props")
            .or_insert(json!({"contentType": "application/x-pem-file"}));
        m.entry("issuer").or_insert(json!({"name": "Self"}));
        m.insert("attributes".into(), json!({"enabled": true, "created": now.unix_timestamp(), "updated": now.unix_timestamp()}));
        let xp = m.entry("x509_props").or_insert(json!({}));
        if let Value::Object(x) = xp {
            x.entry("subject").or_insert(json!(subject));
            x.entry("validity_months").or_insert(json!(months));
        }
    }
    let version = util::hex32();
    let ts = now.unix_timestamp();
    let cv = CertVersion {
        version: version.clone(),
        der,
        key: key_der,
        policy,
        enabled,
        nbf: nbf.unix_timestamp(),
        exp: exp.unix_timestamp(),
        created: ts,
        updated: ts,
        tags: tags.clone(),
        subject,
        ready_at: std::time::Instant::now()
            + std::time::Duration::from_millis(fid.certificate_delay_ms),
        csr: util::b64(&csr),
    };
    let url = v.url.clone();
    store_version(v, name, cv, pem, "application/x-pem-file");
    if let Some(e) = v.certificates.get_mut(&key) {
        e.pending_request_id = util::hex32();
    }
    let Some(e) = v.certificates.get(&key) else {
        return util::empty(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let mut r = operation_response(v, e, StatusCode::ACCEPTED);
    if let Ok(h) = HeaderValue::from_str(&format!("{url}certificates/{name}/pending")) {
        r.headers_mut().insert(http::header::LOCATION, h);
    }
    r
}

/// Add a certificate version and its managed backing secret version (same version id, `kid`
/// naming the key, `previousVersion` the certificate's version before it).
fn store_version(
    v: &mut Vault,
    name: &str,
    cv: CertVersion,
    secret_value: String,
    content_type: &str,
) {
    let key = name.to_ascii_lowercase();
    let url = v.url.clone();
    let entry = v
        .certificates
        .entry(key.clone())
        .or_insert_with(|| CertEntry {
            name: name.to_string(),
            versions: Vec::new(),
            pending_request_id: String::new(),
        });
    let previous = entry.versions.last().map(|c| c.version.clone());
    let secret = SecretVersion {
        version: cv.version.clone(),
        value: secret_value,
        content_type: Some(content_type.to_string()),
        tags: cv.tags.clone(),
        enabled: cv.enabled,
        nbf: Some(cv.nbf),
        exp: Some(cv.exp),
        created: cv.created,
        updated: cv.updated,
        kid: Some(format!("{url}keys/{}/{}", entry.name, cv.version)),
        visible_at: Some(cv.ready_at),
        previous_version: previous,
    };
    entry.versions.push(cv);
    let s = v.secrets.entry(key).or_insert_with(|| SecretEntry {
        name: name.to_string(),
        versions: Vec::new(),
        deleted: None,
        recovering_until: None,
    });
    s.versions.push(secret);
}

/// The key of a certificate: RSA (Key Vault's default, and all Entra accepts for client
/// assertions) or EC P-256.
#[derive(Debug, Clone, Copy)]
enum KeySpec {
    Rsa(rcgen::RsaKeySize),
    P256,
}

/// A self-signed certificate: (DER, PEM of private key + certificate, DER of its CSR, PKCS#8
/// DER of its key).
fn generate_cert(
    subject: &str,
    nbf: time::OffsetDateTime,
    exp: time::OffsetDateTime,
    spec: KeySpec,
) -> anyhow::Result<(Vec<u8>, String, Vec<u8>, PrivateKey)> {
    let cn = subject_cn(subject);
    let key = match spec {
        KeySpec::Rsa(size) => rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)?,
        KeySpec::P256 => rcgen::KeyPair::generate()?,
    };
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.not_before = nbf;
    params.not_after = exp;
    let csr = params.serialize_request(&key)?.der().to_vec();
    let cert = params.self_signed(&key)?;
    let pem = format!("{}{}", key.serialize_pem(), cert.pem());
    Ok((
        cert.der().to_vec(),
        pem,
        csr,
        PrivateKey(key.serialize_der()),
    ))
}

fn certificate_operation(v: &Vault, name: &str) -> Response {
    // An imported version has no operation (and no CSR).
    let created = |e: &&CertEntry| e.versions.last().is_some_and(|c| !c.csr.is_empty());
    match v
        .certificates
        .get(&name.to_ascii_lowercase())
        .filter(created)
    {
        Some(e) => operation_response(v, e, StatusCode::OK),
        None => kv_error(
            StatusCode::NOT_FOUND,
            "PendingCertificateNotFound",
            &format!("Pending certificate not found: {name}"),
            None,
        ),
    }
}

fn get_certificate(v: &Vault, name: &str, version: Option<&str>) -> Response {
    let Some(e) = v.certificates.get(&name.to_ascii_lowercase()) else {
        return cert_not_found(name);
    };
    let c = match version {
        None => e.versions.iter().rev().find(|c| c.ready()),
        Some(ver) => e
            .versions
            .iter()
            .find(|c| c.ready() && c.version.eq_ignore_ascii_case(ver)),
    };
    match c {
        Some(c) => util::json(StatusCode::OK, &cert_bundle(v, e, c)),
        None => cert_not_found(name),
    }
}

fn cert_item(v: &Vault, e: &CertEntry, c: &CertVersion, with_version: bool) -> Value {
    let id = if with_version {
        format!("{}certificates/{}/{}", v.url, e.name, c.version)
    } else {
        format!("{}certificates/{}", v.url, e.name)
    };
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("x5t".into(), json!(util::b64url(&util::sha1(&c.der))));
    m.insert("attributes".into(), cert_attributes(c));
    if !c.tags.is_empty() {
        m.insert("tags".into(), json!(c.tags));
    }
    Value::Object(m)
}

fn list_certificates(v: &Vault, req: &Req, api: &ApiCtx<'_>) -> Response {
    let (offset, size) = match paging(req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let items = v.certificates.values().filter_map(|e| {
        e.versions
            .iter()
            .rev()
            .find(|c| c.ready())
            .map(|c| cert_item(v, e, c, false))
    });
    page(
        items,
        offset,
        size,
        format!("{}certificates", v.url),
        "certificates",
        api,
        req,
    )
}

fn list_certificate_versions(v: &Vault, name: &str, req: &Req, api: &ApiCtx<'_>) -> Response {
    let (offset, size) = match paging(req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(e) = v.certificates.get(&name.to_ascii_lowercase()) else {
        return cert_not_found(name);
    };
    let items = e
        .versions
        .iter()
        .filter(|c| c.ready())
        .map(|c| cert_item(v, e, c, true));
    page(
        items,
        offset,
        size,
        format!("{}certificates/{}/versions", v.url, e.name),
        &format!("certificates/{}/versions", e.name.to_ascii_lowercase()),
        api,
        req,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(m: Method, path: &str) -> Option<Route> {
        route(&m, &util::segments(path))
    }

    #[test]
    fn routes_and_templates() {
        let t = |m: Method, p: &str| r(m, p).map(|x| x.template());
        assert_eq!(t(Method::GET, "/secrets/a/"), Some("/secrets/{name}"));
        assert_eq!(t(Method::GET, "/secrets/a"), Some("/secrets/{name}"));
        assert_eq!(
            t(Method::GET, "/secrets/a/0123"),
            Some("/secrets/{name}/{version}")
        );
        assert_eq!(
            t(Method::GET, "/secrets/a/versions"),
            Some("/secrets/{name}/versions")
        );
        assert_eq!(t(Method::GET, "/secrets"), Some("/secrets"));
        assert_eq!(
            t(Method::PATCH, "/secrets/a/"),
            Some("/secrets/{name}/{version}")
        );
        assert_eq!(
            t(Method::POST, "/deletedsecrets/a/recover"),
            Some("/deletedsecrets/{name}/recover")
        );
        assert_eq!(
            t(Method::GET, "/certificates/c/pending"),
            Some("/certificates/{name}/pending")
        );
        assert_eq!(t(Method::GET, "/keys/k"), Some("/keys/{name}"));
        assert_eq!(t(Method::GET, "/keys/k/"), Some("/keys/{name}"));
        assert_eq!(
            t(Method::GET, "/keys/k/0a1b"),
            Some("/keys/{name}/{version}")
        );
        assert_eq!(
            t(Method::GET, "/keys/k/versions"),
            Some("/keys/{name}/versions")
        );
        assert_eq!(
            t(Method::POST, "/keys/k//sign"),
            Some("/keys/{name}/{version}/sign")
        );
        assert!(matches!(r(Method::POST, "/keys/k//sign"), Some(Route::Sign(n, None)) if n == "k"));
        assert!(
            matches!(r(Method::POST, "/keys/k/0a1b/sign"), Some(Route::Sign(_, Some(v))) if v == "0a1b")
        );
        assert!(r(Method::PUT, "/keys/k").is_none());
        assert!(r(Method::POST, "/secrets/a").is_none());
        assert!(
            matches!(r(Method::GET, "/secrets/a/"), Some(Route::GetSecret(n, None)) if n == "a")
        );
    }

    #[test]
    fn names_and_roles() {
        assert!(valid_object_name("abc-123"));
        assert!(!valid_object_name("a_b"));
        assert!(!valid_object_name(""));
        assert!(!valid_object_name(&"a".repeat(128)));
        assert!(Op::GetSecret.granted_by("key vault secrets user"));
        assert!(!Op::SetSecret.granted_by("Key Vault Secrets User"));
        assert!(Op::ReadSecretMetadata.granted_by("Key Vault Reader"));
        assert!(!Op::GetSecret.granted_by("Key Vault Reader"));
        assert!(Op::PurgeSecret.granted_by("Key Vault Administrator"));
        assert!(!Op::CreateCertificate.granted_by("Key Vault Secrets Officer"));
        assert!(Op::SignKey.granted_by("Key Vault Crypto User"));
        assert!(Op::SignKey.granted_by("Key Vault Crypto Officer"));
        assert!(!Op::SignKey.granted_by("Key Vault Certificates Officer"));
        assert!(!Op::ReadKey.granted_by("Key Vault Certificates Officer"));
        assert!(Op::ReadKey.granted_by("Key Vault Certificate User"));
        assert!(!Op::SignKey.granted_by("Key Vault Certificate User"));
        assert!(Op::ReadKey.granted_by("Key Vault Reader"));
        assert!(!Op::SignKey.granted_by("Key Vault Reader"));
    }

    #[test]
    fn skiptokens_roundtrip() {
        assert_eq!(
            skiptoken_decode(&skiptoken_encode(50, false)),
            Some((50, false))
        );
        assert_eq!(
            skiptoken_decode(&skiptoken_encode(7, true)),
            Some((7, true))
        );
        assert_eq!(skiptoken_decode("!!"), None);
    }
}
