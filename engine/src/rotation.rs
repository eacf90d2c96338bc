//! The rotation protocol (PRODUCT.md steps 1–6), resumable from Azure's state alone.
//!
//! Everything rotor needs to resume is in Azure: the lineage's credentials (display name
//! `<name> rotor:<rotation-id>`, start/end dates) and the targets' current versions (tag
//! `rotor-key-id`, else the value's first three characters against the credentials' hints).

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::keyvault::SecretVersion;
use crate::matching::{
    SecretFacts, TAG_APP_ID, TAG_APP_NAME, TAG_KEY_ID, TAG_PREVIOUS_KEY_ID, TAG_ROTATED_AT,
    how_to_raise, score,
};
use crate::model::{
    Application, AuditRecord, Confidence, Link, LinkStatus, PasswordCredential, RotateOptions,
    RotationStatus, Target, TargetRecord, TargetStatus,
};
use crate::policy::Policy;
use crate::progress::{Progress, ProgressEvent, Step, StepState};
use crate::secret::SecretValue;
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use time::OffsetDateTime;
use url::Url;

const MAX_TAGS: usize = 15;

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
    pub signals: Vec<crate::model::Signal>,
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
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Which lineage credential a version holds: tag `rotor-key-id` (when consistent with the hint),
/// else the newest lineage credential with the value's hint.
fn resolve_held(lineage: &[PasswordCredential], v: &SecretVersion) -> Option<String> {
    let hint = v.value.hint();
    let tag = v
        .tags
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(TAG_KEY_ID))
        .map(|(_, v)| v.clone());
    if let Some(t) = tag
        && let Some(c) = lineage.iter().find(|c| c.key_id.eq_ignore_ascii_case(&t))
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

/// Reads the app's lineage and every target; derives current/held/in-progress/orphans.
pub(crate) async fn read_state(
    e: &Engine,
    link: &Link,
    policy: &Policy,
    app: Application,
    check_deleted: bool,
) -> Result<LinkState> {
    let inner = &e.inner;
    let now = inner.now();
    let mut app = app;
    let reads = futures::future::join_all(link.targets.iter().map(|t| async move {
        let r = inner.vaults.get_secret(t, None, check_deleted).await;
        (t.clone(), r)
    }))
    .await;
    let mut versions = Vec::new();
    for (t, r) in reads {
        versions.push((t, r?));
    }
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
        let held = current.as_ref().and_then(|v| resolve_held(&lineage, v));
        let (confidence, signals) = match &current {
            None => (None, Vec::new()),
            Some(v) => {
                let cred = held
                    .as_deref()
                    .and_then(|k| lineage.iter().find(|c| c.key_id == k))
                    .or_else(|| lineage.iter().max_by_key(|c| c.start));
                let rotor_managed = held.is_none()
                    && v.tags.keys().any(|k| k.eq_ignore_ascii_case(TAG_KEY_ID))
                    && v.tags.iter().any(|(k, val)| {
                        k.eq_ignore_ascii_case(TAG_APP_ID) && val.eq_ignore_ascii_case(&app.app_id)
                    });
                match cred {
                    // written by rotor for this app before, holding a credential since removed
                    Some(_) if rotor_managed => {
                        (Some(Confidence::High), vec![crate::model::Signal::TagApp])
                    }
                    Some(c) => {
                        let sc = score(
                            &app,
                            c,
                            &facts_of(&t, v, inner.vaults.vault_name(&t.vault_url)),
                            false,
                            &[],
                        );
                        (Some(sc.confidence), sc.signals)
                    }
                    None => (Some(Confidence::None), Vec::new()),
                }
            }
        };
        targets.push(TargetState {
            target: t,
            current,
            held,
            confidence,
            signals,
        });
    }
    let held: BTreeSet<String> = targets.iter().filter_map(|t| t.held.clone()).collect();
    let rank = |k: &str| lineage.iter().position(|c| c.key_id == k);
    let current = lineage
        .iter()
        .rev()
        .find(|c| held.contains(&c.key_id))
        .cloned();
    let pending = time::Duration::try_from(policy.pending_window).unwrap_or(time::Duration::HOUR);
    let mut in_progress = Vec::new();
    let mut orphans = Vec::new();
    for c in &lineage {
        if c.rotation_id().is_none() || held.contains(&c.key_id) {
            continue;
        }
        let newer = current
            .as_ref()
            .is_none_or(|cur| rank(&c.key_id) > rank(&cur.key_id));
        if !newer {
            continue;
        }
        if now - c.start < pending {
            in_progress.push(c.clone());
        } else {
            orphans.push(c.clone());
        }
    }
    let diverged = match &current {
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
        current,
        held,
        in_progress,
        orphans,
        diverged,
    })
}

fn excluded(link: &Link, app: &Application, policy: &Policy) -> Option<String> {
    policy
        .excluded(
            &app.app_id,
            &app.display_name,
            Some(&link.credential_display_name),
            None,
        )
        .or_else(|| {
            link.targets.iter().find_map(|t| {
                policy.excluded(&app.app_id, &app.display_name, None, Some(&t.secret_name))
            })
        })
}

