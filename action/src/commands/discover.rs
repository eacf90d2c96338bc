//! `rotor discover`: app registrations with credential counts and every credential's expiry.

use std::process::ExitCode;

use rotor_engine::Application;
use serde::Serialize;
use time::OffsetDateTime;

use super::Context;
use super::output::{self, fmt_time, relative, short};
use crate::cli::OutputFormat;

/// `rotor discover [--filter GLOB] [--expiring-within DAYS]`
#[derive(Debug, Clone, clap::Args)]
pub struct DiscoverArgs {
    /// Only apps whose display name or appId matches this glob (`*`, `?`), e.g. `legacy-*`.
    #[arg(long, value_name = "GLOB")]
    pub filter: Option<String>,
    /// Only apps with a credential that expires within DAYS days (or has expired); only those
    /// credentials are listed.
    #[arg(long, value_name = "DAYS")]
    pub expiring_within: Option<u32>,
}

/// `--output json` shape of `rotor discover` (docs/cli.md).
#[derive(Debug, Serialize)]
pub struct DiscoverJson {
    pub applications: Vec<AppJson>,
}

/// One application in `rotor discover --output json`.
#[derive(Debug, Serialize)]
pub struct AppJson {
    pub object_id: String,
    pub app_id: String,
    pub display_name: String,
    pub secret_count: usize,
    pub certificate_count: usize,
    pub credentials: Vec<CredentialJson>,
}

/// One credential in `rotor discover --output json`.
#[derive(Debug, Serialize)]
pub struct CredentialJson {
    pub key_id: String,
    /// `secret` or `certificate`.
    pub kind: &'static str,
    pub display_name: Option<String>,
    /// First 3 characters of the value as Entra reports them (`null` for certificates).
    pub hint: Option<String>,
    pub start: String,
    pub end: String,
}

/// Builds the JSON view; `expiring_before` keeps only apps with a credential ending before it,
/// and only those credentials.
pub fn to_json(apps: &[Application], expiring_before: Option<OffsetDateTime>) -> DiscoverJson {
    let mut out = Vec::new();
    for a in apps {
        let keep = |end: OffsetDateTime| expiring_before.is_none_or(|limit| end <= limit);
        let mut creds: Vec<CredentialJson> = a
            .password_credentials
            .iter()
            .filter(|c| keep(c.end))
            .map(|c| CredentialJson {
                key_id: c.key_id.clone(),
                kind: "secret",
                display_name: c.display_name.clone(),
                hint: c.hint.clone(),
                start: output::rfc3339(c.start),
                end: output::rfc3339(c.end),
            })
            .collect();
        creds.extend(
            a.key_credentials
                .iter()
                .filter(|c| keep(c.end))
                .map(|c| CredentialJson {
                    key_id: c.key_id.clone(),
                    kind: "certificate",
                    display_name: c.display_name.clone(),
                    hint: None,
                    start: output::rfc3339(c.start),
                    end: output::rfc3339(c.end),
                }),
        );
        if expiring_before.is_some() && creds.is_empty() {
            continue;
        }
        out.push(AppJson {
            object_id: a.object_id.clone(),
            app_id: a.app_id.clone(),
            display_name: a.display_name.clone(),
            secret_count: a.password_credentials.len(),
            certificate_count: a.key_credentials.len(),
            credentials: creds,
        });
    }
    DiscoverJson { applications: out }
}

/// Runs `rotor discover`.
pub async fn run(ctx: &Context, args: &DiscoverArgs) -> anyhow::Result<ExitCode> {
    let engine = ctx.engine()?;
    let apps = engine.discover(args.filter.as_deref()).await?;
    let now = engine.now();
    let limit = args
        .expiring_within
        .map(|d| now + time::Duration::days(i64::from(d)));
    let view = to_json(&apps, limit);
    match ctx.output() {
        OutputFormat::Json => output::print_json(&view)?,
        OutputFormat::Markdown => {
            let rows = rows(&view, now);
            output::print(&output::markdown_table(
                "Discovered applications",
                &HEADERS,
                &rows,
            ));
        }
        OutputFormat::Table => {
            let mut t = output::table(&HEADERS);
            for r in rows(&view, now) {
                t.add_row(r);
            }
            if !view.applications.is_empty() {
                output::print(&t.to_string());
            }
            let creds: usize = view.applications.iter().map(|a| a.credentials.len()).sum();
            let expiring = view
                .applications
                .iter()
                .flat_map(|a| &a.credentials)
                .filter(|c| {
                    time::OffsetDateTime::parse(
                        &c.end,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .is_ok_and(|e| e <= now + time::Duration::days(30))
                })
                .count();
            let mut summary = format!(
                "{} application(s), {creds} credential(s)",
                view.applications.len()
            );
            if let Some(d) = args.expiring_within {
                summary.push_str(&format!(" expiring within {d} days"));
            } else {
                summary.push_str(&format!(", {expiring} expiring within 30 days"));
            }
            output::print(&summary);
        }
    }
    Ok(ExitCode::SUCCESS)
}

const HEADERS: [&str; 7] = [
    "App",
    "App ID",
    "Secrets/Certs",
    "Credential",
    "Key ID",
    "Hint",
    "Expires",
];

fn rows(view: &DiscoverJson, now: OffsetDateTime) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for a in &view.applications {
        let counts = format!("{}/{}", a.secret_count, a.certificate_count);
        if a.credentials.is_empty() {
            rows.push(vec![
                a.display_name.clone(),
                a.app_id.clone(),
                counts,
                "(none)".into(),
                String::new(),
                String::new(),
                String::new(),
            ]);
            continue;
        }
        for (i, c) in a.credentials.iter().enumerate() {
            let end =
                time::OffsetDateTime::parse(&c.end, &time::format_description::well_known::Rfc3339);
            let expires = match end {
                Ok(e) => format!("{} ({})", fmt_time(e), relative(now, e)),
                Err(_) => c.end.clone(),
            };
            let name = c.display_name.clone().unwrap_or_default();
            let name = if c.kind == "certificate" {
                format!("{name} [certificate]")
            } else {
                name
            };
            rows.push(vec![
                if i == 0 {
                    a.display_name.clone()
                } else {
                    String::new()
                },
                if i == 0 {
                    a.app_id.clone()
                } else {
                    String::new()
                },
                if i == 0 {
                    counts.clone()
                } else {
                    String::new()
                },
                name,
                short(&c.key_id).to_owned(),
                c.hint.clone().map(|h| format!("{h}…")).unwrap_or_default(),
                expires,
            ]);
        }
    }
    rows
}
