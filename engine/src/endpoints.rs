//! Where Azure lives: authority host, Graph, ARM, and which extra CA to trust.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use url::Url;

/// Base URLs of the services the engine talks to. Every client takes its base URL from here; there
/// are no globals, so tests point everything at the emulator and sovereign clouds work.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoints {
    /// Entra authority, e.g. `https://login.microsoftonline.com` (token URL =
    /// `{authority_host}/{tenant}/oauth2/v2.0/token`).
    pub authority_host: Url,
    /// Microsoft Graph, e.g. `https://graph.microsoft.com` (clients append `/v1.0/...`).
    pub graph: Url,
    /// Azure Resource Manager, e.g. `https://management.azure.com`.
    pub arm: Url,
    /// Whether the Key Vault client checks that the challenge resource matches the vault host.
    /// Azure: true. Emulators on `127.0.0.1`: false (`ROTOR_KEYVAULT_VERIFY_CHALLENGE=false`).
    pub verify_challenge: bool,
    /// Extra PEM bundle trusted by every HTTP client, in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Optional friendly names for vault URLs (`vault_url` → `kv-prod`), used in messages when the
    /// host name does not carry the vault name (emulators). Keys are URLs with a trailing `/`.
    #[serde(default)]
    pub vault_names: BTreeMap<String, String>,
    /// Refuse every connection whose host is not a loopback address (`127.0.0.0/8`, `::1`,
    /// `localhost`), before connecting, with an error naming the host; the Azure CLI (a separate
    /// process rotor cannot guard) is refused too. Set by `ROTOR_LOOPBACK_ONLY=1`; every test
    /// environment sets it so a test can never reach Azure, IMDS or any other address.
    #[serde(default)]
    pub loopback_only: bool,
}

fn parse_url(name: &str, value: &str) -> Result<Url> {
    Url::parse(value.trim()).map_err(|e| {
        Error::config(
            format!("reading endpoint `{name}`"),
            format!("`{value}` is not a URL: {e}"),
        )
        .with_hint(format!("set {name} to an absolute https:// URL"))
    })
}

impl Endpoints {
    /// Azure public cloud, system roots only.
    pub fn azure_public() -> Endpoints {
        Endpoints {
            authority_host: Url::parse("https://login.microsoftonline.com").expect("static URL"),
            graph: Url::parse("https://graph.microsoft.com").expect("static URL"),
            arm: Url::parse("https://management.azure.com").expect("static URL"),
            verify_challenge: true,
            ca_file: None,
            vault_names: BTreeMap::new(),
            loopback_only: false,
        }
    }

    /// Reads `AZURE_AUTHORITY_HOST`, `ROTOR_GRAPH_ENDPOINT`, `ROTOR_ARM_ENDPOINT`,
    /// `ROTOR_KEYVAULT_VERIFY_CHALLENGE`, `SSL_CERT_FILE` (as `ca_file`) and `ROTOR_LOOPBACK_ONLY`
    /// (as `loopback_only`) from the process
    /// environment; unset variables keep the Azure public cloud values. `Err` names the bad variable.
    pub fn from_env() -> Result<Endpoints> {
        Endpoints::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`Endpoints::from_env`], but reads variables through `lookup` (tests pass the
    /// emulator's `env` map instead of mutating the process environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Endpoints> {
        let mut e = Endpoints::azure_public();
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("AZURE_AUTHORITY_HOST") {
            e.authority_host = parse_url("AZURE_AUTHORITY_HOST", &v)?;
        }
        if let Some(v) = get("ROTOR_GRAPH_ENDPOINT") {
            e.graph = parse_url("ROTOR_GRAPH_ENDPOINT", &v)?;
        }
        if let Some(v) = get("ROTOR_ARM_ENDPOINT") {
            e.arm = parse_url("ROTOR_ARM_ENDPOINT", &v)?;
        }
        if let Some(v) = get("ROTOR_KEYVAULT_VERIFY_CHALLENGE") {
            e.verify_challenge = parse_bool("ROTOR_KEYVAULT_VERIFY_CHALLENGE", &v)?;
        }
        if let Some(v) = get("SSL_CERT_FILE") {
            e.ca_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get("ROTOR_LOOPBACK_ONLY") {
            e.loopback_only = parse_bool("ROTOR_LOOPBACK_ONLY", &v)?;
        }
        Ok(e)
    }

    /// Reads from a map (e.g. the emulator's `env`), see [`Endpoints::from_lookup`].
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Endpoints> {
        Endpoints::from_lookup(|k| map.get(k).cloned())
    }

    /// The OAuth scope for Graph (`{graph origin}/.default`).
    pub fn graph_scope(&self) -> String {
        scope_for(&self.graph)
    }

    /// The OAuth scope for ARM (`{arm origin}/.default`).
    pub fn arm_scope(&self) -> String {
        scope_for(&self.arm)
    }

    /// Token endpoint for `tenant`.
    pub fn token_url(&self, tenant: &str) -> Result<Url> {
        let base = self.authority_host.as_str().trim_end_matches('/');
        parse_url(
            "AZURE_AUTHORITY_HOST",
            &format!("{base}/{tenant}/oauth2/v2.0/token"),
        )
    }

    /// A short name for a vault URL: the configured friendly name, else the first label of a
    /// `*.vault.azure.net` host, else `host:port`.
    pub fn vault_name(&self, vault_url: &Url) -> String {
        if let Some(n) = self
            .vault_names
            .get(&normalize_vault_url(vault_url).to_string())
        {
            return n.clone();
        }
        vault_name_from_url(vault_url)
    }
}

/// Heuristic vault name from its URL (first DNS label; `host:port` for IP addresses).
pub fn vault_name_from_url(vault_url: &Url) -> String {
    match vault_url.host() {
        Some(url::Host::Domain(d)) => d.split('.').next().unwrap_or(d).to_owned(),
        Some(h) => match vault_url.port() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_string(),
        },
        None => vault_url.to_string(),
    }
}

