//! Resuming another run's work, from what Azure shows: remove orphans (rotor credentials no
//! secret in scope holds, older than the pending window) and repair diverged targets (copy the
//! current credential from a target that holds it to those that do not). `sync_targets` is the
//! repair alone.

use super::plan::removable;
use super::record::{Reporter, fmt_time, set_target};
use super::state::{LinkState, TargetState, outside_holders};
use super::update::{Payload, write_targets};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::matching::TAG_ROTATED_AT;
use crate::model::{AuditRecord, Link, PasswordCredential, TargetStatus};
use crate::policy::Policy;
use crate::progress::{Step, StepState};

/// Re-proves, with a fresh scan of every vault in scope, that `c` may be removed.
pub(crate) async fn prove_removable(
    e: &Engine,
    link: &Link,
    st: &LinkState,
    c: &PasswordCredential,
    policy: &Policy,
) -> std::result::Result<String, String> {
    let (outside, scan_errors) = outside_holders(e, link, &st.lineage, true).await;
    let fresh = LinkState {
        outside,
        scan_errors,
        ..st.clone()
    };
    removable(&fresh, c, policy, e.inner.now(), &|t| {
        e.inner.vaults.label(t)
    })
}

/// Removes the orphans the plan found, each after a fresh proof.
pub(crate) async fn remove_orphans(
    e: &Engine,
    link: &Link,
    st: &mut LinkState,
    orphans: &[(PasswordCredential, String)],
    policy: &Policy,
    rep: &Reporter<'_>,
    rec: &mut AuditRecord,
) -> Result<()> {
    for (o, _) in orphans {
        if let Err(kept) = prove_removable(e, link, st, o, policy).await {
            rec.notes
                .push(format!("kept credential {}: {kept}", o.key_id));
            continue;
        }
        rep.emit(
            Step::Cleanup,
            StepState::Started,
            None,
            format!(
                "removing orphan credential {} (created {}, held by no secret in scope)",
                o.key_id,
                fmt_time(o.start)
            ),
        );
        e.inner.graph.remove_password(&st.app, &o.key_id).await?;
        e.inner.invalidate(&st.app.app_id);
        rec.removed_key_ids.push(o.key_id.clone());
        st.app.password_credentials.retain(|c| c.key_id != o.key_id);
        st.lineage.retain(|c| c.key_id != o.key_id);
        st.orphans.retain(|c| c.key_id != o.key_id);
    }
    Ok(())
}

/// The targets lacking `cur`.
pub(crate) fn lacking<'a>(st: &'a LinkState, cur: &PasswordCredential) -> Vec<&'a TargetState> {
    st.targets
        .iter()
        .filter(|t| t.held.as_deref() != Some(cur.key_id.as_str()))
        .collect()
}

/// Finishes the newest credential: copies its value from a target that holds it to the rest.
pub(crate) async fn repair(
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
    let rotated_at = super::tags::tag(&source.tags, TAG_ROTATED_AT)
        .map(str::to_owned)
        .unwrap_or_else(|| fmt_time(cur.start));
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
    let todo = lacking(st, &cur);
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
    let payload = Payload {
        cred: &cur,
        value: &source.value,
        rotated_at: &rotated_at,
    };
    let w = write_targets(e, st, &todo, &payload, rep, rec).await;
    if let Some(err) = w.first {
        return Err(Error::new(
            err.kind(),
            format!("finishing rotation to credential {}", cur.key_id),
            format!(
                "updated {} of {} targets ({} refused, {} unknown); {err}",
                w.written,
                todo.len(),
                w.not_written,
                w.unknown
            ),
        )
        .with_hint(
            "re-run to finish; the targets that were not updated still hold a valid credential",
        )
        .with_hint_all(err.hints()));
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
