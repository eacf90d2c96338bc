//! `rotor match`: links between credentials and Key Vault secrets, with confidence and signals.

use std::process::ExitCode;

use rotor_engine::{Application, Confidence, CredentialKind, Engine, Match, MatchReport, Signal};
use serde::Serialize;

use super::output;
use super::{Context, UsageError};
use crate::cli::OutputFormat;

/// `rotor match [--app APP_ID] [--min-confidence LEVEL]`
#[derive(Debug, Clone, clap::Args)]
pub struct MatchArgs {
    /// Only this application (appId; repeatable). Default: every application.
    #[arg(long = "app", value_name = "APP_ID")]
    pub apps: Vec<String>,
    /// Only matches at or above this confidence: high, medium or low. Default: low (all).
    #[arg(long, value_name = "LEVEL")]
    pub min_confidence: Option<String>,
}

/// `--output json` shape of `rotor match` (docs/cli.md).
#[derive(Debug, Serialize)]
pub struct MatchJson {
    pub matches: Vec<MatchItem>,
    pub unmatched: Vec<UnmatchedItem>,
    /// Signals evaluated for every (credential, secret) pair.
    pub signals_tried: Vec<String>,
    /// Vaults that could not be listed (their secrets are missing above); omitted when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vault_errors: Vec<rotor_engine::VaultFailure>,
}

