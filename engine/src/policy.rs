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

/// Rotation policy (docs/config.md).
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

    /// Checks every value against its documented range ([`ROTATE_BEFORE_EXPIRY_DAYS`],
    /// [`NEW_SECRET_VALIDITY_DAYS`], [`GRACE_PERIOD_DAYS`], [`MAX_CONCURRENT`],
    /// [`MIN_PENDING_WINDOW`]) and against each other. `Err` (Config) names the key:
    /// `validating policy `grace_period_days`: 4000000 is out of range …` with a hint.
    pub fn validate(&self) -> Result<()> {
        match self.violation() {
            None => Ok(()),
            Some(v) => Err(
                Error::config(format!("validating policy `{}`", v.key), v.cause).with_hint(v.hint),
            ),
        }
    }

    /// The first value out of its range (see [`Policy::validate`]), with the key it belongs to,
    /// so front ends can report it on their own key (`policy.grace_period_days` in rotor.toml,
    /// the attribute in Terraform).
    pub fn violation(&self) -> Option<Violation> {
        let checks = [
            ROTATE_BEFORE_EXPIRY_DAYS.check(i64::from(self.rotate_before_expiry_days)),
            NEW_SECRET_VALIDITY_DAYS.check(i64::from(self.new_secret_validity_days)),
            GRACE_PERIOD_DAYS.check(i64::from(self.grace_period_days)),
            MAX_CONCURRENT.check(i64::try_from(self.max_concurrent).unwrap_or(i64::MAX)),
            check_pending_window(self.pending_window).map(|()| 0),
        ];
        if let Some(v) = checks.into_iter().find_map(|c| c.err()) {
            return Some(v);
        }
        if self.rotate_before_expiry_days >= self.new_secret_validity_days {
            return Some(Violation {
                key: ROTATE_BEFORE_EXPIRY_DAYS.key,
                cause: format!(
                    "{} must be smaller than new_secret_validity_days ({}), or every new secret is due at once",
                    self.rotate_before_expiry_days, self.new_secret_validity_days
                ),
                hint: "lower rotate_before_expiry_days or raise new_secret_validity_days".into(),
            });
        }
        None
    }
}

/// A policy value out of its range: the key (`grace_period_days`), why, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The policy key, without any `policy.` prefix.
    pub key: &'static str,
    /// Why the value is refused (no secret ever appears in a policy value).
    pub cause: String,
    /// What to write instead.
    pub hint: String,
}

/// The accepted range of one integer policy key (also the CLI's `--expiry-days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The policy key.
    pub key: &'static str,
    /// Smallest accepted value.
    pub min: u32,
    /// Largest accepted value.
    pub max: u32,
}

impl Bound {
    /// The range as `i64`s (what TOML, Terraform numbers and clap's ranged parsers use).
    pub fn range(&self) -> std::ops::RangeInclusive<i64> {
        i64::from(self.min)..=i64::from(self.max)
    }

    /// `Ok(n)` when `n` is in range, else a [`Violation`] naming the key and the range.
    pub fn check(&self, n: i64) -> std::result::Result<u32, Violation> {
        if self.range().contains(&n) {
            return Ok(n as u32);
        }
        Err(Violation {
            key: self.key,
            cause: format!(
                "{n} is out of range: must be from {} to {}",
                self.min, self.max
            ),
            hint: format!(
                "set {} to a whole number from {} to {}",
                self.key, self.min, self.max
            ),
        })
    }
}

/// `rotate_before_expiry_days`: 0 to 3650 (ten years).
pub const ROTATE_BEFORE_EXPIRY_DAYS: Bound = Bound {
    key: "rotate_before_expiry_days",
    min: 0,
    max: 3650,
};

/// `new_secret_validity_days` (and `rotor rotate --expiry-days`): 1 to 3650 (ten years).
pub const NEW_SECRET_VALIDITY_DAYS: Bound = Bound {
    key: "new_secret_validity_days",
    min: 1,
    max: 3650,
};

/// `grace_period_days`: 0 to 3650 (ten years).
pub const GRACE_PERIOD_DAYS: Bound = Bound {
    key: "grace_period_days",
    min: 0,
    max: 3650,
};

/// `max_concurrent`: 1 to 64 rotations at once.
pub const MAX_CONCURRENT: Bound = Bound {
    key: "max_concurrent",
    min: 1,
    max: 64,
};

/// The smallest accepted `pending_window` (5 minutes).
///
/// A rotor credential that no target holds yet is "a rotation in progress" while younger than
/// `pending_window` and an orphan (removed by the next run) after. A live run holds such a
/// credential from creating it until its first target write: at most the verification timeout
/// (120 s by default, `EngineOptions::verify_timeout`) plus the write budget (120 s, after which a
/// run stops before writing). The window must exceed both together plus a margin for clock skew
/// between rotor and Entra, so that a second run never treats a live run's credential as an
/// orphan and removes it while that run is about to write it.
pub const MIN_PENDING_WINDOW: Duration = Duration::from_secs(5 * 60);

fn check_pending_window(d: Duration) -> std::result::Result<(), Violation> {
    if d >= MIN_PENDING_WINDOW {
        return Ok(());
    }
    Err(Violation {
        key: "pending_window",
        cause: format!(
            "{} s is below the minimum of {} s: it must exceed the verification timeout (120 s) plus the write budget (120 s) plus a margin, or a second run could remove a credential a live run is still verifying or writing",
            d.as_secs(),
            MIN_PENDING_WINDOW.as_secs()
        ),
        hint: format!(
            "set pending_window to at least \"{}m\" (default \"1h\")",
            MIN_PENDING_WINDOW.as_secs() / 60
        ),
    })
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

    #[test]
    fn validate_names_the_key_of_an_out_of_range_value() {
        let cases = [
            Policy {
                grace_period_days: 4_000_000,
                ..Policy::default()
            },
            Policy {
                new_secret_validity_days: 4_000_000,
                ..Policy::default()
            },
            Policy {
                rotate_before_expiry_days: 4_000_000,
                new_secret_validity_days: 4_000_001,
                ..Policy::default()
            },
            Policy {
                max_concurrent: 65,
                ..Policy::default()
            },
            Policy {
                pending_window: Duration::from_secs(2),
                ..Policy::default()
            },
        ];
        let keys = [
            "grace_period_days",
            "new_secret_validity_days",
            "rotate_before_expiry_days",
            "max_concurrent",
            "pending_window",
        ];
        for (p, key) in cases.iter().zip(keys) {
            let e = p.validate().expect_err(key);
            assert!(e.to_string().contains(&format!("`{key}`")), "{e}");
            assert!(!e.hints().is_empty(), "{e}");
            assert_eq!(p.violation().map(|v| v.key), Some(key));
        }
        assert_eq!(NEW_SECRET_VALIDITY_DAYS.range(), 1..=3650);
        assert!(MIN_PENDING_WINDOW > Duration::from_secs(120 + 120));
    }
}
