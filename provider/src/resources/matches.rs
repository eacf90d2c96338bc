//! Data source `rotor_matches`: matching — which Key Vault secrets hold which client secrets,
//! with the confidence and signals behind each, and the links they form (ready for `for_each`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use rotor_engine::rotation::links_from_matches;
use rotor_engine::{Application, Confidence, CredentialKind, MatchReport, Policy};

use crate::framework::{AttrPath, DataSource, Diagnostics};
use crate::model::{Attr, Field, ModelError, Reader, Set, Writer, decoded, object_model};
use crate::provider::{ProviderState, hint_lines};
use crate::resources::certificate_link::CertificateModel;
use crate::resources::diag::engine_error_on;
use crate::resources::secret_link::model::TargetModel;
use crate::resources::secret_link::target_type;
use crate::schema::{Attribute, Schema};
use crate::value::{Type, Value};

/// Every top-level attribute name of `rotor_matches`, in one place (nested objects name theirs
/// in their [`object_model!`] tables).
pub mod attrs {
    pub const ID: &str = "id";
    pub const APPLICATION_ID: &str = "application_id";
    pub const VAULT_URLS: &str = "vault_urls";
    pub const MIN_CONFIDENCE: &str = "min_confidence";
    pub const EXCLUSIONS: &str = "exclusions";
    pub const MATCHES: &str = "matches";
    pub const UNMATCHED: &str = "unmatched";
    pub const LINKS: &str = "links";
    pub const CERTIFICATE_LINKS: &str = "certificate_links";
}

/// The data source.
pub struct MatchesDataSource;

object_model! {
    /// One client secret held by one Key Vault secret.
    pub struct MatchModel {
        /// Application (client) id.
        app_id: String = Type::String,
        /// Application display name.
        app_name: String = Type::String,
        /// Key id of the client secret.
        key_id: String = Type::String,
        /// The client secret's display name.
        credential_display_name: Attr<String> = Type::String,
        /// Vault name.
        vault: String = Type::String,
        /// Vault URL.
        vault_url: String = Type::String,
        /// Key Vault secret name.
        secret_name: String = Type::String,
        /// `HIGH`, `MEDIUM`, `LOW`.
        confidence: String = Type::String,
        /// The signals behind the match.
        signals: Vec<String> = Type::list(Type::String),
        /// The exclusion that matches, if any.
        excluded: Attr<String> = Type::String,
    }
}

object_model! {
    /// A client secret no Key Vault secret matched.
    pub struct UnmatchedModel {
        /// Application (client) id.
        app_id: String = Type::String,
        /// Key id.
        key_id: String = Type::String,
    }
}

object_model! {
    /// A ready-made `rotor_secret_link` argument set.
    pub struct MatchedLinkModel {
        /// Application (client) id.
        application_id: String = Type::String,
        /// Application display name.
        application_name: String = Type::String,
        /// The lineage.
        credential_display_name: String = Type::String,
        /// The newest credential the targets hold.
        key_id: String = Type::String,
        /// The Key Vault secrets.
        targets: Set<TargetModel> = Type::set(target_type()),
    }
}

object_model! {
    /// A ready-made `rotor_certificate_link` argument set.
    pub struct MatchedCertificateLinkModel {
        /// Application (client) id.
        application_id: String = Type::String,
        /// Application display name.
        application_name: String = Type::String,
        /// The certificate lineage.
        credential_display_name: String = Type::String,
        /// The newest key credential the certificates hold.
        key_id: String = Type::String,
        /// The Key Vault certificates.
        certificates: Set<CertificateModel> = Type::set(CertificateModel::ty()),
    }
}

