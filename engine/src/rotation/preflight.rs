//! Step 1: preflight. Everything that can refuse a rotation is checked here, before anything
//! changes: confidence and foreign secrets, tag room, the pending window's lower bound, the
//! history file, and write access to every target that will be written.

use super::record::Reporter;
use super::state::{LinkState, TargetState};
use super::tags::{MAX_TAGS, rotor_tags};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result, Subject};
use crate::keyvault::SecretVersion;
use crate::matching::how_to_raise;
use crate::model::{AuditRecord, Target};
use crate::policy::Policy;
use std::time::Duration;

/// How long a run may take from creating its credential to starting its writes beyond the
/// verification timeout. A run past it stops before writing (its credential becomes an orphan),
/// so `pending_window` ≥ verify timeout + this budget means no second run ever removes a
/// credential that a live run is about to write.
pub const WRITE_BUDGET: Duration = Duration::from_secs(120);

/// Refuses a `pending_window` below the verification timeout plus [`WRITE_BUDGET`].
pub(crate) fn check_pending_window(e: &Engine, policy: &Policy) -> Result<()> {
    let min = e.inner.verify_timeout + WRITE_BUDGET;
    if policy.pending_window < min {
        return Err(Error::config(
            "checking policy.pending_window",
            format!(
                "{} s is below {} s (verification timeout {} s + write budget {} s): a second run could remove a credential this run is still verifying or writing",
                policy.pending_window.as_secs(),
                min.as_secs(),
                e.inner.verify_timeout.as_secs(),
                WRITE_BUDGET.as_secs()
            ),
        )
        .with_hint(format!("set pending_window to at least \"{}s\" in the [policy] of rotor.toml (default \"1h\")", min.as_secs()))
        .with_subject(Subject::Setting("pending_window".to_owned())));
    }
    Ok(())
}

/// Proves the history file can be appended to before anything changes.
pub(crate) fn check_history(e: &Engine, dry_run: bool) -> Result<()> {
    match &e.inner.history {
        Some(h) if !dry_run => h.ensure_writable(),
        _ => Ok(()),
    }
}

pub(crate) fn check_tag_room(e: &Engine, st: &LinkState) -> Result<()> {
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
                .with_hint("remove unused tags from the secret's current version (rotor keeps existing tags and adds rotor-key-id, rotor-previous-key-id, rotor-rotated-at, app-id, app-name)")
                .with_subject(Subject::Target(t.target.clone())));
            }
        }
    }
    Ok(())
}

/// Refuses targets rotor must never write (another app's secret, expiry-only) and targets below
/// the policy's minimum confidence.
pub(crate) fn check_confidence(e: &Engine, st: &LinkState, policy: &Policy) -> Result<()> {
    for t in &st.targets {
        let label = e.inner.vaults.label(&t.target);
        if let Some(why) = &t.rejected {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("checking {label}"),
                format!("rotor will not write it for {}: {why}", st.app),
            )
            .with_hint("remove this secret from the link's targets")
            .with_hint(format!(
                "`rotor match --app {}` shows every candidate and why it was accepted or rejected",
                st.app.app_id
            ))
            .with_subject(Subject::Target(t.target.clone())));
        }
        let Some(c) = t.confidence else { continue };
        if c < policy.min_confidence {
            let signals: Vec<String> = t.signals.iter().map(|s| s.to_string()).collect();
            let mut err = Error::new(
                ErrorKind::Conflict,
                format!("checking {label}"),
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
            return Err(
                err.with_hint("or lower policy.min_confidence after checking the match by hand")
            );
        }
    }
    Ok(())
}

/// Proves write access to every existing target in `todo` with a no-op property update of its
/// current version (same permission as writing a new version). Targets that do not exist yet are
/// noted (they are created by the write). In a dry run nothing is sent and the record says so.
pub(crate) async fn probe_write_access(
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
        let (verb, them) = if missing.len() == 1 {
            ("does", "it")
        } else {
            ("do", "them")
        };
        rec.notes.push(format!(
            "{} {verb} not exist yet: rotor creates {them} when writing, so write access to {them} was not checked in advance",
            missing.join(", ")
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
    let results = crate::http::join_all(existing.iter().map(|(t, v)| async move {
        vaults
            .probe_write(t, v)
            .await
            .map_err(|e| e.with_subject(Subject::Target((*t).clone())))
    }))
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

/// Every check of step 1 that needs no decision yet.
pub(crate) fn checks(
    e: &Engine,
    st: &LinkState,
    policy: &Policy,
    rep: &Reporter<'_>,
) -> Result<()> {
    check_confidence(e, st, policy)?;
    check_tag_room(e, st)?;
    if !st.scan_errors.is_empty() {
        rep.emit(
            crate::progress::Step::Preflight,
            crate::progress::StepState::Waiting,
            None,
            format!(
                "some vaults in scope could not be listed ({}); no credential is removed this run",
                st.scan_errors.join("; ")
            ),
        );
    }
    Ok(())
}
