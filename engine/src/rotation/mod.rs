//! The rotation protocol, resumable from Azure's state alone (docs/protocol.md).
//!
//! Everything rotor needs to resume is in Azure: the lineage's credentials (display name
//! `<name> rotor:<rotation-id>`, start/end dates) and the targets' current versions (tag
//! `rotor-key-id`, else the value's first three characters against the credentials' hints).
//!
//! | module | step |
//! |---|---|
//! | [`state`](self) `state.rs` | read the app, the targets and the scope scan; classify (pure) |
//! | `plan.rs` | pure: due, [`plan::decide`], the one `removable()` rule |
//! | `preflight.rs` | 1. refuse before anything changes |
//! | `resume.rs` | orphans, repair of diverged targets (also `sync_targets`) |
//! | `make_room.rs` | 2. make room under the password cap, within the lineage |
//! | `create.rs` | 3. `addPassword`; back off from a rival run |
//! | `verify.rs` | 4. log in with the new credential |
//! | `update.rs` | 5. write + read back; `Written / NotWritten / Unknown` |
//! | `record.rs` | 6. audit record, progress, history |

mod create;
mod make_room;
pub(crate) mod plan;
pub(crate) mod preflight;
pub(crate) mod record;
mod resume;
pub(crate) mod state;
mod tags;
mod update;
mod verify;

pub use crate::links::links_from_matches;
pub use preflight::WRITE_BUDGET;
pub(crate) use record::fmt_time;
pub(crate) use state::read_state;

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    Application, AuditRecord, Link, LinkStatus, RotateOptions, RotationStatus, SkipReason,
    TargetStatus,
};
use crate::policy::Policy;
use crate::progress::{Progress, Step, StepState};
use plan::Decision;
use record::{Reporter, finish, new_record, set_target, skip};
use state::LinkState;

pub(crate) async fn remove_quietly(e: &Engine, app: &Application, key_id: &str) -> bool {
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

fn label(e: &Engine) -> impl Fn(&crate::model::Target) -> String + '_ {
    move |t| e.inner.vaults.label(t)
}

fn status_of(e: &Engine, link: &Link, st: &LinkState, policy: &Policy) -> LinkStatus {
    let now = e.inner.now();
    let d = plan::due(st, policy, false, now, &label(e));
    let mut due_reason = d.reason.clone();
    let exc = excluded(link, &st.app, policy);
    let in_progress = !st.in_progress.is_empty();
    if let Some(p) = st.in_progress.first() {
        due_reason = Some(format!(
            "rotation in progress: credential {} was created at {} and no target holds it yet",
            p.key_id,
            fmt_time(p.start)
        ));
    }
    let claimed = match plan::decide(st, policy, &RotateOptions::default(), now, &label(e)) {
        Decision::Claimed(h) => Some(h),
        _ => None,
    };
    if let Some(h) = &claimed {
        let refs: Vec<&state::OutsideHolder> = h.iter().collect();
        due_reason = Some(state::claimed_error(e, link, &refs).to_string());
    }
    let claimed_any = claimed.is_some();
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
        next_rotation_at: d.next_rotation_at,
        rotation_due: d.reason.is_some() && exc.is_none() && !in_progress && !claimed_any,
        due_reason: if exc.is_some() { None } else { due_reason },
        diverged: st.diverged,
        excluded: exc,
        confidence: st.confidence(),
        previous_key_ids,
        cleanup_from: plan::cleanup_from(st, policy),
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
        claimed_elsewhere: claimed
            .map(|h| h.into_iter().map(|h| h.target).collect())
            .unwrap_or_default(),
    }
}

pub(crate) async fn inspect_link(e: &Engine, link: &Link, policy: &Policy) -> Result<LinkStatus> {
    let app = e.get_application(&link.application_id).await?;
    let st = read_state(e, link, policy, app, false, Some(false)).await?;
    if let Err(err) = e.inner.hints.save() {
        tracing::warn!("{err}");
    }
    Ok(status_of(e, link, &st, policy))
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
    let rep = Reporter::new(progress, &rotation_id, &link.application_id);
    let lock = e
        .inner
        .link_lock(&link.application_id, &link.credential_display_name);
    let _guard = lock.lock().await;
    let result = crate::http::with_limit(
        policy.max_concurrent,
        run(e, link, policy, opts, &rep, &mut rec),
    )
    .await
    .map_err(|err| {
        err.with_subject(crate::error::Subject::Application(
            link.application_id.clone(),
        ))
    });
    finish(e, &mut rec, &rep, result);
    rec
}

