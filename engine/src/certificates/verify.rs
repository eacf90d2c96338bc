//! Step 4: sign in as the application with a client assertion signed through Key Vault by the
//! NEW version's key, retrying through Entra's propagation delay.

use super::jwt;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::model::CertificateTarget;
use std::time::Duration;

pub(crate) enum Verified {
    SignedIn,
    /// The application has no service principal (AADSTS7000229): nobody can sign in as it;
    /// the key credential was read back instead.
    NoServicePrincipal,
}

pub(crate) async fn run(
    e: &Engine,
    app_id: &str,
    target: &CertificateTarget,
    version: &str,
    thumbprint: &str,
) -> Result<Verified> {
    let inner = &e.inner;
    let scope = inner.endpoints.graph_scope();
    let deadline = tokio::time::Instant::now() + inner.verify_timeout;
    let mut wait = Duration::from_millis(250);
    let mut attempts = 0u32;
    let mut last;
    loop {
        attempts += 1;
        match jwt::sign_in(e, app_id, target, version, thumbprint, &scope).await {
            Ok(Ok(_token)) => return Ok(Verified::SignedIn),
            Ok(Err(answer)) => {
                if answer.contains("AADSTS7000229") {
                    return Ok(Verified::NoServicePrincipal);
                }
                last = answer;
            }
            Err(err) if err.kind() == ErrorKind::Permission && err.status().is_some() => {
                // Key Vault refused to sign: retrying does not help
                return Err(err);
            }
            Err(err) => last = err.to_string(),
        }
        if tokio::time::Instant::now() + wait > deadline {
            break;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
    Err(Error::new(
        ErrorKind::Verification,
        format!("verifying the new certificate of application {app_id}"),
        format!(
            "signing in with {target} (version {version}) failed for {} s ({attempts} attempts); last answer: {last}",
            inner.verify_timeout.as_secs()
        ),
    )
    .with_hint("the key credential stays on the application and the old one stays valid; Entra can take a minute to propagate: re-run"))
}
