//! The enumerated crash-and-fault suite: for each rotation shape, every request k of a clean run
//! is in turn the point where the run stops (everything after k hangs, never applied), fails
//! (k answered 500, not applied), or is applied and then fails (500, dropped connection, no
//! answer); then a fresh engine recovers through each entry point (the same call, CLI by key id,
//! `--due`, Terraform), the tenant is aged past the pending window and the grace period, the
//! entry point runs again and cleanup runs. After every stage the emulator's state is checked
//! against the protocol's invariants. Deterministic: the k-th request is counted by the emulator
//! (`skip` faults), and `max_concurrent = 1` keeps the request order of a run fixed — except in
//! the `2 targets, concurrent` shape (full matrix only), whose faulted run has `max_concurrent =
//! 4` and Graph's read lag on: there request k is whichever arrives k-th.
//!
//! - `cargo test -p rotor-engine --test crash_matrix` runs a fixed subset (every k of the 1- and
//!   3-target shapes, modes `fail` and `applied-then-500`, every entry point).
//! - `cargo test -p rotor-engine --test crash_matrix -- --ignored --nocapture` runs the full matrix
//!   and prints the table.
//!
//! A trial the harness could not observe to the end (a stage that did not finish in its bound)
//! is `unknown`, never counted as a violation nor as converged.

mod common;