/// A `rotor_matches` value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MatchesModel {
    /// `id`.
    pub id: Attr<String>,
    /// `application_id`.
    pub application_id: Attr<String>,
    /// `vault_urls`.
    pub vault_urls: Attr<Vec<Attr<String>>>,
    /// `min_confidence`.
    pub min_confidence: Attr<String>,
    /// `exclusions`.
    pub exclusions: Attr<Vec<Attr<String>>>,
    /// `matches`.
    pub matches: Attr<Vec<MatchModel>>,
    /// `unmatched`.
    pub unmatched: Attr<Vec<UnmatchedModel>>,
    /// `links`.
    pub links: Attr<BTreeMap<String, MatchedLinkModel>>,
    /// `certificate_links`.
    pub certificate_links: Attr<BTreeMap<String, MatchedCertificateLinkModel>>,
}

impl Field for MatchesModel {
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        let r = Reader::new(v)?;
        Ok(MatchesModel {
            id: r.get(attrs::ID)?,
            application_id: r.get(attrs::APPLICATION_ID)?,
            vault_urls: r.get(attrs::VAULT_URLS)?,
            min_confidence: r.get(attrs::MIN_CONFIDENCE)?,
            exclusions: r.get(attrs::EXCLUSIONS)?,
            matches: r.get(attrs::MATCHES)?,
            unmatched: r.get(attrs::UNMATCHED)?,
            links: r.get(attrs::LINKS)?,
            certificate_links: r.get(attrs::CERTIFICATE_LINKS)?,
        })
    }
    fn to_value(&self) -> Value {
        Writer::default()
            .put(attrs::ID, &self.id)
            .put(attrs::APPLICATION_ID, &self.application_id)
            .put(attrs::VAULT_URLS, &self.vault_urls)
            .put(attrs::MIN_CONFIDENCE, &self.min_confidence)
            .put(attrs::EXCLUSIONS, &self.exclusions)
            .put(attrs::MATCHES, &self.matches)
            .put(attrs::UNMATCHED, &self.unmatched)
            .put(attrs::LINKS, &self.links)
            .put(attrs::CERTIFICATE_LINKS, &self.certificate_links)
            .build()
    }
}

impl MatchesModel {
    fn exclusion_list(&self) -> impl Iterator<Item = &str> {
        self.exclusions
            .known()
            .into_iter()
            .flatten()
            .filter_map(Attr::as_deref)
    }
}

/// The computed values of a match report.
#[derive(Debug, Default)]
struct ReportValues {
    matches: Vec<MatchModel>,
    unmatched: Vec<UnmatchedModel>,
    links: BTreeMap<String, MatchedLinkModel>,
    certificate_links: BTreeMap<String, MatchedCertificateLinkModel>,
}

/// The key of a link in `links` / `certificate_links`: `<application name>/<lineage>`, or
/// `<application name> (<appId>)/<lineage>` when another application of that name took it.
fn link_key(
    owner: &mut BTreeMap<String, String>,
    app_name: &str,
    app_id: &str,
    lineage: &str,
) -> String {
    let mut key = format!("{app_name}/{lineage}");
    if owner.get(&key).is_some_and(|id| id != app_id) {
        key = format!("{app_name} ({app_id})/{lineage}");
    }
    owner.insert(key.clone(), app_id.to_string());
    key
}

