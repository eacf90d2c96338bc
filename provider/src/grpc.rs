//! The protocol layer: the tonic `Provider` service. Each RPC converts what Terraform sent
//! ([`convert`]), lets [`server`] decide, and converts the answer back. It never calls Azure.
//!
//! - [`convert`]: msgpack/JSON ↔ [`Value`](crate::value::Value), [`Schema`] and diagnostics → protobuf (pure);
//! - [`server`]: RPC semantics in the provider's own types (what survives an error).

pub mod convert;
pub mod server;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::framework::{ApplyRequest, DataSource, Diagnostics, PlanRequest, Resource};
use crate::proto::tfplugin6 as tf;
use crate::provider::{self, ProviderState};
use crate::schema::Schema;
use convert::{capabilities, decode, diags_to_proto, encode, path_to_proto, schema_to_proto};
use server::Validator;

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
        let mut diags = Diagnostics::default();
        let config = decode(
            req.config.as_ref(),
            &schema.ty(),
            "configuration",
            &mut diags,
        );
        server::validate(Validator::Resource(&**resource), &config, &mut diags).await;
        Ok(Response::new(tf::validate_resource_config::Response {
            diagnostics: diags_to_proto(&diags),
        }))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<tf::validate_data_resource_config::Request>,
    ) -> Result<Response<tf::validate_data_resource_config::Response>, Status> {
        let req = request.into_inner();
        let (ds, schema) = self.data_source(&req.type_name)?;
        let mut diags = Diagnostics::default();
        let config = decode(
            req.config.as_ref(),
            &schema.ty(),
            "configuration",
            &mut diags,
        );
        server::validate(Validator::DataSource(&**ds), &config, &mut diags).await;
        Ok(Response::new(tf::validate_data_resource_config::Response {
            diagnostics: diags_to_proto(&diags),
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
        let decoded = convert::decode_raw_state(json, &ty);
        let value = server::upgrade(&req.type_name, decoded, &mut diags);
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
        let new_state = server::read(&**resource, &self.state, current, &mut diags).await;
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
        let plan_req = PlanRequest {
            prior: &prior,
            proposed: &proposed,
            config: &config,
        };
        let Some(plan) = server::plan(&**resource, &self.state, plan_req, &mut diags).await else {
            return Ok(Response::new(tf::plan_resource_change::Response {
                diagnostics: diags_to_proto(&diags),
                ..Default::default()
            }));
        };
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
        let decoded = !diags.has_errors();
        let apply_req = ApplyRequest {
            prior: &prior,
            planned: &planned,
            config: &config,
        };
        let new_state = server::apply(&**resource, &self.state, apply_req, &mut diags).await;
        let new_state = encode(&new_state, &ty, "new state", &mut diags);
        Ok(Response::new(tf::apply_resource_change::Response {
            new_state,
            private: if decoded {
                req.planned_private
            } else {
                Vec::new()
            },
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
        let imported = server::import(&**resource, &self.state, &req.id, &mut diags).await;
        let imported_resources = imported
            .map(|state| tf::import_resource_state::ImportedResource {
                type_name: req.type_name.clone(),
                state: encode(&state, &ty, "imported state", &mut diags),
                private: Vec::new(),
                identity: None,
            })
            .into_iter()
            .collect();
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
        let data = server::read_data(&**ds, &self.state, &config, &mut diags).await;
        let state = data.and_then(|d| encode(&d, &ty, "data", &mut diags));
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
    use crate::value::Value;
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
