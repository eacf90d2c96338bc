//! The fixture: the tenant an emulator starts with (PRODUCT.md "The emulator").
//!
//! Every field but names is optional; ids, secrets and dates are generated when absent. Times are
//! RFC 3339 or relative to the moment the emulator starts: `"+25d"`, `"-340d"`, `"+2h"`, `"-30m"`,
//! `"+10s"`, `"+1w"`, `"now"`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A whole tenant: principals, subscriptions, applications and vaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Directory (tenant) id; generated when absent.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Milliseconds after `addPassword` before the new password can log in (Entra's replication
    /// delay). [`crate::EmulatorOptions::propagation_delay`] wins when it is non-zero.
    #[serde(default)]
    pub propagation_delay_ms: Option<u64>,
    /// App management policy: `addPassword` refuses longer lifetimes with 400
    /// `CredentialInvalidLifetimeAsPerAppPolicy`. Absent: no limit.
    #[serde(default)]
    pub max_password_lifetime_days: Option<u32>,
    /// Where Azure is nondeterministic (ordering, empty pages, delays, api-versions,
    /// throttling): the emulator's seeded choices. Absent: [`crate::fidelity::Fidelity`]'s
    /// defaults.
    #[serde(default)]
    pub fidelity: Option<crate::fidelity::Fidelity>,
    /// Identities that call Graph, Key Vault and ARM (the first one is the one in `env`).
    #[serde(default)]
    pub principals: Vec<FixturePrincipal>,
    #[serde(default)]
    pub subscriptions: Vec<FixtureSubscription>,
    #[serde(default)]
    pub applications: Vec<FixtureApplication>,
    #[serde(default)]
    pub vaults: Vec<FixtureVault>,
}

/// A service principal rotor (or a test) signs in as.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixturePrincipal {
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    pub display_name: String,
    /// Object id of the service principal; generated when absent.
    #[serde(default)]
    pub object_id: Option<String>,
    /// Graph application permissions: `Application.Read.All`, `Application.ReadWrite.All`,
    /// `Application.ReadWrite.OwnedBy` (see [`FixtureApplication::owners`]).
    #[serde(default)]
    pub graph_roles: Vec<String>,
    /// Vault name (or `*`) → role name, or list of role names.
    #[serde(default)]
    pub vault_roles: BTreeMap<String, RoleList>,
    /// Subscription id or name (or `*`) → ARM role. Absent: every subscription may be read.
    #[serde(default)]
    pub subscription_roles: Option<BTreeMap<String, String>>,
    /// Federated identity credentials accepted as client assertions.
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredential>,
    /// Certificates (base64 DER, public part only) whose keys may sign client assertions for this
    /// principal (`x5t`/`x5t#S256` header, RS256/PS256), as a certificate credential on rotor's
    /// own app registration would.
    #[serde(default)]
    pub certificates: Vec<String>,
}

/// One role name or a list of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RoleList {
    One(String),
    Many(Vec<String>),
}

impl RoleList {
    /// The role names.
    pub fn names(&self) -> Vec<String> {
        match self {
            RoleList::One(s) => vec![s.clone()],
            RoleList::Many(v) => v.clone(),
        }
    }
}

/// A federated identity credential: a client assertion (JWT) whose `iss` and `sub` match (and
/// whose `aud` contains `audience`) signs the principal in. `subject` may end with `*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
    #[serde(default = "default_fic_audience")]
    pub audience: String,
}

