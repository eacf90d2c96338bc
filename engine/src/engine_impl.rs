//! Engine internals (shared state behind the `Arc`).

use crate::arm::ArmClient;
use crate::endpoints::Endpoints;
use crate::engine::{Clock, Engine, EngineOptions};
use crate::error::{Error, Result};
use crate::graph::GraphClient;
use crate::hints::HintCache;
use crate::history::History;
use crate::keyvault::KeyVaults;
use crate::model::Application;
use azure_core::credentials::TokenCredential;
use base64::Engine as _;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

type LinkLock = Arc<tokio::sync::Mutex<()>>;
type AppCell = Arc<tokio::sync::OnceCell<Application>>;
pub(crate) type ScanEntry = (std::time::Instant, Arc<Vec<crate::matching::SecretFacts>>);

pub(crate) struct Inner {
    pub(crate) endpoints: Endpoints,
    pub(crate) clock: Option<Clock>,
    pub(crate) credential: Arc<dyn TokenCredential>,
    pub(crate) http: reqwest::Client,
    pub(crate) graph: GraphClient,
    pub(crate) arm: ArmClient,
    pub(crate) vaults: KeyVaults,
    pub(crate) hints: HintCache,
    pub(crate) history: Option<History>,
    pub(crate) actor: String,
    pub(crate) verify_timeout: Duration,
    pub(crate) tenant_id: Mutex<Option<String>>,
    pub(crate) app_subscriptions: std::collections::BTreeMap<String, Vec<String>>,
    /// Vaults scanned for holders before a credential is removed: `EngineOptions::scope_vaults`
    /// plus every vault the front end resolved or matched against.
    pub(crate) scope_vaults: Mutex<Vec<url::Url>>,
    /// Scope scans by vault URL (lower case): when listed, and every secret's facts (tags, hint).
    pub(crate) scope_cache: Mutex<HashMap<String, ScanEntry>>,
    /// Vaults that could not be listed while matching (reported by the front ends, exit 1).
    pub(crate) vault_failures: Mutex<Vec<crate::model::VaultFailure>>,
    /// Request budgets ([`crate::pacing`]).
    pub(crate) pacer: Arc<crate::pacing::Pacer>,
    /// Concurrent value reads per vault while scanning.
    pub(crate) per_vault: usize,
    /// appId (lower case) → application, memoised and single-flight: concurrent first reads of
    /// one application share one Graph request. Invalidated (the cell replaced, so a read in
    /// flight during a write never lands in the memo) by the engine's own writes.
    pub(crate) apps: Mutex<HashMap<String, AppCell>>,
    /// One in-process lock per (appId, lineage) so two rotations of a lineage in one process queue.
    pub(crate) link_locks: Mutex<HashMap<(String, String), LinkLock>>,
}

impl Inner {
    pub(crate) fn now(&self) -> OffsetDateTime {
        match &self.clock {
            Some(c) => c(),
            None => OffsetDateTime::now_utc(),
        }
    }

    /// Adds vaults to the scope of ownership proofs.
    pub(crate) fn widen_scope(&self, vaults: &[url::Url]) {
        let mut scope = self.scope_vaults.lock();
        for v in vaults {
            if !scope.contains(v) {
                scope.push(v.clone());
            }
        }
    }

    pub(crate) fn invalidate(&self, app_id: &str) {
        self.apps.lock().remove(&app_id.to_ascii_lowercase());
    }

    pub(crate) fn remember(&self, app: &Application) {
        self.apps.lock().insert(
            app.app_id.to_ascii_lowercase(),
            Arc::new(tokio::sync::OnceCell::new_with(Some(app.clone()))),
        );
    }

    /// The memoised application if one was read or remembered; reads nothing.
    pub(crate) fn known_app(&self, app_id: &str) -> Option<Application> {
        let cell = self
            .apps
            .lock()
            .get(&app_id.to_ascii_lowercase())
            .cloned()?;
        cell.get().cloned()
    }