/// Due decision shared by inspect and rotate.
fn due(
    e: &Engine,
    st: &LinkState,
    policy: &Policy,
    force: bool,
) -> (bool, Option<String>, Option<OffsetDateTime>) {
    let now = e.inner.now();
    let label = |t: &TargetState| e.inner.vaults.label(&t.target);
    match &st.current {
        None => {
            if st.targets.is_empty() {
                (false, None, None)
            } else {
                (
                    true,
                    Some(format!(
                        "no target holds a credential of `{}`: a new credential will be created and written to every target",
                        st.name
                    )),
                    None,
                )
            }
        }
        Some(cur) => {
            let next = cur.end - time::Duration::days(i64::from(policy.rotate_before_expiry_days));
            if st.diverged {
                let lacking: Vec<String> = st
                    .targets
                    .iter()
                    .filter(|t| t.held.as_deref() != Some(cur.key_id.as_str()))
                    .map(label)
                    .collect();
                return (
                    true,
                    Some(format!(
                        "targets diverge: {} do not hold the current credential {}; it will be copied to them",
                        lacking.join(", "),
                        cur.key_id
                    )),
                    Some(next),
                );
            }
            if now >= next {
                let days = (cur.end - now).whole_days();
                let why = if cur.end <= now {
                    format!("credential {} expired at {}", cur.key_id, fmt_time(cur.end))
                } else {
                    format!(
                        "credential {} expires at {} (in {days} days, within rotate_before_expiry_days = {})",
                        cur.key_id,
                        fmt_time(cur.end),
                        policy.rotate_before_expiry_days
                    )
                };
                return (true, Some(why), Some(next));
            }
            if force {
                return (true, Some("rotation forced".to_owned()), Some(next));
            }
            (false, None, Some(next))
        }
    }
}

fn status_of(e: &Engine, link: &Link, st: &LinkState, policy: &Policy) -> LinkStatus {
    let (rotation_due, mut due_reason, next) = due(e, st, policy, false);
    let exc = excluded(link, &st.app, policy);
    let in_progress = !st.in_progress.is_empty();
    if in_progress {
        due_reason = Some(format!(
            "rotation in progress: credential {} was created at {} and no target holds it yet",
            st.in_progress[0].key_id,
            fmt_time(st.in_progress[0].start)
        ));
    }
    let previous_key_ids = match &st.current {
        Some(cur) => st
            .lineage
            .iter()
            .take_while(|c| c.key_id != cur.key_id)
            .map(|c| c.key_id.clone())
            .collect(),
        None => Vec::new(),
    };
    LinkStatus {
        current_key_id: st.current.as_ref().map(|c| c.key_id.clone()),
        current_expires_at: st.current.as_ref().map(|c| c.end),
        rotated_at: st.current.as_ref().map(|c| c.start),
        next_rotation_at: next,
        rotation_due: rotation_due && exc.is_none() && !in_progress,
        due_reason: if exc.is_some() { None } else { due_reason },
        diverged: st.diverged,
        excluded: exc,
        confidence: st.confidence(),
        previous_key_ids,
        target_versions: st
            .targets
            .iter()
            .filter_map(|t| {
                t.current
                    .as_ref()
                    .map(|v| (t.target.key(), v.version.clone()))
            })
            .collect(),
        in_progress,
    }
}

pub(crate) async fn inspect_link(e: &Engine, link: &Link, policy: &Policy) -> Result<LinkStatus> {
    let app = e.get_application(&link.application_id).await?;
    let st = read_state(e, link, policy, app, false).await?;
    if let Err(err) = e.inner.hints.save() {
        tracing::warn!("{err}");
    }
    Ok(status_of(e, link, &st, policy))
}

/// Emits progress and remembers the rotation's identity.
struct Reporter<'a> {
    progress: &'a dyn Progress,
    rotation_id: String,
    app_id: String,
    app_name: parking_lot::Mutex<String>,
}

impl Reporter<'_> {
    fn emit(
        &self,
        step: Step,
        state: StepState,
        target: Option<&Target>,
        message: impl Into<String>,
    ) {
        let message = message.into();
        tracing::info!(rotation_id = %self.rotation_id, app_id = %self.app_id, ?step, ?state, "{message}");
        self.progress.event(&ProgressEvent {
            rotation_id: self.rotation_id.clone(),
            app_id: self.app_id.clone(),
            app_name: self.app_name.lock().clone(),
            step,
            state,
            target: target.cloned(),
            message,
            status: None,
        });
    }
}

fn new_record(e: &Engine, link: &Link, rotation_id: &str) -> AuditRecord {
    let now = e.inner.now();
    AuditRecord {
        rotation_id: rotation_id.to_owned(),
        started_at: now,
        finished_at: now,
        actor: e.inner.actor.clone(),
        app_id: link.application_id.clone(),
        app_name: String::new(),
        old_key_id: None,
        new_key_id: None,
        new_expires_at: None,
        confidence: Confidence::None,
        targets: link
            .targets
            .iter()
            .map(|t| TargetRecord {
                vault_url: t.vault_url.clone(),
                secret_name: t.secret_name.clone(),
                version: None,
                status: TargetStatus::Skipped,
                error: None,
            })
            .collect(),
        status: RotationStatus::Failed,
        error: None,
        notes: Vec::new(),
        hints: Vec::new(),
        dry_run: false,
        removed_key_ids: Vec::new(),
        skip_reason: None,
    }
}

fn set_target(
    rec: &mut AuditRecord,
    t: &Target,
    version: Option<String>,
    status: TargetStatus,
    error: Option<String>,
) {
    if let Some(r) = rec
        .targets
        .iter_mut()
        .find(|r| r.vault_url == t.vault_url && r.secret_name == t.secret_name)
    {
        r.version = version;
        r.status = status;
        r.error = error;
    }
}

