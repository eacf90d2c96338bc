//! GitHub REST calls made by `rotor action` and `rotor report`, through octocrab.
//!
//! - Works with an installation token (`GITHUB_TOKEN`): never calls `/user`. Our own comment is
//!   recognised by its hidden marker ([`super::markdown::marker`]) and, when GitHub says so, a
//!   `Bot` author.
//! - Honours `GITHUB_API_URL`, so GitHub Enterprise Server (`https://HOST/api/v3`) works.
//! - octocrab's own retry is off (it would resend a POST blindly on 5xx/429). Instead a request
//!   that GitHub rate-limited — 429, or 403 with `retry-after`, or 403 with
//!   `x-ratelimit-remaining: 0` — is retried **once** after waiting as the headers say; GitHub
//!   did not process it, so nothing is posted twice. A POST whose outcome is unknown (connection
//!   lost, 5xx) is never resent blindly: creating the sticky comment looks again for the marker.

use std::time::Duration;

use http::{Method, StatusCode};
use octocrab::Octocrab;
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
            Some(429) => vec!["GitHub's rate limit was reached: run the workflow again later".into()],
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

/// A repository on a GitHub (or GitHub Enterprise Server) API.
pub struct GitHub {
    crab: Octocrab,
    owner: String,
    repo: String,
    /// Longest rate-limit wait we accept before giving up.
    pub max_wait: Duration,
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
    pub fn new(api_url: &str, token: &str, owner: &str, repo: &str) -> anyhow::Result<GitHub> {
        let crab = Octocrab::builder()
            .personal_token(token.to_string())
            .base_uri(api_url)
            .map_err(|e| anyhow::anyhow!("using GITHUB_API_URL `{api_url}`: {e}"))?
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(20)))
            .set_read_timeout(Some(Duration::from_secs(60)))
            .build()
            .map_err(|e| anyhow::anyhow!("creating the GitHub client for `{api_url}`: {e}"))?;
        let max_wait = std::env::var("ROTOR_GITHUB_MAX_WAIT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(120), Duration::from_secs);
        Ok(GitHub {
            crab,
            owner: owner.to_string(),
            repo: repo.to_string(),
            max_wait,
        })
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.repo)
    }

    async fn send_once(
        &self,
        method: &Method,
        uri: &str,
        body: Option<&Value>,
        action: &str,
        accept: &str,
    ) -> Result<(StatusCode, http::HeaderMap, String), ApiError> {
        // octocrab adds `X-GitHub-Api-Version` itself.
        let builder = http::Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(http::header::ACCEPT, accept);
        let request = self
            .crab
            .build_request(builder, body)
            .map_err(|e| ApiError::Transport {
                action: action.to_string(),
                cause: e.to_string(),
            })?;
        let response = self
            .crab
            .execute(request)
            .await
            .map_err(|e| ApiError::Transport {
                action: action.to_string(),
                cause: e.to_string(),
            })?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = self
            .crab
            .body_to_string(response)
            .await
            .map_err(|e| ApiError::Transport {
                action: action.to_string(),
                cause: e.to_string(),
            })?;
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
            if let Some(wait) = rate_limit_wait(status, &headers) {
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

    /// Comments on issue/pull request `number` that carry the marker for `key`, oldest first,
    /// as `(id, body, author_is_bot)`.
    async fn marked_comments(
        &self,
        number: u64,
        key: &str,
    ) -> Result<Vec<(u64, String, bool)>, ApiError> {
        let marker = markdown::marker(key);
        let comments = self
            .get_all(
                &self.repo_path(&format!("/issues/{number}/comments?per_page=100")),
                &format!("listing the comments of pull request #{number}"),
            )
            .await?;
        Ok(comments
            .into_iter()
            .filter_map(|c| {
                let id = c.get("id")?.as_u64()?;
                let body = c.get("body")?.as_str()?.to_string();
                if !body.starts_with(&marker) {
                    return None;
                }
                let user = c.get("user");
                let bot = user
                    .and_then(|u| u.get("type"))
                    .and_then(Value::as_str)
                    .is_some_and(|t| t == "Bot")
                    || user
                        .and_then(|u| u.get("login"))
                        .and_then(Value::as_str)
                        .is_some_and(|l| l == "github-actions[bot]");
                Some((id, body, bot))
            })
            .collect())
    }

    /// Finds our comment for `key` on `number`; prefers one written by a bot.
    /// When two runs raced and both created a comment, the newer bot-written copies are deleted
    /// so exactly one remains (the oldest).
    async fn find_sticky(&self, number: u64, key: &str) -> Result<Option<(u64, String)>, ApiError> {
        let found = self.marked_comments(number, key).await?;
        let bots: Vec<&(u64, String, bool)> = found.iter().filter(|(_, _, bot)| *bot).collect();
        for (id, _, _) in bots.iter().skip(1) {
            match self
                .request(
                    Method::DELETE,
                    &self.repo_path(&format!("/issues/comments/{id}")),
                    None,
                    &format!("deleting a duplicate rotor comment on pull request #{number}"),
                )
                .await
            {
                Ok(_) | Err(ApiError::Status { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let pick = bots
            .first()
            .copied()
            .or_else(|| found.first())
            .map(|(id, body, _)| (*id, body.clone()));
        Ok(pick)
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
        if let Some((id, existing)) = self.find_sticky(number, key).await? {
            if existing.trim_end() == body.trim_end() {
                return Ok(CommentOutcome::Unchanged(id));
            }
            self.request(
                Method::PATCH,
                &self.repo_path(&format!("/issues/comments/{id}")),
                Some(&json!({ "body": body })),
                &format!("updating rotor's comment on pull request #{number}"),
            )
            .await?;
            return Ok(CommentOutcome::Updated(id));
        }
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
                    Some((kept, existing)) if kept != id => {
                        if existing.trim_end() != body.trim_end() {
                            self.request(
                                Method::PATCH,
                                &self.repo_path(&format!("/issues/comments/{kept}")),
                                Some(&json!({ "body": body })),
                                &format!("updating rotor's comment on pull request #{number}"),
                            )
                            .await?;
                        }
                        Ok(CommentOutcome::Updated(kept))
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
                Ok(Some((id, _))) => Ok(CommentOutcome::Created(id)),
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Commits `append` (JSON Lines) to the end of `file_path` on `branch` and opens — or
    /// updates the body of — the pull request from `branch` into the default branch.
    ///
    /// The branch is created from the default branch when missing, and reset to it when no pull
    /// request from it is open (the previous audit pull request was merged or closed), so each
    /// audit pull request starts from the history the default branch has.
    pub async fn publish_audit(
        &self,
        branch: &str,
        file_path: &str,
        append: &str,
        title: &str,
        body: &str,
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
        self.append_file(branch, file_path, append, title).await?;

        // 4. Open or update the pull request.
        if let Some(pr) = existing {
            let number = pr.get("number").and_then(Value::as_u64).unwrap_or(0);
            let resp = self
                .request(
                    Method::PATCH,
                    &self.repo_path(&format!("/pulls/{number}")),
                    Some(&json!({ "body": body })),
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

    /// Appends `append` to `file_path` on `branch` through the contents API (one commit).
    async fn append_file(
        &self,
        branch: &str,
        file_path: &str,
        append: &str,
        message: &str,
    ) -> Result<(), ApiError> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let encoded_path = file_path
            .split('/')
            .map(percent_encode_segment)
            .collect::<Vec<_>>()
            .join("/");
        let contents_uri = self.repo_path(&format!("/contents/{encoded_path}"));
        let read_action = format!("reading `{file_path}` on branch `{branch}`");
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (existing, sha) = match self
                .request(
                    Method::GET,
                    &format!("{contents_uri}?ref={branch}"),
                    None,
                    &read_action,
                )
                .await
            {
                Ok(resp) => {
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
                        // Over 1 MB the JSON carries no content (`encoding: none`): fetch it raw,
                        // never overwrite the history with only this run's records.
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
                    (text, sha)
                }
                Err(ApiError::Status { status: 404, .. }) => (String::new(), None),
                Err(e) => return Err(e),
            };
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
                Ok(_) => return Ok(()),
                Err(ApiError::Status {
                    status: 409 | 422, ..
                }) if attempts < 2 => continue,
                Err(e) => return Err(e),
            }
        }
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

/// How long GitHub asks us to wait, if this answer is a rate limit: 429, or 403 with
/// `retry-after` (secondary limit) or `x-ratelimit-remaining: 0` (primary limit, until
/// `x-ratelimit-reset`). A plain 403 is a permission error, not a rate limit.
pub fn rate_limit_wait(status: StatusCode, headers: &http::HeaderMap) -> Option<Duration> {
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
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Some(Duration::from_secs(60));
    }
    None
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
        assert_eq!(
            rate_limit_wait(s403, &headers(&[])),
            None,
            "plain 403 is a permission error"
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
    fn percent_encoding_of_paths() {
        assert_eq!(
            percent_encode_segment("rotor history.jsonl"),
            "rotor%20history.jsonl"
        );
    }
}
