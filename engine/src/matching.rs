//! Matching: (credential, Key Vault secret) pairs with signals and confidence (docs/cli.md,
//! `rotor match`). The scoring is a pure function ([`score`]); [`crate::Engine::match_secrets`]
//! gathers the facts (listing vaults, reading values only on hint-cache misses).

use crate::engine::Engine;
use crate::error::Result;
use crate::keyvault::SecretItem;
use crate::model::{
    Application, Confidence, CredentialKind, Match, MatchReport, PasswordCredential, Signal,
    Target, Unmatched,
};
use crate::policy::Policy;
use futures::StreamExt;
use sha2::Digest;
use std::collections::{BTreeMap, HashMap, HashSet};
use time::OffsetDateTime;
use url::Url;

/// Tag holding the keyId of the credential a version holds (written by rotor).
pub const TAG_KEY_ID: &str = "rotor-key-id";
/// Tag holding the keyId the version replaced.
pub const TAG_PREVIOUS_KEY_ID: &str = "rotor-previous-key-id";
/// Tag holding the rotation time.
pub const TAG_ROTATED_AT: &str = "rotor-rotated-at";
/// Tag naming the application by appId.
pub const TAG_APP_ID: &str = "app-id";
/// Tag naming the application by display name.
pub const TAG_APP_NAME: &str = "app-name";

/// What matching knows about one Key Vault secret (its current version). No value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFacts {
    /// Vault URL.
    pub vault_url: Url,
    /// Vault short name.
    pub vault: String,
    /// Secret name.
    pub name: String,
    /// Current version, when known.
    pub version: Option<String>,
    /// First 3 characters of the current value, when known.
    pub hint: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// `exp`.
    pub expires: Option<OffsetDateTime>,
    /// Subscription of the vault, when known.
    pub subscription: Option<String>,
}

/// Lower-case, runs of non-alphanumerics as one `-`.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// The `name` signal: the secret name contains the appId, or the application's name as whole
/// words (`{app-name}-client-secret`, `prod-{app-name}`, `{appname}-secret`, …).
pub fn name_matches(app: &Application, secret_name: &str) -> bool {
    let n = secret_name.to_ascii_lowercase();
    let id = app.app_id.to_ascii_lowercase();
    if !id.is_empty() && (n.contains(&id) || n.contains(&id.replace('-', ""))) {
        return true;
    }
    let s = slug(&app.display_name);
    if s.len() < 3 {
        return false;
    }
    let n_slug = slug(&n);
    let n_tokens: Vec<&str> = n_slug.split('-').filter(|t| !t.is_empty()).collect();
    let s_tokens: Vec<&str> = s.split('-').collect();
    if n_tokens
        .windows(s_tokens.len())
        .any(|w| w == s_tokens.as_slice())
    {
        return true;
    }
    let compact_s = s.replace('-', "");
    let compact_n = slug(&n).replace('-', "");
    compact_s.len() >= 4 && compact_n.starts_with(&compact_s)
}

/// GUIDs (with or without hyphens) inside a secret name, lower-case with hyphens.
fn guids_in(name: &str) -> Vec<String> {
    let hex: Vec<char> = name
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    let s: String = hex.into_iter().collect();
    let compact: String = s.chars().filter(|c| *c != '-').collect();
    let mut out = Vec::new();
    if compact.len() >= 32 {
        for i in 0..=compact.len() - 32 {
            let g = &compact[i..i + 32];
            out.push(format!(
                "{}-{}-{}-{}-{}",
                &g[..8],
                &g[8..12],
                &g[12..16],
                &g[16..20],
                &g[20..]
            ));
        }
    }
    out
}

/// The result of scoring one pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Score {
    /// Confidence after any lowering.
    pub confidence: Confidence,
    /// Signals present.
    pub signals: Vec<Signal>,
    /// The value's hint differs from the credential's.
    pub hint_mismatch: bool,
    /// Why the secret must never be written for this credential (see [`crate::Match::rejected`]).
    pub rejected: Option<String>,
}

