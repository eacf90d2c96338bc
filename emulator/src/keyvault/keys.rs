//! Key Vault keys: the addressable key behind every certificate version (same name and
//! version; a certificate's `kid` is `{vault}keys/{name}/{version}`). Read (`GET /keys…`) and
//! `sign` over a pre-computed digest, as Key Vault does; keys cannot be created on their own.

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::{ApiCtx, RECOVERABLE_DAYS, RECOVERY_LEVEL, bad, kv_error, page, paging, parse_json};
use crate::server::Req;
use crate::state::{CertEntry, CertVersion, Vault};
use crate::util;
use axum::response::Response;

/// The signature algorithms `sign` accepts, with the digest length each needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignAlg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
}

impl SignAlg {
    pub fn parse(s: &str) -> Option<SignAlg> {
        Some(match s {
            "RS256" => SignAlg::Rs256,
            "RS384" => SignAlg::Rs384,
            "RS512" => SignAlg::Rs512,
            "PS256" => SignAlg::Ps256,
            "PS384" => SignAlg::Ps384,
            "PS512" => SignAlg::Ps512,
            _ => return None,
        })
    }

    /// Bytes of the digest this algorithm signs (SHA-256, -384 or -512).
    pub fn digest_len(self) -> usize {
        match self {
            SignAlg::Rs256 | SignAlg::Ps256 => 32,
            SignAlg::Rs384 | SignAlg::Ps384 => 48,
            SignAlg::Rs512 | SignAlg::Ps512 => 64,
        }
    }
}

/// RSA signature of a pre-computed digest with a PKCS#8 private key: PKCS#1 v1.5 (`RS*`) or
/// PSS with a salt as long as the digest (`PS*`, as Key Vault and JWS use).
pub fn sign_digest(key_pkcs8: &[u8], alg: SignAlg, digest: &[u8]) -> Result<Vec<u8>, String> {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::sha2::{Sha256, Sha384, Sha512};
    use rsa::{Pkcs1v15Sign, Pss, RsaPrivateKey};
    let key = RsaPrivateKey::from_pkcs8_der(key_pkcs8)
        .map_err(|_| "the key is not an RSA key".to_string())?;
    let mut rng = rsa::rand_core::OsRng;
    let r = match alg {
        SignAlg::Rs256 => key.sign(Pkcs1v15Sign::new::<Sha256>(), digest),
        SignAlg::Rs384 => key.sign(Pkcs1v15Sign::new::<Sha384>(), digest),
        SignAlg::Rs512 => key.sign(Pkcs1v15Sign::new::<Sha512>(), digest),
        SignAlg::Ps256 => key.sign_with_rng(&mut rng, Pss::new::<Sha256>(), digest),
        SignAlg::Ps384 => key.sign_with_rng(&mut rng, Pss::new::<Sha384>(), digest),
        SignAlg::Ps512 => key.sign_with_rng(&mut rng, Pss::new::<Sha512>(), digest),
    };
    r.map_err(|e| format!("signing failed: {e}"))
}

/// The public half of a certificate's key as a JSON Web Key (without `kid`/`key_ops`):
/// RSA `n`/`e`, or EC `crv`/`x`/`y` (P-256).
pub fn public_jwk(cert_der: &[u8]) -> Option<Map<String, Value>> {
    use x509_parser::public_key::PublicKey;
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let mut m = Map::new();
    match cert.public_key().parsed().ok()? {
        PublicKey::RSA(k) => {
            let strip = |b: &[u8]| -> Vec<u8> {
                let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
                b[i..].to_vec()
            };
            m.insert("kty".into(), json!("RSA"));
            m.insert("n".into(), json!(util::b64url(&strip(k.modulus))));
            m.insert("e".into(), json!(util::b64url(&strip(k.exponent))));
        }
        PublicKey::EC(p) => {
            let d = p.data();
            if d.len() != 65 || d[0] != 4 {
                return None;
            }
            m.insert("kty".into(), json!("EC"));
            m.insert("crv".into(), json!("P-256"));
            m.insert("x".into(), json!(util::b64url(&d[1..33])));
            m.insert("y".into(), json!(util::b64url(&d[33..65])));
        }
        _ => return None,
    }
    Some(m)
}

