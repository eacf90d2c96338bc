//! Microsoft Graph v1.0 `applications`.

use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::server::{Audience, AuthError, Caller, Ctx, Req};
use crate::state::{App, KeyCred, Password, Store};
use crate::util;

/// How a request names an application.
#[derive(Debug, Clone)]
pub enum AppKey {
    ObjectId(String),
    AppId(String),
}

#[derive(Debug, Clone)]
pub enum Route {
    ListServicePrincipals,
    GetServicePrincipal(AppKey),
    List,
    /// `GET /v1.0/applications/$count`
    Count,
    Get(AppKey),
    Patch(AppKey),
    AddPassword(AppKey),
    RemovePassword(AppKey),
    AddKey(AppKey),
    RemoveKey(AppKey),
}

impl Route {
    pub fn template(&self) -> &'static str {
        match self {
            Route::ListServicePrincipals => "/v1.0/servicePrincipals",
            Route::GetServicePrincipal(AppKey::ObjectId(_)) => "/v1.0/servicePrincipals/{id}",
            Route::GetServicePrincipal(AppKey::AppId(_)) => {
                "/v1.0/servicePrincipals(appId='{appId}')"
            }
            Route::List => "/v1.0/applications",
            Route::Count => "/v1.0/applications/$count",
            Route::Get(AppKey::ObjectId(_)) | Route::Patch(AppKey::ObjectId(_)) => {
                "/v1.0/applications/{id}"
            }
            Route::Get(AppKey::AppId(_)) | Route::Patch(AppKey::AppId(_)) => {
                "/v1.0/applications(appId='{appId}')"
            }
            Route::AddPassword(AppKey::ObjectId(_)) => "/v1.0/applications/{id}/addPassword",
            Route::AddPassword(AppKey::AppId(_)) => {
                "/v1.0/applications(appId='{appId}')/addPassword"
            }
            Route::AddKey(AppKey::ObjectId(_)) => "/v1.0/applications/{id}/addKey",
            Route::AddKey(AppKey::AppId(_)) => "/v1.0/applications(appId='{appId}')/addKey",
            Route::RemoveKey(AppKey::ObjectId(_)) => "/v1.0/applications/{id}/removeKey",
            Route::RemoveKey(AppKey::AppId(_)) => "/v1.0/applications(appId='{appId}')/removeKey",
            Route::RemovePassword(AppKey::ObjectId(_)) => "/v1.0/applications/{id}/removePassword",
            Route::RemovePassword(AppKey::AppId(_)) => {
                "/v1.0/applications(appId='{appId}')/removePassword"
            }
        }
    }
}

fn alt_key(seg: &str) -> Option<AppKey> {
    alt_key_of("applications", seg)
}

fn alt_key_of(collection: &str, seg: &str) -> Option<AppKey> {
    let inner = seg
        .strip_prefix(collection)?
        .strip_prefix('(')?
        .strip_suffix(')')?;
    let (k, v) = inner.split_once('=')?;
    if !k.trim().eq_ignore_ascii_case("appId") {
        return None;
    }
    let v = v.trim().trim_matches('\'').trim_matches('"');
    Some(AppKey::AppId(v.to_string()))
}

/// Route the segments after `/v1.0`.
pub fn route(method: &Method, s: &[&str]) -> Option<Route> {
    if method == Method::GET {
        match s {
            ["servicePrincipals"] => return Some(Route::ListServicePrincipals),
            ["servicePrincipals", id] => {
                return Some(Route::GetServicePrincipal(AppKey::ObjectId(
                    (*id).to_string(),
                )));
            }
            [seg] if seg.starts_with("servicePrincipals(") => {
                return alt_key_of("servicePrincipals", seg).map(Route::GetServicePrincipal);
            }
            _ => {}
        }
    }
    let (key, rest): (AppKey, &[&str]) = match s {
        ["applications"] => {
            return (method == Method::GET).then_some(Route::List);
        }
        ["applications", "$count"] => {
            return (method == Method::GET).then_some(Route::Count);
        }
        ["applications", id, rest @ ..] => (AppKey::ObjectId((*id).to_string()), rest),
        [seg, rest @ ..] => (alt_key(seg)?, rest),
        _ => return None,
    };
    match (method, rest) {
        (&Method::GET, []) => Some(Route::Get(key)),
        (&Method::PATCH, []) => Some(Route::Patch(key)),
        (&Method::POST, ["addPassword"]) => Some(Route::AddPassword(key)),
        (&Method::POST, ["removePassword"]) => Some(Route::RemovePassword(key)),
        (&Method::POST, ["addKey"]) => Some(Route::AddKey(key)),
        (&Method::POST, ["removeKey"]) => Some(Route::RemoveKey(key)),
        _ => None,
    }
}

/// Graph's error shape.
pub fn graph_error(req: &Req, status: StatusCode, code: &str, message: &str) -> Response {
    let request_id = util::guid();
    let client_request_id = req
        .header("client-request-id")
        .map(str::to_string)
        .unwrap_or_else(|| request_id.clone());
    let mut r = util::json(
        status,
        &json!({"error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": util::rfc3339(util::now()).trim_end_matches('Z').to_string(),
                "request-id": request_id,
                "client-request-id": client_request_id,
            }
        }}),
    );
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        r.headers_mut().insert("request-id", v);
    }
    r
}

/// What a caller may do in Graph.
struct Access {
    read_all: bool,
    write_all: bool,
    owned_by: Option<(String, String)>,
}

impl Access {
    fn of(store: &Store, caller: Caller) -> Access {
        match caller {
            Caller::App(_) => Access {
                read_all: false,
                write_all: false,
                owned_by: None,
            },
            Caller::Principal(i) => {
                let p = &store.principals[i];
                let has = |r: &str| p.graph_roles.iter().any(|x| x.eq_ignore_ascii_case(r));
                let write_all = has("Application.ReadWrite.All") || has("Directory.ReadWrite.All");
                Access {
                    read_all: write_all || has("Application.Read.All") || has("Directory.Read.All"),
                    write_all,
                    owned_by: has("Application.ReadWrite.OwnedBy")
                        .then(|| (p.client_id.clone(), p.object_id.clone())),
                }
            }
        }
    }

