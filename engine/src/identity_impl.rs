//! The credential chain behind [`AuthConfig::build`].

use crate::endpoints::Endpoints;
use crate::error::{Error, Result};
use crate::identity::{AuthConfig, AuthMethod};
use crate::secret::SecretValue;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::ClientMethodOptions;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertion, ClientAssertionCredential,
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

const GITHUB_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Retries of one sign-in (exponential from 200 ms, with the SDK's jitter) and the time they may
/// take in all: a brief Entra hiccup passes within them. The SDK's own default (8 retries over
/// up to a minute, then more as the caller retries) kept a run waiting 80 s per sign-in during an
/// outage of the token endpoint.
const SIGN_IN_RETRIES: u32 = 4;
const SIGN_IN_BUDGET: time::Duration = time::Duration::seconds(10);

/// How long a sign-in that failed for a reason retrying may fix (the token endpoint answered
/// 5xx, 429 or 408, or could not be reached) is not tried again: every token request in that
/// time fails at once with the same error, so a bulk run or a Terraform plan over many links
/// ends with a clear error instead of repeating the retries for each.
const SIGN_IN_HOLD: std::time::Duration = std::time::Duration::from_secs(30);

fn cred_error(msg: impl Into<String>) -> azure_core::Error {
    azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, msg.into())
}

/// Reads the assertion from a file at each token request (Kubernetes rotates it).
#[derive(Debug)]
struct FileAssertion(PathBuf);

#[async_trait::async_trait]
impl ClientAssertion for FileAssertion {
    async fn secret(&self, _o: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        let t = tokio::fs::read_to_string(&self.0)
            .await
            .map_err(|e| cred_error(format!("reading token file `{}`: {e}", self.0.display())))?;
        Ok(t.trim().to_owned())
    }
}

/// A fresh assertion signed by rotor's own certificate at each token request.
struct CertificateAssertion {
    cert: crate::identity_cert::ClientCertificate,
    client_id: String,
    audience: String,
    send_chain: bool,
}

impl fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("cert", &self.cert)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(&self, _o: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        self.cert
            .assertion(&self.client_id, &self.audience, self.send_chain)
            .map_err(cred_error)
    }
}

/// A fixed assertion.
#[derive(Debug)]
struct FixedAssertion(SecretValue);

#[async_trait::async_trait]
impl ClientAssertion for FixedAssertion {
    async fn secret(&self, _o: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        Ok(self.0.expose().to_owned())
    }
}

/// GitHub Actions OIDC: fetches a fresh ID token for each token request.
struct GithubOidc {
    client: reqwest::Client,
    url: String,
    token: SecretValue,
    loopback_only: bool,
}

impl fmt::Debug for GithubOidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubOidc")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl ClientAssertion for GithubOidc {
    async fn secret(&self, _o: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        let mut url = url::Url::parse(&self.url)
            .map_err(|e| cred_error(format!("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL: {e}")))?;
        if !url.query_pairs().any(|(k, _)| k == "audience") {
            url.query_pairs_mut()
                .append_pair("audience", GITHUB_AUDIENCE);
        }
        if let Err(ep) = crate::http::check_url(&url, self.loopback_only) {
            let msg = format!("requesting a GitHub OIDC token: {ep}");
            return Err(azure_core::Error::with_error(
                azure_core::error::ErrorKind::Credential,
                ep,
                msg,
            ));
        }
        let rsp = self
            .client
            .get(url)
            .bearer_auth(self.token.expose())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                let msg = format!(
                    "requesting a GitHub OIDC token: {}",
                    crate::http::error_chain(&e)
                );
                match crate::http::endpoint_error(&e) {
                    Some(ep) => azure_core::Error::with_error(
                        azure_core::error::ErrorKind::Credential,
                        ep.clone(),
                        msg,
                    ),
                    None => cred_error(msg),
                }
            })?;
        let status = rsp.status();
        if !status.is_success() {
            return Err(cred_error(format!(
                "requesting a GitHub OIDC token: {status} (does the workflow have `permissions: id-token: write`?)"
            )));
        }
        #[derive(serde::Deserialize)]
        struct Reply {
            value: SecretValue,
        }
        let r: Reply = rsp
            .json()
            .await
            .map_err(|e| cred_error(format!("reading the GitHub OIDC token: {e}")))?;
        Ok(r.value.expose().to_owned())
    }
}

