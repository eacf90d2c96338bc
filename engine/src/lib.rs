//! rotor's engine: Microsoft Graph and Key Vault access, identity, discovery, matching, policy,
//! exclusions, the resumable rotation protocol, cleanup and audit records.
//!
//! The engine knows nothing of Terraform or GitHub. Front ends build an [`Engine`] from
//! [`EngineOptions`] (endpoints + a credential from [`AuthConfig::build`]) and call its methods.
//! Secret values live only in [`SecretValue`], which redacts itself and zeroizes on drop.
//!
//! ```no_run
//! # async fn demo() -> rotor_engine::Result<()> {
//! use rotor_engine::*;
//! let endpoints = Endpoints::from_env()?;
//! let credential = AuthConfig::from_env().build(&endpoints)?;
//! let engine = Engine::new(EngineOptions::new(endpoints, credential))?;
//! let config = Config::load(std::path::Path::new("rotor.toml"))?;
//! for (link, status) in engine.due_links(&config).await? {
//!     println!("{link}: {}", status.due_reason.unwrap_or_default());
//!     let record = engine.rotate(&link, &config.policy, &RotateOptions::default(), &NoProgress).await;
//!     println!("{}", record.status);
//! }
//! # Ok(()) }
//! ```
//!
//! ## Where things are
//! | module | what |
//! |---|---|
//! | [`secret`], [`error`] | the redacting value type; errors as `<verb>ing <object>: <cause>` + hints |
//! | [`endpoints`], [`http`], [`identity`] | base URLs, the one HTTP client (system roots + `ca_file`), the credential chain |
//! | [`graph`], [`keyvault`], [`arm`] | Microsoft Graph applications, Key Vault secrets/certificates (official SDK), vault listing |
//! | [`discovery`], [`matching`], [`hints`] | applications and vaults; signals and confidence; the hint cache |
//! | [`policy`], [`config`], [`pacing`] | policy, exclusions, `rotor.toml`; request budgets below Azure's service limits |
//! | [`rotation`], [`links`], [`cleanup`] | the protocol (preflight, make room, create, verify, update, audit; design note `docs/protocol.md`), finding links, grace-period cleanup |
//! | [`certificates`] | certificate rotation: new Key Vault version from its policy, addKey (proof signed through Key Vault) or PATCH of the whole collection, sign-in with the new version, cleanup (`docs/protocol.md`, "Certificates") |
//! | [`history`], [`progress`] | the JSON Lines audit trail; live progress events |
//! | [`notify`] | run notifications: Slack, Teams (Adaptive Card) and generic JSON webhooks, with retries |
//!
//! ## Resumability
//! Azure is the database: rotor's credentials are named `<name> rotor:<rotation-id>`, and every
//! Key Vault version it writes is tagged `rotor-key-id`. From those alone any run can tell the
//! current credential (the newest one a target holds), a rotation in progress (a newer rotor
//! credential no target holds, younger than `policy.pending_window`), an orphan (the same, older:
//! removed), and diverging targets (finished by copying the newest credential from a target that
//! holds it). Two runs that create credentials at once resolve by creation order: the later one
//! removes its own credential and steps back.

pub mod arm;
pub mod certificates;
pub mod cleanup;
pub mod config;
pub mod discovery;
pub mod endpoints;
mod engine;
mod engine_impl;
pub mod error;
pub mod graph;
pub mod hints;
pub mod history;
pub mod http;
pub mod identity;
mod identity_cert;
mod identity_impl;
pub mod keyvault;
pub mod links;
pub mod matching;
pub mod model;
pub mod notify;
pub mod pacing;
pub mod policy;
pub mod progress;
pub mod rotation;
pub mod secret;

pub use config::Config;
pub use endpoints::Endpoints;
pub use engine::{Clock, Engine, EngineOptions};
pub use error::{Error, ErrorKind, Failure, Result, Subject};
pub use hints::HintCache;
pub use history::{History, HistoryFilter};
pub use identity::{AuthConfig, AuthMethod, AuthSettings};
pub use model::{
    Application, AuditRecord, CertificateLink, CertificateLinkStatus, CertificateTarget,
    CleanupOutcome, Confidence, CredentialKind, KeptCredential, KeyCredential, Link, LinkStatus,
    Match, MatchReport, PasswordCredential, RotateOptions, RotationStatus, Signal, SkipReason,
    Target, TargetRecord, TargetStatus, Unmatched, VaultFailure,
};
pub use policy::{Exclusion, ExclusionKind, Policy};
pub use progress::{CollectProgress, NoProgress, Progress, ProgressEvent, Step, StepState};
pub use secret::SecretValue;
