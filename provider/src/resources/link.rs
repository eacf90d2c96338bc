//! What `rotor_secret_link` and `rotor_certificate_link` share: both link one credential lineage
//! of one application (`application_id` + `credential_display_name`) to Key Vault items
//! (`vault_url` + a name), under a policy, with `rotate_when_changed` triggers. This module holds
//! the parts of their flow that are the same logic:
//!
//! - [`LinkCommon`]: the attributes both models have, read and written once, and [`LinkModel`]:
//!   the id, the policy, the triggers and the replacing attributes derived from them;
//! - [`VaultItems`]: parsing and validating the Key Vault items (targets, certificates);
//! - [`EngineLink`] + [`inspect`]: one status read per RPC, cached between RPCs of this process
//!   (a create's plan, then its apply) and batched with the other links' application reads;
//! - decoding Terraform's requests into models, and the import id's lineage lookup.
//!
//! What differs — the statuses, the plan's warnings, rotation and cleanup — stays explicit in
//! each resource's module.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use async_trait::async_trait;
use rotor_engine::{
    CertificateLink, CertificateLinkStatus, CleanupOutcome, Engine, ErrorKind, Link, LinkStatus,
    Policy,
};
use time::OffsetDateTime;

use crate::framework::{ApplyRequest, AttrPath, Diagnostics, PlanRequest, PlanResponse, Resource};
use crate::ids::{LINK_IMPORT_FORMS, LinkId, LinkImport, parse_link_import};
use crate::model::{Attr, Field, ModelError, Reader, Set, Writer, decoded};
use crate::provider::{ProviderState, hint_lines};
use crate::resources::diag::{Placement, engine_error, validate_lineage};
use crate::resources::policy::{PolicySettings, parse_link_policy};
use crate::schema::Schema;
use crate::value::Value;

/// The attribute names both link resources have.
pub mod attrs {
    pub const ID: &str = "id";
    pub const APPLICATION_ID: &str = "application_id";
    pub const CREDENTIAL_DISPLAY_NAME: &str = "credential_display_name";
    pub const POLICY: &str = "policy";
    pub const ROTATE_WHEN_CHANGED: &str = "rotate_when_changed";
    pub const ROTATED_AT: &str = "rotated_at";
    pub const NEXT_ROTATION_AT: &str = "next_rotation_at";
    pub const ROTATION_DUE: &str = "rotation_due";
    pub const ROTATION_REASON: &str = "rotation_reason";
    pub const PREVIOUS_KEY_IDS: &str = "previous_key_ids";
    pub const EXCLUDED: &str = "excluded";
    pub const REMOVABLE_KEY_IDS: &str = "removable_key_ids";
}

/// The engine, or `None` with the reason it could not be built as an error.
pub async fn engine(ctx: &ProviderState, diags: &mut Diagnostics) -> Option<Engine> {
    match ctx.engine().await {
        Ok(e) => Some(e),
        Err(f) => {
            diags.error(f.summary, f.detail, None);
            None
        }
    }
}

/// A time as an RFC 3339 attribute (null when absent).
pub fn rfc3339(t: Option<time::OffsetDateTime>) -> Attr<String> {
    use time::format_description::well_known::Rfc3339;
    Attr::from_option(t.and_then(|t| t.format(&Rfc3339).ok()))
}

/// `rotation_reason` of an inspected link: why it is never rotated (`blocked`), else the
/// engine's reason while another run is in progress or a rotation is due, else `due_default`
/// when one is due without a reason; `None` when nothing is due.
pub fn rotation_reason(
    blocked: Option<&str>,
    in_progress: bool,
    rotation_due: bool,
    due_reason: Option<&String>,
    due_default: &str,
) -> Option<String> {
    match (blocked, rotation_due, due_reason) {
        (Some(b), _, _) => Some(format!("never rotated: {b}")),
        (None, _, Some(r)) if in_progress => Some(r.clone()),
        (None, true, Some(r)) => Some(r.clone()),
        (None, true, None) => Some(due_default.to_string()),
        _ => None,
    }
}

/// Decodes a value Terraform sent as a link's model (a decode failure is a provider bug).
pub fn model_of<M: Field>(what: &str, v: &Value, diags: &mut Diagnostics) -> Option<M> {
    decoded(what, M::from_value(v), diags)
}

