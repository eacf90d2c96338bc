//! What happens below a request: the connection guard every engine client runs through (the
//! reqwest connector layer and the `azure_core` transport built on the same client).
//!
//! - With `Endpoints::loopback_only` (`ROTOR_LOOPBACK_ONLY=1`, every test environment) a
//!   connection to a host that is not loopback is refused **before connecting**.
//! - A connection that fails for a reason retrying cannot fix soon — refused, unknown host,
//!   untrusted certificate — becomes an [`EndpointError`] naming the endpoint (`host:port`), so
//!   retry loops stop early (at most one quick retry) and the message says what is wrong and how
//!   to fix it, instead of a minute of retries ending in a credential complaint.

use crate::error::{Error, ErrorKind};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a connection to an endpoint failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointFailure {
    /// `ROTOR_LOOPBACK_ONLY` is set and the host is not loopback: nothing was sent.
    NotLoopback,
    /// The host answered the TCP connection with a reset: nothing listens on that port.
    Refused,
    /// The host name does not resolve.
    UnknownHost,
    /// The TLS handshake failed on the server's certificate (unknown CA, wrong name, expired).
    Certificate,
}

/// A connection to `endpoint` failed; see [`EndpointFailure`]. Carried as the source of the
/// reqwest / `azure_core` errors, found again with [`find`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointError {
    /// What failed.
    pub failure: EndpointFailure,
    /// `host:port`.
    pub endpoint: String,
    /// The underlying error, one line.
    pub detail: String,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ep = &self.endpoint;
        match self.failure {
            EndpointFailure::NotLoopback => write!(
                f,
                "refusing to connect to {ep}: ROTOR_LOOPBACK_ONLY allows only loopback addresses (127.0.0.0/8, ::1, localhost); nothing was sent"
            ),
            EndpointFailure::Refused => write!(
                f,
                "connection refused by {ep}: nothing is listening there ({})",
                self.detail
            ),
            EndpointFailure::UnknownHost => {
                write!(f, "cannot resolve the host of {ep} ({})", self.detail)
            }
            EndpointFailure::Certificate => write!(
                f,
                "the TLS certificate of {ep} is not trusted ({})",
                self.detail
            ),
        }
    }
}

impl std::error::Error for EndpointError {}

impl EndpointError {
    /// Whether one quick retry may help (a service restarting, a DNS blip); never more.
    pub(crate) fn retry_once(&self) -> bool {
        matches!(
            self.failure,
            EndpointFailure::Refused | EndpointFailure::UnknownHost
        )
    }

    /// The engine error: `<action>: <this>`, kind Network, with the fix.
    pub(crate) fn to_error(&self, action: &str) -> Error {
        let ep = &self.endpoint;
        let e = Error::new(ErrorKind::Network, action, self.to_string());
        match self.failure {
            EndpointFailure::NotLoopback => e.with_hint(
                "this process runs with ROTOR_LOOPBACK_ONLY=1 (test environments): point every endpoint (AZURE_AUTHORITY_HOST, ROTOR_GRAPH_ENDPOINT, ROTOR_ARM_ENDPOINT, vault URLs) at the emulator and leave managed identity and the Azure CLI off",
            ),
            EndpointFailure::Refused => e
                .with_hint(format!(
                    "check the endpoint URL (AZURE_AUTHORITY_HOST, ROTOR_GRAPH_ENDPOINT, ROTOR_ARM_ENDPOINT or the vault URL) and that the service at {ep} is running"
                ))
                .with_hint("rotor's credentials were not checked: the request never reached the service"),
            EndpointFailure::UnknownHost => e.with_hint(format!(
                "check the host name of {ep} in the endpoint or vault URL, and DNS / network access (private endpoints need private DNS)"
            )),
            EndpointFailure::Certificate => e.with_hint(format!(
                "if {ep} uses a private CA or a TLS-inspecting proxy, point SSL_CERT_FILE at a PEM bundle holding its CA certificate"
            )),
        }
    }
}

/// The first [`EndpointError`] in `e` or its sources.
pub(crate) fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a EndpointError> {
    find_source(e)
}

/// The first error of type `T` in `e` or its sources (looking inside `azure_core` errors too).
pub(crate) fn find_source<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur = Some(e);
    while let Some(x) = cur {
        if let Some(t) = x.downcast_ref::<T>() {
            return Some(t);
        }
        if let Some(az) = x.downcast_ref::<azure_core::Error>()
            && let Some(inner) = az.get_ref()
            && let Some(t) = find_source(inner)
        {
            return Some(t);
        }
        cur = x.source();
    }
    None
}

