//! The `rotor_certificate_link` model: its attribute names ([`attrs`]) and the typed value the
//! resource works on. [`CertificateLinkModel`]'s conversion (with [`LinkCommon`]'s `read`/`write`
//! for the attributes both link resources have) and the schema are the only places that name
//! attributes.

use std::collections::BTreeMap;

use rotor_engine::{CertificateLink, CertificateLinkStatus, CertificateTarget};

use crate::framework::Diagnostics;
use crate::model::{Attr, Field, ModelError, Reader, Set, Writer, object_model};
use crate::resources::diag::Placement;
pub use crate::resources::link::LinkModel;
use crate::resources::link::{LinkCommon, VaultItems, differs, item_set, rfc3339, rotation_reason};
use crate::value::{Type, Value};

/// Every attribute name of `rotor_certificate_link`, in one place: the schema and the model use
/// these (the elements of `certificates` name theirs in [`CertificateModel`]).
pub mod attrs {
    pub use crate::resources::link::attrs::*;
    pub const CERTIFICATES: &str = "certificates";
    pub const KEY_ID: &str = "key_id";
    pub const THUMBPRINT: &str = "thumbprint";
    pub const EXPIRES_AT: &str = "expires_at";
    pub const VERSIONS: &str = "versions";
}

/// How `certificates` is named in messages.
pub const CERTIFICATES: VaultItems = VaultItems {
    attr: attrs::CERTIFICATES,
    noun: "certificate",
    kind: "certificate",
    name_attr: "certificate_name",
    name_label: "certificate name",
};

/// Where engine errors about a certificate link land.
pub const PLACEMENT: Placement = Placement {
    application: attrs::APPLICATION_ID,
    target: attrs::CERTIFICATES,
    lineage: attrs::CREDENTIAL_DISPLAY_NAME,
    setting: attrs::POLICY,
};

object_model! {
    /// One element of `certificates`: a Key Vault certificate.
    pub struct CertificateModel {
        /// The vault's URL (`https://kv-prod.vault.azure.net/`).
        vault_url: Attr<String> = Type::String,
        /// The certificate's name in that vault.
        certificate_name: Attr<String> = Type::String,
    }
}

impl CertificateModel {
    /// The model of an engine certificate target.
    pub fn of(t: &CertificateTarget) -> Self {
        CertificateModel {
            vault_url: Attr::Known(t.vault_url.to_string()),
            certificate_name: Attr::Known(t.certificate_name.clone()),
        }
    }
}

/// The computed attributes that describe Azure's state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CertStatusModel {
    /// `key_id`.
    pub key_id: Attr<String>,
    /// `thumbprint`.
    pub thumbprint: Attr<String>,
    /// `expires_at` (RFC 3339).
    pub expires_at: Attr<String>,
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
    /// `versions`.
    pub versions: Attr<BTreeMap<String, String>>,
    /// `excluded`.
    pub excluded: Attr<String>,
    /// `removable_key_ids`.
    pub removable_key_ids: Attr<Vec<String>>,
}

/// Why a certificate link is never rotated: an exclusion matches it. (Certificates are matched
/// by thumbprint, so there is no confidence to fall short of.)
pub fn never_rotated(excluded: Option<&str>) -> Option<String> {
    excluded.map(|p| format!("it is excluded by policy exclusion `{p}`"))
}

impl CertStatusModel {
    /// Everything unknown: a rotation (or create) decides it.
    pub fn unknown() -> Self {
        CertStatusModel {
            key_id: Attr::Unknown,
            thumbprint: Attr::Unknown,
            expires_at: Attr::Unknown,
            rotated_at: Attr::Unknown,
            next_rotation_at: Attr::Unknown,
            rotation_due: Attr::Unknown,
            rotation_reason: Attr::Unknown,
            previous_key_ids: Attr::Unknown,
            versions: Attr::Unknown,
            excluded: Attr::Unknown,
            removable_key_ids: Attr::Unknown,
        }
    }

    /// Everything but the current credential (key id, thumbprint, dates) unknown.
    pub fn unknown_but_credential(&mut self) {
        *self = CertStatusModel {
            key_id: self.key_id.clone(),
            thumbprint: self.thumbprint.clone(),
            expires_at: self.expires_at.clone(),
            rotated_at: self.rotated_at.clone(),
            ..CertStatusModel::unknown()
        };
    }

    /// The status as the engine observed it (`removable_key_ids` is left as it is).
    pub fn observe(&mut self, s: &CertificateLinkStatus) {
        let blocked = never_rotated(s.excluded.as_deref());
        let reason = rotation_reason(
            blocked.as_deref(),
            s.in_progress,
            s.rotation_due,
            s.due_reason.as_ref(),
            if s.pending_version.is_some() {
                "Key Vault holds a certificate version the application lacks: a sync is due"
            } else {
                "a rotation is due"
            },
        );
        *self = CertStatusModel {
            key_id: Attr::from_option(s.current_key_id.clone()),
            thumbprint: Attr::from_option(s.current_thumbprint.clone()),
            expires_at: rfc3339(s.current_expires_at),
            rotated_at: rfc3339(s.rotated_at),
            next_rotation_at: rfc3339(s.next_rotation_at),
            rotation_due: Attr::Known(s.rotation_due && blocked.is_none() && !s.in_progress),
            rotation_reason: Attr::from_option(reason),
            previous_key_ids: Attr::Known(s.previous_key_ids.clone()),
            versions: Attr::Known(s.certificate_versions.clone()),
            excluded: Attr::from_option(s.excluded.clone()),
            removable_key_ids: self.removable_key_ids.clone(),
        };
    }

