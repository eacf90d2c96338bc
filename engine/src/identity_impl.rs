use crate::endpoints::Endpoints;
use crate::error::Result;
use crate::identity::AuthConfig;
use azure_core::credentials::TokenCredential;
use std::sync::Arc;

pub(crate) fn build(_cfg: &AuthConfig, _endpoints: &Endpoints) -> Result<Arc<dyn TokenCredential>> {
    todo!("credential chain")
}
