//! `rotor_certificate_link`: one certificate credential lineage of one application and the Key
//! Vault certificate(s) that hold it (matched by thumbprint). `terraform apply` rotates: Key
//! Vault makes the new version from the certificate's own policy (the private key never leaves
//! Key Vault), rotor adds its public key to the application and proves it signs in
//! (docs/protocol.md, "Certificates").
//!
//! - Refresh: `engine.inspect_certificate_link` (read-only) fills the computed attributes.
//! - Plan: a due rotation, a due **sync** (Key Vault holds a version the application lacks, e.g.
//!   from AutoRenew) or a forced one (`rotate_when_changed`) is an in-place update with the key
//!   id etc. unknown and a warning saying why; an excluded link is never rotated and the plan
//!   says so; old key credentials cleanup would remove are planned as for secret links.
//! - Create adopts what the certificates hold; a due link rotates (or syncs) on its first apply.
//! - `-replace` / `taint` rotate, as for `rotor_secret_link`.
//! - Import by `<application_id>/<credential_display_name>` (the `id`) or
//!   `<application_id>/<key_id>` (parsed in [`crate::ids`]) via `engine.adopt_certificate`.
//! - Destroy forgets the link: no Key Vault certificate and no key credential is deleted. State
//!   holds ids, thumbprints, dates and versions — never key material.

pub mod model;

use std::collections::BTreeSet;

use async_trait::async_trait;
use rotor_engine::{
    AuditRecord, CertificateLink, CertificateLinkStatus, Config, Engine, ErrorKind, Policy,
    RotateOptions, RotationStatus,
};

use crate::framework::{AttrPath, Diagnostics, PlanResponse};
use crate::ids::LinkImport;
use crate::lifecycle::{TerraformProgress, terraform_gone};
use crate::model::Attr;
use crate::notify::Outcome;
use crate::provider::{ProviderState, hint_lines};
use crate::resources::diag::{Placement, engine_error};
use crate::resources::link::{self, LinkKind, LinkModel, PlanUpdate, target_identity};
use crate::resources::policy::link_policy_type;
use crate::schema::{Attribute, Schema};
use crate::value::Type;
pub use model::{
    CERTIFICATES, CertStatusModel, CertificateLinkModel, CertificateModel, PLACEMENT, attrs,
};

/// The resource.
pub struct CertificateLinkResource;

const TYPE_NAME: &str = "rotor_certificate_link";

/// The key under which `-replace` is remembered (apart from secret lineages of the same name).
fn replace_key(credential_display_name: &str) -> String {
    format!("certificate:{credential_display_name}")
}