pub fn key_not_found(name: &str, version: Option<&str>) -> Response {
    let what = match version {
        Some(v) => format!("{name}/{v}"),
        None => name.to_string(),
    };
    kv_error(
        StatusCode::NOT_FOUND,
        "KeyNotFound",
        &format!(
            "A key with (name/id) {what} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
        None,
    )
}

/// The certificate entry and the (completed) version a key path names: latest when `version`
/// is `None`.
fn find<'a>(
    v: &'a Vault,
    name: &str,
    version: Option<&str>,
) -> Option<(&'a CertEntry, &'a CertVersion)> {
    let e = v.certificates.get(&name.to_ascii_lowercase())?;
    let c = match version {
        None => e.versions.iter().rev().find(|c| c.ready()),
        Some(ver) => e
            .versions
            .iter()
            .find(|c| c.ready() && c.version.eq_ignore_ascii_case(ver)),
    }?;
    Some((e, c))
}

fn key_ops(kty: &str) -> Value {
    if kty == "RSA" {
        json!([
            "sign",
            "verify",
            "wrapKey",
            "unwrapKey",
            "encrypt",
            "decrypt"
        ])
    } else {
        json!(["sign", "verify"])
    }
}

fn key_attributes(c: &CertVersion) -> Value {
    let exportable = c
        .policy
        .pointer("/key_props/exportable")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    json!({
        "enabled": c.enabled,
        "nbf": c.nbf,
        "exp": c.exp,
        "created": c.created,
        "updated": c.updated,
        "recoverableDays": RECOVERABLE_DAYS,
        "recoveryLevel": RECOVERY_LEVEL,
        "exportable": exportable,
    })
}

fn kid(v: &Vault, e: &CertEntry, c: &CertVersion) -> String {
    format!("{}keys/{}/{}", v.url, e.name, c.version)
}

fn disabled(op: &str) -> Response {
    kv_error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &format!("Operation {op} is not allowed on a disabled key."),
        Some("KeyDisabled"),
    )
}

/// `GET /keys/{name}[/{version}]`: the KeyBundle (public key only).
pub fn get_key(v: &Vault, name: &str, version: Option<&str>) -> Response {
    let Some((e, c)) = find(v, name, version) else {
        return key_not_found(name, version);
    };
    if !c.enabled {
        return disabled("get");
    }
    let Some(mut jwk) = public_jwk(&c.der) else {
        return kv_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "the certificate's public key cannot be read",
            None,
        );
    };
    let kty = jwk
        .get("kty")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    jwk.insert("kid".into(), json!(kid(v, e, c)));
    jwk.insert("key_ops".into(), key_ops(&kty));
    let mut m = Map::new();
    m.insert("key".into(), Value::Object(jwk));
    m.insert("attributes".into(), key_attributes(c));
    if !c.tags.is_empty() {
        m.insert("tags".into(), json!(c.tags));
    }
    m.insert("managed".into(), json!(true));
    util::json(StatusCode::OK, &Value::Object(m))
}

fn key_item(v: &Vault, e: &CertEntry, c: &CertVersion, with_version: bool) -> Value {
    let id = if with_version {
        kid(v, e, c)
    } else {
        format!("{}keys/{}", v.url, e.name)
    };
    let mut m = Map::new();
    m.insert("kid".into(), json!(id));
    m.insert("attributes".into(), key_attributes(c));
    if !c.tags.is_empty() {
        m.insert("tags".into(), json!(c.tags));
    }
    m.insert("managed".into(), json!(true));
    Value::Object(m)
}

