//! `terraform-provider-rotor`: the Terraform provider for rotor (plugin protocol 6 over gRPC).
//!
//! Layers, outside in:
//! - [`plugin`]: go-plugin's handshake, AutoMTLS, health, controller, stdio and broker;
//! - [`grpc`]: tfplugin6 ↔ the provider's own types (it only translates);
//! - [`lifecycle`]: noticing that Terraform went away (stop at a safe point, exit);
//! - [`resources`]: one module per resource and data source, plus the registry;
//! - [`provider`]: the provider block and the per-process [`provider::ProviderState`] holding one
//!   lazily built `rotor_engine::Engine`.
//!
//! Resource ids (state id and import ids) are defined once in [`ids`].
//!
//! Values travel as msgpack ([`value`]); schemas are typed ([`schema`]); docs are generated from
//! them ([`docs`]).

pub mod docs;
pub mod framework;
pub mod grpc;
pub mod ids;
pub mod lifecycle;
pub mod logging;
pub mod plugin;
pub mod proto;
pub mod provider;
pub mod resources;
pub mod schema;
pub mod value;
