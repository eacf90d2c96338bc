//! Certificate rotation, resumable from Azure's state alone: the Key Vault certificate's
//! versions and pending operation, and the application's key credentials (design note:
//! docs/protocol.md, "Certificates").
//!
//! | module | step |
//! |---|---|
//! | `state.rs` | read the application's key credentials, the certificates, the scope |
//! | `plan.rs` | pure: due, `decide`, the one `removable()` rule (table tests) |
//! | `preflight.rs` | 1. RSA only, lifetime, collection size |
//! | here + [`crate::keyvault::KeyVaults::create_certificate_version`] | 2. a new Key Vault version from its own policy |
//! | `add.rs` | 3. addKey with a proof signed through Key Vault, else PATCH of the whole collection |
//! | `verify.rs` | 4. sign in with a client assertion signed by the new version's key |
//! | `jwt.rs` | proofs and client assertions signed through Key Vault `keys/sign` |
//! | `links.rs` | finding links by thumbprint (current or older versions) |
//! | `cleanup.rs` | 6. removing what rotor added once the grace period is over |
//! | `mod.rs` | the driver: preflight, decide, sync, rotate, the audit record (`kind: certificate`) |

mod add;
mod cleanup;
mod jwt;
pub mod links;
pub(crate) mod plan;
pub mod preflight;
pub(crate) mod state;
mod verify;

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result, Subject};
use crate::model::{
    AuditRecord, CertificateLink, CertificateLinkStatus, CertificateTarget, Confidence,
    CredentialKind, RotateOptions, RotationStatus, SkipReason, TargetRecord, TargetStatus,
};
use crate::policy::Policy;
use crate::progress::{Progress, Step, StepState};
use crate::rotation::fmt_time;
use crate::rotation::record::{Reporter, finish, skip};
use futures::StreamExt;
use plan::Decision;
use state::CertState;
use std::time::Duration;

pub(crate) use cleanup::cleanup;

fn new_record(e: &Engine, link: &CertificateLink, rotation_id: &str) -> AuditRecord {
    let now = e.inner.now();
    AuditRecord {
        kind: CredentialKind::Certificate,
        rotation_id: rotation_id.to_owned(),
        started_at: now,
        finished_at: now,
        actor: e.inner.actor.clone(),
        app_id: link.application_id.clone(),
        app_name: String::new(),
        old_key_id: None,
        new_key_id: None,
        new_expires_at: None,
        confidence: Confidence::High,
        targets: link
            .certificates
            .iter()
            .map(|t| TargetRecord {
                vault_url: t.vault_url.clone(),
                secret_name: t.certificate_name.clone(),
                version: None,
                status: TargetStatus::Skipped,
                error: None,
            })
            .collect(),
        status: RotationStatus::Failed,
        error: None,
        notes: Vec::new(),
        hints: Vec::new(),
        dry_run: false,
        removed_key_ids: Vec::new(),
        old_thumbprint: None,
        new_thumbprint: None,
        skip_reason: None,
        error_subject: None,
    }
}

fn set_cert(rec: &mut AuditRecord, t: &CertificateTarget, version: &str, status: TargetStatus) {
    if let Some(r) = rec.targets.iter_mut().find(|r| {
        r.vault_url == t.vault_url && r.secret_name.eq_ignore_ascii_case(&t.certificate_name)
    }) {
        r.version = Some(version.to_owned());
        r.status = status;
    }
}

fn excluded(
    link: &CertificateLink,
    st_app: &crate::model::Application,
    policy: &Policy,
) -> Option<String> {
    policy
        .excluded(
            &st_app.app_id,
            &st_app.display_name,
            Some(&link.credential_display_name),
            None,
        )
        .or_else(|| {
            link.certificates.iter().find_map(|t| {
                policy.excluded(
                    &st_app.app_id,
                    &st_app.display_name,
                    None,
                    Some(&t.certificate_name),
                )
            })
        })
}

fn lineage_subject(link: &CertificateLink) -> Subject {
    Subject::Lineage {
        app_id: link.application_id.clone(),
        credential_display_name: link.credential_display_name.clone(),
    }
}

