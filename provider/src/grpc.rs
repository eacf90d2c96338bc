//! The protocol layer: tfplugin6 gRPC ↔ the provider's own types. It only translates —
//! msgpack/JSON ↔ [`Value`], [`Schema`] → protobuf, [`Diagnostic`] → protobuf — and dispatches to
//! the registry. It never calls Azure.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::framework::{
    ApplyRequest, AttrPath, DataSource, Diagnostic, Diagnostics, PathStep, PlanRequest, Resource,
    Severity,
};
use crate::proto::tfplugin6 as tf;
use crate::provider::{self, ProviderState};
use crate::schema::{Mode, Schema};
use crate::value::{self, Type, Value};

/// The tfplugin6 `Provider` service.
pub struct GrpcProvider {
    resources: BTreeMap<&'static str, (Arc<dyn Resource>, Schema)>,
    data_sources: BTreeMap<&'static str, (Arc<dyn DataSource>, Schema)>,
    provider_schema: Schema,
    state: Arc<ProviderState>,
}

impl GrpcProvider {
    /// A service over the registry's resources and data sources, sharing `state`.
    pub fn new(state: ProviderState) -> Self {
        let resources = crate::resources::resources()
            .into_iter()
            .map(|r| (r.type_name(), (r.clone(), r.schema())))
            .collect();
        let data_sources = crate::resources::data_sources()
            .into_iter()
            .map(|d| (d.type_name(), (d.clone(), d.schema())))
            .collect();
        GrpcProvider {
            resources,
            data_sources,
            provider_schema: provider::schema(),
            state: Arc::new(state),
        }
    }

    fn resource(&self, type_name: &str) -> Result<&(Arc<dyn Resource>, Schema), Status> {
        self.resources
            .get(type_name)
            .ok_or_else(|| Status::not_found(format!("rotor has no resource type `{type_name}`")))
    }

    fn data_source(&self, type_name: &str) -> Result<&(Arc<dyn DataSource>, Schema), Status> {
        self.data_sources
            .get(type_name)
            .ok_or_else(|| Status::not_found(format!("rotor has no data source `{type_name}`")))
    }
}

