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

/// The client of `vault_url` in `clients`, made by `make` (given the normalised URL) the first
/// time.
fn once_per_vault<C>(
    clients: &Mutex<HashMap<String, Arc<C>>>,
    vault_url: &Url,
    action: &str,
    make: impl FnOnce(&str) -> azure_core::Result<C>,
) -> Result<Arc<C>> {
    let key = normalize_vault_url(vault_url).to_string();
    let mut m = clients.lock();
    if let Some(c) = m.get(&key) {
        return Ok(c.clone());
    }
    let c = Arc::new(make(&key).map_err(|e| Error::config(action.to_owned(), e.to_string()))?);
    m.insert(key, c.clone());
    Ok(c)
}

/// Access to many vaults.
pub struct KeyVaults {
    endpoints: Endpoints,
    http: reqwest::Client,
    credential: Arc<dyn TokenCredential>,
    clients: Mutex<HashMap<String, VaultClient>>,
    /// Certificate and key clients per vault, kept like the secret clients: a new client
    /// answers Key Vault's authentication challenge again (one 401 round trip per client).
    certificate_clients:
        Mutex<HashMap<String, Arc<azure_security_keyvault_certificates::CertificateClient>>>,
    key_clients: Mutex<HashMap<String, Arc<azure_security_keyvault_keys::KeyClient>>>,
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
            certificate_clients: Mutex::new(HashMap::new()),
            key_clients: Mutex::new(HashMap::new()),
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
        use azure_security_keyvault_certificates::models::CertificateClientListCertificatePropertiesOptions;
        let (_, sem) = self.client(vault_url)?;
        let _permit = sem
            .acquire()
            .await
            .map_err(|e| Error::other("waiting for a vault slot", e.to_string()))?;
        let _slot = crate::http::permit().await;
        let vault = self.vault_name(vault_url);
        let action = format!("listing certificates in vault `{vault}`");
        let client = self.certificate_client(vault_url, &action)?;
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

/// One version of a Key Vault certificate: public material and metadata only (the private key
/// stays in Key Vault; rotor never reads the backing secret).
#[derive(Clone)]
pub struct CertificateVersion {
    /// Certificate name.
    pub name: String,
    /// Version id.
    pub version: String,
    /// SHA-1 thumbprint (`x5t`), upper-case hex.
    pub thumbprint: String,
    /// The public certificate (DER, `cer`).
    pub cer: Vec<u8>,
    /// `nbf` (the certificate's NotBefore).
    pub not_before: Option<OffsetDateTime>,
    /// `exp` (the certificate's NotAfter).
    pub expires: Option<OffsetDateTime>,
    /// Enabled.
    pub enabled: bool,
    /// Created.
    pub created: Option<OffsetDateTime>,
    /// The policy, when the response carried it (the latest version's read does).
    pub policy: Option<azure_security_keyvault_certificates::models::CertificatePolicy>,
}

impl fmt::Debug for CertificateVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateVersion")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("thumbprint", &self.thumbprint)
            .field("not_before", &self.not_before)
            .field("expires", &self.expires)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl CertificateVersion {
    /// The key type of the policy (`RSA`, `RSA-HSM`, `EC`, …), when known.
    pub fn key_type(&self) -> Option<String> {
        use azure_security_keyvault_certificates::models::KeyType;
        let k = self
            .policy
            .as_ref()?
            .key_properties
            .as_ref()?
            .key_type
            .as_ref()?;
        Some(
            match k {
                KeyType::Rsa => "RSA",
                KeyType::RsaHsm => "RSA-HSM",
                KeyType::Ec => "EC",
                KeyType::EcHsm => "EC-HSM",
                KeyType::Oct => "oct",
                KeyType::OctHsm => "oct-HSM",
                KeyType::UnknownValue(s) => s.as_str(),
            }
            .to_owned(),
        )
    }

    /// The policy's `validity_months`.
    pub fn validity_months(&self) -> Option<i32> {
        self.policy
            .as_ref()?
            .x509_certificate_properties
            .as_ref()?
            .validity_in_months
    }

    /// True when the policy renews the certificate itself (lifetime action `AutoRenew`).
    pub fn auto_renews(&self) -> bool {
        use azure_security_keyvault_certificates::models::CertificatePolicyAction;
        self.policy
            .as_ref()
            .and_then(|p| p.lifetime_actions.as_ref())
            .is_some_and(|a| {
                a.iter().any(|x| {
                    x.action
                        .as_ref()
                        .and_then(|t| t.action_type.as_ref())
                        .is_some_and(|t| *t == CertificatePolicyAction::AutoRenew)
                })
            })
    }
}

/// A certificate version as listed (no `cer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateVersionItem {
    /// Version id.
    pub version: String,
    /// SHA-1 thumbprint, upper-case hex.
    pub thumbprint: Option<String>,
    /// Enabled.
    pub enabled: bool,
    /// `nbf`.
    pub not_before: Option<OffsetDateTime>,
    /// `exp`.
    pub expires: Option<OffsetDateTime>,
    /// Created.
    pub created: Option<OffsetDateTime>,
}

