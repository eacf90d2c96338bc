//! Plain data: applications, credentials, targets, links, matches, statuses and audit records.
//! None of these types ever holds a secret value.

use crate::endpoints::{normalize_vault_url, vault_name_from_url};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;
use url::Url;

/// How sure matching is that a Key Vault secret holds a credential. Ordered `None < Low < Medium < High`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Confidence {
    /// No signal at all.
    #[default]
    None,
    /// One weak signal.
    Low,
    /// `hint` alone, or `tag-app` with `name`/`expiry`.
    Medium,
    /// `tag-key-id`, `thumbprint`, or `hint` with `tag-app`/`name`/`expiry`.
    High,
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Confidence::None => "NONE",
            Confidence::Low => "LOW",
            Confidence::Medium => "MEDIUM",
            Confidence::High => "HIGH",
        })
    }
}

impl FromStr for Confidence {
    type Err = Error;
    /// Case-insensitive `none|low|medium|high`; `Err` names the accepted values.
    fn from_str(s: &str) -> Result<Confidence> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Confidence::None),
            "low" => Ok(Confidence::Low),
            "medium" => Ok(Confidence::Medium),
            "high" => Ok(Confidence::High),
            _ => Err(Error::usage(
                "reading confidence level",
                format!("`{s}` is not a confidence level"),
            )
            .with_hint("use one of HIGH, MEDIUM, LOW, NONE")),
        }
    }
}

/// One piece of evidence that a Key Vault secret holds a credential (docs/cli.md, `rotor match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    /// Tag `rotor-key-id` equals the credential's keyId.
    TagKeyId,
    /// Certificate: Key Vault `x5t` equals the keyCredential thumbprint.
    Thumbprint,
    /// The first 3 characters of the value equal the credential's `hint`.
    Hint,
    /// Tags `app-id`/`app-name` name the application.
    TagApp,
    /// The secret name follows `{app-name}-client-secret` and similar, or contains the appId.
    Name,
    /// Secret `exp` equals the credential end ±1 day.
    Expiry,
    /// The vault is in a subscription configured for the app.
    Subscription,
}

impl Signal {
    /// Every signal, in documentation order.
    pub const ALL: [Signal; 7] = [
        Signal::TagKeyId,
        Signal::Thumbprint,
        Signal::Hint,
        Signal::TagApp,
        Signal::Name,
        Signal::Expiry,
        Signal::Subscription,
    ];

    /// The stable name (`tag-key-id`, `hint`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            Signal::TagKeyId => "tag-key-id",
            Signal::Thumbprint => "thumbprint",
            Signal::Hint => "hint",
            Signal::TagApp => "tag-app",
            Signal::Name => "name",
            Signal::Expiry => "expiry",
            Signal::Subscription => "subscription",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An App Registration as rotor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    /// Graph object id (`id`).
    pub object_id: String,
    /// Application (client) id (`appId`).
    pub app_id: String,
    /// Display name.
    pub display_name: String,
    /// `signInAudience`; `None` when Graph did not return it.
    pub sign_in_audience: Option<String>,
    /// Client secrets.
    pub password_credentials: Vec<PasswordCredential>,
    /// Certificates.
    pub key_credentials: Vec<KeyCredential>,
}

impl Application {
    /// True when Entra caps this app at 2 passwords (apps that accept personal accounts).
    pub fn password_cap(&self) -> Option<usize> {
        match self.sign_in_audience.as_deref() {
            Some("AzureADandPersonalMicrosoftAccount") | Some("PersonalMicrosoftAccount") => {
                Some(2)
            }
            _ => None,
        }
    }

    /// The password credential with `key_id`.
    pub fn password(&self, key_id: &str) -> Option<&PasswordCredential> {
        self.password_credentials
            .iter()
            .find(|c| c.key_id.eq_ignore_ascii_case(key_id))
    }

    /// The lineage of `credential_display_name`: passwords whose display name equals it or starts
    /// with `"{credential_display_name} rotor:"`, oldest start first; credentials with the same
    /// start keep Graph's order (creation order), so the position is the age rank.
    pub fn lineage(&self, credential_display_name: &str) -> Vec<&PasswordCredential> {
        let mut v: Vec<&PasswordCredential> = self
            .password_credentials
            .iter()
            .filter(|c| c.in_lineage(credential_display_name))
            .collect();
        v.sort_by_key(|c| c.start);
        v
    }
}

