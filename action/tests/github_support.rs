//! Shared by the `github_*` tests (included with `#[path]`): a fake GitHub REST API on loopback
//! with a GitHub Enterprise Server style `/api/v3` base, and a simulated runner (temporary
//! `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`, `GITHUB_EVENT_PATH`) for running the real `rotor`
//! binary as a child process. Nothing here touches the test process's environment.
//!
//! The fake is stateful — issue comments, git refs, file contents, pull requests — and can inject
//! faults (a status with headers, e.g. 403 or a secondary rate limit with `retry-after`) for the
//! next N requests matching a method and path prefix. Every request is logged.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

/// The token the fake accepts; it acts as `github-actions[bot]` (like `GITHUB_TOKEN`).
pub const TOKEN: &str = "ghs_faketoken0123456789";
/// A second installation token, of another GitHub App: it acts as [`APP_LOGIN`].
pub const APP_TOKEN: &str = "ghs_otherapptoken987654321";
/// The login [`APP_TOKEN`] acts as.
pub const APP_LOGIN: &str = "rotor-app[bot]";
/// The login [`TOKEN`] acts as.
pub const ACTIONS_LOGIN: &str = "github-actions[bot]";

/// The first line of rotor's dashboard issue.
pub const DASHBOARD_MARKER: &str = "<!-- rotor-dashboard -->";
/// The repository the fake serves.
pub const REPO: &str = "Codertocat/Hello-World";
/// The runner's OIDC request token (`ACTIONS_ID_TOKEN_REQUEST_TOKEN`).
pub const OIDC_REQUEST_TOKEN: &str = "oidc-request-token-5f0e9c1d7a";
/// The subject GitHub puts in the OIDC token (matches the sample tenant's federated credential).
pub const OIDC_SUBJECT: &str = "repo:certifyclouds/rotor:ref:refs/heads/main";
/// The comment length GitHub accepts.
pub const MAX_BODY: usize = 65_536;

#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    pub issue: u64,
    pub body: String,
    pub login: String,
    pub user_type: String,
    /// Hidden by `minimizeComment`, with its classifier.
    pub minimized: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub state: String,
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Method,
    pub path_prefix: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub message: String,
    pub remaining: usize,
    /// Process the request, then answer with the fault anyway (the outcome looks unknown).
    pub after_apply: bool,
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub body: String,
    /// Every `User-Agent` header value the request carried.
    pub user_agents: Vec<String>,
}

#[derive(Debug, Default)]
pub struct State {
    pub comments: Vec<Comment>,
    pub next_id: u64,
    /// branch -> commit sha
    pub refs: BTreeMap<String, String>,
    /// (branch, path) -> (content, blob sha)
    pub files: BTreeMap<(String, String), (String, String)>,
    pub commits: Vec<(String, String, String)>, // (branch, path, message)
    pub pulls: Vec<Pull>,
    pub faults: Vec<Fault>,
    pub log: Vec<Logged>,
    /// Page size for comment listings (small, so pagination is exercised).
    pub page_size: usize,
    /// issue number -> label names
    pub labels: BTreeMap<u64, Vec<String>>,
    /// Issues (not pull requests), numbered from 300.
    pub issues: Vec<FakeIssue>,
    /// login -> repository permission (`admin`, `write`, `read`, …); absent: not a collaborator.
    pub permissions: BTreeMap<String, String>,
    /// The key the runner's OIDC service signs with: GitHub's issuer as the emulator plays it
    /// ([`FakeGitHub::set_oidc_signer`]); absent: the OIDC service answers 500.
    pub oidc_signer: Option<rotor_emulator::OidcSigner>,
}

#[derive(Debug, Clone)]
pub struct FakeIssue {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub login: String,
    pub user_type: String,
    pub state: String,
}

fn issue_json(i: &FakeIssue, addr: SocketAddr) -> Value {
    json!({
        "number": i.number,
        "title": i.title,
        "body": i.body,
        "state": i.state,
        "user": {"login": i.login, "type": i.user_type},
        "html_url": format!("http://{addr}/{REPO}/issues/{}", i.number),
    })
}

#[derive(Clone)]
pub struct FakeGitHub {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
}

impl FakeGitHub {
    /// The key the runner's OIDC service signs with (GitHub's issuer, as the emulator plays it:
    /// `emu.oidc_signer("https://token.actions.githubusercontent.com")`).
    pub fn set_oidc_signer(&self, signer: rotor_emulator::OidcSigner) {
        self.state.lock().expect("lock").oidc_signer = Some(signer);
    }

    /// Starts the fake on 127.0.0.1 (a random port) with branch `main` and a few comments
    /// by people on pull request 2 (one of them quoting rotor's marker).
    pub async fn start() -> FakeGitHub {
        let mut st = State {
            next_id: 1000,
            page_size: 2,
            ..State::default()
        };
        st.refs.insert(
            "main".into(),
            "0000000000000000000000000000000000000001".into(),
        );
        for (i, body) in [
            "Looks good to me",
            "> <!-- rotor-report: action -->\n> quoting the bot",
            "Another human comment",
        ]
        .iter()
        .enumerate()
        {
            st.comments.push(Comment {
                id: 10 + i as u64,
                issue: 2,
                body: (*body).to_string(),
                login: "Codertocat".into(),
                user_type: "User".into(),
                minimized: None,
            });
        }
        let state = Arc::new(Mutex::new(st));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let s2 = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = s2.clone();
                async move { handle(state, addr, method, uri, headers, body) }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitHub { addr, state }
    }