/// Confidence from a set of signals (before hint-mismatch lowering).
pub fn confidence_of(signals: &[Signal]) -> Confidence {
    let has = |s: Signal| signals.contains(&s);
    let weak = has(Signal::TagApp) || has(Signal::Name) || has(Signal::Expiry);
    if has(Signal::TagKeyId) || has(Signal::Thumbprint) || (has(Signal::Hint) && weak) {
        Confidence::High
    } else if has(Signal::Hint)
        || (has(Signal::TagApp) && (has(Signal::Name) || has(Signal::Expiry)))
    {
        Confidence::Medium
    } else if weak || has(Signal::Subscription) {
        Confidence::Low
    } else {
        Confidence::None
    }
}

/// Scores (credential, secret). `claimed_by_other` says the secret's value hint or `rotor-key-id`
/// tag identifies a *different* known credential (then the pair does not match at all).
/// `app_subscriptions` lists the subscriptions configured for the app, if any.
pub fn score(
    app: &Application,
    cred: &PasswordCredential,
    s: &SecretFacts,
    claimed_by_other: bool,
    app_subscriptions: &[String],
) -> Score {
    let mut signals = Vec::new();
    let tag = |k: &str| {
        s.tags
            .iter()
            .find(|(tk, _)| tk.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    let tag_key = tag(TAG_KEY_ID);
    if tag_key.is_some_and(|k| k.eq_ignore_ascii_case(&cred.key_id)) {
        signals.push(Signal::TagKeyId);
    }
    let hint_known = cred.hint.is_some() && s.hint.is_some();
    let hint_eq = hint_known && cred.hint == s.hint;
    if hint_eq {
        signals.push(Signal::Hint);
    }
    let tag_app = tag(TAG_APP_ID).is_some_and(|v| v.eq_ignore_ascii_case(&app.app_id))
        || tag(TAG_APP_NAME).is_some_and(|v| v.eq_ignore_ascii_case(&app.display_name));
    if tag_app {
        signals.push(Signal::TagApp);
    }
    if name_matches(app, &s.name) {
        signals.push(Signal::Name);
    }
    if let Some(exp) = s.expires
        && (exp - cred.end).abs() <= time::Duration::days(1)
    {
        signals.push(Signal::Expiry);
    }
    if let Some(sub) = &s.subscription
        && app_subscriptions
            .iter()
            .any(|x| x.eq_ignore_ascii_case(sub))
    {
        signals.push(Signal::Subscription);
    }
    let tagged_other = tag_key.is_some_and(|k| !k.eq_ignore_ascii_case(&cred.key_id));
    if (claimed_by_other && !signals.contains(&Signal::TagKeyId) && !hint_eq)
        || (tagged_other && !hint_eq)
    {
        return Score {
            confidence: Confidence::None,
            signals,
            hint_mismatch: hint_known && !hint_eq,
            rejected: None,
        };
    }
    if tag(TAG_APP_ID).is_some_and(|v| !v.eq_ignore_ascii_case(&app.app_id)) {
        return Score {
            confidence: Confidence::None,
            rejected: rejection(app, &s.tags, &signals),
            signals,
            hint_mismatch: hint_known && !hint_eq,
        };
    }
    let mut confidence = confidence_of(&signals);
    let hint_mismatch = hint_known && !hint_eq;
    if hint_mismatch && tag_app && !signals.contains(&Signal::TagKeyId) {
        confidence = match confidence {
            Confidence::High => Confidence::Medium,
            Confidence::Medium => Confidence::Low,
            _ => Confidence::None,
        };
    }
    let rejected = rejection(app, &s.tags, &signals);
    Score {
        confidence,
        signals,
        hint_mismatch,
        rejected,
    }
}

/// Why a secret must never be written for `app`, whatever the confidence: its `app-id` tag names
/// another application, or nothing but its expiry date (and vault subscription) matches.
pub fn rejection(
    app: &Application,
    tags: &BTreeMap<String, String>,
    signals: &[Signal],
) -> Option<String> {
    if let Some((_, other)) = tags
        .iter()
        .find(|(k, v)| k.eq_ignore_ascii_case(TAG_APP_ID) && !v.eq_ignore_ascii_case(&app.app_id))
    {
        return Some(format!(
            "its `{TAG_APP_ID}` tag names another application ({other}); rotor never writes one application's credential into another's secret"
        ));
    }
    let strong = signals
        .iter()
        .any(|s| !matches!(s, Signal::Expiry | Signal::Subscription));
    (!signals.is_empty() && !strong).then(|| {
        "only its expiry date matches the credential; expiry alone never qualifies a secret to be written"
            .to_owned()
    })
}

/// What would raise a match's confidence (for LOW/MEDIUM explanations).
pub fn how_to_raise(signals: &[Signal]) -> Vec<String> {
    let mut v = Vec::new();
    if !signals.contains(&Signal::TagKeyId) {
        v.push(
            "tag the Key Vault secret with `rotor-key-id` = the credential's keyId (HIGH)"
                .to_owned(),
        );
    }
    if !signals.contains(&Signal::TagApp) {
        v.push("tag the secret with `app-id` or `app-name`".to_owned());
    }
    if !signals.contains(&Signal::Name) {
        v.push("name the secret `{app-name}-client-secret`".to_owned());
    }
    if !signals.contains(&Signal::Expiry) {
        v.push("set the secret's expiry to the credential's end date".to_owned());
    }
    v
}

pub(crate) fn fingerprint(item: &SecretItem) -> String {
    let mut h = sha2::Sha256::new();
    h.update(format!(
        "{:?}|{:?}|{:?}|{:?}|",
        item.updated.map(|t| t.unix_timestamp()),
        item.created.map(|t| t.unix_timestamp()),
        item.expires.map(|t| t.unix_timestamp()),
        item.content_type
    ));
    for (k, v) in &item.tags {
        h.update(format!("{k}={v};"));
    }
    let d = h.finalize();
    d.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Facts about every secret in `vault`, reading values only on hint-cache misses.
/// Returns (facts, values read).
pub(crate) async fn vault_facts(
    e: &Engine,
    vault: &Url,
    concurrency: usize,
) -> Result<(Vec<SecretFacts>, usize)> {
    vault_facts_with(e, vault, concurrency, false).await
}

/// [`vault_facts`]; with `skip_tagged`, a secret whose `rotor-key-id` tag says what it holds is
/// not read (the scope scan needs values only for untagged secrets).
pub(crate) async fn vault_facts_with(
    e: &Engine,
    vault: &Url,
    concurrency: usize,
    skip_tagged: bool,
) -> Result<(Vec<SecretFacts>, usize)> {
    let inner = &e.inner;
    let items = inner.vaults.list_secrets(vault).await?;
    let vault_name = inner.vaults.vault_name(vault);
    let vault_key = vault.as_str().to_owned();
    let facts = futures::stream::iter(items.into_iter().filter(|i| !i.managed))
        .map(|item| {
            let vault_key = vault_key.clone();
            let vault_name = vault_name.clone();
            async move {
                let mut f = SecretFacts {
                    vault_url: vault.clone(),
                    vault: vault_name,
                    name: item.name.clone(),
                    version: None,
                    hint: None,
                    tags: item.tags.clone(),
                    expires: item.expires,
                    subscription: inner.vaults.subscription_of(vault),
                };
                if !item.enabled
                    || (skip_tagged && item.tags.keys().any(|k| k.eq_ignore_ascii_case(TAG_KEY_ID)))
                {
                    return (f, 0usize);
                }
                let fp = fingerprint(&item);
                if let Some(v) = inner.hints.current_version(&vault_key, &item.name, &fp)
                    && let Some(h) = inner.hints.get(&vault_key, &item.name, &v)
                {
                    f.version = Some(v);
                    f.hint = Some(h);
                    return (f, 0);
                }
                let target = Target::new(vault.clone(), item.name.clone());
                match inner.vaults.get_secret(&target, None, false).await {
                    Ok(Some(sv)) => {
                        let h = sv.value.hint();
                        inner.hints.put(&vault_key, &item.name, &sv.version, &h);
                        inner
                            .hints
                            .set_current(&vault_key, &item.name, &fp, &sv.version);
                        f.version = Some(sv.version.clone());
                        f.hint = Some(h);
                        f.tags = sv.tags.clone();
                        f.expires = sv.expires;
                        (f, 1)
                    }
                    Ok(None) => (f, 1),
                    Err(err) => {
                        tracing::warn!("{err}; matching continues without the value's hint");
                        (f, 1)
                    }
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let read = facts.iter().map(|(_, n)| n).sum();
    let mut facts: Vec<SecretFacts> = facts.into_iter().map(|(f, _)| f).collect();
    facts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((facts, read))
}

/// Scores every credential of `apps` against `secrets`.
pub fn match_facts(apps: &[Application], secrets: &[SecretFacts], policy: &Policy) -> MatchReport {
    match_facts_with(apps, secrets, policy, &BTreeMap::new())
}

/// The subscriptions configured for `app` (keys: appId or display-name glob).
pub fn subscriptions_for(app: &Application, config: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, subs) in config {
        let hit = k.eq_ignore_ascii_case(&app.app_id)
            || globset::GlobBuilder::new(k)
                .case_insensitive(true)
                .build()
                .map(|g| g.compile_matcher().is_match(&app.display_name))
                .unwrap_or(false);
        if hit {
            out.extend(subs.iter().cloned());
        }
    }
    out
}

/// Like [`match_facts`], with subscriptions configured per application (the `subscription`
/// signal is added to candidates found by another signal).
pub fn match_facts_with(
    apps: &[Application],
    secrets: &[SecretFacts],
    policy: &Policy,
    app_subscriptions: &BTreeMap<String, Vec<String>>,
) -> MatchReport {
    // hint → credentials having it; keyId → exists
    let mut by_hint: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut key_ids: HashSet<String> = HashSet::new();
    for a in apps {
        for c in &a.password_credentials {
            if let Some(h) = c.hint.as_deref() {
                by_hint.entry(h).or_default().push(c.key_id.as_str());
            }
            key_ids.insert(c.key_id.to_ascii_lowercase());
        }
    }
    // Secrets indexed by the cheap signals so 5,000 apps × 4,000 secrets is not a full product.
    let mut report = MatchReport {
        signals_tried: vec![
            Signal::TagKeyId,
            Signal::Hint,
            Signal::TagApp,
            Signal::Name,
            Signal::Expiry,
        ],
        ..Default::default()
    };
    let mut idx_hint: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut idx_key: HashMap<String, Vec<usize>> = HashMap::new();
    let mut idx_app: HashMap<String, Vec<usize>> = HashMap::new();
    let mut idx_exp: HashMap<i64, Vec<usize>> = HashMap::new();
    let mut idx_tok: HashMap<String, Vec<usize>> = HashMap::new();
    let mut idx_guid: HashMap<String, Vec<usize>> = HashMap::new();
    let mut prefixes: Vec<(String, usize)> = Vec::with_capacity(secrets.len());
    for (i, s) in secrets.iter().enumerate() {
        for g in guids_in(&s.name) {
            idx_guid.entry(g).or_default().push(i);
        }
        if let Some(h) = s.hint.as_deref() {
            idx_hint.entry(h).or_default().push(i);
        }
        for (k, v) in &s.tags {
            let k = k.to_ascii_lowercase();
            if k == TAG_KEY_ID {
                idx_key.entry(v.to_ascii_lowercase()).or_default().push(i);
            } else if k == TAG_APP_ID || k == TAG_APP_NAME {
                idx_app.entry(v.to_ascii_lowercase()).or_default().push(i);
            }
        }
        if let Some(e) = s.expires {
            idx_exp
                .entry(e.unix_timestamp() / 86400)
                .or_default()
                .push(i);
        }
        let name_slug = slug(&s.name);
        for t in name_slug.split('-') {
            if !t.is_empty() {
                idx_tok.entry(t.to_owned()).or_default().push(i);
            }
        }
        let compact = name_slug.replace('-', "");
        if compact.len() >= 4 {
            prefixes.push((compact, i));
        }
    }
    // Compact names sorted, so "every secret whose compact name starts with P" is one range
    // (one entry per secret, instead of one index key per prefix length).
    prefixes.sort_unstable();
    let starting_with = |p: &str| -> Vec<usize> {
        let from = prefixes.partition_point(|(c, _)| c.as_str() < p);
        prefixes[from..]
            .iter()
            .take_while(|(c, _)| c.starts_with(p))
            .map(|(_, i)| *i)
            .collect()
    };
    let lookup_token = |t: &str| idx_tok.get(t).cloned().unwrap_or_default();
    for a in apps {
        let subs = subscriptions_for(a, app_subscriptions);
        let app_slug = slug(&a.display_name);
        for c in &a.password_credentials {
            let mut cand: Vec<usize> = Vec::new();
            if let Some(h) = c.hint.as_deref() {
                cand.extend(idx_hint.get(h).into_iter().flatten());
            }
            cand.extend(
                idx_key
                    .get(&c.key_id.to_ascii_lowercase())
                    .into_iter()
                    .flatten(),
            );
            cand.extend(
                idx_app
                    .get(&a.app_id.to_ascii_lowercase())
                    .into_iter()
                    .flatten(),
            );
            cand.extend(
                idx_app
                    .get(&a.display_name.to_ascii_lowercase())
                    .into_iter()
                    .flatten(),
            );
            let day = c.end.unix_timestamp() / 86400;
            for d in day - 2..=day + 2 {
                cand.extend(idx_exp.get(&d).into_iter().flatten());
            }
            if app_slug.len() >= 3 {
                // the rarest word of the app's name bounds the candidates
                if let Some(rare) = app_slug
                    .split('-')
                    .filter(|t| !t.is_empty())
                    .min_by_key(|t| idx_tok.get(*t).map_or(0, Vec::len))
                {
                    cand.extend(lookup_token(rare));
                }
                let compact = app_slug.replace('-', "");
                if compact.len() >= 4 {
                    // secrets whose compact name starts with the app's (its first 24 characters)
                    cand.extend(starting_with(&compact[..compact.len().min(24)]));
                }
            }
            cand.extend(
                idx_guid
                    .get(&a.app_id.to_ascii_lowercase())
                    .into_iter()
                    .flatten(),
            );
            cand.sort_unstable();
            cand.dedup();
            let mut found = Vec::new();
            for i in cand {
                let s = &secrets[i];
                let claimed_by_other =
                    s.hint
                        .as_deref()
                        .and_then(|h| by_hint.get(h))
                        .is_some_and(|ids| {
                            ids.iter().any(|k| !k.eq_ignore_ascii_case(&c.key_id))
                                && !ids.iter().any(|k| k.eq_ignore_ascii_case(&c.key_id))
                        })
                        || s.tags
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(TAG_KEY_ID))
                            .is_some_and(|(_, v)| {
                                !v.eq_ignore_ascii_case(&c.key_id)
                                    && key_ids.contains(&v.to_ascii_lowercase())
                            });
                let sc = score(a, c, s, claimed_by_other, &subs);
                if sc.confidence == Confidence::None && sc.rejected.is_none() {
                    continue;
                }
                found.push(Match {
                    kind: CredentialKind::Secret,
                    app_id: a.app_id.clone(),
                    app_name: a.display_name.clone(),
                    key_id: c.key_id.clone(),
                    credential_display_name: c.display_name.clone(),
                    vault: s.vault.clone(),
                    vault_url: s.vault_url.clone(),
                    secret_name: s.name.clone(),
                    secret_version: s.version.clone(),
                    confidence: sc.confidence,
                    signals: sc.signals,
                    hint_mismatch: sc.hint_mismatch,
                    rejected: sc.rejected,
                    excluded: policy.excluded(
                        &a.app_id,
                        &a.display_name,
                        c.display_name.as_deref(),
                        Some(&s.name),
                    ),
                });
            }
            if found.iter().all(|m| m.rejected.is_some()) {
                report.unmatched.push(Unmatched {
                    kind: CredentialKind::Secret,
                    app_id: a.app_id.clone(),
                    app_name: a.display_name.clone(),
                    key_id: c.key_id.clone(),
                    credential_display_name: c.display_name.clone(),
                    excluded: policy.excluded(
                        &a.app_id,
                        &a.display_name,
                        c.display_name.as_deref(),
                        None,
                    ),
                });
            }
            found.sort_by(|x, y| {
                y.confidence
                    .cmp(&x.confidence)
                    .then_with(|| x.vault.cmp(&y.vault))
                    .then_with(|| x.secret_name.cmp(&y.secret_name))
            });
            report.matches.extend(found);
        }
    }
    report
}

/// A Key Vault certificate as matching sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Vault URL.
    pub vault_url: Url,
    /// Vault short name.
    pub vault: String,
    /// The certificate.
    pub item: crate::keyvault::CertificateItem,
}

/// Matches key credentials (certificates) to Key Vault certificates by thumbprint (`x5t`).
pub fn match_certificates(
    apps: &[Application],
    certs: &[CertificateFacts],
    policy: &Policy,
) -> (Vec<Match>, Vec<Unmatched>) {
    let mut by_thumb: HashMap<String, Vec<&CertificateFacts>> = HashMap::new();
    for c in certs {
        if let Some(t) = &c.item.thumbprint {
            by_thumb.entry(t.to_ascii_uppercase()).or_default().push(c);
        }
    }
    let mut matches = Vec::new();
    let mut unmatched = Vec::new();
    for a in apps {
        for k in &a.key_credentials {
            let found: Vec<&&CertificateFacts> = k
                .thumbprint
                .as_ref()
                .and_then(|t| by_thumb.get(&t.to_ascii_uppercase()))
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            if found.is_empty() {
                unmatched.push(Unmatched {
                    kind: CredentialKind::Certificate,
                    app_id: a.app_id.clone(),
                    app_name: a.display_name.clone(),
                    key_id: k.key_id.clone(),
                    credential_display_name: k.display_name.clone(),
                    excluded: policy.excluded(
                        &a.app_id,
                        &a.display_name,
                        k.display_name.as_deref(),
                        None,
                    ),
                });
            }
            for c in found {
                let mut signals = vec![Signal::Thumbprint];
                let tag = |n: &str| {
                    c.item
                        .tags
                        .iter()
                        .find(|(t, _)| t.eq_ignore_ascii_case(n))
                        .map(|(_, v)| v.clone())
                };
                if tag(TAG_APP_ID).is_some_and(|v| v.eq_ignore_ascii_case(&a.app_id))
                    || tag(TAG_APP_NAME).is_some_and(|v| v.eq_ignore_ascii_case(&a.display_name))
                {
                    signals.push(Signal::TagApp);
                }
                if name_matches(a, &c.item.name) {
                    signals.push(Signal::Name);
                }
                if c.item
                    .expires
                    .is_some_and(|e| (e - k.end).abs() <= time::Duration::days(1))
                {
                    signals.push(Signal::Expiry);
                }
                matches.push(Match {
                    kind: CredentialKind::Certificate,
                    app_id: a.app_id.clone(),
                    app_name: a.display_name.clone(),
                    key_id: k.key_id.clone(),
                    credential_display_name: k.display_name.clone(),
                    vault: c.vault.clone(),
                    vault_url: c.vault_url.clone(),
                    secret_name: c.item.name.clone(),
                    secret_version: None,
                    confidence: confidence_of(&signals),
                    signals,
                    hint_mismatch: false,
                    rejected: None,
                    excluded: policy.excluded(
                        &a.app_id,
                        &a.display_name,
                        k.display_name.as_deref(),
                        Some(&c.item.name),
                    ),
                });
            }
        }
    }
    (matches, unmatched)
}

pub(crate) async fn match_secrets(
    e: &Engine,
    apps: &[Application],
    vaults: &[Url],
    policy: &Policy,
) -> Result<MatchReport> {
    let (facts, read) = gather_facts(e, vaults, policy).await?;
    finish_matching(e, apps, facts, read, vaults, policy).await
}

/// The first half of [`match_secrets`]: every vault's secret facts (values read on hint-cache
/// misses), into the scope-scan cache too. `Err` only when every vault failed.
pub(crate) async fn gather_facts(
    e: &Engine,
    vaults: &[Url],
    policy: &Policy,
) -> Result<(Vec<SecretFacts>, usize)> {
    let conc = policy.max_concurrent.max(1);
    e.inner.widen_scope(vaults);
    // The futures are built eagerly (they do nothing until polled): a stream that maps borrowed
    // items through a closure would make this method's future `!Send` (rustc cannot prove the
    // closure's output `Send` for every lifetime). Unordered, so a vault with more pages does
    // not hold up the next ones; put back in the vaults' order below.
    let per_vault: Vec<_> = vaults
        .iter()
        .enumerate()
        .map(|(i, v)| async move { (i, vault_facts(e, v, conc).await) })
        .collect();
    let mut results = crate::http::with_limit(
        conc,
        futures::stream::iter(per_vault)
            .buffer_unordered(conc)
            .collect::<Vec<_>>(),
    )
    .await;
    results.sort_by_key(|(i, _)| *i);
    let results: Vec<_> = results.into_iter().map(|(_, r)| r).collect();
    let mut facts = Vec::new();
    let mut read = 0;
    // Per-vault isolation: a vault that cannot be listed fails the links in it (unknown this
    // run, reported through `Engine::vault_failures`), not the whole run, unless every vault
    // failed.
    let all_failed = !results.is_empty() && results.iter().all(|r| r.is_err());
    for (vault, r) in vaults.iter().zip(results) {
        let (f, n) = match r {
            Ok(x) => x,
            Err(err) if all_failed => return Err(err),
            Err(err) => {
                tracing::error!("{err}; matching goes on with the other vaults");
                let mut failures = e.inner.vault_failures.lock();
                if !failures.iter().any(|x| x.vault_url == *vault) {
                    failures.push(crate::model::VaultFailure {
                        vault_url: vault.clone(),
                        error: err.to_string(),
                        hints: err.hints(),
                    });
                }
                continue;
            }
        };
        // the rotations that follow prove ownership from the same listing (rotation::state)
        e.inner.scope_cache.lock().insert(
            vault.as_str().to_ascii_lowercase(),
            (std::time::Instant::now(), std::sync::Arc::new(f.clone())),
        );
        facts.extend(f);
        read += n;
    }
    if let Err(err) = e.inner.hints.save() {
        tracing::warn!("{err}");
    }
    Ok((facts, read))
}

/// The second half of [`match_secrets`]: scores `apps` against `facts`, then certificates.
pub(crate) async fn finish_matching(
    e: &Engine,
    apps: &[Application],
    facts: Vec<SecretFacts>,
    read: usize,
    vaults: &[Url],
    policy: &Policy,
) -> Result<MatchReport> {
    let mut report = match_facts_with(apps, &facts, policy, &e.inner.app_subscriptions);
    if !e.inner.app_subscriptions.is_empty() {
        report.signals_tried.push(Signal::Subscription);
    }
    report.values_read = read;
    if apps.iter().any(|a| !a.key_credentials.is_empty()) {
        let mut certs = Vec::new();
        for v in vaults {
            match e.inner.vaults.list_certificates(v).await {
                Ok(items) => {
                    let vault = e.inner.vaults.vault_name(v);
                    certs.extend(items.into_iter().map(|item| CertificateFacts {
                        vault_url: v.clone(),
                        vault: vault.clone(),
                        item,
                    }));
                }
                Err(err) => tracing::warn!("{err}; certificates in this vault are not matched"),
            }
        }
        let (m, u) = match_certificates(apps, &certs, policy);
        report.matches.extend(m);
        report.unmatched.extend(u);
        report.signals_tried.insert(1, Signal::Thumbprint);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> Application {
        Application {
            object_id: "o".into(),
            app_id: "b0000001-0000-4000-8000-000000000001".into(),
            display_name: name.into(),
            sign_in_audience: None,
            password_credentials: vec![],
            key_credentials: vec![],
        }
    }

    #[test]
    fn names() {
        let a = app("MyApp");
        assert!(name_matches(&a, "myapp-secret"));
        assert!(name_matches(&a, "myapp-dev-secret"));
        assert!(name_matches(&a, "myapp-secret-v2"));
        assert!(name_matches(&a, "prod-myapp-client-secret"));
        assert!(!name_matches(&a, "database-password"));
        let a = app("orders-service");
        assert!(name_matches(&a, "orders-service-client-secret"));
        assert!(name_matches(&a, "ordersservice-secret"));
        assert!(!name_matches(&a, "orders-db"));
        assert!(name_matches(&a, "x-b0000001-0000-4000-8000-000000000001"));
        let a = app("data-pipeline");
        assert!(!name_matches(&a, "database-password"));
        assert!(!name_matches(&a, "blob-sync-credential"));
    }

    #[test]
    fn confidence_rules() {
        use Signal::*;
        assert_eq!(confidence_of(&[TagKeyId]), Confidence::High);
        assert_eq!(confidence_of(&[Thumbprint]), Confidence::High);
        assert_eq!(confidence_of(&[Hint, Name]), Confidence::High);
        assert_eq!(confidence_of(&[Hint, TagApp]), Confidence::High);
        assert_eq!(confidence_of(&[Hint, Expiry]), Confidence::High);
        assert_eq!(confidence_of(&[Hint]), Confidence::Medium);
        assert_eq!(confidence_of(&[TagApp, Name]), Confidence::Medium);
        assert_eq!(confidence_of(&[TagApp, Expiry]), Confidence::Medium);
        assert_eq!(confidence_of(&[Name]), Confidence::Low);
        assert_eq!(confidence_of(&[Expiry]), Confidence::Low);
        assert_eq!(confidence_of(&[TagApp]), Confidence::Low);
        assert_eq!(confidence_of(&[Subscription]), Confidence::Low);
        assert_eq!(confidence_of(&[Name, Expiry]), Confidence::Low);
        assert_eq!(confidence_of(&[]), Confidence::None);
    }

    #[test]
    fn hint_mismatch_with_app_tag_lowers() {
        let now = OffsetDateTime::now_utc();
        let mut a = app("inventory");
        let c = PasswordCredential {
            key_id: "k1".into(),
            display_name: Some("client secret".into()),
            hint: Some("In5".into()),
            start: now,
            end: now + time::Duration::days(60),
        };
        a.password_credentials.push(c.clone());
        let s = SecretFacts {
            vault_url: Url::parse("https://kv-prod.vault.azure.net/").expect("url"),
            vault: "kv-prod".into(),
            name: "inventory-client-secret".into(),
            version: Some("v".into()),
            hint: Some("Qw3".into()),
            tags: [("app-name".to_owned(), "inventory".to_owned())].into(),
            expires: None,
            subscription: None,
        };
        let sc = score(&a, &c, &s, false, &[]);
        assert_eq!(sc.confidence, Confidence::Low);
        assert!(sc.hint_mismatch);
        assert_eq!(sc.signals, vec![Signal::TagApp, Signal::Name]);
        // same without the tag: name only, not lowered
        let s2 = SecretFacts {
            tags: BTreeMap::new(),
            ..s.clone()
        };
        assert_eq!(score(&a, &c, &s2, false, &[]).confidence, Confidence::Low);
        // with matching hint: HIGH
        let s3 = SecretFacts {
            hint: Some("In5".into()),
            ..s
        };
        assert_eq!(score(&a, &c, &s3, false, &[]).confidence, Confidence::High);
    }
}
