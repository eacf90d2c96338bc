//! Finding links (not rotating them): grouping matches into links, `adopt` for one credential,
//! the due links of a configuration, and bulk rotation.

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Application, AuditRecord, Link, LinkStatus, RotateOptions, Target};
use crate::policy::Policy;
use crate::progress::Progress;
use crate::rotation::{inspect_link, rotate};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use url::Url;

pub(crate) async fn adopt(
    e: &Engine,
    app_id: &str,
    key_id: &str,
    vaults: &[Url],
    policy: &Policy,
) -> Result<Link> {
    let app = e.inner.fetch_app(app_id).await?;
    let Some(cred) = app.password(key_id).cloned() else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("adopting credential {key_id} of {app}"),
            "the application has no password credential with this keyId",
        )
        .with_hint("`rotor discover --filter <app>` lists the credentials and their key ids"));
    };
    let report = e
        .match_secrets(std::slice::from_ref(&app), vaults, policy)
        .await?;
    // The lineage is the unit: every secret that holds any credential of K's lineage belongs to
    // the link, so a re-run after a crash (targets already holding the new credential) finds the
    // same link as the first run.
    let lineage: Vec<&str> = app
        .lineage(cred.lineage_name())
        .iter()
        .map(|c| c.key_id.as_str())
        .collect();
    let mine: Vec<&crate::model::Match> = report
        .matches
        .iter()
        .filter(|m| {
            m.kind == crate::model::CredentialKind::Secret
                && lineage.iter().any(|k| m.key_id.eq_ignore_ascii_case(k))
        })
        .collect();
    let targets: BTreeSet<Target> = mine
        .iter()
        .filter(|m| {
            m.confidence >= policy.min_confidence && m.excluded.is_none() && m.rejected.is_none()
        })
        .map(|m| m.target())
        .collect();
    if targets.is_empty() {
        let mut err = Error::new(
            ErrorKind::NotFound,
            format!("adopting credential {} of {app}", cred.key_id),
            format!(
                "no Key Vault secret holds it with confidence {} or more",
                policy.min_confidence
            ),
        );
        for m in mine.iter().take(5) {
            let s: Vec<String> = m.signals.iter().map(|s| s.to_string()).collect();
            err = err.with_hint(match &m.rejected {
                Some(why) => format!(
                    "candidate rejected: Key Vault secret `{}` (vault `{}`): {why}",
                    m.secret_name, m.vault
                ),
                None => format!(
                    "candidate: Key Vault secret `{}` (vault `{}`): {} ({})",
                    m.secret_name,
                    m.vault,
                    m.confidence,
                    s.join(", ")
                ),
            });
        }
        err = err
            .with_hint("tag the secret with `rotor-key-id` = the keyId, or list the targets explicitly")
            .with_hint(format!(
                "see every candidate and its signals: rotor match --app {}",
                app.app_id
            ))
            .with_hint("raise the confidence: tags `app-id`/`app-name` on the Key Vault secret, a name like `{app-name}-client-secret`, its expiry set to the credential's end");
        // Lowering the minimum only helps for candidates of this application; one tagged for
        // another application (or matching on expiry alone) is never written at any level.
        if mine.iter().any(|m| {
            m.rejected.is_none()
                && m.excluded.is_none()
                && m.confidence > crate::model::Confidence::None
        }) {
            err = err.with_hint(format!(
                "or lower `min_confidence` (now {}) in the [policy] of rotor.toml after checking the match by hand",
                policy.min_confidence
            ));
        }
        return Err(err);
    }
    Ok(Link {
        application_id: app.app_id.clone(),
        credential_display_name: cred.lineage_name().to_owned(),
        targets,
    })
}

