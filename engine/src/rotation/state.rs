//! What Azure shows about a link: the lineage's credentials, what each target holds, and which
//! secrets outside the link hold a credential of the lineage (the scope scan). Reading is I/O;
//! [`classify`] is the pure part (current / in progress / orphans / claimed elsewhere / diverged).

use super::tags;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::keyvault::SecretVersion;
use crate::matching::{SecretFacts, TAG_APP_ID, rejection, score};
use crate::model::{Application, Confidence, Link, PasswordCredential, Signal, Target};
use crate::policy::Policy;
use std::collections::BTreeSet;
use std::sync::Arc;
use time::OffsetDateTime;
use url::Url;

/// How long a scope scan (one listing per vault) is reused within one engine.
pub(crate) const SCAN_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// One target as read in preflight.
#[derive(Debug, Clone)]
pub(crate) struct TargetState {
    pub target: Target,
    /// Current version; `None` when the secret does not exist yet.
    pub current: Option<SecretVersion>,
    /// keyId of the lineage credential this version holds.
    pub held: Option<String>,
    /// Confidence that the version belongs to the lineage (None when missing).
    pub confidence: Option<Confidence>,
    pub signals: Vec<Signal>,
    /// Why rotor must never write this secret, whatever the policy minimum (it belongs to
    /// another application, or only its expiry date matches).
    pub rejected: Option<String>,
}

/// A secret outside the link's targets that holds a credential of the lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutsideHolder {
    pub target: Target,
    pub key_id: String,
    /// Proven by the `rotor-key-id` tag (else by the value's first three characters).
    pub by_tag: bool,
}

/// The link as Azure shows it.
#[derive(Debug, Clone)]
pub(crate) struct LinkState {
    pub name: String,
    pub app: Application,
    pub lineage: Vec<PasswordCredential>,
    pub targets: Vec<TargetState>,
    pub current: Option<PasswordCredential>,
    pub held: BTreeSet<String>,
    pub in_progress: Vec<PasswordCredential>,
    pub orphans: Vec<PasswordCredential>,
    /// Credentials of the lineage newer than the current one that no target holds but a secret
    /// outside the link does: another link claims the lineage.
    pub claimed_elsewhere: Vec<(PasswordCredential, OutsideHolder)>,
    pub outside: Vec<OutsideHolder>,
    /// Vaults in scope that could not be listed (removal cannot be proven while this is not empty).
    pub scan_errors: Vec<String>,
    pub diverged: bool,
}

impl LinkState {
    pub fn confidence(&self) -> Confidence {
        self.targets
            .iter()
            .filter_map(|t| t.confidence)
            .min()
            .unwrap_or(Confidence::High)
    }

    /// Outside holders of credential `key_id`.
    pub fn held_outside(&self, key_id: &str) -> Vec<&OutsideHolder> {
        self.outside
            .iter()
            .filter(|h| h.key_id.eq_ignore_ascii_case(key_id))
            .collect()
    }
}

/// What [`classify`] derives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Classified {
    pub current: Option<PasswordCredential>,
    pub in_progress: Vec<PasswordCredential>,
    pub orphans: Vec<PasswordCredential>,
    pub claimed_elsewhere: Vec<(PasswordCredential, OutsideHolder)>,
}

