//! Terraform's type system and its wire encodings (msgpack over `rmpv`, and the JSON used for
//! raw state), as described in Terraform's `docs/plugin-protocol/object-wire-format.md`.
//!
//! msgpack is untyped, so decoding is always driven by a [`Type`] from the schema: a msgpack map
//! is an object or a map depending on the schema, and a `dynamic` value carries its own type as
//! `[type-json, value]`.

use std::collections::BTreeMap;
use std::fmt;

use rmpv::Value as Mp;
use serde_json::Value as Json;

/// A Terraform type constraint (cty type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    /// `bool`
    Bool,
    /// `number` (arbitrary precision in Terraform; see [`Number`])
    Number,
    /// `string`
    String,
    /// `dynamic`: the value's type is decided at run time and travels with it.
    Dynamic,
    /// `list(T)`
    List(Box<Type>),
    /// `set(T)`
    Set(Box<Type>),
    /// `map(T)`
    Map(Box<Type>),
    /// `object({...})`
    Object(BTreeMap<String, Type>),
    /// `tuple([...])`
    Tuple(Vec<Type>),
}

/// Errors decoding or encoding a value; the path says where (`targets[0].vault_url`).
#[derive(Debug, thiserror::Error)]
#[error("decoding Terraform value at `{path}`: {cause}")]
pub struct ValueError {
    /// Where in the value the problem is (empty for the root).
    pub path: String,
    /// What is wrong.
    pub cause: String,
}

fn err(path: &str, cause: impl Into<String>) -> ValueError {
    ValueError {
        path: if path.is_empty() {
            "(root)".to_string()
        } else {
            path.to_string()
        },
        cause: cause.into(),
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

impl Type {
    /// `list(T)`
    pub fn list(t: Type) -> Type {
        Type::List(Box::new(t))
    }
    /// `set(T)`
    pub fn set(t: Type) -> Type {
        Type::Set(Box::new(t))
    }
    /// `map(T)`
    pub fn map(t: Type) -> Type {
        Type::Map(Box::new(t))
    }
    /// `object({...})` from `(name, type)` pairs.
    pub fn object<'a>(attrs: impl IntoIterator<Item = (&'a str, Type)>) -> Type {
        Type::Object(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    /// The compact JSON form Terraform uses in `Schema.Attribute.type` and for dynamic values.
    pub fn to_json(&self) -> Json {
        match self {
            Type::Bool => Json::from("bool"),
            Type::Number => Json::from("number"),
            Type::String => Json::from("string"),
            Type::Dynamic => Json::from("dynamic"),
            Type::List(t) => Json::Array(vec![Json::from("list"), t.to_json()]),
            Type::Set(t) => Json::Array(vec![Json::from("set"), t.to_json()]),
            Type::Map(t) => Json::Array(vec![Json::from("map"), t.to_json()]),
            Type::Object(attrs) => Json::Array(vec![
                Json::from("object"),
                Json::Object(
                    attrs
                        .iter()
                        .map(|(k, t)| (k.clone(), t.to_json()))
                        .collect(),
                ),
            ]),
            Type::Tuple(elems) => Json::Array(vec![
                Json::from("tuple"),
                Json::Array(elems.iter().map(Type::to_json).collect()),
            ]),
        }
    }

    /// Parses the compact JSON form (the inverse of [`Type::to_json`]). Object types may carry a
    /// third element listing optional attributes; it is accepted and ignored.
    pub fn from_json(json: &Json) -> Result<Type, ValueError> {
        match json {
            Json::String(s) => match s.as_str() {
                "bool" => Ok(Type::Bool),
                "number" => Ok(Type::Number),
                "string" => Ok(Type::String),
                "dynamic" => Ok(Type::Dynamic),
                other => Err(err("", format!("unknown primitive type `{other}`"))),
            },
            Json::Array(parts) if parts.len() >= 2 => {
                let kind = parts[0].as_str().unwrap_or_default();
                match kind {
                    "list" => Ok(Type::list(Type::from_json(&parts[1])?)),
                    "set" => Ok(Type::set(Type::from_json(&parts[1])?)),
                    "map" => Ok(Type::map(Type::from_json(&parts[1])?)),
                    "object" => {
                        let attrs = parts[1]
                            .as_object()
                            .ok_or_else(|| err("", "object type without attributes"))?;
                        let mut out = BTreeMap::new();
                        for (k, v) in attrs {
                            out.insert(k.clone(), Type::from_json(v)?);
                        }
                        Ok(Type::Object(out))
                    }
                    "tuple" => {
                        let elems = parts[1]
                            .as_array()
                            .ok_or_else(|| err("", "tuple type without elements"))?;
                        Ok(Type::Tuple(
                            elems
                                .iter()
                                .map(Type::from_json)
                                .collect::<Result<_, _>>()?,
                        ))
                    }
                    other => Err(err("", format!("unknown type kind `{other}`"))),
                }
            }
            other => Err(err("", format!("malformed type `{other}`"))),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("bool"),
            Type::Number => f.write_str("number"),
            Type::String => f.write_str("string"),
            Type::Dynamic => f.write_str("any"),
            Type::List(t) => write!(f, "list({t})"),
            Type::Set(t) => write!(f, "set({t})"),
            Type::Map(t) => write!(f, "map({t})"),
            Type::Object(attrs) => {
                f.write_str("object({")?;
                for (i, (k, t)) in attrs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} = {t}")?;
                }
                f.write_str("})")
            }
            Type::Tuple(elems) => {
                f.write_str("tuple([")?;
                for (i, t) in elems.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{t}")?;
                }
                f.write_str("])")
            }
        }
    }
}

