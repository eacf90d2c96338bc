//! GitHub REST (and two GraphQL) calls made by `rotor action` and `rotor report`.
//!
//! - Works with an installation token (`GITHUB_TOKEN`): never calls `/user` (installation tokens
//!   cannot). Our own comment is the one that starts with its hidden marker
//!   ([`super::markdown::marker`]) **and** is authored by the login the token acts as, which
//!   GraphQL's `viewer { login }` answers for every token kind (`github-actions[bot]` for
//!   `GITHUB_TOKEN`, `<app>[bot]` for a GitHub App's installation token, the user for a personal
//!   token). A person's comment that carries the marker is never edited, minimized or deleted.
//! - Honours `GITHUB_API_URL` and `GITHUB_GRAPHQL_URL`, so GitHub Enterprise Server
//!   (`https://HOST/api/v3`, `https://HOST/api/graphql`) works.
//! - Sends `User-Agent: rotor/<version>`.
//! - No blind retries. A request that GitHub rate-limited is retried **once** after the wait
//!   GitHub documents: `retry-after` seconds when present; else until `x-ratelimit-reset` when
//!   `x-ratelimit-remaining` is `0`; else, for a 429 or a 403 whose message names the secondary
//!   rate limit, one minute ([`GitHub::secondary_wait`], `ROTOR_GITHUB_SECONDARY_WAIT_SECS`).
//!   GitHub did not process it, so nothing is posted twice. A POST whose outcome is unknown
//!   (connection lost, 5xx) is never resent blindly: creating the sticky comment looks again for
//!   the marker.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::markdown;

/// Errors from GitHub, in the `<verb>ing <object>: <cause>` shape.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// GitHub answered with an error status.
    #[error("{action}: {status} {message}")]
    Status {
        action: String,
        status: u16,
        message: String,
    },
    /// The request did not get an answer.
    #[error("{action}: {cause}")]
    Transport { action: String, cause: String },
    /// Rate limited for longer than we are willing to wait.
    #[error("{action}: rate limited by GitHub; retry after {wait_secs} seconds")]
    RateLimited { action: String, wait_secs: u64 },
}

impl ApiError {
    /// The HTTP status, when GitHub answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::RateLimited { .. } => Some(429),
            ApiError::Transport { .. } => None,
        }
    }

    /// Hints that carry the fix.
    pub fn hints(&self) -> Vec<String> {
        match self.status() {
            Some(401) => vec![
                "pass a valid token: the action's `github-token` input (default `${{ github.token }}`) reaches rotor as GITHUB_TOKEN".into(),
            ],
            Some(403 | 404) => vec![
                "give the workflow the permission it needs: `pull-requests: write` for comments, `contents: write` and `pull-requests: write` for audit pull requests".into(),
                "pull requests from forks get a read-only token: the report is in the job summary instead".into(),
                "for audit pull requests, allow \"GitHub Actions to create and approve pull requests\" in the repository's Actions settings".into(),
            ],
            Some(429) => vec!["GitHub's rate limit was reached (a secondary limit: too many content-creating requests in a minute, or the token's hourly limit): run the workflow again later".into()],
            _ => vec![],
        }
    }
}

/// A successful response.
#[derive(Debug)]
pub struct Response {
    /// Response headers.
    pub headers: http::HeaderMap,
    /// Parsed JSON body (`Null` when empty, a string when not JSON).
    pub body: Value,
    /// The body as received.
    pub text: String,
}

/// What happened to the sticky comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentOutcome {
    /// A new comment with this id.
    Created(u64),
    /// The existing comment with this id was updated.
    Updated(u64),
    /// The existing comment already had this body.
    Unchanged(u64),
}

impl CommentOutcome {
    /// The comment id.
    pub fn id(self) -> u64 {
        match self {
            CommentOutcome::Created(id)
            | CommentOutcome::Updated(id)
            | CommentOutcome::Unchanged(id) => id,
        }
    }
}

/// The audit pull request after [`GitHub::publish_audit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPr {
    /// Pull request number.
    pub number: u64,
    /// Its web URL.
    pub url: String,
    /// Whether this run opened it (false: an open one was updated).
    pub created: bool,
}

/// The `User-Agent` of every request: `rotor/<version>`.
pub const USER_AGENT: &str = concat!("rotor/", env!("CARGO_PKG_VERSION"));

/// The REST API version rotor is written against.
pub const API_VERSION: &str = "2022-11-28";

/// The login `GITHUB_TOKEN` acts as; assumed when GraphQL cannot tell (see [`GitHub::own_login`]).
pub const ACTIONS_BOT_LOGIN: &str = "github-actions[bot]";

