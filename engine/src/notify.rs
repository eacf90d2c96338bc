//! Notifications after rotate/cleanup runs: webhooks for Slack (incoming-webhook JSON), Microsoft
//! Teams (an Adaptive Card posted to a Workflows webhook) and generic JSON (the audit records),
//! on failure, on success, or both. Shared by the CLI, `rotor action` and (later) the provider.
//!
//! - A notification never changes the outcome of the run: [`send`] returns what happened per
//!   webhook and the caller reports it; it never returns `Err`.
//! - Retried with exponential backoff on 429, 5xx and connection errors (honouring
//!   `Retry-After` up to 30 s); other answers are not retried.
//! - Webhook URLs are secrets (the URL *is* the credential): [`WebhookUrl`] redacts itself in
//!   `Debug`/`Display`, errors are built without the URL, and `env:NAME` in rotor.toml reads it
//!   from the environment so it need not be in the file.
//! - Names from Azure are escaped for each format ([`escape_slack`], [`escape_teams`]); the
//!   generic JSON carries them as JSON strings. Audit records hold no secret value.
//!
//! The engine knows nothing of GitHub: a run link, when there is one, is passed in
//! [`Message::run_url`].

use std::time::Duration;

use serde_json::{Value, json};

use crate::model::{AuditRecord, RotationStatus};

/// Environment variable: when to notify (overrides `notify.on`).
pub const ENV_ON: &str = "ROTOR_NOTIFY_ON";
/// Environment variables holding webhook URLs, per format (secrets: mask them on CI).
pub const ENV_URLS: [(&str, Format); 3] = [
    ("ROTOR_NOTIFY_SLACK", Format::Slack),
    ("ROTOR_NOTIFY_TEAMS", Format::Teams),
    ("ROTOR_NOTIFY_WEBHOOK", Format::Json),
];

/// A webhook's payload format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Slack incoming webhook (`{"text": …, "blocks": …}`).
    Slack,
    /// Microsoft Teams Workflows webhook: a message with an Adaptive Card attachment.
    Teams,
    /// Generic JSON: `{"source": "rotor", "outcome": …, "records": [AuditRecord…]}`.
    Json,
}

impl Format {
    /// The `[notify]` key / Action input suffix.
    pub fn key(self) -> &'static str {
        match self {
            Format::Slack => "slack",
            Format::Teams => "teams",
            Format::Json => "webhook",
        }
    }
}

/// When to notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    /// Only when a rotation or cleanup failed.
    #[default]
    Failure,
    /// Only when nothing failed and something was rotated or removed.
    Success,
    /// After every run that rotated, removed or failed something.
    Always,
}

impl When {
    /// Parses `failure`, `success` or `always` (`both` is an alias of `always`).
    pub fn parse(s: &str) -> Option<When> {
        match s.trim().to_ascii_lowercase().as_str() {
            "failure" => Some(When::Failure),
            "success" => Some(When::Success),
            "always" | "both" => Some(When::Always),
            _ => None,
        }
    }
}

/// A webhook URL: a secret. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> WebhookUrl {
        WebhookUrl(url.into())
    }
    /// The URL, for sending (and for masking it on a CI runner).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookUrl(<redacted>)")
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted webhook URL>")
    }
}

/// One webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Payload format.
    pub format: Format,
    /// Where to post.
    pub url: WebhookUrl,
}

/// `[notify]` of rotor.toml (and the Action's `notify-*` inputs).
///
/// ```toml
/// [notify]
/// on = "failure"                    # failure | success | always
/// slack = "env:ROTOR_SLACK_WEBHOOK" # or the URL itself (keep the file private then)
/// teams = "env:ROTOR_TEAMS_WEBHOOK"
/// webhook = "https://example.internal/rotor"
/// attempts = 4                      # 1–10
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// When to send.
    pub on: When,
    /// The webhooks (at most one per format from the file; inputs replace the file's).
    pub webhooks: Vec<Webhook>,
    /// Attempts per webhook (first try included).
    pub attempts: u32,
    /// Wait before the first retry; doubled each time.
    pub backoff: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            on: When::Failure,
            webhooks: Vec::new(),
            attempts: 4,
            backoff: Duration::from_millis(500),
        }
    }
}