fn finish(e: &Engine, rec: &mut AuditRecord, rep: &Reporter<'_>, result: Result<()>) {
    if let Err(err) = result {
        rec.status = RotationStatus::Failed;
        rec.error = Some(err.to_string());
        rec.hints = err.hints();
    }
    rec.finished_at = e.inner.now();
    if let Err(err) = e.inner.hints.save() {
        tracing::warn!("{err}");
    }
    if !rec.dry_run
        && let Some(h) = &e.inner.history
        && let Err(err) = h.append(rec)
    {
        tracing::warn!("{err}");
        rec.notes
            .push(format!("could not append to the history file: {err}"));
    }
    let msg = match &rec.error {
        Some(err) => format!("{}: {err}", rec.status),
        None => rec.status.to_string(),
    };
    rep.progress.event(&ProgressEvent {
        rotation_id: rec.rotation_id.clone(),
        app_id: rec.app_id.clone(),
        app_name: rec.app_name.clone(),
        step: Step::Audit,
        state: if rec.status == RotationStatus::Failed {
            StepState::Failed
        } else {
            StepState::Done
        },
        target: None,
        message: msg,
        status: Some(rec.status),
    });
}

pub(crate) async fn rotate(
    e: &Engine,
    link: &Link,
    policy: &Policy,
    opts: &RotateOptions,
    progress: &dyn Progress,
) -> AuditRecord {
    let rotation_id = uuid::Uuid::new_v4().to_string();
    let mut rec = new_record(e, link, &rotation_id);
    rec.dry_run = opts.dry_run;
    let rep = Reporter {
        progress,
        rotation_id: rotation_id.clone(),
        app_id: link.application_id.clone(),
        app_name: parking_lot::Mutex::new(String::new()),
    };
    let lock = e
        .inner
        .link_lock(&link.application_id, &link.credential_display_name);
    let _guard = lock.lock().await;
    let result = crate::http::with_limit(
        policy.max_concurrent,
        rotate_inner(e, link, policy, opts, &rep, &mut rec),
    )
    .await;
    finish(e, &mut rec, &rep, result);
    rec
}

fn rotor_tags(
    existing: Option<&BTreeMap<String, String>>,
    app: &Application,
    new_key: &str,
    previous: Option<&str>,
    rotated_at: &str,
) -> BTreeMap<String, String> {
    let mut tags = existing.cloned().unwrap_or_default();
    // replace case-insensitively
    let mut set = |k: &str, v: String| {
        tags.retain(|tk, _| !tk.eq_ignore_ascii_case(k));
        tags.insert(k.to_owned(), v);
    };
    set(TAG_KEY_ID, new_key.to_owned());
    if let Some(p) = previous {
        set(TAG_PREVIOUS_KEY_ID, p.to_owned());
    }
    set(TAG_ROTATED_AT, rotated_at.to_owned());
    set(TAG_APP_ID, app.app_id.clone());
    set(TAG_APP_NAME, app.display_name.chars().take(256).collect());
    tags
}

fn check_tag_room(e: &Engine, st: &LinkState) -> Result<()> {
    for t in &st.targets {
        if let Some(v) = &t.current {
            let n = rotor_tags(Some(&v.tags), &st.app, "x", Some("y"), "z").len();
            if n > MAX_TAGS {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("preparing {}", e.inner.vaults.label(&t.target)),
                    format!(
                        "it has {} tags; with rotor's tags it would have {n}, above Key Vault's limit of {MAX_TAGS}",
                        v.tags.len()
                    ),
                )
                .with_hint("remove unused tags from the secret's current version (rotor keeps existing tags and adds rotor-key-id, rotor-previous-key-id, rotor-rotated-at, app-id, app-name)"));
            }
        }
    }
    Ok(())
}

fn check_confidence(e: &Engine, st: &LinkState, policy: &Policy) -> Result<()> {
    for t in &st.targets {
        let Some(c) = t.confidence else { continue };
        if c < policy.min_confidence {
            let signals: Vec<String> = t.signals.iter().map(|s| s.to_string()).collect();
            let mut err = Error::new(
                ErrorKind::Conflict,
                format!("checking {}", e.inner.vaults.label(&t.target)),
                format!(
                    "match confidence {c} is below the policy minimum {} (signals: {}); it may hold another credential, so rotor will not overwrite it",
                    policy.min_confidence,
                    if signals.is_empty() {
                        "none".to_owned()
                    } else {
                        signals.join(", ")
                    }
                ),
            );
            for h in how_to_raise(&t.signals) {
                err = err.with_hint(h);
            }
            return Err(err.with_hint("or lower policy.min_confidence"));
        }
    }
    Ok(())
}

/// Writes `value` (credential `cred`) to `t`, reads it back and compares.
async fn write_target(
    e: &Engine,
    st: &LinkState,
    t: &TargetState,
    cred: &PasswordCredential,
    value: &SecretValue,
    rotated_at: &str,
) -> Result<String> {
    let inner = &e.inner;
    let previous = t.held.clone().or_else(|| {
        t.current
            .as_ref()
            .and_then(|v| v.tags.get(TAG_KEY_ID).cloned())
    });
    let previous = previous.filter(|p| !p.eq_ignore_ascii_case(&cred.key_id));
    let tags = rotor_tags(
        t.current.as_ref().map(|v| &v.tags),
        &st.app,
        &cred.key_id,
        previous.as_deref(),
        rotated_at,
    );
    let content_type = t.current.as_ref().and_then(|v| v.content_type.clone());
    let version = inner
        .vaults
        .set_secret(&t.target, value, content_type, tags.clone(), Some(cred.end))
        .await?;
    inner.hints.put(
        t.target.vault_url.as_str(),
        &t.target.secret_name,
        &version,
        &value.hint(),
    );
    let back = inner
        .vaults
        .get_secret(&t.target, Some(&version), false)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Verification,
                format!("reading back {}", inner.vaults.label(&t.target)),
                format!("version {version} is missing right after it was written"),
            )
        })?;
    if back.value != *value
        || back.tags.get(TAG_KEY_ID).map(String::as_str) != Some(cred.key_id.as_str())
    {
        return Err(Error::new(
            ErrorKind::Verification,
            format!("reading back {}", inner.vaults.label(&t.target)),
            format!("version {version} does not hold what was written"),
        )
        .with_hint("another process may be writing this secret; re-run to repair"));
    }
    Ok(version)
}

