//! Azure Resource Manager: the Key Vaults of a subscription.

use crate::endpoints::{Endpoints, normalize_vault_url};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{describe, error_details, send};
use azure_core::credentials::TokenCredential;
use serde::Deserialize;
use std::sync::Arc;
use url::Url;

/// A vault found through ARM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultInfo {
    /// Vault name.
    pub name: String,
    /// Vault URL (`properties.vaultUri`, else `https://{name}.vault.azure.net/`).
    pub url: Url,
    /// Subscription id.
    pub subscription_id: String,
}

/// ARM client.
#[derive(Clone)]
pub struct ArmClient {
    http: reqwest::Client,
    base: Url,
    credential: Arc<dyn TokenCredential>,
    scope: String,
    max_retries: u32,
}

impl std::fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Page {
    value: Vec<Resource>,
    #[serde(rename = "nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct Resource {
    name: String,
    #[serde(default)]
    properties: Option<Props>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Props {
    vault_uri: Option<String>,
}

impl ArmClient {
    /// A client for `endpoints.arm`.
    pub fn new(
        http: reqwest::Client,
        endpoints: &Endpoints,
        credential: Arc<dyn TokenCredential>,
        max_retries: u32,
    ) -> ArmClient {
        ArmClient {
            http,
            base: endpoints.arm.clone(),
            credential,
            scope: endpoints.arm_scope(),
            max_retries,
        }
    }

    /// Every Key Vault in `subscription` (all pages). `Err(Permission)` names the Reader role.
    pub async fn list_vaults(&self, subscription: &str) -> Result<Vec<VaultInfo>> {
        let action = format!("listing Key Vaults in subscription `{subscription}`");
        let token = self
            .credential
            .get_token(&[self.scope.as_str()], None)
            .await
            .map_err(|e| crate::graph::token_error(&action, &e))?;
        let base = self.base.as_str().trim_end_matches('/');
        let mut url = Url::parse(&format!("{base}/subscriptions/{subscription}/resources"))
            .map_err(|e| Error::config(action.clone(), e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("$filter", "resourceType eq 'Microsoft.KeyVault/vaults'")
            .append_pair("api-version", "2021-04-01");
        let mut out = Vec::new();
        let mut next = Some(url);
        while let Some(u) = next.take() {
            let reply = send(
                || self.http.get(u.clone()).bearer_auth(token.token.secret()),
                self.max_retries,
                &action,
            )
            .await?;
            if !reply.status.is_success() {
                let (code, _, msg) = error_details(&reply.body);
                let cause = describe(reply.status, code.as_deref(), msg.as_deref());
                let e = match reply.status.as_u16() {
                    401 | 403 => Error::new(ErrorKind::Permission, action.clone(), cause).with_hint(format!(
                        "grant rotor's identity the `Reader` role on subscription `{subscription}`, or list vaults explicitly with `vaults = [...]` in rotor.toml"
                    )),
                    404 => Error::new(ErrorKind::NotFound, action.clone(), cause)
                        .with_hint("check the subscription id in rotor.toml `subscriptions`"),
                    429 | 503 => Error::new(ErrorKind::Throttled, action.clone(), cause)
                        .with_hint("Azure Resource Manager is throttling; retry later or list vaults explicitly with `vaults = [...]` in rotor.toml"),
                    _ => Error::new(ErrorKind::Other, action.clone(), cause),
                };
                return Err(e.with_status(Some(reply.status.as_u16()), code));
            }
            let page: Page = serde_json::from_slice(&reply.body)
                .map_err(|e| Error::other(action.clone(), format!("unexpected response: {e}")))?;
            for r in page.value {
                let uri = r
                    .properties
                    .and_then(|p| p.vault_uri)
                    .unwrap_or_else(|| format!("https://{}.vault.azure.net/", r.name));
                let url = Url::parse(&uri).map_err(|e| {
                    Error::other(action.clone(), format!("bad vault URI `{uri}`: {e}"))
                })?;
                out.push(VaultInfo {
                    name: r.name,
                    url: normalize_vault_url(&url),
                    subscription_id: subscription.to_owned(),
                });
            }
            if let Some(n) = page.next_link {
                next =
                    Some(Url::parse(&n).map_err(|e| Error::other(action.clone(), e.to_string()))?);
            }
        }
        Ok(out)
    }
}
