//! Acceptance tests: the real `terraform` binary (Terraform 1.0.3, installed by
//! `scripts/install-test-tools`) drives `terraform-provider-rotor` against the in-process
//! `rotor-emulator`, and each test checks the emulator's state, not only Terraform's.
//!
//! Everything lives in `tests/acceptance/` (one test binary): `support.rs` is the harness,
//! one module per resource follows the basic / complete / update / import pattern.
