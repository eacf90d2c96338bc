//! Markdown rendering of rotor results: audit records, due rotations, match reports and
//! Terraform plans, for PR comments, job summaries and `--output markdown`.
//!
//! Everything that comes from Azure or from a user (application names, credential and secret
//! names, error messages) is untrusted and goes through [`escape`]: it can neither inject HTML,
//! open an HTML comment (which would hide the rest of a PR comment, or forge our marker),
//! mention people or teams, link issues, break a table row, nor format text.
//!
//! A [`Report`] is the common model; [`Report::render`] produces Markdown trimmed under a size
//! limit by dropping whole rows (failures are kept before table rows), ending with a line that
//! says how many rows were left out and links to the run.

use std::fmt::Write as _;

/// GitHub rejects issue comment bodies longer than this many characters.
pub const COMMENT_LIMIT: usize = 65_536;
/// GitHub shows at most 1 MiB of job summary per step.
pub const SUMMARY_LIMIT: usize = 1024 * 1024;

/// The hidden marker that identifies rotor's own sticky comment for `key`.
///
/// `key` is sanitised to `[A-Za-z0-9._/-]` so it can never close the HTML comment.
pub fn marker(key: &str) -> String {
    let key: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        .collect();
    let mut key = key;
    while key.contains("--") {
        key = key.replace("--", "-");
    }
    format!("<!-- rotor-report: {key} -->")
}

const ZWSP: char = '\u{200B}';

/// The line an outdated (replaced) comment gets under its marker; such a comment is never picked
/// up again as the current one.
pub const OUTDATED_NOTE: &str =
    "> [!NOTE]\n> **Outdated**: a newer rotor report for this pull request is below.";

