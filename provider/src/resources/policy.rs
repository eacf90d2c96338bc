//! `rotor_policy`: a named rotation policy. No remote object: it exists so links can share one
//! policy (`policy = rotor_policy.standard`). Every field is planned as a known value (defaults
//! filled in at plan time), so links that use it can decide at plan time.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rotor_engine::policy;
use rotor_engine::{Confidence, Exclusion, Policy};

use crate::framework::{ApplyRequest, AttrPath, Diagnostics, PlanRequest, PlanResponse, Resource};
use crate::provider::{ProviderState, hint_lines};
use crate::schema::{Attribute, Schema};
use crate::value::{Type, Value};

/// The resource.
pub struct PolicyResource;

/// Policy fields a link's `policy` attribute carries (a subset of `rotor_policy`'s attributes,
/// so a whole `rotor_policy` converts to it).
pub fn link_policy_type() -> Type {
    Type::object([
        ("rotate_before_expiry_days", Type::Number),
        ("new_secret_validity_days", Type::Number),
        ("min_confidence", Type::String),
        ("grace_period_days", Type::Number),
        ("exclusions", Type::list(Type::String)),
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

impl PolicyResource {
    fn defaults() -> BTreeMap<&'static str, Value> {
        let p = Policy::default();
        BTreeMap::from([
            (
                "rotate_before_expiry_days",
                Value::int(i64::from(p.rotate_before_expiry_days)),
            ),
            (
                "new_secret_validity_days",
                Value::int(i64::from(p.new_secret_validity_days)),
            ),
            (
                "min_confidence",
                Value::string(p.min_confidence.to_string()),
            ),
            (
                "grace_period_days",
                Value::int(i64::from(p.grace_period_days)),
            ),
            ("max_concurrent", Value::int(p.max_concurrent as i64)),
            ("exclusions", Value::List(Vec::new())),
        ])
    }

    /// The planned state: config with defaults filled in and `id` = `name`.
    fn fill(config: &Value) -> Value {
        let mut out = config.as_object().cloned().unwrap_or_default();
        for (k, v) in Self::defaults() {
            if out.get(k).is_none_or(Value::is_null) {
                out.insert(k.to_string(), v);
            }
        }
        let id = match out.get("name") {
            Some(Value::String(n)) => Value::string(crate::ids::policy_state_id(n)),
            _ => Value::Unknown,
        };
        out.insert("id".to_string(), id);
        Value::Object(out)
    }
}

/// Reads policy fields from an object (a `rotor_policy` or a link's `policy`), reporting bad
/// values on `base.<field>`. Missing fields take the defaults. `None` when something is unknown
/// or invalid (diagnostics say which).
pub fn parse_policy(
    obj: &Value,
    base: Option<&AttrPath>,
    diags: &mut Diagnostics,
) -> Option<Policy> {
    // Inside an object-typed attribute (a link's `policy`), Terraform can only point at the
    // attribute itself, so the field is named in the summary and the path stops there.
    let path = |field: &str| match base {
        Some(b) => b.clone(),
        None => AttrPath::attr(field),
    };
    if obj.is_null() {
        return Some(Policy::default());
    }
    if obj.contains_unknown() {
        return None;
    }
    let mut policy = Policy::default();
    let before = diags.0.len();
    let days = |bound: &policy::Bound, diags: &mut Diagnostics| -> Option<u32> {
        let field = bound.key;
        let v = obj.attr(field);
        if v.is_null() {
            return None;
        }
        let checked = match v.as_i64() {
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
    if let Some(n) = days(&policy::ROTATE_BEFORE_EXPIRY_DAYS, diags) {
        policy.rotate_before_expiry_days = n;
    }
    if let Some(n) = days(&policy::NEW_SECRET_VALIDITY_DAYS, diags) {
        policy.new_secret_validity_days = n;
    }
    if let Some(n) = days(&policy::GRACE_PERIOD_DAYS, diags) {
        policy.grace_period_days = n;
    }
    if let Some(n) = days(&policy::MAX_CONCURRENT, diags) {
        policy.max_concurrent = n as usize;
    }
    if let Value::String(s) = obj.attr("min_confidence") {
        match s.as_str() {
            "HIGH" => policy.min_confidence = Confidence::High,
            "MEDIUM" => policy.min_confidence = Confidence::Medium,
            "LOW" => policy.min_confidence = Confidence::Low,
            other => diags.error(
                format!("validating policy `min_confidence`: `{other}` is not a confidence level"),
                "hint: use one of HIGH, MEDIUM or LOW (upper case)",
                Some(path("min_confidence")),
            ),
        }
    }
    if let Some(items) = obj.attr("exclusions").as_elements() {
        for (i, item) in items.iter().enumerate() {
            let Some(s) = item.as_str() else { continue };
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
                            path("exclusions")
                        } else {
                            path("exclusions").then_index(i as i64)
                        }),
                    )
                }
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
                    "id",
                    Type::String,
                    "The policy's name (policies have no remote object).",
                ),
                Attribute::required(
                    "name",
                    Type::String,
                    "Name of the policy: its `id`, and what `terraform import rotor_policy.<name> <name>` takes. Links do not receive it (`policy = rotor_policy.x` passes the values), so plans and audit records name the link, not the policy.",
                ),
                Attribute::optional_computed(
                    "rotate_before_expiry_days",
                    Type::Number,
                    DAYS_BEFORE,
                )
                .default("30"),
                Attribute::optional_computed("new_secret_validity_days", Type::Number, VALIDITY)
                    .default("365"),
                Attribute::optional_computed("min_confidence", Type::String, MIN_CONFIDENCE)
                    .default("HIGH"),
                Attribute::optional_computed("grace_period_days", Type::Number, GRACE).default("7"),
                Attribute::optional_computed("max_concurrent", Type::Number, MAX_CONCURRENT)
                    .deprecated()
                    .default("4"),
                Attribute::optional_computed("exclusions", Type::list(Type::String), EXCLUSIONS)
                    .default("[]"),
            ],
        }
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let _ = parse_policy(config, None, diags);
        if !config.attr("max_concurrent").is_null() {
            diags.warning(
                "`max_concurrent` is deprecated and has no effect in Terraform",
                "Links do not receive it (`policy = rotor_policy.x` passes the other fields), and Terraform decides \
                 how many resources it applies at once.\nhint: bound concurrent rotations with `terraform apply \
                 -parallelism=N` (default 10) and remove `max_concurrent`",
                Some(AttrPath::attr("max_concurrent")),
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
        if req.proposed.is_null() {
            return PlanResponse {
                planned: Value::Null,
                requires_replace: Vec::new(),
            };
        }
        let _ = parse_policy(req.config, None, diags);
        PlanResponse {
            planned: Self::fill(req.config),
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
        let mut obj: BTreeMap<String, Value> = BTreeMap::new();
        obj.insert("name".into(), Value::string(id));
        Some(Self::fill(&Value::Object(obj)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let planned = PolicyResource::fill(&config(&[("name", Value::string("std"))]));
        assert!(!planned.contains_unknown());
        assert_eq!(planned.attr("id").as_str(), Some("std"));
        assert_eq!(planned.attr("rotate_before_expiry_days").as_i64(), Some(30));
        assert_eq!(planned.attr("min_confidence").as_str(), Some("HIGH"));
        assert_eq!(planned.attr("exclusions"), &Value::List(vec![]));
    }

    #[test]
    fn set_values_are_kept() {
        let planned = PolicyResource::fill(&config(&[
            ("name", Value::string("s")),
            ("grace_period_days", Value::int(2)),
        ]));
        assert_eq!(planned.attr("grace_period_days").as_i64(), Some(2));
    }

    fn error_paths(c: &Value) -> Vec<String> {
        let mut d = Diagnostics::default();
        parse_policy(c, None, &mut d);
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
            assert!(parse_policy(&config(&[(field, Value::int(n))]), None, &mut d).is_none());
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
        assert!(
            parse_policy(
                &config(&[("grace_period_days", Value::Unknown)]),
                None,
                &mut d
            )
            .is_none()
        );
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
