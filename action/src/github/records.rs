//! Audit records as JSON (PRODUCT.md "Audit record"), read leniently from `rotor rotate`/`history`
//! output, history files or the engine, and turned into report rows.
//!
//! Reading the JSON shape rather than the engine's struct keeps reports of older history files
//! working when the engine adds fields.

use serde::{Deserialize, Serialize};

use super::markdown::{Failure, Report, Row, Status};
use crate::commands::output::short;

/// One audit record. Unknown fields are ignored; missing ones default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    /// `certificate` for a certificate lineage; absent (secret) in secret records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub rotation_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub actor: String,
    pub app_id: String,
    pub app_name: String,
    pub old_key_id: Option<String>,
    pub new_key_id: Option<String>,
    pub new_expires_at: Option<String>,
    pub confidence: Option<String>,
    pub targets: Vec<RecordTarget>,
    pub status: String,
    pub error: Option<String>,
    /// Not in every record: hints that carry the fix for `error`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    /// Not in every record: the credential lineage's display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_display_name: Option<String>,
    /// Not in every record: whether this was a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// Why a `skipped` attempt changed nothing (`not-due`, `in-progress`, `lost-race`, `dry-run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    /// Certificates: SHA-1 thumbprint (hex) of the key credential before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_thumbprint: Option<String>,
    /// Certificates: SHA-1 thumbprint (hex) of the new (or adopted) key credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_thumbprint: Option<String>,
    /// Fields this version does not know (`notes`, `removed_key_ids`, …), kept so a record
    /// read and written again (audit pull requests) loses nothing.
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

/// One target of an audit record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordTarget {
    pub vault_url: String,
    pub secret_name: String,
    pub version: Option<String>,
    pub status: Option<String>,
    pub error: Option<String>,
}

/// Reads audit records from any of the shapes rotor writes: `{"rotations": [...]}` (rotate,
/// cleanup), `{"records": [...]}` (history), a JSON array, a single record, or JSON Lines.
pub fn parse_records(text: &str) -> anyhow::Result<Vec<Record>> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(trimmed) {
        return records_from_value(value);
    }
    let mut out = Vec::new();
    for (i, line) in trimmed.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let rec: Record = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("reading audit record on line {}: {e}", i + 1))?;
        out.push(rec);
    }
    Ok(out)
}

fn records_from_value(value: serde_json::Value) -> anyhow::Result<Vec<Record>> {
    let list = match value {
        serde_json::Value::Object(mut map) => {
            if let Some(v) = map.remove("rotations").or_else(|| map.remove("records")) {
                v
            } else {
                serde_json::Value::Array(vec![serde_json::Value::Object(map)])
            }
        }
        v @ serde_json::Value::Array(_) => v,
        other => anyhow::bail!("reading audit records: expected an object or array, got `{other}`"),
    };
    serde_json::from_value(list).map_err(|e| anyhow::anyhow!("reading audit records: {e}"))
}

impl Record {
    /// The JSON view of an engine record (same fields, as the history file has them).
    pub fn from_engine(r: &rotor_engine::AuditRecord) -> Record {
        serde_json::to_value(r)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }

    /// The table row for this record.
    pub fn to_row(&self, dry_run: bool) -> Row {
        let status = Status::from_record(
            &self.status,
            dry_run || self.dry_run == Some(true),
            self.skip_reason.as_deref(),
        );
        let detail = match status {
            Status::Rotated => {
                let key = match (&self.new_key_id, &self.new_expires_at) {
                    (Some(k), Some(e)) => format!("new key {} valid until {e}", short(k)),
                    (Some(k), None) => format!("new key {}", short(k)),
                    _ => String::new(),
                };
                match (&self.new_thumbprint, key.is_empty()) {
                    (Some(t), true) => format!("new certificate {}", thumb(t)),
                    (Some(t), false) => format!("new certificate {}, {key}", thumb(t)),
                    (None, _) => key,
                }
            }
            _ => self.error.clone().unwrap_or_default(),
        };
        Row {
            app: self.app_name.clone(),
            app_id: self.app_id.clone(),
            credential: self.credential(),
            targets: self
                .targets
                .iter()
                .map(|t| (t.vault_url.clone(), t.secret_name.clone()))
                .collect(),
            confidence: self.confidence.clone().unwrap_or_default(),
            status,
            detail,
            expires_at: None,
        }
    }

    /// The failure entry for a failed record.
    pub fn to_failure(&self) -> Option<Failure> {
        if self.status != "failed" {
            return None;
        }
        let mut error = self.error.clone().unwrap_or_default();
        for t in &self.targets {
            if let Some(e) = &t.error
                && !error.contains(e.as_str())
            {
                if !error.is_empty() {
                    error.push_str("; ");
                }
                error.push_str(e);
            }
        }
        if error.is_empty() {
            error = "failed without an error message".into();
        }
        Some(Failure {
            app: self.app_name.clone(),
            app_id: self.app_id.clone(),
            credential: self.credential(),
            error,
            hints: self.hints.clone(),
        })
    }

    /// True for a certificate lineage's record (`kind: "certificate"`).
    pub fn is_certificate(&self) -> bool {
        self.kind.as_deref() == Some("certificate")
    }