/// Step 1: reads Azure and refuses what must not run. `None`: excluded (recorded).
async fn preflight(
    e: &Engine,
    link: &Link,
    policy: &Policy,
    opts: &RotateOptions,
    rep: &Reporter<'_>,
    rec: &mut AuditRecord,
) -> Result<Option<LinkState>> {
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
    preflight::check_pending_window(e, policy)?;
    preflight::check_history(e, opts.dry_run)?;
    // The application and the targets are read at once when the application is known (from
    // discovery) and not excluded: nothing of either read depends on the other.
    let at_once = e
        .inner
        .known_app(&link.application_id)
        .is_some_and(|a| excluded(link, &a, policy).is_none());
    let (app, versions) = if at_once {
        let (app, versions) = crate::http::join(
            e.inner.fetch_app(&link.application_id),
            state::read_versions(e, link, true),
        )
        .await;
        (app?, Some(versions))
    } else {
        (e.inner.fetch_app(&link.application_id).await?, None)
    };
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
        return Ok(None);
    }
    if link.targets.is_empty() {
        return Err(
            Error::usage(format!("rotating {link}"), "the link has no targets").with_hint(
                "add at least one Key Vault secret (vault_url, secret_name) to the link",
            ),
        );
    }
    let st = match versions {
        Some(versions) => state::state_from(e, link, policy, app, versions?, Some(false)).await?,
        None => read_state(e, link, policy, app, true, Some(false)).await?,
    };
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
    Ok(Some(st))
}

