//! Sticky pull request comments, job summaries and GitHub's limits, through the real `rotor`
//! binary (`rotor report --input … --summary --comment`) against a fake GitHub Enterprise Server
//! REST API on loopback, with the runner simulated by temporary files.

#[path = "github_support.rs"]
mod support;

use std::collections::BTreeMap;

use axum::http::Method;
use serde_json::Value;
use support::{FakeGitHub, Runner};

const EVIL: &str = "<img src=x onerror=alert(1)> @org/team #1 | <!--";

async fn report_run(
    gh: &FakeGitHub,
    input: &Value,
    extra_args: &[&str],
) -> (Runner, support::Output) {
    let runner = Runner::new(
        gh,
        "pull_request",
        &support::fixture("pull_request.opened.json"),
    );
    let input_path = runner.path("rotate.json");
    std::fs::write(&input_path, serde_json::to_vec(input).expect("json")).expect("write input");
    let input_arg = input_path.display().to_string();
    let mut args = vec![
        "report",
        "--input",
        input_arg.as_str(),
        "--summary",
        "--comment",
    ];
    args.extend_from_slice(extra_args);
    let out = runner.rotor(&args, &BTreeMap::new()).await;
    (runner, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pull_request_reports_leave_exactly_one_comment() {
    let gh = FakeGitHub::start().await;
    let humans_before = gh.comments_on(2);

    let first = support::rotate_json(&[("billing-api", "app-1"), ("web", "app-2")], "success");
    let (_r1, out1) = report_run(&gh, &first, &[]).await;
    assert_eq!(out1.code, Some(0), "{out1:?}");
    assert_eq!(gh.bot_comments_on(2).len(), 1);
    assert!(
        out1.stdout.contains("comment created") || out1.stderr.contains("comment created"),
        "{out1:?}"
    );

    // Same report again: the comment is found (through pagination: 2 per page) and left alone.
    let (_r2, out2) = report_run(&gh, &first, &[]).await;
    assert_eq!(out2.code, Some(0), "{out2:?}");
    assert_eq!(
        gh.count(
            "PATCH",
            "/api/v3/repos/Codertocat/Hello-World/issues/comments/"
        ),
        0
    );
    assert_eq!(
        gh.count(
            "POST",
            "/api/v3/repos/Codertocat/Hello-World/issues/2/comments"
        ),
        1
    );

    // A different report: updated in place.
    let second = support::rotate_json(&[("billing-api", "app-1")], "failed");
    let (_r3, out3) = report_run(&gh, &second, &[]).await;
    assert_eq!(out3.code, Some(0), "{out3:?}");
    let bots = gh.bot_comments_on(2);
    assert_eq!(bots.len(), 1, "exactly one rotor comment: {bots:?}");
    assert!(bots[0].body.starts_with("<!-- rotor-report: report -->"));
    assert!(bots[0].body.contains("**1** failed"), "{}", bots[0].body);
    assert_eq!(
        gh.count(
            "PATCH",
            "/api/v3/repos/Codertocat/Hello-World/issues/comments/"
        ),
        1
    );

    // People's comments — including one quoting rotor's marker — are untouched.
    let humans_after: Vec<_> = gh
        .comments_on(2)
        .into_iter()
        .filter(|c| c.user_type == "User")
        .collect();
    assert_eq!(humans_after.len(), humans_before.len());
    for (a, b) in humans_after.iter().zip(&humans_before) {
        assert_eq!(a.body, b.body);
    }
    // Installation tokens cannot read /user; rotor never asks.
    assert_eq!(gh.count("GET", "/api/v3/user"), 0);
    // Everything went through the GHES-style base paths (REST, and GraphQL for the login).
    assert!(
        gh.log()
            .iter()
            .all(|l| l.path.starts_with("/api/v3/") || l.path == "/api/graphql")
    );
    // Every request names rotor and its version, once.
    let ua = format!("rotor/{}", env!("CARGO_PKG_VERSION"));
    for l in gh.log() {
        assert_eq!(l.user_agents, vec![ua.clone()], "{} {}", l.method, l.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_for_2000_apps_stays_under_the_comment_limit() {
    let gh = FakeGitHub::start().await;
    let names: Vec<(String, String)> = (0..2000)
        .map(|i| {
            (
                format!("application-{i:04}-with-a-rather-long-display-name"),
                format!("{i:08}-0000-4000-8000-000000000000"),
            )
        })
        .collect();
    let apps: Vec<(&str, &str)> = names
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let input = support::rotate_json(&apps, "success");
    let (runner, out) = report_run(&gh, &input, &[]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let bots = gh.bot_comments_on(2);
    assert_eq!(
        bots.len(),
        1,
        "the fake rejects bodies over 65,536 characters: {out:?}"
    );
    let body = &bots[0].body;
    assert!(body.chars().count() <= 65_536, "{}", body.chars().count());
    assert!(body.contains("**2000** rotated"), "counts cover all rows");
    let run_url = format!(
        "http://{}/Codertocat/Hello-World/actions/runs/4242",
        gh.addr
    );
    assert!(
        body.contains(&format!("more rows — see the job summary: {run_url}")),
        "trim line links the run"
    );
    // The job summary has every row.
    let summary = runner.summary();
    assert_eq!(
        summary
            .lines()
            .filter(|l| l.starts_with("| application-"))
            .count(),
        2000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malicious_app_name_is_rendered_inert() {
    let gh = FakeGitHub::start().await;
    let input = support::rotate_json(&[(EVIL, EVIL)], "failed");
    let (runner, out) = report_run(&gh, &input, &[]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let bots = gh.bot_comments_on(2);
    assert_eq!(bots.len(), 1);
    for (what, text) in [
        ("comment", bots[0].body.clone()),
        ("summary", runner.summary()),
    ] {
        assert!(!text.contains("<img"), "{what}: {text}");
        assert!(
            !text.contains("@org/team"),
            "{what}: mention not broken: {text}"
        );
        assert!(
            !text.contains("#1 "),
            "{what}: reference not broken: {text}"
        );
        let comment_openers = text.matches("<!--").count();
        let expected = usize::from(what == "comment");
        assert_eq!(
            comment_openers, expected,
            "{what}: only rotor's own marker may open a comment: {text}"
        );
        assert!(
            text.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{what}: name still readable"
        );
        // The table row keeps its 6 cells.
        let row = text
            .lines()
            .find(|l| l.starts_with("| &lt;img"))
            .expect("row");
        let cells = row
            .char_indices()
            .filter(|(i, c)| *c == '|' && (*i == 0 || row.as_bytes()[i - 1] != b'\\'))
            .count();
        assert_eq!(cells, 7, "{what}: {row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_comment_falls_back_to_the_job_summary() {
    let gh = FakeGitHub::start().await;
    gh.inject(
        Method::POST,
        "/repos/Codertocat/Hello-World/issues/2/comments",
        403,
        &[],
        "Resource not accessible by integration",
        10,
    );
    let input = support::rotate_json(&[("billing-api", "app-1")], "success");
    let (runner, out) = report_run(&gh, &input, &[]).await;
    assert_eq!(
        out.code,
        Some(0),
        "a missing permission is not a failed rotation: {out:?}"
    );
    assert!(gh.bot_comments_on(2).is_empty());
    // A plain 403 is a permission error, not a rate limit: tried once.
    assert_eq!(
        gh.count(
            "POST",
            "/api/v3/repos/Codertocat/Hello-World/issues/2/comments"
        ),
        1
    );
    let logs = format!("{}\n{}", out.stdout, out.stderr);
    assert!(
        logs.contains("::warning title=rotor%3A could not comment on the pull request::"),
        "{logs}"
    );
    assert!(logs.contains("403"), "{logs}");
    assert!(
        logs.contains("pull-requests: write"),
        "the warning carries the fix: {logs}"
    );
    assert!(
        runner.summary().contains("billing-api"),
        "the report is in the job summary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_rate_limit_is_retried_once_and_not_double_posted() {
    let gh = FakeGitHub::start().await;
    gh.inject(
        Method::POST,
        "/repos/Codertocat/Hello-World/issues/2/comments",
        403,
        &[("retry-after", "1")],
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        1,
    );
    let input = support::rotate_json(&[("billing-api", "app-1")], "success");
    let started = std::time::Instant::now();
    let (_runner, out) = report_run(&gh, &input, &[]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "waited as retry-after said"
    );
    assert_eq!(
        gh.count(
            "POST",
            "/api/v3/repos/Codertocat/Hello-World/issues/2/comments"
        ),
        2
    );
    assert_eq!(gh.bot_comments_on(2).len(), 1, "posted exactly once");

    // Rate limited twice in a row: retried once only, then a warning; still no duplicate.
    let gh = FakeGitHub::start().await;
    let reset = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 1)
    .to_string();
    gh.inject(
        Method::POST,
        "/repos/Codertocat/Hello-World/issues/2/comments",
        429,
        &[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", reset.as_str()),
        ],
        "API rate limit exceeded",
        5,
    );
    let (runner, out) = report_run(&gh, &input, &[]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        gh.count(
            "POST",
            "/api/v3/repos/Codertocat/Hello-World/issues/2/comments"
        ),
        2
    );
    assert!(gh.bot_comments_on(2).is_empty());
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("rate limit"),
        "{out:?}"
    );
    assert!(runner.summary().contains("billing-api"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comment_off_and_no_token_never_call_github() {
    let gh = FakeGitHub::start().await;
    let runner = Runner::new(
        &gh,
        "pull_request",
        &support::fixture("pull_request.synchronize.json"),
    );
    let input_path = runner.path("rotate.json");
    std::fs::write(
        &input_path,
        serde_json::to_vec(&support::rotate_json(&[("a", "b")], "success")).expect("json"),
    )
    .expect("write");
    let p = input_path.display().to_string();
    let mut no_token = BTreeMap::new();
    no_token.insert("GITHUB_TOKEN".to_string(), String::new());
    let out = runner
        .rotor(
            &["report", "--input", &p, "--summary", "--comment"],
            &no_token,
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(format!("{}{}", out.stdout, out.stderr).contains("GITHUB_TOKEN is not set"));
    assert!(gh.log().is_empty(), "{:?}", gh.log());
    assert!(runner.summary().contains("rotor"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_created_despite_a_502_is_found_not_posted_again() {
    let gh = FakeGitHub::start().await;
    // GitHub creates the comment but the answer is lost: the outcome looks unknown.
    gh.inject_after_apply(
        Method::POST,
        "/repos/Codertocat/Hello-World/issues/2/comments",
        502,
        1,
    );
    let input = support::rotate_json(&[("billing-api", "app-1")], "success");
    let (_runner, out) = report_run(&gh, &input, &[]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        gh.count(
            "POST",
            "/api/v3/repos/Codertocat/Hello-World/issues/2/comments"
        ),
        1,
        "a POST with an unknown outcome is never resent blindly"
    );
    assert_eq!(gh.bot_comments_on(2).len(), 1);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("comment created"),
        "found by its marker: {out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terraform_plan_report_says_which_links_rotate_and_why() {
    let gh = FakeGitHub::start().await;
    let plan =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform/plan.json");
    let plan_arg = plan.display().to_string();
    let runner = Runner::new(
        &gh,
        "pull_request",
        &support::fixture("pull_request.opened.json"),
    );
    let args = [
        "report",
        "--terraform-plan",
        plan_arg.as_str(),
        "--summary",
        "--comment",
        "--key",
        "terraform-plan",
    ];
    let out = runner.rotor(&args, &BTreeMap::new()).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    // A second report with another key gets its own comment; the plan's is updated in place.
    let input = support::rotate_json(&[("billing-api", "app-1")], "success");
    let (_r, out2) = report_run(&gh, &input, &[]).await;
    assert_eq!(out2.code, Some(0), "{out2:?}");
    let out3 = runner.rotor(&args, &BTreeMap::new()).await;
    assert_eq!(out3.code, Some(0), "{out3:?}");
    let bots = gh.bot_comments_on(2);
    assert_eq!(bots.len(), 2, "one comment per key: {bots:?}");
    let body = bots
        .iter()
        .find(|c| c.body.starts_with("<!-- rotor-report: terraform-plan -->"))
        .expect("the plan's comment")
        .body
        .clone();
    assert!(body.contains("**2** would rotate"), "{body}");
    let line = |addr: &str| {
        body.lines()
            .find(|l| l.starts_with(&format!("| rotor\\_secret\\_link.{addr}")))
            .unwrap_or_else(|| panic!("row {addr}: {body}"))
            .to_string()
    };
    assert!(
        line("myapp").contains("would rotate") && line("myapp").contains("rotation due"),
        "{}",
        line("myapp")
    );
    assert!(
        line("orders").contains("rotate\\_when\\_changed changed (epoch)"),
        "{}",
        line("orders")
    );
    assert!(
        line("billing").contains("changed")
            && line("billing").contains("targets added: billing-api-client-secret in kv-dr"),
        "{}",
        line("billing")
    );
    assert!(line("inventory").contains("up to date"));
    assert!(body.contains("1 other resource changes not shown"));
    assert!(
        !body.contains("<img") && body.matches("<!--").count() == 1,
        "{body}"
    );
    assert!(!body.contains("random\\_password"), "{body}");
    assert!(runner.summary().contains("rotor\\_secret\\_link.myapp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_of_the_history_file_filters_by_status() {
    let gh = FakeGitHub::start().await;
    let runner = Runner::new(
        &gh,
        "workflow_dispatch",
        &support::fixture("workflow_dispatch.json"),
    );
    let mut lines = String::new();
    for (status, name) in [
        ("success", "ok-app"),
        ("failed", "broken-app"),
        ("success", "other-app"),
    ] {
        let v = support::rotate_json(&[(name, "app")], status);
        lines.push_str(&v["rotations"][0].to_string());
        lines.push('\n');
    }
    std::fs::write(runner.path("rotor-history.jsonl"), lines).expect("history");
    let out = runner
        .rotor(
            &["report", "--status", "failed", "--summary"],
            &BTreeMap::new(),
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("broken-app"), "{}", out.stdout);
    assert!(!out.stdout.contains("ok-app"), "{}", out.stdout);
    assert!(out.stdout.contains("#### Failures"));
    assert!(
        out.stdout.contains("hint: grant"),
        "hints are shown: {}",
        out.stdout
    );
    assert!(runner.summary().contains("broken-app"));
    assert!(gh.log().is_empty(), "no comment without --comment");

    // The same filter as `rotor history`: relative times, and an unknown status is refused.
    let none = &BTreeMap::new();
    let recent = runner.rotor(&["report", "--since", "-1d"], none).await;
    assert_eq!(recent.code, Some(0), "{recent:?}");
    assert!(!recent.stdout.contains("-app"), "{}", recent.stdout);
    let all = runner.rotor(&["report", "--since", "-36500d"], none).await;
    assert_eq!(all.code, Some(0), "{all:?}");
    for app in ["ok-app", "broken-app", "other-app"] {
        assert!(all.stdout.contains(app), "{app}: {}", all.stdout);
    }
    let bogus = runner.rotor(&["report", "--status", "bogus"], none).await;
    assert_eq!(bogus.code, Some(2), "{bogus:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_left_by_racing_runs_are_reduced_to_one() {
    let gh = FakeGitHub::start().await;
    // Two earlier runs raced: both created the comment.
    let oldest = gh.seed_bot_comment(2, "<!-- rotor-report: report -->\nold report A");
    let newer = gh.seed_bot_comment(2, "<!-- rotor-report: report -->\nold report B");
    // Another key's comment is not a duplicate.
    let other = gh.seed_bot_comment(2, "<!-- rotor-report: action -->\nthe action's report");
    let input = support::rotate_json(&[("billing-api", "app-1")], "success");
    let (_runner, out) = report_run(&gh, &input, &[]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let bots = gh.bot_comments_on(2);
    let ids: Vec<u64> = bots.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        vec![oldest, other],
        "newer duplicate {newer} deleted: {bots:?}"
    );
    assert!(
        bots[0].body.contains("billing-api"),
        "the oldest holds the new report"
    );
    assert_eq!(
        bots[1].body,
        "<!-- rotor-report: action -->\nthe action's report"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_rate_limit_without_headers_is_retried_after_the_documented_wait() {
    let gh = FakeGitHub::start().await;
    // GitHub: "If you exceed a secondary rate limit … [and] the retry-after response header is
    // not present … wait for at least one minute before retrying". The minute is injected as 2 s.
    gh.inject(
        Method::POST,
        "/repos/Codertocat/Hello-World/issues/2/comments",
        403,
        &[],
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        1,
    );
    let mut runner = Runner::new(
        &gh,
        "pull_request",
        &support::fixture("pull_request.opened.json"),
    );
    runner
        .env
        .insert("ROTOR_GITHUB_SECONDARY_WAIT_SECS".into(), "2".into());
    let input = support::rotate_json(&[("billing-api", "app-1")], "success");
    let input_path = runner.path("rotate.json");
    std::fs::write(&input_path, serde_json::to_vec(&input).expect("json")).expect("write");
    let input_arg = input_path.display().to_string();
    let started = std::time::Instant::now();
    let out = runner
        .rotor(
            &["report", "--input", &input_arg, "--summary", "--comment"],
            &BTreeMap::new(),
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "waited the (injected) documented minute"
    );
    assert_eq!(
        gh.count(
            "POST",
            "/api/v3/repos/Codertocat/Hello-World/issues/2/comments"
        ),
        2,
        "retried once"
    );
    assert_eq!(gh.bot_comments_on(2).len(), 1, "posted exactly once");
    let logs = out.logs_without_masks();
    assert!(!logs.contains("::warning"), "no permission warning: {logs}");
    assert!(!logs.contains("pull-requests: write"), "{logs}");

    // Rate limited again on the retry: a rate-limit warning, not permission hints.
    let gh = FakeGitHub::start().await;
    gh.inject(
        Method::POST,
        "/repos/Codertocat/Hello-World/issues/2/comments",
        403,
        &[],
        "You have exceeded a secondary rate limit.",
        5,
    );
    let mut runner = Runner::new(
        &gh,
        "pull_request",
        &support::fixture("pull_request.opened.json"),
    );
    runner
        .env
        .insert("ROTOR_GITHUB_SECONDARY_WAIT_SECS".into(), "1".into());
    std::fs::write(
        runner.path("rotate.json"),
        serde_json::to_vec(&input).expect("json"),
    )
    .expect("write");
    let input_arg = runner.path("rotate.json").display().to_string();
    let out = runner
        .rotor(
            &["report", "--input", &input_arg, "--summary", "--comment"],
            &BTreeMap::new(),
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let logs = out.logs_without_masks();
    assert!(logs.contains("rate limit"), "{logs}");
    assert!(!logs.contains("pull-requests: write"), "{logs}");
    assert!(gh.bot_comments_on(2).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_render_inert_through_cmark_gfm() {
    let gh = FakeGitHub::start().await;
    let apps: Vec<(&str, &str)> = support::HOSTILE.iter().map(|h| (*h, *h)).collect();
    let mut input = support::rotate_json(&apps, "failed");
    // Hostile text in the hints and the credential names too.
    for (r, h) in input["rotations"]
        .as_array_mut()
        .expect("rotations")
        .iter_mut()
        .zip(support::HOSTILE)
    {
        r["hints"] = serde_json::json!([h]);
        r["credential_display_name"] = serde_json::json!(h);
    }
    let (runner, out) = report_run(&gh, &input, &[]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let bots = gh.bot_comments_on(2);
    assert_eq!(bots.len(), 1);
    // rotor report's comment names the run, the pull request's head commit and the time too.
    assert!(
        bots[0].body.contains("/actions/runs/4242)"),
        "{}",
        bots[0].body
    );
    assert!(bots[0].body.contains(" UTC</sub>"), "{}", bots[0].body);
    for (what, md) in [
        ("comment", bots[0].body.clone()),
        ("summary", runner.summary()),
    ] {
        let html = support::render_gfm(&md);
        support::assert_inert(what, &html);
        // Still readable: the names are there, as text.
        let text = support::linkable_text(&html);
        assert!(text.contains("evil.example/login"), "{what}: {text}");
        assert!(text.contains("octo-org/infra"), "{what}: {text}");
        assert!(
            html.contains("<code>deadbeefcafe1234</code>"),
            "{what}: {html}"
        );
    }
    // The checker itself catches what GitHub would link.
    for raw in support::HOSTILE.iter().skip(1) {
        let html = support::render_gfm(raw);
        let caught = std::panic::catch_unwind(|| support::assert_inert("raw", &html));
        assert!(
            caught.is_err(),
            "unescaped {raw:?} should be caught: {html}"
        );
    }
}
