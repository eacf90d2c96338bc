//! The `rotor_secret_link` model: its attribute names ([`attrs`]) and the typed value the
//! resource works on. [`SecretLinkModel`]'s `from_value`/`to_value` (with [`LinkCommon`]'s
//! `read`/`write` for the attributes both link resources have) are the only places besides the
//! schema that name attributes.

use std::collections::BTreeMap;

use rotor_engine::{Confidence, Link, LinkStatus, Policy, Target};

use crate::framework::Diagnostics;
use crate::model::{Attr, Field, ModelError, Reader, Set, Writer};
use crate::resources::diag::Placement;
use crate::resources::link::{
    LinkCommon, VaultItems, differs, item_list, item_set, rfc3339, rotation_reason,
};
pub use crate::resources::link::{LinkModel, parse_vault_url, target_identity};
use crate::value::{Type, Value};

/// Every attribute name of `rotor_secret_link`, in one place: the schema and the model use these.
pub mod attrs {
    pub use crate::resources::link::attrs::*;
    pub const TARGETS: &str = "targets";
    pub const CLEANUP_ON_DESTROY: &str = "cleanup_on_destroy";
    pub const CURRENT_KEY_ID: &str = "current_key_id";
    pub const CURRENT_EXPIRES_AT: &str = "current_expires_at";
    pub const TARGET_VERSIONS: &str = "target_versions";
    pub const CONFIDENCE: &str = "confidence";
    pub const VAULT_URL: &str = "vault_url";
    pub const SECRET_NAME: &str = "secret_name";
}

/// How `targets` is named in messages.
pub const TARGETS: VaultItems = VaultItems {
    attr: attrs::TARGETS,
    noun: "target",
    kind: "secret",
    name_attr: attrs::SECRET_NAME,
    name_label: "target secret name",
};

/// Where engine errors about a secret link land.
pub const PLACEMENT: Placement = Placement {
    application: attrs::APPLICATION_ID,
    target: attrs::TARGETS,
    lineage: attrs::CREDENTIAL_DISPLAY_NAME,
    setting: attrs::POLICY,
};

/// The type of one target.
pub fn target_type() -> Type {
    Type::object([
        (attrs::VAULT_URL, Type::String),
        (attrs::SECRET_NAME, Type::String),
    ])
}

/// One element of `targets`: a Key Vault secret.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetModel {
    /// `vault_url`.
    pub vault_url: Attr<String>,
    /// `secret_name`.
    pub secret_name: Attr<String>,
}

impl Field for TargetModel {
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        let r = Reader::new(v)?;
        Ok(TargetModel {
            vault_url: r.get(attrs::VAULT_URL)?,
            secret_name: r.get(attrs::SECRET_NAME)?,
        })
    }
    fn to_value(&self) -> Value {
        Writer::default()
            .put(attrs::VAULT_URL, &self.vault_url)
            .put(attrs::SECRET_NAME, &self.secret_name)
            .build()
    }
}

impl TargetModel {
    /// The model of an engine target.
    pub fn of(t: &Target) -> Self {
        TargetModel {
            vault_url: Attr::Known(t.vault_url.to_string()),
            secret_name: Attr::Known(t.secret_name.clone()),
        }
    }
}

/// The computed attributes that describe Azure's state (everything a rotation can change).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusModel {
    /// `current_key_id`.
    pub current_key_id: Attr<String>,
    /// `current_expires_at` (RFC 3339).
    pub current_expires_at: Attr<String>,
    /// `rotated_at` (RFC 3339).
    pub rotated_at: Attr<String>,
    /// `next_rotation_at` (RFC 3339).
    pub next_rotation_at: Attr<String>,
    /// `rotation_due`.
    pub rotation_due: Attr<bool>,
    /// `rotation_reason`.
    pub rotation_reason: Attr<String>,
    /// `previous_key_ids`.
    pub previous_key_ids: Attr<Vec<String>>,
    /// `target_versions`.
    pub target_versions: Attr<BTreeMap<String, String>>,
    /// `confidence`.
    pub confidence: Attr<String>,
    /// `excluded`.
    pub excluded: Attr<String>,
    /// `removable_key_ids`.
    pub removable_key_ids: Attr<Vec<String>>,
}

/// Why a link is never rotated, if it is not: excluded, or confidence below the policy minimum.
pub fn never_rotated(
    confidence: Option<&str>,
    excluded: Option<&str>,
    policy: &Policy,
) -> Option<String> {
    if let Some(pattern) = excluded {
        return Some(format!("it is excluded by policy exclusion `{pattern}`"));
    }
    let c = confidence?.parse::<Confidence>().ok()?;
    (c < policy.min_confidence).then(|| {
        format!(
            "rotor's confidence that the targets hold this credential is {c}, below the policy minimum {}",
            policy.min_confidence
        )
    })
}