/// Certificate links formed by the report's certificate matches: one per application and
/// certificate lineage (the key credential's display name without rotor's ` rotor:<id>`), of
/// the matches at or above `min_confidence`; a lineage with an excluded match forms none (as for
/// secrets). `key_id` is the newest key credential a certificate holds.
fn certificate_links(
    report: &MatchReport,
    apps: &[Application],
    policy: &Policy,
) -> BTreeMap<String, MatchedCertificateLinkModel> {
    type Group<'a> = (Vec<&'a rotor_engine::Match>, bool);
    let mut groups: BTreeMap<(String, String), Group<'_>> = BTreeMap::new();
    for m in report
        .matches
        .iter()
        .filter(|m| m.kind == CredentialKind::Certificate)
    {
        let name = m.credential_display_name.as_deref().unwrap_or_default();
        let lineage = name.split(" rotor:").next().unwrap_or(name).to_string();
        let g = groups.entry((m.app_id.clone(), lineage)).or_default();
        if m.excluded.is_some() {
            g.1 = true;
        } else if m.confidence >= policy.min_confidence && m.rejected.is_none() {
            g.0.push(m);
        }
    }
    let mut owner = BTreeMap::new();
    let mut out = BTreeMap::new();
    for ((app_id, lineage), (held, excluded)) in groups {
        if excluded || held.is_empty() {
            continue;
        }
        let app = apps.iter().find(|a| a.app_id == app_id);
        let app_name = app
            .map(|a| a.display_name.clone())
            .unwrap_or_else(|| held[0].app_name.clone());
        let started = |key_id: &str| {
            app.and_then(|a| a.key_credentials.iter().find(|k| k.key_id == key_id))
                .map(|k| k.start)
        };
        let key_id = held
            .iter()
            .max_by_key(|m| started(&m.key_id))
            .map(|m| m.key_id.clone())
            .unwrap_or_default();
        let mut certificates: Vec<CertificateModel> = held
            .iter()
            .map(|m| CertificateModel {
                vault_url: Attr::Known(m.vault_url.to_string()),
                certificate_name: Attr::Known(m.secret_name.clone()),
            })
            .collect();
        certificates.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        certificates.dedup();
        let key = link_key(&mut owner, &app_name, &app_id, &lineage);
        out.insert(
            key,
            MatchedCertificateLinkModel {
                application_id: app_id,
                application_name: app_name,
                credential_display_name: lineage,
                key_id,
                certificates: Set(certificates),
            },
        );
    }
    out
}

