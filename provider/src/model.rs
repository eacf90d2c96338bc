//! Typed resource models: each resource and data source decodes the [`Value`] Terraform sent
//! into its own struct (`SecretLinkModel`, `PolicyModel`, ...) and encodes its answer from one, so
//! an attribute's name appears in its schema and its model's conversion only.
//!
//! Terraform values can be null or unknown at any level (configuration at plan time), so a model
//! field is an [`Attr<T>`], like plugin-framework's `types.String`; conversion keeps every value
//! exactly (a planned value must echo the configuration).

use std::collections::BTreeMap;
use std::fmt;

use crate::framework::Diagnostics;
use crate::value::{Number, Value};

/// One attribute's value: unknown (decided at apply), null, or known.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Attr<T> {
    /// Known only after apply.
    Unknown,
    /// Not set.
    #[default]
    Null,
    /// Known.
    Known(T),
}

impl<T> Attr<T> {
    /// The value, when known.
    pub fn known(&self) -> Option<&T> {
        match self {
            Attr::Known(v) => Some(v),
            _ => None,
        }
    }
    /// Whether it is unknown.
    pub fn is_unknown(&self) -> bool {
        matches!(self, Attr::Unknown)
    }
    /// Whether it is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Attr::Null)
    }
    /// Known when `Some`, null when `None`.
    pub fn from_option(v: Option<T>) -> Self {
        v.map_or(Attr::Null, Attr::Known)
    }
    /// Takes `planned` unless it is unknown: apply keeps every value the plan promised.
    pub fn keep_known(&mut self, planned: &Attr<T>)
    where
        T: Clone,
    {
        if !planned.is_unknown() {
            *self = planned.clone();
        }
    }
}

impl Attr<String> {
    /// The string, when known.
    pub fn as_deref(&self) -> Option<&str> {
        self.known().map(String::as_str)
    }
}

/// Why a value does not fit its model: a bug (Terraform checks values against the schema first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError {
    /// The attribute (`targets`, `policy.grace_period_days`).
    pub attribute: String,
    /// What was found instead.
    pub cause: String,
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attribute `{}`: {}", self.attribute, self.cause)
    }
}

impl ModelError {
    fn expected(what: &str, got: &Value) -> Self {
        ModelError {
            attribute: String::new(),
            cause: format!("expected {what}, got {got:?}"),
        }
    }
    fn within(mut self, name: &str) -> Self {
        self.attribute = if self.attribute.is_empty() {
            name.to_string()
        } else if self.attribute.starts_with('[') {
            format!("{name}{}", self.attribute)
        } else {
            format!("{name}.{}", self.attribute)
        };
        self
    }
}

/// Reports a model that does not decode (a provider bug) and returns `None`.
pub fn decoded<T>(what: &str, r: Result<T, ModelError>, diags: &mut Diagnostics) -> Option<T> {
    match r {
        Ok(m) => Some(m),
        Err(e) => {
            diags.error(
                format!("reading the {what}: {e}"),
                "hint: this is a bug in terraform-provider-rotor; please report it",
                None,
            );
            None
        }
    }
}

/// A Terraform value ↔ a Rust value.
pub trait Field: Sized {
    /// From a known, non-null value.
    fn from_value(v: &Value) -> Result<Self, ModelError>;
    /// To a value.
    fn to_value(&self) -> Value;
}

impl<T: Field> Field for Attr<T> {
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        Ok(match v {
            Value::Unknown => Attr::Unknown,
            Value::Null => Attr::Null,
            v => Attr::Known(T::from_value(v)?),
        })
    }
    fn to_value(&self) -> Value {
        match self {
            Attr::Unknown => Value::Unknown,
            Attr::Null => Value::Null,
            Attr::Known(v) => v.to_value(),
        }
    }
}

impl Field for String {
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| ModelError::expected("a string", v))
    }
    fn to_value(&self) -> Value {
        Value::String(self.clone())
    }
}

impl Field for bool {
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        v.as_bool().ok_or_else(|| ModelError::expected("a bool", v))
    }
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl Field for i64 {
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        v.as_i64()
            .ok_or_else(|| ModelError::expected("a whole number", v))
    }
    fn to_value(&self) -> Value {
        Value::int(*self)
    }
}

/// A number exactly as Terraform sent it (validation decides whether it is a whole number).
impl Field for Number {
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        match v {
            Value::Number(n) => Ok(n.clone()),
            other => Err(ModelError::expected("a number", other)),
        }
    }
    fn to_value(&self) -> Value {
        Value::Number(self.clone())
    }
}

/// A list (or the elements of a set).
impl<T: Field> Field for Vec<T> {
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        v.as_elements()
            .ok_or_else(|| ModelError::expected("a list", v))?
            .iter()
            .enumerate()
            .map(|(i, e)| T::from_value(e).map_err(|err| err.within(&format!("[{i}]"))))
            .collect()
    }
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(Field::to_value).collect())
    }
}

/// A set: its elements in the order Terraform sent them.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Set<T>(pub Vec<T>);

impl<T: Field> Field for Set<T> {
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        Vec::from_value(v).map(Set)
    }
    fn to_value(&self) -> Value {
        Value::Set(self.0.iter().map(Field::to_value).collect())
    }
}

