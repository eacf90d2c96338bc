//! Step 3: create the new credential (`addPassword`, display name `<name> rotor:<rotation-id>`),
//! then back off if another run of the lineage created one first.

use super::record::Reporter;
use super::state::LinkState;
use crate::engine::Engine;
use crate::error::{ErrorKind, Result};
use crate::model::{Link, PasswordCredential};
use crate::progress::{Step, StepState};
use crate::secret::SecretValue;
use std::collections::BTreeSet;
use time::OffsetDateTime;

/// How long Graph may take to show a password `addPassword` just created (Graph is eventually
/// consistent: a read right after a write can miss it).
pub(crate) const VISIBLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// What [`read_until_visible`] saw.
pub(crate) struct Seen {
    /// The last read of the application.
    pub app: crate::model::Application,
    /// Whether that read holds the credential.
    pub visible: bool,
    /// When that read was sent.
    pub read_at: tokio::time::Instant,
}

/// Reads the application until credential `key_id` shows up or `within` passes; returns the last
/// read and whether it was seen. A credential that stays invisible that long was removed.
pub(crate) async fn read_until_visible(
    e: &Engine,
    app_id: &str,
    key_id: &str,
    within: std::time::Duration,
) -> Result<Seen> {
    let deadline = tokio::time::Instant::now() + within;
    let mut wait = std::time::Duration::from_millis(20);
    loop {
        let read_at = tokio::time::Instant::now();
        let app = e.inner.fetch_app(app_id).await?;
        if app.password(key_id).is_some() {
            return Ok(Seen {
                app,
                visible: true,
                read_at,
            });
        }
        if tokio::time::Instant::now() + wait > deadline {
            return Ok(Seen {
                app,
                visible: false,
                read_at,
            });
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(1));
    }
}

/// A created credential and its value (held only in memory), with when it was created.
pub(crate) struct Pending {
    pub credential: PasswordCredential,
    pub value: SecretValue,
    pub created: tokio::time::Instant,
}

/// How creation ended.
pub(crate) enum Created {
    Ours(Pending),
    /// Another run's credential of the lineage came first (created before ours, or it holds the
    /// slot that made the app refuse ours at its password cap): this run backs off.
    Rival {
        rival: PasswordCredential,
        /// Whether this run's own credential was created (and then removed or left as orphan).
        removed_ours: Option<(String, bool)>,
    },
}

/// The first rotor credential of the lineage, created after `st` was read, that precedes `ours`
/// (start time, then Graph's creation order: the same order for every observer).
fn rival_of(
    lineage: &[&PasswordCredential],
    st: &LinkState,
    ours: Option<&str>,
) -> Option<PasswordCredential> {
    let seen: BTreeSet<String> = st
        .lineage
        .iter()
        .map(|c| c.key_id.to_ascii_lowercase())
        .collect();
    let pos = ours.and_then(|k| {
        lineage
            .iter()
            .position(|c| c.key_id.eq_ignore_ascii_case(k))
    });
    lineage
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.rotation_id().is_some()
                && ours.is_none_or(|k| !c.key_id.eq_ignore_ascii_case(k))
                && !seen.contains(&c.key_id.to_ascii_lowercase())
        })
        .find(|(i, _)| pos.is_none_or(|o| *i < o))
        .map(|(_, c)| (*c).clone())
}

/// `addPassword`; at the password cap, backs off from the rival run that holds the slot.
pub(crate) async fn run(
    e: &Engine,
    link: &Link,
    st: &LinkState,
    display: &str,
    end: OffsetDateTime,
    rep: &Reporter<'_>,
) -> Result<Created> {
    let inner = &e.inner;
    rep.emit(
        Step::Create,
        StepState::Started,
        None,
        format!("adding password `{display}`"),
    );
    let added = inner.graph.add_password(&st.app, display, end).await;
    inner.invalidate(&st.app.app_id);
    let (credential, value) = match added {
        Ok(x) => x,
        Err(err)
            if err.kind() == ErrorKind::Conflict
                && (err.code() == Some("TooManyAppPasswords")
                    || err.failure().cause.contains("TooManyAppPasswords")) =>
        {
            // At the cap: a concurrent run's credential may hold the slot we planned for (Graph
            // may not show it yet: read again for a while).
            let deadline = tokio::time::Instant::now() + VISIBLE_WITHIN;
            loop {
                let fresh = inner.fetch_app(&link.application_id).await?;
                if let Some(rival) =
                    rival_of(&fresh.lineage(&link.credential_display_name), st, None)
                {
                    return Ok(Created::Rival {
                        rival,
                        removed_ours: None,
                    });
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(err);
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
        Err(err) => return Err(err),
    };
    let created = tokio::time::Instant::now();
    rep.emit(
        Step::Create,
        StepState::Done,
        None,
        format!(
            "created credential {} (hint {}…)",
            credential.key_id,
            credential.hint.clone().unwrap_or_default()
        ),
    );
    Ok(Created::Ours(Pending {
        credential,
        value,
        created,
    }))
}

/// How the check for a rival run ended.
pub(crate) enum Checked {
    /// No other run's credential of the lineage precedes ours; `seen_at`: when the read that
    /// showed ours was sent (`None`: Graph did not show it within [`VISIBLE_WITHIN`]).
    Clear {
        seen_at: Option<tokio::time::Instant>,
    },
    /// Another run's credential came first: ours was removed (`true`) or left as orphan.
    Rival {
        rival: PasswordCredential,
        removed_ours: (String, bool),
    },
}

/// Reads the application until Graph shows our credential, then backs off (removing ours) if
/// another run's credential of the lineage, created after `st` was read, precedes it. Runs
/// alongside verification (nothing here depends on it).
pub(crate) async fn check_rival(
    e: &Engine,
    link: &Link,
    st: &LinkState,
    key_id: &str,
) -> Result<Checked> {
    let seen = read_until_visible(e, &link.application_id, key_id, VISIBLE_WITHIN).await?;
    if let Some(rival) = rival_of(
        &seen.app.lineage(&link.credential_display_name),
        st,
        Some(key_id),
    ) {
        let removed = super::remove_quietly(e, &seen.app, key_id).await;
        return Ok(Checked::Rival {
            rival,
            removed_ours: (key_id.to_owned(), removed),
        });
    }
    Ok(Checked::Clear {
        seen_at: seen.visible.then_some(seen.read_at),
    })
}