/// A Terraform number. Terraform numbers are arbitrary precision; msgpack carries them as an
/// integer, a float, or (for large mantissas) a decimal string, which is kept verbatim.
#[derive(Clone, Debug, PartialEq)]
pub enum Number {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer beyond `i64`.
    UInt(u64),
    /// A float.
    Float(f64),
    /// A decimal string (large or very precise numbers).
    Decimal(String),
}

impl Number {
    /// The number as an `i64` when it is an integer within range.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(*i),
            Number::UInt(u) => i64::try_from(*u).ok(),
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            Number::Float(_) => None,
            Number::Decimal(s) => s.parse::<i64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            }),
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::UInt(u) => write!(f, "{u}"),
            Number::Float(x) => write!(f, "{x}"),
            Number::Decimal(s) => f.write_str(s),
        }
    }
}

/// A Terraform value. Collections keep their elements; the schema [`Type`] says how to encode.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A known null.
    Null,
    /// A value known only after apply (msgpack extension; refinements are ignored).
    Unknown,
    /// `bool`
    Bool(bool),
    /// `number`
    Number(Number),
    /// `string`
    String(String),
    /// `list(T)` or `tuple([...])`
    List(Vec<Value>),
    /// `set(T)`: order is not significant; [`Value::normalized`] sorts it.
    Set(Vec<Value>),
    /// `map(T)`
    Map(BTreeMap<String, Value>),
    /// `object({...})` (every attribute present; absent means null)
    Object(BTreeMap<String, Value>),
    /// A value in a `dynamic` position, with the concrete type it carries on the wire.
    Dynamic(Type, Box<Value>),
}