/// A method that is never used in this process (the Azure CLI under `loopback_only`).
#[derive(Debug)]
struct Refused(&'static str);

#[async_trait::async_trait]
impl TokenCredential for Refused {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Err(cred_error(self.0))
    }
}

/// Tries each credential in order; remembers the first that works.
struct Chain {
    /// (method, how messages name it, credential)
    entries: Vec<(AuthMethod, String, Arc<dyn TokenCredential>)>,
    /// The methods are the configured ones (not the automatic chain).
    explicit: bool,
    chosen: Mutex<Option<usize>>,
    /// Tokens per scope set, while they have more than [`REFRESH_BEFORE`] to live: a cached
    /// token never waits for [`Chain::turn`] (the Azure CLI method has no cache of its own).
    tokens: Mutex<HashMap<String, AccessToken>>,
    /// Per scope set, the last sign-in that failed for a reason retrying may fix, while
    /// [`SIGN_IN_HOLD`] lasts (a throttled Key Vault sign-in does not stop Graph requests).
    held: Mutex<HashMap<String, HeldFailure>>,
    /// One sign-in at a time (the SDK's token cache serialises them anyway): a caller that
    /// waited behind a failed one sees its held failure instead of retrying again.
    turn: tokio::sync::Mutex<()>,
}

/// A cached token is used while it has more than this to live (the SDK's own margin).
const REFRESH_BEFORE: time::Duration = time::Duration::minutes(5);

/// A failed sign-in, kept to answer the token requests of the next [`SIGN_IN_HOLD`].
struct HeldFailure {
    at: std::time::Instant,
    endpoint: Option<crate::http::EndpointError>,
    message: String,
}

impl HeldFailure {
    fn error(&self) -> azure_core::Error {
        chain_error(self.endpoint.clone(), self.message.clone(), true)
    }
}

/// Behind a sign-in error that retrying later may fix (see [`failure_facts`]), so callers can
/// say so, with the chain's message, wherever an SDK wraps it ([`crate::graph::token_error`]);
/// the endpoint a connection failed to, if that was it, is its source.
#[derive(Debug)]
pub(crate) struct SignInUnavailable {
    pub(crate) message: String,
    endpoint: Option<crate::http::EndpointError>,
}

impl fmt::Display for SignInUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SignInUnavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.endpoint
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The chain's error. A connection failure stays findable ([`crate::http::endpoint_error`]):
/// it is the endpoint, not the credential; so does a failure retrying may fix
/// ([`SignInUnavailable`]).
fn chain_error(
    endpoint: Option<crate::http::EndpointError>,
    msg: String,
    transient: bool,
) -> azure_core::Error {
    use azure_core::error::ErrorKind::Credential;
    match (transient, endpoint) {
        (true, endpoint) => {
            let inner = SignInUnavailable {
                message: msg.clone(),
                endpoint,
            };
            azure_core::Error::with_error(Credential, inner, msg)
        }
        (false, Some(ep)) => azure_core::Error::with_error(Credential, ep, msg),
        (false, None) => cred_error(msg),
    }
}

/// What a failed token request says besides the SDK's text (which is empty when the token
/// endpoint's answer had no `error_description`): the HTTP status, and whether retrying soon
/// may help (5xx, 429, 408, or no connection).
fn failure_facts(e: &azure_core::Error) -> (Option<String>, bool) {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if let Some(az) = x.downcast_ref::<azure_core::Error>() {
            match az.kind() {
                azure_core::error::ErrorKind::HttpResponse { status, .. } => {
                    let code = u16::from(*status);
                    let transient = code >= 500 || code == 429 || code == 408;
                    return (
                        Some(format!("the token endpoint answered HTTP {code}")),
                        transient,
                    );
                }
                azure_core::error::ErrorKind::Connection | azure_core::error::ErrorKind::Io => {
                    return (None, true);
                }
                _ => {}
            }
        }
        cur = x.source();
    }
    (
        None,
        crate::http::endpoint_error(e).is_some_and(|ep| ep.retry_once()),
    )
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|(_, l, _)| l.as_str()).collect();
        f.debug_struct("Chain").field("methods", &names).finish()
    }
}

