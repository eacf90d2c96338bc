//! rotor's engine: Microsoft Graph and Key Vault access, identity, discovery, matching, policy,
//! exclusions, the resumable rotation protocol, cleanup and audit records.
//!
//! The engine knows nothing of Terraform or GitHub. Front ends build an [`Engine`] from
//! [`EngineOptions`] (endpoints + a credential from [`AuthConfig::build`]) and call its methods.
//! Secret values live only in [`SecretValue`], which redacts itself and zeroizes on drop.

pub mod arm;
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
mod identity_impl;
pub mod keyvault;
pub mod matching;
pub mod model;
pub mod policy;
pub mod progress;
pub mod rotation;
pub mod secret;

pub use config::Config;
pub use endpoints::Endpoints;
pub use engine::{Clock, Engine, EngineOptions};
pub use error::{Error, ErrorKind, Failure, Result};
pub use hints::HintCache;
pub use history::{History, HistoryFilter};
pub use identity::{AuthConfig, AuthMethod, AuthSettings};
pub use model::{
    Application, AuditRecord, CleanupOutcome, Confidence, CredentialKind, KeptCredential,
    KeyCredential, Link, LinkStatus, Match, MatchReport, PasswordCredential, RotateOptions,
    RotationStatus, Signal, Target, TargetRecord, TargetStatus, Unmatched,
};
pub use policy::{Exclusion, ExclusionKind, Policy};
pub use progress::{CollectProgress, NoProgress, Progress, ProgressEvent, Step, StepState};
pub use secret::SecretValue;