fn status_of(
    e: &Engine,
    link: &CertificateLink,
    st: &CertState,
    policy: &Policy,
) -> CertificateLinkStatus {
    let now = e.inner.now();
    let exc = excluded(link, &st.app, policy);
    let cur = st.current().cloned();
    let decision = plan::decide(st, policy, &RotateOptions::default(), now);
    let (due, reason, in_progress) = match &decision {
        Decision::InProgress(i) => (
            false,
            Some(format!(
                "rotation in progress: Key Vault is making a new version of {}",
                st.certs[*i].target
            )),
            true,
        ),
        Decision::NoCertificate(i) => (
            true,
            Some(format!("{} does not exist", st.certs[*i].target)),
            false,
        ),
        Decision::Refused(m) => (true, Some(m.clone()), false),
        Decision::NotDue { .. } => (false, None, false),
        Decision::Act { sync, rotate } => {
            let mut parts = Vec::new();
            for i in sync {
                if let Some(v) = &st.certs[*i].current {
                    parts.push(format!(
                        "{} has a newer version {} (thumbprint {}) that the application lacks",
                        st.certs[*i].target, v.version, v.thumbprint
                    ));
                }
            }
            if let Some(r) = rotate {
                parts.push(r.clone());
            }
            (true, Some(parts.join("; ")), false)
        }
    };
    let pending_version = st
        .missing()
        .first()
        .and_then(|i| st.certs[*i].current.as_ref().map(|v| v.version.clone()));
    let previous: Vec<&crate::model::KeyCredential> = match &cur {
        Some(c) => st
            .lineage
            .iter()
            .take_while(|k| k.key_id != c.key_id)
            .collect(),
        None => Vec::new(),
    };
    CertificateLinkStatus {
        current_key_id: cur.as_ref().map(|c| c.key_id.clone()),
        current_thumbprint: cur.as_ref().and_then(|c| c.thumbprint.clone()),
        current_expires_at: cur.as_ref().map(|c| c.end),
        rotated_at: cur.as_ref().map(|c| c.start),
        next_rotation_at: plan::next_rotation_at(st, policy),
        rotation_due: due && exc.is_none(),
        due_reason: if exc.is_some() { None } else { reason },
        excluded: exc,
        previous_key_ids: previous.iter().map(|k| k.key_id.clone()).collect(),
        cleanup_from: plan::cleanup_from(st, previous.iter().copied(), policy),
        certificate_versions: st
            .certs
            .iter()
            .filter_map(|c| Some((c.target.key(), c.current.as_ref()?.version.clone())))
            .collect(),
        pending_version,
        in_progress,
    }
}

pub(crate) async fn inspect(
    e: &Engine,
    link: &CertificateLink,
    policy: &Policy,
) -> Result<CertificateLinkStatus> {
    let app = e.get_application(&link.application_id).await?;
    let st = state::read(e, link, app, false).await?;
    Ok(status_of(e, link, &st, policy))
}

pub(crate) async fn certificate_links(e: &Engine, config: &Config) -> Result<Vec<CertificateLink>> {
    let apps = e.discover(None).await?;
    certificate_links_of(e, &apps, config).await
}

/// [`certificate_links`] of applications already discovered (no Graph request; applications
/// without key credentials cost nothing).
pub(crate) async fn certificate_links_of(
    e: &Engine,
    apps: &[crate::model::Application],
    config: &Config,
) -> Result<Vec<CertificateLink>> {
    if apps.iter().all(|a| a.key_credentials.is_empty()) {
        return Ok(Vec::new());
    }
    let vaults = e.resolve_vaults(config).await?;
    links::find(e, apps, &vaults, &config.policy).await
}

pub(crate) async fn due(
    e: &Engine,
    config: &Config,
) -> Result<Vec<(CertificateLink, CertificateLinkStatus)>> {
    let links = certificate_links(e, config).await?;
    due_of(e, links, config).await
}

