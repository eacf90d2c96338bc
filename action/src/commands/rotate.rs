//! `rotor rotate`: one rotation, bulk rotation, or every due rotation.

use std::process::ExitCode;

use rotor_engine::{AuditRecord, Engine, Link, RotateOptions, RotationStatus, TargetStatus};
use serde::Serialize;

use super::confirm::{self, ChangeArgs};
use super::lineage::{self, AnyLink, AnyStatus};
use super::output;
use super::{Context, UsageError};
use crate::cli::OutputFormat;

/// `rotor rotate --app APP_ID --key-id KEY_ID [--expiry-days N]`, `--app A --app B`, `--due`
#[derive(Debug, Clone, clap::Args)]
pub struct RotateArgs {
    /// Application (appId) to rotate; repeat for bulk rotation of every matched credential of
    /// each app. With --due: only the due links of these apps.
    #[arg(long = "app", value_name = "APP_ID", required_unless_present = "due")]
    pub apps: Vec<String>,
    /// The credential (keyId) to rotate — a client secret or a certificate credential; needs
    /// exactly one --app.
    #[arg(long, value_name = "KEY_ID")]
    pub key_id: Option<String>,
    /// Rotate everything due per policy (expiring within `rotate_before_expiry_days`, confidence
    /// at or above `min_confidence`, not excluded).
    #[arg(long, conflicts_with = "key_id")]
    pub due: bool,
    /// Validity of the new credential in days, 1 to 3650 (default: policy
    /// `new_secret_validity_days`).
    #[arg(long, value_name = "N", value_parser = expiry_days_parser())]
    pub expiry_days: Option<u32>,
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// `--output json` shape of `rotor rotate` (docs/cli.md): one audit record per rotation attempt.
#[derive(Debug, Serialize)]
pub struct RotateJson {
    pub rotations: Vec<AuditRecord>,
    /// Vaults that could not be listed: the links in them were not found this run; omitted when
    /// none (exit 1 then).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vault_errors: Vec<rotor_engine::VaultFailure>,
}

/// One link (secret or certificate) selected for rotation, with what refresh knows about it.
#[derive(Debug, Clone)]
pub struct Planned {
    pub link: AnyLink,
    pub app_name: String,
    pub status: Option<AnyStatus>,
    /// The exclusion pattern that applies (`name:legacy-*`): reported as excluded, never rotated.
    pub excluded: Option<String>,
}

/// Checks flag combinations clap cannot express.
fn validate(args: &RotateArgs) -> Result<(), UsageError> {
    if args.key_id.is_some() && args.apps.len() != 1 {
        return Err(UsageError::new(format!(
            "reading arguments: --key-id needs exactly one --app (got {})",
            args.apps.len()
        ))
        .hint("rotate one credential: rotor rotate --app <APP_ID> --key-id <KEY_ID>")
        .hint("rotate every matched credential of several apps: rotor rotate --app A --app B"));
    }
    Ok(())
}

/// `--expiry-days`: the range of policy `new_secret_validity_days` (clap refuses anything else,
/// exit 2, naming the flag and the range).
fn expiry_days_parser() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(rotor_engine::policy::NEW_SECRET_VALIDITY_DAYS.range())
}

/// The links of some applications, as [`links_for_apps_with_exclusions`] without the excluded
/// lineages.
pub async fn links_for_apps(
    ctx: &Context,
    engine: &Engine,
    app_ids: &[String],
) -> anyhow::Result<(Vec<Link>, Vec<rotor_engine::Application>)> {
    let (links, apps, _) = links_for_apps_with_exclusions(ctx, engine, app_ids).await?;
    Ok((links, apps))
}

