//! Engine errors as diagnostics, in one place: the attribute a diagnostic lands on comes from
//! the error's [`Subject`] (what it is about), mapped to the resource's own attribute names by a
//! [`Placement`]; hints go into the detail. Rewording an engine message cannot move a diagnostic.

use rotor_engine::{AuditRecord, Error, ErrorKind, Subject};

use crate::framework::{AttrPath, Diagnostics};
use crate::provider::hint_lines;

/// Which attribute of a resource each kind of [`Subject`] is.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    /// `Subject::Application`: the application (client) id attribute.
    pub application: &'static str,
    /// `Subject::Target`: the attribute listing the Key Vault objects.
    pub target: &'static str,
    /// `Subject::Lineage`: the credential display name attribute.
    pub lineage: &'static str,
    /// `Subject::Setting`: the policy attribute.
    pub setting: &'static str,
}

impl Placement {
    /// The attribute `subject` is about.
    pub fn path(&self, subject: &Subject) -> Option<AttrPath> {
        match subject {
            Subject::Target(_) => Some(AttrPath::attr(self.target)),
            Subject::Lineage { .. } => Some(AttrPath::attr(self.lineage)),
            Subject::Application(_) => Some(AttrPath::attr(self.application)),
            Subject::Setting(_) => Some(AttrPath::attr(self.setting)),
            _ => None,
        }
    }

    /// The attribute `e` is about: its subject; for errors the engine does not tag yet, its
    /// kind (a conflict is a Key Vault object outside the targets; a missing application or
    /// permission is the application's), else whether it speaks of a vault or an application.
    pub fn error_path(&self, e: &Error) -> Option<AttrPath> {
        if let Some(path) = e.subject().and_then(|s| self.path(s)) {
            return Some(path);
        }
        let text = e.to_string();
        if e.kind() == ErrorKind::Conflict || text.contains("Key Vault") || text.contains("vault") {
            Some(AttrPath::attr(self.target))
        } else if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Permission)
            || text.contains("application")
        {
            Some(AttrPath::attr(self.application))
        } else {
            None
        }
    }

    /// The attribute a failed rotation's record is about: its error subject, else the targets
    /// when a target failed.
    pub fn record_path(&self, record: &AuditRecord) -> Option<AttrPath> {
        let on_targets = record.targets.iter().any(|t| t.error.is_some());
        record
            .error_subject
            .as_ref()
            .and_then(|s| self.path(s))
            .or_else(|| on_targets.then(|| AttrPath::attr(self.target)))
    }
}

/// Reports `e` as an error: its sentence as the summary, its hints as the detail, on the
/// attribute its subject is.
pub fn engine_error(diags: &mut Diagnostics, e: &Error, place: &Placement) {
    diags.error(e.to_string(), hint_lines(&e.hints()), place.error_path(e));
}

/// Reports `e` as an error on `path` (a data source argument the failed call came from).
pub fn engine_error_on(diags: &mut Diagnostics, e: &Error, path: Option<AttrPath>) {
    diags.error(e.to_string(), hint_lines(&e.hints()), path);
}

/// Validates what every link resource names its lineage by: `application_id` must be a GUID
/// and `credential_display_name` must not carry rotor's own ` rotor:` suffix. Errors land on
/// the attribute.
pub fn validate_lineage(
    application_id: Option<&str>,
    credential_display_name: Option<&str>,
    diags: &mut crate::framework::Diagnostics,
) {
    use crate::framework::AttrPath;
    if let Some(id) = application_id
        && !crate::ids::is_guid(id)
    {
        diags.error(
            format!("validating application_id `{id}`: not an application (client) id"),
            "hint: use the App Registration's Application (client) ID, a GUID like 00000000-0000-0000-0000-000000000000",
            Some(AttrPath::attr("application_id")),
        );
    }
    if let Some(name) = credential_display_name
        && let Some(at) = name.find(" rotor:")
    {
        diags.error(
            format!("validating credential_display_name `{name}`: ` rotor:` is rotor's own suffix"),
            format!(
                "hint: use the lineage name without the suffix: `{}`",
                &name[..at]
            ),
            Some(AttrPath::attr("credential_display_name")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACE: Placement = Placement {
        application: "application_id",
        target: "targets",
        lineage: "credential_display_name",
        setting: "policy",
    };

    #[test]
    fn subjects_place_errors_and_untagged_errors_fall_back_on_their_kind() {
        let conflict = Error::new(
            ErrorKind::Conflict,
            "checking the link",
            "a secret outside its targets holds the lineage",
        );
        assert_eq!(PLACE.error_path(&conflict), Some(AttrPath::attr("targets")));
        let lineage = conflict.with_subject(Subject::Lineage {
            app_id: "a".into(),
            credential_display_name: "Secret 1".into(),
        });
        assert_eq!(
            PLACE.error_path(&lineage),
            Some(AttrPath::attr("credential_display_name"))
        );
        let gone = Error::new(ErrorKind::NotFound, "reading application x", "gone");
        assert_eq!(
            PLACE.error_path(&gone),
            Some(AttrPath::attr("application_id"))
        );
        let setting = Error::new(ErrorKind::Config, "checking the policy", "bad")
            .with_subject(Subject::Setting("pending_window".into()));
        assert_eq!(PLACE.error_path(&setting), Some(AttrPath::attr("policy")));
        let mut d = Diagnostics::default();
        engine_error(&mut d, &setting, &PLACE);
        assert_eq!(d.0[0].path, Some(AttrPath::attr("policy")));
    }
}
