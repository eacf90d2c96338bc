//! Listeners, the per-request pipeline (counting, faults, latency) and routing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::state::Store;
use crate::{admin, arm, entra, graph, keyvault, util};

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Token endpoint, Graph, ARM, admin.
    Main,
    /// One vault (index into `Store::vaults`).
    Vault(usize),
}

/// Who a token was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Index into `Store::principals`.
    Principal(usize),
    /// Index into `Store::apps` (logged in with the app's own password or certificate).
    App(usize),
}

/// Which API a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Graph,
    Vault,
    Arm,
    /// The emulator's main origin: accepted by Graph and ARM.
    Main,
}

#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub caller: Caller,
    pub audience: Audience,
    pub expires: Instant,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Unknown,
    Expired,
}

/// An injected fault (admin `POST faults`).
#[derive(Debug)]
pub struct FaultRule {
    pub method: Option<Method>,
    pub path: regex::Regex,
    pub vault: Option<String>,
    pub status: Option<u16>,
    pub retry_after: Option<u64>,
    pub latency_ms: u64,
    pub drop: bool,
    /// Remaining firings; `None`: unlimited.
    pub remaining: Option<u64>,
    pub probability: Option<f64>,
    pub fired: u64,
    /// Handle the request normally (its change is applied), then replace the answer.
    pub after: bool,
    /// Never answer (hold the connection open until the client goes away).
    pub hang: bool,
    /// Matching requests still to let through untouched before the rule fires.
    pub skip: u64,
    /// Matching requests let through so far because of `skip`.
    pub passed: u64,
    pub source: serde_json::Value,
}

/// What a matching fault does to one request.
#[derive(Debug, Clone, Copy)]
struct FaultAction {
    status: Option<u16>,
    retry_after: Option<u64>,
    latency_ms: u64,
    drop: bool,
    after: bool,
    hang: bool,
}

/// Most entries the request log keeps (later requests are counted, not logged).
pub const LOG_LIMIT: usize = 100_000;

/// One non-admin request in arrival order (`GET /_emulator/requests/log`).
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// 1-based, in arrival order (the same order as `Counts::total`).
    pub index: u64,
    pub method: String,
    /// The route template, as in `by_route`.
    pub route: String,
    /// The vault's name for requests to a vault listener.
    pub vault: Option<String>,
    /// What was answered: `None` while in flight (or when the client went away first).
    pub outcome: Option<Outcome>,
    /// When the request arrived (before any emulated latency).
    pub arrived: Instant,
    /// When its outcome was recorded.
    pub answered: Option<Instant>,
}

/// How a request ended, as the log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    Dropped,
    Hung,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub total: u64,
    pub by_route: BTreeMap<String, u64>,
    pub by_vault: BTreeMap<String, BTreeMap<String, u64>>,
    /// Arrival-ordered log (at most [`LOG_LIMIT`] entries).
    pub log: Vec<LogEntry>,
    /// The first logged arrival since the last reset (the log's times are relative to it).
    pub origin: Option<Instant>,
    /// Incremented by every reset, so a request in flight across a reset does not write its
    /// outcome into the new log.
    pub epoch: u64,
}

/// Where a request's outcome goes in the log.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    epoch: u64,
    index: u64,
}

/// Shared state of one running emulator.
pub struct Ctx {
    pub store: RwLock<Store>,
    pub tokens: RwLock<HashMap<String, TokenInfo>>,
    pub counts: Mutex<Counts>,
    pub faults: Mutex<Vec<FaultRule>>,
    /// Budgets used so far (fidelity `throttling`).
    pub throttle: Mutex<crate::throttle::Throttle>,
    pub latency_ms: AtomicU64,
    /// `https://127.0.0.1:PORT` (no trailing slash).
    pub main_url: String,
    /// Vault URLs, `https://127.0.0.1:PORT/`, by vault index.
    pub vault_urls: Vec<String>,
    /// Vault names by index (immutable).
    pub vault_names: Vec<String>,
    /// The OIDC issuers' signing keys (federated credentials).
    pub issuers: Mutex<crate::oidc::Issuers>,
}

