//! `rotor action`: what `action.yml` runs. Reads the runner environment and runs the flow for the
//! event:
//!
//! - `pull_request` / `pull_request_target`: a dry run of what is due — one sticky comment on the
//!   pull request (fork pull requests and 403s fall back to the job summary with a warning; a fork
//!   pull request that gets no Azure credentials ends with a warning and exit 0), the job summary,
//!   outputs. Changes nothing in Azure.
//! - `schedule` / `workflow_dispatch`: rotate what is due (`--dry-run` only reports), append audit
//!   records to the history file, job summary, outputs, at most 10 error annotations, and with
//!   `--audit-pr` an audit pull request. Exit code 1 when a rotation failed.
//! - Any other event (`push`, `issue_comment`, `merge_group`, `workflow_run`, `workflow_call`, …):
//!   an error naming the event and the supported ones, exit 2, before Azure or GitHub is called.
//!
//! Secret values: the engine never hands a value to its caller (progress events and audit
//! records hold none), so there is no new value here to print or to mask. What this process does
//! receive that is secret-like — `AZURE_CLIENT_SECRET`, OIDC tokens, `GITHUB_TOKEN` — is
//! masked with `::add-mask::` first, and names from Azure are printed only between
//! `::stop-commands::` markers, so an application name cannot issue workflow commands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;

use super::dashboard;
use super::github_api::{CommentOutcome, GitHub};
use super::markdown::{self, Report, Status};
use super::records::{self, Record};
use super::runner::{self, Commands, RunnerEnv};
use super::{ActionArgs, CommentMode, DASHBOARD_EVENT, NothingDue, REPORT_EVENTS, ROTATE_EVENTS};
use crate::commands::Context;
use crate::commands::lineage::{self, AnyLink, AnyStatus};

/// `rotor action`.
pub async fn run_action(ctx: &Context, args: &ActionArgs) -> anyhow::Result<ExitCode> {
    let env = RunnerEnv::from_env();
    let mut commands = Commands::new(std::io::stdout());
    mask_received_secrets(&env, &mut commands);
    run_action_with(ctx, args, &env, &mut commands).await
}

/// The environment variables whose values are secrets this process may receive: the Azure client
/// secret (also under its Terraform name), an OIDC token passed directly, the runner's OIDC request
/// token, the GitHub token and the notification webhook URLs.
pub const RECEIVED_SECRET_VARS: [&str; 8] = [
    "AZURE_CLIENT_SECRET",
    "ARM_CLIENT_SECRET",
    "AZURE_OIDC_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "GITHUB_TOKEN",
    // Webhook URLs are credentials (the `notify-*` inputs).
    "ROTOR_NOTIFY_SLACK",
    "ROTOR_NOTIFY_TEAMS",
    "ROTOR_NOTIFY_WEBHOOK",
];

/// On a runner, masks the secret-like values this process receives ([`RECEIVED_SECRET_VARS`])
/// before anything is printed.
pub fn mask_received_secrets<W: Write>(env: &RunnerEnv, commands: &mut Commands<W>) {
    mask_secret_vars(env, commands, |name| std::env::var(name).ok());
}

/// [`mask_received_secrets`] with the variables read through `get` (tests pass a map).
fn mask_secret_vars<W: Write>(
    env: &RunnerEnv,
    commands: &mut Commands<W>,
    get: impl Fn(&str) -> Option<String>,
) {
    if !env.actions {
        return;
    }
    let mut masked = std::collections::BTreeSet::new();
    for name in RECEIVED_SECRET_VARS {
        if let Some(v) = get(name)
            && !v.is_empty()
            && masked.insert(v.clone())
        {
            commands.mask(&v);
        }
    }
}

/// The event that triggered the workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A pull request: report only.
    PullRequest {
        /// Pull request number.
        number: Option<u64>,
        /// True when the head repository is not the base repository.
        fork: bool,
        /// The head commit (`pull_request.head.sha`).
        head_sha: Option<String>,
    },
    /// `schedule` or `workflow_dispatch`: rotate what is due.
    Rotate {
        /// The event name.
        name: String,
    },
    /// Any other event: refused.
    Unsupported {
        /// The event name.
        name: String,
    },
}

/// Reads the event from its name and payload.
pub fn parse_event(name: &str, payload: &Value, repository: Option<&str>) -> Event {
    match name {
        "pull_request" | "pull_request_target" => {
            let pr = payload.get("pull_request");
            let number = payload
                .get("number")
                .and_then(Value::as_u64)
                .or_else(|| pr.and_then(|p| p.get("number")).and_then(Value::as_u64));
            let head = pr
                .and_then(|p| p.pointer("/head/repo/full_name"))
                .and_then(Value::as_str);
            let base = pr
                .and_then(|p| p.pointer("/base/repo/full_name"))
                .and_then(Value::as_str)
                .or(repository);
            let fork = match (head, base) {
                (Some(h), Some(b)) => !h.eq_ignore_ascii_case(b),
                // A deleted head repository: treat as a fork (read-only token).
                (None, _) if pr.is_some() => pr
                    .and_then(|p| p.pointer("/head/repo"))
                    .is_none_or(Value::is_null),
                _ => false,
            };
            let head_sha = pr
                .and_then(|p| p.pointer("/head/sha"))
                .and_then(Value::as_str)
                .map(str::to_string);
            Event::PullRequest {
                number,
                fork,
                head_sha,
            }
        }
        "schedule" | "workflow_dispatch" => Event::Rotate {
            name: name.to_string(),
        },
        other => Event::Unsupported {
            name: other.to_string(),
        },
    }
}

/// The error for an event `rotor action` does not run on.
fn unsupported_event(name: &str) -> crate::commands::UsageError {
    let quoted = |list: &[&str]| {
        list.iter()
            .map(|e| format!("`{e}`"))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    crate::commands::UsageError::new(format!(
        "reading the GitHub event: rotor action does not run on `{name}` events; it rotates on {} and reports on {} (and rotates the boxes ticked on its dashboard issue on `{DASHBOARD_EVENT}`). Nothing was changed",
        quoted(&ROTATE_EVENTS),
        quoted(&REPORT_EVENTS)
    ))
    .hint("trigger the rotation workflow with `on: schedule` or `on: workflow_dispatch`, and the report with `on: pull_request`")
    .hint("to render the history file or a Terraform plan on another event, use `command: report` (`rotor report`), which never rotates")
}

fn read_payload(path: Option<&Path>) -> anyhow::Result<Value> {
    match path {
        None => Ok(Value::Null),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading the event payload `{}`", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("reading the event payload `{}`: not JSON", p.display()))
        }
    }
}

/// The pull request number of the triggering event, if it is a pull request event.
pub fn pull_request_number(env: &RunnerEnv) -> Option<u64> {
    let payload = read_payload(env.event_path.as_deref()).ok()?;
    match parse_event(
        env.event_name.as_deref()?,
        &payload,
        env.repository.as_deref(),
    ) {
        Event::PullRequest { number, .. } => number,
        Event::Rotate { .. } | Event::Unsupported { .. } => None,
    }
}

