//! `rotor action` end to end: the real binary, the in-process emulator (Azure) and the fake GitHub
//! Enterprise Server API, with the runner simulated by temporary files. Real webhook payloads
//! from `@octokit/webhooks-examples` (tests/fixtures/webhooks).

#[path = "github_support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};

use axum::http::Method;
use rotor_emulator::{Emulator, EmulatorOptions, Fixture};
use serde_json::{Value, json};
use support::{FakeGitHub, Runner};

struct World {
    emu: Emulator,
    gh: FakeGitHub,
}

async fn world() -> World {
    let emu = Emulator::start(Fixture::sample(), EmulatorOptions::default())
        .await
        .expect("emulator starts");
    let gh = FakeGitHub::start().await;
    World { emu, gh }
}

impl World {
    fn env(&self) -> BTreeMap<String, String> {
        self.emu.endpoints().env.clone()
    }

    /// rotor.toml with the emulator's vaults, the sample's exclusion and `extra_policy` lines.
    fn write_config(&self, runner: &Runner, extra_policy: &str) {
        support::write_config(&self.emu, runner, extra_policy);
    }

    /// Every secret value the emulator knows (credentials, vault versions, principals' secrets).
    fn secret_values(&self) -> BTreeSet<String> {
        let state = self.emu.state();
        let mut out = BTreeSet::new();
        for a in state["applications"].as_array().into_iter().flatten() {
            for p in a["password_credentials"].as_array().into_iter().flatten() {
                if let Some(s) = p["secret_text"].as_str() {
                    out.insert(s.to_string());
                }
            }
        }
        for v in state["vaults"].as_array().into_iter().flatten() {
            for s in v["secrets"].as_array().into_iter().flatten() {
                for x in s["versions"].as_array().into_iter().flatten() {
                    if let Some(val) = x["value"].as_str() {
                        out.insert(val.to_string());
                    }
                }
            }
        }
        for p in state["principals"].as_array().into_iter().flatten() {
            if let Some(s) = p["client_secret"].as_str() {
                out.insert(s.to_string());
            }
        }
        out.retain(|s| s.len() >= 8);
        out
    }

    /// No secret value in comments, pull requests, commits, summaries, outputs, the report, the
    /// history file or the logs (`::add-mask::` lines aside).
    fn assert_no_secret_leaked(&self, runner: &Runner, outs: &[&support::Output]) {
        let values = self.secret_values();
        assert!(
            values.len() > 10,
            "the emulator holds values: {}",
            values.len()
        );
        let mut places: Vec<(String, String)> = vec![
            (
                "GitHub (comments, pull requests, commits, requests)".into(),
                self.gh.everything_written(),
            ),
            ("job summary".into(), runner.summary()),
            ("outputs".into(), runner.outputs_raw()),
        ];
        for f in [
            "runner_temp/rotor-report.md",
            "rotor-history.jsonl",
            "audit/rotor-history.jsonl",
        ] {
            if let Ok(t) = std::fs::read_to_string(runner.path(f)) {
                places.push((f.to_string(), t));
            }
        }
        for (i, o) in outs.iter().enumerate() {
            places.push((format!("logs of run {i}"), o.logs_without_masks()));
        }
        for (place, text) in &places {
            for v in &values {
                assert!(
                    !text.contains(v.as_str()),
                    "a secret value appears in {place}"
                );
            }
        }
    }

    fn applications(&self) -> Value {
        let s = self.emu.state();
        json!({"applications": s["applications"], "vaults": s["vaults"]})
    }
}

