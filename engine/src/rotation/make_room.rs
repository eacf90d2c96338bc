//! Step 2: make room under Entra's password cap (2 for apps that accept personal accounts) by
//! removing a credential of this lineage that [`super::plan::removable`] allows, after a fresh
//! proof. Never a credential outside the lineage: with nothing removable the plan refuses.

use super::record::Reporter;
use super::resume::prove_removable;
use super::state::LinkState;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{AuditRecord, Link, PasswordCredential};
use crate::policy::Policy;
use crate::progress::{Step, StepState};

pub(crate) async fn run(
    e: &Engine,
    link: &Link,
    st: &mut LinkState,
    room: &(PasswordCredential, String),
    policy: &Policy,
    rep: &Reporter<'_>,
    rec: &mut AuditRecord,
) -> Result<()> {
    let (c, why) = room;
    if let Err(kept) = prove_removable(e, link, st, c, policy).await {
        return Err(no_room(st, &[(c.key_id.clone(), kept)]));
    }
    rep.emit(
        Step::MakeRoom,
        StepState::Started,
        None,
        format!("removing {why}"),
    );
    e.inner.graph.remove_password(&st.app, &c.key_id).await?;
    e.inner.invalidate(&st.app.app_id);
    rec.removed_key_ids.push(c.key_id.clone());
    rec.notes.push(format!(
        "made room under the password cap by removing {why}"
    ));
    st.app.password_credentials.retain(|x| x.key_id != c.key_id);
    st.lineage.retain(|x| x.key_id != c.key_id);
    rep.emit(
        Step::MakeRoom,
        StepState::Done,
        None,
        format!("removed {}", c.key_id),
    );
    Ok(())
}

/// The refusal when nothing of the lineage can be removed at the cap.
pub(crate) fn no_room(st: &LinkState, kept: &[(String, String)]) -> Error {
    let why: Vec<String> = kept.iter().map(|(k, w)| format!("{k}: {w}")).collect();
    Error::new(
        ErrorKind::Conflict,
        format!("making room for a new password on {}", st.app),
        format!(
            "it already has {} passwords, the cap for applications that accept personal accounts, and no credential of the lineage `{}` can be removed safely ({}); rotor never removes a credential outside the lineage",
            st.app.password_credentials.len(),
            st.name,
            if why.is_empty() { "it has none".to_owned() } else { why.join("; ") }
        ),
    )
    .with_hint("run `rotor cleanup` after the grace period, or remove an unused password of the application in the Entra portal")
}
