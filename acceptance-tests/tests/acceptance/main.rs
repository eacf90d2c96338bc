//! Acceptance tests: real Terraform driving terraform-provider-rotor against rotor-emulator.
//! See `support.rs` for the harness and how Terraform and the provider binary are located.

mod auth;
mod bench;
mod certificate_link;
mod complete;
mod data_sources;
mod distribution;
mod examples;
mod import;
mod notify;
mod plan_truth;
mod policy;
mod protocol;
mod replace;
mod secret_link;
mod settings;
mod support;
