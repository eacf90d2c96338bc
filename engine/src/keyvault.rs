//! Key Vault secrets through the official SDK (`azure_security_keyvault_secrets`), one cached
//! `SecretClient` per vault, sharing rotor's HTTP client as transport; per-vault concurrency limit.

use crate::endpoints::{Endpoints, normalize_vault_url};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Target;
use crate::secret::SecretValue;
use azure_core::credentials::TokenCredential;
use azure_security_keyvault_secrets::models::{
    SecretAttributes, SecretClientGetSecretOptions, SecretClientListSecretPropertiesOptions,
    SecretClientUpdateSecretPropertiesOptions, SetSecretParameters,
    UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use futures::TryStreamExt;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use url::Url;

/// A secret as listed (no value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretItem {
    /// Secret name.
    pub name: String,
    /// Enabled.
    pub enabled: bool,
    /// `exp`.
    pub expires: Option<OffsetDateTime>,
    /// `created` of the current version.
    pub created: Option<OffsetDateTime>,
    /// `updated` of the current version.
    pub updated: Option<OffsetDateTime>,
    /// Content type.
    pub content_type: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// True for secrets backing a certificate.
    pub managed: bool,
}

/// A certificate as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateItem {
    /// Certificate name.
    pub name: String,
    /// SHA-1 thumbprint (`x5t`), upper-case hex.
    pub thumbprint: Option<String>,
    /// Expiry.
    pub expires: Option<OffsetDateTime>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// One secret version, with its value (redacted in Debug).
#[derive(Clone)]
pub struct SecretVersion {
    /// Secret name.
    pub name: String,
    /// Version id.
    pub version: String,
    /// The value.
    pub value: SecretValue,
    /// Content type.
    pub content_type: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// `exp`.
    pub expires: Option<OffsetDateTime>,
    /// Enabled.
    pub enabled: bool,
    /// Created.
    pub created: Option<OffsetDateTime>,
    /// Updated.
    pub updated: Option<OffsetDateTime>,
}

impl fmt::Debug for SecretVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretVersion")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("value", &self.value)
            .field("content_type", &self.content_type)
            .field("tags", &self.tags)
            .field("expires", &self.expires)
            .field("enabled", &self.enabled)
            .finish()
    }
}

type VaultClient = (Arc<SecretClient>, Arc<Semaphore>);

/// Access to many vaults.
pub struct KeyVaults {
    endpoints: Endpoints,
    http: reqwest::Client,
    credential: Arc<dyn TokenCredential>,
    clients: Mutex<HashMap<String, VaultClient>>,
    names: Mutex<BTreeMap<String, String>>,
    subscriptions: Mutex<BTreeMap<String, String>>,
    per_vault: usize,
    max_retries: u32,
    pacer: Option<Arc<crate::pacing::Pacer>>,
}

impl fmt::Debug for KeyVaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVaults").finish_non_exhaustive()
    }
}

/// Version id from a secret id `https://host/secrets/{name}/{version}`.
pub fn version_from_id(id: &str) -> Option<String> {
    let u = Url::parse(id).ok()?;
    let segs: Vec<&str> = u.path_segments()?.filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [.., "secrets", _name, version] => Some((*version).to_owned()),
        _ => None,
    }
}

/// Secret name from an id `https://host/secrets/{name}[/{version}]`.
pub fn name_from_id(id: &str) -> Option<String> {
    let u = Url::parse(id).ok()?;
    let segs: Vec<&str> = u.path_segments()?.filter(|s| !s.is_empty()).collect();
    let i = segs.iter().position(|s| *s == "secrets")?;
    segs.get(i + 1).map(|s| (*s).to_owned())
}

fn tags(t: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    t.map(|m| m.into_iter().collect()).unwrap_or_default()
}

impl KeyVaults {
    /// Vault access with `per_vault` requests in flight per vault.
    pub fn new(
        endpoints: &Endpoints,
        http: reqwest::Client,
        credential: Arc<dyn TokenCredential>,
        per_vault: usize,
        max_retries: u32,
    ) -> KeyVaults {
        KeyVaults {
            endpoints: endpoints.clone(),
            http,
            credential,
            clients: Mutex::new(HashMap::new()),
            names: Mutex::new(endpoints.vault_names.clone()),
            subscriptions: Mutex::new(BTreeMap::new()),
            per_vault: per_vault.max(1),
            max_retries,
            pacer: None,
        }
    }