/// Why `s` is never rotated under `policy`, if it is not.
pub fn status_never_rotated(s: &LinkStatus, policy: &Policy) -> Option<String> {
    never_rotated(
        Some(&s.confidence.to_string()),
        s.excluded.as_deref(),
        policy,
    )
}

impl StatusModel {
    /// Everything unknown: a rotation (or create) decides it.
    pub fn unknown() -> Self {
        StatusModel {
            current_key_id: Attr::Unknown,
            current_expires_at: Attr::Unknown,
            rotated_at: Attr::Unknown,
            next_rotation_at: Attr::Unknown,
            rotation_due: Attr::Unknown,
            rotation_reason: Attr::Unknown,
            previous_key_ids: Attr::Unknown,
            target_versions: Attr::Unknown,
            confidence: Attr::Unknown,
            excluded: Attr::Unknown,
            removable_key_ids: Attr::Unknown,
        }
    }

    /// Everything but the current credential (key id and dates) unknown: an apply runs that
    /// leaves the credential alone (targets synced, cleanup).
    pub fn unknown_but_credential(&mut self) {
        *self = StatusModel {
            current_key_id: self.current_key_id.clone(),
            current_expires_at: self.current_expires_at.clone(),
            rotated_at: self.rotated_at.clone(),
            ..StatusModel::unknown()
        };
    }

    /// As [`Self::unknown_but_credential`], also keeping `next_rotation_at`: a repair copies the
    /// current credential, so its schedule stays.
    pub fn unknown_but_credential_and_schedule(&mut self) {
        let next = self.next_rotation_at.clone();
        self.unknown_but_credential();
        self.next_rotation_at = next;
    }

    /// The status as the engine observed it (`removable_key_ids` is left as it is).
    pub fn observe(&mut self, s: &LinkStatus, policy: &Policy) {
        let blocked = status_never_rotated(s, policy);
        let reason = rotation_reason(
            blocked.as_deref(),
            s.in_progress,
            s.rotation_due,
            s.due_reason.as_ref(),
            "a rotation is due",
        );
        *self = StatusModel {
            current_key_id: Attr::from_option(s.current_key_id.clone()),
            current_expires_at: rfc3339(s.current_expires_at),
            rotated_at: rfc3339(s.rotated_at),
            next_rotation_at: rfc3339(s.next_rotation_at),
            rotation_due: Attr::Known(s.rotation_due && blocked.is_none() && !s.in_progress),
            rotation_reason: Attr::from_option(reason),
            previous_key_ids: Attr::Known(s.previous_key_ids.clone()),
            target_versions: Attr::Known(s.target_versions.clone()),
            confidence: Attr::Known(s.confidence.to_string()),
            excluded: Attr::from_option(s.excluded.clone()),
            removable_key_ids: self.removable_key_ids.clone(),
        };
    }

    /// The status observed from `s` (`removable_key_ids` null).
    pub fn observed(s: &LinkStatus, policy: &Policy) -> Self {
        let mut out = StatusModel::default();
        out.observe(s, policy);
        out
    }

    /// Keeps every value `planned` promised (Terraform rejects changes to known planned values).
    pub fn keep_planned(&mut self, planned: &StatusModel) {
        self.current_key_id.keep_known(&planned.current_key_id);
        self.current_expires_at
            .keep_known(&planned.current_expires_at);
        self.rotated_at.keep_known(&planned.rotated_at);
        self.next_rotation_at.keep_known(&planned.next_rotation_at);
        self.rotation_due.keep_known(&planned.rotation_due);
        self.rotation_reason.keep_known(&planned.rotation_reason);
        self.previous_key_ids.keep_known(&planned.previous_key_ids);
        self.target_versions.keep_known(&planned.target_versions);
        self.confidence.keep_known(&planned.confidence);
        self.excluded.keep_known(&planned.excluded);
        self.removable_key_ids
            .keep_known(&planned.removable_key_ids);
    }

    /// Why this link is never rotated under `policy`, if it is not.
    pub fn never_rotated(&self, policy: &Policy) -> Option<String> {
        never_rotated(self.confidence.as_deref(), self.excluded.as_deref(), policy)
    }

    /// Whether a rotation is due (known true).
    pub fn due(&self) -> bool {
        self.rotation_due.known() == Some(&true)
    }

