//! The emulator's in-memory state, built from a [`Fixture`] and changed by the API handlers.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::fixture::{FederatedCredential, Fixture, TimeSpec};
use crate::util;

/// Years of Graph's default password lifetime.
pub const DEFAULT_PASSWORD_YEARS: i64 = 2;

#[derive(Clone)]
pub struct Principal {
    pub client_id: String,
    pub client_secret: String,
    pub display_name: String,
    pub object_id: String,
    pub graph_roles: Vec<String>,
    /// vault name (lowercase) or "*" → role names
    pub vault_roles: BTreeMap<String, Vec<String>>,
    pub subscription_roles: Option<BTreeMap<String, String>>,
    pub federated_credentials: Vec<FederatedCredential>,
    /// DER certificates accepted for certificate client assertions.
    pub certificates: Vec<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub name: String,
}

#[derive(Clone)]
pub struct Password {
    pub key_id: String,
    pub display_name: Option<String>,
    pub secret_text: String,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// The password authenticates only from this instant (Entra's replication delay).
    pub usable_after: OffsetDateTime,
    /// Graph reads show the password only from this instant (eventual consistency).
    pub readable_after: std::time::Instant,
}

impl Password {
    pub fn hint(&self) -> String {
        self.secret_text.chars().take(3).collect()
    }
}

#[derive(Debug, Clone)]
pub struct KeyCred {
    pub key_id: String,
    pub display_name: Option<String>,
    pub key_type: String,
    pub usage: String,
    /// SHA-1 thumbprint bytes of the certificate.
    pub thumbprint: Vec<u8>,
    /// DER of the certificate, when known.
    pub key_der: Option<Vec<u8>>,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// Graph reads show the key credential only from this instant (eventual consistency).
    pub readable_after: std::time::Instant,
}

#[derive(Debug, Clone)]
pub struct App {
    pub object_id: String,
    pub app_id: String,
    pub display_name: String,
    pub sign_in_audience: String,
    pub service_principal: bool,
    pub sp_object_id: String,
    pub owners: Vec<String>,
    pub created: OffsetDateTime,
    pub passwords: Vec<Password>,
    pub keys: Vec<KeyCred>,
    /// `tokenEncryptionKeyId` (a keyId of `keys`, or none).
    pub token_encryption_key_id: Option<String>,
}