/// The head commit of the triggering pull request, if it is a pull request event.
pub fn pull_request_head_sha(env: &RunnerEnv) -> Option<String> {
    let payload = read_payload(env.event_path.as_deref()).ok()?;
    match parse_event(
        env.event_name.as_deref()?,
        &payload,
        env.repository.as_deref(),
    ) {
        Event::PullRequest { head_sha, .. } => head_sha,
        Event::Rotate { .. } | Event::Unsupported { .. } => None,
    }
}

/// Posts (or updates, or leaves alone) the sticky comment; every failure becomes a warning — the
/// report is in the job summary anyway. Returns the outcome when it worked.
pub async fn post_comment<W: Write>(
    env: &RunnerEnv,
    commands: &mut Commands<W>,
    number: u64,
    key: &str,
    body: &str,
) -> Option<CommentOutcome> {
    post_comment_with(env, commands, number, key, Some(body), CommentMode::Update).await
}

/// [`post_comment`] with a mode; `body: None` means nothing is due and the comment is to be
/// deleted.
pub async fn post_comment_with<W: Write>(
    env: &RunnerEnv,
    commands: &mut Commands<W>,
    number: u64,
    key: &str,
    body: Option<&str>,
    mode: CommentMode,
) -> Option<CommentOutcome> {
    let Some((owner, repo)) = env.repo() else {
        commands.warning(
            "rotor: no pull request comment",
            "GITHUB_REPOSITORY is not set; the report is in the job summary",
        );
        return None;
    };
    let Some(token) = env.token.as_deref() else {
        commands.warning(
            "rotor: no pull request comment",
            "GITHUB_TOKEN is not set (the action's `github-token` input); the report is in the job summary",
        );
        return None;
    };
    let gh = match GitHub::new(&env.api_url, token, &owner, &repo) {
        Ok(gh) => gh.with_graphql_url(env.graphql_url.as_deref()),
        Err(e) => {
            commands.warning("rotor: no pull request comment", &format!("{e:#}"));
            return None;
        }
    };
    let result = match (body, mode) {
        (None, _) => match gh.delete_sticky_comments(number, key).await {
            Ok(n) => {
                commands.log(&format!(
                    "rotor: pull request #{number}: nothing is due; {n} report comment(s) deleted"
                ));
                return None;
            }
            Err(e) => Err(e),
        },
        (Some(body), CommentMode::HideAndNew) => gh.hide_and_new_comment(number, key, body).await,
        (Some(body), _) => gh.upsert_sticky_comment(number, key, body).await,
    };
    match result {
        Ok(outcome) => {
            let what = match outcome {
                CommentOutcome::Created(_) => "created",
                CommentOutcome::Updated(_) => "updated",
                CommentOutcome::Unchanged(_) => "left unchanged (same report)",
            };
            commands.log(&format!(
                "rotor: pull request #{number}: report comment {what}"
            ));
            Some(outcome)
        }
        Err(e) => {
            let mut msg = format!("{e}; the report is in the job summary");
            for h in e.hints() {
                msg.push_str(&format!("\nhint: {h}"));
            }
            commands.warning("rotor: could not comment on the pull request", &msg);
            None
        }
    }
}

/// The default report file: `$RUNNER_TEMP/rotor-report.md`, else `rotor-report.md`.
fn report_path(env: &RunnerEnv, args: &ActionArgs) -> PathBuf {
    args.report_path.clone().unwrap_or_else(|| {
        env.runner_temp.as_ref().map_or_else(
            || PathBuf::from("rotor-report.md"),
            |t| t.join("rotor-report.md"),
        )
    })
}

/// What a run produced, for outputs and exit code.
#[derive(Debug, Default)]
struct Outcome {
    report: Report,
    records: Vec<Record>,
    due: usize,
    /// Old credentials removed by `--cleanup`.
    removed: usize,
    /// Links whose cleanup failed.
    cleanup_failed: usize,
    /// Vaults that could not be listed (their links were not rotated; exit 1).
    vault_failures: Vec<rotor_engine::VaultFailure>,
    /// The engine's records of a rotation run (for notifications).
    audit: Vec<rotor_engine::AuditRecord>,
}

