//! Pure conversion between tfplugin6 protobuf and the provider's own types: `DynamicValue`
//! (msgpack, or JSON) ↔ [`Value`], [`Schema`] → protobuf, [`Diagnostic`] → protobuf. No
//! decisions, no Azure.

use crate::framework::{AttrPath, Diagnostic, Diagnostics, PathStep, Severity};
use crate::proto::tfplugin6 as tf;
use crate::schema::{Mode, Schema};
use crate::value::{self, Type, Value};

/// `Schema` → protobuf.
pub fn schema_to_proto(schema: &Schema) -> tf::Schema {
    let attributes = schema
        .attributes
        .iter()
        .map(|a| tf::schema::Attribute {
            name: a.name.to_string(),
            r#type: serde_json::to_vec(&a.ty.to_json()).unwrap_or_default(),
            nested_type: None,
            description: a.description.to_string(),
            required: a.mode == Mode::Required,
            optional: matches!(a.mode, Mode::Optional | Mode::OptionalComputed),
            computed: matches!(a.mode, Mode::Computed | Mode::OptionalComputed),
            sensitive: a.sensitive,
            description_kind: tf::StringKind::Markdown as i32,
            deprecated: a.deprecated,
            write_only: false,
            deprecation_message: String::new(),
        })
        .collect();
    tf::Schema {
        version: schema.version,
        block: Some(tf::schema::Block {
            version: schema.version,
            attributes,
            block_types: Vec::new(),
            description: schema.description.to_string(),
            description_kind: tf::StringKind::Markdown as i32,
            deprecated: false,
            deprecation_message: String::new(),
        }),
    }
}

/// `AttrPath` → protobuf.
pub fn path_to_proto(path: &AttrPath) -> tf::AttributePath {
    use tf::attribute_path::step::Selector;
    tf::AttributePath {
        steps: path
            .0
            .iter()
            .map(|s| tf::attribute_path::Step {
                selector: Some(match s {
                    PathStep::Attr(a) => Selector::AttributeName(a.clone()),
                    PathStep::Key(k) => Selector::ElementKeyString(k.clone()),
                    PathStep::Index(i) => Selector::ElementKeyInt(*i),
                }),
            })
            .collect(),
    }
}

/// `Diagnostic` → protobuf.
pub fn diag_to_proto(d: &Diagnostic) -> tf::Diagnostic {
    tf::Diagnostic {
        severity: match d.severity {
            Severity::Error => tf::diagnostic::Severity::Error as i32,
            Severity::Warning => tf::diagnostic::Severity::Warning as i32,
        },
        summary: d.summary.clone(),
        detail: d.detail.clone(),
        attribute: d.path.as_ref().map(path_to_proto),
    }
}

/// Every diagnostic → protobuf, in order.
pub fn diags_to_proto(d: &Diagnostics) -> Vec<tf::Diagnostic> {
    d.0.iter().map(diag_to_proto).collect()
}

/// Decodes a `DynamicValue` (msgpack, else JSON) of type `ty`; an absent value is null. A value
/// that does not decode is null, with an error naming `what`.
pub fn decode(
    dv: Option<&tf::DynamicValue>,
    ty: &Type,
    what: &str,
    diags: &mut Diagnostics,
) -> Value {
    let Some(dv) = dv else { return Value::Null };
    let result = if !dv.msgpack.is_empty() {
        value::from_msgpack(&dv.msgpack, ty)
    } else if !dv.json.is_empty() {
        serde_json::from_slice::<serde_json::Value>(&dv.json)
            .map_err(|e| value::ValueError {
                path: "(root)".into(),
                cause: e.to_string(),
            })
            .and_then(|j| value::from_json(&j, ty))
    } else {
        Ok(Value::Null)
    };
    match result {
        Ok(v) => v,
        Err(e) => {
            diags.error(
                format!("decoding the {what} sent by Terraform: {e}"),
                "hint: this is a bug in terraform-provider-rotor or an unsupported Terraform version; please report it",
                None,
            );
            Value::Null
        }
    }
}

/// Decodes raw state JSON (`UpgradeResourceState`) of type `ty`; empty is null.
pub fn decode_raw_state(json: &[u8], ty: &Type) -> Result<Value, String> {
    if json.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice::<serde_json::Value>(json)
        .map_err(|e| e.to_string())
        .and_then(|j| value::from_json(&j, ty).map_err(|e| e.to_string()))
}

/// Encodes a value of type `ty` as msgpack; `None` (with an error naming `what`) when it does
/// not fit the type.
pub fn encode(
    v: &Value,
    ty: &Type,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<tf::DynamicValue> {
    match value::to_msgpack(v, ty) {
        Ok(msgpack) => Some(tf::DynamicValue {
            msgpack,
            json: Vec::new(),
        }),
        Err(e) => {
            diags.error(
                format!("encoding the {what}: {e}"),
                "hint: this is a bug in terraform-provider-rotor; please report it",
                None,
            );
            None
        }
    }
}

/// What this server supports beyond the protocol's minimum.
pub fn capabilities() -> tf::ServerCapabilities {
    tf::ServerCapabilities {
        plan_destroy: true,
        get_provider_schema_optional: false,
        move_resource_state: false,
        generate_resource_config: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Attribute;

    #[test]
    fn values_round_trip_through_msgpack_and_json_decodes() {
        let ty = Type::object([("a", Type::String), ("n", Type::Number)]);
        let v = Value::Object(
            [
                ("a".to_string(), Value::string("x")),
                ("n".to_string(), Value::Unknown),
            ]
            .into(),
        );
        let mut d = Diagnostics::default();
        let dv = encode(&v, &ty, "v", &mut d);
        assert_eq!(decode(dv.as_ref(), &ty, "v", &mut d), v);
        let json = tf::DynamicValue {
            msgpack: Vec::new(),
            json: br#"{"a":"y","n":3}"#.to_vec(),
        };
        assert_eq!(
            decode(Some(&json), &ty, "v", &mut d).attr("a").as_str(),
            Some("y")
        );
        assert!(d.0.is_empty(), "{:?}", d.0);
        let bad = tf::DynamicValue {
            msgpack: Vec::new(),
            json: b"{".to_vec(),
        };
        assert!(decode(Some(&bad), &ty, "configuration", &mut d).is_null());
        assert!(
            d.0[0].summary.contains("decoding the configuration"),
            "{:?}",
            d.0
        );
    }

    #[test]
    fn schemas_and_diagnostics_keep_modes_and_paths() {
        let s = Schema {
            version: 2,
            description: "d",
            attributes: vec![
                Attribute::required("r", Type::String, "R."),
                Attribute::optional_computed("oc", Type::Bool, "OC."),
            ],
        };
        let p = schema_to_proto(&s);
        let attrs = p.block.expect("block").attributes;
        assert!(attrs[0].required && !attrs[0].computed);
        assert!(attrs[1].optional && attrs[1].computed);
        let mut d = Diagnostics::default();
        d.warning("w", "", Some(AttrPath::attr("t").then_index(1)));
        let proto = diags_to_proto(&d);
        assert_eq!(proto[0].severity, tf::diagnostic::Severity::Warning as i32);
        assert_eq!(proto[0].attribute.as_ref().expect("path").steps.len(), 2);
    }
}
