//! Pure decisions over the state read from Azure: is the link due, what a run will do
//! ([`decide`]), and the one rule for which credential may be removed ([`removable`]), shared by
//! orphan removal, make-room and cleanup.

use super::record::fmt_time;
use super::state::{LinkState, OutsideHolder};
use crate::model::{PasswordCredential, RotateOptions, Target};
use crate::policy::Policy;
use time::OffsetDateTime;

/// Whether the link is due, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Due {
    /// `Some(why)` when a rotation (or a repair) is due.
    pub reason: Option<String>,
    /// When the current credential falls due.
    pub next_rotation_at: Option<OffsetDateTime>,
}

/// `t - days`, saturating at the representable range (bounds are validated at config load; the
/// engine never panics on a date regardless).
pub(crate) fn minus_days(t: OffsetDateTime, days: u32) -> OffsetDateTime {
    t.checked_sub(time::Duration::days(i64::from(days)))
        .unwrap_or(time::PrimitiveDateTime::MIN.assume_utc())
}

/// `t + days`, saturating.
pub(crate) fn plus_days(t: OffsetDateTime, days: u32) -> OffsetDateTime {
    t.checked_add(time::Duration::days(i64::from(days)))
        .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
}

/// The forced rotation still to do: `force`, unless the caller named the credential to replace
/// and the lineage has already moved past it (a re-run after a crash that finished the work).
fn still_forced(st: &LinkState, opts: &RotateOptions) -> bool {
    if !opts.force {
        return false;
    }
    let (Some(k), Some(cur)) = (&opts.replace_key_id, &st.current) else {
        return true;
    };
    let rank = |key: &str| {
        st.lineage
            .iter()
            .position(|c| c.key_id.eq_ignore_ascii_case(key))
    };
    match rank(k) {
        // the named credential is gone from the lineage: rotate only if it is still current
        None => cur.key_id.eq_ignore_ascii_case(k),
        Some(asked) => rank(&cur.key_id).is_some_and(|c| c <= asked),
    }
}

/// Due decision shared by inspect and rotate. `label` names a target for messages.
pub(crate) fn due(
    st: &LinkState,
    policy: &Policy,
    force: bool,
    now: OffsetDateTime,
    label: &dyn Fn(&Target) -> String,
) -> Due {
    let Some(cur) = &st.current else {
        return Due {
            reason: (!st.targets.is_empty()).then(|| {
                format!(
                    "no target holds a credential of `{}`: a new credential will be created and written to every target",
                    st.name
                )
            }),
            next_rotation_at: None,
        };
    };
    let next = minus_days(cur.end, policy.rotate_before_expiry_days);
    let reason = if st.diverged {
        let lacking: Vec<String> = st
            .targets
            .iter()
            .filter(|t| t.held.as_deref() != Some(cur.key_id.as_str()))
            .map(|t| label(&t.target))
            .collect();
        Some(format!(
            "targets diverge: {} do not hold the current credential {}; it will be copied to them",
            lacking.join(", "),
            cur.key_id
        ))
    } else if now >= next {
        Some(if cur.end <= now {
            format!("credential {} expired at {}", cur.key_id, fmt_time(cur.end))
        } else {
            format!(
                "credential {} expires at {} (in {} days, within rotate_before_expiry_days = {})",
                cur.key_id,
                fmt_time(cur.end),
                (cur.end - now).whole_days(),
                policy.rotate_before_expiry_days
            )
        })
    } else if force {
        Some("rotation forced".to_owned())
    } else {
        None
    };
    Due {
        reason,
        next_rotation_at: Some(next),
    }
}

/// Whether credential `c` of the lineage may be removed now: `Ok(why)` or `Err(why kept)`.
/// Removal needs proof: no target and no secret in scope holds it, the scan of every vault in
/// scope succeeded, it is no other run's work in progress, and its successor's grace period is
/// over (or it expired, or it is an orphan of a crashed run).
pub(crate) fn removable(
    st: &LinkState,
    c: &PasswordCredential,
    policy: &Policy,
    now: OffsetDateTime,
    label: &dyn Fn(&Target) -> String,
) -> Result<String, String> {
    let same = |a: &PasswordCredential| a.key_id.eq_ignore_ascii_case(&c.key_id);
    if let Some(t) = st
        .targets
        .iter()
        .find(|t| t.held.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(&c.key_id)))
    {
        return Err(format!("held by {}", label(&t.target)));
    }
    if let Some(h) = st.held_outside(&c.key_id).first() {
        return Err(format!(
            "held by {}, outside this link ({})",
            label(&h.target),
            if h.by_tag { "its rotor-key-id tag" } else { "its value's first characters" }
        ));
    }
    if st.in_progress.iter().any(same) {
        return Err("rotation in progress (younger than the pending window)".to_owned());
    }
    if !st.scan_errors.is_empty() {
        return Err(format!(
            "cannot prove that no secret in scope holds it: {}",
            st.scan_errors.join("; ")
        ));
    }
    if st.orphans.iter().any(same) {
        return Ok(
            "orphan: created by rotor, held by no secret in scope, older than the pending window"
                .to_owned(),
        );
    }
    let expired = c.end <= now;
    let Some(cur) = &st.current else {
        return if expired {
            Ok(format!("expired at {} and held by no secret in scope", fmt_time(c.end)))
        } else {
            Err("no target holds a credential of this lineage; nothing is removed".to_owned())
        };
    };
    let rank = |k: &str| st.lineage.iter().position(|x| x.key_id.eq_ignore_ascii_case(k));
    if rank(&c.key_id) >= rank(&cur.key_id) {
        return Err("newer than the current credential".to_owned());
    }
    if expired {
        return Ok(format!("expired at {}", fmt_time(c.end)));
    }
    let successor = rank(&c.key_id)
        .and_then(|i| st.lineage.get(i + 1))
        .unwrap_or(cur);
    let until = plus_days(successor.start, policy.grace_period_days);
    if until <= now {
        Ok("grace period over".to_owned())
    } else {
        Err(format!("grace period until {}", fmt_time(until)))
    }
}

