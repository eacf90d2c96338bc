//! Cleanup of old credentials after the grace period (protocol step 7), and orphan removal.

use crate::engine::Engine;
use crate::error::Result;
use crate::model::{CleanupOutcome, KeptCredential, Link};
use crate::policy::Policy;
use crate::rotation::plan::removable;
use crate::rotation::read_state;
use futures::StreamExt;

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
    // The scope scan (reused for a few minutes) proves that no secret outside the link holds
    // what is removed; a vault that cannot be listed keeps everything.
    let st = read_state(e, link, policy, app, false, Some(false)).await?;
    let now = inner.now();
    let label = |t: &crate::model::Target| inner.vaults.label(t);
    let mut out = CleanupOutcome {
        dry_run,
        ..Default::default()
    };
    let mut remove = Vec::new();
    for c in &st.lineage {
        match removable(&st, c, policy, now, &label) {
            Ok(why) => remove.push((c.clone(), why)),
            Err(reason) => out.kept.push(KeptCredential {
                key_id: c.key_id.clone(),
                reason,
            }),
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
