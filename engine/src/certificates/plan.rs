//! Pure decisions over a certificate link's state: what is due, what to do, and the one
//! `removable()` rule of cleanup (docs/protocol.md, "Certificates").

use super::state::CertState;
use crate::model::{KeyCredential, RotateOptions};
use crate::policy::Policy;
use crate::rotation::fmt_time;
use crate::rotation::plan::{minus_days, plus_days};
use time::OffsetDateTime;

/// What a run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A certificate operation is in progress in Key Vault (index of the certificate).
    InProgress(usize),
    /// A certificate of the link does not exist in Key Vault (index).
    NoCertificate(usize),
    /// A rotation is due but cannot run; the sentence says why and what to do.
    Refused(String),
    /// Nothing to do.
    NotDue {
        /// When the generating certificate's current version becomes due.
        next: Option<OffsetDateTime>,
    },
    /// Sync (add these certificates' current versions) and/or rotate (the reason).
    Act {
        sync: Vec<usize>,
        rotate: Option<String>,
    },
}

/// When the certificates' current versions become due (the earliest), if known.
pub(crate) fn next_rotation_at(st: &CertState, policy: &Policy) -> Option<OffsetDateTime> {
    st.certs
        .iter()
        .filter_map(|c| c.current.as_ref()?.expires)
        .map(|x| minus_days(x, policy.rotate_before_expiry_days))
        .min()
}

/// Why a rotation (a new Key Vault version) is due now, if it is.
pub(crate) fn due_reason(
    st: &CertState,
    policy: &Policy,
    opts: &RotateOptions,
    now: OffsetDateTime,
) -> Option<String> {
    if opts.force {
        if let Some(k) = &opts.replace_key_id {
            // Fulfilled once the credential asked to be replaced no longer holds the
            // generating certificate's current version (a re-run after a crash).
            let cur = st.current().map(|c| c.key_id.clone());
            if cur.as_deref().is_none_or(|c| !c.eq_ignore_ascii_case(k)) {
                return None;
            }
        }
        return Some("forced".to_owned());
    }
    for c in &st.certs {
        let Some(v) = &c.current else { continue };
        let Some(exp) = v.expires else { continue };
        let at = minus_days(exp, policy.rotate_before_expiry_days);
        if at <= now {
            return Some(format!(
                "{} (version {}) expires at {}, within {} days",
                c.target,
                v.version,
                fmt_time(exp),
                policy.rotate_before_expiry_days
            ));
        }
    }
    None
}

/// The decision (pure).
pub(crate) fn decide(
    st: &CertState,
    policy: &Policy,
    opts: &RotateOptions,
    now: OffsetDateTime,
) -> Decision {
    if let Some(i) = st.certs.iter().position(|c| c.in_progress()) {
        return Decision::InProgress(i);
    }
    if let Some(i) = st.certs.iter().position(|c| c.current.is_none()) {
        return Decision::NoCertificate(i);
    }
    let sync = st.missing();
    let rotate = due_reason(st, policy, opts, now);
    if rotate.is_some() && st.certs.len() != 1 {
        let names: Vec<String> = st.certs.iter().map(|c| c.target.to_string()).collect();
        return Decision::Refused(format!(
            "a rotation is due but the lineage is held by {} certificates ({}); rotor makes new versions in exactly one certificate per link: give each certificate's key credentials their own display name, or exclude all but one with `secret:<certificate-name>`",
            names.len(),
            names.join(", ")
        ));
    }
    if sync.is_empty() && rotate.is_none() {
        return Decision::NotDue {
            next: next_rotation_at(st, policy),
        };
    }
    Decision::Act { sync, rotate }
}

/// The key credential that superseded `k`: the next newer one of the lineage, else (start
/// times can tie: they are the certificates' NotBefore) the one holding the current version.
fn successor<'a>(st: &'a CertState, k: &KeyCredential) -> Option<&'a KeyCredential> {
    st.lineage
        .iter()
        .find(|n| n.start > k.start)
        .or(st.current().filter(|c| c.key_id != k.key_id))
}

/// The earliest time [`removable`]'s time rules allow removing one of `previous`, the key
/// credentials rotor added before the current one: when it expires or its successor's grace
/// period ends. `None` when there is none.
pub(crate) fn cleanup_from<'a>(
    st: &CertState,
    previous: impl Iterator<Item = &'a KeyCredential>,
    policy: &Policy,
) -> Option<OffsetDateTime> {
    previous
        .filter(|k| k.rotation_id().is_some())
        .map(|k| {
            let superseded = successor(st, k).map(|n| plus_days(n.start, policy.grace_period_days));
            superseded.map_or(k.end, |t| t.min(k.end))
        })
        .min()
}