impl Value {
    /// A string value.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }
    /// An integer number value.
    pub fn int(i: i64) -> Value {
        Value::Number(Number::Int(i))
    }
    /// Whether this is a known null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    /// Whether this value is unknown.
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }
    /// Whether this value, or anything inside it, is unknown.
    pub fn contains_unknown(&self) -> bool {
        match self {
            Value::Unknown => true,
            Value::List(v) | Value::Set(v) => v.iter().any(Value::contains_unknown),
            Value::Map(m) | Value::Object(m) => m.values().any(Value::contains_unknown),
            Value::Dynamic(_, v) => v.contains_unknown(),
            _ => false,
        }
    }
    /// The string, when this is a known string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Dynamic(_, v) => v.as_str(),
            _ => None,
        }
    }
    /// The bool, when this is a known bool.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Dynamic(_, v) => v.as_bool(),
            _ => None,
        }
    }
    /// The number as `i64`, when this is a known integral number.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            Value::Dynamic(_, v) => v.as_i64(),
            _ => None,
        }
    }
    /// The attributes, when this is a known object.
    pub fn as_object(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Object(m) => Some(m),
            Value::Dynamic(_, v) => v.as_object(),
            _ => None,
        }
    }
    /// The elements, when this is a known list, tuple or set.
    pub fn as_elements(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Set(v) => Some(v),
            Value::Dynamic(_, v) => v.as_elements(),
            _ => None,
        }
    }
    /// The entries, when this is a known map.
    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(m) => Some(m),
            Value::Dynamic(_, v) => v.as_map(),
            _ => None,
        }
    }
    /// An attribute of an object (`Null` when absent or when this is not an object).
    pub fn attr(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.as_object().and_then(|m| m.get(name)).unwrap_or(&NULL)
    }

    /// A canonical form for comparisons: sets sorted by their encoding, numbers that are integers
    /// as `Int`. Two values equal after normalisation are the same Terraform value.
    pub fn normalized(&self) -> Value {
        match self {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Number(Number::Int(i)),
                None => self.clone(),
            },
            Value::List(v) => Value::List(v.iter().map(Value::normalized).collect()),
            Value::Set(v) => {
                let mut elems: Vec<Value> = v.iter().map(Value::normalized).collect();
                elems.sort_by_key(|e| format!("{e:?}"));
                elems.dedup();
                Value::Set(elems)
            }
            Value::Map(m) => {
                Value::Map(m.iter().map(|(k, v)| (k.clone(), v.normalized())).collect())
            }
            Value::Object(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), v.normalized())).collect())
            }
            Value::Dynamic(t, v) => Value::Dynamic(t.clone(), Box::new(v.normalized())),
            other => other.clone(),
        }
    }

    /// Whether two values are the same Terraform value (set order and number encoding ignored).
    pub fn same_as(&self, other: &Value) -> bool {
        self.normalized() == other.normalized()
    }
}

// ---------------------------------------------------------------------------------------------
// msgpack
// ---------------------------------------------------------------------------------------------

/// Decodes msgpack bytes as a value of type `ty`.
pub fn from_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, ValueError> {
    let mut cursor = bytes;
    let mp = rmpv::decode::read_value(&mut cursor)
        .map_err(|e| err("", format!("invalid msgpack: {e}")))?;
    decode_mp(&mp, ty, "")
}

/// Encodes a value of type `ty` as msgpack bytes.
pub fn to_msgpack(value: &Value, ty: &Type) -> Result<Vec<u8>, ValueError> {
    let mp = encode_mp(value, ty, "")?;
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &mp)
        .map_err(|e| err("", format!("encoding msgpack: {e}")))?;
    Ok(out)
}

