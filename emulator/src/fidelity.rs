//! Where Azure is nondeterministic or untidy, the emulator's choices: explicit, seeded and
//! configurable (fixture `fidelity`, admin `GET|POST /_emulator/fidelity`).
//!
//! Every default is *unlike* the naive assumption (versions not in creation order, delays short
//! but never zero, some empty pages), yet short enough for fast tests.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How `GET /secrets/{name}/versions` orders versions. Azure promises no order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VersionOrder {
    /// A seeded order (hash of seed and version id) in which, with two or more versions, the
    /// newest is never last and the oldest never first: "last listed = newest" and "first
    /// listed = oldest" are both wrong.
    #[default]
    Scrambled,
    /// By version id (what real vaults were observed to do).
    ById,
    /// Oldest first (the naive assumption; for tests that want it).
    Creation,
}

/// Key Vault api-versions the emulator accepts by default: every stable data-plane version of
/// the REST specification (`specification/keyvault/data-plane/*/stable/`), plus the previews
/// the official SDKs have shipped as defaults. `2025-07-01` is what the official Rust crates
/// (`azure_security_keyvault_*` 1.x) send; `7.6` what `azure-keyvault-secrets` 4.10 sends.
pub const DEFAULT_API_VERSIONS: &[&str] = &[
    "2016-10-01",
    "7.0",
    "7.1",
    "7.2",
    "7.3",
    "7.4",
    "7.5",
    "7.6",
    "7.6-preview.2",
    "2025-07-01",
];

/// The fidelity settings (fixture `fidelity`; every field optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fidelity {
    /// Seed of every seeded choice below (same seed and same requests → same answers).
    pub seed: u64,
    /// Order of `GET /secrets/{name}/versions`.
    pub version_order: VersionOrder,
    /// Probability that a Key Vault list page is answered empty with a `nextLink` (decided per
    /// list, page offset and seed; a page is empty at most once). Also: after the last items, the
    /// same probability of one more, empty, final page.
    pub empty_page_probability: f64,
    /// After `DELETE /secrets/{name}`, for this long: not yet among deleted secrets (404), and a
    /// write, recover or purge of the name answers 409 `ObjectIsBeingDeleted`.
    pub delete_delay_ms: u64,
    /// After a recover, for this long the secret is still not found (404).
    pub recover_delay_ms: u64,
    /// After a purge, for this long writing the name answers 409 `ObjectIsBeingDeleted`.
    pub purge_delay_ms: u64,
    /// Graph's eventual consistency: a password added by `addPassword` is missing from
    /// `GET /applications…` for this long.
    pub graph_read_delay_ms: u64,
    /// A created certificate stays `inProgress` (with its `csr`) for this long; then the
    /// pending operation is `completed` and the version and its backing secret exist.
    pub certificate_delay_ms: u64,
    /// Key Vault api-versions accepted; any other answers 400 `BadParameter`.
    pub api_versions: Vec<String>,
    /// Service limits (off by default; the benchmark turns them on): over a budget of
    /// `limits`, 429 with `Retry-After`.
    pub throttling: bool,
    /// The budgets `throttling` enforces (Azure's published limits by default).
    pub limits: crate::throttle::Limits,
}

impl Default for Fidelity {
    fn default() -> Self {
        Fidelity {
            seed: 8,
            version_order: VersionOrder::Scrambled,
            empty_page_probability: 0.3,
            delete_delay_ms: 30,
            recover_delay_ms: 30,
            purge_delay_ms: 30,
            graph_read_delay_ms: 30,
            certificate_delay_ms: 30,
            api_versions: DEFAULT_API_VERSIONS.iter().map(|s| s.to_string()).collect(),
            throttling: false,
            limits: crate::throttle::Limits::default(),
        }
    }
}

/// Environment variable with a JSON object of fidelity fields applied over the fixture's at
/// every start (for diagnosis: e.g. `{"graph_read_delay_ms": 0}` to tell a consistency
/// assumption from another failure).
pub const FIDELITY_ENV: &str = "ROTOR_EMULATOR_FIDELITY";

impl Fidelity {
    /// These settings with the fields of `patch` (a JSON object) replaced.
    pub fn merged(&self, patch: serde_json::Value) -> Result<Fidelity, String> {
        let serde_json::Value::Object(patch) = patch else {
            return Err("fidelity must be a JSON object".into());
        };
        let mut cur = serde_json::to_value(self).map_err(|e| e.to_string())?;
        for (k, v) in patch {
            cur[k] = v;
        }
        let f: Fidelity = serde_json::from_value(cur).map_err(|e| e.to_string())?;
        f.validate()?;
        Ok(f)
    }

    /// Checks the values (probability in 0..=1, api-versions non-empty).
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.empty_page_probability) {
            return Err(format!(
                "empty_page_probability must be from 0 to 1, not {}",
                self.empty_page_probability
            ));
        }
        if self.api_versions.is_empty() {
            return Err("api_versions must not be empty".into());
        }
        Ok(())
    }

    /// A deterministic value in `[0, 1)` from the seed and `key`.
    pub fn draw(&self, key: &str) -> f64 {
        let h = self.hash(key);
        (h >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A deterministic 64-bit hash of the seed and `key`.
    pub fn hash(&self, key: &str) -> u64 {
        let mut d = Sha256::new();
        d.update(self.seed.to_le_bytes());
        d.update(key.as_bytes());
        let out = d.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&out[..8]);
        u64::from_le_bytes(b)
    }

    /// Indices `0..ids.len()` (creation order: index = age rank) in listing order.
    pub fn order_versions(&self, ids: &[&str]) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..ids.len()).collect();
        match self.version_order {
            VersionOrder::Creation => {}
            VersionOrder::ById => idx.sort_by_key(|&i| ids[i].to_ascii_lowercase()),
            VersionOrder::Scrambled => {
                idx.sort_by_key(|&i| self.hash(&ids[i].to_ascii_lowercase()));
                let n = idx.len();
                if n >= 2 {
                    // newest never last, oldest never first
                    if idx[n - 1] == n - 1 {
                        idx.swap(0, n - 1);
                    }
                    if idx[0] == 0 {
                        // n > 2 here (with 2 the swap above already put the oldest last)
                        idx.swap(0, 1);
                    }
                }
            }
        }
        idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrambled_never_puts_newest_last_or_oldest_first() {
        let f = Fidelity::default();
        for seed in 0..200 {
            let f = Fidelity { seed, ..f.clone() };
            for n in 2..8 {
                let ids: Vec<String> = (0..n)
                    .map(|i| format!("{:032x}", i * 7919 + seed))
                    .collect();
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                let o = f.order_versions(&refs);
                let mut sorted = o.clone();
                sorted.sort();
                assert_eq!(sorted, (0..n as usize).collect::<Vec<_>>());
                assert_ne!(
                    o[n as usize - 1],
                    n as usize - 1,
                    "seed {seed} n {n}: {o:?}"
                );
                assert_ne!(o[0], 0, "seed {seed} n {n}: {o:?}");
            }
        }
    }

    #[test]
    fn draws_are_seeded() {
        let a = Fidelity::default();
        let b = Fidelity {
            seed: 9,
            ..a.clone()
        };
        assert_eq!(a.draw("x"), a.draw("x"));
        assert_ne!(a.draw("x"), b.draw("x"));
        assert!((0.0..1.0).contains(&a.draw("y")));
    }
}