/// The links of some applications only: matching runs over those apps (not the whole tenant) and
/// groups matches at or above the policy minimum, not excluded, per credential lineage — the
/// same grouping as [`Engine::links`]. Also returns the lineages that matched but are excluded by
/// policy entirely, with the pattern (so they can be reported as excluded).
pub async fn links_for_apps_with_exclusions(
    ctx: &Context,
    engine: &Engine,
    app_ids: &[String],
) -> anyhow::Result<(
    Vec<Link>,
    Vec<rotor_engine::Application>,
    Vec<(Link, String)>,
)> {
    let mut apps = Vec::new();
    for id in app_ids {
        let app = engine.get_application(id).await?;
        if !apps
            .iter()
            .any(|a: &rotor_engine::Application| a.app_id == app.app_id)
        {
            apps.push(app);
        }
    }
    let vaults = ensure_vaults(ctx, engine).await?;
    let policy = &ctx.config().policy;
    let report = engine.match_secrets(&apps, &vaults, policy).await?;
    let links = rotor_engine::rotation::links_from_matches(&report, &apps, policy);
    let mut excluded: Vec<(Link, String)> = Vec::new();
    for m in &report.matches {
        let Some(pattern) = &m.excluded else { continue };
        // Client secrets only (certificates are not rotated yet).
        let Some(lineage) = apps
            .iter()
            .find(|a| a.app_id == m.app_id)
            .and_then(|a| a.password(&m.key_id))
            .map(|c| c.lineage_name().to_owned())
        else {
            continue;
        };
        if links
            .iter()
            .any(|l| l.application_id == m.app_id && l.credential_display_name == lineage)
        {
            continue; // only some targets are excluded: the link goes on without them
        }
        match excluded
            .iter_mut()
            .find(|(l, _)| l.application_id == m.app_id && l.credential_display_name == lineage)
        {
            Some((l, _)) => {
                l.targets.insert(m.target());
            }
            None => excluded.push((
                Link {
                    application_id: m.app_id.clone(),
                    credential_display_name: lineage,
                    targets: [m.target()].into_iter().collect(),
                },
                pattern.clone(),
            )),
        }
    }
    Ok((links, apps, excluded))
}

fn sort_plan(planned: &mut [Planned]) {
    planned.sort_by(|a, b| {
        (
            a.app_name.to_lowercase(),
            a.link.credential_display_name(),
            a.link.is_certificate(),
        )
            .cmp(&(
                b.app_name.to_lowercase(),
                b.link.credential_display_name(),
                b.link.is_certificate(),
            ))
    });
}

