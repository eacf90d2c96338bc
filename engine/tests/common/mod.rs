//! Shared test helpers: an emulator plus an engine pointed at it.
#![allow(dead_code)]

pub mod certs;
pub mod trace;

use rotor_emulator::{Emulator, EmulatorOptions, Fixture};
use rotor_engine::{AuthConfig, Endpoints, Engine, EngineOptions, Link, Target};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use url::Url;

pub const MYAPP: &str = "b0000001-0000-4000-8000-000000000001";
pub const MYAPP_SECRET1: &str = "c0000001-0000-4000-8000-000000000101";
pub const CONSUMER: &str = "b0000009-0000-4000-8000-000000000009";

pub struct Env {
    pub emu: Emulator,
    pub dir: tempfile::TempDir,
}

pub async fn start(fixture: Fixture) -> Env {
    let emu = Emulator::start(fixture, EmulatorOptions::default())
        .await
        .expect("emulator starts");
    Env {
        emu,
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

pub async fn sample() -> Env {
    start(Fixture::sample()).await
}

impl Env {
    pub fn endpoints(&self) -> Endpoints {
        let mut e = Endpoints::from_map(&self.emu.endpoints().env).expect("endpoints");
        // tests reach loopback only (ROTOR_LOOPBACK_ONLY): never Azure, IMDS or the Azure CLI
        e.loopback_only = true;
        for (name, url) in &self.emu.endpoints().vaults {
            e.vault_names.insert(url.clone(), name.clone());
        }
        e
    }

    pub fn options(&self) -> EngineOptions {
        self.options_as(None)
    }

    /// Options authenticating as the principal with `client_id`/`secret` (default: the first one).
    pub fn options_as(&self, principal: Option<(&str, &str)>) -> EngineOptions {
        let endpoints = self.endpoints();
        let mut auth = AuthConfig::from_map(&self.emu.endpoints().env);
        auth.use_cli = false;
        auth.use_msi = false;
        if let Some((id, secret)) = principal {
            auth.client_id = Some(id.to_owned());
            auth.client_secret = Some(secret.into());
        }
        let cred = auth.build(&endpoints).expect("credential");
        let mut o = EngineOptions::new(endpoints, cred);
        o.actor = "user:test".into();
        o.history_file = Some(self.dir.path().join("history.jsonl"));
        o.hint_cache_file = Some(self.dir.path().join("hints.json"));
        o.verify_timeout = Duration::from_secs(10);
        o.tenant_id = Some(self.emu.endpoints().tenant_id.clone());
        o
    }

    pub fn engine(&self) -> Engine {
        Engine::new(self.options()).expect("engine")
    }

    pub fn vault(&self, name: &str) -> Url {
        Url::parse(&self.emu.endpoints().vaults[name]).expect("vault url")
    }

    pub fn vaults(&self) -> Vec<Url> {
        self.emu
            .endpoints()
            .vaults
            .values()
            .map(|u| Url::parse(u).expect("url"))
            .collect()
    }

    pub fn target(&self, vault: &str, secret: &str) -> Target {
        Target::new(self.vault(vault), secret)
    }

    pub fn state(&self) -> Value {
        self.emu.state()
    }

    /// Every version of a secret, oldest first.
    pub fn versions(&self, vault: &str, secret: &str) -> Vec<Value> {
        let st = self.state();
        st["vaults"]
            .as_array()
            .expect("vaults")
            .iter()
            .find(|v| v["name"] == vault)
            .and_then(|v| {
                v["secrets"]
                    .as_array()
                    .expect("secrets")
                    .iter()
                    .find(|s| s["name"] == secret)
                    .map(|s| s["versions"].as_array().expect("versions").clone())
            })
            .unwrap_or_default()
    }

    pub fn latest(&self, vault: &str, secret: &str) -> Value {
        self.versions(vault, secret)
            .last()
            .cloned()
            .expect("a version")
    }

    /// Password credentials of an app (with secret_text).
    pub fn passwords(&self, app_id: &str) -> Vec<Value> {
        let st = self.state();
        st["applications"]
            .as_array()
            .expect("apps")
            .iter()
            .find(|a| a["app_id"] == app_id)
            .map(|a| a["password_credentials"].as_array().expect("pw").clone())
            .unwrap_or_default()
    }

    pub fn password_value(&self, app_id: &str, key_id: &str) -> String {
        self.passwords(app_id)
            .iter()
            .find(|p| p["key_id"] == key_id)
            .and_then(|p| p["secret_text"].as_str().map(str::to_owned))
            .expect("password exists")
    }

    /// Every secret value in the emulator (passwords and vault versions).
    pub fn all_values(&self) -> Vec<String> {
        let st = self.state();
        let mut out = Vec::new();
        for a in st["applications"].as_array().expect("apps") {
            for p in a["password_credentials"].as_array().expect("pw") {
                if let Some(s) = p["secret_text"].as_str() {
                    out.push(s.to_owned());
                }
            }
        }
        for v in st["vaults"].as_array().expect("vaults") {
            for s in v["secrets"].as_array().expect("secrets") {
                for x in s["versions"].as_array().expect("versions") {
                    if let Some(s) = x["value"].as_str() {
                        out.push(s.to_owned());
                    }
                }
            }
        }
        for p in st["principals"].as_array().expect("principals") {
            if let Some(s) = p["client_secret"].as_str() {
                out.push(s.to_owned());
            }
        }
        out
    }

    pub fn myapp_link(&self) -> Link {
        Link {
            application_id: MYAPP.into(),
            credential_display_name: "Secret 1".into(),
            targets: BTreeSet::from([
                self.target("kv-prod", "myapp-secret"),
                self.target("kv-dev", "myapp-dev-secret"),
                self.target("kv-staging", "myapp-secret-v2"),
            ]),
        }
    }

    /// Logs in as application `app_id` with `secret` against the emulator's token endpoint.
    pub async fn can_login(&self, app_id: &str, secret: &str) -> bool {
        let ep = self.emu.endpoints();
        let pem = std::fs::read(&ep.ca_file).expect("ca");
        let client = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).expect("pem"))
            .build()
            .expect("client");
        let url = format!("{}/{}/oauth2/v2.0/token", ep.authority_host, ep.tenant_id);
        let scope = format!("{}/.default", ep.graph_endpoint);
        let r = client
            .post(url)
            .form(&[
                ("client_id", app_id),
                ("client_secret", secret),
                ("grant_type", "client_credentials"),
                ("scope", scope.as_str()),
            ])
            .send()
            .await
            .expect("token request");
        r.status().is_success()
    }

    pub fn count(&self, route: &str) -> u64 {
        self.emu.request_counts()["by_route"][route]
            .as_u64()
            .unwrap_or(0)
    }
}

pub fn fixture(v: Value) -> Fixture {
    Fixture::from_json(&v.to_string()).expect("valid fixture")
}
