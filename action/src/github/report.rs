//! `rotor report`: audit records (history file or `--input` JSON) or a Terraform plan
//! (`--terraform-plan`, the output of `terraform show -json`) as one Markdown report — on stdout,
//! in the job summary (`--summary`), or as the sticky pull request comment (`--comment`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;

use super::ReportArgs;
use super::markdown::{self, Report, Row, Status};
use super::records::{self, Record};
use super::runner::{self, Commands, RunnerEnv};
use crate::commands::Context;

/// `rotor report`.
pub async fn run_report(ctx: &Context, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let env = RunnerEnv::from_env();
    let mut commands = Commands::new(std::io::stderr());
    super::action::mask_received_secrets(&env, &mut commands);
    run_report_with(ctx, args, &env, &mut commands).await
}

async fn run_report_with<W: std::io::Write>(
    ctx: &Context,
    args: &ReportArgs,
    env: &RunnerEnv,
    commands: &mut Commands<W>,
) -> anyhow::Result<ExitCode> {
    let mut report = if let Some(plan) = &args.terraform_plan {
        let text = read_input(plan)?;
        let value: Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "reading Terraform plan `{}`: not JSON (produce it with `terraform show -json plan.out > plan.json`)",
                plan.display()
            )
        })?;
        terraform_plan_report(&value)
            .with_context(|| format!("reading Terraform plan `{}`", plan.display()))?
    } else if let Some(input) = &args.input {
        let text = read_input(input)?;
        report_of_json(&text).with_context(|| format!("reading `{}`", input.display()))?
    } else {
        let path = ctx.history_path();
        let filter = crate::commands::history::filter(
            args.since.as_deref(),
            args.until.as_deref(),
            args.app.as_deref(),
            args.status.as_deref(),
            time::OffsetDateTime::now_utc(),
        )?;
        let filtered: Vec<Record> = rotor_engine::History::open(&path)?
            .query(&filter)?
            .iter()
            .map(Record::from_engine)
            .collect();
        records::report_of_records("rotor: rotation history", &filtered, false)
    };
    if let Some(title) = &args.title {
        report.title = markdown::escape(title);
    }
    report.run_url = env.run_url();

    let full = report.render(usize::MAX);
    print!("{full}");
    if let Some(path) = &args.report_path {
        std::fs::write(path, &full)
            .with_context(|| format!("writing the report to `{}`", path.display()))?;
    }
    if args.summary {
        match &env.step_summary {
            Some(path) => runner::append_summary(path, &report.render_summary())?,
            None => commands.warning(
                "rotor report",
                "GITHUB_STEP_SUMMARY is not set: --summary only works inside a GitHub Actions step",
            ),
        }
    }
    if args.comment {
        let number = match args.pr {
            Some(n) => Some(n),
            None => super::action::pull_request_number(env),
        };
        match number {
            None => commands.warning(
                "rotor report",
                "no pull request to comment on: pass --pr NUMBER, or run on a pull_request event",
            ),
            Some(number) => {
                let mut sticky = report.clone();
                sticky.marker_key = Some(args.key.clone());
                sticky.footer = Some(markdown::Footer::now(
                    env.run_url(),
                    super::action::pull_request_head_sha(env).or_else(|| env.sha.clone()),
                ));
                let body = sticky.render(markdown::COMMENT_LIMIT);
                super::action::post_comment(env, commands, number, &args.key, &body).await;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading `{}`", path.display()))
}

/// A report of JSON written by rotor: rotate/cleanup/history output (audit records) or match
/// output (`{"matches": [...], "unmatched": [...]}`).
pub fn report_of_json(text: &str) -> anyhow::Result<Report> {
    if let Ok(v) = serde_json::from_str::<Value>(text.trim())
        && v.get("matches").is_some()
    {
        return Ok(match_report(&v));
    }
    let recs = records::parse_records(text)?;
    let dry = recs.iter().all(|r| r.dry_run == Some(true)) && !recs.is_empty();
    Ok(records::report_of_records(
        if dry {
            "rotor: dry run"
        } else {
            "rotor: rotations"
        },
        &recs,
        false,
    ))
}

/// A report of `rotor match --output json`.
pub fn match_report(v: &Value) -> Report {
    let s = |m: &Value, k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut rows = Vec::new();
    for m in v
        .get("matches")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let signals: Vec<String> = m
            .get("signals")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect();
        let excluded = m.get("excluded").and_then(Value::as_str);
        rows.push(Row {
            app: s(m, "app_name"),
            app_id: s(m, "app_id"),
            credential: m
                .get("credential_display_name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| {
                    format!("key {}", crate::commands::output::short(&s(m, "key_id")))
                }),
            targets: vec![(s(m, "vault_url"), s(m, "secret_name"))],
            confidence: s(m, "confidence"),
            status: if excluded.is_some() {
                Status::Excluded
            } else {
                Status::Matched
            },
            detail: match excluded {
                Some(e) => format!("excluded: {e}"),
                None => format!("signals: {}", signals.join(", ")),
            },
            expires_at: None,
        });
    }
    let unmatched = v
        .get("unmatched")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    Report {
        title: "rotor: matches".into(),
        intro: if unmatched > 0 {
            vec![format!(
                "{unmatched} credentials matched no Key Vault secret."
            )]
        } else {
            vec![]
        },
        rows,
        ..Report::default()
    }
}