fn schema() -> Schema {
    Schema {
        version: 0,
        description: "Links one certificate-credential lineage of an Entra ID application (`application_id` + \
            `credential_display_name`) to the Key Vault certificate(s) that hold it, matched by thumbprint. Refresh \
            reads Azure; when a rotation is due (or forced with `rotate_when_changed`), or Key Vault holds a version \
            the application lacks (AutoRenew: a *sync*), the plan shows an in-place update with a warning saying \
            why, and `terraform apply` runs rotor's certificate protocol: Key Vault makes the new version from the \
            certificate's own policy (the private key never leaves Key Vault), rotor adds its public key to the \
            application, proves it signs in, and removes old key credentials it added after the grace period. \
            Creating a link adopts what the certificates hold. Replacing it (`-replace`, `taint`) rotates. \
            Destroying a link deletes no Key Vault certificate and no key credential. No key material is ever \
            stored in state or plan.",
        attributes: vec![
            Attribute::computed(attrs::ID, Type::String, "`<application_id>/<credential_display_name>`; `terraform import` takes this id (or `<application_id>/<key_id>`)."),
            Attribute::required(attrs::APPLICATION_ID, Type::String, "Application (client) id of the App Registration whose certificate is rotated. Changing it replaces the link.").force_new(),
            Attribute::required(attrs::CREDENTIAL_DISPLAY_NAME, Type::String, "Display name of the certificate-credential lineage (the key credentials' `displayName`, e.g. `tls`). rotor names the key credentials it adds `<credential_display_name> rotor:<rotation id>`, so the lineage survives rotations. Changing it replaces the link.").force_new(),
            Attribute::required(attrs::CERTIFICATES, Type::set(CertificateModel::ty()), "Key Vault certificates that hold the lineage: a set of objects with `vault_url` (e.g. `https://kv-prod.vault.azure.net/`) and `certificate_name`. Every certificate's current version is kept on the application (sync); a rotation makes a new version in exactly one of them (with several, a due rotation is refused naming them). rotor never copies a certificate between vaults."),
            Attribute::optional(attrs::POLICY, link_policy_type(), "Rotation policy: pass a whole `rotor_policy` (`policy = rotor_policy.standard`) or an object with `rotate_before_expiry_days`, `grace_period_days` and `exclusions` (`new_secret_validity_days` and `min_confidence` do not apply: a new version's lifetime comes from the certificate's Key Vault policy, and certificates are matched by thumbprint). Defaults to rotor's default policy."),
            Attribute::optional(attrs::ROTATE_WHEN_CHANGED, Type::map(Type::String), "Arbitrary map of values; any change to it forces a rotation (a new Key Vault version) on the next apply."),
            Attribute::computed(attrs::KEY_ID, Type::String, "Key id of the application's key credential that holds the current certificate version."),
            Attribute::computed(attrs::THUMBPRINT, Type::String, "SHA-1 thumbprint (upper-case hex) of the current certificate version."),
            Attribute::computed(attrs::EXPIRES_AT, Type::String, "When the current certificate version expires (RFC 3339)."),
            Attribute::computed(attrs::ROTATED_AT, Type::String, "When the current key credential starts, i.e. the last rotation or sync (RFC 3339)."),
            Attribute::computed(attrs::NEXT_ROTATION_AT, Type::String, "When policy wants the next rotation: expiry minus `rotate_before_expiry_days` (RFC 3339)."),
            Attribute::computed(attrs::ROTATION_DUE, Type::Bool, "Whether a rotation or a sync is due now; the next apply performs it."),
            Attribute::computed(attrs::ROTATION_REASON, Type::String, "Why a rotation or sync is due, or why the link is never rotated (excluded); null when nothing is due."),
            Attribute::computed(attrs::PREVIOUS_KEY_IDS, Type::list(Type::String), "Key ids of the lineage's older key credentials still on the application, oldest first."),
            Attribute::computed(attrs::VERSIONS, Type::map(Type::String), "Current Key Vault version per certificate, keyed by `<vault_url><certificate_name>`."),
            Attribute::computed(attrs::EXCLUDED, Type::String, "The policy exclusion that matches this link; null when not excluded. Excluded links are never rotated."),
            Attribute::computed(attrs::REMOVABLE_KEY_IDS, Type::list(Type::String), "Key ids of old key credentials rotor added to this lineage that cleanup removes now (they expired, or their successor's grace period is over, and no certificate in scope holds them as current). When not empty the plan shows an in-place update with a warning, and apply removes them."),
        ],
    }
}

/// Status plus what cleanup would remove, into `status`; the status is read afresh when
/// `fresh` (refresh), else it may be one an earlier RPC of this process read ([`link::inspect`]).
async fn observe(
    ctx: &ProviderState,
    engine: &Engine,
    link: &CertificateLink,
    policy: &Policy,
    status: &mut CertStatusModel,
    fresh: bool,
) -> rotor_engine::Result<CertificateLinkStatus> {
    let s = link::inspect(ctx, engine, link, policy, fresh).await?;
    status.observe(&s);
    status.removable_key_ids = Attr::Known(link::removable_now(engine, link, policy, &s).await);
    Ok(s)
}

/// A warning on every refresh of an excluded link whose certificate is due or expired.
fn blocked_warning(
    engine: &Engine,
    link: &CertificateLink,
    s: &CertificateLinkStatus,
    diags: &mut Diagnostics,
) {
    let Some(pattern) = s.excluded.as_deref() else {
        return;
    };
    let now = engine.now();
    let fact = match (s.current_expires_at, s.next_rotation_at) {
        (Some(end), _) if end <= now => "its certificate has expired",
        (_, Some(next)) if next <= now => "its certificate is due for rotation",
        _ => return,
    };
    diags.warning(
        format!("{link} will not be rotated: it is excluded by policy exclusion `{pattern}`"),
        format!(
            "{fact}.\nhint: remove the exclusion `{pattern}` from the policy to let rotor rotate it"
        ),
        None,
    );
}