    /// The memoised application: the first caller reads it from Graph while concurrent callers
    /// for the same appId wait for that one read. A failed read is not memoised (the next
    /// waiter, or a later call, tries again).
    pub(crate) async fn memo_app(&self, app_id: &str) -> Result<Application> {
        let cell = self
            .apps
            .lock()
            .entry(app_id.to_ascii_lowercase())
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.read_app(app_id))
            .await
            .cloned()
    }

    pub(crate) fn link_lock(&self, app_id: &str, lineage: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.link_locks
            .lock()
            .entry((app_id.to_ascii_lowercase(), lineage.to_owned()))
            .or_default()
            .clone()
    }

    /// Reads the application from Graph (bypassing the memo) and memoises it.
    pub(crate) async fn fetch_app(&self, app_id: &str) -> Result<Application> {
        let app = self.read_app(app_id).await?;
        self.remember(&app);
        Ok(app)
    }

    /// Reads the application from Graph; touches no memo.
    async fn read_app(&self, app_id: &str) -> Result<Application> {
        match self.graph.get_application_by_app_id(app_id).await? {
            Some(a) => Ok(a),
            None => Err(Error::new(
                crate::ErrorKind::NotFound,
                format!("reading application {app_id}"),
                "no application has this appId",
            )
            .with_hint("check the application (client) id; `rotor discover` lists the applications rotor can see")),
        }
    }

    /// The tenant to log in to when verifying: configured, else the `tid` claim of a Graph token.
    pub(crate) async fn tenant(&self) -> Result<String> {
        if let Some(t) = self.tenant_id.lock().clone() {
            return Ok(t);
        }
        let action = "finding the tenant id";
        let tok = self
            .credential
            .get_token(&[self.endpoints.graph_scope().as_str()], None)
            .await
            .map_err(|e| crate::graph::token_error(action, &e))?;
        let tid = tok
            .token
            .secret()
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p.trim_end_matches('='))
                    .ok()
            })
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["tid"].as_str().map(str::to_owned))
            .ok_or_else(|| {
                Error::config(action, "rotor's access token carries no `tid` claim")
                    .with_hint("set AZURE_TENANT_ID")
            })?;
        *self.tenant_id.lock() = Some(tid.clone());
        Ok(tid)
    }
}

pub(crate) fn new(opts: EngineOptions) -> Result<Engine> {
    let http = crate::http::http_client(&opts.endpoints)?;
    let pacer = Arc::new(crate::pacing::Pacer::new(opts.limits.clone()));
    let graph = GraphClient::new(
        http.clone(),
        &opts.endpoints,
        opts.credential.clone(),
        opts.max_retries,
    )
    .with_pacer(pacer.clone());
    let arm = ArmClient::new(
        http.clone(),
        &opts.endpoints,
        opts.credential.clone(),
        opts.max_retries,
    );
    let vaults = KeyVaults::new(
        &opts.endpoints,
        http.clone(),
        opts.credential.clone(),
        opts.per_vault_concurrency,
        opts.max_retries,
    )
    .with_pacer(pacer.clone());
    let hints = match &opts.hint_cache_file {
        Some(p) => HintCache::open(p)?,
        None => HintCache::in_memory(),
    };
    let history = match &opts.history_file {
        Some(p) => Some(History::open(p)?),
        None => None,
    };
    Ok(Engine {
        inner: Arc::new(Inner {
            endpoints: opts.endpoints,
            clock: opts.clock,
            credential: opts.credential,
            http,
            graph,
            arm,
            vaults,
            hints,
            history,
            actor: opts.actor,
            verify_timeout: opts.verify_timeout,
            tenant_id: Mutex::new(opts.tenant_id),
            app_subscriptions: opts.app_subscriptions,
            scope_vaults: Mutex::new(opts.scope_vaults),
            scope_cache: Mutex::new(HashMap::new()),
            vault_failures: Mutex::new(Vec::new()),
            pacer,
            per_vault: opts.per_vault_concurrency.max(1),
            apps: Mutex::new(HashMap::new()),
            link_locks: Mutex::new(HashMap::new()),
        }),
    })
}
