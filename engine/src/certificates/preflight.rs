//! Step 1: refusals before anything changes — RSA only, a lifetime that outlasts the rotation
//! window, room in the application's credential collections.

use super::state::CertState;
use crate::error::{Error, ErrorKind, Result};
use crate::keyvault::CertificateVersion;
use crate::model::CertificateTarget;
use crate::policy::Policy;

/// At most this many key credentials after an add (Entra answers
/// `Directory_ResourceSizeExceeded` above about 600).
pub const MAX_KEY_CREDENTIALS: usize = 600;
/// At most this many credentials (key + password) in all after an add (Entra's limit of about
/// 1,000 items across an application's collections).
pub const MAX_CREDENTIALS: usize = 1000;

/// Entra accepts only RSA keys for certificate client assertions.
pub(crate) fn check_rsa(t: &CertificateTarget, v: &CertificateVersion) -> Result<()> {
    match v.key_type().as_deref() {
        None | Some("RSA") | Some("RSA-HSM") => Ok(()),
        Some(k) => Err(Error::new(
            ErrorKind::Config,
            format!("checking the policy of {t}"),
            format!("its key type is {k}; Entra ID accepts only RSA certificates for application sign-in"),
        )
        .with_hint("set the certificate policy's key type to RSA (key_props.kty = RSA, key size 2048 or more), then rotate")),
    }
}

/// A new version must outlast the rotation window, or it would be due the moment it exists.
pub(crate) fn check_lifetime(
    t: &CertificateTarget,
    v: &CertificateVersion,
    policy: &Policy,
) -> Result<()> {
    let Some(months) = v.validity_months() else {
        return Ok(());
    };
    let min_days = i64::from(months.max(0)) * 28;
    if min_days <= i64::from(policy.rotate_before_expiry_days) {
        return Err(Error::new(
            ErrorKind::Config,
            format!("checking the policy of {t}"),
            format!(
                "its validity is {months} month(s), not longer than rotate_before_expiry_days ({} days): every new version would be due at once",
                policy.rotate_before_expiry_days
            ),
        )
        .with_hint("raise the certificate policy's validity_months, or lower rotate_before_expiry_days in the [policy] of rotor.toml"));
    }
    Ok(())
}

/// Room for `adds` more key credentials.
pub(crate) fn check_room(st: &CertState, adds: usize) -> Result<()> {
    let keys = st.all.len() + adds;
    let total = keys + st.app.password_credentials.len();
    if keys > MAX_KEY_CREDENTIALS || total > MAX_CREDENTIALS {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!("adding a key credential to {}", st.app),
            format!(
                "it would hold {keys} key credentials ({total} credentials in all), beyond Entra's object size limits ({MAX_KEY_CREDENTIALS} key credentials, {MAX_CREDENTIALS} in all)"
            ),
        )
        .with_hint("remove unused key credentials first (`rotor cleanup` removes the ones rotor added whose grace period is over)"));
    }
    Ok(())
}

/// Proves that Key Vault lets rotor sign with `version` of `t` (every proof and the verifying
/// sign-in need it), before anything changes: otherwise a new version would exist that rotor
/// cannot add or prove.
pub(crate) async fn probe_sign(
    e: &crate::engine::Engine,
    t: &CertificateTarget,
    version: &str,
) -> Result<()> {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(b"rotor preflight: may sign");
    e.inner
        .vaults
        .sign_rs256(t, version, &digest)
        .await
        .map(|_| ())
}