/// Pure: the current credential is the newest one a target holds; a rotor credential newer than
/// it that no target holds is claimed elsewhere (a secret outside the link holds it), in
/// progress (younger than the pending window) or an orphan.
pub(crate) fn classify(
    lineage: &[PasswordCredential],
    held: &BTreeSet<String>,
    outside: &[OutsideHolder],
    now: OffsetDateTime,
    pending: time::Duration,
) -> Classified {
    let is_held = |k: &str| held.iter().any(|h| h.eq_ignore_ascii_case(k));
    let rank = |k: &str| {
        lineage
            .iter()
            .position(|c| c.key_id.eq_ignore_ascii_case(k))
    };
    let current = lineage.iter().rev().find(|c| is_held(&c.key_id)).cloned();
    let mut out = Classified {
        current: current.clone(),
        ..Default::default()
    };
    for c in lineage {
        if c.rotation_id().is_none() || is_held(&c.key_id) {
            continue;
        }
        let newer = current
            .as_ref()
            .is_none_or(|cur| rank(&c.key_id) > rank(&cur.key_id));
        if !newer {
            continue;
        }
        if let Some(h) = outside
            .iter()
            .find(|h| h.key_id.eq_ignore_ascii_case(&c.key_id))
        {
            out.claimed_elsewhere.push((c.clone(), h.clone()));
        } else if now - c.start < pending {
            out.in_progress.push(c.clone());
        } else {
            out.orphans.push(c.clone());
        }
    }
    out
}

/// Which lineage credential a version holds: tag `rotor-key-id` (when consistent with the hint),
/// else the newest lineage credential with the value's hint.
pub(crate) fn resolve_held(lineage: &[PasswordCredential], v: &SecretVersion) -> Option<String> {
    let hint = v.value.hint();
    if let Some(t) = tags::key_id(&v.tags)
        && let Some(c) = lineage.iter().find(|c| c.key_id.eq_ignore_ascii_case(t))
        && (c.hint.is_none() || c.hint.as_deref() == Some(hint.as_str()))
    {
        return Some(c.key_id.clone());
    }
    lineage
        .iter()
        .filter(|c| c.hint.as_deref() == Some(hint.as_str()))
        .max_by_key(|c| c.start)
        .map(|c| c.key_id.clone())
}

fn facts_of(t: &Target, v: &SecretVersion, vault: String) -> SecretFacts {
    SecretFacts {
        vault_url: t.vault_url.clone(),
        vault,
        name: t.secret_name.clone(),
        version: Some(v.version.clone()),
        hint: Some(v.value.hint()),
        tags: v.tags.clone(),
        expires: v.expires,
        subscription: None,
    }
}

/// The vaults the scope scan covers: the engine's scope plus the link's own vaults.
pub(crate) fn scope_of(e: &Engine, link: &Link) -> Vec<Url> {
    let mut v: Vec<Url> = e.inner.scope_vaults.lock().clone();
    for t in &link.targets {
        if !v.contains(&t.vault_url) {
            v.push(t.vault_url.clone());
        }
    }
    v
}

/// Facts (tags, value hint; never a value) about every secret in `vault`, reused for
/// [`SCAN_TTL`] within one engine unless `fresh`. The engine's own writes do not invalidate it:
/// they only make a link's own targets hold that link's new credential, and a link's own targets
/// are never outside holders (links of one run never share a lineage).
async fn vault_scan(e: &Engine, vault: &Url, fresh: bool) -> Result<Arc<Vec<SecretFacts>>> {
    let key = vault.as_str().to_ascii_lowercase();
    if !fresh
        && let Some((at, facts)) = e.inner.scope_cache.lock().get(&key)
        && at.elapsed() < SCAN_TTL
    {
        return Ok(facts.clone());
    }
    let (facts, _) = crate::matching::vault_facts_with(e, vault, e.inner.per_vault, true).await?;
    let facts = Arc::new(facts);
    e.inner
        .scope_cache
        .lock()
        .insert(key, (std::time::Instant::now(), facts.clone()));
    Ok(facts)
}

