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

/// The forced rotation still to do: `force`, unless a rotation is unfinished (targets diverge on a
/// rotor credential: the repair completes it) or the caller named the credential to replace and
/// the lineage has already moved past it (a re-run after a crash that finished the work).
fn still_forced(st: &LinkState, opts: &RotateOptions) -> bool {
    if !opts.force {
        return false;
    }
    let Some(cur) = &st.current else {
        return true;
    };
    // Targets that diverge on a rotor credential are an unfinished rotation: finishing it (the
    // repair) is the rotation that was asked for, so a re-run after a crash never rotates twice.
    if st.diverged && cur.rotation_id().is_some() {
        return false;
    }
    let Some(k) = &opts.replace_key_id else {
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
    if let Some(t) = st.targets.iter().find(|t| {
        t.held
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case(&c.key_id))
    }) {
        return Err(format!("held by {}", label(&t.target)));
    }
    if let Some(h) = st.held_outside(&c.key_id).first() {
        return Err(format!(
            "held by {}, outside this link ({})",
            label(&h.target),
            if h.by_tag {
                "its rotor-key-id tag"
            } else {
                "its value's first characters"
            }
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
            Ok(format!(
                "expired at {} and held by no secret in scope",
                fmt_time(c.end)
            ))
        } else {
            Err("no target holds a credential of this lineage; nothing is removed".to_owned())
        };
    };
    let rank = |k: &str| {
        st.lineage
            .iter()
            .position(|x| x.key_id.eq_ignore_ascii_case(k))
    };
    if rank(&c.key_id) >= rank(&cur.key_id) {
        return Err("newer than the current credential".to_owned());
    }
    if expired {
        return Ok(format!("expired at {}", fmt_time(c.end)));
    }
    let until = plus_days(successor(st, c, cur).start, policy.grace_period_days);
    if until <= now {
        Ok("grace period over".to_owned())
    } else {
        Err(format!("grace period until {}", fmt_time(until)))
    }
}

/// The credential that superseded `c` (older than the current credential `cur`): the next one
/// of the lineage, else `cur`. Its grace period is `c`'s.
fn successor<'a>(
    st: &'a LinkState,
    c: &PasswordCredential,
    cur: &'a PasswordCredential,
) -> &'a PasswordCredential {
    st.lineage
        .iter()
        .position(|x| x.key_id.eq_ignore_ascii_case(&c.key_id))
        .and_then(|i| st.lineage.get(i + 1))
        .unwrap_or(cur)
}

