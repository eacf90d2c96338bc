//! JWTs signed through Key Vault (`keys/sign`, RS256 over a SHA-256 digest computed here): the
//! addKey/removeKey proof and the client assertion. The private key never leaves Key Vault.

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::model::CertificateTarget;
use crate::secret::SecretValue;
use base64::Engine as _;
use sha2::Digest;
use time::OffsetDateTime;

/// The audience of addKey/removeKey proofs (AAD Graph's app id, as Graph's docs require).
pub(crate) const PROOF_AUDIENCE: &str = "00000002-0000-0000-c000-000000000000";

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// A JWT with header `{alg: RS256, typ: JWT, x5t}` and `claims`, signed by the key of
/// `target` version `version` (whose SHA-1 thumbprint is `thumbprint_hex`). No `=` padding.
pub(crate) async fn signed(
    e: &Engine,
    target: &CertificateTarget,
    version: &str,
    thumbprint_hex: &str,
    claims: &serde_json::Value,
) -> Result<SecretValue> {
    let header = serde_json::json!({
        "alg": "RS256",
        "typ": "JWT",
        "x5t": b64url(&hex_bytes(thumbprint_hex)),
    });
    let h = b64url(header.to_string().as_bytes());
    let p = b64url(claims.to_string().as_bytes());
    let input = format!("{h}.{p}");
    let digest = sha2::Sha256::digest(input.as_bytes());
    let sig = e.inner.vaults.sign_rs256(target, version, &digest).await?;
    Ok(SecretValue::new(format!("{input}.{}", b64url(&sig))))
}

/// Seconds since the epoch, by the system clock (what Entra checks JWTs against; never the
/// engine's injected clock).
fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The proof of possession for addKey/removeKey on application `object_id`.
pub(crate) async fn proof(
    e: &Engine,
    object_id: &str,
    target: &CertificateTarget,
    version: &str,
    thumbprint_hex: &str,
) -> Result<SecretValue> {
    let nbf = unix_now() - 60;
    let claims = serde_json::json!({
        "aud": PROOF_AUDIENCE,
        "iss": object_id,
        "nbf": nbf,
        "exp": nbf + 9 * 60,
    });
    signed(e, target, version, thumbprint_hex, &claims).await
}

/// Signs in as application `app_id` with a client assertion signed by the given certificate
/// version; `Ok(Ok(token))`, or `Ok(Err(answer))` when the token endpoint refused.
pub(crate) async fn sign_in(
    e: &Engine,
    app_id: &str,
    target: &CertificateTarget,
    version: &str,
    thumbprint_hex: &str,
    scope: &str,
) -> Result<std::result::Result<SecretValue, String>> {
    let inner = &e.inner;
    let tenant = inner.tenant().await?;
    let url = inner.endpoints.token_url(&tenant)?;
    let now = unix_now();
    let claims = serde_json::json!({
        "aud": url.as_str(),
        "iss": app_id,
        "sub": app_id,
        "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": now - 60,
        "iat": now,
        "exp": now + 300,
    });
    let assertion = signed(e, target, version, thumbprint_hex, &claims).await?;
    let action = format!("signing in as application {app_id} with its certificate");
    let form = [
        ("client_id", app_id),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion.expose()),
        ("grant_type", "client_credentials"),
        ("scope", scope),
    ];
    let reply = crate::http::send(|| inner.http.post(url.clone()).form(&form), 0, &action).await?;
    if reply.status.is_success() {
        let v: serde_json::Value = serde_json::from_slice(&reply.body).map_err(|err| {
            Error::new(
                ErrorKind::Other,
                action.clone(),
                format!("unexpected response: {err}"),
            )
        })?;
        let tok = v
            .get("access_token")
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        return Ok(Ok(SecretValue::new(tok)));
    }
    let (code, _, msg) = crate::http::error_details(&reply.body);
    Ok(Err(crate::http::describe(
        reply.status,
        code.as_deref(),
        msg.as_deref(),
    )))
}
