//! Who rotor is: a credential chain over `azure_identity` (client secret, workload identity file,
//! GitHub OIDC, Azure CLI, managed identity).

use crate::endpoints::Endpoints;
use crate::error::Result;
use crate::secret::SecretValue;
use azure_core::credentials::TokenCredential;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Authentication settings (provider block / environment). Which methods are tried, in order:
/// client secret (`client_id` + `client_secret`), workload identity file (`federated_token_file`
/// or `oidc_token_file_path`), an explicit OIDC token (`oidc_token`), GitHub OIDC
/// (`use_oidc` + `oidc_request_url` + `oidc_request_token`), Azure CLI (`use_cli`), managed
/// identity (`use_msi`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Tenant (directory) id. Required by every method but Azure CLI and managed identity.
    pub tenant_id: Option<String>,
    /// Client (application) id of rotor's identity.
    pub client_id: Option<String>,
    /// Client secret.
    pub client_secret: Option<SecretValue>,
    /// Use GitHub Actions OIDC (`ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN`).
    pub use_oidc: bool,
    /// GitHub's OIDC request URL.
    pub oidc_request_url: Option<String>,
    /// GitHub's OIDC request bearer token.
    pub oidc_request_token: Option<SecretValue>,
    /// A ready OIDC token (client assertion).
    pub oidc_token: Option<SecretValue>,
    /// A file holding the OIDC token (re-read at every token request).
    pub oidc_token_file_path: Option<PathBuf>,
    /// Try the Azure CLI (`az account get-access-token`).
    pub use_cli: bool,
    /// Try managed identity.
    pub use_msi: bool,
    /// Workload identity token file (`AZURE_FEDERATED_TOKEN_FILE`).
    pub federated_token_file: Option<PathBuf>,
}

/// The other name the contract uses for [`AuthConfig`].
pub type AuthSettings = AuthConfig;

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("use_oidc", &self.use_oidc)
            .field("oidc_request_url", &self.oidc_request_url)
            .field("oidc_request_token", &self.oidc_request_token)
            .field("oidc_token", &self.oidc_token)
            .field("oidc_token_file_path", &self.oidc_token_file_path)
            .field("use_cli", &self.use_cli)
            .field("use_msi", &self.use_msi)
            .field("federated_token_file", &self.federated_token_file)
            .finish()
    }
}

/// One way of authenticating, as tried by the chain (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// Client id + client secret.
    ClientSecret,
    /// Client assertion read from a file at each request.
    TokenFile(PathBuf),
    /// A fixed client assertion.
    OidcToken,
    /// GitHub Actions OIDC: a fresh token from the request URL at each request.
    GithubOidc,
    /// Azure CLI.
    AzureCli,
    /// Managed identity.
    ManagedIdentity,
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMethod::ClientSecret => f.write_str("client secret (AZURE_CLIENT_SECRET)"),
            AuthMethod::TokenFile(p) => {
                write!(f, "workload identity token file `{}`", p.display())
            }
            AuthMethod::OidcToken => f.write_str("OIDC token"),
            AuthMethod::GithubOidc => f.write_str(
                "GitHub OIDC (ACTIONS_ID_TOKEN_REQUEST_URL/ACTIONS_ID_TOKEN_REQUEST_TOKEN)",
            ),
            AuthMethod::AzureCli => f.write_str("Azure CLI (az login)"),
            AuthMethod::ManagedIdentity => f.write_str("managed identity"),
        }
    }
}

fn truthy(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl AuthConfig {
    /// From the process environment: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`,
    /// `AZURE_FEDERATED_TOKEN_FILE`, `ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN` (OIDC is used when
    /// both are set and a client id is known, or `AZURE_USE_OIDC=true`), `AZURE_USE_CLI` and
    /// `AZURE_USE_MSI` (default true).
    pub fn from_env() -> AuthConfig {
        AuthConfig::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`AuthConfig::from_env`], reading through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> AuthConfig {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let oidc_request_url = get("ACTIONS_ID_TOKEN_REQUEST_URL");
        let oidc_request_token = get("ACTIONS_ID_TOKEN_REQUEST_TOKEN").map(SecretValue::from);
        let use_oidc = get("AZURE_USE_OIDC")
            .and_then(|v| truthy(&v))
            .unwrap_or(oidc_request_url.is_some() && oidc_request_token.is_some());
        AuthConfig {
            tenant_id: get("AZURE_TENANT_ID"),
            client_id: get("AZURE_CLIENT_ID"),
            client_secret: get("AZURE_CLIENT_SECRET").map(SecretValue::from),
            use_oidc,
            oidc_request_url,
            oidc_request_token,
            oidc_token: get("AZURE_OIDC_TOKEN").map(SecretValue::from),
            oidc_token_file_path: get("AZURE_OIDC_TOKEN_FILE_PATH").map(PathBuf::from),
            use_cli: get("AZURE_USE_CLI")
                .and_then(|v| truthy(&v))
                .unwrap_or(true),
            use_msi: get("AZURE_USE_MSI")
                .and_then(|v| truthy(&v))
                .unwrap_or(true),
            federated_token_file: get("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from),
        }
    }

    /// From a map (e.g. the emulator's `env`).
    pub fn from_map(map: &BTreeMap<String, String>) -> AuthConfig {
        AuthConfig::from_lookup(|k| map.get(k).cloned())
    }

    /// The methods the chain will try, in order.
    pub fn methods(&self) -> Vec<AuthMethod> {
        let mut m = Vec::new();
        let has_ids = self.tenant_id.is_some() && self.client_id.is_some();
        if has_ids && self.client_secret.is_some() {
            m.push(AuthMethod::ClientSecret);
        }
        if has_ids {
            if let Some(p) = self
                .federated_token_file
                .as_ref()
                .or(self.oidc_token_file_path.as_ref())
            {
                m.push(AuthMethod::TokenFile(p.clone()));
            }
            if self.oidc_token.is_some() {
                m.push(AuthMethod::OidcToken);
            }
            if self.use_oidc && self.oidc_request_url.is_some() && self.oidc_request_token.is_some()
            {
                m.push(AuthMethod::GithubOidc);
            }
        }
        if self.use_cli {
            m.push(AuthMethod::AzureCli);
        }
        if self.use_msi {
            m.push(AuthMethod::ManagedIdentity);
        }
        m
    }

    /// Builds the credential chain. Every HTTP request (token endpoint, OIDC endpoint) goes through
    /// the engine's HTTP client (system roots + `endpoints.ca_file`) against
    /// `endpoints.authority_host`. The chain tries [`AuthConfig::methods`] in order at the first
    /// token request and sticks with the first that works; if none works the error lists what was
    /// tried and why each failed. `Err` (Config) here when no method is configured at all.
    pub fn build(&self, endpoints: &Endpoints) -> Result<Arc<dyn TokenCredential>> {
        crate::identity_impl::build(self, endpoints)
    }
}
