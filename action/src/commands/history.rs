//! `rotor history`: the audit trail from the history file.

use std::path::PathBuf;
use std::process::ExitCode;

use rotor_engine::{AuditRecord, History, HistoryFilter, RotationStatus};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::context::DEFAULT_HISTORY_FILE;
use super::{UsageError, output};
use crate::cli::{GlobalArgs, OutputFormat};

/// `rotor history [--since DATE] [--until DATE] [--app NAME] [--status STATUS]`
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// Only records started at or after this time: RFC 3339 (`2026-11-01T00:00:00Z`), a date
    /// (`2026-11-01`), or relative (`-7d`, `-12h`).
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Only records started before this time (same forms as --since).
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Only records of this app: display name (glob allowed) or appId.
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// Only records with this status: success, failed, skipped or excluded.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
}

/// `--output json` shape of `rotor history` (docs/cli.md).
#[derive(Debug, Serialize)]
pub struct HistoryJson {
    pub records: Vec<AuditRecord>,
}

/// Parses `--since`/`--until`: RFC 3339, `YYYY-MM-DD` (midnight UTC; for `until`, the end of that
/// day), or relative to now: `-7d`, `-12h`, `-30m` (also `7d` meaning 7 days ago).
pub fn parse_when(
    flag: &str,
    s: &str,
    now: OffsetDateTime,
    end_of_day: bool,
) -> Result<OffsetDateTime, UsageError> {
    let t = s.trim();
    if let Ok(v) = OffsetDateTime::parse(t, &Rfc3339) {
        return Ok(v);
    }
    let date_fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(t, date_fmt) {
        let start = d.midnight().assume_utc();
        return Ok(if end_of_day {
            start + time::Duration::days(1) - time::Duration::nanoseconds(1)
        } else {
            start
        });
    }
    let rel = t.strip_prefix('-').unwrap_or(t);
    if let Some(unit) = rel.chars().last()
        && let Ok(n) = rel[..rel.len() - unit.len_utf8()].parse::<i64>()
    {
        let d = match unit {
            'd' => Some(time::Duration::days(n)),
            'h' => Some(time::Duration::hours(n)),
            'm' => Some(time::Duration::minutes(n)),
            'w' => Some(time::Duration::weeks(n)),
            _ => None,
        };
        if let Some(d) = d {
            return Ok(now - d);
        }
    }
    Err(UsageError::new(format!("reading --{flag} `{s}`: not a date or time"))
        .hint("use RFC 3339 (2026-11-01T00:00:00Z), a date (2026-11-01) or a relative time (-7d, -12h)"))
}

/// The history filter of `--since`, `--until` (see [`parse_when`]), `--app` and `--status`; shared
/// by `rotor history` and `rotor report`.
pub fn filter(
    since: Option<&str>,
    until: Option<&str>,
    app: Option<&str>,
    status: Option<&str>,
    now: OffsetDateTime,
) -> anyhow::Result<HistoryFilter> {
    Ok(HistoryFilter {
        since: since
            .map(|s| parse_when("since", s, now, false))
            .transpose()?,
        until: until
            .map(|s| parse_when("until", s, now, true))
            .transpose()?,
        app: app.map(str::to_string),
        status: status.map(str::parse::<RotationStatus>).transpose()?,
    })
}

/// The history file for these flags.
pub fn history_path(global: &GlobalArgs) -> PathBuf {
    global
        .history_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_HISTORY_FILE))
}

/// Runs `rotor history`.
pub fn run(global: &GlobalArgs, args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    run_with_names(global, args, &rotor_engine::endpoints::vault_name_from_url)
}

/// Runs `rotor history`, naming vaults with `vault_name` (the demo knows the emulator's names).
pub fn run_with_names(
    global: &GlobalArgs,
    args: &HistoryArgs,
    vault_name: &dyn Fn(&url::Url) -> String,
) -> anyhow::Result<ExitCode> {
    let filter = filter(
        args.since.as_deref(),
        args.until.as_deref(),
        args.app.as_deref(),
        args.status.as_deref(),
        OffsetDateTime::now_utc(),
    )?;
    let path = history_path(global);
    let records = History::open(&path)?.query(&filter)?;
    print(global.output, &path, &records, vault_name)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints history records in `format`.
pub fn print(
    format: OutputFormat,
    path: &std::path::Path,
    records: &[AuditRecord],
    vault_name: &dyn Fn(&url::Url) -> String,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => output::print_json(&HistoryJson {
            records: records.to_vec(),
        })?,
        OutputFormat::Markdown => {
            output::print(&output::records_markdown("Rotation history", records));
        }
        OutputFormat::Table => {
            if records.is_empty() {
                output::print(&format!("No audit records in `{}` match.", path.display()));
                return Ok(());
            }
            let mut t = output::table(&[
                "Started",
                "App",
                "Old → new key",
                "New expiry",
                "Key Vault secrets / certificates",
                "Actor",
                "Status",
            ]);
            for r in records {
                let mut sorted: Vec<&rotor_engine::TargetRecord> = r.targets.iter().collect();
                sorted.sort_by(|a, b| {
                    (&a.secret_name, &a.vault_url).cmp(&(&b.secret_name, &b.vault_url))
                });
                let targets: Vec<String> = sorted
                    .into_iter()
                    .map(|t| {
                        format!(
                            "{}/{}: {}",
                            vault_name(&t.vault_url),
                            t.secret_name,
                            output::target_status_word(t.status)
                        )
                    })
                    .collect();
                let mut status = output::status_word(r).to_owned();
                if !r.removed_key_ids.is_empty() {
                    let ids: Vec<&str> =
                        r.removed_key_ids.iter().map(|k| output::short(k)).collect();
                    status.push_str(&format!(" (removed {})", ids.join(", ")));
                }
                if let Some(e) = &r.error {
                    status.push_str(&format!(": {e}"));
                }
                t.add_row(vec![
                    output::fmt_time(r.started_at),
                    r.app_name.clone(),
                    super::lineage::keys_cell(r),
                    r.new_expires_at.map(output::fmt_time).unwrap_or_default(),
                    targets.join("\n"),
                    r.actor.clone(),
                    status,
                ]);
            }
            output::print(&t.to_string());
            output::print(&format!(
                "{} record(s) from `{}`.",
                records.len(),
                path.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_when_forms() {
        let now = OffsetDateTime::parse("2026-11-25T12:00:00Z", &Rfc3339).expect("now");
        let p = |s: &str, end: bool| {
            parse_when("since", s, now, end).map(|t| t.format(&Rfc3339).expect("fmt"))
        };
        assert_eq!(
            p("2026-11-01T08:00:00Z", false).expect("rfc"),
            "2026-11-01T08:00:00Z"
        );
        assert_eq!(
            p("2026-11-01", false).expect("date"),
            "2026-11-01T00:00:00Z"
        );
        assert!(
            p("2026-11-01", true)
                .expect("date")
                .starts_with("2026-11-01T23:59:59")
        );
        assert_eq!(p("-7d", false).expect("rel"), "2026-11-18T12:00:00Z");
        assert_eq!(p("12h", false).expect("rel"), "2026-11-25T00:00:00Z");
        assert_eq!(p("-2w", false).expect("rel"), "2026-11-11T12:00:00Z");
        let e = p("yesterday", false).expect_err("bad");
        assert!(e.message.contains("--since `yesterday`"), "{}", e.message);
        assert!(!e.hints.is_empty());
    }
}
