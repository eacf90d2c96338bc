//! The provider block: its schema, how each setting defaults from the environment (`ARM_*` as in
//! azurerm, then `AZURE_*`), and the per-process state every resource shares — above all one
//! lazily built [`Engine`], so Graph reads are shared across resources and a configuration that
//! only uses `rotor_policy` never authenticates or calls Azure.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use rotor_engine::{AuthConfig, Endpoints, Engine, EngineOptions, SecretValue};
use tokio::sync::OnceCell;

use crate::framework::{AttrPath, Diagnostics};
use crate::schema::{Attribute, Schema};
use crate::value::{Type, Value};

/// Environment lookup (the process environment in production; a map in tests).
pub type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A provider setting: its attribute name and the variables it defaults from, first wins.
pub struct Setting {
    /// Attribute name in the provider block.
    pub name: &'static str,
    /// Environment variables, in order of precedence.
    pub env: &'static [&'static str],
}

/// Every provider setting and its environment defaults (also used by the docs).
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "tenant_id",
        env: &["ARM_TENANT_ID", "AZURE_TENANT_ID"],
    },
    Setting {
        name: "client_id",
        env: &["ARM_CLIENT_ID", "AZURE_CLIENT_ID"],
    },
    Setting {
        name: "client_secret",
        env: &["ARM_CLIENT_SECRET", "AZURE_CLIENT_SECRET"],
    },
    Setting {
        name: "client_certificate_path",
        env: &[
            "ARM_CLIENT_CERTIFICATE_PATH",
            "AZURE_CLIENT_CERTIFICATE_PATH",
        ],
    },
    Setting {
        name: "client_certificate",
        env: &["ARM_CLIENT_CERTIFICATE"],
    },
    Setting {
        name: "client_certificate_password",
        env: &[
            "ARM_CLIENT_CERTIFICATE_PASSWORD",
            "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        ],
    },
    Setting {
        name: "use_oidc",
        env: &["ARM_USE_OIDC", "AZURE_USE_OIDC"],
    },
    Setting {
        name: "oidc_request_url",
        env: &[
            "ARM_OIDC_REQUEST_URL",
            "AZURE_OIDC_REQUEST_URL",
            "ACTIONS_ID_TOKEN_REQUEST_URL",
        ],
    },
    Setting {
        name: "oidc_request_token",
        env: &[
            "ARM_OIDC_REQUEST_TOKEN",
            "AZURE_OIDC_REQUEST_TOKEN",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        ],
    },
    Setting {
        name: "oidc_token",
        env: &["ARM_OIDC_TOKEN", "AZURE_OIDC_TOKEN"],
    },
    Setting {
        name: "oidc_token_file_path",
        env: &[
            "ARM_OIDC_TOKEN_FILE_PATH",
            "AZURE_OIDC_TOKEN_FILE_PATH",
            "AZURE_FEDERATED_TOKEN_FILE",
        ],
    },
    Setting {
        name: "use_cli",
        env: &["ARM_USE_CLI", "AZURE_USE_CLI"],
    },
    Setting {
        name: "use_msi",
        env: &["ARM_USE_MSI", "AZURE_USE_MSI"],
    },
    Setting {
        name: "authority_host",
        env: &["ARM_AUTHORITY_HOST", "AZURE_AUTHORITY_HOST"],
    },
    Setting {
        name: "graph_endpoint",
        env: &[
            "ARM_GRAPH_ENDPOINT",
            "AZURE_GRAPH_ENDPOINT",
            "ROTOR_GRAPH_ENDPOINT",
        ],
    },
    Setting {
        name: "arm_endpoint",
        env: &[
            "ARM_RESOURCE_MANAGER_ENDPOINT",
            "AZURE_RESOURCE_MANAGER_ENDPOINT",
            "ROTOR_ARM_ENDPOINT",
        ],
    },
    Setting {
        name: "subscription_id",
        env: &["ARM_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID"],
    },
    Setting {
        name: "vault_urls",
        env: &["ROTOR_VAULTS"],
    },
    Setting {
        name: "key_vault_verify_challenge",
        env: &[
            "ARM_KEYVAULT_VERIFY_CHALLENGE",
            "AZURE_KEYVAULT_VERIFY_CHALLENGE",
            "ROTOR_KEYVAULT_VERIFY_CHALLENGE",
        ],
    },
];

