//! Step 4: prove the new credential by logging in with it (client credentials), retrying
//! through Entra's propagation delay. Apps without a service principal (AADSTS7000229) cannot log
//! in: they are verified by reading back what is written, and the record says so.

use super::record::Reporter;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Application;
use crate::progress::{Step, StepState};
use crate::secret::SecretValue;
use std::time::Duration;

pub(crate) enum Verified {
    Login,
    NoServicePrincipal,
}

/// Logs in with the new secret (client credentials), retrying through propagation delay.
pub(crate) async fn run(
    e: &Engine,
    app: &Application,
    value: &SecretValue,
    rep: &Reporter<'_>,
) -> Result<Verified> {
    let inner = &e.inner;
    let action = format!("verifying the new credential of {app}");
    let tenant = inner.tenant().await?;
    let url = inner.endpoints.token_url(&tenant)?;
    let scope = inner.endpoints.graph_scope();
    let deadline = tokio::time::Instant::now() + inner.verify_timeout;
    let mut wait = Duration::from_millis(250);
    let mut last;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let form = [
            ("client_id", app.app_id.as_str()),
            ("client_secret", value.expose()),
            ("grant_type", "client_credentials"),
            ("scope", scope.as_str()),
        ];
        let r = crate::http::send(|| inner.http.post(url.clone()).form(&form), 0, &action).await;
        match r {
            Ok(reply) if reply.status.is_success() => return Ok(Verified::Login),
            Ok(reply) => {
                let (code, _, msg) = crate::http::error_details(&reply.body);
                let text = format!(
                    "{} {}",
                    code.clone().unwrap_or_default(),
                    msg.clone().unwrap_or_default()
                );
                if text.contains("AADSTS7000229") {
                    return Ok(Verified::NoServicePrincipal);
                }
                last = crate::http::describe(reply.status, code.as_deref(), msg.as_deref());
            }
            Err(err) => last = err.to_string(),
        }
        if tokio::time::Instant::now() + wait > deadline {
            break;
        }
        if attempts == 1 || attempts.is_multiple_of(5) {
            rep.emit(Step::Verify, StepState::Waiting, None, format!("the new credential does not work yet ({last}); retrying while Entra propagates it"));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
    Err(Error::new(
        ErrorKind::Verification,
        action,
        format!(
            "logging in with it failed for {} s ({attempts} attempts); last answer: {last}",
            inner.verify_timeout.as_secs()
        ),
    )
    .with_hint("nothing was written to the targets; the old credential stays valid")
    .with_hint("Entra can take a minute to propagate new secrets: re-run, or raise the verification timeout"))
}
