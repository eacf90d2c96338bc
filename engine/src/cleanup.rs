//! Cleanup of old credentials after the grace period (protocol step 7), and orphan removal.

use crate::engine::Engine;
use crate::error::Result;
use crate::model::{CleanupOutcome, KeptCredential, Link};
use crate::policy::Policy;
use crate::rotation::read_state;
use futures::StreamExt;

fn fmt_time(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

pub(crate) async fn cleanup(
    e: &Engine,
    link: &Link,
    policy: &Policy,
    dry_run: bool,
) -> Result<CleanupOutcome> {
    let inner = &e.inner;
    let lock = inner.link_lock(&link.application_id, &link.credential_display_name);
    let _guard = lock.lock().await;
    let app = inner.fetch_app(&link.application_id).await?;
    let st = read_state(e, link, policy, app, false).await?;
    let now = inner.now();
    let grace = time::Duration::days(i64::from(policy.grace_period_days));
    let mut out = CleanupOutcome {
        dry_run,
        ..Default::default()
    };
    let mut remove = Vec::new();
    for (i, c) in st.lineage.iter().enumerate() {
        if let Some(t) = st
            .targets
            .iter()
            .find(|t| t.held.as_deref() == Some(c.key_id.as_str()))
        {
            out.kept.push(KeptCredential {
                key_id: c.key_id.clone(),
                reason: format!("held by {}", inner.vaults.label(&t.target)),
            });
            continue;
        }
        if st.in_progress.iter().any(|p| p.key_id == c.key_id) {
            out.kept.push(KeptCredential {
                key_id: c.key_id.clone(),
                reason: "rotation in progress (younger than the pending window)".to_owned(),
            });
            continue;
        }
        if st.orphans.iter().any(|p| p.key_id == c.key_id) {
            remove.push((
                c.clone(),
                "orphan: created by rotor, held by no target, older than the pending window",
            ));
            continue;
        }
        let Some(cur) = &st.current else {
            out.kept.push(KeptCredential {
                key_id: c.key_id.clone(),
                reason: "no target holds a credential of this lineage; nothing is removed"
                    .to_owned(),
            });
            continue;
        };
        let rank = |k: &str| st.lineage.iter().position(|x| x.key_id == k);
        if rank(&c.key_id) >= rank(&cur.key_id) {
            out.kept.push(KeptCredential {
                key_id: c.key_id.clone(),
                reason: "newer than the current credential".to_owned(),
            });
            continue;
        }
        let successor = st.lineage.get(i + 1).unwrap_or(cur);
        let until = successor.start + grace;
        if until <= now {
            remove.push((c.clone(), "grace period over"));
        } else {
            out.kept.push(KeptCredential {
                key_id: c.key_id.clone(),
                reason: format!("grace period until {}", fmt_time(until)),
            });
        }
    }
    for (c, why) in remove {
        if !dry_run {
            tracing::info!(app_id = %st.app.app_id, key_id = %c.key_id, "removing credential: {why}");
            inner.graph.remove_password(&st.app, &c.key_id).await?;
            inner.invalidate(&st.app.app_id);
        }
        out.removed_key_ids.push(c.key_id.clone());
    }
    Ok(out)
}

pub(crate) async fn cleanup_many(
    e: &Engine,
    links: &[Link],
    policy: &Policy,
    dry_run: bool,
) -> Vec<Result<CleanupOutcome>> {
    // Futures built eagerly (lazy until polled) so this future stays `Send` (see `match_secrets`).
    let each: Vec<_> = links
        .iter()
        .map(|l| cleanup(e, l, policy, dry_run))
        .collect();
    crate::http::with_limit(
        policy.max_concurrent,
        futures::stream::iter(each)
            .buffered(policy.max_concurrent.max(1))
            .collect(),
    )
    .await
}