/// One link candidate.
#[derive(Debug, Serialize)]
pub struct MatchItem {
    /// `certificate` for a key credential matched to a Key Vault certificate by thumbprint
    /// (`secret_name` is then the certificate's name); omitted for secrets.
    #[serde(skip_serializing_if = "CredentialKind::is_secret")]
    pub kind: CredentialKind,
    pub app_id: String,
    pub app_name: String,
    pub key_id: String,
    pub credential_display_name: Option<String>,
    pub vault: String,
    pub vault_url: String,
    pub secret_name: String,
    pub confidence: Confidence,
    pub signals: Vec<String>,
    /// A tag names the app but the value's first characters differ from the credential's hint.
    pub hint_mismatch: bool,
    /// The exclusion pattern that applies, if any (excluded items are never rotated).
    pub excluded: Option<String>,
    /// Why rotor will never write this secret for this credential (tagged for another
    /// application, or matched on expiry alone); omitted when not rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}

/// A credential without any match.
#[derive(Debug, Serialize)]
pub struct UnmatchedItem {
    /// `certificate` for a key credential; omitted for secrets.
    #[serde(skip_serializing_if = "CredentialKind::is_secret")]
    pub kind: CredentialKind,
    pub app_id: String,
    pub app_name: String,
    pub key_id: String,
    pub credential_display_name: Option<String>,
    pub excluded: Option<String>,
}

/// Reads the applications (`--app` ones, or all) and the vaults, and runs matching.
pub async fn match_all(
    ctx: &Context,
    engine: &Engine,
    app_ids: &[String],
) -> anyhow::Result<(Vec<Application>, MatchReport)> {
    if app_ids.is_empty() {
        return match engine.resolve_vaults(ctx.config()).await {
            // the application pages are listed while the vaults are, and matched as they come
            Ok(vaults) if !vaults.is_empty() => Ok(engine
                .discover_and_match(&vaults, &ctx.config().policy)
                .await?),
            other => {
                // discovery's error first, as when it ran before the vaults were resolved
                engine.discover(None).await?;
                other?;
                Err(no_vaults(ctx).into())
            }
        };
    }
    let apps = {
        let mut v = Vec::new();
        for id in app_ids {
            v.push(engine.get_application(id).await?);
        }
        v
    };
    let vaults = engine.resolve_vaults(ctx.config()).await?;
    if vaults.is_empty() {
        return Err(no_vaults(ctx).into());
    }
    let report = engine
        .match_secrets(&apps, &vaults, &ctx.config().policy)
        .await?;
    Ok((apps, report))
}

/// The usage error when neither `vaults` nor `subscriptions` yield a vault.
pub fn no_vaults(ctx: &Context) -> UsageError {
    let origin = ctx
        .config_path()
        .map(|p| format!("`{}`", p.display()))
        .unwrap_or_else(|| "no configuration file (rotor.toml not found)".to_owned());
    UsageError::new(format!(
        "finding Key Vaults to match against: no vaults configured ({origin})"
    ))
    .hint("add `vaults = [\"https://<name>.vault.azure.net/\"]` and/or `subscriptions = [\"<id>\"]` to rotor.toml (see docs/config.md)")
    .hint("or point --config at your configuration file")
}

/// Builds the JSON view, keeping matches at or above `min`.
pub fn to_json(report: &MatchReport, min: Confidence, ctx: &Context) -> MatchJson {
    let matches = report
        .matches
        .iter()
        .filter(|m| m.confidence >= min || m.rejected.is_some())
        .map(|m| MatchItem {
            kind: m.kind,
            app_id: m.app_id.clone(),
            app_name: m.app_name.clone(),
            key_id: m.key_id.clone(),
            credential_display_name: m.credential_display_name.clone(),
            vault: display_vault(ctx, m),
            vault_url: m.vault_url.to_string(),
            secret_name: m.secret_name.clone(),
            confidence: m.confidence,
            signals: m.signals.iter().map(|s| s.as_str().to_owned()).collect(),
            hint_mismatch: m.hint_mismatch,
            excluded: m.excluded.clone(),
            rejected: m.rejected.clone(),
        })
        .collect();
    let unmatched = report
        .unmatched
        .iter()
        .map(|u| UnmatchedItem {
            kind: u.kind,
            app_id: u.app_id.clone(),
            app_name: u.app_name.clone(),
            key_id: u.key_id.clone(),
            credential_display_name: u.credential_display_name.clone(),
            excluded: u.excluded.clone(),
        })
        .collect();
    MatchJson {
        matches,
        unmatched,
        signals_tried: report
            .signals_tried
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        vault_errors: Vec::new(),
    }
}

fn display_vault(ctx: &Context, m: &Match) -> String {
    let friendly = ctx.vault_name(&m.vault_url);
    if friendly.contains(':') && !m.vault.is_empty() {
        m.vault.clone()
    } else {
        friendly
    }
}

/// What would raise a match's confidence (Troubleshooting: low confidence).
pub fn raise_confidence_advice(signals: &[Signal]) -> Vec<String> {
    let mut advice = Vec::new();
    if !signals.contains(&Signal::TagApp) {
        advice.push("tag the Key Vault secret with `app-id` (the appId) or `app-name`".to_owned());
    }
    if !signals.contains(&Signal::Name) {
        advice.push(
            "name the secret `{app-name}-client-secret` or include the appId in its name"
                .to_owned(),
        );
    }
    if !signals.contains(&Signal::Hint) {
        advice.push(
            "let rotor read the value's first characters (needs `Key Vault Secrets User` or higher; use --hint-cache to read each version once)".to_owned(),
        );
    }
    if !signals.contains(&Signal::Expiry) {
        advice.push("set the secret's expiry to the credential's end date".to_owned());
    }
    advice.push(
        "after one rotation rotor tags the secret with `rotor-key-id` (HIGH confidence)".to_owned(),
    );
    advice
}

/// Runs `rotor match`.
pub async fn run(ctx: &Context, args: &MatchArgs) -> anyhow::Result<ExitCode> {
    let min = match &args.min_confidence {
        Some(s) => s.parse::<Confidence>()?,
        None => Confidence::Low,
    };
    let engine = ctx.engine()?;
    let (_, report) = match_all(ctx, &engine, &args.apps).await?;
    let mut view = to_json(&report, min, ctx);
    view.vault_errors = engine.vault_failures();
    let policy_min = ctx.config().policy.min_confidence;
    match ctx.output() {
        OutputFormat::Json => output::print_json(&view)?,
        OutputFormat::Markdown => {
            let mut filtered = report.clone();
            filtered.matches.retain(|m| m.confidence >= min);
            output::print(&crate::github::markdown::match_report(&filtered));
        }
        OutputFormat::Table => {
            if !view.matches.is_empty() {
                let mut t = output::table(&HEADERS);
                for r in table_rows(&view, policy_min) {
                    t.add_row(r);
                }
                output::print(&t.to_string());
            }
            if !view.unmatched.is_empty() {
                let mut t = output::table(&["App", "Credential", "Key ID", "Note"]);
                for u in &view.unmatched {
                    t.add_row(vec![
                        u.app_name.clone(),
                        u.credential_display_name.clone().unwrap_or_default(),
                        output::short(&u.key_id).to_owned(),
                        match &u.excluded {
                            Some(e) => format!("excluded ({e})"),
                            None => "no Key Vault secret matched".to_owned(),
                        },
                    ]);
                }
                output::print(&format!("Unmatched credentials:\n{t}"));
            }
            let rotatable = view
                .matches
                .iter()
                .filter(|m| m.confidence >= policy_min && m.excluded.is_none())
                .count();
            output::print(&format!(
                "{} match(es), {} at or above the policy minimum ({policy_min}) and not excluded; {} unmatched credential(s)",
                view.matches.len(),
                rotatable,
                view.unmatched.len()
            ));
        }
    }
    explain(&report, &view, policy_min);
    if super::report_vault_failures(&engine) {
        return Ok(ExitCode::from(super::EXIT_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

const HEADERS: [&str; 7] = [
    "App",
    "Credential",
    "Vault",
    "Secret",
    "Confidence",
    "Signals",
    "Note",
];

fn table_rows(view: &MatchJson, policy_min: Confidence) -> Vec<Vec<String>> {
    let mut matches: Vec<&MatchItem> = view.matches.iter().collect();
    matches.sort_by_key(|m| {
        (
            m.app_name.to_lowercase(),
            m.credential_display_name.clone(),
            m.key_id.clone(),
            m.secret_name.clone(),
            m.vault.clone(),
        )
    });
    matches
        .into_iter()
        .map(|m| {
            let mut note = Vec::new();
            if let Some(e) = &m.excluded {
                note.push(format!("excluded ({e})"));
            }
            if m.hint_mismatch {
                note.push("hint mismatch: the vault holds another credential".to_owned());
            }
            if let Some(why) = &m.rejected {
                note.push(format!("rejected: {why}"));
            } else if m.excluded.is_none() && m.confidence < policy_min {
                note.push(format!(
                    "below policy minimum {policy_min}: not rotated automatically"
                ));
            }
            vec![
                m.app_name.clone(),
                format!(
                    "{} ({})",
                    m.credential_display_name.clone().unwrap_or_default(),
                    output::short(&m.key_id)
                ),
                m.vault.clone(),
                m.secret_name.clone(),
                m.confidence.to_string(),
                m.signals.join(", "),
                note.join("; "),
            ]
        })
        .collect()
}

/// Warnings on stderr: no matches at all, or matches below the policy minimum.
fn explain(report: &MatchReport, view: &MatchJson, policy_min: Confidence) {
    let tried: Vec<&str> = report.signals_tried.iter().map(|s| s.as_str()).collect();
    let tried = if tried.is_empty() {
        Signal::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        tried.join(", ")
    };
    if view.matches.is_empty() {
        eprintln!(
            "warning: no matches found: no Key Vault secret could be linked to any credential (signals tried: {tried})"
        );
        eprintln!(
            "hint: tag Key Vault secrets with `app-id` (the application's appId) and/or `app-name`"
        );
        eprintln!(
            "hint: name secrets `{{app-name}}-client-secret`, or include the appId in the name"
        );
        eprintln!(
            "hint: grant rotor `Key Vault Secrets User` (or higher) so it can compare value hints, and pass --hint-cache FILE so each version is read once"
        );
        return;
    }
    let low: Vec<&MatchItem> = view
        .matches
        .iter()
        .filter(|m| m.confidence < policy_min && m.excluded.is_none() && m.rejected.is_none())
        .collect();
    let rejected = view.matches.iter().filter(|m| m.rejected.is_some()).count();
    if rejected > 0 {
        eprintln!(
            "note: {rejected} candidate(s) rejected: rotor never writes a secret tagged for another application, nor one that matches on expiry alone (see the Note column)"
        );
    }
    if !low.is_empty() {
        eprintln!(
            "warning: {} match(es) below the policy minimum confidence {policy_min}: they are not rotated by `rotate --due`",
            low.len()
        );
        let mut advice: Vec<String> = Vec::new();
        for m in low.iter().take(10) {
            let signals: Vec<Signal> = report
                .matches
                .iter()
                .find(|r| {
                    r.key_id == m.key_id
                        && r.secret_name == m.secret_name
                        && r.vault_url.as_str() == m.vault_url
                })
                .map(|r| r.signals.clone())
                .unwrap_or_default();
            let present = if m.signals.is_empty() {
                "none".to_owned()
            } else {
                m.signals.join(", ")
            };
            eprintln!(
                "  {} / {} → {}/{}: {} (signals present: {present})",
                m.app_name,
                m.credential_display_name.clone().unwrap_or_default(),
                m.vault,
                m.secret_name,
                m.confidence
            );
            for a in raise_confidence_advice(&signals) {
                if !advice.contains(&a) {
                    advice.push(a);
                }
            }
        }
        if low.len() > 10 {
            eprintln!("  … and {} more", low.len() - 10);
        }
        for a in advice {
            eprintln!("hint: {a}");
        }
    }
}