/// May cleanup remove key credential `k` of the lineage? `Ok(why)` or `Err(why it is kept)`.
pub(crate) fn removable(
    st: &CertState,
    k: &KeyCredential,
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<String, String> {
    if k.rotation_id().is_none() {
        return Err("not added by rotor".to_owned());
    }
    if st
        .keys
        .token_encryption_key_id
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(&k.key_id))
    {
        return Err("the application's tokenEncryptionKeyId".to_owned());
    }
    if let Some(tp) = k.thumbprint.as_deref() {
        for c in &st.certs {
            if let Some(v) = &c.current
                && v.thumbprint.eq_ignore_ascii_case(tp)
            {
                return Err(format!("the current version of {}", c.target));
            }
        }
        if let Some((_, label)) = st
            .held_elsewhere
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(tp))
        {
            return Err(format!("the current version of {label}"));
        }
    }
    if !st.scope_complete {
        return Err(
            "a vault in scope could not be listed, so rotor cannot prove no certificate holds it"
                .to_owned(),
        );
    }
    if k.end <= now {
        return Ok(format!("expired at {}", fmt_time(k.end)));
    }
    let Some(next) = successor(st, k) else {
        return Err("the newest key credential of the lineage".to_owned());
    };
    let until = plus_days(next.start, policy.grace_period_days);
    if now < until {
        return Err(format!("grace period until {}", fmt_time(until)));
    }
    Ok(format!(
        "superseded by {} at {}; grace period over",
        next.key_id,
        fmt_time(next.start)
    ))
}