impl fmt::Display for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "application `{}` ({})", self.display_name, self.app_id)
    }
}

/// A client secret's metadata (Graph never returns the value after creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordCredential {
    /// `keyId` (a GUID).
    pub key_id: String,
    /// `displayName`; rotor's own credentials are `<name> rotor:<rotation-id>`.
    pub display_name: Option<String>,
    /// First 3 characters of the value, as Entra reports them.
    pub hint: Option<String>,
    /// `startDateTime`.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// `endDateTime`.
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
}

impl PasswordCredential {
    /// The lineage name: the display name without a ` rotor:<id>` suffix (empty when unnamed).
    pub fn lineage_name(&self) -> &str {
        let n = self.display_name.as_deref().unwrap_or("");
        match n.rfind(" rotor:") {
            Some(i) => &n[..i],
            None => n,
        }
    }

    /// The rotation id when rotor created this credential (`… rotor:<id>`).
    pub fn rotation_id(&self) -> Option<&str> {
        let n = self.display_name.as_deref()?;
        n.rfind(" rotor:").map(|i| &n[i + " rotor:".len()..])
    }

    /// True when this credential belongs to the lineage `credential_display_name`.
    pub fn in_lineage(&self, credential_display_name: &str) -> bool {
        let n = self.display_name.as_deref().unwrap_or("");
        n == credential_display_name
            || n.strip_prefix(credential_display_name)
                .is_some_and(|rest| rest.starts_with(" rotor:"))
    }
}

/// A certificate credential's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCredential {
    /// `keyId`.
    pub key_id: String,
    /// `displayName`.
    pub display_name: Option<String>,
    /// SHA-1 thumbprint, upper-case hex (from `customKeyIdentifier`), when known.
    pub thumbprint: Option<String>,
    /// `type` (`AsymmetricX509Cert`, …).
    pub kind: Option<String>,
    /// `usage` (`Verify`, `Sign`).
    pub usage: Option<String>,
    /// `startDateTime`.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// `endDateTime`.
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
}

impl KeyCredential {
    /// The lineage name: the display name without a ` rotor:<id>` suffix (empty when unnamed).
    pub fn lineage_name(&self) -> &str {
        let n = self.display_name.as_deref().unwrap_or("");
        match n.rfind(" rotor:") {
            Some(i) => &n[..i],
            None => n,
        }
    }

    /// The rotation id when rotor added this key credential (`… rotor:<id>`).
    pub fn rotation_id(&self) -> Option<&str> {
        let n = self.display_name.as_deref()?;
        n.rfind(" rotor:").map(|i| &n[i + " rotor:".len()..])
    }

    /// True when this key credential belongs to the lineage `credential_display_name`.
    pub fn in_lineage(&self, credential_display_name: &str) -> bool {
        let n = self.display_name.as_deref().unwrap_or("");
        n == credential_display_name
            || n.strip_prefix(credential_display_name)
                .is_some_and(|rest| rest.starts_with(" rotor:"))
    }
}

/// A Key Vault secret that must hold a credential's current value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Target {
    /// Vault URL with a trailing `/` (`https://kv-prod.vault.azure.net/`).
    pub vault_url: Url,
    /// Secret name.
    pub secret_name: String,
}

impl Target {
    /// A target; the vault URL is normalised to end with `/`.
    pub fn new(vault_url: Url, secret_name: impl Into<String>) -> Target {
        Target {
            vault_url: normalize_vault_url(&vault_url),
            secret_name: secret_name.into(),
        }
    }

    /// Stable key `"{vault_url}{secret_name}"` (e.g. `https://kv-prod.vault.azure.net/myapp-secret`),
    /// used in [`LinkStatus::target_versions`].
    pub fn key(&self) -> String {
        format!(
            "{}{}",
            normalize_vault_url(&self.vault_url),
            self.secret_name
        )
    }

    /// Short vault name derived from the URL (see [`crate::Endpoints::vault_name`] for friendly names).
    pub fn vault_name(&self) -> String {
        vault_name_from_url(&self.vault_url)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key Vault secret `{}` (vault `{}`)",
            self.secret_name,
            self.vault_name()
        )
    }
}