/// Reports a rotation that did not succeed (a failure is an error on the attribute its subject
/// names).
fn report_rotation(link: &CertificateLink, record: &AuditRecord, diags: &mut Diagnostics) {
    match record.status {
        RotationStatus::Success => tracing::info!(
            "rotated {link}: {} -> {}",
            record.old_thumbprint.as_deref().unwrap_or("none"),
            record.new_thumbprint.as_deref().unwrap_or("none")
        ),
        RotationStatus::Skipped | RotationStatus::Excluded => diags.warning(
            format!(
                "rotating {link}: {}",
                if record.status == RotationStatus::Skipped {
                    "skipped"
                } else {
                    "excluded by policy"
                }
            ),
            record
                .error
                .clone()
                .or_else(|| record.notes.first().cloned())
                .unwrap_or_default(),
            None,
        ),
        RotationStatus::Failed => {
            let summary = match record.error.as_deref() {
                Some(e) if e.starts_with("rotating ") => e.to_string(),
                Some(e) => format!("rotating {link}: {e}"),
                None => format!("rotating {link}: failed"),
            };
            let mut detail = Vec::new();
            if !record.hints.is_empty() {
                detail.push(hint_lines(&record.hints));
            }
            detail.push(
                "The current certificate stays on the application; run apply again to resume (a new Key Vault \
                 version already made is synced, not made again)."
                    .into(),
            );
            diags.error(summary, detail.join("\n"), PLACEMENT.record_path(record));
        }
    }
}

impl CertificateLinkResource {
    #[allow(clippy::too_many_arguments)]
    async fn apply_link(
        &self,
        ctx: &ProviderState,
        engine: &Engine,
        creating: bool,
        prior: &CertificateLinkModel,
        planned: &CertificateLinkModel,
        link: &CertificateLink,
        policy: &Policy,
        sent: &mut Outcome,
        diags: &mut Diagnostics,
    ) -> Option<CertificateLinkModel> {
        let status = match link::inspect(ctx, engine, link, policy, false).await {
            Ok(s) => s,
            Err(e) => {
                sent.failed(format!("reading {link}: {e}"));
                engine_error(diags, &e, &PLACEMENT);
                return None;
            }
        };
        let observed = CertStatusModel::observed(&status);
        let replaced = creating
            && ctx.take_destroyed(
                &link.application_id,
                &replace_key(&link.credential_display_name),
            );
        let forced = replaced || (!creating && planned.triggers_differ_from(prior));
        let rotate = observed.never_rotated().is_none() && (observed.due() || forced);
        let planned_rotation = planned.status.key_id.is_unknown();
        let planned_cleanup = !creating && planned.status.removable_key_ids.is_unknown();
        let mut rotated = false;
        if rotate && (planned_rotation || creating) {
            let opts = RotateOptions {
                dry_run: false,
                force: forced,
                validity_days: None,
                replace_key_id: if replaced {
                    status.current_key_id.clone()
                } else if forced {
                    prior.status.key_id.known().cloned()
                } else {
                    None
                },
            };
            ctx.forget_status(&link.application_id);
            let record = engine
                .rotate_certificate(link, policy, &opts, &TerraformProgress)
                .await;
            sent.record(&record);
            rotated = record.status == RotationStatus::Success;
            report_rotation(link, &record, diags);
        } else if rotate {
            diags.warning(
                format!("{link} became due after the plan"),
                "the next plan will show the rotation",
                None,
            );
        }
        if (rotated || planned_cleanup) && !diags.has_errors() && !terraform_gone() {
            ctx.forget_status(&link.application_id);
            let cleaned = engine.cleanup_certificate(link, policy, false).await;
            sent.cleanup(&cleaned);
            match cleaned {
                Ok(o) if !o.removed_key_ids.is_empty() => tracing::info!(
                    "{link}: removed old key credentials {}",
                    o.removed_key_ids.join(", ")
                ),
                Ok(_) => {}
                Err(e) if rotated => diags.warning(
                    format!("cleaning up old key credentials of {link}: {e}"),
                    hint_lines(&e.hints()),
                    None,
                ),
                Err(e) => engine_error(diags, &e, &PLACEMENT),
            }
        }
        let mut out = planned.clone();
        if let Err(e) = observe(ctx, engine, link, policy, &mut out.status, false).await {
            engine_error(diags, &e, &PLACEMENT);
            out.status.observe(&status);
        }
        out.status.keep_planned(&planned.status);
        let moved_on = out.status.key_id.as_deref() != prior.status.key_id.as_deref();
        if forced && diags.has_errors() && !moved_on {
            // Nothing of the forced rotation happened: keep the old triggers so the next plan
            // forces it again.
            out.common.rotate_when_changed = prior.common.rotate_when_changed.clone();
        }
        Some(out)
    }
}

