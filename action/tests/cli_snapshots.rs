//! Snapshots of what people see: the tables and messages of `rotor` against the sample tenant.
//! Ports become vault names, dates and fresh ids become placeholders.

mod cli_support;

use cli_support::*;

fn settings(w: &World) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    for (name, url) in &w.emu.endpoints().vaults {
        let hostport = url
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .replace('.', r"\.");
        s.add_filter(&hostport, name.as_str());
    }
    s.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "[TIME]");
    s.add_filter(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}Z", "[DATE]");
    s.add_filter(r"/tmp/\S+", "[PATH]");
    s.set_prepend_module_to_snapshot(false);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_table() {
    let w = World::start("").await;
    let r = w.run(&["discover"]).await;
    r.assert_code(0);
    settings(&w).bind(|| insta::assert_snapshot!("discover_table", r.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_table_and_warnings() {
    let w = World::start("").await;
    let r = w.run(&["match"]).await;
    r.assert_code(0);
    let text = format!("--- stdout\n{}--- stderr\n{}", r.stdout, r.stderr);
    settings(&w).bind(|| insta::assert_snapshot!("match_table", text));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_due_dry_run_table() {
    let w = World::start("").await;
    let r = w
        .run(&["rotate", "--due", "--dry-run", "--progress", "json"])
        .await;
    r.assert_code(0);
    settings(&w).bind(|| insta::assert_snapshot!("rotate_due_dry_run", r.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_confidence_refusal() {
    let w = World::start("").await;
    let r = w
        .run(&[
            "rotate",
            "--app",
            "b0000005-0000-4000-8000-000000000005",
            "--key-id",
            "c0000005-0000-4000-8000-000000000501",
            "--yes",
        ])
        .await;
    r.assert_code(1);
    settings(&w).bind(|| insta::assert_snapshot!("low_confidence_refusal", r.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_messages() {
    let w = World::start("").await;
    std::fs::write(w.path("bad.toml"), "[policy]\nmax_concurent = 3\n").expect("write");
    let bad = w.run(&["discover", "--config", "bad.toml"]).await;
    bad.assert_code(2);
    let refuse = w.run(&["cleanup"]).await;
    refuse.assert_code(2);
    let text = format!("{}\n{}", bad.stderr, refuse.stderr);
    settings(&w).bind(|| insta::assert_snapshot!("usage_messages", text));
}