/// The provider block's schema.
pub fn schema() -> Schema {
    Schema {
        version: 0,
        description: "The rotor provider rotates Microsoft Entra ID application client secrets and keeps every \
            Azure Key Vault secret that holds them up to date. Every setting is optional and defaults from the \
            environment variable azurerm uses (`ARM_*`), then the Azure SDK's (`AZURE_*`). Authentication is \
            lazy: a configuration that only uses `rotor_policy` needs no Azure access at all.",
        attributes: vec![
            Attribute::optional("tenant_id", Type::String, "Tenant (directory) id of rotor's identity. Defaults to `ARM_TENANT_ID`, then `AZURE_TENANT_ID`."),
            Attribute::optional("client_id", Type::String, "Client (application) id of rotor's identity. Defaults to `ARM_CLIENT_ID`, then `AZURE_CLIENT_ID`."),
            Attribute::optional("client_secret", Type::String, "Client secret of rotor's identity; when set, it is the only method tried. Defaults to `ARM_CLIENT_SECRET`, then `AZURE_CLIENT_SECRET`. Prefer the environment variable to writing it in configuration.").sensitive(),
            Attribute::optional("client_certificate_path", Type::String, "Path of a PEM (certificate and RSA private key) or PKCS#12 (`.pfx`) file whose key signs rotor's client assertions; when set, it is tried (after `client_secret` if that is set too) and the automatic chain is not. The file is read once, at configuration; its key never appears in logs or state. Defaults to `ARM_CLIENT_CERTIFICATE_PATH`, then `AZURE_CLIENT_CERTIFICATE_PATH`."),
            Attribute::optional("client_certificate", Type::String, "The client certificate itself instead of a file: base64 of a PKCS#12 (`.pfx`) file, or PEM text with the certificate and its RSA private key — e.g. `filebase64(\"rotor.pfx\")`, or the secret value of a Key Vault certificate read by another provider. Tried after `client_certificate_path`; never stored in state or logged. Defaults to `ARM_CLIENT_CERTIFICATE`.").sensitive(),
            Attribute::optional("client_certificate_password", Type::String, "Password of a protected PKCS#12 `client_certificate_path`. Defaults to `ARM_CLIENT_CERTIFICATE_PASSWORD`, then `AZURE_CLIENT_CERTIFICATE_PASSWORD`.").sensitive(),
            Attribute::optional("use_oidc", Type::Bool, "Authenticate with an OIDC token (GitHub Actions workload identity federation): `true` makes it the only method tried. Defaults to `ARM_USE_OIDC`, then `AZURE_USE_OIDC`."),
            Attribute::optional("oidc_request_url", Type::String, "URL to request a GitHub Actions OIDC token from. Defaults to `ARM_OIDC_REQUEST_URL`, `AZURE_OIDC_REQUEST_URL`, then `ACTIONS_ID_TOKEN_REQUEST_URL`."),
            Attribute::optional("oidc_request_token", Type::String, "Bearer token for `oidc_request_url`. Defaults to `ARM_OIDC_REQUEST_TOKEN`, `AZURE_OIDC_REQUEST_TOKEN`, then `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.").sensitive(),
            Attribute::optional("oidc_token", Type::String, "A ready OIDC token used as client assertion. Defaults to `ARM_OIDC_TOKEN`, then `AZURE_OIDC_TOKEN`.").sensitive(),
            Attribute::optional("oidc_token_file_path", Type::String, "Path of a file holding the OIDC token (read at each token request; workload identity). Defaults to `ARM_OIDC_TOKEN_FILE_PATH`, `AZURE_OIDC_TOKEN_FILE_PATH`, then `AZURE_FEDERATED_TOKEN_FILE`."),
            Attribute::optional("use_cli", Type::Bool, "Authenticate with the Azure CLI (`az login`): `true` makes it the only method tried, `false` leaves it out of the automatic chain (used only when no credential is configured). Defaults to `ARM_USE_CLI`, then `AZURE_USE_CLI`."),
            Attribute::optional("use_msi", Type::Bool, "Authenticate with a managed identity: `true` makes it the only method tried, `false` leaves it out of the automatic chain (used only when no credential is configured). Defaults to `ARM_USE_MSI`, then `AZURE_USE_MSI`."),
            Attribute::optional("authority_host", Type::String, "Microsoft Entra authority, e.g. `https://login.microsoftonline.com` (the default). Defaults to `ARM_AUTHORITY_HOST`, then `AZURE_AUTHORITY_HOST`."),
            Attribute::optional("graph_endpoint", Type::String, "Microsoft Graph base URL, e.g. `https://graph.microsoft.com` (the default). Defaults to `ARM_GRAPH_ENDPOINT`, `AZURE_GRAPH_ENDPOINT`, then `ROTOR_GRAPH_ENDPOINT`."),
            Attribute::optional("arm_endpoint", Type::String, "Azure Resource Manager base URL, e.g. `https://management.azure.com` (the default). Defaults to `ARM_RESOURCE_MANAGER_ENDPOINT`, `AZURE_RESOURCE_MANAGER_ENDPOINT`, then `ROTOR_ARM_ENDPOINT`."),
            Attribute::optional("subscription_id", Type::String, "Subscription whose Key Vaults (listed through Azure Resource Manager) are searched when importing links and in the `rotor_matches` data source. Defaults to `ARM_SUBSCRIPTION_ID`, then `AZURE_SUBSCRIPTION_ID`."),
            Attribute::optional("vault_urls", Type::list(Type::String), "Key Vault URLs searched when importing links and in the `rotor_matches` data source, in addition to the vaults of `subscription_id`. Defaults to `ROTOR_VAULTS` (comma-separated)."),
            Attribute::optional(crate::notify::ATTR, Type::map(Type::String), crate::notify::DESCRIPTION).sensitive(),
            Attribute::optional("key_vault_verify_challenge", Type::Bool, "Whether the Key Vault client checks that the authentication challenge names the vault's own host (true, as in Azure; set false only for emulators). Defaults to `ARM_KEYVAULT_VERIFY_CHALLENGE`, `AZURE_KEYVAULT_VERIFY_CHALLENGE`, then `ROTOR_KEYVAULT_VERIFY_CHALLENGE`."),
        ],
    }
}

