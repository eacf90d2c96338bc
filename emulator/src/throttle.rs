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
    /// Graph writes per app+tenant per 60 s to applications whose `signInAudience` accepts
    /// personal Microsoft accounts (`AzureADandPersonalMicrosoftAccount`,
    /// `PersonalMicrosoftAccount`): 60.
    pub graph_personal_app_writes_per_60s: u64,
    /// Graph writes per tenant (all callers together) per 300 s: 18,000.
    pub graph_tenant_writes_per_300s: u64,
    /// Key Vault, per vault per 10 s: key transactions (`GET /keys…`, `sign`) on software
    /// RSA keys: 4,000.
    pub vault_key_other_per_10s: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            vault_create_per_10s: 300,
            vault_other_per_10s: 4000,
            graph_ru_per_10s: 3500,
            graph_writes_per_150s: 3000,
            graph_personal_app_writes_per_60s: 60,
            graph_tenant_writes_per_300s: 18_000,
            vault_key_other_per_10s: 4000,
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
    /// Drops events older than `span`; `Err(wait)` if `cost` does not fit in `limit`.
    fn check(
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
        Ok(())
    }

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
        /// A keys transaction (its own budget).
        key: bool,
    },
    Graph {
        caller: &'a str,
        tenant: &'a str,
        cost: u64,
        write: bool,
        /// A write to an application that accepts personal Microsoft accounts.
        personal: bool,
    },
}

/// Which budget refused (Graph's `x-ms-throttle-scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The caller's budget in this tenant (and every vault budget).
    AppTenant,
    /// The tenant's budget across all callers.
    Tenant,
}

/// A request over budget: wait this long; `scope` names the budget.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    pub wait: Duration,
    pub scope: Scope,
}

impl Throttle {
    /// `Err` when the request is over a budget (and then nothing is counted).
    pub fn charge(&mut self, limits: &Limits, charge: Charge<'_>) -> Result<(), Refusal> {
        let now = Instant::now();
        let ten = Duration::from_secs(10);
        let app = |wait| Refusal {
            wait,
            scope: Scope::AppTenant,
        };
        match charge {
            Charge::Vault { vault, create, key } => {
                let (key, limit) = if key {
                    (format!("kv-key:{vault}"), limits.vault_key_other_per_10s)
                } else if create {
                    (format!("kv-create:{vault}"), limits.vault_create_per_10s)
                } else {
                    (format!("kv-other:{vault}"), limits.vault_other_per_10s)
                };
                self.windows
                    .entry(key)
                    .or_default()
                    .take(now, ten, limit, 1)
                    .map_err(app)
            }
            Charge::Graph {
                caller,
                tenant,
                cost,
                write,
                personal,
            } => {
                // Every window is checked first and only then taken: a refusal counts nowhere.
                let mut plan: Vec<(String, Duration, u64, u64, Scope)> = vec![(
                    format!("graph-ru:{caller}"),
                    ten,
                    limits.graph_ru_per_10s,
                    cost,
                    Scope::AppTenant,
                )];
                if write {
                    plan.push((
                        format!("graph-w:{caller}"),
                        Duration::from_secs(150),
                        limits.graph_writes_per_150s,
                        1,
                        Scope::AppTenant,
                    ));
                    plan.push((
                        format!("graph-tenant-w:{tenant}"),
                        Duration::from_secs(300),
                        limits.graph_tenant_writes_per_300s,
                        1,
                        Scope::Tenant,
                    ));
                    if personal {
                        plan.push((
                            format!("graph-personal-w:{caller}"),
                            Duration::from_secs(60),
                            limits.graph_personal_app_writes_per_60s,
                            1,
                            Scope::AppTenant,
                        ));
                    }
                }
                let mut worst: Option<Refusal> = None;
                for (key, span, limit, c, scope) in &plan {
                    let w = self.windows.entry(key.clone()).or_default();
                    if let Err(wait) = w.check(now, *span, *limit, *c)
                        && worst.is_none_or(|r| wait > r.wait)
                    {
                        worst = Some(Refusal {
                            wait,
                            scope: *scope,
                        });
                    }
                }
                if let Some(r) = worst {
                    return Err(r);
                }
                for (key, span, limit, c, _) in &plan {
                    let _ = self
                        .windows
                        .entry(key.clone())
                        .or_default()
                        .take(now, *span, *limit, *c);
                }
                Ok(())
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
                    key: false,
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
                    key: false,
                },
            )
            .unwrap_err()
            .wait;
        assert!(wait <= Duration::from_secs(10) && wait > Duration::from_secs(9));
        assert!(retry_after_secs(wait) >= 1);
        // other budget and other vault unaffected
        t.charge(
            &limits,
            Charge::Vault {
                vault: "a",
                create: false,
                key: false,
            },
        )
        .unwrap();
        t.charge(
            &limits,
            Charge::Vault {
                vault: "b",
                create: true,
                key: false,
            },
        )
        .unwrap();
        assert_eq!(t.windows["kv-create:a"].sum, 3);
    }

    fn graph<'a>(caller: &'a str, write: bool, personal: bool) -> Charge<'a> {
        Charge::Graph {
            caller,
            tenant: "t",
            cost: 1,
            write,
            personal,
        }
    }

    #[test]
    fn personal_account_apps_take_60_writes_a_minute_and_the_tenant_caps_all_callers() {
        let limits = Limits::default();
        let mut t = Throttle::default();
        for _ in 0..60 {
            t.charge(&limits, graph("a", true, true)).unwrap();
        }
        let r = t.charge(&limits, graph("a", true, true)).unwrap_err();
        assert_eq!(r.scope, Scope::AppTenant);
        assert!(r.wait <= Duration::from_secs(60) && r.wait > Duration::from_secs(59));
        // the refusal counted nowhere; writes to other apps and reads still pass
        assert_eq!(t.windows["graph-w:a"].sum, 60);
        t.charge(&limits, graph("a", true, false)).unwrap();
        t.charge(&limits, graph("a", false, false)).unwrap();
        // tenant-wide: a small cap shared by two callers
        let small = Limits {
            graph_tenant_writes_per_300s: 3,
            ..Limits::default()
        };
        let mut t = Throttle::default();
        t.charge(&small, graph("a", true, false)).unwrap();
        t.charge(&small, graph("b", true, false)).unwrap();
        t.charge(&small, graph("c", true, false)).unwrap();
        let r = t.charge(&small, graph("d", true, false)).unwrap_err();
        assert_eq!(r.scope, Scope::Tenant);
        assert!(r.wait > Duration::from_secs(299));
        t.charge(&small, graph("d", false, false)).unwrap();
        assert_eq!(t.windows["graph-ru:d"].sum, 1);
    }

    #[test]
    fn key_transactions_have_their_own_vault_budget() {
        let limits = Limits {
            vault_key_other_per_10s: 2,
            ..Limits::default()
        };
        let mut t = Throttle::default();
        let key = |k| Charge::Vault {
            vault: "a",
            create: false,
            key: k,
        };
        t.charge(&limits, key(true)).unwrap();
        t.charge(&limits, key(true)).unwrap();
        assert!(t.charge(&limits, key(true)).is_err());
        t.charge(&limits, key(false)).unwrap();
    }
}