/// Escapes untrusted text for inline use in Markdown, including table cells.
///
/// - `<`, `>`, `&` become HTML entities (so no tag, and no `<!--`, can survive);
/// - newlines and other control characters become spaces;
/// - Markdown punctuation (`\ ` * _ [ ] ~ |`) is backslash-escaped (no links, no code spans, no
///   table cell breaks);
/// - every autolink GitHub renders is broken by a zero-width space: the GFM autolinks of
///   cmark-gfm (`http://`/`https://`/`ftp://` URLs after `:`, `www.` after `www`, emails after
///   `@`) and GitHub's references — `@user`/`@org/team` and `owner/repo@sha` after `@`, `#123`
///   and `owner/repo#123` after `#`, `GH-123` after `GH-`;
/// - what GitHub could link as a commit SHA (a run of 7 to 40 hex digits) and GUIDs become inline
///   code, where GitHub links nothing and which copies cleanly.
pub fn escape(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let code_spans = hex_spans(&chars);
    let mut spans = code_spans.iter().peekable();
    let mut out = String::with_capacity(text.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        if let Some(&&(start, end)) = spans.peek()
            && start == i
        {
            out.push('`');
            out.extend(&chars[start..end]);
            out.push('`');
            spans.next();
            i = end;
            continue;
        }
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        i += 1;
        let i = i - 1;
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '~' | '|' => {
                out.push('\\');
                out.push(c);
            }
            '@' => {
                out.push('@');
                if next.is_some_and(|n| !n.is_whitespace()) {
                    out.push(ZWSP);
                }
            }
            '#' => {
                out.push('#');
                if next.is_some_and(|n| n.is_ascii_digit()) {
                    out.push(ZWSP);
                }
            }
            '-' => {
                out.push('-');
                let gh = i >= 2
                    && chars[i - 2].eq_ignore_ascii_case(&'g')
                    && chars[i - 1].eq_ignore_ascii_case(&'h');
                if gh && next.is_some_and(|n| n.is_ascii_digit()) {
                    out.push(ZWSP);
                }
            }
            '.' => {
                let www = i >= 3 && chars[i - 3..i].iter().all(|w| w.eq_ignore_ascii_case(&'w'));
                if www {
                    out.push(ZWSP);
                }
                out.push('.');
            }
            ':' => {
                out.push(':');
                if next == Some('/') && chars.get(i + 2) == Some(&'/') {
                    out.push(ZWSP);
                }
            }
            c if c.is_control() => out.push(' '),
            // Bidirectional overrides could make a name read differently from what it is.
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The `(start, end)` character ranges to render as inline code: GUIDs (8-4-4-4-12 hex digits)
/// and runs of 7 to 40 hex digits, each bounded by characters that are not letters or digits.
fn hex_spans(chars: &[char]) -> Vec<(usize, usize)> {
    let word = |k: usize| chars.get(k).is_some_and(char::is_ascii_alphanumeric);
    let mut spans = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_alphanumeric() || (i > 0 && word(i - 1)) {
            i += 1;
            continue;
        }
        let guid = chars.len() >= i + 36
            && !word(i + 36)
            && chars[i..i + 36].iter().enumerate().all(|(k, c)| {
                if matches!(k, 8 | 13 | 18 | 23) {
                    *c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
        if guid {
            spans.push((i, i + 36));
            i += 36;
            continue;
        }
        let start = i;
        while word(i) {
            i += 1;
        }
        if (7..=40).contains(&(i - start)) && chars[start..i].iter().all(char::is_ascii_hexdigit) {
            spans.push((start, i));
        }
    }
    spans
}

/// Renders `text` as an inline code span when it is made only of characters that are safe there
/// (ids, GUIDs, simple names); otherwise falls back to [`escape`].
pub fn code(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':' | '/' | ' '))
        && !text.contains("//");
    if safe {
        format!("`{text}`")
    } else {
        escape(text)
    }
}

/// The short name of a vault from its URL: `https://kv-prod.vault.azure.net/` → `kv-prod`;
/// a URL whose host is an IP address (emulators) keeps `host:port`.
pub fn vault_name(vault_url: &str) -> String {
    match url::Url::parse(vault_url) {
        Ok(u) => match u.host() {
            Some(url::Host::Domain(d)) => d.split('.').next().unwrap_or(d).to_string(),
            Some(host) => match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_string(),
            },
            None => vault_url.to_string(),
        },
        Err(_) => vault_url.to_string(),
    }
}

/// What happened (or would happen) to one link: the one outcome vocabulary of rotor's outputs.
/// The CLI table ([`Status::word`], through `commands::output::status_word`), Markdown, the pull
/// request comment and the audit pull request ([`Status::label`]) all take it from
/// [`Status::of`] / [`Status::from_record`], which read the engine's `skip_reason` — never the
/// wording of a note or a `(status, dry_run)` guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Rotated in this run.
    Rotated,
    /// A dry run: this link is due and would rotate.
    WouldRotate,
    /// The rotation (or its check) failed.
    Failed,
    /// Another run's rotation of this lineage is in progress: left alone.
    InProgress,
    /// Another run rotated this lineage first: this run backed off.
    LostRace,
    /// Skipped for a reason the record does not give (older history files).
    Skipped,
    /// Excluded by policy.
    Excluded,
    /// Not due.
    UpToDate,
    /// A Terraform plan adds, changes or removes something without rotating.
    Changed,
    /// Matching found this pair (match reports).
    Matched,
}

impl Status {
    /// The outcome of an engine audit record.
    pub fn of(r: &rotor_engine::AuditRecord) -> Status {
        use rotor_engine::{RotationStatus, SkipReason};
        match (r.status, r.skip_reason) {
            (RotationStatus::Success, _) if r.dry_run => Status::WouldRotate,
            (RotationStatus::Success, _) => Status::Rotated,
            (RotationStatus::Failed, _) => Status::Failed,
            (RotationStatus::Excluded, _) => Status::Excluded,
            (RotationStatus::Skipped, Some(SkipReason::DryRun)) => Status::WouldRotate,
            (RotationStatus::Skipped, Some(SkipReason::NotDue)) => Status::UpToDate,
            (RotationStatus::Skipped, Some(SkipReason::InProgress)) => Status::InProgress,
            (RotationStatus::Skipped, Some(SkipReason::LostRace)) => Status::LostRace,
            (RotationStatus::Skipped, None) => Status::Skipped,
        }
    }

    /// The outcome of an audit record read as JSON: `status` (`success`, `failed`, `skipped`,
    /// `excluded`), `dry_run` and `skip_reason` (`not-due`, `in-progress`, `lost-race`,
    /// `dry-run`).
    pub fn from_record(status: &str, dry_run: bool, skip_reason: Option<&str>) -> Status {
        match (status, skip_reason) {
            ("success", _) if dry_run => Status::WouldRotate,
            ("success", _) => Status::Rotated,
            ("failed", _) => Status::Failed,
            ("excluded", _) => Status::Excluded,
            (_, Some("dry-run")) => Status::WouldRotate,
            (_, Some("not-due")) => Status::UpToDate,
            (_, Some("in-progress")) => Status::InProgress,
            (_, Some("lost-race")) => Status::LostRace,
            _ => Status::Skipped,
        }
    }