/// One credential lineage of one application and the targets that must hold its current value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Link {
    /// The application's appId (client id).
    pub application_id: String,
    /// The lineage's display name (`Secret 1`); rotor's credentials are `<name> rotor:<id>`.
    pub credential_display_name: String,
    /// Key Vault secrets that must hold the current value.
    pub targets: BTreeSet<Target>,
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "credential `{}` of application {}",
            self.credential_display_name, self.application_id
        )
    }
}

/// A Key Vault certificate that holds (the private key of) a certificate credential's current
/// version. Key Vault makes its new versions from the certificate's own policy; the key never
/// leaves Key Vault (docs/protocol.md, "Certificates").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CertificateTarget {
    /// Vault URL with a trailing `/` (`https://kv-prod.vault.azure.net/`).
    pub vault_url: Url,
    /// Certificate name.
    pub certificate_name: String,
}

impl CertificateTarget {
    /// A certificate target; the vault URL is normalised to end with `/`.
    pub fn new(vault_url: Url, certificate_name: impl Into<String>) -> CertificateTarget {
        CertificateTarget {
            vault_url: normalize_vault_url(&vault_url),
            certificate_name: certificate_name.into(),
        }
    }

    /// Stable key `"{vault_url}{certificate_name}"`, used in
    /// [`CertificateLinkStatus::certificate_versions`].
    pub fn key(&self) -> String {
        format!(
            "{}{}",
            normalize_vault_url(&self.vault_url),
            self.certificate_name
        )
    }

    /// Short vault name derived from the URL.
    pub fn vault_name(&self) -> String {
        vault_name_from_url(&self.vault_url)
    }
}

impl fmt::Display for CertificateTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key Vault certificate `{}` (vault `{}`)",
            self.certificate_name,
            self.vault_name()
        )
    }
}

/// One application's certificate credential lineage (key credentials named `<name>` or
/// `<name> rotor:<rotation-id>`) plus the Key Vault certificate(s) holding it, matched by
/// thumbprint. Exactly one certificate generates new versions; see docs/protocol.md.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CertificateLink {
    /// The application's appId (client id).
    pub application_id: String,
    /// The lineage's display name; rotor's key credentials are `<name> rotor:<id>`.
    pub credential_display_name: String,
    /// The Key Vault certificate(s) whose current version the application must accept.
    pub certificates: BTreeSet<CertificateTarget>,
}

impl fmt::Display for CertificateLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate credential `{}` of application {}",
            self.credential_display_name, self.application_id
        )
    }
}

/// What inspection of a [`CertificateLink`] learned (read-only), shaped like [`LinkStatus`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateLinkStatus {
    /// keyId of the lineage's key credential whose thumbprint is the certificate's current
    /// Key Vault version (else the newest key credential of the lineage).
    pub current_key_id: Option<String>,
    /// SHA-1 thumbprint (upper-case hex) of that credential.
    pub current_thumbprint: Option<String>,
    /// End date of the current credential.
    #[serde(with = "time::serde::rfc3339::option")]
    pub current_expires_at: Option<OffsetDateTime>,
    /// Start date of the current credential.
    #[serde(with = "time::serde::rfc3339::option")]
    pub rotated_at: Option<OffsetDateTime>,
    /// When policy wants the next rotation (`current_expires_at - rotate_before_expiry_days`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_rotation_at: Option<OffsetDateTime>,
    /// True when a rotation (new Key Vault version) or a sync (add the vault's current version
    /// to the application) should run now.
    pub rotation_due: bool,
    /// Human sentence: why; `None` when nothing is due.
    pub due_reason: Option<String>,
    /// Why the link is excluded by policy, if it is.
    pub excluded: Option<String>,
    /// keyIds of the lineage's older key credentials still on the application, oldest first.
    pub previous_key_ids: Vec<String>,
    /// The earliest time cleanup's time rules allow removing one of `previous_key_ids` (it
    /// expired, or its successor's grace period is over); `None` when there is none. Removing it
    /// still needs cleanup's proof that nothing in scope holds it.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub cleanup_from: Option<OffsetDateTime>,
    /// Current (newest completed) Key Vault version per certificate, keyed by
    /// [`CertificateTarget::key`].
    pub certificate_versions: BTreeMap<String, String>,
    /// A Key Vault version newer than what the application holds (made by Key Vault AutoRenew,
    /// by hand, or by a run that stopped before adding it): a "sync" is due. Its version id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_version: Option<String>,
    /// True when a certificate operation (a new version) is in progress in Key Vault.
    pub in_progress: bool,
}

