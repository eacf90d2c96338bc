//! Generated code for the plugin protocol (see `proto/README.md` for provenance and versions).

#![allow(clippy::all, missing_docs, unreachable_pub)]

/// Terraform plugin protocol 6 (`tfplugin6`).
pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

/// go-plugin's own services: controller (shutdown), stdio and broker.
pub mod plugin {
    tonic::include_proto!("plugin");
}