/// A plan with no planned state (a destroy, or requests that do not decode).
pub fn no_plan() -> PlanResponse {
    PlanResponse {
        planned: Value::Null,
        requires_replace: Vec::new(),
    }
}

/// `(prior, proposed, config)` of a create or update plan; `None` for a destroy (proposed
/// null) or when a value does not decode (with the error).
pub fn plan_models<M: Field>(req: &PlanRequest<'_>, diags: &mut Diagnostics) -> Option<(M, M, M)> {
    if req.proposed.is_null() {
        return None;
    }
    let (Some(prior), Some(proposed), Some(config)) = (
        model_of("prior state", req.prior, diags),
        model_of("proposed state", req.proposed, diags),
        model_of("configuration", req.config, diags),
    ) else {
        return None;
    };
    Some((prior, proposed, config))
}

/// The engine and `(prior, planned)` of an apply; `None` (errors said) when the engine cannot
/// be built or a value does not decode: the apply then answers the prior state.
pub async fn apply_models<M: Field>(
    ctx: &ProviderState,
    req: &ApplyRequest<'_>,
    diags: &mut Diagnostics,
) -> Option<(Engine, M, M)> {
    let engine = engine(ctx, diags).await?;
    let (Some(prior), Some(planned)) = (
        model_of("prior state", req.prior, diags),
        model_of("planned state", req.planned, diags),
    ) else {
        return None;
    };
    Some((engine, prior, planned))
}

/// The attributes both link models have (`id`, the lineage, `policy`, `rotate_when_changed`),
/// declared, read and written here once; each model embeds them as its `common`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkCommon {
    /// `id`: `<application_id>/<credential_display_name>`.
    pub id: Attr<String>,
    /// `application_id`.
    pub application_id: Attr<String>,
    /// `credential_display_name`.
    pub credential_display_name: Attr<String>,
    /// `policy`, as written.
    pub policy: Attr<PolicySettings>,
    /// `rotate_when_changed`.
    pub rotate_when_changed: Attr<BTreeMap<String, Attr<String>>>,
}

impl LinkCommon {
    /// The lineage `credential_display_name` of application `application_id`, with every other
    /// attribute null (import, tests).
    pub fn of(application_id: &str, credential_display_name: &str) -> Self {
        LinkCommon {
            application_id: Attr::Known(application_id.to_string()),
            credential_display_name: Attr::Known(credential_display_name.to_string()),
            ..LinkCommon::default()
        }
    }

    /// `(application_id, credential_display_name)`, once both are known.
    pub fn lineage(&self) -> Option<(&str, &str)> {
        Some((
            self.application_id.as_deref()?,
            self.credential_display_name.as_deref()?,
        ))
    }

    /// Reads the attributes from a link's object value.
    pub fn read(r: &Reader<'_>) -> Result<Self, ModelError> {
        Ok(LinkCommon {
            id: r.get(attrs::ID)?,
            application_id: r.get(attrs::APPLICATION_ID)?,
            credential_display_name: r.get(attrs::CREDENTIAL_DISPLAY_NAME)?,
            policy: r.get(attrs::POLICY)?,
            rotate_when_changed: r.get(attrs::ROTATE_WHEN_CHANGED)?,
        })
    }

    /// Writes the attributes into a link's object value.
    pub fn write(&self, w: Writer) -> Writer {
        w.put(attrs::ID, &self.id)
            .put(attrs::APPLICATION_ID, &self.application_id)
            .put(
                attrs::CREDENTIAL_DISPLAY_NAME,
                &self.credential_display_name,
            )
            .put(attrs::POLICY, &self.policy)
            .put(attrs::ROTATE_WHEN_CHANGED, &self.rotate_when_changed)
    }
}

/// Whether two attribute values differ as Terraform compares them ([`Value::same_as`]).
pub fn differs<T: Field>(a: &T, b: &T) -> bool {
    !a.to_value().same_as(&b.to_value())
}

/// A link model: [`LinkCommon`] and what both resources derive from it.
pub trait LinkModel: Sized {
    /// The attributes both link models have.
    fn common(&self) -> &LinkCommon;
    /// The same, to change.
    fn common_mut(&mut self) -> &mut LinkCommon;

    /// The policy (null: rotor's default); `None` when unknown or invalid, with diagnostics on
    /// `policy`.
    fn policy(&self, diags: &mut Diagnostics) -> Option<Policy> {
        parse_link_policy(&self.common().policy, &AttrPath::attr(attrs::POLICY), diags)
    }