    /// `http://127.0.0.1:PORT/api/v3` (what `GITHUB_API_URL` is on GitHub Enterprise Server).
    pub fn api_url(&self) -> String {
        format!("http://{}/api/v3", self.addr)
    }

    pub fn inject(
        &self,
        method: Method,
        path_prefix: &str,
        status: u16,
        headers: &[(&str, &str)],
        message: &str,
        count: usize,
    ) {
        self.state.lock().expect("lock").faults.push(Fault {
            method,
            path_prefix: path_prefix.to_string(),
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            message: message.to_string(),
            remaining: count,
            after_apply: false,
        });
    }

    /// Like [`FakeGitHub::inject`], but the request is processed before the fault is answered
    /// (a comment is created, then the client sees a 502).
    pub fn inject_after_apply(&self, method: Method, path_prefix: &str, status: u16, count: usize) {
        self.state.lock().expect("lock").faults.push(Fault {
            method,
            path_prefix: path_prefix.to_string(),
            status,
            headers: Vec::new(),
            message: "Server Error".to_string(),
            remaining: count,
            after_apply: true,
        });
    }

    /// Adds an issue by `login` (a `User`); returns its number.
    pub fn seed_issue(&self, login: &str, title: &str, body: &str) -> u64 {
        let mut st = self.state.lock().expect("lock");
        let number = 300 + st.issues.len() as u64;
        st.issues.push(FakeIssue {
            number,
            title: title.into(),
            body: body.into(),
            login: login.into(),
            user_type: if login.ends_with("[bot]") {
                "Bot"
            } else {
                "User"
            }
            .into(),
            state: "open".into(),
        });
        number
    }

    /// The issues.
    pub fn issues(&self) -> Vec<FakeIssue> {
        self.state.lock().expect("lock").issues.clone()
    }

    /// The one dashboard issue (its body starts with [`DASHBOARD_MARKER`] and rotor's Actions
    /// identity opened it); panics unless there is exactly one.
    pub fn dashboard_issue(&self) -> FakeIssue {
        let issues: Vec<_> = self
            .issues()
            .into_iter()
            .filter(|i| i.body.starts_with(DASHBOARD_MARKER) && i.login == ACTIONS_LOGIN)
            .collect();
        assert_eq!(issues.len(), 1, "exactly one dashboard issue: {issues:#?}");
        issues.into_iter().next().expect("one")
    }

    /// Sets an issue's body as a person editing it would (ticking a box).
    pub fn edit_issue_body(&self, number: u64, body: &str) {
        let mut st = self.state.lock().expect("lock");
        if let Some(i) = st.issues.iter_mut().find(|i| i.number == number) {
            i.body = body.into();
        }
    }

    /// Gives `login` a repository permission.
    pub fn set_permission(&self, login: &str, permission: &str) {
        self.state
            .lock()
            .expect("lock")
            .permissions
            .insert(login.into(), permission.into());
    }

    /// Adds a comment as the `github-actions[bot]` (a copy left by a concurrent run).
    pub fn seed_bot_comment(&self, issue: u64, body: &str) -> u64 {
        let mut st = self.state.lock().expect("lock");
        st.next_id += 1;
        let id = st.next_id;
        st.comments.push(Comment {
            id,
            issue,
            body: body.to_string(),
            login: ACTIONS_LOGIN.into(),
            user_type: "Bot".into(),
            minimized: None,
        });
        id
    }

    /// Adds a comment by a person (`login`, type `User`).
    pub fn seed_user_comment(&self, issue: u64, login: &str, body: &str) -> u64 {
        let mut st = self.state.lock().expect("lock");
        st.next_id += 1;
        let id = st.next_id;
        st.comments.push(Comment {
            id,
            issue,
            body: body.to_string(),
            login: login.into(),
            user_type: "User".into(),
            minimized: None,
        });
        id
    }

    pub fn comments_on(&self, issue: u64) -> Vec<Comment> {
        self.state
            .lock()
            .expect("lock")
            .comments
            .iter()
            .filter(|c| c.issue == issue)
            .cloned()
            .collect()
    }

    pub fn bot_comments_on(&self, issue: u64) -> Vec<Comment> {
        self.comments_on(issue)
            .into_iter()
            .filter(|c| c.user_type == "Bot")
            .collect()
    }