/// The links `args` selects: `--due` (what policy says is due, optionally of `--app`s only),
/// `--app --key-id` (one link, adopted from tags and matching), or `--app A --app B` (every
/// matched lineage of those apps). The second value is whether rotation is forced (explicit
/// requests rotate even when not due).
pub async fn select(
    ctx: &Context,
    engine: &Engine,
    args: &RotateArgs,
) -> anyhow::Result<(Vec<Planned>, bool)> {
    let policy = &ctx.config().policy;
    let mut planned = Vec::new();
    if args.due && args.apps.is_empty() {
        ensure_vaults(ctx, engine).await?;
        for (link, status) in lineage::due_all(engine, ctx.config()).await? {
            let app_name = app_name(engine, link.application_id()).await;
            planned.push(Planned {
                link,
                app_name,
                status: Some(status),
                excluded: None,
            });
        }
        sort_plan(&mut planned);
        return Ok((planned, false));
    }
    if let Some(key_id) = &args.key_id {
        let app_id = &args.apps[0];
        let vaults = ensure_vaults(ctx, engine).await?;
        let app = engine.get_application(app_id).await?;
        if app
            .key_credentials
            .iter()
            .any(|k| k.key_id.eq_ignore_ascii_case(key_id))
        {
            // A certificate credential: its lineage and the Key Vault certificate(s) holding it.
            // An excluded lineage or certificate forms no link: it is reported as excluded.
            if let Some(p) = excluded_certificate(ctx, engine, &app, key_id, &vaults).await? {
                planned.push(p);
                return Ok((planned, true));
            }
            let link = engine.adopt_certificate(ctx.config(), key_id).await?;
            let status = engine.inspect_certificate_link(&link, policy).await?;
            planned.push(Planned {
                link: AnyLink::Certificate(link),
                app_name: app.display_name.clone(),
                status: Some(AnyStatus::Certificate(status)),
                excluded: None,
            });
            return Ok((planned, true));
        }
        if let Some(cred) = app.password(key_id)
            && let Some(pattern) = policy.excluded(
                &app.app_id,
                &app.display_name,
                Some(cred.lineage_name()),
                None,
            )
        {
            planned.push(Planned {
                link: AnyLink::Secret(Link {
                    application_id: app.app_id.clone(),
                    credential_display_name: cred.lineage_name().to_owned(),
                    targets: Default::default(),
                }),
                app_name: app.display_name.clone(),
                status: None,
                excluded: Some(pattern),
            });
            return Ok((planned, true));
        }
        let link = engine.adopt(app_id, key_id, &vaults, policy).await?;
        let status = engine.inspect_link(&link, policy).await?;
        planned.push(Planned {
            link: AnyLink::Secret(link),
            app_name: app.display_name.clone(),
            status: Some(AnyStatus::Secret(status)),
            excluded: None,
        });
        return Ok((planned, true));
    }
    let (links, apps, excluded) = links_for_apps_with_exclusions(ctx, engine, &args.apps).await?;
    let cert_links = certificate_links_of(ctx, engine, &apps).await?;
    for (link, pattern) in excluded {
        let app_name = apps
            .iter()
            .find(|a| a.app_id == link.application_id)
            .map(|a| a.display_name.clone())
            .unwrap_or_default();
        planned.push(Planned {
            link: AnyLink::Secret(link),
            app_name,
            status: None,
            excluded: Some(pattern),
        });
    }
    for app in &apps {
        let mine: Vec<&Link> = links
            .iter()
            .filter(|l| l.application_id.eq_ignore_ascii_case(&app.app_id))
            .collect();
        let certs: Vec<&rotor_engine::CertificateLink> = cert_links
            .iter()
            .filter(|l| l.application_id.eq_ignore_ascii_case(&app.app_id))
            .collect();
        let has_excluded = planned
            .iter()
            .any(|p| p.excluded.is_some() && p.link.application_id() == app.app_id);
        if mine.is_empty() && certs.is_empty() && !args.due && !has_excluded {
            return Err(rotor_engine::Error::new(
                rotor_engine::ErrorKind::NotFound,
                format!(
                    "selecting what to rotate for application `{}` ({})",
                    app.display_name, app.app_id
                ),
                format!(
                    "no credential of it is linked to a Key Vault secret with confidence {} or above, and no certificate credential to a Key Vault certificate",
                    policy.min_confidence
                ),
            )
            .with_hint(format!(
                "see what matching found and why: rotor match --app {}",
                app.app_id
            ))
            .with_hint("raise the confidence: tag the Key Vault secret with `app-id`/`app-name`, or name it `{app-name}-client-secret`")
            .with_hint("or lower `min_confidence` in the [policy] of rotor.toml (MEDIUM, LOW) after checking the matches by hand; a candidate tagged for another application is never written at any level")
            .into());
        }
        for link in mine {
            let status = engine.inspect_link(link, policy).await?;
            if args.due && !status.rotation_due {
                continue;
            }
            planned.push(Planned {
                link: AnyLink::Secret(link.clone()),
                app_name: app.display_name.clone(),
                status: Some(AnyStatus::Secret(status)),
                excluded: None,
            });
        }
        for link in certs {
            let status = engine.inspect_certificate_link(link, policy).await?;
            if args.due && !status.rotation_due {
                continue;
            }
            planned.push(Planned {
                link: AnyLink::Certificate(link.clone()),
                app_name: app.display_name.clone(),
                status: Some(AnyStatus::Certificate(status)),
                excluded: None,
            });
        }
    }
    sort_plan(&mut planned);
    Ok((planned, !args.due))
}

