//! Pacing: rotor's own request budgets, sized below Azure's documented service limits, so a bulk
//! run finishes without being throttled and without starving the rest of the organisation.
//!
//! | budget | Azure's limit (docs) | rotor's default |
//! |---|---|---|
//! | Key Vault secret CREATE (`PUT /secrets/{name}`), per vault | 300 per 10 s | 270 per 10 s |
//! | every other Key Vault request, per vault | 4,000 per 10 s | 3,600 per 10 s |
//! | Microsoft Graph requests (identity resource units, app + tenant, small tenant) | 3,500 RU per 10 s | 3,150 per 10 s |
//! | Microsoft Graph writes (app + tenant) | 3,000 per 150 s | 2,700 per 150 s |
//!
//! Each budget is a *sliding window*, as Azure counts: a request goes at once while fewer than
//! the budget went in the last window, else it waits until the oldest of them leaves the window —
//! so no window of the limit's length ever holds more than the budget, a small run never waits,
//! and a long one runs at the budget's full rate. (A token bucket that starts full lets up to
//! twice the budget through its first window; one shaped to never do so halves the rate or the
//! burst — for Graph's 150 s write window that made a 1,000-rotation run wait 45 s for nothing.)
//! A request beyond the budget waits for its slot instead of
//! drawing a 429. 429s that still
//! come (other tools sharing the budget) are retried after `Retry-After` as before.
//! `max_concurrent` bounds rotations in flight; pacing bounds requests per second.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// One budget: at most `limit` requests in any `period` (a sliding window log).
#[derive(Debug)]
struct Bucket {
    limit: usize,
    period: Duration,
    sent: Mutex<VecDeque<Instant>>,
}

impl Bucket {
    /// Takes a slot now, or says how long until the oldest request in the window leaves it.
    fn try_take(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut sent = self.sent.lock();
        while sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.period)
        {
            sent.pop_front();
        }
        if sent.len() < self.limit {
            sent.push_back(now);
            return Ok(());
        }
        let oldest = sent.front().copied().unwrap_or(now);
        Err(self.period.saturating_sub(now.duration_since(oldest)))
    }
}
/// A vault's two budgets: secret CREATE, everything else.
type VaultBuckets = (Option<Arc<Bucket>>, Option<Arc<Bucket>>);

/// Request budgets (per period). `None` disables that budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Key Vault secret writes per vault per 10 s.
    pub keyvault_creates_per_10s: Option<u32>,
    /// Other Key Vault requests per vault per 10 s.
    pub keyvault_other_per_10s: Option<u32>,
    /// Graph requests per 10 s (all of rotor's Graph traffic to the tenant).
    pub graph_requests_per_10s: Option<u32>,
    /// Graph writes (`addPassword`, `removePassword`) per 150 s.
    pub graph_writes_per_150s: Option<u32>,
}

impl Default for Limits {
    /// 90 % of Azure's documented limits (see the module table).
    fn default() -> Limits {
        Limits {
            keyvault_creates_per_10s: Some(270),
            keyvault_other_per_10s: Some(3_600),
            graph_requests_per_10s: Some(3_150),
            graph_writes_per_150s: Some(2_700),
        }
    }
}

impl Limits {
    /// No pacing at all (tests that measure raw behaviour).
    pub fn unlimited() -> Limits {
        Limits {
            keyvault_creates_per_10s: None,
            keyvault_other_per_10s: None,
            graph_requests_per_10s: None,
            graph_writes_per_150s: None,
        }
    }
}

fn bucket(per: Option<u32>, period: Duration) -> Option<Arc<Bucket>> {
    let limit = usize::try_from(per?).ok().filter(|n| *n > 0)?;
    Some(Arc::new(Bucket {
        limit,
        period,
        sent: Mutex::new(VecDeque::with_capacity(limit.min(4096))),
    }))
}

/// What kind of Key Vault request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyVaultOp {
    /// A new secret version (`PUT /secrets/{name}`).
    Create,
    /// Anything else (get, list page, update properties).
    Other,
}

/// What kind of Graph request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphOp {
    /// A read.
    Read,
    /// A write (also counts as a request).
    Write,
}

/// The engine's budgets: one pair of buckets per vault (created on first use), one pair for Graph.
#[derive(Debug)]
pub struct Pacer {
    limits: Limits,
    vaults: Mutex<HashMap<String, VaultBuckets>>,
    graph_requests: Option<Arc<Bucket>>,
    graph_writes: Option<Arc<Bucket>>,
    waited: std::sync::atomic::AtomicU64,
}

impl Pacer {
    /// Budgets from `limits`.
    pub fn new(limits: Limits) -> Pacer {
        Pacer {
            graph_requests: bucket(limits.graph_requests_per_10s, Duration::from_secs(10)),
            graph_writes: bucket(limits.graph_writes_per_150s, Duration::from_secs(150)),
            vaults: Mutex::new(HashMap::new()),
            limits,
            waited: 0.into(),
        }
    }