impl<T: Field> Field for BTreeMap<String, T> {
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        v.as_map()
            .ok_or_else(|| ModelError::expected("a map", v))?
            .iter()
            .map(|(k, e)| {
                T::from_value(e)
                    .map(|t| (k.clone(), t))
                    .map_err(|err| err.within(&format!("[\"{k}\"]")))
            })
            .collect()
    }
    fn to_value(&self) -> Value {
        Value::Map(
            self.iter()
                .map(|(k, e)| (k.clone(), e.to_value()))
                .collect(),
        )
    }
}

/// Reads the attributes of an object value; an absent attribute is null.
pub struct Reader<'a>(&'a BTreeMap<String, Value>);

impl<'a> Reader<'a> {
    /// The attributes of `v` (none when `v` is null).
    pub fn new(v: &'a Value) -> Result<Self, ModelError> {
        static EMPTY: BTreeMap<String, Value> = BTreeMap::new();
        match v {
            Value::Null => Ok(Reader(&EMPTY)),
            v => v
                .as_object()
                .map(Reader)
                .ok_or_else(|| ModelError::expected("an object", v)),
        }
    }
    /// Attribute `name` as a `T`.
    pub fn get<T: Field>(&self, name: &str) -> Result<T, ModelError> {
        static NULL: Value = Value::Null;
        T::from_value(self.0.get(name).unwrap_or(&NULL)).map_err(|e| e.within(name))
    }
}

/// Builds an object value attribute by attribute.
#[derive(Default)]
pub struct Writer(BTreeMap<String, Value>);

impl Writer {
    /// Sets attribute `name`.
    pub fn put(mut self, name: &str, v: &impl Field) -> Self {
        self.0.insert(name.to_string(), v.to_value());
        self
    }
    /// The object.
    pub fn build(self) -> Value {
        Value::Object(self.0)
    }
}

/// Declares a model of a nested Terraform object (an element of a computed list, a target):
/// the struct, its Terraform [`Type`](crate::value::Type) and its [`Field`] conversion, from one
/// table in which each attribute is named once — by its field.
///
/// ```ignore
/// object_model! {
///     /// A client secret or certificate.
///     pub struct CredentialModel {
///         /// Its key id.
///         key_id: String = Type::String,
///     }
/// }
/// ```
macro_rules! object_model {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $fty:ty = $tfty:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq)]
        $vis struct $name {
            $( $(#[$fmeta])* pub $field: $fty, )*
        }

        impl $name {
            /// Its Terraform object type.
            pub fn ty() -> $crate::value::Type {
                $crate::value::Type::object([ $( (stringify!($field), $tfty) ),* ])
            }
        }

        impl $crate::model::Field for $name {
            fn from_value(
                v: &$crate::value::Value,
            ) -> Result<Self, $crate::model::ModelError> {
                let r = $crate::model::Reader::new(v)?;
                Ok($name { $( $field: r.get(stringify!($field))?, )* })
            }
            fn to_value(&self) -> $crate::value::Value {
                $crate::model::Writer::default()
                    $( .put(stringify!($field), &self.$field) )*
                    .build()
            }
        }
    };
}
pub(crate) use object_model;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_with_nulls_and_unknowns() {
        let v = Value::Object(BTreeMap::from([
            ("s".to_string(), Value::string("x")),
            ("u".to_string(), Value::Unknown),
            (
                "l".to_string(),
                Value::Set(vec![Value::string("a"), Value::Unknown]),
            ),
            (
                "m".to_string(),
                Value::Map(BTreeMap::from([("k".to_string(), Value::string("v"))])),
            ),
        ]));
        let r = Reader::new(&v).expect("object");
        let s: Attr<String> = r.get("s").expect("s");
        let u: Attr<bool> = r.get("u").expect("u");
        let l: Attr<Set<Attr<String>>> = r.get("l").expect("l");
        let m: Attr<BTreeMap<String, String>> = r.get("m").expect("m");
        let absent: Attr<i64> = r.get("absent").expect("absent");
        assert_eq!(s.as_deref(), Some("x"));
        assert!(u.is_unknown() && absent.is_null());
        let back = Writer::default()
            .put("s", &s)
            .put("u", &u)
            .put("l", &l)
            .put("m", &m)
            .build();
        assert_eq!(back, v);
    }

    object_model! {
        /// A test object.
        struct Pair {
            /// A string.
            left: Attr<String> = crate::value::Type::String,
            /// A number.
            right: i64 = crate::value::Type::Number,
        }
    }

    #[test]
    fn object_models_name_each_attribute_once() {
        let p = Pair {
            left: Attr::Null,
            right: 3,
        };
        let v = p.to_value();
        assert_eq!(v.attr("right").as_i64(), Some(3));
        assert!(v.attr("left").is_null());
        assert_eq!(Pair::from_value(&v).expect("decodes"), p);
        assert_eq!(
            Pair::ty(),
            crate::value::Type::object([
                ("left", crate::value::Type::String),
                ("right", crate::value::Type::Number)
            ])
        );
    }

    #[test]
    fn a_mistyped_value_names_its_attribute() {
        let v = Value::Object(BTreeMap::from([(
            "l".to_string(),
            Value::List(vec![Value::string("a"), Value::Bool(true)]),
        )]));
        let e = Reader::new(&v)
            .expect("object")
            .get::<Attr<Vec<String>>>("l")
            .expect_err("bool in a string list");
        assert_eq!(e.attribute, "l[1]");
    }
}