/// The computed `matches`, `unmatched`, `links` and `certificate_links` of a match report.
/// Certificate matches are left out of the first three and form `certificate_links`.
/// `links` are the engine's own grouping ([`links_from_matches`]: one per application and
/// credential lineage, at or above `min_confidence`, none for a lineage with an excluded copy),
/// keyed by `<application name>/<lineage>` (`<application name> (<appId>)/<lineage>` when two
/// applications share a name).
fn report_values(report: &MatchReport, apps: &[Application], policy: &Policy) -> ReportValues {
    let is_secret = |k: CredentialKind| k == CredentialKind::Secret;
    let matches = report
        .matches
        .iter()
        .filter(|m| is_secret(m.kind))
        .map(|m| MatchModel {
            app_id: m.app_id.clone(),
            app_name: m.app_name.clone(),
            key_id: m.key_id.clone(),
            credential_display_name: Attr::from_option(m.credential_display_name.clone()),
            vault: m.vault.clone(),
            vault_url: m.vault_url.to_string(),
            secret_name: m.secret_name.clone(),
            confidence: m.confidence.to_string(),
            signals: m.signals.iter().map(|s| s.as_str().to_string()).collect(),
            excluded: Attr::from_option(m.excluded.clone()),
        })
        .collect();
    let unmatched = report
        .unmatched
        .iter()
        .filter(|u| is_secret(u.kind))
        .map(|u| UnmatchedModel {
            app_id: u.app_id.clone(),
            key_id: u.key_id.clone(),
        })
        .collect();
    let mut links = BTreeMap::new();
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for link in links_from_matches(report, apps, policy) {
        let app = apps.iter().find(|a| a.app_id == link.application_id);
        let app_name = app
            .map(|a| a.display_name.clone())
            .or_else(|| {
                report
                    .matches
                    .iter()
                    .find(|m| m.app_id == link.application_id)
                    .map(|m| m.app_name.clone())
            })
            .unwrap_or_default();
        // The credential the targets hold: of the link's matches, the newest credential.
        let held = report.matches.iter().filter(|m| {
            is_secret(m.kind)
                && m.app_id == link.application_id
                && m.excluded.is_none()
                && m.confidence >= policy.min_confidence
                && link.targets.contains(&m.target())
        });
        let started = |key_id: &str| app.and_then(|a| a.password(key_id)).map(|c| c.start);
        let key_id = held
            .max_by_key(|m| started(&m.key_id))
            .map(|m| m.key_id.clone())
            .unwrap_or_default();
        let key = link_key(
            &mut owner,
            &app_name,
            &link.application_id,
            &link.credential_display_name,
        );
        links.insert(
            key,
            MatchedLinkModel {
                application_id: link.application_id.clone(),
                application_name: app_name,
                credential_display_name: link.credential_display_name.clone(),
                key_id,
                targets: Set(link.targets.iter().map(TargetModel::of).collect()),
            },
        );
    }
    ReportValues {
        matches,
        unmatched,
        links,
        certificate_links: certificate_links(report, apps, policy),
    }
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
                the matches at or above `min_confidence` into ready-made `rotor_secret_link` arguments for `for_each`. \
                `matches` and `unmatched` list client secrets; certificates (matched by thumbprint) form \
                `certificate_links`, ready-made `rotor_certificate_link` arguments.",
            attributes: vec![
                Attribute::computed(attrs::ID, Type::String, "Identifier of this read."),
                Attribute::optional(
                    attrs::APPLICATION_ID,
                    Type::String,
                    "Only this application (client) id. Unset matches every application.",
                ),
                Attribute::optional(
                    attrs::VAULT_URLS,
                    Type::list(Type::String),
                    "Key Vaults to search. Defaults to the provider's `vault_urls` and the vaults of its `subscription_id`.",
                ),
                Attribute::optional(
                    attrs::MIN_CONFIDENCE,
                    Type::String,
                    "Lowest confidence (`HIGH`, `MEDIUM`, `LOW`) for a match to be part of `links`. Default `HIGH`. `matches` lists every match regardless.",
                ),
                Attribute::optional(
                    attrs::EXCLUSIONS,
                    Type::list(Type::String),
                    "Exclusion patterns (`app-id:GLOB`, `name:GLOB`, `secret:GLOB`); excluded matches are reported with `excluded` set and left out of `links`.",
                ),
                Attribute::computed(
                    attrs::MATCHES,
                    Type::list(MatchModel::ty()),
                    "Every client-secret match: `app_id`, `app_name`, `key_id`, `credential_display_name`, `vault`, `vault_url`, `secret_name`, `confidence`, `signals` (e.g. `hint`, `tag-app`) and `excluded`.",
                ),
                Attribute::computed(
                    attrs::UNMATCHED,
                    Type::list(UnmatchedModel::ty()),
                    "Client secrets no Key Vault secret matched: `app_id` and `key_id`.",
                ),
                Attribute::computed(
                    attrs::LINKS,
                    Type::map(MatchedLinkModel::ty()),
                    "Links formed by the matches at or above `min_confidence`, one per application and credential lineage, keyed by `<application name>/<credential display name>` (`<application name> (<application id>)/<credential display name>` when two applications share a name): `application_id`, `application_name`, `credential_display_name`, `key_id` (the newest credential the targets hold) and `targets` (set of `vault_url`, `secret_name`). A lineage with an excluded copy forms no link (rotating it would break the excluded secret).",
                ),
                Attribute::computed(
                    attrs::CERTIFICATE_LINKS,
                    Type::map(MatchedCertificateLinkModel::ty()),
                    "Certificate links formed by the certificate matches (thumbprints) at or above `min_confidence`, one per application and certificate lineage (the key credential's display name without rotor's ` rotor:<id>`), keyed like `links`: `application_id`, `application_name`, `credential_display_name`, `key_id` (the newest key credential a certificate holds) and `certificates` (set of `vault_url`, `certificate_name`) — ready for `rotor_certificate_link` with `for_each`. A lineage with an excluded certificate forms no link.",
                ),
            ],
        }
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let Some(config) = decoded("configuration", MatchesModel::from_value(config), diags) else {
            return;
        };
        if let Some(c) = config.min_confidence.as_deref()
            && !matches!(c, "HIGH" | "MEDIUM" | "LOW")
        {
            diags.error(
                format!("validating `min_confidence`: `{c}` is not a confidence level"),
                "hint: use one of HIGH, MEDIUM or LOW (upper case)",
                Some(AttrPath::attr(attrs::MIN_CONFIDENCE)),
            );
        }
        for (i, item) in config.exclusions.known().into_iter().flatten().enumerate() {
            if let Some(s) = item.as_deref()
                && let Err(e) = rotor_engine::Exclusion::parse(s)
            {
                diags.error(
                    format!("validating exclusion `{s}`: {}", e.failure().cause),
                    hint_lines(&e.hints()),
                    Some(AttrPath::attr(attrs::EXCLUSIONS).then_index(i as i64)),
                );
            }
        }
    }

    async fn read(&self, ctx: &ProviderState, config: &Value, diags: &mut Diagnostics) -> Value {
        let Some(mut out) = decoded("configuration", MatchesModel::from_value(config), diags)
        else {
            return Value::Null;
        };
        let engine = match ctx.engine().await {
            Ok(e) => e,
            Err(f) => {
                diags.error(f.summary, f.detail, None);
                return Value::Null;
            }
        };
        let mut policy = Policy::default();
        if let Some(c) = out
            .min_confidence
            .as_deref()
            .and_then(|c| c.parse::<Confidence>().ok())
        {
            policy.min_confidence = c;
        }
        policy.exclusions.extend(
            out.exclusion_list()
                .filter_map(|s| rotor_engine::Exclusion::parse(s).ok()),
        );
        let vaults = match out.vault_urls.known() {
            Some(items) if !items.is_empty() => {
                let mut urls = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let s = item.as_deref().unwrap_or_default();
                    match url::Url::parse(s) {
                        Ok(u) if u.scheme() == "https" => urls.push(u),
                        _ => {
                            diags.error(
                                format!("validating vault URL `{s}`: not an https URL"),
                                "hint: use vault URIs such as https://kv-prod.vault.azure.net/",
                                Some(AttrPath::attr(attrs::VAULT_URLS).then_index(i as i64)),
                            );
                            return Value::Null;
                        }
                    }
                }
                urls
            }
            _ => match ctx.vaults(&engine).await {
                Ok(v) => v,
                Err(e) => {
                    engine_error_on(diags, &e, Some(AttrPath::attr(attrs::VAULT_URLS)));
                    return Value::Null;
                }
            },
        };
        let apps = match out.application_id.as_deref() {
            Some(id) => match engine.get_application(id).await {
                Ok(a) => vec![a],
                Err(e) => {
                    engine_error_on(diags, &e, Some(AttrPath::attr(attrs::APPLICATION_ID)));
                    return Value::Null;
                }
            },
            None => match engine.discover(None).await {
                Ok(a) => a,
                Err(e) => {
                    engine_error_on(diags, &e, None);
                    return Value::Null;
                }
            },
        };
        let report = match engine.match_secrets(&apps, &vaults, &policy).await {
            Ok(r) => r,
            Err(e) => {
                engine_error_on(diags, &e, None);
                return Value::Null;
            }
        };

        let values = report_values(&report, &apps, &policy);
        out.id = Attr::Known(format!(
            "matches:{}",
            out.application_id.as_deref().unwrap_or("*")
        ));
        out.matches = Attr::Known(values.matches);
        out.unmatched = Attr::Known(values.unmatched);
        out.links = Attr::Known(values.links);
        out.certificate_links = Attr::Known(values.certificate_links);
        out.to_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_engine::{Match, PasswordCredential, Signal, Unmatched};
    use time::macros::datetime;

    const APP: &str = "b0000001-0000-4000-8000-000000000001";
    const OLD: &str = "c0000001-0000-4000-8000-000000000101";
    const NEW: &str = "c0000001-0000-4000-8000-000000000102";
    const CERT: &str = "c0000001-0000-4000-8000-000000000901";

    fn app(app_id: &str, name: &str) -> Application {
        let pw = |key_id: &str, display: &str, start| PasswordCredential {
            key_id: key_id.into(),
            display_name: Some(display.into()),
            hint: None,
            start,
            end: datetime!(2027-06-01 0:00 UTC),
        };
        Application {
            object_id: format!("obj-{app_id}"),
            app_id: app_id.into(),
            display_name: name.into(),
            sign_in_audience: None,
            password_credentials: vec![
                pw(OLD, "main", datetime!(2026-01-01 0:00 UTC)),
                pw(NEW, "main rotor:r2", datetime!(2026-06-01 0:00 UTC)),
            ],
            key_credentials: Vec::new(),
        }
    }

    fn m(app_id: &str, kind: CredentialKind, key_id: &str, name: &str, secret: &str) -> Match {
        Match {
            kind,
            app_id: app_id.into(),
            app_name: "MyApp".into(),
            key_id: key_id.into(),
            credential_display_name: Some(name.into()),
            vault: "kv-prod".into(),
            vault_url: url::Url::parse("https://kv-prod.vault.azure.net/").expect("url"),
            secret_name: secret.into(),
            secret_version: None,
            confidence: Confidence::High,
            signals: vec![Signal::TagKeyId],
            hint_mismatch: false,
            excluded: None,
            rejected: None,
        }
    }

    fn unmatched(kind: CredentialKind, key_id: &str) -> Unmatched {
        Unmatched {
            kind,
            app_id: APP.into(),
            app_name: "MyApp".into(),
            key_id: key_id.into(),
            credential_display_name: None,
            excluded: None,
        }
    }

    /// The report as the Terraform values `matches`, `unmatched` and `links`.
    fn values(
        report: &MatchReport,
        apps: &[Application],
        policy: &Policy,
    ) -> (Value, Value, Value) {
        let v = report_values(report, apps, policy);
        (
            v.matches.to_value(),
            v.unmatched.to_value(),
            v.links.to_value(),
        )
    }

    fn names(v: &Value, field: &str) -> Vec<String> {
        v.as_elements()
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e.attr(field).as_str().map(str::to_owned))
            .collect()
    }

    #[test]
    fn certificate_matches_are_left_out_of_matches_unmatched_and_links() {
        let report = MatchReport {
            matches: vec![
                m(
                    APP,
                    CredentialKind::Secret,
                    NEW,
                    "main rotor:r2",
                    "myapp-secret",
                ),
                // A certificate whose display name is the secret lineage's: it must not join it.
                m(APP, CredentialKind::Certificate, CERT, "main", "myapp-cert"),
                m(APP, CredentialKind::Certificate, CERT, "tls", "myapp-tls"),
            ],
            unmatched: vec![
                unmatched(CredentialKind::Secret, OLD),
                unmatched(CredentialKind::Certificate, CERT),
            ],
            ..MatchReport::default()
        };
        let (matches, unmatched, links) = values(&report, &[app(APP, "MyApp")], &Policy::default());
        assert_eq!(names(&matches, "secret_name"), ["myapp-secret"]);
        assert_eq!(names(&unmatched, "key_id"), [OLD]);
        let Value::Map(links) = links else {
            panic!("links is a map: {links:?}")
        };
        assert_eq!(links.keys().collect::<Vec<_>>(), ["MyApp/main"]);
        let link = &links["MyApp/main"];
        assert_eq!(names(link.attr("targets"), "secret_name"), ["myapp-secret"]);
        assert_eq!(link.attr("key_id").as_str(), Some(NEW));
        let certs =
            report_values(&report, &[app(APP, "MyApp")], &Policy::default()).certificate_links;
        let keys: Vec<&String> = certs.keys().collect();
        assert_eq!(
            keys,
            ["MyApp/main", "MyApp/tls"],
            "certificate lineages apart from secrets"
        );
        assert_eq!(certs["MyApp/tls"].certificates.0.len(), 1);
        assert_eq!(
            certs["MyApp/tls"].certificates.0[0]
                .certificate_name
                .as_deref(),
            Some("myapp-tls")
        );
        assert_eq!(certs["MyApp/tls"].key_id, CERT);
    }

    #[test]
    fn certificate_lineages_with_an_excluded_or_weak_match_form_no_link() {
        let mut excluded = m(
            APP,
            CredentialKind::Certificate,
            CERT,
            "tls rotor:r1",
            "tls-a",
        );
        excluded.excluded = Some("secret:tls-a".into());
        let held = m(APP, CredentialKind::Certificate, CERT, "tls", "tls-b");
        let mut weak = m(APP, CredentialKind::Certificate, CERT, "api", "api-cert");
        weak.confidence = Confidence::Low;
        let report = MatchReport {
            matches: vec![excluded, held, weak],
            ..MatchReport::default()
        };
        let certs =
            report_values(&report, &[app(APP, "MyApp")], &Policy::default()).certificate_links;
        assert!(certs.is_empty(), "{certs:?}");
    }

    #[test]
    fn links_agree_with_the_engine() {
        // Old and new credential of one lineage in two vaults (a rotation half done), a LOW match,
        // and a lineage of another app with an excluded copy.
        const OTHER: &str = "b0000002-0000-4000-8000-000000000002";
        let mut low = m(APP, CredentialKind::Secret, OLD, "main", "myapp-guess");
        low.confidence = Confidence::Low;
        let mut excluded = m(OTHER, CredentialKind::Secret, OLD, "main", "other-legacy");
        excluded.excluded = Some("secret:*-legacy".into());
        let report = MatchReport {
            matches: vec![
                m(APP, CredentialKind::Secret, OLD, "main", "myapp-old"),
                m(
                    APP,
                    CredentialKind::Secret,
                    NEW,
                    "main rotor:r2",
                    "myapp-new",
                ),
                low,
                m(OTHER, CredentialKind::Secret, OLD, "main", "other-secret"),
                excluded,
            ],
            ..MatchReport::default()
        };
        let apps = [app(APP, "MyApp"), app(OTHER, "Other")];
        let policy = Policy::default();
        let (_, _, links) = values(&report, &apps, &policy);
        let Value::Map(links) = links else {
            panic!("links is a map: {links:?}")
        };
        let engine = links_from_matches(&report, &apps, &policy);
        assert_eq!(links.len(), engine.len(), "{links:?} vs {engine:?}");
        let link = &links["MyApp/main"];
        assert_eq!(
            names(link.attr("targets"), "secret_name"),
            ["myapp-new", "myapp-old"]
        );
        assert_eq!(
            link.attr("key_id").as_str(),
            Some(NEW),
            "the newest credential the targets hold"
        );
        assert!(!links.keys().any(|k| k.starts_with("Other")), "{links:?}");
    }

    #[test]
    fn two_applications_with_one_name_get_distinct_keys() {
        const TWIN: &str = "b0000003-0000-4000-8000-000000000003";
        let report = MatchReport {
            matches: vec![
                m(APP, CredentialKind::Secret, OLD, "main", "a"),
                m(TWIN, CredentialKind::Secret, OLD, "main", "b"),
            ],
            ..MatchReport::default()
        };
        let apps = [app(APP, "MyApp"), app(TWIN, "MyApp")];
        let (_, _, links) = values(&report, &apps, &Policy::default());
        let Value::Map(links) = links else {
            panic!("links is a map: {links:?}")
        };
        let keys: Vec<&String> = links.keys().collect();
        assert_eq!(
            keys,
            [
                "MyApp (b0000003-0000-4000-8000-000000000003)/main",
                "MyApp/main"
            ]
        );
        assert_eq!(
            links["MyApp/main"].attr("application_id").as_str(),
            Some(APP)
        );
    }
}