/// Parses a Key Vault URL as configured (`rotor.toml` `vaults`, `ROTOR_VAULTS`, provider
/// `vault_urls`) and normalises it ([`normalize_vault_url`]). `Err` is the cause and the fix
/// (callers add the key): a vault URL is `https://` with a host and nothing after it — no path
/// but `/`, no query, no fragment. Emulators serve `https://127.0.0.1:<port>/`.
pub fn parse_vault_url(s: &str) -> std::result::Result<Url, (String, String)> {
    const FIX: &str = "write vault URLs like \"https://kv-prod.vault.azure.net/\" (https, the vault's host, no path)";
    let u =
        Url::parse(s.trim()).map_err(|e| (format!("`{s}` is not a URL: {e}"), FIX.to_owned()))?;
    if u.scheme() != "https" {
        let fix = match u.host_str() {
            Some(h) if u.scheme() == "http" => {
                let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
                format!("Key Vault is only served over TLS: use \"https://{h}{port}/\"")
            }
            _ => FIX.to_owned(),
        };
        return Err((
            format!("`{s}` is not an https URL (scheme `{}`)", u.scheme()),
            fix,
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err((format!("`{s}` has no host"), FIX.to_owned()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err((
            format!("`{s}` carries user information"),
            "remove the user name and password from the URL; rotor authenticates with its Azure credential".to_owned(),
        ));
    }
    let extra = if u.path() != "/" && !u.path().is_empty() {
        Some("a path")
    } else if u.query().is_some() {
        Some("a query")
    } else if u.fragment().is_some() {
        Some("a fragment")
    } else {
        None
    };
    if let Some(what) = extra {
        let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
        return Err((
            format!("`{s}` has {what}; a vault URL is only its origin"),
            format!(
                "use \"https://{}{port}/\" (rotor adds the secret paths itself)",
                u.host_str().unwrap_or_default()
            ),
        ));
    }
    Ok(normalize_vault_url(&u))
}

/// The vault URL with a trailing `/`, no query, no fragment.
pub fn normalize_vault_url(u: &Url) -> Url {
    let mut u = u.clone();
    u.set_query(None);
    u.set_fragment(None);
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    u
}

fn scope_for(u: &Url) -> String {
    format!("{}/.default", u.origin().ascii_serialization())
}

fn parse_bool(name: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::config(
            format!("reading `{name}`"),
            format!("`{v}` is not a boolean"),
        )
        .with_hint(format!("set {name} to true or false"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lookup_reads_overrides() {
        let mut m = BTreeMap::new();
        m.insert(
            "ROTOR_GRAPH_ENDPOINT".to_owned(),
            "https://127.0.0.1:8443".to_owned(),
        );
        m.insert(
            "ROTOR_KEYVAULT_VERIFY_CHALLENGE".to_owned(),
            "false".to_owned(),
        );
        let e = Endpoints::from_map(&m).expect("valid");
        assert_eq!(e.graph_scope(), "https://127.0.0.1:8443/.default");
        assert!(!e.verify_challenge);
        assert_eq!(e.arm_scope(), "https://management.azure.com/.default");
        m.insert(
            "ROTOR_KEYVAULT_VERIFY_CHALLENGE".to_owned(),
            "maybe".to_owned(),
        );
        let err = Endpoints::from_map(&m).expect_err("bad bool");
        assert!(err.to_string().contains("ROTOR_KEYVAULT_VERIFY_CHALLENGE"));
    }

    #[test]
    fn vault_names() {
        let u = Url::parse("https://kv-prod.vault.azure.net/").expect("url");
        assert_eq!(vault_name_from_url(&u), "kv-prod");
        let u = Url::parse("https://127.0.0.1:4443/").expect("url");
        assert_eq!(vault_name_from_url(&u), "127.0.0.1:4443");
    }

    #[test]
    fn vault_urls_must_be_https_origins() {
        for ok in [
            "https://kv-prod.vault.azure.net",
            "https://kv-prod.vault.azure.net/",
            "https://127.0.0.1:4443/",
        ] {
            assert!(parse_vault_url(ok).is_ok(), "{ok}");
        }
        let (cause, fix) = parse_vault_url("http://kv-prod.vault.azure.net/").expect_err("http");
        assert!(cause.contains("http://kv-prod.vault.azure.net/"), "{cause}");
        assert!(cause.contains("not an https URL"), "{cause}");
        assert!(fix.contains("https://kv-prod.vault.azure.net/"), "{fix}");
        for bad in [
            "https://kv-prod.vault.azure.net/secrets/x",
            "https://kv-prod.vault.azure.net/?api-version=1",
            "ftp://kv",
            "kv-prod",
        ] {
            assert!(parse_vault_url(bad).is_err(), "{bad}");
        }
    }
}
