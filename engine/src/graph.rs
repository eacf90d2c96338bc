//! Microsoft Graph v1.0 applications over reqwest: paging by absolute `@odata.nextLink`, `$select`,
//! bounded retries honouring `Retry-After`, errors that name the missing permission.

use crate::endpoints::Endpoints;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Retry, describe, error_details, send, send_with};
use crate::model::{Application, KeyCredential, PasswordCredential};
use crate::secret::SecretValue;
use azure_core::credentials::TokenCredential;
use base64::Engine as _;
use serde::Deserialize;
use std::sync::Arc;
use time::OffsetDateTime;
use url::Url;

const SELECT: &str = "id,appId,displayName,signInAudience,passwordCredentials,keyCredentials";

/// A Graph client. Every call takes a fresh token from the credential (cached by the SDK).
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: Url,
    credential: Arc<dyn TokenCredential>,
    scope: String,
    max_retries: u32,
    pacer: Option<Arc<crate::pacing::Pacer>>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireApp {
    id: String,
    app_id: String,
    display_name: Option<String>,
    sign_in_audience: Option<String>,
    #[serde(default)]
    password_credentials: Option<Vec<WirePassword>>,
    #[serde(default)]
    key_credentials: Option<Vec<WireKey>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePassword {
    key_id: Option<String>,
    display_name: Option<String>,
    hint: Option<String>,
    start_date_time: Option<String>,
    end_date_time: Option<String>,
    secret_text: Option<SecretValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireKey {
    key_id: Option<String>,
    display_name: Option<String>,
    custom_key_identifier: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    usage: Option<String>,
    start_date_time: Option<String>,
    end_date_time: Option<String>,
}

#[derive(Deserialize)]
struct WirePage {
    value: Vec<WireApp>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

fn parse_time(s: Option<&str>, default: OffsetDateTime) -> OffsetDateTime {
    s.and_then(|s| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
        .unwrap_or(default)
}

fn far_future() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + time::Duration::days(365 * 400)
}

fn thumbprint(cki: Option<&str>) -> Option<String> {
    let s = cki?.trim();
    if s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some(s.to_ascii_uppercase());
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    // The ASCII of a 40-hex thumbprint sent as Edm.Binary (`UTF8.GetBytes($thumbprint)`).
    if bytes.len() == 40 && bytes.iter().all(u8::is_ascii_hexdigit) {
        return Some(String::from_utf8_lossy(&bytes).to_ascii_uppercase());
    }
    Some(bytes.iter().map(|b| format!("{b:02X}")).collect())
}

impl WirePassword {
    fn into_model(self) -> (PasswordCredential, Option<SecretValue>) {
        let start = parse_time(self.start_date_time.as_deref(), OffsetDateTime::UNIX_EPOCH);
        (
            PasswordCredential {
                key_id: self.key_id.unwrap_or_default().to_ascii_lowercase(),
                display_name: self.display_name,
                hint: self.hint,
                start,
                end: parse_time(self.end_date_time.as_deref(), far_future()),
            },
            self.secret_text,
        )
    }
}

impl WireApp {
    fn into_model(self) -> Application {
        Application {
            object_id: self.id,
            app_id: self.app_id.to_ascii_lowercase(),
            display_name: self.display_name.unwrap_or_default(),
            sign_in_audience: self.sign_in_audience,
            password_credentials: self
                .password_credentials
                .unwrap_or_default()
                .into_iter()
                .map(|p| p.into_model().0)
                .collect(),
            key_credentials: self
                .key_credentials
                .unwrap_or_default()
                .into_iter()
                .map(|k| KeyCredential {
                    key_id: k.key_id.unwrap_or_default().to_ascii_lowercase(),
                    display_name: k.display_name,
                    thumbprint: thumbprint(k.custom_key_identifier.as_deref()),
                    kind: k.kind,
                    usage: k.usage,
                    start: parse_time(k.start_date_time.as_deref(), OffsetDateTime::UNIX_EPOCH),
                    end: parse_time(k.end_date_time.as_deref(), far_future()),
                })
                .collect(),
        }
    }
}

/// Which permission a Graph call needs (for 403 hints).
#[derive(Clone, Copy)]
enum Need {
    Read,
    Write,
}

fn graph_error(
    status: reqwest::StatusCode,
    body: &[u8],
    action: &str,
    need: Need,
    object: Option<&str>,
) -> Error {
    let (code, inner, msg) = error_details(body);
    let cause = describe(status, code.as_deref(), msg.as_deref());
    let code_s = code.clone().unwrap_or_default();
    let all = format!(
        "{code_s} {} {}",
        inner.clone().unwrap_or_default(),
        msg.clone().unwrap_or_default()
    );
    let e = match status.as_u16() {
        401 | 403 => {
            let e = Error::new(ErrorKind::Permission, action, cause);
            match need {
                Need::Read => e.with_hint(
                    "grant rotor's identity the Microsoft Graph application permission `Application.Read.All` (or `Application.ReadWrite.All`) and grant admin consent",
                ),
                Need::Write => e
                    .with_hint(format!(
                        "grant rotor's identity the Microsoft Graph application permission `Application.ReadWrite.All`, or `Application.ReadWrite.OwnedBy` and make it an owner of {}",
                        object.unwrap_or("the application")
                    ))
                    .with_hint("grant admin consent after adding the permission"),
            }
        }
        404 => Error::new(ErrorKind::NotFound, action, cause)
            .with_hint("check the application id (appId); `rotor discover` lists the applications rotor can see"),
        429 | 503 => Error::new(ErrorKind::Throttled, action, cause)
            .with_hint("Microsoft Graph is throttling; retry later or lower policy.max_concurrent"),
        400 if all.contains("TooManyAppPasswords") => Error::new(ErrorKind::Conflict, action, cause).with_hint(
            "the application already has the maximum number of passwords (2 for apps that accept personal accounts); remove an unused one or run `rotor cleanup`",
        ),
        400 if all.contains("CredentialInvalidLifetimeAsPerAppPolicy") => {
            Error::new(ErrorKind::Config, action, cause).with_hint(
                "an app management policy limits credential lifetime; lower policy.new_secret_validity_days or pass --expiry-days",
            )
        }
        _ => Error::new(ErrorKind::Other, action, cause),
    };
    e.with_status(Some(status.as_u16()), inner.or(code))
}

/// Turns an `azure_core` token error into an engine error for `action`.
pub(crate) fn token_error(action: &str, e: &azure_core::Error) -> Error {
    if let Some(ep) = crate::http::endpoint_error(e) {
        // the token endpoint (or the OIDC / managed identity endpoint) could not be reached:
        // say so, instead of blaming the credential
        return ep.to_error(&format!("{action}: getting an access token"));
    }
    let msg = e.to_string();
    let first = msg.lines().next().unwrap_or("").to_owned();
    if let Some(s) = crate::http::find_source::<crate::identity_impl::SignInUnavailable>(e) {
        return Error::new(
            ErrorKind::Network,
            action,
            format!("getting an access token: {}", s.message),
        )
        .with_hint(
            "the sign-in is failing for now (an outage or throttling of Entra ID, or of the \
             managed identity or GitHub OIDC endpoint rotor signs in through): run again later; \
             a rotation stopped here is finished by the next run",
        );
    }
    let kind = if first.contains("no credential worked")
        || first.contains("AADSTS")
        || first.contains("401")
    {
        ErrorKind::Permission
    } else {
        ErrorKind::Network
    };
    Error::new(kind, action, format!("getting an access token: {first}")).with_hint(
        "check AZURE_TENANT_ID, AZURE_CLIENT_ID and the client secret / federated credential of rotor's identity",
    )
}

impl GraphClient {
    /// A client for `endpoints.graph` using `http` and `credential`.
    pub fn new(
        http: reqwest::Client,
        endpoints: &Endpoints,
        credential: Arc<dyn TokenCredential>,
        max_retries: u32,
    ) -> GraphClient {
        GraphClient {
            http,
            base: endpoints.graph.clone(),
            credential,
            scope: endpoints.graph_scope(),
            max_retries,
            pacer: None,
        }
    }

    /// Paces every request through `pacer`'s Graph budgets ([`crate::pacing`]).
    pub fn with_pacer(mut self, pacer: Arc<crate::pacing::Pacer>) -> GraphClient {
        self.pacer = Some(pacer);
        self
    }

    async fn pace(&self, op: crate::pacing::GraphOp) {
        if let Some(p) = &self.pacer {
            p.graph(op).await;
        }
    }

    async fn token(&self, action: &str) -> Result<SecretValue> {
        let t = self
            .credential
            .get_token(&[self.scope.as_str()], None)
            .await
            .map_err(|e| token_error(action, &e))?;
        Ok(SecretValue::new(t.token.secret()))
    }

    fn url(&self, path_and_query: &str) -> Result<Url> {
        let base = self.base.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path_and_query}"))
            .map_err(|e| Error::config("building a Graph URL", e.to_string()))
    }

    async fn get_json(
        &self,
        url: Url,
        action: &str,
        need: Need,
        object: Option<&str>,
    ) -> Result<bytes::Bytes> {
        self.pace(crate::pacing::GraphOp::Read).await;
        let token = self.token(action).await?;
        let reply = send(
            || {
                self.http
                    .get(url.clone())
                    .bearer_auth(token.expose())
                    .header("accept", "application/json")
            },
            self.max_retries,
            action,
        )
        .await?;
        if !reply.status.is_success() {
            return Err(graph_error(reply.status, &reply.body, action, need, object));
        }
        Ok(reply.body)
    }

    /// Every application (following `@odata.nextLink` as an absolute URL, `$top=999`), optionally
    /// restricted by an OData `$filter` expression.
    pub async fn list_applications(&self, odata_filter: Option<&str>) -> Result<Vec<Application>> {
        let action = "listing applications in Microsoft Graph";
        let mut url = self.url("/v1.0/applications")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("$select", SELECT);
            q.append_pair("$top", "999");
            if let Some(f) = odata_filter {
                q.append_pair("$filter", f);
            }
        }
        let mut out = Vec::new();
        let mut next = Some(url);
        let mut pages = 0usize;
        while let Some(u) = next.take() {
            pages += 1;
            let body = self.get_json(u, action, Need::Read, None).await?;
            let page: WirePage = serde_json::from_slice(&body)
                .map_err(|e| Error::other(action, format!("unexpected response: {e}")))?;
            out.extend(page.value.into_iter().map(WireApp::into_model));
            if let Some(n) = page.next_link {
                next = Some(Url::parse(&n).map_err(|e| {
                    Error::other(action, format!("bad @odata.nextLink `{n}`: {e}"))
                })?);
            }
        }
        tracing::debug!(pages, apps = out.len(), "listed applications");
        Ok(out)
    }

    /// One application by appId; `Ok(None)` when it does not exist.
    pub async fn get_application_by_app_id(&self, app_id: &str) -> Result<Option<Application>> {
        let action = format!("reading application {app_id} from Microsoft Graph");
        let mut url = self.url(&format!(
            "/v1.0/applications(appId='{}')",
            app_id.replace('\'', "''")
        ))?;
        url.query_pairs_mut().append_pair("$select", SELECT);
        match self.get_json(url, &action, Need::Read, None).await {
            Ok(body) => {
                let app: WireApp = serde_json::from_slice(&body).map_err(|e| {
                    Error::other(action.clone(), format!("unexpected response: {e}"))
                })?;
                Ok(Some(app.into_model()))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `addPassword`: a new password credential and its value (returned once).
    /// The start is left to Entra (its "now"), so the credential works as soon as it propagates.
    pub async fn add_password(
        &self,
        app: &Application,
        display_name: &str,
        end: OffsetDateTime,
    ) -> Result<(PasswordCredential, SecretValue)> {
        let action = format!("adding a password to {app}");
        let url = self.url(&format!("/v1.0/applications/{}/addPassword", app.object_id))?;
        let fmt = &time::format_description::well_known::Rfc3339;
        let body = serde_json::json!({"passwordCredential": {
            "displayName": display_name,
            "endDateTime": end.format(fmt).map_err(|e| Error::other(action.clone(), e.to_string()))?,
        }});
        self.pace(crate::pacing::GraphOp::Write).await;
        let token = self.token(&action).await?;
        // addPassword is not idempotent: retry only on answers that prove nothing was created
        // (429 / 503 answered before processing, or no connection); the protocol finds stray
        // credentials later.
        let reply = send_with(
            || {
                self.http
                    .post(url.clone())
                    .bearer_auth(token.expose())
                    .json(&body)
            },
            self.max_retries,
            &action,
            Retry::NotIdempotent,
        )
        .await?;
        if !reply.status.is_success() {
            return Err(graph_error(
                reply.status,
                &reply.body,
                &action,
                Need::Write,
                Some(&app.to_string()),
            ));
        }
        let w: WirePassword = serde_json::from_slice(&reply.body)
            .map_err(|e| Error::other(action.clone(), format!("unexpected response: {e}")))?;
        let (cred, secret) = w.into_model();
        let secret =
            secret.ok_or_else(|| Error::other(action, "the response carried no secretText"))?;
        Ok((cred, secret))
    }

    /// `removePassword`. A credential that is already gone counts as removed.
    pub async fn remove_password(&self, app: &Application, key_id: &str) -> Result<()> {
        let action = format!("removing password {key_id} from {app}");
        let url = self.url(&format!(
            "/v1.0/applications/{}/removePassword",
            app.object_id
        ))?;
        let body = serde_json::json!({"keyId": key_id});
        self.pace(crate::pacing::GraphOp::Write).await;
        let token = self.token(&action).await?;
        let reply = send(
            || {
                self.http
                    .post(url.clone())
                    .bearer_auth(token.expose())
                    .json(&body)
            },
            self.max_retries,
            &action,
        )
        .await?;
        if reply.status.is_success() {
            return Ok(());
        }
        let e = graph_error(
            reply.status,
            &reply.body,
            &action,
            Need::Write,
            Some(&app.to_string()),
        );
        let text = String::from_utf8_lossy(&reply.body).to_ascii_lowercase();
        if e.kind() == ErrorKind::NotFound
            || (reply.status.as_u16() == 400 && text.contains("no password credential"))
        {
            return Ok(());
        }
        Err(e)
    }
}

/// An application's key credentials exactly as Graph returned them under
/// `?$select=keyCredentials` (the only read that carries each public `key`), and its
/// `tokenEncryptionKeyId`. Re-sent unchanged by [`GraphClient::patch_key_credentials`].
#[derive(Clone)]
pub struct KeyCredentialSet {
    /// Each entry as a JSON object, unchanged.
    pub entries: Vec<serde_json::Map<String, serde_json::Value>>,
    /// `tokenEncryptionKeyId`: the key Entra encrypts tokens with (never removed).
    pub token_encryption_key_id: Option<String>,
}

impl std::fmt::Debug for KeyCredentialSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self
            .entries
            .iter()
            .filter_map(|e| e.get("keyId").and_then(|v| v.as_str()))
            .collect();
        f.debug_struct("KeyCredentialSet")
            .field("key_ids", &ids)
            .field("token_encryption_key_id", &self.token_encryption_key_id)
            .finish()
    }
}

impl KeyCredentialSet {
    /// The thumbprint (upper-case hex) of entry `i`, from `customKeyIdentifier`.
    pub fn thumbprint(entry: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
        thumbprint(entry.get("customKeyIdentifier").and_then(|v| v.as_str()))
    }

    /// True when an entry has thumbprint `tp`.
    pub fn has_thumbprint(&self, tp: &str) -> bool {
        self.entries
            .iter()
            .any(|e| Self::thumbprint(e).is_some_and(|t| t.eq_ignore_ascii_case(tp)))
    }
}

impl GraphClient {
    /// The key credentials of `app` with their public keys, and its `tokenEncryptionKeyId`.
    pub async fn get_key_credentials(&self, app: &Application) -> Result<KeyCredentialSet> {
        let action = format!("reading the key credentials of {app}");
        let mut url = self.url(&format!("/v1.0/applications/{}", app.object_id))?;
        url.query_pairs_mut()
            .append_pair("$select", "id,keyCredentials,tokenEncryptionKeyId");
        let body = self.get_json(url, &action, Need::Read, None).await?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::other(action.clone(), format!("unexpected response: {e}")))?;
        let entries = v
            .get("keyCredentials")
            .and_then(|k| k.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_object().cloned()).collect())
            .unwrap_or_default();
        Ok(KeyCredentialSet {
            entries,
            token_encryption_key_id: v
                .get("tokenEncryptionKeyId")
                .and_then(|t| t.as_str())
                .map(|s| s.to_ascii_lowercase()),
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        url: Url,
        method: reqwest::Method,
        body: &serde_json::Value,
        action: &str,
        bearer: Option<&SecretValue>,
        mode: Retry,
        app: &Application,
    ) -> Result<()> {
        self.pace(crate::pacing::GraphOp::Write).await;
        let token = match bearer {
            Some(t) => t.clone(),
            None => self.token(action).await?,
        };
        let reply = send_with(
            || {
                self.http
                    .request(method.clone(), url.clone())
                    .bearer_auth(token.expose())
                    .json(body)
            },
            self.max_retries,
            action,
            mode,
        )
        .await?;
        if reply.status.is_success() {
            return Ok(());
        }
        Err(graph_error(
            reply.status,
            &reply.body,
            action,
            Need::Write,
            Some(&app.to_string()),
        ))
    }

    /// `addKey` with a proof-of-possession JWT: adds `key_credential` (type, usage, key,
    /// displayName, dates). `bearer`: a token to call with instead of rotor's own (the
    /// application's, which may roll its own keys).
    pub async fn add_key(
        &self,
        app: &Application,
        key_credential: serde_json::Value,
        proof: &str,
        bearer: Option<&SecretValue>,
    ) -> Result<()> {
        let action = format!("adding a key credential to {app} (addKey)");
        let url = self.url(&format!("/v1.0/applications/{}/addKey", app.object_id))?;
        let body = serde_json::json!({
            "keyCredential": key_credential,
            "passwordCredential": null,
            "proof": proof,
        });
        self.write(
            url,
            reqwest::Method::POST,
            &body,
            &action,
            bearer,
            Retry::NotIdempotent,
            app,
        )
        .await
    }

    /// `removeKey` with a proof-of-possession JWT. A key that is already gone counts as removed.
    pub async fn remove_key(
        &self,
        app: &Application,
        key_id: &str,
        proof: &str,
        bearer: Option<&SecretValue>,
    ) -> Result<()> {
        let action = format!("removing key credential {key_id} from {app} (removeKey)");
        let url = self.url(&format!("/v1.0/applications/{}/removeKey", app.object_id))?;
        let body = serde_json::json!({"keyId": key_id, "proof": proof});
        match self
            .write(
                url,
                reqwest::Method::POST,
                &body,
                &action,
                bearer,
                Retry::Idempotent,
                app,
            )
            .await
        {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// `PATCH /applications/{id}` with the whole `keyCredentials` collection (`entries`, each
    /// sent exactly as given). Graph replaces the collection: every entry to keep must be in it.
    pub async fn patch_key_credentials(
        &self,
        app: &Application,
        entries: &[serde_json::Map<String, serde_json::Value>],
    ) -> Result<()> {
        let action = format!("updating the key credentials of {app} (PATCH)");
        let url = self.url(&format!("/v1.0/applications/{}", app.object_id))?;
        let body = serde_json::json!({"keyCredentials": entries});
        self.write(
            url,
            reqwest::Method::PATCH,
            &body,
            &action,
            None,
            Retry::Idempotent,
            app,
        )
        .await
    }
}