    /// The label shown in Markdown tables.
    pub fn label(self) -> &'static str {
        match self {
            Status::Rotated => "✅ rotated",
            Status::WouldRotate => "🔄 would rotate",
            Status::Failed => "❌ failed",
            Status::InProgress => "⏳ in progress",
            Status::LostRace => "↪️ rotated by another run",
            Status::Skipped => "⏭️ skipped",
            Status::Excluded => "🚫 excluded",
            Status::UpToDate => "✔️ up to date",
            Status::Changed => "✏️ changed",
            Status::Matched => "🔗 matched",
        }
    }

    /// The word used in summary lines and in the CLI's tables (`FAILED` there, in capitals).
    pub fn summary_word(self) -> &'static str {
        match self {
            Status::Rotated => "rotated",
            Status::WouldRotate => "would rotate",
            Status::Failed => "failed",
            Status::InProgress => "in progress",
            Status::LostRace => "rotated by another run",
            Status::Skipped => "skipped",
            Status::Excluded => "excluded",
            Status::UpToDate => "up to date",
            Status::Changed => "changed",
            Status::Matched => "matched",
        }
    }

    /// The word in the CLI's tables: [`Status::summary_word`], with `FAILED` in capitals.
    pub fn word(self) -> &'static str {
        match self {
            Status::Failed => "FAILED",
            other => other.summary_word(),
        }
    }
}

/// One line of the report table. Every string field is untrusted and escaped when rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Application display name.
    pub app: String,
    /// Application (client) id.
    pub app_id: String,
    /// Credential display name (the link's lineage), or key id when the name is unknown.
    pub credential: String,
    /// Targets as (vault URL or name, secret name).
    pub targets: Vec<(String, String)>,
    /// `HIGH`, `MEDIUM`, `LOW`, `NONE` or empty.
    pub confidence: String,
    /// What happened.
    pub status: Status,
    /// Why (due reason, skip reason, plan change), may be empty.
    pub detail: String,
    /// When the current credential expires, if known (orders rows of the same status).
    pub expires_at: Option<time::OffsetDateTime>,
}

impl Status {
    /// Rows are shown most urgent first: failed, would rotate, rotated, changed, in progress,
    /// rotated by another run, skipped, matched, excluded, up to date.
    pub fn urgency(self) -> u8 {
        match self {
            Status::Failed => 0,
            Status::WouldRotate => 1,
            Status::Rotated => 2,
            Status::Changed => 3,
            Status::InProgress => 4,
            Status::LostRace => 5,
            Status::Skipped => 6,
            Status::Matched => 7,
            Status::Excluded => 8,
            Status::UpToDate => 9,
        }
    }
}

/// Rows shown in the open table; the rest of a longer table is in a collapsed `<details>`.
pub const VISIBLE_ROWS: usize = 10;
/// Failures shown open; the rest are in a collapsed `<details>`.
pub const VISIBLE_FAILURES: usize = 10;

/// A failure with its error sentence and the hints that carry the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Application display name.
    pub app: String,
    /// Application (client) id.
    pub app_id: String,
    /// Credential display name or key id.
    pub credential: String,
    /// The error sentence.
    pub error: String,
    /// What to do about it.
    pub hints: Vec<String>,
}

/// A rendered-to-Markdown report: title, counts, a table of links and a list of failures.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Heading (trusted text, written by rotor).
    pub title: String,
    /// Lines under the heading (trusted text, written by rotor; may contain Markdown).
    pub intro: Vec<String>,
    /// The table.
    pub rows: Vec<Row>,
    /// Failures with error and hints.
    pub failures: Vec<Failure>,
    /// Link to the workflow run (the full report lives in its job summary).
    pub run_url: Option<String>,
    /// Hidden marker key; when set, the marker is the first line (sticky comments).
    pub marker_key: Option<String>,
    /// What to say when there are no rows (trusted text); default "Nothing to report".
    pub empty_note: Option<String>,
    /// The last line: which run, commit and time the report is of (sticky comments).
    pub footer: Option<Footer>,
}