/// The `rotor_secret_link` changes of a Terraform plan (`terraform show -json`) as a report:
/// which links rotate (an update whose `current_key_id` becomes unknown) and why — the plan JSON
/// carries no warnings, so the reason is derived from before/after: `rotation_due`, a changed
/// `rotate_when_changed`, targets added or removed, a changed policy.
pub fn terraform_plan_report(plan: &Value) -> anyhow::Result<Report> {
    let changes = plan
        .get("resource_changes")
        .map(|v| {
            v.as_array()
                .ok_or_else(|| anyhow::anyhow!("`resource_changes` is not a list"))
        })
        .transpose()?
        .map(Vec::as_slice)
        .unwrap_or_default();
    if plan.get("format_version").is_none() && plan.get("resource_changes").is_none() {
        anyhow::bail!(
            "no `format_version` or `resource_changes`: this is not `terraform show -json` output"
        );
    }
    let mut rows = Vec::new();
    let mut others = 0usize;
    for rc in changes {
        if rc.get("type").and_then(Value::as_str) != Some("rotor_secret_link")
            || rc.get("mode").and_then(Value::as_str) == Some("data")
        {
            others += 1;
            continue;
        }
        rows.push(plan_row(rc));
    }
    let intro = vec![format!(
        "Terraform plan: {} `rotor_secret_link` resources; {others} other resource changes not shown.",
        rows.len()
    )];
    Ok(Report {
        title: "rotor: Terraform plan".into(),
        intro,
        rows,
        ..Report::default()
    })
}