    fn owns(&self, app: &App) -> bool {
        self.owned_by.as_ref().is_some_and(|(cid, oid)| {
            app.owners
                .iter()
                .any(|o| o.eq_ignore_ascii_case(cid) || o.eq_ignore_ascii_case(oid))
        })
    }

    fn can_read(&self, app: &App) -> bool {
        self.read_all || self.owns(app)
    }

    fn can_write(&self, app: &App) -> bool {
        self.write_all || self.owns(app)
    }

    fn can_list(&self) -> bool {
        self.read_all || self.owned_by.is_some()
    }
}

fn denied(req: &Req) -> Response {
    graph_error(
        req,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

fn auth(ctx: &Ctx, req: &Req) -> Result<Caller, Response> {
    match ctx.authenticate(&req.headers) {
        Ok((caller, Audience::Graph | Audience::Main)) => Ok(caller),
        Ok(_) => Err(graph_error(
            req,
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        )),
        Err(e) => {
            let msg = match e {
                AuthError::Missing => "Access token is empty.",
                AuthError::Unknown => "Invalid JWT token. Token format not valid.",
                AuthError::Expired => "Lifetime validation failed, the token is expired.",
            };
            Err(graph_error(
                req,
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                msg,
            ))
        }
    }
}

pub fn handle(ctx: &Ctx, route: Route, req: &Req) -> Response {
    let caller = match auth(ctx, req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    // Object ids are GUIDs: anything else is a malformed request, not a missing object.
    if let Route::Get(AppKey::ObjectId(id))
    | Route::Patch(AppKey::ObjectId(id))
    | Route::AddPassword(AppKey::ObjectId(id))
    | Route::RemovePassword(AppKey::ObjectId(id))
    | Route::AddKey(AppKey::ObjectId(id))
    | Route::RemoveKey(AppKey::ObjectId(id))
    | Route::GetServicePrincipal(AppKey::ObjectId(id)) = &route
        && uuid::Uuid::try_parse(id).is_err()
    {
        return graph_error(
            req,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            &format!("Invalid object identifier '{id}'."),
        );
    }
    match route {
        Route::ListServicePrincipals => list_service_principals(ctx, caller, req),
        Route::GetServicePrincipal(k) => get_service_principal(ctx, caller, &k, req),
        Route::List => list(ctx, caller, req),
        Route::Count => count(ctx, caller, req),
        Route::Get(k) => get(ctx, caller, &k, req),
        Route::Patch(k) => patch(ctx, caller, &k, req),
        Route::AddPassword(k) => add_password(ctx, caller, &k, req),
        Route::RemovePassword(k) => remove_password(ctx, caller, &k, req),
        Route::AddKey(k) => roll_key(ctx, caller, &k, req, true),
        Route::RemoveKey(k) => roll_key(ctx, caller, &k, req, false),
    }
}

/// Whether a write route targets an application whose `signInAudience` accepts personal
/// Microsoft accounts (Graph caps writes to those at 60 per minute).
pub fn writes_personal_app(store: &Store, route: &Route) -> bool {
    let key = match route {
        Route::Patch(k)
        | Route::AddPassword(k)
        | Route::RemovePassword(k)
        | Route::AddKey(k)
        | Route::RemoveKey(k) => k,
        _ => return false,
    };
    find(store, key).is_some_and(|i| store.apps[i].password_cap().is_some())
}

fn find(store: &Store, key: &AppKey) -> Option<usize> {
    match key {
        AppKey::ObjectId(id) => store.app_index_by_object_id(id),
        AppKey::AppId(id) => store.app_index_by_app_id(id),
    }
}

fn not_found(req: &Req, key: &AppKey) -> Response {
    let id = match key {
        AppKey::ObjectId(id) | AppKey::AppId(id) => id,
    };
    graph_error(
        req,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

/// Every property the emulator returns for an application, in Graph's order.
const PROPERTIES: &[&str] = &[
    "id",
    "deletedDateTime",
    "appId",
    "createdDateTime",
    "description",
    "displayName",
    "identifierUris",
    "notes",
    "publisherDomain",
    "signInAudience",
    "tags",
    "keyCredentials",
    "passwordCredentials",
    "tokenEncryptionKeyId",
];

pub fn password_json(p: &Password, secret: Option<&str>) -> Value {
    json!({
        "customKeyIdentifier": null,
        "displayName": p.display_name,
        "endDateTime": util::graph_time(p.end),
        "hint": p.hint(),
        "keyId": p.key_id,
        "secretText": secret,
        "startDateTime": util::graph_time(p.start),
    })
}

/// A key credential; `key` (base64 DER) only when asked for (single object with
/// `$select=keyCredentials`), otherwise null, as Graph does.
fn key_json(k: &KeyCred, with_key: bool) -> Value {
    let key = if with_key {
        k.key_der.as_deref().map(util::b64)
    } else {
        None
    };
    json!({
        "customKeyIdentifier": util::b64(&k.thumbprint),
        "displayName": k.display_name,
        "endDateTime": util::graph_time(k.end),
        "key": key,
        "keyId": k.key_id,
        "startDateTime": util::graph_time(k.start),
        "type": k.key_type,
        "usage": k.usage,
    })
}

fn app_json(a: &App, select: Option<&[&'static str]>) -> Value {
    app_json_with(a, select, false)
}

fn app_json_with(a: &App, select: Option<&[&'static str]>, with_key: bool) -> Value {
    let mut m = Map::new();
    let props = select.unwrap_or(PROPERTIES);
    for p in PROPERTIES {
        if !props.contains(p) && *p != "id" {
            continue;
        }
        let v = match *p {
            "id" => json!(a.object_id),
            "deletedDateTime" => Value::Null,
            "appId" => json!(a.app_id),
            "createdDateTime" => json!(util::graph_time(a.created)),
            "description" => Value::Null,
            "displayName" => json!(a.display_name),
            "identifierUris" => json!([]),
            "notes" => Value::Null,
            "publisherDomain" => json!("rotor-emulator.onmicrosoft.com"),
            "signInAudience" => json!(a.sign_in_audience),
            "tags" => json!([]),
            "tokenEncryptionKeyId" => json!(a.token_encryption_key_id),
            "keyCredentials" => {
                // eventual consistency: a new key credential shows up only after a while
                let now = std::time::Instant::now();
                Value::Array(
                    a.keys
                        .iter()
                        .filter(|k| k.readable_after <= now)
                        .map(|k| key_json(k, with_key))
                        .collect(),
                )
            }
            "passwordCredentials" => {
                // eventual consistency: a new password shows up only after a while
                let now = std::time::Instant::now();
                Value::Array(
                    a.passwords
                        .iter()
                        .filter(|p| p.readable_after <= now)
                        .map(|p| password_json(p, None))
                        .collect(),
                )
            }
            _ => Value::Null,
        };
        m.insert((*p).to_string(), v);
    }
    Value::Object(m)
}

fn parse_select(req: &Req) -> Result<Option<Vec<&'static str>>, Response> {
    let Some(sel) = req.query.get("$select") else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in sel.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match PROPERTIES.iter().find(|p| p.eq_ignore_ascii_case(name)) {
            Some(p) => out.push(*p),
            None => {
                return Err(graph_error(
                    req,
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    &format!(
                        "Could not find a property named '{name}' on type 'microsoft.graph.application'."
                    ),
                ));
            }
        }
    }
    Ok(Some(out))
}

fn get(ctx: &Ctx, caller: Caller, key: &AppKey, req: &Req) -> Response {
    let select = match parse_select(req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let store = ctx.store.read();
    let access = Access::of(&store, caller);
    if !access.can_list() {
        return denied(req);
    }
    let Some(i) = find(&store, key) else {
        return not_found(req, key);
    };
    let app = &store.apps[i];
    if !access.can_read(app) {
        return not_found(req, key);
    }
    let with_key = select
        .as_ref()
        .is_some_and(|s| s.contains(&"keyCredentials"));
    let mut v = app_json_with(app, select.as_deref(), with_key);
    if let Value::Object(m) = &mut v {
        m.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/v1.0/$metadata#applications/$entity",
                ctx.main_url
            )),
        );
    }
    util::json(StatusCode::OK, &v)
}

// ---- $filter ------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Filter {
    Eq(String, String),
    In(String, Vec<String>),
    StartsWith(String, String),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

impl Filter {
    fn matches(&self, a: &App) -> bool {
        self.matches_with(&|f: &str| match f {
            "appId" => Some(a.app_id.as_str()),
            "id" => Some(a.object_id.as_str()),
            "displayName" => Some(a.display_name.as_str()),
            "signInAudience" => Some(a.sign_in_audience.as_str()),
            _ => None,
        })
    }

    /// `field` maps a canonical property name to its value.
    fn matches_with<'a>(&self, field: &dyn Fn(&str) -> Option<&'a str>) -> bool {
        match self {
            Filter::Eq(f, v) => field(f).is_some_and(|x| x.eq_ignore_ascii_case(v)),
            Filter::In(f, vs) => {
                field(f).is_some_and(|x| vs.iter().any(|v| x.eq_ignore_ascii_case(v)))
            }
            Filter::StartsWith(f, v) => field(f)
                .is_some_and(|x| x.to_ascii_lowercase().starts_with(&v.to_ascii_lowercase())),
            Filter::And(l, r) => l.matches_with(field) && r.matches_with(field),
            Filter::Or(l, r) => l.matches_with(field) || r.matches_with(field),
        }
    }
}

struct FilterParser<'a> {
    s: &'a str,
    pos: usize,
}

const FILTER_FIELDS: &[&str] = &["appId", "id", "displayName", "signInAudience"];

impl<'a> FilterParser<'a> {
    fn ws(&mut self) {
        while self.s[self.pos..].starts_with(' ') {
            self.pos += 1;
        }
    }
    fn eat(&mut self, t: &str) -> bool {
        self.ws();
        let rest = &self.s[self.pos..];
        if rest.len() >= t.len() && rest[..t.len()].eq_ignore_ascii_case(t) {
            self.pos += t.len();
            true
        } else {
            false
        }
    }
    fn keyword(&mut self, k: &str) -> bool {
        self.ws();
        let rest = &self.s[self.pos..];
        if rest.len() > k.len()
            && rest[..k.len()].eq_ignore_ascii_case(k)
            && rest.as_bytes()[k.len()] == b' '
        {
            self.pos += k.len();
            true
        } else {
            false
        }
    }
    fn ident(&mut self) -> Result<String, String> {
        self.ws();
        let start = self.pos;
        while self.pos < self.s.len() && self.s.as_bytes()[self.pos].is_ascii_alphanumeric() {
            self.pos += 1;
        }
        let id = &self.s[start..self.pos];
        match FILTER_FIELDS.iter().find(|f| f.eq_ignore_ascii_case(id)) {
            Some(f) => Ok((*f).to_string()),
            None if id.is_empty() => Err(format!("expected a property at position {start}")),
            None => Err(format!(
                "property '{id}' is not supported in $filter (supported: appId, id, displayName, signInAudience)"
            )),
        }
    }
    fn string(&mut self) -> Result<String, String> {
        self.ws();
        if !self.s[self.pos..].starts_with('\'') {
            return Err(format!("expected a quoted string at position {}", self.pos));
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.s[self.pos..].chars().next() else {
                return Err("unterminated string literal".into());
            };
            self.pos += c.len_utf8();
            if c == '\'' {
                if self.s[self.pos..].starts_with('\'') {
                    out.push('\'');
                    self.pos += 1;
                } else {
                    return Ok(out);
                }
            } else {
                out.push(c);
            }
        }
    }
    fn clause(&mut self) -> Result<Filter, String> {
        if self.eat("(") {
            let f = self.or()?;
            if !self.eat(")") {
                return Err("expected ')'".into());
            }
            return Ok(f);
        }
        if self.eat("startswith(") {
            let f = self.ident()?;
            if !self.eat(",") {
                return Err("expected ',' in startswith".into());
            }
            let v = self.string()?;
            if !self.eat(")") {
                return Err("expected ')' after startswith".into());
            }
            return Ok(Filter::StartsWith(f, v));
        }
        let f = self.ident()?;
        if self.keyword("eq") {
            return Ok(Filter::Eq(f, self.string()?));
        }
        if self.keyword("in") {
            if !self.eat("(") {
                return Err("expected '(' after in".into());
            }
            let mut vs = vec![self.string()?];
            while self.eat(",") {
                vs.push(self.string()?);
            }
            if !self.eat(")") {
                return Err("expected ')' closing in".into());
            }
            return Ok(Filter::In(f, vs));
        }
        Err(format!(
            "unsupported operator after '{f}' (supported: eq, in, startswith)"
        ))
    }
    fn and(&mut self) -> Result<Filter, String> {
        let mut l = self.clause()?;
        while self.keyword("and") {
            l = Filter::And(Box::new(l), Box::new(self.clause()?));
        }
        Ok(l)
    }
    fn or(&mut self) -> Result<Filter, String> {
        let mut l = self.and()?;
        while self.keyword("or") {
            l = Filter::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
}

fn parse_filter(s: &str) -> Result<Filter, String> {
    let mut p = FilterParser { s, pos: 0 };
    let f = p.or()?;
    p.ws();
    if p.pos != s.len() {
        return Err(format!(
            "unexpected text at position {}: '{}'",
            p.pos,
            &s[p.pos..]
        ));
    }
    Ok(f)
}

fn skiptoken_encode(offset: usize) -> String {
    format!(
        "RFNwdAIAAQAAA{}",
        util::b64url(format!("rotor:{offset}").as_bytes())
    )
}

fn skiptoken_decode(t: &str) -> Option<usize> {
    let b = util::b64_decode_any(t.strip_prefix("RFNwdAIAAQAAA")?)?;
    String::from_utf8(b)
        .ok()?
        .strip_prefix("rotor:")?
        .parse()
        .ok()
}

fn list(ctx: &Ctx, caller: Caller, req: &Req) -> Response {
    let select = match parse_select(req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let top = match req.query.get("$top") {
        None => 100,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=999).contains(&n) => n,
            _ => {
                return graph_error(
                    req,
                    StatusCode::BAD_REQUEST,
                    "Request_UnsupportedQuery",
                    &format!(
                        "Invalid page size specified: '{t}'. Must be between 1 and 999 inclusive."
                    ),
                );
            }
        },
    };
    let offset = match req.query.get("$skiptoken") {
        None => 0,
        Some(t) => match skiptoken_decode(t) {
            Some(o) => o,
            None => {
                return graph_error(
                    req,
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "Invalid or expired $skiptoken.",
                );
            }
        },
    };
    let filter = match req.query.get("$filter") {
        None => None,
        Some(f) => match parse_filter(f) {
            Ok(f) => Some(f),
            Err(e) => {
                return graph_error(
                    req,
                    StatusCode::BAD_REQUEST,
                    "Request_UnsupportedQuery",
                    &format!("Unsupported or invalid query filter clause specified: {e}."),
                );
            }
        },
    };
    let adv = match Advanced::parse(req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let store = ctx.store.read();
    let access = Access::of(&store, caller);
    if !access.can_list() {
        return denied(req);
    }
    let mut page = Vec::with_capacity(top.min(store.apps.len()));
    let mut more = false;
    let mut visible_seen = 0usize;
    let mut total = 0usize;
    // Fast path for `appId eq '...'`.
    let candidates: Box<dyn Iterator<Item = &App>> = match &filter {
        Some(Filter::Eq(f, v)) if f == "appId" => Box::new(
            store
                .app_index_by_app_id(v)
                .map(|i| &store.apps[i])
                .into_iter(),
        ),
        Some(Filter::Eq(f, v)) if f == "id" => Box::new(
            store
                .app_index_by_object_id(v)
                .map(|i| &store.apps[i])
                .into_iter(),
        ),
        _ => Box::new(store.apps.iter()),
    };
    let visible = candidates
        .filter(|app| access.can_read(app) && filter.as_ref().is_none_or(|f| f.matches(app)))
        .filter(|app| adv.search.as_ref().is_none_or(|s| s.matches(app)));
    // Sorting needs every match; otherwise stream and stop after the page (unless counting).
    let matched: Box<dyn Iterator<Item = &App>> = if let Some((prop, desc)) = &adv.orderby {
        let mut all: Vec<&App> = visible.collect();
        all.sort_by(|a, b| {
            let o = match *prop {
                "createdDateTime" => a.created.cmp(&b.created),
                "appId" => a.app_id.cmp(&b.app_id),
                _ => a
                    .display_name
                    .to_lowercase()
                    .cmp(&b.display_name.to_lowercase()),
            };
            if *desc { o.reverse() } else { o }
        });
        Box::new(all.into_iter())
    } else {
        Box::new(visible)
    };
    for app in matched {
        total += 1;
        if more {
            if adv.count {
                continue;
            }
            break;
        }
        if visible_seen >= offset {
            if page.len() == top {
                more = true;
                continue;
            }
            page.push(app_json(app, select.as_deref()));
        }
        visible_seen += 1;
    }
    drop(store);
    let context = match &select {
        Some(s) => format!(
            "{}/v1.0/$metadata#applications({})",
            ctx.main_url,
            s.join(",")
        ),
        None => format!("{}/v1.0/$metadata#applications", ctx.main_url),
    };
    let mut body = Map::new();
    body.insert("@odata.context".into(), json!(context));
    if adv.count {
        body.insert("@odata.count".into(), json!(total));
    }
    if more {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for k in ["$select", "$filter", "$search", "$orderby", "$count"] {
            if let Some(v) = req.query.get(k) {
                q.append_pair(k, v);
            }
        }
        if req.query.contains_key("$top") {
            q.append_pair("$top", &top.to_string());
        }
        q.append_pair("$skiptoken", &skiptoken_encode(offset + top));
        body.insert(
            "@odata.nextLink".into(),
            json!(format!("{}/v1.0/applications?{}", ctx.main_url, q.finish())),
        );
    }
    body.insert("value".into(), Value::Array(page));
    util::json(StatusCode::OK, &Value::Object(body))
}

// ---- advanced queries ($count, $search, $orderby) -------------------------------------------

/// `$count`, `$search` and `$orderby` of a list, as Graph's directory objects take them: `$search`
/// and `$count` need `ConsistencyLevel: eventual`; without it `$orderby` sorts by `displayName`
/// only and not together with `$filter`.
struct Advanced {
    count: bool,
    search: Option<Search>,
    /// (property, descending)
    orderby: Option<(&'static str, bool)>,
}

fn eventual(req: &Req) -> bool {
    req.header("ConsistencyLevel")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"))
}

fn count_not_supported(req: &Req) -> Response {
    graph_error(
        req,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
        "$count is not currently supported.",
    )
}

impl Advanced {
    fn parse(req: &Req) -> Result<Advanced, Response> {
        let eventual = eventual(req);
        let unsupported = |msg: &str| {
            graph_error(
                req,
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                msg,
            )
        };
        let count = match req.query.get("$count").map(|s| s.to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "true" => {
                if !eventual {
                    return Err(count_not_supported(req));
                }
                true
            }
            Some(v) if v == "false" => false,
            Some(v) => {
                return Err(graph_error(
                    req,
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    &format!("Invalid $count value '{v}': must be true or false."),
                ));
            }
        };
        let search = match req.query.get("$search") {
            None => None,
            Some(_) if !eventual => {
                return Err(unsupported(
                    "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
                ));
            }
            Some(s) => Some(Search::parse(s).map_err(|e| {
                graph_error(req, StatusCode::BAD_REQUEST, "Request_BadRequest", &e)
            })?),
        };
        let orderby = match req.query.get("$orderby") {
            None => None,
            Some(o) => {
                let mut it = o.split_whitespace();
                let prop = it.next().unwrap_or("");
                let dir = it.next().unwrap_or("asc").to_ascii_lowercase();
                if it.next().is_some() || (dir != "asc" && dir != "desc") {
                    return Err(unsupported(&format!("Invalid $orderby clause '{o}'.")));
                }
                let known: &[&'static str] = if eventual {
                    &["displayName", "createdDateTime", "appId"]
                } else {
                    &["displayName"]
                };
                let Some(p) = known.iter().find(|k| k.eq_ignore_ascii_case(prop)) else {
                    return Err(unsupported("Sorting not supported for current query."));
                };
                if !eventual && req.query.contains_key("$filter") {
                    return Err(unsupported("Sorting not supported for current query."));
                }
                Some((*p, dir == "desc"))
            }
        };
        Ok(Advanced {
            count,
            search,
            orderby,
        })
    }
}

/// `$search="displayName:word" [AND|OR "…"]`: a clause matches when every word of the term
/// starts a word of the property (Graph's tokenized search: split on spaces and symbols),
/// case-insensitively.
#[derive(Debug)]
struct Search {
    clauses: Vec<(String, String)>,
    any: bool,
}

impl Search {
    fn parse(s: &str) -> Result<Search, String> {
        let mut clauses = Vec::new();
        let mut any = false;
        let mut all = false;
        let mut rest = s.trim();
        loop {
            let Some(r) = rest.strip_prefix('"') else {
                return Err(format!(
                    "Syntax error: the $search value must be quoted clauses \"property:value\", not '{s}'."
                ));
            };
            let Some(end) = r.find('"') else {
                return Err(format!(
                    "Syntax error: unterminated quote in $search '{s}'."
                ));
            };
            let clause = &r[..end];
            let Some((prop, term)) = clause.split_once(':') else {
                return Err(format!(
                    "Syntax error: '{clause}' is not a property:value clause."
                ));
            };
            let prop = match prop.trim() {
                p if p.eq_ignore_ascii_case("displayName") => "displayName",
                p if p.eq_ignore_ascii_case("appId") => "appId",
                p => return Err(format!("Invalid search property '{p}'.")),
            };
            clauses.push((prop.to_string(), term.trim().to_lowercase()));
            rest = r[end + 1..].trim();
            if rest.is_empty() {
                break;
            }
            if let Some(r) = rest.strip_prefix("OR ") {
                any = true;
                rest = r.trim();
            } else if let Some(r) = rest.strip_prefix("AND ") {
                all = true;
                rest = r.trim();
            } else {
                return Err(format!("Syntax error at '{rest}' in $search."));
            }
        }
        if any && all {
            return Err("Mixing AND and OR in $search is not supported by rotor-emulator.".into());
        }
        Ok(Search { clauses, any })
    }

    fn matches(&self, a: &App) -> bool {
        let hit = |(prop, term): &(String, String)| {
            let v = if prop == "appId" {
                &a.app_id
            } else {
                &a.display_name
            };
            // both sides tokenized on symbols and spaces; every term token must start a word
            let v = v.to_lowercase();
            let words: Vec<&str> = v.split(|c: char| !c.is_alphanumeric()).collect();
            term.split(|c: char| !c.is_alphanumeric())
                .filter(|t| !t.is_empty())
                .all(|t| words.iter().any(|w| w.starts_with(t)))
        };
        if self.any {
            self.clauses.iter().any(hit)
        } else {
            self.clauses.iter().all(hit)
        }
    }
}

/// `GET /v1.0/applications/$count` (text/plain), only with `ConsistencyLevel: eventual`.
fn count(ctx: &Ctx, caller: Caller, req: &Req) -> Response {
    if !eventual(req) {
        return count_not_supported(req);
    }
    let store = ctx.store.read();
    let access = Access::of(&store, caller);
    if !access.can_list() {
        return denied(req);
    }
    let n = store.apps.iter().filter(|a| access.can_read(a)).count();
    let mut r = Response::new(axum::body::Body::from(n.to_string()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

// ---- addKey / removeKey (proof of possession) -------------------------------------------------

/// The audience every addKey/removeKey proof must carry (AAD Graph's app id, as Graph's docs
/// say).
const PROOF_AUDIENCE: &str = "00000002-0000-0000-c000-000000000000";

/// Checks an addKey/removeKey `proof`: a JWT signed (RS256/PS256) by one of the application's
/// currently valid certificates, `aud` = [`PROOF_AUDIENCE`], `iss` = the application's object
/// id, `nbf` ≤ now < `exp`, `exp` at most 10 minutes after `nbf`; no `=` padding.
fn check_proof(app: &App, proof: &str) -> Result<(), String> {
    if proof.contains('=') {
        return Err("the proof must be base64url without '=' padding".into());
    }
    let mut parts = proof.split('.');
    let (Some(h), Some(c), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the proof is not a signed JWT".into());
    };
    let header: Value = util::b64_decode_any(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("the proof's header is not base64url JSON")?;
    let claims: Value = util::b64_decode_any(c)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("the proof's claims are not base64url JSON")?;
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == PROOF_AUDIENCE,
        Some(Value::Array(a)) => a.iter().any(|x| x == PROOF_AUDIENCE),
        _ => false,
    };
    if !aud_ok {
        return Err(format!("the proof's aud must be {PROOF_AUDIENCE}"));
    }
    if !claims
        .get("iss")
        .and_then(Value::as_str)
        .is_some_and(|i| i.eq_ignore_ascii_case(&app.object_id))
    {
        return Err("the proof's iss must be the application's object id".into());
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let (Some(nbf), Some(exp)) = (
        claims.get("nbf").and_then(Value::as_i64),
        claims.get("exp").and_then(Value::as_i64),
    ) else {
        return Err("the proof needs nbf and exp".into());
    };
    if exp - nbf > 600 {
        return Err("the proof may be valid for at most 10 minutes".into());
    }
    if now < nbf || now >= exp {
        return Err("the proof is not within its validity period".into());
    }
    let nowt = OffsetDateTime::now_utc();
    let valid: Vec<&KeyCred> = app
        .keys
        .iter()
        .filter(|k| k.key_der.is_some() && k.start <= nowt && nowt < k.end)
        .collect();
    if valid.is_empty() {
        return Err("the application has no valid certificate to prove possession of; use PATCH /applications/{id} with keyCredentials instead".into());
    }
    if valid
        .iter()
        .any(|k| crate::entra::verify_signature(proof, &header, k.key_der.as_deref()).is_ok())
    {
        Ok(())
    } else {
        Err("the proof is not signed by any of the application's valid certificates".into())
    }
}

fn roll_key(ctx: &Ctx, caller: Caller, key: &AppKey, req: &Req, add: bool) -> Response {
    let body = match parse_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(proof) = body.get("proof").and_then(Value::as_str) else {
        return graph_error(
            req,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "The request body must contain the property 'proof'.",
        );
    };
    let mut store = ctx.store.write();
    let read_delay = std::time::Duration::from_millis(store.fidelity.graph_read_delay_ms);
    let access = Access::of(&store, caller);
    let Some(i) = find(&store, key) else {
        return not_found(req, key);
    };
    // "An application does not need any specific permission to roll its own keys."
    let own = caller == Caller::App(i);
    if !own && !access.can_write(&store.apps[i]) {
        return denied(req);
    }
    if let Err(why) = check_proof(&store.apps[i], proof) {
        return graph_error(
            req,
            StatusCode::UNAUTHORIZED,
            "Authentication_MissingOrMalformed",
            &format!("Invalid proof: {why}."),
        );
    }
    let app = &mut store.apps[i];
    if !add {
        let Some(key_id) = body.get("keyId").and_then(Value::as_str) else {
            return graph_error(
                req,
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                "The request body must contain the property 'keyId'.",
            );
        };
        let before = app.keys.len();
        app.keys.retain(|k| !k.key_id.eq_ignore_ascii_case(key_id));
        if app.keys.len() == before {
            return graph_error(
                req,
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                &format!(
                    "No key credential with keyId '{key_id}' exists on application '{}'.",
                    app.app_id
                ),
            );
        }
        return util::empty(StatusCode::NO_CONTENT);
    }
    let Some(kc) = body.get("keyCredential") else {
        return graph_error(
            req,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "The request body must contain the property 'keyCredential'.",
        );
    };
    for f in ["type", "usage", "key"] {
        if kc.get(f).and_then(Value::as_str).is_none() {
            return graph_error(
                req,
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                &format!("keyCredential.{f} is required."),
            );
        }
    }
    if kc["type"] != "AsymmetricX509Cert" || kc["usage"] != "Verify" {
        return graph_error(
            req,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "rotor-emulator supports keyCredential type AsymmetricX509Cert with usage Verify only.",
        );
    }
    let mut item = kc.clone();
    if let Value::Object(m) = &mut item {
        m.remove("keyId");
    }
    let k = match key_from_patch(&item, &app.keys) {
        Ok(k) => k,
        Err(e) => {
            return graph_error(
                req,
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                &format!("Invalid keyCredential: {e}."),
            );
        }
    };
    let mut k = k;
    k.readable_after = std::time::Instant::now() + read_delay;
    let mut v = key_json(&k, false);
    app.keys.push(k);
    drop(store);
    if let Value::Object(m) = &mut v {
        m.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/v1.0/$metadata#microsoft.graph.keyCredential",
                ctx.main_url
            )),
        );
    }
    util::json(StatusCode::OK, &v)
}

fn parse_body(req: &Req) -> Result<Value, Response> {
    if req.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&req.body).map_err(|e| {
        graph_error(
            req,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Unable to read JSON request payload: {e}"),
        )
    })
}

fn parse_time_field(req: &Req, v: &Value, name: &str) -> Result<Option<OffsetDateTime>, Response> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => util::parse_rfc3339(s).map(|t| Some(util::ticks(t))).ok_or_else(|| {
            graph_error(
                req,
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                &format!("Invalid value specified for property '{name}' of resource 'PasswordCredential': '{s}' is not an ISO 8601 date-time."),
            )
        }),
        Some(other) => Err(graph_error(
            req,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            &format!("Invalid value specified for property '{name}': {other}."),
        )),
    }
}

fn add_password(ctx: &Ctx, caller: Caller, key: &AppKey, req: &Req) -> Response {
    let body = match parse_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let pc = body.get("passwordCredential").cloned().unwrap_or(json!({}));
    let display_name = pc
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::to_string);
    let start = match parse_time_field(req, &pc, "startDateTime") {
        Ok(t) => t,
        Err(r) => return r,
    };
    let end = match parse_time_field(req, &pc, "endDateTime") {
        Ok(t) => t,
        Err(r) => return r,
    };
    let now = util::ticks(OffsetDateTime::now_utc());
    let start = start.unwrap_or(now);
    let end =
        end.unwrap_or(start + time::Duration::days(365 * crate::state::DEFAULT_PASSWORD_YEARS));
    if end <= start {
        return graph_error(
            req,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Invalid value specified for property 'endDateTime' of resource 'PasswordCredential': the end date must be after the start date.",
        );
    }
    let mut store = ctx.store.write();
    let access = Access::of(&store, caller);
    let delay = store.propagation_delay;
    let read_delay = std::time::Duration::from_millis(store.fidelity.graph_read_delay_ms);
    let max_lifetime_days = store.max_password_lifetime_days;
    let Some(i) = find(&store, key) else {
        return not_found(req, key);
    };
    if !access.can_write(&store.apps[i]) {
        return if access.can_read(&store.apps[i]) {
            denied(req)
        } else if access.can_list() {
            not_found(req, key)
        } else {
            denied(req)
        };
    }
    let app = &mut store.apps[i];
    if let Some(cap) = app.password_cap()
        && app.passwords.len() >= cap
    {
        return graph_error(
            req,
            StatusCode::BAD_REQUEST,
            "TooManyAppPasswords",
            &format!(
                "The number of password credentials on application '{}' would exceed the limit of {cap} for applications that accept personal Microsoft accounts (signInAudience '{}'). Remove a password first.",
                app.app_id, app.sign_in_audience
            ),
        );
    }
    if let Some(max_days) = max_lifetime_days
        && end - start > time::Duration::days(i64::from(max_days))
    {
        return graph_error(
            req,
            StatusCode::BAD_REQUEST,
            "CredentialInvalidLifetimeAsPerAppPolicy",
            &format!(
                "Credential lifetime exceeds the max value allowed as per assigned policy (at most {max_days} days)."
            ),
        );
    }
    let secret = util::entra_secret_text();
    let usable_after = time::OffsetDateTime::now_utc()
        + time::Duration::try_from(delay).unwrap_or(time::Duration::ZERO);
    let p = Password {
        key_id: util::guid(),
        display_name,
        secret_text: secret.clone(),
        start,
        end,
        usable_after,
        readable_after: std::time::Instant::now() + read_delay,
    };
    let mut v = password_json(&p, Some(&secret));
    app.passwords.push(p);
    drop(store);
    if let Value::Object(m) = &mut v {
        m.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/v1.0/$metadata#microsoft.graph.passwordCredential",
                ctx.main_url
            )),
        );
    }
    util::json(StatusCode::OK, &v)
}

