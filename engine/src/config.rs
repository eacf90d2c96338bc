//! `rotor.toml`: vaults, subscriptions and `[policy]`.

use crate::error::{Error, Result};
use crate::model::Confidence;
use crate::policy::{self, Exclusion, Policy};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use url::Url;

/// The configuration file.
///
/// ```toml
/// vaults = ["https://kv-prod.vault.azure.net/"]
/// subscriptions = ["00000000-0000-0000-0000-000000000000"]
/// [policy]
/// rotate_before_expiry_days = 30
/// new_secret_validity_days = 365
/// min_confidence = "HIGH"
/// grace_period_days = 7
/// max_concurrent = 4
/// exclusions = ["name:legacy-*"]
/// pending_window = "1h"   # or seconds
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Config {
    /// Vault URLs (normalised with a trailing `/`).
    pub vaults: Vec<Url>,
    /// Subscriptions whose vaults are found through ARM.
    pub subscriptions: Vec<String>,
    /// Policy (defaults for absent keys).
    pub policy: Policy,
    /// Request budgets (`[limits]`; default 90 % of Azure's documented limits, see
    /// [`crate::pacing`]).
    #[serde(skip)]
    pub limits: crate::pacing::Limits,
    /// Notifications (`[notify]`): webhooks, when to send. Never serialised (the URLs are
    /// secrets).
    #[serde(skip)]
    pub notify: crate::notify::NotifyConfig,
}

impl Config {
    /// Reads and parses `path`. `Err` (Config) names the file and the bad key
    /// (`policy.max_concurrent`).
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(
                format!("reading configuration `{}`", path.display()),
                e.to_string(),
            )
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses TOML text; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config> {
        let action = format!("reading configuration `{origin}`");
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            Error::config(action.clone(), e.to_string().trim().to_owned())
        })?;
        let mut cfg = Config::default();
        for (key, value) in &table {
            match key.as_str() {
                "vaults" => {
                    for (i, v) in as_array(&action, key, value)?.iter().enumerate() {
                        let key = format!("vaults[{i}]");
                        let s = as_str(&action, &key, v)?;
                        let u = crate::endpoints::parse_vault_url(s).map_err(|(cause, fix)| {
                            key_error(&action, &key, &cause).with_hint(fix)
                        })?;
                        cfg.vaults.push(u);
                    }
                }
                "subscriptions" => {
                    for (i, v) in as_array(&action, key, value)?.iter().enumerate() {
                        cfg.subscriptions
                            .push(as_str(&action, &format!("subscriptions[{i}]"), v)?.to_owned());
                    }
                }
                "policy" => {
                    let Some(t) = value.as_table() else {
                        return Err(key_error(&action, "policy", "must be a table `[policy]`"));
                    };
                    cfg.policy = parse_policy(&action, t)?;
                }
                "app_subscriptions" => {
                    // validated here; read with `app_subscriptions()` into EngineOptions
                    parse_app_subscriptions(&action, value)?;
                }
                "limits" => {
                    let Some(t) = value.as_table() else {
                        return Err(key_error(&action, "limits", "must be a table `[limits]`"));
                    };
                    cfg.limits = parse_limits(&action, t)?;
                }
                "notify" => {
                    let Some(t) = value.as_table() else {
                        return Err(key_error(&action, "notify", "must be a table `[notify]`"));
                    };
                    cfg.notify = crate::notify::NotifyConfig::parse(&action, t, &|name| {
                        std::env::var(name).ok()
                    })?;
                }
                other => {
                    return Err(key_error(&action, other, "unknown key").with_hint(
                        "known keys: vaults, subscriptions, [policy], [app_subscriptions], [limits], [notify]",
                    ));
                }
            }
        }
        Ok(cfg)
    }
}

/// The `[app_subscriptions]` table of a configuration (`"<appId or name glob>" = ["<subscription
/// id>", …]`), for [`crate::EngineOptions::app_subscriptions`] (the `subscription` signal).
/// Empty when absent; `Err` names the bad key.
pub fn app_subscriptions(text: &str, origin: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let action = format!("reading configuration `{origin}`");
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        Error::config(action.clone(), e.to_string().trim().to_owned())
    })?;
    match table.get("app_subscriptions") {
        Some(v) => parse_app_subscriptions(&action, v),
        None => Ok(BTreeMap::new()),
    }
}