    pub fn labels_on(&self, issue: u64) -> Vec<String> {
        self.state
            .lock()
            .expect("lock")
            .labels
            .get(&issue)
            .cloned()
            .unwrap_or_default()
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().expect("lock").log.clone()
    }

    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.log()
            .iter()
            .filter(|l| l.method == method && l.path.starts_with(path_prefix))
            .count()
    }

    pub fn pulls(&self) -> Vec<Pull> {
        self.state.lock().expect("lock").pulls.clone()
    }

    /// Puts `content` at `path` on `branch` (as if committed earlier).
    pub fn seed_file(&self, branch: &str, path: &str, content: &str) {
        let mut st = self.state.lock().expect("lock");
        let sha = blob_sha(content);
        st.files.insert(
            (branch.to_string(), path.to_string()),
            (content.to_string(), sha),
        );
    }

    /// Merges pull request `number` the way a squash merge looks to rotor: the default branch
    /// gets the head branch's files and a new head commit; the pull request is closed.
    pub fn merge_pull(&self, number: u64) {
        let mut st = self.state.lock().expect("lock");
        let Some(i) = st.pulls.iter().position(|p| p.number == number) else {
            panic!("no pull request #{number}");
        };
        let (head, base) = (st.pulls[i].head.clone(), st.pulls[i].base.clone());
        st.pulls[i].state = "closed".into();
        let files: Vec<((String, String), (String, String))> = st
            .files
            .iter()
            .filter(|((b, _), _)| *b == head)
            .map(|((_, p), v)| ((base.clone(), p.clone()), v.clone()))
            .collect();
        st.files.extend(files);
        let merge_sha = format!("{:040x}", 9_000_000 + number);
        st.refs.insert(base, merge_sha);
    }

    pub fn file(&self, branch: &str, path: &str) -> Option<String> {
        self.state
            .lock()
            .expect("lock")
            .files
            .get(&(branch.to_string(), path.to_string()))
            .map(|(c, _)| c.clone())
    }

    /// Everything the fake received or stored that rotor wrote: comment bodies, pull request
    /// bodies and titles, file contents, commit messages, request bodies.
    pub fn everything_written(&self) -> String {
        let st = self.state.lock().expect("lock");
        let mut out = String::new();
        for c in &st.comments {
            out.push_str(&c.body);
            out.push('\n');
        }
        for p in &st.pulls {
            out.push_str(&p.title);
            out.push_str(&p.body);
            out.push('\n');
        }
        for ((_, _), (content, _)) in &st.files {
            out.push_str(content);
        }
        for i in &st.issues {
            out.push_str(&i.title);
            out.push_str(&i.body);
            out.push('\n');
        }
        for (_, _, m) in &st.commits {
            out.push_str(m);
        }
        for l in &st.log {
            out.push_str(&l.body);
            out.push('\n');
        }
        out
    }
}

fn json_response(status: u16, headers: &[(String, String)], body: Value) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response();
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

fn err(status: u16, message: &str) -> Response {
    json_response(
        status,
        &[],
        json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
    )
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.replace("%3A", ":").replace("%2F", "/"))
        })
        .collect()
}

fn comment_json(c: &Comment, addr: SocketAddr) -> Value {
    json!({
        "id": c.id,
        "node_id": node_id(c.id),
        "body": c.body,
        "user": {"login": c.login, "type": c.user_type},
        "html_url": format!("http://{addr}/{REPO}/pull/{}#issuecomment-{}", c.issue, c.id),
    })
}

fn pull_json(p: &Pull, addr: SocketAddr) -> Value {
    json!({
        "number": p.number,
        "title": p.title,
        "body": p.body,
        "state": p.state,
        "head": {"ref": p.head, "label": format!("Codertocat:{}", p.head)},
        "base": {"ref": p.base},
        "html_url": format!("http://{addr}/{REPO}/pull/{}", p.number),
    })
}

fn blob_sha(content: &str) -> String {
    format!(
        "{:040x}",
        content.len() as u128 * 7919 + content.bytes().map(u128::from).sum::<u128>()
    )
}

fn handle(
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let body_text = String::from_utf8_lossy(&body).into_owned();
    let mut st = state.lock().expect("lock");
    let resp = route(&mut st, addr, &method, &uri, &headers, &body_text);
    st.log.push(Logged {
        method: method.to_string(),
        path: format!(
            "{path}{}",
            uri.query().map(|q| format!("?{q}")).unwrap_or_default()
        ),
        status: resp.status().as_u16(),
        body: body_text,
        user_agents: headers
            .get_all("user-agent")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect(),
    });
    resp
}

/// The login a token acts as.
fn login_of(headers: &HeaderMap) -> Option<&'static str> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("token "))?;
    match token {
        TOKEN => Some(ACTIONS_LOGIN),
        APP_TOKEN => Some(APP_LOGIN),
        _ => None,
    }
}

/// GitHub Enterprise Server's GraphQL endpoint (`/api/graphql`): `viewer { login }` and
/// `minimizeComment`.
fn graphql(st: &mut State, login: &str, body: &str) -> Response {
    let input: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let query = input["query"].as_str().unwrap_or("");
    if query.contains("viewer") {
        // GitHub answers an installation token's viewer with its bot (`github-actions[bot]`).
        return json_response(200, &[], json!({"data": {"viewer": {"login": login}}}));
    }
    if query.contains("minimizeComment") {
        let id = input["variables"]["id"].as_str().unwrap_or("");
        let Some(c) = st.comments.iter_mut().find(|c| node_id(c.id) == id) else {
            return json_response(
                200,
                &[],
                json!({"data": null, "errors": [{"type": "NOT_FOUND", "message": format!("Could not resolve to a node with the global id of '{id}'")}]}),
            );
        };
        if c.login != login {
            return json_response(
                200,
                &[],
                json!({"data": null, "errors": [{"type": "FORBIDDEN", "message": "Resource not accessible by integration"}]}),
            );
        }
        let classifier = if query.contains("OUTDATED") {
            "OUTDATED"
        } else {
            "OTHER"
        };
        c.minimized = Some(classifier.into());
        return json_response(
            200,
            &[],
            json!({"data": {"minimizeComment": {"minimizedComment": {"isMinimized": true}}}}),
        );
    }
    json_response(
        200,
        &[],
        json!({"errors": [{"message": "fake GitHub: this GraphQL query is not modelled"}]}),
    )
}

pub fn node_id(id: u64) -> String {
    format!("IC_kwDOfake{id}")
}