/// The links of `links` whose rotation (or sync) is due, with their status; a link whose state
/// cannot be read is kept (its rotation reports the error).
pub(crate) async fn due_of(
    e: &Engine,
    links: Vec<CertificateLink>,
    config: &Config,
) -> Result<Vec<(CertificateLink, CertificateLinkStatus)>> {
    let conc = config.policy.max_concurrent.max(1);
    let each: Vec<_> = links
        .into_iter()
        .map(|l| async move {
            let s = inspect(e, &l, &config.policy).await;
            (l, s)
        })
        .collect();
    let all: Vec<_> = futures::stream::iter(each).buffered(conc).collect().await;
    let mut out = Vec::new();
    for (l, s) in all {
        match s {
            Ok(s) if s.rotation_due => out.push((l, s)),
            Ok(_) => {}
            Err(err) => out.push((
                l,
                CertificateLinkStatus {
                    rotation_due: true,
                    due_reason: Some(format!("its state could not be read: {err}")),
                    ..Default::default()
                },
            )),
        }
    }
    Ok(out)
}

pub(crate) async fn adopt(e: &Engine, config: &Config, key_id: &str) -> Result<CertificateLink> {
    let apps = e.discover(None).await?;
    let Some(app) = apps.iter().find(|a| {
        a.key_credentials
            .iter()
            .any(|k| k.key_id.eq_ignore_ascii_case(key_id))
    }) else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("adopting key credential {key_id}"),
            "no application rotor can see has a key credential with this keyId",
        )
        .with_hint("`rotor discover` lists the applications and their certificates"));
    };
    let Some(k) = app
        .key_credentials
        .iter()
        .find(|k| k.key_id.eq_ignore_ascii_case(key_id))
    else {
        return Err(Error::other("adopting a key credential", "vanished"));
    };
    let lineage = k.lineage_name().to_owned();
    let vaults = e.resolve_vaults(config).await?;
    let links = links::find(e, std::slice::from_ref(app), &vaults, &config.policy).await?;
    links
        .into_iter()
        .find(|l| l.credential_display_name == lineage)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("adopting key credential {key_id} of {app}"),
                "no Key Vault certificate in the configured vaults holds it (no version's thumbprint matches the lineage)",
            )
            .with_hint("add the vault holding the certificate to `vaults` in rotor.toml")
        })
}

pub(crate) async fn rotate(
    e: &Engine,
    link: &CertificateLink,
    policy: &Policy,
    opts: &RotateOptions,
    progress: &dyn Progress,
) -> AuditRecord {
    let rotation_id = uuid::Uuid::new_v4().to_string();
    let mut rec = new_record(e, link, &rotation_id);
    rec.dry_run = opts.dry_run;
    let rep = Reporter::new(progress, &rotation_id, &link.application_id);
    let lock = e.inner.link_lock(
        &link.application_id,
        &format!("certificate:{}", link.credential_display_name),
    );
    let _guard = lock.lock().await;
    let result = crate::http::with_limit(
        policy.max_concurrent,
        run(e, link, policy, opts, &rep, &mut rec),
    )
    .await
    .map_err(|err| {
        if err.subject().is_some() {
            err
        } else {
            err.with_subject(Subject::Application(link.application_id.clone()))
        }
    });
    finish(e, &mut rec, &rep, result);
    rec
}

async fn read_state(e: &Engine, link: &CertificateLink) -> Result<CertState> {
    let app = e.inner.fetch_app(&link.application_id).await?;
    state::read(e, link, app, false).await
}

/// How long a run that found another operation making the version waits for that run's add
/// to show on the application before adding the version itself.
const OTHER_RUNS_ADD_WITHIN: Duration = Duration::from_secs(10);