/// A request with its body read.
pub struct Req {
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Ctx {
    /// Resolve the bearer token of a request.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<(Caller, Audience), AuthError> {
        let h = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(AuthError::Missing)?;
        let token = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or(AuthError::Missing)?;
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let tokens = self.tokens.read();
        let info = tokens.get(token).ok_or(AuthError::Unknown)?;
        if info.expires <= Instant::now() {
            return Err(AuthError::Expired);
        }
        Ok((info.caller, info.audience))
    }

    pub fn issue_token(&self, caller: Caller, audience: Audience, token: String) {
        let mut tokens = self.tokens.write();
        if tokens.len() > 50_000 {
            let now = Instant::now();
            tokens.retain(|_, t| t.expires > now);
        }
        tokens.insert(
            token,
            TokenInfo {
                caller,
                audience,
                expires: Instant::now() + Duration::from_secs(entra::TOKEN_LIFETIME_SECS),
            },
        );
    }

    fn count(&self, kind: Kind, method: &Method, label: &str) -> Ticket {
        let mut c = self.counts.lock();
        c.total += 1;
        *c.by_route.entry(label.to_string()).or_default() += 1;
        let vault = match kind {
            Kind::Vault(i) => self.vault_names.get(i).cloned(),
            Kind::Main => None,
        };
        if let Some(name) = &vault {
            *c.by_vault
                .entry(name.clone())
                .or_default()
                .entry(label.to_string())
                .or_default() += 1;
        }
        let index = c.total;
        if c.log.len() < LOG_LIMIT {
            let arrived = Instant::now();
            c.origin.get_or_insert(arrived);
            c.log.push(LogEntry {
                index,
                method: method.to_string(),
                route: label.to_string(),
                vault,
                outcome: None,
                arrived,
                answered: None,
            });
        }
        Ticket {
            epoch: c.epoch,
            index,
        }
    }

    /// Records how the request of `ticket` ended (unless the log was reset meanwhile).
    fn record(&self, ticket: Ticket, outcome: Outcome) {
        let mut c = self.counts.lock();
        if c.epoch != ticket.epoch {
            return;
        }
        let Some(first) = c.log.first().map(|e| e.index) else {
            return;
        };
        if let Some(e) = ticket
            .index
            .checked_sub(first)
            .and_then(|i| c.log.get_mut(i as usize))
        {
            e.outcome = Some(outcome);
            e.answered = Some(Instant::now());
        }
    }

    /// Empties the counts and the log (`DELETE /_emulator/requests`).
    pub fn reset_counts(&self) {
        let mut c = self.counts.lock();
        let epoch = c.epoch + 1;
        *c = Counts {
            epoch,
            ..Default::default()
        };
    }

    fn match_fault(&self, kind: Kind, method: &Method, path: &str) -> Option<FaultAction> {
        let mut faults = self.faults.lock();
        if faults.is_empty() {
            return None;
        }
        let vault = match kind {
            Kind::Vault(i) => self.vault_names.get(i).map(String::as_str),
            Kind::Main => None,
        };
        let mut hit = None;
        for (i, f) in faults.iter_mut().enumerate() {
            if f.method.as_ref().is_some_and(|m| m != method) {
                continue;
            }
            if let Some(v) = &f.vault
                && vault.is_none_or(|name| !name.eq_ignore_ascii_case(v))
            {
                continue;
            }
            if !f.path.is_match(path) {
                continue;
            }
            if f.skip > 0 {
                f.skip -= 1;
                f.passed += 1;
                continue;
            }
            if let Some(p) = f.probability
                && rand::rng().random::<f64>() >= p
            {
                continue;
            }
            f.fired += 1;
            if let Some(r) = f.remaining.as_mut() {
                *r = r.saturating_sub(1);
            }
            hit = Some((
                i,
                FaultAction {
                    status: f.status,
                    retry_after: f.retry_after,
                    latency_ms: f.latency_ms,
                    drop: f.drop,
                    after: f.after,
                    hang: f.hang,
                },
            ));
            break;
        }
        if let Some((i, _)) = hit
            && faults[i].remaining == Some(0)
        {
            faults.remove(i);
        }
        hit.map(|(_, a)| a)
    }
}

/// Routes of the main listener.
pub enum MainRoute {
    Token { tenant: String },
    OpenIdConfiguration { tenant: String },
    Graph(graph::Route),
    Arm(arm::Route),
    Unknown,
}