fn remove_password(ctx: &Ctx, caller: Caller, key: &AppKey, req: &Req) -> Response {
    let body = match parse_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(key_id) = body.get("keyId").and_then(Value::as_str) else {
        return graph_error(
            req,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "The request body must contain the property 'keyId'.",
        );
    };
    let mut store = ctx.store.write();
    let access = Access::of(&store, caller);
    let Some(i) = find(&store, key) else {
        return not_found(req, key);
    };
    if !access.can_write(&store.apps[i]) {
        return denied(req);
    }
    let app = &mut store.apps[i];
    let before = app.passwords.len();
    app.passwords
        .retain(|p| !p.key_id.eq_ignore_ascii_case(key_id));
    if app.passwords.len() == before {
        return graph_error(
            req,
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!(
                "No password credential with keyId '{key_id}' exists on application '{}'.",
                app.app_id
            ),
        );
    }
    util::empty(StatusCode::NO_CONTENT)
}

/// A service principal row: (id, appId, displayName).
fn service_principals(store: &Store) -> impl Iterator<Item = (&str, &str, &str)> {
    store
        .principals
        .iter()
        .map(|p| {
            (
                p.object_id.as_str(),
                p.client_id.as_str(),
                p.display_name.as_str(),
            )
        })
        .chain(store.apps.iter().filter(|a| a.service_principal).map(|a| {
            (
                a.sp_object_id.as_str(),
                a.app_id.as_str(),
                a.display_name.as_str(),
            )
        }))
}

