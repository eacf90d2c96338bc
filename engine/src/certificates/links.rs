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

/// Groups the certificate matches of a [`crate::model::MatchReport`] (key credential ↔ Key
/// Vault certificate by thumbprint; `secret_name` is the certificate name) into certificate
/// links, one per (application, lineage). Matches below the minimum, excluded or rejected are
/// left out, and a lineage with an excluded certificate forms no link. Matching sees only each
/// certificate's current version: [`crate::Engine::certificate_links`] also finds links whose
/// certificate Key Vault renewed on its own.
pub fn links_from_matches(
    report: &crate::model::MatchReport,
    apps: &[Application],
    policy: &Policy,
) -> Vec<CertificateLink> {
    use crate::model::CredentialKind;
    let lineage_of = |m: &crate::model::Match| {
        apps.iter()
            .find(|a| a.app_id == m.app_id)
            .and_then(|a| {
                a.key_credentials
                    .iter()
                    .find(|k| k.key_id.eq_ignore_ascii_case(&m.key_id))
            })
            .map(|k| k.lineage_name().to_owned())
            .unwrap_or_else(|| {
                let n = m.credential_display_name.clone().unwrap_or_default();
                match n.rfind(" rotor:") {
                    Some(i) => n[..i].to_owned(),
                    None => n,
                }
            })
    };
    let certs = report
        .matches
        .iter()
        .filter(|m| m.kind == CredentialKind::Certificate);
    let excluded: BTreeSet<(String, String)> = certs
        .clone()
        .filter(|m| m.excluded.is_some())
        .map(|m| (m.app_id.clone(), lineage_of(m)))
        .collect();
    let mut groups: BTreeMap<(String, String), BTreeSet<CertificateTarget>> = BTreeMap::new();
    for m in certs {
        if m.confidence < policy.min_confidence || m.excluded.is_some() || m.rejected.is_some() {
            continue;
        }
        let key = (m.app_id.clone(), lineage_of(m));
        if excluded.contains(&key) {
            continue;
        }
        groups
            .entry(key)
            .or_default()
            .insert(CertificateTarget::new(
                m.vault_url.clone(),
                m.secret_name.clone(),
            ));
    }
    groups
        .into_iter()
        .map(
            |((application_id, credential_display_name), certificates)| CertificateLink {
                application_id,
                credential_display_name,
                certificates,
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Confidence, CredentialKind, KeyCredential, Match, MatchReport, Signal};
    use time::macros::datetime;

    fn app() -> Application {
        Application {
            object_id: "o".into(),
            app_id: "a".into(),
            display_name: "A".into(),
            sign_in_audience: None,
            password_credentials: Vec::new(),
            key_credentials: vec![KeyCredential {
                key_id: "k1".into(),
                display_name: Some("main rotor:r1".into()),
                thumbprint: Some("AA".into()),
                kind: None,
                usage: None,
                start: datetime!(2026-01-01 0:00 UTC),
                end: datetime!(2027-01-01 0:00 UTC),
            }],
        }
    }

    fn m(kind: CredentialKind, key: &str, name: &str, vault: &str) -> Match {
        Match {
            kind,
            app_id: "a".into(),
            app_name: "A".into(),
            key_id: key.into(),
            credential_display_name: Some("main rotor:r1".into()),
            vault: vault.into(),
            vault_url: Url::parse(&format!("https://{vault}.vault.azure.net/")).expect("url"),
            secret_name: name.into(),
            secret_version: None,
            confidence: Confidence::High,
            signals: vec![Signal::Thumbprint],
            hint_mismatch: false,
            excluded: None,
            rejected: None,
        }
    }

    #[test]
    fn certificate_matches_form_certificate_links() {
        let report = MatchReport {
            matches: vec![
                m(CredentialKind::Certificate, "k1", "app-cert", "kv-a"),
                m(CredentialKind::Certificate, "k1", "app-cert", "kv-b"),
                m(CredentialKind::Secret, "p1", "app-secret", "kv-a"),
            ],
            ..MatchReport::default()
        };
        let links = links_from_matches(&report, &[app()], &Policy::default());
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!(links[0].credential_display_name, "main");
        assert_eq!(
            links[0].certificates.len(),
            2,
            "one link, both certificates"
        );
        // an excluded certificate keeps the whole lineage out
        let mut x = m(CredentialKind::Certificate, "k1", "app-cert", "kv-b");
        x.excluded = Some("secret:app-cert".into());
        let report = MatchReport {
            matches: vec![m(CredentialKind::Certificate, "k1", "app-cert", "kv-a"), x],
            ..MatchReport::default()
        };
        assert!(links_from_matches(&report, &[app()], &Policy::default()).is_empty());
    }
}
