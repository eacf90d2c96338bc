//! `terraform-provider-rotor`: the Terraform provider for rotor (plugin protocol 6 over gRPC).
//!
//! Layers, outside in:
//! - [`plugin`]: go-plugin's handshake, AutoMTLS, health, controller, stdio and broker;
//! - [`grpc`]: the tonic service; each RPC is [`grpc::convert`] (tfplugin6 ↔ the provider's own
//!   types, pure) around [`grpc::server`] (what survives an error: RPC semantics);
//! - [`lifecycle`]: noticing that Terraform went away (stop at a safe point, exit);
//! - [`resources`]: one module per resource and data source, plus the registry; each works on
//!   its typed model ([`model`]: `Attr<T>` fields, attribute names in one place per resource),
//!   and engine errors land on attributes from their subject ([`resources::diag`]);
//! - [`notify`]: the `notify` setting and the message sent after a link's apply;
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
pub mod model;
pub mod notify;
pub mod plugin;
pub mod proto;
pub mod provider;
pub mod resources;
pub mod schema;
pub mod value;