    /// The policy, or rotor's default when it does not parse (state written by this provider).
    fn policy_or_default(&self) -> Policy {
        self.policy(&mut Diagnostics::default()).unwrap_or_default()
    }

    /// `self` with `id` derived from the application id and lineage (unknown until both are).
    fn with_id(mut self) -> Self {
        let c = self.common_mut();
        c.id = match (
            c.application_id.as_deref(),
            c.credential_display_name.as_deref(),
        ) {
            (Some(a), Some(l)) => Attr::Known(LinkId::state_id(a, l)),
            _ => Attr::Unknown,
        };
        self
    }

    /// Whether `rotate_when_changed` differs from `prior`'s (null and empty are the same).
    fn triggers_differ_from(&self, prior: &Self) -> bool {
        let empty = |v: &Attr<BTreeMap<String, Attr<String>>>| {
            v.is_null() || v.known().is_some_and(BTreeMap::is_empty)
        };
        let (now, before) = (
            &self.common().rotate_when_changed,
            &prior.common().rotate_when_changed,
        );
        if empty(now) && empty(before) {
            return false;
        }
        differs(now, before)
    }

    /// Whether the policy differs from `other`'s.
    fn policy_differs_from(&self, other: &Self) -> bool {
        differs(&self.common().policy, &other.common().policy)
    }

    /// The attributes that replace the link when they change.
    fn replaced_by(&self, prior: &Self) -> Vec<AttrPath> {
        let (now, before) = (self.common(), prior.common());
        let mut out = Vec::new();
        if now.application_id != before.application_id {
            out.push(AttrPath::attr(attrs::APPLICATION_ID));
        }
        if now.credential_display_name != before.credential_display_name {
            out.push(AttrPath::attr(attrs::CREDENTIAL_DISPLAY_NAME));
        }
        out
    }

    /// The link's name in messages (`this link` while it is unknown).
    fn name_of<L: fmt::Display>(&self, link: Option<L>) -> String {
        link.map(|l| l.to_string())
            .unwrap_or_else(|| "this link".into())
    }
}

/// A target's identity: Key Vault compares vault hosts and secret (or certificate) names
/// case-insensitively, so `MyApp-Secret` and `myapp-secret` are one secret.
pub fn target_identity(vault_url: &str, secret_name: &str) -> String {
    let host = url::Url::parse(vault_url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(443)))
        })
        .unwrap_or_else(|| vault_url.to_string());
    format!(
        "{}/{}",
        host.to_ascii_lowercase(),
        secret_name.to_ascii_lowercase()
    )
}