/// Writes `cred` to every target in `todo` concurrently; updates the record. Returns the number
/// updated and the first error.
#[allow(clippy::too_many_arguments)]
async fn write_targets(
    e: &Engine,
    st: &LinkState,
    todo: &[&TargetState],
    cred: &PasswordCredential,
    value: &SecretValue,
    rotated_at: &str,
    rep: &Reporter<'_>,
    rec: &mut AuditRecord,
) -> (usize, Option<Error>) {
    let results = futures::future::join_all(todo.iter().map(|t| async move {
        rep.emit(
            Step::UpdateTarget,
            StepState::Started,
            Some(&t.target),
            format!("writing {}", e.inner.vaults.label(&t.target)),
        );
        let r = write_target(e, st, t, cred, value, rotated_at).await;
        match &r {
            Ok(v) => rep.emit(
                Step::UpdateTarget,
                StepState::Done,
                Some(&t.target),
                format!(
                    "{} now holds {} (version {v})",
                    e.inner.vaults.label(&t.target),
                    cred.key_id
                ),
            ),
            Err(err) => rep.emit(
                Step::UpdateTarget,
                StepState::Failed,
                Some(&t.target),
                err.to_string(),
            ),
        }
        (t.target.clone(), r)
    }))
    .await;
    let mut ok = 0;
    let mut first = None;
    for (t, r) in results {
        match r {
            Ok(v) => {
                ok += 1;
                set_target(rec, &t, Some(v), TargetStatus::Updated, None);
            }
            Err(err) => {
                set_target(rec, &t, None, TargetStatus::Failed, Some(err.to_string()));
                if first.is_none() {
                    first = Some(err);
                }
            }
        }
    }
    (ok, first)
}

/// Finishes the newest credential: copies its value from a target that holds it to the rest.
async fn repair(
    e: &Engine,
    st: &mut LinkState,
    dry_run: bool,
    rep: &Reporter<'_>,
    rec: &mut AuditRecord,
) -> Result<()> {
    let Some(cur) = st.current.clone() else {
        return Ok(());
    };
    let Some(source) = st
        .targets
        .iter()
        .find(|t| t.held.as_deref() == Some(cur.key_id.as_str()))
        .and_then(|t| t.current.clone())
    else {
        return Ok(());
    };
    let rotated_at = source
        .tags
        .get(TAG_ROTATED_AT)
        .cloned()
        .unwrap_or_else(|| fmt_time(cur.start));
    let todo: Vec<&TargetState> = st
        .targets
        .iter()
        .filter(|t| t.held.as_deref() != Some(cur.key_id.as_str()))
        .collect();
    for t in &st.targets {
        if t.held.as_deref() == Some(cur.key_id.as_str()) {
            set_target(
                rec,
                &t.target,
                t.current.as_ref().map(|v| v.version.clone()),
                TargetStatus::Unchanged,
                None,
            );
        }
    }
    let names: Vec<String> = todo
        .iter()
        .map(|t| e.inner.vaults.label(&t.target))
        .collect();
    rec.new_key_id = Some(cur.key_id.clone());
    rec.new_expires_at = Some(cur.end);
    if dry_run {
        for t in &todo {
            set_target(rec, &t.target, None, TargetStatus::WouldUpdate, None);
        }
        rec.notes.push(format!(
            "would copy credential {} to {}",
            cur.key_id,
            names.join(", ")
        ));
        return Ok(());
    }
    rep.emit(
        Step::Resume,
        StepState::Started,
        None,
        format!(
            "finishing credential {}: copying it to {}",
            cur.key_id,
            names.join(", ")
        ),
    );
    let (ok, err) = write_targets(e, st, &todo, &cur, &source.value, &rotated_at, rep, rec).await;
    if let Some(err) = err {
        return Err(Error::new(
            err.kind(),
            format!("finishing rotation to credential {}", cur.key_id),
            format!("updated {ok} of {} targets; {err}", todo.len()),
        )
        .with_hint(
            "re-run to finish; the targets that were not updated still hold a valid credential",
        ));
    }
    rec.notes.push(format!(
        "finished an interrupted rotation: copied credential {} to {}",
        cur.key_id,
        names.join(", ")
    ));
    rep.emit(Step::Resume, StepState::Done, None, "targets agree again");
    for t in st.targets.iter_mut() {
        t.held = Some(cur.key_id.clone());
    }
    st.held = [cur.key_id.clone()].into();
    st.diverged = false;
    Ok(())
}

enum Verified {
    Login,
    NoServicePrincipal,
}