fn sp_json(tenant: &str, (id, app_id, name): (&str, &str, &str)) -> Value {
    json!({
        "id": id,
        "appId": app_id,
        "displayName": name,
        "accountEnabled": true,
        "appOwnerOrganizationId": tenant,
        "servicePrincipalType": "Application",
    })
}

/// `GET /v1.0/servicePrincipals` (`$filter` as for applications, `$top`; no paging beyond it).
fn list_service_principals(ctx: &Ctx, caller: Caller, req: &Req) -> Response {
    let top = match req.query.get("$top").map(|t| t.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=999).contains(&n) => n,
        Some(_) => {
            return graph_error(
                req,
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                "Invalid page size specified. Must be between 1 and 999 inclusive.",
            );
        }
    };
    let filter = match req.query.get("$filter").map(|f| parse_filter(f)) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            return graph_error(
                req,
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                &format!("Unsupported or invalid query filter clause specified: {e}."),
            );
        }
    };
    let store = ctx.store.read();
    if !Access::of(&store, caller).read_all {
        return denied(req);
    }
    let value: Vec<Value> = service_principals(&store)
        .filter(|row| {
            filter.as_ref().is_none_or(|f| {
                f.matches_with(&|name: &str| match name {
                    "id" => Some(row.0),
                    "appId" => Some(row.1),
                    "displayName" => Some(row.2),
                    _ => None,
                })
            })
        })
        .take(top)
        .map(|row| sp_json(&store.tenant_id, row))
        .collect();
    util::json(
        StatusCode::OK,
        &json!({
            "@odata.context": format!("{}/v1.0/$metadata#servicePrincipals", ctx.main_url),
            "value": value,
        }),
    )
}