    /// The status observed from `s` (`removable_key_ids` null).
    pub fn observed(s: &CertificateLinkStatus) -> Self {
        let mut out = CertStatusModel::default();
        out.observe(s);
        out
    }

    /// Keeps every value `planned` promised (Terraform rejects changes to known planned values).
    pub fn keep_planned(&mut self, planned: &CertStatusModel) {
        self.key_id.keep_known(&planned.key_id);
        self.thumbprint.keep_known(&planned.thumbprint);
        self.expires_at.keep_known(&planned.expires_at);
        self.rotated_at.keep_known(&planned.rotated_at);
        self.next_rotation_at.keep_known(&planned.next_rotation_at);
        self.rotation_due.keep_known(&planned.rotation_due);
        self.rotation_reason.keep_known(&planned.rotation_reason);
        self.previous_key_ids.keep_known(&planned.previous_key_ids);
        self.versions.keep_known(&planned.versions);
        self.excluded.keep_known(&planned.excluded);
        self.removable_key_ids
            .keep_known(&planned.removable_key_ids);
    }

    /// Why this link is never rotated, if it is not.
    pub fn never_rotated(&self) -> Option<String> {
        never_rotated(self.excluded.as_deref())
    }

    /// Whether a rotation or sync is due (known true).
    pub fn due(&self) -> bool {
        self.rotation_due.known() == Some(&true)
    }

    fn read(r: &Reader<'_>) -> Result<Self, ModelError> {
        Ok(CertStatusModel {
            key_id: r.get(attrs::KEY_ID)?,
            thumbprint: r.get(attrs::THUMBPRINT)?,
            expires_at: r.get(attrs::EXPIRES_AT)?,
            rotated_at: r.get(attrs::ROTATED_AT)?,
            next_rotation_at: r.get(attrs::NEXT_ROTATION_AT)?,
            rotation_due: r.get(attrs::ROTATION_DUE)?,
            rotation_reason: r.get(attrs::ROTATION_REASON)?,
            previous_key_ids: r.get(attrs::PREVIOUS_KEY_IDS)?,
            versions: r.get(attrs::VERSIONS)?,
            excluded: r.get(attrs::EXCLUDED)?,
            removable_key_ids: r.get(attrs::REMOVABLE_KEY_IDS)?,
        })
    }

    fn write(&self, w: Writer) -> Writer {
        w.put(attrs::KEY_ID, &self.key_id)
            .put(attrs::THUMBPRINT, &self.thumbprint)
            .put(attrs::EXPIRES_AT, &self.expires_at)
            .put(attrs::ROTATED_AT, &self.rotated_at)
            .put(attrs::NEXT_ROTATION_AT, &self.next_rotation_at)
            .put(attrs::ROTATION_DUE, &self.rotation_due)
            .put(attrs::ROTATION_REASON, &self.rotation_reason)
            .put(attrs::PREVIOUS_KEY_IDS, &self.previous_key_ids)
            .put(attrs::VERSIONS, &self.versions)
            .put(attrs::EXCLUDED, &self.excluded)
            .put(attrs::REMOVABLE_KEY_IDS, &self.removable_key_ids)
    }
}

/// A `rotor_certificate_link` value: configuration and status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CertificateLinkModel {
    /// `id`, the lineage, `policy` and `rotate_when_changed`.
    pub common: LinkCommon,
    /// `certificates`.
    pub certificates: Attr<Set<Attr<CertificateModel>>>,
    /// The computed status.
    pub status: CertStatusModel,
}

impl Field for CertificateLinkModel {
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        let r = Reader::new(v)?;
        Ok(CertificateLinkModel {
            common: LinkCommon::read(&r)?,
            certificates: r.get(attrs::CERTIFICATES)?,
            status: CertStatusModel::read(&r)?,
        })
    }

    fn to_value(&self) -> Value {
        let w = self
            .common
            .write(Writer::default())
            .put(attrs::CERTIFICATES, &self.certificates);
        self.status.write(w).build()
    }
}

impl LinkModel for CertificateLinkModel {
    fn common(&self) -> &LinkCommon {
        &self.common
    }
    fn common_mut(&mut self) -> &mut LinkCommon {
        &mut self.common
    }
}

impl CertificateLinkModel {
    /// A link's configuration with every other attribute null (import, tests).
    pub fn of(link: &CertificateLink) -> Self {
        CertificateLinkModel {
            common: LinkCommon::of(&link.application_id, &link.credential_display_name),
            certificates: item_set(link.certificates.iter().map(CertificateModel::of)),
            ..CertificateLinkModel::default()
        }
    }

    /// The engine link this value describes; `None` while something is unknown, and (with an
    /// error on `certificates`) when a vault URL is not one.
    pub fn link(&self, diags: &mut Diagnostics) -> Option<CertificateLink> {
        let (application_id, credential_display_name) = self.common.lineage()?;
        let certificates = CERTIFICATES
            .parse(
                &self.certificates,
                |c| (&c.vault_url, &c.certificate_name),
                diags,
            )?
            .into_iter()
            .map(|(u, name)| CertificateTarget::new(u, name))
            .collect();
        Some(CertificateLink {
            application_id: application_id.to_string(),
            credential_display_name: credential_display_name.to_string(),
            certificates,
        })
    }

    /// Whether `certificates` or `rotate_when_changed` differ from `other`'s.
    pub fn other_config_differs_from(&self, other: &CertificateLinkModel) -> bool {
        differs(&self.certificates, &other.certificates)
            || differs(
                &self.common.rotate_when_changed,
                &other.common.rotate_when_changed,
            )
    }
}
