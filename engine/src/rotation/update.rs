//! Step 5: write the credential to every target and read it back. Each write ends
//! [`WriteOutcome::Written`], [`WriteOutcome::NotWritten`] (the service refused it: nothing was
//! applied) or [`WriteOutcome::Unknown`] (timeout, dropped connection, 5xx, a read-back that
//! failed: the value may be in the vault). Unknown is not "no": it is settled by reading the
//! target again, and the new credential is removed only when every outcome is `NotWritten`.

use super::record::{Reporter, set_target};
use super::state::{LinkState, TargetState};
use super::tags;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind};
use crate::model::{AuditRecord, PasswordCredential, TargetStatus};
use crate::progress::{Step, StepState};
use crate::secret::SecretValue;

/// How one target write ended.
#[derive(Debug)]
pub(crate) enum WriteOutcome {
    /// The target's current version holds the credential (version id).
    Written(String),
    /// The service refused the write; nothing was applied.
    NotWritten(Error),
    /// The write may have been applied; reading again did not tell.
    Unknown(Error),
}

/// True when an error proves the request was not applied: the service answered with a 4xx
/// (refused before acting). Timeouts, dropped connections and 5xx prove nothing.
pub(crate) fn refused(err: &Error) -> bool {
    err.status().is_some_and(|s| (400..500).contains(&s))
        || matches!(err.kind(), ErrorKind::Config | ErrorKind::Usage)
}

/// Settles an uncertain write by reading the target's current version again.
async fn settle(
    e: &Engine,
    t: &TargetState,
    cred: &PasswordCredential,
    value: &SecretValue,
    err: Error,
) -> WriteOutcome {
    match e.inner.vaults.get_secret(&t.target, None, false).await {
        Ok(Some(v))
            if v.value == *value
                && tags::key_id(&v.tags).is_some_and(|k| k.eq_ignore_ascii_case(&cred.key_id)) =>
        {
            WriteOutcome::Written(v.version)
        }
        Ok(_) => WriteOutcome::NotWritten(err),
        Err(again) => WriteOutcome::Unknown(err.with_hint(format!(
            "reading it again to settle the outcome failed too: {again}"
        ))),
    }
}

/// Writes `value` (credential `cred`) to `t`, reads it back and compares.
pub(crate) async fn write_target(
    e: &Engine,
    st: &LinkState,
    t: &TargetState,
    cred: &PasswordCredential,
    value: &SecretValue,
    rotated_at: &str,
) -> WriteOutcome {
    let inner = &e.inner;
    let previous = t
        .held
        .clone()
        .or_else(|| {
            t.current
                .as_ref()
                .and_then(|v| tags::key_id(&v.tags).map(str::to_owned))
        })
        .filter(|p| !p.eq_ignore_ascii_case(&cred.key_id));
    let tags = tags::rotor_tags(
        t.current.as_ref().map(|v| &v.tags),
        &st.app,
        &cred.key_id,
        previous.as_deref(),
        rotated_at,
    );
    let content_type = t.current.as_ref().and_then(|v| v.content_type.clone());
    let version = match inner
        .vaults
        .set_secret(&t.target, value, content_type, tags, Some(cred.end))
        .await
    {
        Ok(v) => v,
        Err(err) if refused(&err) => return WriteOutcome::NotWritten(err),
        Err(err) => return settle(e, t, cred, value, err).await,
    };
    inner.hints.put(
        t.target.vault_url.as_str(),
        &t.target.secret_name,
        &version,
        &value.hint(),
    );
    let label = inner.vaults.label(&t.target);
    match inner
        .vaults
        .get_secret(&t.target, Some(&version), false)
        .await
    {
        Ok(Some(back))
            if back.value == *value
                && tags::key_id(&back.tags)
                    .is_some_and(|k| k.eq_ignore_ascii_case(&cred.key_id)) =>
        {
            WriteOutcome::Written(version)
        }
        Ok(_) => WriteOutcome::Unknown(
            Error::new(
                ErrorKind::Verification,
                format!("reading back {label}"),
                format!("version {version} does not hold what was written"),
            )
            .with_hint("another process may be writing this secret; re-run to repair"),
        ),
        // The write succeeded (Key Vault answered with the version): only the read-back is
        // uncertain, so settle from the current version.
        Err(err) => match settle(e, t, cred, value, err).await {
            WriteOutcome::NotWritten(err) => WriteOutcome::Unknown(err),
            other => other,
        },
    }
}

/// What [`write_targets`] did.
pub(crate) struct Written {
    pub written: usize,
    pub not_written: usize,
    pub unknown: usize,
    /// The first failure (unknown before refused).
    pub first: Option<Error>,
}

impl Written {
    /// True when the credential may be in some target (never remove it then).
    pub fn maybe_anywhere(&self) -> bool {
        self.written + self.unknown > 0
    }
}

/// What is written: a credential, its value and the rotation time for the tag.
pub(crate) struct Payload<'a> {
    pub cred: &'a PasswordCredential,
    pub value: &'a SecretValue,
    pub rotated_at: &'a str,
}

/// Writes the payload to every target in `todo` concurrently; updates the record.
pub(crate) async fn write_targets(
    e: &Engine,
    st: &LinkState,
    todo: &[&TargetState],
    p: &Payload<'_>,
    rep: &Reporter<'_>,
    rec: &mut AuditRecord,
) -> Written {
    let (cred, value, rotated_at) = (p.cred, p.value, p.rotated_at);
    let results = crate::http::join_all(todo.iter().map(|t| async move {
        let label = e.inner.vaults.label(&t.target);
        rep.emit(
            Step::UpdateTarget,
            StepState::Started,
            Some(&t.target),
            format!("writing {label}"),
        );
        let r = write_target(e, st, t, cred, value, rotated_at).await;
        match &r {
            WriteOutcome::Written(v) => rep.emit(
                Step::UpdateTarget,
                StepState::Done,
                Some(&t.target),
                format!("{label} now holds {} (version {v})", cred.key_id),
            ),
            WriteOutcome::NotWritten(err) => rep.emit(
                Step::UpdateTarget,
                StepState::Failed,
                Some(&t.target),
                err.to_string(),
            ),
            WriteOutcome::Unknown(err) => rep.emit(
                Step::UpdateTarget,
                StepState::Failed,
                Some(&t.target),
                format!("outcome unknown (the value may be in the vault): {err}"),
            ),
        }
        let subject = crate::error::Subject::Target(t.target.clone());
        let r = match r {
            WriteOutcome::NotWritten(e) => WriteOutcome::NotWritten(e.with_subject(subject)),
            WriteOutcome::Unknown(e) => WriteOutcome::Unknown(e.with_subject(subject)),
            w => w,
        };
        (t.target.clone(), r)
    }))
    .await;
    let mut out = Written {
        written: 0,
        not_written: 0,
        unknown: 0,
        first: None,
    };
    let mut first_refused = None;
    for (t, r) in results {
        match r {
            WriteOutcome::Written(v) => {
                out.written += 1;
                set_target(rec, &t, Some(v), TargetStatus::Updated, None);
            }
            WriteOutcome::NotWritten(err) => {
                out.not_written += 1;
                set_target(rec, &t, None, TargetStatus::Failed, Some(err.to_string()));
                first_refused.get_or_insert(err);
            }
            WriteOutcome::Unknown(err) => {
                out.unknown += 1;
                set_target(
                    rec,
                    &t,
                    None,
                    TargetStatus::Failed,
                    Some(format!("outcome unknown: {err}")),
                );
                out.first.get_or_insert(err);
            }
        }
    }
    if out.first.is_none() {
        out.first = first_refused;
    }
    out
}
