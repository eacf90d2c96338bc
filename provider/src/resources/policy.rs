//! `rotor_policy`: a named rotation policy. No remote object: it exists so links can share one
//! policy (`policy = rotor_policy.standard`). Every field is planned as a known value (defaults
//! filled in at plan time), so links that use it can decide at plan time.

use async_trait::async_trait;
use rotor_engine::policy;
use rotor_engine::{Confidence, Exclusion, Policy};

use crate::framework::{ApplyRequest, AttrPath, Diagnostics, PlanRequest, PlanResponse, Resource};
use crate::model::{Attr, Field, ModelError, Reader, Writer, decoded};
use crate::provider::{ProviderState, hint_lines};
use crate::schema::{Attribute, Schema};
use crate::value::{Number, Type, Value};

/// Every attribute name of `rotor_policy` (and of a link's `policy`), in one place: the schema
/// and the models use these.
pub mod attrs {
    pub const ID: &str = "id";
    pub const NAME: &str = "name";
    pub const ROTATE_BEFORE_EXPIRY_DAYS: &str = "rotate_before_expiry_days";
    pub const NEW_SECRET_VALIDITY_DAYS: &str = "new_secret_validity_days";
    pub const MIN_CONFIDENCE: &str = "min_confidence";
    pub const GRACE_PERIOD_DAYS: &str = "grace_period_days";
    pub const MAX_CONCURRENT: &str = "max_concurrent";
    pub const EXCLUSIONS: &str = "exclusions";
}

/// The resource.
pub struct PolicyResource;

/// Policy fields a link's `policy` attribute carries (a subset of `rotor_policy`'s attributes,
/// so a whole `rotor_policy` converts to it).
pub fn link_policy_type() -> Type {
    Type::object([
        (attrs::ROTATE_BEFORE_EXPIRY_DAYS, Type::Number),
        (attrs::NEW_SECRET_VALIDITY_DAYS, Type::Number),
        (attrs::MIN_CONFIDENCE, Type::String),
        (attrs::GRACE_PERIOD_DAYS, Type::Number),
        (attrs::EXCLUSIONS, Type::list(Type::String)),
    ])
}

const DAYS_BEFORE: &str = "Rotate when the current secret expires within this many days: 0 to 3650, and smaller \
    than `new_secret_validity_days`. Default `30`.";
const VALIDITY: &str = "Lifetime in days of each new client secret (its `endDateTime` and the Key Vault secret's `exp`): 1 to 3650. Default `365`.";
const MIN_CONFIDENCE: &str = "Lowest match confidence (`HIGH`, `MEDIUM` or `LOW`) at which a Key Vault secret is \
    treated as holding the credential and rotated. Default `HIGH`. Links below it are never rotated.";
const GRACE: &str = "Days an old client secret stays valid after its successor was created, so every consumer \
    picks up the new value before the old one is removed: 0 to 3650. Default `7`.";
const MAX_CONCURRENT: &str = "Deprecated, no effect in Terraform: links do not receive it (`policy = rotor_policy.x` \
    passes the other fields), and Terraform decides how many resources it applies at once — bound concurrent rotations \
    with `terraform apply -parallelism=N` (default 10). It is `max_concurrent` of `rotor.toml` for the CLI and the \
    GitHub Action. Still accepted (1 to 64, default `4`) so existing configurations stay valid.";
const EXCLUSIONS: &str = "Exclusion patterns: `app-id:GLOB` (application id), `name:GLOB` (application display \
    name) or `secret:GLOB` (credential display name or Key Vault secret name). Excluded items are reported, \
    never rotated. Default `[]`.";

/// The policy fields a link receives, as configured (numbers as sent, so validation can say
/// what is wrong with them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicySettings {
    /// `rotate_before_expiry_days`.
    pub rotate_before_expiry_days: Attr<Number>,
    /// `new_secret_validity_days`.
    pub new_secret_validity_days: Attr<Number>,
    /// `min_confidence`.
    pub min_confidence: Attr<String>,
    /// `grace_period_days`.
    pub grace_period_days: Attr<Number>,
    /// `exclusions`.
    pub exclusions: Attr<Vec<Attr<String>>>,
}