#[async_trait::async_trait]
impl TokenCredential for Chain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let key = scopes.join(" ");
        let cached = || {
            let fresh =
                |t: &&AccessToken| t.expires_on > time::OffsetDateTime::now_utc() + REFRESH_BEFORE;
            self.tokens.lock().get(&key).filter(fresh).cloned()
        };
        if let Some(t) = cached() {
            return Ok(t);
        }
        let _turn = self.turn.lock().await;
        if let Some(t) = cached() {
            return Ok(t);
        }
        if let Some(h) = self.held.lock().get(&key)
            && h.at.elapsed() < SIGN_IN_HOLD
        {
            return Err(h.error());
        }
        let token = self.sign_in(scopes, options).await;
        match &token {
            Ok(t) => {
                self.held.lock().remove(&key);
                self.tokens.lock().insert(key, t.clone());
            }
            Err((msg, endpoint, true)) => {
                let until = time::OffsetDateTime::now_utc() + SIGN_IN_HOLD;
                let held = HeldFailure {
                    at: std::time::Instant::now(),
                    endpoint: endpoint.clone(),
                    message: format!(
                        "{msg} (retried; token requests until {} fail at once with this error)",
                        until
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default()
                    ),
                };
                let err = held.error();
                self.held.lock().insert(key, held);
                return Err(err);
            }
            Err(_) => {}
        }
        token.map_err(|(msg, endpoint, _)| chain_error(endpoint, msg, false))
    }
}