    /// Paces every Key Vault request through `pacer`'s per-vault budgets ([`crate::pacing`]).
    pub fn with_pacer(mut self, pacer: Arc<crate::pacing::Pacer>) -> KeyVaults {
        self.pacer = Some(pacer);
        self
    }

    /// The vault's display name (friendly name if known).
    pub fn vault_name(&self, vault_url: &Url) -> String {
        if let Some(n) = self
            .names
            .lock()
            .get(normalize_vault_url(vault_url).as_str())
        {
            return n.clone();
        }
        self.endpoints.vault_name(vault_url)
    }

    /// Remembers the subscription of a vault (learned from ARM).
    pub fn learn_subscription(&self, vault_url: &Url, subscription: &str) {
        self.subscriptions.lock().insert(
            normalize_vault_url(vault_url).to_string(),
            subscription.to_owned(),
        );
    }

    /// The vault's subscription, when ARM listed it.
    pub fn subscription_of(&self, vault_url: &Url) -> Option<String> {
        self.subscriptions
            .lock()
            .get(normalize_vault_url(vault_url).as_str())
            .cloned()
    }

    /// Remembers a friendly name for a vault URL (learned from ARM).
    pub fn learn_name(&self, vault_url: &Url, name: &str) {
        self.names
            .lock()
            .insert(normalize_vault_url(vault_url).to_string(), name.to_owned());
    }

    /// "Key Vault secret `x` (vault `kv-prod`)" with the friendly vault name.
    pub fn label(&self, t: &Target) -> String {
        format!(
            "Key Vault secret `{}` (vault `{}`)",
            t.secret_name,
            self.vault_name(&t.vault_url)
        )
    }

    /// SDK client options: the shared transport and `max_retries` exponential retries.
    fn sdk_options(&self) -> azure_core::http::ClientOptions {
        let mut client_options = crate::http::client_options(&self.http, &self.endpoints);
        if let Some(pacer) = &self.pacer {
            client_options.transport = Some(azure_core::http::Transport::new(Arc::new(
                crate::pacing::PacedTransport {
                    inner: crate::http::raw_transport(&self.http, self.endpoints.loopback_only),
                    pacer: pacer.clone(),
                },
            )));
        }
        client_options.retry = azure_core::http::RetryOptions::exponential(
            azure_core::http::ExponentialRetryOptions {
                max_retries: self.max_retries,
                ..Default::default()
            },
        );
        client_options
    }

    fn client(&self, vault_url: &Url) -> Result<VaultClient> {
        let key = normalize_vault_url(vault_url).to_string();
        let mut m = self.clients.lock();
        if let Some(c) = m.get(&key) {
            return Ok(c.clone());
        }
        let client_options = self.sdk_options();
        let opts = SecretClientOptions {
            client_options,
            verify_challenge_resource: Some(self.endpoints.verify_challenge),
            ..Default::default()
        };
        let c = SecretClient::new(&key, self.credential.clone(), Some(opts)).map_err(|e| {
            Error::config(
                format!("opening vault `{}`", self.vault_name(vault_url)),
                e.to_string(),
            )
        })?;
        let entry = (Arc::new(c), Arc::new(Semaphore::new(self.per_vault)));
        m.insert(key, entry.clone());
        Ok(entry)
    }

    /// Every secret in the vault (all pages, 25 per page), without values.
    pub async fn list_secrets(&self, vault_url: &Url) -> Result<Vec<SecretItem>> {
        let (client, sem) = self.client(vault_url)?;
        let _permit = sem
            .acquire()
            .await
            .map_err(|e| Error::other("waiting for a vault slot", e.to_string()))?;
        let _slot = crate::http::permit().await;
        let vault = self.vault_name(vault_url);
        let action = format!("listing secrets in vault `{vault}`");
        let mut pager = client
            .list_secret_properties(Some(SecretClientListSecretPropertiesOptions {
                maxresults: Some(25),
                ..Default::default()
            }))
            .map_err(|e| kv_error(&action, &e, &vault, None, Access::ListSecrets))?;
        let mut out = Vec::new();
        while let Some(p) = pager
            .try_next()
            .await
            .map_err(|e| kv_error(&action, &e, &vault, None, Access::ListSecrets))?
        {
            let Some(name) = p.id.as_deref().and_then(name_from_id) else {
                continue;
            };
            let a = p.attributes.unwrap_or_default();
            out.push(SecretItem {
                name,
                enabled: a.enabled.unwrap_or(true),
                expires: a.expires,
                created: a.created,
                updated: a.updated,
                content_type: p.content_type,
                tags: tags(p.tags),
                managed: p.managed.unwrap_or(false),
            });
        }
        Ok(out)
    }

