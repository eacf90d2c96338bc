//! The one HTTP client (reqwest 0.13, system roots + `Endpoints::ca_file`), shared by Graph, ARM,
//! token requests and — as the `azure_core` transport — the Key Vault SDK; plus bounded retries
//! honouring `Retry-After`.

use crate::endpoints::Endpoints;
use crate::error::{Error, ErrorKind, Result};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use std::sync::Arc;
use std::time::Duration;

mod connect;
pub(crate) use connect::find_source;
pub use connect::{EndpointError, EndpointFailure};

/// Builds the HTTP client: system roots plus every certificate in `endpoints.ca_file`, and the
/// connection guard (`endpoints.loopback_only`; failures that retrying cannot fix soon become an
/// [`EndpointError`] naming the endpoint). `Err` (Config) when the CA file cannot be read or
/// holds no certificate — the error names the file.
pub fn http_client(endpoints: &Endpoints) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(120))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("rotor/", env!("CARGO_PKG_VERSION")))
        .connector_layer(connect::GuardLayer {
            loopback_only: endpoints.loopback_only,
        });
    if endpoints.loopback_only {
        // a proxy would be a connection to somewhere else
        b = b.no_proxy();
    }
    if let Some(path) = &endpoints.ca_file {
        let action = format!(
            "reading CA file `{}` (SSL_CERT_FILE / ca_file)",
            path.display()
        );
        let pem = std::fs::read(path).map_err(|e| {
            let cause = if e.kind() == std::io::ErrorKind::NotFound {
                format!("the file `{}` does not exist", path.display())
            } else {
                e.to_string()
            };
            Error::config(action.clone(), cause).with_hint(
                "point SSL_CERT_FILE (or the endpoints' ca_file) at an existing PEM bundle, or unset it to use the system roots only",
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Error::config(action.clone(), e.to_string()))?;
        if certs.is_empty() {
            return Err(
                Error::config(action, "no PEM certificate in the file").with_hint(
                    "SSL_CERT_FILE must hold PEM certificates (-----BEGIN CERTIFICATE-----)",
                ),
            );
        }
        b = b.tls_certs_merge(certs);
    }
    b.build()
        .map_err(|e| Error::config("building the HTTP client", e.to_string()))
}

/// The same client as an `azure_core` transport (for the Key Vault SDK and `azure_identity`),
/// with the connection guard (see [`http_client`]).
pub fn transport(client: &reqwest::Client) -> azure_core::http::Transport {
    transport_with(client, false)
}

fn transport_with(client: &reqwest::Client, loopback_only: bool) -> azure_core::http::Transport {
    azure_core::http::Transport::new(raw_transport(client, loopback_only))
}

/// The guarded transport itself, for wrapping (see [`crate::pacing::PacedTransport`]).
pub(crate) fn raw_transport(
    client: &reqwest::Client,
    loopback_only: bool,
) -> Arc<dyn azure_core::http::HttpClient> {
    Arc::new(connect::Transport {
        client: client.clone(),
        loopback_only,
    })
}

/// `azure_core` client options using `client` as transport and `authority_host` as the cloud's
/// authority.
pub fn client_options(
    client: &reqwest::Client,
    endpoints: &Endpoints,
) -> azure_core::http::ClientOptions {
    let mut custom = azure_core::cloud::CustomConfiguration::default();
    custom.authority_host = endpoints
        .authority_host
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    azure_core::http::ClientOptions {
        transport: Some(transport_with(client, endpoints.loopback_only)),
        cloud: Some(Arc::new(custom.into())),
        ..Default::default()
    }
}

/// The [`EndpointError`] behind `e`, if a connection failed for a reason it names.
pub(crate) fn endpoint_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a EndpointError> {
    connect::find(e)
}

/// Refuses `url` under `loopback_only` (see [`Endpoints::loopback_only`]) before anything is
/// sent; `Err` is the [`EndpointError`].
pub(crate) fn check_url(
    url: &url::Url,
    loopback_only: bool,
) -> std::result::Result<(), EndpointError> {
    connect::check_url(url, loopback_only)
}

tokio::task_local! {
    static LIMIT: Limit;
}

/// The requests-in-flight limit of a [`with_limit`] scope.
#[derive(Clone)]
struct Limit {
    sem: Arc<tokio::sync::Semaphore>,
    of: usize,
}

/// Runs `f` with at most `limit` Azure requests in flight across everything it spawns
/// concurrently (policy `max_concurrent`). Nested calls share the outermost limit.
pub(crate) async fn with_limit<F: std::future::Future>(limit: usize, f: F) -> F::Output {
    if LIMIT.try_with(|_| ()).is_ok() {
        f.await
    } else {
        let of = limit.max(1);
        let limit = Limit {
            sem: Arc::new(tokio::sync::Semaphore::new(of)),
            of,
        };
        LIMIT.scope(limit, f).await
    }
}

/// A slot for one request under the current limit (`None` outside [`with_limit`]).
pub(crate) async fn permit() -> Option<tokio::sync::OwnedSemaphorePermit> {
    let sem = LIMIT.try_with(|l| l.sem.clone()).ok()?;
    sem.acquire_owned().await.ok()
}

/// Runs `a` and `b` together, or one after the other under a limit of one request in flight:
/// there concurrency gains nothing, and the order of the requests would depend on timing (the
/// crash matrix enumerates requests by index under `max_concurrent = 1`).
pub(crate) async fn join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    if LIMIT.try_with(|l| l.of).ok() == Some(1) {
        let a = a.await;
        (a, b.await)
    } else {
        futures::join!(a, b)
    }
}