fn route(
    st: &mut State,
    addr: SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &str,
) -> Response {
    if uri.path() == "/_oidc/token" {
        return oidc_token(uri, headers, st.oidc_signer.as_ref());
    }
    if uri.path() == "/api/graphql" {
        let Some(login) = login_of(headers) else {
            return err(401, "Bad credentials");
        };
        if let Some(i) = st
            .faults
            .iter()
            .position(|f| f.method == *method && f.path_prefix == "/graphql" && f.remaining > 0)
        {
            st.faults[i].remaining -= 1;
            let (status, msg) = (st.faults[i].status, st.faults[i].message.clone());
            return json_response(status, &[], json!({"message": msg}));
        }
        return graphql(st, login, body);
    }
    let Some(path) = uri.path().strip_prefix("/api/v3") else {
        return err(404, "Not Found (the fake serves only /api/v3)");
    };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let _ = auth;
    let Some(login) = login_of(headers) else {
        return err(401, "Bad credentials");
    };
    if let Some(i) = st
        .faults
        .iter()
        .position(|f| f.method == *method && path.starts_with(&f.path_prefix) && f.remaining > 0)
    {
        let f = &mut st.faults[i];
        f.remaining -= 1;
        let (status, hdrs, msg) = (f.status, f.headers.clone(), f.message.clone());
        if f.after_apply {
            let _ = route_repo(st, addr, method, uri, headers, path, body, login);
        }
        return json_response(status, &hdrs, json!({"message": msg}));
    }
    route_repo(st, addr, method, uri, headers, path, body, login)
}