    /// Every certificate in the vault (all pages), with thumbprints.
    pub async fn list_certificates(&self, vault_url: &Url) -> Result<Vec<CertificateItem>> {
        use azure_security_keyvault_certificates::{
            CertificateClient, CertificateClientOptions,
            models::CertificateClientListCertificatePropertiesOptions,
        };
        let (_, sem) = self.client(vault_url)?;
        let _permit = sem
            .acquire()
            .await
            .map_err(|e| Error::other("waiting for a vault slot", e.to_string()))?;
        let _slot = crate::http::permit().await;
        let vault = self.vault_name(vault_url);
        let action = format!("listing certificates in vault `{vault}`");
        let client_options = self.sdk_options();
        let client = CertificateClient::new(
            normalize_vault_url(vault_url).as_str(),
            self.credential.clone(),
            Some(CertificateClientOptions {
                client_options,
                verify_challenge_resource: Some(self.endpoints.verify_challenge),
                ..Default::default()
            }),
        )
        .map_err(|e| Error::config(action.clone(), e.to_string()))?;
        let mut pager = client
            .list_certificate_properties(Some(CertificateClientListCertificatePropertiesOptions {
                maxresults: Some(25),
                ..Default::default()
            }))
            .map_err(|e| kv_error(&action, &e, &vault, None, Access::ListCertificates))?;
        let mut out = Vec::new();
        while let Some(p) = pager
            .try_next()
            .await
            .map_err(|e| kv_error(&action, &e, &vault, None, Access::ListCertificates))?
        {
            let Some(name) = p.id.as_deref().and_then(|id| {
                let u = Url::parse(id).ok()?;
                let segs: Vec<String> = u.path_segments()?.map(str::to_owned).collect();
                let i = segs.iter().position(|s| s == "certificates")?;
                segs.get(i + 1).cloned()
            }) else {
                continue;
            };
            out.push(CertificateItem {
                name,
                thumbprint: p
                    .x509_thumbprint
                    .as_ref()
                    .map(|b| b.iter().map(|x| format!("{x:02X}")).collect()),
                expires: p.attributes.as_ref().and_then(|a| a.expires),
                tags: tags(p.tags),
            });
        }
        Ok(out)
    }

    /// A secret's version (latest when `version` is `None`), with its value. `Ok(None)` when the
    /// secret does not exist. `Err(SoftDeleted)` when it exists only as a deleted secret (checked
    /// only when `check_deleted`).
    pub async fn get_secret(
        &self,
        target: &Target,
        version: Option<&str>,
        check_deleted: bool,
    ) -> Result<Option<SecretVersion>> {
        let (client, sem) = self.client(&target.vault_url)?;
        let _permit = sem
            .acquire()
            .await
            .map_err(|e| Error::other("waiting for a vault slot", e.to_string()))?;
        let _slot = crate::http::permit().await;
        let vault = self.vault_name(&target.vault_url);
        let action = format!("reading {}", self.label(target));
        let r = client
            .get_secret(
                &target.secret_name,
                Some(SecretClientGetSecretOptions {
                    secret_version: version.map(str::to_owned),
                    ..Default::default()
                }),
            )
            .await;
        let mut s = match r {
            Ok(rsp) => rsp
                .into_model()
                .map_err(|e| Error::other(action.clone(), format!("unexpected response: {e}")))?,
            Err(e) => {
                let err = kv_error(
                    &action,
                    &e,
                    &vault,
                    Some(&target.secret_name),
                    Access::ReadSecret,
                );
                if err.kind() == ErrorKind::NotFound {
                    if check_deleted && self.is_deleted(&client, target).await {
                        return Err(soft_deleted(&action, &vault, &target.secret_name));
                    }
                    return Ok(None);
                }
                return Err(err);
            }
        };
        // Moved, not cloned: the SDK model's copy of the value is not zeroized.
        let value = SecretValue::new(s.value.take().unwrap_or_default());
        let a: SecretAttributes = s.attributes.take().unwrap_or_default();
        let version =
            s.id.as_deref().and_then(version_from_id).ok_or_else(|| {
                Error::other(action.clone(), "the response carried no version id")
            })?;
        Ok(Some(SecretVersion {
            name: target.secret_name.clone(),
            version,
            value,
            content_type: s.content_type.take(),
            tags: tags(s.tags.take()),
            expires: a.expires,
            enabled: a.enabled.unwrap_or(true),
            created: a.created,
            updated: a.updated,
        }))
    }