fn default_fic_audience() -> String {
    "api://AzureADTokenExchange".to_string()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureSubscription {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
}

/// An app registration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureApplication {
    #[serde(default)]
    pub object_id: Option<String>,
    #[serde(default)]
    pub app_id: Option<String>,
    pub display_name: String,
    /// `AzureADMyOrg` (default), `AzureADMultipleOrgs`, `AzureADandPersonalMicrosoftAccount`,
    /// `PersonalMicrosoftAccount`. The last two cap the app at 2 passwords.
    #[serde(default)]
    pub sign_in_audience: Option<String>,
    /// Whether the app has a service principal in the tenant (default true). Without one, logging
    /// in with the app's password fails with AADSTS7000229.
    #[serde(default)]
    pub service_principal: Option<bool>,
    /// Principal client ids that own the app (for `Application.ReadWrite.OwnedBy`).
    #[serde(default)]
    pub owners: Vec<String>,
    #[serde(default)]
    pub created: Option<TimeSpec>,
    #[serde(default)]
    pub password_credentials: Vec<FixturePassword>,
    #[serde(default)]
    pub key_credentials: Vec<FixtureKeyCredential>,
    /// `tokenEncryptionKeyId`: the keyId of one of `key_credentials` Entra encrypts tokens with.
    #[serde(default)]
    pub token_encryption_key_id: Option<String>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixturePassword {
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// The value; generated (Entra's 40-character form) when absent. Its first 3 characters are
    /// the credential's `hint`.
    #[serde(default)]
    pub secret_text: Option<String>,
    /// Default: the application's creation time, else now.
    #[serde(default)]
    pub start: Option<TimeSpec>,
    /// Default: start + 2 years (Graph's default lifetime).
    #[serde(default)]
    pub end: Option<TimeSpec>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureKeyCredential {
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// `AsymmetricX509Cert` (default).
    #[serde(default, rename = "type")]
    pub key_type: Option<String>,
    /// `Verify` (default).
    #[serde(default)]
    pub usage: Option<String>,
    /// SHA-1 thumbprint of the certificate, hex (Graph's `customKeyIdentifier` carries it as
    /// base64 of the bytes). Generated when absent and no `key` is given.
    #[serde(default)]
    pub thumbprint: Option<String>,
    /// Base64 DER of the certificate; thumbprint and dates derive from it when present.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub start: Option<TimeSpec>,
    #[serde(default)]
    pub end: Option<TimeSpec>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureVault {
    pub name: String,
    /// Subscription id or name (from `subscriptions`).
    #[serde(default)]
    pub subscription_id: Option<String>,
    #[serde(default)]
    pub resource_group: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub secrets: Vec<FixtureSecret>,
}

/// A Key Vault secret. Either the top-level fields describe its only version, or `versions` lists
/// its whole history, oldest first.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureSecret {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub expires: Option<TimeSpec>,
    #[serde(default)]
    pub not_before: Option<TimeSpec>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub created: Option<TimeSpec>,
    /// Soft-deleted (recoverable) secret.
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub versions: Vec<FixtureSecretVersion>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureSecretVersion {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub expires: Option<TimeSpec>,
    #[serde(default)]
    pub not_before: Option<TimeSpec>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub created: Option<TimeSpec>,
}

/// A point in time: absolute (RFC 3339) or relative to the emulator's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    Absolute(OffsetDateTime),
    /// Seconds from "now" (negative: in the past).
    Relative(i64),
}

impl TimeSpec {
    /// Resolve against `now`.
    pub fn resolve(&self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            TimeSpec::Absolute(t) => *t,
            TimeSpec::Relative(secs) => now + time::Duration::seconds(*secs),
        }
    }

    /// Parse `"+25d"`, `"-30m"`, `"now"` or an RFC 3339 time.
    pub fn parse(s: &str) -> Result<TimeSpec, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("now") {
            return Ok(TimeSpec::Relative(0));
        }
        if let Some(rel) = parse_relative(t) {
            return rel.map(TimeSpec::Relative);
        }
        OffsetDateTime::parse(t, &Rfc3339).map(TimeSpec::Absolute).map_err(|e| {
            format!(
                "`{s}` is neither a relative time (\"+25d\", \"-340d\", \"+2h\", \"-30m\", \"+10s\") nor RFC 3339 ({e})"
            )
        })
    }
}