impl NotifyConfig {
    /// Parses the `[notify]` table. `action` names the file in errors; `get_env` reads
    /// `env:NAME` references.
    pub fn parse(
        action: &str,
        t: &toml::Table,
        get_env: &dyn Fn(&str) -> Option<String>,
    ) -> crate::Result<NotifyConfig> {
        let err = |key: &str, cause: &str| {
            crate::Error::config(action.to_string(), format!("`notify.{key}` {cause}"))
        };
        let mut cfg = NotifyConfig::default();
        for (key, value) in t {
            match key.as_str() {
                "on" => {
                    let s = value
                        .as_str()
                        .ok_or_else(|| err("on", "must be a string"))?;
                    cfg.on = When::parse(s).ok_or_else(|| {
                        err(
                            "on",
                            &format!("is `{s}`: must be failure, success or always"),
                        )
                    })?;
                }
                "attempts" => {
                    let n = value
                        .as_integer()
                        .filter(|n| (1..=10).contains(n))
                        .ok_or_else(|| err("attempts", "must be a whole number from 1 to 10"))?;
                    cfg.attempts = n as u32;
                }
                "slack" | "teams" | "webhook" => {
                    let s = value
                        .as_str()
                        .ok_or_else(|| err(key, "must be a string (a URL or env:NAME)"))?;
                    let url = match s.strip_prefix("env:") {
                        Some(name) => get_env(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                            err(
                                key,
                                &format!(
                                    "names the environment variable `{name}`, which is not set"
                                ),
                            )
                        })?,
                        None => s.to_string(),
                    };
                    check_url(&url).map_err(|c| err(key, &c))?;
                    let format = match key.as_str() {
                        "slack" => Format::Slack,
                        "teams" => Format::Teams,
                        _ => Format::Json,
                    };
                    cfg.set(format, WebhookUrl::new(url));
                }
                other => {
                    return Err(err(other, "is not a known key")
                        .with_hint("known keys of [notify]: on, slack, teams, webhook, attempts"));
                }
            }
        }
        Ok(cfg)
    }

    /// The configuration with the environment's overrides applied (what the GitHub Action's
    /// `notify-*` inputs and a CI job set): [`ENV_ON`] and, per format, [`ENV_URLS`]; a set URL
    /// replaces the file's for that format. `Err` (Config) names the variable, never the URL.
    pub fn with_env(mut self, get: &dyn Fn(&str) -> Option<String>) -> crate::Result<NotifyConfig> {
        let action = "reading the notification settings from the environment";
        if let Some(on) = get(ENV_ON).filter(|v| !v.trim().is_empty()) {
            self.on = When::parse(&on).ok_or_else(|| {
                crate::Error::config(
                    action,
                    format!("`{ENV_ON}` is `{on}`: must be failure, success or always"),
                )
            })?;
        }
        for (var, format) in ENV_URLS {
            if let Some(url) = get(var).filter(|v| !v.trim().is_empty()) {
                let url = url.trim().to_string();
                check_url(&url)
                    .map_err(|c| crate::Error::config(action, format!("`{var}` {c}")))?;
                self.set(format, WebhookUrl::new(url));
            }
        }
        Ok(self)
    }

    /// Sets (replaces) the webhook of `format`.
    pub fn set(&mut self, format: Format, url: WebhookUrl) {
        self.webhooks.retain(|w| w.format != format);
        self.webhooks.push(Webhook { format, url });
    }

    /// Whether a run with these counts is to be notified.
    pub fn wanted(&self, failed: usize, succeeded: usize) -> bool {
        !self.webhooks.is_empty()
            && match self.on {
                When::Failure => failed > 0,
                When::Success => failed == 0 && succeeded > 0,
                When::Always => failed + succeeded > 0,
            }
    }
}

/// Checks a webhook URL without ever quoting it.
pub fn check_url(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "https" => Ok(()),
        Ok(u) if u.scheme() == "http" && is_loopback(&u) => Ok(()),
        Ok(_) => Err("must be an https:// URL (http:// only to loopback)".into()),
        Err(e) => Err(format!("is not a URL ({e})")),
    }
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// What a notification is about.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// What ran (`rotate`, `cleanup`, `rotation requested on the dashboard`).
    pub what: String,
    /// The records of the run.
    pub records: &'a [AuditRecord],
    /// Old credentials removed by cleanup.
    pub removed: usize,
    /// Cleanup failures (links), counted as failures.
    pub cleanup_failed: usize,
    /// Link to the run (a CI run page), when there is one.
    pub run_url: Option<String>,
    /// The run failed before it could rotate (configuration, login, listing): why. Counts as a
    /// failure. Error texts name objects, never values.
    pub run_error: Option<String>,
}