/// A repository on a GitHub (or GitHub Enterprise Server) API.
pub struct GitHub {
    http: reqwest::Client,
    api_url: String,
    graphql_url: String,
    token: String,
    owner: String,
    repo: String,
    login: tokio::sync::OnceCell<String>,
    /// Longest rate-limit wait we accept before giving up.
    pub max_wait: Duration,
    /// The wait before retrying a secondary rate limit answered without `retry-after` or
    /// `x-ratelimit-*` headers: GitHub's documentation says "at least one minute".
    pub secondary_wait: Duration,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("owner", &self.owner)
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

impl GitHub {
    /// A client for `owner/repo` on `api_url` (`https://api.github.com`, or
    /// `https://HOST/api/v3` for GitHub Enterprise Server), authenticated with `token`.
    /// GraphQL goes to [`graphql_url_for`]`(api_url)` unless [`GitHub::with_graphql_url`] says.
    pub fn new(api_url: &str, token: &str, owner: &str, repo: &str) -> anyhow::Result<GitHub> {
        let api_url = api_url.trim_end_matches('/').to_string();
        url::Url::parse(&api_url)
            .map_err(|e| anyhow::anyhow!("using GITHUB_API_URL `{api_url}`: {e}"))?;
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| anyhow::anyhow!("creating the GitHub client for `{api_url}`: {e}"))?;
        let secs = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(Duration::from_secs(default), Duration::from_secs)
        };
        Ok(GitHub {
            http,
            graphql_url: graphql_url_for(&api_url),
            api_url,
            token: token.to_string(),
            owner: owner.to_string(),
            repo: repo.to_string(),
            login: tokio::sync::OnceCell::new(),
            max_wait: secs("ROTOR_GITHUB_MAX_WAIT_SECS", 120),
            secondary_wait: secs("ROTOR_GITHUB_SECONDARY_WAIT_SECS", 60),
        })
    }

    /// GraphQL at `url` (the runner's `GITHUB_GRAPHQL_URL`) instead of the one derived from the
    /// REST URL.
    pub fn with_graphql_url(mut self, url: Option<&str>) -> GitHub {
        if let Some(u) = url.filter(|u| !u.is_empty()) {
            self.graphql_url = u.trim_end_matches('/').to_string();
        }
        self
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.repo)
    }

    /// The login the token acts as, from GraphQL `viewer { login }` (cached). `GET /user` is not
    /// used: installation tokens, `GITHUB_TOKEN` among them, cannot call it. When GraphQL cannot
    /// answer, [`ACTIONS_BOT_LOGIN`] (the `github-token` input's default) is assumed: the worst
    /// case is a second comment, never an edit of someone else's.
    pub async fn own_login(&self) -> String {
        self.login
            .get_or_init(|| async {
                match self
                    .graphql(
                        "query { viewer { login } }",
                        json!({}),
                        "reading the token's login",
                    )
                    .await
                {
                    Ok(data) => match data.pointer("/viewer/login").and_then(Value::as_str) {
                        Some(l) if !l.is_empty() => l.to_string(),
                        _ => ACTIONS_BOT_LOGIN.to_string(),
                    },
                    Err(e) => {
                        tracing::warn!("{e}; assuming the token acts as {ACTIONS_BOT_LOGIN}");
                        ACTIONS_BOT_LOGIN.to_string()
                    }
                }
            })
            .await
            .clone()
    }

    /// One GraphQL request; `errors` in the answer become [`ApiError::Status`] with status 200.
    pub async fn graphql(
        &self,
        query: &str,
        variables: Value,
        action: &str,
    ) -> Result<Value, ApiError> {
        let url = self.graphql_url.clone();
        let resp = self
            .request(
                Method::POST,
                &url,
                Some(&json!({ "query": query, "variables": variables })),
                action,
            )
            .await?;
        if let Some(errors) = resp.body.get("errors").and_then(Value::as_array)
            && !errors.is_empty()
        {
            let message = errors
                .iter()
                .filter_map(|e| e.get("message").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ApiError::Status {
                action: action.to_string(),
                status: 200,
                message: format!("GraphQL error ({message})"),
            });
        }
        Ok(resp.body.get("data").cloned().unwrap_or(Value::Null))
    }

    /// Minimizes (hides) a comment as outdated, by its GraphQL node id.
    pub async fn minimize_comment(&self, node_id: &str, number: u64) -> Result<(), ApiError> {
        self.graphql(
            "mutation($id: ID!) { minimizeComment(input: {subjectId: $id, classifier: OUTDATED}) { minimizedComment { isMinimized } } }",
            json!({ "id": node_id }),
            &format!("minimizing an outdated rotor comment on pull request #{number}"),
        )
        .await
        .map(|_| ())
    }

    async fn send_once(
        &self,
        method: &Method,
        uri: &str,
        body: Option<&Value>,
        action: &str,
        accept: &str,
    ) -> Result<(StatusCode, http::HeaderMap, String), ApiError> {
        let url = if uri.starts_with("http://") || uri.starts_with("https://") {
            uri.to_string()
        } else {
            format!("{}{uri}", self.api_url)
        };
        let transport = |e: reqwest::Error| ApiError::Transport {
            action: action.to_string(),
            cause: e.without_url().to_string(),
        };
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header(http::header::ACCEPT, accept)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header("X-GitHub-Api-Version", API_VERSION);
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(transport)?;
        Ok((status, headers, text))
    }

    /// Sends one request; retries once after a rate limit (waiting as its headers say), and a
    /// GET once after a transport error or 5xx. Non-2xx answers become [`ApiError::Status`].
    pub async fn request(
        &self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
        action: &str,
    ) -> Result<Response, ApiError> {
        self.request_accepting(method, uri, body, action, "application/vnd.github+json")
            .await
    }

    /// [`GitHub::request`] with another media type (`application/vnd.github.raw` for file
    /// contents over the contents API's 1 MB JSON limit).
    pub async fn request_accepting(
        &self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
        action: &str,
        accept: &str,
    ) -> Result<Response, ApiError> {
        let mut retried = false;
        loop {
            let result = self.send_once(&method, uri, body, action, accept).await;
            let (status, headers, text) = match result {
                Ok(r) => r,
                Err(e) if method == Method::GET && !retried => {
                    tracing::debug!("{e}; retrying once");
                    retried = true;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(wait) = rate_limit_wait(status, &headers, &text, self.secondary_wait) {
                if retried {
                    return Err(ApiError::RateLimited {
                        action: action.to_string(),
                        wait_secs: wait.as_secs(),
                    });
                }
                if wait > self.max_wait {
                    return Err(ApiError::RateLimited {
                        action: action.to_string(),
                        wait_secs: wait.as_secs(),
                    });
                }
                tracing::info!(
                    "{action}: rate limited by GitHub ({status}); retrying once in {}s",
                    wait.as_secs()
                );
                retried = true;
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() && method == Method::GET && !retried {
                retried = true;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let body: Value = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
            };
            if !status.is_success() {
                let message = body
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string());
                return Err(ApiError::Status {
                    action: action.to_string(),
                    status: status.as_u16(),
                    message: format!(
                        "{}{}",
                        status.canonical_reason().unwrap_or(""),
                        if message.is_empty() || Some(message.as_str()) == status.canonical_reason()
                        {
                            String::new()
                        } else {
                            format!(" ({message})")
                        }
                    ),
                });
            }
            return Ok(Response {
                headers,
                body,
                text,
            });
        }
    }

    /// GETs every page of a list, following `Link: <…>; rel="next"`.
    async fn get_all(&self, first: &str, action: &str) -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::new();
        let mut next = Some(first.to_string());
        let mut pages = 0;
        while let Some(uri) = next.take() {
            let resp = self.request(Method::GET, &uri, None, action).await?;
            if let Value::Array(items) = resp.body {
                out.extend(items);
            }
            next = next_link(&resp.headers);
            pages += 1;
            if pages >= 100 {
                break;
            }
        }
        Ok(out)
    }

    /// Our comments for `key` on issue/pull request `number`, oldest first: those that start with
    /// the marker **and** are authored by [`GitHub::own_login`]. A person's comment that starts
    /// with the marker is not ours.
    async fn marked_comments(&self, number: u64, key: &str) -> Result<Vec<Marked>, ApiError> {
        let marker = markdown::marker(key);
        let comments = self
            .get_all(
                &self.repo_path(&format!("/issues/{number}/comments?per_page=100")),
                &format!("listing the comments of pull request #{number}"),
            )
            .await?;
        let me = self.own_login().await;
        Ok(comments
            .into_iter()
            .filter_map(|c| {
                let id = c.get("id")?.as_u64()?;
                let body = c.get("body")?.as_str()?.to_string();
                let login = c.pointer("/user/login")?.as_str()?;
                let bot = c.pointer("/user/type").and_then(Value::as_str) == Some("Bot");
                if !body.starts_with(&marker) || !is_own_login(login, bot, &me) {
                    return None;
                }
                let node_id = c
                    .get("node_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                Some(Marked { id, node_id, body })
            })
            .collect())
    }

    async fn delete_comment(&self, id: u64, what: &str) -> Result<(), ApiError> {
        match self
            .request(
                Method::DELETE,
                &self.repo_path(&format!("/issues/comments/{id}")),
                None,
                what,
            )
            .await
        {
            Ok(_) | Err(ApiError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Finds our comment for `key` on `number`. When two runs raced and both created a comment,
    /// the newer copies are deleted so exactly one remains (the oldest). Minimized (outdated)
    /// copies left by `hide-and-new` are not considered.
    async fn find_sticky(&self, number: u64, key: &str) -> Result<Option<Marked>, ApiError> {
        let ours: Vec<Marked> = self
            .marked_comments(number, key)
            .await?
            .into_iter()
            .filter(|m| !m.body.contains(markdown::OUTDATED_NOTE))
            .collect();
        for m in ours.iter().skip(1) {
            self.delete_comment(
                m.id,
                &format!("deleting a duplicate rotor comment on pull request #{number}"),
            )
            .await?;
        }
        Ok(ours.into_iter().next())
    }

    /// Keeps exactly one comment for `key` on pull request `number`: updates ours in place,
    /// leaves it alone when the body is unchanged, creates one only when there is none.
    /// `body` must start with [`markdown::marker`]`(key)`.
    pub async fn upsert_sticky_comment(
        &self,
        number: u64,
        key: &str,
        body: &str,
    ) -> Result<CommentOutcome, ApiError> {
        debug_assert!(body.starts_with(&markdown::marker(key)));
        if let Some(existing) = self.find_sticky(number, key).await? {
            if same_report(&existing.body, body) {
                return Ok(CommentOutcome::Unchanged(existing.id));
            }
            self.update_comment(existing.id, number, body).await?;
            return Ok(CommentOutcome::Updated(existing.id));
        }
        self.create_comment(number, key, body).await
    }

    /// `hide-and-new`: minimizes our previous comments for `key` as outdated (GraphQL
    /// `minimizeComment`; their body gets [`markdown::OUTDATED_NOTE`] so they are never picked
    /// again) and posts `body` as a new comment. An unchanged report is left alone.
    pub async fn hide_and_new_comment(
        &self,
        number: u64,
        key: &str,
        body: &str,
    ) -> Result<CommentOutcome, ApiError> {
        let previous = self.find_sticky(number, key).await?;
        if let Some(p) = &previous
            && same_report(&p.body, body)
        {
            return Ok(CommentOutcome::Unchanged(p.id));
        }
        // Marked outdated first, so the new comment's race check does not take it for a copy.
        if let Some(p) = &previous {
            self.update_comment(p.id, number, &outdated_body(&p.body))
                .await?;
        }
        let created = self.create_comment(number, key, body).await?;
        if let Some(p) = previous
            && !p.node_id.is_empty()
            && let Err(e) = self.minimize_comment(&p.node_id, number).await
        {
            tracing::warn!("{e}; the previous comment is marked outdated but not hidden");
        }
        Ok(created)
    }

    /// Deletes our comments for `key` (nothing is due any more). Returns how many.
    pub async fn delete_sticky_comments(&self, number: u64, key: &str) -> Result<usize, ApiError> {
        let ours = self.marked_comments(number, key).await?;
        for m in &ours {
            self.delete_comment(
                m.id,
                &format!("deleting rotor's comment on pull request #{number}"),
            )
            .await?;
        }
        Ok(ours.len())
    }

    /// Whether we already have a (current) comment for `key`.
    pub async fn has_sticky_comment(&self, number: u64, key: &str) -> Result<bool, ApiError> {
        Ok(self.find_sticky(number, key).await?.is_some())
    }

    async fn update_comment(&self, id: u64, number: u64, body: &str) -> Result<(), ApiError> {
        self.request(
            Method::PATCH,
            &self.repo_path(&format!("/issues/comments/{id}")),
            Some(&json!({ "body": body })),
            &format!("updating rotor's comment on pull request #{number}"),
        )
        .await
        .map(|_| ())
    }

    async fn create_comment(
        &self,
        number: u64,
        key: &str,
        body: &str,
    ) -> Result<CommentOutcome, ApiError> {
        let action = format!("commenting on pull request #{number}");
        match self
            .request(
                Method::POST,
                &self.repo_path(&format!("/issues/{number}/comments")),
                Some(&json!({ "body": body })),
                &action,
            )
            .await
        {
            Ok(resp) => {
                let id = resp.body.get("id").and_then(Value::as_u64).unwrap_or(0);
                // Another run may have commented at the same time: keep the oldest only.
                match self.find_sticky(number, key).await? {
                    Some(kept) if kept.id != id => {
                        if !same_report(&kept.body, body) {
                            self.update_comment(kept.id, number, body).await?;
                        }
                        Ok(CommentOutcome::Updated(kept.id))
                    }
                    _ => Ok(CommentOutcome::Created(id)),
                }
            }
            // The outcome is unknown: the comment may exist now. Look before anyone retries.
            Err(
                e @ (ApiError::Transport { .. }
                | ApiError::Status {
                    status: 500..=599, ..
                }),
            ) => match self.find_sticky(number, key).await {
                Ok(Some(m)) => Ok(CommentOutcome::Created(m.id)),
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Leaves exactly one of `family` on issue/pull request `number`: `label` (added when
    /// missing; GitHub creates a label that does not exist yet), the others of `family` removed.
    /// Labels outside `family` are not touched.
    pub async fn set_exclusive_label(
        &self,
        number: u64,
        label: &str,
        family: &[&str],
    ) -> Result<(), ApiError> {
        let current = self
            .get_all(
                &self.repo_path(&format!("/issues/{number}/labels?per_page=100")),
                &format!("listing the labels of pull request #{number}"),
            )
            .await?;
        let names: Vec<String> = current
            .iter()
            .filter_map(|l| l.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        for stale in family.iter().filter(|f| **f != label) {
            if names.iter().any(|n| n == stale) {
                match self
                    .request(
                        Method::DELETE,
                        &self.repo_path(&format!(
                            "/issues/{number}/labels/{}",
                            percent_encode_segment(stale)
                        )),
                        None,
                        &format!("removing label `{stale}` from pull request #{number}"),
                    )
                    .await
                {
                    Ok(_) | Err(ApiError::Status { status: 404, .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if !names.iter().any(|n| n == label) {
            self.request(
                Method::POST,
                &self.repo_path(&format!("/issues/{number}/labels")),
                Some(&json!({ "labels": [label] })),
                &format!("labelling pull request #{number} `{label}`"),
            )
            .await?;
        }
        Ok(())
    }

    /// Commits `append` (JSON Lines) to the end of `file_path` on `branch` and opens — or
    /// updates the title and body of — the pull request from `branch` into the default branch.
    /// `render` gets the records the branch holds that the default branch does not (every run's
    /// since the pull request was opened, this one's included) and returns its title and body.
    ///
    /// The branch is created from the default branch when missing, and reset to it when no pull
    /// request from it is open (the previous audit pull request was merged or closed), so each
    /// audit pull request starts from the history the default branch has.
    pub async fn publish_audit(
        &self,
        branch: &str,
        file_path: &str,
        append: &str,
        message: &str,
        render: &(dyn Fn(&str) -> (String, String) + Sync),
    ) -> Result<AuditPr, ApiError> {
        let repo = self
            .request(
                Method::GET,
                &self.repo_path(""),
                None,
                "reading the repository",
            )
            .await?;
        let default_branch = repo
            .body
            .get("default_branch")
            .and_then(Value::as_str)
            .unwrap_or("main")
            .to_string();

        // 1. An open audit pull request, if any.
        let open = self
            .request(
                Method::GET,
                &self.repo_path(&format!(
                    "/pulls?state=open&head={}:{branch}&base={default_branch}&per_page=100",
                    self.owner
                )),
                None,
                "listing open audit pull requests",
            )
            .await?;
        let existing = open.body.as_array().and_then(|prs| {
            prs.iter()
                .find(|p| p.pointer("/head/ref").and_then(Value::as_str) == Some(branch))
                .cloned()
        });

        // 2. The branch: kept while its pull request is open, else (re)started from the default branch.
        let branch_exists = match self
            .request(
                Method::GET,
                &self.repo_path(&format!("/git/ref/heads/{branch}")),
                None,
                &format!("reading branch `{branch}`"),
            )
            .await
        {
            Ok(_) => true,
            Err(ApiError::Status { status: 404, .. }) => false,
            Err(e) => return Err(e),
        };
        if !branch_exists || existing.is_none() {
            let base = self
                .request(
                    Method::GET,
                    &self.repo_path(&format!("/git/ref/heads/{default_branch}")),
                    None,
                    &format!("reading branch `{default_branch}`"),
                )
                .await?;
            let sha = base
                .body
                .pointer("/object/sha")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if branch_exists {
                self.request(
                    Method::PATCH,
                    &self.repo_path(&format!("/git/refs/heads/{branch}")),
                    Some(&json!({ "sha": sha, "force": true })),
                    &format!("resetting branch `{branch}` to `{default_branch}`"),
                )
                .await?;
            } else {
                match self
                    .request(
                        Method::POST,
                        &self.repo_path("/git/refs"),
                        Some(&json!({ "ref": format!("refs/heads/{branch}"), "sha": sha })),
                        &format!("creating branch `{branch}`"),
                    )
                    .await
                {
                    // 422: created meanwhile by a concurrent run; use it.
                    Ok(_) | Err(ApiError::Status { status: 422, .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }

        // 3. Append to the history file on that branch (retry once on a concurrent change).
        let on_branch = self.append_file(branch, file_path, append, message).await?;

        // 4. What the pull request brings: the branch's records the default branch lacks.
        let on_default = self
            .read_file(&default_branch, file_path)
            .await?
            .map(|(text, _)| text)
            .unwrap_or_default();
        let known: std::collections::BTreeSet<&str> = on_default.lines().map(str::trim).collect();
        let mut accumulated = String::new();
        for line in on_branch.lines().map(str::trim) {
            if !line.is_empty() && !known.contains(line) {
                accumulated.push_str(line);
                accumulated.push('\n');
            }
        }
        let (title, body) = render(&accumulated);

        // 5. Open or update the pull request.
        if let Some(pr) = existing {
            let number = pr.get("number").and_then(Value::as_u64).unwrap_or(0);
            let resp = self
                .request(
                    Method::PATCH,
                    &self.repo_path(&format!("/pulls/{number}")),
                    Some(&json!({ "title": title, "body": body })),
                    &format!("updating audit pull request #{number}"),
                )
                .await?;
            return Ok(AuditPr {
                number,
                url: html_url(&resp.body),
                created: false,
            });
        }
        let resp = self
            .request(
                Method::POST,
                &self.repo_path("/pulls"),
                Some(&json!({
                    "title": title,
                    "head": branch,
                    "base": default_branch,
                    "body": body,
                })),
                "opening the audit pull request",
            )
            .await?;
        Ok(AuditPr {
            number: resp.body.get("number").and_then(Value::as_u64).unwrap_or(0),
            url: html_url(&resp.body),
            created: true,
        })
    }

    /// `file_path` on `branch`: its text and blob sha, or None when it does not exist. Over the
    /// contents API's 1 MB JSON limit the text is fetched raw.
    async fn read_file(
        &self,
        branch: &str,
        file_path: &str,
    ) -> Result<Option<(String, Option<String>)>, ApiError> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let contents_uri = self.contents_uri(file_path);
        let read_action = format!("reading `{file_path}` on branch `{branch}`");
        let resp = match self
            .request(
                Method::GET,
                &format!("{contents_uri}?ref={branch}"),
                None,
                &read_action,
            )
            .await
        {
            Ok(resp) => resp,
            Err(ApiError::Status { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let sha = resp
            .body
            .get("sha")
            .and_then(Value::as_str)
            .map(str::to_string);
        let encoding = resp.body.get("encoding").and_then(Value::as_str);
        let text = if encoding == Some("base64") {
            let content = resp
                .body
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .replace(['\n', '\r'], "");
            let bytes = b64.decode(content).map_err(|e| ApiError::Status {
                action: read_action.clone(),
                status: 200,
                message: format!("undecodable content: {e}"),
            })?;
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            // Over 1 MB the JSON carries no content (`encoding: none`): fetch it raw, never
            // overwrite the history with only this run's records.
            self.request_accepting(
                Method::GET,
                &format!("{contents_uri}?ref={branch}"),
                None,
                &read_action,
                "application/vnd.github.raw",
            )
            .await?
            .text
        };
        Ok(Some((text, sha)))
    }

    fn contents_uri(&self, file_path: &str) -> String {
        let encoded_path = file_path
            .split('/')
            .map(percent_encode_segment)
            .collect::<Vec<_>>()
            .join("/");
        self.repo_path(&format!("/contents/{encoded_path}"))
    }

    /// Appends `append` to `file_path` on `branch` through the contents API (one commit).
    /// Returns the file's new text.
    async fn append_file(
        &self,
        branch: &str,
        file_path: &str,
        append: &str,
        message: &str,
    ) -> Result<String, ApiError> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let contents_uri = self.contents_uri(file_path);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (existing, sha) = self.read_file(branch, file_path).await?.unwrap_or_default();
            let mut content = existing;
            if !content.is_empty() && !content.ends_with('\n') {
                content.push('\n');
            }
            content.push_str(append);
            let mut put = json!({
                "message": message,
                "content": b64.encode(content.as_bytes()),
                "branch": branch,
            });
            if let Some(sha) = sha {
                put["sha"] = Value::String(sha);
            }
            match self
                .request(
                    Method::PUT,
                    &contents_uri,
                    Some(&put),
                    &format!("committing `{file_path}` to branch `{branch}`"),
                )
                .await
            {
                Ok(_) => return Ok(content),
                Err(ApiError::Status {
                    status: 409 | 422, ..
                }) if attempts < 2 => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// An issue as the dashboard reads it.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct Issue {
    /// Issue number.
    pub number: u64,
    /// Body (empty when none).
    pub body: String,
    /// Author login.
    pub login: String,
    /// Whether the author is a `Bot`.
    pub bot: bool,
    /// `open` or `closed`.
    pub state: String,
    /// Web URL.
    pub url: String,
}

impl Issue {
    fn from_json(v: &Value) -> Option<Issue> {
        Some(Issue {
            number: v.get("number")?.as_u64()?,
            body: v
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            login: v.pointer("/user/login")?.as_str()?.to_string(),
            bot: v.pointer("/user/type").and_then(Value::as_str) == Some("Bot"),
            state: v
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("open")
                .to_string(),
            url: html_url(v),
        })
    }
}

impl GitHub {
    /// Whether `issue` is rotor's: its body starts with `marker` and the token's own login wrote it.
    pub async fn is_own_issue(&self, issue: &Issue, marker: &str) -> bool {
        issue.body.starts_with(marker)
            && is_own_login(&issue.login, issue.bot, &self.own_login().await)
    }

    /// rotor's open issue whose body starts with `marker` (the oldest when several), authored by
    /// the token's own login. Pull requests (which the issues list includes) are skipped.
    pub async fn find_own_issue(&self, marker: &str) -> Result<Option<Issue>, ApiError> {
        let me = self.own_login().await;
        let creator = percent_encode_segment(&me);
        let items = self
            .get_all(
                &self.repo_path(&format!(
                    "/issues?state=open&creator={creator}&per_page=100&sort=created&direction=asc"
                )),
                "listing rotor's open issues",
            )
            .await?;
        let mut found = Vec::new();
        for v in &items {
            if v.get("pull_request").is_some() {
                continue;
            }
            if let Some(i) = Issue::from_json(v)
                && i.body.starts_with(marker)
                && is_own_login(&i.login, i.bot, &me)
            {
                found.push(i);
            }
        }
        found.sort_by_key(|i| i.number);
        Ok(found.into_iter().next())
    }

    /// One issue.
    pub async fn get_issue(&self, number: u64) -> Result<Issue, ApiError> {
        let action = format!("reading issue #{number}");
        let resp = self
            .request(
                Method::GET,
                &self.repo_path(&format!("/issues/{number}")),
                None,
                &action,
            )
            .await?;
        Issue::from_json(&resp.body).ok_or(ApiError::Status {
            action,
            status: 200,
            message: "the answer is not an issue".into(),
        })
    }

    /// Creates an issue; returns it.
    pub async fn create_issue(&self, title: &str, body: &str) -> Result<Issue, ApiError> {
        let action = "creating the rotor dashboard issue".to_string();
        let resp = self
            .request(
                Method::POST,
                &self.repo_path("/issues"),
                Some(&json!({ "title": title, "body": body })),
                &action,
            )
            .await?;
        Issue::from_json(&resp.body).ok_or(ApiError::Status {
            action,
            status: 200,
            message: "the answer is not an issue".into(),
        })
    }

    /// Replaces an issue's title and body.
    pub async fn update_issue(&self, number: u64, title: &str, body: &str) -> Result<(), ApiError> {
        self.request(
            Method::PATCH,
            &self.repo_path(&format!("/issues/{number}")),
            Some(&json!({ "title": title, "body": body })),
            &format!("updating the rotor dashboard issue #{number}"),
        )
        .await
        .map(|_| ())
    }

    /// Posts a plain comment on issue `number`; returns its id.
    pub async fn comment_on_issue(&self, number: u64, body: &str) -> Result<u64, ApiError> {
        let resp = self
            .request(
                Method::POST,
                &self.repo_path(&format!("/issues/{number}/comments")),
                Some(&json!({ "body": body })),
                &format!("commenting on issue #{number}"),
            )
            .await?;
        Ok(resp.body.get("id").and_then(Value::as_u64).unwrap_or(0))
    }

    /// `user`'s permission on the repository (`admin`, `maintain`, `write`, `triage`, `read` or
    /// `none`) from `GET /repos/{owner}/{repo}/collaborators/{user}/permission`: `role_name` when
    /// given (it tells `maintain` and `triage`), else `permission`. A 404 (not a collaborator) is
    /// `none`.
    pub async fn collaborator_permission(&self, user: &str) -> Result<String, ApiError> {
        let path = self.repo_path(&format!(
            "/collaborators/{}/permission",
            percent_encode_segment(user)
        ));
        match self
            .request(
                Method::GET,
                &path,
                None,
                &format!("reading the repository permission of `{user}`"),
            )
            .await
        {
            Ok(resp) => Ok(resp
                .body
                .get("role_name")
                .or_else(|| resp.body.get("permission"))
                .and_then(Value::as_str)
                .unwrap_or("none")
                .to_string()),
            Err(ApiError::Status { status: 404, .. }) => Ok("none".into()),
            Err(e) => Err(e),
        }
    }
}

/// Whether a comment's REST author (`login`, `bot`: its `type` is `Bot`) is `me`, the GraphQL
/// `viewer.login` (`github-actions[bot]` for `GITHUB_TOKEN`). Should a login come without the
/// `[bot]` suffix REST authors carry, it matches the suffixed login of a `Bot` author only, so a
/// person whose login equals an app's slug is never taken for the app.
fn is_own_login(login: &str, bot: bool, me: &str) -> bool {
    if login.eq_ignore_ascii_case(me) {
        return true;
    }
    bot && login
        .strip_suffix("[bot]")
        .is_some_and(|l| l.eq_ignore_ascii_case(me.trim_end_matches("[bot]")))
}

/// One of our marked comments.
#[derive(Debug, Clone)]
struct Marked {
    id: u64,
    node_id: String,
    body: String,
}

/// Whether two comment bodies are the same (the footer names the run, the commit and the time,
/// so a later run's comment differs and shows which commit it reports on).
fn same_report(a: &str, b: &str) -> bool {
    a.trim_end() == b.trim_end()
}

/// The body of a comment replaced by a newer one: the marker, the outdated note, the old report.
fn outdated_body(body: &str) -> String {
    match body.split_once('\n') {
        Some((marker, rest)) => format!("{marker}\n{}\n\n{rest}", markdown::OUTDATED_NOTE),
        None => format!("{body}\n{}", markdown::OUTDATED_NOTE),
    }
}

fn html_url(v: &Value) -> String {
    v.get("html_url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn percent_encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How long to wait before retrying, if this answer is a rate limit (GitHub's "Rate limits for
/// the REST API"): 429, or 403 with `retry-after`, `x-ratelimit-remaining: 0` (until
/// `x-ratelimit-reset`) or a message naming the secondary rate limit. Without a header that says
/// how long, GitHub says to wait at least a minute: `secondary` ([`GitHub::secondary_wait`]).
/// A plain 403 is a permission error, not a rate limit.
pub fn rate_limit_wait(
    status: StatusCode,
    headers: &http::HeaderMap,
    body: &str,
    secondary: Duration,
) -> Option<Duration> {
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::FORBIDDEN {
        return None;
    }
    let num = |name: &str| -> Option<i64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    if let Some(secs) = num("retry-after") {
        return Some(Duration::from_secs(secs.max(0) as u64));
    }
    if num("x-ratelimit-remaining") == Some(0) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let reset = num("x-ratelimit-reset").unwrap_or(now + 60);
        return Some(Duration::from_secs((reset - now).clamp(1, i64::MAX) as u64));
    }
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(Value::as_str)
                .map(str::to_lowercase)
        })
        .unwrap_or_default();
    if status == StatusCode::TOO_MANY_REQUESTS
        || message.contains("secondary rate limit")
        || message.contains("abuse detection")
    {
        return Some(secondary);
    }
    None
}

/// The GraphQL endpoint for a REST API URL: `https://api.github.com/graphql`, or
/// `https://HOST/api/graphql` for GitHub Enterprise Server's `https://HOST/api/v3`.
pub fn graphql_url_for(api_url: &str) -> String {
    let api = api_url.trim_end_matches('/');
    match api.strip_suffix("/api/v3") {
        Some(host) => format!("{host}/api/graphql"),
        None => format!("{api}/graphql"),
    }
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(headers: &http::HeaderMap) -> Option<String> {
    let link = headers.get(http::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let mut pieces = part.split(';');
        let url = pieces
            .next()?
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        pieces
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| url.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn rate_limits_by_their_headers() {
        let s403 = StatusCode::FORBIDDEN;
        let min = Duration::from_secs(60);
        let rate_limit_wait =
            |s: StatusCode, h: &http::HeaderMap| super::rate_limit_wait(s, h, "", min);
        assert_eq!(
            rate_limit_wait(s403, &headers(&[])),
            None,
            "plain 403 is a permission error"
        );
        let secondary = r#"{"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}"#;
        assert_eq!(
            super::rate_limit_wait(s403, &headers(&[]), secondary, min),
            Some(min),
            "a secondary limit without headers waits the documented minute"
        );
        assert_eq!(
            super::rate_limit_wait(
                s403,
                &headers(&[]),
                r#"{"message": "Resource not accessible by integration"}"#,
                min
            ),
            None
        );
        assert_eq!(
            rate_limit_wait(s403, &headers(&[("retry-after", "3")])),
            Some(Duration::from_secs(3))
        );
        let reset = (time::OffsetDateTime::now_utc().unix_timestamp() + 30).to_string();
        let w = rate_limit_wait(
            s403,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ]),
        )
        .expect("primary limit");
        assert!(w.as_secs() >= 28 && w.as_secs() <= 30, "{w:?}");
        assert_eq!(
            rate_limit_wait(s403, &headers(&[("x-ratelimit-remaining", "12")])),
            None
        );
        assert!(rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &headers(&[])).is_some());
        assert_eq!(
            rate_limit_wait(StatusCode::OK, &headers(&[("retry-after", "3")])),
            None
        );
    }

    #[test]
    fn next_links() {
        let h = headers(&[(
            "link",
            "<https://ghe/api/v3/repos/o/r/issues/1/comments?page=2>; rel=\"next\", <https://ghe/api/v3/x?page=5>; rel=\"last\"",
        )]);
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://ghe/api/v3/repos/o/r/issues/1/comments?page=2")
        );
        assert_eq!(next_link(&headers(&[("link", "<x>; rel=\"prev\"")])), None);
    }

    #[test]
    fn own_logins() {
        assert!(is_own_login("github-actions[bot]", true, "github-actions"));
        assert!(is_own_login(
            "github-actions[bot]",
            true,
            "github-actions[bot]"
        ));
        assert!(is_own_login("octocat", false, "octocat"));
        assert!(
            !is_own_login("rotor-app", false, "rotor-app[bot]"),
            "a person named like the app"
        );
        assert!(!is_own_login(
            "github-actions[bot]",
            false,
            "github-actions"
        ));
        assert!(!is_own_login("other-app[bot]", true, "rotor-app"));
    }

    #[test]
    fn graphql_urls() {
        assert_eq!(
            graphql_url_for("https://api.github.com"),
            "https://api.github.com/graphql"
        );
        assert_eq!(
            graphql_url_for("https://ghe.example.com/api/v3/"),
            "https://ghe.example.com/api/graphql"
        );
    }

    #[test]
    fn percent_encoding_of_paths() {
        assert_eq!(
            percent_encode_segment("rotor history.jsonl"),
            "rotor%20history.jsonl"
        );
    }
}