/// The earliest time [`removable`]'s time rules allow removing one of the credentials older
/// than the current one: when it expires or its successor's grace period ends. `None` when
/// there is none (or no current credential).
pub(crate) fn cleanup_from(st: &LinkState, policy: &Policy) -> Option<OffsetDateTime> {
    let cur = st.current.as_ref()?;
    st.lineage
        .iter()
        .take_while(|c| c.key_id != cur.key_id)
        .map(|c| {
            c.end.min(plus_days(
                successor(st, c, cur).start,
                policy.grace_period_days,
            ))
        })
        .min()
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
    let rank = |k: &str| {
        st.lineage
            .iter()
            .position(|x| x.key_id.eq_ignore_ascii_case(k))
    };
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
        .filter_map(|o| {
            removable(st, o, policy, now, label)
                .ok()
                .map(|why| (o.clone(), why))
        })
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
    let count = st.app.password_credentials.len()
        - remove_orphans.len().min(st.app.password_credentials.len());
    let at_cap = st.app.password_cap().is_some_and(|cap| count >= cap);
    let make_room = if at_cap {
        let mut kept = Vec::new();
        let found = st
            .lineage
            .iter()
            .filter(|c| !remove_orphans.iter().any(|(o, _)| o.key_id == c.key_id))
            .find_map(|c| match removable(st, c, policy, now, label) {
                Ok(why) => Some((
                    c.clone(),
                    format!("lineage credential {} ({why})", c.key_id),
                )),
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

#[cfg(test)]
mod tests {
    use super::super::state::{LinkState, OutsideHolder, TargetState, classify};
    use super::*;
    use crate::keyvault::SecretVersion;
    use crate::model::Application;
    use crate::secret::SecretValue;
    use std::collections::BTreeSet;
    use time::macros::datetime;
    use url::Url;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn cred(key: &str, name: &str, start_days_ago: i64, ends_in_days: i64) -> PasswordCredential {
        PasswordCredential {
            key_id: key.into(),
            display_name: Some(name.into()),
            hint: Some(key[..3].into()),
            start: NOW - time::Duration::days(start_days_ago),
            end: NOW + time::Duration::days(ends_in_days),
        }
    }

    fn target(i: usize, holds: Option<&str>) -> TargetState {
        TargetState {
            target: Target::new(
                Url::parse(&format!("https://kv{i}.example/")).expect("url"),
                "s",
            ),
            current: holds.map(|k| SecretVersion {
                name: "s".into(),
                version: format!("v{i}"),
                value: SecretValue::new(format!("{k}-value")),
                content_type: None,
                tags: Default::default(),
                expires: None,
                enabled: true,
                created: None,
                updated: None,
            }),
            held: holds.map(str::to_owned),
            confidence: Some(crate::model::Confidence::High),
            signals: vec![],
            rejected: None,
        }
    }

    /// A state as `read_state` would derive it.
    fn state(
        creds: Vec<PasswordCredential>,
        holds: &[Option<&str>],
        outside: Vec<OutsideHolder>,
        audience: Option<&str>,
    ) -> LinkState {
        let app = Application {
            object_id: "o".into(),
            app_id: "a".into(),
            display_name: "app".into(),
            sign_in_audience: audience.map(str::to_owned),
            password_credentials: creds.clone(),
            key_credentials: vec![],
        };
        let lineage: Vec<PasswordCredential> = app.lineage("S").into_iter().cloned().collect();
        let targets: Vec<TargetState> = holds
            .iter()
            .enumerate()
            .map(|(i, h)| target(i, *h))
            .collect();
        let held: BTreeSet<String> = targets.iter().filter_map(|t| t.held.clone()).collect();
        let c = classify(&lineage, &held, &outside, NOW, time::Duration::HOUR);
        let diverged = c.current.as_ref().is_some_and(|cur| {
            targets
                .iter()
                .any(|t| t.held.as_deref() != Some(cur.key_id.as_str()))
        });
        LinkState {
            name: "S".into(),
            app,
            lineage,
            targets,
            current: c.current,
            held,
            in_progress: c.in_progress,
            orphans: c.orphans,
            claimed_elsewhere: c.claimed_elsewhere,
            outside,
            scan_errors: vec![],
            diverged,
        }
    }

    fn summary(d: &Decision) -> String {
        match d {
            Decision::InProgress(c) => format!("in-progress {}", c.key_id),
            Decision::Claimed(h) => format!("claimed {}", h[0].key_id),
            Decision::NotDue { .. } => "not-due".into(),
            Decision::NoRoom { .. } => "no-room".into(),
            Decision::Act {
                remove_orphans,
                repair,
                rotate,
            } => {
                let mut parts = vec![];
                for (o, _) in remove_orphans {
                    parts.push(format!("remove {}", o.key_id));
                }
                if let Some(r) = repair {
                    parts.push(format!("repair {}", r.credential.key_id));
                }
                if let Some(r) = rotate {
                    parts.push(match &r.make_room {
                        Some((c, _)) => format!("room {} rotate", c.key_id),
                        None => "rotate".into(),
                    });
                }
                parts.join(", ")
            }
        }
    }

    #[test]
    fn decide_table() {
        let capped = Some("AzureADandPersonalMicrosoftAccount");
        let outside = |k: &str| OutsideHolder {
            target: Target::new(Url::parse("https://other.example/").expect("url"), "x"),
            key_id: k.into(),
            by_tag: true,
        };
        let old = || cred("k0a", "S", 300, 60);
        let due_old = || cred("k0a", "S", 340, 10);
        let new = || cred("k1b", "S rotor:r1", 3, 362);
        let fresh = || cred("k2c", "S rotor:r2", 0, 365); // created now: in progress
        let stale = || cred("k3d", "S rotor:r3", 1, 364); // a day old, held by nothing
        let expired_other = || cred("x9z", "other", 800, -400);
        let expired_lineage = || cred("k5e", "S", 800, -400);
        let cases: Vec<(&str, LinkState, RotateOptions, &str)> = vec![
            (
                "whole, not due",
                state(vec![old()], &[Some("k0a"), Some("k0a")], vec![], None),
                RotateOptions::default(),
                "not-due",
            ),
            (
                "whole, due by expiry",
                state(vec![due_old()], &[Some("k0a")], vec![], None),
                RotateOptions::default(),
                "rotate",
            ),
            (
                "forced",
                state(vec![old()], &[Some("k0a")], vec![], None),
                RotateOptions {
                    force: true,
                    ..Default::default()
                },
                "rotate",
            ),
            (
                "forced re-run after the work was done: fulfilled",
                state(vec![old(), new()], &[Some("k1b")], vec![], None),
                RotateOptions {
                    force: true,
                    replace_key_id: Some("k0a".into()),
                    ..Default::default()
                },
                "not-due",
            ),
            (
                "forced re-run after a partial write: repair only",
                state(
                    vec![old(), new()],
                    &[Some("k1b"), Some("k0a")],
                    vec![],
                    None,
                ),
                RotateOptions {
                    force: true,
                    replace_key_id: Some("k0a".into()),
                    ..Default::default()
                },
                "repair k1b",
            ),
            (
                "diverged only: repair",
                state(
                    vec![old(), new()],
                    &[Some("k1b"), Some("k0a")],
                    vec![],
                    None,
                ),
                RotateOptions::default(),
                "repair k1b",
            ),
            (
                "diverged and due: repair then rotate",
                state(
                    vec![due_old(), cred("k1b", "S rotor:r1", 340, 10)],
                    &[Some("k1b"), Some("k0a")],
                    vec![],
                    None,
                ),
                RotateOptions::default(),
                "repair k1b, rotate",
            ),
            (
                "another run in progress",
                state(vec![old(), fresh()], &[Some("k0a")], vec![], None),
                RotateOptions {
                    force: true,
                    ..Default::default()
                },
                "in-progress k2c",
            ),
            (
                "a crashed run's orphan",
                state(vec![old(), stale()], &[Some("k0a")], vec![], None),
                RotateOptions::default(),
                "remove k3d",
            ),
            (
                "an orphan held outside the link: two links",
                state(
                    vec![old(), stale()],
                    &[Some("k0a")],
                    vec![outside("k3d")],
                    None,
                ),
                RotateOptions::default(),
                "claimed k3d",
            ),
            (
                "the current credential held outside: two links",
                state(vec![old()], &[Some("k0a")], vec![outside("k0a")], None),
                RotateOptions::default(),
                "claimed k0a",
            ),
            (
                "an older credential held outside: not a conflict",
                state(
                    vec![cred("k7f", "S", 400, 30), old()],
                    &[Some("k0a")],
                    vec![outside("k7f")],
                    None,
                ),
                RotateOptions::default(),
                "not-due",
            ),
            (
                "capped, an expired lineage credential makes room",
                state(
                    vec![expired_lineage(), due_old()],
                    &[Some("k0a")],
                    vec![],
                    capped,
                ),
                RotateOptions::default(),
                "room k5e rotate",
            ),
            (
                "capped, only an expired credential outside the lineage: refuse",
                state(
                    vec![expired_other(), due_old()],
                    &[Some("k0a")],
                    vec![],
                    capped,
                ),
                RotateOptions::default(),
                "no-room",
            ),
            (
                "capped, the orphan frees the slot",
                state(vec![due_old(), stale()], &[Some("k0a")], vec![], capped),
                RotateOptions::default(),
                "remove k3d, rotate",
            ),
            (
                "nothing held: create",
                state(vec![old()], &[None], vec![], None),
                RotateOptions::default(),
                "rotate",
            ),
        ];
        for (what, st, opts, want) in cases {
            let got = decide(&st, &Policy::default(), &opts, NOW, &|t| {
                t.vault_url.to_string()
            });
            assert_eq!(summary(&got), want, "{what}");
        }
    }

    #[test]
    fn cleanup_from_is_the_first_time_an_older_credential_may_go() {
        let policy = Policy::default(); // grace 7 days
        let days = |d: i64| NOW + time::Duration::days(d);
        // k0 superseded by k1 30 days ago, k1 by the current k2 a day ago: k0 may go since
        // 23 days, although the current credential is inside its grace period
        let st = state(
            vec![
                cred("k0a", "S", 300, 60),
                cred("k1b", "S rotor:r1", 30, 335),
                cred("k2c", "S rotor:r2", 1, 364),
            ],
            &[Some("k2c")],
            vec![],
            None,
        );
        assert_eq!(cleanup_from(&st, &policy), Some(days(-23)));
        // only k1, superseded a day ago: not before its grace period ends
        let st = state(
            vec![
                cred("k1b", "S rotor:r1", 30, 335),
                cred("k2c", "S rotor:r2", 1, 364),
            ],
            &[Some("k2c")],
            vec![],
            None,
        );
        assert_eq!(cleanup_from(&st, &policy), Some(days(6)));
        // an older credential that expires first goes when it expires
        let st = state(
            vec![
                cred("k1b", "S rotor:r1", 30, 2),
                cred("k2c", "S rotor:r2", 1, 364),
            ],
            &[Some("k2c")],
            vec![],
            None,
        );
        assert_eq!(cleanup_from(&st, &policy), Some(days(2)));
        // nothing older than the current credential
        let st = state(
            vec![cred("k2c", "S rotor:r2", 1, 364)],
            &[Some("k2c")],
            vec![],
            None,
        );
        assert_eq!(cleanup_from(&st, &policy), None);
    }

    #[test]
    fn removable_rules() {
        let policy = Policy::default(); // grace 7 days
        let label = |t: &Target| t.vault_url.to_string();
        let st = state(
            vec![cred("k0a", "S", 300, 60), cred("k1b", "S rotor:r1", 3, 362)],
            &[Some("k1b")],
            vec![],
            None,
        );
        let why = removable(&st, &st.lineage[0], &policy, NOW, &label).expect_err("kept");
        assert!(why.starts_with("grace period until"), "{why}");
        let st = state(
            vec![cred("k0a", "S", 300, 60), cred("k1b", "S rotor:r1", 8, 357)],
            &[Some("k1b")],
            vec![],
            None,
        );
        assert_eq!(
            removable(&st, &st.lineage[0], &policy, NOW, &label),
            Ok("grace period over".into())
        );
        assert!(
            removable(&st, &st.lineage[1], &policy, NOW, &label)
                .expect_err("kept")
                .starts_with("held by")
        );
        let mut scan_failed = st.clone();
        scan_failed.scan_errors.push("kv: 503".into());
        assert!(
            removable(&scan_failed, &st.lineage[0], &policy, NOW, &label)
                .expect_err("kept")
                .contains("cannot prove")
        );
    }

    #[test]
    fn day_arithmetic_saturates() {
        assert!(minus_days(NOW, u32::MAX) < NOW);
        assert!(plus_days(NOW, u32::MAX) > NOW);
    }
}
