//! Entra ID token endpoint: `POST /{tenant}/oauth2/v2.0/token`, client-credentials grant.

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use crate::server::{Audience, Caller, Ctx, Req};
use crate::state::Store;
use crate::util;

/// `expires_in` of every token.
pub const TOKEN_LIFETIME_SECS: u64 = 3600;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An Entra error answer (`error`, `error_description` with the AADSTS code, `error_codes`).
fn entra_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let trace = util::guid();
    let corr = util::guid();
    // Entra's own format: `2025-01-02 03:04:05Z` (a space, no fraction).
    let ts = util::rfc3339(util::now()).replacen('T', " ", 1);
    util::json(
        status,
        &json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {corr} Timestamp: {ts}"),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// Map a `/.default` scope's resource to the API it is for.
fn audience_of(ctx: &Ctx, resource: &str) -> Option<Audience> {
    let r = resource.trim_end_matches('/').to_ascii_lowercase();
    match r.as_str() {
        "https://graph.microsoft.com" | "00000003-0000-0000-c000-000000000000" => {
            return Some(Audience::Graph);
        }
        "https://vault.azure.net"
        | "https://vault.azure.net:443"
        | "cfa8b339-82a2-471a-a3c9-0fc0be7a4093" => {
            return Some(Audience::Vault);
        }
        "https://management.azure.com" | "https://management.core.windows.net" => {
            return Some(Audience::Arm);
        }
        _ => {}
    }
    if r == ctx.main_url.to_ascii_lowercase() {
        return Some(Audience::Main);
    }
    if ctx
        .vault_urls
        .iter()
        .any(|v| v.trim_end_matches('/').eq_ignore_ascii_case(&r))
    {
        return Some(Audience::Vault);
    }
    None
}

fn decode_jwt(jwt: &str) -> Option<(Value, Value)> {
    let mut parts = jwt.split('.');
    let h = parts.next()?;
    let p = parts.next()?;
    let _sig = parts.next()?;
    let header = serde_json::from_slice(&util::b64_decode_any(h)?).ok()?;
    let payload = serde_json::from_slice(&util::b64_decode_any(p)?).ok()?;
    Some((header, payload))
}

fn subject_matches(pattern: &str, subject: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => subject.starts_with(prefix),
        None => pattern == subject,
    }
}

/// Build an access token: JWT-shaped (unsigned, `alg: none`) so tools that peek at claims work;
/// the emulator itself only looks the string up in its token table.
fn mint(ctx: &Ctx, caller: Caller, audience: Audience, aud_text: &str) -> String {
    let store = ctx.store.read();
    let (appid, oid, roles) = match caller {
        Caller::Principal(i) => {
            let p = &store.principals[i];
            (
                p.client_id.clone(),
                p.object_id.clone(),
                p.graph_roles.clone(),
            )
        }
        Caller::App(i) => {
            let a = &store.apps[i];
            (a.app_id.clone(), a.sp_object_id.clone(), Vec::new())
        }
    };
    let now = util::now().unix_timestamp();
    let header = json!({"typ": "JWT", "alg": "none", "kid": "rotor-emulator"});
    let claims = json!({
        "aud": aud_text,
        "iss": format!("https://sts.windows.net/{}/", store.tenant_id),
        "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME_SECS as i64,
        "appid": appid, "azp": appid, "oid": oid, "sub": oid, "tid": store.tenant_id,
        "roles": if audience == Audience::Graph || audience == Audience::Main { roles } else { Vec::new() },
        "jti": util::random_alnum(22),
        "ver": "1.0",
    });
    drop(store);
    format!(
        "{}.{}.{}",
        util::b64url(header.to_string().as_bytes()),
        util::b64url(claims.to_string().as_bytes()),
        util::random_alnum(43)
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub fn token(ctx: &Ctx, tenant: &str, req: &Req) -> Response {
    let mut form: std::collections::HashMap<String, String> = form_urlencoded::parse(&req.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    // client_secret_basic: `Authorization: Basic base64(urlencode(id):urlencode(secret))`.
    if let Some((id, secret)) = basic_credentials(req) {
        form.entry("client_id".into()).or_insert(id);
        form.entry("client_secret".into()).or_insert(secret);
    }
    let tenant_id = ctx.store.read().tenant_id.clone();
    if !tenant.eq_ignore_ascii_case(&tenant_id) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(other) => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &format!(
                    "The app requested an unsupported grant type '{other}'. The emulator supports client_credentials only."
                ),
            );
        }
        None => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            );
        }
    }
    let Some(client_id) = form.get("client_id").filter(|s| !s.is_empty()) else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(scope) = form.get("scope").filter(|s| !s.is_empty()) else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    let first = scope.split_whitespace().next().unwrap_or_default();
    let Some(resource) = first.strip_suffix("/.default") else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {first} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    };
    let Some(audience) = audience_of(ctx, resource) else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {resource} was not found in the tenant named {tenant_id}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
            ),
        );
    };

    let caller = if let Some(secret) = form.get("client_secret") {
        match login_with_secret(ctx, client_id, secret, &tenant_id) {
            Ok(c) => c,
            Err(r) => return r,
        }
    } else if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                50027,
                &format!("client_assertion_type must be '{JWT_BEARER}'."),
            );
        }
        match login_with_assertion(ctx, client_id, assertion, &tenant_id) {
            Ok(c) => c,
            Err(r) => return r,
        }
    } else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };

    let token = mint(ctx, caller, audience, resource);
    ctx.issue_token(caller, audience, token.clone());
    util::json(
        StatusCode::OK,
        &json!({
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECS,
            "ext_expires_in": TOKEN_LIFETIME_SECS,
            "access_token": token,
        }),
    )
}

