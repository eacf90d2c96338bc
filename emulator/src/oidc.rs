//! The OIDC issuers behind federated (workload identity) credentials. Entra validates a
//! federated client assertion against its issuer's published signing keys (JWKS); the emulator
//! plays those issuers (a GitHub-like `https://token.actions.githubusercontent.com`, or any
//! other URL a fixture's `federated_credentials` names): each gets an RSA-2048 signing key the
//! first time it is asked for, and tests mint tokens signed by it ([`OidcSigner::mint`],
//! [`crate::Emulator::oidc_signer`], `POST /_emulator/oidc/token`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_lc_rs::signature::{self, KeyPair as _};
use serde_json::{Value, json};

use crate::util;

/// One issuer's signing key: mints RS256 JWTs with `kid` in the header.
#[derive(Clone)]
pub struct OidcSigner {
    issuer: String,
    kid: String,
    key: Arc<signature::RsaKeyPair>,
    n: Vec<u8>,
    e: Vec<u8>,
}

// Debug never prints the key.
impl std::fmt::Debug for OidcSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSigner")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl OidcSigner {
    fn generate(issuer: &str) -> anyhow::Result<OidcSigner> {
        use rsa::pkcs8::DecodePrivateKey;
        use rsa::traits::PublicKeyParts;
        let pkcs8 =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .context("generating an issuer signing key")?
                .serialize_der();
        let key = signature::RsaKeyPair::from_pkcs8(&pkcs8)
            .map_err(|e| anyhow::anyhow!("loading the issuer signing key: {e}"))?;
        let public = rsa::RsaPrivateKey::from_pkcs8_der(&pkcs8)
            .context("reading the issuer signing key")?
            .to_public_key();
        let kid = util::hex_upper(&util::sha1(key.public_key().as_ref())[..8]);
        Ok(OidcSigner {
            issuer: issuer.to_string(),
            kid,
            key: Arc::new(key),
            n: public.n().to_bytes_be(),
            e: public.e().to_bytes_be(),
        })
    }

    /// The issuer URL (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key id (`kid`) its tokens carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The issuer's JWKS (`{"keys": [{kty, use, alg, kid, n, e}]}`), as an IdP publishes it.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
            "n": util::b64url(&self.n), "e": util::b64url(&self.e),
        }]})
    }

    /// A token for `subject` and `audience`, valid for `lifetime` from now: claims `iss`,
    /// `sub`, `aud`, `iat`, `nbf`, `exp`, `jti`.
    pub fn mint(&self, subject: &str, audience: &str, lifetime: Duration) -> String {
        let now = util::now().unix_timestamp();
        self.mint_claims(&json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2),
            "jti": util::guid(),
        }))
    }

    /// Signs `claims` as given (RS256, header `{alg, typ, kid}`): for tokens with claims a
    /// real issuer would never send (another `iss`, no `exp`, …).
    pub fn mint_claims(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let signed = format!(
            "{}.{}",
            util::b64url(header.to_string().as_bytes()),
            util::b64url(claims.to_string().as_bytes())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        if self
            .key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &rng,
                signed.as_bytes(),
                &mut sig,
            )
            .is_err()
        {
            sig.clear();
        }
        format!("{signed}.{}", util::b64url(&sig))
    }

    /// Whether `sig` is this key's RS256 signature of `signed`.
    pub(crate) fn verifies(&self, signed: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            self.key.public_key().as_ref(),
        )
        .verify(signed, sig)
        .is_ok()
    }
}

/// The issuers' keys, created on first use.
#[derive(Debug, Default)]
pub struct Issuers {
    keys: HashMap<String, OidcSigner>,
}

impl Issuers {
    /// The signer of `issuer`, generating its key the first time.
    pub fn signer(&mut self, issuer: &str) -> anyhow::Result<OidcSigner> {
        if let Some(s) = self.keys.get(issuer) {
            return Ok(s.clone());
        }
        let s = OidcSigner::generate(issuer)?;
        self.keys.insert(issuer.to_string(), s.clone());
        Ok(s)
    }

    /// The signer of `issuer` if its key exists (a token can only verify if it does).
    pub fn get(&self, issuer: &str) -> Option<&OidcSigner> {
        self.keys.get(issuer)
    }

    /// Every issuer's JWKS, by issuer.
    pub fn all_jwks(&self) -> Value {
        let m: serde_json::Map<String, Value> = self
            .keys
            .iter()
            .map(|(k, s)| (k.clone(), s.jwks()))
            .collect();
        Value::Object(m)
    }
}
