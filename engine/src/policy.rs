//! Rotation policy and exclusions.

use crate::error::{Error, Result};
use crate::model::Confidence;
use globset::{Glob, GlobMatcher};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// What an exclusion pattern is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExclusionKind {
    /// `app-id:GLOB` — the application's appId.
    AppId,
    /// `name:GLOB` — the application's display name.
    Name,
    /// `secret:GLOB` — the credential display name or the Key Vault secret name.
    Secret,
}

impl ExclusionKind {
    fn prefix(&self) -> &'static str {
        match self {
            ExclusionKind::AppId => "app-id",
            ExclusionKind::Name => "name",
            ExclusionKind::Secret => "secret",
        }
    }
}

/// One exclusion pattern. `Display` prints it as written (`name:legacy-*`). Matching is
/// case-insensitive.
#[derive(Clone)]
pub struct Exclusion {
    kind: ExclusionKind,
    pattern: String,
    matcher: GlobMatcher,
}

impl fmt::Debug for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Exclusion({self})")
    }
}

impl PartialEq for Exclusion {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.pattern == other.pattern
    }
}
impl Eq for Exclusion {}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.prefix(), self.pattern)
    }
}

impl Exclusion {
    /// Parses `app-id:GLOB`, `name:GLOB` or `secret:GLOB`. `Err` (Config) names the pattern and
    /// lists the accepted forms.
    pub fn parse(s: &str) -> Result<Exclusion> {
        let action = format!("reading exclusion `{s}`");
        let Some((kind, pattern)) = s.split_once(':') else {
            return Err(Error::config(action, "missing `kind:` prefix")
                .with_hint("write exclusions as `app-id:GLOB`, `name:GLOB` or `secret:GLOB`"));
        };
        let kind = match kind.trim().to_ascii_lowercase().as_str() {
            "app-id" | "appid" | "app_id" => ExclusionKind::AppId,
            "name" => ExclusionKind::Name,
            "secret" => ExclusionKind::Secret,
            other => {
                return Err(Error::config(action, format!("unknown kind `{other}`"))
                    .with_hint("write exclusions as `app-id:GLOB`, `name:GLOB` or `secret:GLOB`"));
            }
        };
        let pattern = pattern.trim().to_owned();
        if pattern.is_empty() {
            return Err(Error::config(action, "empty pattern")
                .with_hint("give a glob after the colon, e.g. `name:legacy-*`"));
        }
        let matcher = globset::GlobBuilder::new(&pattern)
            .case_insensitive(true)
            .literal_separator(false)
            .build()
            .or_else(|_| Glob::new(&pattern))
            .map_err(|e| {
                Error::config(format!("reading exclusion `{s}`"), format!("bad glob: {e}"))
            })?
            .compile_matcher();
        Ok(Exclusion {
            kind,
            pattern,
            matcher,
        })
    }

    /// What the pattern applies to.
    pub fn kind(&self) -> ExclusionKind {
        self.kind
    }

    /// The glob.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// True when this exclusion applies. `credential_name` and `secret_name` are optional; a
    /// `secret:` pattern matches either.
    pub fn matches(
        &self,
        app_id: &str,
        app_name: &str,
        credential_name: Option<&str>,
        secret_name: Option<&str>,
    ) -> bool {
        match self.kind {
            ExclusionKind::AppId => self.matcher.is_match(app_id),
            ExclusionKind::Name => self.matcher.is_match(app_name),
            ExclusionKind::Secret => {
                credential_name.is_some_and(|n| self.matcher.is_match(n))
                    || secret_name.is_some_and(|n| self.matcher.is_match(n))
            }
        }
    }
}

impl FromStr for Exclusion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Exclusion> {
        Exclusion::parse(s)
    }
}

impl serde::Serialize for Exclusion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Exclusion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Exclusion::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Rotation policy (PRODUCT.md "Policy").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    /// Rotate when the current credential expires within this many days (30).
    pub rotate_before_expiry_days: u32,
    /// Lifetime of a new credential (365).
    pub new_secret_validity_days: u32,
    /// Minimum match confidence for rotating a target (HIGH).
    pub min_confidence: Confidence,
    /// Days an old credential stays after its successor started (7).
    pub grace_period_days: u32,
    /// Rotations (and target writes) in flight at once (4).
    pub max_concurrent: usize,
    /// Exclusion patterns.
    pub exclusions: Vec<Exclusion>,
    /// A rotor credential no target holds is "in progress" while younger than this, an orphan
    /// after (1 h).
    #[serde(with = "duration_secs")]
    pub pending_window: Duration,
}

mod duration_secs {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = <u64 as serde::Deserialize>::deserialize(d)?;
        Ok(Duration::from_secs(secs))
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            rotate_before_expiry_days: 30,
            new_secret_validity_days: 365,
            min_confidence: Confidence::High,
            grace_period_days: 7,
            max_concurrent: 4,
            exclusions: Vec::new(),
            pending_window: Duration::from_secs(3600),
        }
    }
}

impl Policy {
    /// The first exclusion matching, rendered as written (`name:legacy-*`); `None` when not excluded.
    pub fn excluded(
        &self,
        app_id: &str,
        app_name: &str,
        credential_name: Option<&str>,
        secret_name: Option<&str>,
    ) -> Option<String> {
        self.exclusions
            .iter()
            .find(|e| e.matches(app_id, app_name, credential_name, secret_name))
            .map(|e| e.to_string())
    }

    /// Checks value ranges; `Err` (Config) names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, why: &str| {
            Err(Error::config(
                format!("reading policy `{field}`"),
                why.to_owned(),
            ))
        };
        if self.new_secret_validity_days == 0 {
            return bad("new_secret_validity_days", "must be at least 1");
        }
        if self.max_concurrent == 0 {
            return bad("max_concurrent", "must be at least 1");
        }
        if self.rotate_before_expiry_days >= self.new_secret_validity_days {
            return bad(
                "rotate_before_expiry_days",
                "must be smaller than new_secret_validity_days, or every new secret is due at once",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusion_kinds() {
        let e = Exclusion::parse("name:legacy-*").expect("valid");
        assert!(e.matches("x", "legacy-crm", None, None));
        assert!(e.matches("x", "Legacy-CRM", None, None));
        assert!(!e.matches("legacy-1", "crm", None, None));
        let e = Exclusion::parse("app-id:0000*").expect("valid");
        assert!(e.matches("00001111", "crm", None, None));
        let e = Exclusion::parse("secret:*-break-glass").expect("valid");
        assert!(e.matches("x", "y", None, Some("ops-break-glass")));
        assert!(e.matches("x", "y", Some("ops-break-glass"), None));
        assert!(!e.matches("x", "y", Some("ops"), Some("ops")));
        assert_eq!(e.to_string(), "secret:*-break-glass");
        let err = Exclusion::parse("owner:bob").expect_err("bad kind");
        assert!(err.to_string().contains("owner:bob"));
        assert!(!err.hints().is_empty());
        assert!(Exclusion::parse("nocolon").is_err());
        assert!(Exclusion::parse("name:").is_err());
    }

    #[test]
    fn policy_excluded() {
        let p = Policy {
            exclusions: vec![Exclusion::parse("name:legacy-*").expect("valid")],
            ..Policy::default()
        };
        assert_eq!(
            p.excluded("id", "legacy-crm", None, None).as_deref(),
            Some("name:legacy-*")
        );
        assert_eq!(p.excluded("id", "myapp", None, None), None);
        assert!(p.validate().is_ok());
    }
}