impl Chain {
    /// A token from the chosen method, else from the first method that works (remembered);
    /// or what failed, the endpoint a connection failed to, and whether retrying soon may help.
    async fn sign_in(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> Result<AccessToken, (String, Option<crate::http::EndpointError>, bool)> {
        let chosen = *self.chosen.lock();
        match chosen {
            Some(i) => {
                let (_, label, cred) = &self.entries[i];
                cred.get_token(scopes, options).await.map_err(|e| {
                    let (detail, transient) = failure_facts(&e);
                    let msg = with_detail(crate::http::error_chain(&e), detail);
                    let endpoint = crate::http::endpoint_error(&e).cloned();
                    (format!("{label}: {msg}"), endpoint, transient)
                })
            }
            None => self.first_that_works(scopes, options).await,
        }
    }

    /// Tries each method in order: the first token (that method is remembered), or what every
    /// method's failure says, the endpoint a connection failed to, and whether retrying soon may
    /// help all of them.
    async fn first_that_works(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> Result<AccessToken, (String, Option<crate::http::EndpointError>, bool)> {
        let mut tried = Vec::new();
        let mut endpoint = None;
        // held only when every method failed for a reason retrying may fix: an automatic chain
        // whose Azure CLI is not logged in is not an outage, whatever managed identity answered
        let mut transient = true;
        for (i, (_, label, cred)) in self.entries.iter().enumerate() {
            match cred.get_token(scopes, options.clone()).await {
                Ok(t) => {
                    tracing::debug!("authenticated with {label}");
                    *self.chosen.lock() = Some(i);
                    return Ok(t);
                }
                Err(e) => {
                    if endpoint.is_none() {
                        endpoint = crate::http::endpoint_error(&e).cloned();
                    }
                    let (detail, retry_may_help) = failure_facts(&e);
                    transient &= retry_may_help;
                    let msg = with_detail(crate::http::error_chain(&e), detail);
                    tracing::debug!("{label} failed: {msg}");
                    tried.push(format!("{label}: {msg}"));
                }
            }
        }
        let msg = match (self.explicit, tried.as_slice()) {
            (true, [one]) => format!(
                "the configured credential failed (no other method is tried when one is configured): {one}"
            ),
            (true, _) => format!(
                "no configured credential worked (no other method is tried when one is configured); tried: {}",
                tried.join("; ")
            ),
            (false, _) => format!("no credential worked; tried: {}", tried.join("; ")),
        };
        Err((msg, endpoint, transient))
    }
}

/// `msg`, with what [`failure_facts`] found when the text does not say it already.
fn with_detail(msg: String, detail: Option<String>) -> String {
    match detail {
        Some(d) if !msg.contains(&d) => format!("{} ({d})", msg.trim_end_matches('.')),
        _ => msg,
    }
}

pub(crate) fn build(cfg: &AuthConfig, endpoints: &Endpoints) -> Result<Arc<dyn TokenCredential>> {
    let client = crate::http::http_client(endpoints)?;
    let mut opts = crate::http::client_options(&client, endpoints);
    opts.retry =
        azure_core::http::RetryOptions::exponential(azure_core::http::ExponentialRetryOptions {
            max_retries: SIGN_IN_RETRIES,
            max_total_elapsed: SIGN_IN_BUDGET,
            ..Default::default()
        });
    let methods = cfg.methods();
    if methods.is_empty() {
        return Err(Error::config("authenticating to Entra ID", "no credential is configured")
            .with_hint("set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or AZURE_FEDERATED_TOKEN_FILE, or run in GitHub Actions with `permissions: id-token: write`, or log in with `az login`"));
    }
    let tenant = cfg.tenant_id.clone().unwrap_or_default();
    let client_id = cfg.client_id.clone().unwrap_or_default();
    let action = "building the Entra ID credential";
    for m in &methods {
        let needs_ids = !matches!(m, AuthMethod::AzureCli | AuthMethod::ManagedIdentity);
        let mut missing = Vec::new();
        if needs_ids && cfg.tenant_id.is_none() {
            missing.push("a tenant id (AZURE_TENANT_ID)");
        }
        if needs_ids && cfg.client_id.is_none() {
            missing.push("a client id (AZURE_CLIENT_ID)");
        }
        if !missing.is_empty() {
            return Err(Error::config(
                action,
                format!("the {} also needs {}", cfg.describe(m), missing.join(" and ")),
            )
            .with_hint("set AZURE_TENANT_ID and AZURE_CLIENT_ID (ARM_TENANT_ID / ARM_CLIENT_ID or `tenant_id` / `client_id` for the provider) to rotor's own tenant and application"));
        }
    }
    let sdk_err = |m: &AuthMethod, e: azure_core::Error| {
        Error::config(action, format!("{}: {e}", cfg.describe(m)))
            .with_hint("check AZURE_TENANT_ID and AZURE_CLIENT_ID")
    };
    let mut entries: Vec<(AuthMethod, String, Arc<dyn TokenCredential>)> = Vec::new();
    for m in methods {
        let cred: Arc<dyn TokenCredential> = match &m {
            AuthMethod::ClientSecret => {
                let secret = cfg
                    .client_secret
                    .as_ref()
                    .map(|s| s.expose().to_owned())
                    .unwrap_or_default();
                ClientSecretCredential::new(
                    &tenant,
                    client_id.clone(),
                    Secret::new(secret),
                    Some(ClientSecretCredentialOptions {
                        client_options: opts.clone(),
                    }),
                )
                .map_err(|e| sdk_err(&m, e))?
            }
            AuthMethod::ClientCertificate(_) | AuthMethod::ClientCertificateContent => {
                let cert = match (&m, &cfg.client_certificate) {
                    (AuthMethod::ClientCertificate(p), _) => {
                        crate::identity_cert::ClientCertificate::load(
                            p,
                            cfg.client_certificate_password.as_ref(),
                            &cfg.source("client_certificate_path"),
                        )?
                    }
                    (_, content) => crate::identity_cert::ClientCertificate::from_content(
                        &content.clone().unwrap_or_default(),
                        cfg.client_certificate_password.as_ref(),
                        &cfg.source("client_certificate"),
                    )?,
                };
                let audience = format!(
                    "{}/{tenant}/oauth2/v2.0/token",
                    endpoints.authority_host.as_str().trim_end_matches('/')
                );
                ClientAssertionCredential::new(
                    tenant.clone(),
                    client_id.clone(),
                    CertificateAssertion {
                        cert,
                        client_id: client_id.clone(),
                        audience,
                        send_chain: cfg.send_certificate_chain,
                    },
                    Some(ClientAssertionCredentialOptions {
                        client_options: opts.clone(),
                    }),
                )
                .map_err(|e| sdk_err(&m, e))?
            }
            AuthMethod::TokenFile(p) => ClientAssertionCredential::new(
                tenant.clone(),
                client_id.clone(),
                FileAssertion(p.clone()),
                Some(ClientAssertionCredentialOptions {
                    client_options: opts.clone(),
                }),
            )
            .map_err(|e| sdk_err(&m, e))?,
            AuthMethod::OidcToken => ClientAssertionCredential::new(
                tenant.clone(),
                client_id.clone(),
                FixedAssertion(cfg.oidc_token.clone().unwrap_or_default()),
                Some(ClientAssertionCredentialOptions {
                    client_options: opts.clone(),
                }),
            )
            .map_err(|e| sdk_err(&m, e))?,
            AuthMethod::GithubOidc => ClientAssertionCredential::new(
                tenant.clone(),
                client_id.clone(),
                GithubOidc {
                    client: client.clone(),
                    url: cfg.oidc_request_url.clone().unwrap_or_default(),
                    token: cfg.oidc_request_token.clone().unwrap_or_default(),
                    loopback_only: endpoints.loopback_only,
                },
                Some(ClientAssertionCredentialOptions {
                    client_options: opts.clone(),
                }),
            )
            .map_err(|e| sdk_err(&m, e))?,
            AuthMethod::AzureCli if endpoints.loopback_only => Arc::new(Refused(
                "the Azure CLI is not used under ROTOR_LOOPBACK_ONLY (it is a separate process whose connections rotor cannot guard)",
            )),
            AuthMethod::AzureCli => AzureCliCredential::new(Some(AzureCliCredentialOptions {
                tenant_id: cfg.tenant_id.clone(),
                ..Default::default()
            }))
            .map_err(|e| sdk_err(&m, e))?,
            AuthMethod::ManagedIdentity => {
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: cfg.client_id.clone().map(UserAssignedId::ClientId),
                    client_options: opts.clone(),
                }))
                .map_err(|e| sdk_err(&m, e))?
            }
        };
        let label = cfg.describe(&m);
        entries.push((m, label, cred));
    }
    Ok(Arc::new(Chain {
        entries,
        explicit: cfg.is_explicit(),
        chosen: Mutex::new(None),
        tokens: Mutex::new(HashMap::new()),
        held: Mutex::new(HashMap::new()),
        turn: tokio::sync::Mutex::new(()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A method that answers HTTP 500 until `works` is set, counting its calls.
    #[derive(Debug, Default)]
    struct Flaky {
        calls: AtomicUsize,
        works: AtomicBool,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Flaky {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.works.load(Ordering::SeqCst) {
                let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
                return Ok(AccessToken::new(Secret::new("token"), expires));
            }
            let status = azure_core::http::StatusCode::InternalServerError;
            let kind = azure_core::error::ErrorKind::HttpResponse {
                status,
                error_code: None,
                raw_response: None,
            };
            Err(azure_core::Error::with_message(kind, ""))
        }
    }

    fn chain(flaky: Arc<Flaky>) -> Chain {
        Chain {
            entries: vec![(AuthMethod::ClientSecret, "client secret".into(), flaky)],
            explicit: true,
            chosen: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    #[tokio::test]
    async fn a_held_failure_ends_after_the_hold_and_is_per_scope() {
        let flaky = Arc::new(Flaky::default());
        let c = chain(flaky.clone());
        let calls = || flaky.calls.load(Ordering::SeqCst);
        let err = c.get_token(&["graph"], None).await.expect_err("500");
        assert!(err.to_string().contains("HTTP 500"), "{err}");
        assert_eq!(calls(), 1);
        c.get_token(&["graph"], None).await.expect_err("held");
        assert_eq!(calls(), 1, "held: the method is not asked again");
        // another scope is not held by this one's failure
        flaky.works.store(true, Ordering::SeqCst);
        c.get_token(&["vault"], None).await.expect("vault token");
        assert_eq!(calls(), 2);
        c.get_token(&["graph"], None).await.expect_err("still held");
        assert_eq!(calls(), 2);
        // once the hold is over the method is asked again, and its token is cached
        let past = std::time::Instant::now()
            .checked_sub(SIGN_IN_HOLD + std::time::Duration::from_secs(1))
            .expect("a monotonic clock older than the hold");
        c.held.lock().get_mut("graph").expect("held").at = past;
        c.get_token(&["graph"], None).await.expect("graph token");
        assert_eq!(calls(), 3);
        assert!(c.held.lock().is_empty(), "a success clears the hold");
        c.get_token(&["graph"], None).await.expect("cached");
        assert_eq!(calls(), 3, "a cached token asks no method");
    }
}