/// `GET /keys`: the latest completed version of every certificate's key.
pub fn list_keys(v: &Vault, req: &Req, api: &ApiCtx<'_>) -> Response {
    let (offset, size) = match paging(req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let items = v.certificates.values().filter_map(|e| {
        e.versions
            .iter()
            .rev()
            .find(|c| c.ready())
            .map(|c| key_item(v, e, c, false))
    });
    page(
        items,
        offset,
        size,
        format!("{}keys", v.url),
        "keys",
        api,
        req,
    )
}

/// `GET /keys/{name}/versions`: every completed version, in the fidelity's version order.
pub fn list_key_versions(v: &Vault, name: &str, req: &Req, api: &ApiCtx<'_>) -> Response {
    let (offset, size) = match paging(req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(e) = v.certificates.get(&name.to_ascii_lowercase()) else {
        return key_not_found(name, None);
    };
    let shown: Vec<&CertVersion> = e.versions.iter().filter(|c| c.ready()).collect();
    if shown.is_empty() {
        return key_not_found(name, None);
    }
    let ids: Vec<&str> = shown.iter().map(|c| c.version.as_str()).collect();
    let items = api
        .fidelity
        .order_versions(&ids)
        .into_iter()
        .map(|i| key_item(v, e, shown[i], true));
    page(
        items,
        offset,
        size,
        format!("{}keys/{}/versions", v.url, e.name),
        &format!("keys/{}/versions", e.name.to_ascii_lowercase()),
        api,
        req,
    )
}

/// `POST /keys/{name}[/{version}]/sign` `{alg, value}`: `value` is the base64url digest (Key
/// Vault never hashes); answers `{kid, value}` with the base64url signature.
pub fn sign(v: &Vault, name: &str, version: Option<&str>, req: &Req) -> Response {
    let body = match parse_json(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some((e, c)) = find(v, name, version) else {
        return key_not_found(name, version);
    };
    if !c.enabled {
        return disabled("sign");
    }
    let now = util::now().unix_timestamp();
    if now < c.nbf {
        return kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("Operation sign is not allowed on key {name}: it is not yet valid (nbf)."),
            Some("KeyNotYetValid"),
        );
    }
    if now >= c.exp {
        return kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("Operation sign is not allowed on key {name}: it has expired (exp)."),
            Some("KeyExpired"),
        );
    }
    let Some(alg_name) = body.get("alg").and_then(Value::as_str) else {
        return bad("The request body must contain a string property 'alg'.");
    };
    let Some(value) = body.get("value").and_then(Value::as_str) else {
        return bad(
            "The request body must contain a string property 'value' (the base64url digest).",
        );
    };
    let Some(digest) = util::b64_decode_any(value) else {
        return bad("Property 'value' is not base64url.");
    };
    let is_ec = public_jwk(&c.der)
        .and_then(|j| j.get("kty").and_then(Value::as_str).map(|k| k == "EC"))
        .unwrap_or(false);
    let alg = match SignAlg::parse(alg_name) {
        Some(a) if !is_ec => a,
        Some(_) => {
            return bad(&format!(
                "Algorithm '{alg_name}' is not valid for key {name}: it is an EC key (ES256/ES384/ES512/ES256K). rotor-emulator signs with RSA keys only."
            ));
        }
        None if is_ec && alg_name.starts_with("ES") => {
            return bad(&format!(
                "rotor-emulator does not sign with EC keys ('{alg_name}' on key {name}); only RSA keys (RS256/RS384/RS512/PS256/PS384/PS512)."
            ));
        }
        None => {
            return bad(&format!(
                "Invalid algorithm '{alg_name}' for RSA key {name}: expected one of RS256, RS384, RS512, PS256, PS384, PS512."
            ));
        }
    };
    if digest.len() != alg.digest_len() {
        return bad(&format!(
            "Invalid digest length for {alg_name}: {} bytes; {alg_name} signs a {}-byte digest (Key Vault signs a pre-computed hash, not the message).",
            digest.len(),
            alg.digest_len()
        ));
    }
    match sign_digest(c.key.der(), alg, &digest) {
        Ok(sig) => util::json(
            StatusCode::OK,
            &json!({"kid": kid(v, e, c), "value": util::b64url(&sig)}),
        ),
        Err(why) => kv_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &format!("Key {name}: {why}."),
            None,
        ),
    }
}