impl PolicySettings {
    fn read(r: &Reader<'_>) -> Result<Self, ModelError> {
        Ok(PolicySettings {
            rotate_before_expiry_days: r.get(attrs::ROTATE_BEFORE_EXPIRY_DAYS)?,
            new_secret_validity_days: r.get(attrs::NEW_SECRET_VALIDITY_DAYS)?,
            min_confidence: r.get(attrs::MIN_CONFIDENCE)?,
            grace_period_days: r.get(attrs::GRACE_PERIOD_DAYS)?,
            exclusions: r.get(attrs::EXCLUSIONS)?,
        })
    }

    fn write(&self, w: Writer) -> Writer {
        w.put(
            attrs::ROTATE_BEFORE_EXPIRY_DAYS,
            &self.rotate_before_expiry_days,
        )
        .put(
            attrs::NEW_SECRET_VALIDITY_DAYS,
            &self.new_secret_validity_days,
        )
        .put(attrs::MIN_CONFIDENCE, &self.min_confidence)
        .put(attrs::GRACE_PERIOD_DAYS, &self.grace_period_days)
        .put(attrs::EXCLUSIONS, &self.exclusions)
    }

    /// The engine policy, reporting bad values on `base.<field>` (on the field itself when
    /// `base` is `None`). Missing fields take the defaults. `None` when something is unknown or
    /// invalid (diagnostics say which).
    fn parse(
        &self,
        max_concurrent: &Attr<Number>,
        base: Option<&AttrPath>,
        diags: &mut Diagnostics,
    ) -> Option<Policy> {
        // Inside an object-typed attribute (a link's `policy`), Terraform can only point at the
        // attribute itself, so the field is named in the summary and the path stops there.
        let path = |field: &str| match base {
            Some(b) => b.clone(),
            None => AttrPath::attr(field),
        };
        if self.to_value().contains_unknown() || max_concurrent.is_unknown() {
            return None;
        }
        let mut policy = Policy::default();
        let before = diags.0.len();
        let days =
            |bound: &policy::Bound, v: &Attr<Number>, diags: &mut Diagnostics| -> Option<u32> {
                let field = bound.key;
                let n = v.known()?;
                let checked = match n.as_i64() {
                    Some(n) => bound.check(n),
                    None => Err(policy::Violation {
                        key: field,
                        cause: "expected a whole number".into(),
                        hint: format!(
                            "set {field} to a whole number from {} to {}",
                            bound.min, bound.max
                        ),
                    }),
                };
                match checked {
                    Ok(n) => Some(n),
                    Err(viol) => {
                        diags.error(
                            format!("validating policy `{field}`: {}", viol.cause),
                            format!("hint: {}", viol.hint),
                            Some(path(field)),
                        );
                        None
                    }
                }
            };
        if let Some(n) = days(
            &policy::ROTATE_BEFORE_EXPIRY_DAYS,
            &self.rotate_before_expiry_days,
            diags,
        ) {
            policy.rotate_before_expiry_days = n;
        }
        if let Some(n) = days(
            &policy::NEW_SECRET_VALIDITY_DAYS,
            &self.new_secret_validity_days,
            diags,
        ) {
            policy.new_secret_validity_days = n;
        }
        if let Some(n) = days(&policy::GRACE_PERIOD_DAYS, &self.grace_period_days, diags) {
            policy.grace_period_days = n;
        }
        if let Some(n) = days(&policy::MAX_CONCURRENT, max_concurrent, diags) {
            policy.max_concurrent = n as usize;
        }
        if let Some(s) = self.min_confidence.as_deref() {
            match s {
                "HIGH" => policy.min_confidence = Confidence::High,
                "MEDIUM" => policy.min_confidence = Confidence::Medium,
                "LOW" => policy.min_confidence = Confidence::Low,
                other => diags.error(
                    format!(
                        "validating policy `min_confidence`: `{other}` is not a confidence level"
                    ),
                    "hint: use one of HIGH, MEDIUM or LOW (upper case)",
                    Some(path(attrs::MIN_CONFIDENCE)),
                ),
            }
        }
        for (i, item) in self.exclusions.known().into_iter().flatten().enumerate() {
            let Some(s) = item.as_deref() else { continue };
            match Exclusion::parse(s) {
                Ok(e) => policy.exclusions.push(e),
                Err(e) => {
                    let mut detail = hint_lines(&e.hints());
                    if detail.is_empty() {
                        detail = "hint: write `app-id:GLOB`, `name:GLOB` or `secret:GLOB`, e.g. `name:legacy-*`".into();
                    }
                    diags.error(
                        format!("validating policy exclusion `{s}`: {}", e.failure().cause),
                        detail,
                        Some(if base.is_some() {
                            path(attrs::EXCLUSIONS)
                        } else {
                            path(attrs::EXCLUSIONS).then_index(i as i64)
                        }),
                    )
                }
            }
        }
        if diags.0.len() > before {
            return None;
        }
        if let Some(viol) = policy.violation() {
            diags.error(
                format!("validating policy `{}`: {}", viol.key, viol.cause),
                format!("hint: {}", viol.hint),
                Some(path(viol.key)),
            );
            return None;
        }
        Some(policy)
    }
}