fn get_service_principal(ctx: &Ctx, caller: Caller, key: &AppKey, req: &Req) -> Response {
    let store = ctx.store.read();
    if !Access::of(&store, caller).read_all {
        return denied(req);
    }
    let found = service_principals(&store).find(|row| match key {
        AppKey::ObjectId(id) => row.0.eq_ignore_ascii_case(id),
        AppKey::AppId(id) => row.1.eq_ignore_ascii_case(id),
    });
    match found {
        Some(row) => util::json(StatusCode::OK, &sp_json(&store.tenant_id, row)),
        None => not_found(req, key),
    }
}

/// Validity (notBefore, notAfter) of a DER certificate.
pub fn cert_validity(der: &[u8]) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let v = cert.validity();
    Some((
        util::secs(v.not_before.to_datetime()),
        util::secs(v.not_after.to_datetime()),
    ))
}

fn patch(ctx: &Ctx, caller: Caller, key: &AppKey, req: &Req) -> Response {
    let body = match parse_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(obj) = body.as_object() else {
        return graph_error(
            req,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The request body must be a JSON object.",
        );
    };
    for k in obj.keys() {
        match k.as_str() {
            "keyCredentials" | "displayName" | "tokenEncryptionKeyId" => {}
            "passwordCredentials" => {
                return graph_error(
                    req,
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "Property 'passwordCredentials' cannot be updated with PATCH; use addPassword and removePassword.",
                );
            }
            other => {
                return graph_error(
                    req,
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    &format!(
                        "rotor-emulator: property '{other}' cannot be patched here (supported: keyCredentials, displayName)."
                    ),
                );
            }
        }
    }
    let mut store = ctx.store.write();
    let access = Access::of(&store, caller);
    let Some(i) = find(&store, key) else {
        return not_found(req, key);
    };
    if !access.can_write(&store.apps[i]) {
        return denied(req);
    }
    let new_keys = match obj.get("keyCredentials") {
        None => None,
        Some(Value::Array(items)) => {
            let existing = &store.apps[i].keys;
            let mut out = Vec::with_capacity(items.len());
            for (n, item) in items.iter().enumerate() {
                match key_from_patch(item, existing) {
                    Ok(k) => out.push(k),
                    Err(msg) => {
                        return graph_error(
                            req,
                            StatusCode::BAD_REQUEST,
                            "Request_BadRequest",
                            &format!("keyCredentials[{n}]: {msg}"),
                        );
                    }
                }
            }
            Some(out)
        }
        Some(_) => {
            return graph_error(
                req,
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                "Property 'keyCredentials' must be an array.",
            );
        }
    };
    let read_delay = std::time::Duration::from_millis(store.fidelity.graph_read_delay_ms);
    let app = &mut store.apps[i];
    if let Some(mut keys) = new_keys {
        // entries new to the application are missing from reads for a while
        for k in &mut keys {
            if !app
                .keys
                .iter()
                .any(|e| e.key_id.eq_ignore_ascii_case(&k.key_id))
            {
                k.readable_after = std::time::Instant::now() + read_delay;
            }
        }
        app.keys = keys;
    }
    if let Some(name) = obj.get("displayName").and_then(Value::as_str) {
        app.display_name = name.to_string();
    }
    match obj.get("tokenEncryptionKeyId") {
        Some(Value::String(k)) => app.token_encryption_key_id = Some(k.to_ascii_lowercase()),
        Some(Value::Null) => app.token_encryption_key_id = None,
        _ => {}
    }
    util::empty(StatusCode::NO_CONTENT)
}