/// The last line of a comment: `rotor 0.1.0 · run 4242 · commit abc1234 · 2026-12-01 21:30 UTC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// Link to the workflow run.
    pub run_url: Option<String>,
    /// The commit reported on (full SHA; shown as its first 7 characters).
    pub sha: Option<String>,
    /// When the report was made.
    pub time: time::OffsetDateTime,
}

impl Footer {
    /// A footer for now.
    pub fn now(run_url: Option<String>, sha: Option<String>) -> Footer {
        Footer {
            run_url,
            sha,
            time: time::OffsetDateTime::now_utc(),
        }
    }

    fn render(&self) -> String {
        let mut parts = vec![format!("rotor {}", env!("CARGO_PKG_VERSION"))];
        if let Some(u) = &self.run_url {
            let id = u.rsplit('/').next().unwrap_or("");
            parts.push(format!(
                "[run {}]({})",
                code(id),
                u.replace(['(', ')', ' '], "")
            ));
        }
        if let Some(sha) = &self.sha {
            let short: String = sha
                .chars()
                .filter(char::is_ascii_hexdigit)
                .take(7)
                .collect();
            if !short.is_empty() {
                parts.push(format!("commit `{short}`"));
            }
        }
        let t = self.time;
        parts.push(format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ));
        format!("\n<sub>{}</sub>\n", parts.join(" · "))
    }
}

impl Report {
    /// Counts rows per status, in [`Status`] order, skipping zero counts.
    pub fn counts(&self) -> Vec<(Status, usize)> {
        let mut counts = std::collections::BTreeMap::new();
        for r in &self.rows {
            *counts.entry(r.status).or_insert(0usize) += 1;
        }
        counts.into_iter().collect()
    }

    fn head(&self) -> String {
        let mut out = String::new();
        if let Some(key) = &self.marker_key {
            out.push_str(&marker(key));
            out.push('\n');
        }
        let _ = writeln!(out, "### {}\n", self.title);
        for line in &self.intro {
            let _ = writeln!(out, "{line}");
        }
        if !self.intro.is_empty() {
            out.push('\n');
        }
        let counts = self.counts();
        if counts.is_empty() {
            let note = self
                .empty_note
                .as_deref()
                .unwrap_or("Nothing to report: no links matched.");
            let _ = writeln!(out, "{note}\n");
        } else {
            let parts: Vec<String> = counts
                .iter()
                .map(|(s, n)| format!("**{n}** {}", s.summary_word()))
                .collect();
            let _ = writeln!(out, "{}\n", parts.join(" · "));
        }
        out
    }

    fn run_link(&self) -> String {
        match &self.run_url {
            Some(u) => format!("see the job summary: {u}"),
            None => "see the job summary of this run".to_string(),
        }
    }

    /// Renders the whole report, trimmed to at most `limit` bytes (so also characters) by dropping
    /// whole table rows, then whole failures, from the end. Each trimmed section ends with
    /// "N more rows — see the job summary: <run link>".
    pub fn render(&self, limit: usize) -> String {
        self.render_with_note(limit, &self.run_link())
    }

    /// The job summary: trimmed under GitHub's 1 MiB per step; what is left out is in the report
    /// file.
    pub fn render_summary(&self) -> String {
        self.render_with_note(
            SUMMARY_LIMIT - 1024,
            "the full report is in the file named by the step's `report-path` output (upload it as an artifact to keep it)",
        )
    }

    /// The rows, most urgent first ([`Status::urgency`], then the soonest expiry).
    pub fn rows_by_urgency(&self) -> Vec<&Row> {
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by_key(|r| {
            (
                r.status.urgency(),
                r.expires_at.is_none(),
                r.expires_at.map(time::OffsetDateTime::unix_timestamp),
            )
        });
        rows
    }

