//! Certificate lineages on the rotation dashboard, end to end (the real binary, the in-process
//! emulator and the fake GitHub API): the entry and its state, a ticked certificate box rotating
//! exactly that lineage (a new Key Vault version, its key credential on the application), a
//! secret box next to it rotating only the secret, and stale, unknown or mis-kinded boxes
//! refused. No private key material appears in anything the runs write.

#[path = "github_support.rs"]
mod support;

#[path = "cli_support/certificates.rs"]
mod certificates;

use std::collections::{BTreeMap, BTreeSet};

use certificates::{
    CERT_LINEAGE, CERT_NAME, MYAPP, SeededCertificate, assert_no_key_material, key_credentials,
    key_material, renew_in_key_vault, seed_certificate,
};
use rotor_emulator::{Emulator, EmulatorOptions, Fixture};
use serde_json::json;
use support::{FakeGitHub, Runner};

const CERT_BOX: &str = "- [ ] <!-- rotor-rotate-certificate: ";
const SECRET_BOX: &str = "- [ ] <!-- rotor-rotate: ";

struct World {
    emu: Emulator,
    gh: FakeGitHub,
    seeded: SeededCertificate,
}

/// The sample tenant with MyApp's certificate lineage (12 months; `renewed`: Key Vault made a
/// newer version the application lacks, as AutoRenew does).
async fn world(renewed: bool) -> World {
    let emu = Emulator::start(Fixture::sample(), EmulatorOptions::default())
        .await
        .expect("emulator starts");
    let seeded = seed_certificate(&emu, 12).await;
    if renewed {
        renew_in_key_vault(&emu).await;
    }
    World {
        emu,
        gh: FakeGitHub::start().await,
        seeded,
    }
}

impl World {
    fn env(&self) -> BTreeMap<String, String> {
        self.emu.endpoints().env.clone()
    }

    fn write_config(&self, runner: &Runner) {
        support::write_config(&self.emu, runner, "");
    }

    fn dashboard(&self) -> support::FakeIssue {
        self.gh.dashboard_issue()
    }

    /// A scheduled dry run with `--dashboard`: the dashboard issue as it renders.
    async fn render(&self) -> (support::FakeIssue, Runner, support::Output) {
        let r = Runner::new(&self.gh, "schedule", &json!({"schedule": "17 3 * * *"}));
        self.write_config(&r);
        let out = r
            .rotor(&["action", "--dry-run", "--dashboard"], &self.env())
            .await;
        assert_eq!(out.code, Some(0), "{out:#?}");
        (self.dashboard(), r, out)
    }

    /// The `issues` `edited` run after `body` was saved on the dashboard by `octocat` (write).
    async fn tick(&self, number: u64, body: &str) -> (Runner, support::Output) {
        self.gh.set_permission("octocat", "write");
        self.gh.edit_issue_body(number, body);
        let run = Runner::new(
            &self.gh,
            "issues",
            &json!({
                "action": "edited",
                "issue": {"number": number, "user": {"login": "github-actions[bot]", "type": "Bot"}},
                "changes": {"body": {"from": "…"}},
                "sender": {"login": "octocat", "type": "User"},
            }),
        );
        self.write_config(&run);
        let out = run.rotor(&["action"], &self.env()).await;
        (run, out)
    }

