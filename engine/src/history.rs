//! The history file: one [`AuditRecord`] per line (JSON Lines).

use crate::error::{Error, Result};
use crate::model::{AuditRecord, RotationStatus};
use std::io::Write;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Filters for [`History::query`]; `None` fields match everything.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Records that started at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Records that started at or before this instant.
    pub until: Option<OffsetDateTime>,
    /// App display name or appId; a glob (`billing-*`) or an exact, case-insensitive name.
    pub app: Option<String>,
    /// Status.
    pub status: Option<RotationStatus>,
}

/// An append-only JSON Lines audit log.
#[derive(Debug, Clone)]
pub struct History {
    path: PathBuf,
}

impl History {
    /// Opens (does not create) the history at `path`; the file is created on first append.
    /// `Err` when the parent directory does not exist.
    pub fn open(path: impl AsRef<Path>) -> Result<History> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
            && !parent.exists()
        {
            return Err(Error::config(
                format!("opening history file `{}`", path.display()),
                format!("directory `{}` does not exist", parent.display()),
            ));
        }
        Ok(History { path })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Proves the file can be appended to (opens it for append, creating it, writes nothing).
    /// Rotations call this before changing anything, so an audit record is never lost to a
    /// read-only or missing location.
    pub fn ensure_writable(&self) -> Result<()> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map(drop)
            .map_err(|e| {
                self.io_error("opening for append", e).with_hint(
                    "nothing was changed; make the history file writable or pass --history-file PATH",
                )
            })
    }

    /// Appends one record as one line (a single `write` on an `O_APPEND` file).
    pub fn append(&self, record: &AuditRecord) -> Result<()> {
        let mut line = serde_json::to_string(record)
            .map_err(|e| Error::other("serialising audit record", e.to_string()))?;
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.io_error("appending to", e))?;
        f.write_all(line.as_bytes())
            .map_err(|e| self.io_error("appending to", e))
    }

    /// Every record, oldest first. A missing file is an empty history; a bad line is an error
    /// naming the line number.
    pub fn read_all(&self) -> Result<Vec<AuditRecord>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io_error("reading", e)),
        };
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let r: AuditRecord = serde_json::from_str(line).map_err(|e| {
                Error::config(
                    format!(
                        "reading history file `{}` line {}",
                        self.path.display(),
                        i + 1
                    ),
                    e.to_string(),
                )
            })?;
            out.push(r);
        }
        Ok(out)
    }

    /// Records matching `filter`, oldest first.
    pub fn query(&self, filter: &HistoryFilter) -> Result<Vec<AuditRecord>> {
        let app = match filter.app.as_deref() {
            Some(p) => Some(
                globset::GlobBuilder::new(p)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| Error::usage(format!("reading app filter `{p}`"), e.to_string()))?
                    .compile_matcher(),
            ),
            None => None,
        };
        Ok(self
            .read_all()?
            .into_iter()
            .filter(|r| filter.since.is_none_or(|s| r.started_at >= s))
            .filter(|r| filter.until.is_none_or(|u| r.started_at <= u))
            .filter(|r| filter.status.is_none_or(|s| r.status == s))
            .filter(|r| {
                app.as_ref()
                    .is_none_or(|m| m.is_match(&r.app_name) || m.is_match(&r.app_id))
            })
            .collect())
    }

    fn io_error(&self, verb: &str, e: std::io::Error) -> Error {
        Error::other(
            format!("{verb} history file `{}`", self.path.display()),
            e.to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Confidence;

    fn rec(app: &str, status: RotationStatus, day: i64) -> AuditRecord {
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000 + day);
        AuditRecord {
            kind: Default::default(),
            rotation_id: format!("r{day}"),
            started_at: t,
            finished_at: t,
            actor: "user:test".into(),
            app_id: format!("id-{app}"),
            app_name: app.into(),
            old_key_id: None,
            new_key_id: None,
            new_expires_at: None,
            confidence: Confidence::High,
            targets: vec![],
            status,
            error: None,
            notes: vec![],
            hints: vec![],
            dry_run: false,
            removed_key_ids: vec![],
            old_thumbprint: None,
            new_thumbprint: None,
            skip_reason: None,
            error_subject: None,
        }
    }

    #[test]
    fn append_and_query() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = History::open(dir.path().join("h.jsonl")).expect("open");
        assert!(h.read_all().expect("empty").is_empty());
        h.append(&rec("MyApp", RotationStatus::Success, 1))
            .expect("append");
        h.append(&rec("billing-api", RotationStatus::Failed, 2))
            .expect("append");
        h.append(&rec("MyApp", RotationStatus::Failed, 3))
            .expect("append");
        let day = |d: i64| OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000 + d);
        let q = |f: HistoryFilter| {
            h.query(&f)
                .expect("query")
                .iter()
                .map(|r| r.rotation_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(q(HistoryFilter::default()), ["r1", "r2", "r3"]);
        assert_eq!(
            q(HistoryFilter {
                app: Some("myapp".into()),
                ..Default::default()
            }),
            ["r1", "r3"]
        );
        assert_eq!(
            q(HistoryFilter {
                app: Some("billing-*".into()),
                ..Default::default()
            }),
            ["r2"]
        );
        assert_eq!(
            q(HistoryFilter {
                status: Some(RotationStatus::Failed),
                ..Default::default()
            }),
            ["r2", "r3"]
        );
        assert_eq!(
            q(HistoryFilter {
                since: Some(day(2)),
                until: Some(day(2)),
                ..Default::default()
            }),
            ["r2"]
        );
        std::fs::write(dir.path().join("bad.jsonl"), "{}\n").expect("write");
        let bad = History::open(dir.path().join("bad.jsonl")).expect("open");
        assert!(
            bad.read_all()
                .expect_err("bad line")
                .to_string()
                .contains("line 1")
        );
        assert!(History::open(dir.path().join("missing/h.jsonl")).is_err());
    }
}
