//! Reading a certificate link's state from Azure (the application's key credentials, each
//! certificate's current version, versions and pending operation, and the current thumbprints
//! of every certificate in scope), and the pure facts derived from it.

use crate::engine::Engine;
use crate::error::Result;
use crate::graph::KeyCredentialSet;
use crate::keyvault::{CertificateOperationState, CertificateVersion, CertificateVersionItem};
use crate::model::{Application, CertificateLink, CertificateTarget, KeyCredential};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// One certificate of the link as Key Vault shows it.
#[derive(Debug, Clone)]
pub(crate) struct CertTargetState {
    pub target: CertificateTarget,
    /// The newest completed version; `None` when the certificate does not exist.
    pub current: Option<CertificateVersion>,
    /// Every completed version.
    pub versions: Vec<CertificateVersionItem>,
    /// The pending operation, if any.
    pub operation: Option<CertificateOperationState>,
}

impl CertTargetState {
    /// True while Key Vault is making a new version.
    pub fn in_progress(&self) -> bool {
        self.operation.as_ref().is_some_and(|o| o.in_progress())
    }
}

/// Everything the protocol decides from.
#[derive(Debug, Clone)]
pub(crate) struct CertState {
    pub app: Application,
    /// The key credentials exactly as Graph returned them (with `key`).
    pub keys: KeyCredentialSet,
    /// Every key credential, parsed.
    pub all: Vec<KeyCredential>,
    /// The lineage's key credentials, oldest start first.
    pub lineage: Vec<KeyCredential>,
    pub certs: Vec<CertTargetState>,
    /// Thumbprint → the certificate in scope (outside the link) whose current version it is.
    pub held_elsewhere: BTreeMap<String, String>,
    /// False when a vault in scope could not be listed (then cleanup removes nothing).
    pub scope_complete: bool,
}

pub(crate) fn parse_key(e: &serde_json::Map<String, serde_json::Value>) -> KeyCredential {
    let t = |name: &str, d: OffsetDateTime| {
        e.get(name)
            .and_then(|v| v.as_str())
            .and_then(|s| {
                OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
            })
            .unwrap_or(d)
    };
    let s = |name: &str| e.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    KeyCredential {
        key_id: s("keyId").unwrap_or_default().to_ascii_lowercase(),
        display_name: s("displayName"),
        thumbprint: KeyCredentialSet::thumbprint(e),
        kind: s("type"),
        usage: s("usage"),
        start: t("startDateTime", OffsetDateTime::UNIX_EPOCH),
        end: t(
            "endDateTime",
            OffsetDateTime::UNIX_EPOCH + time::Duration::days(365 * 400),
        ),
    }
}

impl CertState {
    /// The key credential (any) whose thumbprint is `tp`.
    pub fn key_with_thumbprint(&self, tp: &str) -> Option<&KeyCredential> {
        self.all.iter().find(|k| {
            k.thumbprint
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(tp))
        })
    }

    /// The lineage credential holding the first certificate's current version (the generating
    /// one), else the lineage credential holding any certificate's current version.
    pub fn current(&self) -> Option<&KeyCredential> {
        self.certs.iter().find_map(|c| {
            let tp = &c.current.as_ref()?.thumbprint;
            self.lineage.iter().find(|k| {
                k.thumbprint
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case(tp))
            })
        })
    }

    /// Certificates whose current version is on no key credential of the application.
    pub fn missing(&self) -> Vec<usize> {
        self.certs
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.current
                    .as_ref()
                    .is_some_and(|v| self.key_with_thumbprint(&v.thumbprint).is_none())
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// A key usable to sign an addKey/removeKey proof: a key credential valid at `now` whose
    /// thumbprint is an enabled, unexpired version of one of the link's certificates.
    /// (certificate index, version id, thumbprint).
    pub fn signer(&self, now: OffsetDateTime) -> Option<(usize, String, String)> {
        self.signer_except(now, None)
    }

    /// [`CertState::signer`] other than the key credential with thumbprint `except`.
    pub fn signer_except(
        &self,
        now: OffsetDateTime,
        except: Option<&str>,
    ) -> Option<(usize, String, String)> {
        for k in &self.all {
            let Some(tp) = k.thumbprint.as_deref() else {
                continue;
            };
            if except.is_some_and(|x| x.eq_ignore_ascii_case(tp)) {
                continue;
            }
            if !(k.start <= now && now < k.end) {
                continue;
            }
            for (i, c) in self.certs.iter().enumerate() {
                if let Some(v) = c.versions.iter().find(|v| {
                    v.enabled
                        && v.expires.is_none_or(|x| x > now)
                        && v.thumbprint
                            .as_deref()
                            .is_some_and(|t| t.eq_ignore_ascii_case(tp))
                }) {
                    return Some((i, v.version.clone(), tp.to_owned()));
                }
            }
        }
        None
    }
}

/// Reads the link's state. `scan`: also list every certificate in scope (for cleanup).
pub(crate) async fn read(
    e: &Engine,
    link: &CertificateLink,
    app: Application,
    scan: bool,
) -> Result<CertState> {
    let inner = &e.inner;
    let keys = inner.graph.get_key_credentials(&app).await?;
    let all: Vec<KeyCredential> = keys.entries.iter().map(parse_key).collect();
    let mut lineage: Vec<KeyCredential> = all
        .iter()
        .filter(|k| k.in_lineage(&link.credential_display_name))
        .cloned()
        .collect();
    lineage.sort_by_key(|k| k.start);
    let mut certs = Vec::new();
    for t in &link.certificates {
        let current = inner.vaults.get_certificate(t, None).await?;
        let versions = if current.is_some() {
            inner.vaults.list_certificate_versions(t).await?
        } else {
            Vec::new()
        };
        let operation = inner.vaults.certificate_operation(t).await?;
        certs.push(CertTargetState {
            target: t.clone(),
            current,
            versions,
            operation,
        });
    }
    let mut held_elsewhere = BTreeMap::new();
    let mut scope_complete = true;
    if scan {
        let mut vaults: Vec<url::Url> = inner.scope_vaults.lock().clone();
        for t in &link.certificates {
            vaults.push(t.vault_url.clone());
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in vaults {
            let v = crate::endpoints::normalize_vault_url(&v);
            if !seen.insert(v.to_string()) {
                continue;
            }
            match inner.vaults.list_certificates(&v).await {
                Ok(items) => {
                    for it in items {
                        let ct = CertificateTarget::new(v.clone(), it.name.clone());
                        if link.certificates.contains(&ct) {
                            continue;
                        }
                        if let Some(tp) = it.thumbprint {
                            held_elsewhere.insert(tp, inner.vaults.certificate_label(&ct));
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!("{err}");
                    scope_complete = false;
                }
            }
        }
    }
    Ok(CertState {
        app,
        keys,
        all,
        lineage,
        certs,
        held_elsewhere,
        scope_complete,
    })
}