    /// Waits for a slot in `vault_host`'s budget for `op`.
    pub async fn keyvault(&self, vault_host: &str, op: KeyVaultOp) {
        let (create, other) = self
            .vaults
            .lock()
            .entry(vault_host.to_ascii_lowercase())
            .or_insert_with(|| {
                (
                    bucket(
                        self.limits.keyvault_creates_per_10s,
                        Duration::from_secs(10),
                    ),
                    bucket(self.limits.keyvault_other_per_10s, Duration::from_secs(10)),
                )
            })
            .clone();
        let b = match op {
            KeyVaultOp::Create => create,
            KeyVaultOp::Other => other,
        };
        self.wait(b.as_deref()).await;
    }

    /// Waits for a slot in the Graph budget for `op`.
    pub async fn graph(&self, op: GraphOp) {
        if op == GraphOp::Write {
            self.wait(self.graph_writes.as_deref()).await;
        }
        self.wait(self.graph_requests.as_deref()).await;
    }

    /// Total time requests waited for a slot so far (for benchmarks and logs).
    pub fn waited(&self) -> Duration {
        Duration::from_micros(self.waited.load(std::sync::atomic::Ordering::Relaxed))
    }

    async fn wait(&self, b: Option<&Bucket>) {
        let Some(b) = b else { return };
        let Err(mut free_in) = b.try_take() else {
            return;
        };
        let start = Instant::now();
        loop {
            tokio::time::sleep(free_in + Duration::from_millis(1)).await;
            match b.try_take() {
                Ok(()) => break,
                Err(d) => free_in = d,
            }
        }
        let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.waited
            .fetch_add(us, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(
            waited_ms = us / 1000,
            "paced a request to stay inside Azure's limits"
        );
    }
}

/// An `azure_core` transport that paces every Key Vault request by its vault (host) and kind.
#[derive(Debug)]
pub(crate) struct PacedTransport {
    pub(crate) inner: Arc<dyn azure_core::http::HttpClient>,
    pub(crate) pacer: Arc<Pacer>,
}

#[async_trait::async_trait]
impl azure_core::http::HttpClient for PacedTransport {
    async fn execute_request(
        &self,
        request: &azure_core::http::Request,
    ) -> azure_core::Result<azure_core::http::AsyncRawResponse> {
        let url = request.url();
        let op = if request.method() == azure_core::http::Method::Put
            && url.path().starts_with("/secrets/")
        {
            KeyVaultOp::Create
        } else {
            KeyVaultOp::Other
        };
        let host = format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or(443)
        );
        self.pacer.keyvault(&host, op).await;
        self.inner.execute_request(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_window_admits_more_than_the_budget_and_a_full_budget_goes_at_once() {
        let b = bucket(Some(5), Duration::from_millis(300)).expect("bucket");
        for _ in 0..5 {
            assert!(b.try_take().is_ok(), "a whole budget goes at once");
        }
        let wait = b.try_take().expect_err("the sixth waits");
        assert!(
            wait > Duration::from_millis(200) && wait <= Duration::from_millis(300),
            "{wait:?}"
        );
        std::thread::sleep(Duration::from_millis(310)); // (real time: no runtime here)
        for _ in 0..5 {
            assert!(b.try_take().is_ok(), "the window slid past the first five");
        }
        assert!(b.try_take().is_err());
    }

    #[tokio::test]
    async fn a_burst_within_the_budget_never_waits_and_beyond_it_is_spread() {
        let pacer = Pacer::new(Limits {
            keyvault_creates_per_10s: Some(5),
            keyvault_other_per_10s: None,
            graph_requests_per_10s: None,
            graph_writes_per_150s: None,
        });
        let t = std::time::Instant::now();
        for _ in 0..5 {
            pacer.keyvault("kv:443", KeyVaultOp::Create).await;
        }
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "a whole budget goes at once"
        );
        assert_eq!(pacer.waited(), Duration::ZERO);
        // another vault has its own budget
        pacer.keyvault("other:443", KeyVaultOp::Create).await;
        assert_eq!(pacer.waited(), Duration::ZERO);
        // unlimited kinds never wait
        for _ in 0..100 {
            pacer.keyvault("kv:443", KeyVaultOp::Other).await;
            pacer.graph(GraphOp::Read).await;
        }
        assert_eq!(pacer.waited(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn the_sixth_create_waits_for_its_slot() {
        let pacer = Pacer::new(Limits {
            keyvault_creates_per_10s: Some(5), // the sixth waits for the first to leave the window
            ..Limits::unlimited()
        });
        for _ in 0..5 {
            pacer.keyvault("kv:443", KeyVaultOp::Create).await;
        }
        let t = Instant::now();
        pacer.keyvault("kv:443", KeyVaultOp::Create).await;
        // (virtual time) the first create leaves the 10 s window
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(9_900) && waited <= Duration::from_millis(10_100),
            "{waited:?}"
        );
        assert!(pacer.waited() >= Duration::from_millis(9_900));
    }
}
