//! Azure's service limits (fidelity `throttling`, off by default): sliding windows per vault
//! and per app+tenant, answered with 429 and `Retry-After`. Requests answered 429 do not count
//! ("Failed 429 requests do not count towards the throttle limits", Key Vault throttling
//! guidance).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The budgets (fidelity `limits`). Defaults are Azure's published ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Key Vault, per vault per 10 s: secret CREATE (`PUT /secrets/{name}`).
    pub vault_create_per_10s: u64,
    /// Key Vault, per vault per 10 s: every other secret/vault transaction.
    pub vault_other_per_10s: u64,
    /// Graph identity and access, per app+tenant per 10 s, in resource units (tenant size S:
    /// 3,500). `GET /applications` costs 2, other GETs 1, writes 1; `$select` and `$top` < 20
    /// take 1 off each; never below 1.
    pub graph_ru_per_10s: u64,
    /// Graph writes per app+tenant per 150 s (3,000).
    pub graph_writes_per_150s: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            vault_create_per_10s: 300,
            vault_other_per_10s: 4000,
            graph_ru_per_10s: 3500,
            graph_writes_per_150s: 3000,
        }
    }
}

/// One sliding window of weighted events.
#[derive(Debug, Default)]
struct Window {
    events: VecDeque<(Instant, u64)>,
    sum: u64,
}

impl Window {
    /// Takes `cost` if the budget allows, else the wait until it would.
    fn take(
        &mut self,
        now: Instant,
        span: Duration,
        limit: u64,
        cost: u64,
    ) -> Result<(), Duration> {
        while let Some(&(t, c)) = self.events.front() {
            if now.duration_since(t) >= span {
                self.events.pop_front();
                self.sum -= c;
            } else {
                break;
            }
        }
        if self.sum + cost > limit {
            let oldest = self.events.front().map(|e| e.0).unwrap_or(now);
            return Err((oldest + span).saturating_duration_since(now));
        }
        self.events.push_back((now, cost));
        self.sum += cost;
        Ok(())
    }
}

/// What is counted, keyed by budget.
#[derive(Debug, Default)]
pub struct Throttle {
    windows: HashMap<String, Window>,
}

/// One request, as the throttle sees it.
pub enum Charge<'a> {
    Vault {
        vault: &'a str,
        create: bool,
    },
    Graph {
        caller: &'a str,
        cost: u64,
        write: bool,
    },
}

impl Throttle {
    /// `Err(retry_after)` when the request is over a budget (and then nothing is counted).
    pub fn charge(&mut self, limits: &Limits, charge: Charge<'_>) -> Result<(), Duration> {
        let now = Instant::now();
        let ten = Duration::from_secs(10);
        match charge {
            Charge::Vault { vault, create } => {
                let (key, limit) = if create {
                    (format!("kv-create:{vault}"), limits.vault_create_per_10s)
                } else {
                    (format!("kv-other:{vault}"), limits.vault_other_per_10s)
                };
                self.windows
                    .entry(key)
                    .or_default()
                    .take(now, ten, limit, 1)
            }
            Charge::Graph {
                caller,
                cost,
                write,
            } => {
                if write {
                    // check the write budget first without taking RU on refusal
                    let w = self.windows.entry(format!("graph-w:{caller}")).or_default();
                    w.take(
                        now,
                        Duration::from_secs(150),
                        limits.graph_writes_per_150s,
                        1,
                    )?;
                }
                let r = self
                    .windows
                    .entry(format!("graph-ru:{caller}"))
                    .or_default()
                    .take(now, ten, limits.graph_ru_per_10s, cost);
                if r.is_err()
                    && write
                    && let Some(w) = self.windows.get_mut(&format!("graph-w:{caller}"))
                    && let Some((_, c)) = w.events.pop_back()
                {
                    // refused: the write does not count either
                    w.sum -= c;
                }
                r
            }
        }
    }
}

/// Seconds for `Retry-After` (at least 1).
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0).max(u64::from(d.is_zero()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn windows_refuse_over_budget_and_refusals_do_not_count() {
        let limits = Limits {
            vault_create_per_10s: 3,
            ..Limits::default()
        };
        let mut t = Throttle::default();
        for _ in 0..3 {
            t.charge(
                &limits,
                Charge::Vault {
                    vault: "a",
                    create: true,
                },
            )
            .unwrap();
        }
        let wait = t
            .charge(
                &limits,
                Charge::Vault {
                    vault: "a",
                    create: true,
                },
            )
            .unwrap_err();
        assert!(wait <= Duration::from_secs(10) && wait > Duration::from_secs(9));
        assert!(retry_after_secs(wait) >= 1);
        // other budget and other vault unaffected
        t.charge(
            &limits,
            Charge::Vault {
                vault: "a",
                create: false,
            },
        )
        .unwrap();
        t.charge(
            &limits,
            Charge::Vault {
                vault: "b",
                create: true,
            },
        )
        .unwrap();
        assert_eq!(t.windows["kv-create:a"].sum, 3);
    }
}