fn basic_credentials(req: &Req) -> Option<(String, String)> {
    let h = req.header("authorization")?;
    let b64 = h
        .strip_prefix("Basic ")
        .or_else(|| h.strip_prefix("basic "))?;
    let raw = String::from_utf8(util::b64_decode_any(b64)?).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let dec = |s: &str| {
        form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((dec(id)?, dec(secret)?))
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration` (for MSAL-style clients).
pub fn openid_configuration(ctx: &Ctx, tenant: &str) -> Response {
    let tenant_id = ctx.store.read().tenant_id.clone();
    if !tenant.eq_ignore_ascii_case(&tenant_id) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    let base = format!("{}/{tenant_id}", ctx.main_url);
    util::json(
        StatusCode::OK,
        &json!({
            "token_endpoint": format!("{base}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
            "issuer": format!("{}/{tenant_id}/v2.0", ctx.main_url),
            "jwks_uri": format!("{base}/discovery/v2.0/keys"),
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "rotor-emulator",
        }),
    )
}

fn invalid_secret(app_id: &str) -> Response {
    entra_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000215,
        &format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{app_id}'."
        ),
    )
}

/// The fixture principal whose client id is `client_id` (case-insensitive).
fn principal_index(store: &Store, client_id: &str) -> Option<usize> {
    store
        .principals
        .iter()
        .position(|p| p.client_id.eq_ignore_ascii_case(client_id))
}

/// The application `client_id` names, when it may sign in at all: Entra answers an unknown
/// client with AADSTS700016 and an application without a service principal with AADSTS7000229,
/// whatever credential was presented.
fn signable_app(store: &Store, client_id: &str, tenant_id: &str) -> Result<usize, Response> {
    let Some(ai) = store.app_index_by_app_id(client_id) else {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant_id}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        ));
    };
    let app = &store.apps[ai];
    if !app.service_principal {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            7000229,
            &format!(
                "The client application {} is missing service principal in the tenant {tenant_id}.",
                app.app_id
            ),
        ));
    }
    Ok(ai)
}

fn login_with_secret(
    ctx: &Ctx,
    client_id: &str,
    secret: &str,
    tenant_id: &str,
) -> Result<Caller, Response> {
    let store = ctx.store.read();
    if let Some(i) = principal_index(&store, client_id) {
        return if store.principals[i].client_secret == secret {
            Ok(Caller::Principal(i))
        } else {
            Err(invalid_secret(client_id))
        };
    }
    let ai = signable_app(&store, client_id, tenant_id)?;
    let app = &store.apps[ai];
    let now = time::OffsetDateTime::now_utc();
    let Some(p) = app.passwords.iter().find(|p| p.secret_text == secret) else {
        return Err(invalid_secret(&app.app_id));
    };
    if now < p.usable_after || now < p.start {
        // Entra answers a not-yet-replicated (or not-yet-valid) secret as an invalid one.
        return Err(invalid_secret(&app.app_id));
    }
    if now >= p.end {
        return Err(entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000222,
            &format!(
                "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                app.app_id
            ),
        ));
    }
    Ok(Caller::App(ai))
}

fn login_with_assertion(
    ctx: &Ctx,
    client_id: &str,
    assertion: &str,
    tenant_id: &str,
) -> Result<Caller, Response> {
    let Some((header, claims)) = decode_jwt(assertion) else {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        ));
    };
    let now = util::now().unix_timestamp();
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64)
        && exp < now
    {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let auds: Vec<String> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let store = ctx.store.read();
    let x5t = header
        .get("x5t")
        .and_then(Value::as_str)
        .and_then(util::b64_decode_any);
    let x5t256 = header
        .get("x5t#S256")
        .and_then(Value::as_str)
        .and_then(util::b64_decode_any);
    let names_cert = |der: &[u8]| {
        use sha1::Digest as _;
        x5t.as_deref() == Some(&sha1::Sha1::digest(der)[..])
            || x5t256.as_deref() == Some(&sha2::Sha256::digest(der)[..])
    };
    if let Some(i) = principal_index(&store, client_id) {
        let p = &store.principals[i];
        if x5t.is_some() || x5t256.is_some() {
            // A certificate credential of rotor's own identity.
            let Some(der) = p.certificates.iter().find(|d| names_cert(d)) else {
                return Err(entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    700027,
                    &format!(
                        "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{}']",
                        x5t.as_deref().map(util::hex_upper).unwrap_or_default()
                    ),
                ));
            };
            check_certificate_assertion(
                ctx, &store, client_id, tenant_id, iss, sub, &auds, &claims,
            )?;
            if let Err(why) = verify_signature(assertion, &header, Some(der)) {
                return Err(entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    700027,
                    &format!("Client assertion failed signature validation. [Reason - {why}]"),
                ));
            }
            return Ok(Caller::Principal(i));
        }
        let ok = p.federated_credentials.iter().any(|f| {
            f.issuer == iss
                && subject_matches(&f.subject, sub)
                && auds.iter().any(|a| a == &f.audience)
        });
        if !ok {
            return Err(entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                70021,
                &format!(
                    "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'.",
                    auds.join(",")
                ),
            ));
        }
        verify_federated(ctx, assertion, &header, &claims, iss)?;
        return Ok(Caller::Principal(i));
    }
    let ai = signable_app(&store, client_id, tenant_id)?;
    let app = &store.apps[ai];
    // Certificate credential: iss = sub = client id, header x5t = a registered thumbprint.
    let nowt = time::OffsetDateTime::now_utc();
    let key = app.keys.iter().find(|k| {
        x5t.as_deref() == Some(&k.thumbprint[..]) || k.key_der.as_deref().is_some_and(names_cert)
    });
    match key {
        None => Err(entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            &format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{}']",
                x5t.as_deref().map(util::hex_upper).unwrap_or_default()
            ),
        )),
        Some(k) if nowt < k.start || nowt >= k.end => Err(entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            "Client assertion failed signature validation: the certificate is not within its validity period.",
        )),
        Some(k) => {
            check_certificate_assertion(
                ctx, &store, client_id, tenant_id, iss, sub, &auds, &claims,
            )?;
            if let Err(why) = verify_signature(assertion, &header, k.key_der.as_deref()) {
                return Err(entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    700027,
                    &format!("Client assertion failed signature validation. [Reason - {why}]"),
                ));
            }
            Ok(Caller::App(ai))
        }
    }
}

/// A federated assertion is checked against its issuer's signing keys, as Entra does with the
/// issuer's JWKS: RS256 only (AADSTS5002738 otherwise), the header's `kid` naming one of the
/// issuer's keys and the signature verifying with it (AADSTS50013), an `exp` (AADSTS50027),
/// `nbf` not in the future (AADSTS700024). The emulator holds the keys of every issuer
/// ([`crate::oidc`]); an issuer whose key was never created signed nothing.
fn verify_federated(
    ctx: &Ctx,
    assertion: &str,
    header: &Value,
    claims: &Value,
    iss: &str,
) -> Result<(), Response> {
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != "RS256" {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            5002738,
            &format!("Invalid JWT token. '{alg}' is not a supported signature algorithm."),
        ));
    }
    if claims.get("exp").and_then(Value::as_i64).is_none() {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed: the assertion has no 'exp' claim.",
        ));
    }
    let now = util::now().unix_timestamp();
    if claims
        .get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| nbf > now + 300)
    {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range (nbf is in the future).",
        ));
    }
    let kid = header.get("kid").and_then(Value::as_str).unwrap_or("");
    let signer = ctx.issuers.lock().get(iss).cloned();
    let Some(signer) = signer.filter(|s| s.kid() == kid) else {
        return Err(entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            50013,
            &format!(
                "Assertion failed signature validation. [Reason - The key was not found., Key ID: '{kid}', Issuer: '{iss}'. The assertion must be signed by one of the issuer's published keys (in tests: Emulator::oidc_signer or POST /_emulator/oidc/token).]"
            ),
        ));
    };
    let verified = assertion.rsplit_once('.').is_some_and(|(signed, sig)| {
        util::b64_decode_any(sig).is_some_and(|sig| signer.verifies(signed.as_bytes(), &sig))
    });
    if !verified {
        return Err(entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            50013,
            "Assertion failed signature validation. [Reason - Key was found, but use of the key to verify the signature failed.]",
        ));
    }
    Ok(())
}

/// The claims Entra checks on a certificate client assertion: `iss` = `sub` = the client id, an
/// `exp`, and `aud` naming this tenant's token endpoint.
#[allow(clippy::too_many_arguments)]
fn check_certificate_assertion(
    ctx: &Ctx,
    store: &Store,
    client_id: &str,
    tenant_id: &str,
    iss: &str,
    sub: &str,
    auds: &[String],
    claims: &Value,
) -> Result<(), Response> {
    if !iss.eq_ignore_ascii_case(client_id) || !sub.eq_ignore_ascii_case(client_id) {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            700023,
            "Client assertion audience claim does not match Realm issuer, or iss/sub do not name the client.",
        ));
    }
    if claims.get("exp").and_then(Value::as_i64).is_none() {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed: the client assertion has no 'exp' claim.",
        ));
    }
    let tenant = &store.tenant_id;
    let token_urls = [
        format!("{}/{tenant}/oauth2/v2.0/token", ctx.main_url),
        format!("{}/{tenant_id}/oauth2/v2.0/token", ctx.main_url),
        format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
        format!("https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token"),
    ];
    if !auds
        .iter()
        .any(|a| token_urls.iter().any(|u| u.eq_ignore_ascii_case(a)))
    {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            700023,
            &format!(
                "Client assertion audience claim does not match Realm issuer. Review the documentation at https://aka.ms/certCreds . Audience: '{}'.",
                auds.join(",")
            ),
        ));
    }
    Ok(())
}

/// Checks a client assertion's signature against the certificate (DER) of the key credential
/// it names: RS256 (PKCS#1 v1.5) or PS256 (PSS), RSA keys only — Entra accepts nothing else.
pub(crate) fn verify_signature(
    assertion: &str,
    header: &Value,
    cert_der: Option<&[u8]>,
) -> Result<(), String> {
    use aws_lc_rs::signature;
    let Some(der) = cert_der else {
        return Err(
            "The key credential has no certificate (only a thumbprint) to verify against.".into(),
        );
    };
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| "The registered certificate cannot be parsed.".to_string())?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err("Only RSA certificates are supported for client assertions.".into());
    }
    let alg: &'static dyn signature::VerificationAlgorithm =
        match header.get("alg").and_then(Value::as_str) {
            Some("RS256") => &signature::RSA_PKCS1_2048_8192_SHA256,
            Some("PS256") => &signature::RSA_PSS_2048_8192_SHA256,
            Some(a) => return Err(format!("The signing algorithm '{a}' is not supported.")),
            None => return Err("The assertion header has no 'alg'.".into()),
        };
    let Some((signed, sig_b64)) = assertion.rsplit_once('.') else {
        return Err("The assertion has no signature.".into());
    };
    let sig = util::b64_decode_any(sig_b64).ok_or("The signature is not base64url.")?;
    signature::UnparsedPublicKey::new(alg, spki.subject_public_key.data.as_ref())
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| "The signature does not match the registered certificate's key.".to_string())
}