/// Checks a vault URL: an absolute https URL with a host and no path.
pub fn parse_vault_url(url: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(url).map_err(|e| format!("not an absolute URL ({e})"))?;
    if u.scheme() != "https" {
        return Err(format!(
            "the scheme is `{}`; Key Vault is served over https",
            u.scheme()
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    if u.path() != "/" && !u.path().is_empty() {
        return Err(format!(
            "it has a path (`{}`); give the vault URL only, and the name in `secret_name`",
            u.path()
        ));
    }
    Ok(u)
}

/// How a link's set of Key Vault items (`targets`, `certificates`) is named in messages.
pub struct VaultItems {
    /// The attribute (`targets`).
    pub attr: &'static str,
    /// One element (`target`).
    pub noun: &'static str,
    /// The Key Vault object kind (`secret`).
    pub kind: &'static str,
    /// The element's name attribute (`secret_name`).
    pub name_attr: &'static str,
    /// The name in a validation error (`target secret name`).
    pub name_label: &'static str,
}

/// The models of Key Vault items as a known set (`targets`, `certificates` of an engine link).
pub fn item_set<M>(items: impl IntoIterator<Item = M>) -> Attr<Set<Attr<M>>> {
    Attr::Known(Set(items.into_iter().map(Attr::Known).collect()))
}

/// A set of Key Vault items as listed (none when the set is unknown or null).
pub fn item_list<M>(items: &Attr<Set<Attr<M>>>) -> &[Attr<M>] {
    items.known().map(|s| s.0.as_slice()).unwrap_or_default()
}

impl VaultItems {
    /// The items parsed into `(vault_url, name)` (`fields` answers an item's two attributes),
    /// deduplicated case-insensitively (first spelling kept); `None` while one is unknown, and
    /// (with an error on the attribute) when a vault URL is not one.
    pub fn parse<'a, M>(
        &self,
        items: &'a Attr<Set<Attr<M>>>,
        fields: impl Fn(&'a M) -> (&'a Attr<String>, &'a Attr<String>),
        diags: &mut Diagnostics,
    ) -> Option<Vec<(url::Url, &'a str)>> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for item in item_list(items) {
            let (url, name) = fields(item.known()?);
            let (url, name) = (url.as_deref()?, name.as_deref()?);
            match parse_vault_url(url) {
                Ok(u) => {
                    if seen.insert(target_identity(url, name)) {
                        out.push((u, name));
                    }
                }
                Err(why) => {
                    self.bad_url(url, &why, diags);
                    return None;
                }
            }
        }
        Some(out)
    }

    fn bad_url(&self, url: &str, why: &str, diags: &mut Diagnostics) {
        diags.error(
            format!("validating {} vault URL `{url}`: {why}", self.noun),
            "hint: use the vault's URI as shown in the portal, e.g. https://kv-prod.vault.azure.net/",
            Some(AttrPath::attr(self.attr)),
        );
    }

    /// Validation of the list: not empty.
    pub fn check_not_empty(&self, empty: bool, diags: &mut Diagnostics) {
        if empty {
            diags.error(
                format!(
                    "validating {}: a link needs at least one Key Vault {}",
                    self.attr, self.kind
                ),
                format!(
                    "hint: add {{ vault_url = \"https://<vault>.vault.azure.net/\", {} = \"<name>\" }}",
                    self.name_attr
                ),
                Some(AttrPath::attr(self.attr)),
            );
        }
    }

    /// Validation of one item: its vault URL and its Key Vault name, where known.
    pub fn check_item(&self, url: Option<&str>, name: Option<&str>, diags: &mut Diagnostics) {
        if let Some(url) = url
            && let Err(why) = parse_vault_url(url)
        {
            self.bad_url(url, &why, diags);
        }
        if let Some(name) = name
            && (name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            diags.error(
                format!(
                    "validating {} `{name}`: Key Vault {} names use only 0-9, a-z, A-Z and -",
                    self.name_label, self.kind
                ),
                "",
                Some(AttrPath::attr(self.attr)),
            );
        }
    }
}

/// A link the provider inspects through the engine, with its status cached between RPCs.
#[async_trait]
pub trait EngineLink: fmt::Display + Sync {
    /// What the engine's read-only inspection answers.
    type Status: Clone + Send + Sync + 'static;
    /// The application's appId.
    fn application_id(&self) -> &str;
    /// What identifies the link's status besides its application and policy.
    fn status_key(&self) -> String;
    /// The vaults whose scope scans the inspection reads (warmed once per process first);
    /// `None` when it reads no scope scan.
    fn scanned_vaults(&self) -> Option<Vec<url::Url>>;
    /// The engine's inspection.
    async fn inspect_with(
        &self,
        engine: &Engine,
        policy: &Policy,
    ) -> rotor_engine::Result<Self::Status>;
    /// Whether a dry-run cleanup may find something to remove now: nothing keeps the provider
    /// from cleaning up (in progress, excluded, never rotated) and the engine's time rules
    /// already allow removing an older credential (the status's `cleanup_from`).
    fn cleanup_worth_asking(s: &Self::Status, policy: &Policy, now: OffsetDateTime) -> bool;
    /// The engine's cleanup of the lineage as a dry run: what it would remove.
    async fn cleanup_dry_run(
        &self,
        engine: &Engine,
        policy: &Policy,
    ) -> rotor_engine::Result<CleanupOutcome>;
}

/// The old credentials of the lineage cleanup would remove now (a dry-run cleanup, so the same
/// proof as `rotor cleanup`), asked only when [`EngineLink::cleanup_worth_asking`], so a calm
/// link costs no extra request. Blocked links are never cleaned up by the provider.
pub async fn removable_now<L: EngineLink>(
    engine: &Engine,
    link: &L,
    policy: &Policy,
    s: &L::Status,
) -> Vec<String> {
    if !L::cleanup_worth_asking(s, policy, engine.now()) {
        return Vec::new();
    }
    match link.cleanup_dry_run(engine, policy).await {
        Ok(o) => o.removed_key_ids,
        Err(e) => {
            tracing::warn!("checking what cleanup of {link} would remove: {e}");
            Vec::new()
        }
    }
}

/// `<lineage>|[<item keys, lower case>]`.
fn lineage_key(lineage: &str, keys: impl Iterator<Item = String>) -> String {
    let keys: Vec<String> = keys.map(|k| k.to_ascii_lowercase()).collect();
    format!("{lineage}|{keys:?}")
}

#[async_trait]
impl EngineLink for Link {
    type Status = LinkStatus;
    fn application_id(&self) -> &str {
        &self.application_id
    }
    fn status_key(&self) -> String {
        lineage_key(
            &self.credential_display_name,
            self.targets.iter().map(|t| t.key()),
        )
    }
    fn scanned_vaults(&self) -> Option<Vec<url::Url>> {
        Some(self.targets.iter().map(|t| t.vault_url.clone()).collect())
    }
    async fn inspect_with(
        &self,
        engine: &Engine,
        policy: &Policy,
    ) -> rotor_engine::Result<LinkStatus> {
        engine.inspect_link(self, policy).await
    }
    fn cleanup_worth_asking(s: &LinkStatus, policy: &Policy, now: OffsetDateTime) -> bool {
        let blocked = s.in_progress
            || crate::resources::secret_link::model::status_never_rotated(s, policy).is_some();
        !blocked && s.cleanup_from.is_some_and(|t| t <= now)
    }
    async fn cleanup_dry_run(
        &self,
        engine: &Engine,
        policy: &Policy,
    ) -> rotor_engine::Result<CleanupOutcome> {
        engine.cleanup(self, policy, true).await
    }
}

#[async_trait]
impl EngineLink for CertificateLink {
    type Status = CertificateLinkStatus;
    fn application_id(&self) -> &str {
        &self.application_id
    }
    fn status_key(&self) -> String {
        lineage_key(
            &format!("certificate:{}", self.credential_display_name),
            self.certificates.iter().map(|c| c.key()),
        )
    }
    fn scanned_vaults(&self) -> Option<Vec<url::Url>> {
        None
    }
    async fn inspect_with(
        &self,
        engine: &Engine,
        policy: &Policy,
    ) -> rotor_engine::Result<CertificateLinkStatus> {
        engine.inspect_certificate_link(self, policy).await
    }
    fn cleanup_worth_asking(s: &CertificateLinkStatus, _: &Policy, now: OffsetDateTime) -> bool {
        !s.in_progress && s.excluded.is_none() && s.cleanup_from.is_some_and(|t| t <= now)
    }
    async fn cleanup_dry_run(
        &self,
        engine: &Engine,
        policy: &Policy,
    ) -> rotor_engine::Result<CleanupOutcome> {
        engine.cleanup_certificate(self, policy, true).await
    }
}

/// The link's status: once per RPC, and reused by later RPCs of this process (a create's plan,
/// then its apply) unless `fresh` (refresh) or this process wrote to the link's application
/// since ([`ProviderState::forget_status`]). Warms the vaults' scope scans and batches the
/// application read with the other links' first.
pub async fn inspect<L: EngineLink>(
    ctx: &ProviderState,
    engine: &Engine,
    link: &L,
    policy: &Policy,
    fresh: bool,
) -> rotor_engine::Result<L::Status> {
    let key = format!(
        "{}|{}|{policy:?}",
        link.application_id().to_ascii_lowercase(),
        link.status_key()
    );
    if !fresh && let Some(s) = ctx.cached_status::<L::Status>(&key) {
        return Ok(s);
    }
    if let Some(vaults) = link.scanned_vaults() {
        ctx.warm_scope(engine, &vaults).await;
    }
    ctx.batch_application(engine, link.application_id()).await;
    let s = link.inspect_with(engine, policy).await?;
    ctx.put_status(key, &s);
    Ok(s)
}

/// The key credential or client secret an import id names: the key id itself, or the newest
/// credential of the lineage it names. `credentials(app, lineage)` answers the newest key id of
/// the lineage among the application's credentials of `K`'s kind, and the lineage names those
/// credentials have. `None` with the error (naming those lineages) otherwise.
pub async fn import_key_id<K: LinkKind, C>(
    engine: &Engine,
    id: &str,
    parsed: LinkImport,
    credentials: C,
    diags: &mut Diagnostics,
) -> Option<(String, String)>
where
    C: Fn(&rotor_engine::Application, &str) -> (Option<String>, BTreeSet<String>),
{
    let (type_name, one) = (K::TYPE_NAME, K::CREDENTIAL);
    let l = match parsed {
        LinkImport::KeyId {
            application_id,
            key_id,
        } => return Some((application_id, key_id)),
        LinkImport::Lineage(l) => l,
    };
    let app = match engine.get_application(&l.application_id).await {
        Ok(a) => a,
        Err(e) => return import_failed::<K, _>(id, &e, hint_lines(&e.hints()), diags),
    };
    let (newest, names) = credentials(&app, &l.credential_display_name);
    if let Some(k) = newest {
        return Some((l.application_id, k));
    }
    let names: BTreeSet<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    diags.error(
        format!(
            "importing {type_name} `{id}`: application {} has no {one} named `{}`",
            l.application_id, l.credential_display_name
        ),
        if names.is_empty() {
            K::NO_CREDENTIALS.to_string()
        } else {
            format!(
                "hint: its {one}s are named {}; import `{}/<one of those>`",
                names.into_iter().collect::<Vec<_>>().join(", "),
                l.application_id
            )
        },
        None,
    );
    None
}

/// `None`, with the error of an import of `id` that failed with `error`; `detail` holds the hints.
pub fn import_failed<K: LinkKind, T>(
    id: &str,
    error: &rotor_engine::Error,
    detail: String,
    diags: &mut Diagnostics,
) -> Option<T> {
    diags.error(
        format!("importing {} `{id}`: {error}", K::TYPE_NAME),
        detail,
        None,
    );
    None
}

/// The import id parsed; `None` with the error naming both forms and an example.
pub fn parse_import(
    type_name: &str,
    id: &str,
    example_lineage: &str,
    diags: &mut Diagnostics,
) -> Option<LinkImport> {
    match parse_link_import(id) {
        Ok(p) => Some(p),
        Err(why) => {
            diags.error(
                format!("importing {type_name} `{id}`: {why}"),
                format!(
                    "The id is {LINK_IMPORT_FORMS}.\nhint: terraform import {type_name}.example \"<application (client) id>/{example_lineage}\""
                ),
                None,
            );
            None
        }
    }
}

/// What a link resource does its own way. [`LinkResource`] serves it to Terraform with the flow
/// both link resources share: decode the request into models, then validate, refresh, plan,
/// apply, destroy or import through these hooks, and encode the answer (with the `id`).
#[async_trait]
pub trait LinkKind: Send + Sync + 'static {
    /// The resource's value: configuration and status.
    type Model: LinkModel + Field + Clone + Send + Sync;
    /// The engine link a model describes.
    type Link: EngineLink + Send + Sync;
    /// `rotor_secret_link`, `rotor_certificate_link`.
    const TYPE_NAME: &'static str;
    /// The Key Vault objects a link names, in messages (`secrets`).
    const ITEMS: &'static str;
    /// A lineage name for the import example (`Secret 1`).
    const EXAMPLE_LINEAGE: &'static str;
    /// The application's credentials a link holds, one of them (`client secret`).
    const CREDENTIAL: &'static str;
    /// Why an application has no lineage to import (`It has no client secrets.`).
    const NO_CREDENTIALS: &'static str;
    /// Where engine errors about the link land.
    const PLACEMENT: Placement;

    /// The schema.
    fn schema(&self) -> Schema;
    /// The engine link `model` describes ([`LinkModel`]'s `link`).
    fn link_of(model: &Self::Model, diags: &mut Diagnostics) -> Option<Self::Link>;
    /// Validation of the Key Vault items (lineage and policy are validated by the caller).
    fn validate_items(&self, config: &Self::Model, diags: &mut Diagnostics);
    /// Refresh: reads the link's status (afresh) into `out`, with the warnings every refresh
    /// gives; `before` is the state refreshed.
    #[allow(clippy::too_many_arguments)]
    async fn refresh(
        &self,
        ctx: &ProviderState,
        engine: &Engine,
        link: &Self::Link,
        policy: &Policy,
        before: &Self::Model,
        out: &mut Self::Model,
        diags: &mut Diagnostics,
    ) -> rotor_engine::Result<()>;
    /// Whether `NotFound` from a refresh means the application is gone (the link with it).
    async fn application_gone(
        &self,
        engine: &Engine,
        link: &Self::Link,
        error: &rotor_engine::Error,
    ) -> bool;
    /// Before any plan of a create or update: `Some` (with errors) stops the plan there.
    fn before_plan(
        &self,
        _ctx: &ProviderState,
        _config: &Self::Model,
        _proposed: &Self::Model,
        _diags: &mut Diagnostics,
    ) -> Option<PlanResponse> {
        None
    }
    /// Every status attribute of `model` unknown (apply decides them).
    fn unknown_status(model: &mut Self::Model);
    /// What the plan-time look at Azure ([`preview`]) of a create (`creating`) or a policy
    /// change found: errors on the right attribute, warnings on what apply will do.
    async fn previewed(
        &self,
        engine: &Engine,
        link: &Self::Link,
        policy: &Policy,
        status: &<Self::Link as EngineLink>::Status,
        creating: bool,
        diags: &mut Diagnostics,
    );
    /// Plans an in-place update of `prior` to `planned` (not a create, not a replacement, a
    /// known and valid policy).
    async fn plan_update(
        &self,
        ctx: &ProviderState,
        prior: Self::Model,
        planned: Self::Model,
        config: Self::Model,
        update: PlanUpdate,
        diags: &mut Diagnostics,
    ) -> PlanResponse;
    /// Destroy: `false` when the link must stay in state.
    async fn destroy(
        &self,
        ctx: &ProviderState,
        engine: &Engine,
        prior: &Self::Model,
        diags: &mut Diagnostics,
    ) -> bool;
    /// Applies a create or an update: the new state, or `None` when nothing was done (the prior
    /// state stays; a create leaves none).
    async fn apply_change(
        &self,
        ctx: &ProviderState,
        engine: &Engine,
        creating: bool,
        prior: &Self::Model,
        planned: &Self::Model,
        diags: &mut Diagnostics,
    ) -> Option<Self::Model>;
    /// Import: the configuration of the link `parsed` names (refreshed by the caller).
    async fn import_link(
        &self,
        ctx: &ProviderState,
        engine: &Engine,
        id: &str,
        parsed: LinkImport,
        diags: &mut Diagnostics,
    ) -> Option<Self::Model>;
}

/// Plan-time look at Azure for a create (`creating`) or a policy change of `config`: errors
/// (such as an unknown application) surface at plan time, on the right attribute, with
/// [`LinkKind::previewed`]'s warnings; `None` when Azure could not be asked (or `config` is not
/// known yet).
pub async fn preview<K: LinkKind>(
    kind: &K,
    ctx: &ProviderState,
    config: &K::Model,
    creating: bool,
    diags: &mut Diagnostics,
) -> Option<<K::Link as EngineLink>::Status> {
    if config.to_value().contains_unknown() {
        return None;
    }
    let link = K::link_of(config, diags)?;
    let policy = config.policy(diags)?;
    let engine = engine(ctx, diags).await?;
    match inspect(ctx, &engine, &link, &policy, false).await {
        Ok(status) => {
            kind.previewed(&engine, &link, &policy, &status, creating, diags)
                .await;
            Some(status)
        }
        Err(e) => {
            engine_error(diags, &e, &K::PLACEMENT);
            None
        }
    }
}

/// What an in-place update plan starts from.
pub struct PlanUpdate {
    /// The policy that will apply.
    pub policy: Policy,
    /// Whether the configured policy differs from the prior state's.
    pub policy_changed: bool,
    /// Empty (kept for the response).
    pub requires_replace: Vec<AttrPath>,
    /// The link's name in messages.
    pub name: String,
}

/// The plan answering `planned` (with its `id`).
pub fn planned_as<M: LinkModel + Field>(
    planned: M,
    requires_replace: Vec<AttrPath>,
) -> PlanResponse {
    PlanResponse {
        planned: planned.with_id().to_value(),
        requires_replace,
    }
}

/// A link resource served to Terraform.
pub struct LinkResource<K>(pub K);

impl<K: LinkKind> LinkResource<K> {
    /// `base` with its status read from Azure (import); `None` with the error.
    async fn refreshed(
        &self,
        ctx: &ProviderState,
        engine: &Engine,
        base: &K::Model,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        let link = K::link_of(base, diags)?;
        let policy = base.policy_or_default();
        let mut out = base.clone();
        match self
            .0
            .refresh(ctx, engine, &link, &policy, base, &mut out, diags)
            .await
        {
            Ok(()) => Some(out.with_id().to_value()),
            Err(e) => {
                engine_error(diags, &e, &K::PLACEMENT);
                None
            }
        }
    }
}

#[async_trait]
impl<K: LinkKind> Resource for LinkResource<K> {
    fn type_name(&self) -> &'static str {
        K::TYPE_NAME
    }

    fn schema(&self) -> Schema {
        self.0.schema()
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let Some(config) = model_of::<K::Model>("configuration", config, diags) else {
            return;
        };
        validate_lineage(
            config.common().application_id.as_deref(),
            config.common().credential_display_name.as_deref(),
            diags,
        );
        self.0.validate_items(&config, diags);
        let _ = config.policy(diags);
    }

    async fn read(
        &self,
        ctx: &ProviderState,
        state: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        let engine = engine(ctx, diags).await?;
        let prior = model_of::<K::Model>("current state", state, diags)?;
        let link = K::link_of(&prior, diags)?;
        let policy = prior.policy_or_default();
        let mut out = prior.clone();
        match self
            .0
            .refresh(ctx, &engine, &link, &policy, &prior, &mut out, diags)
            .await
        {
            Ok(()) => Some(out.with_id().to_value()),
            Err(e)
                if e.kind() == ErrorKind::NotFound
                    && self.0.application_gone(&engine, &link, &e).await =>
            {
                diags.warning(
                    format!("refreshing {link}: {e}"),
                    format!(
                        "The application no longer exists, so the link is removed from state; the Key Vault {} \
                         are left as they are.",
                        K::ITEMS
                    ),
                    None,
                );
                None
            }
            Err(e) => {
                engine_error(diags, &e, &K::PLACEMENT);
                Some(state.clone())
            }
        }
    }

    async fn plan(
        &self,
        ctx: &ProviderState,
        req: PlanRequest<'_>,
        diags: &mut Diagnostics,
    ) -> PlanResponse {
        let Some((prior, proposed, config)) = plan_models::<K::Model>(&req, diags) else {
            return no_plan();
        };
        if let Some(stop) = self.0.before_plan(ctx, &config, &proposed, diags) {
            return stop;
        }
        let mut planned = proposed;
        if req.prior.is_null() {
            // Create: every computed attribute is decided by apply.
            K::unknown_status(&mut planned);
            let _ = preview(&self.0, ctx, &config, true, diags).await;
            return planned_as(planned, Vec::new());
        }
        let requires_replace = planned.replaced_by(&prior);
        if !requires_replace.is_empty() {
            K::unknown_status(&mut planned);
            return planned_as(planned, requires_replace);
        }
        let Some(policy) = config.policy(diags) else {
            // unknown or invalid policy: decide at apply
            K::unknown_status(&mut planned);
            return planned_as(planned, requires_replace);
        };
        let update = PlanUpdate {
            policy,
            policy_changed: prior.policy_differs_from(&config),
            requires_replace,
            name: prior.name_of(K::link_of(&prior, &mut Diagnostics::default())),
        };
        self.0
            .plan_update(ctx, prior, planned, config, update, diags)
            .await
    }

    async fn apply(
        &self,
        ctx: &ProviderState,
        req: ApplyRequest<'_>,
        diags: &mut Diagnostics,
    ) -> Value {
        let Some((engine, prior, planned)) = apply_models::<K::Model>(ctx, &req, diags).await
        else {
            return req.prior.clone();
        };
        if req.planned.is_null() {
            return if self.0.destroy(ctx, &engine, &prior, diags).await {
                Value::Null
            } else {
                req.prior.clone()
            };
        }
        let creating = req.prior.is_null();
        match self
            .0
            .apply_change(ctx, &engine, creating, &prior, &planned, diags)
            .await
        {
            Some(_) if creating && diags.has_errors() => Value::Null,
            Some(out) => out.with_id().to_value(),
            None if creating => Value::Null,
            None => req.prior.clone(),
        }
    }

    async fn import(
        &self,
        ctx: &ProviderState,
        id: &str,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        let parsed = parse_import(K::TYPE_NAME, id, K::EXAMPLE_LINEAGE, diags)?;
        let engine = engine(ctx, diags).await?;
        let base = self.0.import_link(ctx, &engine, id, parsed, diags).await?;
        self.refreshed(ctx, &engine, &base, diags).await
    }
}