fn mp_str(v: &Mp) -> Option<&str> {
    match v {
        Mp::String(s) => s.as_str(),
        Mp::Binary(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

fn decode_mp(mp: &Mp, ty: &Type, path: &str) -> Result<Value, ValueError> {
    match mp {
        Mp::Nil => return Ok(Value::Null),
        Mp::Ext(_, _) => return Ok(Value::Unknown),
        _ => {}
    }
    match ty {
        Type::Bool => match mp {
            Mp::Boolean(b) => Ok(Value::Bool(*b)),
            other => Err(err(path, format!("expected bool, got {other}"))),
        },
        Type::Number => match mp {
            Mp::Integer(i) => Ok(Value::Number(match i.as_i64() {
                Some(v) => Number::Int(v),
                None => Number::UInt(i.as_u64().unwrap_or(u64::MAX)),
            })),
            Mp::F32(f) => Ok(Value::Number(Number::Float(f64::from(*f)))),
            Mp::F64(f) => Ok(Value::Number(Number::Float(*f))),
            Mp::String(s) => {
                let s = s
                    .as_str()
                    .ok_or_else(|| err(path, "number string is not UTF-8"))?;
                if s.parse::<f64>().is_err() {
                    return Err(err(path, format!("`{s}` is not a number")));
                }
                Ok(Value::Number(Number::Decimal(s.to_string())))
            }
            other => Err(err(path, format!("expected number, got {other}"))),
        },
        Type::String => match mp_str(mp) {
            Some(s) => Ok(Value::String(s.to_string())),
            None => Err(err(path, format!("expected string, got {}", kind_of(mp)))),
        },
        Type::List(elem) | Type::Set(elem) => match mp {
            Mp::Array(items) => {
                let values = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| decode_mp(item, elem, &format!("{path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if matches!(ty, Type::Set(_)) {
                    Value::Set(values)
                } else {
                    Value::List(values)
                })
            }
            other => Err(err(path, format!("expected array, got {}", kind_of(other)))),
        },
        Type::Tuple(elems) => match mp {
            Mp::Array(items) if items.len() == elems.len() => Ok(Value::List(
                items
                    .iter()
                    .zip(elems)
                    .enumerate()
                    .map(|(i, (item, t))| decode_mp(item, t, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )),
            Mp::Array(items) => Err(err(
                path,
                format!(
                    "tuple of {} elements required ({} given)",
                    elems.len(),
                    items.len()
                ),
            )),
            other => Err(err(path, format!("expected array, got {}", kind_of(other)))),
        },
        Type::Map(elem) => match mp {
            Mp::Map(entries) => {
                let mut out = BTreeMap::new();
                for (k, v) in entries {
                    let key = mp_str(k).ok_or_else(|| err(path, "map key is not a string"))?;
                    out.insert(
                        key.to_string(),
                        decode_mp(v, elem, &format!("{path}[\"{key}\"]"))?,
                    );
                }
                Ok(Value::Map(out))
            }
            other => Err(err(path, format!("expected map, got {}", kind_of(other)))),
        },
        Type::Object(attrs) => match mp {
            Mp::Map(entries) => {
                let mut given = BTreeMap::new();
                for (k, v) in entries {
                    let key =
                        mp_str(k).ok_or_else(|| err(path, "attribute name is not a string"))?;
                    given.insert(key, v);
                }
                let mut out = BTreeMap::new();
                for (name, t) in attrs {
                    let value = match given.get(name.as_str()) {
                        Some(v) => decode_mp(v, t, &child(path, name))?,
                        None => Value::Null,
                    };
                    out.insert(name.clone(), value);
                }
                Ok(Value::Object(out))
            }
            other => Err(err(
                path,
                format!("expected object, got {}", kind_of(other)),
            )),
        },
        Type::Dynamic => match mp {
            Mp::Array(pair) if pair.len() == 2 => {
                let type_json = match &pair[0] {
                    Mp::Binary(b) => b.clone(),
                    Mp::String(s) => s.as_bytes().to_vec(),
                    other => return Err(err(path, format!("dynamic type is {}", kind_of(other)))),
                };
                let json: Json = serde_json::from_slice(&type_json)
                    .map_err(|e| err(path, format!("dynamic type is not JSON: {e}")))?;
                let inner_ty = Type::from_json(&json).map_err(|e| err(path, e.cause))?;
                let inner = decode_mp(&pair[1], &inner_ty, path)?;
                Ok(Value::Dynamic(inner_ty, Box::new(inner)))
            }
            other => Err(err(
                path,
                format!(
                    "dynamic value must be [type, value], got {}",
                    kind_of(other)
                ),
            )),
        },
    }
}

fn kind_of(mp: &Mp) -> &'static str {
    match mp {
        Mp::Nil => "nil",
        Mp::Boolean(_) => "bool",
        Mp::Integer(_) => "integer",
        Mp::F32(_) | Mp::F64(_) => "float",
        Mp::String(_) => "string",
        Mp::Binary(_) => "binary",
        Mp::Array(_) => "array",
        Mp::Map(_) => "map",
        Mp::Ext(_, _) => "extension",
    }
}

fn encode_mp(value: &Value, ty: &Type, path: &str) -> Result<Mp, ValueError> {
    match value {
        Value::Null => return Ok(Mp::Nil),
        Value::Unknown => return Ok(Mp::Ext(0, vec![0])),
        _ => {}
    }
    match (ty, value) {
        (Type::Dynamic, Value::Dynamic(inner_ty, inner)) => {
            let type_json = serde_json::to_vec(&inner_ty.to_json())
                .map_err(|e| err(path, format!("encoding type: {e}")))?;
            Ok(Mp::Array(vec![
                Mp::Binary(type_json),
                encode_mp(inner, inner_ty, path)?,
            ]))
        }
        (Type::Dynamic, other) => {
            let inferred = infer_type(other);
            let type_json = serde_json::to_vec(&inferred.to_json())
                .map_err(|e| err(path, format!("encoding type: {e}")))?;
            Ok(Mp::Array(vec![
                Mp::Binary(type_json),
                encode_mp(other, &inferred, path)?,
            ]))
        }
        (t, Value::Dynamic(_, inner)) => encode_mp(inner, t, path),
        (Type::Bool, Value::Bool(b)) => Ok(Mp::Boolean(*b)),
        (Type::Number, Value::Number(n)) => Ok(match n {
            Number::Int(i) => Mp::from(*i),
            Number::UInt(u) => Mp::from(*u),
            Number::Float(f) => Mp::F64(*f),
            Number::Decimal(s) => Mp::String(s.clone().into()),
        }),
        (Type::String, Value::String(s)) => Ok(Mp::String(s.clone().into())),
        (Type::List(elem) | Type::Set(elem), Value::List(items) | Value::Set(items)) => {
            Ok(Mp::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| encode_mp(v, elem, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ))
        }
        (Type::Tuple(elems), Value::List(items)) if elems.len() == items.len() => Ok(Mp::Array(
            items
                .iter()
                .zip(elems)
                .enumerate()
                .map(|(i, (v, t))| encode_mp(v, t, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        )),
        (Type::Map(elem), Value::Map(entries) | Value::Object(entries)) => Ok(Mp::Map(
            entries
                .iter()
                .map(|(k, v)| {
                    Ok((
                        Mp::String(k.clone().into()),
                        encode_mp(v, elem, &format!("{path}[\"{k}\"]"))?,
                    ))
                })
                .collect::<Result<_, ValueError>>()?,
        )),
        (Type::Object(attrs), Value::Object(given)) => {
            if let Some(extra) = given.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(err(path, format!("unexpected attribute `{extra}`")));
            }
            Ok(Mp::Map(
                attrs
                    .iter()
                    .map(|(name, t)| {
                        let v = given.get(name).unwrap_or(&Value::Null);
                        Ok((
                            Mp::String(name.clone().into()),
                            encode_mp(v, t, &child(path, name))?,
                        ))
                    })
                    .collect::<Result<_, ValueError>>()?,
            ))
        }
        (t, v) => Err(err(path, format!("value {v:?} does not fit type {t}"))),
    }
}

/// The type of a value that carries no schema type (used for dynamic positions).
pub fn infer_type(value: &Value) -> Type {
    match value {
        Value::Null | Value::Unknown => Type::Dynamic,
        Value::Bool(_) => Type::Bool,
        Value::Number(_) => Type::Number,
        Value::String(_) => Type::String,
        Value::List(items) => Type::Tuple(items.iter().map(infer_type).collect()),
        Value::Set(items) => Type::set(items.first().map(infer_type).unwrap_or(Type::Dynamic)),
        Value::Map(m) | Value::Object(m) => {
            Type::Object(m.iter().map(|(k, v)| (k.clone(), infer_type(v))).collect())
        }
        Value::Dynamic(t, _) => t.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON (raw state, and the `json` field of DynamicValue)
// ---------------------------------------------------------------------------------------------

/// Decodes JSON (as in raw state) as a value of type `ty`. JSON cannot express unknown.
pub fn from_json(json: &Json, ty: &Type) -> Result<Value, ValueError> {
    decode_json(json, ty, "")
}

fn decode_json(json: &Json, ty: &Type, path: &str) -> Result<Value, ValueError> {
    if json.is_null() {
        return Ok(Value::Null);
    }
    match ty {
        Type::Bool => json
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| err(path, format!("expected bool, got {json}"))),
        Type::Number => match json {
            Json::Number(n) => Ok(Value::Number(if let Some(i) = n.as_i64() {
                Number::Int(i)
            } else if let Some(u) = n.as_u64() {
                Number::UInt(u)
            } else {
                Number::Float(n.as_f64().unwrap_or(f64::NAN))
            })),
            Json::String(s) if s.parse::<f64>().is_ok() => {
                Ok(Value::Number(Number::Decimal(s.clone())))
            }
            other => Err(err(path, format!("expected number, got {other}"))),
        },
        Type::String => match json {
            Json::String(s) => Ok(Value::String(s.clone())),
            Json::Number(n) => Ok(Value::String(n.to_string())),
            Json::Bool(b) => Ok(Value::String(b.to_string())),
            other => Err(err(path, format!("expected string, got {other}"))),
        },
        Type::List(elem) | Type::Set(elem) => {
            let items = json
                .as_array()
                .ok_or_else(|| err(path, format!("expected array, got {json}")))?;
            let values = items
                .iter()
                .enumerate()
                .map(|(i, item)| decode_json(item, elem, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if matches!(ty, Type::Set(_)) {
                Value::Set(values)
            } else {
                Value::List(values)
            })
        }
        Type::Tuple(elems) => {
            let items = json
                .as_array()
                .filter(|a| a.len() == elems.len())
                .ok_or_else(|| err(path, format!("expected tuple of {} elements", elems.len())))?;
            Ok(Value::List(
                items
                    .iter()
                    .zip(elems)
                    .enumerate()
                    .map(|(i, (item, t))| decode_json(item, t, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ))
        }
        Type::Map(elem) => {
            let entries = json
                .as_object()
                .ok_or_else(|| err(path, format!("expected map, got {json}")))?;
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                out.insert(
                    k.clone(),
                    decode_json(v, elem, &format!("{path}[\"{k}\"]"))?,
                );
            }
            Ok(Value::Map(out))
        }
        Type::Object(attrs) => {
            let entries = json
                .as_object()
                .ok_or_else(|| err(path, format!("expected object, got {json}")))?;
            let mut out = BTreeMap::new();
            for (name, t) in attrs {
                let v = match entries.get(name) {
                    Some(v) => decode_json(v, t, &child(path, name))?,
                    None => Value::Null,
                };
                out.insert(name.clone(), v);
            }
            Ok(Value::Object(out))
        }
        Type::Dynamic => {
            let obj = json.as_object().ok_or_else(|| {
                err(
                    path,
                    "dynamic value must be {\"value\": ..., \"type\": ...}",
                )
            })?;
            let inner_ty = Type::from_json(obj.get("type").unwrap_or(&Json::Null))
                .map_err(|e| err(path, e.cause))?;
            let inner = decode_json(obj.get("value").unwrap_or(&Json::Null), &inner_ty, path)?;
            Ok(Value::Dynamic(inner_ty, Box::new(inner)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: &Value, t: &Type) -> Value {
        let bytes = to_msgpack(v, t).expect("encode");
        from_msgpack(&bytes, t).expect("decode")
    }

    fn link_type() -> Type {
        Type::object([
            ("id", Type::String),
            ("days", Type::Number),
            ("enabled", Type::Bool),
            (
                "targets",
                Type::set(Type::object([
                    ("vault_url", Type::String),
                    ("secret_name", Type::String),
                ])),
            ),
            ("tags", Type::map(Type::String)),
            ("ids", Type::list(Type::String)),
            ("pair", Type::Tuple(vec![Type::String, Type::Number])),
            ("any", Type::Dynamic),
        ])
    }

    #[test]
    fn every_kind_roundtrips() {
        let t = link_type();
        let mut obj = BTreeMap::new();
        obj.insert("id".into(), Value::string("x"));
        obj.insert("days".into(), Value::int(30));
        obj.insert("enabled".into(), Value::Bool(true));
        let target = |v: &str, s: &str| {
            Value::Object(
                [
                    ("vault_url".to_string(), Value::string(v)),
                    ("secret_name".to_string(), Value::string(s)),
                ]
                .into(),
            )
        };
        obj.insert(
            "targets".into(),
            Value::Set(vec![target("https://a/", "s1"), target("https://b/", "s2")]),
        );
        obj.insert(
            "tags".into(),
            Value::Map([("k".to_string(), Value::string("v"))].into()),
        );
        obj.insert(
            "ids".into(),
            Value::List(vec![Value::string("a"), Value::Unknown]),
        );
        obj.insert(
            "pair".into(),
            Value::List(vec![Value::string("a"), Value::Number(Number::Float(1.5))]),
        );
        obj.insert(
            "any".into(),
            Value::Dynamic(
                Type::list(Type::String),
                Box::new(Value::List(vec![Value::string("d")])),
            ),
        );
        let v = Value::Object(obj);
        assert_eq!(roundtrip(&v, &t), v);
    }

    #[test]
    fn missing_attributes_decode_as_null_and_encode_in_full() {
        let t = link_type();
        let v = Value::Object([("id".to_string(), Value::string("x"))].into());
        let bytes = to_msgpack(&v, &t).expect("encode");
        let mp = rmpv::decode::read_value(&mut bytes.as_slice()).expect("msgpack");
        // every attribute is present on the wire (Terraform requires all of them)
        assert_eq!(mp.as_map().expect("map").len(), 8);
        let back = from_msgpack(&bytes, &t).expect("decode");
        assert_eq!(back.attr("days"), &Value::Null);
        assert_eq!(back.attr("id").as_str(), Some("x"));
    }

    #[test]
    fn unknown_is_extension_zero_and_any_extension_decodes_as_unknown() {
        let bytes = to_msgpack(&Value::Unknown, &Type::String).expect("encode");
        assert_eq!(bytes, vec![0xd4, 0x00, 0x00]);
        // refined unknown (extension 12) from newer Terraform
        let mut refined = Vec::new();
        rmpv::encode::write_value(&mut refined, &Mp::Ext(12, vec![0x81, 0x02, 0xa1, b'x']))
            .expect("write");
        assert_eq!(
            from_msgpack(&refined, &Type::String).expect("decode"),
            Value::Unknown
        );
    }

    #[test]
    fn numbers_arrive_as_int_float_or_string() {
        for mp in [Mp::from(7), Mp::F64(7.0), Mp::String("7".into())] {
            let mut b = Vec::new();
            rmpv::encode::write_value(&mut b, &mp).expect("write");
            let v = from_msgpack(&b, &Type::Number).expect("decode");
            assert_eq!(v.as_i64(), Some(7), "{mp}");
        }
        let mut b = Vec::new();
        rmpv::encode::write_value(&mut b, &Mp::String("seven".into())).expect("write");
        assert!(from_msgpack(&b, &Type::Number).is_err());
    }

    #[test]
    fn dynamic_is_type_json_and_value() {
        let v = Value::Dynamic(Type::String, Box::new(Value::string("hi")));
        let bytes = to_msgpack(&v, &Type::Dynamic).expect("encode");
        let mp = rmpv::decode::read_value(&mut bytes.as_slice()).expect("msgpack");
        let arr = mp.as_array().expect("array");
        assert_eq!(arr[0], Mp::Binary(b"\"string\"".to_vec()));
        assert_eq!(arr[1], Mp::String("hi".into()));
        assert_eq!(from_msgpack(&bytes, &Type::Dynamic).expect("decode"), v);
    }

    #[test]
    fn wrong_shapes_name_the_path() {
        let t = link_type();
        let mut b = Vec::new();
        let mp = Mp::Map(vec![(Mp::String("days".into()), Mp::String("x".into()))]);
        rmpv::encode::write_value(&mut b, &mp).expect("write");
        let e = from_msgpack(&b, &t).expect_err("bad number");
        assert_eq!(e.path, "days");
        let e = to_msgpack(&Value::Bool(true), &Type::String).expect_err("bad type");
        assert!(e.to_string().contains("does not fit"), "{e}");
    }

    #[test]
    fn type_json_roundtrips() {
        let t = link_type();
        assert_eq!(Type::from_json(&t.to_json()).expect("parse"), t);
        let with_optional: Json = serde_json::json!(["object", {"a": "string"}, ["a"]]);
        assert_eq!(
            Type::from_json(&with_optional).expect("parse"),
            Type::object([("a", Type::String)])
        );
    }

    #[test]
    fn json_raw_state_decodes() {
        let t = link_type();
        let json = serde_json::json!({"id": "x", "days": 3, "targets": [{"vault_url": "u", "secret_name": "s"}],
            "any": {"value": ["a"], "type": ["list", "string"]}});
        let v = from_json(&json, &t).expect("decode");
        assert_eq!(v.attr("days").as_i64(), Some(3));
        assert_eq!(v.attr("enabled"), &Value::Null);
        assert_eq!(v.attr("targets").as_elements().map(|e| e.len()), Some(1));
        assert!(matches!(v.attr("any"), Value::Dynamic(Type::List(_), _)));
    }

    #[test]
    fn sets_compare_without_order() {
        let a = Value::Set(vec![Value::string("a"), Value::string("b")]);
        let b = Value::Set(vec![Value::string("b"), Value::string("a")]);
        assert!(a.same_as(&b));
        assert!(Value::Number(Number::Float(2.0)).same_as(&Value::int(2)));
    }
}
