//! [`Engine`]: the one entry point front ends use.

use crate::config::Config;
use crate::endpoints::Endpoints;
use crate::error::Result;
use crate::model::{
    Application, AuditRecord, CertificateLink, CertificateLinkStatus, CleanupOutcome, Link,
    LinkStatus, MatchReport, RotateOptions,
};
use crate::policy::Policy;
use crate::progress::Progress;
use azure_core::credentials::TokenCredential;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use url::Url;

/// A clock: returns "now". Tests inject one to move time forward (grace periods, pending window).
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// How to build an [`Engine`]. Start from [`EngineOptions::new`] and set fields.
#[derive(Clone)]
pub struct EngineOptions {
    /// Service base URLs and extra CA.
    pub endpoints: Endpoints,
    /// rotor's own identity (see [`crate::AuthConfig::build`]).
    pub credential: Arc<dyn TokenCredential>,
    /// Who acts, for audit records: `user:<name>`, `terraform`, `github:<repo>/<run id>`.
    pub actor: String,
    /// History file; every rotation's [`AuditRecord`] is appended here when set.
    pub history_file: Option<PathBuf>,
    /// Hint cache file; in-memory only when `None`.
    pub hint_cache_file: Option<PathBuf>,
    /// How long verification keeps retrying a new credential through propagation delay (120 s).
    pub verify_timeout: Duration,
    /// Clock override; `None` = the system clock.
    pub clock: Option<Clock>,
    /// Maximum concurrent requests per vault (default 8), in addition to `policy.max_concurrent`.
    pub per_vault_concurrency: usize,
    /// Retries on 429/503/network errors per request (default 6), honouring `Retry-After`.
    pub max_retries: u32,
    /// Tenant of the applications (for verifying new credentials by logging in). `None`: taken
    /// from the `tid` claim of rotor's own Graph token.
    pub tenant_id: Option<String>,
    /// Subscriptions configured per application, for the `subscription` matching signal: key =
    /// appId or a case-insensitive glob on the display name, value = subscription ids. A secret in
    /// a vault that ARM lists in one of them (see [`Engine::resolve_vaults`]) gets the signal.
    pub app_subscriptions: std::collections::BTreeMap<String, Vec<String>>,
    /// Every vault the front end can see (configuration, provider `vault_urls`); the vaults of
    /// [`Engine::resolve_vaults`] and [`Engine::match_secrets`] are added as they are used. Before removing a
    /// credential the engine proves that no secret in these vaults (nor in the link's own
    /// targets) holds it, from the `rotor-key-id` tags a secret listing returns; preflight
    /// refuses a link when a secret outside its targets holds its lineage (docs/protocol.md).
    pub scope_vaults: Vec<Url>,
    /// Request budgets per vault and for Graph (default: 90 % of Azure's documented limits;
    /// [`crate::pacing`]).
    pub limits: crate::pacing::Limits,
}

impl fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineOptions")
            .field("endpoints", &self.endpoints)
            .field("actor", &self.actor)
            .field("history_file", &self.history_file)
            .field("hint_cache_file", &self.hint_cache_file)
            .field("verify_timeout", &self.verify_timeout)
            .field("per_vault_concurrency", &self.per_vault_concurrency)
            .field("max_retries", &self.max_retries)
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

impl EngineOptions {
    /// Defaults: actor `user:<$USER>`, no history file, in-memory hint cache, 120 s verify timeout,
    /// system clock, 8 requests per vault, 6 retries.
    pub fn new(endpoints: Endpoints, credential: Arc<dyn TokenCredential>) -> EngineOptions {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".to_owned());
        EngineOptions {
            endpoints,
            credential,
            actor: format!("user:{user}"),
            history_file: None,
            hint_cache_file: None,
            verify_timeout: Duration::from_secs(120),
            clock: None,
            per_vault_concurrency: 8,
            max_retries: 6,
            tenant_id: None,
            app_subscriptions: Default::default(),
            scope_vaults: Vec::new(),
            limits: crate::pacing::Limits::default(),
        }
    }
}

