//! Integration tests: the emulator in-process, driven over HTTPS by reqwest and the official SDK.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod arm;
mod binary;
mod common;
mod faults;
mod fidelity;
mod fixture;
mod graph;
mod keys;
mod keyvault;
mod sdk;
mod token;