fn main_route(method: &Method, segs: &[String]) -> MainRoute {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (method, s.as_slice()) {
        (&Method::POST, [tenant, "oauth2", "v2.0", "token"]) => MainRoute::Token {
            tenant: (*tenant).to_string(),
        },
        (&Method::GET, [tenant, "v2.0", ".well-known", "openid-configuration"]) => {
            MainRoute::OpenIdConfiguration {
                tenant: (*tenant).to_string(),
            }
        }
        (_, ["v1.0", ..]) => graph::route(method, &s[1..])
            .map(MainRoute::Graph)
            .unwrap_or(MainRoute::Unknown),
        (_, ["subscriptions", ..]) => arm::route(method, &s[1..])
            .map(MainRoute::Arm)
            .unwrap_or(MainRoute::Unknown),
        _ => MainRoute::Unknown,
    }
}

/// 501 for anything the emulator does not model.
pub fn not_implemented(method: &Method, path: &str) -> Response {
    util::json(
        StatusCode::NOT_IMPLEMENTED,
        &json!({"error": {
            "code": "NotImplemented",
            "message": format!("rotor-emulator does not implement {method} {path} (see the route table in the rotor-emulator crate documentation)"),
        }}),
    )
}

enum Routed {
    Main(MainRoute),
    Vault(usize, keyvault::Route),
    Unknown,
}

/// What the throttle needs to know about a routed request.
enum ThrottleKind {
    Vault {
        vault: usize,
        create: bool,
        /// A keys route (its own per-vault budget).
        key: bool,
    },
    /// Graph: `list` is `GET /applications`; `personal`: a write to an application that
    /// accepts personal Microsoft accounts.
    Graph {
        list: bool,
        personal: bool,
    },
    None,
}

fn routed_kind(ctx: &Ctx, r: &Routed) -> ThrottleKind {
    match r {
        Routed::Vault(i, route) => ThrottleKind::Vault {
            vault: *i,
            create: matches!(route, keyvault::Route::SetSecret(_)),
            key: route.template().starts_with("/keys"),
        },
        Routed::Main(MainRoute::Graph(g)) => ThrottleKind::Graph {
            list: matches!(g, graph::Route::List),
            personal: {
                let store = ctx.store.read();
                store.fidelity.throttling && graph::writes_personal_app(&store, g)
            },
        },
        _ => ThrottleKind::None,
    }
}