/// The type whose static validation a `Validate*Config` call runs.
enum Validator<'a> {
    Resource(&'a dyn Resource),
    DataSource(&'a dyn DataSource),
}

/// `ValidateResourceConfig` / `ValidateDataResourceConfig`: decodes the configuration against
/// `schema` and, only when it decodes, runs the type's own `validate`.
async fn validate_config(
    validator: Validator<'_>,
    schema: &Schema,
    config: Option<&tf::DynamicValue>,
) -> Vec<tf::Diagnostic> {
    let mut diags = Diagnostics::default();
    let config = decode(config, &schema.ty(), "configuration", &mut diags);
    if !diags.has_errors() {
        match validator {
            Validator::Resource(r) => r.validate(&config, &mut diags).await,
            Validator::DataSource(d) => d.validate(&config, &mut diags).await,
        }
    }
    diags_to_proto(&diags)
}

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

fn diags_to_proto(d: &Diagnostics) -> Vec<tf::Diagnostic> {
    d.0.iter().map(diag_to_proto).collect()
}

/// Decodes a `DynamicValue` (msgpack, else JSON) of type `ty`; an absent value is null.
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

/// Encodes a value of type `ty` as msgpack.
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

fn capabilities() -> tf::ServerCapabilities {
    tf::ServerCapabilities {
        plan_destroy: true,
        get_provider_schema_optional: false,
        move_resource_state: false,
        generate_resource_config: false,
    }
}

#[tonic::async_trait]
impl tf::provider_server::Provider for GrpcProvider {
    async fn get_metadata(
        &self,
        _request: Request<tf::get_metadata::Request>,
    ) -> Result<Response<tf::get_metadata::Response>, Status> {
        Ok(Response::new(tf::get_metadata::Response {
            server_capabilities: Some(capabilities()),
            resources: self
                .resources
                .keys()
                .map(|k| tf::get_metadata::ResourceMetadata {
                    type_name: k.to_string(),
                })
                .collect(),
            data_sources: self
                .data_sources
                .keys()
                .map(|k| tf::get_metadata::DataSourceMetadata {
                    type_name: k.to_string(),
                })
                .collect(),
            ..Default::default()
        }))
    }

    async fn get_provider_schema(
        &self,
        _request: Request<tf::get_provider_schema::Request>,
    ) -> Result<Response<tf::get_provider_schema::Response>, Status> {
        let resource_schemas: HashMap<String, tf::Schema> = self
            .resources
            .iter()
            .map(|(k, (_, s))| (k.to_string(), schema_to_proto(s)))
            .collect();
        let data_source_schemas: HashMap<String, tf::Schema> = self
            .data_sources
            .iter()
            .map(|(k, (_, s))| (k.to_string(), schema_to_proto(s)))
            .collect();
        Ok(Response::new(tf::get_provider_schema::Response {
            provider: Some(schema_to_proto(&self.provider_schema)),
            resource_schemas,
            data_source_schemas,
            server_capabilities: Some(capabilities()),
            ..Default::default()
        }))
    }

    async fn get_resource_identity_schemas(
        &self,
        _request: Request<tf::get_resource_identity_schemas::Request>,
    ) -> Result<Response<tf::get_resource_identity_schemas::Response>, Status> {
        Ok(Response::new(
            tf::get_resource_identity_schemas::Response::default(),
        ))
    }

    async fn get_functions(
        &self,
        _request: Request<tf::get_functions::Request>,
    ) -> Result<Response<tf::get_functions::Response>, Status> {
        Ok(Response::new(tf::get_functions::Response::default()))
    }

    async fn validate_provider_config(
        &self,
        request: Request<tf::validate_provider_config::Request>,
    ) -> Result<Response<tf::validate_provider_config::Response>, Status> {
        let req = request.into_inner();
        let mut diags = Diagnostics::default();
        let config = decode(
            req.config.as_ref(),
            &self.provider_schema.ty(),
            "provider configuration",
            &mut diags,
        );
        // Only what is written in the block is judged here; environment values at configure time.
        let no_env: provider::Lookup = Arc::new(|_: &str| None);
        let _ = provider::ProviderConfig::resolve(&config, &no_env, &mut diags);
        Ok(Response::new(tf::validate_provider_config::Response {
            diagnostics: diags_to_proto(&diags),
        }))
    }

    async fn validate_resource_config(
        &self,
        request: Request<tf::validate_resource_config::Request>,
    ) -> Result<Response<tf::validate_resource_config::Response>, Status> {
        let req = request.into_inner();
        let (resource, schema) = self.resource(&req.type_name)?;
        let diagnostics = validate_config(
            Validator::Resource(&**resource),
            schema,
            req.config.as_ref(),
        )
        .await;
        Ok(Response::new(tf::validate_resource_config::Response {
            diagnostics,
        }))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<tf::validate_data_resource_config::Request>,
    ) -> Result<Response<tf::validate_data_resource_config::Response>, Status> {
        let req = request.into_inner();
        let (ds, schema) = self.data_source(&req.type_name)?;
        let diagnostics =
            validate_config(Validator::DataSource(&**ds), schema, req.config.as_ref()).await;
        Ok(Response::new(tf::validate_data_resource_config::Response {
            diagnostics,
        }))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<tf::upgrade_resource_state::Request>,
    ) -> Result<Response<tf::upgrade_resource_state::Response>, Status> {
        let req = request.into_inner();
        let (_, schema) = self.resource(&req.type_name)?;
        let ty = schema.ty();
        let mut diags = Diagnostics::default();
        let json = req
            .raw_state
            .as_ref()
            .map(|r| r.json.as_slice())
            .unwrap_or_default();
        let value = if json.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice::<serde_json::Value>(json)
                .map_err(|e| e.to_string())
                .and_then(|j| value::from_json(&j, &ty).map_err(|e| e.to_string()))
            {
                Ok(v) => v,
                Err(e) => {
                    diags.error(
                        format!("upgrading the stored state of {}: {e}", req.type_name),
                        "hint: the state was written by an incompatible provider version; remove it with \
                         `terraform state rm` and import the resource again",
                        None,
                    );
                    Value::Null
                }
            }
        };
        let upgraded_state = encode(&value, &ty, "upgraded state", &mut diags);
        Ok(Response::new(tf::upgrade_resource_state::Response {
            upgraded_state,
            diagnostics: diags_to_proto(&diags),
        }))
    }

    async fn configure_provider(
        &self,
        request: Request<tf::configure_provider::Request>,
    ) -> Result<Response<tf::configure_provider::Response>, Status> {
        let req = request.into_inner();
        let mut diags = Diagnostics::default();
        let config = decode(
            req.config.as_ref(),
            &self.provider_schema.ty(),
            "provider configuration",
            &mut diags,
        );
        tracing::debug!(terraform_version = %req.terraform_version, "configuring the provider");
        self.state.configure(&config, &mut diags).await;
        Ok(Response::new(tf::configure_provider::Response {
            diagnostics: diags_to_proto(&diags),
        }))
    }

    async fn read_resource(
        &self,
        request: Request<tf::read_resource::Request>,
    ) -> Result<Response<tf::read_resource::Response>, Status> {
        let req = request.into_inner();
        let (resource, schema) = self.resource(&req.type_name)?;
        let ty = schema.ty();
        let mut diags = Diagnostics::default();
        let current = decode(req.current_state.as_ref(), &ty, "current state", &mut diags);
        let new_state = if diags.has_errors() || current.is_null() {
            current.clone()
        } else {
            resource
                .read(&self.state, &current, &mut diags)
                .await
                .unwrap_or(Value::Null)
        };
        // On error, keep the state as it was rather than losing track of the resource.
        let new_state = if diags.has_errors() && new_state.is_null() {
            current
        } else {
            new_state
        };
        let new_state = encode(&new_state, &ty, "refreshed state", &mut diags);
        Ok(Response::new(tf::read_resource::Response {
            new_state,
            diagnostics: diags_to_proto(&diags),
            private: req.private,
            deferred: None,
            new_identity: None,
        }))
    }

    async fn plan_resource_change(
        &self,
        request: Request<tf::plan_resource_change::Request>,
    ) -> Result<Response<tf::plan_resource_change::Response>, Status> {
        let req = request.into_inner();
        let (resource, schema) = self.resource(&req.type_name)?;
        let ty = schema.ty();
        let mut diags = Diagnostics::default();
        let prior = decode(req.prior_state.as_ref(), &ty, "prior state", &mut diags);
        let proposed = decode(
            req.proposed_new_state.as_ref(),
            &ty,
            "proposed state",
            &mut diags,
        );
        let config = decode(req.config.as_ref(), &ty, "configuration", &mut diags);
        if diags.has_errors() {
            return Ok(Response::new(tf::plan_resource_change::Response {
                diagnostics: diags_to_proto(&diags),
                ..Default::default()
            }));
        }
        let plan = resource
            .plan(
                &self.state,
                PlanRequest {
                    prior: &prior,
                    proposed: &proposed,
                    config: &config,
                },
                &mut diags,
            )
            .await;
        let planned_state = encode(&plan.planned, &ty, "planned state", &mut diags);
        Ok(Response::new(tf::plan_resource_change::Response {
            planned_state,
            requires_replace: plan.requires_replace.iter().map(path_to_proto).collect(),
            planned_private: req.prior_private,
            diagnostics: diags_to_proto(&diags),
            legacy_type_system: false,
            deferred: None,
            planned_identity: None,
        }))
    }

    async fn apply_resource_change(
        &self,
        request: Request<tf::apply_resource_change::Request>,
    ) -> Result<Response<tf::apply_resource_change::Response>, Status> {
        // Counted until the response is sent or the future is dropped: when Terraform goes
        // away, the process waits (briefly) for the engine to stop at a safe point.
        let _in_flight = crate::lifecycle::InFlight::begin();
        let req = request.into_inner();
        let (resource, schema) = self.resource(&req.type_name)?;
        let ty = schema.ty();
        let mut diags = Diagnostics::default();
        let prior = decode(req.prior_state.as_ref(), &ty, "prior state", &mut diags);
        let planned = decode(req.planned_state.as_ref(), &ty, "planned state", &mut diags);
        let config = decode(req.config.as_ref(), &ty, "configuration", &mut diags);
        if diags.has_errors() {
            let new_state = encode(&prior, &ty, "state", &mut diags);
            return Ok(Response::new(tf::apply_resource_change::Response {
                new_state,
                diagnostics: diags_to_proto(&diags),
                ..Default::default()
            }));
        }
        let new_state = resource
            .apply(
                &self.state,
                ApplyRequest {
                    prior: &prior,
                    planned: &planned,
                    config: &config,
                },
                &mut diags,
            )
            .await;
        let new_state = encode(&new_state, &ty, "new state", &mut diags);
        Ok(Response::new(tf::apply_resource_change::Response {
            new_state,
            private: req.planned_private,
            diagnostics: diags_to_proto(&diags),
            legacy_type_system: false,
            new_identity: None,
        }))
    }

    async fn import_resource_state(
        &self,
        request: Request<tf::import_resource_state::Request>,
    ) -> Result<Response<tf::import_resource_state::Response>, Status> {
        let req = request.into_inner();
        let (resource, schema) = self.resource(&req.type_name)?;
        let ty = schema.ty();
        let mut diags = Diagnostics::default();
        let imported = resource.import(&self.state, &req.id, &mut diags).await;
        let mut imported_resources = Vec::new();
        if let Some(state) = imported
            && !diags.has_errors()
        {
            imported_resources.push(tf::import_resource_state::ImportedResource {
                type_name: req.type_name.clone(),
                state: encode(&state, &ty, "imported state", &mut diags),
                private: Vec::new(),
                identity: None,
            });
        }
        Ok(Response::new(tf::import_resource_state::Response {
            imported_resources,
            diagnostics: diags_to_proto(&diags),
            deferred: None,
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<tf::read_data_source::Request>,
    ) -> Result<Response<tf::read_data_source::Response>, Status> {
        let req = request.into_inner();
        let (ds, schema) = self.data_source(&req.type_name)?;
        let ty = schema.ty();
        let mut diags = Diagnostics::default();
        let config = decode(req.config.as_ref(), &ty, "configuration", &mut diags);
        let state = if diags.has_errors() {
            Value::Null
        } else {
            ds.read(&self.state, &config, &mut diags).await
        };
        let state = if diags.has_errors() {
            None
        } else {
            encode(&state, &ty, "data", &mut diags)
        };
        Ok(Response::new(tf::read_data_source::Response {
            state,
            diagnostics: diags_to_proto(&diags),
            deferred: None,
        }))
    }

    async fn stop_provider(
        &self,
        _request: Request<tf::stop_provider::Request>,
    ) -> Result<Response<tf::stop_provider::Response>, Status> {
        // Rotations are resumable from Azure's state alone, so an interrupted one is finished by the
        // next run; nothing to cancel cooperatively here.
        tracing::info!("Terraform asked the provider to stop");
        Ok(Response::new(tf::stop_provider::Response {
            error: String::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tf::provider_server::Provider as _;

    fn provider() -> GrpcProvider {
        GrpcProvider::new(ProviderState::with_lookup(Arc::new(|_: &str| None)))
    }

    #[tokio::test]
    async fn every_attribute_of_every_schema_has_a_description() {
        let p = provider();
        let resp = p
            .get_provider_schema(Request::new(tf::get_provider_schema::Request {}))
            .await
            .expect("schema")
            .into_inner();
        let mut schemas: Vec<(String, tf::Schema)> =
            vec![("provider".into(), resp.provider.expect("provider"))];
        schemas.extend(resp.resource_schemas.into_iter());
        schemas.extend(resp.data_source_schemas.into_iter());
        assert!(schemas.len() >= 2);
        for (name, s) in schemas {
            let block = s.block.expect("block");
            assert!(
                !block.description.trim().is_empty(),
                "{name} has no description"
            );
            for a in block.attributes {
                assert!(
                    !a.description.trim().is_empty(),
                    "{name}.{} has no description",
                    a.name
                );
                assert!(
                    a.required || a.optional || a.computed,
                    "{name}.{} has no mode",
                    a.name
                );
            }
        }
    }

    #[tokio::test]
    async fn policy_plans_known_values_through_msgpack() {
        let p = provider();
        let (_, schema) = p.resource("rotor_policy").expect("policy");
        let ty = schema.ty();
        let mut d = Diagnostics::default();
        let config = Value::Object([("name".to_string(), Value::string("std"))].into());
        let dv = encode(&config, &ty, "config", &mut d);
        let resp = p
            .plan_resource_change(Request::new(tf::plan_resource_change::Request {
                type_name: "rotor_policy".into(),
                prior_state: encode(&Value::Null, &ty, "prior", &mut d),
                proposed_new_state: dv.clone(),
                config: dv,
                ..Default::default()
            }))
            .await
            .expect("plan")
            .into_inner();
        assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
        let planned = decode(resp.planned_state.as_ref(), &ty, "planned", &mut d);
        assert!(!planned.contains_unknown());
        assert_eq!(planned.attr("new_secret_validity_days").as_i64(), Some(365));
    }

    #[tokio::test]
    async fn validation_errors_carry_the_attribute_path() {
        let p = provider();
        let (_, schema) = p.resource("rotor_policy").expect("policy");
        let mut d = Diagnostics::default();
        let config = Value::Object(
            [
                ("name".to_string(), Value::string("std")),
                ("grace_period_days".to_string(), Value::int(-3)),
            ]
            .into(),
        );
        let resp = p
            .validate_resource_config(Request::new(tf::validate_resource_config::Request {
                type_name: "rotor_policy".into(),
                config: encode(&config, &schema.ty(), "config", &mut d),
                client_capabilities: None,
            }))
            .await
            .expect("validate")
            .into_inner();
        assert_eq!(resp.diagnostics.len(), 1);
        let path = resp.diagnostics[0].attribute.as_ref().expect("path");
        assert_eq!(
            path.steps[0].selector,
            Some(tf::attribute_path::step::Selector::AttributeName(
                "grace_period_days".into()
            ))
        );
    }
}