/// The state of a certificate's pending operation (`GET /certificates/{name}/pending`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateOperationState {
    /// `inProgress`, `completed`, `failed`, `cancelled`, …
    pub status: String,
    /// The operation's error message, when it failed.
    pub error: Option<String>,
}

impl CertificateOperationState {
    /// True while Key Vault is still making the version.
    pub fn in_progress(&self) -> bool {
        self.status.eq_ignore_ascii_case("inProgress")
    }
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn version_of_cert_id(id: &str) -> Option<String> {
    let u = Url::parse(id).ok()?;
    let segs: Vec<&str> = u.path_segments()?.filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [.., "certificates", _name, version] => Some((*version).to_owned()),
        _ => None,
    }
}

fn version_from_model(
    t: &crate::model::CertificateTarget,
    c: azure_security_keyvault_certificates::models::Certificate,
    action: &str,
) -> Result<CertificateVersion> {
    let cer = c.cer.clone().unwrap_or_default();
    if cer.is_empty() {
        return Err(Error::other(
            action.to_owned(),
            "the response carried no certificate (`cer`)",
        ));
    }
    let thumbprint = {
        use sha1::Digest;
        hex_upper(&sha1::Sha1::digest(&cer))
    };
    let a = c.attributes.clone().unwrap_or_default();
    let version =
        c.id.as_deref()
            .and_then(version_of_cert_id)
            .ok_or_else(|| Error::other(action.to_owned(), "the response carried no version id"))?;
    Ok(CertificateVersion {
        name: t.certificate_name.clone(),
        version,
        thumbprint,
        cer,
        not_before: a.not_before,
        expires: a.expires,
        enabled: a.enabled.unwrap_or(true),
        created: a.created,
        policy: c.policy,
    })
}

impl KeyVaults {
    /// The vault's certificate client (made once per vault).
    fn certificate_client(
        &self,
        vault_url: &Url,
        action: &str,
    ) -> Result<Arc<azure_security_keyvault_certificates::CertificateClient>> {
        use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
        once_per_vault(&self.certificate_clients, vault_url, action, |url| {
            CertificateClient::new(
                url,
                self.credential.clone(),
                Some(CertificateClientOptions {
                    client_options: self.sdk_options(),
                    verify_challenge_resource: Some(self.endpoints.verify_challenge),
                    ..Default::default()
                }),
            )
        })
    }

    /// The vault's key client (made once per vault).
    fn key_client(
        &self,
        vault_url: &Url,
        action: &str,
    ) -> Result<Arc<azure_security_keyvault_keys::KeyClient>> {
        use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
        once_per_vault(&self.key_clients, vault_url, action, |url| {
            KeyClient::new(
                url,
                self.credential.clone(),
                Some(KeyClientOptions {
                    client_options: self.sdk_options(),
                    verify_challenge_resource: Some(self.endpoints.verify_challenge),
                    ..Default::default()
                }),
            )
        })
    }

    async fn slot(&self, vault_url: &Url) -> Result<tokio::sync::OwnedSemaphorePermit> {
        let (_, sem) = self.client(vault_url)?;
        sem.acquire_owned()
            .await
            .map_err(|e| Error::other("waiting for a vault slot", e.to_string()))
    }

    /// "Key Vault certificate `x` (vault `kv-prod`)" with the friendly vault name.
    pub fn certificate_label(&self, t: &crate::model::CertificateTarget) -> String {
        format!(
            "Key Vault certificate `{}` (vault `{}`)",
            t.certificate_name,
            self.vault_name(&t.vault_url)
        )
    }

