//! Certificate rotation: the protocol of docs/protocol.md ("Certificates"), resumable from
//! Azure's state alone (the Key Vault certificate's versions and pending operation, the
//! application's key credentials).

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{
    AuditRecord, CertificateLink, CertificateLinkStatus, CleanupOutcome, RotateOptions,
};
use crate::policy::Policy;
use crate::progress::Progress;

fn not_built(what: &str) -> Error {
    Error::other(what.to_owned(), "not built yet")
}

pub(crate) async fn certificate_links(
    _e: &Engine,
    _config: &Config,
) -> Result<Vec<CertificateLink>> {
    Err(not_built("finding certificate links"))
}

pub(crate) async fn inspect(
    _e: &Engine,
    link: &CertificateLink,
    _policy: &Policy,
) -> Result<CertificateLinkStatus> {
    Err(not_built(&format!("inspecting {link}")))
}

pub(crate) async fn rotate(
    e: &Engine,
    link: &CertificateLink,
    _policy: &Policy,
    _opts: &RotateOptions,
    _progress: &dyn Progress,
) -> AuditRecord {
    let now = e.now();
    AuditRecord {
        kind: crate::model::CredentialKind::Certificate,
        rotation_id: uuid::Uuid::new_v4().to_string(),
        started_at: now,
        finished_at: now,
        actor: String::new(),
        app_id: link.application_id.clone(),
        app_name: String::new(),
        old_key_id: None,
        new_key_id: None,
        new_expires_at: None,
        confidence: crate::model::Confidence::None,
        targets: Vec::new(),
        status: crate::model::RotationStatus::Failed,
        error: Some(not_built(&format!("rotating {link}")).to_string()),
        notes: Vec::new(),
        hints: Vec::new(),
        dry_run: false,
        removed_key_ids: Vec::new(),
        old_thumbprint: None,
        new_thumbprint: None,
        skip_reason: None,
        error_subject: None,
    }
}

pub(crate) async fn cleanup(
    _e: &Engine,
    link: &CertificateLink,
    _policy: &Policy,
    _dry_run: bool,
) -> Result<CleanupOutcome> {
    Err(not_built(&format!("cleaning up {link}")))
}

pub(crate) async fn due(
    _e: &Engine,
    _config: &Config,
) -> Result<Vec<(CertificateLink, CertificateLinkStatus)>> {
    Err(not_built("finding due certificate links"))
}

pub(crate) async fn adopt(_e: &Engine, _config: &Config, key_id: &str) -> Result<CertificateLink> {
    Err(not_built(&format!("adopting key credential {key_id}")))
}