fn parse_relative(t: &str) -> Option<Result<i64, String>> {
    let (sign, rest) = match t.as_bytes().first()? {
        b'+' => (1i64, &t[1..]),
        b'-' => (-1i64, &t[1..]),
        _ => (1i64, t),
    };
    let unit = rest.chars().last()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    let digits = &rest[..rest.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = digits
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|secs| *secs <= MAX_RELATIVE_SECS);
    Some(secs.map(|secs| sign * secs).ok_or_else(|| {
        format!("`{t}` is too far from now (at most {MAX_RELATIVE_DAYS} days either way)")
    }))
}

/// Relative times stay within this many days of now, so that resolving one can never leave the
/// range of representable dates.
const MAX_RELATIVE_DAYS: i64 = 1_000_000;
const MAX_RELATIVE_SECS: i64 = MAX_RELATIVE_DAYS * 86_400;

impl<'de> Deserialize<'de> for TimeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TimeSpec::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for TimeSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TimeSpec::Absolute(t) => {
                let text = t.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
                s.serialize_str(&text)
            }
            TimeSpec::Relative(secs) => {
                let sign = if *secs < 0 { '-' } else { '+' };
                s.serialize_str(&format!("{sign}{}s", secs.unsigned_abs()))
            }
        }
    }
}

/// A fixture that could not be read: `path` is the JSON path of the bad field.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FixtureError {
    /// JSON path of the bad field, e.g. `applications[2].password_credentials[0].end`
    /// (`.` for the document itself).
    pub path: String,
    pub message: String,
}

/// The sample tenant (`examples/fixtures/sample-tenant.json`).
pub const SAMPLE_TENANT_JSON: &str = include_str!("../../examples/fixtures/sample-tenant.json");

impl Fixture {
    /// Parse a fixture. Errors name the JSON path of the bad field.
    pub fn from_json(text: &str) -> Result<Fixture, FixtureError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let fixture: Fixture = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            FixtureError {
                path,
                message: inner.to_string(),
            }
        })?;
        fixture.validate()?;
        Ok(fixture)
    }

    /// Read and parse a fixture file.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Fixture> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading fixture `{}`: {e}", path.display()))?;
        Fixture::from_json(&text)
            .map_err(|e| anyhow::anyhow!("reading fixture `{}`: {e}", path.display()))
    }

    /// The demo/sample tenant, as committed in `examples/fixtures/sample-tenant.json`.
    pub fn sample() -> Fixture {
        Fixture::from_json(SAMPLE_TENANT_JSON)
            .expect("examples/fixtures/sample-tenant.json is valid (checked by tests)")
    }

    /// Propagation delay configured by the fixture.
    pub fn propagation_delay(&self) -> Duration {
        Duration::from_millis(self.propagation_delay_ms.unwrap_or(0))
    }

    /// Semantic checks after parsing (duplicate names, bad references, names Key Vault refuses).
    pub fn validate(&self) -> Result<(), FixtureError> {
        let err = |path: String, message: String| Err(FixtureError { path, message });
        if let Some(f) = &self.fidelity
            && let Err(e) = f.validate()
        {
            return err("fidelity".into(), e);
        }
        let mut seen = std::collections::HashSet::new();
        for (i, p) in self.principals.iter().enumerate() {
            if let Some(id) = &p.client_id
                && !seen.insert(id.to_ascii_lowercase())
            {
                return err(
                    format!("principals[{i}].client_id"),
                    format!("duplicate client_id `{id}`"),
                );
            }
        }
        let mut sub_keys = std::collections::HashSet::new();
        for s in &self.subscriptions {
            sub_keys.insert(s.name.clone());
            if let Some(id) = &s.id {
                sub_keys.insert(id.clone());
            }
        }
        let mut app_ids = std::collections::HashSet::new();
        let mut object_ids = std::collections::HashSet::new();
        for (i, a) in self.applications.iter().enumerate() {
            if a.display_name.is_empty() {
                return err(
                    format!("applications[{i}].display_name"),
                    "must not be empty".into(),
                );
            }
            if let Some(id) = &a.app_id
                && !app_ids.insert(id.to_ascii_lowercase())
            {
                return err(
                    format!("applications[{i}].app_id"),
                    format!("duplicate app_id `{id}`"),
                );
            }
            if let Some(id) = &a.object_id
                && !object_ids.insert(id.to_ascii_lowercase())
            {
                return err(
                    format!("applications[{i}].object_id"),
                    format!("duplicate object_id `{id}`"),
                );
            }
            for (j, k) in a.key_credentials.iter().enumerate() {
                if let Some(t) = &k.thumbprint
                    && (t.len() != 40 || !t.bytes().all(|b| b.is_ascii_hexdigit()))
                {
                    return err(
                        format!("applications[{i}].key_credentials[{j}].thumbprint"),
                        format!("`{t}` is not a 40-digit hex SHA-1 thumbprint"),
                    );
                }
            }
        }
        let mut vault_names = std::collections::HashSet::new();
        for (i, v) in self.vaults.iter().enumerate() {
            if !valid_vault_name(&v.name) {
                return err(
                    format!("vaults[{i}].name"),
                    format!(
                        "`{}` is not a valid vault name (3-24 characters: letters, digits, dashes)",
                        v.name
                    ),
                );
            }
            if !vault_names.insert(v.name.to_ascii_lowercase()) {
                return err(
                    format!("vaults[{i}].name"),
                    format!("duplicate vault `{}`", v.name),
                );
            }
            if let Some(sub) = &v.subscription_id
                && !sub_keys.contains(sub)
            {
                return err(
                    format!("vaults[{i}].subscription_id"),
                    format!("`{sub}` names no entry of `subscriptions` (by id or name)"),
                );
            }
            let mut names = std::collections::HashSet::new();
            for (j, s) in v.secrets.iter().enumerate() {
                if !crate::keyvault::valid_object_name(&s.name) {
                    return err(
                        format!("vaults[{i}].secrets[{j}].name"),
                        format!(
                            "`{}` is not a valid Key Vault secret name (1-127 characters: letters, digits, dashes)",
                            s.name
                        ),
                    );
                }
                if !names.insert(s.name.to_ascii_lowercase()) {
                    return err(
                        format!("vaults[{i}].secrets[{j}].name"),
                        format!("duplicate secret `{}`", s.name),
                    );
                }
                if s.tags.len() > 15 {
                    return err(
                        format!("vaults[{i}].secrets[{j}].tags"),
                        "Key Vault allows at most 15 tags".into(),
                    );
                }
            }
        }
        Ok(())
    }
}