    /// [`Report::render`] with `note` after "N more rows — ". Rows come most urgent first; past
    /// [`VISIBLE_ROWS`] rows (and [`VISIBLE_FAILURES`] failures) the rest are in a collapsed
    /// `<details>` section.
    pub fn render_with_note(&self, limit: usize, note: &str) -> String {
        let head = self.head();
        let footer = self.footer.as_ref().map(Footer::render).unwrap_or_default();
        let table_head = "| App | Credential | Vaults | Confidence | Status | Why |\n|---|---|---|---|---|---|\n";
        let rows: Vec<String> = self.rows_by_urgency().into_iter().map(render_row).collect();
        let failures: Vec<String> = self.failures.iter().map(render_failure).collect();
        let failures_head = "\n#### Failures\n\n";
        let details =
            |n: usize, what: &str| format!("\n<details><summary>{n} more {what}</summary>\n\n");
        let details_end = "\n</details>\n";
        // What the <details> wrappers cost at most.
        let wrappers =
            2 * (details(usize::MAX, "failures").len() + details_end.len()) + table_head.len();

        let full_len = head.len()
            + footer.len()
            + wrappers
            + if rows.is_empty() { 0 } else { table_head.len() }
            + rows.iter().map(String::len).sum::<usize>()
            + if failures.is_empty() {
                0
            } else {
                failures_head.len()
            }
            + failures.iter().map(String::len).sum::<usize>();

        let (keep_rows, keep_failures) = if full_len <= limit {
            (rows.len(), failures.len())
        } else {
            // Reserve room for the two "N more rows" lines (bounded, < 200 bytes each).
            let reserve = 2 * (120 + note.len()) + wrappers + footer.len();
            let mut budget = limit
                .saturating_sub(head.len() + table_head.len() + failures_head.len())
                .saturating_sub(reserve);
            let mut keep_failures = 0;
            for f in &failures {
                if f.len() > budget {
                    break;
                }
                budget -= f.len();
                keep_failures += 1;
            }
            let mut keep_rows = 0;
            for r in &rows {
                if r.len() > budget {
                    break;
                }
                budget -= r.len();
                keep_rows += 1;
            }
            (keep_rows, keep_failures)
        };

        let mut out = head;
        if !rows.is_empty() {
            out.push_str(table_head);
            let open = keep_rows.min(VISIBLE_ROWS);
            for r in &rows[..open] {
                out.push_str(r);
            }
            if keep_rows > open {
                out.push_str(&details(rows.len() - open, "links"));
                out.push_str(table_head);
                for r in &rows[open..keep_rows] {
                    out.push_str(r);
                }
            }
            let dropped = rows.len() - keep_rows;
            if dropped > 0 {
                let _ = writeln!(out, "\n_{dropped} more rows — {note}_");
            }
            if keep_rows > open {
                out.push_str(details_end);
            }
        }
        if !failures.is_empty() {
            out.push_str(failures_head);
            let open = keep_failures.min(VISIBLE_FAILURES);
            for f in &failures[..open] {
                out.push_str(f);
            }
            if keep_failures > open {
                out.push_str(&details(failures.len() - open, "failures"));
                for f in &failures[open..keep_failures] {
                    out.push_str(f);
                }
            }
            let dropped = failures.len() - keep_failures;
            if dropped > 0 {
                let _ = writeln!(out, "\n_{dropped} more rows — {note}_");
            }
            if keep_failures > open {
                out.push_str(details_end);
            }
        }
        out.push_str(&footer);
        out
    }
}

fn render_row(r: &Row) -> String {
    let app = if r.app_id.is_empty() {
        escape(&r.app)
    } else if r.app.is_empty() {
        code(&r.app_id)
    } else {
        format!("{}<br><sub>{}</sub>", escape(&r.app), code(&r.app_id))
    };
    let vaults = if r.targets.is_empty() {
        "—".to_string()
    } else {
        let mut targets: Vec<&(String, String)> = r.targets.iter().collect();
        targets.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        targets
            .into_iter()
            .map(|(vault, secret)| format!("{} in {}", escape(secret), escape(&vault_name(vault))))
            .collect::<Vec<_>>()
            .join("<br>")
    };
    let confidence = if r.confidence.is_empty() {
        "—".to_string()
    } else {
        escape(&r.confidence)
    };
    let detail = if r.detail.is_empty() {
        String::new()
    } else {
        escape(&r.detail)
    };
    format!(
        "| {app} | {} | {vaults} | {confidence} | {} | {detail} |\n",
        escape(&r.credential),
        r.status.label()
    )
}