/// The throttling model (fidelity `throttling`): 429 with `Retry-After` when the request is
/// over its vault's or its caller's Graph budget; unauthenticated requests are not counted.
fn throttled(ctx: &Ctx, kind: &ThrottleKind, method: &Method, req: &Req) -> Option<Response> {
    if matches!(kind, ThrottleKind::None) {
        return None;
    }
    let (limits, tenant) = {
        let store = ctx.store.read();
        if !store.fidelity.throttling {
            return None;
        }
        (store.fidelity.limits.clone(), store.tenant_id.clone())
    };
    let caller = ctx.authenticate(&req.headers).ok()?.0;
    let caller_id = {
        let store = ctx.store.read();
        match caller {
            Caller::Principal(i) => store.principals.get(i)?.client_id.clone(),
            Caller::App(i) => store.apps.get(i)?.app_id.clone(),
        }
    };
    let charge = match kind {
        ThrottleKind::Vault { vault, create, key } => crate::throttle::Charge::Vault {
            vault: ctx.vault_names.get(*vault)?,
            create: *create,
            key: *key,
        },
        ThrottleKind::Graph { list, personal } => {
            let write = method != Method::GET;
            let mut cost: i64 = if *list { 2 } else { 1 };
            if !write {
                if req.query.contains_key("$select") {
                    cost -= 1;
                }
                if req
                    .query
                    .get("$top")
                    .and_then(|t| t.parse::<u64>().ok())
                    .is_some_and(|t| t < 20)
                {
                    cost -= 1;
                }
            }
            crate::throttle::Charge::Graph {
                caller: &caller_id,
                tenant: &tenant,
                cost: cost.max(1) as u64,
                write,
                personal: *personal,
            }
        }
        ThrottleKind::None => return None,
    };
    let is_vault = matches!(charge, crate::throttle::Charge::Vault { .. });
    let refusal = ctx.throttle.lock().charge(&limits, charge).err()?;
    let wait = refusal.wait;
    let secs = crate::throttle::retry_after_secs(wait);
    let mut resp = if is_vault {
        util::json(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"error": {"code": "Throttled", "message": "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}}),
        )
    } else {
        let mut r = graph::graph_error(
            req,
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests.",
        );
        let rw = if method == Method::GET {
            "Read"
        } else {
            "ReadWrite"
        };
        let scope = match refusal.scope {
            crate::throttle::Scope::Tenant => format!("Tenant/{rw}/{tenant}"),
            crate::throttle::Scope::AppTenant => {
                format!("Tenant_Application/{rw}/{caller_id}/{tenant}")
            }
        };
        if let Ok(v) = http::HeaderValue::from_str(&scope) {
            r.headers_mut().insert("x-ms-throttle-scope", v);
        }
        r
    };
    if let Ok(v) = http::HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    Some(resp)
}

/// Maximum request body the emulator reads.
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Handle one request. `Err` closes the connection without an answer (the `drop` fault).
pub async fn handle(
    ctx: Arc<Ctx>,
    kind: Kind,
    req: http::Request<Incoming>,
) -> Result<Response, std::io::Error> {
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().map(str::to_string);

    if kind == Kind::Main && (path == "/_emulator" || path.starts_with("/_emulator/")) {
        let body = match axum::body::to_bytes(Body::new(body), BODY_LIMIT).await {
            Ok(b) => b,
            Err(_) => return Ok(util::empty(StatusCode::PAYLOAD_TOO_LARGE)),
        };
        return Ok(admin::handle(&ctx, &method, &path, body));
    }

    let segs = util::segments(&path);
    let (routed, label) = match kind {
        Kind::Main => {
            let r = main_route(&method, &segs);
            let label = match &r {
                MainRoute::Token { .. } => "POST /{tenant}/oauth2/v2.0/token".to_string(),
                MainRoute::OpenIdConfiguration { .. } => {
                    "GET /{tenant}/v2.0/.well-known/openid-configuration".to_string()
                }
                MainRoute::Graph(g) => format!("{method} {}", g.template()),
                MainRoute::Arm(a) => format!("{method} {}", a.template()),
                MainRoute::Unknown => format!("{method} (unmatched)"),
            };
            match r {
                MainRoute::Unknown => (Routed::Unknown, label),
                r => (Routed::Main(r), label),
            }
        }
        Kind::Vault(i) => match keyvault::route(&method, &segs) {
            Some(r) => {
                let label = format!("{method} {}", r.template());
                (Routed::Vault(i, r), label)
            }
            None => (Routed::Unknown, format!("{method} (unmatched)")),
        },
    };
    let ticket = ctx.count(kind, &method, &label);
    tracing::debug!(%method, %path, route = %label, "request");

    let fault = ctx.match_fault(kind, &method, &path);
    if let Some(fault) = fault.filter(|f| !f.after) {
        tracing::debug!(%method, %path, ?fault, "injecting fault");
        if let Some(answer) = inject(&ctx, ticket, &fault, &method, &path).await {
            return answer;
        }
    }
    let latency = ctx.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }

    let body = match axum::body::to_bytes(Body::new(body), BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            ctx.record(ticket, Outcome::Status(413));
            return Ok(util::json(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"error": {"code": "RequestBodyTooLarge", "message": "request body exceeds 4 MiB"}}),
            ));
        }
    };
    let req = Req {
        query: util::query_map(raw_query.as_deref()),
        headers: parts.headers,
        body,
    };
    if let Some(resp) = throttled(&ctx, &routed_kind(&ctx, &routed), &method, &req) {
        ctx.record(ticket, Outcome::Status(resp.status().as_u16()));
        return Ok(resp);
    }
    let resp = match routed {
        Routed::Unknown => not_implemented(&method, &path),
        Routed::Main(MainRoute::Token { tenant }) => entra::token(&ctx, &tenant, &req),
        Routed::Main(MainRoute::OpenIdConfiguration { tenant }) => {
            entra::openid_configuration(&ctx, &tenant)
        }
        Routed::Main(MainRoute::Graph(r)) => graph::handle(&ctx, r, &req),
        Routed::Main(MainRoute::Arm(r)) => arm::handle(&ctx, r, &req),
        Routed::Main(MainRoute::Unknown) => not_implemented(&method, &path),
        Routed::Vault(i, r) => keyvault::handle(&ctx, i, r, &req),
    };
    let mut resp = resp;
    correlation_headers(&mut resp, kind, &req.headers);
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "response");
    if let Some(fault) = fault.filter(|f| f.after) {
        // "Applied, then failed": the handler above has changed the store; only the answer is
        // replaced.
        tracing::debug!(%method, %path, ?fault, applied_status = resp.status().as_u16(), "injecting fault after applying");
        if let Some(answer) = inject(&ctx, ticket, &fault, &method, &path).await {
            return answer;
        }
        // only `latency_ms`: the real answer, late
    }
    ctx.record(ticket, Outcome::Status(resp.status().as_u16()));
    Ok(resp)
}