#[async_trait]
impl LinkKind for CertificateLinkResource {
    type Model = CertificateLinkModel;
    type Link = CertificateLink;
    const TYPE_NAME: &'static str = TYPE_NAME;
    const ITEMS: &'static str = "certificates";
    const EXAMPLE_LINEAGE: &'static str = "tls";
    const CREDENTIAL: &'static str = "certificate";
    const NO_CREDENTIALS: &'static str = "It has no certificates (key credentials).";
    const PLACEMENT: Placement = PLACEMENT;

    fn schema(&self) -> Schema {
        schema()
    }

    fn link_of(model: &CertificateLinkModel, diags: &mut Diagnostics) -> Option<CertificateLink> {
        model.link(diags)
    }

    fn validate_items(&self, config: &CertificateLinkModel, diags: &mut Diagnostics) {
        if let Some(certs) = config.certificates.known() {
            CERTIFICATES.check_not_empty(certs.0.is_empty(), diags);
            let mut seen = BTreeSet::new();
            for c in certs.0.iter().filter_map(Attr::known) {
                let (url, name) = (c.vault_url.as_deref(), c.certificate_name.as_deref());
                if let (Some(url), Some(name)) = (url, name)
                    && !seen.insert(target_identity(url, name))
                {
                    diags.error(
                        format!("validating certificates: `{url}{name}` is listed twice"),
                        "Key Vault names (vaults and certificates) are case-insensitive.\nhint: list it once",
                        Some(AttrPath::attr(attrs::CERTIFICATES)),
                    );
                }
                CERTIFICATES.check_item(url, name, diags);
            }
        }
    }

    async fn refresh(
        &self,
        ctx: &ProviderState,
        engine: &Engine,
        link: &CertificateLink,
        policy: &Policy,
        _before: &CertificateLinkModel,
        out: &mut CertificateLinkModel,
        diags: &mut Diagnostics,
    ) -> rotor_engine::Result<()> {
        let s = observe(ctx, engine, link, policy, &mut out.status, true).await?;
        blocked_warning(engine, link, &s, diags);
        Ok(())
    }

    /// The link is gone only when the application is (a missing Key Vault certificate is an
    /// error on `certificates`, and the link stays).
    async fn application_gone(
        &self,
        engine: &Engine,
        link: &CertificateLink,
        _: &rotor_engine::Error,
    ) -> bool {
        engine
            .get_application(&link.application_id)
            .await
            .is_err_and(|g| g.kind() == ErrorKind::NotFound)
    }

    async fn previewed(
        &self,
        _: &Engine,
        link: &CertificateLink,
        _: &Policy,
        status: &CertificateLinkStatus,
        creating: bool,
        diags: &mut Diagnostics,
    ) {
        let observed = CertStatusModel::observed(status);
        if let Some(b) = observed.never_rotated() {
            diags.warning(
                format!("{link} is never rotated: {b}"),
                "rotor keeps reporting this link but will not change it.\nhint: remove the exclusion to allow rotation",
                None,
            );
        } else if creating && observed.due() {
            diags.warning(
                format!(
                    "creating this link {} {link} at once: {}",
                    if status.pending_version.is_some() { "syncs" } else { "rotates" },
                    observed.rotation_reason.as_deref().unwrap_or_default()
                ),
                "apply adds the certificate's new Key Vault version to the application, proves it signs in and \
                 keeps the old key credential for the grace period",
                None,
            );
        }
    }

    fn unknown_status(model: &mut CertificateLinkModel) {
        model.status = CertStatusModel::unknown();
    }

