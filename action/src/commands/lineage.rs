//! Secret and certificate lineages side by side: the front ends select, rotate, clean up and show
//! both kinds of link the same way. The engine keeps them apart (`due_links` and
//! `due_certificate_links`, `rotate_many` and `rotate_certificate`, docs/protocol.md
//! "Certificates"); this module puts them in one list, secrets first, for the commands and the
//! Action.

use rotor_engine::{
    AuditRecord, CertificateLink, CertificateLinkStatus, CleanupOutcome, Confidence, Config,
    CredentialKind, Engine, Link, LinkStatus, Policy, Progress, RotateOptions,
};
use url::Url;

/// A secret link or a certificate link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyLink {
    /// Client secret ↔ Key Vault secrets.
    Secret(Link),
    /// Certificate credential lineage ↔ Key Vault certificate(s).
    Certificate(CertificateLink),
}

/// What inspection learned about an [`AnyLink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyStatus {
    Secret(LinkStatus),
    Certificate(CertificateLinkStatus),
}

impl AnyLink {
    /// The application's appId.
    pub fn application_id(&self) -> &str {
        match self {
            AnyLink::Secret(l) => &l.application_id,
            AnyLink::Certificate(l) => &l.application_id,
        }
    }

    /// The lineage's display name.
    pub fn credential_display_name(&self) -> &str {
        match self {
            AnyLink::Secret(l) => &l.credential_display_name,
            AnyLink::Certificate(l) => &l.credential_display_name,
        }
    }

    /// Secret or certificate.
    pub fn kind(&self) -> CredentialKind {
        match self {
            AnyLink::Secret(_) => CredentialKind::Secret,
            AnyLink::Certificate(_) => CredentialKind::Certificate,
        }
    }

    /// True for a certificate link.
    pub fn is_certificate(&self) -> bool {
        matches!(self, AnyLink::Certificate(_))
    }

    /// The Key Vault objects the link keeps current, as (vault URL, secret or certificate name),
    /// sorted by name.
    pub fn targets(&self) -> Vec<(Url, String)> {
        let mut v: Vec<(Url, String)> = match self {
            AnyLink::Secret(l) => l
                .targets
                .iter()
                .map(|t| (t.vault_url.clone(), t.secret_name.clone()))
                .collect(),
            AnyLink::Certificate(l) => l
                .certificates
                .iter()
                .map(|t| (t.vault_url.clone(), t.certificate_name.clone()))
                .collect(),
        };
        v.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        v
    }

    /// The secret link, if it is one.
    pub fn as_secret(&self) -> Option<&Link> {
        match self {
            AnyLink::Secret(l) => Some(l),
            AnyLink::Certificate(_) => None,
        }
    }

    /// The lineage name as tables show it: certificates say so, with the thumbprint when known
    /// (`signing (certificate 3F2A9C1B)`).
    pub fn label(&self, status: Option<&AnyStatus>) -> String {
        match self {
            AnyLink::Secret(l) => l.credential_display_name.clone(),
            AnyLink::Certificate(l) => match status.and_then(AnyStatus::current_thumbprint) {
                Some(t) => format!(
                    "{} (certificate {})",
                    l.credential_display_name,
                    crate::github::records::thumb(t)
                ),
                None => format!("{} (certificate)", l.credential_display_name),
            },
        }
    }
}

impl AnyStatus {
    /// Why a rotation (or sync) is due.
    pub fn due_reason(&self) -> Option<&str> {
        match self {
            AnyStatus::Secret(s) => s.due_reason.as_deref(),
            AnyStatus::Certificate(s) => s.due_reason.as_deref(),
        }
    }

    /// Confidence that the targets hold the current credential. A certificate link is a
    /// thumbprint match: exact (HIGH).
    pub fn confidence(&self) -> Confidence {
        match self {
            AnyStatus::Secret(s) => s.confidence,
            AnyStatus::Certificate(_) => Confidence::High,
        }
    }

    /// When the current credential expires.
    pub fn current_expires_at(&self) -> Option<time::OffsetDateTime> {
        match self {
            AnyStatus::Secret(s) => s.current_expires_at,
            AnyStatus::Certificate(s) => s.current_expires_at,
        }
    }

    /// The current key credential's thumbprint (certificates only).
    pub fn current_thumbprint(&self) -> Option<&str> {
        match self {
            AnyStatus::Secret(_) => None,
            AnyStatus::Certificate(s) => s.current_thumbprint.as_deref(),
        }
    }
}

/// Every link due for rotation: secret links then certificate links, from one discovery
/// ([`Engine::due_links_and_certificate_links`]). Either failing fails the whole selection (the
/// message names what failed), as a failing secret selection always did.
pub async fn due_all(
    engine: &Engine,
    config: &Config,
) -> rotor_engine::Result<Vec<(AnyLink, AnyStatus)>> {
    // one discovery of the tenant for both kinds
    let (secrets, certificates) = engine.due_links_and_certificate_links(config).await?;
    let mut out: Vec<(AnyLink, AnyStatus)> = secrets
        .into_iter()
        .map(|(l, s)| (AnyLink::Secret(l), AnyStatus::Secret(s)))
        .collect();
    out.extend(
        certificates
            .into_iter()
            .map(|(l, s)| (AnyLink::Certificate(l), AnyStatus::Certificate(s))),
    );
    Ok(out)
}