/// The engine. Cheap to clone (an `Arc` inside); clones share caches (Graph application reads,
/// Key Vault clients, hint cache) and concurrency limits.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<crate::engine_impl::Inner>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds the HTTP clients. `Err` (Config) when `endpoints.ca_file` cannot be read or parsed.
    pub fn new(opts: EngineOptions) -> Result<Engine> {
        crate::engine_impl::new(opts)
    }

    /// Lists App Registrations (all pages, `$top=999`, `$select`ed fields). `filter` is a
    /// case-insensitive glob on the display name (or an exact appId); `None` lists everything.
    /// `Err(Permission)` names `Application.Read.All`/`Application.ReadWrite.All`.
    pub async fn discover(&self, filter: Option<&str>) -> Result<Vec<Application>> {
        crate::discovery::discover(self, filter).await
    }

    /// One application by appId, memoised for the life of the engine and invalidated by the
    /// engine's own writes. Single-flight: concurrent first calls for one appId share one Graph
    /// read. Failures are not memoised. `Err(NotFound)` when no application has that appId.
    pub async fn get_application(&self, app_id: &str) -> Result<Application> {
        crate::discovery::get_application(self, app_id).await
    }

    /// Reads many applications in batches (`$filter=appId in (…)`, 15 appIds per Graph request,
    /// Graph's limit for `in`) and memoises them as [`Engine::get_application`] would, so the
    /// inspections that follow need no Graph request of their own. An appId Graph does not
    /// return is left alone (its own read reports it). For front ends that see many links at
    /// once (the Terraform provider's refresh).
    pub async fn prefetch_applications(&self, app_ids: &[String]) -> Result<()> {
        let mut ids: Vec<&String> = app_ids
            .iter()
            .filter(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
            .collect();
        ids.sort();
        ids.dedup();
        for chunk in ids.chunks(15) {
            let list: Vec<String> = chunk.iter().map(|a| format!("'{a}'")).collect();
            let filter = format!("appId in ({})", list.join(", "));
            for app in self.inner.graph.list_applications(Some(&filter)).await? {
                self.inner.remember(&app);
            }
        }
        Ok(())
    }

    /// Lists `vaults` (and the engine's scope) for the scope scan into its five-minute cache,
    /// as the first [`Engine::inspect_link`] in them would. A front end that inspects many
    /// links at once calls this once first, so each vault is listed once instead of once per
    /// concurrent inspection. Failures are left for the inspections to report.
    pub async fn warm_scope(&self, vaults: &[Url]) {
        let link = Link {
            application_id: String::new(),
            credential_display_name: String::new(),
            targets: vaults
                .iter()
                .map(|v| crate::model::Target::new(v.clone(), "-"))
                .collect(),
        };
        let _ = crate::rotation::state::outside_holders(self, &link, &[], false).await;
    }

    /// The vaults to consider: `config.vaults` plus every vault ARM lists in
    /// `config.subscriptions`, deduplicated, with trailing `/`. `Err` names the subscription.
    pub async fn resolve_vaults(&self, config: &Config) -> Result<Vec<Url>> {
        crate::discovery::resolve_vaults(self, config).await
    }

    /// Matches every password credential of `apps` against every secret in `vaults`
    /// (docs/cli.md, `rotor match`). Reads a secret's value only when its version's hint is not cached.
    /// Excluded pairs are reported with `excluded` set. `Err` when a vault cannot be listed.
    pub async fn match_secrets(
        &self,
        apps: &[Application],
        vaults: &[Url],
        policy: &Policy,
    ) -> Result<MatchReport> {
        crate::matching::match_secrets(self, apps, vaults, policy).await
    }

    /// [`Engine::discover`] (no filter) and [`Engine::match_secrets`] in one: the application
    /// pages are listed while the vaults are (Graph paging and vault listings overlap), and the
    /// applications are not memoised (memoise the ones you go on with, as [`Engine::links`]
    /// does). Same applications, same report, same errors (Graph's first).
    pub async fn discover_and_match(
        &self,
        vaults: &[Url],
        policy: &Policy,
    ) -> Result<(Vec<Application>, MatchReport)> {
        crate::discovery::discover_and_match(self, vaults, policy).await
    }

    /// Read-only status of a link (refresh): which credential the targets hold, whether a rotation
    /// is due and why, divergence, exclusion, in-progress. Reads each target's current version
    /// metadata; reads a value only when its tags do not say which credential it holds and the
    /// hint cache does not know it. `Err(NotFound)` when the application does not exist.
    pub async fn inspect_link(&self, link: &Link, policy: &Policy) -> Result<LinkStatus> {
        crate::rotation::inspect_link(self, link, policy).await
    }

    /// Runs the rotation protocol for one link (resuming/finishing another run's work when Azure
    /// shows one). Never panics and never returns `Err`: failures are in the record's `status`,
    /// `error` and per-target `error`. Appends the record to the history file when configured.
    /// A non-forced rotation of a link that is not due is `skipped`.
    pub async fn rotate(
        &self,
        link: &Link,
        policy: &Policy,
        opts: &RotateOptions,
        progress: &dyn Progress,
    ) -> AuditRecord {
        crate::rotation::rotate(self, link, policy, opts, progress).await
    }

    /// Writes the CURRENT credential's value (read from a target that holds it) into targets that
    /// lack it; creates no credential. `Err` when no target holds a credential of the lineage.
    pub async fn sync_targets(
        &self,
        link: &Link,
        policy: &Policy,
        progress: &dyn Progress,
    ) -> Result<AuditRecord> {
        crate::rotation::sync_targets(self, link, policy, progress).await
    }

    /// Import/adopt: builds the link of credential `key_id` from tags and matching (targets with
    /// confidence ≥ `policy.min_confidence`). `Err(NotFound)` when the app or credential does not
    /// exist or no target is found at sufficient confidence (the message lists the best candidates).
    pub async fn adopt(
        &self,
        app_id: &str,
        key_id: &str,
        vaults: &[Url],
        policy: &Policy,
    ) -> Result<Link> {
        crate::links::adopt(self, app_id, key_id, vaults, policy).await
    }

    /// Removes the lineage's old credentials whose successor started more than
    /// `grace_period_days` ago, and orphans older than the pending window; never a credential any
    /// target holds, never one outside the lineage. `dry_run` lists without removing.
    pub async fn cleanup(
        &self,
        link: &Link,
        policy: &Policy,
        dry_run: bool,
    ) -> Result<CleanupOutcome> {
        crate::cleanup::cleanup(self, link, policy, dry_run).await
    }

    /// Every link (from matching at ≥ `config.policy.min_confidence`, not excluded, targets grouped
    /// per (app, credential lineage)) together with its status, keeping those whose rotation is due.
    pub async fn due_links(&self, config: &Config) -> Result<Vec<(Link, LinkStatus)>> {
        crate::links::due_links(self, config).await
    }

    /// Every link found by matching (same grouping as [`Engine::due_links`]), due or not.
    pub async fn links(&self, config: &Config) -> Result<Vec<Link>> {
        crate::links::links(self, config).await
    }

    /// [`Engine::links`] and [`Engine::certificate_links`] from one discovery of the tenant (the
    /// applications are listed once; calling both lists them twice).
    pub async fn links_and_certificate_links(
        &self,
        config: &Config,
    ) -> Result<(Vec<Link>, Vec<CertificateLink>)> {
        let (links, key_apps) = crate::links::links_and_key_apps(self, config).await?;
        let certs = crate::certificates::certificate_links_of(self, &key_apps, config).await?;
        Ok((links, certs))
    }

    /// [`Engine::due_links`] and [`Engine::due_certificate_links`] from one discovery.
    #[allow(clippy::type_complexity)]
    pub async fn due_links_and_certificate_links(
        &self,
        config: &Config,
    ) -> Result<(
        Vec<(Link, LinkStatus)>,
        Vec<(CertificateLink, CertificateLinkStatus)>,
    )> {
        let (links, certs) = self.links_and_certificate_links(config).await?;
        let due = crate::links::due_of(self, links, config).await?;
        let due_certs = crate::certificates::due_of(self, certs, config).await?;
        Ok((due, due_certs))
    }

    /// The certificate links of applications already discovered (as [`Engine::certificate_links`]
    /// finds them, without listing the tenant again).
    pub async fn certificate_links_of(
        &self,
        apps: &[Application],
        config: &Config,
    ) -> Result<Vec<CertificateLink>> {
        crate::certificates::certificate_links_of(self, apps, config).await
    }

    /// Rotates many links, at most `policy.max_concurrent` at a time; records in input order.
    pub async fn rotate_many(
        &self,
        links: &[Link],
        policy: &Policy,
        opts: &RotateOptions,
        progress: &dyn Progress,
    ) -> Vec<AuditRecord> {
        crate::links::rotate_many(self, links, policy, opts, progress).await
    }

    /// Cleans up many links, at most `policy.max_concurrent` at a time; results in input order.
    pub async fn cleanup_many(
        &self,
        links: &[Link],
        policy: &Policy,
        dry_run: bool,
    ) -> Vec<Result<CleanupOutcome>> {
        crate::cleanup::cleanup_many(self, links, policy, dry_run).await
    }

    /// Every certificate link found by matching (key credentials ↔ Key Vault certificates by
    /// thumbprint, at ≥ `config.policy.min_confidence`, not excluded), one per (application,
    /// certificate credential lineage). Certificates are separate from [`Engine::links`]; bulk
    /// front ends call both (docs/protocol.md, "Certificates").
    pub async fn certificate_links(&self, config: &Config) -> Result<Vec<CertificateLink>> {
        crate::certificates::certificate_links(self, config).await
    }

    /// Read-only status of a certificate link: the current key credential and thumbprint,
    /// each certificate's current Key Vault version, whether a rotation (new version) or a sync
    /// (a newer Key Vault version the application lacks, e.g. from AutoRenew) is due, and
    /// whether a certificate operation is in progress. Reads no private key material.
    pub async fn inspect_certificate_link(
        &self,
        link: &CertificateLink,
        policy: &Policy,
    ) -> Result<CertificateLinkStatus> {
        crate::certificates::inspect(self, link, policy).await
    }

    /// Runs the certificate protocol for one link: new Key Vault version from its policy (or
    /// adopt the newer version Key Vault already made), add its public key to the application
    /// (`addKey` with a proof signed through Key Vault, else PATCH of the whole collection),
    /// verify by signing in with it. Never panics and never returns `Err`: failures are in the
    /// record (`kind` = certificate). Appends the record to the history file when configured.
    pub async fn rotate_certificate(
        &self,
        link: &CertificateLink,
        policy: &Policy,
        opts: &RotateOptions,
        progress: &dyn Progress,
    ) -> AuditRecord {
        crate::certificates::rotate(self, link, policy, opts, progress).await
    }

    /// Removes key credentials of the lineage that rotor added, whose successor started more
    /// than `grace_period_days` ago — never the application's `tokenEncryptionKeyId` key, never
    /// one whose thumbprint a Key Vault certificate in scope holds as current, never one rotor
    /// did not add. `dry_run` lists without removing.
    pub async fn cleanup_certificate(
        &self,
        link: &CertificateLink,
        policy: &Policy,
        dry_run: bool,
    ) -> Result<CleanupOutcome> {
        crate::certificates::cleanup(self, link, policy, dry_run).await
    }

    /// Every certificate link of [`Engine::certificate_links`] with its status, keeping those
    /// whose rotation or sync is due (a link whose state cannot be read is kept, as for secrets).
    pub async fn due_certificate_links(
        &self,
        config: &Config,
    ) -> Result<Vec<(CertificateLink, CertificateLinkStatus)>> {
        crate::certificates::due(self, config).await
    }

    /// Import/adopt: the certificate link of key credential `key_id` (any application): its
    /// lineage and every Key Vault certificate in the configuration's vaults whose thumbprint
    /// is a key credential of that lineage. `Err(NotFound)` when no such key credential or
    /// certificate exists.
    pub async fn adopt_certificate(
        &self,
        config: &Config,
        key_id: &str,
    ) -> Result<CertificateLink> {
        crate::certificates::adopt(self, config, key_id).await
    }

    /// Vaults that could not be listed while matching, so far. Matching goes on with the other
    /// vaults (a failing vault fails only the links in it); front ends report these and exit 1.
    /// Matching fails outright only when every vault fails.
    pub fn vault_failures(&self) -> Vec<crate::model::VaultFailure> {
        self.inner.vault_failures.lock().clone()
    }

    /// The hint cache in use (saved after matching; call [`crate::HintCache::save`] to force).
    pub fn hint_cache(&self) -> &crate::hints::HintCache {
        &self.inner.hints
    }

    /// Total time requests waited for a slot in rotor's own budgets ([`crate::pacing`]).
    pub fn paced_for(&self) -> Duration {
        self.inner.pacer.waited()
    }

    /// The engine's "now" (the injected clock, else the system clock).
    pub fn now(&self) -> OffsetDateTime {
        self.inner.now()
    }

    /// The endpoints in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }
}
