//! `POST /certificates/{name}/import`: a completed version from a PFX (PKCS#12, base64) or PEM
//! (PKCS#8 key + certificates), with its key and backing secret.

use std::collections::BTreeMap;

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::{MAX_TAGS, bad, cert_bundle, check_name, conflict_deleted, parse_json, store_version};
use crate::server::Req;
use crate::state::{CertVersion, PrivateKey, Vault};
use crate::util;

pub const PEM: &str = "application/x-pem-file";
pub const PKCS12: &str = "application/x-pkcs12";

/// What an import brought: the leaf certificate (DER), the rest of the chain, the key.
struct Material {
    leaf: Vec<u8>,
    chain: Vec<Vec<u8>>,
    key: Vec<u8>,
    /// The format it came in.
    content_type: &'static str,
}

fn from_pem(text: &str) -> Result<Material, String> {
    use rustls_pemfile::Item;
    let mut key = None;
    let mut certs = Vec::new();
    let mut reader = std::io::BufReader::new(text.as_bytes());
    for item in rustls_pemfile::read_all(&mut reader) {
        match item.map_err(|_| "the PEM content cannot be parsed".to_string())? {
            Item::Pkcs8Key(k) => key = Some(k.secret_pkcs8_der().to_vec()),
            Item::Pkcs1Key(_) | Item::Sec1Key(_) => {
                return Err("Key Vault only accepts a key in PKCS#8 format (`-----BEGIN PRIVATE KEY-----`); convert it with `openssl pkcs8 -topk8 -nocrypt`".into());
            }
            Item::X509Certificate(c) => certs.push(c.to_vec()),
            _ => {}
        }
    }
    let key = key.ok_or("Private key is not specified in the specified X.509 PEM certificate content. The PEM must contain the key as well as the certificate")?;
    if certs.is_empty() {
        return Err("the PEM content has no certificate (`-----BEGIN CERTIFICATE-----`)".into());
    }
    Ok(Material {
        leaf: Vec::new(),
        chain: certs,
        key,
        content_type: PEM,
    })
}

fn from_pfx(der: &[u8], password: &str) -> Result<Material, String> {
    let store = p12_keystore::KeyStore::from_pkcs12(
        der,
        password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| {
        format!("the PFX cannot be read ({e}); check `pwd` (the password it was exported with)")
    })?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or("the PFX holds no private key; Key Vault imports a certificate with its key")?;
    let certs: Vec<Vec<u8>> = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
    if certs.is_empty() {
        return Err("the PFX holds a key but no certificate for it".into());
    }
    Ok(Material {
        leaf: Vec::new(),
        chain: certs,
        key: chain.key().as_der().to_vec(),
        content_type: PKCS12,
    })
}

/// The RSA public key (modulus, exponent) of a PKCS#8 private key.
fn rsa_public(key_pkcs8: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;
    let k = rsa::RsaPrivateKey::from_pkcs8_der(key_pkcs8).ok()?;
    Some((k.n().to_bytes_be(), k.e().to_bytes_be()))
}

/// The RSA public key of a certificate (`None`: unparsable or not RSA).
fn cert_rsa_public(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    use x509_parser::public_key::PublicKey;
    let (_, c) = x509_parser::parse_x509_certificate(der).ok()?;
    let strip = |b: &[u8]| {
        b.iter()
            .skip_while(|&&x| x == 0)
            .copied()
            .collect::<Vec<u8>>()
    };
    match c.public_key().parsed() {
        Ok(PublicKey::RSA(k)) => Some((strip(k.modulus), strip(k.exponent))),
        _ => None,
    }
}

