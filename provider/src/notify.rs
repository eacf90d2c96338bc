//! Notifications from `terraform apply`: the provider's `notify` setting (and its
//! `ROTOR_NOTIFY_*` environment defaults, the variables the CLI and the Action read) resolved
//! into the engine's [`NotifyConfig`], and one message per `ApplyResourceChange` of a link that
//! rotated, repaired, cleaned up or failed, sent with the engine's [`notify::send`].
//!
//! - A notification never fails an apply: a webhook that cannot be reached is a warning naming
//!   its format and host, never the URL (the URL is the webhook's credential).
//! - `notify` is one `map(string)` attribute, sensitive as a whole, rather than an object:
//!   Terraform 1.0 requires every key of an object attribute to be written, and the framework has
//!   no nested blocks; a map takes just the keys one needs.
//! - Audit records carry no secret value, so the messages carry none either.

use std::collections::BTreeMap;

use rotor_engine::notify::{self, Format, NotifyConfig, WebhookUrl, When};
use rotor_engine::{AuditRecord, CleanupOutcome};

use crate::framework::{AttrPath, Diagnostics};
use crate::provider::Lookup;
use crate::value::Value;

/// The provider attribute.
pub const ATTR: &str = "notify";

/// The keys `notify` takes, with the environment variable each defaults from.
pub const KEYS: [(&str, Option<&str>); 5] = [
    ("slack", Some("ROTOR_NOTIFY_SLACK")),
    ("teams", Some("ROTOR_NOTIFY_TEAMS")),
    ("webhook", Some("ROTOR_NOTIFY_WEBHOOK")),
    ("on", Some(notify::ENV_ON)),
    ("attempts", None),
];

/// The attribute's description (schema and docs).
pub const DESCRIPTION: &str = "Webhooks notified after an apply of a `rotor_secret_link` or \
    `rotor_certificate_link` that rotated, repaired, cleaned up or failed: one message per resource \
    apply, the same as `[notify]` of rotor.toml (docs/config.md). A map of strings with the keys \
    `slack` (Slack incoming-webhook URL), `teams` (Microsoft Teams Workflows webhook URL), \
    `webhook` (generic JSON: the audit records), `on` (`failure` — the default —, `success` or \
    `always`) and `attempts` (1–10 tries per webhook, default 4). URLs must be `https://` \
    (`http://` only to loopback). Each key defaults to its environment variable — \
    `ROTOR_NOTIFY_SLACK`, `ROTOR_NOTIFY_TEAMS`, `ROTOR_NOTIFY_WEBHOOK`, `ROTOR_NOTIFY_ON` — so the \
    URLs need not be written in configuration. A notification never fails the apply: a webhook \
    that cannot be reached is a warning naming its host. The whole attribute is sensitive (a \
    webhook URL is its own credential) and is never written to state, logs or diagnostics. It is \
    a map rather than an object or a block because Terraform 1.0 requires every key of an object \
    attribute to be set, and a map takes only the keys you use.";