fn valid_vault_name(name: &str) -> bool {
    (3..=24).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl fmt::Display for TimeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeSpec::Absolute(t) => write!(f, "{}", t.format(&Rfc3339).unwrap_or_default()),
            TimeSpec::Relative(s) => write!(f, "{s:+}s"),
        }
    }
}

// Debug never prints secret values (client secrets, secret texts, vault values).
impl fmt::Debug for FixturePrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixturePrincipal")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("display_name", &self.display_name)
            .field("graph_roles", &self.graph_roles)
            .field("vault_roles", &self.vault_roles)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for FixturePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixturePassword")
            .field("key_id", &self.key_id)
            .field("display_name", &self.display_name)
            .field(
                "secret_text",
                &self.secret_text.as_ref().map(|_| "[redacted]"),
            )
            .field("start", &self.start)
            .field("end", &self.end)
            .finish()
    }
}

impl fmt::Debug for FixtureSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixtureSecret")
            .field("name", &self.name)
            .field("value", &self.value.as_ref().map(|_| "[redacted]"))
            .field("tags", &self.tags)
            .field("deleted", &self.deleted)
            .field("versions", &self.versions)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for FixtureSecretVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixtureSecretVersion")
            .field("version", &self.version)
            .field("value", &self.value.as_ref().map(|_| "[redacted]"))
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_parse() {
        assert_eq!(TimeSpec::parse("+25d"), Ok(TimeSpec::Relative(25 * 86_400)));
        assert_eq!(
            TimeSpec::parse("-340d"),
            Ok(TimeSpec::Relative(-340 * 86_400))
        );
        assert_eq!(TimeSpec::parse("+2h"), Ok(TimeSpec::Relative(7200)));
        assert_eq!(TimeSpec::parse("-30m"), Ok(TimeSpec::Relative(-1800)));
        assert_eq!(TimeSpec::parse("now"), Ok(TimeSpec::Relative(0)));
        assert!(matches!(
            TimeSpec::parse("2030-01-02T03:04:05Z"),
            Ok(TimeSpec::Absolute(_))
        ));
        assert!(TimeSpec::parse("soon").is_err());
        assert!(TimeSpec::parse("+d").is_err());
    }

    #[test]
    fn absurd_relative_times_are_errors_not_panics() {
        for t in ["+9223372036854775807d", "-99999999999w", "+5000000d"] {
            let err = TimeSpec::parse(t).expect_err(t);
            assert!(err.contains(t), "{err}");
        }
        // the furthest accepted time still resolves
        let far = TimeSpec::parse("-1000000d").expect("within range");
        let _ = far.resolve(OffsetDateTime::now_utc());
        let err = Fixture::from_json(
            r#"{"applications":[{"display_name":"a","password_credentials":[{"end":"+99999999999d"}]}]}"#,
        )
        .expect_err("out of range");
        assert_eq!(err.path, "applications[0].password_credentials[0].end");
    }

    #[test]
    fn malformed_fixture_names_the_path() {
        let text = r#"{"applications":[{"display_name":"a"},{"display_name":"b",
            "password_credentials":[{"end":"tomorrow"}]}]}"#;
        let err = Fixture::from_json(text).expect_err("bad time");
        assert_eq!(err.path, "applications[1].password_credentials[0].end");
        assert!(
            err.to_string()
                .starts_with("applications[1].password_credentials[0].end: ")
        );
        assert!(err.message.contains("tomorrow"), "{err}");
    }

    #[test]
    fn unknown_field_is_refused_with_path() {
        let err = Fixture::from_json(r#"{"vaults":[{"name":"kv-a","secretz":[]}]}"#)
            .expect_err("unknown field");
        assert_eq!(err.path, "vaults[0].secretz", "{err}");
    }

    #[test]
    fn semantic_errors_name_the_path() {
        let err =
            Fixture::from_json(r#"{"vaults":[{"name":"kv-a","secrets":[{"name":"bad_name"}]}]}"#)
                .expect_err("bad name");
        assert_eq!(err.path, "vaults[0].secrets[0].name");
        let err = Fixture::from_json(r#"{"vaults":[{"name":"kv-a","subscription_id":"nope"}]}"#)
            .expect_err("bad sub");
        assert_eq!(err.path, "vaults[0].subscription_id");
    }

    #[test]
    fn debug_redacts_values() {
        let f = Fixture::sample();
        let text = format!("{f:?}");
        assert!(text.contains("MyApp"));
        assert!(
            !text.contains("8Q~"),
            "a secret value leaked into Debug output"
        );
        // Every value the sample holds, not only Entra-shaped ones (`database-password`).
        fn values(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        match (k.as_str(), v) {
                            (
                                "client_secret" | "secret_text" | "value",
                                serde_json::Value::String(s),
                            ) => out.push(s.clone()),
                            _ => values(v, out),
                        }
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| values(v, out)),
                _ => {}
            }
        }
        let mut secrets = Vec::new();
        values(
            &serde_json::from_str(SAMPLE_TENANT_JSON).expect("sample is JSON"),
            &mut secrets,
        );
        assert!(secrets.len() >= 20, "{}", secrets.len());
        assert!(
            secrets
                .iter()
                .any(|s| s == "db-password-not-an-entra-secret")
        );
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "`{s}` leaked into Debug output");
        }
    }

    #[test]
    fn sample_parses() {
        let f = Fixture::sample();
        assert_eq!(f.applications.len(), 9);
        assert_eq!(f.principals[0].display_name, "rotor-ci");
    }
}