fn render_failure(f: &Failure) -> String {
    let mut out = String::new();
    let who = if f.app.is_empty() {
        code(&f.app_id)
    } else {
        format!("**{}** ({})", escape(&f.app), code(&f.app_id))
    };
    let credential = if f.credential.is_empty() {
        String::new()
    } else {
        format!(", credential {}", escape(&f.credential))
    };
    let _ = writeln!(out, "- {who}{credential}: {}", escape(&f.error));
    for h in &f.hints {
        let _ = writeln!(out, "  - hint: {}", escape(h));
    }
    out
}

/// Markdown of audit records (`rotor rotate`/`cleanup`/`history --output markdown`): one row per
/// record, failures with error and hints, untrimmed.
pub fn audit_records(title: &str, records: &[rotor_engine::AuditRecord]) -> String {
    let recs: Vec<super::records::Record> = records
        .iter()
        .map(super::records::Record::from_engine)
        .collect();
    super::records::report_of_records(title, &recs, false).render(usize::MAX)
}

/// Markdown of a match report (`rotor match --output markdown`).
pub fn match_report(report: &rotor_engine::MatchReport) -> String {
    match serde_json::to_value(report) {
        Ok(v) => super::report::match_report(&v).render(usize::MAX),
        Err(e) => format!(
            "rotor: could not render the match report: {}\n",
            escape(&e.to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVIL: &str = "<img src=x onerror=alert(1)> @org/team #1 | <!--";

    fn row(app: &str, status: Status) -> Row {
        Row {
            app: app.to_string(),
            app_id: "11111111-2222-3333-4444-555555555555".into(),
            credential: "Secret 1".into(),
            targets: vec![(
                "https://kv-prod.vault.azure.net/".into(),
                format!("{app}-client-secret"),
            )],
            confidence: "HIGH".into(),
            status,
            detail: "expires in 12 days (policy: rotate 30 days before expiry)".into(),
            expires_at: None,
        }
    }

    #[test]
    fn escape_neutralises_html_mentions_references_pipes_and_comments() {
        let e = escape(EVIL);
        assert!(!e.contains('<'), "{e}");
        assert!(!e.contains('>'), "{e}");
        assert!(!e.contains("<!--"), "{e}");
        assert!(!e.contains("@org"), "mention must be broken: {e}");
        assert!(!e.contains("#1"), "issue reference must be broken: {e}");
        assert!(!e.contains(" | "), "pipe must be escaped: {e}");
        assert!(e.contains("\\|"));
        assert!(e.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }

    #[test]
    fn escape_strips_newlines_and_markdown() {
        let e = escape("a\nb\r\n# heading\n`code` [x](https://evil) **b** ~~s~~ \\");
        assert!(!e.contains('\n') && !e.contains('\r'));
        assert!(e.contains("\\`code\\`"));
        assert!(e.contains("\\[x\\]"));
        assert!(!e.contains("https://"), "autolink must be broken: {e}");
        assert!(e.contains("\\*\\*b\\*\\*"));
        assert!(e.contains("\\~\\~s\\~\\~"));
        assert!(e.ends_with("\\\\"));
    }

    #[test]
    fn escape_keeps_plain_names_and_emails_readable() {
        assert_eq!(escape("My App (prod) 2024"), "My App (prod) 2024");
        assert_eq!(escape("issue # 5"), "issue # 5");
        assert_eq!(escape("a @ b"), "a @ b");
    }

    #[test]
    fn escape_breaks_every_autolink_github_renders() {
        let cases = [
            ("see www.evil.example", "www\u{200B}.evil"),
            ("WWW.EVIL.EXAMPLE", "WWW\u{200B}.EVIL"),
            ("https://evil.example/x", "https:\u{200B}//evil"),
            ("ftp://evil.example", "ftp:\u{200B}//"),
            ("mallory@evil.example", "mallory@\u{200B}evil"),
            ("mailto:mallory@evil.example", "@\u{200B}evil"),
            ("@octo-org/team", "@\u{200B}octo-org"),
            ("fixes GH-4242", "GH-\u{200B}4242"),
            ("gh-1", "gh-\u{200B}1"),
            ("octo/repo#77", "octo/repo#\u{200B}77"),
            ("octo/repo@deadbeef", "octo/repo@\u{200B}`deadbeef`"),
            (
                "commit deadbeefcafe1234 here",
                "commit `deadbeefcafe1234` here",
            ),
            (
                "key c0000003-0000-4000-8000-000000000301.",
                "key `c0000003-0000-4000-8000-000000000301`.",
            ),
        ];
        for (input, expected) in cases {
            let e = escape(input);
            assert!(e.contains(expected), "{input:?} → {e:?}");
        }
        // Not SHAs: too short, too long, not hex, or inside a word.
        for plain in ["abc1234x", "cafe12", "release-2024", "x deadbeefz y"] {
            assert!(!escape(plain).contains('`'), "{plain}: {}", escape(plain));
        }
    }

    #[test]
    fn one_vocabulary_for_the_cli_table_markdown_and_json_records() {
        let rec = |status: &str, dry_run: bool, reason: Option<&str>| {
            let v = serde_json::json!({
                "rotation_id": "r1", "started_at": "2026-01-01T00:00:00Z",
                "finished_at": "2026-01-01T00:00:01Z", "actor": "test", "app_id": "a1",
                "app_name": "orders", "old_key_id": "k1", "new_key_id": null,
                "new_expires_at": null, "confidence": "HIGH", "targets": [], "status": status,
                "error": null, "notes": [], "hints": [], "dry_run": dry_run,
                "removed_key_ids": [], "skip_reason": reason,
            });
            serde_json::from_value::<rotor_engine::AuditRecord>(v).expect("audit record")
        };
        for (status, dry_run, reason, word) in [
            ("skipped", true, Some("dry-run"), "would rotate"),
            ("success", true, None, "would rotate"),
            ("skipped", false, Some("not-due"), "up to date"),
            ("skipped", true, Some("not-due"), "up to date"),
            ("skipped", false, Some("in-progress"), "in progress"),
            (
                "skipped",
                false,
                Some("lost-race"),
                "rotated by another run",
            ),
            ("skipped", false, None, "skipped"),
            ("success", false, None, "rotated"),
            ("failed", false, None, "failed"),
            ("excluded", false, None, "excluded"),
        ] {
            let r = rec(status, dry_run, reason);
            let outcome = Status::of(&r);
            // The CLI table …
            assert_eq!(
                crate::commands::output::status_word(&r).to_lowercase(),
                word,
                "{status} {dry_run} {reason:?}"
            );
            // … the JSON records of `rotor report`, the comment and the audit pull request …
            let from_json = super::super::records::Record::from_engine(&r).to_row(false);
            assert_eq!(from_json.status, outcome, "{status} {dry_run} {reason:?}");
            // … and `--output markdown` say the same.
            let md = audit_records("rotor", std::slice::from_ref(&r));
            assert!(md.contains(outcome.label()), "{md}");
            assert!(outcome.label().ends_with(word), "{}", outcome.label());
        }
    }

    #[test]
    fn code_only_wraps_safe_text() {
        assert_eq!(code("1a2b-3c"), "`1a2b-3c`");
        assert_eq!(code("a`b"), "a\\`b");
        assert_eq!(code("<x>"), "&lt;x&gt;");
    }

    #[test]
    fn marker_cannot_be_closed_by_its_key() {
        assert_eq!(marker("pr --> <b>"), "<!-- rotor-report: pr-b -->");
    }

    #[test]
    fn vault_names() {
        assert_eq!(vault_name("https://kv-prod.vault.azure.net/"), "kv-prod");
        assert_eq!(vault_name("https://127.0.0.1:8443/"), "127.0.0.1:8443");
        assert_eq!(vault_name("not a url"), "not a url");
    }

    #[test]
    fn malicious_app_name_renders_inert_in_a_report() {
        let report = Report {
            title: "rotor: dry run".into(),
            rows: vec![row(EVIL, Status::WouldRotate)],
            failures: vec![Failure {
                app: EVIL.into(),
                app_id: EVIL.into(),
                credential: EVIL.into(),
                error: format!("rotating Key Vault secret `{EVIL}`: 403 Forbidden"),
                hints: vec![EVIL.into()],
            }],
            marker_key: Some("pull-request".into()),
            ..Report::default()
        };
        let md = report.render(COMMENT_LIMIT);
        assert_eq!(md.matches("<!--").count(), 1, "only our marker: {md}");
        assert!(md.starts_with("<!-- rotor-report: pull-request -->\n"));
        assert!(!md.contains("<img"));
        assert!(!md.contains("@org"));
        assert!(!md.contains("#1"));
        // The table row still has exactly 6 cells: no pipe escaped the cell.
        let table_row = md
            .lines()
            .find(|l| l.starts_with("| &lt;img"))
            .expect("the row is there");
        let unescaped_pipes = table_row
            .char_indices()
            .filter(|(i, c)| *c == '|' && (*i == 0 || table_row.as_bytes()[i - 1] != b'\\'))
            .count();
        assert_eq!(unescaped_pipes, 7, "{table_row}");
    }

    #[test]
    fn report_for_2000_apps_stays_under_the_comment_limit() {
        let rows: Vec<Row> = (0..2000)
            .map(|i| {
                row(
                    &format!("application-number-{i:04}-with-a-long-name"),
                    Status::WouldRotate,
                )
            })
            .collect();
        let failures: Vec<Failure> = (0..100)
            .map(|i| Failure {
                app: format!("failing-app-{i}"),
                app_id: format!("{i:08}-0000-0000-0000-000000000000"),
                credential: "Secret 1".into(),
                error: "rotating Key Vault secret `x` (vault `kv-prod`): 403 Forbidden".into(),
                hints: vec![
                    "grant the principal the `Key Vault Secrets Officer` role on vault `kv-prod`"
                        .into(),
                ],
            })
            .collect();
        let report = Report {
            title: "rotor: dry run".into(),
            rows,
            failures,
            run_url: Some("https://github.com/o/r/actions/runs/42".into()),
            marker_key: Some("pr".into()),
            ..Report::default()
        };
        let md = report.render(COMMENT_LIMIT);
        assert!(md.chars().count() < COMMENT_LIMIT, "{}", md.len());
        assert!(
            md.len() > COMMENT_LIMIT - 2_000,
            "uses the room it has: {}",
            md.len()
        );
        assert!(
            md.contains("**2000** would rotate"),
            "counts cover every row"
        );
        assert!(
            md.contains("more rows — see the job summary: https://github.com/o/r/actions/runs/42")
        );
        // Failures are kept before table rows.
        assert_eq!(md.matches("\n- **failing-app-").count(), 100);
        // Whole rows only: every table line is complete.
        for line in md.lines().filter(|l| l.starts_with("| application")) {
            assert!(line.ends_with(" |"), "{line}");
        }
        // The untrimmed rendering (job summary) holds everything.
        let full = report.render(usize::MAX);
        assert_eq!(
            full.lines()
                .filter(|l| l.starts_with("| application-number-"))
                .count(),
            2000
        );
        assert!(!full.contains("more rows"));
        // A summary over 1 MiB is trimmed too, pointing at the report file.
        let many = Report {
            rows: (0..12_000)
                .map(|i| {
                    row(
                        &format!("application-number-{i:05}-with-a-long-name"),
                        Status::Rotated,
                    )
                })
                .collect(),
            ..report.clone()
        };
        let summary = many.render_summary();
        assert!(summary.len() < SUMMARY_LIMIT, "{}", summary.len());
        assert!(summary.contains(
            "more rows — the full report is in the file named by the step's `report-path` output"
        ));
    }

    #[test]
    fn pull_request_comment_snapshot() {
        let report = Report {
            title: "rotor: dry run (pull request) — nothing was changed".into(),
            rows: vec![
                row("billing-api", Status::WouldRotate),
                row(EVIL, Status::Failed),
                Row {
                    confidence: String::new(),
                    targets: vec![],
                    detail: String::new(),
                    ..row("reporting", Status::UpToDate)
                },
            ],
            failures: vec![Failure {
                app: EVIL.into(),
                app_id: "11111111-2222-3333-4444-555555555555".into(),
                credential: "Secret 1".into(),
                error: "writing Key Vault secret `x` (vault `kv-prod`): 403 Forbidden".into(),
                hints: vec!["grant `Key Vault Secrets Officer` on vault `kv-prod`".into()],
            }],
            marker_key: Some("action".into()),
            ..Report::default()
        };
        insta::assert_snapshot!(report.render(COMMENT_LIMIT));
    }

    #[test]
    fn empty_report_says_so() {
        let md = Report {
            title: "rotor".into(),
            ..Report::default()
        }
        .render(COMMENT_LIMIT);
        assert!(md.contains("Nothing to report"));
    }
}
