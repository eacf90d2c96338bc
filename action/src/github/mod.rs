//! `rotor action` and `rotor report`: GitHub runner integration, Markdown reports, sticky
//! comments, audit pull requests.
//!
//! | module | does |
//! |---|---|
//! | [`markdown`] | escaping of untrusted text; the report model and its trimmed rendering |
//! | [`runner`] | the runner's environment (`GITHUB_*`), outputs, job summary, annotations, masks |
//! | [`github_api`] | the REST calls (reqwest, `User-Agent: rotor/<version>`) and two GraphQL ones (`viewer`, `minimizeComment`): sticky comment, audit branch/commit/pull request |
//! | [`action`] | `rotor action`: the flow for the event (pull request report, scheduled rotation, one-click rotation from the dashboard) |
//! | [`dashboard`] | the rotation dashboard issue: the tenant by urgency, its check-boxes |
//! | [`report`] | `rotor report`: records / rotate JSON / a Terraform plan as a Markdown report |
//! | [`records`] | audit records as read from JSON, and their conversion to report rows |

pub mod action;
pub mod dashboard;
pub mod github_api;
pub mod markdown;
pub mod records;
pub mod report;
pub mod runner;

use std::path::PathBuf;

/// Whether `rotor action` keeps a sticky pull request comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CommentMode {
    /// Create the comment once, then update it in place (left alone when unchanged).
    #[default]
    Update,
    /// Minimize the previous comment as outdated (GraphQL `minimizeComment`) and post a new one.
    HideAndNew,
    /// Never comment; the report goes to the job summary only.
    Off,
}

/// What `rotor action` does with the pull request comment when nothing is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum NothingDue {
    /// Comment anyway ("Nothing is due").
    #[default]
    Comment,
    /// Post no new comment; an existing one is updated so it does not show stale rows.
    Skip,
    /// Delete rotor's comment (for this key), post none.
    Delete,
}

/// The events `rotor action` rotates on.
pub const ROTATE_EVENTS: [&str; 2] = ["schedule", "workflow_dispatch"];
/// The event on which `rotor action` rotates the credentials ticked on its dashboard issue
/// (action `edited` only; the sender needs write permission).
pub const DASHBOARD_EVENT: &str = "issues";
/// The events `rotor action` reports on (a dry run; nothing changes).
pub const REPORT_EVENTS: [&str; 2] = ["pull_request", "pull_request_target"];

/// `rotor action`: run the flow for the GitHub event that triggered the workflow.
///
/// `pull_request` / `pull_request_target` → dry-run report as one sticky comment, job summary,
/// outputs; changes nothing. `schedule` / `workflow_dispatch` → rotate what is due, append audit
/// records to the history file, job summary, outputs, optional audit pull request. Any other
/// event is refused (exit 2) before anything is read or changed.
#[derive(Debug, Clone, clap::Args)]
pub struct ActionArgs {
    /// Report what would rotate without changing anything, whatever the event.
    #[arg(long)]
    pub dry_run: bool,

    /// Sticky pull request comment behaviour.
    #[arg(long, value_enum, default_value_t = CommentMode::Update)]
    pub comment: CommentMode,

    /// Sticky comment key: steps with different keys keep different comments on one pull request.
    #[arg(long, default_value = "action", value_name = "KEY")]
    pub comment_key: String,

    /// The pull request comment when nothing is due.
    #[arg(long, value_enum, default_value_t = NothingDue::Comment)]
    pub comment_if_nothing_due: NothingDue,

    /// On pull requests, label the pull request by outcome: `rotor:failed`, `rotor:would-rotate`
    /// or `rotor:nothing-due` (exactly one; the other two are removed).
    #[arg(long)]
    pub labels: bool,

    /// After a rotation run, commit the run's audit records to the history file on a branch and
    /// open (or update) an audit pull request.
    #[arg(long)]
    pub audit_pr: bool,

    /// After rotating (not on pull requests or dry runs), remove old credentials whose grace
    /// period has passed — never one a vault still holds, never one outside rotor's lineages.
    #[arg(long)]
    pub cleanup: bool,

    /// On `schedule`/`workflow_dispatch`: create or update the rotation dashboard issue (one
    /// issue, found by a hidden marker and authored by the token's own login), whose check-boxes
    /// request a rotation on the `issues` (`edited`) event.
    #[arg(long)]
    pub dashboard: bool,

    /// Title of the dashboard issue.
    #[arg(long, default_value = dashboard::DEFAULT_TITLE, value_name = "TEXT")]
    pub dashboard_title: String,

    /// Branch the audit pull request is made from.
    #[arg(long, default_value = "rotor/audit", value_name = "BRANCH")]
    pub audit_branch: String,

    /// Where to write the full Markdown report (default: `$RUNNER_TEMP/rotor-report.md`, else
    /// `rotor-report.md`).
    #[arg(long, value_name = "PATH")]
    pub report_path: Option<PathBuf>,

    /// Event name (default: `GITHUB_EVENT_NAME`).
    #[arg(long, value_name = "NAME")]
    pub event_name: Option<String>,

    /// Event payload file (default: `GITHUB_EVENT_PATH`).
    #[arg(long, value_name = "PATH")]
    pub event_path: Option<PathBuf>,
}

/// `rotor report`: render results as Markdown (stdout), append them to the job summary, or post
/// them as the sticky pull request comment.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// JSON produced by `rotor rotate`/`cleanup`/`history`/`match --output json` (`-` for stdin);
    /// without it, and without `--terraform-plan`, the history file is rendered.
    #[arg(long, value_name = "FILE", conflicts_with = "terraform_plan")]
    pub input: Option<PathBuf>,

    /// `terraform show -json` output: render the `rotor_secret_link` changes (which links rotate
    /// and why, which vaults change).
    #[arg(long, value_name = "FILE")]
    pub terraform_plan: Option<PathBuf>,

    /// History: only records started at or after this time (RFC 3339, YYYY-MM-DD or relative: `-7d`).
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    pub since: Option<String>,

    /// History: only records started before this time (same forms as --since).
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    pub until: Option<String>,

    /// History: only records of this application (display name or appId; `*` globs).
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,

    /// History: only records with this status (success, failed, skipped, excluded).
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,

    /// Heading of the report.
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,

    /// Append the report to `$GITHUB_STEP_SUMMARY`.
    #[arg(long)]
    pub summary: bool,

    /// Post (or update) the sticky comment on the pull request of the triggering event.
    #[arg(long)]
    pub comment: bool,

    /// Pull request number for `--comment` (default: from the event payload).
    #[arg(long, value_name = "NUMBER")]
    pub pr: Option<u64>,

    /// Sticky comment key: reports with different keys get different comments.
    #[arg(long, default_value = "report", value_name = "KEY")]
    pub key: String,

    /// Also write the Markdown to this file.
    #[arg(long, value_name = "PATH")]
    pub report_path: Option<PathBuf>,
}

pub use action::run_action;
pub use report::run_report;