impl App {
    /// Apps that accept personal Microsoft accounts are capped at 2 passwords.
    pub fn password_cap(&self) -> Option<usize> {
        match self.sign_in_audience.as_str() {
            "AzureADandPersonalMicrosoftAccount" | "PersonalMicrosoftAccount" => Some(2),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct SecretVersion {
    pub version: String,
    pub value: String,
    pub content_type: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
    /// Set for secrets backing a certificate (`kid`, `managed: true`).
    pub kid: Option<String>,
    /// A certificate's backing secret exists only once its operation completes.
    pub visible_at: Option<std::time::Instant>,
    /// A certificate's backing secret: the certificate version before this one
    /// (`previousVersion`, Key Vault 2025-07-01).
    pub previous_version: Option<String>,
}

impl SecretVersion {
    pub fn visible(&self) -> bool {
        self.visible_at
            .is_none_or(|t| t <= std::time::Instant::now())
    }
}

#[derive(Debug, Clone)]
pub struct Deleted {
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
    /// Until then the deletion is in progress: not yet listed among deleted secrets, and
    /// writes, recover and purge answer 409 `ObjectIsBeingDeleted`.
    pub settles_at: std::time::Instant,
}

impl Deleted {
    pub fn settled(&self) -> bool {
        self.settles_at <= std::time::Instant::now()
    }
}

#[derive(Debug, Clone)]
pub struct SecretEntry {
    pub name: String,
    pub versions: Vec<SecretVersion>,
    pub deleted: Option<Deleted>,
    /// Recovered, but still not found until then.
    pub recovering_until: Option<std::time::Instant>,
}

impl SecretEntry {
    /// Recovered but not yet readable.
    pub fn recovering(&self) -> bool {
        self.recovering_until
            .is_some_and(|t| t > std::time::Instant::now())
    }

    pub fn latest(&self) -> Option<&SecretVersion> {
        self.versions.iter().rev().find(|x| x.visible())
    }
}

/// A private key (PKCS#8 DER). Debug never prints it.
#[derive(Clone)]
pub struct PrivateKey(pub Vec<u8>);

impl PrivateKey {
    pub fn der(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey([redacted])")
    }
}

#[derive(Debug, Clone)]
pub struct CertVersion {
    pub version: String,
    pub der: Vec<u8>,
    /// The certificate's key: the Key Vault key `keys/{name}/{version}`.
    pub key: PrivateKey,
    pub policy: Value,
    pub enabled: bool,
    pub nbf: i64,
    pub exp: i64,
    pub created: i64,
    pub updated: i64,
    pub tags: BTreeMap<String, String>,
    pub subject: String,
    /// The pending operation completes (the version becomes visible) at this instant.
    pub ready_at: std::time::Instant,
    /// Base64 DER of the certificate signing request (the pending operation's `csr`).
    pub csr: String,
}

impl CertVersion {
    pub fn ready(&self) -> bool {
        self.ready_at <= std::time::Instant::now()
    }
}

#[derive(Debug, Clone)]
pub struct CertEntry {
    pub name: String,
    pub versions: Vec<CertVersion>,
    pub pending_request_id: String,
}

#[derive(Debug, Clone)]
pub struct Vault {
    pub name: String,
    /// `https://127.0.0.1:PORT/`
    pub url: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    /// lowercase name → entry
    pub secrets: BTreeMap<String, SecretEntry>,
    /// lowercase name → entry
    pub certificates: BTreeMap<String, CertEntry>,
    /// lowercase name → until when a purge of it is still in progress
    pub purging: HashMap<String, std::time::Instant>,
}

// Debug never prints secret values.
impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("client_id", &self.client_id)
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Password")
            .field("key_id", &self.key_id)
            .field("display_name", &self.display_name)
            .field("start", &self.start)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SecretVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretVersion")
            .field("version", &self.version)
            .field("tags", &self.tags)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// Everything that changes.
#[derive(Debug)]
pub struct Store {
    pub tenant_id: String,
    pub propagation_delay: std::time::Duration,
    /// The emulator's explicit choices where Azure is nondeterministic.
    pub fidelity: crate::fidelity::Fidelity,
    /// App management policy: longest password lifetime `addPassword` accepts.
    pub max_password_lifetime_days: Option<u32>,
    pub principals: Vec<Principal>,
    pub subscriptions: Vec<Subscription>,
    pub apps: Vec<App>,
    pub app_by_object_id: HashMap<String, usize>,
    pub app_by_app_id: HashMap<String, usize>,
    pub vaults: Vec<Vault>,
}

impl Store {
    /// Build the store; `vault_urls[i]` is the URL of `fixture.vaults[i]`.
    pub fn from_fixture(
        fixture: &Fixture,
        vault_urls: &[String],
        propagation_delay: std::time::Duration,
    ) -> anyhow::Result<Store> {
        let now = util::now();
        let r = |t: &Option<TimeSpec>, default: OffsetDateTime| {
            t.map(|t| util::secs(t.resolve(now))).unwrap_or(default)
        };
        let principals = fixture
            .principals
            .iter()
            .map(|p| -> anyhow::Result<Principal> {
                Ok(Principal {
                client_id: p.client_id.clone().unwrap_or_else(util::guid),
                client_secret: p
                    .client_secret
                    .clone()
                    .unwrap_or_else(util::entra_secret_text),
                display_name: p.display_name.clone(),
                object_id: p.object_id.clone().unwrap_or_else(util::guid),
                graph_roles: p.graph_roles.clone(),
                vault_roles: p
                    .vault_roles
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.names()))
                    .collect(),
                subscription_roles: p.subscription_roles.clone(),
                federated_credentials: p.federated_credentials.clone(),
                certificates: p
                    .certificates
                    .iter()
                    .map(|c| {
                        util::b64_decode_any(c.trim()).ok_or_else(|| {
                            anyhow::anyhow!(
                                "principal `{}`: `certificates` entries must be base64 DER certificates",
                                p.display_name
                            )
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?,
            })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let subscriptions: Vec<Subscription> = fixture
            .subscriptions
            .iter()
            .map(|s| Subscription {
                id: s.id.clone().unwrap_or_else(util::guid),
                name: s.name.clone(),
            })
            .collect();
        let mut apps = Vec::with_capacity(fixture.applications.len());
        for a in &fixture.applications {
            let created = r(&a.created, now - time::Duration::days(400));
            let passwords = a
                .password_credentials
                .iter()
                .map(|p| {
                    let start = r(&p.start, created);
                    let end = r(
                        &p.end,
                        start + time::Duration::days(365 * DEFAULT_PASSWORD_YEARS),
                    );
                    Password {
                        key_id: p.key_id.clone().unwrap_or_else(util::guid),
                        display_name: p.display_name.clone(),
                        secret_text: p
                            .secret_text
                            .clone()
                            .unwrap_or_else(util::entra_secret_text),
                        start,
                        end,
                        usable_after: OffsetDateTime::UNIX_EPOCH,
                        readable_after: std::time::Instant::now(),
                    }
                })
                .collect();
            let mut keys = Vec::new();
            for k in &a.key_credentials {
                let der = match &k.key {
                    Some(b64) => Some(util::b64_decode_any(b64).ok_or_else(|| {
                        anyhow::anyhow!(
                            "application `{}`: key credential `key` is not base64",
                            a.display_name
                        )
                    })?),
                    None => None,
                };
                let validity = der.as_deref().and_then(crate::graph::cert_validity);
                let thumbprint = match (&k.thumbprint, &der) {
                    (Some(t), _) => util::unhex(t).unwrap_or_default(),
                    (None, Some(d)) => util::sha1(d).to_vec(),
                    (None, None) => util::sha1(util::guid().as_bytes()).to_vec(),
                };
                let start = r(&k.start, validity.map(|v| v.0).unwrap_or(created));
                let end = r(
                    &k.end,
                    validity
                        .map(|v| v.1)
                        .unwrap_or(start + time::Duration::days(365)),
                );
                keys.push(KeyCred {
                    key_id: k.key_id.clone().unwrap_or_else(util::guid),
                    display_name: k.display_name.clone(),
                    key_type: k
                        .key_type
                        .clone()
                        .unwrap_or_else(|| "AsymmetricX509Cert".into()),
                    usage: k.usage.clone().unwrap_or_else(|| "Verify".into()),
                    thumbprint,
                    key_der: der,
                    start,
                    end,
                    readable_after: std::time::Instant::now(),
                });
            }
            apps.push(App {
                object_id: a.object_id.clone().unwrap_or_else(util::guid),
                app_id: a.app_id.clone().unwrap_or_else(util::guid),
                display_name: a.display_name.clone(),
                sign_in_audience: a
                    .sign_in_audience
                    .clone()
                    .unwrap_or_else(|| "AzureADMyOrg".into()),
                service_principal: a.service_principal.unwrap_or(true),
                sp_object_id: util::guid(),
                owners: a.owners.clone(),
                created,
                passwords,
                keys,
                token_encryption_key_id: a.token_encryption_key_id.clone(),
            });
        }
        let mut vaults = Vec::new();
        for (i, v) in fixture.vaults.iter().enumerate() {
            let url = vault_urls
                .get(i)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no listener for vault `{}`", v.name))?;
            let subscription_id = match &v.subscription_id {
                Some(s) => subscriptions
                    .iter()
                    .find(|x| &x.id == s || &x.name == s)
                    .map(|x| x.id.clone())
                    .unwrap_or_else(|| s.clone()),
                None => subscriptions
                    .first()
                    .map(|x| x.id.clone())
                    .unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".into()),
            };
            let mut secrets = BTreeMap::new();
            for s in &v.secrets {
                let mut versions = Vec::new();
                if s.versions.is_empty() {
                    let created = r(&s.created, now - time::Duration::days(30)).unix_timestamp();
                    versions.push(SecretVersion {
                        version: util::hex32(),
                        value: s.value.clone().unwrap_or_else(util::entra_secret_text),
                        content_type: s.content_type.clone(),
                        tags: s.tags.clone(),
                        enabled: s.enabled.unwrap_or(true),
                        nbf: s.not_before.map(|t| t.resolve(now).unix_timestamp()),
                        exp: s.expires.map(|t| t.resolve(now).unix_timestamp()),
                        created,
                        updated: created,
                        kid: None,
                        visible_at: None,
                        previous_version: None,
                    });
                } else {
                    let n = s.versions.len() as i64;
                    for (j, fv) in s.versions.iter().enumerate() {
                        let created =
                            r(&fv.created, now - time::Duration::days(30 * (n - j as i64)))
                                .unix_timestamp();
                        versions.push(SecretVersion {
                            version: fv.version.clone().unwrap_or_else(util::hex32),
                            value: fv.value.clone().unwrap_or_else(util::entra_secret_text),
                            content_type: fv.content_type.clone(),
                            tags: fv.tags.clone(),
                            enabled: fv.enabled.unwrap_or(true),
                            nbf: fv.not_before.map(|t| t.resolve(now).unix_timestamp()),
                            exp: fv.expires.map(|t| t.resolve(now).unix_timestamp()),
                            created,
                            updated: created,
                            kid: None,
                            visible_at: None,
                            previous_version: None,
                        });
                    }
                }
                let deleted = s.deleted.then(|| Deleted {
                    deleted_date: now.unix_timestamp() - 3600,
                    scheduled_purge_date: now.unix_timestamp() - 3600 + 90 * 86_400,
                    settles_at: std::time::Instant::now(),
                });
                secrets.insert(
                    s.name.to_ascii_lowercase(),
                    SecretEntry {
                        name: s.name.clone(),
                        versions,
                        deleted,
                        recovering_until: None,
                    },
                );
            }
            vaults.push(Vault {
                name: v.name.clone(),
                url,
                subscription_id,
                resource_group: v
                    .resource_group
                    .clone()
                    .unwrap_or_else(|| format!("rg-{}", v.name)),
                location: v.location.clone().unwrap_or_else(|| "westeurope".into()),
                secrets,
                certificates: BTreeMap::new(),
                purging: HashMap::new(),
            });
        }
        let mut store = Store {
            tenant_id: fixture.tenant_id.clone().unwrap_or_else(util::guid),
            propagation_delay,
            fidelity: fixture.fidelity.clone().unwrap_or_default(),
            max_password_lifetime_days: fixture.max_password_lifetime_days,
            principals,
            subscriptions,
            apps,
            app_by_object_id: HashMap::new(),
            app_by_app_id: HashMap::new(),
            vaults,
        };
        store.reindex();
        Ok(store)
    }

    pub fn reindex(&mut self) {
        self.app_by_object_id.clear();
        self.app_by_app_id.clear();
        for (i, a) in self.apps.iter().enumerate() {
            self.app_by_object_id
                .insert(a.object_id.to_ascii_lowercase(), i);
            self.app_by_app_id.insert(a.app_id.to_ascii_lowercase(), i);
        }
    }

    pub fn app_index_by_object_id(&self, id: &str) -> Option<usize> {
        self.app_by_object_id.get(&id.to_ascii_lowercase()).copied()
    }

    pub fn app_index_by_app_id(&self, id: &str) -> Option<usize> {
        self.app_by_app_id.get(&id.to_ascii_lowercase()).copied()
    }

    /// Age the tenant by `secs` seconds: every stored time (application creation, credential
    /// start/end and propagation, secret created/updated/nbf/exp, deletion dates) moves into the
    /// past, as if that much time had passed. Certificates are left alone (their DER carries its
    /// own validity). Tokens are unaffected.
    ///
    /// Refused, changing nothing, when a stored time would leave the representable range.
    pub fn age(&mut self, secs: i64) -> Result<(), String> {
        let d = time::Duration::seconds(secs);
        let dt_ok = |t: OffsetDateTime| t.checked_sub(d).is_some();
        let ts_ok = |t: i64| t.checked_sub(secs).is_some();
        let apps_ok = self.apps.iter().all(|a| {
            dt_ok(a.created)
                && a.passwords
                    .iter()
                    .all(|p| dt_ok(p.start) && dt_ok(p.end) && dt_ok(p.usable_after))
                && a.keys.iter().all(|k| dt_ok(k.start) && dt_ok(k.end))
        });
        let vaults_ok =
            self.vaults
                .iter()
                .flat_map(|v| v.secrets.values())
                .all(|e| {
                    e.versions.iter().all(|x| {
                        ts_ok(x.created)
                            && ts_ok(x.updated)
                            && x.nbf.is_none_or(ts_ok)
                            && x.exp.is_none_or(ts_ok)
                    }) && e.deleted.as_ref().is_none_or(|del| {
                        ts_ok(del.deleted_date) && ts_ok(del.scheduled_purge_date)
                    })
                });
        if !(apps_ok && vaults_ok) {
            return Err(format!(
                "aging by {secs} s would move a stored time out of the representable range"
            ));
        }
        for a in &mut self.apps {
            a.created -= d;
            for p in &mut a.passwords {
                p.start -= d;
                p.end -= d;
                if p.usable_after > OffsetDateTime::UNIX_EPOCH {
                    p.usable_after -= d;
                }
            }
            for k in &mut a.keys {
                k.start -= d;
                k.end -= d;
            }
        }
        for v in &mut self.vaults {
            for e in v.secrets.values_mut() {
                for x in &mut e.versions {
                    x.created -= secs;
                    x.updated -= secs;
                    x.nbf = x.nbf.map(|t| t - secs);
                    x.exp = x.exp.map(|t| t - secs);
                }
                if let Some(del) = &mut e.deleted {
                    del.deleted_date -= secs;
                    del.scheduled_purge_date -= secs;
                }
            }
        }
        Ok(())
    }

    /// `GET {admin}/state`: the fixture's shape with absolute times and every value.
    pub fn to_json(&self) -> Value {
        let t = util::rfc3339;
        let unix = |s: i64| {
            OffsetDateTime::from_unix_timestamp(s)
                .map(util::rfc3339)
                .unwrap_or_default()
        };
        json!({
            "tenant_id": self.tenant_id,
            "propagation_delay_ms": self.propagation_delay.as_millis() as u64,
            "fidelity": self.fidelity,
            "max_password_lifetime_days": self.max_password_lifetime_days,
            "principals": self.principals.iter().map(|p| json!({
                "client_id": p.client_id,
                "client_secret": p.client_secret,
                "display_name": p.display_name,
                "object_id": p.object_id,
                "graph_roles": p.graph_roles,
                "vault_roles": p.vault_roles,
                "subscription_roles": p.subscription_roles,
                "federated_credentials": p.federated_credentials,
                "certificates": p.certificates.iter().map(|c| util::b64(c)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "subscriptions": self.subscriptions.iter().map(|s| json!({"id": s.id, "name": s.name})).collect::<Vec<_>>(),
            "applications": self.apps.iter().map(|a| json!({
                "object_id": a.object_id,
                "app_id": a.app_id,
                "display_name": a.display_name,
                "sign_in_audience": a.sign_in_audience,
                "service_principal": a.service_principal,
                "owners": a.owners,
                "created": t(a.created),
                "password_credentials": a.passwords.iter().map(|p| json!({
                    "key_id": p.key_id,
                    "display_name": p.display_name,
                    "secret_text": p.secret_text,
                    "hint": p.hint(),
                    "start": t(p.start),
                    "end": t(p.end),
                })).collect::<Vec<_>>(),
                "key_credentials": a.keys.iter().map(|k| json!({
                    "key_id": k.key_id,
                    "display_name": k.display_name,
                    "type": k.key_type,
                    "usage": k.usage,
                    "thumbprint": util::hex_upper(&k.thumbprint),
                    "key": k.key_der.as_deref().map(util::b64),
                    "start": t(k.start),
                    "end": t(k.end),
                })).collect::<Vec<_>>(),
                "token_encryption_key_id": a.token_encryption_key_id,
            })).collect::<Vec<_>>(),
            "vaults": self.vaults.iter().map(|v| json!({
                "name": v.name,
                "url": v.url,
                "subscription_id": v.subscription_id,
                "resource_group": v.resource_group,
                "location": v.location,
                "secrets": v.secrets.values().map(|s| json!({
                    "name": s.name,
                    "deleted": s.deleted.is_some(),
                    "versions": s.versions.iter().map(|x| json!({
                        "version": x.version,
                        "value": x.value,
                        "content_type": x.content_type,
                        "tags": x.tags,
                        "expires": x.exp.map(unix),
                        "not_before": x.nbf.map(unix),
                        "enabled": x.enabled,
                        "created": unix(x.created),
                        "updated": unix(x.updated),
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "certificates": v.certificates.values().map(|c| json!({
                    "name": c.name,
                    "versions": c.versions.iter().map(|x| json!({
                        "version": x.version,
                        "subject": x.subject,
                        "x5t": util::b64url(&util::sha1(&x.der)),
                        "thumbprint": util::hex_upper(&util::sha1(&x.der)),
                        "enabled": x.enabled,
                        "not_before": unix(x.nbf),
                        "expires": unix(x.exp),
                        "created": unix(x.created),
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}