fn plan_row(rc: &Value) -> Row {
    let address = rc
        .get("address")
        .and_then(Value::as_str)
        .unwrap_or("rotor_secret_link");
    let change = rc.get("change").cloned().unwrap_or(Value::Null);
    let actions: Vec<&str> = change
        .get("actions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let before = change.get("before").filter(|v| !v.is_null());
    let after = change.get("after").filter(|v| !v.is_null());
    let after_unknown = change.get("after_unknown").cloned().unwrap_or(Value::Null);
    let current = after.or(before).cloned().unwrap_or(Value::Null);
    let s = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };

    let targets_of = |v: Option<&Value>| -> BTreeSet<(String, String)> {
        v.and_then(|v| v.get("targets"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|t| (s(t, "vault_url"), s(t, "secret_name")))
            .collect()
    };
    let before_targets = targets_of(before);
    let after_targets = targets_of(after);

    let mut reasons: Vec<String> = Vec::new();
    let key_unknown = after_unknown
        .get("current_key_id")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let is = |a: &[&str]| actions == a;
    let status;
    if is(&["no-op"]) || is(&["read"]) {
        status = Status::UpToDate;
        if let Some(n) = before
            .and_then(|b| b.get("next_rotation_at"))
            .and_then(Value::as_str)
        {
            reasons.push(format!("next rotation {n}"));
        }
    } else if is(&["create"]) {
        status = Status::Changed;
        reasons.push("new link: adopts the credential its targets hold (rotates at once if that credential is due)".into());
    } else if is(&["delete"]) {
        status = Status::Changed;
        reasons.push("link removed: rotor forgets it; Key Vault secrets are kept".into());
    } else if actions.contains(&"delete") && actions.contains(&"create") {
        status = Status::Changed;
        let mut what = Vec::new();
        for k in ["application_id", "credential_display_name"] {
            if before.map(|b| s(b, k)) != after.map(|a| s(a, k)) {
                what.push(k);
            }
        }
        reasons.push(format!(
            "replaced{}: the link is forgotten and created again",
            if what.is_empty() {
                String::new()
            } else {
                format!(" ({} changed)", what.join(", "))
            }
        ));
    } else {
        status = if key_unknown {
            Status::WouldRotate
        } else {
            Status::Changed
        };
        if key_unknown
            && before
                .and_then(|b| b.get("rotation_due"))
                .and_then(Value::as_bool)
                == Some(true)
        {
            let expires = before
                .map(|b| s(b, "current_expires_at"))
                .unwrap_or_default();
            reasons.push(if expires.is_empty() {
                "rotation due".to_string()
            } else {
                format!("rotation due: the current secret expires {expires}")
            });
        }
        let rwc = |v: Option<&Value>| -> BTreeMap<String, String> {
            v.and_then(|v| v.get("rotate_when_changed"))
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
                .unwrap_or_default()
        };
        let (rb, ra) = (rwc(before), rwc(after));
        if rb != ra {
            let keys: BTreeSet<&String> = rb
                .keys()
                .chain(ra.keys())
                .filter(|k| rb.get(*k) != ra.get(*k))
                .collect();
            let keys: Vec<&str> = keys.into_iter().map(String::as_str).collect();
            reasons.push(format!("rotate_when_changed changed ({})", keys.join(", ")));
        }
        let added: Vec<String> = after_targets
            .difference(&before_targets)
            .map(|(v, n)| format!("{n} in {}", markdown::vault_name(v)))
            .collect();
        let removed: Vec<String> = before_targets
            .difference(&after_targets)
            .map(|(v, n)| format!("{n} in {}", markdown::vault_name(v)))
            .collect();
        if !added.is_empty() {
            reasons.push(format!("targets added: {}", added.join(", ")));
        }
        if !removed.is_empty() {
            reasons.push(format!("targets removed: {}", removed.join(", ")));
        }
        if before.and_then(|b| b.get("policy")) != after.and_then(|a| a.get("policy"))
            && !after_unknown
                .get("policy")
                .is_some_and(|v| v == &Value::Bool(true))
        {
            reasons.push("policy changed".into());
        }
        if key_unknown && reasons.is_empty() {
            reasons.push("rotation due (or targets diverged): see the plan's warning".into());
        }
    }
    let targets = if after_targets.is_empty() {
        before_targets
    } else {
        after_targets
    };
    Row {
        app: address.to_string(),
        app_id: s(&current, "application_id"),
        credential: s(&current, "credential_display_name"),
        targets: targets.into_iter().collect(),
        confidence: String::new(),
        status,
        detail: reasons.join("; "),
        expires_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn link(extra: Value) -> Value {
        let mut v = json!({
            "application_id": "11111111-0000-0000-0000-000000000001",
            "credential_display_name": "Secret 1",
            "targets": [{"vault_url": "https://kv-prod.vault.azure.net/", "secret_name": "myapp-secret"}],
            "rotate_when_changed": {"epoch": "1"},
            "rotation_due": false,
            "current_key_id": "aaaa",
            "current_expires_at": "2026-12-01T00:00:00Z",
            "policy": {"rotate_before_expiry_days": 30}
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        v
    }

    #[test]
    fn plan_rows_say_what_rotates_and_why() {
        let plan = json!({
            "format_version": "1.0",
            "resource_changes": [
                {"address": "rotor_secret_link.due", "mode": "managed", "type": "rotor_secret_link",
                 "change": {"actions": ["update"], "before": link(json!({"rotation_due": true})),
                            "after": link(json!({"current_key_id": null})), "after_unknown": {"current_key_id": true}}},
                {"address": "rotor_secret_link.forced", "mode": "managed", "type": "rotor_secret_link",
                 "change": {"actions": ["update"], "before": link(json!({})),
                            "after": link(json!({"rotate_when_changed": {"epoch": "2"}, "current_key_id": null})),
                            "after_unknown": {"current_key_id": true}}},
                {"address": "rotor_secret_link.more", "mode": "managed", "type": "rotor_secret_link",
                 "change": {"actions": ["update"], "before": link(json!({})),
                            "after": link(json!({"targets": [
                                {"vault_url": "https://kv-prod.vault.azure.net/", "secret_name": "myapp-secret"},
                                {"vault_url": "https://kv-dr.vault.azure.net/", "secret_name": "myapp-secret"}]})),
                            "after_unknown": {}}},
                {"address": "rotor_secret_link.same", "mode": "managed", "type": "rotor_secret_link",
                 "change": {"actions": ["no-op"], "before": link(json!({})), "after": link(json!({})), "after_unknown": {}}},
                {"address": "rotor_secret_link.new", "mode": "managed", "type": "rotor_secret_link",
                 "change": {"actions": ["create"], "before": null, "after": link(json!({})), "after_unknown": {"current_key_id": true}}},
                {"address": "null_resource.x", "mode": "managed", "type": "null_resource",
                 "change": {"actions": ["create"], "before": null, "after": {}}}
            ]
        });
        let r = terraform_plan_report(&plan).expect("report");
        assert_eq!(r.rows.len(), 5);
        assert_eq!(r.rows[0].status, Status::WouldRotate);
        assert!(
            r.rows[0].detail.contains("rotation due"),
            "{}",
            r.rows[0].detail
        );
        assert_eq!(r.rows[1].status, Status::WouldRotate);
        assert!(
            r.rows[1]
                .detail
                .contains("rotate_when_changed changed (epoch)")
        );
        assert_eq!(r.rows[2].status, Status::Changed);
        assert!(
            r.rows[2]
                .detail
                .contains("targets added: myapp-secret in kv-dr")
        );
        assert_eq!(r.rows[3].status, Status::UpToDate);
        assert_eq!(r.rows[4].status, Status::Changed);
        assert!(r.intro[0].contains("1 other resource changes"));
        let md = r.render(markdown::COMMENT_LIMIT);
        assert!(md.contains("**2** would rotate"), "{md}");
    }

    #[test]
    fn not_a_plan_is_refused() {
        assert!(terraform_plan_report(&json!({"hello": 1})).is_err());
    }

    #[test]
    fn match_json_renders() {
        let v = json!({"matches": [{"app_id": "a", "app_name": "App", "key_id": "abcdefgh-1", "vault": "kv",
            "vault_url": "https://kv.vault.azure.net/", "secret_name": "s", "confidence": "HIGH", "signals": ["hint", "name"]}],
            "unmatched": [{"app_id": "b", "key_id": "c"}]});
        let r = report_of_json(&v.to_string()).expect("ok");
        assert_eq!(r.rows[0].status, Status::Matched);
        assert!(r.rows[0].detail.contains("hint, name"));
        assert!(r.intro[0].starts_with("1 credentials"));
    }
}
