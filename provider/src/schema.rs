//! Typed schema definitions: what each resource, data source and the provider block accept.
//! The protocol layer turns them into `tfplugin6.Schema`; the docs generator reads them too.

use crate::value::Type;

/// How an attribute is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Must be set in configuration.
    Required,
    /// May be set; null when not.
    Optional,
    /// May be set; the provider fills it when not.
    OptionalComputed,
    /// Set only by the provider.
    Computed,
}

/// One attribute of a schema.
#[derive(Clone, Debug)]
pub struct Attribute {
    /// Attribute name (`snake_case`).
    pub name: &'static str,
    /// Its Terraform type.
    pub ty: Type,
    /// Markdown description shown by `terraform providers schema -json` and in the docs.
    pub description: &'static str,
    /// Required / optional / computed.
    pub mode: Mode,
    /// Whether Terraform should hide the value in its output.
    pub sensitive: bool,
    /// Whether changing it replaces the resource (planned as `requires_replace`).
    pub force_new: bool,
    /// For docs: the default filled in when the attribute is not set.
    pub default: Option<&'static str>,
    /// Deprecated: Terraform warns when configuration sets it.
    pub deprecated: bool,
}

impl Attribute {
    fn new(name: &'static str, ty: Type, mode: Mode, description: &'static str) -> Self {
        Attribute {
            name,
            ty,
            description,
            mode,
            sensitive: false,
            force_new: false,
            default: None,
            deprecated: false,
        }
    }
    /// A required attribute.
    pub fn required(name: &'static str, ty: Type, description: &'static str) -> Self {
        Self::new(name, ty, Mode::Required, description)
    }
    /// An optional attribute (null when unset).
    pub fn optional(name: &'static str, ty: Type, description: &'static str) -> Self {
        Self::new(name, ty, Mode::Optional, description)
    }
    /// An optional attribute the provider fills in when unset.
    pub fn optional_computed(name: &'static str, ty: Type, description: &'static str) -> Self {
        Self::new(name, ty, Mode::OptionalComputed, description)
    }
    /// A computed (read-only) attribute.
    pub fn computed(name: &'static str, ty: Type, description: &'static str) -> Self {
        Self::new(name, ty, Mode::Computed, description)
    }
    /// Marks the attribute sensitive.
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    /// Marks the attribute as forcing replacement when changed.
    pub fn force_new(mut self) -> Self {
        self.force_new = true;
        self
    }
    /// Marks the attribute deprecated (Terraform warns when it is set).
    pub fn deprecated(mut self) -> Self {
        self.deprecated = true;
        self
    }
    /// Records the default (for docs).
    pub fn default(mut self, default: &'static str) -> Self {
        self.default = Some(default);
        self
    }
}

/// The schema of a resource, data source or the provider block.
#[derive(Clone, Debug)]
pub struct Schema {
    /// Schema version (state upgrades key on it).
    pub version: i64,
    /// Markdown description of the whole thing.
    pub description: &'static str,
    /// Its attributes, in display order.
    pub attributes: Vec<Attribute>,
}

impl Schema {
    /// The object type of a value of this schema.
    pub fn ty(&self) -> Type {
        Type::Object(
            self.attributes
                .iter()
                .map(|a| (a.name.to_string(), a.ty.clone()))
                .collect(),
        )
    }

    /// The attribute called `name`.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_is_an_object_of_the_attributes() {
        let s = Schema {
            version: 0,
            description: "d",
            attributes: vec![
                Attribute::required("a", Type::String, "A."),
                Attribute::computed("b", Type::Number, "B."),
            ],
        };
        assert_eq!(
            s.ty(),
            Type::object([("a", Type::String), ("b", Type::Number)])
        );
        assert!(s.attribute("b").is_some());
    }
}
