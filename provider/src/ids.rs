//! Resource ids, in one place: the id a resource stores in state and the ids `terraform import`
//! accepts are built and parsed here, from one definition each, so they round-trip.
//!
//! | resource | state `id` | import accepts |
//! |---|---|---|
//! | `rotor_secret_link` | `<application_id>/<credential_display_name>` | the state id, or `<application_id>/<key_id>` |
//! | `rotor_certificate_link` | `<application_id>/<credential_display_name>` | the state id, or `<application_id>/<key_id>` (a key credential of the lineage) |
//! | `rotor_policy` | `<name>` | the state id |
//!
//! Both link resources share [`LinkId`] and [`parse_link_import`]: one grammar, two lineages.

/// A `rotor_secret_link` id: the application and the lineage (its credential display name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkId {
    /// Application (client) id.
    pub application_id: String,
    /// The lineage: the client secret's display name (without rotor's ` rotor:<id>` suffix).
    pub credential_display_name: String,
}

impl LinkId {
    /// The state id, `<application_id>/<credential_display_name>`.
    pub fn state_id(application_id: &str, credential_display_name: &str) -> String {
        format!("{application_id}/{credential_display_name}")
    }
}

/// What `terraform import rotor_secret_link.x <id>` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkImport {
    /// The resource's own id: `<application_id>/<credential_display_name>`.
    Lineage(LinkId),
    /// `<application_id>/<key_id>`: one client secret of the lineage, by its key id.
    KeyId {
        /// Application (client) id.
        application_id: String,
        /// Key id of a client secret of the lineage.
        key_id: String,
    },
}

/// The import id forms, for error messages and docs.
pub const LINK_IMPORT_FORMS: &str = "`<application_id>/<credential_display_name>` (the resource's `id`) or `<application_id>/<key_id>`";

/// Parses an import id. The application id is a GUID, so the first `/` ends it and the rest is
/// the display name (which may itself contain `/`); a rest that is a GUID is a key id.
pub fn parse_link_import(id: &str) -> Result<LinkImport, String> {
    let Some((app, rest)) = id.split_once('/') else {
        return Err(format!("`{id}` has no `/`"));
    };
    if !is_guid(app) {
        return Err(format!(
            "`{app}` is not an application (client) id (a GUID)"
        ));
    }
    if rest.is_empty() {
        return Err("the credential display name (or key id) after `/` is empty".into());
    }
    if rest.contains(" rotor:") {
        return Err(format!(
            "`{rest}` carries rotor's own ` rotor:` suffix; use the lineage name `{}`",
            &rest[..rest.find(" rotor:").unwrap_or(0)]
        ));
    }
    Ok(if is_guid(rest) {
        LinkImport::KeyId {
            application_id: app.to_string(),
            key_id: rest.to_string(),
        }
    } else {
        LinkImport::Lineage(LinkId {
            application_id: app.to_string(),
            credential_display_name: rest.to_string(),
        })
    })
}

/// The state id of a `rotor_policy`: its name.
pub fn policy_state_id(name: &str) -> String {
    name.to_string()
}

/// Whether `s` is a GUID (`8-4-4-4-12` hex digits).
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "b0000001-0000-4000-8000-000000000001";
    const KEY: &str = "c0000001-0000-4000-8000-000000000101";

    #[test]
    fn the_state_id_round_trips_through_import() {
        for name in ["Secret 1", "ci/cd", "prod"] {
            let id = LinkId::state_id(APP, name);
            assert_eq!(
                parse_link_import(&id),
                Ok(LinkImport::Lineage(LinkId {
                    application_id: APP.into(),
                    credential_display_name: name.into()
                }))
            );
        }
    }

    #[test]
    fn the_key_id_form_is_accepted() {
        assert_eq!(
            parse_link_import(&format!("{APP}/{KEY}")),
            Ok(LinkImport::KeyId {
                application_id: APP.into(),
                key_id: KEY.into()
            })
        );
    }

    fn err(id: &str) -> String {
        match parse_link_import(id) {
            Err(e) => e,
            Ok(v) => panic!("`{id}` parsed as {v:?}"),
        }
    }

    #[test]
    fn bad_ids_say_why() {
        assert!(err("myapp").contains("no `/`"));
        assert!(err("myapp/Secret 1").contains("GUID"));
        assert!(err(&format!("{APP}/")).contains("empty"));
        assert!(err(&format!("{APP}/Secret 1 rotor:abc")).contains("`Secret 1`"));
        assert!(is_guid(APP) && !is_guid("myapp"));
    }
}