    fn credential(&self) -> String {
        let name = if let Some(n) = &self.credential_display_name {
            n.clone()
        } else {
            match &self.old_key_id {
                Some(k) => format!("key {}", short(k)),
                None => String::new(),
            }
        };
        if !self.is_certificate() {
            return name;
        }
        // The kind and the thumbprint the lineage holds now (else the one it held).
        let kind = match self
            .new_thumbprint
            .as_ref()
            .or(self.old_thumbprint.as_ref())
        {
            Some(t) => format!("(certificate {})", thumb(t)),
            None => "(certificate)".to_owned(),
        };
        if name.is_empty() {
            kind
        } else {
            format!("{name} {kind}")
        }
    }
}

/// A thumbprint as reports show it: its first 8 hex digits (upper case), enough to find it in
/// the portal's "Certificates & secrets" list.
pub fn thumb(t: &str) -> String {
    t.get(..8).unwrap_or(t).to_ascii_uppercase()
}

/// A report of audit records: one row each, failures listed with error and hints.
pub fn report_of_records(title: &str, records: &[Record], dry_run: bool) -> Report {
    Report {
        title: title.to_string(),
        rows: records.iter().map(|r| r.to_row(dry_run)).collect(),
        failures: records.iter().filter_map(Record::to_failure).collect(),
        ..Report::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REC: &str = r#"{"rotation_id":"r1","started_at":"2026-01-01T00:00:00Z","finished_at":"2026-01-01T00:00:05Z",
      "actor":"github:o/r/1","app_id":"a1","app_name":"MyApp","old_key_id":"aaaaaaaa-1","new_key_id":"bbbbbbbb-2",
      "new_expires_at":"2027-01-01T00:00:00Z","confidence":"HIGH",
      "targets":[{"vault_url":"https://kv-prod.vault.azure.net/","secret_name":"myapp","version":"v2","status":"updated","error":null}],
      "status":"success","error":null}"#;

    #[test]
    fn parses_every_shape() {
        let one = parse_records(REC).expect("single");
        assert_eq!(one.len(), 1);
        let wrapped =
            parse_records(&format!("{{\"rotations\":[{REC},{REC}]}}")).expect("rotations");
        assert_eq!(wrapped.len(), 2);
        let history = parse_records(&format!("{{\"records\":[{REC}]}}")).expect("records");
        assert_eq!(history[0].app_name, "MyApp");
        let lines = parse_records(&format!(
            "{}\n{}\n",
            REC.replace('\n', ""),
            REC.replace('\n', "")
        ))
        .expect("lines");
        assert_eq!(lines.len(), 2);
        assert!(parse_records("{\"rotations\": 3}").is_err());
    }

    #[test]
    fn rows_and_failures() {
        let mut r = parse_records(REC).expect("ok").remove(0);
        let row = r.to_row(false);
        assert_eq!(row.status, Status::Rotated);
        assert!(row.detail.contains("bbbbbbbb"));
        assert!(r.to_failure().is_none());
        r.status = "failed".into();
        r.error = Some("rotating X: 403".into());
        r.targets[0].error = Some("writing Y: 403".into());
        let f = r.to_failure().expect("failed");
        assert_eq!(f.error, "rotating X: 403; writing Y: 403");
        assert_eq!(r.to_row(true).status, Status::Failed);
    }

    #[test]
    fn certificate_rows_name_the_kind_and_the_thumbprint() {
        let text = REC
            .replace("{\"rotation_id\"", "{\"kind\":\"certificate\",\"rotation_id\"")
            .replace(
                "\"status\":\"success\"",
                "\"status\":\"success\",\"old_thumbprint\":\"84b5c62eba51f602f765893df14c83ec84136ba7\",\"new_thumbprint\":\"3D42C9BF00112233445566778899AABBCCDDEEFF\"",
            );
        let r = parse_records(&text).expect("ok").remove(0);
        assert!(r.is_certificate());
        let row = r.to_row(false);
        assert_eq!(row.credential, "key aaaaaaaa (certificate 3D42C9BF)");
        assert!(
            row.detail
                .starts_with("new certificate 3D42C9BF, new key bbbbbbbb"),
            "{}",
            row.detail
        );
        // a secret record keeps its format: no kind, no thumbprints
        let secret = parse_records(REC).expect("ok").remove(0);
        assert!(!secret.is_certificate());
        let v = serde_json::to_value(&secret).expect("json");
        assert!(
            v.get("kind").is_none() && v.get("new_thumbprint").is_none(),
            "{v}"
        );
        assert_eq!(secret.to_row(false).credential, "key aaaaaaaa");
        // written again, the certificate record keeps kind and thumbprints
        let again = serde_json::to_value(&r).expect("json");
        assert_eq!(again["kind"], "certificate");
        assert_eq!(
            again["old_thumbprint"],
            "84b5c62eba51f602f765893df14c83ec84136ba7"
        );
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let text = REC.replace(
            "\"status\":\"success\"",
            "\"status\":\"success\",\"notes\":[\"n\"],\"removed_key_ids\":[\"k\"]",
        );
        let r = parse_records(&text).expect("ok").remove(0);
        let again = serde_json::to_value(&r).expect("json");
        assert_eq!(again["notes"][0], "n");
        assert_eq!(again["removed_key_ids"][0], "k");
        assert_eq!(again["app_name"], "MyApp");
    }
}