impl Field for PolicySettings {
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        Self::read(&Reader::new(v)?)
    }
    fn to_value(&self) -> Value {
        self.write(Writer::default()).build()
    }
}

/// A link's `policy`: null is rotor's default policy; `None` when something is unknown or
/// invalid (diagnostics on `base` say which).
pub fn parse_link_policy(
    policy: &Attr<PolicySettings>,
    base: &AttrPath,
    diags: &mut Diagnostics,
) -> Option<Policy> {
    match policy {
        Attr::Null => Some(Policy::default()),
        Attr::Unknown => None,
        Attr::Known(s) => s.parse(&Attr::Null, Some(base), diags),
    }
}

/// A `rotor_policy` value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyModel {
    /// `id` (the name).
    pub id: Attr<String>,
    /// `name`.
    pub name: Attr<String>,
    /// The fields links receive.
    pub settings: PolicySettings,
    /// `max_concurrent` (deprecated, no effect in Terraform).
    pub max_concurrent: Attr<Number>,
}

impl Field for PolicyModel {
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        let r = Reader::new(v)?;
        Ok(PolicyModel {
            id: r.get(attrs::ID)?,
            name: r.get(attrs::NAME)?,
            settings: PolicySettings::read(&r)?,
            max_concurrent: r.get(attrs::MAX_CONCURRENT)?,
        })
    }
    fn to_value(&self) -> Value {
        let w = Writer::default()
            .put(attrs::ID, &self.id)
            .put(attrs::NAME, &self.name)
            .put(attrs::MAX_CONCURRENT, &self.max_concurrent);
        self.settings.write(w).build()
    }
}

fn days(n: u32) -> Attr<Number> {
    Attr::Known(Number::Int(i64::from(n)))
}

impl PolicyModel {
    /// The planned state: config with defaults filled in and `id` = `name`.
    fn fill(mut self) -> Self {
        let p = Policy::default();
        let s = &mut self.settings;
        let default = |a: &mut Attr<Number>, n: u32| {
            if a.is_null() {
                *a = days(n);
            }
        };
        default(
            &mut s.rotate_before_expiry_days,
            p.rotate_before_expiry_days,
        );
        default(&mut s.new_secret_validity_days, p.new_secret_validity_days);
        default(&mut s.grace_period_days, p.grace_period_days);
        if s.min_confidence.is_null() {
            s.min_confidence = Attr::Known(p.min_confidence.to_string());
        }
        if s.exclusions.is_null() {
            s.exclusions = Attr::Known(Vec::new());
        }
        if self.max_concurrent.is_null() {
            self.max_concurrent = Attr::Known(Number::Int(p.max_concurrent as i64));
        }
        self.id = match self.name.as_deref() {
            Some(n) => Attr::Known(crate::ids::policy_state_id(n)),
            None => Attr::Unknown,
        };
        self
    }

    /// The engine policy this configures (see [`PolicySettings::parse`]).
    fn parse(&self, diags: &mut Diagnostics) -> Option<Policy> {
        self.settings.parse(&self.max_concurrent, None, diags)
    }
}