/// Logs in with the new secret (client credentials), retrying through propagation delay.
async fn verify(
    e: &Engine,
    app: &Application,
    value: &SecretValue,
    rep: &Reporter<'_>,
) -> Result<Verified> {
    let inner = &e.inner;
    let action = format!("verifying the new credential of {app}");
    let tenant = inner.tenant().await?;
    let url = inner.endpoints.token_url(&tenant)?;
    let scope = inner.endpoints.graph_scope();
    let deadline = tokio::time::Instant::now() + inner.verify_timeout;
    let mut wait = Duration::from_millis(250);
    let mut last;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let form = [
            ("client_id", app.app_id.as_str()),
            ("client_secret", value.expose()),
            ("grant_type", "client_credentials"),
            ("scope", scope.as_str()),
        ];
        let r = crate::http::send(|| inner.http.post(url.clone()).form(&form), 0, &action).await;
        match r {
            Ok(reply) if reply.status.is_success() => return Ok(Verified::Login),
            Ok(reply) => {
                let (code, _, msg) = crate::http::error_details(&reply.body);
                let text = format!(
                    "{} {}",
                    code.clone().unwrap_or_default(),
                    msg.clone().unwrap_or_default()
                );
                if text.contains("AADSTS7000229") {
                    return Ok(Verified::NoServicePrincipal);
                }
                last = crate::http::describe(reply.status, code.as_deref(), msg.as_deref());
            }
            Err(err) => last = err.to_string(),
        }
        if tokio::time::Instant::now() + wait > deadline {
            break;
        }
        if attempts == 1 || attempts.is_multiple_of(5) {
            rep.emit(Step::Verify, StepState::Waiting, None, format!("the new credential does not work yet ({last}); retrying while Entra propagates it"));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
    Err(Error::new(
        ErrorKind::Verification,
        action,
        format!(
            "logging in with it failed for {} s ({attempts} attempts); last answer: {last}",
            inner.verify_timeout.as_secs()
        ),
    )
    .with_hint("nothing was written to the targets; the old credential stays valid")
    .with_hint("Entra can take a minute to propagate new secrets: re-run, or raise the verification timeout"))
}

async fn remove_quietly(e: &Engine, app: &Application, key_id: &str) -> bool {
    let r = e.inner.graph.remove_password(app, key_id).await;
    e.inner.invalidate(&app.app_id);
    match r {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!("{err}");
            false
        }
    }
}

/// Picks a credential to remove so a new one fits under the password cap.
fn make_room_candidate(
    e: &Engine,
    st: &LinkState,
    policy: &Policy,
) -> Option<(PasswordCredential, String)> {
    let now = e.inner.now();
    let grace = time::Duration::days(i64::from(policy.grace_period_days));
    let lineage_sorted = &st.lineage;
    // 1. lineage credentials no target holds whose successor started more than grace ago, or expired
    for (i, c) in lineage_sorted.iter().enumerate() {
        if st.held.contains(&c.key_id)
            || st
                .current
                .as_ref()
                .is_some_and(|cur| cur.key_id == c.key_id)
        {
            continue;
        }
        if st.in_progress.iter().any(|p| p.key_id == c.key_id) {
            continue;
        }
        let successor_passed = lineage_sorted
            .get(i + 1)
            .is_some_and(|s| s.start + grace <= now);
        if successor_passed || c.end <= now {
            return Some((
                c.clone(),
                format!(
                    "lineage credential {} (no target holds it; grace period over)",
                    c.key_id
                ),
            ));
        }
    }
    // 2. any credential of the app that expired more than the grace period ago: it cannot log in
    st.app
        .password_credentials
        .iter()
        .filter(|c| !st.held.contains(&c.key_id) && c.end + grace <= now)
        .min_by_key(|c| c.end)
        .map(|c| {
            (
                c.clone(),
                format!(
                    "credential {} (`{}`), expired since {} and held by no target",
                    c.key_id,
                    c.display_name.as_deref().unwrap_or(""),
                    fmt_time(c.end)
                ),
            )
        })
}