fn parse_app_subscriptions(action: &str, v: &toml::Value) -> Result<BTreeMap<String, Vec<String>>> {
    let Some(t) = v.as_table() else {
        return Err(key_error(
            action,
            "app_subscriptions",
            "must be a table `[app_subscriptions]`",
        ));
    };
    let mut out = BTreeMap::new();
    for (app, subs) in t {
        let path = format!("app_subscriptions.{app}");
        let mut list = Vec::new();
        for (i, s) in as_array(action, &path, subs)?.iter().enumerate() {
            list.push(as_str(action, &format!("{path}[{i}]"), s)?.to_owned());
        }
        out.insert(app.clone(), list);
    }
    Ok(out)
}

/// Parses a `[policy]` table (also used by front ends that hold policy as TOML).
pub fn parse_policy(action: &str, t: &toml::Table) -> Result<Policy> {
    let mut p = Policy::default();
    for (key, value) in t {
        let path = format!("policy.{key}");
        match key.as_str() {
            "rotate_before_expiry_days" => {
                p.rotate_before_expiry_days =
                    bounded(action, &path, value, &policy::ROTATE_BEFORE_EXPIRY_DAYS)?
            }
            "new_secret_validity_days" => {
                p.new_secret_validity_days =
                    bounded(action, &path, value, &policy::NEW_SECRET_VALIDITY_DAYS)?
            }
            "grace_period_days" => {
                p.grace_period_days = bounded(action, &path, value, &policy::GRACE_PERIOD_DAYS)?
            }
            "max_concurrent" => {
                p.max_concurrent = bounded(action, &path, value, &policy::MAX_CONCURRENT)? as usize
            }
            "min_confidence" => {
                let s = as_str(action, &path, value)?;
                p.min_confidence = s.parse::<Confidence>().map_err(|_| {
                    key_error(action, &path, &format!("`{s}` is not a confidence level"))
                        .with_hint("use one of HIGH, MEDIUM, LOW")
                })?;
            }
            "exclusions" => {
                for (i, v) in as_array(action, &path, value)?.iter().enumerate() {
                    let s = as_str(action, &format!("{path}[{i}]"), v)?;
                    let e = Exclusion::parse(s).map_err(|e| {
                        key_error(action, &format!("{path}[{i}]"), &e.failure().cause).with_hint(
                            "write exclusions as `app-id:GLOB`, `name:GLOB` or `secret:GLOB`",
                        )
                    })?;
                    p.exclusions.push(e);
                }
            }
            "pending_window" => {
                p.pending_window = match value {
                    toml::Value::Integer(n) if *n >= 0 => Duration::from_secs(*n as u64),
                    toml::Value::String(s) => parse_duration(s).ok_or_else(|| {
                        key_error(action, &path, &format!("`{s}` is not a duration"))
                            .with_hint("write a duration like \"90s\", \"30m\" or \"1h\", or a number of seconds")
                    })?,
                    _ => return Err(key_error(action, &path, "must be a duration like \"1h\" or seconds")),
                };
            }
            "name" => {} // rotor_policy's name: accepted, not used by the engine
            other => {
                return Err(key_error(action, &format!("policy.{other}"), "unknown key").with_hint(
                    "known policy keys: rotate_before_expiry_days, new_secret_validity_days, min_confidence, grace_period_days, max_concurrent, exclusions, pending_window",
                ));
            }
        }
    }
    if let Some(v) = p.violation() {
        return Err(key_error(action, &format!("policy.{}", v.key), &v.cause).with_hint(v.hint));
    }
    Ok(p)
}

/// Parses a `[limits]` table: each key a request count per period, `0` to turn that budget off.
fn parse_limits(action: &str, t: &toml::Table) -> Result<crate::pacing::Limits> {
    let mut l = crate::pacing::Limits::default();
    for (key, value) in t {
        let path = format!("limits.{key}");
        let slot = match key.as_str() {
            "keyvault_creates_per_10s" => &mut l.keyvault_creates_per_10s,
            "keyvault_other_per_10s" => &mut l.keyvault_other_per_10s,
            "graph_requests_per_10s" => &mut l.graph_requests_per_10s,
            "graph_writes_per_150s" => &mut l.graph_writes_per_150s,
            _ => {
                return Err(key_error(action, &path, "unknown key").with_hint(
                    "known limits keys: keyvault_creates_per_10s, keyvault_other_per_10s, graph_requests_per_10s, graph_writes_per_150s",
                ));
            }
        };
        let n = value
            .as_integer()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n <= 1_000_000)
            .ok_or_else(|| {
                key_error(
                    action,
                    &path,
                    "must be a whole number from 0 (no budget) to 1000000",
                )
            })?;
        *slot = (n > 0).then_some(n);
    }
    Ok(l)
}

