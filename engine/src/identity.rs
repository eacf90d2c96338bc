//! Who rotor is: a credential chain over `azure_identity` (client secret, client certificate,
//! workload identity file, GitHub OIDC, Azure CLI, managed identity).

use crate::endpoints::Endpoints;
use crate::error::Result;
use crate::secret::SecretValue;
use azure_core::credentials::TokenCredential;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Authentication settings (provider block / environment).
///
/// **A configured method is the only one tried.** Configured means: a client secret
/// (`client_secret`), a client certificate (`client_certificate_path`), a workload identity / OIDC token file (`federated_token_file` or
/// `oidc_token_file_path`), a ready OIDC token (`oidc_token`), GitHub OIDC chosen explicitly
/// (`use_oidc` with a source, e.g. `AZURE_USE_OIDC=true`), or an explicit Azure CLI / managed
/// identity choice (`use_cli` / `use_msi` `true` with a source, e.g. `AZURE_USE_CLI=true`). When
/// several are configured they are tried in that order, and nothing else is. Only when nothing is
/// configured does the chain apply: GitHub OIDC detected from the runner's variables, then Azure
/// CLI (unless `use_cli` is false), then managed identity (unless `use_msi` is false).
/// [`AuthConfig::sources`] says where each setting came from, so failures name the variable
/// (`client secret from ARM_CLIENT_SECRET`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Tenant (directory) id. Required by every method but Azure CLI and managed identity.
    pub tenant_id: Option<String>,
    /// Client (application) id of rotor's identity.
    pub client_id: Option<String>,
    /// Client secret.
    pub client_secret: Option<SecretValue>,
    /// A PEM (certificate + RSA key) or PKCS#12 file whose key signs client assertions
    /// (`AZURE_CLIENT_CERTIFICATE_PATH`).
    pub client_certificate_path: Option<PathBuf>,
    /// The certificate itself instead of a file: base64 of a PKCS#12 file or PEM text (the
    /// provider's `client_certificate` / `ARM_CLIENT_CERTIFICATE`, e.g. a Key Vault certificate's
    /// secret value).
    pub client_certificate: Option<SecretValue>,
    /// Password of a protected PKCS#12 file (`AZURE_CLIENT_CERTIFICATE_PASSWORD`).
    pub client_certificate_password: Option<SecretValue>,
    /// Send the certificate chain (`x5c`) with each assertion, for subject name / issuer
    /// authentication (`AZURE_CLIENT_SEND_CERTIFICATE_CHAIN`).
    pub send_certificate_chain: bool,
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
    /// Where each setting came from, by field name (`"client_secret"` → `"ARM_CLIENT_SECRET"` or
    /// ``"provider setting `client_secret`"``), for messages. A `use_cli`, `use_msi` or
    /// `use_oidc` with an entry here is an explicit choice (see the type's docs); without one it
    /// only enables (or, when false, disables) that step of the chain.
    pub sources: BTreeMap<String, String>,
}

/// The other name the contract uses for [`AuthConfig`].
pub type AuthSettings = AuthConfig;

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_certificate_path", &self.client_certificate_path)
            .field("client_certificate", &self.client_certificate)
            .field(
                "client_certificate_password",
                &self.client_certificate_password,
            )
            .field("send_certificate_chain", &self.send_certificate_chain)
            .field("use_oidc", &self.use_oidc)
            .field("oidc_request_url", &self.oidc_request_url)
            .field("oidc_request_token", &self.oidc_request_token)
            .field("oidc_token", &self.oidc_token)
            .field("oidc_token_file_path", &self.oidc_token_file_path)
            .field("use_cli", &self.use_cli)
            .field("use_msi", &self.use_msi)
            .field("federated_token_file", &self.federated_token_file)
            .field("sources", &self.sources)
            .finish()
    }
}

