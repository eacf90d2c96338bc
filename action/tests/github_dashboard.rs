//! The rotation dashboard issue and its one-click rotation, end to end: the real binary, the
//! in-process emulator and the fake GitHub API.

#[path = "github_support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};

use rotor_emulator::{Emulator, EmulatorOptions, Fixture};
use serde_json::{Value, json};
use support::{FakeGitHub, Runner};

const MARKER: &str = support::DASHBOARD_MARKER;

struct World {
    emu: Emulator,
    gh: FakeGitHub,
}

async fn world_with(fixture: Fixture) -> World {
    let emu = Emulator::start(fixture, EmulatorOptions::default())
        .await
        .expect("emulator starts");
    World {
        emu,
        gh: FakeGitHub::start().await,
    }
}

impl World {
    fn env(&self) -> BTreeMap<String, String> {
        self.emu.endpoints().env.clone()
    }

    fn write_config(&self, runner: &Runner) {
        support::write_config(&self.emu, runner, "");
    }

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
        out.retain(|s| s.len() >= 8);
        out
    }

    fn assert_no_secret(&self, texts: &[String]) {
        let values = self.secret_values();
        assert!(values.len() > 5);
        for t in texts {
            for v in &values {
                assert!(!t.contains(v.as_str()), "a secret value was written");
            }
        }
    }

    fn applications(&self) -> Value {
        let s = self.emu.state();
        json!({"applications": s["applications"], "vaults": s["vaults"]})
    }

    fn dashboard(&self) -> support::FakeIssue {
        self.gh.dashboard_issue()
    }
}

fn schedule() -> Value {
    json!({"schedule": "17 3 * * *"})
}

fn edited(number: u64, sender: &str) -> Value {
    json!({
        "action": "edited",
        "issue": {"number": number, "user": {"login": "github-actions[bot]", "type": "Bot"}},
        "changes": {"body": {"from": "…"}},
        "sender": {"login": sender, "type": "User"},
    })
}