    /// A certificate's version (the latest completed one when `version` is `None`) with its
    /// public DER, dates and (for the latest) policy. `Ok(None)` when it does not exist.
    pub async fn get_certificate(
        &self,
        t: &crate::model::CertificateTarget,
        version: Option<&str>,
    ) -> Result<Option<CertificateVersion>> {
        use azure_security_keyvault_certificates::models::CertificateClientGetCertificateOptions;
        let _permit = self.slot(&t.vault_url).await?;
        let _slot = crate::http::permit().await;
        let vault = self.vault_name(&t.vault_url);
        let action = format!("reading {}", self.certificate_label(t));
        let client = self.certificate_client(&t.vault_url, &action)?;
        let r = client
            .get_certificate(
                &t.certificate_name,
                Some(CertificateClientGetCertificateOptions {
                    certificate_version: version.map(str::to_owned),
                    ..Default::default()
                }),
            )
            .await;
        let c = match r {
            Ok(rsp) => rsp
                .into_model()
                .map_err(|e| Error::other(action.clone(), format!("unexpected response: {e}")))?,
            Err(e) => {
                let err = kv_error(&action, &e, &vault, None, Access::ReadCertificate);
                if err.kind() == ErrorKind::NotFound {
                    return Ok(None);
                }
                return Err(err);
            }
        };
        version_from_model(t, c, &action).map(Some)
    }

    /// Every version of a certificate (metadata and thumbprints; completed versions only).
    pub async fn list_certificate_versions(
        &self,
        t: &crate::model::CertificateTarget,
    ) -> Result<Vec<CertificateVersionItem>> {
        use azure_security_keyvault_certificates::models::CertificateClientListCertificatePropertiesVersionsOptions;
        let _permit = self.slot(&t.vault_url).await?;
        let _slot = crate::http::permit().await;
        let vault = self.vault_name(&t.vault_url);
        let action = format!("listing the versions of {}", self.certificate_label(t));
        let client = self.certificate_client(&t.vault_url, &action)?;
        let mut pager = client
            .list_certificate_properties_versions(
                &t.certificate_name,
                Some(CertificateClientListCertificatePropertiesVersionsOptions {
                    maxresults: Some(25),
                    ..Default::default()
                }),
            )
            .map_err(|e| kv_error(&action, &e, &vault, None, Access::ReadCertificate))?;
        let mut out = Vec::new();
        loop {
            let next = match pager.try_next().await {
                Ok(n) => n,
                Err(e) => {
                    let err = kv_error(&action, &e, &vault, None, Access::ReadCertificate);
                    if err.kind() == ErrorKind::NotFound {
                        return Ok(out);
                    }
                    return Err(err);
                }
            };
            let Some(p) = next else { break };
            let Some(version) = p.id.as_deref().and_then(version_of_cert_id) else {
                continue;
            };
            let a = p.attributes.unwrap_or_default();
            out.push(CertificateVersionItem {
                version,
                thumbprint: p.x509_thumbprint.as_deref().map(hex_upper),
                enabled: a.enabled.unwrap_or(true),
                not_before: a.not_before,
                expires: a.expires,
                created: a.created,
            });
        }
        Ok(out)
    }

    /// The certificate's pending operation; `Ok(None)` when there is none.
    pub async fn certificate_operation(
        &self,
        t: &crate::model::CertificateTarget,
    ) -> Result<Option<CertificateOperationState>> {
        let _permit = self.slot(&t.vault_url).await?;
        let _slot = crate::http::permit().await;
        let vault = self.vault_name(&t.vault_url);
        let action = format!(
            "reading the pending operation of {}",
            self.certificate_label(t)
        );
        let client = self.certificate_client(&t.vault_url, &action)?;
        match client
            .get_certificate_operation(&t.certificate_name, None)
            .await
        {
            Ok(rsp) => {
                let op = rsp.into_model().map_err(|e| {
                    Error::other(action.clone(), format!("unexpected response: {e}"))
                })?;
                Ok(Some(CertificateOperationState {
                    status: op.status.unwrap_or_default(),
                    error: op.error.and_then(|e| e.message.or(e.code)),
                }))
            }
            Err(e) => {
                let err = kv_error(&action, &e, &vault, None, Access::ReadCertificate);
                if err.kind() == ErrorKind::NotFound {
                    return Ok(None);
                }
                Err(err)
            }
        }
    }