/// Waits (up to the verification timeout) for a certificate operation in progress.
async fn wait_for_operation(e: &Engine, t: &CertificateTarget) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + e.inner.verify_timeout;
    loop {
        let op = e.inner.vaults.certificate_operation(t).await?;
        if !op.as_ref().is_some_and(|o| o.in_progress()) {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn run(
    e: &Engine,
    link: &CertificateLink,
    policy: &Policy,
    opts: &RotateOptions,
    rep: &Reporter<'_>,
    rec: &mut AuditRecord,
) -> Result<()> {
    rep.emit(
        Step::Preflight,
        StepState::Started,
        None,
        format!(
            "reading {} and {} certificate(s)",
            link.application_id,
            link.certificates.len()
        ),
    );
    if link.certificates.is_empty() {
        return Err(
            Error::usage(format!("rotating {link}"), "the link has no certificates").with_hint(
                "add the Key Vault certificate (vault_url, certificate name) to the link",
            ),
        );
    }
    crate::rotation::preflight::check_history(e, opts.dry_run)?;
    let mut st = read_state(e, link).await?;
    rec.app_name = st.app.display_name.clone();
    *rep.app_name.lock() = st.app.display_name.clone();
    if let Some(x) = excluded(link, &st.app, policy) {
        rec.status = RotationStatus::Excluded;
        rec.notes
            .push(format!("excluded by policy (`{x}`); nothing was changed"));
        return Ok(());
    }
    let mut decision = plan::decide(&st, policy, opts, e.inner.now());
    if let Decision::InProgress(i) = decision {
        // a run (or Key Vault AutoRenew) is making a version: wait for it instead of making another
        let t = st.certs[i].target.clone();
        rep.emit(
            Step::Create,
            StepState::Waiting,
            None,
            format!("Key Vault is making a new version of {t}; waiting for it"),
        );
        if wait_for_operation(e, &t).await? {
            st = read_state(e, link).await?;
            decision = plan::decide(&st, policy, opts, e.inner.now());
        }
    }
    if let Some(c) = st.current() {
        rec.old_key_id = Some(c.key_id.clone());
        rec.old_thumbprint = c.thumbprint.clone();
    }
    for c in &st.certs {
        if let Some(v) = &c.current {
            set_cert(rec, &c.target, &v.version, TargetStatus::Skipped);
        }
    }
    let (sync, rotate) = match decision {
        Decision::InProgress(i) => {
            skip(
                rec,
                SkipReason::InProgress,
                format!(
                    "rotation in progress: Key Vault is still making a new version of {} after {} s; the next run adds it",
                    st.certs[i].target,
                    e.inner.verify_timeout.as_secs()
                ),
            );
            return Ok(());
        }
        Decision::NoCertificate(i) => {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("rotating {link}"),
                format!("{} does not exist (or has no completed version)", st.certs[i].target),
            )
            .with_hint("check the certificate name and vault of the link; `rotor match` lists the certificates that hold the application's key credentials"));
        }
        Decision::Refused(m) => {
            return Err(
                Error::new(ErrorKind::Conflict, format!("rotating {link}"), m)
                    .with_subject(lineage_subject(link)),
            );
        }
        Decision::NotDue { next } => {
            skip(
                rec,
                SkipReason::NotDue,
                match next {
                    Some(n) => format!("not due: next rotation at {}", fmt_time(n)),
                    None => "not due".to_owned(),
                },
            );
            rep.emit(Step::Preflight, StepState::Skipped, None, "not due");
            return Ok(());
        }
        Decision::Act { sync, rotate } => (sync, rotate),
    };
    // Preflight, before anything changes.
    let adds = sync.len() + usize::from(rotate.is_some());
    preflight::check_room(&st, adds)?;
    for i in &sync {
        let c = &st.certs[*i];
        if let Some(v) = &c.current {
            preflight::check_rsa(&c.target, v)?;
        }
    }
    if rotate.is_some() {
        let c = &st.certs[0];
        if let Some(v) = &c.current {
            preflight::check_rsa(&c.target, v)?;
            preflight::check_lifetime(&c.target, v, policy)?;
        }
    }
    if !opts.dry_run {
        // every add is verified by signing with the version added: prove the right first
        let probe = sync
            .first()
            .copied()
            .or(rotate.as_ref().map(|_| 0))
            .and_then(|i| Some((&st.certs[i].target, st.certs[i].current.as_ref()?)));
        if let Some((t, v)) = probe {
            preflight::probe_sign(e, t, &v.version).await?;
        }
    }
    rep.emit(Step::Preflight, StepState::Done, None, "ready");
    let display = format!("{} rotor:{}", link.credential_display_name, rec.rotation_id);
    if opts.dry_run {
        rec.status = RotationStatus::Skipped;
        rec.skip_reason = Some(SkipReason::DryRun);
        for i in &sync {
            let c = &st.certs[*i];
            if let Some(v) = &c.current {
                rec.notes.push(format!(
                    "would add version {} of {} (thumbprint {}) to the application as `{display}`",
                    v.version, c.target, v.thumbprint
                ));
                set_cert(rec, &c.target, &v.version, TargetStatus::WouldUpdate);
            }
        }
        if let Some(r) = &rotate {
            rec.notes.push(format!("rotating: {r}"));
            rec.notes.push(format!(
                "would make a new version of {} from its policy, add it to the application as `{display}` and sign in with it",
                st.certs[0].target
            ));
            set_cert(
                rec,
                &st.certs[0].target,
                st.certs[0]
                    .current
                    .as_ref()
                    .map(|v| v.version.as_str())
                    .unwrap_or(""),
                TargetStatus::WouldUpdate,
            );
        }
        return Ok(());
    }
    // Sync first: every certificate's current version on the application.
    for i in &sync {
        if rep.cancelled() {
            return Err(crate::rotation::record::cancelled_error_for(
                &link.to_string(),
                "adding a key credential",
            ));
        }
        let c = st.certs[*i].clone();
        let Some(v) = c.current.clone() else { continue };
        rec.notes.push(format!(
            "syncing: version {} of {} (thumbprint {}) is not on the application (made by Key Vault AutoRenew, by hand, or by a run that stopped)",
            v.version, c.target, v.thumbprint
        ));
        add_and_verify(e, &st, &c.target, &v, &display, rep, rec).await?;
        if rotate.is_some() || sync.len() > 1 {
            st = read_state(e, link).await?;
        }
    }
    let Some(reason) = rotate else {
        rec.status = RotationStatus::Success;
        return Ok(());
    };
    rec.notes.push(format!("rotating: {reason}"));
    if rep.cancelled() {
        return Err(crate::rotation::record::cancelled_error_for(
            &link.to_string(),
            "creating a certificate version",
        ));
    }
    let c = st.certs[0].clone();
    let Some(cur) = c.current.clone() else {
        return Err(Error::other(
            format!("rotating {link}"),
            "the certificate vanished",
        ));
    };
    let Some(policy_kv) = cur.policy.clone() else {
        return Err(Error::new(
            ErrorKind::Other,
            format!("reading the policy of {}", c.target),
            "Key Vault returned the certificate without its policy",
        ));
    };
    rep.emit(
        Step::Create,
        StepState::Started,
        None,
        format!("making a new version of {} from its policy", c.target),
    );
    let v = match e
        .inner
        .vaults
        .create_certificate_version(&c.target, policy_kv, e.inner.verify_timeout)
        .await
    {
        Ok(v) => v,
        Err(err) if err.status() == Some(409) => {
            // Key Vault refuses a create while another operation on the certificate is pending:
            // another run (or AutoRenew) is making the version this request asked for. Wait
            // for it and sync it; never make a second one.
            rep.emit(
                Step::Create,
                StepState::Waiting,
                None,
                format!(
                    "Key Vault is already making a new version of {}; waiting for it",
                    c.target
                ),
            );
            if !wait_for_operation(e, &c.target).await? {
                skip(
                    rec,
                    SkipReason::InProgress,
                    format!(
                        "rotation in progress: another operation is still making a new version of {} after {} s; the next run adds it",
                        c.target,
                        e.inner.verify_timeout.as_secs()
                    ),
                );
                return Ok(());
            }
            let mut st2 = read_state(e, link).await?;
            let Some(v) = st2.certs.first().and_then(|c| c.current.clone()) else {
                return Err(Error::other(
                    format!("rotating {link}"),
                    "the certificate vanished",
                ));
            };
            if v.version == cur.version {
                // No other operation made a version (a 409 for another reason, e.g. a
                // soft-deleted certificate, or the pending operation failed): nothing was
                // rotated, and saying so is the only true answer.
                return Err(err);
            }
            // The run that made it adds it right after completion; give that add (and Graph's
            // read lag) time to show before adding it ourselves, so it is not added twice.
            let deadline = tokio::time::Instant::now() + OTHER_RUNS_ADD_WITHIN;
            while st2.key_with_thumbprint(&v.thumbprint).is_none()
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
                e.inner.invalidate(&link.application_id);
                st2 = read_state(e, link).await?;
            }
            rec.notes.push(format!(
                "another operation made version {} of {} while this run was about to: it is used instead of making a second one",
                v.version, c.target
            ));
            if let Some(k) = st2.key_with_thumbprint(&v.thumbprint) {
                set_cert(rec, &c.target, &v.version, TargetStatus::Unchanged);
                rec.new_key_id = Some(k.key_id.clone());
                rec.new_thumbprint = Some(v.thumbprint.clone());
                rec.status = RotationStatus::Success;
                return Ok(());
            }
            add_and_verify(e, &st2, &c.target, &v, &display, rep, rec).await?;
            rec.status = RotationStatus::Success;
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    rep.emit(
        Step::Create,
        StepState::Done,
        None,
        format!("Key Vault made version {}", v.version),
    );
    // Right away, from the poller's own final read: the window between Key Vault completing
    // the version and Entra accepting it lasts only as long as the add.
    add_and_verify(e, &st, &c.target, &v, &display, rep, rec).await?;
    rec.status = RotationStatus::Success;
    Ok(())
}

/// Steps 3 and 4 for one certificate version.
async fn add_and_verify(
    e: &Engine,
    st: &CertState,
    t: &CertificateTarget,
    v: &crate::keyvault::CertificateVersion,
    display: &str,
    rep: &Reporter<'_>,
    rec: &mut AuditRecord,
) -> Result<()> {
    rep.emit(
        Step::UpdateTarget,
        StepState::Started,
        None,
        format!("adding version {} of {t} to the application", v.version),
    );
    let (k, path) = match add::run(e, st, t, v, display).await {
        Ok(x) => x,
        Err(err) => {
            set_cert(rec, t, &v.version, TargetStatus::Failed);
            rep.emit(Step::UpdateTarget, StepState::Failed, None, err.to_string());
            return Err(err.with_hint(format!(
                "version {} stays in Key Vault; re-run to add it to the application",
                v.version
            )));
        }
    };
    e.inner.invalidate(&st.app.app_id);
    rec.notes.push(format!(
        "key credential {} ({}): {}",
        k.key_id,
        v.thumbprint,
        path.describe()
    ));
    rec.new_key_id = Some(k.key_id.clone());
    rec.new_thumbprint = Some(v.thumbprint.clone());
    rec.new_expires_at = v.expires.or(Some(k.end));
    rep.emit(Step::UpdateTarget, StepState::Done, None, path.describe());
    rep.emit(
        Step::Verify,
        StepState::Started,
        None,
        "signing in with the new certificate",
    );
    match verify::run(e, &st.app.app_id, t, &v.version, &v.thumbprint).await {
        Ok(verify::Verified::SignedIn) => rep.emit(
            Step::Verify,
            StepState::Done,
            None,
            "the new certificate signs in",
        ),
        Ok(verify::Verified::NoServicePrincipal) => {
            rec.notes.push("verified by read-back: the application has no service principal (AADSTS7000229), so signing in as it is impossible".to_owned());
            rep.emit(
                Step::Verify,
                StepState::Skipped,
                None,
                "no service principal",
            );
        }
        Err(err) => {
            set_cert(rec, t, &v.version, TargetStatus::Failed);
            rep.emit(Step::Verify, StepState::Failed, None, err.to_string());
            return Err(err);
        }
    }
    set_cert(rec, t, &v.version, TargetStatus::Updated);
    Ok(())
}