/// Which kind of credential a match or unmatched entry is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialKind {
    /// A password credential (client secret) matched to a Key Vault secret.
    #[default]
    Secret,
    /// A key credential (certificate) matched to a Key Vault certificate by thumbprint.
    Certificate,
}

impl CredentialKind {
    /// True for [`CredentialKind::Secret`] (serde: secret records keep their historic format).
    pub fn is_secret(&self) -> bool {
        *self == CredentialKind::Secret
    }
}

/// A (credential, Key Vault secret) pair found by matching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    /// Secret (password ↔ Key Vault secret) or certificate (key credential ↔ Key Vault
    /// certificate, `secret_name` is then the certificate name).
    #[serde(default)]
    pub kind: CredentialKind,
    /// appId.
    pub app_id: String,
    /// Application display name.
    pub app_name: String,
    /// The credential's keyId.
    pub key_id: String,
    /// The credential's display name (the lineage name is its part before ` rotor:`).
    pub credential_display_name: Option<String>,
    /// Vault short name (`kv-prod`).
    pub vault: String,
    /// Vault URL.
    pub vault_url: Url,
    /// Secret name.
    pub secret_name: String,
    /// Current version id of the secret when matched.
    pub secret_version: Option<String>,
    /// Overall confidence (after any hint-mismatch lowering).
    pub confidence: Confidence,
    /// Signals that were present.
    pub signals: Vec<Signal>,
    /// True when a tag names the app but the value's first characters differ from the credential's
    /// hint (the vault holds another credential of the app); the confidence was lowered.
    pub hint_mismatch: bool,
    /// Why this pair is excluded by policy (`name:legacy-*`), if it is.
    pub excluded: Option<String>,
    /// Why rotor will never write this secret for this credential, whatever the policy minimum:
    /// its `app-id` tag names another application, or only its expiry matches. Such a match
    /// forms no link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}

impl Match {
    /// The target this match points at.
    pub fn target(&self) -> Target {
        Target::new(self.vault_url.clone(), self.secret_name.clone())
    }
}

/// A credential for which no vault secret matched (at any confidence above NONE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmatched {
    /// Secret or certificate.
    #[serde(default)]
    pub kind: CredentialKind,
    /// appId.
    pub app_id: String,
    /// Application display name.
    pub app_name: String,
    /// keyId.
    pub key_id: String,
    /// The credential's display name.
    pub credential_display_name: Option<String>,
    /// Why it is excluded by policy, if it is.
    pub excluded: Option<String>,
}

/// Result of [`crate::Engine::match_secrets`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchReport {
    /// Every pair with confidence above NONE, best first per credential.
    pub matches: Vec<Match>,
    /// Credentials without any match.
    pub unmatched: Vec<Unmatched>,
    /// Signals that were evaluated (for "no matches found" messages).
    pub signals_tried: Vec<Signal>,
    /// How many secret values had to be read (hint cache misses) in this call.
    pub values_read: usize,
}