/// The protocol: preflight, decide, then each step in order. Every step decides from Azure's
/// state, so a run stopped anywhere is finished by the next.
async fn run(
    e: &Engine,
    link: &Link,
    policy: &Policy,
    opts: &RotateOptions,
    rep: &Reporter<'_>,
    rec: &mut AuditRecord,
) -> Result<()> {
    let Some(mut st) = preflight(e, link, policy, opts, rep, rec).await? else {
        return Ok(());
    };
    let now = e.inner.now();
    let decision = plan::decide(&st, policy, opts, now, &label(e));
    let (remove_orphans, repair, rotate) = match decision {
        Decision::InProgress(p) => {
            skip(
                rec,
                SkipReason::InProgress,
                format!(
                    "rotation in progress: credential {} was created at {} by rotation {} and no target holds it yet; it is treated as an orphan after {} s",
                    p.key_id,
                    fmt_time(p.start),
                    p.rotation_id().unwrap_or("?"),
                    policy.pending_window.as_secs()
                ),
            );
            rep.emit(
                Step::Preflight,
                StepState::Skipped,
                None,
                "rotation in progress",
            );
            return Ok(());
        }
        Decision::Claimed(holders) => {
            let refs: Vec<&state::OutsideHolder> = holders.iter().collect();
            return Err(state::claimed_error(e, link, &refs));
        }
        Decision::NoRoom { kept } => return Err(make_room::no_room(&st, &kept)),
        Decision::NotDue { current, next } => {
            let note = match (&current, next) {
                (Some(c), Some(n)) => format!(
                    "not due: credential {} expires at {}; next rotation at {}",
                    c.key_id,
                    fmt_time(c.end),
                    fmt_time(n)
                ),
                _ => "not due".to_owned(),
            };
            preflight::checks(e, &st, policy, rep)?;
            skip(rec, SkipReason::NotDue, note);
            rep.emit(Step::Preflight, StepState::Skipped, None, "not due");
            return Ok(());
        }
        Decision::Act {
            remove_orphans,
            repair,
            rotate,
        } => (remove_orphans, repair, rotate),
    };
    preflight::checks(e, &st, policy, rep)?;
    let todo: Vec<&state::TargetState> = match (&rotate, &repair) {
        (Some(_), _) => st.targets.iter().collect(),
        (None, Some(r)) => resume::lacking(&st, &r.credential),
        (None, None) => Vec::new(),
    };
    preflight::probe_write_access(e, &todo, opts.dry_run, rec).await?;
    rep.emit(
        Step::Preflight,
        StepState::Done,
        None,
        format!("confidence {}", rec.confidence),
    );

    if opts.dry_run {
        return describe(
            e,
            link,
            &mut st,
            policy,
            opts,
            &remove_orphans,
            repair.is_some(),
            rotate.as_ref(),
            rep,
            rec,
        )
        .await;
    }
    if rep.cancelled() {
        return Err(record::cancelled_error(link, "changing anything"));
    }
    resume::remove_orphans(e, link, &mut st, &remove_orphans, policy, rep, rec).await?;
    if repair.is_some() {
        if rep.cancelled() {
            return Err(record::cancelled_error(link, "repairing the targets"));
        }
        resume::repair(e, &mut st, false, rep, rec).await?;
    }
    let Some(rotate) = rotate else {
        rec.status = RotationStatus::Success;
        return Ok(());
    };
    rec.notes.push(format!("rotating: {}", rotate.reason));
    let validity = opts
        .validity_days
        .unwrap_or(policy.new_secret_validity_days);
    let end = plan::plus_days(e.inner.now(), validity);
    let display = format!("{} rotor:{}", link.credential_display_name, rec.rotation_id);
    if let Some(room) = &rotate.make_room {
        if rep.cancelled() {
            return Err(record::cancelled_error(link, "making room"));
        }
        make_room::run(e, link, &mut st, room, policy, rep, rec).await?;
    }
    if rep.cancelled() {
        return Err(record::cancelled_error(link, "creating a credential"));
    }
    let pending = match create::run(e, link, &st, &display, end, rep).await? {
        create::Created::Ours(p) => p,
        create::Created::Rival {
            rival,
            removed_ours,
        } => {
            lost_race(rec, &rival, removed_ours);
            return Ok(());
        }
    };
    rec.new_key_id = Some(pending.credential.key_id.clone());
    rec.new_expires_at = Some(pending.credential.end);
    // Steps 3 and 4 overlap: the check for a rival run (reading until Graph shows the new
    // credential) and verification (logging in with it) need nothing of each other.
    rep.emit(
        Step::Verify,
        StepState::Started,
        None,
        "logging in with the new credential",
    );
    let (checked, verified) = crate::http::join(
        create::check_rival(e, link, &st, &pending.credential.key_id),
        async {
            let r = verify::run(e, &st.app, &pending.value, rep).await;
            (r, tokio::time::Instant::now())
        },
    )
    .await;
    let seen_at = match checked? {
        create::Checked::Clear { seen_at } => seen_at,
        create::Checked::Rival {
            rival,
            removed_ours,
        } => {
            lost_race(rec, &rival, Some(removed_ours));
            return Ok(());
        }
    };
    let (verified, verified_at) = verified;
    // A read that showed the credential, sent after verification ended, is the re-read before
    // writing (invariant 3).
    let seen_after_verify = seen_at.is_some_and(|s| s >= verified_at);
    verify_and_write(e, link, &st, pending, verified, seen_after_verify, rep, rec).await
}

/// Another run's credential of the lineage came first: this run backs off (recorded).
fn lost_race(
    rec: &mut AuditRecord,
    rival: &crate::model::PasswordCredential,
    removed_ours: Option<(String, bool)>,
) {
    rec.new_key_id = None;
    rec.new_expires_at = None;
    let ours = match &removed_ours {
        Some((k, true)) => {
            rec.removed_key_ids.push(k.clone());
            format!("removed this run's credential {k}")
        }
        Some((k, false)) => {
            format!("could not remove this run's credential {k} (it becomes an orphan)")
        }
        None => "the application is at its password cap, so this run created none".to_owned(),
    };
    skip(
        rec,
        SkipReason::LostRace,
        format!(
            "rotation in progress: another run (rotation {}) created credential {} first; {ours}",
            rival.rotation_id().unwrap_or("?"),
            rival.key_id,
        ),
    );
}