/// The resolved provider configuration: config values, else environment defaults.
#[derive(Default)]
pub struct ProviderConfig {
    settings: BTreeMap<&'static str, String>,
    /// `notify` (with its `ROTOR_NOTIFY_*` defaults); its URLs redact themselves.
    notify: rotor_engine::notify::NotifyConfig,
    /// Where each setting came from: ``provider setting `client_secret` `` or the variable.
    sources: BTreeMap<&'static str, String>,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Redacts exactly what the schema marks sensitive, so a new secret setting cannot be
        // forgotten here.
        let schema = schema();
        let redacted: BTreeMap<_, _> = self
            .settings
            .iter()
            .map(|(k, v)| {
                let secret = schema.attribute(k).is_none_or(|a| a.sensitive);
                (*k, if secret { "[redacted]" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("ProviderConfig")
            .field("settings", &redacted)
            .field("notify", &self.notify)
            .finish()
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl ProviderConfig {
    /// Resolves every setting: the block's value when set, else the first environment variable
    /// that is set. Reports malformed values on their attribute.
    pub fn resolve(config: &Value, lookup: &Lookup, diags: &mut Diagnostics) -> ProviderConfig {
        let mut settings = BTreeMap::new();
        let mut sources = BTreeMap::new();
        for s in SETTINGS {
            let v = config.attr(s.name);
            let from_config = match v {
                Value::String(x) => Some(x.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::List(items) => Some(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                _ => None,
            };
            let value = match from_config {
                Some(v) => Some((v, format!("provider setting `{}`", s.name))),
                None => s.env.iter().find_map(|k| {
                    lookup(k)
                        .filter(|x| !x.trim().is_empty())
                        .map(|v| (v, (*k).to_owned()))
                }),
            };
            if let Some((value, source)) = value {
                settings.insert(s.name, value);
                sources.insert(s.name, source);
            }
        }
        let notify = crate::notify::resolve(config, lookup, diags);
        let cfg = ProviderConfig {
            settings,
            sources,
            notify,
        };
        for name in [
            "use_oidc",
            "use_cli",
            "use_msi",
            "key_vault_verify_challenge",
        ] {
            if let Some(v) = cfg.get(name)
                && parse_bool(v).is_none()
            {
                diags.error(
                    format!("reading provider setting `{name}`: `{v}` is not true or false"),
                    "hint: set it to true or false (in the provider block or its environment variable)",
                    Some(AttrPath::attr(name)),
                );
            }
        }
        for name in ["authority_host", "graph_endpoint", "arm_endpoint"] {
            if let Some(v) = cfg.get(name)
                && url::Url::parse(v)
                    .map(|u| u.scheme() != "https" && u.scheme() != "http")
                    .unwrap_or(true)
            {
                diags.error(
                    format!("reading provider setting `{name}`: `{v}` is not an absolute URL"),
                    "hint: use an absolute https:// URL, e.g. https://graph.microsoft.com",
                    Some(AttrPath::attr(name)),
                );
            }
        }
        let vaults_from = if config.attr("vault_urls").is_null() {
            "ROTOR_VAULTS"
        } else {
            "vault_urls"
        };
        for url in cfg.vault_urls() {
            if let Err((cause, fix)) = rotor_engine::endpoints::parse_vault_url(&url) {
                diags.error(
                    format!("reading provider setting `vault_urls` (from {vaults_from}): {cause}"),
                    format!("hint: {fix}"),
                    Some(AttrPath::attr("vault_urls")),
                );
            }
        }
        cfg
    }

    /// Where a setting may come from: ```tenant_id` (or ARM_TENANT_ID / AZURE_TENANT_ID)``.
    fn named(name: &str) -> String {
        match SETTINGS.iter().find(|s| s.name == name) {
            Some(s) => format!("`{name}` (or {})", s.env.join(" / ")),
            None => format!("`{name}`"),
        }
    }

    /// Where a resolved setting came from, for messages.
    fn from(&self, name: &str) -> String {
        self.sources
            .get(name)
            .cloned()
            .unwrap_or_else(|| format!("provider setting `{name}`"))
    }

    /// Checks, without any network, that the configured authentication can work (azurerm's
    /// rules): `use_oidc = true` needs an OIDC token source (else it is an error, never a
    /// fallback to other methods); a client secret or OIDC token needs `tenant_id` and
    /// `client_id`; a token file must exist.
    pub fn check_auth(&self, diags: &mut Diagnostics) {
        let oidc = self.flag("use_oidc") == Some(true);
        let secret = self.get("client_secret").is_some();
        let token = self.get("oidc_token").is_some() || self.get("oidc_token_file_path").is_some();
        let github =
            self.get("oidc_request_url").is_some() && self.get("oidc_request_token").is_some();
        if oidc && !token && !github {
            diags.error(
                format!(
                    "configuring the rotor provider: `use_oidc` is true (from {}) but no OIDC token is available",
                    self.from("use_oidc")
                ),
                format!(
                    "With use_oidc, OIDC is the only method tried.\nhint: in GitHub Actions give the job `permissions: id-token: write` (it sets ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN)\nhint: or set {}, or {} with {}\nhint: or remove `use_oidc` (or ARM_USE_OIDC / AZURE_USE_OIDC) to use another method",
                    Self::named("oidc_token"),
                    Self::named("oidc_request_url"),
                    Self::named("oidc_request_token"),
                ),
                Some(AttrPath::attr("use_oidc")),
            );
        }
        if secret || token || oidc {
            let method = if secret {
                format!("a client secret (from {})", self.from("client_secret"))
            } else if self.get("oidc_token").is_some() {
                format!("an OIDC token (from {})", self.from("oidc_token"))
            } else if self.get("oidc_token_file_path").is_some() {
                format!(
                    "an OIDC token file (from {})",
                    self.from("oidc_token_file_path")
                )
            } else {
                format!("OIDC (use_oidc from {})", self.from("use_oidc"))
            };
            for name in ["tenant_id", "client_id"] {
                if self.get(name).is_none() {
                    diags.error(
                        format!("configuring the rotor provider: {method} needs `{name}`, which is not set"),
                        format!("hint: set {}", Self::named(name)),
                        Some(AttrPath::attr(name)),
                    );
                }
            }
        }
        if let Some(p) = self.get("oidc_token_file_path")
            && !std::path::Path::new(p).is_file()
        {
            diags.error(
                format!(
                    "configuring the rotor provider: the OIDC token file `{p}` (from {}) does not exist",
                    self.from("oidc_token_file_path")
                ),
                format!("hint: point {} at the token file", Self::named("oidc_token_file_path")),
                Some(AttrPath::attr("oidc_token_file_path")),
            );
        }
    }

    /// The configured vault URLs (`vault_urls`, else `ROTOR_VAULTS`).
    pub fn vault_urls(&self) -> Vec<String> {
        self.get("vault_urls")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A setting's resolved value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str)
    }

    fn flag(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(parse_bool)
    }

    /// The engine's endpoints: provider settings over the engine's own environment defaults.
    pub fn endpoints(&self, lookup: &Lookup) -> rotor_engine::Result<Endpoints> {
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for k in [
            "AZURE_AUTHORITY_HOST",
            "ROTOR_GRAPH_ENDPOINT",
            "ROTOR_ARM_ENDPOINT",
            "ROTOR_KEYVAULT_VERIFY_CHALLENGE",
            "SSL_CERT_FILE",
            "ROTOR_LOOPBACK_ONLY",
        ] {
            if let Some(v) = lookup(k) {
                env.insert(k.to_string(), v);
            }
        }
        if let Some(v) = self.get("authority_host") {
            env.insert("AZURE_AUTHORITY_HOST".into(), v.to_string());
        }
        if let Some(v) = self.get("graph_endpoint") {
            env.insert("ROTOR_GRAPH_ENDPOINT".into(), v.to_string());
        }
        if let Some(v) = self.get("arm_endpoint") {
            env.insert("ROTOR_ARM_ENDPOINT".into(), v.to_string());
        }
        if let Some(v) = self.flag("key_vault_verify_challenge") {
            env.insert("ROTOR_KEYVAULT_VERIFY_CHALLENGE".into(), v.to_string());
        }
        Endpoints::from_map(&env)
    }

    /// The engine's authentication settings.
    pub fn auth(&self, lookup: &Lookup) -> AuthConfig {
        let mut auth = AuthConfig::from_lookup(|k| lookup(k));
        let s = |n: &str| self.get(n).map(str::to_string);
        auth.tenant_id = s("tenant_id").or(auth.tenant_id);
        auth.client_id = s("client_id").or(auth.client_id);
        if let Some(v) = self.get("client_secret") {
            auth.client_secret = Some(SecretValue::from(v.to_string()));
        }
        if let Some(v) = self.get("client_certificate_path") {
            auth.client_certificate_path = Some(v.into());
        }
        if let Some(v) = self.get("client_certificate") {
            auth.client_certificate = Some(SecretValue::from(v.to_string()));
        }
        if let Some(v) = self.get("client_certificate_password") {
            auth.client_certificate_password = Some(SecretValue::from(v.to_string()));
        }
        if let Some(v) = self.flag("use_oidc") {
            auth.use_oidc = v;
        }
        auth.oidc_request_url = s("oidc_request_url").or(auth.oidc_request_url);
        if let Some(v) = self.get("oidc_request_token") {
            auth.oidc_request_token = Some(SecretValue::from(v.to_string()));
        }
        if let Some(v) = self.get("oidc_token") {
            auth.oidc_token = Some(SecretValue::from(v.to_string()));
        }
        if let Some(v) = self.get("oidc_token_file_path") {
            auth.oidc_token_file_path = Some(v.into());
        }
        if let Some(v) = self.flag("use_cli") {
            auth.use_cli = v;
        }
        if let Some(v) = self.flag("use_msi") {
            auth.use_msi = v;
        }
        // Where each credential setting came from, so failures name it (`ARM_CLIENT_SECRET`,
        // ``provider setting `client_secret` ``) and explicit choices are only what was set.
        for field in [
            "client_secret",
            "client_certificate_path",
            "client_certificate",
            "client_certificate_password",
            "oidc_token",
            "oidc_token_file_path",
            "use_oidc",
            "use_cli",
            "use_msi",
        ] {
            if let Some(src) = self.sources.get(field) {
                auth.sources.insert(field.to_owned(), src.clone());
            }
        }
        auth
    }
}

/// What one provider process shares between resources: the configuration, one [`Engine`], and
/// the credential lineages the `rotor_secret_link`s planned so far claim.
pub struct ProviderState {
    lookup: Lookup,
    /// The latest `ConfigureProvider`'s configuration and the engine built from it. Replaced at
    /// every `ConfigureProvider`: under `--debug` one process serves many Terraform runs, each
    /// configuring it anew (a failed or changed configuration is never kept for the process).
    configured: RwLock<Arc<Configured>>,
    lineages: Mutex<HashMap<(String, String), BTreeSet<String>>>,
    /// Lineages whose `rotor_secret_link` this process destroyed: a create of one of them
    /// afterwards in the same apply is a replacement (`-replace`, `taint`), which rotates.
    destroyed: Mutex<BTreeSet<(String, String)>>,
}

/// One configuration and its lazily built engine, with what saves Azure requests while many
/// links are refreshed, planned and applied at once by one process.
#[derive(Default)]
struct Configured {
    config: ProviderConfig,
    engine: OnceCell<Result<Engine, EngineFailure>>,
    /// Vaults whose scope scan was warmed (one listing per vault, not one per concurrent link).
    warmed: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
    /// The application batch being gathered (Graph `appId in (…)` for every link that asks
    /// within [`BATCH_WINDOW`]), and the appIds already fetched.
    batch: Mutex<Option<Arc<AppBatch>>>,
    fetched: Mutex<BTreeSet<String>>,
    /// Link statuses (secret and certificate links) read in this process, by the link's cache
    /// key (`<appId>|…`), reused for [`STATUS_TTL`] by later RPCs of the same link (a create's
    /// plan, then its apply) until this process writes to the link's application.
    statuses: Mutex<HashMap<String, (std::time::Instant, CachedStatus)>>,
}

/// How long a batch of application reads gathers appIds before it is sent.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(60);
/// How long a link status read by one RPC serves the next RPCs of this process.
const STATUS_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// A status in the cache (any link type's status).
type CachedStatus = Arc<dyn std::any::Any + Send + Sync>;

struct AppBatch {
    ids: Mutex<Vec<String>>,
    done: tokio::sync::watch::Sender<bool>,
}

/// Why the engine could not be built (kept so every resource reports the same thing).
#[derive(Clone, Debug)]
pub struct EngineFailure {
    /// `<verb>ing <object>: <cause>`.
    pub summary: String,
    /// Hint lines.
    pub detail: String,
}

impl ProviderState {
    /// State reading the process environment.
    pub fn from_env() -> Self {
        Self::with_lookup(Arc::new(|k: &str| std::env::var(k).ok()))
    }

    /// State reading the environment through `lookup`.
    pub fn with_lookup(lookup: Lookup) -> Self {
        ProviderState {
            lookup,
            configured: RwLock::new(Arc::new(Configured::default())),
            lineages: Mutex::new(HashMap::new()),
            destroyed: Mutex::new(BTreeSet::new()),
        }
    }

    /// Claims the lineage (`application_id`, compared case-insensitively, +
    /// `credential_display_name`) for a planned `rotor_secret_link` with `targets` (target keys).
    /// Terraform plans every resource of a configuration through one provider process, so a
    /// second link claiming a lineage with different targets is another resource:
    /// `Err(the first link's targets)`. The same targets again (plan, then apply's plan) are fine.
    pub fn claim_lineage(
        &self,
        application_id: &str,
        credential_display_name: &str,
        targets: BTreeSet<String>,
    ) -> Result<(), BTreeSet<String>> {
        let key = (
            application_id.to_ascii_lowercase(),
            credential_display_name.to_string(),
        );
        let mut lineages = self
            .lineages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match lineages.get(&key) {
            Some(first) if *first != targets => Err(first.clone()),
            Some(_) => Ok(()),
            None => {
                lineages.insert(key, targets);
                Ok(())
            }
        }
    }

    /// Notes that this process destroyed the link of a lineage.
    pub fn note_destroyed(&self, application_id: &str, credential_display_name: &str) {
        self.destroyed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((
                application_id.to_ascii_lowercase(),
                credential_display_name.to_string(),
            ));
    }

    /// Whether this process destroyed the link of this lineage (and forgets it: one
    /// replacement, one rotation).
    pub fn take_destroyed(&self, application_id: &str, credential_display_name: &str) -> bool {
        self.destroyed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(
                application_id.to_ascii_lowercase(),
                credential_display_name.to_string(),
            ))
    }

    /// Before a secret link is inspected: the scope scans of its vaults (and of the engine's
    /// scope) are warmed once per process (single flight).
    pub async fn warm_scope(&self, engine: &Engine, vaults: &[url::Url]) {
        let current = self.current();
        let mut keys: Vec<(String, Vec<url::Url>)> = vec![(String::new(), Vec::new())];
        for v in vaults {
            keys.push((v.as_str().to_ascii_lowercase(), vec![v.clone()]));
        }
        for (key, vaults) in keys {
            let cell = lock(&current.warmed).entry(key).or_default().clone();
            cell.get_or_init(|| engine.warm_scope(&vaults)).await;
        }
    }

    /// Before a link is inspected: its application is read in a batch with the other links'
    /// asking now (Graph `appId in (…)`, 15 per request), unless this process read it already.
    pub async fn batch_application(&self, engine: &Engine, application_id: &str) {
        let current = self.current();
        self.batch_app(&current, engine, application_id).await;
    }

    async fn batch_app(&self, current: &Configured, engine: &Engine, app_id: &str) {
        let id = app_id.to_ascii_lowercase();
        if lock(&current.fetched).contains(&id) {
            return;
        }
        let (batch, leader) = {
            let mut open = lock(&current.batch);
            match open.as_ref() {
                Some(b) => {
                    lock(&b.ids).push(id.clone());
                    (b.clone(), false)
                }
                None => {
                    let b = Arc::new(AppBatch {
                        ids: Mutex::new(vec![id.clone()]),
                        done: tokio::sync::watch::channel(false).0,
                    });
                    *open = Some(b.clone());
                    (b, true)
                }
            }
        };
        if leader {
            tokio::time::sleep(BATCH_WINDOW).await;
            lock(&current.batch).take();
            let ids = lock(&batch.ids).clone();
            if engine.prefetch_applications(&ids).await.is_ok() {
                lock(&current.fetched).extend(ids);
            }
            batch.done.send_replace(true);
        } else {
            let mut rx = batch.done.subscribe();
            // A leader whose RPC was dropped never finishes: read alone after a while.
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(10), rx.wait_for(|d| *d)).await;
        }
    }

    /// A status cached under `key` by an earlier RPC of this process within [`STATUS_TTL`].
    /// Keys start with the link's lower-case appId and `|` (see [`Self::forget_status`]).
    pub fn cached_status<S: Clone + Send + Sync + 'static>(&self, key: &str) -> Option<S> {
        let current = self.current();
        let statuses = lock(&current.statuses);
        statuses
            .get(key)
            .filter(|(at, _)| at.elapsed() < STATUS_TTL)
            .and_then(|(_, s)| s.downcast_ref::<S>().cloned())
    }

    /// Remembers a status just read, under `key`.
    pub fn put_status<S: Clone + Send + Sync + 'static>(&self, key: String, status: &S) {
        lock(&self.current().statuses)
            .insert(key, (std::time::Instant::now(), Arc::new(status.clone())));
    }

    /// Forgets every status of links of this application (this process is about to write).
    pub fn forget_status(&self, application_id: &str) {
        let prefix = format!("{}|", application_id.to_ascii_lowercase());
        lock(&self.current().statuses).retain(|k, _| !k.starts_with(&prefix));
    }

    fn current(&self) -> Arc<Configured> {
        self.configured
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// `ConfigureProvider`: resolves settings and checks, without contacting anything, that
    /// authentication can work: a configuration problem is an error here, on the provider block
    /// (on the attribute when one is to blame), naming the attribute and its `ARM_*`/`AZURE_*`
    /// variables. Each call starts afresh (new engine, no lineage claims): under `--debug` one
    /// process serves many Terraform runs.
    pub async fn configure(&self, config: &Value, diags: &mut Diagnostics) {
        let resolved = ProviderConfig::resolve(config, &self.lookup, diags);
        tracing::debug!(config = ?resolved, "provider configured");
        if !diags.has_errors() {
            resolved.check_auth(diags);
        }
        let explicit = resolved.auth(&self.lookup).is_explicit();
        *self
            .configured
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(Configured {
            config: resolved,
            ..Default::default()
        });
        self.lineages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.destroyed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        // A configured credential: build the engine now (no network: the credential, the HTTP
        // client and the CA file), so its configuration errors land here, on the provider
        // block. Without one (a policy-only configuration) nothing is built until needed.
        if explicit
            && !diags.has_errors()
            && let Err(f) = self.engine().await
        {
            diags.error(f.summary, f.detail, None);
        }
    }

    /// Sends the notification of one apply (provider setting `notify`); a failed webhook is a
    /// warning, never an error.
    pub async fn notify(
        &self,
        what: String,
        outcome: &crate::notify::Outcome,
        diags: &mut Diagnostics,
    ) {
        let current = self.current();
        crate::notify::send(&current.config.notify, what, outcome, diags).await;
    }

    /// The vaults to search for import and matching: `vault_urls` plus the vaults ARM lists in
    /// `subscription_id`. `Err` names the subscription or URL.
    pub async fn vaults(&self, engine: &Engine) -> rotor_engine::Result<Vec<url::Url>> {
        let current = self.current();
        let cfg = &current.config;
        let mut config = rotor_engine::Config {
            vaults: Vec::new(),
            subscriptions: cfg
                .get("subscription_id")
                .map(|s| vec![s.to_string()])
                .unwrap_or_default(),
            policy: rotor_engine::Policy::default(),
            ..Default::default()
        };
        for u in cfg.vault_urls() {
            match rotor_engine::endpoints::parse_vault_url(&u) {
                Ok(url) => config.vaults.push(url),
                Err((cause, fix)) => {
                    return Err(rotor_engine::Error::config(
                        "reading provider setting `vault_urls` (or ROTOR_VAULTS)",
                        cause,
                    )
                    .with_hint(fix));
                }
            }
        }
        if config.vaults.is_empty() && config.subscriptions.is_empty() {
            return Err(rotor_engine::Error::config(
                "finding Key Vaults to search",
                "no vaults are configured",
            )
            .with_hint("set `vault_urls` (or ROTOR_VAULTS) and/or `subscription_id` (or ARM_SUBSCRIPTION_ID) in the provider"));
        }
        engine.resolve_vaults(&config).await
    }

    /// The environment lookup.
    pub fn lookup(&self) -> &Lookup {
        &self.lookup
    }

    /// The engine, built on first use (authentication happens on its first Azure call).
    pub async fn engine(&self) -> Result<Engine, EngineFailure> {
        let current = self.current();
        current
            .engine
            .get_or_init(|| async {
                let cfg = &current.config;
                let endpoints = cfg.endpoints(&self.lookup).map_err(engine_failure)?;
                let credential = cfg
                    .auth(&self.lookup)
                    .build(&endpoints)
                    .map_err(engine_failure)?;
                let mut opts = EngineOptions::new(endpoints, credential);
                opts.actor = "terraform".to_string();
                // Every vault the provider can see (`vault_urls`, else ROTOR_VAULTS): the engine
                // scans them before removing a credential and refuses a link whose lineage a
                // secret outside its targets holds. Malformed entries are reported at configure.
                opts.scope_vaults = cfg
                    .vault_urls()
                    .iter()
                    .filter_map(|u| url::Url::parse(u).ok())
                    .collect();
                if let Some(path) = (self.lookup)("ROTOR_HISTORY_FILE").filter(|p| !p.is_empty()) {
                    opts.history_file = Some(path.into());
                }
                if let Some(path) = (self.lookup)("ROTOR_HINT_CACHE_FILE").filter(|p| !p.is_empty())
                {
                    opts.hint_cache_file = Some(path.into());
                }
                Engine::new(opts).map_err(engine_failure)
            })
            .await
            .clone()
    }
}

fn engine_failure(e: rotor_engine::Error) -> EngineFailure {
    EngineFailure {
        summary: format!("configuring the rotor provider: {e}"),
        detail: hint_lines(&e.hints()),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Renders hints as `hint:` lines. The engine's "lower policy.max_concurrent" is said the
/// Terraform way: links do not receive `max_concurrent`; `-parallelism` bounds the applies.
pub fn hint_lines(hints: &[String]) -> String {
    hints
        .iter()
        .map(|h| {
            format!(
                "hint: {}",
                h.replace(
                    "lower policy.max_concurrent",
                    "lower `terraform apply -parallelism` (default 10)"
                )
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&'static str, &'static str)]) -> Lookup {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Arc::new(move |k: &str| map.get(k).cloned())
    }

    fn block(pairs: &[(&str, Value)]) -> Value {
        let mut obj: BTreeMap<String, Value> = schema()
            .attributes
            .iter()
            .map(|a| (a.name.to_string(), Value::Null))
            .collect();
        for (k, v) in pairs {
            obj.insert(k.to_string(), v.clone());
        }
        Value::Object(obj)
    }

    #[test]
    fn debug_redacts_every_sensitive_setting() {
        let schema = schema();
        let pairs: Vec<(&str, Value)> = schema
            .attributes
            .iter()
            .filter(|a| a.ty == Type::String)
            .map(|a| (a.name, Value::string(format!("value-of-{}", a.name))))
            .collect();
        let mut d = Diagnostics::default();
        let c = ProviderConfig::resolve(&block(&pairs), &lookup(&[]), &mut d);
        let debug = format!("{c:?}");
        let sensitive: Vec<&str> = schema
            .attributes
            .iter()
            .filter(|a| a.sensitive)
            .map(|a| a.name)
            .collect();
        assert_eq!(
            sensitive,
            [
                "client_secret",
                "client_certificate",
                "client_certificate_password",
                "oidc_request_token",
                "oidc_token",
                "notify"
            ]
        );
        for (name, _) in &pairs {
            assert_eq!(c.get(name), Some(format!("value-of-{name}").as_str()));
            let shown = debug.contains(&format!("\"value-of-{name}\""));
            assert_eq!(shown, !sensitive.contains(name), "{name}: {debug}");
        }
        // `notify` is a map, not among the string settings: its URLs redact themselves.
        let sensitive_strings = pairs.iter().filter(|(n, _)| sensitive.contains(n)).count();
        assert_eq!(debug.matches("[redacted]").count(), sensitive_strings);
    }

    #[test]
    fn config_wins_then_arm_then_azure() {
        let l = lookup(&[
            ("ARM_TENANT_ID", "arm"),
            ("AZURE_TENANT_ID", "azure"),
            ("AZURE_CLIENT_ID", "c"),
        ]);
        let mut d = Diagnostics::default();
        let c = ProviderConfig::resolve(&block(&[]), &l, &mut d);
        assert_eq!(c.get("tenant_id"), Some("arm"));
        assert_eq!(c.get("client_id"), Some("c"));
        let c = ProviderConfig::resolve(&block(&[("tenant_id", Value::string("cfg"))]), &l, &mut d);
        assert_eq!(c.get("tenant_id"), Some("cfg"));
        assert!(!d.has_errors());
    }

    #[test]
    fn bad_settings_are_reported_on_their_attribute() {
        let l = lookup(&[("ARM_USE_MSI", "maybe")]);
        let mut d = Diagnostics::default();
        ProviderConfig::resolve(
            &block(&[("graph_endpoint", Value::string("not a url"))]),
            &l,
            &mut d,
        );
        let paths: Vec<String> =
            d.0.iter()
                .filter_map(|x| x.path.as_ref().map(|p| p.to_string()))
                .collect();
        assert_eq!(paths, vec!["use_msi", "graph_endpoint"]);
    }

    #[test]
    fn http_vault_url_from_rotor_vaults_is_refused_naming_it() {
        let l = lookup(&[(
            "ROTOR_VAULTS",
            "https://kv-a.vault.azure.net/,http://kv-prod.vault.azure.net/",
        )]);
        let mut d = Diagnostics::default();
        ProviderConfig::resolve(&block(&[]), &l, &mut d);
        assert_eq!(d.0.len(), 1, "{:?}", d.0);
        let x = &d.0[0];
        assert_eq!(
            x.path.as_ref().map(|p| p.to_string()).as_deref(),
            Some("vault_urls")
        );
        assert!(x.summary.contains("ROTOR_VAULTS"), "{x:?}");
        assert!(
            x.summary.contains("http://kv-prod.vault.azure.net/"),
            "{x:?}"
        );
        assert!(
            x.detail.contains("https://kv-prod.vault.azure.net/"),
            "{x:?}"
        );
    }

    #[test]
    fn auth_names_the_variable_a_secret_came_from_and_tries_only_it() {
        let l = lookup(&[
            ("ARM_TENANT_ID", "t"),
            ("ARM_CLIENT_ID", "c"),
            ("ARM_CLIENT_SECRET", "s3cr3t-value"),
        ]);
        let mut d = Diagnostics::default();
        let c = ProviderConfig::resolve(&block(&[]), &l, &mut d);
        let auth = c.auth(&l);
        assert_eq!(auth.methods(), vec![rotor_engine::AuthMethod::ClientSecret]);
        assert_eq!(
            auth.describe(&rotor_engine::AuthMethod::ClientSecret),
            "client secret from ARM_CLIENT_SECRET"
        );
        let c =
            ProviderConfig::resolve(&block(&[("client_secret", Value::string("x"))]), &l, &mut d);
        assert_eq!(
            c.auth(&l).describe(&rotor_engine::AuthMethod::ClientSecret),
            "client secret from provider setting `client_secret`"
        );
        // an explicit use_msi is the only method; nothing else is tried
        let l = lookup(&[("ARM_USE_MSI", "true")]);
        let c = ProviderConfig::resolve(&block(&[]), &l, &mut d);
        assert_eq!(
            c.auth(&l).methods(),
            vec![rotor_engine::AuthMethod::ManagedIdentity]
        );
        assert!(!d.has_errors());
    }

    #[test]
    fn debug_redacts_secrets() {
        let l = lookup(&[("ARM_CLIENT_SECRET", "s3cr3t-value")]);
        let mut d = Diagnostics::default();
        let c = ProviderConfig::resolve(&block(&[]), &l, &mut d);
        assert!(!format!("{c:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn a_lineage_is_claimed_by_one_target_set() {
        let state = ProviderState::with_lookup(lookup(&[]));
        let set = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>();
        let a = set(&["https://kv-prod/a"]);
        assert_eq!(state.claim_lineage("B0-APP", "Secret 1", a.clone()), Ok(()));
        // the same link planned again (apply's plan) is no conflict
        assert_eq!(state.claim_lineage("b0-app", "Secret 1", a.clone()), Ok(()));
        // another link, other targets: refused, naming the first one's targets
        assert_eq!(
            state.claim_lineage("b0-app", "Secret 1", set(&["https://kv-dev/b"])),
            Err(a)
        );
        // other lineages are independent
        assert_eq!(
            state.claim_lineage("b0-app", "Secret 2", set(&["https://kv-dev/b"])),
            Ok(())
        );
    }

    #[test]
    fn endpoints_follow_settings() {
        let l = lookup(&[
            ("ROTOR_GRAPH_ENDPOINT", "https://127.0.0.1:1"),
            ("ROTOR_KEYVAULT_VERIFY_CHALLENGE", "false"),
        ]);
        let mut d = Diagnostics::default();
        let c = ProviderConfig::resolve(
            &block(&[("arm_endpoint", Value::string("https://127.0.0.1:2"))]),
            &l,
            &mut d,
        );
        let e = c.endpoints(&l).expect("endpoints");
        assert!(!e.loopback_only);
        let guarded = lookup(&[("ROTOR_LOOPBACK_ONLY", "1")]);
        assert!(c.endpoints(&guarded).expect("endpoints").loopback_only);
        assert_eq!(e.graph.as_str(), "https://127.0.0.1:1/");
        assert_eq!(e.arm.as_str(), "https://127.0.0.1:2/");
        assert!(!e.verify_challenge);
    }
}