/// The (appId, keyId) of the first box, and the body with it ticked.
fn tick_first(body: &str) -> ((String, String), String) {
    let line = body
        .lines()
        .find(|l| l.starts_with("- [ ] <!-- rotor-rotate: "))
        .expect("a rotate box");
    let ids = line
        .trim_start_matches("- [ ] <!-- rotor-rotate: ")
        .split(" -->")
        .next()
        .expect("ids");
    let (a, k) = ids.split_once(' ').expect("two ids");
    let ticked = body.replacen(line, &line.replacen("- [ ]", "- [x]", 1), 1);
    ((a.to_string(), k.to_string()), ticked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_is_created_once_then_updated_in_place() {
    let w = world_with(Fixture::sample()).await;
    let before = w.applications();
    let r1 = Runner::new(&w.gh, "schedule", &schedule());
    w.write_config(&r1);
    let out1 = r1
        .rotor(&["action", "--dry-run", "--dashboard"], &w.env())
        .await;
    assert_eq!(out1.code, Some(0), "{out1:#?}");
    assert!(
        out1.stdout.contains("dashboard issue #300 created"),
        "{out1:#?}"
    );
    let d1 = w.dashboard();
    assert_eq!(d1.title, "rotor: credential rotation dashboard");
    assert!(d1.body.contains("consumer-app"), "{}", d1.body);
    assert!(d1.body.contains("- [ ] <!-- rotor-rotate: "), "{}", d1.body);
    assert!(
        d1.body.contains("blocked: excluded by policy"),
        "{}",
        d1.body
    );
    assert_eq!(
        r1.outputs().get("dashboard-issue").map(String::as_str),
        Some("300")
    );

    let r2 = Runner::new(&w.gh, "workflow_dispatch", &json!({"inputs": {}}));
    w.write_config(&r2);
    let out2 = r2
        .rotor(
            &[
                "action",
                "--dry-run",
                "--dashboard",
                "--dashboard-title",
                "Credentials",
            ],
            &w.env(),
        )
        .await;
    assert_eq!(out2.code, Some(0), "{out2:#?}");
    assert!(
        out2.stdout.contains("dashboard issue #300 updated"),
        "{out2:#?}"
    );
    let d2 = w.dashboard();
    assert_eq!((d2.number, d2.title.as_str()), (300, "Credentials"));
    assert_eq!(
        w.gh.count("POST", "/api/v3/repos/Codertocat/Hello-World/issues"),
        1
    );
    assert_eq!(w.applications(), before, "a dry run changes nothing");
    w.assert_no_secret(&[w.gh.everything_written(), out1.stdout, out2.stdout]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_s_issue_with_the_marker_is_not_taken_for_the_dashboard() {
    let w = world_with(Fixture::sample()).await;
    let forged =
        w.gh.seed_issue("Codertocat", "fake dashboard", &format!("{MARKER}\nhello"));
    let r = Runner::new(&w.gh, "schedule", &schedule());
    w.write_config(&r);
    let out = r
        .rotor(&["action", "--dry-run", "--dashboard"], &w.env())
        .await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let d = w.dashboard();
    assert_ne!(d.number, forged);
    let person =
        w.gh.issues()
            .into_iter()
            .find(|i| i.number == forged)
            .expect("kept");
    assert_eq!(person.body, format!("{MARKER}\nhello"), "left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ticking_a_box_as_a_writer_rotates_exactly_that_credential_and_clears_the_box() {
    let fixture = Fixture::sample();
    let w = world_with(fixture).await;
    let r = Runner::new(&w.gh, "schedule", &schedule());
    w.write_config(&r);
    let out = r
        .rotor(&["action", "--dry-run", "--dashboard"], &w.env())
        .await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let d = w.dashboard();
    let ((app, key), ticked) = tick_first(&d.body);
    let before = support::password_key_ids(&w.applications());

    // A read-only sender: nothing changes.
    w.gh.set_permission("reader", "read");
    w.gh.edit_issue_body(d.number, &ticked);
    let ro = Runner::new(&w.gh, "issues", &edited(d.number, "reader"));
    w.write_config(&ro);
    let out_ro = ro.rotor(&["action"], &w.env()).await;
    assert_eq!(out_ro.code, Some(0), "{out_ro:#?}");
    assert!(
        out_ro.stdout.contains("`reader` has `read` permission"),
        "{out_ro:#?}"
    );
    assert_eq!(
        support::password_key_ids(&w.applications()),
        before,
        "nothing rotated"
    );
    assert!(w.gh.comments_on(d.number).is_empty(), "no comment");

    // A writer: exactly that credential rotates, the result is commented, the box is cleared.
    w.gh.set_permission("octocat", "write");
    let wr = Runner::new(&w.gh, "issues", &edited(d.number, "octocat"));
    w.write_config(&wr);
    let out_w = wr.rotor(&["action"], &w.env()).await;
    assert_eq!(out_w.code, Some(0), "{out_w:#?}");
    let after = support::password_key_ids(&w.applications());
    for (a, keys) in &before {
        if a.eq_ignore_ascii_case(&app) {
            assert_eq!(after[a].len(), keys.len() + 1, "one new credential for {a}");
            assert!(after[a].contains(&key), "the old one stays until cleanup");
        } else {
            assert_eq!(&after[a], keys, "{a} untouched");
        }
    }
    let comments = w.gh.comments_on(d.number);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].body.contains("1 rotated, 0 failed"),
        "{}",
        comments[0].body
    );
    assert!(comments[0].body.contains("octocat"), "{}", comments[0].body);
    let d2 = w.dashboard();
    assert!(!d2.body.contains("- [x]"), "boxes cleared: {}", d2.body);
    assert_eq!(wr.outputs().get("rotated").map(String::as_str), Some("1"));

    // The same event fired again (the box ticked again on the old body): the credential it
    // named is no longer current, so nothing rotates twice.
    w.gh.edit_issue_body(d.number, &ticked);
    let again = Runner::new(&w.gh, "issues", &edited(d.number, "octocat"));
    w.write_config(&again);
    let out_a = again.rotor(&["action"], &w.env()).await;
    assert_eq!(out_a.code, Some(0), "{out_a:#?}");
    assert_eq!(
        support::password_key_ids(&w.applications()),
        after,
        "not rotated twice"
    );
    assert!(
        out_a.stdout.contains("not a rotatable credential"),
        "{out_a:#?}"
    );
    w.assert_no_secret(&[
        w.gh.everything_written(),
        out_w.stdout,
        out_a.stdout,
        wr.summary(),
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_body_an_unknown_box_or_an_ordinary_issue_change_nothing() {
    let w = world_with(Fixture::sample()).await;
    w.gh.set_permission("octocat", "admin");
    let r = Runner::new(&w.gh, "schedule", &schedule());
    w.write_config(&r);
    assert_eq!(
        r.rotor(&["action", "--dry-run", "--dashboard"], &w.env())
            .await
            .code,
        Some(0)
    );
    let d = w.dashboard();
    let (_, ticked) = tick_first(&d.body);
    let before = w.applications();

    // A person's issue carrying rotor's marker and a ticked box.
    let forged =
        w.gh.seed_issue("octocat", "rotor: credential rotation dashboard", &ticked);
    // An ordinary issue.
    let ordinary = w.gh.seed_issue("octocat", "bug", "- [x] something");
    // rotor's dashboard with a box for a credential that does not exist.
    let unknown = format!(
        "{}\n- [x] <!-- rotor-rotate: 00000000-0000-0000-0000-000000000000 11111111-1111-1111-1111-111111111111 --> Rotate\n",
        d.body
    );
    for (number, body, why) in [
        (forged, None, "is not rotor's dashboard"),
        (ordinary, None, "is not rotor's dashboard"),
        (d.number, Some(unknown), "not a rotatable credential"),
    ] {
        if let Some(b) = body {
            w.gh.edit_issue_body(number, &b);
        }
        let run = Runner::new(&w.gh, "issues", &edited(number, "octocat"));
        w.write_config(&run);
        let out = run.rotor(&["action"], &w.env()).await;
        assert_eq!(out.code, Some(0), "{out:#?}");
        assert!(out.stdout.contains(why), "{why}: {out:#?}");
    }
    // Other `issues` actions are not acted on.
    let opened = Runner::new(
        &w.gh,
        "issues",
        &json!({"action": "opened", "issue": {"number": d.number}, "sender": {"login": "octocat"}}),
    );
    let out = opened.rotor(&["action"], &w.env()).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(out.stdout.contains("acts only on `edited`"), "{out:#?}");
    assert_eq!(
        support::password_key_ids(&w.applications()),
        support::password_key_ids(&before),
        "nothing rotated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_names_render_inert_on_the_dashboard() {
    let mut fixture = Fixture::sample();
    let app = fixture
        .applications
        .iter_mut()
        .find(|a| a.display_name == "consumer-app")
        .expect("consumer-app");
    app.display_name = format!("consumer-app {}", support::HOSTILE.join(" "));
    let w = world_with(fixture).await;
    let r = Runner::new(&w.gh, "schedule", &schedule());
    w.write_config(&r);
    let out = r
        .rotor(&["action", "--dry-run", "--dashboard"], &w.env())
        .await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let d = w.dashboard();
    assert!(
        d.body.contains("www\u{200B}.evil.example/login"),
        "{}",
        d.body
    );
    // rotor's own hidden markers (plain ids only) aside, nothing survives as HTML or a link.
    let markers = regex::Regex::new(
        r"<!-- rotor-(dashboard|rotate|rotate-certificate|risk)(: [0-9A-Za-z-]+ [0-9A-Za-z-]+)? -->",
    )
    .expect("regex");
    let stripped = markers.replace_all(&d.body, "");
    support::assert_inert("dashboard issue", &support::render_gfm(&stripped));

    // The result comment of a one-click rotation of the hostile application is inert too.
    w.gh.set_permission("octocat", "write");
    let line = d
        .body
        .lines()
        .find(|l| l.starts_with("- [ ] <!-- rotor-rotate: ") && l.contains("consumer-app"))
        .expect("a box for the hostile app")
        .to_string();
    w.gh.edit_issue_body(
        d.number,
        &d.body.replacen(&line, &line.replacen("[ ]", "[x]", 1), 1),
    );
    let run = Runner::new(&w.gh, "issues", &edited(d.number, "octocat"));
    w.write_config(&run);
    let out = run.rotor(&["action"], &w.env()).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let comments = w.gh.comments_on(d.number);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].body.contains("www\u{200B}.evil.example/login"),
        "{}",
        comments[0].body
    );
    support::assert_inert(
        "dashboard result comment",
        &support::render_gfm(&comments[0].body),
    );
    support::assert_inert(
        "one-click job summary",
        &support::render_gfm(&run.summary()),
    );
    let again = w.dashboard();
    support::assert_inert(
        "re-rendered dashboard",
        &support::render_gfm(&markers.replace_all(&again.body, "")),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_of_5000_apps_fits_githubs_body_limit_and_the_rest_goes_to_the_summary() {
    let mut fixture = Fixture::sample();
    let template = fixture
        .applications
        .iter()
        .find(|a| !a.password_credentials.is_empty())
        .expect("an app with a password")
        .clone();
    for i in 0..5000 {
        let mut a = template.clone();
        a.object_id = None;
        a.app_id = None;
        a.display_name = format!("bulk-app-{i:04} of the payments platform");
        for p in &mut a.password_credentials {
            p.key_id = None;
            p.secret_text = None;
        }
        fixture.applications.push(a);
    }
    let w = world_with(fixture).await;
    let r = Runner::new(&w.gh, "schedule", &schedule());
    w.write_config(&r);
    let out = r
        .rotor(&["action", "--dry-run", "--dashboard"], &w.env())
        .await;
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    // The fake refuses bodies over 65,536 characters, as GitHub does.
    let d = w.dashboard();
    assert!(d.body.chars().count() <= support::MAX_BODY);
    assert!(d.body.contains("do not fit in this issue"), "trimmed");
    assert!(d.body.contains("/actions/runs/4242)"), "links the run");
    let summary = r.summary();
    assert!(
        summary.len() <= 1024 * 1024,
        "the summary keeps GitHub's 1 MiB"
    );
    let count = |t: &str| t.matches("bulk-app-").count();
    assert!(
        count(&summary) > 2 * count(&d.body),
        "the job summary holds what does not fit: {} vs {}",
        count(&summary),
        count(&d.body)
    );
    let file = std::fs::read_to_string(r.path("runner_temp/rotor-dashboard.md"))
        .expect("the whole dashboard in $RUNNER_TEMP/rotor-dashboard.md");
    assert!(file.contains("bulk-app-4999"), "every app in the file");
    assert!(
        !summary.contains("- [ ] <!-- rotor-rotate"),
        "no boxes in the summary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_below_minimum_match_rotates_only_with_the_box_that_names_the_risk() {
    let fixture = Fixture::sample();
    let w = world_with(fixture).await;
    w.gh.set_permission("octocat", "write");
    let r = Runner::new(&w.gh, "schedule", &schedule());
    w.write_config(&r);
    let out = r
        .rotor(&["action", "--dry-run", "--dashboard"], &w.env())
        .await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    let d = w.dashboard();
    let Some(risk_line) = d
        .body
        .lines()
        .find(|l| l.contains("<!-- rotor-risk: "))
        .map(str::to_string)
    else {
        panic!(
            "the sample has a match below the minimum confidence: {}",
            d.body
        );
    };
    assert!(risk_line.contains("I accept the risk"), "{risk_line}");
    let ids = risk_line
        .split("<!-- rotor-risk: ")
        .nth(1)
        .and_then(|x| x.split(" -->").next())
        .expect("ids")
        .to_string();
    let (app, _) = ids.split_once(' ').expect("two ids");
    let rotate_line = format!("- [ ] <!-- rotor-rotate: {ids} -->");
    assert!(d.body.contains(&rotate_line), "{}", d.body);
    let before = support::password_key_ids(&w.applications());

    // The rotate box alone: refused.
    let only = d
        .body
        .replacen(&rotate_line, &rotate_line.replacen("[ ]", "[x]", 1), 1);
    w.gh.edit_issue_body(d.number, &only);
    let r1 = Runner::new(&w.gh, "issues", &edited(d.number, "octocat"));
    w.write_config(&r1);
    let out1 = r1.rotor(&["action"], &w.env()).await;
    assert_eq!(out1.code, Some(0), "{out1:#?}");
    assert!(
        out1.stdout.contains("tick the box that names the risk too"),
        "{out1:#?}"
    );
    assert_eq!(
        support::password_key_ids(&w.applications()),
        before,
        "nothing rotated"
    );

    // Both boxes: that credential rotates, nothing else.
    let d = w.dashboard();
    let both = d
        .body
        .replacen(&rotate_line, &rotate_line.replacen("[ ]", "[x]", 1), 1)
        .replacen(&risk_line, &risk_line.replacen("[ ]", "[x]", 1), 1);
    assert_ne!(both, d.body);
    w.gh.edit_issue_body(d.number, &both);
    let r2 = Runner::new(&w.gh, "issues", &edited(d.number, "octocat"));
    w.write_config(&r2);
    let out2 = r2.rotor(&["action"], &w.env()).await;
    assert_eq!(out2.code, Some(0), "{out2:#?}");
    let after = support::password_key_ids(&w.applications());
    for (a, keys) in &before {
        if a.eq_ignore_ascii_case(app) {
            assert_eq!(after[a].len(), keys.len() + 1, "{a} rotated once");
        } else {
            assert_eq!(&after[a], keys, "{a} untouched");
        }
    }
    assert!(!w.dashboard().body.contains("- [x]"), "boxes cleared");
}