fn key_from_patch(item: &Value, existing: &[KeyCred]) -> Result<KeyCred, String> {
    let key_id = item.get("keyId").and_then(Value::as_str);
    let key_b64 = item.get("key").and_then(Value::as_str);
    let display_name = item
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::to_string);
    let time_of = |name: &str| -> Result<Option<OffsetDateTime>, String> {
        match item.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => util::parse_rfc3339(s)
                .map(|t| Some(util::secs(t)))
                .ok_or_else(|| format!("'{name}' is not an ISO 8601 date-time")),
            Some(_) => Err(format!("'{name}' must be a string")),
        }
    };
    let (start, end) = (time_of("startDateTime")?, time_of("endDateTime")?);
    match (key_id, key_b64) {
        (Some(id), None) => {
            let mut k = existing
                .iter()
                .find(|k| k.key_id.eq_ignore_ascii_case(id))
                .cloned()
                .ok_or_else(|| format!("key credential '{id}' does not exist on the application and has no 'key' value"))?;
            if display_name.is_some() {
                k.display_name = display_name;
            }
            Ok(k)
        }
        (_, Some(b64)) => {
            let der = util::b64_decode_any(b64).ok_or("'key' is not base64")?;
            let (nb, na) = cert_validity(&der).ok_or("'key' is not a DER X.509 certificate")?;
            let key_type = item
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("AsymmetricX509Cert")
                .to_string();
            let usage = item
                .get("usage")
                .and_then(Value::as_str)
                .unwrap_or("Verify")
                .to_string();
            if key_type != "AsymmetricX509Cert" && key_type != "X509CertAndPassword" {
                return Err(format!("unsupported key type '{key_type}'"));
            }
            if usage != "Verify" && usage != "Sign" {
                return Err(format!("unsupported usage '{usage}'"));
            }
            let start = start.unwrap_or(nb);
            let end = end.unwrap_or(na);
            if start < nb || end > na {
                return Err(
                    "startDateTime/endDateTime must lie within the certificate's validity".into(),
                );
            }
            Ok(KeyCred {
                key_id: key_id.map(str::to_string).unwrap_or_else(util::guid),
                display_name,
                key_type,
                usage,
                thumbprint: util::sha1(&der).to_vec(),
                key_der: Some(der),
                start,
                end,
                // a key credential already on the application keeps its instant (below)
                readable_after: existing
                    .iter()
                    .find(|k| key_id.is_some_and(|id| k.key_id.eq_ignore_ascii_case(id)))
                    .map(|k| k.readable_after)
                    .unwrap_or_else(std::time::Instant::now),
            })
        }
        (None, None) => Err("a new key credential needs a 'key' (base64 DER certificate)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse() {
        assert!(
            matches!(parse_filter("appId eq 'abc'"), Ok(Filter::Eq(f, v)) if f == "appId" && v == "abc")
        );
        assert!(matches!(
            parse_filter("startswith(displayName,'My')"),
            Ok(Filter::StartsWith(..))
        ));
        assert!(matches!(
            parse_filter("displayName eq 'O''Brien' or appId eq 'x'"),
            Ok(Filter::Or(..))
        ));
        assert!(
            matches!(parse_filter("appId in ('a', 'b')"), Ok(Filter::In(_, v)) if v.len() == 2)
        );
        assert!(parse_filter("foo eq 'x'").is_err());
        assert!(parse_filter("appId gt 'x'").is_err());
        assert!(parse_filter("appId eq 'x' junk").is_err());
    }

    #[test]
    fn skiptoken_roundtrip() {
        assert_eq!(skiptoken_decode(&skiptoken_encode(1234)), Some(1234));
        assert_eq!(skiptoken_decode("nonsense"), None);
    }

    #[test]
    fn routes() {
        assert!(matches!(
            route(&Method::GET, &["applications"]),
            Some(Route::List)
        ));
        assert!(matches!(
            route(&Method::GET, &["applications(appId='x')"]),
            Some(Route::Get(AppKey::AppId(a))) if a == "x"
        ));
        assert!(matches!(
            route(&Method::POST, &["applications", "id", "addPassword"]),
            Some(Route::AddPassword(AppKey::ObjectId(_)))
        ));
        assert!(route(&Method::DELETE, &["applications", "id"]).is_none());
        assert!(route(&Method::GET, &["users"]).is_none());
    }
}