/// Groups matches at or above the minimum confidence (not excluded) into links, one per
/// (application, credential lineage). A lineage with any excluded copy yields no link.
/// Certificate matches ([`crate::CredentialKind::Certificate`]) are ignored: certificates are
/// matched but not rotated yet.
pub fn links_from_matches(
    report: &crate::model::MatchReport,
    apps: &[Application],
    policy: &Policy,
) -> Vec<Link> {
    // by appId, built once (the first of equal appIds, as a search from the start finds)
    let mut by_id: std::collections::HashMap<&str, &Application> =
        std::collections::HashMap::with_capacity(apps.len());
    for a in apps {
        by_id.entry(a.app_id.as_str()).or_insert(a);
    }
    let lineage_of = |m: &crate::model::Match| {
        by_id
            .get(m.app_id.as_str())
            .and_then(|a| a.password(&m.key_id))
            .map(|c| c.lineage_name().to_owned())
            .unwrap_or_else(|| m.credential_display_name.clone().unwrap_or_default())
    };
    // Certificates are matched but not rotated (yet): their matches form no link, and do not
    // count as an excluded copy of a client-secret lineage that happens to share their name.
    let secrets = report
        .matches
        .iter()
        .filter(|m| m.kind == crate::model::CredentialKind::Secret);
    // A lineage with an excluded copy is left alone entirely: rotating it (and later cleaning
    // up the old credential) would break the excluded secret.
    let excluded: BTreeSet<(String, String)> = secrets
        .clone()
        .filter(|m| m.excluded.is_some() && m.confidence >= policy.min_confidence)
        .map(|m| (m.app_id.clone(), lineage_of(m)))
        .collect();
    let mut groups: BTreeMap<(String, String), BTreeSet<Target>> = BTreeMap::new();
    for m in secrets {
        if m.confidence < policy.min_confidence || m.excluded.is_some() || m.rejected.is_some() {
            continue;
        }
        let lineage = lineage_of(m);
        if excluded.contains(&(m.app_id.clone(), lineage.clone())) {
            continue;
        }
        groups
            .entry((m.app_id.clone(), lineage))
            .or_default()
            .insert(m.target());
    }
    groups
        .into_iter()
        .map(|((app_id, name), targets)| Link {
            application_id: app_id,
            credential_display_name: name,
            targets,
        })
        .collect()
}

pub(crate) async fn links(e: &Engine, config: &Config) -> Result<Vec<Link>> {
    Ok(links_and_key_apps(e, config).await?.0)
}

/// [`links`], and the discovered applications that have key credentials (for certificate links
/// from the same discovery).
pub(crate) async fn links_and_key_apps(
    e: &Engine,
    config: &Config,
) -> Result<(Vec<Link>, Vec<Application>)> {
    let vaults = match e.resolve_vaults(config).await {
        Ok(v) => v,
        Err(err) => {
            // discovery's error first, as when it ran before the vaults were resolved
            e.discover(None).await?;
            return Err(err);
        }
    };
    let (apps, report) = e.discover_and_match(&vaults, &config.policy).await?;
    let links = links_from_matches(&report, &apps, &config.policy);
    // the applications the links go on with are memoised (inspection and rotation read them)
    let linked: BTreeSet<&str> = links.iter().map(|l| l.application_id.as_str()).collect();
    for a in apps.iter().filter(|a| linked.contains(a.app_id.as_str())) {
        e.inner.remember(a);
    }
    let key_apps = apps
        .into_iter()
        .filter(|a| !a.key_credentials.is_empty())
        .collect();
    Ok((links, key_apps))
}

pub(crate) async fn due_links(e: &Engine, config: &Config) -> Result<Vec<(Link, LinkStatus)>> {
    let links = links(e, config).await?;
    due_of(e, links, config).await
}

/// The links of `links` whose rotation is due, with their status (see [`due_links`]).
pub(crate) async fn due_of(
    e: &Engine,
    links: Vec<Link>,
    config: &Config,
) -> Result<Vec<(Link, LinkStatus)>> {
    let conc = config.policy.max_concurrent.max(1);
    let statuses = crate::http::with_limit(
        conc,
        futures::stream::iter(links)
            .map(|l| async move {
                let s = inspect_link(e, &l, &config.policy).await;
                (l, s)
            })
            .buffered(conc)
            .collect::<Vec<_>>(),
    )
    .await;
    let mut out = Vec::new();
    for (l, s) in statuses {
        match s {
            Ok(s) if s.rotation_due => out.push((l, s)),
            Ok(_) => {}
            // Per-link isolation: a link whose state cannot be read (a vault down, a missing
            // role) is still handed to the rotation, which fails it with its own record; every
            // other link proceeds.
            Err(err) => out.push((
                l,
                LinkStatus {
                    rotation_due: true,
                    due_reason: Some(format!("its state could not be read: {err}")),
                    ..LinkStatus::default()
                },
            )),
        }
    }
    Ok(out)
}

