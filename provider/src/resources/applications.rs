//! Data source `rotor_applications`: discovery — App Registrations with their client secrets'
//! and certificates' key ids and dates (never a value, never a hint).

use async_trait::async_trait;
use rotor_engine::Application;
use time::format_description::well_known::Rfc3339;

use crate::framework::{AttrPath, DataSource, Diagnostics};
use crate::model::{Attr, Field, ModelError, Reader, Writer, decoded, object_model};
use crate::provider::ProviderState;
use crate::resources::diag::engine_error_on;
use crate::schema::{Attribute, Schema};
use crate::value::{Number, Type, Value};

/// Every top-level attribute name of `rotor_applications`, in one place (nested objects name
/// theirs in their [`object_model!`] tables).
pub mod attrs {
    pub const ID: &str = "id";
    pub const FILTER: &str = "filter";
    pub const EXPIRING_WITHIN_DAYS: &str = "expiring_within_days";
    pub const APPLICATIONS: &str = "applications";
}

/// The data source.
pub struct ApplicationsDataSource;

object_model! {
    /// One client secret or certificate of an application (never a value).
    pub struct CredentialModel {
        /// Key id.
        key_id: String = Type::String,
        /// `secret` or `certificate`.
        kind: String = Type::String,
        /// Display name.
        display_name: Attr<String> = Type::String,
        /// Start (RFC 3339).
        start: Attr<String> = Type::String,
        /// End (RFC 3339).
        end: Attr<String> = Type::String,
    }
}

object_model! {
    /// One App Registration.
    pub struct ApplicationModel {
        /// Object id.
        object_id: String = Type::String,
        /// Application (client) id.
        app_id: String = Type::String,
        /// Display name.
        display_name: String = Type::String,
        /// Sign-in audience.
        sign_in_audience: Attr<String> = Type::String,
        /// Number of client secrets.
        secret_count: i64 = Type::Number,
        /// Number of certificates.
        certificate_count: i64 = Type::Number,
        /// Its credentials: client secrets, then certificates.
        credentials: Vec<CredentialModel> = Type::list(CredentialModel::ty()),
    }
}

/// A `rotor_applications` value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApplicationsModel {
    /// `id`.
    pub id: Attr<String>,
    /// `filter`.
    pub filter: Attr<String>,
    /// `expiring_within_days`.
    pub expiring_within_days: Attr<Number>,
    /// `applications`.
    pub applications: Attr<Vec<ApplicationModel>>,
}

impl Field for ApplicationsModel {
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        let r = Reader::new(v)?;
        Ok(ApplicationsModel {
            id: r.get(attrs::ID)?,
            filter: r.get(attrs::FILTER)?,
            expiring_within_days: r.get(attrs::EXPIRING_WITHIN_DAYS)?,
            applications: r.get(attrs::APPLICATIONS)?,
        })
    }
    fn to_value(&self) -> Value {
        Writer::default()
            .put(attrs::ID, &self.id)
            .put(attrs::FILTER, &self.filter)
            .put(attrs::EXPIRING_WITHIN_DAYS, &self.expiring_within_days)
            .put(attrs::APPLICATIONS, &self.applications)
            .build()
    }
}

fn time_str(t: time::OffsetDateTime) -> Attr<String> {
    Attr::from_option(t.format(&Rfc3339).ok())
}

impl ApplicationsModel {
    fn expiring_within_days(&self) -> Option<i64> {
        self.expiring_within_days.known().and_then(Number::as_i64)
    }
}

impl ApplicationModel {
    fn of(app: &Application) -> Self {
        let credential =
            |kind: &str, key_id: &str, name: Option<&str>, start, end| CredentialModel {
                key_id: key_id.to_string(),
                kind: kind.to_string(),
                display_name: Attr::from_option(name.map(str::to_string)),
                start: time_str(start),
                end: time_str(end),
            };
        let secrets = app.password_credentials.iter().map(|c| {
            credential(
                "secret",
                &c.key_id,
                c.display_name.as_deref(),
                c.start,
                c.end,
            )
        });
        let certificates = app.key_credentials.iter().map(|c| {
            credential(
                "certificate",
                &c.key_id,
                c.display_name.as_deref(),
                c.start,
                c.end,
            )
        });
        ApplicationModel {
            object_id: app.object_id.clone(),
            app_id: app.app_id.clone(),
            display_name: app.display_name.clone(),
            sign_in_audience: Attr::from_option(app.sign_in_audience.clone()),
            secret_count: app.password_credentials.len() as i64,
            certificate_count: app.key_credentials.len() as i64,
            credentials: secrets.chain(certificates).collect(),
        }
    }
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
                    attrs::ID,
                    Type::String,
                    "Identifier of this read (the filter used).",
                ),
                Attribute::optional(
                    attrs::FILTER,
                    Type::String,
                    "Case-insensitive glob on the display name (e.g. `billing-*`), or an exact application (client) id. Unset lists every application.",
                ),
                Attribute::optional(
                    attrs::EXPIRING_WITHIN_DAYS,
                    Type::Number,
                    "Only applications with a secret or certificate expiring within this many days (expired ones included).",
                ),
                Attribute::computed(
                    attrs::APPLICATIONS,
                    Type::list(ApplicationModel::ty()),
                    "The applications: `object_id`, `app_id`, `display_name`, `sign_in_audience`, `secret_count`, `certificate_count` and `credentials` (each with `key_id`, `kind` = `secret` or `certificate`, `display_name`, `start`, `end` in RFC 3339).",
                ),
            ],
        }
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let Some(config) = decoded(
            "configuration",
            ApplicationsModel::from_value(config),
            diags,
        ) else {
            return;
        };
        if let Some(n) = config.expiring_within_days()
            && n < 0
        {
            diags.error(
                format!("validating `expiring_within_days`: {n} is negative"),
                "hint: use a number of days, 0 or more",
                Some(AttrPath::attr(attrs::EXPIRING_WITHIN_DAYS)),
            );
        }
    }

    async fn read(&self, ctx: &ProviderState, config: &Value, diags: &mut Diagnostics) -> Value {
        let Some(mut out) = decoded(
            "configuration",
            ApplicationsModel::from_value(config),
            diags,
        ) else {
            return Value::Null;
        };
        let engine = match ctx.engine().await {
            Ok(e) => e,
            Err(f) => {
                diags.error(f.summary, f.detail, None);
                return Value::Null;
            }
        };
        let filter = out.filter.as_deref();
        let apps = match engine.discover(filter).await {
            Ok(a) => a,
            Err(e) => {
                engine_error_on(diags, &e, None);
                return Value::Null;
            }
        };
        let now = engine.now();
        let horizon = out
            .expiring_within_days()
            .map(|d| now + time::Duration::days(d));
        let list = apps
            .iter()
            .filter(|app| {
                let mut ends = app
                    .password_credentials
                    .iter()
                    .map(|c| c.end)
                    .chain(app.key_credentials.iter().map(|c| c.end));
                horizon.is_none_or(|h| ends.any(|e| e <= h))
            })
            .map(ApplicationModel::of)
            .collect();
        out.id = Attr::Known(format!("applications:{}", filter.unwrap_or("*")));
        out.applications = Attr::Known(list);
        out.to_value()
    }
}