impl Message<'_> {
    /// (failed, succeeded) counts.
    pub fn counts(&self) -> (usize, usize) {
        let failed = self
            .records
            .iter()
            .filter(|r| r.status == RotationStatus::Failed)
            .count()
            + self.cleanup_failed
            + usize::from(self.run_error.is_some());
        let ok = self
            .records
            .iter()
            .filter(|r| r.status == RotationStatus::Success)
            .count()
            + self.removed;
        (failed, ok)
    }

    fn headline(&self) -> String {
        let rotated = self
            .records
            .iter()
            .filter(|r| r.status == RotationStatus::Success)
            .count();
        let (failed, _) = self.counts();
        format!(
            "rotor {}: {rotated} rotated, {failed} failed{}",
            self.what,
            if self.removed > 0 {
                format!(", {} old credentials removed", self.removed)
            } else {
                String::new()
            }
        )
    }

    fn lines(&self) -> Vec<(String, String, String)> {
        let run = self
            .run_error
            .iter()
            .map(|e| ("the run".to_string(), "failed".to_string(), e.clone()));
        run.chain(
            self.records
                .iter()
                .filter(|r| matches!(r.status, RotationStatus::Success | RotationStatus::Failed))
                .map(|r| {
                    let name = if r.app_name.is_empty() {
                        r.app_id.clone()
                    } else {
                        r.app_name.clone()
                    };
                    let status = r.status.to_string();
                    let detail = r.error.clone().unwrap_or_default();
                    (name, status, detail)
                }),
        )
        .collect()
    }
}

/// Escapes text for Slack `mrkdwn`: `&`, `<`, `>` as entities (no links, no `<!channel>`
/// mentions), formatting characters neutralised with a zero-width space, newlines as spaces.
pub fn escape_slack(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '*' | '_' | '~' | '`' | '@' | '#' | ':' => {
                out.push(c);
                out.push('\u{200B}');
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for an Adaptive Card `TextBlock` (Markdown subset): Markdown punctuation
/// backslash-escaped, `<`/`>` as look-alikes are not needed (no HTML is rendered), URL schemes
/// broken with a zero-width space so nothing becomes a link, newlines as spaces.
pub fn escape_teams(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '\\' | '*' | '_' | '[' | ']' | '(' | ')' | '`' | '#' | '~' | '-' | '+' | '!' | '>'
            | '<' => {
                out.push('\\');
                out.push(c);
            }
            ':' => {
                out.push(':');
                if chars.get(i + 1) == Some(&'/') {
                    out.push('\u{200B}');
                }
            }
            '.' => {
                out.push('.');
                out.push('\u{200B}');
            }
            '@' => {
                out.push('@');
                out.push('\u{200B}');
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The payload for `format`.
pub fn payload(format: Format, m: &Message<'_>) -> Value {
    let (failed, ok) = m.counts();
    let outcome = if failed > 0 { "failure" } else { "success" };
    match format {
        Format::Json => json!({
            "source": "rotor",
            "version": env!("CARGO_PKG_VERSION"),
            "what": m.what,
            "outcome": outcome,
            "failed": failed,
            "succeeded": ok,
            "removed": m.removed,
            "run_url": m.run_url,
            "run_error": m.run_error,
            "records": m.records,
        }),
        Format::Slack => {
            let mut text = format!("*{}*", escape_slack(&m.headline()));
            for (name, status, detail) in m.lines() {
                text.push_str(&format!(
                    "\n• {}: {}",
                    escape_slack(&name),
                    escape_slack(&status)
                ));
                if !detail.is_empty() {
                    text.push_str(&format!(" ({})", escape_slack(&detail)));
                }
            }
            if let Some(u) = &m.run_url
                && check_url(u).is_ok()
            {
                text.push_str(&format!("\n<{}|the run>", u.replace(['<', '>', '|'], "")));
            }
            json!({ "text": text })
        }
        Format::Teams => {
            let mut body = vec![json!({
                "type": "TextBlock",
                "text": escape_teams(&m.headline()),
                "weight": "Bolder",
                "size": "Medium",
                "wrap": true,
                "color": if failed > 0 { "Attention" } else { "Good" },
            })];
            let facts: Vec<Value> = m
                .lines()
                .into_iter()
                .map(|(name, status, detail)| {
                    json!({
                        "title": escape_teams(&name),
                        "value": escape_teams(&if detail.is_empty() { status } else { format!("{status}: {detail}") }),
                    })
                })
                .collect();
            if !facts.is_empty() {
                body.push(json!({"type": "FactSet", "facts": facts}));
            }
            let mut card = json!({
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            });
            if let Some(u) = &m.run_url
                && check_url(u).is_ok()
            {
                card["actions"] =
                    json!([{"type": "Action.OpenUrl", "title": "Open the run", "url": u}]);
            }
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": card,
                }],
            })
        }
    }
}

/// What happened to one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Its format.
    pub format: Format,
    /// Attempts made.
    pub attempts: u32,
    /// `None` when delivered; else why not (never the URL).
    pub error: Option<String>,
}