#[allow(clippy::too_many_arguments)]
fn route_repo(
    st: &mut State,
    addr: SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    path: &str,
    body: &str,
    login: &str,
) -> Response {
    if path == "/user" {
        return err(403, "Resource not accessible by integration");
    }
    let repo_prefix = format!("/repos/{REPO}");
    let Some(rest) = path.strip_prefix(&repo_prefix) else {
        return err(404, "Not Found");
    };
    let seg: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let input: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let q = query(uri);
    let b64 = base64::engine::general_purpose::STANDARD;
    match (method.as_str(), seg.as_slice()) {
        ("GET", [""]) => json_response(
            200,
            &[],
            json!({"full_name": REPO, "default_branch": "main", "private": false}),
        ),
        ("GET", ["issues", n, "comments"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let per_page = q
                .get("per_page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(30usize)
                .min(st.page_size);
            let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let all: Vec<&Comment> = st.comments.iter().filter(|c| c.issue == n).collect();
            let items: Vec<Value> = all
                .iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .map(|c| comment_json(c, addr))
                .collect();
            let mut hdrs = Vec::new();
            if page * per_page < all.len() {
                hdrs.push((
                    "link".to_string(),
                    format!(
                        "<http://{addr}/api/v3{repo_prefix}/issues/{n}/comments?per_page={per_page}&page={}>; rel=\"next\"",
                        page + 1
                    ),
                ));
            }
            json_response(200, &hdrs, Value::Array(items))
        }
        ("GET", ["issues"]) => {
            let creator = q
                .get("creator")
                .map(|c| c.replace("%5B", "[").replace("%5D", "]"));
            let open_only = q.get("state").is_none_or(|s| s == "open");
            let items: Vec<Value> = st
                .issues
                .iter()
                .filter(|i| !open_only || i.state == "open")
                .filter(|i| creator.as_ref().is_none_or(|c| *c == i.login))
                .map(|i| issue_json(i, addr))
                .collect();
            json_response(200, &[], Value::Array(items))
        }
        ("POST", ["issues"]) => {
            let body = input
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if body.chars().count() > MAX_BODY {
                return err(
                    422,
                    "Validation Failed: Body is too long (maximum is 65536 characters)",
                );
            }
            let number = 300 + st.issues.len() as u64;
            let i = FakeIssue {
                number,
                title: input
                    .get("title")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                body,
                login: login.into(),
                user_type: "Bot".into(),
                state: "open".into(),
            };
            let v = issue_json(&i, addr);
            st.issues.push(i);
            json_response(201, &[], v)
        }
        ("GET", ["issues", n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            match st.issues.iter().find(|i| i.number == n) {
                Some(i) => json_response(200, &[], issue_json(i, addr)),
                None => err(404, "Not Found"),
            }
        }
        ("PATCH", ["issues", n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            if let Some(b) = input.get("body").and_then(Value::as_str)
                && b.chars().count() > MAX_BODY
            {
                return err(
                    422,
                    "Validation Failed: Body is too long (maximum is 65536 characters)",
                );
            }
            match st.issues.iter_mut().find(|i| i.number == n) {
                Some(i) => {
                    if let Some(b) = input.get("body").and_then(Value::as_str) {
                        i.body = b.to_string();
                    }
                    if let Some(t) = input.get("title").and_then(Value::as_str) {
                        i.title = t.to_string();
                    }
                    let v = issue_json(i, addr);
                    json_response(200, &[], v)
                }
                None => err(404, "Not Found"),
            }
        }
        ("GET", ["collaborators", user, "permission"]) => {
            let user = user.replace("%5B", "[").replace("%5D", "]");
            match st.permissions.get(&user) {
                Some(p) => {
                    let legacy = if p == "maintain" {
                        "write"
                    } else if p == "triage" {
                        "read"
                    } else {
                        p.as_str()
                    };
                    json_response(
                        200,
                        &[],
                        json!({"permission": legacy, "role_name": p, "user": {"login": user}}),
                    )
                }
                None => err(404, "Not Found"),
            }
        }
        ("GET", ["issues", n, "labels"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let items: Vec<Value> = st
                .labels
                .get(&n)
                .into_iter()
                .flatten()
                .map(|l| json!({"name": l, "color": "ededed"}))
                .collect();
            json_response(200, &[], Value::Array(items))
        }
        ("POST", ["issues", n, "labels"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let Some(new) = input.get("labels").and_then(Value::as_array) else {
                return err(422, "labels is missing");
            };
            let list = st.labels.entry(n).or_default();
            for l in new.iter().filter_map(Value::as_str) {
                if !list.iter().any(|x| x == l) {
                    list.push(l.to_string());
                }
            }
            let items: Vec<Value> = list.iter().map(|l| json!({"name": l})).collect();
            json_response(200, &[], Value::Array(items))
        }
        ("DELETE", ["issues", n, "labels", name]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let name = name.replace("%3A", ":").replace("%3a", ":");
            let list = st.labels.entry(n).or_default();
            match list.iter().position(|l| *l == name) {
                Some(i) => {
                    list.remove(i);
                    let items: Vec<Value> = list.iter().map(|l| json!({"name": l})).collect();
                    json_response(200, &[], Value::Array(items))
                }
                None => err(404, "Label does not exist"),
            }
        }
        ("POST", ["issues", n, "comments"]) => {
            let Some(text) = input.get("body").and_then(Value::as_str) else {
                return err(422, "body is missing");
            };
            if text.chars().count() > MAX_BODY {
                return err(
                    422,
                    "Validation Failed: Body is too long (maximum is 65536 characters)",
                );
            }
            st.next_id += 1;
            let c = Comment {
                id: st.next_id,
                issue: n.parse().unwrap_or(0),
                body: text.to_string(),
                login: login.into(),
                user_type: "Bot".into(),
                minimized: None,
            };
            let v = comment_json(&c, addr);
            st.comments.push(c);
            json_response(201, &[], v)
        }
        ("PATCH" | "POST", ["issues", "comments", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let Some(text) = input.get("body").and_then(Value::as_str) else {
                return err(422, "body is missing");
            };
            if text.chars().count() > MAX_BODY {
                return err(
                    422,
                    "Validation Failed: Body is too long (maximum is 65536 characters)",
                );
            }
            match st.comments.iter_mut().find(|c| c.id == id) {
                Some(c) if c.login == login => {
                    c.body = text.to_string();
                    let v = comment_json(c, addr);
                    json_response(200, &[], v)
                }
                Some(_) => err(403, "Resource not accessible by integration"),
                None => err(404, "Not Found"),
            }
        }
        ("DELETE", ["issues", "comments", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            match st.comments.iter().position(|c| c.id == id) {
                Some(i) if st.comments[i].login == login => {
                    st.comments.remove(i);
                    (StatusCode::NO_CONTENT, "").into_response()
                }
                Some(_) => err(403, "Resource not accessible by integration"),
                None => err(404, "Not Found"),
            }
        }
        ("GET", ["git", "ref", "heads", branch @ ..]) => {
            let branch = branch.join("/");
            match st.refs.get(&branch) {
                Some(sha) => json_response(
                    200,
                    &[],
                    json!({"ref": format!("refs/heads/{branch}"), "object": {"sha": sha, "type": "commit"}}),
                ),
                None => err(404, "Not Found"),
            }
        }
        ("PATCH", ["git", "refs", "heads", branch @ ..]) => {
            let branch = branch.join("/");
            let sha = input
                .get("sha")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if !st.refs.contains_key(&branch) {
                return err(422, "Reference does not exist");
            }
            if input.get("force").and_then(Value::as_bool) != Some(true) {
                return err(422, "Update is not a fast forward");
            }
            // The branch now has the tree of the branch whose head is `sha`.
            let Some(source) = st
                .refs
                .iter()
                .find(|(_, s)| **s == sha)
                .map(|(b, _)| b.clone())
            else {
                return err(422, "Object does not exist");
            };
            let files: Vec<((String, String), (String, String))> = st
                .files
                .iter()
                .filter(|((b, _), _)| *b == source)
                .map(|((_, p), v)| ((branch.clone(), p.clone()), v.clone()))
                .collect();
            st.files.retain(|(b, _), _| *b != branch);
            st.files.extend(files);
            st.refs.insert(branch.clone(), sha.clone());
            json_response(
                200,
                &[],
                json!({"ref": format!("refs/heads/{branch}"), "object": {"sha": sha}}),
            )
        }
        ("POST", ["git", "refs"]) => {
            let r = input.get("ref").and_then(Value::as_str).unwrap_or("");
            let sha = input.get("sha").and_then(Value::as_str).unwrap_or("");
            let Some(branch) = r.strip_prefix("refs/heads/") else {
                return err(422, "Reference name is invalid");
            };
            if st.refs.contains_key(branch) {
                return err(422, "Reference already exists");
            }
            let Some(source) = st
                .refs
                .iter()
                .find(|(_, s)| *s == sha)
                .map(|(b, _)| b.clone())
            else {
                return err(422, "Object does not exist");
            };
            // The new branch has the tree of the commit it points at.
            let files: Vec<((String, String), (String, String))> = st
                .files
                .iter()
                .filter(|((b, _), _)| *b == source)
                .map(|((_, p), v)| ((branch.to_string(), p.clone()), v.clone()))
                .collect();
            st.files.extend(files);
            st.refs.insert(branch.to_string(), sha.to_string());
            json_response(201, &[], json!({"ref": r, "object": {"sha": sha}}))
        }
        ("GET", ["contents", p @ ..]) => {
            let p = p.join("/").replace("%20", " ");
            let branch = q.get("ref").cloned().unwrap_or_else(|| "main".into());
            let raw = headers
                .get("accept")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("vnd.github.raw"));
            match st.files.get(&(branch, p.clone())) {
                Some((content, _)) if raw => (StatusCode::OK, content.clone()).into_response(),
                // Like GitHub: over 1 MB the JSON carries no content.
                Some((content, sha)) if content.len() > 1024 * 1024 => json_response(
                    200,
                    &[],
                    json!({"type": "file", "path": p, "sha": sha, "size": content.len(), "encoding": "none", "content": ""}),
                ),
                Some((content, sha)) => {
                    // GitHub wraps base64 at 60 characters.
                    let enc = b64.encode(content.as_bytes());
                    let wrapped: Vec<String> = enc
                        .as_bytes()
                        .chunks(60)
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect();
                    json_response(
                        200,
                        &[],
                        json!({"type": "file", "path": p, "sha": sha, "encoding": "base64", "content": wrapped.join("\n")}),
                    )
                }
                None => err(404, "Not Found"),
            }
        }
        ("PUT", ["contents", p @ ..]) => {
            let p = p.join("/").replace("%20", " ");
            let branch = input
                .get("branch")
                .and_then(Value::as_str)
                .unwrap_or("main")
                .to_string();
            if !st.refs.contains_key(&branch) {
                return err(404, "Branch not found");
            }
            let given_sha = input.get("sha").and_then(Value::as_str);
            let existing = st
                .files
                .get(&(branch.clone(), p.clone()))
                .map(|(_, s)| s.clone());
            if existing.as_deref() != given_sha {
                return err(409, "sha does not match");
            }
            let content = input.get("content").and_then(Value::as_str).unwrap_or("");
            let Ok(bytes) = b64.decode(content) else {
                return err(422, "content is not valid Base64");
            };
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let sha = blob_sha(&text);
            let message = input
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            st.files
                .insert((branch.clone(), p.clone()), (text, sha.clone()));
            st.commits.push((branch.clone(), p.clone(), message));
            let commit = format!("{:040x}", st.commits.len() + 100);
            st.refs.insert(branch, commit.clone());
            json_response(
                if existing.is_some() { 200 } else { 201 },
                &[],
                json!({"content": {"path": p, "sha": sha}, "commit": {"sha": commit}}),
            )
        }
        ("GET", ["pulls"]) => {
            let state_filter = q.get("state").cloned().unwrap_or_else(|| "open".into());
            let head = q.get("head").cloned();
            let items: Vec<Value> = st
                .pulls
                .iter()
                .filter(|p| state_filter == "all" || p.state == state_filter)
                .filter(|p| {
                    head.as_ref()
                        .is_none_or(|h| h.rsplit_once(':').map_or(h.as_str(), |(_, b)| b) == p.head)
                })
                .map(|p| pull_json(p, addr))
                .collect();
            json_response(200, &[], Value::Array(items))
        }
        ("POST", ["pulls"]) => {
            let s = |k: &str| {
                input
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let (head, base) = (s("head"), s("base"));
            if !st.refs.contains_key(&head) || !st.refs.contains_key(&base) {
                return err(422, "Validation Failed: head or base does not exist");
            }
            if st.pulls.iter().any(|p| p.head == head && p.state == "open") {
                return err(422, "Validation Failed: A pull request already exists");
            }
            let body = s("body");
            if body.chars().count() > MAX_BODY {
                return err(422, "Validation Failed: body is too long");
            }
            let p = Pull {
                number: 100 + st.pulls.len() as u64,
                head,
                base,
                title: s("title"),
                body,
                state: "open".into(),
            };
            let v = pull_json(&p, addr);
            st.pulls.push(p);
            json_response(201, &[], v)
        }
        ("PATCH", ["pulls", n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            match st.pulls.iter_mut().find(|p| p.number == n) {
                Some(p) => {
                    if let Some(b) = input.get("body").and_then(Value::as_str) {
                        p.body = b.to_string();
                    }
                    if let Some(t) = input.get("title").and_then(Value::as_str) {
                        p.title = t.to_string();
                    }
                    let v = pull_json(p, addr);
                    json_response(200, &[], v)
                }
                None => err(404, "Not Found"),
            }
        }
        _ => err(
            501,
            &format!("fake GitHub: {method} {path} is not modelled"),
        ),
    }
}

/// The runner's OIDC token service (`ACTIONS_ID_TOKEN_REQUEST_URL`): a JWT for `audience`,
/// issued by GitHub's issuer for [`OIDC_SUBJECT`], signed with the issuer key the emulator
/// verifies against (set with [`FakeGitHub::set_oidc_signer`]).
fn oidc_token(
    uri: &Uri,
    headers: &HeaderMap,
    signer: Option<&rotor_emulator::OidcSigner>,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {OIDC_REQUEST_TOKEN}") {
        return err(401, "bad OIDC request token");
    }
    let q = query(uri);
    let Some(audience) = q.get("audience") else {
        return err(400, "audience is required");
    };
    let Some(signer) = signer else {
        return err(
            500,
            "fake GitHub: no OIDC signing key (call FakeGitHub::set_oidc_signer with the emulator's)",
        );
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let jwt = signer.mint_claims(&json!({
        "iss": signer.issuer(),
        "sub": OIDC_SUBJECT,
        "aud": audience.replace("%3A", ":").replace("%2F", "/"),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "repository": "certifyclouds/rotor",
    }));
    json_response(200, &[], json!({"count": 1, "value": jwt}))
}

/// A simulated runner: temporary files for outputs, summary and the event payload, and the
/// environment a `rotor` child process gets.
pub struct Runner {
    pub dir: tempfile::TempDir,
    pub env: BTreeMap<String, String>,
}

impl Runner {
    /// A runner for `event` with `payload` (written to `GITHUB_EVENT_PATH`), talking to `gh`.
    pub fn new(gh: &FakeGitHub, event: &str, payload: &Value) -> Runner {
        let dir = tempfile::tempdir().expect("tempdir");
        let event_path = dir.path().join("event.json");
        std::fs::write(
            &event_path,
            serde_json::to_vec_pretty(payload).expect("json"),
        )
        .expect("write event");
        let out = dir.path().join("github_output");
        let summary = dir.path().join("step_summary");
        std::fs::write(&out, "").expect("output file");
        std::fs::write(&summary, "").expect("summary file");
        let temp = dir.path().join("runner_temp");
        std::fs::create_dir_all(&temp).expect("runner temp");
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("GITHUB_ACTIONS", "true".to_string()),
            ("CI", "true".to_string()),
            ("GITHUB_EVENT_NAME", event.to_string()),
            ("GITHUB_EVENT_PATH", event_path.display().to_string()),
            ("GITHUB_REPOSITORY", REPO.to_string()),
            ("GITHUB_API_URL", gh.api_url()),
            ("GITHUB_SERVER_URL", format!("http://{}", gh.addr)),
            ("GITHUB_RUN_ID", "4242".to_string()),
            ("GITHUB_RUN_ATTEMPT", "1".to_string()),
            ("GITHUB_OUTPUT", out.display().to_string()),
            ("GITHUB_STEP_SUMMARY", summary.display().to_string()),
            ("GITHUB_WORKSPACE", dir.path().display().to_string()),
            ("RUNNER_TEMP", temp.display().to_string()),
            ("GITHUB_TOKEN", TOKEN.to_string()),
            ("ROTOR_GITHUB_MAX_WAIT_SECS", "10".to_string()),
            ("ROTOR_LOOPBACK_ONLY", "1".to_string()),
        ] {
            env.insert(k.to_string(), v);
        }
        Runner { dir, env }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn summary(&self) -> String {
        std::fs::read_to_string(self.path("step_summary")).expect("summary")
    }

    pub fn outputs_raw(&self) -> String {
        std::fs::read_to_string(self.path("github_output")).expect("outputs")
    }

    /// Parses `name<<DELIM\nvalue\nDELIM` entries.
    pub fn outputs(&self) -> BTreeMap<String, String> {
        let text = self.outputs_raw();
        let mut out = BTreeMap::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let Some((name, delim)) = line.split_once("<<") else {
                panic!("output line without heredoc: {line:?}");
            };
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(name.to_string(), value.join("\n"));
        }
        out
    }

    /// Runs `rotor <args>` with this runner's environment (plus `extra`), in its directory.
    pub async fn rotor(&self, args: &[&str], extra: &BTreeMap<String, String>) -> Output {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rotor"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("RUST_LOG", "trace")
            .envs(&self.env)
            .envs(extra)
            .kill_on_drop(true);
        let out = tokio::time::timeout(std::time::Duration::from_secs(240), cmd.output())
            .await
            .expect("rotor finished within 240 s")
            .expect("rotor ran");
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout and stderr without the `::add-mask::` lines.
    pub fn logs_without_masks(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Audit records as `rotor rotate --output json` writes them, for `rotor report --input`.
pub fn rotate_json(apps: &[(&str, &str)], status: &str) -> Value {
    let recs: Vec<Value> = apps
        .iter()
        .enumerate()
        .map(|(i, (name, app_id))| {
            json!({
                "rotation_id": format!("rot-{i}"),
                "started_at": "2026-01-01T00:00:00Z",
                "finished_at": "2026-01-01T00:00:05Z",
                "actor": "github:Codertocat/Hello-World/1",
                "app_id": app_id,
                "app_name": name,
                "old_key_id": format!("{i:08}-aaaa-aaaa-aaaa-aaaaaaaaaaaa"),
                "new_key_id": format!("{i:08}-bbbb-bbbb-bbbb-bbbbbbbbbbbb"),
                "new_expires_at": "2027-01-01T00:00:00Z",
                "confidence": "HIGH",
                "targets": [{"vault_url": "https://kv-prod.vault.azure.net/", "secret_name": format!("{name}-client-secret"),
                             "version": "v2", "status": "updated", "error": null}],
                "status": status,
                "error": if status == "failed" { Value::String(format!("rotating Key Vault secret `{name}-client-secret` (vault `kv-prod`): 403 Forbidden")) } else { Value::Null },
                "hints": if status == "failed" { json!(["grant `Key Vault Secrets Officer` on vault `kv-prod`"]) } else { json!([]) },
            })
        })
        .collect();
    json!({ "rotations": recs })
}

pub fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/webhooks")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("fixture json")
}

/// Renders Markdown the way GitHub does, with cmark-gfm and the GFM extensions (table,
/// strikethrough, autolink, tagfilter, tasklist): the `cmarkgfm` Python bindings that
/// `scripts/install-test-tools` installs, pinned and checksummed, into `.tools/python`
/// (`ROTOR_CMARK_GFM_PYTHONPATH` overrides). GitHub's references (`@user`, `#1`, `GH-1`, SHAs)
/// are not cmark-gfm's: [`assert_inert`] checks the rendered text for those.
pub fn render_gfm(markdown: &str) -> String {
    use std::io::Write as _;
    let path = std::env::var_os("ROTOR_CMARK_GFM_PYTHONPATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("workspace root")
                .join(".tools/python")
        });
    assert!(
        path.join("cmarkgfm").is_dir(),
        "cmark-gfm is not installed at {}: run scripts/install-test-tools (it installs the pinned, \
         checksummed cmarkgfm wheel into .tools/python), or set ROTOR_CMARK_GFM_PYTHONPATH",
        path.display()
    );
    let script = "import sys\nsys.path.insert(0, sys.argv[1])\nimport cmarkgfm\n\
        from cmarkgfm.cmark import Options\n\
        md = sys.stdin.buffer.read().decode('utf-8')\n\
        sys.stdout.buffer.write(cmarkgfm.github_flavored_markdown_to_html(md, options=Options.CMARK_OPT_UNSAFE).encode('utf-8'))\n";
    let mut child = std::process::Command::new("python3")
        .arg("-S")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(markdown.as_bytes())
        .expect("write markdown");
    let out = child.wait_with_output().expect("cmark-gfm ran");
    assert!(
        out.status.success(),
        "cmark-gfm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 html")
}

/// The text of rendered HTML outside `<code>` and `<a>` elements, with tags removed and the
/// entities GitHub's filters see decoded.
pub fn linkable_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    let mut skip: Vec<&str> = Vec::new();
    while let Some(lt) = rest.find('<') {
        if skip.is_empty() {
            out.push_str(&rest[..lt]);
        }
        let Some(gt) = rest[lt..].find('>') else {
            break;
        };
        let tag = &rest[lt + 1..lt + gt];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        if matches!(name.as_str(), "code" | "a" | "pre") {
            if tag.starts_with('/') {
                skip.pop();
            } else {
                skip.push("x");
            }
        }
        out.push(' ');
        rest = &rest[lt + gt + 1..];
    }
    out.push_str(rest);
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Hostile names for escaping tests: every autolink cmark-gfm renders and every reference GitHub
/// links, plus HTML, a comment opener and a table break.
pub const HOSTILE: &[&str] = &[
    "<img src=x onerror=alert(1)> | <!-- x",
    "www.evil.example/login",
    "see https://evil.example/phish now",
    "mallory@evil.example",
    "@octo-org/security-team please",
    "fixes #12 and GH-4242",
    "octo-org/infra#77",
    "octo-org/infra@deadbeef",
    "commit deadbeefcafe1234",
    "[click](https://evil.example) **bold** `code`",
];

/// Asserts that rendered HTML links to nothing hostile and that no text outside code carries
/// something GitHub links: a mention, an issue or pull request reference (`#1`, `GH-1`,
/// `owner/repo#1`, `owner/repo@sha`), a commit SHA, a URL, a `www.` host or an email.
pub fn assert_inert(what: &str, html: &str) {
    for bad in ["<img", "<!--", "<script", "onerror=\""] {
        let count = html.matches(bad).count();
        let allowed = usize::from(bad == "<!--" && html.starts_with("<!-- rotor-report:"));
        assert!(count <= allowed, "{what}: `{bad}` in the HTML:\n{html}");
    }
    for (i, _) in html.match_indices("<a ") {
        let tag = &html[i..i + html[i..].find('>').unwrap_or(0)];
        assert!(
            !tag.contains("evil") && !tag.contains("mailto:"),
            "{what}: a hostile link: {tag}"
        );
    }
    let text = linkable_text(html);
    let patterns = [
        (r"(?i)(^|[^\w`])@[a-z0-9]", "a mention"),
        (r"#\d", "an issue reference"),
        (r"(?i)\bGH-\d", "a GH- reference"),
        (r"(?i)\b[0-9a-f]{7,40}\b", "a commit SHA"),
        (r"(?i)\b(https?|ftp)://", "a URL"),
        (r"(?i)(^|[\s(*_~])www\.", "a www. link"),
        (r"[\w.+-]+@[\w-]+\.[\w.-]+", "an email"),
    ];
    for (re, name) in patterns {
        let re = regex::Regex::new(re).expect("regex");
        if let Some(m) = re.find(&text) {
            let at = m.start();
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(40)
                .map_or(0, |(i, _)| i);
            let to = (m.end() + 40).min(text.len());
            let to = (to..text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(text.len());
            panic!(
                "{what}: {name} GitHub would link survives: …{}…",
                &text[from..to]
            );
        }
    }
}

/// Writes rotor.toml into the runner's workspace: the emulator's vaults, the sample's exclusion
/// (`name:legacy-*`) and `extra` (more `[policy]` lines, or further sections after a blank line).
pub fn write_config(emu: &rotor_emulator::Emulator, runner: &Runner, extra: &str) {
    let vaults: Vec<String> = emu
        .endpoints()
        .vaults
        .values()
        .map(|u| format!("{u:?}"))
        .collect();
    let text = format!(
        "vaults = [{}]\n\n[policy]\nexclusions = [\"name:legacy-*\"]\n{extra}\n",
        vaults.join(", ")
    );
    std::fs::write(runner.path("rotor.toml"), text).expect("write rotor.toml");
}

/// Every application's password keyIds (lower case) in `state` (the emulator's state, or any
/// value with its `applications`).
pub fn password_key_ids(
    state: &Value,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    state["applications"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["app_id"].as_str().unwrap_or("").to_string(),
                a["password_credentials"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["key_id"].as_str().map(str::to_lowercase))
                    .collect(),
            )
        })
        .collect()
}