/// Every link found by matching, due or not: secret links, then certificate links.
pub async fn links_all(engine: &Engine, config: &Config) -> rotor_engine::Result<Vec<AnyLink>> {
    // one discovery of the tenant for both kinds
    let (secrets, certificates) = engine.links_and_certificate_links(config).await?;
    let mut out: Vec<AnyLink> = secrets.into_iter().map(AnyLink::Secret).collect();
    out.extend(certificates.into_iter().map(AnyLink::Certificate));
    Ok(out)
}

/// Rotates links of both kinds: the secret links together ([`Engine::rotate_many`], at most
/// `policy.max_concurrent` at once), then each certificate link in turn (a new Key Vault
/// version each; Key Vault makes them one operation at a time per certificate anyway). Records
/// come back in input order.
pub async fn rotate_all(
    engine: &Engine,
    links: &[AnyLink],
    policy: &Policy,
    opts: &RotateOptions,
    progress: &dyn Progress,
) -> Vec<AuditRecord> {
    let secrets: Vec<Link> = links
        .iter()
        .filter_map(|l| l.as_secret().cloned())
        .collect();
    let mut secret_records = if secrets.is_empty() {
        Vec::new()
    } else {
        engine.rotate_many(&secrets, policy, opts, progress).await
    }
    .into_iter();
    let mut out = Vec::with_capacity(links.len());
    for l in links {
        match l {
            AnyLink::Secret(_) => out.extend(secret_records.next()),
            AnyLink::Certificate(c) => {
                out.push(engine.rotate_certificate(c, policy, opts, progress).await);
            }
        }
    }
    out
}

/// Cleans up links of both kinds; results in input order.
pub async fn cleanup_all(
    engine: &Engine,
    links: &[AnyLink],
    policy: &Policy,
    dry_run: bool,
) -> Vec<rotor_engine::Result<CleanupOutcome>> {
    let secrets: Vec<Link> = links
        .iter()
        .filter_map(|l| l.as_secret().cloned())
        .collect();
    let mut secret_results = if secrets.is_empty() {
        Vec::new()
    } else {
        engine.cleanup_many(&secrets, policy, dry_run).await
    }
    .into_iter();
    let mut out = Vec::with_capacity(links.len());
    for l in links {
        match l {
            AnyLink::Secret(_) => out.extend(secret_results.next()),
            AnyLink::Certificate(c) => {
                out.push(engine.cleanup_certificate(c, policy, dry_run).await);
            }
        }
    }
    out
}

/// The "Old → new key" cell of a record: key ids (first 8 characters), and for a certificate
/// also its thumbprints (first 8 hex digits) on a second line.
pub fn keys_cell(r: &AuditRecord) -> String {
    use super::output::short;
    let mut cell = format!(
        "{} → {}",
        r.old_key_id.as_deref().map(short).unwrap_or("-"),
        r.new_key_id.as_deref().map(short).unwrap_or("-")
    );
    if r.kind == CredentialKind::Certificate {
        let t = |t: &Option<String>| {
            t.as_deref()
                .map(crate::github::records::thumb)
                .unwrap_or_else(|| "-".to_owned())
        };
        cell.push_str(&format!(
            "\ncert {} → {}",
            t(&r.old_thumbprint),
            t(&r.new_thumbprint)
        ));
    }
    cell
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_engine::{CertificateTarget, Target};

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn labels_and_targets_name_the_kind_and_thumbprint() {
        let cert = AnyLink::Certificate(CertificateLink {
            application_id: "a1".into(),
            credential_display_name: "signing".into(),
            certificates: [CertificateTarget::new(
                url("https://kv-prod.vault.azure.net"),
                "myapp-cert",
            )]
            .into_iter()
            .collect(),
        });
        assert!(cert.is_certificate());
        assert_eq!(cert.kind(), CredentialKind::Certificate);
        assert_eq!(cert.label(None), "signing (certificate)");
        let status = AnyStatus::Certificate(CertificateLinkStatus {
            current_thumbprint: Some("3f2a9c1b0d4e5f60718293a4b5c6d7e8f9012345".into()),
            ..Default::default()
        });
        assert_eq!(cert.label(Some(&status)), "signing (certificate 3F2A9C1B)");
        assert_eq!(status.confidence(), Confidence::High);
        assert_eq!(
            cert.targets(),
            vec![(
                url("https://kv-prod.vault.azure.net/"),
                "myapp-cert".to_owned()
            )]
        );
        let secret = AnyLink::Secret(Link {
            application_id: "a1".into(),
            credential_display_name: "Secret 1".into(),
            targets: [
                Target::new(url("https://kv-b.vault.azure.net/"), "z"),
                Target::new(url("https://kv-a.vault.azure.net/"), "a"),
            ]
            .into_iter()
            .collect(),
        });
        assert_eq!(secret.label(None), "Secret 1");
        let names: Vec<String> = secret.targets().into_iter().map(|t| t.1).collect();
        assert_eq!(names, ["a", "z"], "sorted by name");
        assert!(secret.as_secret().is_some());
    }
}