impl Sent {
    /// One line for a log: `slack notification sent` / `teams notification failed: …`.
    pub fn describe(&self) -> String {
        match &self.error {
            None => format!("{} notification sent", self.format.key()),
            Some(e) => format!("{} notification failed: {e}", self.format.key()),
        }
    }
}

/// Sends `m` to every webhook of `cfg` when [`NotifyConfig::wanted`]; returns one [`Sent`] per
/// webhook (empty when not wanted). Never fails and never panics.
pub async fn send(cfg: &NotifyConfig, m: &Message<'_>) -> Vec<Sent> {
    let (failed, ok) = m.counts();
    if !cfg.wanted(failed, ok) {
        return Vec::new();
    }
    let client = match reqwest::Client::builder()
        .user_agent(concat!("rotor/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            let why = format!("creating the HTTP client: {}", e.without_url());
            return cfg
                .webhooks
                .iter()
                .map(|w| Sent {
                    format: w.format,
                    attempts: 0,
                    error: Some(why.clone()),
                })
                .collect();
        }
    };
    let mut out = Vec::new();
    for w in &cfg.webhooks {
        let body = payload(w.format, m);
        out.push(post(&client, cfg, w, &body).await);
    }
    out
}

async fn post(client: &reqwest::Client, cfg: &NotifyConfig, w: &Webhook, body: &Value) -> Sent {
    let mut wait = cfg.backoff;
    let mut last = String::new();
    for attempt in 1..=cfg.attempts.max(1) {
        let retry_after;
        match client.post(w.url.expose()).json(body).send().await {
            Ok(r) if r.status().is_success() => {
                return Sent {
                    format: w.format,
                    attempts: attempt,
                    error: None,
                };
            }
            Ok(r) => {
                let status = r.status();
                last = format!("the webhook answered {status}");
                if !(status.as_u16() == 429 || status.is_server_error()) {
                    return Sent {
                        format: w.format,
                        attempts: attempt,
                        error: Some(last),
                    };
                }
                retry_after = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(30)));
            }
            Err(e) => {
                last = format!("sending failed: {}", e.without_url());
                retry_after = None;
            }
        }
        if attempt < cfg.attempts {
            tokio::time::sleep(retry_after.unwrap_or(wait)).await;
            wait *= 2;
        }
    }
    Sent {
        format: w.format,
        attempts: cfg.attempts.max(1),
        error: Some(format!("{last} (after {} attempts)", cfg.attempts.max(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_env_references_and_never_quotes_a_url() {
        let t: toml::Table =
            "on = \"always\"\nslack = \"env:HOOK\"\nwebhook = \"http://127.0.0.1:9/x\"\n"
                .parse()
                .expect("toml");
        let cfg = NotifyConfig::parse("reading rotor.toml", &t, &|n| {
            (n == "HOOK").then(|| "https://hooks.slack.com/services/T/B/sekrit".to_string())
        })
        .expect("parses");
        assert_eq!(cfg.on, When::Always);
        assert_eq!(cfg.webhooks.len(), 2);
        assert!(!format!("{cfg:?}").contains("sekrit"));
        let bad: toml::Table = "teams = \"http://example.com/sekrit\""
            .parse()
            .expect("toml");
        let e = NotifyConfig::parse("x", &bad, &|_| None).expect_err("http refused");
        assert!(!e.to_string().contains("sekrit"), "{e}");
        assert!(cfg.wanted(0, 1) && !NotifyConfig::default().wanted(1, 0));
    }

    #[test]
    fn rotor_toml_takes_a_notify_table_and_names_bad_keys() {
        let cfg = crate::Config::parse(
            "[notify]\non = \"success\"\nwebhook = \"https://example.invalid/hook\"\n",
            "rotor.toml",
        )
        .expect("parses");
        assert_eq!(cfg.notify.on, When::Success);
        assert_eq!(cfg.notify.webhooks[0].format, Format::Json);
        let e = crate::Config::parse("[notify]\nemail = \"x\"\n", "rotor.toml")
            .expect_err("unknown key");
        assert!(e.to_string().contains("notify.email"), "{e}");
        let e = crate::Config::parse("notify = 3\n", "rotor.toml").expect_err("not a table");
        assert!(e.to_string().contains("notify"), "{e}");
    }

    #[test]
    fn names_are_escaped_per_format() {
        let s = escape_slack("<!channel> *bold* <https://evil.example|x> @here");
        assert!(
            !s.contains('<') && !s.contains("*b") && !s.contains("@h"),
            "{s}"
        );
        let t = escape_teams("[click](https://evil.example) **x**");
        assert!(
            !t.contains("](") && !t.contains("https://") && !t.contains("**"),
            "{t}"
        );
    }
}