/// The flow for the event, with the runner environment and workflow command sink passed in.
pub async fn run_action_with<W: Write>(
    ctx: &Context,
    args: &ActionArgs,
    env: &RunnerEnv,
    commands: &mut Commands<W>,
) -> anyhow::Result<ExitCode> {
    let event_name = args
        .event_name
        .clone()
        .or_else(|| env.event_name.clone())
        .ok_or_else(|| {
            crate::commands::UsageError::new(
                "reading the GitHub event: GITHUB_EVENT_NAME is not set",
            )
            .hint("run `rotor action` inside a GitHub Actions step, or pass --event-name schedule (or pull_request with --event-path)")
        })?;
    if event_name == DASHBOARD_EVENT {
        let payload = read_payload(args.event_path.as_deref().or(env.event_path.as_deref()))?;
        return one_click(ctx, args, env, commands, &payload).await;
    }
    if !ROTATE_EVENTS.contains(&event_name.as_str())
        && !REPORT_EVENTS.contains(&event_name.as_str())
    {
        let e = anyhow::Error::new(unsupported_event(&event_name));
        report_run_error(env, commands, &e);
        return Err(e);
    }
    let payload = read_payload(args.event_path.as_deref().or(env.event_path.as_deref()))?;
    let event = parse_event(&event_name, &payload, env.repository.as_deref());
    let history_path = ctx.history_path();
    let report_file = report_path(env, args);

    if matches!(event, Event::PullRequest { fork: true, .. }) && !env.azure_credential {
        let e = anyhow::anyhow!(
            "no Azure credential in the environment (none of {})",
            runner::AZURE_CREDENTIAL_VARS.join(", ")
        );
        fork_without_credentials(env, commands, &e);
        return Ok(ExitCode::SUCCESS);
    }

    let result = match &event {
        Event::Unsupported { name } => Err(anyhow::Error::new(unsupported_event(name))),
        Event::PullRequest {
            number,
            fork,
            head_sha,
        } => dry_run(ctx, env, commands, "pull request")
            .await
            .map(|o| (o, Some((*number, *fork, head_sha.clone())))),
        Event::Rotate { name } if args.dry_run => {
            dry_run(ctx, env, commands, name).await.map(|o| (o, None))
        }
        Event::Rotate { .. } => match rotate_due(ctx, env, commands).await {
            Ok(mut o) => {
                if args.cleanup {
                    cleanup(ctx, env, commands, &mut o).await;
                }
                Ok((o, None))
            }
            Err(e) => Err(e),
        },
    };
    let (mut outcome, comment) = match result {
        Ok(r) => r,
        Err(e)
            if matches!(event, Event::PullRequest { fork: true, .. }) && lacks_credentials(&e) =>
        {
            fork_without_credentials(env, commands, &e);
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => {
            report_run_error(env, commands, &e);
            if matches!(event, Event::Rotate { .. }) && !args.dry_run {
                notify(
                    ctx,
                    commands,
                    rotor_engine::notify::Message {
                        what: "rotation run".into(),
                        records: &[],
                        removed: 0,
                        cleanup_failed: 0,
                        run_url: env.run_url(),
                        run_error: Some(format!("{e:#}")),
                    },
                )
                .await;
            }
            return Err(e);
        }
    };
    if outcome.report.rows.is_empty() {
        outcome.report.empty_note = Some(
            "Nothing is due: every linked credential is outside its rotation window (or below the minimum confidence, or excluded)."
                .to_string(),
        );
    }

    let mut report = outcome.report;
    report.run_url = env.run_url();
    let full = report.render(usize::MAX);
    std::fs::write(&report_file, &full)
        .with_context(|| format!("writing the report to `{}`", report_file.display()))?;
    if let Some(summary) = &env.step_summary {
        runner::append_summary(summary, &report.render_summary())?;
    } else {
        print!("{full}");
    }

    let failed: Vec<&Record> = outcome
        .records
        .iter()
        .filter(|r| r.status == "failed")
        .collect();
    for r in &failed {
        let mut msg = r.to_failure().map(|f| f.error).unwrap_or_default();
        for h in &r.hints {
            msg.push_str(&format!("\nhint: {h}"));
        }
        let name = if r.app_name.is_empty() {
            &r.app_id
        } else {
            &r.app_name
        };
        commands.error(&format!("rotor: rotating {name} failed"), &msg);
    }
    if commands.suppressed_errors > 0 {
        commands.warning(
            "rotor",
            &format!(
                "{} more failures are not annotated: see the job summary",
                commands.suppressed_errors
            ),
        );
    }

    for f in &outcome.vault_failures {
        let mut msg = f.error.clone();
        for h in &f.hints {
            msg.push_str(&format!("\nhint: {h}"));
        }
        commands.error(
            &format!("rotor: vault {} could not be listed", f.vault_url),
            &msg,
        );
    }
    let mut exit =
        if failed.is_empty() && outcome.cleanup_failed == 0 && outcome.vault_failures.is_empty() {
            0u8
        } else {
            1u8
        };
    let mut comment_id = None;
    let mut audit_pr = None;

    if let Some((number, fork, head_sha)) = comment {
        if args.labels
            && let Some(n) = number
            && !(fork && event_name == "pull_request")
        {
            label_pull_request(env, commands, n, &report).await;
        }
        let nothing_due = !report
            .rows
            .iter()
            .any(|r| matches!(r.status, Status::WouldRotate | Status::Failed));
        match (args.comment, number) {
            (CommentMode::Off, _) => {}
            (_, None) => commands.warning(
                "rotor: no pull request comment",
                "the event payload has no pull request number; the report is in the job summary",
            ),
            (_, Some(_)) if fork && event_name == "pull_request" => commands.warning(
                "rotor: no pull request comment",
                "pull requests from forks get a read-only token: the report is in the job summary",
            ),
            (mode, Some(n)) => {
                let mut sticky = report.clone();
                sticky.marker_key = Some(args.comment_key.clone());
                sticky.footer = Some(markdown::Footer::now(
                    env.run_url(),
                    head_sha.or_else(|| env.sha.clone()),
                ));
                let body = sticky.render(markdown::COMMENT_LIMIT);
                comment_id = match (nothing_due, args.comment_if_nothing_due) {
                    (true, NothingDue::Delete) => {
                        post_comment_with(env, commands, n, &args.comment_key, None, mode).await
                    }
                    (true, NothingDue::Skip) => {
                        match has_comment(env, n, &args.comment_key).await {
                            Some(true) => {
                                post_comment_with(
                                    env,
                                    commands,
                                    n,
                                    &args.comment_key,
                                    Some(&body),
                                    CommentMode::Update,
                                )
                                .await
                            }
                            _ => {
                                commands.log(&format!(
                                    "rotor: pull request #{n}: nothing is due; no comment"
                                ));
                                None
                            }
                        }
                    }
                    _ => {
                        post_comment_with(env, commands, n, &args.comment_key, Some(&body), mode)
                            .await
                    }
                }
                .map(CommentOutcome::id);
            }
        }
    } else if args.audit_pr && !args.dry_run {
        let attempted: Vec<&Record> = outcome
            .records
            .iter()
            .filter(|r| r.status == "success" || r.status == "failed")
            .collect();
        if attempted.is_empty() {
            commands.log("rotor: nothing rotated; no audit pull request");
        } else {
            match open_audit_pr(env, args, &history_path, &outcome.records, &report).await {
                Ok(pr) => {
                    commands.log(&format!(
                        "rotor: audit pull request #{} {}: {}",
                        pr.number,
                        if pr.created { "opened" } else { "updated" },
                        pr.url
                    ));
                    audit_pr = Some(pr);
                }
                Err(e) => {
                    commands.error("rotor: audit pull request", &format!("{e:#}"));
                    exit = 1;
                }
            }
        }
    }

    if matches!(event, Event::Rotate { .. }) && !args.dry_run {
        notify(
            ctx,
            commands,
            rotor_engine::notify::Message {
                what: "rotation run".into(),
                records: &outcome.audit,
                removed: outcome.removed,
                cleanup_failed: outcome.cleanup_failed,
                run_url: env.run_url(),
                run_error: None,
            },
        )
        .await;
    }

    let mut dashboard_issue = None;
    if args.dashboard && matches!(event, Event::Rotate { .. }) {
        dashboard_issue = update_dashboard(ctx, args, env, commands).await;
    }

    if let Some(out) = &env.output {
        if let Some(n) = dashboard_issue {
            runner::write_output(out, "dashboard-issue", &n.to_string())?;
        }
        let rotated = outcome
            .records
            .iter()
            .filter(|r| r.status == "success")
            .count();
        let rotated = if args.dry_run || !matches!(event, Event::Rotate { .. }) {
            0
        } else {
            rotated
        };
        runner::write_output(out, "rotated", &rotated.to_string())?;
        runner::write_output(out, "failed", &failed.len().to_string())?;
        runner::write_output(out, "due", &outcome.due.to_string())?;
        runner::write_output(out, "removed", &outcome.removed.to_string())?;
        runner::write_output(
            out,
            "report-path",
            &absolute(&report_file).display().to_string(),
        )?;
        runner::write_output(
            out,
            "history-path",
            &absolute(&history_path).display().to_string(),
        )?;
        if let Some(id) = comment_id {
            runner::write_output(out, "comment-id", &id.to_string())?;
        }
        if let Some(pr) = &audit_pr {
            runner::write_output(out, "audit-pr-number", &pr.number.to_string())?;
            runner::write_output(out, "audit-pr-url", &pr.url)?;
        }
    }
    Ok(ExitCode::from(exit))
}

/// A GitHub client for the run's repository, or why there is none.
fn github_client(env: &RunnerEnv) -> anyhow::Result<GitHub> {
    let (owner, repo) = env.repo().context("GITHUB_REPOSITORY is not set")?;
    let token = env
        .token
        .as_deref()
        .context("GITHUB_TOKEN is not set (the action's `github-token` input)")?;
    Ok(GitHub::new(&env.api_url, token, &owner, &repo)?
        .with_graphql_url(env.graphql_url.as_deref()))
}

fn api_message(e: &super::github_api::ApiError) -> String {
    let mut msg = e.to_string();
    for h in e.hints() {
        msg.push_str(&format!("\nhint: {h}"));
    }
    msg
}

/// Reads the tenant and renders the dashboard (`boxes`: for the issue).
async fn render_dashboard<W: Write>(
    ctx: &Context,
    args: &ActionArgs,
    env: &RunnerEnv,
    commands: &mut Commands<W>,
) -> anyhow::Result<(dashboard::Tenant, dashboard::Dashboard)> {
    let (engine, config) = engine_and_config(ctx, env).await?;
    render_dashboard_with(&engine, &config, ctx, args, env, commands).await
}

async fn render_dashboard_with<W: Write>(
    engine: &rotor_engine::Engine,
    config: &rotor_engine::Config,
    ctx: &Context,
    args: &ActionArgs,
    env: &RunnerEnv,
    commands: &mut Commands<W>,
) -> anyhow::Result<(dashboard::Tenant, dashboard::Dashboard)> {
    commands.group("rotor: reading the tenant for the dashboard");
    let token = commands.stop_commands();
    let tenant = dashboard::collect(engine, config, &ctx.history_path()).await;
    commands.resume(&token);
    commands.endgroup();
    let mut tenant = tenant?;
    let d = dashboard::Dashboard {
        title: args.dashboard_title.clone(),
        entries: std::mem::take(&mut tenant.entries),
        run_url: env.run_url(),
        generated_at: Some(engine.now()),
        notes: tenant.notes.clone(),
    };
    Ok((tenant, d))
}

/// Writes `d` to rotor's dashboard issue (created when there is none); what does not fit goes
/// to the job summary. Every failure is a warning. Returns the issue number.
async fn publish_dashboard<W: Write>(
    env: &RunnerEnv,
    commands: &mut Commands<W>,
    d: &dashboard::Dashboard,
    known: Option<u64>,
) -> Option<u64> {
    let body = d.render(markdown::COMMENT_LIMIT, true);
    // The whole dashboard, in a file (like the report) and, as far as it fits in what is left
    // of the step's 1 MiB, in the job summary the issue links to.
    let everything = d.render(usize::MAX, false);
    if let Some(dir) = &env.runner_temp
        && let Err(e) = std::fs::write(dir.join("rotor-dashboard.md"), &everything)
    {
        commands.warning(
            "rotor: dashboard",
            &format!("writing rotor-dashboard.md: {e}"),
        );
    }
    if body.len() < everything.len()
        && let Some(summary) = &env.step_summary
    {
        let used = std::fs::metadata(summary).map_or(0, |m| m.len() as usize);
        let full = d.render(markdown::SUMMARY_LIMIT.saturating_sub(used + 1024), false);
        if let Err(e) = runner::append_summary(summary, &full) {
            commands.warning("rotor: dashboard", &format!("{e:#}"));
        }
    }
    let gh = match github_client(env) {
        Ok(gh) => gh,
        Err(e) => {
            commands.warning("rotor: no dashboard issue", &format!("{e:#}"));
            return None;
        }
    };
    let existing = match known {
        Some(n) => gh.get_issue(n).await.map(Some),
        None => gh.find_own_issue(dashboard::DASHBOARD_MARKER).await,
    };
    let result = match existing {
        Ok(Some(issue)) => gh
            .update_issue(issue.number, &d.title, &body)
            .await
            .map(|()| (issue.number, "updated")),
        Ok(None) => gh
            .create_issue(&d.title, &body)
            .await
            .map(|i| (i.number, "created")),
        Err(e) => Err(e),
    };
    match result {
        Ok((n, what)) => {
            commands.log(&format!("rotor: dashboard issue #{n} {what}"));
            Some(n)
        }
        Err(e) => {
            commands.warning(
                "rotor: could not write the dashboard issue",
                &format!(
                    "{}\nhint: the workflow needs `permissions: issues: write`",
                    api_message(&e)
                ),
            );
            None
        }
    }
}

/// `--dashboard` on a scheduled or dispatched run.
async fn update_dashboard<W: Write>(
    ctx: &Context,
    args: &ActionArgs,
    env: &RunnerEnv,
    commands: &mut Commands<W>,
) -> Option<u64> {
    match render_dashboard(ctx, args, env, commands).await {
        Ok((_, d)) => publish_dashboard(env, commands, &d, None).await,
        Err(e) => {
            commands.warning("rotor: no dashboard", &format!("{e:#}"));
            None
        }
    }
}

/// Whether a repository permission allows requesting a rotation.
fn can_write(permission: &str) -> bool {
    matches!(permission, "admin" | "maintain" | "write")
}

/// The `issues` event: rotates exactly the credentials ticked on rotor's own dashboard issue,
/// when the sender may write to the repository. Anything else changes nothing and says why.
async fn one_click<W: Write>(
    ctx: &Context,
    args: &ActionArgs,
    env: &RunnerEnv,
    commands: &mut Commands<W>,
    payload: &Value,
) -> anyhow::Result<ExitCode> {
    let nothing = |commands: &mut Commands<W>, why: &str| {
        commands.log(&format!("rotor: {why}; nothing was changed"));
        Ok(ExitCode::SUCCESS)
    };
    let action = payload.get("action").and_then(Value::as_str).unwrap_or("");
    if action != "edited" {
        return nothing(
            commands,
            &format!(
                "`issues` event `{action}`: rotor acts only on `edited` (a box ticked on its dashboard)"
            ),
        );
    }
    let Some(number) = payload.pointer("/issue/number").and_then(Value::as_u64) else {
        return nothing(commands, "the `issues` event payload has no issue number");
    };
    let sender = payload
        .pointer("/sender/login")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let gh = match github_client(env) {
        Ok(gh) => gh,
        Err(e) => return nothing(commands, &format!("{e:#}")),
    };
    // The issue as it is now, not as the payload says.
    let issue = match gh.get_issue(number).await {
        Ok(i) => i,
        Err(e) => {
            commands.error("rotor: dashboard", &api_message(&e));
            return Ok(ExitCode::from(1));
        }
    };
    if !gh.is_own_issue(&issue, dashboard::DASHBOARD_MARKER).await {
        return nothing(
            commands,
            &format!(
                "issue #{number} is not rotor's dashboard (it must start with rotor's marker and be written by {})",
                gh.own_login().await
            ),
        );
    }
    let ticked = dashboard::ticked(&issue.body);
    if ticked.is_empty() {
        return nothing(
            commands,
            &format!("no box is ticked on dashboard issue #{number}"),
        );
    }
    if sender.is_empty() {
        return nothing(commands, "the event payload names no sender");
    }
    let permission = match gh.collaborator_permission(&sender).await {
        Ok(p) => p,
        Err(e) => {
            commands.warning("rotor: dashboard", &api_message(&e));
            return nothing(
                commands,
                &format!("could not verify the permission of `{sender}`"),
            );
        }
    };
    if !can_write(&permission) {
        commands.warning(
            "rotor: rotation refused",
            &format!("`{sender}` has `{permission}` permission on the repository; requesting a rotation needs write. Nothing was changed"),
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (engine, config) = engine_and_config(ctx, env).await?;
    let (tenant, _) = render_dashboard_with(&engine, &config, ctx, args, env, commands).await?;
    let mut refused: Vec<String> = Vec::new();
    let mut records = Vec::new();
    let mut rotated_links: Vec<AnyLink> = Vec::new();
    commands.group("rotor: rotating the credentials ticked on the dashboard");
    let token = commands.stop_commands();
    for t in &ticked {
        let kind = t.kind.noun();
        let key = dashboard::box_key(t.kind, &t.app_id, &t.key_id);
        let Some(r) = tenant.rotatable.get(&key) else {
            // A box of the other kind with these ids is not taken for this one.
            let other = match t.kind {
                dashboard::Kind::Secret => dashboard::Kind::Certificate,
                dashboard::Kind::Certificate => dashboard::Kind::Secret,
            };
            let why = if tenant
                .rotatable
                .contains_key(&dashboard::box_key(other, &t.app_id, &t.key_id))
            {
                format!(
                    "the box is for a {kind} but these ids name a {}",
                    other.noun()
                )
            } else {
                "not a rotatable credential on the dashboard now (unknown, blocked, or already rotated)"
                    .to_string()
            };
            refused.push(format!(
                "{kind} {} / {}: {why}; not rotated",
                markdown::code(&t.app_id),
                markdown::code(&t.key_id)
            ));
            continue;
        };
        let mut policy = config.policy.clone();
        if let Some(c) = r.at_risk {
            if !t.risk_accepted {
                refused.push(format!(
                    "{} / {}: the match is below the minimum confidence; tick the box that names the risk too. Not rotated",
                    markdown::code(&t.app_id),
                    markdown::escape(r.link.credential_display_name())
                ));
                continue;
            }
            policy.min_confidence = c;
        }
        let opts = rotor_engine::RotateOptions {
            force: true,
            replace_key_id: Some(t.key_id.clone()),
            ..rotor_engine::RotateOptions::default()
        };
        let record = match &r.link {
            AnyLink::Secret(l) => engine.rotate(l, &policy, &opts, &LogProgress).await,
            AnyLink::Certificate(l) => {
                engine
                    .rotate_certificate(l, &policy, &opts, &LogProgress)
                    .await
            }
        };
        records.push(record);
        rotated_links.push(r.link.clone());
    }
    commands.resume(&token);
    commands.endgroup();
    for why in &refused {
        commands.log(&format!("rotor: {}", why.replace('`', "")));
    }
    let recs: Vec<Record> = records.iter().map(Record::from_engine).collect();
    let failed = recs.iter().filter(|r| r.status == "failed").count();
    let rotated = recs.iter().filter(|r| r.status == "success").count();
    let mut report = records::report_of_records(
        &format!("rotor: {rotated} rotated, {failed} failed (requested on the dashboard)"),
        &recs,
        false,
    );
    // Records carry no lineage name: the row names it (and, for a certificate, the kind and
    // thumbprint) from the link.
    for (row, link) in report.rows.iter_mut().zip(&rotated_links) {
        complete_row(row, link, None);
    }
    report.intro.push(format!(
        "Requested by {} (`{}` permission).",
        markdown::escape(&sender),
        markdown::escape(&permission)
    ));
    for why in &refused {
        report.intro.push(format!("Refused: {why}."));
    }
    report.footer = Some(markdown::Footer::now(env.run_url(), env.sha.clone()));
    let comment = report.render(markdown::COMMENT_LIMIT);
    if let Err(e) = gh.comment_on_issue(number, &comment).await {
        commands.warning(
            "rotor: could not comment on the dashboard",
            &api_message(&e),
        );
    }
    if let Some(summary) = &env.step_summary {
        runner::append_summary(summary, &report.render_summary())?;
    }
    notify(
        ctx,
        commands,
        rotor_engine::notify::Message {
            what: "rotation requested on the dashboard".into(),
            records: &records,
            removed: 0,
            cleanup_failed: 0,
            run_url: env.run_url(),
            run_error: None,
        },
    )
    .await;
    // Re-rendered from Azure as it is now: the boxes are cleared.
    match render_dashboard(ctx, args, env, commands).await {
        Ok((_, d)) => {
            publish_dashboard(env, commands, &d, Some(number)).await;
        }
        Err(e) => commands.warning("rotor: dashboard not re-rendered", &format!("{e:#}")),
    }
    if let Some(out) = &env.output {
        runner::write_output(out, "rotated", &rotated.to_string())?;
        runner::write_output(out, "failed", &failed.to_string())?;
        runner::write_output(out, "dashboard-issue", &number.to_string())?;
    }
    Ok(ExitCode::from(u8::from(failed > 0)))
}

/// The labels `--labels` sets on a pull request, one at a time.
pub const OUTCOME_LABELS: [&str; 3] = ["rotor:failed", "rotor:would-rotate", "rotor:nothing-due"];

/// `--labels`: the one outcome label for this report; a failure is a warning.
async fn label_pull_request<W: Write>(
    env: &RunnerEnv,
    commands: &mut Commands<W>,
    number: u64,
    report: &Report,
) {
    let label = if report.rows.iter().any(|r| r.status == Status::Failed) {
        OUTCOME_LABELS[0]
    } else if report.rows.iter().any(|r| r.status == Status::WouldRotate) {
        OUTCOME_LABELS[1]
    } else {
        OUTCOME_LABELS[2]
    };
    let (Some((owner, repo)), Some(token)) = (env.repo(), env.token.as_deref()) else {
        commands.warning(
            "rotor: no label",
            "GITHUB_REPOSITORY or GITHUB_TOKEN is not set",
        );
        return;
    };
    let result = match GitHub::new(&env.api_url, token, &owner, &repo) {
        Ok(gh) => gh
            .set_exclusive_label(number, label, &OUTCOME_LABELS)
            .await
            .map_err(|e| {
                let mut msg = e.to_string();
                for h in e.hints() {
                    msg.push_str(&format!("\nhint: {h}"));
                }
                msg
            }),
        Err(e) => Err(format!("{e:#}")),
    };
    match result {
        Ok(()) => commands.log(&format!("rotor: pull request #{number} labelled {label}")),
        Err(msg) => commands.warning("rotor: could not label the pull request", &msg),
    }
}

/// Whether rotor has a current sticky comment for `key` on pull request `number` (None: could not
/// tell).
async fn has_comment(env: &RunnerEnv, number: u64, key: &str) -> Option<bool> {
    let (owner, repo) = env.repo()?;
    let gh = GitHub::new(&env.api_url, env.token.as_deref()?, &owner, &repo)
        .ok()?
        .with_graphql_url(env.graphql_url.as_deref());
    gh.has_sticky_comment(number, key).await.ok()
}

/// Whether a run failed for want of Azure credentials (none configured, or a login refused): the
/// engine's `Config` and `Permission` kinds.
fn lacks_credentials(e: &anyhow::Error) -> bool {
    e.chain()
        .find_map(|c| c.downcast_ref::<rotor_engine::Error>())
        .is_some_and(|e| {
            matches!(
                e.kind(),
                rotor_engine::ErrorKind::Config | rotor_engine::ErrorKind::Permission
            )
        })
}

/// A fork pull request gets no secrets and no OIDC token: a warning and a job summary that say so,
/// and the step succeeds (there is nothing the pull request's author can fix).
fn fork_without_credentials<W: Write>(
    env: &RunnerEnv,
    commands: &mut Commands<W>,
    e: &anyhow::Error,
) {
    let why = format!("{e:#}");
    commands.warning(
        "rotor: no report for this fork pull request",
        &format!(
            "pull requests from forks get no secrets and no OIDC token, so rotor could not read Azure ({why}); nothing was checked or changed"
        ),
    );
    let md = format!(
        "### rotor: no report for this pull request\n\n\
         This pull request comes from a fork: GitHub gives its workflow runs no secrets and no OIDC \
         token, so rotor could not read Azure. Nothing was checked or changed; the scheduled \
         rotation is not affected.\n\n- cause: {}\n",
        markdown::escape(&why)
    );
    if let Some(summary) = &env.step_summary
        && let Err(err) = runner::append_summary(summary, &md)
    {
        tracing::warn!("{err:#}");
    }
}

/// A run that could not start (configuration, credentials, permissions): the job summary and an
/// error annotation say why and how to fix it; the caller prints the error and picks the exit code.
fn report_run_error<W: Write>(env: &RunnerEnv, commands: &mut Commands<W>, e: &anyhow::Error) {
    let hints: Vec<String> = e
        .chain()
        .find_map(|c| c.downcast_ref::<rotor_engine::Error>())
        .map(rotor_engine::Error::hints)
        .or_else(|| {
            e.chain()
                .find_map(|c| c.downcast_ref::<crate::commands::UsageError>())
                .map(|u| u.hints.clone())
        })
        .unwrap_or_default();
    let message = format!("{e:#}");
    let mut annotation = message.clone();
    let mut md = format!(
        "### rotor: the run failed\n\n{}\n",
        markdown::escape(&message)
    );
    for h in &hints {
        annotation.push_str(&format!("\nhint: {h}"));
        md.push_str(&format!("\n- hint: {}", markdown::escape(h)));
    }
    commands.error("rotor", &annotation);
    if let Some(summary) = &env.step_summary
        && let Err(err) = runner::append_summary(summary, &md)
    {
        tracing::warn!("{err:#}");
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The history file's path inside the repository: relative to `GITHUB_WORKSPACE` when under it,
/// else as given when relative, else its file name.
fn repo_relative(env: &RunnerEnv, path: &Path) -> String {
    let abs = absolute(path);
    if let Some(ws) = &env.workspace
        && let Ok(rel) = abs.strip_prefix(absolute(ws))
    {
        return rel.to_string_lossy().replace('\\', "/");
    }
    if path.is_relative() {
        return path
            .to_string_lossy()
            .replace('\\', "/")
            .trim_start_matches("./")
            .to_string();
    }
    path.file_name().map_or_else(
        || "rotor-history.jsonl".to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

async fn open_audit_pr(
    env: &RunnerEnv,
    args: &ActionArgs,
    history_path: &Path,
    records: &[Record],
    report: &Report,
) -> anyhow::Result<super::github_api::AuditPr> {
    let (owner, repo) = env
        .repo()
        .context("opening the audit pull request: GITHUB_REPOSITORY is not set")?;
    let token = env.token.as_deref().context(
        "opening the audit pull request: GITHUB_TOKEN is not set (the action's `github-token` input)",
    )?;
    let gh = GitHub::new(&env.api_url, token, &owner, &repo)?
        .with_graphql_url(env.graphql_url.as_deref());
    let mut lines = String::new();
    for r in records
        .iter()
        .filter(|r| r.status == "success" || r.status == "failed")
    {
        lines.push_str(&serde_json::to_string(r)?);
        lines.push('\n');
    }
    let file = repo_relative(env, history_path);
    let message = format!(
        "rotor audit: records of {}",
        env.run_url().unwrap_or_else(|| env.actor())
    );
    let intro_file = markdown::code(&file);
    let run_url = env.run_url();
    let failures_now = report.failures.clone();
    let render = move |accumulated: &str| {
        audit_pr_text(accumulated, &intro_file, run_url.as_deref(), &failures_now)
    };
    gh.publish_audit(&args.audit_branch, &file, &lines, &message, &render)
        .await
        .map_err(|e| {
            let hints = e.hints();
            let mut err = anyhow::anyhow!("{e}");
            for h in hints {
                err = err.context(format!("hint: {h}"));
            }
            err
        })
}

/// The audit pull request's title and body, over every record its branch holds that the default
/// branch lacks (all the runs since it was opened): counts, the runs, the dates, and the report of
/// those records (this run's cleanup failures added).
fn audit_pr_text(
    accumulated: &str,
    file: &str,
    run_url: Option<&str>,
    failures_now: &[markdown::Failure],
) -> (String, String) {
    let records = records::parse_records(accumulated).unwrap_or_default();
    let rotated = records.iter().filter(|r| r.status == "success").count();
    let failed = records.iter().filter(|r| r.status == "failed").count();
    let runs: std::collections::BTreeSet<&str> = records.iter().map(|r| r.actor.as_str()).collect();
    let mut dates: Vec<&str> = records
        .iter()
        .filter_map(|r| r.started_at.get(..10))
        .collect();
    dates.sort_unstable();
    let span = match (dates.first(), dates.last()) {
        (Some(a), Some(b)) if a != b => format!("{a} to {b}"),
        (Some(a), _) => (*a).to_string(),
        _ => String::new(),
    };
    let runs_word = if runs.len() == 1 { "run" } else { "runs" };
    let title = format!(
        "rotor audit: {rotated} rotated, {failed} failed in {} {runs_word}{}",
        runs.len(),
        if span.is_empty() {
            String::new()
        } else {
            format!(" ({span})")
        }
    );
    let mut report = records::report_of_records(&markdown::escape(&title), &records, false);
    report.intro.push(format!(
        "This pull request appends the audit records of {} rotor {runs_word} to {file}; merging it keeps them in the repository's history.",
        runs.len()
    ));
    let run_list: Vec<String> = runs.iter().map(|a| markdown::code(a)).collect();
    report.intro.push(format!("Runs: {}.", run_list.join(", ")));
    for f in failures_now {
        if !report.failures.contains(f) {
            report.failures.push(f.clone());
        }
    }
    report.run_url = run_url.map(str::to_string);
    report.footer = Some(markdown::Footer::now(run_url.map(str::to_string), None));
    (title, report.render(markdown::COMMENT_LIMIT))
}

/// The engine and configuration for this run. Audit records of a workflow run name it
/// (`github:<repo>/<run id>`): when the caller's context has another actor, an equivalent context
/// (same flags, configuration and history file) with that actor builds the engine.
async fn engine_and_config(
    ctx: &Context,
    env: &RunnerEnv,
) -> anyhow::Result<(rotor_engine::Engine, rotor_engine::Config)> {
    let actor = env.actor();
    if ctx.actor() == actor {
        return Ok((ctx.engine()?, ctx.config().clone()));
    }
    let own = Context::from_env(ctx.global())?
        .with_config(ctx.config().clone())
        .with_history_path(ctx.history_path())
        .with_actor(actor);
    Ok((own.engine()?, own.config().clone()))
}

/// Writes one line per progress event, between `::stop-commands::` markers.
struct LogProgress;

impl rotor_engine::Progress for LogProgress {
    fn event(&self, e: &rotor_engine::ProgressEvent) {
        let line = format!(
            "rotor: {} ({}): {}",
            if e.app_name.is_empty() {
                &e.app_id
            } else {
                &e.app_name
            },
            crate::commands::output::short(&e.rotation_id),
            e.message
        )
        .replace(['\r', '\n'], " ");
        println!("{line}");
    }
}

/// Lists what is due — secret links and certificate links — then runs the rotation protocol on
/// each due link (`dry_run`: read-only preflight), secret links at most `policy.max_concurrent`
/// at a time, then each certificate link. Names from Azure are printed only
/// between `::stop-commands::` markers.
async fn rotate_links<W: Write>(
    ctx: &Context,
    env: &RunnerEnv,
    commands: &mut Commands<W>,
    dry_run: bool,
) -> anyhow::Result<(
    Vec<(AnyLink, AnyStatus)>,
    Vec<rotor_engine::AuditRecord>,
    Vec<rotor_engine::VaultFailure>,
)> {
    let (engine, config) = engine_and_config(ctx, env).await?;
    commands.group(if dry_run {
        "rotor: what is due (dry run)"
    } else {
        "rotor: rotating what is due"
    });
    let token = commands.stop_commands();
    let due = lineage::due_all(&engine, &config).await;
    let result = match due {
        Ok(due) => {
            let opts = rotor_engine::RotateOptions {
                dry_run,
                ..rotor_engine::RotateOptions::default()
            };
            let links: Vec<AnyLink> = due.iter().map(|(l, _)| l.clone()).collect();
            let records =
                lineage::rotate_all(&engine, &links, &config.policy, &opts, &LogProgress).await;
            Ok((due, records, engine.vault_failures()))
        }
        Err(e) => Err(anyhow::Error::new(e)),
    };
    commands.resume(&token);
    commands.endgroup();
    result
}

async fn dry_run<W: Write>(
    ctx: &Context,
    env: &RunnerEnv,
    commands: &mut Commands<W>,
    why: &str,
) -> anyhow::Result<Outcome> {
    let (due, engine_records, vault_failures) = rotate_links(ctx, env, commands, true).await?;
    let mut records_out = Vec::new();
    let mut rows = Vec::new();
    for ((link, status), rec) in due.iter().zip(&engine_records) {
        let rec = Record::from_engine(rec);
        let mut row = rec.to_row(true);
        complete_row(&mut row, link, Some(status));
        if row.status != Status::Failed
            && let Some(reason) = status.due_reason()
        {
            row.detail = reason.to_owned();
        }
        if row.confidence.is_empty() {
            row.confidence = status.confidence().to_string();
        }
        row.expires_at = status.current_expires_at();
        rows.push(row);
        records_out.push(rec);
    }
    let mut report = Report {
        title: format!(
            "rotor: dry run ({}) — nothing was changed",
            markdown::escape(why)
        ),
        rows,
        failures: records_out.iter().filter_map(Record::to_failure).collect(),
        ..Report::default()
    };
    report.intro.extend(vault_failure_lines(&vault_failures));
    Ok(Outcome {
        due: due.len(),
        report,
        records: records_out,
        vault_failures,
        ..Outcome::default()
    })
}

/// `--cleanup`: removes every link's old credentials whose grace period has passed. Failures
/// are annotated and listed with the report's failures; they make the run exit 1.
async fn cleanup<W: Write>(
    ctx: &Context,
    env: &RunnerEnv,
    commands: &mut Commands<W>,
    outcome: &mut Outcome,
) {
    let (engine, config) = match engine_and_config(ctx, env).await {
        Ok(x) => x,
        Err(e) => {
            commands.error("rotor: cleanup", &format!("{e:#}"));
            outcome.cleanup_failed += 1;
            return;
        }
    };
    commands.group("rotor: removing old credentials whose grace period has passed");
    let token = commands.stop_commands();
    let links = lineage::links_all(&engine, &config).await;
    let results = match &links {
        Ok(links) => lineage::cleanup_all(&engine, links, &config.policy, false).await,
        Err(_) => Vec::new(),
    };
    commands.resume(&token);
    commands.endgroup();
    let links = match links {
        Ok(l) => l,
        Err(e) => {
            let mut msg = e.to_string();
            for h in e.hints() {
                msg.push_str(&format!("\nhint: {h}"));
            }
            commands.error("rotor: cleanup", &msg);
            outcome.report.failures.push(markdown::Failure {
                app: String::new(),
                app_id: String::new(),
                credential: String::new(),
                error: e.to_string(),
                hints: e.hints(),
            });
            outcome.cleanup_failed += 1;
            return;
        }
    };
    for (link, result) in links.iter().zip(results) {
        match result {
            Ok(o) => outcome.removed += o.removed_key_ids.len(),
            Err(e) => {
                let mut msg = e.to_string();
                for h in e.hints() {
                    msg.push_str(&format!("\nhint: {h}"));
                }
                commands.error("rotor: cleanup failed", &msg);
                outcome.report.failures.push(markdown::Failure {
                    app: String::new(),
                    app_id: link.application_id().to_owned(),
                    credential: link.label(None),
                    error: e.to_string(),
                    hints: e.hints(),
                });
                outcome.cleanup_failed += 1;
            }
        }
    }
    outcome.report.intro.push(format!(
        "Cleanup: {} old credentials removed{}.",
        outcome.removed,
        if outcome.cleanup_failed > 0 {
            format!(", {} links failed", outcome.cleanup_failed)
        } else {
            String::new()
        }
    ));
}

/// Fills what a record may lack from the link: the lineage name (for a certificate with its
/// kind and thumbprint) and the targets.
fn complete_row(row: &mut markdown::Row, link: &AnyLink, status: Option<&AnyStatus>) {
    if row.credential.is_empty()
        || row.credential.starts_with("key ")
        || row.credential.starts_with("(certificate")
    {
        match (link, row.credential.find("(certificate ")) {
            // the record's own thumbprint (the new one) is kept; else the current one
            (AnyLink::Certificate(l), Some(i)) => {
                row.credential = format!("{} {}", l.credential_display_name, &row.credential[i..]);
            }
            _ => row.credential = link.label(status),
        }
    }
    if row.targets.is_empty() {
        row.targets = link
            .targets()
            .into_iter()
            .map(|(vault, name)| (vault.to_string(), name))
            .collect();
    }
    if row.app_id.is_empty() {
        row.app_id = link.application_id().to_owned();
    }
}

async fn rotate_due<W: Write>(
    ctx: &Context,
    env: &RunnerEnv,
    commands: &mut Commands<W>,
) -> anyhow::Result<Outcome> {
    let (due, engine_records, vault_failures) = rotate_links(ctx, env, commands, false).await?;
    let records_out: Vec<Record> = engine_records.iter().map(Record::from_engine).collect();
    let rotated = records_out.iter().filter(|r| r.status == "success").count();
    let failed = records_out.iter().filter(|r| r.status == "failed").count();
    let mut report = records::report_of_records(
        &format!("rotor: {rotated} rotated, {failed} failed"),
        &records_out,
        false,
    );
    for (row, (link, status)) in report.rows.iter_mut().zip(&due) {
        complete_row(row, link, Some(status));
    }
    report
        .intro
        .push(format!("Rotation run by {}.", markdown::code(&env.actor())));
    report.intro.extend(vault_failure_lines(&vault_failures));
    Ok(Outcome {
        due: due.len(),
        report,
        records: records_out,
        vault_failures,
        audit: engine_records,
        ..Outcome::default()
    })
}

/// Sends the run's notifications (`[notify]` and the `notify-*` inputs). A failed notification
/// is a warning; it never changes the exit code. Webhook URLs are never printed.
pub async fn notify<W: Write>(
    ctx: &Context,
    commands: &mut Commands<W>,
    m: rotor_engine::notify::Message<'_>,
) {
    let cfg = match ctx
        .config()
        .notify
        .clone()
        .with_env(&|n| std::env::var(n).ok())
    {
        Ok(c) => c,
        Err(e) => {
            commands.warning("rotor: no notification", &e.to_string());
            return;
        }
    };
    for sent in rotor_engine::notify::send(&cfg, &m).await {
        if sent.error.is_some() {
            commands.warning("rotor: notification failed", &sent.describe());
        } else {
            commands.log(&format!("rotor: {}", sent.describe()));
        }
    }
}

/// One summary line per vault that could not be listed (escaped: the text names Azure objects).
fn vault_failure_lines(failures: &[rotor_engine::VaultFailure]) -> Vec<String> {
    failures
        .iter()
        .map(|f| {
            format!(
                "⚠️ Vault {} could not be listed, so its secrets were not matched or rotated this run: {}",
                markdown::code(f.vault_url.as_str()),
                markdown::escape(&f.error)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_received_secret_is_masked_once_and_only_on_a_runner() {
        let vars: std::collections::BTreeMap<&str, &str> = [
            ("AZURE_CLIENT_SECRET", "client~secret"),
            ("ARM_CLIENT_SECRET", "client~secret"),
            ("AZURE_OIDC_TOKEN", "eyJ.oidc.jwt"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token"),
            ("GITHUB_TOKEN", "ghs_token"),
            ("AZURE_CLIENT_ID", "not-a-secret"),
        ]
        .into();
        let get = |name: &str| vars.get(name).map(|v| v.to_string());
        let mut buf = Vec::new();
        let on_runner = RunnerEnv::from_vars([("GITHUB_ACTIONS", "true")]);
        mask_secret_vars(&on_runner, &mut Commands::new(&mut buf), get);
        let text = String::from_utf8(buf).expect("utf8");
        assert_eq!(
            text,
            "::add-mask::client~secret\n::add-mask::eyJ.oidc.jwt\n\
             ::add-mask::request-token\n::add-mask::ghs_token\n"
        );
        let mut buf = Vec::new();
        mask_secret_vars(&RunnerEnv::default(), &mut Commands::new(&mut buf), get);
        assert!(buf.is_empty(), "no workflow commands off a runner");
    }

    #[test]
    fn events() {
        let pr = json!({"number": 7, "pull_request": {"number": 7,
            "head": {"repo": {"full_name": "o/r"}}, "base": {"repo": {"full_name": "o/r"}}}});
        assert_eq!(
            parse_event("pull_request", &pr, Some("o/r")),
            Event::PullRequest {
                number: Some(7),
                fork: false,
                head_sha: None
            }
        );
        let fork = json!({"number": 8, "pull_request": {
            "head": {"repo": {"full_name": "someone/r", "fork": true}}, "base": {"repo": {"full_name": "o/r"}}}});
        assert_eq!(
            parse_event("pull_request", &fork, Some("o/r")),
            Event::PullRequest {
                number: Some(8),
                fork: true,
                head_sha: None
            }
        );
        assert_eq!(
            parse_event("schedule", &json!({"schedule": "0 3 * * *"}), Some("o/r")),
            Event::Rotate {
                name: "schedule".into()
            }
        );
        for name in [
            "push",
            "issue_comment",
            "merge_group",
            "workflow_call",
            "release",
        ] {
            assert_eq!(
                parse_event(name, &json!({}), Some("o/r")),
                Event::Unsupported { name: name.into() }
            );
        }
        let e = unsupported_event("issue_comment").to_string();
        assert!(
            e.contains("`issue_comment`")
                && e.contains("`schedule`")
                && e.contains("`pull_request_target`"),
            "{e}"
        );
    }

    #[test]
    fn repo_relative_paths() {
        let env = RunnerEnv::from_vars([("GITHUB_WORKSPACE", "/ws")]);
        assert_eq!(
            repo_relative(&env, Path::new("/ws/audit/h.jsonl")),
            "audit/h.jsonl"
        );
        assert_eq!(
            repo_relative(&env, Path::new("/elsewhere/h.jsonl")),
            "h.jsonl"
        );
        let none = RunnerEnv::default();
        assert_eq!(
            repo_relative(&none, Path::new("./audit/h.jsonl")),
            "audit/h.jsonl"
        );
    }
}
