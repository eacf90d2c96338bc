//! Data source `rotor_matches`: matching — which Key Vault secrets hold which client secrets,
//! with the confidence and signals behind each, and the links they form (ready for `for_each`).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use rotor_engine::{Confidence, Policy};

use crate::framework::{AttrPath, DataSource, Diagnostics};
use crate::provider::{ProviderState, hint_lines};
use crate::resources::secret_link::target_type;
use crate::schema::{Attribute, Schema};
use crate::value::{Type, Value};

/// The data source.
pub struct MatchesDataSource;

fn match_type() -> Type {
    Type::object([
        ("app_id", Type::String),
        ("app_name", Type::String),
        ("key_id", Type::String),
        ("credential_display_name", Type::String),
        ("vault", Type::String),
        ("vault_url", Type::String),
        ("secret_name", Type::String),
        ("confidence", Type::String),
        ("signals", Type::list(Type::String)),
        ("excluded", Type::String),
    ])
}

fn link_type() -> Type {
    Type::object([
        ("application_id", Type::String),
        ("application_name", Type::String),
        ("credential_display_name", Type::String),
        ("key_id", Type::String),
        ("targets", Type::set(target_type())),
    ])
}

fn lineage(name: Option<&str>) -> String {
    let n = name.unwrap_or("");
    match n.rfind(" rotor:") {
        Some(i) => n[..i].to_string(),
        None => n.to_string(),
    }
}

fn opt(s: Option<&str>) -> Value {
    s.map(Value::string).unwrap_or(Value::Null)
}