    /// Starts a new version of the certificate from `policy` (its own, as read) and waits until
    /// Key Vault completes it (`begin_create_certificate`, polled by the SDK, at most `timeout`).
    /// Returns the new version, as the poller's final read of the certificate returned it.
    pub async fn create_certificate_version(
        &self,
        t: &crate::model::CertificateTarget,
        policy: azure_security_keyvault_certificates::models::CertificatePolicy,
        timeout: std::time::Duration,
    ) -> Result<CertificateVersion> {
        use azure_security_keyvault_certificates::models::CreateCertificateParameters;
        let permit = self.slot(&t.vault_url).await?;
        let vault = self.vault_name(&t.vault_url);
        let action = format!("creating a new version of {}", self.certificate_label(t));
        // Not retried: a create Key Vault applied but answered badly would make a second
        // version. The next run finds whatever was made (docs/protocol.md, "Resuming").
        let client = {
            use azure_security_keyvault_certificates::{
                CertificateClient, CertificateClientOptions,
            };
            let mut client_options = self.sdk_options();
            client_options.retry = azure_core::http::RetryOptions::none();
            CertificateClient::new(
                normalize_vault_url(&t.vault_url).as_str(),
                self.credential.clone(),
                Some(CertificateClientOptions {
                    client_options,
                    verify_challenge_resource: Some(self.endpoints.verify_challenge),
                    ..Default::default()
                }),
            )
            .map_err(|e| Error::config(action.clone(), e.to_string()))?
        };
        let params = CreateCertificateParameters {
            certificate_policy: Some(policy),
            ..Default::default()
        };
        let content = params
            .try_into()
            .map_err(|e: azure_core::Error| Error::other(action.clone(), e.to_string()))?;
        let poller = client
            .begin_create_certificate(&t.certificate_name, content, None)
            .map_err(|e| kv_error(&action, &e, &vault, None, Access::CreateCertificate))?;
        drop(permit);
        let done = tokio::time::timeout(timeout, poller)
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Network,
                    action.clone(),
                    format!(
                        "Key Vault did not complete the new version within {} s",
                        timeout.as_secs()
                    ),
                )
                .with_hint("the operation goes on in Key Vault; the next run finds the new version and adds it to the application")
            })?
            .map_err(|e| kv_error(&action, &e, &vault, None, Access::CreateCertificate))?
            .into_model()
            .map_err(|e| Error::other(action.clone(), format!("unexpected response: {e}")))?;
        version_from_model(t, done, &action)
    }

    /// Signs a SHA-256 `digest` with RS256 by the key of certificate version `version`
    /// (`POST /keys/{name}/{version}/sign`); the key never leaves Key Vault.
    pub async fn sign_rs256(
        &self,
        t: &crate::model::CertificateTarget,
        version: &str,
        digest: &[u8],
    ) -> Result<Vec<u8>> {
        use azure_security_keyvault_keys::models::{
            KeyClientSignOptions, SignParameters, SignatureAlgorithm,
        };
        let _permit = self.slot(&t.vault_url).await?;
        let _slot = crate::http::permit().await;
        let vault = self.vault_name(&t.vault_url);
        let action = format!(
            "signing with the key of {} (version {version})",
            self.certificate_label(t)
        );
        let client = self.key_client(&t.vault_url, &action)?;
        let params = SignParameters {
            algorithm: Some(SignatureAlgorithm::Rs256),
            value: Some(digest.to_vec()),
        };
        let content = params
            .try_into()
            .map_err(|e: azure_core::Error| Error::other(action.clone(), e.to_string()))?;
        let r = client
            .sign(
                &t.certificate_name,
                content,
                Some(KeyClientSignOptions {
                    key_version: Some(version.to_owned()),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| kv_error(&action, &e, &vault, None, Access::Sign))?
            .into_model()
            .map_err(|e| Error::other(action.clone(), format!("unexpected response: {e}")))?;
        r.result
            .ok_or_else(|| Error::other(action, "the response carried no signature"))
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
    /// Reading a certificate, its versions and its pending operation: `Key Vault Certificate
    /// User` (or `Key Vault Reader`).
    ReadCertificate,
    /// Creating a certificate version: `Key Vault Certificates Officer`.
    CreateCertificate,
    /// Signing with a certificate's key (`keys/sign`): `Key Vault Crypto User`.
    Sign,
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
            Access::ReadCertificate => (
                "`Key Vault Certificate User` (or `Key Vault Reader`)",
                "reading certificates",
                "certificate permissions get and list",
            ),
            Access::CreateCertificate => (
                "`Key Vault Certificates Officer`",
                "creating a certificate version from its policy",
                "certificate permissions get, list and create",
            ),
            Access::Sign => (
                "`Key Vault Crypto User`",
                "signing with the certificate's key (proofs and client assertions; the key never leaves Key Vault)",
                "key permissions get and sign",
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
                    let policy = if matches!(
                        access,
                        Access::ListCertificates
                            | Access::ReadCertificate
                            | Access::CreateCertificate
                            | Access::Sign
                    ) {
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
        // the sign-in, as for Graph: an outage is not blamed on the credential
        K::Credential => crate::graph::token_error(action, e),
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
