//! The tags rotor writes on every Key Vault version, and case-insensitive tag lookup.

use crate::matching::{TAG_APP_ID, TAG_APP_NAME, TAG_KEY_ID, TAG_PREVIOUS_KEY_ID, TAG_ROTATED_AT};
use crate::model::Application;
use std::collections::BTreeMap;

/// Key Vault's limit of tags per secret version.
pub(crate) const MAX_TAGS: usize = 15;

/// The value of tag `key`, compared case-insensitively (Key Vault keeps the case it was given).
pub(crate) fn tag<'a>(tags: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// The keyId a version says it holds (`rotor-key-id`).
pub(crate) fn key_id(tags: &BTreeMap<String, String>) -> Option<&str> {
    tag(tags, TAG_KEY_ID)
}

/// The existing tags with rotor's tags set (replaced case-insensitively).
pub(crate) fn rotor_tags(
    existing: Option<&BTreeMap<String, String>>,
    app: &Application,
    new_key: &str,
    previous: Option<&str>,
    rotated_at: &str,
) -> BTreeMap<String, String> {
    let mut tags = existing.cloned().unwrap_or_default();
    let mut set = |k: &str, v: String| {
        tags.retain(|tk, _| !tk.eq_ignore_ascii_case(k));
        tags.insert(k.to_owned(), v);
    };
    set(TAG_KEY_ID, new_key.to_owned());
    if let Some(p) = previous {
        set(TAG_PREVIOUS_KEY_ID, p.to_owned());
    }
    set(TAG_ROTATED_AT, rotated_at.to_owned());
    set(TAG_APP_ID, app.app_id.clone());
    set(TAG_APP_NAME, app.display_name.chars().take(256).collect());
    tags
}

/// The application a version's `app-id` tag names when it is not `app` (a foreign secret).
pub(crate) fn foreign_app<'a>(
    tags: &'a BTreeMap<String, String>,
    app: &Application,
) -> Option<&'a str> {
    tag(tags, TAG_APP_ID).filter(|v| !v.eq_ignore_ascii_case(&app.app_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_replace_ignore_case() {
        let mut t = BTreeMap::new();
        t.insert("Rotor-Key-Id".to_owned(), "k1".to_owned());
        t.insert("owner".to_owned(), "me".to_owned());
        assert_eq!(key_id(&t), Some("k1"));
        let app = Application {
            object_id: "o".into(),
            app_id: "a".into(),
            display_name: "app".into(),
            sign_in_audience: None,
            password_credentials: vec![],
            key_credentials: vec![],
        };
        let out = rotor_tags(Some(&t), &app, "k2", Some("k1"), "now");
        assert_eq!(key_id(&out), Some("k2"));
        assert_eq!(out.len(), 6, "{out:?}");
        assert_eq!(out["owner"], "me");
    }

    #[test]
    fn foreign_app_tag() {
        let app = Application {
            object_id: "o".into(),
            app_id: "A".into(),
            display_name: "app".into(),
            sign_in_audience: None,
            password_credentials: vec![],
            key_credentials: vec![],
        };
        let mut t = BTreeMap::new();
        assert_eq!(foreign_app(&t, &app), None);
        t.insert("app-id".to_owned(), "a".to_owned());
        assert_eq!(foreign_app(&t, &app), None);
        t.insert("app-id".to_owned(), "b".to_owned());
        assert_eq!(foreign_app(&t, &app), Some("b"));
    }
}
