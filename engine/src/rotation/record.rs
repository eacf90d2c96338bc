//! Step 6: the audit record and live progress of one rotation attempt.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{
    AuditRecord, Confidence, Link, RotationStatus, SkipReason, Target, TargetRecord, TargetStatus,
};
use crate::progress::{Progress, ProgressEvent, Step, StepState};
use time::OffsetDateTime;

/// RFC 3339, as every record and message shows times.
pub(crate) fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Emits progress and remembers the rotation's identity.
pub(crate) struct Reporter<'a> {
    pub progress: &'a dyn Progress,
    pub rotation_id: String,
    pub app_id: String,
    pub app_name: parking_lot::Mutex<String>,
}

impl<'a> Reporter<'a> {
    pub fn new(progress: &'a dyn Progress, rotation_id: &str, app_id: &str) -> Reporter<'a> {
        Reporter {
            progress,
            rotation_id: rotation_id.to_owned(),
            app_id: app_id.to_owned(),
            app_name: parking_lot::Mutex::new(String::new()),
        }
    }

    pub fn emit(
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

    /// True when the front end asked to stop (checked at safe points only).
    pub fn cancelled(&self) -> bool {
        self.progress.cancelled()
    }
}

pub(crate) fn new_record(e: &Engine, link: &Link, rotation_id: &str) -> AuditRecord {
    let now = e.inner.now();
    AuditRecord {
        kind: Default::default(),
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
        old_thumbprint: None,
        new_thumbprint: None,
        skip_reason: None,
        error_subject: None,
    }
}

pub(crate) fn set_target(
    rec: &mut AuditRecord,
    t: &Target,
    version: Option<String>,
    status: TargetStatus,
    error: Option<String>,
) {
    if let Some(r) = rec
        .targets
        .iter_mut()
        .find(|r| r.vault_url == t.vault_url && r.secret_name.eq_ignore_ascii_case(&t.secret_name))
    {
        r.version = version;
        r.status = status;
        r.error = error;
    }
}

/// Marks the record skipped for `reason` with a note.
pub(crate) fn skip(rec: &mut AuditRecord, reason: SkipReason, note: impl Into<String>) {
    rec.status = RotationStatus::Skipped;
    rec.skip_reason = Some(reason);
    rec.notes.push(note.into());
}

/// Sets the outcome, appends the record to the history file and emits the final event. A record
/// that cannot be appended after Azure changed fails the attempt: the audit trail is part of the
/// promise (the changes themselves are complete and any run resumes from Azure).
pub(crate) fn finish(e: &Engine, rec: &mut AuditRecord, rep: &Reporter<'_>, result: Result<()>) {
    if let Err(err) = result {
        rec.status = RotationStatus::Failed;
        rec.skip_reason = None;
        rec.error = Some(err.to_string());
        rec.hints = err.hints();
        rec.error_subject = err.subject().cloned();
    }
    rec.finished_at = e.inner.now();
    if let Err(err) = e.inner.hints.save() {
        tracing::warn!("{err}");
    }
    if !rec.dry_run
        && let Some(h) = &e.inner.history
        && let Err(err) = h.append(rec)
    {
        tracing::error!("{err}");
        let changed = rec.status == RotationStatus::Success || !rec.removed_key_ids.is_empty();
        if changed || rec.status == RotationStatus::Failed {
            let before = rec.error.take();
            rec.status = RotationStatus::Failed;
            rec.skip_reason = None;
            rec.error = Some(match before {
                Some(b) => format!("{b}; and the audit record could not be written: {err}"),
                None => format!(
                    "the audit record could not be written ({err}); the changes in Azure are complete (see notes and targets)"
                ),
            });
            rec.hints.extend(err.hints());
        } else {
            rec.notes
                .push(format!("could not append to the history file: {err}"));
        }
    }
    let msg = match &rec.error {
        Some(err) => format!("{}: {err}", rec.status),
        None => match rec.skip_reason {
            Some(r) => format!("{}: {r}", rec.status),
            None => rec.status.to_string(),
        },
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

/// The error a run that was asked to stop returns at a safe point.
pub(crate) fn cancelled_error(link: &Link, step: &str) -> Error {
    Error::other(
        format!("rotating {link}"),
        format!("stopped before {step}: the caller went away"),
    )
    .with_hint("nothing is lost: the next run resumes from what Azure shows (docs/troubleshooting.md, \"A run that was killed\")")
}

/// [`cancelled_error`] for any subject (certificate links).
pub(crate) fn cancelled_error_for(subject: &str, step: &str) -> Error {
    Error::other(
        format!("rotating {subject}"),
        format!("stopped before {step}: the caller went away"),
    )
    .with_hint("nothing is lost: the next run resumes from what Azure shows (docs/troubleshooting.md, \"A run that was killed\")")
}