use common::*;
use rotor_emulator::Fixture;
use rotor_engine::{
    AuditRecord, Config, Engine, Link, NoProgress, Policy, RotateOptions, RotationStatus,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const ORDERS: &str = "b0000003-0000-4000-8000-000000000003";
const ORDERS_KEY: &str = "c0000003-0000-4000-8000-000000000301";
const BILLING: &str = "b0000002-0000-4000-8000-000000000002";
const BILLING_KEY: &str = "c0000002-0000-4000-8000-000000000201";
const CONSUMER_KEY: &str = "c0000009-0000-4000-8000-000000000902";

/// Bound for one engine call that is expected to finish on its own.
const CALL_BOUND: Duration = Duration::from_secs(60);
/// Bound for the faulted run under an outage (a run that has not finished by then is `unknown`).
const OUTAGE_BOUND: Duration = Duration::from_secs(20);
/// How long a blocked run must stay quiet (no new request) before its future is dropped.
const QUIET: Duration = Duration::from_millis(150);

// ---------------------------------------------------------------------------------------------
// Shapes, modes, entry points

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Shape {
    /// orders-service "client secret" → kv-prod/orders-service-client-secret.
    One,
    /// MyApp "Secret 1" → kv-prod/myapp-secret, kv-dev/myapp-dev-secret (the sample without
    /// kv-staging/myapp-secret-v2).
    Two,
    /// MyApp "Secret 1" → its three sample targets.
    Three,
    /// `rotate_many` over orders-service and consumer-app (at its 2-password cap: make room).
    Bulk,
    /// billing-api "prod" (not due), `RotateOptions { force: true }` as Terraform's
    /// `rotate_when_changed` does.
    Forced,
    /// The 2-target link rotated with `max_concurrent = 4` and Graph's read-after-write delay
    /// on: the application and the targets read at once, the targets probed and written in
    /// parallel, the rival check beside the verification. Request k is whichever request
    /// arrives k-th (the order varies from run to run); the recovery runs as in the other shapes.
    Concurrent,
}

impl Shape {
    const ALL: [Shape; 6] = [
        Shape::One,
        Shape::Two,
        Shape::Three,
        Shape::Bulk,
        Shape::Forced,
        Shape::Concurrent,
    ];

    fn name(self) -> &'static str {
        match self {
            Shape::One => "1 target",
            Shape::Two => "2 targets",
            Shape::Three => "3 targets",
            Shape::Bulk => "bulk (2 links)",
            Shape::Forced => "forced",
            Shape::Concurrent => "2 targets, concurrent",
        }
    }

    fn fixture(self) -> Fixture {
        let mut v: Value =
            serde_json::from_str(include_str!("../../examples/fixtures/sample-tenant.json"))
                .expect("sample fixture");
        v["propagation_delay_ms"] = json!(0);
        if matches!(self, Shape::Two | Shape::Concurrent) {
            for vault in v["vaults"].as_array_mut().expect("vaults") {
                if vault["name"] == "kv-staging" {
                    vault["secrets"]
                        .as_array_mut()
                        .expect("secrets")
                        .retain(|s| s["name"] != "myapp-secret-v2");
                }
            }
        }
        // Graph's read-after-write delay is timing, not a crash: with it a run's requests (and the
        // engine's polling) would differ from run to run. Emulators without `fidelity` refuse
        // the field.
        // The concurrent shape keeps it: its order varies anyway, and the overlap of the rival
        // check (reading until Graph shows the new credential) with the verification is the
        // point.
        if self != Shape::Concurrent {
            v["fidelity"] = json!({"graph_read_delay_ms": 0});
        }
        Fixture::from_json(&v.to_string())
            .or_else(|_| {
                v.as_object_mut().expect("object").remove("fidelity");
                Fixture::from_json(&v.to_string())
            })
            .expect("fixture")
    }

    /// The links with the key id each starts from.
    fn links(self, env: &Env) -> Vec<(Link, &'static str)> {
        let one = |app: &str, cred: &str, vault: &str, secret: &str| Link {
            application_id: app.into(),
            credential_display_name: cred.into(),
            targets: BTreeSet::from([env.target(vault, secret)]),
        };
        match self {
            Shape::One => vec![(
                one(
                    ORDERS,
                    "client secret",
                    "kv-prod",
                    "orders-service-client-secret",
                ),
                ORDERS_KEY,
            )],
            Shape::Two | Shape::Concurrent => vec![(
                Link {
                    application_id: MYAPP.into(),
                    credential_display_name: "Secret 1".into(),
                    targets: BTreeSet::from([
                        env.target("kv-prod", "myapp-secret"),
                        env.target("kv-dev", "myapp-dev-secret"),
                    ]),
                },
                MYAPP_SECRET1,
            )],
            Shape::Three => vec![(env.myapp_link(), MYAPP_SECRET1)],
            Shape::Bulk => vec![
                (
                    one(
                        ORDERS,
                        "client secret",
                        "kv-prod",
                        "orders-service-client-secret",
                    ),
                    ORDERS_KEY,
                ),
                (
                    one(CONSUMER, "current", "kv-prod", "consumer-app-client-secret"),
                    CONSUMER_KEY,
                ),
            ],
            Shape::Forced => vec![(
                one(BILLING, "prod", "kv-prod", "billing-api-client-secret"),
                BILLING_KEY,
            )],
        }
    }

    fn opts(self) -> RotateOptions {
        RotateOptions {
            force: self == Shape::Forced,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Mode {
    /// Everything after request k hangs without being applied; the run's future is dropped.
    Stop,
    /// Request k is answered 500 and not applied.
    Fail,
    /// Request k is applied, then answered 500.
    AppliedThen500,
    /// Request k is applied, then its connection is dropped without an answer.
    AppliedThenDrop,
    /// Request k is applied, then never answered; the run's future is dropped once it is blocked
    /// (the engine's own request timeout is 120 s and not configurable).
    AppliedThenTimeout,
    /// An outage of k's endpoint: from request k on, every request to the same route (method,
    /// path template, vault) is answered 500 and not applied until the run ends — so that retries
    /// (the engine's and the Key Vault SDK's own) cannot hide the failure.
    Outage,
    /// The same, but each of those requests is applied before its 500.
    AppliedOutage,
}

impl Mode {
    const ALL: [Mode; 7] = [
        Mode::Stop,
        Mode::Fail,
        Mode::AppliedThen500,
        Mode::AppliedThenDrop,
        Mode::AppliedThenTimeout,
        Mode::Outage,
        Mode::AppliedOutage,
    ];

    fn name(self) -> &'static str {
        match self {
            Mode::Stop => "stop",
            Mode::Fail => "fail",
            Mode::AppliedThen500 => "applied-then-500",
            Mode::AppliedThenDrop => "applied-then-drop",
            Mode::AppliedThenTimeout => "applied-then-timeout",
            Mode::Outage => "outage",
            Mode::AppliedOutage => "applied-outage",
        }
    }

    /// The fault rule that makes request k (of `baseline`, `METHOD /template[ @vault]`) fail.
    fn fault(self, k: usize, baseline: &[String]) -> Value {
        let before = k - 1;
        match self {
            Mode::Outage | Mode::AppliedOutage => {
                let route = &baseline[before];
                let same_before = baseline[..before].iter().filter(|r| *r == route).count();
                let (route, vault) = match route.split_once(" @") {
                    Some((r, v)) => (r, Some(v)),
                    None => (route.as_str(), None),
                };
                let (method, template) = route.split_once(' ').expect("METHOD /path");
                json!({
                    "method": method,
                    "path": template_regex(template),
                    "vault": vault,
                    "skip": same_before,
                    "status": 500,
                    "after": self == Mode::AppliedOutage,
                })
            }
            Mode::Stop => json!({"skip": k, "hang": true}),
            Mode::Fail => json!({"skip": before, "count": 1, "status": 500}),
            Mode::AppliedThen500 => {
                json!({"skip": before, "count": 1, "status": 500, "after": true})
            }
            Mode::AppliedThenDrop => {
                json!({"skip": before, "count": 1, "drop": true, "after": true})
            }
            Mode::AppliedThenTimeout => {
                json!({"skip": before, "count": 1, "hang": true, "after": true})
            }
        }
    }

    fn hangs(self) -> bool {
        // (Outage modes answer, they do not hang.)
        matches!(self, Mode::Stop | Mode::AppliedThenTimeout)
    }
}

/// `^…$` regex for an emulator route template: `{x}` is one path segment.
fn template_regex(template: &str) -> String {
    let mut out = String::from("^");
    let mut rest = template;
    let literal = |out: &mut String, text: &str| {
        for c in text.chars() {
            if c == '\'' {
                out.push_str("(?:'|%27)");
                continue;
            }
            if "\\.+*?()|[]{}^$".contains(c) {
                out.push('\\');
            }
            out.push(c);
        }
    };
    while let Some(open) = rest.find('{') {
        literal(&mut out, &rest[..open]);
        let close = rest[open..].find('}').expect("closing brace") + open;
        out.push_str("[^/]+");
        rest = &rest[close + 1..];
    }
    literal(&mut out, rest);
    // Key Vault's "latest version" is also asked for as `/secrets/{name}/`
    out.push_str("/?$");
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum EntryPoint {
    /// The same call again (`rotate` / `rotate_many` with the same options).
    Same,
    /// `rotor rotate --app A --key-id K`: `adopt(app, K the user started from)`, then a rotation
    /// (explicit requests are forced, as the CLI does).
    AdoptKeyId,
    /// `rotor rotate --due`: `due_links`, then `rotate_many` (the forced shape: `links`, forced, as
    /// `rotor rotate --app A` does).
    Due,
    /// Terraform apply: `inspect_link`, then `rotate` (forced for the forced shape) and `cleanup`
    /// on success, or `sync_targets` when only diverged.
    Terraform,
}

impl EntryPoint {
    const ALL: [EntryPoint; 4] = [
        EntryPoint::Same,
        EntryPoint::AdoptKeyId,
        EntryPoint::Due,
        EntryPoint::Terraform,
    ];

    fn name(self) -> &'static str {
        match self {
            EntryPoint::Same => "same call",
            EntryPoint::AdoptKeyId => "adopt by key id",
            EntryPoint::Due => "--due",
            EntryPoint::Terraform => "terraform",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Stage {
    /// After the faulted (or stopped) run.
    Crash,
    /// After the recovery run, inside the pending window and the grace period.
    Recover,
    /// After the tenant was aged past both and the entry point ran again.
    Aged,
    /// After cleanup.
    Cleanup,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Crash => "crash",
            Stage::Recover => "recover",
            Stage::Aged => "aged",
            Stage::Cleanup => "cleanup",
        })
    }
}

/// The invariants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Violation {
    /// A target's latest enabled version does not log in (or the target has none).
    Login,
    /// The targets of a link hold different values (checked from the recovery on).
    Agree,
    /// Something outside the lineage changed: other apps' credentials, other credentials of the
    /// app (only an expired one nobody holds may go, to make room), other secrets.
    Untouched,
    /// An app had more passwords than its cap.
    Cap,
    /// A credential a target held was removed before its successor's grace period passed.
    Grace,
    /// After cleanup a rotor credential is left that no target holds (and no grace period keeps).
    Leak,
    /// After the aged run the targets still hold the credential the trial started from.
    NotRotated,
}

impl Violation {
    const ALL: [Violation; 7] = [
        Violation::Login,
        Violation::Agree,
        Violation::Untouched,
        Violation::Cap,
        Violation::Grace,
        Violation::Leak,
        Violation::NotRotated,
    ];

    fn name(self) -> &'static str {
        match self {
            Violation::Login => "login",
            Violation::Agree => "agree",
            Violation::Untouched => "untouched",
            Violation::Cap => "cap",
            Violation::Grace => "grace",
            Violation::Leak => "leak",
            Violation::NotRotated => "not-rotated",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Engine calls

fn policy() -> Policy {
    Policy {
        max_concurrent: 1,
        ..Policy::default()
    }
}

/// The policy of the shape's first (faulted) call.
fn shape_policy(shape: Shape) -> Policy {
    match shape {
        Shape::Concurrent => Policy {
            max_concurrent: 4,
            ..Policy::default()
        },
        _ => policy(),
    }
}

fn engine(env: &Env) -> Engine {
    let mut o = env.options();
    o.max_retries = 0;
    o.verify_timeout = Duration::from_secs(2);
    o.history_file = None;
    o.hint_cache_file = None;
    Engine::new(o).expect("engine")
}

fn config(env: &Env) -> Config {
    Config {
        vaults: env.vaults(),
        subscriptions: Vec::new(),
        policy: policy(),
        ..Config::default()
    }
}

fn short(r: &AuditRecord) -> String {
    match (&r.status, &r.error) {
        (RotationStatus::Failed, Some(e)) => {
            let e: String = e.chars().take(400).collect();
            format!("failed ({e})")
        }
        (s, _) => s.to_string(),
    }
}

/// The shape's first call (the one that crashes).
async fn initial_call(engine: &Engine, shape: Shape, links: &[Link]) -> Vec<String> {
    let p = shape_policy(shape);
    if links.len() == 1 {
        vec![short(
            &engine
                .rotate(&links[0], &p, &shape.opts(), &NoProgress)
                .await,
        )]
    } else {
        engine
            .rotate_many(links, &p, &shape.opts(), &NoProgress)
            .await
            .iter()
            .map(short)
            .collect()
    }
}

/// One run of an entry point: what it reported, and the links it would clean up.
async fn entry_call(
    env: &Env,
    engine: &Engine,
    shape: Shape,
    entry: EntryPoint,
    links: &[(Link, &'static str)],
) -> (Vec<String>, Vec<Link>) {
    let p = policy();
    let apps: BTreeSet<String> = links
        .iter()
        .map(|(l, _)| l.application_id.clone())
        .collect();
    let plain: Vec<Link> = links.iter().map(|(l, _)| l.clone()).collect();
    let mut notes = Vec::new();
    match entry {
        EntryPoint::Same => (initial_call(engine, shape, &plain).await, plain),
        EntryPoint::AdoptKeyId => {
            let mut adopted = Vec::new();
            for (l, key) in links {
                match engine
                    .adopt(&l.application_id, key, &env.vaults(), &p)
                    .await
                {
                    Ok(a) => {
                        if a.targets != l.targets {
                            notes.push(format!(
                                "adopt found {} of {} targets",
                                a.targets.intersection(&l.targets).count(),
                                l.targets.len()
                            ));
                        }
                        let opts = RotateOptions {
                            force: true,
                            ..Default::default()
                        };
                        notes.push(short(&engine.rotate(&a, &p, &opts, &NoProgress).await));
                        adopted.push(a);
                    }
                    Err(e) => notes.push(format!("adopt: {e}")),
                }
            }
            (notes, adopted)
        }
        EntryPoint::Due => {
            let cfg = config(env);
            let found: Vec<Link> = if shape == Shape::Forced {
                match engine.links(&cfg).await {
                    Ok(ls) => ls,
                    Err(e) => {
                        notes.push(format!("links: {e}"));
                        Vec::new()
                    }
                }
            } else {
                match engine.due_links(&cfg).await {
                    Ok(ls) => ls.into_iter().map(|(l, _)| l).collect(),
                    Err(e) => {
                        notes.push(format!("due_links: {e}"));
                        Vec::new()
                    }
                }
            };
            let mine: Vec<Link> = found
                .into_iter()
                .filter(|l| apps.contains(&l.application_id))
                .collect();
            if mine.is_empty() {
                notes.push("nothing due".into());
            } else {
                notes.extend(
                    engine
                        .rotate_many(&mine, &p, &shape.opts(), &NoProgress)
                        .await
                        .iter()
                        .map(short),
                );
            }
            // `rotor cleanup` cleans every matched link
            let cleanup = match engine.links(&cfg).await {
                Ok(ls) => ls
                    .into_iter()
                    .filter(|l| apps.contains(&l.application_id))
                    .collect(),
                Err(e) => {
                    notes.push(format!("links: {e}"));
                    Vec::new()
                }
            };
            (notes, cleanup)
        }
        EntryPoint::Terraform => {
            for l in &plain {
                match engine.inspect_link(l, &p).await {
                    Ok(st) if st.rotation_due || shape.opts().force => {
                        let r = engine.rotate(l, &p, &shape.opts(), &NoProgress).await;
                        notes.push(short(&r));
                        if r.status == RotationStatus::Success
                            && let Err(e) = engine.cleanup(l, &p, false).await
                        {
                            notes.push(format!("cleanup: {e}"));
                        }
                    }
                    Ok(st) if st.diverged && st.current_key_id.is_some() => {
                        match engine.sync_targets(l, &p, &NoProgress).await {
                            Ok(r) => notes.push(format!("sync {}", short(&r))),
                            Err(e) => notes.push(format!("sync: {e}")),
                        }
                    }
                    Ok(_) => notes.push("no change planned".into()),
                    Err(e) => notes.push(format!("inspect: {e}")),
                }
            }
            (notes, plain)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Observing the emulator

fn log(env: &Env) -> Vec<Value> {
    env.emu.request_log()["log"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The routes of the log in order (`@vault` for vault listeners).
fn routes(env: &Env) -> Vec<String> {
    log(env)
        .iter()
        .map(|e| {
            let v = e["vault"]
                .as_str()
                .map(|v| format!(" @{v}"))
                .unwrap_or_default();
            format!("{}{v}", e["route"].as_str().unwrap_or("?"))
        })
        .collect()
}

/// An emulator for `shape` whose target vaults' URLs sort in the fixture's vault order (kv-prod,
/// kv-staging, kv-dev). A link's targets are a set ordered by URL, i.e. by the vaults' random
/// ports, and the engine works through them in that order: without this, two runs of one shape
/// would send the same requests in a different order.
async fn start_env(shape: Shape) -> Env {
    let order: &[&str] = match shape {
        Shape::Two | Shape::Concurrent => &["kv-prod", "kv-dev"],
        Shape::Three => &["kv-prod", "kv-staging", "kv-dev"],
        Shape::One | Shape::Bulk | Shape::Forced => &[],
    };
    for _ in 0..200 {
        let env = start(shape.fixture()).await;
        let urls: Vec<&String> = order
            .iter()
            .map(|n| &env.emu.endpoints().vaults[*n])
            .collect();
        if urls.windows(2).all(|w| w[0] < w[1]) {
            return env;
        }
        env.emu.shutdown().await;
    }
    panic!("no emulator with ordered vault ports in 200 starts");
}

fn parse_time(v: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v.as_str()?, &time::format_description::well_known::Rfc3339).ok()
}

fn in_lineage(display_name: &str, lineage: &str) -> bool {
    display_name == lineage || display_name.starts_with(&format!("{lineage} rotor:"))
}

fn app_of<'a>(state: &'a Value, app_id: &str) -> Option<&'a Value> {
    state["applications"]
        .as_array()?
        .iter()
        .find(|a| a["app_id"] == app_id)
}

fn vault_name(env: &Env, url: &url::Url) -> String {
    env.emu
        .endpoints()
        .vaults
        .iter()
        .find(|(_, u)| **u == url.as_str())
        .map(|(n, _)| n.clone())
        .expect("a vault of the emulator")
}

/// Latest enabled version's value of a secret (None: missing, deleted, or no enabled version).
fn latest_enabled(state: &Value, vault: &str, secret: &str) -> Option<String> {
    let s = state["vaults"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == vault)?["secrets"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == secret)?;
    if s["deleted"] == true {
        return None;
    }
    s["versions"]
        .as_array()?
        .iter()
        .rev()
        .find(|v| v["enabled"] != false)
        .and_then(|v| v["value"].as_str().map(str::to_owned))
}

/// Everything outside the shape's lineages, without times (aging moves them): key → fingerprint.
fn outside(state: &Value, links: &[Link]) -> BTreeMap<String, (Value, Option<OffsetDateTime>)> {
    let mut out = BTreeMap::new();
    for a in state["applications"].as_array().expect("apps") {
        let app_id = a["app_id"].as_str().unwrap_or("");
        for p in a["password_credentials"].as_array().expect("pw") {
            let d = p["display_name"].as_str().unwrap_or("");
            if links
                .iter()
                .any(|l| l.application_id == app_id && in_lineage(d, &l.credential_display_name))
            {
                continue;
            }
            out.insert(
                format!(
                    "app {app_id} password {}",
                    p["key_id"].as_str().unwrap_or("")
                ),
                (
                    json!([p["display_name"], p["secret_text"]]),
                    parse_time(&p["end"]),
                ),
            );
        }
        let keys: Vec<Value> = a["key_credentials"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| json!([k["key_id"], k["thumbprint"]]))
            .collect();
        out.insert(format!("app {app_id} key credentials"), (json!(keys), None));
    }
    let targets: BTreeSet<(String, String)> = links
        .iter()
        .flat_map(|l| l.targets.iter())
        .map(|t| (t.vault_url.to_string(), t.secret_name.clone()))
        .collect();
    for v in state["vaults"].as_array().expect("vaults") {
        let url = v["url"].as_str().unwrap_or("").to_owned();
        for s in v["secrets"].as_array().expect("secrets") {
            let name = s["name"].as_str().unwrap_or("").to_owned();
            if targets.contains(&(url.clone(), name.clone())) {
                continue;
            }
            let versions: Vec<Value> = s["versions"]
                .as_array()
                .expect("versions")
                .iter()
                .map(|x| json!([x["version"], x["value"], x["enabled"], x["tags"]]))
                .collect();
            out.insert(
                format!("secret {}/{name}", v["name"].as_str().unwrap_or("")),
                (json!([s["deleted"], versions]), None),
            );
        }
    }
    out
}

/// What one trial observed.
#[derive(Default)]
struct Observed {
    violations: BTreeMap<Violation, BTreeSet<Stage>>,
    details: Vec<String>,
    notes: Vec<String>,
    unknown: Option<String>,
}

impl Observed {
    fn violate(&mut self, v: Violation, stage: Stage, detail: String) {
        self.violations.entry(v).or_default().insert(stage);
        if self.details.len() < 12 {
            self.details
                .push(format!("{stage}: {}: {detail}", v.name()));
        }
    }
}

/// The trial's memory between stages.
struct Checker {
    links: Vec<(Link, &'static str)>,
    before: BTreeMap<String, (Value, Option<OffsetDateTime>)>,
    started: OffsetDateTime,
    /// appId → key ids some target held at some observed stage, in the order first seen held,
    /// with their start (in the emulator's current frame: moved back when the tenant is aged).
    /// Order, not start, says which came next: Entra's times have whole seconds.
    held_ever: BTreeMap<String, Vec<(String, OffsetDateTime)>>,
    caps: BTreeMap<String, usize>,
    aged: bool,
    /// Add each stage's lineage (key prefixes, starts, who holds them) to the notes.
    trace: bool,
}

/// The lineages at a glance: `key8 [name suffix] start held-by`, no values.
fn lineage_dump(env: &Env, state: &Value, links: &[(Link, &'static str)]) -> String {
    let mut out = Vec::new();
    for (l, _) in links {
        let held: Vec<(String, Option<String>)> = l
            .targets
            .iter()
            .map(|t| {
                let v = vault_name(env, &t.vault_url);
                let val = latest_enabled(state, &v, &t.secret_name);
                (format!("{v}/{}", t.secret_name), val)
            })
            .collect();
        let pws = app_of(state, &l.application_id)
            .and_then(|a| a["password_credentials"].as_array().cloned())
            .unwrap_or_default();
        for p in &pws {
            let d = p["display_name"].as_str().unwrap_or("");
            if !in_lineage(d, &l.credential_display_name) {
                continue;
            }
            let by: Vec<&str> = held
                .iter()
                .filter(|(_, v)| v.as_deref() == p["secret_text"].as_str())
                .map(|(t, _)| t.as_str())
                .collect();
            out.push(format!(
                "{}{} start {} held by [{}]",
                &p["key_id"].as_str().unwrap_or("")[..8],
                if d.contains(" rotor:") {
                    " (rotor)"
                } else {
                    ""
                },
                p["start"].as_str().unwrap_or("?"),
                by.join(", ")
            ));
        }
    }
    out.join(" | ")
}

impl Checker {
    fn new(env: &Env, links: Vec<(Link, &'static str)>) -> Checker {
        let state = env.state();
        let plain: Vec<Link> = links.iter().map(|(l, _)| l.clone()).collect();
        let mut caps = BTreeMap::new();
        for a in state["applications"].as_array().expect("apps") {
            if a["sign_in_audience"]
                .as_str()
                .unwrap_or("")
                .contains("Personal")
            {
                caps.insert(a["app_id"].as_str().unwrap_or("").to_owned(), 2);
            }
        }
        let mut c = Checker {
            before: outside(&state, &plain),
            links,
            started: OffsetDateTime::now_utc(),
            held_ever: BTreeMap::new(),
            caps,
            aged: false,
            trace: false,
        };
        for (l, key) in &c.links {
            let start = app_of(&state, &l.application_id)
                .and_then(|a| a["password_credentials"].as_array())
                .and_then(|pw| pw.iter().find(|p| p["key_id"] == *key))
                .and_then(|p| parse_time(&p["start"]))
                .expect("the original credential");
            c.held_ever
                .entry(l.application_id.clone())
                .or_default()
                .push(((*key).to_owned(), start));
        }
        c
    }

    /// The tenant was aged by `by`: every recorded time moves back with it.
    fn aged(&mut self, by: Duration) {
        let by = time::Duration::try_from(by).expect("duration");
        self.aged = true;
        self.started -= by;
        for m in self.held_ever.values_mut() {
            for (_, s) in m.iter_mut() {
                *s -= by;
            }
        }
        for (_, end) in self.before.values_mut() {
            if let Some(e) = end {
                *e -= by;
            }
        }
    }

    async fn check(&mut self, env: &Env, stage: Stage, obs: &mut Observed) {
        let state = env.state();
        if self.trace {
            obs.notes.push(format!(
                "{stage}: {}",
                lineage_dump(env, &state, &self.links)
            ));
        }
        let now = OffsetDateTime::now_utc();
        let grace = time::Duration::days(i64::from(policy().grace_period_days));
        let plain: Vec<Link> = self.links.iter().map(|(l, _)| l.clone()).collect();

        // untouched
        let after = outside(&state, &plain);
        for (k, (fp, end)) in &self.before {
            match after.get(k) {
                Some((fp2, _)) if fp2 == fp => {}
                Some(_) => obs.violate(Violation::Untouched, stage, format!("{k} changed")),
                None => {
                    let make_room = k.starts_with("app ")
                        && k.contains(" password ")
                        && end.is_some_and(|e| e < self.started)
                        && plain.iter().any(|l| k.contains(&l.application_id));
                    if !make_room {
                        obs.violate(Violation::Untouched, stage, format!("{k} removed"));
                    }
                }
            }
        }
        for k in after.keys() {
            if !self.before.contains_key(k) {
                obs.violate(Violation::Untouched, stage, format!("{k} appeared"));
            }
        }

        // cap
        for (app, cap) in &self.caps {
            let n = app_of(&state, app)
                .and_then(|a| a["password_credentials"].as_array())
                .map(Vec::len)
                .unwrap_or(0);
            if n > *cap {
                obs.violate(Violation::Cap, stage, format!("{app} has {n} passwords"));
            }
        }

        for (link, original) in &self.links {
            let app_id = &link.application_id;
            let pws: Vec<Value> = app_of(&state, app_id)
                .and_then(|a| a["password_credentials"].as_array().cloned())
                .unwrap_or_default();
            let by_value = |value: &str| {
                pws.iter()
                    .find(|p| p["secret_text"] == value)
                    .map(|p| p["key_id"].as_str().unwrap_or("").to_owned())
            };
            let start_of = |key: &str| {
                pws.iter()
                    .find(|p| p["key_id"] == key)
                    .and_then(|p| parse_time(&p["start"]))
            };
            // login
            let mut values = BTreeSet::new();
            let mut held = BTreeSet::new();
            for t in &link.targets {
                let vault = vault_name(env, &t.vault_url);
                let target = format!("{vault}/{}", t.secret_name);
                let Some(value) = latest_enabled(&state, &vault, &t.secret_name) else {
                    obs.violate(
                        Violation::Login,
                        stage,
                        format!("{target} has no enabled version"),
                    );
                    continue;
                };
                match by_value(&value) {
                    Some(key) => {
                        held.insert(key.clone());
                        if !env.can_login(app_id, &value).await {
                            obs.violate(
                                Violation::Login,
                                stage,
                                format!("{target} holds {} which does not log in", &key[..8]),
                            );
                        }
                    }
                    None => obs.violate(
                        Violation::Login,
                        stage,
                        format!("{target} holds a value that is no credential of {app_id}"),
                    ),
                }
                values.insert(value);
            }
            // agree (a crash may stop between target writes: checked from the recovery on)
            if stage != Stage::Crash && values.len() > 1 {
                obs.violate(
                    Violation::Agree,
                    stage,
                    format!("{link}: targets hold {} different values", values.len()),
                );
            }
            // the newest held credential
            let current = held
                .iter()
                .filter_map(|k| start_of(k).map(|s| (s, k.clone())))
                .max()
                .map(|(s, k)| (k, s));
            // grace: a credential a target held stays until its successor (the next newer
            // credential a target held) started more than the grace period ago
            let ever = self.held_ever.entry(app_id.clone()).or_default();
            let mut newly: Vec<(OffsetDateTime, String)> = held
                .iter()
                .filter(|k| !ever.iter().any(|(e, _)| e == *k))
                .filter_map(|k| start_of(k).map(|s| (s, k.clone())))
                .collect();
            newly.sort();
            ever.extend(newly.into_iter().map(|(s, k)| (k, s)));
            for (i, (k, _)) in ever.iter().enumerate() {
                if start_of(k).is_some() {
                    continue;
                }
                let successor = ever.get(i + 1).map(|(_, s)| *s);
                let early = successor.is_none_or(|s| s > now - grace);
                if early {
                    obs.violate(
                        Violation::Grace,
                        stage,
                        format!(
                            "{} (held by a target earlier) was removed {}",
                            &k[..8],
                            match successor {
                                None => "although no newer credential was ever held".to_owned(),
                                Some(s) => format!(
                                    "{} h after its successor started (grace: {} days)",
                                    (now - s).whole_hours(),
                                    grace.whole_days()
                                ),
                            }
                        ),
                    );
                }
            }
            // not rotated
            if stage == Stage::Aged && held.contains(*original) {
                obs.violate(
                    Violation::NotRotated,
                    stage,
                    format!("{link} still holds {}", &original[..8]),
                );
            }
            // leak
            if stage == Stage::Cleanup {
                for p in &pws {
                    let d = p["display_name"].as_str().unwrap_or("");
                    if !d.contains(" rotor:") || !in_lineage(d, &link.credential_display_name) {
                        continue;
                    }
                    let key = p["key_id"].as_str().unwrap_or("");
                    if held.contains(key) {
                        continue;
                    }
                    let start = parse_time(&p["start"]);
                    let kept_by_grace = match (&current, start) {
                        (Some((_, cur)), Some(s)) => s <= *cur && *cur > now - grace,
                        _ => false,
                    };
                    if !kept_by_grace {
                        obs.violate(
                            Violation::Leak,
                            stage,
                            format!("{} `{d}` is held by no target", &key[..8]),
                        );
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Trials

struct Trial {
    shape: Shape,
    k: usize,
    mode: Mode,
    entry: EntryPoint,
    trace: bool,
}

struct TrialResult {
    shape: Shape,
    k: usize,
    mode: Mode,
    entry: EntryPoint,
    /// The route of request k in this trial's faulted run.
    route: String,
    obs: Observed,
}

/// Runs `fut` until it finishes or, for hanging modes, until the emulator holds a hung request
/// and no new request arrived for [`QUIET`]; then drops it (a killed process).
async fn run_until_blocked<F: std::future::Future<Output = Vec<String>>>(
    env: &Env,
    hangs: bool,
    bound: Duration,
    fut: F,
) -> Result<Vec<String>, &'static str> {
    let watch = async {
        let mut last = (usize::MAX, Instant::now());
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let l = log(env);
            if l.len() != last.0 {
                last = (l.len(), Instant::now());
            }
            if hangs && l.iter().any(|e| e["status"] == "hung") && last.1.elapsed() >= QUIET {
                return;
            }
        }
    };
    tokio::select! {
        r = tokio::time::timeout(bound, fut) => r.map_err(|_| "the faulted run did not finish in its bound"),
        _ = watch => Ok(vec!["stopped".into()]),
    }
}

async fn run_trial(t: Trial, baseline: Arc<BTreeMap<Shape, Vec<String>>>) -> TrialResult {
    let env = start_env(t.shape).await;
    let links = t.shape.links(&env);
    let plain: Vec<Link> = links.iter().map(|(l, _)| l.clone()).collect();
    let mut checker = Checker::new(&env, links.clone());
    checker.trace = t.trace;
    let mut obs = Observed::default();

    env.emu
        .add_fault(t.mode.fault(t.k, &baseline[&t.shape]))
        .expect("fault");
    let e1 = engine(&env);
    // an outage fails the run once its retries are spent (a sign-in's within about 10 s, then
    // held): bounded tighter, so a run that keeps retrying shows as unknown, and fails the matrix
    let bound = match t.mode {
        Mode::Outage | Mode::AppliedOutage => OUTAGE_BOUND,
        _ => CALL_BOUND,
    };
    let first = run_until_blocked(
        &env,
        t.mode.hangs(),
        bound,
        initial_call(&e1, t.shape, &plain),
    )
    .await;
    drop(e1);
    env.emu.clear_faults();
    let trial_log = log(&env);
    let fired_at = |i: usize| trial_log.get(i).map(|e| e["status"].clone());
    let fired = match t.mode {
        Mode::Stop => t.k == baseline[&t.shape].len() || fired_at(t.k) == Some(json!("hung")),
        Mode::AppliedThenTimeout => fired_at(t.k - 1) == Some(json!("hung")),
        Mode::AppliedThenDrop => fired_at(t.k - 1) == Some(json!("dropped")),
        _ => fired_at(t.k - 1) == Some(json!(500)),
    };
    let trial_routes = routes(&env);
    let route = trial_routes.get(t.k - 1).cloned().unwrap_or_default();
    if baseline[&t.shape].get(t.k - 1) != trial_routes.get(t.k - 1) {
        obs.notes.push(format!(
            "request {} was `{route}`, the baseline's `{}`",
            t.k,
            baseline[&t.shape]
                .get(t.k - 1)
                .map(String::as_str)
                .unwrap_or("")
        ));
    }
    if !fired {
        obs.unknown = Some(format!("the fault did not fire at request {}", t.k));
        return result(t, route, obs);
    }
    match first {
        Ok(n) => obs.notes.push(format!("faulted run: {}", n.join("; "))),
        Err(why) => {
            obs.unknown = Some(why.into());
            return result(t, route, obs);
        }
    }
    checker.check(&env, Stage::Crash, &mut obs).await;

    // recovery, by a new process
    let e2 = engine(&env);
    let Ok((notes, _)) =
        tokio::time::timeout(CALL_BOUND, entry_call(&env, &e2, t.shape, t.entry, &links)).await
    else {
        obs.unknown = Some("the recovery did not finish".into());
        return result(t, route, obs);
    };
    obs.notes.push(format!("recovery: {}", notes.join("; ")));
    drop(e2);
    checker.check(&env, Stage::Recover, &mut obs).await;

    // past the pending window and the grace period, a later run of the same entry point
    let days = u64::from(policy().grace_period_days) + 1;
    let by = Duration::from_secs(days * 86_400) + policy().pending_window;
    env.emu.age(by);
    checker.aged(by);
    let e3 = engine(&env);
    let Ok((notes, cleanup_links)) =
        tokio::time::timeout(CALL_BOUND, entry_call(&env, &e3, t.shape, t.entry, &links)).await
    else {
        obs.unknown = Some("the aged run did not finish".into());
        return result(t, route, obs);
    };
    obs.notes.push(format!("aged run: {}", notes.join("; ")));
    checker.check(&env, Stage::Aged, &mut obs).await;
    let p = policy();
    let Ok(outcomes) =
        tokio::time::timeout(CALL_BOUND, e3.cleanup_many(&cleanup_links, &p, false)).await
    else {
        obs.unknown = Some("cleanup did not finish".into());
        return result(t, route, obs);
    };
    for o in outcomes {
        match o {
            Ok(o) => obs
                .notes
                .push(format!("cleanup removed {}", o.removed_key_ids.len())),
            Err(e) => obs.notes.push(format!("cleanup: {e}")),
        }
    }
    checker.check(&env, Stage::Cleanup, &mut obs).await;
    result(t, route, obs)
}

fn result(t: Trial, route: String, obs: Observed) -> TrialResult {
    TrialResult {
        shape: t.shape,
        k: t.k,
        mode: t.mode,
        entry: t.entry,
        route,
        obs,
    }
}

/// A clean run of each shape: its request routes, in order.
async fn baselines(shapes: &[Shape]) -> BTreeMap<Shape, Vec<String>> {
    let mut out = BTreeMap::new();
    for &shape in shapes {
        let mut seen: Option<Vec<String>> = None;
        // twice: the order must be the same from run to run
        for _ in 0..2 {
            let env = start_env(shape).await;
            let links: Vec<Link> = shape.links(&env).into_iter().map(|(l, _)| l).collect();
            let e = engine(&env);
            let r = initial_call(&e, shape, &links).await;
            assert!(
                r.iter().all(|s| s == "success"),
                "{}: the clean run succeeds: {r:?}",
                shape.name()
            );
            let got = routes(&env);
            if let Some(prev) = &seen
                && prev != &got
            {
                // The engine interleaves some requests (e.g. a target's read-back and the next
                // target's write) in no fixed order: k still counts requests, but may name a
                // different one; such trials say so in their notes (and an outage, which targets
                // k's route, is `unknown` when it misses).
                println!(
                    "note: {}: two clean runs sent their requests in different orders",
                    shape.name()
                );
            }
            seen = Some(got);
        }
        out.insert(shape, seen.expect("a run"));
    }
    out
}

async fn matrix(
    shapes: &[Shape],
    modes: &[Mode],
    entries: &[EntryPoint],
    parallel: usize,
) -> Vec<TrialResult> {
    let started = Instant::now();
    let baseline = Arc::new(baselines(shapes).await);
    for s in shapes {
        println!("baseline {}: {} requests", s.name(), baseline[s].len());
        for (i, r) in baseline[s].iter().enumerate() {
            println!("  {:>2} {r}", i + 1);
        }
    }
    let mut trials = Vec::new();
    for &shape in shapes {
        for k in 1..=baseline[&shape].len() {
            for &mode in modes {
                for &entry in entries {
                    trials.push(Trial {
                        shape,
                        k,
                        mode,
                        entry,
                        trace: false,
                    });
                }
            }
        }
    }
    let total = trials.len();
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut handles = Vec::new();
    for t in trials {
        let sem = sem.clone();
        let b = baseline.clone();
        handles.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await.expect("semaphore");
            run_trial(t, b).await
        }));
    }
    let mut results = Vec::new();
    for h in handles {
        match h.await {
            Ok(r) => results.push(r),
            Err(e) => println!("a trial panicked: {e}"),
        }
    }
    println!(
        "{} trials ({} planned) in {:.1} s",
        results.len(),
        total,
        started.elapsed().as_secs_f64()
    );
    print_table(&results, shapes);
    results
}

fn print_table(results: &[TrialResult], shapes: &[Shape]) {
    let mut header = format!(
        "{:<16} {:>6} {:>9} {:>7}",
        "shape", "trials", "converged", "unknown"
    );
    for v in Violation::ALL {
        header.push_str(&format!(" {:>11}", v.name()));
    }
    println!("\n{header}");
    for &s in shapes {
        let mine: Vec<&TrialResult> = results.iter().filter(|r| r.shape == s).collect();
        let unknown = mine.iter().filter(|r| r.obs.unknown.is_some()).count();
        let converged = mine
            .iter()
            .filter(|r| r.obs.unknown.is_none() && r.obs.violations.is_empty())
            .count();
        let mut line = format!(
            "{:<16} {:>6} {:>9} {:>7}",
            s.name(),
            mine.len(),
            converged,
            unknown
        );
        for v in Violation::ALL {
            let n = mine
                .iter()
                .filter(|r| r.obs.violations.contains_key(&v))
                .count();
            line.push_str(&format!(" {n:>11}"));
        }
        println!("{line}");
    }
    println!(
        "(a trial with several violation kinds counts in each column; unknown = not observed to the end)\n"
    );
    // every violating case, grouped by (shape, k, mode) with the entry points it fails through
    let mut groups: BTreeMap<(Shape, usize, Mode), Vec<&TrialResult>> = BTreeMap::new();
    for r in results {
        if !r.obs.violations.is_empty() || r.obs.unknown.is_some() {
            groups.entry((r.shape, r.k, r.mode)).or_default().push(r);
        }
    }
    println!("violating or unknown cases:");
    for ((shape, k, mode), rs) in &groups {
        println!(
            "- {} k={k} ({}) {}:",
            shape.name(),
            rs[0].route,
            mode.name()
        );
        for r in rs {
            if let Some(u) = &r.obs.unknown {
                println!("    {:<16} unknown: {u}", r.entry.name());
                continue;
            }
            let kinds: Vec<String> = r
                .obs
                .violations
                .iter()
                .map(|(v, stages)| {
                    let s: Vec<String> = stages.iter().map(|s| s.to_string()).collect();
                    format!("{}@{}", v.name(), s.join(","))
                })
                .collect();
            println!("    {:<16} {}", r.entry.name(), kinds.join(" "));
            for d in &r.obs.details {
                println!("        {d}");
            }
            for n in &r.obs.notes {
                println!("        · {n}");
            }
        }
    }
}

/// Every k of the 1- and 3-target shapes, modes `fail` and `applied-then-500`, every entry point.
/// Prints the table; fails when any trial violates an invariant or was not observed to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_subset() {
    let results = matrix(
        &[Shape::One, Shape::Three],
        &[Mode::Fail, Mode::AppliedThen500],
        &EntryPoint::ALL,
        8,
    )
    .await;
    let bad: Vec<String> = results
        .iter()
        .filter(|r| !r.obs.violations.is_empty() || r.obs.unknown.is_some())
        .map(|r| {
            format!(
                "{} k={} {} {}",
                r.shape.name(),
                r.k,
                r.mode.name(),
                r.entry.name()
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{} trial(s) violate an invariant or were not observed to the end (table above): {bad:#?}",
        bad.len()
    );
}

/// The whole matrix: every shape, every k, every mode, every entry point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the full crash matrix takes minutes: cargo test -p rotor-engine --test crash_matrix -- --ignored --nocapture"]
async fn crash_matrix_full() {
    // CRASH_MATRIX_SHAPE="2 targets, concurrent" runs one shape only
    let only = std::env::var("CRASH_MATRIX_SHAPE").ok();
    let shapes: Vec<Shape> = Shape::ALL
        .into_iter()
        .filter(|s| only.as_deref().is_none_or(|o| o == s.name()))
        .collect();
    assert!(!shapes.is_empty(), "no shape is named {only:?}");
    let results = matrix(&shapes, &Mode::ALL, &EntryPoint::ALL, 8).await;
    let violating = results
        .iter()
        .filter(|r| !r.obs.violations.is_empty())
        .count();
    assert_eq!(
        violating, 0,
        "{violating} trial(s) violate an invariant (table above)"
    );
    // An outcome not observed to the end is unknown, never a failure — but it is expected only
    // in the concurrent shape, from a k its run did not reach (its request count varies with
    // Graph's read lag); anywhere else it means the harness lost track or a run kept retrying
    // past its bound (as a token endpoint outage did before sign-in failures were held), which
    // fails the matrix.
    let unexpected: Vec<String> = results
        .iter()
        .filter(|r| {
            r.obs.unknown.is_some()
                && !(r.shape == Shape::Concurrent
                    && r.obs
                        .unknown
                        .as_deref()
                        .is_some_and(|u| u.starts_with("the fault did not fire")))
        })
        .map(|r| format!("{:?} k={} {:?} {:?}", r.shape, r.k, r.mode, r.entry))
        .collect();
    assert!(
        unexpected.is_empty(),
        "unknown outside the concurrent shape's unreached requests: {unexpected:?}"
    );
}

/// Prints each shape's clean run (the requests the matrix enumerates).
#[tokio::test]
#[ignore = "prints the baselines: cargo test -p rotor-engine --test crash_matrix baselines -- --ignored --nocapture"]
async fn crash_matrix_baselines() {
    let b = baselines(&Shape::ALL).await;
    for (s, routes) in &b {
        println!("baseline {}: {} requests", s.name(), routes.len());
        for (i, r) in routes.iter().enumerate() {
            println!("  {:>2} {r}", i + 1);
        }
    }
}

/// One trial with each stage's lineage in the notes: `CRASH_MATRIX_CASE="3 targets,27,fail,same
/// call" cargo test -p rotor-engine --test crash_matrix one_case -- --ignored --nocapture` (names
/// as the table prints them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "one traced trial, chosen with CRASH_MATRIX_CASE"]
async fn crash_matrix_one_case() {
    let Ok(case) = std::env::var("CRASH_MATRIX_CASE") else {
        println!(
            "crash_matrix_one_case: set CRASH_MATRIX_CASE=shape,k,mode,entry to trace one trial"
        );
        return;
    };
    let parts: Vec<&str> = case.split(',').map(str::trim).collect();
    let [shape, k, mode, entry] = parts[..] else {
        panic!("CRASH_MATRIX_CASE=shape,k,mode,entry, got {case}");
    };
    let shape = *Shape::ALL
        .iter()
        .find(|s| s.name() == shape)
        .expect("shape");
    let mode = *Mode::ALL.iter().find(|m| m.name() == mode).expect("mode");
    let entry = *EntryPoint::ALL
        .iter()
        .find(|e| e.name() == entry)
        .expect("entry");
    let k: usize = k.parse().expect("k");
    let baseline = Arc::new(baselines(&[shape]).await);
    let r = run_trial(
        Trial {
            shape,
            k,
            mode,
            entry,
            trace: true,
        },
        baseline,
    )
    .await;
    println!("request {k}: {}", r.route);
    for d in &r.obs.details {
        println!("  {d}");
    }
    for n in &r.obs.notes {
        println!("  · {n}");
    }
    print_table(&[r], &[shape]);
}