/// Resolves `notify` (the provider block's value, else the environment, per key). Bad keys and
/// URLs are errors on `notify["<key>"]` naming the key, never the URL.
pub fn resolve(config: &Value, lookup: &Lookup, diags: &mut Diagnostics) -> NotifyConfig {
    let attr = config.attr(ATTR);
    let mut set: BTreeMap<String, String> = BTreeMap::new();
    if let Value::Map(m) = attr {
        for (k, v) in m {
            let path = Some(AttrPath::attr(ATTR).then_key(k));
            if !KEYS.iter().any(|(key, _)| key == k) {
                diags.error(
                    format!("reading provider setting `notify`: `{k}` is not a known key"),
                    "hint: the keys of `notify` are slack, teams, webhook, on and attempts",
                    path,
                );
                continue;
            }
            match v {
                Value::String(s) if !s.trim().is_empty() => {
                    set.insert(k.clone(), s.trim().to_string());
                }
                // Unknown (validation, or a plan before what it comes from exists): as
                // the other settings, unset for now; the apply that sends has it.
                _ => {}
            }
        }
    }
    // The environment for every key the block does not set.
    let env = |name: &str| -> Option<String> {
        let blocked = KEYS
            .iter()
            .any(|(k, var)| *var == Some(name) && set.contains_key(*k));
        if blocked { None } else { lookup(name) }
    };
    let mut cfg = match NotifyConfig::default().with_env(&env) {
        Ok(c) => c,
        Err(e) => {
            diags.error(
                format!("reading provider setting `notify`: {e}"),
                "hint: fix the environment variable or set the key in the provider's `notify`",
                Some(AttrPath::attr(ATTR)),
            );
            NotifyConfig::default()
        }
    };
    for (k, v) in &set {
        let path = Some(AttrPath::attr(ATTR).then_key(k));
        let bad = |diags: &mut Diagnostics, cause: String, hint: &str| {
            diags.error(
                format!("reading provider setting `notify`: `{k}` {cause}"),
                format!("hint: {hint}"),
                path.clone(),
            );
        };
        match k.as_str() {
            "on" => match When::parse(v) {
                Some(w) => cfg.on = w,
                None => bad(
                    diags,
                    format!("is `{v}`: must be failure, success or always"),
                    "set `on` to failure, success or always",
                ),
            },
            "attempts" => match v.parse::<u32>().ok().filter(|n| (1..=10).contains(n)) {
                Some(n) => cfg.attempts = n,
                None => bad(
                    diags,
                    format!("is `{v}`: must be a whole number from 1 to 10"),
                    "set `attempts` to a number from 1 to 10",
                ),
            },
            key => {
                let format = match key {
                    "slack" => Format::Slack,
                    "teams" => Format::Teams,
                    _ => Format::Json,
                };
                match notify::check_url(v) {
                    Ok(()) => cfg.set(format, WebhookUrl::new(v.clone())),
                    // `check_url` never quotes the URL.
                    Err(cause) => bad(
                        diags,
                        cause,
                        "use the webhook's https:// URL (keep it in a sensitive variable or ROTOR_NOTIFY_*)",
                    ),
                }
            }
        }
    }
    cfg
}

/// What one apply did, for its notification.
#[derive(Debug, Default)]
pub struct Outcome {
    records: Vec<AuditRecord>,
    removed: usize,
    cleanup_failed: usize,
    errors: Vec<String>,
}

impl Outcome {
    /// A rotation or repair (`engine.rotate`, `sync_targets`).
    pub fn record(&mut self, r: &AuditRecord) {
        self.records.push(r.clone());
    }
    /// A cleanup's result.
    pub fn cleanup(&mut self, r: &rotor_engine::Result<CleanupOutcome>) {
        match r {
            Ok(o) => self.removed += o.removed_key_ids.len(),
            Err(_) => self.cleanup_failed += 1,
        }
    }
    /// A failure outside a record (the link could not be read, added targets not written).
    /// Error texts name objects, never values.
    pub fn failed(&mut self, why: impl Into<String>) {
        self.errors.push(why.into());
    }
}

/// How messages name a webhook of `format`.
fn label(format: Format) -> &'static str {
    match format {
        Format::Slack => "Slack",
        Format::Teams => "Teams",
        Format::Json => "JSON",
    }
}

/// The webhook's host, for messages (never its path or query: they hold its token).
fn host(url: &WebhookUrl) -> String {
    url::Url::parse(url.expose())
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| "(unparsable URL)".into())
}