/// Secrets in scope, outside the link's targets, holding a credential of `lineage`: by tag
/// `rotor-key-id`, or by the value's first three characters (conservative: a hint collision
/// keeps a credential, never removes one). Returns the holders and the vaults that failed.
pub(crate) async fn outside_holders(
    e: &Engine,
    link: &Link,
    lineage: &[PasswordCredential],
    fresh: bool,
) -> (Vec<OutsideHolder>, Vec<String>) {
    let vaults = scope_of(e, link);
    let scans = crate::http::join_all(vaults.iter().map(|v| vault_scan(e, v, fresh))).await;
    let mut holders = Vec::new();
    let mut errors = Vec::new();
    for (vault, scan) in vaults.iter().zip(scans) {
        let facts = match scan {
            Ok(f) => f,
            Err(err) => {
                errors.push(format!("{vault}: {err}"));
                continue;
            }
        };
        for f in facts.iter() {
            let own = link
                .targets
                .iter()
                .any(|t| t.vault_url == f.vault_url && t.secret_name.eq_ignore_ascii_case(&f.name));
            if own {
                continue;
            }
            let tagged = tags::key_id(&f.tags);
            for c in lineage {
                let by_tag = tagged.is_some_and(|k| k.eq_ignore_ascii_case(&c.key_id));
                let by_hint =
                    tagged.is_none() && c.hint.is_some() && f.hint.is_some() && c.hint == f.hint;
                if by_tag || by_hint {
                    holders.push(OutsideHolder {
                        target: Target::new(f.vault_url.clone(), f.name.clone()),
                        key_id: c.key_id.clone(),
                        by_tag,
                    });
                }
            }
        }
    }
    (holders, errors)
}

/// Reads the app's lineage and every target; derives current/held/in-progress/orphans.
/// `scan` also lists every vault in scope for outside holders (`fresh`: not from the cache).
pub(crate) async fn read_state(
    e: &Engine,
    link: &Link,
    policy: &Policy,
    app: Application,
    check_deleted: bool,
    scan: Option<bool>,
) -> Result<LinkState> {
    let versions = read_versions(e, link, check_deleted).await?;
    state_from(e, link, policy, app, versions, scan).await
}

/// Every target's current version, read concurrently (`None`: the secret does not exist).
pub(crate) async fn read_versions(
    e: &Engine,
    link: &Link,
    check_deleted: bool,
) -> Result<Vec<(Target, Option<SecretVersion>)>> {
    let inner = &e.inner;
    let reads = crate::http::join_all(link.targets.iter().map(|t| async move {
        let r = inner.vaults.get_secret(t, None, check_deleted).await;
        (t.clone(), r)
    }))
    .await;
    let mut versions = Vec::new();
    for (t, r) in reads {
        let r = r.map_err(|e| e.with_subject(crate::error::Subject::Target(t.clone())))?;
        versions.push((t, r));
    }
    Ok(versions)
}

/// [`read_state`] from the application and the targets' versions already read (in either
/// order, or at once: a target holding a credential the application read does not show makes
/// it read the application again; a credential no target holds yet is in progress).
pub(crate) async fn state_from(
    e: &Engine,
    link: &Link,
    policy: &Policy,
    app: Application,
    versions: Vec<(Target, Option<SecretVersion>)>,
    scan: Option<bool>,
) -> Result<LinkState> {
    let inner = &e.inner;
    let now = inner.now();
    let mut app = app;
    let lineage_of = |app: &Application| -> Vec<PasswordCredential> {
        app.lineage(&link.credential_display_name)
            .into_iter()
            .cloned()
            .collect()
    };
    let mut lineage = lineage_of(&app);
    // A target written by a concurrent run after the application was read holds a credential
    // this view does not know yet: read the application again (credentials precede writes).
    if versions.iter().any(|(_, v)| {
        v.as_ref()
            .is_some_and(|v| resolve_held(&lineage, v).is_none())
    }) {
        app = inner.fetch_app(&link.application_id).await?;
        lineage = lineage_of(&app);
    }
    let mut targets = Vec::new();
    for (t, current) in versions {
        if let Some(v) = &current {
            inner.hints.put(
                t.vault_url.as_str(),
                &t.secret_name,
                &v.version,
                &v.value.hint(),
            );
        }
        targets.push(target_state(e, &app, &lineage, t, current));
    }
    let held: BTreeSet<String> = targets.iter().filter_map(|t| t.held.clone()).collect();
    let (outside, scan_errors) = match scan {
        Some(fresh) => outside_holders(e, link, &lineage, fresh).await,
        None => (Vec::new(), Vec::new()),
    };
    let pending = time::Duration::try_from(policy.pending_window).unwrap_or(time::Duration::HOUR);
    let c = classify(&lineage, &held, &outside, now, pending);
    let diverged = match &c.current {
        Some(cur) => targets
            .iter()
            .any(|t| t.held.as_deref() != Some(cur.key_id.as_str())),
        None => false,
    };
    Ok(LinkState {
        name: link.credential_display_name.clone(),
        app,
        lineage,
        targets,
        current: c.current,
        held,
        in_progress: c.in_progress,
        orphans: c.orphans,
        claimed_elsewhere: c.claimed_elsewhere,
        outside,
        scan_errors,
        diverged,
    })
}