/// Steps 4 and 5: the verification's outcome, then write the credential everywhere.
/// `seen_after_verify`: Graph showed the credential in a read sent after verification ended.
#[allow(clippy::too_many_arguments)]
async fn verify_and_write(
    e: &Engine,
    link: &Link,
    st: &LinkState,
    pending: create::Pending,
    verified: Result<verify::Verified>,
    seen_after_verify: bool,
    rep: &Reporter<'_>,
    rec: &mut AuditRecord,
) -> Result<()> {
    let newc = &pending.credential;
    let verified = match verified {
        Ok(v) => v,
        Err(err) => {
            // Nothing was written: removing the unverified credential loses nothing.
            drop_unwritten(e, st, newc, rec, "the unverified credential").await;
            rep.emit(Step::Verify, StepState::Failed, None, err.to_string());
            return Err(err);
        }
    };
    match verified {
        verify::Verified::Login => rep.emit(
            Step::Verify,
            StepState::Done,
            None,
            "the new credential works",
        ),
        verify::Verified::NoServicePrincipal => {
            rec.notes.push("verified by read-back: the application has no service principal (AADSTS7000229), so logging in with the new secret is impossible".to_owned());
            rep.emit(
                Step::Verify,
                StepState::Skipped,
                None,
                "no service principal: verifying by read-back instead",
            );
        }
    }
    // Before writing: still inside the write budget (so no other run can have taken the
    // credential for an orphan), not asked to stop, and the credential still exists.
    let elapsed = pending.created.elapsed();
    if elapsed > e.inner.verify_timeout + WRITE_BUDGET {
        drop_unwritten(e, st, newc, rec, "the late credential").await;
        return Err(Error::new(
            ErrorKind::Verification,
            format!("rotating {link}"),
            format!("{} s passed between creating the credential and writing it, beyond the verification timeout plus the write budget; nothing was written", elapsed.as_secs()),
        )
        .with_hint("the old credential stays valid; re-run"));
    }
    if rep.cancelled() {
        return Err(record::cancelled_error(link, "writing the targets")
            .with_hint(format!("credential {} was created but written nowhere: a later run removes it as an orphan after the pending window", newc.key_id)));
    }
    // Re-read that the credential still exists, unless a read sent after verification showed it.
    // Graph may lag behind its own writes: a credential that verified but is missing from one
    // read is read again for a while before it counts as removed.
    let visible = seen_after_verify
        || create::read_until_visible(
            e,
            &link.application_id,
            &newc.key_id,
            create::VISIBLE_WITHIN,
        )
        .await?
        .visible;
    if !visible {
        rec.new_key_id = None;
        rec.new_expires_at = None;
        return Err(Error::new(
            ErrorKind::Conflict,
            format!("rotating {link}"),
            format!("credential {} was removed by someone else before it was written; nothing was written", newc.key_id),
        )
        .with_hint("the old credential stays valid; re-run"));
    }
    let rotated_at = fmt_time(e.inner.now());
    let todo: Vec<&state::TargetState> = st.targets.iter().collect();
    let payload = update::Payload {
        cred: newc,
        value: &pending.value,
        rotated_at: &rotated_at,
    };
    let w = update::write_targets(e, st, &todo, &payload, rep, rec).await;
    drop(pending.value);
    let maybe_anywhere = w.maybe_anywhere();
    let Some(err) = w.first else {
        rec.status = RotationStatus::Success;
        return Ok(());
    };
    if !maybe_anywhere {
        let removed = drop_unwritten(e, st, newc, rec, "the new credential").await;
        return Err(Error::new(
            err.kind(),
            format!("rotating {link}"),
            format!(
                "no target accepted the write ({err}); {}",
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
    Err(Error::new(
        err.kind(),
        format!("rotating {link}"),
        format!(
            "{} of {} targets hold the new credential, {} outcome(s) unknown, {} refused; {err}",
            w.written,
            todo.len(),
            w.unknown,
            w.not_written
        ),
    )
    .with_hint("the new credential is kept (a target may hold it) and the old one stays valid; re-run to finish: rotor reads every target again and copies the new credential to the rest")
    .with_hint_all(err.hints()))
}

/// Removes a credential this run created and wrote nowhere; records what happened.
async fn drop_unwritten(
    e: &Engine,
    st: &LinkState,
    c: &crate::model::PasswordCredential,
    rec: &mut AuditRecord,
    what: &str,
) -> bool {
    let removed = remove_quietly(e, &st.app, &c.key_id).await;
    if removed {
        rec.removed_key_ids.push(c.key_id.clone());
        rec.new_key_id = None;
        rec.new_expires_at = None;
        rec.notes.push(format!("removed {what} {}", c.key_id));
    } else {
        rec.notes.push(format!(
            "could not remove {what} {}; a later run removes it as an orphan after the pending window",
            c.key_id
        ));
    }
    removed
}

/// A dry run: the plan, in words; nothing changes.
#[allow(clippy::too_many_arguments)]
async fn describe(
    e: &Engine,
    link: &Link,
    st: &mut LinkState,
    policy: &Policy,
    opts: &RotateOptions,
    orphans: &[(crate::model::PasswordCredential, String)],
    repair: bool,
    rotate: Option<&plan::Rotate>,
    rep: &Reporter<'_>,
    rec: &mut AuditRecord,
) -> Result<()> {
    for (o, why) in orphans {
        rec.notes
            .push(format!("would remove credential {} ({why})", o.key_id));
    }
    if repair {
        resume::repair(e, st, true, rep, rec).await?;
    }
    rec.status = RotationStatus::Skipped;
    rec.skip_reason = Some(SkipReason::DryRun);
    let Some(rotate) = rotate else {
        return Ok(());
    };
    rec.notes.push(format!("rotating: {}", rotate.reason));
    if let Some((_, why)) = &rotate.make_room {
        rec.notes
            .push(format!("would remove {why} to stay under the password cap"));
    }
    let validity = opts
        .validity_days
        .unwrap_or(policy.new_secret_validity_days);
    let end = plan::plus_days(e.inner.now(), validity);
    rec.notes.push(format!(
        "would add password `{} rotor:{}` valid until {}, verify it, and write it to {} target(s)",
        link.credential_display_name,
        rec.rotation_id,
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
    let rep = Reporter::new(progress, &rotation_id, &link.application_id);
    let lock = e
        .inner
        .link_lock(&link.application_id, &link.credential_display_name);
    let _guard = lock.lock().await;
    // Refusals before anything changes are errors; the repair's outcome is the record.
    let Some((mut st, cur)) = sync_preflight(e, link, policy, &rep, &mut rec).await? else {
        finish(e, &mut rec, &rep, Ok(()));
        return Ok(rec);
    };
    let r = if rep.cancelled() {
        Err(record::cancelled_error(link, "repairing the targets"))
    } else {
        resume::repair(e, &mut st, false, &rep, &mut rec).await
    };
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

/// The preflight of a sync: the same as a rotation's (exclusions, in-progress, ownership,
/// confidence, write access). `None`: nothing to do (excluded or in progress; recorded).
async fn sync_preflight(
    e: &Engine,
    link: &Link,
    policy: &Policy,
    rep: &Reporter<'_>,
    rec: &mut AuditRecord,
) -> Result<Option<(LinkState, crate::model::PasswordCredential)>> {
    let opts = RotateOptions::default();
    let Some(st) = preflight(e, link, policy, &opts, rep, rec).await? else {
        return Ok(None);
    };
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
    match plan::decide(&st, policy, &opts, e.inner.now(), &label(e)) {
        Decision::InProgress(p) => {
            skip(
                rec,
                SkipReason::InProgress,
                format!(
                    "rotation in progress: credential {} no target holds yet",
                    p.key_id
                ),
            );
            return Ok(None);
        }
        Decision::Claimed(holders) => {
            let refs: Vec<&state::OutsideHolder> = holders.iter().collect();
            return Err(state::claimed_error(e, link, &refs));
        }
        _ => {}
    }
    preflight::checks(e, &st, policy, rep)?;
    let todo = resume::lacking(&st, &cur);
    preflight::probe_write_access(e, &todo, false, rec).await?;
    Ok(Some((st, cur)))
}