/// An integer key within `bound` (out of range and wrong type both name the key).
fn bounded(action: &str, key: &str, v: &toml::Value, bound: &policy::Bound) -> Result<u32> {
    let n = v.as_integer().ok_or_else(|| {
        key_error(
            action,
            key,
            &format!("must be a whole number from {} to {}", bound.min, bound.max),
        )
    })?;
    bound
        .check(n)
        .map_err(|viol| key_error(action, key, &viol.cause).with_hint(viol.hint))
}

/// Parses `90s`, `30m`, `1h`, `2d` or plain seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        's' => (&s[..s.len() - 1], 1),
        'm' => (&s[..s.len() - 1], 60),
        'h' => (&s[..s.len() - 1], 3600),
        'd' => (&s[..s.len() - 1], 86400),
        c if c.is_ascii_digit() => (s, 1),
        _ => return None,
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .map(Duration::from_secs)
}

fn key_error(action: &str, key: &str, cause: &str) -> Error {
    Error::config(action.to_owned(), format!("key `{key}`: {cause}"))
}

fn as_array<'a>(action: &str, key: &str, v: &'a toml::Value) -> Result<&'a Vec<toml::Value>> {
    v.as_array()
        .ok_or_else(|| key_error(action, key, "must be an array of strings"))
}