fn target_state(
    e: &Engine,
    app: &Application,
    lineage: &[PasswordCredential],
    t: Target,
    current: Option<SecretVersion>,
) -> TargetState {
    let held = current.as_ref().and_then(|v| resolve_held(lineage, v));
    let Some(v) = &current else {
        return TargetState {
            target: t,
            current,
            held,
            confidence: None,
            signals: Vec::new(),
            rejected: None,
        };
    };
    let cred = held
        .as_deref()
        .and_then(|k| lineage.iter().find(|c| c.key_id == k))
        .or_else(|| lineage.iter().max_by_key(|c| c.start));
    // written by rotor for this app before, holding a credential since removed
    let rotor_managed = held.is_none()
        && tags::key_id(&v.tags).is_some()
        && tags::tag(&v.tags, TAG_APP_ID).is_some_and(|val| val.eq_ignore_ascii_case(&app.app_id));
    let (confidence, signals) = match cred {
        Some(_) if rotor_managed => (Some(Confidence::High), vec![Signal::TagApp]),
        Some(c) => {
            let sc = score(
                app,
                c,
                &facts_of(&t, v, e.inner.vaults.vault_name(&t.vault_url)),
                false,
                &[],
            );
            (Some(sc.confidence), sc.signals)
        }
        None => (Some(Confidence::None), Vec::new()),
    };
    let rejected = if held.is_some() && tags::foreign_app(&v.tags, app).is_none() {
        None
    } else {
        rejection(app, &v.tags, &signals)
    };
    TargetState {
        target: t,
        current,
        held,
        confidence,
        signals,
        rejected,
    }
}