/// Picks the certificate whose key is `m.key` as the leaf (the rest stays the chain).
fn match_leaf(mut m: Material) -> Result<Material, String> {
    let Some(public) = rsa_public(&m.key) else {
        return Err("rotor-emulator imports RSA keys only (Entra accepts only RSA certificates for client assertions); the key is not an RSA key".into());
    };
    let idx = m
        .chain
        .iter()
        .position(|c| cert_rsa_public(c).is_some_and(|p| p == public));
    let Some(i) = idx else {
        return Err("the private key does not match any certificate in the content".into());
    };
    m.leaf = m.chain.remove(i);
    Ok(m)
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The backing secret's value in `content_type`: PEM (key, leaf, chain) or a base64 PFX
/// without a password (as Key Vault serves it).
fn secret_value(m: &Material, content_type: &str) -> Result<String, String> {
    if content_type == PEM {
        let mut s = pem_block("PRIVATE KEY", &m.key);
        s.push_str(&pem_block("CERTIFICATE", &m.leaf));
        for c in &m.chain {
            s.push_str(&pem_block("CERTIFICATE", c));
        }
        return Ok(s);
    }
    let mut certs = Vec::new();
    for d in std::iter::once(&m.leaf).chain(m.chain.iter()) {
        certs.push(
            p12_keystore::Certificate::from_der(d)
                .map_err(|e| format!("re-packing the certificate: {e}"))?,
        );
    }
    let key = p12_keystore::PrivateKey::from_der(&m.key)
        .map_err(|e| format!("re-packing the key: {e}"))?;
    let local_id = util::sha1(&m.leaf).to_vec();
    let chain = p12_keystore::PrivateKeyChain::new(local_id, key, certs);
    let mut ks = p12_keystore::KeyStore::new();
    ks.add_entry("1", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    let pfx = ks
        .writer("")
        .write()
        .map_err(|e| format!("writing the PFX: {e}"))?;
    Ok(util::b64(&pfx))
}

pub fn import_certificate(v: &mut Vault, name: &str, req: &Req) -> Response {
    if let Some(r) = check_name(name) {
        return r;
    }
    let body = match parse_json(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(value) = body.get("value").and_then(Value::as_str) else {
        return bad(
            "The request body must contain a string property 'value': the certificate (base64 PFX, or PEM with its PKCS#8 key).",
        );
    };
    let password = body.get("pwd").and_then(Value::as_str).unwrap_or("");
    let mut policy = body.get("policy").cloned().unwrap_or_else(|| json!({}));
    if !policy.is_object() {
        return bad("policy must be an object.");
    }
    let asked_type = policy
        .pointer("/secret_props/contentType")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(t) = &asked_type
        && t != PEM
        && t != PKCS12
    {
        return bad(&format!(
            "Invalid secret_props.contentType '{t}': expected '{PKCS12}' or '{PEM}'."
        ));
    }
    let looks_pem = value.trim_start().starts_with("-----BEGIN");
    let material = if looks_pem || asked_type.as_deref() == Some(PEM) {
        from_pem(value)
    } else {
        match util::b64_decode_any(value.trim()) {
            Some(der) => from_pfx(&der, password),
            None => Err("'value' is neither PEM nor base64 (of a PFX)".into()),
        }
    };
    let material = match material.and_then(match_leaf) {
        Ok(m) => m,
        Err(why) => return bad(&format!("Certificate {name} cannot be imported: {why}.")),
    };
    let tags: BTreeMap<String, String> = body
        .get("tags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    if tags.len() > MAX_TAGS {
        return bad("The number of tags exceeds the maximum of 15.");
    }
    let enabled = body
        .pointer("/attributes/enabled")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let key = name.to_ascii_lowercase();
    if v.secrets.get(&key).is_some_and(|e| e.deleted.is_some()) {
        return conflict_deleted(name);
    }
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&material.leaf) else {
        return bad(&format!(
            "Certificate {name}: the certificate cannot be parsed."
        ));
    };
    let subject = cert.subject().to_string();
    let nbf = cert.validity().not_before.timestamp();
    let exp = cert.validity().not_after.timestamp();
    let months = ((exp - nbf) / (30 * 86_400)).max(1);
    let key_size = rsa_public(&material.key).map_or(2048, |(n, _)| n.len() * 8);
    let content_type = asked_type.as_deref().unwrap_or(material.content_type);
    let secret = match secret_value(&material, content_type) {
        Ok(s) => s,
        Err(why) => {
            return super::kv_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!("Certificate {name}: {why}."),
                None,
            );
        }
    };
    // The default policy Key Vault derives "by reading the X.509 certificate", under any
    // fields the request gave.
    let now = util::now().unix_timestamp();
    let derived = json!({
        "key_props": {"exportable": true, "kty": "RSA", "key_size": key_size, "reuse_key": false},
        "secret_props": {"contentType": content_type},
        "x509_props": {"subject": subject, "validity_months": months},
        "issuer": {"name": "Unknown"},
        "attributes": {"enabled": true, "created": now, "updated": now},
    });
    if let (Value::Object(p), Value::Object(d)) = (&mut policy, derived) {
        for (k, dv) in d {
            match (p.get_mut(&k), dv) {
                (Some(Value::Object(given)), Value::Object(dm)) => {
                    for (kk, vv) in dm {
                        given.entry(kk).or_insert(vv);
                    }
                }
                (Some(_), _) => {}
                (None, dv) => {
                    p.insert(k, dv);
                }
            }
        }
    }
    let version = util::hex32();
    let cv = CertVersion {
        version: version.clone(),
        der: material.leaf.clone(),
        key: PrivateKey(material.key.clone()),
        policy,
        enabled,
        nbf,
        exp,
        created: now,
        updated: now,
        tags,
        subject,
        ready_at: std::time::Instant::now(),
        csr: String::new(),
    };
    store_version(v, name, cv, secret, content_type);
    let Some(e) = v.certificates.get(&key) else {
        return util::empty(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let Some(c) = e.versions.last() else {
        return util::empty(StatusCode::INTERNAL_SERVER_ERROR);
    };
    util::json(StatusCode::OK, &cert_bundle(v, e, c))
}