#[async_trait]
impl Resource for PolicyResource {
    fn type_name(&self) -> &'static str {
        "rotor_policy"
    }

    fn schema(&self) -> Schema {
        Schema {
            version: 0,
            description: "A named rotation policy: when to rotate, how long new secrets live, how sure matching must \
                be, and what never to touch. It has no remote object; pass it whole to links \
                (`policy = rotor_policy.standard`). Every field is known at plan time.",
            attributes: vec![
                Attribute::computed(
                    attrs::ID,
                    Type::String,
                    "The policy's name (policies have no remote object).",
                ),
                Attribute::required(
                    attrs::NAME,
                    Type::String,
                    "Name of the policy: its `id`, and what `terraform import rotor_policy.<name> <name>` takes. Links do not receive it (`policy = rotor_policy.x` passes the values), so plans and audit records name the link, not the policy.",
                ),
                Attribute::optional_computed(
                    attrs::ROTATE_BEFORE_EXPIRY_DAYS,
                    Type::Number,
                    DAYS_BEFORE,
                )
                .default("30"),
                Attribute::optional_computed(
                    attrs::NEW_SECRET_VALIDITY_DAYS,
                    Type::Number,
                    VALIDITY,
                )
                .default("365"),
                Attribute::optional_computed(attrs::MIN_CONFIDENCE, Type::String, MIN_CONFIDENCE)
                    .default("HIGH"),
                Attribute::optional_computed(attrs::GRACE_PERIOD_DAYS, Type::Number, GRACE)
                    .default("7"),
                Attribute::optional_computed(attrs::MAX_CONCURRENT, Type::Number, MAX_CONCURRENT)
                    .deprecated()
                    .default("4"),
                Attribute::optional_computed(
                    attrs::EXCLUSIONS,
                    Type::list(Type::String),
                    EXCLUSIONS,
                )
                .default("[]"),
            ],
        }
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let Some(config) = decoded("configuration", PolicyModel::from_value(config), diags) else {
            return;
        };
        let _ = config.parse(diags);
        if !config.max_concurrent.is_null() {
            diags.warning(
                "`max_concurrent` is deprecated and has no effect in Terraform",
                "Links do not receive it (`policy = rotor_policy.x` passes the other fields), and Terraform decides \
                 how many resources it applies at once.\nhint: bound concurrent rotations with `terraform apply \
                 -parallelism=N` (default 10) and remove `max_concurrent`",
                Some(AttrPath::attr(attrs::MAX_CONCURRENT)),
            );
        }
    }

    async fn read(
        &self,
        _ctx: &ProviderState,
        state: &Value,
        _diags: &mut Diagnostics,
    ) -> Option<Value> {
        Some(state.clone())
    }

    async fn plan(
        &self,
        _ctx: &ProviderState,
        req: PlanRequest<'_>,
        diags: &mut Diagnostics,
    ) -> PlanResponse {
        let none = PlanResponse {
            planned: Value::Null,
            requires_replace: Vec::new(),
        };
        if req.proposed.is_null() {
            return none;
        }
        let Some(config) = decoded("configuration", PolicyModel::from_value(req.config), diags)
        else {
            return none;
        };
        let _ = config.parse(diags);
        PlanResponse {
            planned: config.fill().to_value(),
            requires_replace: Vec::new(),
        }
    }

    async fn apply(
        &self,
        _ctx: &ProviderState,
        req: ApplyRequest<'_>,
        _diags: &mut Diagnostics,
    ) -> Value {
        req.planned.clone()
    }

    async fn import(
        &self,
        _ctx: &ProviderState,
        id: &str,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        if id.trim().is_empty() {
            diags.error(
                "importing rotor_policy: the id is empty",
                "hint: import a policy by its name: terraform import rotor_policy.standard standard",
                None,
            );
            return None;
        }
        let imported = PolicyModel {
            name: Attr::Known(id.to_string()),
            ..PolicyModel::default()
        };
        Some(imported.fill().to_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn fill(config: &Value) -> Value {
        PolicyModel::from_value(config)
            .expect("model")
            .fill()
            .to_value()
    }

    fn parse(config: &Value, diags: &mut Diagnostics) -> Option<Policy> {
        PolicyModel::from_value(config).expect("model").parse(diags)
    }

    fn config(pairs: &[(&str, Value)]) -> Value {
        let mut obj: BTreeMap<String, Value> = PolicyResource
            .schema()
            .attributes
            .iter()
            .map(|a| (a.name.to_string(), Value::Null))
            .collect();
        for (k, v) in pairs {
            obj.insert(k.to_string(), v.clone());
        }
        Value::Object(obj)
    }

    #[test]
    fn plan_fills_every_default_as_known() {
        let planned = fill(&config(&[("name", Value::string("std"))]));
        assert!(!planned.contains_unknown());
        assert_eq!(planned.attr("id").as_str(), Some("std"));
        assert_eq!(planned.attr("rotate_before_expiry_days").as_i64(), Some(30));
        assert_eq!(planned.attr("min_confidence").as_str(), Some("HIGH"));
        assert_eq!(planned.attr("exclusions"), &Value::List(vec![]));
    }

    #[test]
    fn set_values_are_kept() {
        let planned = fill(&config(&[
            ("name", Value::string("s")),
            ("grace_period_days", Value::int(2)),
        ]));
        assert_eq!(planned.attr("grace_period_days").as_i64(), Some(2));
    }

    fn error_paths(c: &Value) -> Vec<String> {
        let mut d = Diagnostics::default();
        parse(c, &mut d);
        d.0.iter()
            .filter_map(|x| x.path.as_ref().map(|p| p.to_string()))
            .collect()
    }

    #[test]
    fn bad_values_are_reported_on_their_attribute() {
        assert_eq!(
            error_paths(&config(&[("rotate_before_expiry_days", Value::int(-1))])),
            vec!["rotate_before_expiry_days"]
        );
        assert_eq!(
            error_paths(&config(&[("new_secret_validity_days", Value::int(0))])),
            vec!["new_secret_validity_days"]
        );
        assert_eq!(
            error_paths(&config(&[("min_confidence", Value::string("SURE"))])),
            vec!["min_confidence"]
        );
        assert_eq!(
            error_paths(&config(&[(
                "exclusions",
                Value::List(vec![Value::string("name:ok-*"), Value::string("bogus")])
            )])),
            vec!["exclusions[1]"]
        );
        assert_eq!(
            error_paths(&config(&[("rotate_before_expiry_days", Value::int(400))])),
            vec!["rotate_before_expiry_days"]
        );
        assert!(error_paths(&config(&[("name", Value::string("x"))])).is_empty());
    }

    #[test]
    fn out_of_range_days_are_reported_not_panicked_on() {
        for (field, n) in [
            ("rotate_before_expiry_days", 4_000_000),
            ("new_secret_validity_days", 4_000_000),
            ("grace_period_days", 4_000_000),
            ("grace_period_days", 5_000_000_000),
            ("max_concurrent", 65),
        ] {
            let mut d = Diagnostics::default();
            assert!(parse(&config(&[(field, Value::int(n))]), &mut d).is_none());
            let paths: Vec<String> =
                d.0.iter()
                    .filter_map(|x| x.path.as_ref().map(|p| p.to_string()))
                    .collect();
            assert_eq!(paths, vec![field], "{field} = {n}");
            let text = format!("{:?}", d.0);
            assert!(text.contains("out of range"), "{text}");
        }
    }

    #[test]
    fn unknown_values_are_not_judged_yet() {
        let mut d = Diagnostics::default();
        assert!(parse(&config(&[("grace_period_days", Value::Unknown)]), &mut d).is_none());
        assert!(d.0.is_empty());
    }

    #[test]
    fn link_policy_type_is_a_subset_of_the_resource() {
        let Type::Object(link) = link_policy_type() else {
            panic!("object")
        };
        let Type::Object(full) = PolicyResource.schema().ty() else {
            panic!("object")
        };
        for (k, t) in link {
            assert_eq!(full.get(&k), Some(&t), "{k}");
        }
    }
}