/// Copy the current credential from a target holding it to the targets lacking it.
#[derive(Debug, Clone)]
pub(crate) struct Repair {
    pub credential: PasswordCredential,
}

/// Create a new credential and write it everywhere.
#[derive(Debug, Clone)]
pub(crate) struct Rotate {
    pub reason: String,
    /// A lineage credential to remove first because the app is at its password cap.
    pub make_room: Option<(PasswordCredential, String)>,
}

/// What a run does, decided before anything changes; a dry run is this plan, in words.
#[derive(Debug, Clone)]
pub(crate) enum Decision {
    /// Another run's fresh credential is not in any target yet.
    InProgress(PasswordCredential),
    /// Secrets outside the link hold the lineage's current (or a newer) credential.
    Claimed(Vec<OutsideHolder>),
    /// Nothing due.
    NotDue {
        current: Option<PasswordCredential>,
        next: Option<OffsetDateTime>,
    },
    /// Work to do, in this order.
    Act {
        remove_orphans: Vec<(PasswordCredential, String)>,
        repair: Option<Repair>,
        rotate: Option<Rotate>,
    },
    /// At the password cap with nothing in the lineage removable.
    NoRoom { kept: Vec<(String, String)> },
}

/// The decision for one run (pure).
pub(crate) fn decide(
    st: &LinkState,
    policy: &Policy,
    opts: &RotateOptions,
    now: OffsetDateTime,
    label: &dyn Fn(&Target) -> String,
) -> Decision {
    if let Some(p) = st.in_progress.first() {
        return Decision::InProgress(p.clone());
    }
    // Two links on one lineage: a secret outside this link holds, by its tag, the current
    // credential or one newer than it (or any, when no target holds one).
    let rank = |k: &str| st.lineage.iter().position(|x| x.key_id.eq_ignore_ascii_case(k));
    let claimed: Vec<OutsideHolder> = st
        .outside
        .iter()
        .filter(|h| h.by_tag)
        .filter(|h| match &st.current {
            None => rank(&h.key_id).is_some(),
            Some(cur) => rank(&h.key_id) >= rank(&cur.key_id),
        })
        .cloned()
        .collect();
    if !claimed.is_empty() {
        return Decision::Claimed(claimed);
    }
    if let Some((_, h)) = st.claimed_elsewhere.first() {
        return Decision::Claimed(vec![h.clone()]);
    }
    let remove_orphans: Vec<(PasswordCredential, String)> = st
        .orphans
        .iter()
        .filter_map(|o| removable(st, o, policy, now, label).ok().map(|why| (o.clone(), why)))
        .collect();
    let repair = match &st.current {
        Some(cur) if st.diverged => Some(Repair {
            credential: cur.clone(),
        }),
        _ => None,
    };
    let whole = LinkState {
        diverged: false,
        ..st.clone()
    };
    let d = due(&whole, policy, still_forced(st, opts), now, label);
    let Some(reason) = d.reason else {
        if repair.is_none() && remove_orphans.is_empty() {
            return Decision::NotDue {
                current: st.current.clone(),
                next: d.next_rotation_at,
            };
        }
        return Decision::Act {
            remove_orphans,
            repair,
            rotate: None,
        };
    };
    let count = st.app.password_credentials.len() - remove_orphans.len().min(st.app.password_credentials.len());
    let at_cap = st.app.password_cap().is_some_and(|cap| count >= cap);
    let make_room = if at_cap {
        let mut kept = Vec::new();
        let found = st
            .lineage
            .iter()
            .filter(|c| !remove_orphans.iter().any(|(o, _)| o.key_id == c.key_id))
            .find_map(|c| match removable(st, c, policy, now, label) {
                Ok(why) => Some((c.clone(), format!("lineage credential {} ({why})", c.key_id))),
                Err(why) => {
                    kept.push((c.key_id.clone(), why));
                    None
                }
            });
        match found {
            Some(f) => Some(f),
            None => return Decision::NoRoom { kept },
        }
    } else {
        None
    };
    Decision::Act {
        remove_orphans,
        repair,
        rotate: Some(Rotate { reason, make_room }),
    }
}
