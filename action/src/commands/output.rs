//! Output on stdout: tables for people, stable JSON for machines, Markdown for reports.
//!
//! Nothing printed here ever holds a secret value: the engine's types carry ids, names, hints
//! (first 3 characters, as Entra itself shows them), dates and versions only.

use std::io::{IsTerminal, Write};

use comfy_table::{ContentArrangement, Table, presets};
use rotor_engine::{AuditRecord, TargetStatus};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Writes `value` as pretty JSON plus a newline on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    // written as it is serialised (no copy of the whole document in memory)
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Writes text on stdout (ignoring a closed pipe).
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// A table with rotor's look: box drawing on a terminal, ASCII elsewhere.
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    if std::io::stdout().is_terminal() {
        t.load_preset(presets::UTF8_FULL_CONDENSED);
        // Wrap to the terminal's width, unless it is unknown or too narrow to be useful
        // (pseudo-terminals without a size report 0).
        match t.width() {
            Some(w) if w >= 60 => t.set_content_arrangement(ContentArrangement::Dynamic),
            _ => t.set_content_arrangement(ContentArrangement::Disabled),
        };
    } else {
        t.load_preset(presets::ASCII_FULL_CONDENSED);
        t.set_content_arrangement(ContentArrangement::Disabled);
    }
    t.set_header(headers.to_vec());
    t
}

/// First 8 characters of an id (enough to tell credentials apart).
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// `2026-12-20 10:00Z`.
pub fn fmt_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// RFC 3339 (for JSON).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// "in 25 days", "expired 3 days ago", "today".
pub fn relative(now: OffsetDateTime, t: OffsetDateTime) -> String {
    let days = (t - now).whole_days();
    match days {
        0 if t >= now => "today".to_owned(),
        0 => "expired today".to_owned(),
        1 => "in 1 day".to_owned(),
        d if d > 1 => format!("in {d} days"),
        -1 => "expired 1 day ago".to_owned(),
        d => format!("expired {} days ago", -d),
    }
}

/// The human word for a rotation's outcome: the same vocabulary as the Markdown reports
/// ([`crate::github::markdown::Status`], from the engine's `skip_reason`).
pub fn status_word(r: &AuditRecord) -> &'static str {
    crate::github::markdown::Status::of(r).word()
}

/// The human word for a target status.
pub fn target_status_word(s: TargetStatus) -> &'static str {
    match s {
        TargetStatus::Updated => "updated",
        TargetStatus::Unchanged => "unchanged",
        TargetStatus::WouldUpdate => "would update",
        TargetStatus::Skipped => "skipped",
        TargetStatus::Failed => "FAILED",
    }
}

/// Renders audit records as Markdown with the GitHub report renderer (escaped).
pub fn records_markdown(title: &str, records: &[AuditRecord]) -> String {
    crate::github::markdown::audit_records(title, records)
}

/// A Markdown table from rows of untrusted text (every cell escaped).
pub fn markdown_table(title: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    use crate::github::markdown::escape;
    let mut out = format!("### {title}\n\n");
    out.push_str(&format!("| {} |\n", headers.join(" | ")));
    out.push_str(&format!("|{}\n", "---|".repeat(headers.len())));
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| escape(c)).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}