/// [`join`] for many: all at once, or in order under a limit of one request in flight (a vault
/// listing is several requests, and listings run together would interleave them by timing).
/// The futures are collected before the returned one starts, so it holds no iterator.
pub(crate) fn join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> impl std::future::Future<Output = Vec<F::Output>> {
    let futures: Vec<F> = futures.into_iter().collect();
    let in_order = LIMIT.try_with(|l| l.of).ok() == Some(1);
    async move {
        if in_order {
            let mut out = Vec::with_capacity(futures.len());
            for f in futures {
                out.push(f.await);
            }
            out
        } else {
            futures::future::join_all(futures).await
        }
    }
}

/// A response read fully. No `Debug`: the body may carry a secret (`addPassword`'s `secretText`).
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: bytes::Bytes,
}

/// Parses `Retry-After` (seconds or HTTP date) / `retry-after-ms` / `x-ms-retry-after-ms`.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    for h in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_millis(ms));
        }
    }
    let v = headers.get("retry-after")?.to_str().ok()?.trim().to_owned();
    if let Ok(secs) = v.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    let t = time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc2822).ok()?;
    let d = t - time::OffsetDateTime::now_utc();
    Some(d.try_into().unwrap_or(Duration::ZERO))
}

fn backoff(attempt: u32) -> Duration {
    let base = 250u64.saturating_mul(1u64 << attempt.min(6));
    let jitter = rand::random::<u64>() % 250;
    Duration::from_millis(base.min(8_000) + jitter)
}

/// Whether a request may be sent again when its outcome is unknown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Safe to repeat: retried on 408/429/5xx, connection errors and timeouts.
    Idempotent,
    /// Creates something each time (`addPassword`): retried only when the answer or the error
    /// proves the request was not processed — 429/503 and failures to connect.
    NotIdempotent,
}

fn retryable(status: StatusCode, mode: Retry) -> bool {
    match mode {
        Retry::Idempotent => matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504),
        Retry::NotIdempotent => matches!(status.as_u16(), 429 | 503),
    }
}

fn retryable_error(e: &reqwest::Error, mode: Retry) -> bool {
    match mode {
        Retry::Idempotent => e.is_connect() || e.is_timeout() || e.is_request(),
        Retry::NotIdempotent => e.is_connect(),
    }
}

/// Sends the request built by `build` (called again for each attempt), retrying up to
/// `max_retries` times on 408/429/5xx and connection errors, waiting `Retry-After` when given
/// (capped at 60 s) and exponential backoff otherwise. Returns the final reply whatever its status;
/// `Err` only for transport failures after the retries (Network) — `action` names what was done.
pub(crate) async fn send(
    build: impl Fn() -> RequestBuilder,
    max_retries: u32,
    action: &str,
) -> Result<Reply> {
    send_with(build, max_retries, action, Retry::Idempotent).await
}

/// [`send`] with the retry rules of `mode`.
pub(crate) async fn send_with(
    build: impl Fn() -> RequestBuilder,
    max_retries: u32,
    action: &str,
    mode: Retry,
) -> Result<Reply> {
    let mut attempt = 0u32;
    loop {
        let slot = permit().await;
        let res = build().send().await;
        match res {
            Ok(rsp) => {
                let status = rsp.status();
                if retryable(status, mode) && attempt < max_retries {
                    let wait = retry_after(rsp.headers())
                        .map(|d| d.min(Duration::from_secs(60)))
                        .unwrap_or_else(|| backoff(attempt));
                    tracing::debug!(
                        status = status.as_u16(),
                        ?wait,
                        attempt,
                        "{action}: retrying"
                    );
                    // drain the body so the connection can be reused
                    let _ = rsp.bytes().await;
                    drop(slot);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
                let body = rsp.bytes().await.map_err(|e| {
                    Error::new(
                        ErrorKind::Network,
                        action.to_owned(),
                        format!("reading the response: {e}"),
                    )
                })?;
                return Ok(Reply { status, body });
            }
            Err(e) => {
                if let Some(ep) = endpoint_error(&e) {
                    // refused / unknown host: one quick retry at most; certificate, loopback
                    // guard: none
                    if ep.retry_once() && attempt == 0 && max_retries > 0 {
                        drop(slot);
                        tracing::debug!(attempt, "{action}: {ep}; retrying once");
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        attempt = max_retries; // no further retry
                        continue;
                    }
                    return Err(ep.to_error(action));
                }
                if attempt < max_retries && retryable_error(&e, mode) {
                    drop(slot);
                    let wait = backoff(attempt);
                    tracing::debug!(?wait, attempt, "{action}: network error, retrying: {e}");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
                return Err(network_error(action, &e));
            }
        }
    }
}

/// An error and its sources on one line (`a: b: c`), repeated parts dropped, without the
/// SDK's multi-line details.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        let text = x.to_string();
        let line = text.lines().next().unwrap_or("").trim().to_owned();
        if !line.is_empty() && !parts.iter().any(|p| p.contains(&line)) {
            parts.push(line);
        }
        cur = x.source();
    }
    first_line(&parts.join(": "))
}