/// The correlation headers Azure answers with: Graph `request-id` and `client-request-id`
/// (the client's, else the request id) and `x-ms-ags-diagnostic`; Entra `x-ms-request-id` and
/// `client-request-id` when the client sent one; Key Vault and ARM `x-ms-request-id` (and the
/// client's `x-ms-client-request-id` echoed). Kept when the handler already set them.
fn correlation_headers(resp: &mut Response, kind: Kind, req: &HeaderMap) {
    use http::HeaderValue;
    let h = resp.headers_mut();
    let id = util::guid();
    let rid = h
        .get("request-id")
        .cloned()
        .or_else(|| HeaderValue::from_str(&id).ok());
    let client = |name: &str| {
        req.get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| HeaderValue::from_str(v).ok())
    };
    let mut set = |name: &'static str, v: Option<HeaderValue>| {
        if let Some(v) = v
            && !h.contains_key(name)
        {
            h.insert(name, v);
        }
    };
    let idv = HeaderValue::from_str(&id).ok();
    match kind {
        Kind::Vault(_) => {
            set("x-ms-request-id", idv);
            set("x-ms-client-request-id", client("x-ms-client-request-id"));
            set(
                "x-ms-keyvault-service-version",
                Some(HeaderValue::from_static("1.9.2774.1")),
            );
        }
        Kind::Main => {
            // Graph (request-id is what its error bodies carry) and Entra
            set("x-ms-request-id", rid.clone());
            set("request-id", rid.clone());
            set(
                "client-request-id",
                client("client-request-id").or(rid.clone()),
            );
            set("x-ms-client-request-id", client("x-ms-client-request-id"));
        }
    }
}

/// Applies a fault: waits `latency_ms`, then hangs, drops the connection or answers `status`.
/// `None`: the fault only delays (the request goes on).
async fn inject(
    ctx: &Ctx,
    ticket: Ticket,
    fault: &FaultAction,
    method: &Method,
    path: &str,
) -> Option<Result<Response, std::io::Error>> {
    if fault.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fault.latency_ms)).await;
    }
    if fault.hang {
        ctx.record(ticket, Outcome::Hung);
        // Held until the client goes away (the connection, and this future, are dropped) or
        // the emulator stops.
        return Some(std::future::pending().await);
    }
    if fault.drop {
        ctx.record(ticket, Outcome::Dropped);
        return Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "rotor-emulator: connection dropped by an injected fault",
        )));
    }
    let status = fault.status?;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut resp = util::json(
        status,
        &json!({"error": {
            "code": if status == StatusCode::TOO_MANY_REQUESTS { "TooManyRequests" } else { "InjectedFault" },
            "message": format!("rotor-emulator: injected fault answering {method} {path} with {status}"),
        }}),
    );
    if let Some(ra) = fault.retry_after
        && let Ok(v) = http::HeaderValue::from_str(&ra.to_string())
    {
        resp.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    ctx.record(ticket, Outcome::Status(status.as_u16()));
    Some(Ok(resp))
}

/// Accept TLS connections on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, ctx: Arc<Ctx>, kind: Kind) {
    let mut conns = JoinSet::new();
    loop {
        let (tcp, _peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ctx = ctx.clone();
        conns.spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!("TLS handshake failed: {e}");
                    return;
                }
            };
            let svc = hyper::service::service_fn(move |req| handle(ctx.clone(), kind, req));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection(TokioIo::new(tls), svc).await {
                tracing::debug!("connection ended: {e}");
            }
        });
        while conns.try_join_next().is_some() {}
    }
}