pub(crate) async fn rotate_many(
    e: &Engine,
    links: &[Link],
    policy: &Policy,
    opts: &RotateOptions,
    progress: &dyn Progress,
) -> Vec<AuditRecord> {
    // Futures built eagerly (lazy until polled) so this future stays `Send` (see `match_secrets`).
    // Unordered: the next link starts as soon as any rotation ends (an ordered buffer keeps a
    // finished rotation's slot until every earlier one has finished); records are put back in
    // input order.
    let each: Vec<_> = links
        .iter()
        .enumerate()
        .map(|(i, l)| async move { (i, rotate(e, l, policy, opts, progress).await) })
        .collect();
    // `max_concurrent` bounds rotations; each rotation bounds its own requests in flight (its
    // targets are written in parallel), the vault limit and pacing bound the rest.
    let mut records: Vec<(usize, AuditRecord)> = futures::stream::iter(each)
        .buffer_unordered(policy.max_concurrent.max(1))
        .collect()
        .await;
    records.sort_by_key(|(i, _)| *i);
    records.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Confidence, CredentialKind, Match, MatchReport, PasswordCredential, Signal,
    };
    use time::macros::datetime;

    const APP: &str = "b0000001-0000-4000-8000-000000000001";
    const SECRET: &str = "c0000001-0000-4000-8000-000000000101";
    const CERT: &str = "c0000001-0000-4000-8000-000000000901";

    fn app() -> Application {
        Application {
            object_id: "a0000001-0000-4000-8000-000000000001".into(),
            app_id: APP.into(),
            display_name: "MyApp".into(),
            sign_in_audience: None,
            password_credentials: vec![PasswordCredential {
                key_id: SECRET.into(),
                display_name: Some("main rotor:r1".into()),
                hint: Some("Abc".into()),
                start: datetime!(2026-01-01 0:00 UTC),
                end: datetime!(2027-01-01 0:00 UTC),
            }],
            key_credentials: Vec::new(),
        }
    }

    fn m(kind: CredentialKind, key_id: &str, name: &str, secret: &str) -> Match {
        Match {
            kind,
            app_id: APP.into(),
            app_name: "MyApp".into(),
            key_id: key_id.into(),
            credential_display_name: Some(name.into()),
            vault: "kv-prod".into(),
            vault_url: Url::parse("https://kv-prod.vault.azure.net/").expect("url"),
            secret_name: secret.into(),
            secret_version: None,
            confidence: Confidence::High,
            signals: vec![Signal::TagKeyId],
            hint_mismatch: false,
            excluded: None,
            rejected: None,
        }
    }

    #[test]
    fn certificate_matches_form_no_link() {
        let report = MatchReport {
            matches: vec![
                m(
                    CredentialKind::Secret,
                    SECRET,
                    "main rotor:r1",
                    "myapp-secret",
                ),
                m(CredentialKind::Certificate, CERT, "main", "myapp-cert"),
                m(CredentialKind::Certificate, CERT, "tls", "myapp-tls"),
            ],
            ..MatchReport::default()
        };
        let links = links_from_matches(&report, &[app()], &Policy::default());
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!(links[0].credential_display_name, "main");
        let names: Vec<&str> = links[0]
            .targets
            .iter()
            .map(|t| t.secret_name.as_str())
            .collect();
        assert_eq!(names, ["myapp-secret"], "a certificate is never a target");
    }

    #[test]
    fn an_excluded_certificate_does_not_block_a_secret_lineage_of_the_same_name() {
        let mut cert = m(CredentialKind::Certificate, CERT, "main", "myapp-cert");
        cert.excluded = Some("secret:myapp-cert".into());
        let report = MatchReport {
            matches: vec![
                m(
                    CredentialKind::Secret,
                    SECRET,
                    "main rotor:r1",
                    "myapp-secret",
                ),
                cert,
            ],
            ..MatchReport::default()
        };
        let links = links_from_matches(&report, &[app()], &Policy::default());
        assert_eq!(links.len(), 1, "{links:?}");
        // ...while an excluded copy of the secret itself still blocks the lineage.
        let mut copy = m(
            CredentialKind::Secret,
            SECRET,
            "main rotor:r1",
            "myapp-copy",
        );
        copy.excluded = Some("secret:myapp-copy".into());
        let report = MatchReport {
            matches: vec![
                m(
                    CredentialKind::Secret,
                    SECRET,
                    "main rotor:r1",
                    "myapp-secret",
                ),
                copy,
            ],
            ..MatchReport::default()
        };
        assert!(links_from_matches(&report, &[app()], &Policy::default()).is_empty());
    }
}