fn schedule_payload() -> Value {
    // `schedule` payloads are only this (not in @octokit/webhooks-examples).
    json!({"schedule": "17 3 * * *"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pull_request_runs_leave_one_comment_and_change_nothing_in_azure() {
    let w = world().await;
    let before = w.applications();

    let r1 = Runner::new(
        &w.gh,
        "pull_request",
        &support::fixture("pull_request.opened.json"),
    );
    w.write_config(&r1, "");
    let out1 = r1.rotor(&["action"], &w.env()).await;
    assert_eq!(out1.code, Some(0), "{out1:#?}");
    let bots = w.gh.bot_comments_on(2);
    assert_eq!(bots.len(), 1, "{out1:#?}");
    let body = bots[0].body.clone();
    if std::env::var_os("ROTOR_TEST_DUMP").is_some() {
        eprintln!(
            "--- comment ---\n{body}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out1.stdout, out1.stderr
        );
    }
    assert!(body.starts_with("<!-- rotor-report: action -->"), "{body}");
    assert!(body.contains("dry run"), "{body}");
    assert!(body.contains("would rotate"), "{body}");
    for app in ["MyApp", "orders-service", "consumer-app"] {
        assert!(body.contains(app), "{app} is due: {body}");
    }
    assert!(!body.contains("billing-api"), "not due: {body}");
    insta::with_settings!({
        snapshot_path => "fixtures/snapshots",
        prepend_module_to_snapshot => false,
        filters => vec![
            (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
            (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[TIME]"),
            (r"in \d+ days", "in [N] days"),
            (r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "[DATE] [HH:MM] UTC"),
            (r"<sub>rotor [0-9][^ ]*", "<sub>rotor [VERSION]"),
        ],
    }, {
        insta::assert_snapshot!("pull_request_comment", body);
    });
    let outputs = r1.outputs();
    assert_eq!(
        outputs.get("rotated").map(String::as_str),
        Some("0"),
        "{outputs:?}"
    );
    assert_eq!(
        outputs.get("due").map(String::as_str),
        Some("3"),
        "{outputs:?}"
    );
    assert_eq!(
        outputs.get("failed").map(String::as_str),
        Some("0"),
        "{outputs:?}"
    );
    assert!(outputs.contains_key("comment-id"));
    assert!(r1.summary().contains("would rotate"));

    // The next push (synchronize): the same comment, nothing new.
    let r2 = Runner::new(
        &w.gh,
        "pull_request",
        &support::fixture("pull_request.synchronize.json"),
    );
    w.write_config(&r2, "");
    let out2 = r2.rotor(&["action"], &w.env()).await;
    assert_eq!(out2.code, Some(0), "{out2:#?}");
    assert_eq!(
        w.gh.bot_comments_on(2).len(),
        1,
        "exactly one comment after two runs"
    );
    assert_eq!(
        w.gh.count(
            "POST",
            "/api/v3/repos/Codertocat/Hello-World/issues/2/comments"
        ),
        1
    );
    assert_eq!(w.gh.count("GET", "/api/v3/user"), 0);

    // Nothing changed in Azure.
    assert_eq!(
        w.applications(),
        before,
        "a pull request run must not change Azure"
    );
    w.assert_no_secret_leaked(&r2, &[&out1, &out2]);
    w.assert_no_secret_leaked(&r1, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fork_pull_request_reports_in_the_summary_only() {
    let w = world().await;
    let mut payload = support::fixture("pull_request.opened.json");
    payload["pull_request"]["head"]["repo"]["full_name"] = json!("someone-else/Hello-World");
    payload["pull_request"]["head"]["repo"]["fork"] = json!(true);
    let r = Runner::new(&w.gh, "pull_request", &payload);
    w.write_config(&r, "");
    let out = r.rotor(&["action"], &w.env()).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(
        out.stdout
            .contains("::warning title=rotor%3A no pull request comment::pull requests from forks"),
        "{out:#?}"
    );
    assert!(w.gh.log().is_empty(), "no GitHub call for forks");
    assert!(r.summary().contains("orders-service"));
}

/// The emulator's environment without any Azure credential: what a fork pull request's run has
/// (no secrets, no OIDC request token).
fn without_credentials(mut env: BTreeMap<String, String>) -> BTreeMap<String, String> {
    env.retain(|k, _| {
        !k.ends_with("CLIENT_SECRET")
            && !k.starts_with("ACTIONS_ID_TOKEN")
            && !k.contains("OIDC")
            && !k.contains("FEDERATED")
    });
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fork_pull_request_without_credentials_warns_and_exits_0() {
    let w = world().await;
    let before = w.applications();
    let mut payload = support::fixture("pull_request.opened.json");
    payload["pull_request"]["head"]["repo"]["full_name"] = json!("someone-else/Hello-World");
    payload["pull_request"]["head"]["repo"]["fork"] = json!(true);
    let r = Runner::new(&w.gh, "pull_request", &payload);
    w.write_config(&r, "");
    let out = r.rotor(&["action"], &without_credentials(w.env())).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(
        out.stdout.contains(
            "::warning title=rotor%3A no report for this fork pull request::pull requests from forks get no secrets"
        ),
        "{out:#?}"
    );
    assert!(!out.stdout.contains("::error"), "{out:#?}");
    let summary = r.summary();
    assert!(summary.contains("comes from a fork"), "{summary}");
    assert!(w.gh.log().is_empty(), "no GitHub call for forks");
    assert_eq!(w.applications(), before);

    // The same run on a pull request from the repository itself fails: its workflow should have
    // credentials.
    let r = Runner::new(
        &w.gh,
        "pull_request",
        &support::fixture("pull_request.opened.json"),
    );
    w.write_config(&r, "");
    let out = r.rotor(&["action"], &without_credentials(w.env())).await;
    assert_ne!(out.code, Some(0), "{out:#?}");
    assert!(out.stdout.contains("::error title=rotor::"), "{out:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_other_event_is_refused_and_changes_nothing() {
    let w = world().await;
    let before = w.applications();
    for event in [
        "push",
        "issue_comment",
        "merge_group",
        "pull_request_review",
        "pull_request_review_comment",
        "release",
        "workflow_run",
        "repository_dispatch",
        "workflow_call",
        "deployment",
    ] {
        let r = Runner::new(&w.gh, event, &json!({"action": "created"}));
        w.write_config(&r, "");
        for args in [
            &["action"][..],
            &["action", "--dry-run", "--audit-pr", "--cleanup"][..],
        ] {
            let out = r.rotor(args, &w.env()).await;
            assert_eq!(out.code, Some(2), "{event}: {out:#?}");
            let logs = out.logs_without_masks();
            assert!(
                logs.contains(&format!("does not run on `{event}` events")),
                "{event}: {logs}"
            );
            assert!(
                logs.contains("`schedule` and `workflow_dispatch`")
                    && logs.contains("`pull_request` and `pull_request_target`"),
                "{event}: names the supported events: {logs}"
            );
            assert!(logs.contains("::error title=rotor::"), "{event}: {logs}");
        }
        let escaped = event.replace('_', "\\_");
        assert!(
            r.summary().contains(&format!("\\`{escaped}\\`")),
            "{event}: {}",
            r.summary()
        );
        assert!(
            !r.path("rotor-history.jsonl").exists(),
            "{event}: no history written"
        );
        assert!(r.outputs().is_empty(), "{event}: no outputs");
    }
    assert_eq!(w.applications(), before, "nothing changed in Azure");
    assert!(w.gh.log().is_empty(), "no GitHub call");
    let requests = w.emu.request_log();
    assert!(
        requests.as_array().is_none_or(Vec::is_empty),
        "no Azure call: {requests}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_persons_marker_comment_is_left_alone_and_keys_keep_one_comment_each() {
    let w = world().await;
    // A person's comment that starts exactly like rotor's, posted before rotor ever commented.
    let forged = "<!-- rotor-report: action -->\n### rotor: everything is fine, merge away";
    let person = w.gh.seed_user_comment(2, "mallory", forged);
    let run = |key: &'static str, token: &'static str| {
        let w = &w;
        async move {
            let mut r = Runner::new(
                &w.gh,
                "pull_request",
                &support::fixture("pull_request.opened.json"),
            );
            r.env.insert("GITHUB_TOKEN".into(), token.into());
            w.write_config(&r, "");
            let out = r.rotor(&["action", "--comment-key", key], &w.env()).await;
            assert_eq!(out.code, Some(0), "{out:#?}");
            out
        }
    };
    run("action", support::TOKEN).await;
    run("action", support::TOKEN).await;
    run("nightly-scope", support::TOKEN).await;
    let comments = w.gh.comments_on(2);
    let mine = |key: &str| {
        comments
            .iter()
            .filter(|c| {
                c.login == support::ACTIONS_LOGIN
                    && c.body.starts_with(&format!("<!-- rotor-report: {key} -->"))
            })
            .count()
    };
    assert_eq!(mine("action"), 1, "{comments:#?}");
    assert_eq!(mine("nightly-scope"), 1, "{comments:#?}");
    let p = comments
        .iter()
        .find(|c| c.id == person)
        .expect("still there");
    assert_eq!(p.body, forged, "a person's comment is never edited");
    // Nothing was tried on it either.
    assert_eq!(
        w.gh.count(
            "PATCH",
            &format!("/api/v3/repos/Codertocat/Hello-World/issues/comments/{person}")
        ) + w.gh.count(
            "DELETE",
            &format!("/api/v3/repos/Codertocat/Hello-World/issues/comments/{person}")
        ),
        0
    );

    // Another identity (a GitHub App's installation token) keeps its own comment and never
    // touches github-actions[bot]'s.
    run("action", support::APP_TOKEN).await;
    run("action", support::APP_TOKEN).await;
    let comments = w.gh.comments_on(2);
    let by = |login: &str| {
        comments
            .iter()
            .filter(|c| c.login == login && c.body.starts_with("<!-- rotor-report: action -->"))
            .count()
    };
    assert_eq!(by(support::APP_LOGIN), 1, "{comments:#?}");
    assert_eq!(by(support::ACTIONS_LOGIN), 1, "{comments:#?}");
    assert_eq!(w.gh.count("GET", "/api/v3/user"), 0, "never /user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hide_and_new_minimizes_the_previous_comment_and_nothing_due_can_skip_or_delete() {
    let w = world().await;
    let pr = |run_id: &str, extra: &[&str]| {
        let w = &w;
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let run_id = run_id.to_string();
        async move {
            let mut r = Runner::new(
                &w.gh,
                "pull_request",
                &support::fixture("pull_request.opened.json"),
            );
            r.env.insert("GITHUB_RUN_ID".into(), run_id);
            w.write_config(&r, "");
            let mut args = vec!["action".to_string()];
            args.extend(extra);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = r.rotor(&args, &w.env()).await;
            assert_eq!(out.code, Some(0), "{out:#?}");
            (r, out)
        }
    };
    pr("501", &["--comment", "hide-and-new"]).await;
    // The same run again (re-run): the same report, left alone.
    pr("501", &["--comment", "hide-and-new"]).await;
    assert_eq!(w.gh.bot_comments_on(2).len(), 1);
    // A later run (another run id, so another footer): the first comment is minimized as
    // outdated, a new one posted.
    pr("502", &["--comment", "hide-and-new"]).await;
    let comments = w.gh.bot_comments_on(2);
    assert_eq!(comments.len(), 2, "{comments:#?}");
    assert_eq!(comments[0].minimized.as_deref(), Some("OUTDATED"));
    assert!(
        comments[0].body.contains("Outdated"),
        "{}",
        comments[0].body
    );
    assert!(comments[1].minimized.is_none());
    for (c, run) in comments.iter().zip(["501", "502"]) {
        assert!(
            c.body.contains(&format!("/actions/runs/{run})")),
            "run link: {}",
            c.body
        );
        assert!(c.body.contains(" UTC</sub>"), "time: {}", c.body);
        assert!(c.body.contains("commit `"), "short SHA: {}", c.body);
    }

    // Nothing due: `skip` posts nothing on a pull request without a comment ...
    let nothing_due = |r: &Runner| {
        let vaults: Vec<String> = w
            .emu
            .endpoints()
            .vaults
            .values()
            .map(|u| format!("{u:?}"))
            .collect();
        std::fs::write(
            r.path("rotor.toml"),
            format!(
                "vaults = [{}]\n\n[policy]\nexclusions = [\"name:*\"]\n",
                vaults.join(", ")
            ),
        )
        .expect("config");
    };
    let mut payload = support::fixture("pull_request.opened.json");
    payload["number"] = json!(3);
    payload["pull_request"]["number"] = json!(3);
    for mode in ["skip", "delete"] {
        let r = Runner::new(&w.gh, "pull_request", &payload);
        nothing_due(&r);
        let out = r
            .rotor(&["action", "--comment-if-nothing-due", mode], &w.env())
            .await;
        assert_eq!(out.code, Some(0), "{out:#?}");
        assert!(w.gh.comments_on(3).is_empty(), "{mode}");
        assert!(
            r.summary().contains("rotor"),
            "{mode}: the summary is still written"
        );
    }
    // Labels: exactly one outcome label, replaced as the outcome changes; others are kept.
    w.gh.state
        .lock()
        .expect("lock")
        .labels
        .insert(2, vec!["needs-review".into()]);
    pr("503", &["--labels"]).await;
    assert_eq!(
        w.gh.labels_on(2),
        vec!["needs-review".to_string(), "rotor:would-rotate".to_string()]
    );
    let r = Runner::new(
        &w.gh,
        "pull_request",
        &support::fixture("pull_request.opened.json"),
    );
    nothing_due(&r);
    let out = r.rotor(&["action", "--labels"], &w.env()).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(
        w.gh.labels_on(2),
        vec!["needs-review".to_string(), "rotor:nothing-due".to_string()]
    );

    // ... and `delete` removes rotor's comment where there is one; a person's stays.
    w.gh.seed_user_comment(2, "Codertocat", "<!-- rotor-report: action -->\nquoted");
    let r = Runner::new(
        &w.gh,
        "pull_request",
        &support::fixture("pull_request.opened.json"),
    );
    nothing_due(&r);
    let out = r
        .rotor(&["action", "--comment-if-nothing-due", "delete"], &w.env())
        .await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let left: Vec<_> =
        w.gh.comments_on(2)
            .into_iter()
            .filter(|c| c.body.starts_with("<!-- rotor-report: action -->"))
            .collect();
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0].login, "Codertocat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forbidden_pull_request_comment_falls_back_to_the_summary() {
    let w = world().await;
    w.gh.inject(
        Method::POST,
        "/repos/Codertocat/Hello-World/issues/2/comments",
        403,
        &[],
        "Resource not accessible by integration",
        5,
    );
    let r = Runner::new(
        &w.gh,
        "pull_request",
        &support::fixture("pull_request.opened.json"),
    );
    w.write_config(&r, "");
    let out = r.rotor(&["action"], &w.env()).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(w.gh.bot_comments_on(2).is_empty());
    assert!(
        out.stdout
            .contains("::warning title=rotor%3A could not comment on the pull request::"),
        "{out:#?}"
    );
    assert!(
        r.summary().contains("orders-service"),
        "report in the job summary"
    );
    assert!(!r.outputs().contains_key("comment-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_run_rotates_what_is_due_and_a_second_run_updates_the_audit_pr() {
    let w = world().await;
    let r1 = Runner::new(&w.gh, "schedule", &schedule_payload());
    std::fs::create_dir_all(r1.path("audit")).expect("audit dir");
    w.write_config(&r1, "");
    let out1 = r1
        .rotor(
            &[
                "action",
                "--audit-pr",
                "--history-file",
                "audit/rotor-history.jsonl",
            ],
            &w.env(),
        )
        .await;
    assert_eq!(out1.code, Some(0), "{out1:#?}");

    // Outputs and summary.
    let outputs = r1.outputs();
    assert_eq!(
        outputs.get("rotated").map(String::as_str),
        Some("3"),
        "{outputs:?}"
    );
    assert_eq!(outputs.get("failed").map(String::as_str), Some("0"));
    assert_eq!(outputs.get("due").map(String::as_str), Some("3"));
    let history_path = outputs.get("history-path").expect("history-path");
    assert!(
        history_path.ends_with("audit/rotor-history.jsonl"),
        "{history_path}"
    );
    let report_path = outputs.get("report-path").expect("report-path");
    assert!(std::path::Path::new(report_path).exists());
    let summary = r1.summary();
    if std::env::var_os("ROTOR_TEST_DUMP").is_some() {
        eprintln!(
            "--- summary ---\n{summary}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out1.stdout, out1.stderr
        );
    }
    assert!(summary.contains("**3** rotated"), "{summary}");
    assert!(outputs.contains_key("audit-pr-url"));

    // Azure changed: MyApp has a rotor credential and kv-prod/myapp-secret a new version.
    let state = w.emu.state();
    let myapp = state["applications"]
        .as_array()
        .expect("apps")
        .iter()
        .find(|a| a["display_name"] == "MyApp")
        .expect("MyApp");
    assert!(
        myapp["password_credentials"]
            .as_array()
            .expect("passwords")
            .iter()
            .any(|p| p["display_name"]
                .as_str()
                .is_some_and(|n| n.starts_with("Secret 1 rotor:"))),
        "{myapp}"
    );

    // History: one record per rotation, by this workflow run.
    let history = std::fs::read_to_string(r1.path("audit/rotor-history.jsonl")).expect("history");
    let recs: Vec<Value> = history
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    assert_eq!(
        recs.iter().filter(|r| r["status"] == "success").count(),
        3,
        "{history}"
    );
    for r in &recs {
        assert_eq!(r["actor"], "github:Codertocat/Hello-World/4242", "{r}");
    }

    // The audit pull request: branch, file, body.
    let pulls = w.gh.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(pulls[0].head, "rotor/audit");
    assert_eq!(pulls[0].base, "main");
    assert!(pulls[0].body.contains("**3** rotated"), "{}", pulls[0].body);
    let file =
        w.gh.file("rotor/audit", "audit/rotor-history.jsonl")
            .expect("committed file");
    assert_eq!(file.lines().count(), 3);

    // A second run (workflow_dispatch, a wider policy so more is due): the same pull request,
    // its body updated, the file appended.
    let mut r2 = Runner::new(
        &w.gh,
        "workflow_dispatch",
        &support::fixture("workflow_dispatch.json"),
    );
    r2.env.insert("GITHUB_RUN_ID".into(), "4243".into());
    std::fs::create_dir_all(r2.path("audit")).expect("audit dir");
    w.write_config(&r2, "rotate_before_expiry_days = 300");
    let out2 = r2
        .rotor(
            &[
                "action",
                "--audit-pr",
                "--history-file",
                "audit/rotor-history.jsonl",
            ],
            &w.env(),
        )
        .await;
    assert_eq!(out2.code, Some(0), "{out2:#?}");
    let rotated2: usize = r2.outputs()["rotated"].parse().expect("number");
    assert!(rotated2 >= 1, "{:?}", r2.outputs());
    let pulls = w.gh.pulls();
    assert_eq!(
        pulls.len(),
        1,
        "updated, not a second pull request: {pulls:?}"
    );
    // Title and body cover every run on the branch, not only the last one.
    let total = 3 + rotated2;
    assert!(
        pulls[0].body.contains(&format!("**{total}** rotated")),
        "{}",
        pulls[0].body
    );
    assert!(
        pulls[0]
            .title
            .starts_with(&format!("rotor audit: {total} rotated, 0 failed in 2 runs")),
        "{}",
        pulls[0].title
    );
    for run in ["4242", "4243"] {
        assert!(
            pulls[0].body.contains(&format!("Hello-World/{run}`")),
            "run {run} listed: {}",
            pulls[0].body
        );
    }
    let file =
        w.gh.file("rotor/audit", "audit/rotor-history.jsonl")
            .expect("file");
    assert_eq!(file.lines().count(), 3 + rotated2, "{file}");
    assert_eq!(
        w.gh.count("PATCH", "/api/v3/repos/Codertocat/Hello-World/pulls/"),
        1
    );
    assert_eq!(
        w.gh.count("POST", "/api/v3/repos/Codertocat/Hello-World/pulls"),
        1
    );

    // The audit pull request is merged; the next run starts a new one from the default branch,
    // whose history now has the merged records.
    w.gh.merge_pull(pulls[0].number);
    let merged =
        w.gh.file("main", "audit/rotor-history.jsonl")
            .expect("merged file");
    let r3 = Runner::new(&w.gh, "schedule", &schedule_payload());
    std::fs::create_dir_all(r3.path("audit")).expect("audit dir");
    std::fs::write(
        r3.path("rotor.toml"),
        std::fs::read_to_string(r2.path("rotor.toml"))
            .expect("config")
            .replace(
                "rotate_before_expiry_days = 300",
                "rotate_before_expiry_days = 399\nnew_secret_validity_days = 400",
            )
            .replace(
                "[\"name:legacy-*\"]",
                "[\"name:legacy-*\", \"name:consumer-*\"]",
            ),
    )
    .expect("config");
    let out3 = r3
        .rotor(
            &[
                "action",
                "--audit-pr",
                "--history-file",
                "audit/rotor-history.jsonl",
            ],
            &w.env(),
        )
        .await;
    assert_eq!(out3.code, Some(0), "{out3:#?}");
    let rotated3: usize = r3.outputs()["rotated"].parse().expect("number");
    assert!(rotated3 >= 1, "{:?}", r3.outputs());
    let pulls = w.gh.pulls();
    assert_eq!(pulls.len(), 2, "{pulls:?}");
    assert_eq!(pulls.iter().filter(|p| p.state == "open").count(), 1);
    let file =
        w.gh.file("rotor/audit", "audit/rotor-history.jsonl")
            .expect("file");
    assert!(
        file.starts_with(&merged),
        "the new branch starts from the merged history"
    );
    assert_eq!(file.lines().count(), merged.lines().count() + rotated3);

    w.assert_no_secret_leaked(&r1, &[&out1]);
    w.assert_no_secret_leaked(&r2, &[&out2]);
    w.assert_no_secret_leaked(&r3, &[&out3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_rotation_is_annotated_and_exits_1() {
    let w = world().await;
    // Every Key Vault write fails.
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(w.emu.ca_pem().as_bytes()).expect("ca"),
        )
        .build()
        .expect("client");
    let resp = client
        .post(format!("{}/faults", w.emu.endpoints().admin))
        .json(&json!({"method": "PUT", "path": "/secrets/.*", "status": 403, "count": 1000}))
        .send()
        .await
        .expect("admin faults");
    assert!(resp.status().is_success(), "{resp:?}");

    let r = Runner::new(&w.gh, "schedule", &schedule_payload());
    w.write_config(&r, "");
    let out = r.rotor(&["action"], &w.env()).await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert_eq!(r.outputs().get("failed").map(String::as_str), Some("3"));
    assert_eq!(r.outputs().get("rotated").map(String::as_str), Some("0"));
    let errors = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error "))
        .count();
    assert_eq!(errors, 3, "{}", out.stdout);
    assert!(r.summary().contains("#### Failures"));
    w.assert_no_secret_leaked(&r, &[&out]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn azure_login_through_github_oidc_needs_no_stored_secret() {
    let w = world().await;
    w.gh.set_oidc_signer(
        w.emu
            .oidc_signer("https://token.actions.githubusercontent.com"),
    );
    let r = Runner::new(&w.gh, "schedule", &schedule_payload());
    w.write_config(&r, "");
    let mut env = w.env();
    env.remove("AZURE_CLIENT_SECRET");
    env.remove("ARM_CLIENT_SECRET");
    env.insert(
        "ACTIONS_ID_TOKEN_REQUEST_URL".into(),
        format!("http://{}/_oidc/token?api-version=2.0", w.gh.addr),
    );
    env.insert(
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN".into(),
        support::OIDC_REQUEST_TOKEN.into(),
    );
    let out = r.rotor(&["action"], &env).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(r.outputs().get("rotated").map(String::as_str), Some("3"));
    // The runner's OIDC service was asked for an Azure token exchange audience.
    let oidc: Vec<_> =
        w.gh.log()
            .into_iter()
            .filter(|l| l.path.starts_with("/_oidc/token"))
            .collect();
    assert!(!oidc.is_empty(), "OIDC was used");
    assert!(
        oidc.iter()
            .all(|l| l.status == 200 && l.path.contains("audience=api")),
        "{oidc:?}"
    );
    // The request token is masked first and appears nowhere else.
    assert!(out.stdout.starts_with("::add-mask::"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("::add-mask::{}", support::OIDC_REQUEST_TOKEN))
    );
    assert!(
        !out.logs_without_masks()
            .contains(support::OIDC_REQUEST_TOKEN)
    );
    w.assert_no_secret_leaked(&r, &[&out]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_that_cannot_log_in_says_why_in_the_summary() {
    let w = world().await;
    let r = Runner::new(&w.gh, "schedule", &schedule_payload());
    w.write_config(&r, "");
    let mut env = w.env();
    env.insert(
        "AZURE_CLIENT_SECRET".into(),
        "not-the-secret-0123456789".into(),
    );
    env.insert(
        "ARM_CLIENT_SECRET".into(),
        "not-the-secret-0123456789".into(),
    );
    let out = r.rotor(&["action"], &env).await;
    assert_ne!(out.code, Some(0), "{out:#?}");
    let summary = r.summary();
    if std::env::var_os("ROTOR_TEST_DUMP").is_some() {
        eprintln!(
            "--- summary ---\n{summary}\n--- stdout ---\n{}\n--- stderr (tail) ---\n{}",
            out.stdout,
            out.stderr
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(summary.contains("### rotor: the run failed"), "{summary}");
    assert!(
        summary.contains("AADSTS7000215")
            || summary.contains("401")
            || summary.contains("credential"),
        "{summary}"
    );
    assert!(
        out.stdout.contains("::error title=rotor::"),
        "{}",
        out.stdout
    );
    assert!(
        !out.logs_without_masks()
            .contains("not-the-secret-0123456789")
    );
    assert!(w.gh.log().is_empty());
}

/// Runs action.yml's composite steps the way the runner does — each `run:` script with
/// `bash --noprofile --norc -eo pipefail`, its `env:` expressions resolved from `with`, the
/// inputs' defaults and earlier steps' outputs — and returns the action's outputs.
async fn run_action_yml(
    w: &World,
    runner: &Runner,
    with: &[(&str, &str)],
) -> (BTreeMap<String, String>, Vec<support::Output>) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("root")
        .to_path_buf();
    let action: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("action.yml")).expect("action.yml"),
    )
    .expect("yaml");
    let with: BTreeMap<&str, &str> = with.iter().copied().collect();
    let mut step_outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let resolve =
        |expr: &str, step_outputs: &BTreeMap<String, BTreeMap<String, String>>| -> String {
            let Some(inner) = expr
                .trim()
                .strip_prefix("${{")
                .and_then(|e| e.strip_suffix("}}"))
            else {
                return expr.to_string();
            };
            let inner = inner.trim();
            if let Some(name) = inner.strip_prefix("inputs.") {
                if let Some(v) = with.get(name) {
                    return (*v).to_string();
                }
                let default = action["inputs"][name]["default"].as_str().unwrap_or("");
                return match default.trim() {
                    "${{ github.token }}" => support::TOKEN.to_string(),
                    d => d.to_string(),
                };
            }
            if let Some(rest) = inner.strip_prefix("steps.") {
                let (step, out) = rest.split_once(".outputs.").expect("steps.X.outputs.Y");
                return step_outputs
                    .get(step)
                    .and_then(|o| o.get(out))
                    .cloned()
                    .unwrap_or_default();
            }
            match inner {
                "github.action_repository" => String::new(),
                other => panic!("unmodelled expression {other}"),
            }
        };
    // The job's environment: the runner's, and the emulator's endpoints (not its credentials:
    // those come from the action's inputs).
    let mut job_env = runner.env.clone();
    for (k, v) in w.env() {
        if !k.starts_with("AZURE_TENANT")
            && !k.starts_with("AZURE_CLIENT")
            && !k.starts_with("ARM_")
        {
            job_env.insert(k, v);
        }
    }
    job_env.insert("RUNNER_OS".into(), "Linux".into());
    job_env.insert("RUNNER_ARCH".into(), "X64".into());
    job_env.insert("GITHUB_ACTION_PATH".into(), root.display().to_string());
    job_env.remove("GITHUB_TOKEN"); // composite actions do not get it: the input maps it
    let mut logs = Vec::new();
    for step in action["runs"]["steps"].as_sequence().expect("steps") {
        let id = step["id"].as_str().expect("step id").to_string();
        if step["uses"].is_string() {
            // another action (`actions/cache`): not modelled here, its step has no outputs
            // (`action_yml_keeps_the_hint_cache_per_tenant` checks what it is given)
            continue;
        }
        let out_file = runner.path(&format!("step-{id}-output"));
        std::fs::write(&out_file, "").expect("output file");
        let script = runner.path(&format!("step-{id}.sh"));
        std::fs::write(&script, step["run"].as_str().expect("run")).expect("script");
        let mut cmd = tokio::process::Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&script)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", runner.dir.path())
            .envs(&job_env)
            .env("GITHUB_OUTPUT", &out_file)
            .current_dir(runner.dir.path().join(resolve(
                step["working-directory"].as_str().unwrap_or("."),
                &step_outputs,
            )));
        for (k, v) in step["env"].as_mapping().into_iter().flatten() {
            cmd.env(
                k.as_str().expect("env name"),
                resolve(v.as_str().unwrap_or(""), &step_outputs),
            );
        }
        let out = cmd.output().await.expect("bash");
        let out = support::Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let text = std::fs::read_to_string(&out_file).expect("outputs");
        let mut parsed = BTreeMap::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if let Some((name, delim)) = line.split_once("<<") {
                let mut value = Vec::new();
                for l in lines.by_ref() {
                    if l == delim {
                        break;
                    }
                    value.push(l);
                }
                parsed.insert(name.to_string(), value.join("\n"));
            } else if let Some((k, v)) = line.split_once('=') {
                parsed.insert(k.to_string(), v.to_string());
            }
        }
        step_outputs.insert(id, parsed);
        let failed = out.code != Some(0);
        logs.push(out);
        if failed {
            break;
        }
    }
    let mut outputs = BTreeMap::new();
    for (name, def) in action["outputs"].as_mapping().expect("outputs") {
        outputs.insert(
            name.as_str().expect("name").to_string(),
            resolve(def["value"].as_str().expect("value"), &step_outputs),
        );
    }
    (outputs, logs)
}

/// Runs the `hint-cache` step of action.yml with `env`; its outputs.
fn hint_cache_step(env: &[(&str, &str)]) -> BTreeMap<String, String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("root");
    let action: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("action.yml")).expect("yml"))
            .expect("yaml");
    let step = action["runs"]["steps"]
        .as_sequence()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == "hint-cache")
        .expect("hint-cache step");
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out");
    std::fs::write(&out, "").expect("out");
    let status = std::process::Command::new("bash")
        .args(["--noprofile", "--norc", "-eo", "pipefail", "-c"])
        .arg(step["run"].as_str().expect("run"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITHUB_OUTPUT", &out)
        .env("RUNNER_TEMP", "/runner/temp")
        .env("ROTOR_INPUT_HINT_CACHE", "true")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("bash");
    assert!(status.success());
    std::fs::read_to_string(&out)
        .expect("outputs")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn action_yml_keeps_the_hint_cache_per_tenant() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("root");
    let action: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("action.yml")).expect("yml"))
            .expect("yaml");
    let steps = action["runs"]["steps"].as_sequence().expect("steps");
    let pos = |id: &str| {
        steps
            .iter()
            .position(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("step {id}"))
    };
    let (key, restore, run, save) = (
        pos("hint-cache"),
        pos("hint-cache-restore"),
        pos("run"),
        pos("hint-cache-save"),
    );
    assert!(key < restore && restore < run && run < save);
    let path = "${{ steps.hint-cache.outputs.path }}";
    let key_expr = "${{ steps.hint-cache.outputs.key }}";
    let (restore, save, run) = (&steps[restore], &steps[save], &steps[run]);
    assert!(
        restore["uses"]
            .as_str()
            .expect("uses")
            .starts_with("actions/cache/restore@")
    );
    assert!(
        save["uses"]
            .as_str()
            .expect("uses")
            .starts_with("actions/cache/save@")
    );
    for s in [restore, save] {
        // the key (which holds the tenant's hash) and the file rotor is given
        assert_eq!(s["with"]["path"], path, "{s:?}");
        assert_eq!(s["with"]["key"], key_expr, "{s:?}");
        assert!(
            s["if"]
                .as_str()
                .expect("if")
                .contains("steps.hint-cache.outputs.enabled == 'true'")
        );
    }
    assert_eq!(
        restore["with"]["restore-keys"],
        "${{ steps.hint-cache.outputs.prefix }}"
    );
    assert!(save["if"].as_str().expect("if").contains("always()"));
    assert_eq!(run["env"]["ROTOR_HINT_CACHE_FILE"], path);
    assert!(
        run["run"]
            .as_str()
            .expect("run")
            .contains(r#"args+=(--hint-cache "$ROTOR_HINT_CACHE_FILE")"#)
    );

    // the key: the tenant's hash (never the id), then the run; the prefix restores the newest
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let a = hint_cache_step(&[("ROTOR_INPUT_TENANT_ID", tenant), ("GITHUB_RUN_ID", "100")]);
    assert_eq!(a["enabled"], "true", "{a:?}");
    assert_eq!(a["path"], "/runner/temp/rotor-hint-cache/hints.json");
    assert!(a["prefix"].starts_with("rotor-hints-v1-") && a["key"].starts_with(&a["prefix"]));
    assert!(a["key"].contains("-100-"), "{a:?}");
    assert!(
        !a["key"].contains(tenant) && !a["key"].contains("72f988bf"),
        "{a:?}"
    );
    // the same tenant (from the job's environment, other case): the same prefix, a new key
    let b = hint_cache_step(&[
        ("AZURE_TENANT_ID", &tenant.to_ascii_uppercase()),
        ("GITHUB_RUN_ID", "101"),
    ]);
    assert_eq!(a["prefix"], b["prefix"]);
    assert_ne!(a["key"], b["key"]);
    // another tenant never shares a prefix
    let c = hint_cache_step(&[
        (
            "ROTOR_INPUT_TENANT_ID",
            "0000aaaa-86f1-41af-91ab-2d7cd011db47",
        ),
        ("GITHUB_RUN_ID", "100"),
    ]);
    assert_ne!(a["prefix"], c["prefix"]);
    // no tenant, or the input off: nothing cached
    assert_eq!(
        hint_cache_step(&[("GITHUB_RUN_ID", "100")])["enabled"],
        "false"
    );
    let off = hint_cache_step(&[
        ("ROTOR_INPUT_TENANT_ID", tenant),
        ("ROTOR_INPUT_HINT_CACHE", "false"),
    ]);
    assert_eq!(off["enabled"], "false");
    assert!(!off.contains_key("key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn action_yml_runs_rotor_with_its_inputs_mapped() {
    let w = world().await;
    let env = w.env();
    let (tenant, client, secret) = (
        env["AZURE_TENANT_ID"].clone(),
        env["AZURE_CLIENT_ID"].clone(),
        env["AZURE_CLIENT_SECRET"].clone(),
    );

    // Pull request: one sticky comment, nothing rotated.
    let r = Runner::new(
        &w.gh,
        "pull_request",
        &support::fixture("pull_request.opened.json"),
    );
    w.write_config(&r, "");
    let bin = env!("CARGO_BIN_EXE_rotor");
    let (outputs, logs) = run_action_yml(
        &w,
        &r,
        &[
            ("binary-path", bin),
            ("tenant-id", &tenant),
            ("client-id", &client),
            ("client-secret", &secret),
        ],
    )
    .await;
    assert!(logs.iter().all(|l| l.code == Some(0)), "{logs:#?}");
    assert_eq!(outputs["due"], "3", "{outputs:?}");
    assert_eq!(outputs["rotated"], "0");
    assert!(!outputs["comment-id"].is_empty());
    assert_eq!(w.gh.bot_comments_on(2).len(), 1);
    // the hint cache the cache steps keep: written where they look, hints and fingerprints only
    let cache = std::path::Path::new(&r.env["RUNNER_TEMP"]).join("rotor-hint-cache/hints.json");
    let cache: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cache).expect("hint cache written"))
            .expect("hint cache JSON");
    let hints = cache["hints"].as_object().expect("hints");
    assert!(!hints.is_empty(), "{cache}");
    assert!(
        hints
            .values()
            .all(|h| h.as_str().is_some_and(|h| h.chars().count() == 3))
    );
    assert!(
        cache["current"]
            .as_object()
            .expect("current")
            .values()
            .all(|c| c
                .as_object()
                .is_some_and(|c| c.keys().all(|k| k == "version" || k == "fingerprint"))),
        "{cache}"
    );

    // Schedule with an audit pull request, history in a subdirectory.
    let r = Runner::new(&w.gh, "schedule", &schedule_payload());
    std::fs::create_dir_all(r.path("ops/audit")).expect("dir");
    w.write_config(&r, "");
    std::fs::rename(r.path("rotor.toml"), r.path("ops/rotor.toml")).expect("move config");
    let (outputs, logs) = run_action_yml(
        &w,
        &r,
        &[
            ("binary-path", bin),
            ("tenant-id", &tenant),
            ("client-id", &client),
            ("client-secret", &secret),
            ("working-directory", "ops"),
            ("config", "rotor.toml"),
            ("history-file", "audit/history.jsonl"),
            ("audit-pr", "true"),
        ],
    )
    .await;
    assert!(logs.iter().all(|l| l.code == Some(0)), "{logs:#?}");
    assert_eq!(outputs["rotated"], "3", "{outputs:?}");
    assert_eq!(outputs["failed"], "0");
    assert!(
        outputs["history-path"].ends_with("ops/audit/history.jsonl"),
        "{outputs:?}"
    );
    assert!(outputs["audit-pr-url"].contains("/pull/"), "{outputs:?}");
    assert_eq!(
        w.gh.file("rotor/audit", "ops/audit/history.jsonl")
            .map(|f| f.lines().count()),
        Some(3),
        "the history file's path in the repository is relative to the workspace"
    );
    // `command: report` with a Terraform plan on a pull request: its own sticky comment.
    let r2 = Runner::new(
        &w.gh,
        "pull_request",
        &support::fixture("pull_request.synchronize.json"),
    );
    let plan =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform/plan.json");
    let plan = plan.display().to_string();
    let (report_outputs, report_logs) = run_action_yml(
        &w,
        &r2,
        &[
            ("binary-path", bin),
            ("command", "report"),
            ("terraform-plan", &plan),
        ],
    )
    .await;
    assert!(
        report_logs.iter().all(|l| l.code == Some(0)),
        "{report_logs:#?}"
    );
    assert!(
        report_outputs["report-path"].ends_with("rotor-report.md"),
        "{report_outputs:?}"
    );
    assert!(
        w.gh.bot_comments_on(2).iter().any(|c| c
            .body
            .starts_with("<!-- rotor-report: terraform-plan -->")
            && c.body.contains("**2** would rotate")),
        "{:?}",
        w.gh.bot_comments_on(2)
    );
    assert!(r2.summary().contains("rotor\\_secret\\_link.orders"));

    // The client secret input is masked before anything else is printed.
    assert!(
        logs[2].stdout.starts_with(&format!("::add-mask::{secret}")),
        "{}",
        logs[2].stdout
    );
    let refs: Vec<&support::Output> = logs.iter().collect();
    w.assert_no_secret_leaked(&r, &refs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cleanup_removes_replaced_credentials_once_their_grace_period_has_passed() {
    let w = world().await;
    let r = Runner::new(&w.gh, "schedule", &schedule_payload());
    w.write_config(&r, "grace_period_days = 0");
    let out = r.rotor(&["action", "--cleanup"], &w.env()).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let outputs = r.outputs();
    assert_eq!(
        outputs.get("rotated").map(String::as_str),
        Some("3"),
        "{outputs:?}"
    );
    let removed: usize = outputs["removed"].parse().expect("number");
    assert!(removed >= 3, "{outputs:?}");
    let state = w.emu.state();
    let keys: Vec<&str> = state["applications"]
        .as_array()
        .expect("apps")
        .iter()
        .flat_map(|a| a["password_credentials"].as_array().expect("passwords"))
        .filter_map(|p| p["key_id"].as_str())
        .collect();
    for replaced in [
        "c0000001-0000-4000-8000-000000000101",
        "c0000003-0000-4000-8000-000000000301",
        "c0000009-0000-4000-8000-000000000902",
    ] {
        assert!(
            !keys.contains(&replaced),
            "{replaced} was replaced and its grace period is 0"
        );
    }
    // Credentials outside the rotated lineages stay.
    assert!(keys.contains(&"c0000002-0000-4000-8000-000000000201"));
    assert!(keys.contains(&"c0000001-0000-4000-8000-000000000102"));
    assert!(
        r.summary()
            .contains(&format!("Cleanup: {removed} old credentials removed."))
    );
    w.assert_no_secret_leaked(&r, &[&out]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_history_over_1_mb_is_appended_to_not_replaced() {
    let w = world().await;
    // The default branch already has a 1.5 MB history (the contents API's JSON omits it).
    let line = support::rotate_json(&[("old-app", "old")], "success")["rotations"][0].to_string();
    let big: String =
        std::iter::repeat_n(format!("{line}\n"), 1 + 1_500_000 / line.len()).collect();
    w.gh.seed_file("main", "rotor-history.jsonl", &big);
    let r = Runner::new(&w.gh, "schedule", &schedule_payload());
    w.write_config(&r, "");
    let out = r.rotor(&["action", "--audit-pr"], &w.env()).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let file =
        w.gh.file("rotor/audit", "rotor-history.jsonl")
            .expect("file");
    if !file.starts_with(&big) {
        for l in w.gh.log() {
            eprintln!("{} {} {} {}", l.method, l.path, l.status, l.body.len());
        }
        eprintln!("file: {} bytes, big: {} bytes", file.len(), big.len());
    }
    assert!(file.starts_with(&big), "the earlier history is kept");
    assert_eq!(file.lines().count(), big.lines().count() + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pull_request_report_needs_only_a_read_only_identity() {
    let w = world().await;
    let r = Runner::new(
        &w.gh,
        "pull_request",
        &support::fixture("pull_request.opened.json"),
    );
    w.write_config(&r, "");
    // `rotor-readonly`: Application.Read.All and Key Vault Secrets User.
    let state = w.emu.state();
    let ro = &state["principals"][1];
    assert_eq!(ro["display_name"], "rotor-readonly");
    let mut env = w.env();
    for k in ["AZURE_CLIENT_ID", "ARM_CLIENT_ID"] {
        env.insert(k.into(), ro["client_id"].as_str().expect("id").into());
    }
    for k in ["AZURE_CLIENT_SECRET", "ARM_CLIENT_SECRET"] {
        env.insert(
            k.into(),
            ro["client_secret"].as_str().expect("secret").into(),
        );
    }
    let before = w.applications();
    let out = r.rotor(&["action"], &env).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let bots = w.gh.bot_comments_on(2);
    assert_eq!(bots.len(), 1);
    assert!(
        bots[0].body.contains("**3** would rotate"),
        "{}",
        bots[0].body
    );
    assert_eq!(w.applications(), before);
    w.assert_no_secret_leaked(&r, &[&out]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boolean_inputs_are_strict_and_a_relative_binary_path_survives_working_directory() {
    let w = world().await;
    let env = w.env();
    let before = w.applications();
    // A relative binary-path (from the workspace) with another working-directory.
    let r = Runner::new(&w.gh, "schedule", &schedule_payload());
    std::fs::create_dir_all(r.path("bin")).expect("dir");
    std::fs::copy(env!("CARGO_BIN_EXE_rotor"), r.path("bin/rotor")).expect("copy rotor");
    std::fs::create_dir_all(r.path("ops")).expect("dir");
    w.write_config(&r, "");
    std::fs::rename(r.path("rotor.toml"), r.path("ops/rotor.toml")).expect("move config");
    let creds = [
        ("tenant-id", env["AZURE_TENANT_ID"].clone()),
        ("client-id", env["AZURE_CLIENT_ID"].clone()),
        ("client-secret", env["AZURE_CLIENT_SECRET"].clone()),
    ];
    for (input, value) in [
        ("dry-run", "yes"),
        ("dry-run", "True"),
        ("dry-run", "1"),
        ("audit-pr", "on"),
        ("labels", "yes"),
        ("cleanup", ""),
        ("comment", "sticky"),
        ("comment-if-nothing-due", "never"),
        ("comment-key", "a b"),
    ] {
        let mut with: Vec<(&str, &str)> = creds.iter().map(|(k, v)| (*k, v.as_str())).collect();
        with.extend([
            ("binary-path", "bin/rotor"),
            ("working-directory", "ops"),
            (input, value),
        ]);
        let (outputs, logs) = run_action_yml(&w, &r, &with).await;
        let last = logs.last().expect("a step ran");
        assert_eq!(last.code, Some(2), "{input}: {value}: {logs:#?}");
        assert!(
            last.stdout
                .contains(&format!("::error title=rotor::input `{input}` must be")),
            "{input}: {}",
            last.stdout
        );
        assert!(
            last.stdout.contains(&format!("not `{value}`")),
            "{}",
            last.stdout
        );
        assert!(outputs["rotated"].is_empty(), "{outputs:?}");
    }
    assert_eq!(w.applications(), before, "a refused input changes nothing");

    // `dry-run: true` (exactly) with the relative binary: runs from `ops`, rotates nothing.
    let mut with: Vec<(&str, &str)> = creds.iter().map(|(k, v)| (*k, v.as_str())).collect();
    with.extend([
        ("binary-path", "bin/rotor"),
        ("working-directory", "ops"),
        ("dry-run", "true"),
    ]);
    let (outputs, logs) = run_action_yml(&w, &r, &with).await;
    assert!(logs.iter().all(|l| l.code == Some(0)), "{logs:#?}");
    assert_eq!(outputs["due"], "3", "{outputs:?}");
    assert_eq!(outputs["rotated"], "0");
    assert_eq!(w.applications(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fork_pull_request_target_run_comments_and_changes_nothing() {
    let w = world().await;
    let before = w.applications();
    let mut payload = support::fixture("pull_request.opened.json");
    payload["pull_request"]["head"]["repo"]["full_name"] = json!("someone-else/Hello-World");
    payload["pull_request"]["head"]["repo"]["fork"] = json!(true);
    // pull_request_target runs with the base repository's write token and secrets.
    let r = Runner::new(&w.gh, "pull_request_target", &payload);
    w.write_config(&r, "");
    let out = r.rotor(&["action"], &w.env()).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let bots = w.gh.bot_comments_on(2);
    assert_eq!(bots.len(), 1, "{out:#?}");
    assert!(
        bots[0].body.contains("**3** would rotate"),
        "{}",
        bots[0].body
    );
    assert_eq!(r.outputs()["rotated"], "0");
    assert_eq!(w.applications(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_azure_names_render_inert_in_the_comment_summary_and_audit_pr() {
    // An application and credential named to link, mention and inject, in the emulated tenant.
    let mut fixture = Fixture::sample();
    let app = fixture
        .applications
        .iter_mut()
        .find(|a| a.display_name == "consumer-app")
        .expect("consumer-app");
    // Matched by value and its vault secret's app-id tag, whatever its name.
    app.display_name = format!("consumer-app {}", support::HOSTILE.join(" "));
    let emu = Emulator::start(fixture, EmulatorOptions::default())
        .await
        .expect("emulator starts");
    let w = World {
        emu,
        gh: FakeGitHub::start().await,
    };

    let pr = Runner::new(
        &w.gh,
        "pull_request",
        &support::fixture("pull_request.opened.json"),
    );
    w.write_config(&pr, "");
    let out = pr.rotor(&["action"], &w.env()).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let comment = w.gh.bot_comments_on(2).remove(0).body;
    assert!(
        comment.contains("www\u{200B}.evil.example/login"),
        "{comment}"
    );

    let r = Runner::new(&w.gh, "schedule", &schedule_payload());
    w.write_config(&r, "");
    let out = r.rotor(&["action", "--audit-pr"], &w.env()).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let pulls = w.gh.pulls();
    assert_eq!(pulls.len(), 1, "{out:#?}");
    assert!(
        pulls[0].body.contains("www\u{200B}.evil.example/login"),
        "{}",
        pulls[0].body
    );

    for (what, md) in [
        ("pull request comment", comment),
        ("pull request job summary", pr.summary()),
        ("rotation job summary", r.summary()),
        ("audit pull request", pulls[0].body.clone()),
    ] {
        let html = support::render_gfm(&md);
        support::assert_inert(what, &html);
    }
    support::assert_inert(
        "audit pull request title",
        &support::render_gfm(&pulls[0].title),
    );
    w.assert_no_secret_leaked(&r, &[&out]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_due_dry_run_says_would_rotate_in_the_table_markdown_and_the_comment() {
    let w = world().await;
    let r = Runner::new(&w.gh, "schedule", &schedule_payload());
    w.write_config(&r, "");
    let mut env = w.env();
    env.insert("GITHUB_ACTIONS".into(), String::new());
    let table = r.rotor(&["rotate", "--due", "--dry-run"], &env).await;
    assert_eq!(table.code, Some(0), "{table:#?}");
    let markdown = r
        .rotor(
            &["rotate", "--due", "--dry-run", "--output", "markdown"],
            &env,
        )
        .await;
    assert_eq!(markdown.code, Some(0), "{markdown:#?}");
    let pr = Runner::new(
        &w.gh,
        "pull_request",
        &support::fixture("pull_request.opened.json"),
    );
    w.write_config(&pr, "");
    let out = pr.rotor(&["action"], &w.env()).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let comment = w.gh.bot_comments_on(2).remove(0).body;
    for (what, text) in [
        ("table", table.stdout.as_str()),
        ("markdown", markdown.stdout.as_str()),
        ("comment", comment.as_str()),
    ] {
        assert_eq!(
            text.matches("would rotate").count() - usize::from(what != "table"),
            3,
            "{what}: one per due link (plus the count line): {text}"
        );
        assert!(!text.contains("skipped"), "{what}: {text}");
    }
}

/// A vault rotor cannot list fails only what it holds: the other vaults' due links rotate, the
/// vault is annotated and named in the summary, and the run exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unlistable_vault_is_annotated_and_the_rest_rotates() {
    let w = world().await;
    w.emu
        .add_fault(
            json!({"method": "GET", "path": "^/secrets/?$", "vault": "kv-dev", "status": 403}),
        )
        .expect("fault");
    let r = Runner::new(&w.gh, "schedule", &schedule_payload());
    w.write_config(&r, "");
    let out = r.rotor(&["action"], &w.env()).await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(
        out.stdout.contains("could not be listed"),
        "annotated: {}",
        out.stdout
    );
    let rotated: usize = r
        .outputs()
        .get("rotated")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        rotated >= 1,
        "the other vaults' links rotated: {:?}",
        r.outputs()
    );
    assert!(
        r.summary().contains("could not be listed"),
        "{}",
        r.summary()
    );
    w.assert_no_secret_leaked(&r, &[&out]);
}
