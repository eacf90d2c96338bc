//! `rotor cleanup`: remove old credentials whose grace period has passed.

use std::process::ExitCode;

use rotor_engine::{AuditRecord, Confidence, History, KeptCredential, RotationStatus};
use serde::Serialize;

use super::confirm::{self, ChangeArgs};
use super::lineage::{self, AnyLink};
use super::output;
use super::{Context, report_error_line};
use crate::cli::OutputFormat;

/// `rotor cleanup [--app APP_ID]`
#[derive(Debug, Clone, clap::Args)]
pub struct CleanupArgs {
    /// Only this application (appId; repeatable). Default: every application with matched
    /// credentials.
    #[arg(long = "app", value_name = "APP_ID")]
    pub apps: Vec<String>,
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// `--output json` shape of `rotor cleanup` (docs/cli.md).
#[derive(Debug, Serialize)]
pub struct CleanupJson {
    /// One audit record per link where something was removed (or would be, or failed).
    pub rotations: Vec<AuditRecord>,
    /// Every credential removed (or, on a dry run, that would be removed).
    pub removed_key_ids: Vec<String>,
    /// Per link: what was removed and what was kept, and why.
    pub links: Vec<CleanupLinkJson>,
}

/// One link's cleanup.
#[derive(Debug, Serialize)]
pub struct CleanupLinkJson {
    pub app_id: String,
    pub app_name: String,
    pub credential_display_name: String,
    /// `certificate` for a certificate lineage; omitted for secrets.
    #[serde(skip_serializing_if = "rotor_engine::CredentialKind::is_secret")]
    pub kind: rotor_engine::CredentialKind,
    pub removed_key_ids: Vec<String>,
    pub kept: Vec<KeptCredential>,
    pub dry_run: bool,
    pub error: Option<String>,
}

/// Runs `rotor cleanup`.
pub async fn run(ctx: &Context, args: &CleanupArgs) -> anyhow::Result<ExitCode> {
    confirm::check_can_change(&args.change, "cleanup")?;
    let engine = ctx.engine()?;
    let links: Vec<AnyLink> = if args.apps.is_empty() {
        let vaults = engine.resolve_vaults(ctx.config()).await?;
        if vaults.is_empty() {
            return Err(super::matching::no_vaults(ctx).into());
        }
        lineage::links_all(&engine, ctx.config()).await?
    } else {
        let (secrets, apps) = super::rotate::links_for_apps(ctx, &engine, &args.apps).await?;
        let certs = super::rotate::certificate_links_of(ctx, &engine, &apps).await?;
        secrets
            .into_iter()
            .map(AnyLink::Secret)
            .chain(certs.into_iter().map(AnyLink::Certificate))
            .collect()
    };
    let policy = ctx.config().policy.clone();

    // Always look first (dry run), then ask, then remove.
    let preview: Vec<_> = links
        .iter()
        .zip(lineage::cleanup_all(&engine, &links, &policy, true).await)
        .collect();
    let to_remove: usize = preview
        .iter()
        .filter_map(|(_, o)| o.as_ref().ok())
        .map(|o| o.removed_key_ids.len())
        .sum();
    let dry_run = args.change.dry_run;
    let apply = !dry_run && to_remove > 0;
    if apply && !args.change.yes {
        for (link, o) in &preview {
            if let Ok(o) = o
                && !o.removed_key_ids.is_empty()
            {
                let ids: Vec<&str> = o.removed_key_ids.iter().map(|k| output::short(k)).collect();
                eprintln!(
                    "{} · {}: remove {}",
                    link.application_id(),
                    link.label(None),
                    ids.join(", ")
                );
            }
        }
        if !confirm::ask(
            &args.change,
            &format!("Remove {to_remove} old credential(s) whose grace period has passed?"),
        ) {
            eprintln!("Aborted; nothing changed.");
            return Ok(ExitCode::SUCCESS);
        }
    }

    let history = History::open(ctx.history_path())?;
    let mut view = CleanupJson {
        rotations: Vec::new(),
        removed_key_ids: Vec::new(),
        links: Vec::new(),
    };
    let mut failed = false;
    let started = engine.now();
    let outcomes = if apply {
        lineage::cleanup_all(&engine, &links, &policy, false).await
    } else {
        preview.into_iter().map(|(_, o)| o).collect()
    };
    for (link, outcome) in links.iter().zip(outcomes) {
        let app = engine.get_application(link.application_id()).await.ok();
        let app_name = app
            .as_ref()
            .map(|a| a.display_name.clone())
            .unwrap_or_default();
        let (removed, kept, error, hints) = match outcome {
            Ok(o) => (o.removed_key_ids, o.kept, None, Vec::new()),
            Err(e) => {
                failed = true;
                report_error_line(&e);
                (Vec::new(), Vec::new(), Some(e.to_string()), e.hints())
            }
        };
        if !removed.is_empty() || error.is_some() {
            let record = AuditRecord {
                kind: link.kind(),
                rotation_id: uuid::Uuid::new_v4().to_string(),
                started_at: started,
                finished_at: engine.now(),
                actor: ctx.actor().to_owned(),
                app_id: link.application_id().to_owned(),
                app_name: app_name.clone(),
                old_key_id: None,
                new_key_id: None,
                new_expires_at: None,
                confidence: Confidence::None,
                targets: Vec::new(),
                status: if error.is_some() {
                    RotationStatus::Failed
                } else if dry_run {
                    RotationStatus::Skipped
                } else {
                    RotationStatus::Success
                },
                error: error.clone(),
                notes: vec![format!(
                    "cleanup of {} `{}`: {} old credential(s) {}",
                    if link.is_certificate() {
                        "certificate credential"
                    } else {
                        "credential"
                    },
                    link.credential_display_name(),
                    removed.len(),
                    if dry_run {
                        "would be removed"
                    } else {
                        "removed"
                    }
                )],
                hints,
                dry_run,
                removed_key_ids: removed.clone(),
                old_thumbprint: None,
                new_thumbprint: None,
                skip_reason: None,
                error_subject: None,
            };
            if !dry_run {
                history.append(&record)?;
            }
            view.rotations.push(record);
        }
        view.removed_key_ids.extend(removed.iter().cloned());
        view.links.push(CleanupLinkJson {
            app_id: link.application_id().to_owned(),
            app_name,
            credential_display_name: link.credential_display_name().to_owned(),
            kind: link.kind(),
            removed_key_ids: removed,
            kept,
            dry_run,
            error,
        });
    }

    match ctx.output() {
        OutputFormat::Json => output::print_json(&view)?,
        OutputFormat::Markdown => {
            let rows = rows(&view);
            output::print(&output::markdown_table("rotor cleanup", &HEADERS, &rows));
        }
        OutputFormat::Table => {
            if !view.links.is_empty() {
                let mut t = output::table(&HEADERS);
                for r in rows(&view) {
                    t.add_row(r);
                }
                output::print(&t.to_string());
            }
            let verb = if args.change.dry_run {
                "would be removed"
            } else {
                "removed"
            };
            output::print(&format!(
                "{} old credential(s) {verb} across {} link(s).",
                view.removed_key_ids.len(),
                view.links.len()
            ));
        }
    }
    if !dry_run {
        let cleanup_failed = view.rotations.iter().filter(|r| r.error.is_some()).count();
        super::rotate::notify(
            ctx,
            "cleanup",
            &[],
            view.removed_key_ids.len(),
            cleanup_failed,
            None,
        )
        .await;
    }
    Ok(if failed {
        ExitCode::from(super::EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

const HEADERS: [&str; 4] = ["App", "Credential", "Removed", "Kept (why)"];

fn rows(view: &CleanupJson) -> Vec<Vec<String>> {
    view.links
        .iter()
        .map(|l| {
            let removed: Vec<&str> = l.removed_key_ids.iter().map(|k| output::short(k)).collect();
            let kept: Vec<String> = l
                .kept
                .iter()
                .map(|k| format!("{}: {}", output::short(&k.key_id), k.reason))
                .collect();
            let mut removed = removed.join(", ");
            if l.dry_run && !removed.is_empty() {
                removed = format!("would remove {removed}");
            }
            if let Some(e) = &l.error {
                removed = format!("FAILED: {e}");
            }
            vec![
                if l.app_name.is_empty() {
                    l.app_id.clone()
                } else {
                    l.app_name.clone()
                },
                if l.kind.is_secret() {
                    l.credential_display_name.clone()
                } else {
                    format!("{} (certificate)", l.credential_display_name)
                },
                removed,
                kept.join("\n"),
            ]
        })
        .collect()
}