/// The targets a run will write: every target when the link is due (by expiry, force, or
/// because no target holds a credential), else those lacking the current credential when the
/// targets diverge (the repair copies it to them), else none.
fn targets_to_write<'a>(
    e: &Engine,
    st: &'a LinkState,
    policy: &Policy,
    force: bool,
) -> Vec<&'a TargetState> {
    let whole = LinkState {
        diverged: false,
        ..st.clone()
    };
    if due(e, &whole, policy, force).0 {
        return st.targets.iter().collect();
    }
    match &st.current {
        Some(cur) if st.diverged => st
            .targets
            .iter()
            .filter(|t| t.held.as_deref() != Some(cur.key_id.as_str()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Preflight permission check: proves write access to every existing target in `todo` with a
/// no-op property update of its current version (same permission as writing a new version),
/// concurrently under the per-vault and overall limits. Targets that do not exist yet are noted
/// (they are created by the write). In a dry run nothing is sent and the record says so.
async fn probe_write_access(
    e: &Engine,
    todo: &[&TargetState],
    dry_run: bool,
    rec: &mut AuditRecord,
) -> Result<()> {
    let vaults = &e.inner.vaults;
    let missing: Vec<String> = todo
        .iter()
        .filter(|t| t.current.is_none())
        .map(|t| vaults.label(&t.target))
        .collect();
    if !missing.is_empty() {
        rec.notes.push(format!(
            "{} not exist yet: rotor creates {} when writing, so write access to {} was not checked in advance",
            if missing.len() == 1 {
                format!("{} does", missing[0])
            } else {
                format!("{} do", missing.join(", "))
            },
            if missing.len() == 1 { "it" } else { "them" },
            if missing.len() == 1 { "it" } else { "them" },
        ));
    }
    let existing: Vec<(&Target, &SecretVersion)> = todo
        .iter()
        .filter_map(|t| t.current.as_ref().map(|v| (&t.target, v)))
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    if dry_run {
        let names: Vec<String> = existing.iter().map(|(t, _)| vaults.label(t)).collect();
        rec.notes.push(format!(
            "dry run: write access was not proven for {} (a real run checks it before creating a credential)",
            names.join(", ")
        ));
        return Ok(());
    }
    let results = futures::future::join_all(
        existing
            .iter()
            .map(|(t, v)| async move { vaults.probe_write(t, v).await }),
    )
    .await;
    for r in results {
        r.map_err(|err| {
            err.with_hint(
                "nothing was changed: rotor checks write access to every target before creating a credential",
            )
        })?;
    }
    Ok(())
}

async fn rotate_inner(
    e: &Engine,
    link: &Link,
    policy: &Policy,
    opts: &RotateOptions,
    rep: &Reporter<'_>,
    rec: &mut AuditRecord,
) -> Result<()> {
    let inner = &e.inner;
    // 1. Preflight
    rep.emit(
        Step::Preflight,
        StepState::Started,
        None,
        format!(
            "reading {} and {} target(s)",
            link.application_id,
            link.targets.len()
        ),
    );
    let app = inner.fetch_app(&link.application_id).await?;
    rec.app_name = app.display_name.clone();
    *rep.app_name.lock() = app.display_name.clone();
    if let Some(x) = excluded(link, &app, policy) {
        rec.status = RotationStatus::Excluded;
        rec.notes
            .push(format!("excluded by policy (`{x}`); nothing was changed"));
        rep.emit(
            Step::Preflight,
            StepState::Skipped,
            None,
            format!("excluded by `{x}`"),
        );
        return Ok(());
    }
    if link.targets.is_empty() {
        return Err(
            Error::usage(format!("rotating {link}"), "the link has no targets").with_hint(
                "add at least one Key Vault secret (vault_url, secret_name) to the link",
            ),
        );
    }
    let mut st = read_state(e, link, policy, app.clone(), true).await?;
    rec.confidence = st.confidence();
    rec.old_key_id = st.current.as_ref().map(|c| c.key_id.clone());
    for t in &st.targets {
        set_target(
            rec,
            &t.target,
            t.current.as_ref().map(|v| v.version.clone()),
            TargetStatus::Skipped,
            None,
        );
    }
    if let Some(p) = st.in_progress.first() {
        rec.status = RotationStatus::Skipped;
        rec.notes.push(format!(
            "rotation in progress: credential {} was created at {} by rotation {} and no target holds it yet; it is treated as an orphan after {} s",
            p.key_id,
            fmt_time(p.start),
            p.rotation_id().unwrap_or("?"),
            policy.pending_window.as_secs()
        ));
        rep.emit(
            Step::Preflight,
            StepState::Skipped,
            None,
            "rotation in progress",
        );
        return Ok(());
    }
    check_confidence(e, &st, policy)?;
    check_tag_room(e, &st)?;
    let todo = targets_to_write(e, &st, policy, opts.force);
    probe_write_access(e, &todo, opts.dry_run, rec).await?;
    rep.emit(
        Step::Preflight,
        StepState::Done,
        None,
        format!("confidence {}", rec.confidence),
    );

    // Orphans: rotor credentials no target holds, older than the pending window.
    for o in st.orphans.clone() {
        if opts.dry_run {
            rec.notes.push(format!(
                "would remove orphan credential {} (created {}, held by no target)",
                o.key_id,
                fmt_time(o.start)
            ));
            continue;
        }
        rep.emit(
            Step::Cleanup,
            StepState::Started,
            None,
            format!("removing orphan credential {}", o.key_id),
        );
        inner.graph.remove_password(&st.app, &o.key_id).await?;
        inner.invalidate(&st.app.app_id);
        rec.removed_key_ids.push(o.key_id.clone());
        st.app.password_credentials.retain(|c| c.key_id != o.key_id);
        st.lineage.retain(|c| c.key_id != o.key_id);
    }

    // Divergence: finish the newest credential first.
    let mut repaired = false;
    if st.diverged && st.current.is_some() {
        repair(e, &mut st, opts.dry_run, rep, rec).await?;
        repaired = true;
    }

    if repaired && opts.dry_run {
        rec.status = RotationStatus::Skipped;
        return Ok(());
    }
    let (is_due, reason, next) = due(e, &st, policy, opts.force);
    let is_due = is_due && !(repaired && st.diverged);
    if repaired && !opts.dry_run {
        // after a repair the link is whole; rotate only if also due by expiry (or forced)
        let (still_due, reason2, _) = due(e, &st, policy, opts.force);
        if !still_due {
            rec.status = RotationStatus::Success;
            return Ok(());
        }
        if let Some(r) = reason2 {
            rec.notes.push(format!("rotating: {r}"));
        }
    } else if !is_due {
        rec.status = RotationStatus::Skipped;
        rec.new_key_id = None;
        rec.notes.push(match (&st.current, next) {
            (Some(c), Some(n)) => format!(
                "not due: credential {} expires at {}; next rotation at {}",
                c.key_id,
                fmt_time(c.end),
                fmt_time(n)
            ),
            _ => "not due".to_owned(),
        });
        rep.emit(Step::Preflight, StepState::Skipped, None, "not due");
        return Ok(());
    } else if let Some(r) = reason {
        rec.notes.push(format!("rotating: {r}"));
    }

    let validity = opts
        .validity_days
        .unwrap_or(policy.new_secret_validity_days);
    let now = inner.now();
    let end = now + time::Duration::days(i64::from(validity));
    let display = format!("{} rotor:{}", link.credential_display_name, rec.rotation_id);

    // 2. Make room
    let at_cap = st
        .app
        .password_cap()
        .is_some_and(|cap| st.app.password_credentials.len() >= cap);
    let room = if at_cap {
        match make_room_candidate(e, &st, policy) {
            Some(c) => Some(c),
            None => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("making room for a new password on {}", st.app),
                    format!(
                        "it already has {} passwords, the cap for applications that accept personal accounts, and none can be removed safely (each is held by a target or inside its grace period)",
                        st.app.password_credentials.len()
                    ),
                )
                .with_hint("run `rotor cleanup` after the grace period, or remove an unused password in the Entra portal"));
            }
        }
    } else {
        None
    };

    if opts.dry_run {
        rec.status = RotationStatus::Skipped;
        if let Some((_, why)) = &room {
            rec.notes
                .push(format!("would remove {why} to stay under the password cap"));
        }
        rec.notes.push(format!(
            "would add password `{display}` valid until {}, verify it, and write it to {} target(s)",
            fmt_time(end),
            st.targets.len()
        ));
        for t in &st.targets {
            set_target(
                rec,
                &t.target,
                t.current.as_ref().map(|v| v.version.clone()),
                TargetStatus::WouldUpdate,
                None,
            );
        }
        rec.new_expires_at = Some(end);
        return Ok(());
    }

    if let Some((c, why)) = room {
        rep.emit(
            Step::MakeRoom,
            StepState::Started,
            None,
            format!("removing {why}"),
        );
        inner.graph.remove_password(&st.app, &c.key_id).await?;
        inner.invalidate(&st.app.app_id);
        rec.removed_key_ids.push(c.key_id.clone());
        rec.notes.push(format!(
            "made room under the password cap by removing {why}"
        ));
        rep.emit(
            Step::MakeRoom,
            StepState::Done,
            None,
            format!("removed {}", c.key_id),
        );
    }

    // 3. Create
    rep.emit(
        Step::Create,
        StepState::Started,
        None,
        format!("adding password `{display}`"),
    );
    let (newc, value) = inner
        .graph
        .add_password(&st.app, &display, end)
        .await
        .inspect_err(|_| inner.invalidate(&st.app.app_id))?;
    inner.invalidate(&st.app.app_id);
    rec.new_key_id = Some(newc.key_id.clone());
    rec.new_expires_at = Some(newc.end);
    rep.emit(
        Step::Create,
        StepState::Done,
        None,
        format!(
            "created credential {} (hint {}…)",
            newc.key_id,
            newc.hint.clone().unwrap_or_default()
        ),
    );

    // Concurrent rotations of the lineage: the credential created first wins (same order for
    // every observer: start time, then Graph's creation order); later ones back off.
    let fresh = inner.fetch_app(&link.application_id).await?;
    let fresh_lineage = fresh.lineage(&link.credential_display_name);
    let seen: BTreeSet<&str> = st.lineage.iter().map(|c| c.key_id.as_str()).collect();
    let ours = fresh_lineage.iter().position(|c| c.key_id == newc.key_id);
    let rival = fresh_lineage
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.rotation_id().is_some()
                && c.key_id != newc.key_id
                && !seen.contains(c.key_id.as_str())
        })
        .find(|(i, _)| ours.is_none_or(|o| *i < o))
        .map(|(_, c)| (*c).clone());
    if let Some(r) = rival {
        let removed = remove_quietly(e, &fresh, &newc.key_id).await;
        rec.status = RotationStatus::Skipped;
        rec.new_key_id = None;
        rec.new_expires_at = None;
        rec.notes.push(format!(
            "rotation in progress: another run (rotation {}) created credential {} first; {} this run's credential {}",
            r.rotation_id().unwrap_or("?"),
            r.key_id,
            if removed { "removed" } else { "could not remove (it becomes an orphan)" },
            newc.key_id
        ));
        if removed {
            rec.removed_key_ids.push(newc.key_id.clone());
        }
        return Ok(());
    }

    // 4. Verify
    rep.emit(
        Step::Verify,
        StepState::Started,
        None,
        "logging in with the new credential",
    );
    let verified = match verify(e, &st.app, &value, rep).await {
        Ok(v) => v,
        Err(err) => {
            let removed = remove_quietly(e, &st.app, &newc.key_id).await;
            if removed {
                rec.removed_key_ids.push(newc.key_id.clone());
                rec.new_key_id = None;
                rec.new_expires_at = None;
                rec.notes
                    .push(format!("removed the unverified credential {}", newc.key_id));
            } else {
                rec.notes.push(format!(
                    "could not remove the unverified credential {}; a later run removes it as an orphan after the pending window",
                    newc.key_id
                ));
            }
            rep.emit(Step::Verify, StepState::Failed, None, err.to_string());
            return Err(err);
        }
    };
    match verified {
        Verified::Login => rep.emit(
            Step::Verify,
            StepState::Done,
            None,
            "the new credential works",
        ),
        Verified::NoServicePrincipal => {
            rec.notes.push("verified by read-back: the application has no service principal (AADSTS7000229), so logging in with the new secret is impossible".to_owned());
            rep.emit(
                Step::Verify,
                StepState::Skipped,
                None,
                "no service principal: verifying by read-back instead",
            );
        }
    }

    // 5. Update targets
    let rotated_at = fmt_time(inner.now());
    let todo: Vec<&TargetState> = st.targets.iter().collect();
    let (ok, err) = write_targets(e, &st, &todo, &newc, &value, &rotated_at, rep, rec).await;
    drop(value);
    if let Some(err) = err {
        if ok == 0 {
            let removed = remove_quietly(e, &st.app, &newc.key_id).await;
            if removed {
                rec.removed_key_ids.push(newc.key_id.clone());
                rec.new_key_id = None;
                rec.new_expires_at = None;
            }
            return Err(Error::new(
                err.kind(),
                format!("rotating {}", link),
                format!(
                    "no target could be written ({err}); {}",
                    if removed {
                        "the new credential was removed and nothing changed"
                    } else {
                        "the new credential could not be removed and becomes an orphan"
                    }
                ),
            )
            .with_hint("the old credential stays valid")
            .with_hint_all(err.hints()));
        }
        return Err(Error::new(
            err.kind(),
            format!("rotating {}", link),
            format!("updated {ok} of {} targets; {err}", todo.len()),
        )
        .with_hint("the old credential stays valid; re-run to finish (rotor copies the new credential to the remaining targets)")
        .with_hint_all(err.hints()));
    }
    rec.status = RotationStatus::Success;
    Ok(())
}