    async fn is_deleted(&self, client: &SecretClient, target: &Target) -> bool {
        client
            .get_deleted_secret(&target.secret_name, None)
            .await
            .is_ok()
    }

    /// Proves write access to `target` without changing it: updates the properties of its current
    /// version `current` with exactly the values just read (`PATCH /secrets/{name}/{version}`,
    /// which needs the same permission as setting a secret: RBAC `secrets/*` or access-policy
    /// `set`). Only the version's `updated` time changes; no new version is created.
    pub async fn probe_write(&self, target: &Target, current: &SecretVersion) -> Result<()> {
        let (client, sem) = self.client(&target.vault_url)?;
        let _permit = sem
            .acquire()
            .await
            .map_err(|e| Error::other("waiting for a vault slot", e.to_string()))?;
        let _slot = crate::http::permit().await;
        let vault = self.vault_name(&target.vault_url);
        let action = format!("checking write access to {}", self.label(target));
        let params = UpdateSecretPropertiesParameters {
            content_type: current.content_type.clone(),
            secret_attributes: Some(SecretAttributes {
                enabled: Some(current.enabled),
                expires: current.expires,
                ..Default::default()
            }),
            tags: Some(
                current
                    .tags
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        };
        let content = params
            .try_into()
            .map_err(|e: azure_core::Error| Error::other(action.clone(), e.to_string()))?;
        client
            .update_secret_properties(
                &target.secret_name,
                content,
                Some(SecretClientUpdateSecretPropertiesOptions {
                    secret_version: Some(current.version.clone()),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| {
                kv_error(
                    &action,
                    &e,
                    &vault,
                    Some(&target.secret_name),
                    Access::WriteSecret,
                )
            })?;
        Ok(())
    }

    /// Writes a new version; returns its version id.
    pub async fn set_secret(
        &self,
        target: &Target,
        value: &SecretValue,
        content_type: Option<String>,
        tags: BTreeMap<String, String>,
        expires: Option<OffsetDateTime>,
    ) -> Result<String> {
        let (client, sem) = self.client(&target.vault_url)?;
        let _permit = sem
            .acquire()
            .await
            .map_err(|e| Error::other("waiting for a vault slot", e.to_string()))?;
        let _slot = crate::http::permit().await;
        let vault = self.vault_name(&target.vault_url);
        let action = format!("writing {}", self.label(target));
        let params = SetSecretParameters {
            content_type,
            secret_attributes: Some(SecretAttributes {
                enabled: Some(true),
                expires,
                ..Default::default()
            }),
            tags: Some(tags.into_iter().collect()),
            value: Some(value.expose().to_owned()),
        };
        let content = params
            .try_into()
            .map_err(|e: azure_core::Error| Error::other(action.clone(), e.to_string()))?;
        let s = client
            .set_secret(&target.secret_name, content, None)
            .await
            .map_err(|e| {
                kv_error(
                    &action,
                    &e,
                    &vault,
                    Some(&target.secret_name),
                    Access::WriteSecret,
                )
            })?
            .into_model()
            .map_err(|e| Error::other(action.clone(), format!("unexpected response: {e}")))?;
        s.id.as_deref()
            .and_then(version_from_id)
            .ok_or_else(|| Error::other(action, "the response carried no version id"))
    }
}

fn soft_deleted(action: &str, vault: &str, secret: &str) -> Error {
    Error::new(
        ErrorKind::SoftDeleted,
        action,
        "the secret is deleted but recoverable (soft-deleted); Key Vault refuses new versions",
    )
    .with_hint(format!(
        "recover it: az keyvault secret recover --vault-name {vault} --name {secret}"
    ))
    .with_hint(format!(
        "or, if it is no longer wanted, purge it (az keyvault secret purge --vault-name {vault} --name {secret}) and let rotor create it"
    ))
    .with_status(Some(409), Some("ObjectIsDeletedButRecoverable".to_owned()))
}

/// What a Key Vault request needed, for the role a 401/403 hint names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Listing secrets (metadata): any secrets role (`Key Vault Secrets User` and up) or
    /// `Key Vault Reader`.
    ListSecrets,
    /// Reading a secret's value: `Key Vault Secrets User` (or `Key Vault Secrets Officer`).
    ReadSecret,
    /// Setting a secret or its properties: `Key Vault Secrets Officer`.
    WriteSecret,
    /// Listing certificates: `Key Vault Certificate User` (or `Key Vault Reader`).
    ListCertificates,
}

impl Access {
    /// (RBAC role, what it is needed for, access-policy permissions).
    fn needs(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Access::ListSecrets | Access::ReadSecret => (
                "`Key Vault Secrets User` (or `Key Vault Secrets Officer`)",
                "reading and listing secrets",
                "get and list",
            ),
            Access::WriteSecret => (
                "`Key Vault Secrets Officer`",
                "writing secrets",
                "get, list and set",
            ),
            Access::ListCertificates => (
                "`Key Vault Certificate User` (or `Key Vault Reader`)",
                "listing certificates",
                "certificate permissions get and list",
            ),
        }
    }
}

/// Maps an SDK error to an engine error naming the vault/secret and the fix; a 401/403 names the
/// role that `access` needs.
pub(crate) fn kv_error(
    action: &str,
    e: &azure_core::Error,
    vault: &str,
    secret: Option<&str>,
    access: Access,
) -> Error {
    use azure_core::error::ErrorKind as K;
    if let Some(ep) = crate::http::endpoint_error(e) {
        // the vault (or the token endpoint behind the SDK's credential) could not be reached
        return ep.to_error(action);
    }
    match e.kind() {
        K::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let status_u: u16 = (*status).into();
            let (code, inner, msg) = raw_response
                .as_ref()
                .map(|r| crate::http::error_details(r.body().as_ref()))
                .unwrap_or((error_code.clone(), None, None));
            let code = code.or_else(|| error_code.clone());
            let sc = reqwest::StatusCode::from_u16(status_u)
                .unwrap_or(reqwest::StatusCode::INTERNAL_SERVER_ERROR);
            let cause = crate::http::describe(sc, code.as_deref(), msg.as_deref());
            let all = format!(
                "{} {} {}",
                code.clone().unwrap_or_default(),
                inner.clone().unwrap_or_default(),
                msg.clone().unwrap_or_default()
            );
            let err = match status_u {
                401 | 403 => {
                    let scope = match secret {
                        Some(s) => format!(" (or on the secret `{s}` in vault `{vault}`)"),
                        None => String::new(),
                    };
                    let (role, what, policy) = access.needs();
                    let policy = if access == Access::ListCertificates {
                        policy.to_owned()
                    } else {
                        format!("secret permissions {policy}")
                    };
                    Error::new(ErrorKind::Permission, action, cause)
                        .with_hint(format!("grant rotor's identity the role {role} on vault `{vault}`{scope}: {what} needs it"))
                        .with_hint(format!("vaults using access policies instead of RBAC need {policy}"))
                }
                409 if all.contains("ObjectIsDeletedButRecoverable")
                    || all.to_ascii_lowercase().contains("deleted but recoverable") =>
                {
                    soft_deleted(action, vault, secret.unwrap_or("<name>"))
                }
                404 => Error::new(ErrorKind::NotFound, action, cause),
                429 | 503 => Error::new(ErrorKind::Throttled, action, cause).with_hint(
                    "Key Vault is throttling; retry later or lower policy.max_concurrent",
                ),
                409 => Error::new(ErrorKind::Conflict, action, cause),
                _ => Error::new(ErrorKind::Other, action, cause),
            };
            err.with_status(Some(status_u), inner.or(code))
        }
        K::Connection | K::Io => Error::new(ErrorKind::Network, action, first_line(e)).with_hint(
            format!("check network access to vault `{vault}`; for a private CA set SSL_CERT_FILE"),
        ),
        K::Credential => Error::new(
            ErrorKind::Permission,
            action,
            format!("getting an access token: {}", first_line(e)),
        )
        .with_hint("check AZURE_TENANT_ID, AZURE_CLIENT_ID and the credential of rotor's identity"),
        _ => Error::new(ErrorKind::Other, action, first_line(e)),
    }
}

fn first_line(e: &azure_core::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s.lines().next().unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(
            version_from_id("https://127.0.0.1:1/secrets/a-b/0123abc").as_deref(),
            Some("0123abc")
        );
        assert_eq!(
            name_from_id("https://kv.vault.azure.net/secrets/a-b").as_deref(),
            Some("a-b")
        );
        assert_eq!(
            version_from_id("https://kv.vault.azure.net/secrets/a-b"),
            None
        );
    }
}