/// The plan entry of key credential `key_id` when policy excludes it: by application or lineage
/// name, or because matching links it to a Key Vault certificate an exclusion names (the engine
/// forms no link then, so this asks matching which pattern applies).
async fn excluded_certificate(
    ctx: &Context,
    engine: &Engine,
    app: &rotor_engine::Application,
    key_id: &str,
    vaults: &[url::Url],
) -> anyhow::Result<Option<Planned>> {
    let policy = &ctx.config().policy;
    let Some(k) = app
        .key_credentials
        .iter()
        .find(|k| k.key_id.eq_ignore_ascii_case(key_id))
    else {
        return Ok(None);
    };
    let lineage = key_lineage(k).to_owned();
    let mut link = rotor_engine::CertificateLink {
        application_id: app.app_id.clone(),
        credential_display_name: lineage.clone(),
        certificates: Default::default(),
    };
    let mut pattern = policy.excluded(&app.app_id, &app.display_name, Some(&lineage), None);
    if pattern.is_none() {
        let report = engine
            .match_secrets(std::slice::from_ref(app), vaults, policy)
            .await?;
        for m in report.matches.iter().filter(|m| {
            m.kind == rotor_engine::CredentialKind::Certificate
                && m.key_id.eq_ignore_ascii_case(key_id)
                && m.excluded.is_some()
        }) {
            pattern = pattern.or(m.excluded.clone());
            link.certificates
                .insert(rotor_engine::CertificateTarget::new(
                    m.vault_url.clone(),
                    m.secret_name.clone(),
                ));
        }
    }
    Ok(pattern.map(|pattern| Planned {
        link: AnyLink::Certificate(link),
        app_name: app.display_name.clone(),
        status: None,
        excluded: Some(pattern),
    }))
}

/// The lineage name of a key credential (its display name without ` rotor:<id>`).
fn key_lineage(k: &rotor_engine::KeyCredential) -> &str {
    let n = k.display_name.as_deref().unwrap_or("");
    n.rfind(" rotor:").map_or(n, |i| &n[..i])
}

