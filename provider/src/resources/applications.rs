//! Data source `rotor_applications`: discovery — App Registrations with their client secrets'
//! and certificates' key ids and dates (never a value, never a hint).

use std::collections::BTreeMap;

use async_trait::async_trait;
use time::format_description::well_known::Rfc3339;

use crate::framework::{AttrPath, DataSource, Diagnostics};
use crate::provider::{ProviderState, hint_lines};
use crate::schema::{Attribute, Schema};
use crate::value::{Type, Value};

/// The data source.
pub struct ApplicationsDataSource;

fn credential_type() -> Type {
    Type::object([
        ("key_id", Type::String),
        ("kind", Type::String),
        ("display_name", Type::String),
        ("start", Type::String),
        ("end", Type::String),
    ])
}

fn application_type() -> Type {
    Type::object([
        ("object_id", Type::String),
        ("app_id", Type::String),
        ("display_name", Type::String),
        ("sign_in_audience", Type::String),
        ("secret_count", Type::Number),
        ("certificate_count", Type::Number),
        ("credentials", Type::list(credential_type())),
    ])
}

fn time_str(t: time::OffsetDateTime) -> Value {
    t.format(&Rfc3339).map(Value::String).unwrap_or(Value::Null)
}

fn opt_str(s: Option<&str>) -> Value {
    s.map(Value::string).unwrap_or(Value::Null)
}

#[async_trait]
impl DataSource for ApplicationsDataSource {
    fn type_name(&self) -> &'static str {
        "rotor_applications"
    }

    fn schema(&self) -> Schema {
        Schema {
            version: 0,
            description: "Discovers App Registrations and their client secrets and certificates (key ids and dates; \
                never a value). Use it to see what is expiring, or with `rotor_matches` to link them to Key Vault.",
            attributes: vec![
                Attribute::computed(
                    "id",
                    Type::String,
                    "Identifier of this read (the filter used).",
                ),
                Attribute::optional(
                    "filter",
                    Type::String,
                    "Case-insensitive glob on the display name (e.g. `billing-*`), or an exact application (client) id. Unset lists every application.",
                ),
                Attribute::optional(
                    "expiring_within_days",
                    Type::Number,
                    "Only applications with a secret or certificate expiring within this many days (expired ones included).",
                ),
                Attribute::computed(
                    "applications",
                    Type::list(application_type()),
                    "The applications: `object_id`, `app_id`, `display_name`, `sign_in_audience`, `secret_count`, `certificate_count` and `credentials` (each with `key_id`, `kind` = `secret` or `certificate`, `display_name`, `start`, `end` in RFC 3339).",
                ),
            ],
        }
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        if let Some(n) = config.attr("expiring_within_days").as_i64()
            && n < 0
        {
            diags.error(
                format!("validating `expiring_within_days`: {n} is negative"),
                "hint: use a number of days, 0 or more",
                Some(AttrPath::attr("expiring_within_days")),
            );
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
        let filter = config.attr("filter").as_str();
        let apps = match engine.discover(filter).await {
            Ok(a) => a,
            Err(e) => {
                diags.error(e.to_string(), hint_lines(&e.hints()), None);
                return Value::Null;
            }
        };
        let now = engine.now();
        let horizon = config
            .attr("expiring_within_days")
            .as_i64()
            .map(|d| now + time::Duration::days(d));
        let mut list = Vec::new();
        for app in apps {
            let ends = app
                .password_credentials
                .iter()
                .map(|c| c.end)
                .chain(app.key_credentials.iter().map(|c| c.end));
            if let Some(h) = horizon
                && !ends.clone().any(|e| e <= h)
            {
                continue;
            }
            let mut creds = Vec::new();
            for c in &app.password_credentials {
                creds.push(Value::Object(BTreeMap::from([
                    ("key_id".to_string(), Value::string(c.key_id.clone())),
                    ("kind".to_string(), Value::string("secret")),
                    (
                        "display_name".to_string(),
                        opt_str(c.display_name.as_deref()),
                    ),
                    ("start".to_string(), time_str(c.start)),
                    ("end".to_string(), time_str(c.end)),
                ])));
            }
            for c in &app.key_credentials {
                creds.push(Value::Object(BTreeMap::from([
                    ("key_id".to_string(), Value::string(c.key_id.clone())),
                    ("kind".to_string(), Value::string("certificate")),
                    (
                        "display_name".to_string(),
                        opt_str(c.display_name.as_deref()),
                    ),
                    ("start".to_string(), time_str(c.start)),
                    ("end".to_string(), time_str(c.end)),
                ])));
            }
            list.push(Value::Object(BTreeMap::from([
                (
                    "object_id".to_string(),
                    Value::string(app.object_id.clone()),
                ),
                ("app_id".to_string(), Value::string(app.app_id.clone())),
                (
                    "display_name".to_string(),
                    Value::string(app.display_name.clone()),
                ),
                (
                    "sign_in_audience".to_string(),
                    opt_str(app.sign_in_audience.as_deref()),
                ),
                (
                    "secret_count".to_string(),
                    Value::int(app.password_credentials.len() as i64),
                ),
                (
                    "certificate_count".to_string(),
                    Value::int(app.key_credentials.len() as i64),
                ),
                ("credentials".to_string(), Value::List(creds)),
            ])));
        }
        let mut out = config.as_object().cloned().unwrap_or_default();
        out.insert(
            "id".into(),
            Value::string(format!("applications:{}", filter.unwrap_or("*"))),
        );
        out.insert("applications".into(), Value::List(list));
        Value::Object(out)
    }
}
