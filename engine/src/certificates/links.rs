//! Finding certificate links: every Key Vault certificate whose current version — or, when the
//! application lacks it (AutoRenew), one of its older versions — is a key credential of an
//! application, grouped per (application, lineage).

use crate::engine::Engine;
use crate::error::Result;
use crate::model::{Application, CertificateLink, CertificateTarget};
use crate::policy::Policy;
use std::collections::{BTreeMap, BTreeSet};
use url::Url;

/// Links of `apps` to the certificates in `vaults`. A lineage with an excluded certificate (or
/// excluded by application / lineage) forms no link.
pub(crate) async fn find(
    e: &Engine,
    apps: &[Application],
    vaults: &[Url],
    policy: &Policy,
) -> Result<Vec<CertificateLink>> {
    // thumbprint → (app index, lineage name)
    let mut by_tp: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for (i, a) in apps.iter().enumerate() {
        for k in &a.key_credentials {
            if let Some(tp) = &k.thumbprint {
                by_tp
                    .entry(tp.to_ascii_uppercase())
                    .or_default()
                    .push((i, k.lineage_name().to_owned()));
            }
        }
    }
    let mut groups: BTreeMap<(usize, String), BTreeSet<CertificateTarget>> = BTreeMap::new();
    let mut excluded: BTreeSet<(usize, String)> = BTreeSet::new();
    e.inner.widen_scope(vaults);
    for v in vaults {
        let items = match e.inner.vaults.list_certificates(v).await {
            Ok(x) => x,
            Err(err) if vaults.len() > 1 => {
                tracing::warn!("{err}");
                continue;
            }
            Err(err) => return Err(err),
        };
        for it in items {
            let t = CertificateTarget::new(v.clone(), it.name.clone());
            let mut hits: Vec<(usize, String)> = it
                .thumbprint
                .as_deref()
                .and_then(|tp| by_tp.get(&tp.to_ascii_uppercase()))
                .cloned()
                .unwrap_or_default();
            if hits.is_empty() && !by_tp.is_empty() {
                // the current version is on no application: an older one may be (AutoRenew)
                match e.inner.vaults.list_certificate_versions(&t).await {
                    Ok(vs) => {
                        for ver in vs {
                            if let Some(h) = ver
                                .thumbprint
                                .as_deref()
                                .and_then(|tp| by_tp.get(&tp.to_ascii_uppercase()))
                            {
                                hits.extend(h.iter().cloned());
                            }
                        }
                    }
                    Err(err) => tracing::warn!("{err}"),
                }
            }
            hits.sort();
            hits.dedup();
            for (i, lineage) in hits {
                let a = &apps[i];
                if policy
                    .excluded(&a.app_id, &a.display_name, Some(&lineage), Some(&it.name))
                    .is_some()
                {
                    excluded.insert((i, lineage.clone()));
                }
                groups.entry((i, lineage)).or_default().insert(t.clone());
            }
        }
    }
    Ok(groups
        .into_iter()
        .filter(|(k, _)| !excluded.contains(k))
        .map(|((i, lineage), certificates)| CertificateLink {
            application_id: apps[i].app_id.clone(),
            credential_display_name: lineage,
            certificates,
        })
        .collect())
}