/// One way of authenticating, as tried by the chain (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// Client id + client secret.
    ClientSecret,
    /// Client id + a certificate whose key signs each client assertion.
    ClientCertificate(PathBuf),
    /// The same, from the certificate's content (`client_certificate`).
    ClientCertificateContent,
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
            AuthMethod::ClientSecret => f.write_str("client secret"),
            AuthMethod::ClientCertificate(p) => write!(f, "client certificate `{}`", p.display()),
            AuthMethod::ClientCertificateContent => f.write_str("client certificate"),
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
    /// `AZURE_CLIENT_CERTIFICATE_PATH` (+ `_PASSWORD`, `AZURE_CLIENT_SEND_CERTIFICATE_CHAIN`),
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
        let mut sources = BTreeMap::new();
        for (field, var) in [
            ("client_secret", "AZURE_CLIENT_SECRET"),
            ("client_certificate_path", "AZURE_CLIENT_CERTIFICATE_PATH"),
            (
                "client_certificate_password",
                "AZURE_CLIENT_CERTIFICATE_PASSWORD",
            ),
            ("oidc_token", "AZURE_OIDC_TOKEN"),
            ("oidc_token_file_path", "AZURE_OIDC_TOKEN_FILE_PATH"),
            ("federated_token_file", "AZURE_FEDERATED_TOKEN_FILE"),
        ] {
            if get(var).is_some() {
                sources.insert(field.to_owned(), var.to_owned());
            }
        }
        for (field, var) in [
            ("use_oidc", "AZURE_USE_OIDC"),
            ("use_cli", "AZURE_USE_CLI"),
            ("use_msi", "AZURE_USE_MSI"),
        ] {
            if get(var).and_then(|v| truthy(&v)).is_some() {
                sources.insert(field.to_owned(), var.to_owned());
            }
        }
        AuthConfig {
            sources,
            tenant_id: get("AZURE_TENANT_ID"),
            client_id: get("AZURE_CLIENT_ID"),
            client_secret: get("AZURE_CLIENT_SECRET").map(SecretValue::from),
            client_certificate_path: get("AZURE_CLIENT_CERTIFICATE_PATH").map(PathBuf::from),
            client_certificate: None,
            client_certificate_password: get("AZURE_CLIENT_CERTIFICATE_PASSWORD")
                .map(SecretValue::from),
            send_certificate_chain: get("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN")
                .and_then(|v| truthy(&v))
                .unwrap_or(false),
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

    /// The methods that will be tried, in order: the configured ones only, or — when nothing is
    /// configured — the chain (see the type's docs).
    pub fn methods(&self) -> Vec<AuthMethod> {
        let mut m = Vec::new();
        if self.client_secret.is_some() {
            m.push(AuthMethod::ClientSecret);
        }
        if let Some(p) = &self.client_certificate_path {
            m.push(AuthMethod::ClientCertificate(p.clone()));
        }
        if self.client_certificate.is_some() {
            m.push(AuthMethod::ClientCertificateContent);
        }
        if let Some(p) = self.token_file() {
            m.push(AuthMethod::TokenFile(p.clone()));
        }
        if self.oidc_token.is_some() {
            m.push(AuthMethod::OidcToken);
        }
        let github = self.use_oidc
            && self.oidc_request_url.is_some()
            && self.oidc_request_token.is_some()
            && self.tenant_id.is_some()
            && self.client_id.is_some();
        if github && self.explicit("use_oidc") {
            m.push(AuthMethod::GithubOidc);
        }
        if self.use_cli && self.explicit("use_cli") {
            m.push(AuthMethod::AzureCli);
        }
        if self.use_msi && self.explicit("use_msi") {
            m.push(AuthMethod::ManagedIdentity);
        }
        if !m.is_empty() {
            return m;
        }
        // nothing configured: the chain
        if github {
            m.push(AuthMethod::GithubOidc);
        }
        if self.use_cli {
            m.push(AuthMethod::AzureCli);
        }
        if self.use_msi {
            m.push(AuthMethod::ManagedIdentity);
        }
        m
    }

    /// True when the methods come from configuration rather than the chain.
    pub fn is_explicit(&self) -> bool {
        self.client_secret.is_some()
            || self.client_certificate_path.is_some()
            || self.client_certificate.is_some()
            || self.token_file().is_some()
            || self.oidc_token.is_some()
            || ["use_oidc", "use_cli", "use_msi"]
                .iter()
                .any(|k| self.explicit(k) && self.flag(k))
    }

    fn flag(&self, field: &str) -> bool {
        match field {
            "use_oidc" => self.use_oidc,
            "use_cli" => self.use_cli,
            "use_msi" => self.use_msi,
            _ => false,
        }
    }

    fn explicit(&self, field: &str) -> bool {
        self.sources.contains_key(field)
    }

    fn token_file(&self) -> Option<&PathBuf> {
        self.federated_token_file
            .as_ref()
            .or(self.oidc_token_file_path.as_ref())
    }

    /// Where `field` came from (`sources`, else the `AZURE_*` variable it is read from).
    pub fn source(&self, field: &str) -> String {
        if let Some(s) = self.sources.get(field) {
            return s.clone();
        }
        match field {
            "client_secret" => "AZURE_CLIENT_SECRET",
            "client_certificate_path" => "AZURE_CLIENT_CERTIFICATE_PATH",
            "client_certificate" => "ARM_CLIENT_CERTIFICATE",
            "client_certificate_password" => "AZURE_CLIENT_CERTIFICATE_PASSWORD",
            "oidc_token" => "AZURE_OIDC_TOKEN",
            "oidc_token_file_path" => "AZURE_OIDC_TOKEN_FILE_PATH",
            "federated_token_file" => "AZURE_FEDERATED_TOKEN_FILE",
            "use_oidc" => "ACTIONS_ID_TOKEN_REQUEST_URL/ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "use_cli" => "AZURE_USE_CLI",
            "use_msi" => "AZURE_USE_MSI",
            other => other,
        }
        .to_owned()
    }

    /// A method as messages name it, with where it came from: `client secret from
    /// AZURE_CLIENT_SECRET`, ``workload identity token file `/var/run/token` from
    /// AZURE_FEDERATED_TOKEN_FILE``, `Azure CLI (az login)`, `managed identity (chosen by
    /// AZURE_USE_MSI)`.
    pub fn describe(&self, method: &AuthMethod) -> String {
        let chosen = |field: &str| {
            if self.explicit(field) {
                format!(" (chosen by {})", self.source(field))
            } else {
                String::new()
            }
        };
        match method {
            AuthMethod::ClientSecret => {
                format!("client secret from {}", self.source("client_secret"))
            }
            AuthMethod::ClientCertificateContent => format!(
                "client certificate from {}",
                self.source("client_certificate")
            ),
            AuthMethod::ClientCertificate(p) => format!(
                "client certificate `{}` from {}",
                p.display(),
                self.source("client_certificate_path")
            ),
            AuthMethod::TokenFile(p) => {
                let field = if self.federated_token_file.is_some() {
                    "federated_token_file"
                } else {
                    "oidc_token_file_path"
                };
                format!(
                    "workload identity token file `{}` from {}",
                    p.display(),
                    self.source(field)
                )
            }
            AuthMethod::OidcToken => format!("OIDC token from {}", self.source("oidc_token")),
            AuthMethod::GithubOidc => format!("GitHub OIDC{}", chosen("use_oidc")),
            AuthMethod::AzureCli => format!("Azure CLI (az login){}", chosen("use_cli")),
            AuthMethod::ManagedIdentity => format!("managed identity{}", chosen("use_msi")),
        }
    }

    /// Builds the credential. Every HTTP request (token endpoint, OIDC endpoint, managed identity
    /// endpoint) goes through the engine's HTTP client (system roots + `endpoints.ca_file`)
    /// against `endpoints.authority_host`. It tries [`AuthConfig::methods`] in order at the first
    /// token request and sticks with the first that works; if none works the error names each
    /// method tried, where it came from, and why it failed. `Err` (Config) here when no method is
    /// available at all, or a configured method lacks `tenant_id`/`client_id` (the error names
    /// the variable that configured it).
    pub fn build(&self, endpoints: &Endpoints) -> Result<Arc<dyn TokenCredential>> {
        crate::identity_impl::build(self, endpoints)
    }
}