/// An error naming the secrets outside the link that hold the lineage (two links, one lineage).
pub(crate) fn claimed_error(e: &Engine, link: &Link, holders: &[&OutsideHolder]) -> Error {
    let names: Vec<String> = holders
        .iter()
        .map(|h| {
            format!(
                "{} (credential {})",
                e.inner.vaults.label(&h.target),
                h.key_id
            )
        })
        .collect();
    Error::new(
        crate::ErrorKind::Conflict,
        format!("checking that {link} owns its lineage"),
        format!(
            "the lineage `{}` is also held by {}, which {} not a target of this link: two links claim one lineage, and rotating one would break the other",
            link.credential_display_name,
            names.join(", "),
            if names.len() == 1 { "is" } else { "are" }
        ),
    )
    .with_hint("put every Key Vault secret that holds this credential into one link (one `rotor_secret_link`, or one rotor run over all of them)")
    .with_hint("or, if that secret no longer needs the credential, delete it or remove its `rotor-key-id` tag")
    .with_subject(crate::error::Subject::Lineage {
        app_id: link.application_id.clone(),
        credential_display_name: link.credential_display_name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn cred(key: &str, name: &str, start: OffsetDateTime) -> PasswordCredential {
        PasswordCredential {
            key_id: key.into(),
            display_name: Some(name.into()),
            hint: Some(key[..3].into()),
            start,
            end: start + time::Duration::days(365),
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn holder(key: &str) -> OutsideHolder {
        OutsideHolder {
            target: Target::new(Url::parse("https://kv.example/").expect("url"), "other"),
            key_id: key.into(),
            by_tag: true,
        }
    }

    #[test]
    fn classify_table() {
        let old = cred("k0aaa", "S", NOW - time::Duration::days(300));
        let fresh = cred("k1bbb", "S rotor:r1", NOW - time::Duration::minutes(5));
        let stale = cred("k2ccc", "S rotor:r2", NOW - time::Duration::hours(3));
        let lineage = vec![old.clone(), stale.clone(), fresh.clone()];
        let hour = time::Duration::HOUR;
        let held = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        struct Case {
            what: &'static str,
            held: BTreeSet<String>,
            outside: Vec<OutsideHolder>,
            current: Option<&'static str>,
            in_progress: Vec<&'static str>,
            orphans: Vec<&'static str>,
            claimed: Vec<&'static str>,
        }
        let cases = [
            Case {
                what: "old held: newer rotor credentials are in progress / orphan",
                held: held(&["k0aaa"]),
                outside: vec![],
                current: Some("k0aaa"),
                in_progress: vec!["k1bbb"],
                orphans: vec!["k2ccc"],
                claimed: vec![],
            },
            Case {
                what: "an outside secret holds the stale one: claimed elsewhere, never an orphan",
                held: held(&["k0aaa"]),
                outside: vec![holder("k2ccc")],
                current: Some("k0aaa"),
                in_progress: vec!["k1bbb"],
                orphans: vec![],
                claimed: vec!["k2ccc"],
            },
            Case {
                what: "newest held: nothing pending",
                held: held(&["k1bbb"]),
                outside: vec![],
                current: Some("k1bbb"),
                in_progress: vec![],
                orphans: vec![],
                claimed: vec![],
            },
            Case {
                what: "nothing held: every rotor credential is pending or orphan",
                held: held(&[]),
                outside: vec![],
                current: None,
                in_progress: vec!["k1bbb"],
                orphans: vec!["k2ccc"],
                claimed: vec![],
            },
        ];
        for c in cases {
            let got = classify(&lineage, &c.held, &c.outside, NOW, hour);
            let keys =
                |v: &[PasswordCredential]| v.iter().map(|c| c.key_id.clone()).collect::<Vec<_>>();
            assert_eq!(
                got.current.as_ref().map(|c| c.key_id.as_str()),
                c.current,
                "{}",
                c.what
            );
            assert_eq!(keys(&got.in_progress), c.in_progress, "{}", c.what);
            assert_eq!(keys(&got.orphans), c.orphans, "{}", c.what);
            let claimed: Vec<String> = got
                .claimed_elsewhere
                .iter()
                .map(|(c, _)| c.key_id.clone())
                .collect();
            assert_eq!(claimed, c.claimed, "{}", c.what);
        }
    }

    #[test]
    fn rejection_rules() {
        let app = Application {
            object_id: "o".into(),
            app_id: "A".into(),
            display_name: "app".into(),
            sign_in_audience: None,
            password_credentials: vec![],
            key_credentials: vec![],
        };
        let mut t = std::collections::BTreeMap::new();
        assert!(
            rejection(&app, &t, &[Signal::Expiry]).is_some(),
            "expiry alone"
        );
        assert!(rejection(&app, &t, &[Signal::Expiry, Signal::Subscription]).is_some());
        assert!(rejection(&app, &t, &[Signal::Expiry, Signal::Name]).is_none());
        assert!(rejection(&app, &t, &[]).is_none());
        t.insert("app-id".to_owned(), "B".to_owned());
        let why = rejection(&app, &t, &[Signal::Hint, Signal::Name]).expect("rejected");
        assert!(why.contains("another application (B)"), "{why}");
    }
}
