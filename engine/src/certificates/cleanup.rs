//! Step 6: remove the lineage's key credentials that rotor added once `removable()` allows —
//! `removeKey` with a proof signed through Key Vault when a valid certificate of the link can
//! sign it, else PATCH of the whole collection without them (every other entry unchanged).

use super::jwt;
use super::plan::removable;
use super::state::{self, parse_key};
use crate::engine::Engine;
use crate::error::Result;
use crate::model::{CertificateLink, CleanupOutcome, KeptCredential};
use crate::policy::Policy;
use time::OffsetDateTime;

pub(crate) async fn cleanup(
    e: &Engine,
    link: &CertificateLink,
    policy: &Policy,
    dry_run: bool,
) -> Result<CleanupOutcome> {
    let inner = &e.inner;
    let lock = inner.link_lock(
        &link.application_id,
        &format!("certificate:{}", link.credential_display_name),
    );
    let _guard = lock.lock().await;
    let app = inner.fetch_app(&link.application_id).await?;
    let st = state::read(e, link, app, true).await?;
    let now = inner.now();
    let mut out = CleanupOutcome {
        dry_run,
        ..Default::default()
    };
    let mut remove = Vec::new();
    for k in &st.lineage {
        match removable(&st, k, policy, now) {
            Ok(why) => remove.push((k.clone(), why)),
            Err(reason) => out.kept.push(KeptCredential {
                key_id: k.key_id.clone(),
                reason,
            }),
        }
    }
    if dry_run || remove.is_empty() {
        out.removed_key_ids = remove.into_iter().map(|(k, _)| k.key_id).collect();
        return Ok(out);
    }
    for (k, why) in &remove {
        tracing::info!(app_id = %st.app.app_id, key_id = %k.key_id, "removing key credential: {why}");
        // a signer other than the key being removed
        let signer = st.signer_except(OffsetDateTime::now_utc(), k.thumbprint.as_deref());
        let mut done = false;
        if let Some((ci, version, tp)) = signer {
            let proof =
                jwt::proof(e, &st.app.object_id, &st.certs[ci].target, &version, &tp).await?;
            let signer_t = &st.certs[ci].target;
            match inner
                .graph
                .remove_key(&st.app, &k.key_id, proof.expose(), None)
                .await
            {
                Ok(()) => done = true,
                Err(err) if err.status() == Some(403) => {
                    // rotor may not write applications: the application removes its own key
                    let scope = inner.endpoints.graph_scope();
                    if let Ok(token) =
                        jwt::sign_in(e, &st.app.app_id, signer_t, &version, &tp, &scope).await?
                    {
                        let proof =
                            jwt::proof(e, &st.app.object_id, signer_t, &version, &tp).await?;
                        inner
                            .graph
                            .remove_key(&st.app, &k.key_id, proof.expose(), Some(&token))
                            .await?;
                        done = true;
                    } else {
                        return Err(err);
                    }
                }
                Err(err) => tracing::warn!("{err}; removing with PATCH instead"),
            }
        }
        if !done {
            let fresh = inner.graph.get_key_credentials(&st.app).await?;
            let before = fresh.entries.len();
            let entries: Vec<_> = fresh
                .entries
                .into_iter()
                .filter(|x| !parse_key(x).key_id.eq_ignore_ascii_case(&k.key_id))
                .collect();
            if entries.len() != before {
                inner.graph.patch_key_credentials(&st.app, &entries).await?;
            }
        }
        inner.invalidate(&st.app.app_id);
        out.removed_key_ids.push(k.key_id.clone());
    }
    Ok(out)
}