    /// The versions of `myapp-signing` in kv-prod: (version, thumbprint).
    fn certificate_versions(&self) -> Vec<(String, String)> {
        let state = self.emu.state();
        let vault = state["vaults"]
            .as_array()
            .expect("vaults")
            .iter()
            .find(|v| v["name"] == "kv-prod")
            .expect("kv-prod")
            .clone();
        let cert = vault["certificates"]
            .as_array()
            .expect("certificates")
            .iter()
            .find(|c| c["name"] == CERT_NAME)
            .expect("myapp-signing")
            .clone();
        let mut v: Vec<(i64, String, String)> = cert["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .map(|x| {
                (
                    x["created"].as_i64().unwrap_or_default(),
                    x["version"].as_str().expect("version").to_owned(),
                    x["thumbprint"].as_str().expect("thumbprint").to_owned(),
                )
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, a, b)| (a, b)).collect()
    }

    /// Every application's password keyIds.
    fn password_key_ids(&self) -> BTreeMap<String, BTreeSet<String>> {
        support::password_key_ids(&self.emu.state())
    }

    /// MyApp's key credentials: (keyId lowercased, thumbprint upper case).
    fn myapp_keys(&self) -> BTreeSet<(String, String)> {
        key_credentials(&self.emu, MYAPP)
            .iter()
            .map(|k| {
                (
                    k["key_id"].as_str().expect("key id").to_lowercase(),
                    k["thumbprint"].as_str().expect("thumbprint").to_uppercase(),
                )
            })
            .collect()
    }

    /// No key material (and no client secret value) in GitHub, the summaries, the dashboard
    /// file or the logs.
    fn assert_nothing_secret(&self, runners: &[&Runner], outs: &[&support::Output]) {
        let material = key_material(&self.emu);
        assert!(!material.is_empty(), "the emulator holds the keys");
        let mut places: Vec<(String, String)> =
            vec![("GitHub".into(), self.gh.everything_written())];
        for (i, r) in runners.iter().enumerate() {
            places.push((format!("job summary {i}"), r.summary()));
            places.push((format!("outputs {i}"), r.outputs_raw()));
            if let Ok(t) = std::fs::read_to_string(r.path("runner_temp/rotor-dashboard.md")) {
                places.push((format!("rotor-dashboard.md {i}"), t));
            }
        }
        for (i, o) in outs.iter().enumerate() {
            places.push((format!("logs of run {i}"), o.logs_without_masks()));
        }
        let state = self.emu.state();
        let secrets: Vec<String> = state["applications"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| {
                a["password_credentials"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|p| p["secret_text"].as_str().map(str::to_owned))
            .filter(|s| s.len() >= 8)
            .collect();
        assert!(secrets.len() > 3, "the emulator holds client secrets");
        for (place, text) in &places {
            assert_no_key_material(place, text, &material);
            for s in &secrets {
                assert!(
                    !text.contains(s.as_str()),
                    "a client secret appears in {place}"
                );
            }
        }
    }
}

/// The line of the box starting with `prefix` for `app`, and its keyId.
fn box_line(body: &str, prefix: &str, app: &str) -> (String, String) {
    let line = body
        .lines()
        .find(|l| l.starts_with(&format!("{prefix}{app} ")))
        .unwrap_or_else(|| panic!("no `{prefix}{app}` box: {body}"))
        .to_string();
    let key = line[prefix.len() + app.len() + 1..]
        .split(" -->")
        .next()
        .expect("key id")
        .to_string();
    (line, key)
}

fn ticked(body: &str, line: &str) -> String {
    let t = body.replacen(line, &line.replacen("- [ ]", "- [x]", 1), 1);
    assert_ne!(t, body);
    t
}

/// The lines of the section with heading `### {name} (…)`.
fn section<'a>(body: &'a str, name: &str) -> &'a str {
    let start = body
        .find(&format!("### {name} ("))
        .unwrap_or_else(|| panic!("no {name} section: {body}"));
    let rest = &body[start + 4..];
    let end = rest.find("\n### ").map_or(rest.len(), |i| i);
    &rest[..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_shows_a_certificate_lineage_with_its_state_and_a_box() {
    let w = world(true).await;
    let keys_before = w.myapp_keys();
    let (d, r, out) = w.render().await;
    let body = &d.body;
    assert!(
        body.contains("credentials (1 certificate) of"),
        "the head counts it: {body}"
    );
    let (line, key) = box_line(body, CERT_BOX, MYAPP);
    assert!(key.eq_ignore_ascii_case(&w.seeded.key_id), "{line}");
    let thumb8 = &w.seeded.thumbprint[..8];
    assert!(
        line.contains(&format!(
            "Rotate **MyApp** / {CERT_LINEAGE} (certificate {thumb8}) — expires "
        )),
        "{line}"
    );
    // AutoRenew made a version the application lacks: due (a sync), and it says so.
    let due = section(body, "Due");
    assert!(due.contains(&line), "in the Due section: {body}");
    let detail: Vec<&str> = body
        .lines()
        .skip_while(|l| *l != line)
        .skip(1)
        .take_while(|l| l.starts_with("  - "))
        .collect();
    let first = detail.first().expect("a detail line");
    assert!(first.contains("a sync is pending"), "{first}");
    assert!(first.contains("confidence HIGH (`thumbprint`)"), "{first}");
    assert!(
        // (the emulator's vaults are named by their loopback address)
        first.contains("held by Key Vault certificate ")
            && first.contains(&format!("/{CERT_NAME}; next rotation ")),
        "{first}"
    );
    assert!(first.contains("next rotation "), "{first}");
    let reason = detail
        .iter()
        .find(|l| l.starts_with("  - due: "))
        .unwrap_or_else(|| panic!("a due reason: {detail:?}"));
    assert!(
        reason.contains("newer version") && reason.contains(CERT_NAME),
        "{reason}"
    );
    assert!(
        !detail.iter().any(|l| l.contains("I accept the risk")),
        "a thumbprint match has no risk box"
    );
    // The secret of the same application keeps its own, differently keyed box.
    let (_, secret_key) = box_line(body, SECRET_BOX, MYAPP);
    assert!(!secret_key.eq_ignore_ascii_case(&key));
    // The job summary's copy has the entry, without boxes.
    let file = std::fs::read_to_string(r.path("runner_temp/rotor-dashboard.md"))
        .expect("rotor-dashboard.md");
    assert!(file.contains(&format!("{CERT_LINEAGE} (certificate {thumb8})")));
    assert!(!file.contains("- [ ]"));
    assert_eq!(w.myapp_keys(), keys_before, "a dry run changes nothing");

    // Ticked while a sync is pending: rotor adds the version Key Vault already made (a new
    // credential for the lineage) rather than making yet another one.
    let versions = w.certificate_versions();
    assert_eq!(versions.len(), 2, "{versions:?}");
    let renewed = versions
        .iter()
        .map(|v| v.1.to_uppercase())
        .find(|t| *t != w.seeded.thumbprint)
        .expect("the renewed version");
    let (run, out2) = w.tick(d.number, &ticked(body, &line)).await;
    assert_eq!(out2.code, Some(0), "{out2:#?}");
    assert_eq!(run.outputs().get("rotated").map(String::as_str), Some("1"));
    assert_eq!(w.certificate_versions(), versions, "no third version");
    let keys = w.myapp_keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|(_, t)| *t == renewed), "{keys:?}");
    let d2 = w.dashboard();
    assert!(!d2.body.contains("a sync is pending"), "{}", d2.body);
    assert!(!d2.body.contains("- [x]"), "{}", d2.body);
    w.assert_nothing_secret(&[&r, &run], &[&out, &out2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ticking_a_certificate_box_rotates_that_lineage_and_a_stale_box_is_refused() {
    let w = world(false).await;
    let (d, r0, out0) = w.render().await;
    let (line, old_key) = box_line(&d.body, CERT_BOX, MYAPP);
    assert!(old_key.eq_ignore_ascii_case(&w.seeded.key_id));
    assert!(
        section(&d.body, "Fine").contains(&line),
        "12 months: fine: {}",
        d.body
    );
    let versions_before = w.certificate_versions();
    assert_eq!(versions_before.len(), 1, "{versions_before:?}");
    let passwords_before = w.password_key_ids();
    let body = ticked(&d.body, &line);

    let (run, out) = w.tick(d.number, &body).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(run.outputs().get("rotated").map(String::as_str), Some("1"));
    // Key Vault made a new version; its certificate is on the application; nothing else moved.
    let versions = w.certificate_versions();
    assert_eq!(versions.len(), 2, "a new Key Vault version: {versions:?}");
    let new_thumb = versions
        .iter()
        .map(|v| v.1.to_uppercase())
        .find(|t| *t != w.seeded.thumbprint)
        .expect("a version with a new thumbprint");
    let keys = w.myapp_keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let (new_key, _) = keys
        .iter()
        .find(|(_, t)| *t == new_thumb)
        .unwrap_or_else(|| panic!("the new version is on the application: {keys:?}"))
        .clone();
    assert!(
        keys.iter().any(|(k, _)| k.eq_ignore_ascii_case(&old_key)),
        "the old one stays until cleanup"
    );
    assert_eq!(w.password_key_ids(), passwords_before, "no secret rotated");
    // The result comment names the lineage as a certificate with its new thumbprint.
    let comments = w.gh.comments_on(d.number);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    let c = &comments[0].body;
    assert!(c.contains("1 rotated, 0 failed"), "{c}");
    assert!(
        c.contains(&format!(
            "{CERT_LINEAGE} (certificate `{}`)",
            &new_thumb[..8]
        )),
        "{c}"
    );
    assert!(c.contains("new certificate"), "{c}");
    assert!(c.contains("octocat"), "{c}");
    // Re-rendered with the box cleared, now naming the new key credential.
    let d2 = w.dashboard();
    assert!(!d2.body.contains("- [x]"), "boxes cleared: {}", d2.body);
    let (_, key2) = box_line(&d2.body, CERT_BOX, MYAPP);
    assert!(key2.eq_ignore_ascii_case(&new_key), "{}", d2.body);
    assert!(
        d2.body
            .contains(&format!("{CERT_LINEAGE} (certificate {})", &new_thumb[..8])),
        "{}",
        d2.body
    );

    // The old body saved again (a re-fired event, an outdated tab): the box names a key
    // credential that is no longer current. Refused, said so, nothing rotates twice.
    let (run2, out2) = w.tick(d.number, &body).await;
    assert_eq!(out2.code, Some(0), "{out2:#?}");
    assert!(
        out2.stdout.contains(&format!(
            "certificate {MYAPP} / {}: not a rotatable credential on the dashboard now",
            old_key.to_lowercase()
        )),
        "{out2:#?}"
    );
    assert_eq!(w.certificate_versions().len(), 2, "no second version");
    assert_eq!(w.myapp_keys(), keys, "no second key credential");
    let comments = w.gh.comments_on(d.number);
    assert_eq!(comments.len(), 2, "{comments:#?}");
    assert!(
        comments[1].body.contains("0 rotated, 0 failed")
            && comments[1].body.contains("Refused: certificate"),
        "{}",
        comments[1].body
    );
    assert_eq!(run2.outputs().get("rotated").map(String::as_str), Some("0"));
    w.assert_nothing_secret(&[&r0, &run, &run2], &[&out0, &out, &out2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ticking_a_secret_box_next_to_a_certificate_rotates_only_the_secret() {
    let w = world(false).await;
    let (d, _, _) = w.render().await;
    let (line, secret_key) = box_line(&d.body, SECRET_BOX, MYAPP);
    assert!(
        d.body.contains(CERT_BOX),
        "a certificate box too: {}",
        d.body
    );
    let versions_before = w.certificate_versions();
    let keys_before = w.myapp_keys();
    let passwords_before = w.password_key_ids();
    let (run, out) = w.tick(d.number, &ticked(&d.body, &line)).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(run.outputs().get("rotated").map(String::as_str), Some("1"));
    let passwords = w.password_key_ids();
    for (a, keys) in &passwords_before {
        if a.eq_ignore_ascii_case(MYAPP) {
            assert_eq!(passwords[a].len(), keys.len() + 1, "MyApp's secret rotated");
            assert!(passwords[a].contains(&secret_key.to_lowercase()));
        } else {
            assert_eq!(&passwords[a], keys, "{a} untouched");
        }
    }
    assert_eq!(w.certificate_versions(), versions_before, "no new version");
    assert_eq!(w.myapp_keys(), keys_before, "no new key credential");
    let comments = w.gh.comments_on(d.number);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].body.contains("1 rotated, 0 failed")
            && !comments[0].body.contains("(certificate"),
        "{}",
        comments[0].body
    );
    w.assert_nothing_secret(&[&run], &[&out]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_box_of_the_wrong_kind_or_an_unknown_certificate_box_is_refused() {
    let w = world(false).await;
    let (d, _, _) = w.render().await;
    let cert_key = box_line(&d.body, CERT_BOX, MYAPP).1.to_lowercase();
    let secret_key = box_line(&d.body, SECRET_BOX, MYAPP).1.to_lowercase();
    let versions_before = w.certificate_versions();
    let keys_before = w.myapp_keys();
    let passwords_before = w.password_key_ids();
    // Hand-edited boxes: the certificate's ids in a secret box, the secret's in a certificate
    // box, and a certificate box naming nothing.
    let body = format!(
        "{}\n- [x] <!-- rotor-rotate: {MYAPP} {cert_key} --> Rotate\n- [x] <!-- rotor-rotate-certificate: {MYAPP} {secret_key} --> Rotate\n- [x] <!-- rotor-rotate-certificate: {MYAPP} 11111111-1111-1111-1111-111111111111 --> Rotate\n",
        d.body
    );
    let (run, out) = w.tick(d.number, &body).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    for why in [
        format!(
            "client secret {MYAPP} / {cert_key}: the box is for a client secret but these ids name a certificate; not rotated"
        ),
        format!(
            "certificate {MYAPP} / {secret_key}: the box is for a certificate but these ids name a client secret; not rotated"
        ),
        format!(
            "certificate {MYAPP} / 11111111-1111-1111-1111-111111111111: not a rotatable credential on the dashboard now"
        ),
    ] {
        assert!(out.stdout.contains(&why), "{why}: {out:#?}");
    }
    assert_eq!(w.certificate_versions(), versions_before);
    assert_eq!(w.myapp_keys(), keys_before);
    assert_eq!(w.password_key_ids(), passwords_before, "nothing rotated");
    assert_eq!(run.outputs().get("rotated").map(String::as_str), Some("0"));
    let comments = w.gh.comments_on(d.number);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert_eq!(
        comments[0].body.matches("Refused: ").count(),
        3,
        "{}",
        comments[0].body
    );
}
