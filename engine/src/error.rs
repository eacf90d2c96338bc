//! The engine's error type: `<verb>ing <object>: <cause>` plus hints that carry the fix.

use std::fmt;

/// Broad class of an [`Error`], for exit codes and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Bad invocation (arguments that contradict each other, unknown link, …).
    Usage,
    /// Bad configuration (`rotor.toml`, environment, missing credentials).
    Config,
    /// Azure answered 401/403: a Graph permission or Key Vault role is missing.
    Permission,
    /// The application, credential or secret does not exist.
    NotFound,
    /// The Key Vault secret is soft-deleted and must be recovered (or purged) first.
    SoftDeleted,
    /// Azure kept answering 429/503 beyond the retry budget.
    Throttled,
    /// Connection, TLS or timeout failure.
    Network,
    /// Azure refused a change because of the object's state (password cap, concurrent rotation, …).
    Conflict,
    /// A new credential could not be proven to work, or a read-back did not match.
    Verification,
    /// Anything else (unexpected responses, local I/O).
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::Usage => "usage",
            ErrorKind::Config => "config",
            ErrorKind::Permission => "permission",
            ErrorKind::NotFound => "not-found",
            ErrorKind::SoftDeleted => "soft-deleted",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Network => "network",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Verification => "verification",
            ErrorKind::Other => "other",
        };
        f.write_str(s)
    }
}

/// What failed, why, and how to fix it. Never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What was being done, as `<verb>ing <object>`, e.g.
    /// "writing Key Vault secret `myapp-secret` (vault `kv-prod`)".
    pub action: String,
    /// Why it failed, e.g. "403 Forbidden (Forbidden): caller lacks secrets/set".
    pub cause: String,
    /// Lines telling the user what to do (printed as `hint:` lines by the CLI).
    pub hints: Vec<String>,
    /// HTTP status, when the failure came from an HTTP response.
    pub status: Option<u16>,
    /// Service error code (`Authorization_RequestDenied`, `ObjectIsDeletedButRecoverable`, …).
    pub code: Option<String>,
    /// The object the failure is about, so front ends place it (a Terraform attribute, a table
    /// row) without reading the wording.
    pub subject: Option<Box<Subject>>,
}

/// What an [`Error`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// The application (appId), e.g. a Graph failure or the password cap.
    Application(String),
    /// One Key Vault secret of a link.
    Target(crate::model::Target),
    /// A policy or configuration key (`pending_window`).
    Setting(String),
    /// The link's lineage as a whole (another link claims it).
    Lineage {
        /// appId.
        app_id: String,
        /// The lineage's credential display name.
        credential_display_name: String,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.action, self.cause)
    }
}

/// Every engine error. `Display` is one sentence `<verb>ing <object>: <cause>`; [`Error::hints`]
/// holds the fix. The variant is the [`ErrorKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`ErrorKind::Usage`].
    #[error("{0}")]
    Usage(Failure),
    /// See [`ErrorKind::Config`].
    #[error("{0}")]
    Config(Failure),
    /// See [`ErrorKind::Permission`].
    #[error("{0}")]
    Permission(Failure),
    /// See [`ErrorKind::NotFound`].
    #[error("{0}")]
    NotFound(Failure),
    /// See [`ErrorKind::SoftDeleted`].
    #[error("{0}")]
    SoftDeleted(Failure),
    /// See [`ErrorKind::Throttled`].
    #[error("{0}")]
    Throttled(Failure),
    /// See [`ErrorKind::Network`].
    #[error("{0}")]
    Network(Failure),
    /// See [`ErrorKind::Conflict`].
    #[error("{0}")]
    Conflict(Failure),
    /// See [`ErrorKind::Verification`].
    #[error("{0}")]
    Verification(Failure),
    /// See [`ErrorKind::Other`].
    #[error("{0}")]
    Other(Failure),
}