pub(crate) fn network_error(action: &str, e: &reqwest::Error) -> Error {
    let mut cause = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause.push_str(": ");
        cause.push_str(&s.to_string());
        src = s.source();
    }
    Error::new(ErrorKind::Network, action.to_owned(), cause)
        .with_hint("check network access to the endpoint; for a private CA set SSL_CERT_FILE")
}

/// Error `code`/`message` from an Azure/Graph JSON error body (`{"error":{"code","message",
/// "innererror":{"code"}}}` or the OAuth `{"error","error_description","error_codes"}` shape).
/// Returns (code, inner code, message).
pub(crate) fn error_details(body: &[u8]) -> (Option<String>, Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None, None);
    };
    let err = &v["error"];
    if let Some(code) = err.as_str() {
        let desc = v["error_description"].as_str().map(first_line);
        return (Some(code.to_owned()), None, desc);
    }
    let code = err["code"].as_str().map(str::to_owned);
    let inner = err["innererror"]["code"]
        .as_str()
        .or_else(|| err["innerError"]["code"].as_str())
        .map(str::to_owned);
    let msg = err["message"].as_str().map(first_line);
    (code, inner, msg)
}

fn first_line(s: &str) -> String {
    let s = s.lines().next().unwrap_or("").trim();
    if s.chars().count() > 300 {
        s.chars().take(300).collect::<String>() + "…"
    } else {
        s.to_owned()
    }
}

/// "403 Forbidden (Authorization_RequestDenied): message".
pub(crate) fn describe(status: StatusCode, code: Option<&str>, msg: Option<&str>) -> String {
    let mut s = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .trim()
    .to_owned();
    if let Some(c) = code {
        s.push_str(&format!(" ({c})"));
    }
    if let Some(m) = msg
        && !m.is_empty()
    {
        s.push_str(": ");
        s.push_str(m);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reqwest client itself refuses a non-loopback address under `loopback_only`, before
    /// connecting: 192.0.2.1 (TEST-NET, never answers) would otherwise hang until the connect
    /// timeout.
    #[tokio::test]
    async fn loopback_only_client_refuses_other_addresses_before_connecting() {
        let mut ep = Endpoints::azure_public();
        ep.loopback_only = true;
        let client = http_client(&ep).expect("client");
        let started = std::time::Instant::now();
        let err = send(|| client.get("https://192.0.2.1/x"), 3, "reading x")
            .await
            .err()
            .expect("refused");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(err.kind(), ErrorKind::Network);
        assert!(
            err.to_string()
                .contains("refusing to connect to 192.0.2.1:443"),
            "{err}"
        );
        assert!(err.to_string().contains("ROTOR_LOOPBACK_ONLY"), "{err}");
    }

    #[test]
    fn parses_retry_after() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
    }

    #[test]
    fn not_idempotent_requests_retry_only_unprocessed_answers() {
        for code in [408u16, 500, 502, 504] {
            let st = StatusCode::from_u16(code).expect("status");
            assert!(retryable(st, Retry::Idempotent), "{code}");
            assert!(!retryable(st, Retry::NotIdempotent), "{code}");
        }
        for code in [429u16, 503] {
            let st = StatusCode::from_u16(code).expect("status");
            assert!(retryable(st, Retry::Idempotent), "{code}");
            assert!(retryable(st, Retry::NotIdempotent), "{code}");
        }
        assert!(!retryable(StatusCode::BAD_REQUEST, Retry::Idempotent));
    }

    #[test]
    fn parses_error_bodies() {
        let (c, i, m) = error_details(
            br#"{"error":{"code":"Conflict","message":"deleted","innererror":{"code":"ObjectIsDeletedButRecoverable"}}}"#,
        );
        assert_eq!(c.as_deref(), Some("Conflict"));
        assert_eq!(i.as_deref(), Some("ObjectIsDeletedButRecoverable"));
        assert_eq!(m.as_deref(), Some("deleted"));
        let (c, _, m) = error_details(
            br#"{"error":"invalid_client","error_description":"AADSTS7000215: bad\nmore"}"#,
        );
        assert_eq!(c.as_deref(), Some("invalid_client"));
        assert_eq!(m.as_deref(), Some("AADSTS7000215: bad"));
    }
}
