//! Matching: (credential, Key Vault secret) pairs with signals and confidence.

use crate::engine::Engine;
use crate::error::Result;
use crate::model::{Application, MatchReport};
use crate::policy::Policy;
use url::Url;

pub(crate) async fn match_secrets(
    _e: &Engine,
    _apps: &[Application],
    _vaults: &[Url],
    _policy: &Policy,
) -> Result<MatchReport> {
    todo!()
}