/// What refresh (`inspect_link`) learned about a link, read-only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStatus {
    /// keyId of the credential the targets hold (the newest one held when they disagree);
    /// `None` when no target holds a credential of the lineage.
    pub current_key_id: Option<String>,
    /// End date of the current credential.
    #[serde(with = "time::serde::rfc3339::option")]
    pub current_expires_at: Option<OffsetDateTime>,
    /// Start date of the current credential (when it was rotated or created).
    #[serde(with = "time::serde::rfc3339::option")]
    pub rotated_at: Option<OffsetDateTime>,
    /// When policy wants the next rotation (`current_expires_at - rotate_before_expiry_days`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_rotation_at: Option<OffsetDateTime>,
    /// True when a rotation (or repair) should run now.
    pub rotation_due: bool,
    /// Human sentence: why a rotation is due / targets diverge; `None` when nothing is due.
    pub due_reason: Option<String>,
    /// True when the targets hold different credentials (or some hold none).
    pub diverged: bool,
    /// Why the link is excluded by policy, if it is.
    pub excluded: Option<String>,
    /// Confidence that the targets hold the current credential (HIGH when tagged by rotor).
    pub confidence: Confidence,
    /// keyIds of the lineage's older credentials still present in Entra, oldest first.
    pub previous_key_ids: Vec<String>,
    /// The earliest time cleanup's time rules allow removing one of `previous_key_ids` (it
    /// expired, or its successor's grace period is over); `None` when there is none. Removing it
    /// still needs cleanup's proof that nothing in scope holds it.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub cleanup_from: Option<OffsetDateTime>,
    /// Current secret version per target, keyed by [`Target::key`]; missing targets are absent.
    pub target_versions: BTreeMap<String, String>,
    /// True when a rotor credential newer than every target's and younger than the pending window
    /// exists: another run is rotating (skip).
    pub in_progress: bool,
    /// Key Vault secrets outside the link that hold (by their `rotor-key-id` tag) the lineage's
    /// current or a newer credential: another link claims the lineage, and rotating is refused
    /// until they are in this link or no longer hold it. Empty when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claimed_elsewhere: Vec<Target>,
}

/// Options for one rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateOptions {
    /// Do everything read-only and report what would change.
    pub dry_run: bool,
    /// Rotate even when not due.
    pub force: bool,
    /// Validity of the new credential in days (default: policy `new_secret_validity_days`).
    pub validity_days: Option<u32>,
    /// With `force`: the credential the caller asked to replace (`rotor rotate --key-id K`, the
    /// current credential a Terraform trigger change saw). Once the lineage's current credential
    /// is newer than this one the request is fulfilled, so a re-run after a crash resumes instead
    /// of rotating a second time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_key_id: Option<String>,
}

/// Outcome of one rotation attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RotationStatus {
    /// Every target holds the new, verified credential.
    Success,
    /// Something failed; `error` says what; the old credential stays valid.
    Failed,
    /// Nothing to do (not due, rotation in progress, dry run).
    Skipped,
    /// Excluded by policy.
    Excluded,
}

impl fmt::Display for RotationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RotationStatus::Success => "success",
            RotationStatus::Failed => "failed",
            RotationStatus::Skipped => "skipped",
            RotationStatus::Excluded => "excluded",
        })
    }
}

impl FromStr for RotationStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<RotationStatus> {
        match s.trim().to_ascii_lowercase().as_str() {
            "success" => Ok(RotationStatus::Success),
            "failed" => Ok(RotationStatus::Failed),
            "skipped" => Ok(RotationStatus::Skipped),
            "excluded" => Ok(RotationStatus::Excluded),
            _ => Err(
                Error::usage("reading status", format!("`{s}` is not a status"))
                    .with_hint("use one of success, failed, skipped, excluded"),
            ),
        }
    }
}

/// What happened to one target in a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetStatus {
    /// A new version with the new value was written and read back.
    Updated,
    /// Already held the new credential (resume / sync).
    Unchanged,
    /// Dry run: would be written.
    WouldUpdate,
    /// Not attempted (an earlier step failed, excluded, in progress).
    Skipped,
    /// Writing or reading back failed; `error` says why.
    Failed,
}

/// One target's line in an [`AuditRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRecord {
    /// Vault URL.
    pub vault_url: Url,
    /// Secret name.
    pub secret_name: String,
    /// The version written (or already holding the credential).
    pub version: Option<String>,
    /// What happened.
    pub status: TargetStatus,
    /// Error message (never a value).
    pub error: Option<String>,
}

