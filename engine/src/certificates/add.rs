//! Step 3: add a certificate version's public key to the application — `addKey` with a proof
//! signed through Key Vault when the application holds a valid certificate whose key is in
//! Key Vault, else PATCH of the whole `keyCredentials` collection, every existing entry re-sent
//! exactly as read. Idempotent by thumbprint; an unknown outcome is settled by reading again.

use super::jwt;
use super::state::{CertState, parse_key};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::keyvault::CertificateVersion;
use crate::model::{CertificateTarget, KeyCredential};
use base64::Engine as _;
use std::time::Duration;
use time::OffsetDateTime;

/// How the key got onto the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// It was already there (a retry, or someone added it).
    Present,
    /// `addKey` with rotor's own Graph token.
    AddKey,
    /// `addKey` as the application itself (it may roll its own keys; rotor needs no Graph
    /// write permission).
    AddKeyAsApp,
    /// PATCH of the whole collection.
    Patch,
}

impl Path {
    pub fn describe(self) -> &'static str {
        match self {
            Path::Present => "already on the application",
            Path::AddKey => "addKey with a proof signed through Key Vault",
            Path::AddKeyAsApp => {
                "addKey as the application itself, with a proof signed through Key Vault"
            }
            Path::Patch => {
                "PATCH of the whole keyCredentials collection, every other entry re-sent unchanged"
            }
        }
    }
}

/// The client-chosen keyId of a PATCHed key credential: UUID v5 of the application and the
/// thumbprint, so a retry sends the same entry.
pub(crate) fn key_id_for(object_id: &str, thumbprint: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!(
            "rotor:key-credential:{}:{}",
            object_id.to_ascii_lowercase(),
            thumbprint.to_ascii_uppercase()
        )
        .as_bytes(),
    )
    .to_string()
}

fn utc(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn entry(v: &CertificateVersion, display_name: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("type".into(), "AsymmetricX509Cert".into());
    m.insert("usage".into(), "Verify".into());
    m.insert(
        "key".into(),
        base64::engine::general_purpose::STANDARD
            .encode(&v.cer)
            .into(),
    );
    m.insert("displayName".into(), display_name.into());
    if let Some(nb) = v.not_before {
        m.insert("startDateTime".into(), utc(nb).into());
    }
    if let Some(x) = v.expires {
        m.insert("endDateTime".into(), utc(x).into());
    }
    m
}

/// Reads the application's key credentials until one has `thumbprint` (up to `within`).
pub(crate) async fn read_until_present(
    e: &Engine,
    st: &CertState,
    thumbprint: &str,
    within: Duration,
) -> Result<Option<KeyCredential>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let keys = e.inner.graph.get_key_credentials(&st.app).await?;
        if let Some(k) = keys.entries.iter().map(parse_key).find(|k| {
            k.thumbprint
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(thumbprint))
        }) {
            return Ok(Some(k));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Adds version `v` of certificate `target` with display name `display_name`.
pub(crate) async fn run(
    e: &Engine,
    st: &CertState,
    _target: &CertificateTarget,
    v: &CertificateVersion,
    display_name: &str,
) -> Result<(KeyCredential, Path)> {
    if let Some(k) = st.key_with_thumbprint(&v.thumbprint) {
        return Ok((k.clone(), Path::Present));
    }
    let graph = &e.inner.graph;
    let app = &st.app;
    let new = entry(v, display_name);
    let mut path = Path::Patch;
    let mut result: Result<()> = Err(Error::other("adding the key", "not attempted"));
    let mut try_patch = true;
    if let Some((ci, version, tp)) = st.signer(OffsetDateTime::now_utc()) {
        let signer = &st.certs[ci].target;
        let proof = jwt::proof(e, &app.object_id, signer, &version, &tp).await?;
        path = Path::AddKey;
        result = graph
            .add_key(
                app,
                serde_json::Value::Object(new.clone()),
                proof.expose(),
                None,
            )
            .await;
        match &result {
            Err(err) if err.status() == Some(403) => {
                // rotor may not write applications: the application rolls its own key
                let scope = e.inner.endpoints.graph_scope();
                if let Ok(token) =
                    jwt::sign_in(e, &app.app_id, signer, &version, &tp, &scope).await?
                {
                    let proof = jwt::proof(e, &app.object_id, signer, &version, &tp).await?;
                    path = Path::AddKeyAsApp;
                    result = graph
                        .add_key(
                            app,
                            serde_json::Value::Object(new.clone()),
                            proof.expose(),
                            Some(&token),
                        )
                        .await;
                }
                try_patch = result.is_err();
            }
            Err(err)
                if err
                    .status()
                    .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429) =>
            {
                tracing::warn!("{err}; falling back to PATCH");
            }
            _ => try_patch = false,
        }
    }
    if try_patch && result.is_err() {
        // settle first: an unknown addKey outcome may have added it
        if let Some(k) = read_until_present(e, st, &v.thumbprint, Duration::ZERO).await? {
            return Ok((k, path));
        }
        path = Path::Patch;
        // read again right before writing: the collection replaces what is there
        let fresh = graph.get_key_credentials(app).await?;
        if fresh.has_thumbprint(&v.thumbprint)
            && let Some(k) = read_until_present(e, st, &v.thumbprint, Duration::ZERO).await?
        {
            return Ok((k, Path::Present));
        }
        let mut with_id = new.clone();
        with_id.insert(
            "keyId".into(),
            key_id_for(&app.object_id, &v.thumbprint).into(),
        );
        let mut entries = fresh.entries.clone();
        entries.push(with_id);
        result = graph.patch_key_credentials(app, &entries).await;
    }
    // Unknown is not "no": whatever the answer, the application says whether the key is there.
    let within = if result.is_ok() {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(2)
    };
    match read_until_present(e, st, &v.thumbprint, within).await {
        Ok(Some(k)) => Ok((k, path)),
        Ok(None) => Err(match result {
            Err(err) => err,
            Ok(()) => Error::new(
                ErrorKind::Verification,
                format!("adding {} to {app}", v.thumbprint),
                "Graph accepted the change but the key credential does not show",
            )
            .with_hint("re-run: rotor adds the Key Vault certificate's current version again"),
        }),
        Err(read) => Err(match result {
            Err(err) => err,
            Ok(()) => read,
        }),
    }
}