#[cfg(test)]
mod tests {
    use super::super::state::{CertState, CertTargetState};
    use super::*;
    use crate::graph::KeyCredentialSet;
    use crate::keyvault::{CertificateOperationState, CertificateVersion};
    use crate::model::{Application, CertificateTarget};
    use std::collections::BTreeMap;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 0:00 UTC);

    fn key(id: &str, name: &str, tp: &str, start: OffsetDateTime) -> KeyCredential {
        KeyCredential {
            key_id: id.into(),
            display_name: Some(name.into()),
            thumbprint: Some(tp.into()),
            kind: Some("AsymmetricX509Cert".into()),
            usage: Some("Verify".into()),
            start,
            end: start + time::Duration::days(365),
        }
    }

    fn cert(name: &str, tp: &str, exp: OffsetDateTime) -> CertTargetState {
        let target = CertificateTarget::new(
            url::Url::parse("https://kv.vault.azure.net/").expect("url"),
            name,
        );
        CertTargetState {
            target,
            current: Some(CertificateVersion {
                name: name.into(),
                version: format!("v-{tp}"),
                thumbprint: tp.into(),
                cer: vec![1],
                not_before: Some(exp - time::Duration::days(365)),
                expires: Some(exp),
                enabled: true,
                created: None,
                policy: None,
            }),
            versions: Vec::new(),
            operation: None,
        }
    }

    fn state(keys: Vec<KeyCredential>, certs: Vec<CertTargetState>) -> CertState {
        let mut lineage: Vec<KeyCredential> = keys
            .iter()
            .filter(|k| k.in_lineage("main"))
            .cloned()
            .collect();
        lineage.sort_by_key(|k| k.start);
        CertState {
            app: Application {
                object_id: "o".into(),
                app_id: "a".into(),
                display_name: "A".into(),
                sign_in_audience: None,
                password_credentials: Vec::new(),
                key_credentials: Vec::new(),
            },
            keys: KeyCredentialSet {
                entries: Vec::new(),
                token_encryption_key_id: None,
            },
            all: keys,
            lineage,
            certs,
            held_elsewhere: BTreeMap::new(),
            scope_complete: true,
        }
    }

    fn far() -> OffsetDateTime {
        NOW + time::Duration::days(200)
    }

    #[test]
    fn decisions() {
        let p = Policy::default();
        let o = RotateOptions::default();
        let old = key("k1", "main", "AA", NOW - time::Duration::days(100));
        // synced, far from expiry → not due
        let st = state(vec![old.clone()], vec![cert("c", "AA", far())]);
        assert!(matches!(
            decide(&st, &p, &o, NOW),
            Decision::NotDue { next: Some(_) }
        ));
        // near expiry → rotate
        let st = state(
            vec![old.clone()],
            vec![cert("c", "AA", NOW + time::Duration::days(10))],
        );
        assert!(
            matches!(decide(&st, &p, &o, NOW), Decision::Act { ref sync, rotate: Some(_) } if sync.is_empty())
        );
        // AutoRenew made a version the app lacks → sync only
        let st = state(vec![old.clone()], vec![cert("c", "BB", far())]);
        assert_eq!(
            decide(&st, &p, &o, NOW),
            Decision::Act {
                sync: vec![0],
                rotate: None
            }
        );
        // an operation in progress → wait
        let mut c = cert("c", "AA", far());
        c.operation = Some(CertificateOperationState {
            status: "inProgress".into(),
            error: None,
        });
        let st = state(vec![old.clone()], vec![c]);
        assert_eq!(decide(&st, &p, &o, NOW), Decision::InProgress(0));
        // the certificate is gone
        let mut c = cert("c", "AA", far());
        c.current = None;
        let st = state(vec![old.clone()], vec![c]);
        assert_eq!(decide(&st, &p, &o, NOW), Decision::NoCertificate(0));
        // two certificates and a due rotation → refused naming both
        let st = state(
            vec![old.clone()],
            vec![
                cert("c1", "AA", NOW + time::Duration::days(1)),
                cert("c2", "CC", far()),
            ],
        );
        match decide(&st, &p, &o, NOW) {
            Decision::Refused(m) => assert!(m.contains("`c1`") && m.contains("`c2`"), "{m}"),
            d => panic!("{d:?}"),
        }
        // two certificates, nothing due, one missing → sync it
        let st = state(
            vec![old.clone()],
            vec![cert("c1", "AA", far()), cert("c2", "CC", far())],
        );
        assert_eq!(
            decide(&st, &p, &o, NOW),
            Decision::Act {
                sync: vec![1],
                rotate: None
            }
        );
    }

    #[test]
    fn forced_with_replace_key_id_is_fulfilled_once_the_lineage_moved_on() {
        let p = Policy::default();
        let old = key("k1", "main", "AA", NOW - time::Duration::days(100));
        let new = key("k2", "main rotor:r", "BB", NOW - time::Duration::days(1));
        let mut o = RotateOptions {
            force: true,
            replace_key_id: Some("k1".into()),
            ..Default::default()
        };
        let st = state(vec![old.clone()], vec![cert("c", "AA", far())]);
        assert!(matches!(
            decide(&st, &p, &o, NOW),
            Decision::Act {
                rotate: Some(_),
                ..
            }
        ));
        // after the crash: Key Vault made BB and it is on the app → nothing more
        let st = state(vec![old.clone(), new.clone()], vec![cert("c", "BB", far())]);
        assert!(matches!(decide(&st, &p, &o, NOW), Decision::NotDue { .. }));
        // BB made but not yet on the app → sync, no second version
        let st = state(vec![old.clone()], vec![cert("c", "BB", far())]);
        assert_eq!(
            decide(&st, &p, &o, NOW),
            Decision::Act {
                sync: vec![0],
                rotate: None
            }
        );
        o.replace_key_id = None;
        let st = state(vec![old, new], vec![cert("c", "BB", far())]);
        assert!(matches!(
            decide(&st, &p, &o, NOW),
            Decision::Act {
                rotate: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn removable_rules() {
        let p = Policy::default(); // 7 days grace
        let r1 = key("k1", "main rotor:r1", "AA", NOW - time::Duration::days(100));
        let r2 = key("k2", "main rotor:r2", "BB", NOW - time::Duration::days(30));
        let r3 = key("k3", "main rotor:r3", "CC", NOW - time::Duration::days(2));
        let foreign = key("f", "main", "DD", NOW - time::Duration::days(200));
        let st = state(
            vec![foreign.clone(), r1.clone(), r2.clone(), r3.clone()],
            vec![cert("c", "CC", far())],
        );
        assert_eq!(
            removable(&st, &foreign, &p, NOW),
            Err("not added by rotor".into())
        );
        assert!(
            removable(&st, &r1, &p, NOW).is_ok(),
            "superseded 30 days ago"
        );
        let kept = removable(&st, &r2, &p, NOW).expect_err("grace");
        assert!(kept.starts_with("grace period until"), "{kept}");
        let kept = removable(&st, &r3, &p, NOW).expect_err("current");
        assert!(kept.contains("current version"), "{kept}");
        // the first time one may go: r1, since its successor's grace period ended 23 days ago
        // (r3 is inside its own); the foreign key never counts
        assert_eq!(
            cleanup_from(&st, [&foreign, &r1, &r2].into_iter(), &p),
            Some(NOW - time::Duration::days(23))
        );
        assert_eq!(
            cleanup_from(&st, [&r2].into_iter(), &p),
            Some(NOW + time::Duration::days(5)),
            "r2 waits for r3's grace period"
        );
        assert_eq!(cleanup_from(&st, [&foreign].into_iter(), &p), None);
        // tokenEncryptionKeyId is never removed
        let mut st2 = st.clone();
        st2.keys.token_encryption_key_id = Some("k1".into());
        assert_eq!(
            removable(&st2, &r1, &p, NOW),
            Err("the application's tokenEncryptionKeyId".into())
        );
        // a certificate elsewhere in scope holds it as current
        let mut st3 = st.clone();
        st3.held_elsewhere
            .insert("AA".into(), "Key Vault certificate `x`".into());
        assert!(
            removable(&st3, &r1, &p, NOW)
                .expect_err("held")
                .contains("`x`")
        );
        // an unlistable vault keeps everything
        let mut st4 = st.clone();
        st4.scope_complete = false;
        assert!(removable(&st4, &r1, &p, NOW).is_err());
    }
}