    fn read(r: &Reader<'_>) -> Result<Self, ModelError> {
        Ok(StatusModel {
            current_key_id: r.get(attrs::CURRENT_KEY_ID)?,
            current_expires_at: r.get(attrs::CURRENT_EXPIRES_AT)?,
            rotated_at: r.get(attrs::ROTATED_AT)?,
            next_rotation_at: r.get(attrs::NEXT_ROTATION_AT)?,
            rotation_due: r.get(attrs::ROTATION_DUE)?,
            rotation_reason: r.get(attrs::ROTATION_REASON)?,
            previous_key_ids: r.get(attrs::PREVIOUS_KEY_IDS)?,
            target_versions: r.get(attrs::TARGET_VERSIONS)?,
            confidence: r.get(attrs::CONFIDENCE)?,
            excluded: r.get(attrs::EXCLUDED)?,
            removable_key_ids: r.get(attrs::REMOVABLE_KEY_IDS)?,
        })
    }

    fn write(&self, w: Writer) -> Writer {
        w.put(attrs::CURRENT_KEY_ID, &self.current_key_id)
            .put(attrs::CURRENT_EXPIRES_AT, &self.current_expires_at)
            .put(attrs::ROTATED_AT, &self.rotated_at)
            .put(attrs::NEXT_ROTATION_AT, &self.next_rotation_at)
            .put(attrs::ROTATION_DUE, &self.rotation_due)
            .put(attrs::ROTATION_REASON, &self.rotation_reason)
            .put(attrs::PREVIOUS_KEY_IDS, &self.previous_key_ids)
            .put(attrs::TARGET_VERSIONS, &self.target_versions)
            .put(attrs::CONFIDENCE, &self.confidence)
            .put(attrs::EXCLUDED, &self.excluded)
            .put(attrs::REMOVABLE_KEY_IDS, &self.removable_key_ids)
    }
}

/// A `rotor_secret_link` value: configuration and status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SecretLinkModel {
    /// `id`, the lineage, `policy` and `rotate_when_changed`.
    pub common: LinkCommon,
    /// `targets`.
    pub targets: Attr<Set<Attr<TargetModel>>>,
    /// `cleanup_on_destroy`.
    pub cleanup_on_destroy: Attr<bool>,
    /// The computed status.
    pub status: StatusModel,
}

impl Field for SecretLinkModel {
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        let r = Reader::new(v)?;
        Ok(SecretLinkModel {
            common: LinkCommon::read(&r)?,
            targets: r.get(attrs::TARGETS)?,
            cleanup_on_destroy: r.get(attrs::CLEANUP_ON_DESTROY)?,
            status: StatusModel::read(&r)?,
        })
    }

    fn to_value(&self) -> Value {
        let w = self
            .common
            .write(Writer::default())
            .put(attrs::TARGETS, &self.targets)
            .put(attrs::CLEANUP_ON_DESTROY, &self.cleanup_on_destroy);
        self.status.write(w).build()
    }
}

impl LinkModel for SecretLinkModel {
    fn common(&self) -> &LinkCommon {
        &self.common
    }
    fn common_mut(&mut self) -> &mut LinkCommon {
        &mut self.common
    }
}

impl SecretLinkModel {
    /// A link's configuration with every other attribute null (import, tests).
    pub fn of(link: &Link) -> Self {
        SecretLinkModel {
            common: LinkCommon::of(&link.application_id, &link.credential_display_name),
            targets: item_set(link.targets.iter().map(TargetModel::of)),
            ..SecretLinkModel::default()
        }
    }

    /// The targets as listed (none when the set is unknown or null).
    pub fn target_list(&self) -> &[Attr<TargetModel>] {
        item_list(&self.targets)
    }

    /// The engine link this value describes; `None` while something is unknown, and (with an
    /// error on `targets`) when a vault URL is not one.
    pub fn link(&self, diags: &mut Diagnostics) -> Option<Link> {
        let (application_id, credential_display_name) = self.common.lineage()?;
        let targets = TARGETS
            .parse(&self.targets, |t| (&t.vault_url, &t.secret_name), diags)?
            .into_iter()
            .map(|(u, name)| Target::new(u, name))
            .collect();
        Some(Link {
            application_id: application_id.to_string(),
            credential_display_name: credential_display_name.to_string(),
            targets,
        })
    }

    /// Whether `self` lists a target `prior` does not.
    pub fn adds_targets_to(&self, prior: &SecretLinkModel) -> bool {
        let before = prior.target_list();
        self.target_list().iter().any(|t| !before.contains(t))
    }

    /// Whether any configured attribute other than the policy differs from `other`'s.
    pub fn other_config_differs_from(&self, other: &SecretLinkModel) -> bool {
        differs(&self.targets, &other.targets)
            || differs(
                &self.common.rotate_when_changed,
                &other.common.rotate_when_changed,
            )
            || self.cleanup_on_destroy != other.cleanup_on_destroy
    }
}
