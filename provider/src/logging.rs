//! Logging to stderr in hclog's JSON line format, which Terraform parses: each line keeps its
//! level in Terraform's own log (`TF_LOG`), and nothing is written to stdout (stdout carries only
//! the go-plugin handshake line).
//!
//! Level: `TF_LOG_PROVIDER_ROTOR`, then `TF_LOG_PROVIDER`, then `TF_LOG` (`trace`, `debug`, `info`,
//! `warn`, `error`, `off`; `json` means trace, as in Terraform). Unset means `warn`. No secret
//! value ever reaches a log call: values live in `rotor_engine::SecretValue`, which redacts.

use std::fmt;
use std::io::Write;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, filter::LevelFilter};

/// The level chosen from the environment (see the module docs).
pub fn level_from_env(get: impl Fn(&str) -> Option<String>) -> LevelFilter {
    let raw = ["TF_LOG_PROVIDER_ROTOR", "TF_LOG_PROVIDER", "TF_LOG"]
        .iter()
        .find_map(|k| get(k).filter(|v| !v.trim().is_empty()));
    match raw.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None => LevelFilter::WARN,
        Some("trace" | "json") => LevelFilter::TRACE,
        Some("debug") => LevelFilter::DEBUG,
        Some("info") => LevelFilter::INFO,
        Some("warn") => LevelFilter::WARN,
        Some("error") => LevelFilter::ERROR,
        Some("off") => LevelFilter::OFF,
        // Terraform treats any other value as trace.
        Some(_) => LevelFilter::TRACE,
    }
}

/// Installs the stderr logger. Safe to call once per process. The provider and the engine log at
/// the chosen level; libraries (TLS, HTTP/2, gRPC) at most at `info`, so `TF_LOG=debug` shows
/// rotor's own lines rather than frame dumps.
pub fn init() {
    let level = level_from_env(|k| std::env::var(k).ok());
    let libraries = std::cmp::min(level, LevelFilter::INFO);
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(libraries)
        .with_target("terraform_provider_rotor", level)
        .with_target("rotor_engine", level);
    let _ = tracing_subscriber::registry()
        .with(HclogLayer.with_filter(filter))
        .try_init();
}

/// hclog's timestamp layout (`2006-01-02T15:04:05.000000Z07:00`): go-plugin parses JSON log lines
/// only when the timestamp has exactly this shape, otherwise it shows them as raw text.
fn hclog_timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

struct HclogLayer;

#[derive(Default)]
struct Fields {
    message: String,
    extra: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.extra.insert(field.name().to_string(), value.into());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.extra.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.extra.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.extra.insert(field.name().to_string(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.extra
                .insert(field.name().to_string(), format!("{value:?}").into());
        }
    }
}

fn hclog_level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// One hclog JSON line for an event.
pub fn hclog_line(
    level: &Level,
    target: &str,
    message: &str,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("@level".into(), hclog_level(level).into());
    obj.insert("@message".into(), message.into());
    obj.insert("@module".into(), "rotor".into());
    obj.insert(
        "@timestamp".into(),
        hclog_timestamp(time::OffsetDateTime::now_utc()).into(),
    );
    obj.insert("target".into(), target.into());
    for (k, v) in extra {
        obj.insert(k.clone(), v.clone());
    }
    serde_json::Value::Object(obj).to_string()
}

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let line = hclog_line(meta.level(), meta.target(), &fields.message, &fields.extra);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_follows_terraform_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(level_from_env(env(&[])), LevelFilter::WARN);
        assert_eq!(
            level_from_env(env(&[("TF_LOG", "trace")])),
            LevelFilter::TRACE
        );
        assert_eq!(
            level_from_env(env(&[("TF_LOG", "JSON")])),
            LevelFilter::TRACE
        );
        assert_eq!(
            level_from_env(env(&[("TF_LOG", "trace"), ("TF_LOG_PROVIDER", "error")])),
            LevelFilter::ERROR
        );
        assert_eq!(
            level_from_env(env(&[
                ("TF_LOG_PROVIDER_ROTOR", "off"),
                ("TF_LOG", "debug")
            ])),
            LevelFilter::OFF
        );
    }

    #[test]
    fn lines_are_hclog_json() {
        let line = hclog_line(&Level::INFO, "x", "hello", &serde_json::Map::new());
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["@level"], "info");
        assert_eq!(v["@message"], "hello");
        assert!(v["@timestamp"].is_string());
    }

    #[test]
    fn timestamps_have_hclogs_exact_shape() {
        let t = time::macros::datetime!(2026-01-02 03:04:05.123456789 UTC);
        assert_eq!(hclog_timestamp(t), "2026-01-02T03:04:05.123456Z");
    }
}