/// One rotation attempt: the audit record of docs/cli.md (plus optional `notes`/`hints`/`dry_run`,
/// omitted when empty). One JSON line in the history file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Secret (default, omitted) or certificate. For a certificate, [`TargetRecord::secret_name`]
    /// is the Key Vault certificate name and `version` its version; key ids are key credentials.
    #[serde(default, skip_serializing_if = "CredentialKind::is_secret")]
    pub kind: CredentialKind,
    /// Id of this rotation (also in the new credential's display name `… rotor:<id>`).
    pub rotation_id: String,
    /// Start.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// End.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// `user:<name>`, `terraform` or `github:<repo>/<run id>`.
    pub actor: String,
    /// appId.
    pub app_id: String,
    /// Application display name (empty when the app could not be read).
    pub app_name: String,
    /// Credential the targets held before.
    pub old_key_id: Option<String>,
    /// Credential created (or finished) by this rotation.
    pub new_key_id: Option<String>,
    /// End date of the new credential.
    #[serde(with = "time::serde::rfc3339::option")]
    pub new_expires_at: Option<OffsetDateTime>,
    /// Confidence that the targets belonged to the credential.
    pub confidence: Confidence,
    /// Per-target outcome.
    pub targets: Vec<TargetRecord>,
    /// Overall outcome.
    pub status: RotationStatus,
    /// What failed (message; never a value).
    pub error: Option<String>,
    /// Extra facts worth keeping ("verified by read-back: the application has no service principal").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Fix hints for `error`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    /// True for a dry run (nothing changed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Credentials removed during this attempt (make room, orphans, cleanup).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_key_ids: Vec<String>,
    /// Certificates: SHA-1 thumbprint (upper-case hex) of the credential before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_thumbprint: Option<String>,
    /// Certificates: SHA-1 thumbprint (upper-case hex) of the new (or adopted) credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_thumbprint: Option<String>,
    /// Why a `skipped` attempt changed nothing (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
    /// What `error` is about (a target, the application, the lineage, a setting), for front
    /// ends that place errors (Terraform attribute paths). Not part of the history format.
    #[serde(skip)]
    pub error_subject: Option<crate::error::Subject>,
}

/// Why a rotation attempt was `skipped`: front ends decide from this, never from wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// Not due per policy (and not forced).
    NotDue,
    /// Another run's credential of this lineage is younger than the pending window and no
    /// target holds it yet: that run is still working (or died recently).
    InProgress,
    /// This run created a credential, then found another run's credential of the lineage
    /// created first: it backed off (and removed its own).
    LostRace,
    /// A dry run: nothing was changed; the record says what would be.
    DryRun,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::NotDue => "not due",
            SkipReason::InProgress => "rotation in progress",
            SkipReason::LostRace => "another run came first",
            SkipReason::DryRun => "dry run",
        })
    }
}

/// A vault that could not be listed during matching: the links in it are unknown this run, the
/// rest proceed ([`crate::Engine::vault_failures`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultFailure {
    /// Vault URL.
    pub vault_url: Url,
    /// What failed (`listing secrets of vault …: …`); never a value.
    pub error: String,
    /// How to fix it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}

/// Result of [`crate::Engine::cleanup`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupOutcome {
    /// Credentials removed (or, on a dry run, that would be removed).
    pub removed_key_ids: Vec<String>,
    /// Lineage credentials kept, with the reason (`held by Key Vault secret …`, `grace period until …`).
    pub kept: Vec<KeptCredential>,
    /// True for a dry run.
    pub dry_run: bool,
}

/// A credential cleanup did not remove, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptCredential {
    /// keyId.
    pub key_id: String,
    /// Why it was kept.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_order_and_parse() {
        assert!(Confidence::High > Confidence::Medium);
        assert!(Confidence::Low > Confidence::None);
        assert_eq!(
            "medium".parse::<Confidence>().expect("ok"),
            Confidence::Medium
        );
        assert_eq!(Confidence::High.to_string(), "HIGH");
        assert!("huge".parse::<Confidence>().is_err());
    }

    #[test]
    fn lineage_names() {
        let t = OffsetDateTime::UNIX_EPOCH;
        let c = PasswordCredential {
            key_id: "k".into(),
            display_name: Some("Secret 1 rotor:abc".into()),
            hint: None,
            start: t,
            end: t,
        };
        assert!(c.in_lineage("Secret 1"));
        assert!(!c.in_lineage("Secret"));
        assert_eq!(c.lineage_name(), "Secret 1");
        assert_eq!(c.rotation_id(), Some("abc"));
    }

    #[test]
    fn target_display() {
        let t = Target::new(
            Url::parse("https://kv-prod.vault.azure.net").expect("url"),
            "myapp-secret",
        );
        assert_eq!(
            t.to_string(),
            "Key Vault secret `myapp-secret` (vault `kv-prod`)"
        );
        assert_eq!(t.key(), "https://kv-prod.vault.azure.net/myapp-secret");
    }
}