/// The certificate links of some applications: for each certificate credential lineage, the
/// link [`Engine::adopt_certificate`] builds from its newest key credential (the Key Vault
/// certificates whose thumbprint the lineage holds). A lineage no Key Vault certificate holds
/// is no link. Applications without certificate credentials cost no request.
pub async fn certificate_links_of(
    ctx: &Context,
    engine: &Engine,
    apps: &[rotor_engine::Application],
) -> anyhow::Result<Vec<rotor_engine::CertificateLink>> {
    let mut out: Vec<rotor_engine::CertificateLink> = Vec::new();
    for app in apps {
        let mut lineages: Vec<&rotor_engine::KeyCredential> = Vec::new();
        for k in &app.key_credentials {
            match lineages
                .iter_mut()
                .find(|n| key_lineage(n) == key_lineage(k))
            {
                Some(newest) if newest.start < k.start => *newest = k,
                Some(_) => {}
                None => lineages.push(k),
            }
        }
        for k in lineages {
            match engine.adopt_certificate(ctx.config(), &k.key_id).await {
                Ok(link) => {
                    if !out.iter().any(|l| {
                        l.application_id == link.application_id
                            && l.credential_display_name == link.credential_display_name
                    }) {
                        out.push(link);
                    }
                }
                Err(e) if e.kind() == rotor_engine::ErrorKind::NotFound => {
                    tracing::debug!(
                        "certificate credential {} is in no Key Vault: {e}",
                        k.key_id
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(out)
}

async fn ensure_vaults(ctx: &Context, engine: &Engine) -> anyhow::Result<Vec<url::Url>> {
    let vaults = engine.resolve_vaults(ctx.config()).await?;
    if vaults.is_empty() {
        return Err(super::matching::no_vaults(ctx).into());
    }
    Ok(vaults)
}

async fn app_name(engine: &Engine, app_id: &str) -> String {
    engine
        .get_application(app_id)
        .await
        .map(|a| a.display_name)
        .unwrap_or_else(|_| app_id.to_owned())
}

/// Runs the rotations (at most `policy.max_concurrent` at once) with live progress; records come
/// back in plan order.
pub async fn execute(
    ctx: &Context,
    engine: &Engine,
    planned: &[Planned],
    opts: &RotateOptions,
) -> Vec<AuditRecord> {
    let reporter = ctx.progress();
    let links: Vec<AnyLink> = planned
        .iter()
        .filter(|p| p.excluded.is_none())
        .map(|p| p.link.clone())
        .collect();
    let mut rotated = lineage::rotate_all(engine, &links, &ctx.config().policy, opts, &reporter)
        .await
        .into_iter();
    reporter.finish();
    let mut records = Vec::with_capacity(planned.len());
    for p in planned {
        match &p.excluded {
            None => records.extend(rotated.next()),
            Some(pattern) => {
                let record = excluded_record(ctx, engine, p, pattern, opts.dry_run);
                if !opts.dry_run
                    && let Err(e) = rotor_engine::History::open(ctx.history_path())
                        .and_then(|h| h.append(&record))
                {
                    super::report_error_line(&e);
                }
                records.push(record);
            }
        }
    }
    records
}

/// The audit record of a link that policy excludes: nothing is read or changed.
fn excluded_record(
    ctx: &Context,
    engine: &Engine,
    p: &Planned,
    pattern: &str,
    dry_run: bool,
) -> AuditRecord {
    let now = engine.now();
    AuditRecord {
        kind: p.link.kind(),
        rotation_id: uuid::Uuid::new_v4().to_string(),
        started_at: now,
        finished_at: now,
        actor: ctx.actor().to_owned(),
        app_id: p.link.application_id().to_owned(),
        app_name: p.app_name.clone(),
        old_key_id: None,
        new_key_id: None,
        new_expires_at: None,
        confidence: rotor_engine::Confidence::None,
        targets: p
            .link
            .targets()
            .into_iter()
            .map(|(vault_url, secret_name)| rotor_engine::TargetRecord {
                vault_url,
                secret_name,
                version: None,
                status: TargetStatus::Skipped,
                error: None,
            })
            .collect(),
        status: RotationStatus::Excluded,
        error: Some(format!(
            "credential `{}` of application `{}` is excluded by policy (`{pattern}`)",
            p.link.credential_display_name(),
            p.app_name
        )),
        notes: Vec::new(),
        hints: vec![format!(
            "remove `{pattern}` from `exclusions` in the [policy] of rotor.toml to rotate it"
        )],
        dry_run,
        removed_key_ids: Vec::new(),
        old_thumbprint: None,
        new_thumbprint: None,
        skip_reason: None,
        error_subject: None,
    }
}

/// Prints what is about to be rotated (stderr; used before asking).
pub fn print_plan(ctx: &Context, planned: &[Planned], validity_days: u32) {
    let mut t = output::table(&[
        "App",
        "Credential",
        "Key Vault secrets / certificates",
        "Confidence",
        "Why",
    ]);
    for p in planned {
        let targets: Vec<String> = p
            .link
            .targets()
            .into_iter()
            .map(|(vault, name)| format!("{}/{name}", ctx.vault_name(&vault)))
            .collect();
        let (conf, why) = match (&p.excluded, &p.status) {
            (Some(pattern), _) => (
                String::new(),
                format!("excluded by `{pattern}`: not rotated"),
            ),
            (None, Some(s)) => (
                s.confidence().to_string(),
                s.due_reason().unwrap_or("requested").to_owned(),
            ),
            (None, None) => (String::new(), String::new()),
        };
        t.add_row(vec![
            p.app_name.clone(),
            p.link.label(p.status.as_ref()),
            targets.join("\n"),
            conf,
            why,
        ]);
    }
    eprintln!("{t}");
    eprintln!(
        "New credentials will be valid for {validity_days} days; old ones stay valid through the grace period."
    );
}

/// Runs `rotor rotate`.
pub async fn run(ctx: &Context, args: &RotateArgs) -> anyhow::Result<ExitCode> {
    match run_collect(ctx, args).await {
        Ok((code, records)) => {
            if !args.change.dry_run {
                notify(ctx, "rotate", &records, 0, 0, None).await;
            }
            Ok(code)
        }
        Err(e) => {
            if !args.change.dry_run {
                notify(ctx, "rotate", &[], 0, 0, Some(format!("{e:#}"))).await;
            }
            Err(e)
        }
    }
}

/// Sends `[notify]`'s webhooks (with the `ROTOR_NOTIFY_*` overrides) after a run; a failure is
/// printed to stderr and never changes the exit code. URLs are never printed.
pub async fn notify(
    ctx: &Context,
    what: &str,
    records: &[AuditRecord],
    removed: usize,
    cleanup_failed: usize,
    run_error: Option<String>,
) {
    let cfg = match ctx
        .config()
        .notify
        .clone()
        .with_env(&|n| std::env::var(n).ok())
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warning: no notification: {e}");
            return;
        }
    };
    let m = rotor_engine::notify::Message {
        what: what.to_string(),
        records,
        removed,
        cleanup_failed,
        run_url: None,
        run_error,
    };
    for sent in rotor_engine::notify::send(&cfg, &m).await {
        if sent.error.is_some() {
            eprintln!("warning: {}", sent.describe());
        } else {
            tracing::info!("{}", sent.describe());
        }
    }
}

/// Runs `rotor rotate` and also returns the audit records (for `rotor demo`).
pub async fn run_collect(
    ctx: &Context,
    args: &RotateArgs,
) -> anyhow::Result<(ExitCode, Vec<AuditRecord>)> {
    validate(args)?;
    confirm::check_can_change(&args.change, "rotate")?;
    let engine = ctx.engine()?;
    let (planned, force) = select(ctx, &engine, args).await?;
    tracing::info!(
        links = planned.len(),
        force,
        dry_run = args.change.dry_run,
        "selected links to rotate"
    );
    let validity = args
        .expiry_days
        .unwrap_or(ctx.config().policy.new_secret_validity_days);
    if planned.is_empty() {
        match ctx.output() {
            OutputFormat::Json => output::print_json(&RotateJson {
                rotations: vec![],
                vault_errors: engine.vault_failures(),
            })?,
            _ => output::print(if args.due {
                "Nothing is due for rotation."
            } else {
                "Nothing to rotate."
            }),
        }
        if super::report_vault_failures(&engine) {
            return Ok((ExitCode::from(super::EXIT_FAILED), Vec::new()));
        }
        return Ok((ExitCode::SUCCESS, Vec::new()));
    }
    let to_rotate: Vec<&Planned> = planned.iter().filter(|p| p.excluded.is_none()).collect();
    if !args.change.dry_run && !args.change.yes && !to_rotate.is_empty() {
        print_plan(ctx, &planned, validity);
        let certs = to_rotate.iter().filter(|p| p.link.is_certificate()).count();
        let targets: usize = to_rotate
            .iter()
            .filter(|p| !p.link.is_certificate())
            .map(|p| p.link.targets().len())
            .sum();
        let question = if certs == 0 {
            format!(
                "Rotate {} credential(s) and update {} Key Vault secret(s)?",
                to_rotate.len(),
                targets
            )
        } else {
            format!(
                "Rotate {} credential(s) ({certs} certificate(s): a new Key Vault version each, added to the application) and update {} Key Vault secret(s)?",
                to_rotate.len(),
                targets
            )
        };
        if !confirm::ask(&args.change, &question) {
            eprintln!("Aborted; nothing changed.");
            return Ok((ExitCode::SUCCESS, Vec::new()));
        }
    }
    if args.expiry_days.is_some() && to_rotate.iter().any(|p| p.link.is_certificate()) {
        eprintln!(
            "warning: --expiry-days does not apply to certificates: a new Key Vault version lasts what the certificate policy's validity_months says"
        );
    }
    let opts = RotateOptions {
        dry_run: args.change.dry_run,
        force,
        validity_days: args.expiry_days,
        replace_key_id: args.key_id.clone(),
    };
    let records = execute(ctx, &engine, &planned, &opts).await;
    let vault_errors = engine.vault_failures();
    print_records(ctx, &planned, &records, &vault_errors, args.change.dry_run)?;
    if super::report_vault_failures(&engine) {
        return Ok((ExitCode::from(super::EXIT_FAILED), records));
    }
    Ok((exit_code(&records), records))
}

/// 1 when any record failed, else 0.
pub fn exit_code(records: &[AuditRecord]) -> ExitCode {
    if records.iter().any(|r| r.status == RotationStatus::Failed) {
        ExitCode::from(super::EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints rotation records in the chosen format; failures' errors and hints go to stderr.
pub fn print_records(
    ctx: &Context,
    planned: &[Planned],
    records: &[AuditRecord],
    vault_errors: &[rotor_engine::VaultFailure],
    dry_run: bool,
) -> anyhow::Result<()> {
    match ctx.output() {
        OutputFormat::Json => output::print_json(&RotateJson {
            rotations: records.to_vec(),
            vault_errors: vault_errors.to_vec(),
        })?,
        OutputFormat::Markdown => output::print(&output::records_markdown(
            if dry_run {
                "rotor rotate (dry run)"
            } else {
                "rotor rotate"
            },
            records,
        )),
        OutputFormat::Table => {
            output::print(&records_table(ctx, planned, records).to_string());
            let ok = records
                .iter()
                .filter(|r| r.status == RotationStatus::Success)
                .count();
            let failed = records
                .iter()
                .filter(|r| r.status == RotationStatus::Failed)
                .count();
            let other = records.len() - ok - failed;
            if dry_run {
                output::print(&format!(
                    "Dry run: {} rotation(s) previewed; nothing changed.",
                    records.len()
                ));
            } else {
                output::print(&format!(
                    "{ok} rotated, {failed} failed, {other} skipped/excluded."
                ));
            }
        }
    }
    for r in records
        .iter()
        .filter(|r| r.status == RotationStatus::Failed)
    {
        eprintln!(
            "error: {}",
            r.error.clone().unwrap_or_else(|| format!(
                "rotating credential of application `{}`: failed",
                r.app_name
            ))
        );
        for h in &r.hints {
            eprintln!("hint: {h}");
        }
        // Rotation never removes the credential the targets held: say so unless the engine did.
        if let Some(old) = &r.old_key_id
            && !r.hints.iter().any(|h| h.contains("old credential"))
        {
            eprintln!(
                "hint: the old credential {} is still valid; nothing was lost",
                output::short(old)
            );
        }
    }
    Ok(())
}

/// The result table of rotation records.
pub fn records_table(
    ctx: &Context,
    planned: &[Planned],
    records: &[AuditRecord],
) -> comfy_table::Table {
    let mut t = output::table(&[
        "App",
        "Credential",
        "Old → new key",
        "New expiry",
        "Key Vault secrets / certificates",
        "Status",
    ]);
    for (i, r) in records.iter().enumerate() {
        let cred = planned
            .get(i)
            .map(|p| p.link.label(p.status.as_ref()))
            .unwrap_or_default();
        let keys = lineage::keys_cell(r);
        let mut sorted: Vec<&rotor_engine::TargetRecord> = r.targets.iter().collect();
        sorted.sort_by(|a, b| (&a.secret_name, &a.vault_url).cmp(&(&b.secret_name, &b.vault_url)));
        let targets: Vec<String> = sorted
            .into_iter()
            .map(|t| {
                // The version written (or already holding the credential); a dry run's version
                // is the current one, not worth showing.
                let version = match (t.status, t.version.as_deref()) {
                    (TargetStatus::Updated | TargetStatus::Unchanged, Some(v)) => {
                        format!(" v{}", output::short(v))
                    }
                    _ => String::new(),
                };
                format!(
                    "{}/{}: {}{version}",
                    ctx.vault_name(&t.vault_url),
                    t.secret_name,
                    output::target_status_word(t.status)
                )
            })
            .collect();
        let mut status = output::status_word(r).to_owned();
        if r.status != RotationStatus::Failed
            && let Some(e) = &r.error
        {
            status.push_str(&format!(": {e}"));
        }
        t.add_row(vec![
            r.app_name.clone(),
            cred,
            keys,
            r.new_expires_at.map(output::fmt_time).unwrap_or_default(),
            targets.join("\n"),
            status,
        ]);
    }
    t
}