/// `Result` with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an error of `kind`: `action` is `<verb>ing <object>`, `cause` says why.
    pub fn new(kind: ErrorKind, action: impl Into<String>, cause: impl Into<String>) -> Error {
        let failure = Failure {
            action: action.into(),
            cause: cause.into(),
            hints: Vec::new(),
            status: None,
            code: None,
            subject: None,
        };
        match kind {
            ErrorKind::Usage => Error::Usage(failure),
            ErrorKind::Config => Error::Config(failure),
            ErrorKind::Permission => Error::Permission(failure),
            ErrorKind::NotFound => Error::NotFound(failure),
            ErrorKind::SoftDeleted => Error::SoftDeleted(failure),
            ErrorKind::Throttled => Error::Throttled(failure),
            ErrorKind::Network => Error::Network(failure),
            ErrorKind::Conflict => Error::Conflict(failure),
            ErrorKind::Verification => Error::Verification(failure),
            ErrorKind::Other => Error::Other(failure),
        }
    }

    /// Shorthand for a [`ErrorKind::Config`] error.
    pub fn config(action: impl Into<String>, cause: impl Into<String>) -> Error {
        Error::new(ErrorKind::Config, action, cause)
    }

    /// Shorthand for a [`ErrorKind::Usage`] error.
    pub fn usage(action: impl Into<String>, cause: impl Into<String>) -> Error {
        Error::new(ErrorKind::Usage, action, cause)
    }

    /// Shorthand for a [`ErrorKind::Other`] error.
    pub fn other(action: impl Into<String>, cause: impl Into<String>) -> Error {
        Error::new(ErrorKind::Other, action, cause)
    }

    /// The error's class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Usage(_) => ErrorKind::Usage,
            Error::Config(_) => ErrorKind::Config,
            Error::Permission(_) => ErrorKind::Permission,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::SoftDeleted(_) => ErrorKind::SoftDeleted,
            Error::Throttled(_) => ErrorKind::Throttled,
            Error::Network(_) => ErrorKind::Network,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Verification(_) => ErrorKind::Verification,
            Error::Other(_) => ErrorKind::Other,
        }
    }

    /// The structured failure behind the message.
    pub fn failure(&self) -> &Failure {
        match self {
            Error::Usage(f)
            | Error::Config(f)
            | Error::Permission(f)
            | Error::NotFound(f)
            | Error::SoftDeleted(f)
            | Error::Throttled(f)
            | Error::Network(f)
            | Error::Conflict(f)
            | Error::Verification(f)
            | Error::Other(f) => f,
        }
    }

    fn failure_mut(&mut self) -> &mut Failure {
        match self {
            Error::Usage(f)
            | Error::Config(f)
            | Error::Permission(f)
            | Error::NotFound(f)
            | Error::SoftDeleted(f)
            | Error::Throttled(f)
            | Error::Network(f)
            | Error::Conflict(f)
            | Error::Verification(f)
            | Error::Other(f) => f,
        }
    }

    /// Sets what the error is about, unless an inner step already did.
    pub fn with_subject(mut self, subject: Subject) -> Error {
        let f = self.failure_mut();
        if f.subject.is_none() {
            f.subject = Some(Box::new(subject));
        }
        self
    }

    /// What the error is about, when known.
    pub fn subject(&self) -> Option<&Subject> {
        self.failure().subject.as_deref()
    }

    /// Lines telling the user how to fix the problem (may be empty).
    pub fn hints(&self) -> Vec<String> {
        self.failure().hints.clone()
    }

    /// HTTP status of the response behind the error, if any.
    pub fn status(&self) -> Option<u16> {
        self.failure().status
    }

    /// Service error code behind the error, if any.
    pub fn code(&self) -> Option<&str> {
        self.failure().code.as_deref()
    }

    /// Adds a hint line.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.failure_mut().hints.push(hint.into());
        self
    }

    /// Adds several hint lines.
    #[must_use]
    pub fn with_hint_all(mut self, hints: Vec<String>) -> Error {
        self.failure_mut().hints.extend(hints);
        self
    }

    /// Records the HTTP status and service error code.
    #[must_use]
    pub fn with_status(mut self, status: Option<u16>, code: Option<String>) -> Error {
        let f = self.failure_mut();
        f.status = status;
        f.code = code;
        self
    }

    /// Replaces the action (`<verb>ing <object>`) keeping cause and hints.
    #[must_use]
    pub fn with_action(mut self, action: impl Into<String>) -> Error {
        self.failure_mut().action = action.into();
        self
    }

    /// The message followed by `hint:` lines — what a CLI prints.
    pub fn render(&self) -> String {
        let mut s = self.to_string();
        for h in self.hints() {
            s.push_str("\nhint: ");
            s.push_str(&h);
        }
        s
    }
}