    /// Plans an in-place update.
    async fn plan_update(
        &self,
        ctx: &ProviderState,
        prior: CertificateLinkModel,
        mut planned: CertificateLinkModel,
        config: CertificateLinkModel,
        update: PlanUpdate,
        diags: &mut Diagnostics,
    ) -> PlanResponse {
        let PlanUpdate {
            policy_changed,
            requires_replace,
            name,
            ..
        } = update;
        let status = if policy_changed {
            link::preview(self, ctx, &planned.clone().with_id(), false, diags)
                .await
                .map(|s| CertStatusModel::observed(&s))
                .unwrap_or_default()
        } else {
            prior.status.clone()
        };
        let blocked = status.never_rotated();
        let due = status.due() && blocked.is_none();
        let forced = config.triggers_differ_from(&prior);
        if let Some(b) = &blocked {
            if forced {
                diags.warning(
                    format!("{name} is not rotated: {b}"),
                    "rotor never rotates excluded links.\nhint: remove the exclusion",
                    None,
                );
            }
        } else if due || forced {
            let why = if forced && !due {
                "`rotate_when_changed` changed".to_string()
            } else {
                status
                    .rotation_reason
                    .known()
                    .cloned()
                    .unwrap_or_else(|| "a rotation is due".into())
            };
            diags.warning(
                format!("{name} will be rotated: {why}"),
                "apply makes (or adopts) the certificate's new Key Vault version, adds its public key to the \
                 application, proves it signs in and keeps the old key credential for the grace period; the new key \
                 id and thumbprint are known after apply",
                None,
            );
            planned.status = CertStatusModel::unknown();
            return link::planned_as(planned, requires_replace);
        }
        let cleanup: Vec<String> = if blocked.is_none() {
            prior
                .status
                .removable_key_ids
                .known()
                .cloned()
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        if !cleanup.is_empty() {
            diags.warning(
                format!(
                    "{name}: apply removes {} old key credential(s) whose grace period is over: {}",
                    cleanup.len(),
                    cleanup.join(", ")
                ),
                "rotor added them; no Key Vault certificate in scope holds them as its current version. No Key Vault \
                 certificate is changed.",
                None,
            );
            planned.status.previous_key_ids = Attr::Unknown;
            planned.status.removable_key_ids = Attr::Unknown;
        }
        if policy_changed || prior.other_config_differs_from(&planned) {
            planned.status.unknown_but_credential();
        }
        link::planned_as(planned, requires_replace)
    }

    /// Destroy: forget. Nothing in Key Vault or Entra is deleted. A create of the same lineage
    /// later in this apply is a replacement and rotates.
    async fn destroy(
        &self,
        ctx: &ProviderState,
        _: &Engine,
        prior: &CertificateLinkModel,
        _: &mut Diagnostics,
    ) -> bool {
        if let Some((a, c)) = prior.common.lineage() {
            ctx.note_destroyed(a, &replace_key(c));
        }
        true
    }

    async fn apply_change(
        &self,
        ctx: &ProviderState,
        engine: &Engine,
        creating: bool,
        prior: &CertificateLinkModel,
        planned: &CertificateLinkModel,
        diags: &mut Diagnostics,
    ) -> Option<CertificateLinkModel> {
        let link = planned.link(diags)?;
        let policy = planned.policy(diags)?;
        let mut sent = Outcome::default();
        let out = self
            .apply_link(
                ctx, engine, creating, prior, planned, &link, &policy, &mut sent, diags,
            )
            .await;
        ctx.notify(format!("terraform apply, {link}"), &sent, diags)
            .await;
        out
    }

    async fn import_link(
        &self,
        ctx: &ProviderState,
        engine: &Engine,
        id: &str,
        parsed: LinkImport,
        diags: &mut Diagnostics,
    ) -> Option<CertificateLinkModel> {
        let (_, key_id) = link::import_key_id::<Self, _>(
            engine,
            id,
            parsed,
            |app, lineage| {
                let mut keys: Vec<_> = app
                    .key_credentials
                    .iter()
                    .filter(|k| k.lineage_name() == lineage)
                    .collect();
                keys.sort_by_key(|k| k.start);
                let newest = keys.last().map(|k| k.key_id.clone());
                let names = app
                    .key_credentials
                    .iter()
                    .map(|k| k.lineage_name().to_string());
                (newest, names.collect())
            },
            diags,
        )
        .await?;
        let vaults = match ctx.vaults(engine).await {
            Ok(v) => v,
            Err(e) => {
                engine_error(diags, &e, &PLACEMENT);
                return None;
            }
        };
        let config = Config {
            vaults,
            ..Config::default()
        };
        let link = match engine.adopt_certificate(&config, &key_id).await {
            Ok(l) => l,
            Err(e) => {
                let mut hints = e.hints();
                hints.push(
                    "or, instead of importing, declare the rotor_certificate_link with its `certificates` and run \
                     `terraform apply`: creating a link adopts what the certificates hold, without rotating"
                        .into(),
                );
                return link::import_failed::<Self, _>(id, &e, hint_lines(&hints), diags);
            }
        };
        Some(CertificateLinkModel::of(&link))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Resource;
    use crate::model::{Field, Set};
    use crate::resources::link::LinkCommon;
    use crate::value::Value;
    use std::collections::BTreeMap;

    const APP: &str = "b0000001-0000-4000-8000-000000000001";

    fn link_value(certs: &[(&str, &str)]) -> CertificateLinkModel {
        CertificateLinkModel {
            common: LinkCommon::of(APP, "tls"),
            certificates: Attr::Known(Set(certs
                .iter()
                .map(|(u, n)| {
                    Attr::Known(CertificateModel {
                        vault_url: Attr::Known(u.to_string()),
                        certificate_name: Attr::Known(n.to_string()),
                    })
                })
                .collect())),
            ..CertificateLinkModel::default()
        }
    }

    #[test]
    fn the_model_round_trips_every_schema_attribute() {
        let mut m = link_value(&[("https://kv.vault.azure.net/", "tls-cert")]);
        m.status = CertStatusModel::unknown();
        let v = m.clone().with_id().to_value();
        let Value::Object(obj) = &v else {
            panic!("object")
        };
        let mut names: Vec<&str> = schema().attributes.iter().map(|a| a.name).collect();
        names.sort();
        assert_eq!(obj.keys().map(String::as_str).collect::<Vec<_>>(), names);
        assert!(crate::value::to_msgpack(&v, &schema().ty()).is_ok());
        assert_eq!(
            CertificateLinkModel::from_value(&v).expect("decodes"),
            m.with_id()
        );
    }

    #[test]
    fn links_dedup_case_insensitively_and_bad_urls_point_at_certificates() {
        let mut d = Diagnostics::default();
        let l = link_value(&[
            ("https://kv.vault.azure.net/", "tls"),
            ("https://KV.vault.azure.net/", "TLS"),
        ])
        .link(&mut d)
        .expect("link");
        assert_eq!(l.certificates.len(), 1);
        assert_eq!(
            l.to_string(),
            format!("certificate credential `tls` of application {APP}")
        );
        let mut d = Diagnostics::default();
        assert!(link_value(&[("kv-prod", "tls")]).link(&mut d).is_none());
        assert_eq!(d.0[0].path, Some(AttrPath::attr(attrs::CERTIFICATES)));
    }

    #[test]
    fn a_due_status_explains_rotation_and_sync_and_exclusion_blocks_it() {
        let due = CertificateLinkStatus {
            current_key_id: Some("k1".into()),
            current_thumbprint: Some("AB".into()),
            rotation_due: true,
            pending_version: Some("v2".into()),
            ..CertificateLinkStatus::default()
        };
        let m = CertStatusModel::observed(&due);
        assert!(m.due());
        assert!(
            m.rotation_reason
                .as_deref()
                .expect("reason")
                .contains("sync"),
            "{m:?}"
        );
        assert_eq!(m.thumbprint.as_deref(), Some("AB"));
        let excluded = CertificateLinkStatus {
            excluded: Some("secret:tls*".into()),
            ..due
        };
        let m = CertStatusModel::observed(&excluded);
        assert!(!m.due());
        assert!(m.never_rotated().expect("blocked").contains("secret:tls*"));
    }

    #[test]
    fn triggers_and_replacing_attributes() {
        let a = link_value(&[]);
        let mut b = a.clone();
        assert!(!b.triggers_differ_from(&a));
        b.common.rotate_when_changed =
            Attr::Known(BTreeMap::from([("v".to_string(), Attr::Known("1".into()))]));
        assert!(b.triggers_differ_from(&a));
        b.common.credential_display_name = Attr::Known("other".into());
        let force_new: Vec<AttrPath> = schema()
            .attributes
            .iter()
            .filter(|a| a.force_new && a.name != attrs::APPLICATION_ID)
            .map(|a| AttrPath::attr(a.name))
            .collect();
        assert_eq!(b.replaced_by(&a), force_new);
    }

    #[tokio::test]
    async fn validation_points_at_the_attribute() {
        let mut v = link_value(&[("http://kv/", "bad_name")]);
        v.common.application_id = Attr::Known("myapp".into());
        v.common.credential_display_name = Attr::Known("tls rotor:abc".into());
        let mut d = Diagnostics::default();
        link::LinkResource(CertificateLinkResource)
            .validate(&v.to_value(), &mut d)
            .await;
        let paths: Vec<String> =
            d.0.iter()
                .filter_map(|x| x.path.as_ref().map(ToString::to_string))
                .collect();
        assert_eq!(
            paths,
            [
                "application_id",
                "credential_display_name",
                "certificates",
                "certificates"
            ],
            "{:?}",
            d.0
        );
    }
}
