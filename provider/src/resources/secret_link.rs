//! `rotor_secret_link`: one credential lineage of one application and the Key Vault secrets that
//! must hold its current value. `terraform apply` rotates.
//!
//! - Refresh: `engine.inspect_link` (read-only) fills the computed attributes.
//! - Plan: a due, forced (`rotate_when_changed`) or diverged rotation is an in-place update with
//!   the new key id etc. unknown and a WARNING saying why; excluded or low-confidence links are
//!   never rotated and the plan says so.
//! - Create adopts the credential the targets hold when that is safe (no new credential), unless
//!   it is already due — then the first apply rotates it.
//! - Apply: `engine.rotate` then `engine.cleanup`; an added target gets the current value via
//!   `engine.sync_targets` (no rotation); a removed target is left alone.
//! - Import by the resource's own id `<application_id>/<credential_display_name>` or by
//!   `<application_id>/<key_id>` (parsed in [`crate::ids`]) via `engine.adopt` (targets from tags
//!   and matching).
//! - `-replace` / `taint`: the create that follows the destroy in the same apply rotates.
//! - Destroy forgets the link (optionally cleans up old credentials); it never deletes a Key Vault
//!   secret. State holds ids, dates and versions, never a value.
//!
//! The resource works on [`SecretLinkModel`] ([`model`]): decode the model, decide, call the
//! engine, encode. Engine errors land on attributes through [`PLACEMENT`].

pub mod model;

use std::collections::BTreeSet;