pub(crate) async fn sync_targets(
    e: &Engine,
    link: &Link,
    policy: &Policy,
    progress: &dyn Progress,
) -> Result<AuditRecord> {
    let rotation_id = uuid::Uuid::new_v4().to_string();
    let mut rec = new_record(e, link, &rotation_id);
    let rep = Reporter {
        progress,
        rotation_id,
        app_id: link.application_id.clone(),
        app_name: parking_lot::Mutex::new(String::new()),
    };
    let lock = e
        .inner
        .link_lock(&link.application_id, &link.credential_display_name);
    let _guard = lock.lock().await;
    let app = e.inner.fetch_app(&link.application_id).await?;
    rec.app_name = app.display_name.clone();
    *rep.app_name.lock() = app.display_name.clone();
    let mut st = read_state(e, link, policy, app, true).await?;
    rec.confidence = st.confidence();
    rec.old_key_id = st.current.as_ref().map(|c| c.key_id.clone());
    let Some(cur) = st.current.clone() else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("syncing the targets of {link}"),
            "no target holds a credential of this lineage, so there is no value to copy",
        )
        .with_hint(
            "rotate the link instead: it creates a new credential and writes it to every target",
        ));
    };
    check_confidence(e, &st, policy)?;
    check_tag_room(e, &st)?;
    let lacking: Vec<&TargetState> = st
        .targets
        .iter()
        .filter(|t| t.held.as_deref() != Some(cur.key_id.as_str()))
        .collect();
    probe_write_access(e, &lacking, false, &mut rec).await?;
    let r = repair(e, &mut st, false, &rep, &mut rec).await;
    if r.is_ok() {
        rec.status = RotationStatus::Success;
        rec.new_key_id = Some(cur.key_id.clone());
        rec.new_expires_at = Some(cur.end);
        for t in &st.targets {
            if let Some(r) = rec.targets.iter_mut().find(|r| {
                r.vault_url == t.target.vault_url && r.secret_name == t.target.secret_name
            }) && r.status == TargetStatus::Skipped
            {
                r.status = TargetStatus::Unchanged;
                r.version = t.current.as_ref().map(|v| v.version.clone());
            }
        }
    }
    finish(e, &mut rec, &rep, r);
    Ok(rec)
}

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
    let mine: Vec<&crate::model::Match> = report
        .matches
        .iter()
        .filter(|m| {
            m.kind == crate::model::CredentialKind::Secret
                && m.key_id.eq_ignore_ascii_case(&cred.key_id)
        })
        .collect();
    let targets: BTreeSet<Target> = mine
        .iter()
        .filter(|m| m.confidence >= policy.min_confidence && m.excluded.is_none())
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
            err = err.with_hint(format!(
                "candidate: Key Vault secret `{}` (vault `{}`): {} ({})",
                m.secret_name,
                m.vault,
                m.confidence,
                s.join(", ")
            ));
        }
        return Err(err.with_hint(
            "tag the secret with `rotor-key-id` = the keyId, or list the targets explicitly",
        ));
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
    let lineage_of = |m: &crate::model::Match| {
        apps.iter()
            .find(|a| a.app_id == m.app_id)
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
        if m.confidence < policy.min_confidence || m.excluded.is_some() {
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
    let apps = e.discover(None).await?;
    let vaults = e.resolve_vaults(config).await?;
    let report = e.match_secrets(&apps, &vaults, &config.policy).await?;
    Ok(links_from_matches(&report, &apps, &config.policy))
}

pub(crate) async fn due_links(e: &Engine, config: &Config) -> Result<Vec<(Link, LinkStatus)>> {
    let links = links(e, config).await?;
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
        let s = s?;
        if s.rotation_due {
            out.push((l, s));
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
    let each: Vec<_> = links
        .iter()
        .map(|l| rotate(e, l, policy, opts, progress))
        .collect();
    crate::http::with_limit(
        policy.max_concurrent,
        futures::stream::iter(each)
            .buffered(policy.max_concurrent.max(1))
            .collect(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CredentialKind, Match, MatchReport, PasswordCredential, Signal};
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