#[async_trait]
impl DataSource for MatchesDataSource {
    fn type_name(&self) -> &'static str {
        "rotor_matches"
    }

    fn schema(&self) -> Schema {
        Schema {
            version: 0,
            description: "Matches client secrets to the Key Vault secrets that hold them, using tags, the secret's \
                hint, names and expiry dates (values are read only to compare hints, and never stored). `links` groups \
                the matches at or above `min_confidence` into ready-made `rotor_secret_link` arguments for `for_each`.",
            attributes: vec![
                Attribute::computed("id", Type::String, "Identifier of this read."),
                Attribute::optional(
                    "application_id",
                    Type::String,
                    "Only this application (client) id. Unset matches every application.",
                ),
                Attribute::optional(
                    "vault_urls",
                    Type::list(Type::String),
                    "Key Vaults to search. Defaults to the provider's `vault_urls` and the vaults of its `subscription_id`.",
                ),
                Attribute::optional(
                    "min_confidence",
                    Type::String,
                    "Lowest confidence (`HIGH`, `MEDIUM`, `LOW`) for a match to be part of `links`. Default `HIGH`. `matches` lists every match regardless.",
                ),
                Attribute::optional(
                    "exclusions",
                    Type::list(Type::String),
                    "Exclusion patterns (`app-id:GLOB`, `name:GLOB`, `secret:GLOB`); excluded matches are reported with `excluded` set and left out of `links`.",
                ),
                Attribute::computed(
                    "matches",
                    Type::list(match_type()),
                    "Every match: `app_id`, `app_name`, `key_id`, `credential_display_name`, `vault`, `vault_url`, `secret_name`, `confidence`, `signals` (e.g. `hint`, `tag-app`) and `excluded`.",
                ),
                Attribute::computed(
                    "unmatched",
                    Type::list(Type::object([
                        ("app_id", Type::String),
                        ("key_id", Type::String),
                    ])),
                    "Client secrets no Key Vault secret matched: `app_id` and `key_id`.",
                ),
                Attribute::computed(
                    "links",
                    Type::map(link_type()),
                    "Links formed by the matches at or above `min_confidence`, keyed by `<application name>/<credential display name>`: `application_id`, `application_name`, `credential_display_name`, `key_id` (the credential the targets hold) and `targets` (set of `vault_url`, `secret_name`).",
                ),
            ],
        }
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        if let Some(c) = config.attr("min_confidence").as_str()
            && !matches!(c, "HIGH" | "MEDIUM" | "LOW")
        {
            diags.error(
                format!("validating `min_confidence`: `{c}` is not a confidence level"),
                "hint: use one of HIGH, MEDIUM or LOW (upper case)",
                Some(AttrPath::attr("min_confidence")),
            );
        }
        if let Some(items) = config.attr("exclusions").as_elements() {
            for (i, item) in items.iter().enumerate() {
                if let Some(s) = item.as_str()
                    && let Err(e) = rotor_engine::Exclusion::parse(s)
                {
                    diags.error(
                        format!("validating exclusion `{s}`: {}", e.failure().cause),
                        hint_lines(&e.hints()),
                        Some(AttrPath::attr("exclusions").then_index(i as i64)),
                    );
                }
            }
        }
    }

    async fn read(&self, ctx: &ProviderState, config: &Value, diags: &mut Diagnostics) -> Value {
        let engine = match ctx.engine().await {
            Ok(e) => e,
            Err(f) => {
                diags.error(f.summary, f.detail, None);
                return Value::Null;
            }
        };
        let mut policy = Policy::default();
        if let Some(c) = config
            .attr("min_confidence")
            .as_str()
            .and_then(|c| c.parse::<Confidence>().ok())
        {
            policy.min_confidence = c;
        }
        for item in config.attr("exclusions").as_elements().unwrap_or_default() {
            if let Some(e) = item
                .as_str()
                .and_then(|s| rotor_engine::Exclusion::parse(s).ok())
            {
                policy.exclusions.push(e);
            }
        }
        let vaults = match config.attr("vault_urls").as_elements() {
            Some(items) if !items.is_empty() => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let s = item.as_str().unwrap_or_default();
                    match url::Url::parse(s) {
                        Ok(u) if u.scheme() == "https" => out.push(u),
                        _ => {
                            diags.error(
                                format!("validating vault URL `{s}`: not an https URL"),
                                "hint: use vault URIs such as https://kv-prod.vault.azure.net/",
                                Some(AttrPath::attr("vault_urls").then_index(i as i64)),
                            );
                            return Value::Null;
                        }
                    }
                }
                out
            }
            _ => match ctx.vaults(&engine).await {
                Ok(v) => v,
                Err(e) => {
                    diags.error(
                        e.to_string(),
                        hint_lines(&e.hints()),
                        Some(AttrPath::attr("vault_urls")),
                    );
                    return Value::Null;
                }
            },
        };
        let apps = match config.attr("application_id").as_str() {
            Some(id) => match engine.get_application(id).await {
                Ok(a) => vec![a],
                Err(e) => {
                    diags.error(
                        e.to_string(),
                        hint_lines(&e.hints()),
                        Some(AttrPath::attr("application_id")),
                    );
                    return Value::Null;
                }
            },
            None => match engine.discover(None).await {
                Ok(a) => a,
                Err(e) => {
                    diags.error(e.to_string(), hint_lines(&e.hints()), None);
                    return Value::Null;
                }
            },
        };
        let report = match engine.match_secrets(&apps, &vaults, &policy).await {
            Ok(r) => r,
            Err(e) => {
                diags.error(e.to_string(), hint_lines(&e.hints()), None);
                return Value::Null;
            }
        };

        let mut matches = Vec::new();
        // (app name, lineage) -> (app id, key id, targets)
        let mut links: BTreeMap<
            String,
            (String, String, String, String, BTreeSet<(String, String)>),
        > = BTreeMap::new();
        for m in &report.matches {
            matches.push(Value::Object(BTreeMap::from([
                ("app_id".to_string(), Value::string(m.app_id.clone())),
                ("app_name".to_string(), Value::string(m.app_name.clone())),
                ("key_id".to_string(), Value::string(m.key_id.clone())),
                (
                    "credential_display_name".to_string(),
                    opt(m.credential_display_name.as_deref()),
                ),
                ("vault".to_string(), Value::string(m.vault.clone())),
                (
                    "vault_url".to_string(),
                    Value::string(m.vault_url.to_string()),
                ),
                (
                    "secret_name".to_string(),
                    Value::string(m.secret_name.clone()),
                ),
                (
                    "confidence".to_string(),
                    Value::string(m.confidence.to_string()),
                ),
                (
                    "signals".to_string(),
                    Value::List(
                        m.signals
                            .iter()
                            .map(|s| Value::string(s.as_str()))
                            .collect(),
                    ),
                ),
                ("excluded".to_string(), opt(m.excluded.as_deref())),
            ])));
            if m.excluded.is_none() && m.confidence >= policy.min_confidence {
                let name = lineage(m.credential_display_name.as_deref());
                let entry = links
                    .entry(format!("{}/{}", m.app_name, name))
                    .or_insert_with(|| {
                        (
                            m.app_id.clone(),
                            m.app_name.clone(),
                            name.clone(),
                            m.key_id.clone(),
                            BTreeSet::new(),
                        )
                    });
                entry
                    .4
                    .insert((m.vault_url.to_string(), m.secret_name.clone()));
            }
        }
        let unmatched = report
            .unmatched
            .iter()
            .map(|u| {
                Value::Object(BTreeMap::from([
                    ("app_id".to_string(), Value::string(u.app_id.clone())),
                    ("key_id".to_string(), Value::string(u.key_id.clone())),
                ]))
            })
            .collect();
        let links = links
            .into_iter()
            .map(|(k, (app_id, app_name, name, key_id, targets))| {
                (
                    k,
                    Value::Object(BTreeMap::from([
                        ("application_id".to_string(), Value::string(app_id)),
                        ("application_name".to_string(), Value::string(app_name)),
                        ("credential_display_name".to_string(), Value::string(name)),
                        ("key_id".to_string(), Value::string(key_id)),
                        (
                            "targets".to_string(),
                            Value::Set(
                                targets
                                    .into_iter()
                                    .map(|(u, s)| {
                                        Value::Object(BTreeMap::from([
                                            ("vault_url".to_string(), Value::string(u)),
                                            ("secret_name".to_string(), Value::string(s)),
                                        ]))
                                    })
                                    .collect(),
                            ),
                        ),
                    ])),
                )
            })
            .collect();
        let mut out = config.as_object().cloned().unwrap_or_default();
        out.insert(
            "id".into(),
            Value::string(format!(
                "matches:{}",
                config.attr("application_id").as_str().unwrap_or("*")
            )),
        );
        out.insert("matches".into(), Value::List(matches));
        out.insert("unmatched".into(), Value::List(unmatched));
        out.insert("links".into(), Value::Map(links));
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_drops_rotors_suffix() {
        assert_eq!(lineage(Some("Secret 1 rotor:abc")), "Secret 1");
        assert_eq!(lineage(Some("Secret 1")), "Secret 1");
        assert_eq!(lineage(None), "");
    }
}
