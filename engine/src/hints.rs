//! The hint cache: the first 3 characters of a secret version's value, keyed by
//! (vault, secret, version), so an unchanged version is never read twice. Stores ONLY the hint.

use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Thread-safe hint cache, optionally persisted as JSON:
/// `{"hints": {"<vault_url>|<secret>|<version>": "abc"}, "current": {"<vault_url>|<secret>":
/// {"version": "…", "fingerprint": "…"}}}`. `current` remembers which version a listed secret's
/// metadata fingerprint (updated time, expiry, content type, tags) belonged to, so a second run
/// needs neither the value nor a per-secret request for an unchanged secret.
#[derive(Debug, Clone, Default)]
pub struct HintCache {
    path: Option<PathBuf>,
    entries: Arc<Mutex<BTreeMap<String, String>>>,
    current: Arc<Mutex<BTreeMap<String, CurrentVersion>>>,
    dirty: Arc<Mutex<bool>>,
}

/// The version a secret's listing fingerprint belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CurrentVersion {
    /// Version id.
    pub version: String,
    /// Metadata fingerprint (no value involved).
    pub fingerprint: String,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct FileFormat {
    #[serde(default)]
    hints: BTreeMap<String, String>,
    #[serde(default)]
    current: BTreeMap<String, CurrentVersion>,
}

fn key(vault_url: &str, secret: &str, version: &str) -> String {
    format!("{}|{}|{}", vault_url.trim_end_matches('/'), secret, version)
}

impl HintCache {
    /// An in-memory cache (nothing persisted).
    pub fn in_memory() -> HintCache {
        HintCache::default()
    }

    /// Loads the cache at `path` (a missing file is an empty cache); `save` writes it back.
    /// `Err` when the file exists but is not a hint cache.
    pub fn open(path: impl AsRef<Path>) -> Result<HintCache> {
        let path = path.as_ref().to_path_buf();
        let file = match std::fs::read_to_string(&path) {
            Ok(t) if t.trim().is_empty() => FileFormat::default(),
            Ok(t) => serde_json::from_str::<FileFormat>(&t).map_err(|e| {
                Error::config(
                    format!("reading hint cache `{}`", path.display()),
                    e.to_string(),
                )
                .with_hint("delete the file; it is only a cache")
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileFormat::default(),
            Err(e) => {
                return Err(Error::other(
                    format!("reading hint cache `{}`", path.display()),
                    e.to_string(),
                ));
            }
        };
        let hints = file
            .hints
            .into_iter()
            .map(|(k, v)| (k, v.chars().take(3).collect()))
            .collect();
        Ok(HintCache {
            path: Some(path),
            entries: Arc::new(Mutex::new(hints)),
            current: Arc::new(Mutex::new(file.current)),
            dirty: Arc::new(Mutex::new(false)),
        })
    }

    /// The cached hint of a version, if known.
    pub fn get(&self, vault_url: &str, secret: &str, version: &str) -> Option<String> {
        self.entries
            .lock()
            .get(&key(vault_url, secret, version))
            .cloned()
    }

    /// Records a hint; anything beyond 3 characters is cut off (so a value can never be stored).
    pub fn put(&self, vault_url: &str, secret: &str, version: &str, hint: &str) {
        let hint: String = hint.chars().take(3).collect();
        let mut e = self.entries.lock();
        if e.insert(key(vault_url, secret, version), hint.clone())
            .as_ref()
            != Some(&hint)
        {
            *self.dirty.lock() = true;
        }
    }

    /// The version last seen for a secret whose listing had `fingerprint`, if it is unchanged.
    pub fn current_version(
        &self,
        vault_url: &str,
        secret: &str,
        fingerprint: &str,
    ) -> Option<String> {
        let k = format!("{}|{}", vault_url.trim_end_matches('/'), secret);
        self.current
            .lock()
            .get(&k)
            .filter(|c| c.fingerprint == fingerprint)
            .map(|c| c.version.clone())
    }

    /// Records which version a secret's listing fingerprint belongs to.
    pub fn set_current(&self, vault_url: &str, secret: &str, fingerprint: &str, version: &str) {
        let k = format!("{}|{}", vault_url.trim_end_matches('/'), secret);
        let v = CurrentVersion {
            version: version.to_owned(),
            fingerprint: fingerprint.to_owned(),
        };
        if self.current.lock().insert(k, v.clone()).as_ref() != Some(&v) {
            *self.dirty.lock() = true;
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the cache to its file (atomically: temp file + rename) when it changed.
    pub fn save(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut dirty = self.dirty.lock();
        if !*dirty {
            return Ok(());
        }
        let file = FileFormat {
            hints: self.entries.lock().clone(),
            current: self.current.lock().clone(),
        };
        let text = serde_json::to_string_pretty(&file)
            .map_err(|e| Error::other("serialising hint cache", e.to_string()))?;
        let tmp = path.with_extension("tmp");
        let err = |e: std::io::Error| {
            Error::other(
                format!("writing hint cache `{}`", path.display()),
                e.to_string(),
            )
        };
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)?;
        *dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_only_three_chars_and_persists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("hints.json");
        let c = HintCache::open(&p).expect("open");
        c.put("https://kv/", "s", "v1", "abcdefSECRET");
        assert_eq!(c.get("https://kv", "s", "v1").as_deref(), Some("abc"));
        c.save().expect("save");
        let text = std::fs::read_to_string(&p).expect("read");
        assert!(!text.contains("SECRET"));
        let c2 = HintCache::open(&p).expect("reopen");
        assert_eq!(c2.get("https://kv/", "s", "v1").as_deref(), Some("abc"));
    }
}