fn as_str<'a>(action: &str, key: &str, v: &'a toml::Value) -> Result<&'a str> {
    v.as_str()
        .ok_or_else(|| key_error(action, key, "must be a string"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_config() {
        let c = Config::parse(
            r#"
vaults = ["https://kv-prod.vault.azure.net"]
subscriptions = ["sub-1"]
[policy]
rotate_before_expiry_days = 20
min_confidence = "medium"
exclusions = ["name:legacy-*", "secret:*-break-glass"]
pending_window = "30m"
max_concurrent = 16
"#,
            "rotor.toml",
        )
        .expect("valid");
        assert_eq!(c.vaults[0].as_str(), "https://kv-prod.vault.azure.net/");
        assert_eq!(c.policy.rotate_before_expiry_days, 20);
        assert_eq!(c.policy.min_confidence, Confidence::Medium);
        assert_eq!(c.policy.exclusions.len(), 2);
        assert_eq!(c.policy.pending_window, Duration::from_secs(1800));
        assert_eq!(c.policy.max_concurrent, 16);
        assert_eq!(c.policy.grace_period_days, 7);
    }

    #[test]
    fn app_subscriptions_table() {
        let text = "[app_subscriptions]\n\"report*\" = [\"sub-1\"]\n";
        assert!(Config::parse(text, "r").is_ok());
        let m = app_subscriptions(text, "r").expect("valid");
        assert_eq!(m["report*"], vec!["sub-1".to_owned()]);
        let e = Config::parse("[app_subscriptions]\nx = 3\n", "r").expect_err("bad");
        assert!(e.to_string().contains("app_subscriptions.x"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::parse("[policy]\nmax_concurent = 3\n", "rotor.toml").expect_err("typo");
        assert!(e.to_string().contains("policy.max_concurent"), "{e}");
        assert!(e.to_string().contains("rotor.toml"), "{e}");
        let e =
            Config::parse("[policy]\nmax_concurrent = \"x\"\n", "rotor.toml").expect_err("type");
        assert!(e.to_string().contains("policy.max_concurrent"), "{e}");
        let e = Config::parse("vault = []\n", "rotor.toml").expect_err("unknown");
        assert!(e.to_string().contains("`vault`"), "{e}");
        let e = Config::parse("[policy]\nexclusions = [\"owner:x\"]\n", "r").expect_err("excl");
        assert!(e.to_string().contains("policy.exclusions[0]"), "{e}");
        let e = Config::parse("[policy]\nmin_confidence = \"big\"\n", "r").expect_err("conf");
        assert!(e.to_string().contains("policy.min_confidence"), "{e}");
    }

    #[test]
    fn out_of_range_days_are_config_errors_naming_key_and_file() {
        for (key, value) in [
            ("rotate_before_expiry_days", "4000000"),
            ("new_secret_validity_days", "4000000"),
            ("new_secret_validity_days", "0"),
            ("grace_period_days", "4000000"),
            ("grace_period_days", "5000000000"),
            ("grace_period_days", "-1"),
            ("max_concurrent", "0"),
            ("max_concurrent", "100000000000"),
        ] {
            let e = Config::parse(&format!("[policy]\n{key} = {value}\n"), "rotor.toml")
                .expect_err(key);
            assert_eq!(e.kind(), crate::ErrorKind::Config, "{e}");
            let text = e.render();
            assert!(text.contains(&format!("policy.{key}")), "{text}");
            assert!(text.contains("rotor.toml"), "{text}");
            assert!(text.contains("out of range"), "{text}");
        }
        // the upper bounds themselves are accepted
        let c = Config::parse(
            "[policy]\nrotate_before_expiry_days = 3649\nnew_secret_validity_days = 3650\ngrace_period_days = 3650\nmax_concurrent = 64\n",
            "rotor.toml",
        )
        .expect("bounds are inclusive");
        assert_eq!(c.policy.grace_period_days, 3650);
        let e = Config::parse("[policy]\ngrace_period_days = \"x\"\n", "r").expect_err("type");
        assert!(e.to_string().contains("policy.grace_period_days"), "{e}");
    }

    #[test]
    fn pending_window_below_minimum_is_a_config_error() {
        for w in ["\"0s\"", "\"2s\"", "299", "\"4m\""] {
            let e = Config::parse(&format!("[policy]\npending_window = {w}\n"), "rotor.toml")
                .expect_err(w);
            let text = e.render();
            assert!(text.contains("policy.pending_window"), "{text}");
            assert!(text.contains("rotor.toml"), "{text}");
            assert!(text.contains("300 s"), "{text}");
            assert!(text.contains("verification timeout"), "{text}");
        }
        let c = Config::parse("[policy]\npending_window = \"5m\"\n", "r").expect("the minimum");
        assert_eq!(c.policy.pending_window, crate::policy::MIN_PENDING_WINDOW);
        // absurd durations are refused, not overflowed
        let e = Config::parse("[policy]\npending_window = \"99999999999999999d\"\n", "r")
            .expect_err("overflow");
        assert!(e.to_string().contains("policy.pending_window"), "{e}");
    }

    #[test]
    fn http_vault_url_is_refused_at_load_naming_key_and_url() {
        let e = Config::parse(
            "vaults = [\"https://kv-a.vault.azure.net/\", \"http://kv-prod.vault.azure.net/\"]\n",
            "rotor.toml",
        )
        .expect_err("http");
        assert_eq!(e.kind(), crate::ErrorKind::Config);
        let text = e.render();
        assert!(text.contains("vaults[1]"), "{text}");
        assert!(text.contains("rotor.toml"), "{text}");
        assert!(text.contains("http://kv-prod.vault.azure.net/"), "{text}");
        assert!(text.contains("hint: "), "{text}");
        assert!(text.contains("https://kv-prod.vault.azure.net/"), "{text}");
        let e = Config::parse(
            "vaults = [\"https://kv.vault.azure.net/secrets/x?y=1\"]\n",
            "r",
        )
        .expect_err("path");
        assert!(e.to_string().contains("vaults[0]"), "{e}");
    }

    #[test]
    fn limits_table_sets_or_turns_off_budgets_and_names_bad_keys() {
        let c = Config::parse(
            "[limits]\nkeyvault_creates_per_10s = 100\ngraph_writes_per_150s = 0\n",
            "rotor.toml",
        )
        .expect("parses");
        assert_eq!(c.limits.keyvault_creates_per_10s, Some(100));
        assert_eq!(c.limits.graph_writes_per_150s, None);
        assert_eq!(
            c.limits.keyvault_other_per_10s,
            crate::pacing::Limits::default().keyvault_other_per_10s
        );
        let e =
            Config::parse("[limits]\nkeyvault_creates = 1\n", "rotor.toml").expect_err("unknown");
        assert!(e.to_string().contains("limits.keyvault_creates"), "{e}");
        let e = Config::parse("[limits]\ngraph_requests_per_10s = -1\n", "rotor.toml")
            .expect_err("negative");
        assert!(
            e.to_string().contains("limits.graph_requests_per_10s"),
            "{e}"
        );
    }
}