/// Sends one message about `what` (`terraform apply, credential … of application …`) when `cfg`
/// wants it; a webhook that failed is a warning naming its format and host.
pub async fn send(cfg: &NotifyConfig, what: String, outcome: &Outcome, diags: &mut Diagnostics) {
    let m = notify::Message {
        what,
        records: &outcome.records,
        removed: outcome.removed,
        cleanup_failed: outcome.cleanup_failed,
        run_url: None,
        run_error: (!outcome.errors.is_empty()).then(|| outcome.errors.join("; ")),
    };
    for sent in notify::send(cfg, &m).await {
        let at = cfg
            .webhooks
            .iter()
            .find(|w| w.format == sent.format)
            .map(|w| host(&w.url))
            .unwrap_or_default();
        match &sent.error {
            None => tracing::info!("{} notification sent to {at}", label(sent.format)),
            Some(e) => diags.warning(
                format!(
                    "notifying the {} webhook at {at}: {e}",
                    label(sent.format)
                ),
                "The apply itself is unaffected; only the notification was lost.\n\
                 hint: check that the webhook (provider setting `notify` or ROTOR_NOTIFY_*) still exists and accepts posts",
                None,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn lookup(pairs: &[(&'static str, &'static str)]) -> Lookup {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Arc::new(move |k: &str| map.get(k).cloned())
    }

    fn block(pairs: &[(&str, &str)]) -> Value {
        let m = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::string(*v)))
            .collect();
        Value::Object([(ATTR.to_string(), Value::Map(m))].into())
    }

    fn paths(d: &Diagnostics) -> Vec<String> {
        d.0.iter()
            .filter_map(|x| x.path.as_ref().map(|p| p.to_string()))
            .collect()
    }

    #[test]
    fn keys_parse_into_the_engine_config() {
        let mut d = Diagnostics::default();
        let cfg = resolve(
            &block(&[
                ("slack", "https://hooks.slack.com/services/T/B/sekrit"),
                ("webhook", "http://127.0.0.1:9/hook"),
                ("on", "Always"),
                ("attempts", "2"),
            ]),
            &lookup(&[]),
            &mut d,
        );
        assert!(d.0.is_empty(), "{:?}", d.0);
        assert_eq!(cfg.on, When::Always);
        assert_eq!(cfg.attempts, 2);
        let formats: Vec<Format> = cfg.webhooks.iter().map(|w| w.format).collect();
        assert_eq!(formats, [Format::Slack, Format::Json]);
        assert!(!format!("{cfg:?}").contains("sekrit"));
    }

    #[test]
    fn bad_keys_and_urls_are_errors_on_their_key_without_the_url() {
        let mut d = Diagnostics::default();
        resolve(
            &block(&[
                ("email", "ops@example.com"),
                ("teams", "http://example.com/sekrit-token"),
                ("on", "sometimes"),
                ("attempts", "11"),
            ]),
            &lookup(&[]),
            &mut d,
        );
        assert!(d.has_errors());
        assert_eq!(
            paths(&d),
            [
                "notify[\"email\"]",
                "notify[\"attempts\"]",
                "notify[\"on\"]",
                "notify[\"teams\"]"
            ]
        );
        let all = format!("{:?}", d.0);
        assert!(!all.contains("sekrit-token"), "{all}");
        assert!(all.contains("`email` is not a known key"), "{all}");
        assert!(all.contains("https://"), "{all}");
    }

    #[test]
    fn environment_fills_what_the_block_leaves_out() {
        let l = lookup(&[
            ("ROTOR_NOTIFY_SLACK", "https://hooks.slack.com/services/env"),
            (
                "ROTOR_NOTIFY_TEAMS",
                "https://example.webhook.office.com/env",
            ),
            ("ROTOR_NOTIFY_ON", "success"),
        ]);
        let mut d = Diagnostics::default();
        let cfg = resolve(
            &block(&[("slack", "https://hooks.slack.com/services/cfg")]),
            &l,
            &mut d,
        );
        assert!(d.0.is_empty(), "{:?}", d.0);
        assert_eq!(cfg.on, When::Success);
        let slack = cfg.webhooks.iter().find(|w| w.format == Format::Slack);
        assert_eq!(
            slack.map(|w| w.url.expose()),
            Some("https://hooks.slack.com/services/cfg")
        );
        assert!(cfg.webhooks.iter().any(|w| w.format == Format::Teams));
        // nothing set anywhere: nothing to send
        let cfg = resolve(&Value::Null, &lookup(&[]), &mut d);
        assert!(cfg.webhooks.is_empty() && !cfg.wanted(1, 1));
    }

    #[test]
    fn a_bad_environment_url_names_the_variable_not_the_url() {
        let l = lookup(&[("ROTOR_NOTIFY_WEBHOOK", "http://example.com/sekrit-token")]);
        let mut d = Diagnostics::default();
        resolve(&Value::Null, &l, &mut d);
        assert_eq!(paths(&d), ["notify"]);
        let all = format!("{:?}", d.0);
        assert!(all.contains("ROTOR_NOTIFY_WEBHOOK"), "{all}");
        assert!(!all.contains("sekrit-token"), "{all}");
    }

    #[test]
    fn host_keeps_neither_path_nor_query() {
        assert_eq!(
            host(&WebhookUrl::new(
                "https://hooks.slack.com/services/T/B/x?t=y"
            )),
            "hooks.slack.com"
        );
        assert_eq!(
            host(&WebhookUrl::new("http://127.0.0.1:8080/x")),
            "127.0.0.1:8080"
        );
    }

    #[tokio::test]
    async fn a_failed_webhook_is_a_warning_naming_the_host_only() {
        // A port nothing listens on (bound, then dropped).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let mut cfg = NotifyConfig {
            on: When::Always,
            attempts: 1,
            ..Default::default()
        };
        cfg.set(
            Format::Slack,
            WebhookUrl::new(format!("http://127.0.0.1:{port}/services/sekrit-token")),
        );
        let mut outcome = Outcome::default();
        outcome.failed("reading credential `x` of application y: 403 Forbidden");
        let mut d = Diagnostics::default();
        send(&cfg, "terraform apply".into(), &outcome, &mut d).await;
        assert_eq!(d.0.len(), 1, "{:?}", d.0);
        assert!(!d.has_errors());
        let w = &d.0[0];
        assert!(
            w.summary
                .contains(&format!("Slack webhook at 127.0.0.1:{port}")),
            "{w:?}"
        );
        assert!(!format!("{w:?}").contains("sekrit-token"), "{w:?}");
        // nothing happened: nothing is sent, nothing reported
        let mut d = Diagnostics::default();
        send(&cfg, "terraform apply".into(), &Outcome::default(), &mut d).await;
        assert!(d.0.is_empty());
    }

    #[tokio::test]
    async fn on_failure_sends_for_a_failed_cleanup_only() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let mut cfg = NotifyConfig {
            attempts: 1,
            ..Default::default()
        };
        assert_eq!(cfg.on, When::Failure);
        cfg.set(
            Format::Json,
            WebhookUrl::new(format!("http://127.0.0.1:{port}/hook")),
        );
        let removed = Ok(CleanupOutcome {
            removed_key_ids: vec!["k1".into()],
            kept: Vec::new(),
            dry_run: false,
        });
        let mut ok = Outcome::default();
        ok.cleanup(&removed);
        let mut d = Diagnostics::default();
        send(&cfg, "terraform apply".into(), &ok, &mut d).await;
        assert!(
            d.0.is_empty(),
            "a success is not sent on failure: {:?}",
            d.0
        );

        let mut failed = Outcome::default();
        failed.cleanup(&removed);
        failed.cleanup(&Err(rotor_engine::Error::config("cleaning up", "boom")));
        send(&cfg, "terraform apply".into(), &failed, &mut d).await;
        assert_eq!(
            d.0.len(),
            1,
            "a failed cleanup is sent (and fails here): {:?}",
            d.0
        );
        assert!(
            d.0[0].summary.contains("JSON webhook at 127.0.0.1"),
            "{:?}",
            d.0
        );
    }
}