/// Whether `host` is a loopback address (or `localhost`).
pub(crate) fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") || h.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    h.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// `host:port` of a URL (default ports filled in).
pub(crate) fn endpoint_of(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// Refuses `url` under `loopback_only` when its host is not loopback.
pub(crate) fn check_url(url: &url::Url, loopback_only: bool) -> Result<(), EndpointError> {
    if loopback_only && !url.host_str().is_some_and(is_loopback) {
        return Err(EndpointError {
            failure: EndpointFailure::NotLoopback,
            endpoint: endpoint_of(url),
            detail: String::new(),
        });
    }
    Ok(())
}

/// The destination of reqwest's (sealed) connector request: its `Debug` is
/// `Unnameable(https://host:port/)`. `None` when the shape is not recognised (the guard then
/// refuses: fail closed).
fn destination(req: &dyn fmt::Debug) -> Option<url::Url> {
    let text = format!("{req:?}");
    let inner = text
        .strip_prefix("Unnameable(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(&text);
    url::Url::parse(inner.trim()).ok()
}

fn classify(e: &(dyn std::error::Error + 'static), endpoint: &str) -> Option<EndpointError> {
    let mut failure = None;
    let mut cur = Some(e);
    let mut texts = Vec::new();
    while let Some(x) = cur {
        if let Some(io) = x.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            failure = Some(EndpointFailure::Refused);
        }
        let t = x.to_string();
        let lower = t.to_ascii_lowercase();
        if failure.is_none() {
            if lower.contains("dns error") || lower.contains("failed to lookup address") {
                failure = Some(EndpointFailure::UnknownHost);
            } else if lower.contains("certificate") {
                failure = Some(EndpointFailure::Certificate);
            } else if lower.contains("connection refused") {
                failure = Some(EndpointFailure::Refused);
            }
        }
        if !t.is_empty() && !texts.iter().any(|p: &String| p.contains(&t)) {
            texts.push(t);
        }
        cur = x.source();
    }
    let detail = texts.last().cloned().unwrap_or_default();
    Some(EndpointError {
        failure: failure?,
        endpoint: endpoint.to_owned(),
        detail: detail.lines().next().unwrap_or("").to_owned(),
    })
}

/// The reqwest connector layer: the loopback guard and the classification of connect failures.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GuardLayer {
    pub(crate) loopback_only: bool,
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;
    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            loopback_only: self.loopback_only,
        }
    }
}

/// See [`GuardLayer`].
#[derive(Clone, Debug)]
pub(crate) struct Guard<S> {
    inner: S,
    loopback_only: bool,
}

impl<S, R> tower::Service<R> for Guard<S>
where
    S: tower::Service<R, Error = BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    R: fmt::Debug,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let dst = destination(&req);
        let endpoint = dst.as_ref().map(endpoint_of).unwrap_or_else(|| "?".into());
        if self.loopback_only {
            let allowed = dst.as_ref().is_some_and(|u| check_url(u, true).is_ok());
            if !allowed {
                let err = EndpointError {
                    failure: EndpointFailure::NotLoopback,
                    endpoint,
                    detail: String::new(),
                };
                return Box::pin(async move { Err(Box::new(err) as BoxError) });
            }
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            fut.await
                .map_err(|e| match classify(e.as_ref(), &endpoint) {
                    Some(ep) => Box::new(ep) as BoxError,
                    None => e,
                })
        })
    }
}

/// The `azure_core` transport over the engine's client: the same guard, checked before the
/// request is built, and connection failures the SDK's retry policy must not spend a minute on
/// (see [`EndpointError`]) retried at most once, quickly, then reported as not retryable.
#[derive(Debug)]
pub(crate) struct Transport {
    pub(crate) client: reqwest::Client,
    pub(crate) loopback_only: bool,
}

#[async_trait::async_trait]
impl azure_core::http::HttpClient for Transport {
    async fn execute_request(
        &self,
        request: &azure_core::http::Request,
    ) -> azure_core::Result<azure_core::http::AsyncRawResponse> {
        use azure_core::error::ErrorKind as K;
        if let Err(ep) = check_url(request.url(), self.loopback_only) {
            let msg = ep.to_string();
            return Err(azure_core::Error::with_error(K::Other, ep, msg));
        }
        let mut retried = false;
        loop {
            match azure_core::http::HttpClient::execute_request(&self.client, request).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    let Some(ep) = find(&e).cloned() else {
                        return Err(e);
                    };
                    if ep.retry_once() && !retried {
                        retried = true;
                        tracing::debug!("{ep}; retrying once");
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        continue;
                    }
                    // not Io/Connection: the SDK's retry policy gives up at once
                    let msg = ep.to_string();
                    return Err(azure_core::Error::with_error(K::Other, ep, msg));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "127.3.4.5",
            "[::1]",
            "::1",
            "localhost",
            "LOCALHOST",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "login.microsoftonline.com",
            "169.254.169.254",
            "10.0.0.1",
            "0.0.0.0",
            "localhost.example.com",
            "",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn destination_reads_the_connector_request() {
        // reqwest's request is `#[derive(Debug)] struct Unnameable(Uri)`, and `Uri`'s Debug is
        // its text
        struct Uri(&'static str);
        impl fmt::Debug for Uri {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Unnameable(Uri);
        let u =
            destination(&Unnameable(Uri("https://login.microsoftonline.com/"))).expect("parsed");
        assert_eq!(endpoint_of(&u), "login.microsoftonline.com:443");
        assert!(destination(&"garbage").is_none());
    }
}