use async_trait::async_trait;
use rotor_engine::{
    AuditRecord, Engine, Link, LinkStatus, Policy, RotateOptions, RotationStatus, SkipReason,
    Target,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::framework::{AttrPath, Diagnostics, PlanResponse};
use crate::ids::LinkImport;
use crate::lifecycle::{TerraformProgress, terraform_gone};
use crate::model::{Attr, Field};
use crate::notify::Outcome;
use crate::provider::{ProviderState, hint_lines};
use crate::resources::diag::{Placement, engine_error};
use crate::resources::link::{self, LinkKind, LinkModel, PlanUpdate};
use crate::resources::policy::link_policy_type;
use crate::schema::{Attribute, Schema};
use crate::value::Type;
pub use model::{
    PLACEMENT, SecretLinkModel, StatusModel, TARGETS, attrs, status_never_rotated, target_identity,
    target_type,
};

/// The resource.
pub struct SecretLinkResource;

const TYPE_NAME: &str = "rotor_secret_link";

fn schema() -> Schema {
    Schema {
        version: 0,
        description: "Links one client-secret lineage of an Entra ID application (`application_id` + \
            `credential_display_name`) to the Key Vault secrets that must hold its current value. Refresh reads Azure; \
            when a rotation is due (or forced with `rotate_when_changed`, or the targets disagree) the plan shows an \
            in-place update with a warning saying why, and `terraform apply` runs rotor's rotation protocol: new \
            secret, verified, written to every target, old secret kept for the grace period. Creating a link adopts \
            the secret the targets already hold. Replacing it (`terraform apply -replace=…`, `terraform taint`) rotates, \
            as `azuread_application_password` does. Destroying a link never deletes a Key Vault secret. No secret value \
            is ever stored in state or plan.",
        attributes: vec![
            Attribute::computed(attrs::ID, Type::String, "`<application_id>/<credential_display_name>`; `terraform import` takes this id (or `<application_id>/<key_id>`)."),
            Attribute::required(attrs::APPLICATION_ID, Type::String, "Application (client) id of the App Registration whose secret is rotated. Changing it replaces the link.").force_new(),
            Attribute::required(attrs::CREDENTIAL_DISPLAY_NAME, Type::String, "Display name of the client-secret lineage (e.g. `Secret 1`). rotor names the secrets it creates `<credential_display_name> rotor:<rotation id>`, so the lineage survives rotations. Changing it replaces the link.").force_new(),
            Attribute::required(attrs::TARGETS, Type::set(target_type()), "Key Vault secrets that must hold the current value: a set of objects with `vault_url` (e.g. `https://kv-prod.vault.azure.net/`) and `secret_name`. Adding a target writes the current value into it (read from a target that holds it) without rotating; removing one leaves that secret as it is."),
            Attribute::optional(attrs::POLICY, link_policy_type(), "Rotation policy: pass a whole `rotor_policy` (`policy = rotor_policy.standard`) or an object with `rotate_before_expiry_days`, `new_secret_validity_days`, `min_confidence`, `grace_period_days` and `exclusions`. Defaults to rotor's default policy (30, 365, `HIGH`, 7, none)."),
            Attribute::optional(attrs::ROTATE_WHEN_CHANGED, Type::map(Type::String), "Arbitrary map of values; any change to it forces a rotation on the next apply (like `time_rotating` triggers, without deleting the old secret first)."),
            Attribute::optional(attrs::CLEANUP_ON_DESTROY, Type::Bool, "When true, destroying the link also removes the lineage's old client secrets that no target holds and whose grace period has passed (as `rotor cleanup` does). The current secret and every Key Vault secret are always kept. Default `false`."),
            Attribute::computed(attrs::CURRENT_KEY_ID, Type::String, "Key id of the client secret the targets hold now."),
            Attribute::computed(attrs::CURRENT_EXPIRES_AT, Type::String, "When the current client secret expires (RFC 3339)."),
            Attribute::computed(attrs::ROTATED_AT, Type::String, "When the current client secret was created, i.e. last rotated (RFC 3339)."),
            Attribute::computed(attrs::NEXT_ROTATION_AT, Type::String, "When policy wants the next rotation: expiry minus `rotate_before_expiry_days` (RFC 3339)."),
            Attribute::computed(attrs::ROTATION_DUE, Type::Bool, "Whether a rotation (or repair of diverged targets) is due now; the next apply performs it."),
            Attribute::computed(attrs::ROTATION_REASON, Type::String, "Why a rotation is due, or why the link is never rotated (excluded, low confidence); null when nothing is due."),
            Attribute::computed(attrs::PREVIOUS_KEY_IDS, Type::list(Type::String), "Key ids of the lineage's older client secrets still present in Entra ID (kept for the grace period), oldest first."),
            Attribute::computed(attrs::TARGET_VERSIONS, Type::map(Type::String), "Current Key Vault secret version per target, keyed by `<vault_url><secret_name>`."),
            Attribute::computed(attrs::CONFIDENCE, Type::String, "How sure rotor is that the targets hold the current secret: `HIGH` (tagged by rotor or hint plus another signal), `MEDIUM`, `LOW` or `NONE`."),
            Attribute::computed(attrs::EXCLUDED, Type::String, "The policy exclusion that matches this link (e.g. `name:legacy-*`); null when not excluded. Excluded links are never rotated."),
            Attribute::computed(attrs::REMOVABLE_KEY_IDS, Type::list(Type::String), "Key ids of the lineage's old client secrets that cleanup removes now: they expired or their successor's grace period is over, and no Key Vault secret in scope holds them. When not empty the plan shows an in-place update with a warning, and `terraform apply` removes them (as `rotor cleanup` does)."),
        ],
    }
}

/// Status plus what cleanup would remove, into `status`.
async fn observe(
    ctx: &ProviderState,
    engine: &Engine,
    link: &Link,
    policy: &Policy,
    status: &mut StatusModel,
    fresh: bool,
) -> rotor_engine::Result<LinkStatus> {
    let s = link::inspect(ctx, engine, link, policy, fresh).await?;
    status.observe(&s, policy);
    status.removable_key_ids = Attr::Known(link::removable_now(engine, link, policy, &s).await);
    Ok(s)
}

/// A warning on every refresh (so every plan) of a link rotor will not rotate while that
/// matters: its credential is due or expired, no target holds a credential of the lineage, or
/// the targets disagree (e.g. one was overwritten with a value rotor did not write). Says why
/// and what unblocks it.
async fn blocked_warning(
    engine: &Engine,
    link: &Link,
    policy: &Policy,
    before: &StatusModel,
    s: &LinkStatus,
    out: &mut StatusModel,
    diags: &mut Diagnostics,
) {
    const OVERWRITTEN: &str = "; overwritten: ";
    let Some(why) = status_never_rotated(s, policy) else {
        return;
    };
    let now = engine.now();
    let fmt = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let mut facts = Vec::new();
    let mut hints = Vec::new();
    let old = before.target_versions.known();
    let changed: Vec<String> = s
        .target_versions
        .iter()
        .filter(|(k, v)| old.and_then(|m| m.get(*k)).is_some_and(|o| o != *v))
        .map(|(k, _)| format!("`{k}`"))
        .collect();
    // Remembered in `rotation_reason` so that every later plan says it too.
    let remembered = before
        .rotation_reason
        .as_deref()
        .and_then(|r| r.split_once(OVERWRITTEN))
        .map(|(_, f)| f.to_string());
    let overwritten = (!changed.is_empty() && (s.diverged || s.current_key_id.is_none()))
        || (changed.is_empty() && remembered.is_some());
    match (&s.current_key_id, s.current_expires_at) {
        (None, _) if overwritten => {}
        (None, _) => {
            facts.push(format!(
                "no target holds a client secret of the lineage `{}`",
                link.credential_display_name
            ));
            let names: BTreeSet<String> = match engine.get_application(&link.application_id).await {
                Ok(app) => app
                    .password_credentials
                    .iter()
                    .map(|c| format!("`{}`", c.lineage_name()))
                    .collect(),
                Err(_) => BTreeSet::new(),
            };
            hints.push(if names.is_empty() {
                "hint: the application has no client secret; check `application_id`".to_string()
            } else {
                format!(
                    "hint: `credential_display_name` must name the client secret the targets hold; this application's are {} (renaming it in configuration does not rename the secret in Entra ID)",
                    names.into_iter().collect::<Vec<_>>().join(", ")
                )
            });
        }
        (Some(key), Some(end)) if end <= now => {
            facts.push(format!("its client secret {key} expired at {}", fmt(end)));
        }
        (Some(key), Some(end)) if s.next_rotation_at.is_some_and(|n| n <= now) => {
            facts.push(format!(
                "its client secret {key} expires at {} and is due for rotation",
                fmt(end)
            ));
        }
        _ => {}
    }
    if overwritten || (s.diverged && s.current_key_id.is_some()) {
        let fact = if !changed.is_empty() {
            Some(format!(
                "{} got a new version that rotor did not write, holding a value that is not one of this lineage's client secrets",
                changed.join(", ")
            ))
        } else {
            remembered.clone()
        };
        match fact {
            Some(f) => {
                if let Some(r) = out.rotation_reason.as_deref() {
                    let r = r.split(OVERWRITTEN).next().unwrap_or(r).to_string();
                    out.rotation_reason = Attr::Known(format!("{r}{OVERWRITTEN}{f}"));
                }
                facts.push(f);
            }
            None => facts.push("the targets do not all hold its current client secret".to_string()),
        }
        hints.push(
            "hint: rotor never overwrites a value it did not write. If the secret should hold this credential, \
             set it back to the version rotor wrote (tagged `rotor-key-id`); if it now holds something else, remove \
             it from `targets`"
                .to_string(),
        );
    }
    if facts.is_empty() {
        return;
    }
    if let Some(pattern) = s.excluded.as_deref() {
        hints.push(format!(
            "hint: remove the exclusion `{pattern}` from the policy to let rotor rotate it"
        ));
    } else if s.current_key_id.is_some() {
        hints.push(format!(
            "hint: tag every target with `app-id = \"{}\"` (rotor adds `rotor-key-id` when it rotates), or lower the policy's `min_confidence` after checking the match (`rotor match --app {}`)",
            link.application_id, link.application_id
        ));
    }
    diags.warning(
        format!("{link} will not be rotated: {why}"),
        format!("{}.\n{}", facts.join("; "), hints.join("\n")),
        None,
    );
}

/// What is knowable at plan time about a planned rotation: a dry run of the protocol (reads
/// only) surfaces a soft-deleted target, no room under the password cap, a target rotor must
/// not write, missing permissions — as plan errors on the attribute they are about, instead of
/// at apply.
async fn dry_run_check(
    engine: &Engine,
    link: &Link,
    policy: &Policy,
    forced: bool,
    replace_key_id: Option<String>,
    diags: &mut Diagnostics,
) {
    let opts = RotateOptions {
        dry_run: true,
        force: forced,
        validity_days: None,
        replace_key_id,
    };
    let record = engine.rotate(link, policy, &opts, &TerraformProgress).await;
    if record.status != RotationStatus::Failed {
        return;
    }
    let summary = match record.error.as_deref() {
        Some(e) if e.starts_with("rotating ") => format!("planning the rotation: {e}"),
        Some(e) => format!("planning the rotation of {link}: {e}"),
        None => format!("planning the rotation of {link}: it would fail"),
    };
    let mut detail = Vec::new();
    for t in &record.targets {
        if let Some(e) = &t.error
            && !summary.contains(e.as_str())
        {
            detail.push(format!(
                "{}: {e}",
                Target::new(t.vault_url.clone(), t.secret_name.clone())
            ));
        }
    }
    if !record.hints.is_empty() {
        detail.push(hint_lines(&record.hints));
    }
    detail.push("Nothing was changed; this is what apply would run into.".into());
    diags.error(summary, detail.join("\n"), PLACEMENT.record_path(&record));
}

/// The engine's adopt hints, made true for `terraform import` (which takes no targets and no
/// policy), plus the way that always works: declare the link and let create adopt it.
fn import_hints(hints: &[String]) -> String {
    let mut out: Vec<String> = hints
        .iter()
        .filter(|h| !h.contains("rotor.toml"))
        .map(|h| {
            h.replace(
                ", or list the targets explicitly",
                " (import finds targets by tags and matching only)",
            )
        })
        .collect();
    out.push(
        "or, instead of importing, declare the rotor_secret_link with its `targets` and run `terraform apply`: \
         creating a link adopts the client secret the targets hold, without rotating it"
            .to_string(),
    );
    hint_lines(&out)
}

/// Why two links on one lineage are refused, naming both (Terraform does not tell providers
/// resource addresses, so each is named by its targets), and the fix.
fn lineage_conflict_detail(
    link: &Link,
    first: &BTreeSet<String>,
    this: &BTreeSet<String>,
) -> String {
    let list = |keys: &BTreeSet<String>| {
        keys.iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    [
        format!(
            "Two rotor_secret_link resources have application_id {} and credential_display_name `{}`:",
            link.application_id, link.credential_display_name
        ),
        format!(
            "- another rotor_secret_link in this configuration (targets {})",
            list(first)
        ),
        format!("- this one (targets {})", list(this)),
        "Rotating either leaves the other's targets holding the previous client secret, which the \
         lineage's cleanup later removes."
            .to_string(),
        "hint: use one rotor_secret_link per lineage: put all the targets into one resource and delete \
         the other (removing a link from the configuration only forgets it; no Key Vault secret is deleted)"
            .to_string(),
    ]
    .join("\n")
}

/// Whether a `skipped` record means another run is rotating the lineage (`InProgress`, or this
/// run backed off: `LostRace`), rather than "nothing to do".
fn skipped_for_another_run(record: &AuditRecord) -> bool {
    match record.skip_reason {
        Some(SkipReason::InProgress | SkipReason::LostRace) => true,
        Some(_) => false,
        // Engines that do not set `skip_reason` yet say it in words.
        None => record.notes.iter().chain(record.error.iter()).any(|n| {
            let n = n.to_ascii_lowercase();
            n.contains("in progress") || n.contains("another run")
        }),
    }
}

/// When the newest pending credential of the lineage (a rotor credential newer than the one the
/// targets hold, younger than the pending window) becomes an orphan that rotor finishes or
/// removes: its creation plus `policy.pending_window`.
async fn pending_until(
    engine: &Engine,
    link: &Link,
    policy: &Policy,
    status: &LinkStatus,
) -> Option<OffsetDateTime> {
    let app = engine.get_application(&link.application_id).await.ok()?;
    let window = time::Duration::try_from(policy.pending_window).ok()?;
    let now = engine.now();
    app.password_credentials
        .iter()
        .filter(|c| {
            c.lineage_name() == link.credential_display_name
                && c.display_name
                    .as_deref()
                    .is_some_and(|n| n.contains(" rotor:"))
                && Some(c.key_id.as_str()) != status.current_key_id.as_deref()
                && status.rotated_at.is_none_or(|r| c.start > r)
                && c.start + window > now
        })
        .map(|c| c.start + window)
        .max()
}

/// The detail of "another rotation is in progress": what rotor saw, when it resolves, what to do.
fn another_run_detail(record: &AuditRecord, orphan_at: Option<OffsetDateTime>) -> String {
    let mut lines = Vec::new();
    if record.skip_reason == Some(SkipReason::LostRace) {
        lines.push(
            "This run created a new client secret, then found one that another run (terraform, the rotor CLI \
             or the GitHub Action) had created first for the same lineage, and backed off."
                .to_string(),
        );
    } else {
        lines.push(
            "A client secret of this lineage created by another run (terraform, the rotor CLI or the GitHub \
             Action) is not held by any target yet: that run is rotating it now, or stopped half-way."
                .to_string(),
        );
    }
    match orphan_at.and_then(|t| t.format(&Rfc3339).ok()) {
        Some(t) => lines.push(format!(
            "If that run died, its client secret becomes an orphan at {t} (the policy's pending window after it \
             was created); any run after that finishes or removes it."
        )),
        None => lines.push(
            "If that run died, its client secret becomes an orphan once the policy's pending window (1 h by \
             default) after its creation has passed; any run after that finishes or removes it."
                .to_string(),
        ),
    }
    if let Some(note) = record.notes.first().or(record.error.as_ref()) {
        lines.push(format!("rotor: {note}"));
    }
    lines.push(
        "The previous value of `rotate_when_changed` stays in state, so the next plan shows the forced rotation \
         again.\nhint: re-run `terraform apply` once the other run has finished (or after the time above)."
            .to_string(),
    );
    lines.join("\n")
}

impl SecretLinkResource {}

/// What an update or create apply works from.
struct Change<'a> {
    creating: bool,
    prior: &'a SecretLinkModel,
    planned: &'a SecretLinkModel,
    link: &'a Link,
    policy: &'a Policy,
    /// The status inspected at the start of this apply.
    status: LinkStatus,
}

/// Reports a rotation that did not succeed. The forced rotation that another run kept from
/// happening is an error, so Terraform keeps the old triggers and the next plan forces it again.
async fn report_rotation(
    engine: &Engine,
    c: &Change<'_>,
    forced: bool,
    record: &AuditRecord,
    diags: &mut Diagnostics,
) {
    let link = c.link;
    match record.status {
        RotationStatus::Success => {
            tracing::info!(
                "rotated {link}: {} -> {}",
                record.old_key_id.as_deref().unwrap_or("none"),
                record.new_key_id.as_deref().unwrap_or("none")
            );
        }
        RotationStatus::Skipped if forced && skipped_for_another_run(record) => {
            let orphan_at = pending_until(engine, link, c.policy, &c.status).await;
            diags.error(
                format!(
                    "rotating {link}: another rotation of this lineage is in progress; the forced rotation did not run"
                ),
                another_run_detail(record, orphan_at),
                None,
            );
        }
        RotationStatus::Skipped => {
            diags.warning(
                format!("rotating {link}: skipped"),
                record
                    .error
                    .clone()
                    .or_else(|| record.notes.first().cloned())
                    .unwrap_or_default(),
                None,
            );
        }
        RotationStatus::Excluded => {
            diags.warning(
                format!("rotating {link}: excluded by policy"),
                record.error.clone().unwrap_or_default(),
                None,
            );
        }
        RotationStatus::Failed => {
            let summary = match record.error.as_deref() {
                Some(e) if e.starts_with("rotating ") => e.to_string(),
                Some(e) => format!("rotating {link}: {e}"),
                None => format!("rotating {link}: failed"),
            };
            let mut detail = Vec::new();
            for t in &record.targets {
                if let Some(e) = &t.error
                    && !summary.contains(e.as_str())
                {
                    detail.push(format!(
                        "{}: {e}",
                        Target::new(t.vault_url.clone(), t.secret_name.clone())
                    ));
                }
            }
            if !record.hints.is_empty() {
                detail.push(hint_lines(&record.hints));
            }
            detail
                .push("The previous client secret stays valid; run apply again to resume.".into());
            diags.error(summary, detail.join("\n"), PLACEMENT.record_path(record));
        }
    }
}

impl SecretLinkResource {
    async fn destroy_link(
        &self,
        ctx: &ProviderState,
        engine: &Engine,
        prior: &SecretLinkModel,
        sent: &mut Outcome,
        diags: &mut Diagnostics,
    ) -> bool {
        if let Some((a, c)) = prior.common.lineage() {
            ctx.note_destroyed(a, c);
        }
        if prior.cleanup_on_destroy.known() == Some(&true)
            && let Some(link) = prior.link(diags)
        {
            let cleaned = engine
                .cleanup(&link, &prior.policy_or_default(), false)
                .await;
            sent.cleanup(&cleaned);
            if let Err(e) = cleaned {
                engine_error(diags, &e, &PLACEMENT);
                return false;
            }
        }
        true
    }

    /// Applies a create or an update: rotate when due or forced (and planned), else copy to
    /// added targets, then clean up when planned; the new state is the plan with the status read
    /// back from Azure.
    async fn apply_update(
        &self,
        ctx: &ProviderState,
        engine: &Engine,
        c: Change<'_>,
        sent: &mut Outcome,
        diags: &mut Diagnostics,
    ) -> SecretLinkModel {
        let (link, policy, status) = (c.link, c.policy, &c.status);
        let observed = StatusModel::observed(status, policy);
        let blocked = observed.never_rotated(policy);
        // `-replace` / `taint`: Terraform destroyed this lineage's link a moment ago in this
        // apply and now creates it: rotate, as `azuread_application_password` does.
        let replaced =
            c.creating && ctx.take_destroyed(&link.application_id, &link.credential_display_name);
        let forced = replaced || (!c.creating && c.planned.triggers_differ_from(c.prior));
        let rotate = blocked.is_none() && (observed.due() || forced);
        let planned_rotation = c.planned.status.current_key_id.is_unknown();
        // A planned repair keeps the key id known and the target versions unknown.
        let planned_repair = !planned_rotation && c.planned.status.target_versions.is_unknown();
        let planned_cleanup = !c.creating && c.planned.status.removable_key_ids.is_unknown();
        let mut rotated = false;

        if rotate && (planned_rotation || planned_repair || c.creating) {
            let opts = RotateOptions {
                dry_run: false,
                force: forced,
                validity_days: None,
                // The credential the trigger change saw: once the lineage has a newer one (a
                // re-run after an interrupted apply), the forced rotation is fulfilled.
                replace_key_id: if replaced {
                    status.current_key_id.clone()
                } else if forced {
                    c.prior.status.current_key_id.known().cloned()
                } else {
                    None
                },
            };
            ctx.forget_status(&link.application_id);
            let record = engine.rotate(link, policy, &opts, &TerraformProgress).await;
            sent.record(&record);
            rotated = record.status == RotationStatus::Success;
            report_rotation(engine, &c, forced, &record, diags).await;
            if rotated && !terraform_gone() {
                let cleaned = engine.cleanup(link, policy, false).await;
                sent.cleanup(&cleaned);
                if let Err(e) = cleaned {
                    diags.warning(
                        format!("cleaning up old client secrets of {link}: {e}"),
                        hint_lines(&e.hints()),
                        None,
                    );
                }
            }
        } else if !c.creating
            && c.planned.adds_targets_to(c.prior)
            && status.current_key_id.is_some()
        {
            ctx.forget_status(&link.application_id);
            match engine.sync_targets(link, policy, &TerraformProgress).await {
                Ok(record) => sent.record(&record),
                Err(e) => {
                    sent.failed(format!("copying {link} to its added targets: {e}"));
                    engine_error(diags, &e, &PLACEMENT);
                }
            }
        } else if rotate && !planned_rotation {
            // Became due between plan and apply: do not change what the plan promised.
            diags.warning(
                format!("{link} became due after the plan"),
                "the next plan will show the rotation",
                None,
            );
        }
        if planned_cleanup
            && !rotated
            && blocked.is_none()
            && !diags.has_errors()
            && !terraform_gone()
        {
            ctx.forget_status(&link.application_id);
            let cleaned = engine.cleanup(link, policy, false).await;
            sent.cleanup(&cleaned);
            match cleaned {
                Ok(o) => {
                    if !o.removed_key_ids.is_empty() {
                        tracing::info!(
                            "{link}: removed old client secrets {}",
                            o.removed_key_ids.join(", ")
                        );
                    }
                }
                Err(e) => engine_error(diags, &e, &PLACEMENT),
            }
        }

        // The new state: configuration as planned, status read back from Azure.
        let mut out = c.planned.clone();
        if let Err(e) = observe(ctx, engine, link, policy, &mut out.status, false).await {
            engine_error(diags, &e, &PLACEMENT);
            out.status.observe(status, policy);
        }
        // Keep every value the plan promised (Terraform rejects changes to known planned values).
        out.status.keep_planned(&c.planned.status);
        let moved_on =
            out.status.current_key_id.as_deref() != c.prior.status.current_key_id.as_deref();
        if forced && diags.has_errors() && !moved_on {
            // Nothing of the forced rotation reached a target: keep the old triggers so the next
            // plan forces it again. (When some target already holds the new credential, the
            // rotation started: the next plan shows the targets diverging and repairs them,
            // finishing this rotation instead of starting another.)
            out.common.rotate_when_changed = c.prior.common.rotate_when_changed.clone();
        }
        out
    }
}

#[async_trait]
impl LinkKind for SecretLinkResource {
    type Model = SecretLinkModel;
    type Link = Link;
    const TYPE_NAME: &'static str = TYPE_NAME;
    const ITEMS: &'static str = "secrets";
    const EXAMPLE_LINEAGE: &'static str = "Secret 1";
    const CREDENTIAL: &'static str = "client secret";
    const NO_CREDENTIALS: &'static str = "It has no client secrets.";
    const PLACEMENT: Placement = PLACEMENT;

    fn schema(&self) -> Schema {
        schema()
    }

    fn link_of(model: &SecretLinkModel, diags: &mut Diagnostics) -> Option<Link> {
        model.link(diags)
    }

    fn validate_items(&self, config: &SecretLinkModel, diags: &mut Diagnostics) {
        if let Some(targets) = config.targets.known() {
            TARGETS.check_not_empty(targets.0.is_empty(), diags);
            let mut seen: std::collections::BTreeMap<String, String> = Default::default();
            for t in targets.0.iter().filter_map(Attr::known) {
                let (url, name) = (t.vault_url.as_deref(), t.secret_name.as_deref());
                if let (Some(url), Some(name)) = (url, name) {
                    let shown = format!("{url}{name}");
                    if let Some(first) = seen.insert(target_identity(url, name), shown.clone()) {
                        diags.error(
                            format!(
                                "validating targets: `{first}` and `{shown}` are the same Key Vault secret"
                            ),
                            "Key Vault names (vaults and secrets) are case-insensitive, so this secret would be written twice.\nhint: list it once",
                            Some(AttrPath::attr(attrs::TARGETS)),
                        );
                    }
                }
                TARGETS.check_item(url, name, diags);
            }
        }
    }

    async fn refresh(
        &self,
        ctx: &ProviderState,
        engine: &Engine,
        link: &Link,
        policy: &Policy,
        before: &SecretLinkModel,
        out: &mut SecretLinkModel,
        diags: &mut Diagnostics,
    ) -> rotor_engine::Result<()> {
        let status = observe(ctx, engine, link, policy, &mut out.status, true).await?;
        blocked_warning(
            engine,
            link,
            policy,
            &before.status,
            &status,
            &mut out.status,
            diags,
        )
        .await;
        Ok(())
    }

    /// `inspect_link` answers NotFound only when the application itself is gone: so is the
    /// link. (Missing Key Vault secrets show as absent target versions instead.)
    async fn application_gone(&self, _: &Engine, _: &Link, _: &rotor_engine::Error) -> bool {
        true
    }

    /// Two links on one lineage in one configuration are refused: the second one's plan stops.
    fn before_plan(
        &self,
        ctx: &ProviderState,
        config: &SecretLinkModel,
        proposed: &SecretLinkModel,
        diags: &mut Diagnostics,
    ) -> Option<PlanResponse> {
        if let Some(link) = config.link(&mut Diagnostics::default()) {
            let keys = |l: &Link| -> BTreeSet<String> {
                l.targets
                    .iter()
                    .map(|t| t.key().to_ascii_lowercase())
                    .collect()
            };
            if let Err(first) = ctx.claim_lineage(
                &link.application_id,
                &link.credential_display_name,
                keys(&link),
            ) {
                diags.error(
                    format!("planning {link}: another rotor_secret_link in this configuration links the same lineage"),
                    lineage_conflict_detail(&link, &first, &keys(&link)),
                    Some(AttrPath::attr(attrs::CREDENTIAL_DISPLAY_NAME)),
                );
                return Some(PlanResponse {
                    planned: proposed.to_value(),
                    requires_replace: Vec::new(),
                });
            }
        }
        None
    }

    fn unknown_status(model: &mut SecretLinkModel) {
        model.status = StatusModel::unknown();
    }

    async fn previewed(
        &self,
        engine: &Engine,
        link: &Link,
        policy: &Policy,
        status: &LinkStatus,
        creating: bool,
        diags: &mut Diagnostics,
    ) {
        if !status.claimed_elsewhere.is_empty() {
            // Another link (or a secret left out of this one) holds the lineage's current
            // credential: rotating this link would break it, so the plan stops here.
            let holders: Vec<String> = status
                .claimed_elsewhere
                .iter()
                .map(|t| format!("`{}` in {}", t.secret_name, t.vault_url))
                .collect();
            diags.error(
                format!("planning {link}: a Key Vault secret outside its targets holds the lineage"),
                format!(
                    "{} {} the lineage's current credential (its `rotor-key-id` tag says so) but {} not in `targets`: two links would claim one lineage, and rotating one breaks the other.\nhint: put every secret that holds this credential into this link's `targets` (one rotor_secret_link per lineage)\nhint: or, if that secret no longer needs the credential, delete it or remove its `rotor-key-id` tag",
                    holders.join(", "),
                    if holders.len() == 1 { "holds" } else { "hold" },
                    if holders.len() == 1 { "is" } else { "are" },
                ),
                Some(AttrPath::attr(attrs::TARGETS)),
            );
            return;
        }
        let observed = StatusModel::observed(status, policy);
        let reason = observed.rotation_reason.known().cloned();
        if let Some(r) = reason.as_deref().filter(|r| r.starts_with("never rotated")) {
            diags.warning(
                format!("{link} is {r}"),
                "rotor keeps reporting this link but will not change it.\nhint: raise the confidence by tagging \
                 the Key Vault secrets with `app-id`/`rotor-key-id`, or lower `min_confidence`; remove the exclusion \
                 to allow rotation",
                None,
            );
        } else if creating && observed.due() {
            dry_run_check(engine, link, policy, false, None, diags).await;
            diags.warning(
                format!("creating this link rotates {link} at once: {}", reason.unwrap_or_default()),
                "apply creates a new client secret, writes it to every target and keeps the old one for the grace period",
                None,
            );
        } else if creating && status.current_key_id.is_some() {
            tracing::debug!("{link}: create adopts the current credential");
        }
    }

    /// Plans an in-place update.
    async fn plan_update(
        &self,
        ctx: &ProviderState,
        prior: SecretLinkModel,
        mut planned: SecretLinkModel,
        config: SecretLinkModel,
        update: PlanUpdate,
        diags: &mut Diagnostics,
    ) -> PlanResponse {
        let PlanUpdate {
            policy,
            policy_changed,
            requires_replace,
            name,
        } = update;
        // What Azure says, under the policy that will apply.
        let (due, reason, blocked) = if policy_changed {
            match link::preview(self, ctx, &planned.clone().with_id(), false, diags).await {
                Some(status) => {
                    let observed = StatusModel::observed(&status, &policy);
                    (
                        observed.due(),
                        observed.rotation_reason.known().cloned(),
                        observed.never_rotated(&policy),
                    )
                }
                None => (false, None, None),
            }
        } else {
            let blocked = prior.status.never_rotated(&policy);
            (
                prior.status.due() && blocked.is_none(),
                prior.status.rotation_reason.known().cloned(),
                blocked,
            )
        };
        let forced = config.triggers_differ_from(&prior);

        // Divergence alone (the current credential is not due): a repair copies it to the targets
        // that lack it; the key id and dates stay as they are.
        let repair_only = due
            && !forced
            && reason
                .as_deref()
                .is_some_and(|r| r.starts_with("targets diverge"))
            && prior
                .status
                .next_rotation_at
                .as_deref()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                .is_some_and(|t| t > OffsetDateTime::now_utc())
            && !prior.status.current_key_id.is_null();
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

        if let Some(b) = &blocked {
            if forced {
                diags.warning(
                    format!("{name} is not rotated: {b}"),
                    "rotor never rotates excluded or low-confidence links.\nhint: tag the Key Vault secrets with \
                     `rotor-key-id` or `app-id`, lower `min_confidence`, or remove the exclusion",
                    None,
                );
            }
        } else if repair_only {
            diags.warning(
                format!(
                    "{name} will be repaired: {}",
                    reason.clone().unwrap_or_default()
                ),
                "apply copies the current client secret (read from a target that holds it) to the targets that \
                 lack it; no new client secret is created, so the key id and dates stay as they are",
                None,
            );
            planned.status.unknown_but_credential_and_schedule();
            return link::planned_as(planned, requires_replace);
        } else if due || forced {
            let why = if forced && !due {
                "`rotate_when_changed` changed".to_string()
            } else {
                reason.unwrap_or_else(|| "a rotation is due".into())
            };
            if let Some(l) = config.link(&mut Diagnostics::default()).as_ref()
                && let Ok(engine) = ctx.engine().await
            {
                let replace = if forced {
                    prior.status.current_key_id.known().cloned()
                } else {
                    None
                };
                dry_run_check(&engine, l, &policy, forced, replace, diags).await;
            }
            diags.warning(
                format!("{name} will be rotated: {why}"),
                "apply creates a new client secret, verifies it, writes it to every target and keeps the old one \
                 for the grace period; the new key id is known after apply",
                None,
            );
            planned.status = StatusModel::unknown();
            return link::planned_as(planned, requires_replace);
        }

        let config_changed = policy_changed || prior.other_config_differs_from(&planned);
        if !cleanup.is_empty() {
            let one = cleanup.len() == 1;
            diags.warning(
                format!(
                    "{name}: apply removes {} old client secret{} whose grace period is over: {}",
                    cleanup.len(),
                    if one { "" } else { "s" },
                    cleanup.join(", ")
                ),
                format!(
                    "No Key Vault secret in scope holds {}, and the current client secret {} was created more than \
                     grace_period_days ({}) ago; removing {} ends {} validity (as `rotor cleanup` does).",
                    if one { "it" } else { "them" },
                    prior.status.current_key_id.as_deref().unwrap_or("?"),
                    policy.grace_period_days,
                    if one { "it" } else { "them" },
                    if one { "its" } else { "their" },
                ),
                None,
            );
            planned.status.previous_key_ids = Attr::Unknown;
            planned.status.removable_key_ids = Attr::Unknown;
        }
        if config_changed {
            // An apply will run (targets synced, cleanup): the status may move.
            planned.status.unknown_but_credential();
        }
        link::planned_as(planned, requires_replace)
    }

    /// Destroy: forget. Key Vault secrets are never deleted. A create of the same lineage later
    /// in this apply is a replacement (`-replace`, `taint`) and rotates. `false` when the
    /// requested cleanup failed (the link stays in state).
    async fn destroy(
        &self,
        ctx: &ProviderState,
        engine: &Engine,
        prior: &SecretLinkModel,
        diags: &mut Diagnostics,
    ) -> bool {
        let mut sent = Outcome::default();
        let ok = self
            .destroy_link(ctx, engine, prior, &mut sent, diags)
            .await;
        if let Some(link) = prior.link(&mut Diagnostics::default()) {
            ctx.notify(format!("terraform destroy, {link}"), &sent, diags)
                .await;
        }
        ok
    }

    async fn apply_change(
        &self,
        ctx: &ProviderState,
        engine: &Engine,
        creating: bool,
        prior: &SecretLinkModel,
        planned: &SecretLinkModel,
        diags: &mut Diagnostics,
    ) -> Option<SecretLinkModel> {
        let link = planned.link(diags)?;
        let policy = planned.policy(diags)?;
        let what = format!("terraform apply, {link}");
        let mut sent = Outcome::default();
        let status = match link::inspect(ctx, engine, &link, &policy, false).await {
            Ok(s) => s,
            Err(e) => {
                sent.failed(format!("reading {link}: {e}"));
                engine_error(diags, &e, &PLACEMENT);
                ctx.notify(what, &sent, diags).await;
                return None;
            }
        };
        let change = Change {
            creating,
            prior,
            planned,
            link: &link,
            policy: &policy,
            status,
        };
        let out = self
            .apply_update(ctx, engine, change, &mut sent, diags)
            .await;
        ctx.notify(what, &sent, diags).await;
        Some(out)
    }

    async fn import_link(
        &self,
        ctx: &ProviderState,
        engine: &Engine,
        id: &str,
        parsed: LinkImport,
        diags: &mut Diagnostics,
    ) -> Option<SecretLinkModel> {
        let vaults = match ctx.vaults(engine).await {
            Ok(v) => v,
            Err(e) => {
                engine_error(diags, &e, &PLACEMENT);
                return None;
            }
        };
        let policy = Policy::default();
        // Any credential of the lineage names it; the newest is the likeliest held.
        let (app_id, key_id) = link::import_key_id::<Self, _>(
            engine,
            id,
            parsed,
            |app, lineage| {
                let newest = app.lineage(lineage).last().map(|c| c.key_id.clone());
                let names = app
                    .password_credentials
                    .iter()
                    .map(|c| c.lineage_name().to_string());
                (newest, names.collect())
            },
            diags,
        )
        .await?;
        let link = match engine.adopt(&app_id, &key_id, &vaults, &policy).await {
            Ok(l) => l,
            Err(e) => {
                return link::import_failed::<Self, _>(id, &e, import_hints(&e.hints()), diags);
            }
        };
        Some(SecretLinkModel::of(&link))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::Set;
    use crate::resources::link::LinkCommon;
    use crate::value::Value;
    use model::TargetModel;
    use rotor_engine::{Error as EngineError, ErrorKind, Subject};
    use std::collections::BTreeMap;

    fn link_value(targets: &[(&str, &str)]) -> SecretLinkModel {
        SecretLinkModel {
            common: LinkCommon::of("b0000001-0000-4000-8000-000000000001", "Secret 1"),
            targets: Attr::Known(Set(targets
                .iter()
                .map(|(u, n)| {
                    Attr::Known(TargetModel {
                        vault_url: Attr::Known(u.to_string()),
                        secret_name: Attr::Known(n.to_string()),
                    })
                })
                .collect())),
            ..SecretLinkModel::default()
        }
    }

    #[test]
    fn the_model_round_trips_every_schema_attribute() {
        let mut m = link_value(&[("https://kv.vault.azure.net/", "a")]);
        m.status = StatusModel::unknown();
        m.common.rotate_when_changed =
            Attr::Known(BTreeMap::from([("v".to_string(), Attr::Unknown)]));
        let v = m.clone().with_id().to_value();
        let Value::Object(obj) = &v else {
            panic!("object")
        };
        let names: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut schema_names: Vec<&str> = schema().attributes.iter().map(|a| a.name).collect();
        schema_names.sort();
        assert_eq!(names, schema_names);
        assert_eq!(
            SecretLinkModel::from_value(&v).expect("decodes"),
            m.with_id()
        );
        assert!(crate::value::to_msgpack(&v, &schema().ty()).is_ok());
    }

    #[test]
    fn replacing_attributes_are_the_schemas_force_new_ones() {
        let prior = link_value(&[]);
        let mut changed = prior.clone();
        changed.common.application_id = Attr::Known("other".into());
        changed.common.credential_display_name = Attr::Known("other".into());
        let paths = changed.replaced_by(&prior);
        let force_new: Vec<AttrPath> = schema()
            .attributes
            .iter()
            .filter(|a| a.force_new)
            .map(|a| AttrPath::attr(a.name))
            .collect();
        assert_eq!(paths, force_new);
        assert!(prior.replaced_by(&prior).is_empty());
    }

    #[test]
    fn links_parse_and_bad_urls_point_at_targets() {
        let mut d = Diagnostics::default();
        let l = link_value(&[("https://kv.vault.azure.net/", "a")])
            .link(&mut d)
            .expect("link");
        assert_eq!(l.targets.len(), 1);
        let mut d = Diagnostics::default();
        assert!(link_value(&[("kv-prod", "a")]).link(&mut d).is_none());
        assert_eq!(d.0[0].path, Some(AttrPath::attr(attrs::TARGETS)));
        assert!(link::parse_vault_url("http://kv/").is_err());
        assert!(link::parse_vault_url("https://kv.vault.azure.net/secrets/x").is_err());
    }

    #[test]
    fn target_changes_are_detected() {
        let a = link_value(&[("https://a/", "x")]);
        let b = link_value(&[("https://a/", "x"), ("https://b/", "y")]);
        assert!(b.adds_targets_to(&a));
        assert!(!a.adds_targets_to(&b));
    }

    #[test]
    fn trigger_changes_force_rotation() {
        let mut a = link_value(&[]);
        let mut b = a.clone();
        assert!(!b.triggers_differ_from(&a));
        a.common.rotate_when_changed =
            Attr::Known(BTreeMap::from([("v".to_string(), Attr::Known("1".into()))]));
        assert!(a.triggers_differ_from(&b));
        b.common.rotate_when_changed = Attr::Known(BTreeMap::new());
        let empty = link_value(&[]);
        assert!(
            !b.triggers_differ_from(&empty),
            "empty and null are the same"
        );
    }

    #[test]
    fn low_confidence_and_exclusions_block_rotation() {
        let p = Policy::default();
        assert!(model::never_rotated(Some("HIGH"), None, &p).is_none());
        assert!(
            model::never_rotated(Some("LOW"), None, &p)
                .expect("blocked")
                .contains("LOW")
        );
        assert!(
            model::never_rotated(Some("HIGH"), Some("name:x*"), &p)
                .expect("blocked")
                .contains("name:x*")
        );
    }

    #[test]
    fn engine_conflicts_point_at_targets() {
        let e = EngineError::new(
            ErrorKind::Conflict,
            "checking the link",
            "a secret outside its targets holds the lineage",
        );
        assert_eq!(
            PLACEMENT.error_path(&e),
            Some(AttrPath::attr(attrs::TARGETS))
        );
        let e = e.with_subject(Subject::Lineage {
            app_id: "a".into(),
            credential_display_name: "Secret 1".into(),
        });
        assert_eq!(
            PLACEMENT.error_path(&e),
            Some(AttrPath::attr(attrs::CREDENTIAL_DISPLAY_NAME))
        );
        let e = EngineError::new(ErrorKind::NotFound, "reading application x", "gone");
        assert_eq!(
            PLACEMENT.error_path(&e),
            Some(AttrPath::attr(attrs::APPLICATION_ID))
        );
    }

    fn record(skip_reason: Option<SkipReason>, note: &str) -> AuditRecord {
        let mut r: AuditRecord = serde_json::from_value(serde_json::json!({
            "rotation_id": "r", "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:00Z",
            "actor": "terraform", "app_id": "a", "app_name": "", "old_key_id": null, "new_key_id": null,
            "new_expires_at": null, attrs::CONFIDENCE: "HIGH", attrs::TARGETS: [], "status": "skipped", "error": null,
        }))
        .expect("record");
        r.skip_reason = skip_reason;
        if !note.is_empty() {
            r.notes.push(note.to_string());
        }
        r
    }

    #[test]
    fn skips_for_another_run_are_recognised() {
        assert!(skipped_for_another_run(&record(
            Some(SkipReason::InProgress),
            ""
        )));
        assert!(skipped_for_another_run(&record(
            Some(SkipReason::LostRace),
            ""
        )));
        assert!(!skipped_for_another_run(&record(
            Some(SkipReason::NotDue),
            ""
        )));
        assert!(!skipped_for_another_run(&record(
            Some(SkipReason::DryRun),
            ""
        )));
        // until the engine sets skip_reason: its words
        assert!(skipped_for_another_run(&record(
            None,
            "rotation in progress (started 10 minutes ago)"
        )));
        assert!(!skipped_for_another_run(&record(None, "not due")));
        let d = another_run_detail(&record(Some(SkipReason::InProgress), ""), None);
        assert!(
            d.contains("orphan") && d.contains("re-run `terraform apply`"),
            "{d}"
        );
    }

    #[test]
    fn lineage_conflicts_name_both_target_sets() {
        let l = link_value(&[("https://kv-dev.vault.azure.net/", "b")])
            .link(&mut Diagnostics::default())
            .expect("link");
        let first = BTreeSet::from(["https://kv-prod.vault.azure.net/a".to_string()]);
        let this = BTreeSet::from(["https://kv-dev.vault.azure.net/b".to_string()]);
        let d = lineage_conflict_detail(&l, &first, &this);
        assert!(d.contains("another rotor_secret_link in this configuration (targets `https://kv-prod.vault.azure.net/a`)"), "{d}");
        assert!(
            d.contains("this one (targets `https://kv-dev.vault.azure.net/b`)"),
            "{d}"
        );
        assert!(d.contains("one rotor_secret_link per lineage"), "{d}");
        assert!(!d.contains("  "), "no stray indentation: {d}");
    }

    #[test]
    fn guids() {
        assert!(crate::ids::is_guid("b0000001-0000-4000-8000-000000000001"));
        assert!(!crate::ids::is_guid("myapp"));
    }
}
