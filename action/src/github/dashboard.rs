//! The rotation dashboard: one issue, kept up to date by scheduled runs (`--dashboard`), that
//! shows every application credential rotor can see — client secrets and certificates — with
//! expiry urgency, link status, confidence and its signals, the Key Vault secrets or
//! certificates that hold it, the next rotation or why one is due, what blocks rotation and the
//! fix, the last rotation — and whose check-boxes request a rotation (the `issues` `edited`
//! event, see [`super::action`]).
//!
//! A box names its kind, its appId and the keyId of the credential it replaces:
//! `<!-- rotor-rotate: A K -->` for a client secret, `<!-- rotor-rotate-certificate: A K -->`
//! for a certificate. One-click rotation looks a ticked box up by all three, so a box can only
//! ever rotate the lineage of that kind whose current credential it named.
//!
//! The issue is rotor's when its body starts with [`DASHBOARD_MARKER`] **and** its author is the
//! token's own login (GraphQL `viewer`), like the sticky comment. Every name from Azure goes
//! through [`markdown::escape`]; ids (GUIDs) are put in code spans and in the boxes' hidden
//! markers only after checking they are made of `[0-9A-Za-z-]`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use time::OffsetDateTime;

use super::markdown;
use crate::commands::lineage::AnyLink;

/// The hidden first line of rotor's dashboard issue.
pub const DASHBOARD_MARKER: &str = "<!-- rotor-dashboard -->";
/// Default title of the dashboard issue.
pub const DEFAULT_TITLE: &str = "rotor: credential rotation dashboard";
/// A credential is `soon` when its next rotation is within this many days.
pub const SOON_DAYS: i64 = 30;
/// Sections with more entries than this are folded in `<details>`.
pub const VISIBLE_ENTRIES: usize = 10;

/// How urgent a credential is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Urgency {
    /// Past its end date.
    Expired,
    /// Policy wants it rotated now.
    Due,
    /// Its rotation is due within [`SOON_DAYS`].
    Soon,
    /// Nothing to do for a while.
    Fine,
}

impl Urgency {
    /// The section heading word.
    pub fn label(self) -> &'static str {
        match self {
            Urgency::Expired => "Expired",
            Urgency::Due => "Due",
            Urgency::Soon => "Soon",
            Urgency::Fine => "Fine",
        }
    }

    /// From the end date, when policy wants the next rotation, and whether it is due now.
    pub fn of(
        now: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
        next_rotation_at: Option<OffsetDateTime>,
        due: bool,
    ) -> Urgency {
        if expires_at.is_some_and(|e| e <= now) {
            Urgency::Expired
        } else if due || next_rotation_at.is_some_and(|n| n <= now) {
            Urgency::Due
        } else if next_rotation_at
            .or(expires_at)
            .is_some_and(|n| n <= now + time::Duration::days(SOON_DAYS))
        {
            Urgency::Soon
        } else {
            Urgency::Fine
        }
    }
}

/// Which kind of credential an entry is; part of its box's identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A password credential (client secret) held by Key Vault secrets.
    #[default]
    Secret,
    /// A key credential (certificate) lineage held by Key Vault certificate(s).
    Certificate,
}

impl Kind {
    /// The word reports use (`client secret`, `certificate`).
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Secret => "client secret",
            Kind::Certificate => "certificate",
        }
    }
}

/// What the check-box of an entry does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No box: rotation is blocked (see [`Entry::blocked`]).
    None,
    /// One box rotates it.
    Rotate,
    /// The match is below the minimum confidence: a second box naming the risk must be ticked
    /// too. Holds the confidence of the match.
    RotateAtRisk(String),
}

/// One application credential (lineage) on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Client secret or certificate.
    pub kind: Kind,
    /// Application display name.
    pub app: String,
    /// appId.
    pub app_id: String,
    /// Lineage name of the credential.
    pub credential: String,
    /// keyId of the credential the box names (the current one).
    pub key_id: String,
    /// Certificates: SHA-1 thumbprint (hex) of that credential.
    pub thumbprint: Option<String>,
    /// End date of that credential.
    pub expires_at: Option<OffsetDateTime>,
    /// When policy wants the next rotation.
    pub next_rotation_at: Option<OffsetDateTime>,
    /// Why a rotation (or, for a certificate, a sync) is due now.
    pub due_reason: Option<String>,
    /// Urgency.
    pub urgency: Urgency,
    /// Link status in words (`linked`, `linked, the targets diverge`, `linked, a sync is
    /// pending …`, `not linked`).
    pub link: String,
    /// Confidence word (`HIGH` …).
    pub confidence: String,
    /// The signals of the best match.
    pub signals: Vec<String>,
    /// Key Vault secrets (certificates, for a certificate) holding it: (vault URL, name).
    pub vaults: Vec<(String, String)>,
    /// What blocks rotation and the fix.
    pub blocked: Option<(String, String)>,
    /// Last rotation from the history (`2026-11-02, success`).
    pub last_rotation: Option<String>,
    /// The box.
    pub action: Action,
}

/// The whole dashboard.
#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    /// Issue title (plain text; GitHub renders titles as text).
    pub title: String,
    /// Entries, any order (rendered by urgency).
    pub entries: Vec<Entry>,
    /// Link to the run (job summary) for what does not fit.
    pub run_url: Option<String>,
    /// When it was rendered.
    pub generated_at: Option<OffsetDateTime>,
    /// Notes shown under the heading (vault failures, …), already escaped.
    pub notes: Vec<String>,
}

/// Whether `id` may be put in a hidden marker and a code span as is.
fn plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.contains("--")
}

/// The hidden marker of the rotate box of a client secret (app, key).
pub fn rotate_marker(app_id: &str, key_id: &str) -> String {
    format!("<!-- rotor-rotate: {app_id} {key_id} -->")
}

/// The hidden marker of the rotate box of a certificate lineage (app, key credential).
pub fn certificate_marker(app_id: &str, key_id: &str) -> String {
    format!("<!-- rotor-rotate-certificate: {app_id} {key_id} -->")
}

/// The hidden marker of the rotate box of an entry of `kind`.
pub fn box_marker(kind: Kind, app_id: &str, key_id: &str) -> String {
    match kind {
        Kind::Secret => rotate_marker(app_id, key_id),
        Kind::Certificate => certificate_marker(app_id, key_id),
    }
}

/// The hidden marker of the risk box of a client secret (app, key); certificates (matched by
/// thumbprint) have none.
pub fn risk_marker(app_id: &str, key_id: &str) -> String {
    format!("<!-- rotor-risk: {app_id} {key_id} -->")
}

/// A ticked request read from the issue body.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticked {
    /// The kind the box named.
    pub kind: Kind,
    /// appId.
    pub app_id: String,
    /// keyId the box named.
    pub key_id: String,
    /// The risk box is ticked too (client secrets only).
    pub risk_accepted: bool,
}

/// The ticked rotate boxes of a dashboard body (a line `- [x] <!-- rotor-rotate: A K -->`, or
/// `- [x] <!-- rotor-rotate-certificate: A K -->`), with whether their risk box is ticked. Boxes
/// anywhere else (quoted, in code) are not boxes.
pub fn ticked(body: &str) -> Vec<Ticked> {
    let mut rotate: BTreeSet<(Kind, String, String)> = BTreeSet::new();
    let mut risk: BTreeSet<(String, String)> = BTreeSet::new();
    let mut in_fence = false;
    for line in body.lines() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let Some(rest) = t
            .strip_prefix("- [x] ")
            .or_else(|| t.strip_prefix("- [X] "))
        else {
            continue;
        };
        let ids = |prefix: &str| {
            let (ids, _) = rest.strip_prefix(prefix)?.split_once(" -->")?;
            let (a, k) = ids.split_once(' ')?;
            (plain_id(a) && plain_id(k)).then(|| (a.to_ascii_lowercase(), k.to_ascii_lowercase()))
        };
        if let Some((a, k)) = ids("<!-- rotor-rotate: ") {
            rotate.insert((Kind::Secret, a, k));
        } else if let Some((a, k)) = ids("<!-- rotor-rotate-certificate: ") {
            rotate.insert((Kind::Certificate, a, k));
        } else if let Some(ak) = ids("<!-- rotor-risk: ") {
            risk.insert(ak);
        }
    }
    rotate
        .into_iter()
        .map(|(kind, a, k)| Ticked {
            risk_accepted: kind == Kind::Secret && risk.contains(&(a.clone(), k.clone())),
            kind,
            app_id: a,
            key_id: k,
        })
        .collect()
}

/// Whether `t` is a hex thumbprint (rendered as is).
fn hex(t: &str) -> bool {
    !t.is_empty() && t.len() <= 128 && t.chars().all(|c| c.is_ascii_hexdigit())
}

fn date(t: OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

impl Entry {
    /// An entry for credential lineage `credential` of `app`, its newest credential `newest`
    /// (key id, thumbprint, end), before anything links it: not linked, fine, no action.
    fn unlinked(
        kind: Kind,
        app: &rotor_engine::Application,
        credential: String,
        newest: Option<(String, Option<String>, OffsetDateTime)>,
        last_rotation: Option<String>,
    ) -> Entry {
        let (key_id, thumbprint, expires_at) = match newest {
            Some((k, t, end)) => (k, t, Some(end)),
            None => (String::new(), None, None),
        };
        Entry {
            kind,
            app: app.display_name.clone(),
            app_id: app.app_id.clone(),
            credential,
            key_id,
            thumbprint,
            expires_at,
            next_rotation_at: None,
            due_reason: None,
            urgency: Urgency::Fine,
            link: "not linked".into(),
            confidence: rotor_engine::Confidence::None.to_string(),
            signals: vec![],
            vaults: vec![],
            blocked: None,
            last_rotation,
            action: Action::None,
        }
    }

    /// One list item (with its nested lines), `boxes`: render check-boxes.
    fn render(&self, boxes: bool) -> String {
        let mut s = String::new();
        let mut name = format!(
            "**{}** / {}",
            markdown::escape(&self.app),
            markdown::escape(&self.credential)
        );
        if self.kind == Kind::Certificate {
            match self.thumbprint.as_deref().filter(|t| hex(t)) {
                Some(t) => {
                    let _ = write!(name, " (certificate {})", super::records::thumb(t));
                }
                None => name.push_str(" (certificate)"),
            }
        }
        let ids_ok = plain_id(&self.app_id) && plain_id(&self.key_id);
        let expiry = match self.expires_at {
            Some(e) => format!("expires {}", date(e)),
            None => "no expiry known".to_string(),
        };
        match (&self.action, boxes && ids_ok) {
            (Action::Rotate | Action::RotateAtRisk(_), true) => {
                let _ = write!(
                    s,
                    "- [ ] {} Rotate {name} — {expiry}",
                    box_marker(self.kind, &self.app_id, &self.key_id)
                );
            }
            _ => {
                let _ = write!(s, "- {name} — {expiry}");
            }
        }
        s.push('\n');
        let mut detail = format!(
            "  - {}; confidence {}",
            markdown::escape(&self.link),
            markdown::escape(&self.confidence)
        );
        if !self.signals.is_empty() {
            let sig: Vec<String> = self.signals.iter().map(|x| markdown::code(x)).collect();
            let _ = write!(detail, " ({})", sig.join(", "));
        }
        let _ = write!(detail, "; app {}", markdown::code(&self.app_id));
        if !self.vaults.is_empty() {
            let v: Vec<String> = self
                .vaults
                .iter()
                .map(|(u, n)| {
                    format!(
                        "{}/{}",
                        markdown::escape(&markdown::vault_name(u)),
                        markdown::escape(n)
                    )
                })
                .collect();
            let what = match (self.kind, v.len()) {
                (Kind::Secret, _) => "",
                (Kind::Certificate, 1) => "Key Vault certificate ",
                (Kind::Certificate, _) => "Key Vault certificates ",
            };
            let _ = write!(detail, "; held by {what}{}", v.join(", "));
        }
        if let Some(n) = self.next_rotation_at {
            let _ = write!(detail, "; next rotation {}", date(n));
        }
        match &self.last_rotation {
            Some(l) => {
                let _ = write!(detail, "; last rotation {}", markdown::escape(l));
            }
            None => detail.push_str("; no rotation in the history"),
        }
        s.push_str(&detail);
        s.push('\n');
        if let Some(why) = &self.due_reason {
            let _ = writeln!(s, "  - due: {}", markdown::escape(why));
        }
        if let Some((what, fix)) = &self.blocked {
            let _ = writeln!(
                s,
                "  - blocked: {}. Fix: {}",
                markdown::escape(what),
                markdown::escape(fix)
            );
        }
        if let (Action::RotateAtRisk(c), true, Kind::Secret) =
            (&self.action, boxes && ids_ok, self.kind)
        {
            let _ = writeln!(
                s,
                "  - [ ] {} I accept the risk: this match is only {} confidence, below the policy minimum, so the new value may be written into a secret that holds another credential",
                risk_marker(&self.app_id, &self.key_id),
                markdown::escape(c)
            );
        }
        s
    }
}

impl Dashboard {
    /// Entries by urgency, then application and credential name.
    pub fn sorted(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.entries.iter().collect();
        v.sort_by(|a, b| {
            (
                a.urgency,
                a.blocked.is_some(),
                &a.app,
                &a.credential,
                a.kind,
            )
                .cmp(&(
                    b.urgency,
                    b.blocked.is_some(),
                    &b.app,
                    &b.credential,
                    b.kind,
                ))
        });
        v
    }

    /// The issue body, at most `limit` bytes (so at most `limit` characters). Sections in
    /// urgency order; a section longer than [`VISIBLE_ENTRIES`] is folded in `<details>`
    /// (`Expired` and `Due` open). Entries that do not fit are left out, counted, and pointed at
    /// the run's job summary. `boxes`: render check-boxes (the issue; not the job summary).
    pub fn render(&self, limit: usize, boxes: bool) -> String {
        let mut head = String::new();
        head.push_str(DASHBOARD_MARKER);
        head.push('\n');
        let _ = writeln!(head, "## {}\n", markdown::escape(&self.title));
        let mut counts: BTreeMap<Urgency, usize> = BTreeMap::new();
        for e in &self.entries {
            *counts.entry(e.urgency).or_default() += 1;
        }
        let blocked = self.entries.iter().filter(|e| e.blocked.is_some()).count();
        let parts: Vec<String> = counts
            .iter()
            .map(|(u, n)| format!("{n} {}", u.label().to_lowercase()))
            .collect();
        let certificates = self
            .entries
            .iter()
            .filter(|e| e.kind == Kind::Certificate)
            .count();
        let _ = writeln!(
            head,
            "{} credentials{} of {} applications: {}; {blocked} blocked.\n",
            self.entries.len(),
            match certificates {
                0 => String::new(),
                1 => " (1 certificate)".to_string(),
                n => format!(" ({n} certificates)"),
            },
            self.entries
                .iter()
                .map(|e| &e.app_id)
                .collect::<BTreeSet<_>>()
                .len(),
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(", ")
            }
        );
        if boxes {
            head.push_str(
                "Tick a box to rotate that credential now (you need write access to this repository; policy, exclusions and confidence rules still apply; a certificate gets a new Key Vault version, or the one Key Vault already made). rotor comments the result and clears the box.\n\n",
            );
        }
        for n in &self.notes {
            let _ = writeln!(head, "> [!WARNING]\n> {n}\n");
        }
        let mut tail = String::new();
        if let Some(t) = self.generated_at {
            let _ = write!(
                tail,
                "\n<sub>Updated {} UTC",
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            );
            if let Some(u) = &self.run_url {
                let _ = write!(tail, " by [this run]({u})");
            }
            tail.push_str("</sub>\n");
        }
        // Room for the "left out" line.
        let reserve = 400 + self.run_url.as_ref().map_or(0, String::len);
        let budget = limit.saturating_sub(head.len() + tail.len() + reserve);
        let mut body = String::new();
        let mut left_out = 0usize;
        let sorted = self.sorted();
        let mut i = 0;
        while i < sorted.len() {
            let u = sorted[i].urgency;
            let j = sorted[i..]
                .iter()
                .position(|e| e.urgency != u)
                .map_or(sorted.len(), |k| i + k);
            let section = &sorted[i..j];
            let fold = section.len() > VISIBLE_ENTRIES;
            let mut sec = format!("### {} ({})\n\n", u.label(), section.len());
            if fold {
                let open = if matches!(u, Urgency::Expired | Urgency::Due) {
                    " open"
                } else {
                    ""
                };
                let _ = write!(
                    sec,
                    "<details{open}><summary>{} credentials</summary>\n\n",
                    section.len()
                );
            }
            let closing = if fold { "\n</details>\n\n" } else { "\n" };
            let mut shown = 0;
            for e in section {
                let item = e.render(boxes);
                if left_out == 0 && body.len() + sec.len() + item.len() + closing.len() <= budget {
                    sec.push_str(&item);
                    shown += 1;
                } else {
                    left_out += 1;
                }
            }
            if shown > 0 {
                sec.push_str(closing);
                body.push_str(&sec);
            }
            i = j;
        }
        let mut out = head;
        out.push_str(&body);
        if left_out > 0 {
            let _ = writeln!(
                out,
                "\n> [!NOTE]\n> {left_out} more credentials (the least urgent) do not fit in this issue: {}.",
                match &self.run_url {
                    Some(u) => format!("see the [job summary of the run]({u})"),
                    None => "see the job summary of the run".to_string(),
                }
            );
        }
        out.push_str(&tail);
        debug_assert!(out.len() <= limit || limit < 2000);
        out
    }
}

/// What a one-click rotation of an entry rotates: the link (a secret link or a certificate
/// link), and for a below-minimum secret match the confidence the policy is lowered to for that
/// one rotation (only with the risk box ticked).
#[derive(Debug, Clone)]
pub struct Rotatable {
    /// The link to rotate.
    pub link: AnyLink,
    /// `Some(confidence)` for a match below the policy minimum (client secrets only).
    pub at_risk: Option<rotor_engine::Confidence>,
}

/// The key a box is looked up by: (kind, appId, keyId), ids lowercased.
pub type BoxKey = (Kind, String, String);

/// The key of the box of `kind` for (app, key).
pub fn box_key(kind: Kind, app_id: &str, key_id: &str) -> BoxKey {
    (
        kind,
        app_id.to_ascii_lowercase(),
        key_id.to_ascii_lowercase(),
    )
}

/// The tenant as the dashboard shows it.
#[derive(Debug, Default)]
pub struct Tenant {
    /// One entry per application credential lineage (client secrets, then certificates).
    pub entries: Vec<Entry>,
    /// Keyed by [`box_key`]: the entries that have a box.
    pub rotatable: BTreeMap<BoxKey, Rotatable>,
    /// Vaults that could not be listed, certificates that could not be read (escaped notes).
    pub notes: Vec<String>,
}

impl Tenant {
    /// Gives credential `key_id` of `link`'s application a box that rotates `link`
    /// (`at_risk`: below the policy's minimum confidence).
    fn offer(&mut self, key_id: &str, link: AnyLink, at_risk: Option<rotor_engine::Confidence>) {
        let kind = if link.is_certificate() {
            Kind::Certificate
        } else {
            Kind::Secret
        };
        let key = box_key(kind, link.application_id(), key_id);
        self.rotatable.insert(key, Rotatable { link, at_risk });
    }
}

/// The history's last rotation (not a dry run) of the credentials `keys` of `app_id`.
fn last_rotation(
    records: &[rotor_engine::AuditRecord],
    app_id: &str,
    keys: &BTreeSet<String>,
) -> Option<String> {
    records
        .iter()
        .filter(|r| r.app_id.eq_ignore_ascii_case(app_id) && !r.dry_run)
        .filter(|r| {
            [&r.old_key_id, &r.new_key_id]
                .into_iter()
                .flatten()
                .any(|k| keys.contains(&k.to_ascii_lowercase()))
        })
        .max_by_key(|r| r.started_at)
        .map(|r| format!("{}, {}", date(r.started_at), r.status))
}

/// The signals of the matches of credential `key`, sorted.
fn signals_of(key: &str, ms: &[&rotor_engine::Match]) -> Vec<String> {
    ms.iter()
        .filter(|m| m.key_id.eq_ignore_ascii_case(key))
        .flat_map(|m| m.signals.iter().map(|x| x.as_str().to_string()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Reads the tenant: applications, matches, links (client secrets and certificates) and their
/// status, and the history's last rotation of each credential. Read-only.
pub async fn collect(
    engine: &rotor_engine::Engine,
    config: &rotor_engine::Config,
    history: &std::path::Path,
) -> anyhow::Result<Tenant> {
    use rotor_engine::{Confidence, CredentialKind, Link};
    let now = engine.now();
    let policy = &config.policy;
    let apps = engine.discover(None).await?;
    let vaults = engine.resolve_vaults(config).await?;
    let report = engine.match_secrets(&apps, &vaults, policy).await?;
    let links = engine.links(config).await?;
    let mut statuses = BTreeMap::new();
    for l in &links {
        match engine.inspect_link(l, policy).await {
            Ok(s) => {
                statuses.insert(
                    (l.application_id.clone(), l.credential_display_name.clone()),
                    (l.clone(), s),
                );
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }
    let records = rotor_engine::History::open(history)
        .and_then(|h| h.read_all())
        .unwrap_or_default();
    let mut tenant = Tenant::default();
    for f in engine.vault_failures() {
        tenant.notes.push(markdown::escape(&f.error));
    }
    for app in &apps {
        let mut lineages: BTreeMap<String, Vec<&rotor_engine::PasswordCredential>> =
            BTreeMap::new();
        for p in &app.password_credentials {
            lineages
                .entry(p.lineage_name().to_string())
                .or_default()
                .push(p);
        }
        for (lineage, mut creds) in lineages {
            creds.sort_by_key(|c| c.start);
            let newest = creds.last().copied();
            let keys: BTreeSet<String> = creds
                .iter()
                .map(|c| c.key_id.to_ascii_lowercase())
                .collect();
            let last = last_rotation(&records, &app.app_id, &keys);
            let matches: Vec<&rotor_engine::Match> = report
                .matches
                .iter()
                .filter(|m| {
                    m.kind == CredentialKind::Secret
                        && m.app_id.eq_ignore_ascii_case(&app.app_id)
                        && keys.contains(&m.key_id.to_ascii_lowercase())
                        && m.rejected.is_none()
                })
                .collect();
            let display = if lineage.is_empty() {
                "(unnamed credential)".to_string()
            } else {
                lineage.clone()
            };
            let mut entry = Entry::unlinked(
                Kind::Secret,
                app,
                display,
                newest.map(|c| (c.key_id.clone(), None, c.end)),
                last,
            );
            if let Some((link, status)) = statuses.get(&(app.app_id.clone(), lineage.clone())) {
                if let Some(k) = &status.current_key_id {
                    entry.key_id = k.clone();
                }
                if status.current_expires_at.is_some() {
                    entry.expires_at = status.current_expires_at;
                }
                entry.next_rotation_at = status.next_rotation_at;
                entry.due_reason = status.due_reason.clone();
                entry.urgency = Urgency::of(
                    now,
                    entry.expires_at,
                    status.next_rotation_at,
                    status.rotation_due,
                );
                entry.link = if status.in_progress {
                    "linked, a rotation is in progress".into()
                } else if status.diverged {
                    "linked, the targets diverge".into()
                } else {
                    "linked".into()
                };
                entry.confidence = status.confidence.to_string();
                entry.signals = signals_of(&entry.key_id, &matches);
                entry.vaults = link
                    .targets
                    .iter()
                    .map(|t| (t.vault_url.to_string(), t.secret_name.clone()))
                    .collect();
                if let Some(x) = &status.excluded {
                    entry.blocked = Some((
                        format!("excluded by policy ({x})"),
                        "remove the matching entry from `[policy].exclusions` in rotor.toml".into(),
                    ));
                } else if !status.claimed_elsewhere.is_empty() {
                    let others: Vec<String> = status
                        .claimed_elsewhere
                        .iter()
                        .map(|t| {
                            format!(
                                "{}/{}",
                                markdown::vault_name(t.vault_url.as_str()),
                                t.secret_name
                            )
                        })
                        .collect();
                    entry.blocked = Some((
                        format!("two links claim this lineage: {} also hold its current credential", others.join(", ")),
                        "make those secrets targets of this link, or stop them holding this credential".into(),
                    ));
                } else if status.in_progress {
                    entry.blocked = Some((
                        "another run is rotating it".into(),
                        "wait for that run; the next scheduled run finishes or cleans up".into(),
                    ));
                } else {
                    entry.action = Action::Rotate;
                    tenant.offer(&entry.key_id, AnyLink::Secret(link.clone()), None);
                }
            } else {
                entry.next_rotation_at = next_of(policy, entry.expires_at);
                entry.urgency = Urgency::of(now, entry.expires_at, entry.next_rotation_at, false);
                let best = matches
                    .iter()
                    .filter(|m| m.key_id.eq_ignore_ascii_case(&entry.key_id))
                    .max_by_key(|m| m.confidence)
                    .or_else(|| matches.iter().max_by_key(|m| m.confidence))
                    .copied();
                match best {
                    None => {
                        entry.blocked = Some((
                            "unmatched: no Key Vault secret in the configured vaults matches it".into(),
                            "tag the secret that holds it with `rotor-key-id` (its keyId) or `app-id`, or add its vault to rotor.toml".into(),
                        ));
                    }
                    Some(m) => {
                        entry.key_id = m.key_id.clone();
                        entry.confidence = m.confidence.to_string();
                        entry.signals = signals_of(&m.key_id, &matches);
                        let same: Vec<&&rotor_engine::Match> = matches
                            .iter()
                            .filter(|x| x.key_id == m.key_id && x.confidence == m.confidence)
                            .collect();
                        entry.vaults = same
                            .iter()
                            .map(|x| (x.vault_url.to_string(), x.secret_name.clone()))
                            .collect();
                        if let Some(x) = &m.excluded {
                            entry.blocked = Some((
                                format!("excluded by policy ({x})"),
                                "remove the matching entry from `[policy].exclusions` in rotor.toml".into(),
                            ));
                        } else if m.confidence < policy.min_confidence {
                            entry.blocked = Some((
                                format!(
                                    "below the minimum confidence: {} (policy minimum {})",
                                    m.confidence, policy.min_confidence
                                ),
                                "tag the secret with `rotor-key-id` set to the credential's keyId (or `app-id`), or tick both boxes to rotate once at this confidence".into(),
                            ));
                            if m.confidence > Confidence::None {
                                entry.action = Action::RotateAtRisk(m.confidence.to_string());
                                let link = Link {
                                    application_id: app.app_id.clone(),
                                    credential_display_name: lineage.clone(),
                                    targets: same.iter().map(|x| x.target()).collect(),
                                };
                                tenant.offer(&m.key_id, AnyLink::Secret(link), Some(m.confidence));
                            }
                        } else {
                            entry.blocked = Some((
                                "not linked".into(),
                                "run `rotor match` to see why no link formed".into(),
                            ));
                        }
                    }
                }
            }
            tenant.entries.push(entry);
        }
    }
    collect_certificates(engine, config, &apps, &report, &records, &mut tenant).await;
    Ok(tenant)
}

/// The certificate lineages of `apps` (key credentials grouped by lineage name): linked ones
/// ([`rotor_engine::Engine::certificate_links_of`], which also finds a certificate Key Vault
/// renewed on its own) with their status, the others with why not. A failure to read them is a
/// note on the dashboard, not a failed dashboard.
async fn collect_certificates(
    engine: &rotor_engine::Engine,
    config: &rotor_engine::Config,
    apps: &[rotor_engine::Application],
    report: &rotor_engine::MatchReport,
    records: &[rotor_engine::AuditRecord],
    tenant: &mut Tenant,
) {
    use rotor_engine::{Confidence, CredentialKind, KeyCredential, Signal};
    if apps.iter().all(|a| a.key_credentials.is_empty()) {
        return;
    }
    let now = engine.now();
    let policy = &config.policy;
    // from the applications already discovered: the tenant is not listed again
    let links = match engine.certificate_links_of(apps, config).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("{e}");
            tenant.notes.push(markdown::escape(&format!(
                "certificate lineages could not be read, so none is shown: {e}"
            )));
            return;
        }
    };
    let mut by_lineage = BTreeMap::new();
    for l in links {
        let status = engine.inspect_certificate_link(&l, policy).await;
        by_lineage.insert(
            (
                l.application_id.to_ascii_lowercase(),
                l.credential_display_name.clone(),
            ),
            (l, status),
        );
    }
    for app in apps {
        let mut lineages: BTreeMap<&str, Vec<&KeyCredential>> = BTreeMap::new();
        for k in &app.key_credentials {
            lineages.entry(k.lineage_name()).or_default().push(k);
        }
        for (lineage, mut creds) in lineages {
            creds.sort_by_key(|c| c.start);
            let newest = creds.last().copied();
            let keys: BTreeSet<String> = creds
                .iter()
                .map(|c| c.key_id.to_ascii_lowercase())
                .collect();
            let matches: Vec<&rotor_engine::Match> = report
                .matches
                .iter()
                .filter(|m| {
                    m.kind == CredentialKind::Certificate
                        && m.app_id.eq_ignore_ascii_case(&app.app_id)
                        && keys.contains(&m.key_id.to_ascii_lowercase())
                })
                .collect();
            let credential = if lineage.is_empty() {
                "(unnamed certificate)".to_string()
            } else {
                lineage.to_string()
            };
            let mut entry = Entry::unlinked(
                Kind::Certificate,
                app,
                credential,
                newest.map(|c| (c.key_id.clone(), c.thumbprint.clone(), c.end)),
                last_rotation(records, &app.app_id, &keys),
            );
            match by_lineage.get(&(app.app_id.to_ascii_lowercase(), lineage.to_string())) {
                Some((link, status)) => {
                    entry.vaults = link
                        .certificates
                        .iter()
                        .map(|t| (t.vault_url.to_string(), t.certificate_name.clone()))
                        .collect();
                    // A thumbprint match is exact.
                    entry.confidence = Confidence::High.to_string();
                    match status {
                        Err(e) => {
                            entry.next_rotation_at = next_of(policy, entry.expires_at);
                            entry.urgency =
                                Urgency::of(now, entry.expires_at, entry.next_rotation_at, false);
                            entry.link = "linked, its state could not be read".into();
                            entry.blocked = Some((
                                format!("reading its state failed: {e}"),
                                "see the run's log; the next run reads it again".into(),
                            ));
                        }
                        Ok(s) => certificate_state(&mut entry, link, s, now, tenant),
                    }
                    entry.signals = signals_of(&entry.key_id, &matches);
                    if entry.signals.is_empty() {
                        entry.signals = vec![Signal::Thumbprint.as_str().to_string()];
                    }
                }
                None => {
                    entry.next_rotation_at = next_of(policy, entry.expires_at);
                    entry.urgency =
                        Urgency::of(now, entry.expires_at, entry.next_rotation_at, false);
                    if let Some(m) = matches.iter().find(|m| m.excluded.is_some()) {
                        entry.confidence = m.confidence.to_string();
                        entry.signals = signals_of(&m.key_id, &matches);
                        entry.vaults = vec![(m.vault_url.to_string(), m.secret_name.clone())];
                        entry.blocked = Some((
                            format!(
                                "excluded by policy ({})",
                                m.excluded.as_deref().unwrap_or_default()
                            ),
                            "remove the matching entry from `[policy].exclusions` in rotor.toml"
                                .into(),
                        ));
                    } else {
                        entry.blocked = Some((
                            "unmatched: no Key Vault certificate in the configured vaults has the thumbprint of any of its versions".into(),
                            "create or import the certificate (with its key) in a configured vault, or add the vault that holds it to rotor.toml".into(),
                        ));
                    }
                }
            }
            tenant.entries.push(entry);
        }
    }
}

/// When policy wants the next rotation of a credential ending at `end`.
fn next_of(policy: &rotor_engine::Policy, end: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    end.map(|e| e - time::Duration::days(i64::from(policy.rotate_before_expiry_days)))
}

/// Fills a linked certificate entry from its status; a rotatable one gets its box.
fn certificate_state(
    entry: &mut Entry,
    link: &rotor_engine::CertificateLink,
    s: &rotor_engine::CertificateLinkStatus,
    now: OffsetDateTime,
    tenant: &mut Tenant,
) {
    if let Some(k) = &s.current_key_id {
        entry.key_id = k.clone();
        entry.thumbprint = s.current_thumbprint.clone();
    }
    if s.current_expires_at.is_some() {
        entry.expires_at = s.current_expires_at;
    }
    entry.next_rotation_at = s.next_rotation_at;
    entry.due_reason = s.due_reason.clone();
    entry.urgency = Urgency::of(now, entry.expires_at, s.next_rotation_at, s.rotation_due);
    entry.link = if s.in_progress {
        "linked, Key Vault is making a new version".into()
    } else if s.pending_version.is_some() {
        "linked, a sync is pending: Key Vault has a newer version the application lacks (AutoRenew or an interrupted run)".into()
    } else {
        "linked".into()
    };
    let missing: Vec<String> = link
        .certificates
        .iter()
        .filter(|t| !s.certificate_versions.contains_key(&t.key()))
        .map(|t| format!("{}/{}", t.vault_name(), t.certificate_name))
        .collect();
    if let Some(x) = &s.excluded {
        entry.blocked = Some((
            format!("excluded by policy ({x})"),
            "remove the matching entry from `[policy].exclusions` in rotor.toml".into(),
        ));
    } else if s.in_progress {
        entry.blocked = Some((
            "a certificate operation is in progress in Key Vault".into(),
            "wait for it to finish; the next scheduled run adds the new version to the application"
                .into(),
        ));
    } else if !missing.is_empty() {
        entry.blocked = Some((
            format!("{} has no current version in Key Vault", missing.join(", ")),
            "create the certificate again in Key Vault (or recover it), or remove the key credential".into(),
        ));
    } else if link.certificates.len() > 1 {
        entry.blocked = Some((
            format!(
                "held by {} Key Vault certificates; rotor makes new versions in exactly one certificate per link",
                link.certificates.len()
            ),
            "give each certificate's key credentials their own display name, or exclude all but one with `secret:<certificate-name>`".into(),
        ));
    } else if entry.key_id.is_empty() {
        entry.blocked = Some((
            "the lineage has no key credential".into(),
            "add the certificate to the application".into(),
        ));
    } else {
        entry.action = Action::Rotate;
        tenant.offer(&entry.key_id, AnyLink::Certificate(link.clone()), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize, urgency: Urgency) -> Entry {
        Entry {
            kind: Kind::Secret,
            app: format!("app-{i:05} with a long descriptive display name for the tenant"),
            app_id: format!("00000000-0000-0000-0000-{i:012}"),
            credential: "Client secret for production workloads".into(),
            key_id: format!("11111111-2222-3333-4444-{i:012}"),
            thumbprint: None,
            expires_at: Some(OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000)),
            next_rotation_at: None,
            due_reason: None,
            urgency,
            link: "linked".into(),
            confidence: "HIGH".into(),
            signals: vec!["tag-key-id".into(), "name".into()],
            vaults: vec![(
                "https://kv-production-westeurope.vault.azure.net/".into(),
                format!("app-{i:05}-client-secret"),
            )],
            blocked: None,
            last_rotation: Some("2026-11-02, success".into()),
            action: Action::Rotate,
        }
    }

    #[test]
    fn five_thousand_apps_stay_under_githubs_body_limit_most_urgent_first() {
        let entries: Vec<Entry> = (0..5000)
            .map(|i| {
                entry(
                    i,
                    [Urgency::Fine, Urgency::Soon, Urgency::Due, Urgency::Expired][i % 4],
                )
            })
            .collect();
        let d = Dashboard {
            title: DEFAULT_TITLE.into(),
            entries,
            run_url: Some("https://github.com/o/r/actions/runs/1".into()),
            generated_at: Some(OffsetDateTime::UNIX_EPOCH),
            notes: vec![],
        };
        let body = d.render(markdown::COMMENT_LIMIT, true);
        assert!(
            body.chars().count() <= markdown::COMMENT_LIMIT,
            "{}",
            body.len()
        );
        assert!(
            body.len() > markdown::COMMENT_LIMIT - 3000,
            "uses the room: {}",
            body.len()
        );
        assert!(body.starts_with(DASHBOARD_MARKER));
        assert!(body.contains("### Expired (1250)") && body.contains("<details open>"));
        assert!(!body.contains("### Fine"), "least urgent left out");
        assert!(body.contains("more credentials (the least urgent) do not fit"));
        assert!(body.contains("(https://github.com/o/r/actions/runs/1)"));
        let summary = d.render(markdown::SUMMARY_LIMIT, false);
        assert!(summary.len() <= markdown::SUMMARY_LIMIT && !summary.contains("- [ ]"));
    }

    #[test]
    fn ticked_boxes_are_read_from_task_list_lines_only() {
        let body = format!(
            "{DASHBOARD_MARKER}\n- [x] {} Rotate a\n  - [X] {}\n- [ ] {} Rotate b\n> - [x] {}\n```\n- [x] {}\n```\n- [x] <!-- rotor-rotate: a--b c -->\n",
            rotate_marker("app-1", "key-1"),
            risk_marker("app-1", "key-1"),
            rotate_marker("app-2", "key-2"),
            rotate_marker("app-3", "key-3"),
            rotate_marker("app-4", "key-4"),
        );
        assert_eq!(
            ticked(&body),
            vec![Ticked {
                kind: Kind::Secret,
                app_id: "app-1".into(),
                key_id: "key-1".into(),
                risk_accepted: true
            }]
        );
    }

    #[test]
    fn a_below_minimum_match_has_a_second_box_naming_the_risk_and_blocked_ones_none() {
        let mut e = entry(1, Urgency::Due);
        e.action = Action::RotateAtRisk("LOW".into());
        e.blocked = Some((
            "below the minimum confidence: LOW (policy minimum MEDIUM)".into(),
            "tag it".into(),
        ));
        let mut b = entry(2, Urgency::Expired);
        b.action = Action::None;
        b.blocked = Some((
            "excluded by policy (name:legacy-*)".into(),
            "remove it".into(),
        ));
        let d = Dashboard {
            title: "t".into(),
            entries: vec![e.clone(), b.clone()],
            ..Dashboard::default()
        };
        let body = d.render(markdown::COMMENT_LIMIT, true);
        assert!(body.contains(&format!(
            "- [ ] {} Rotate",
            rotate_marker(&e.app_id, &e.key_id)
        )));
        assert!(body.contains(&format!(
            "  - [ ] {} I accept the risk: this match is only LOW",
            risk_marker(&e.app_id, &e.key_id)
        )));
        assert!(
            !body.contains(&rotate_marker(&b.app_id, &b.key_id)),
            "no box when blocked"
        );
        assert!(
            body.contains("blocked: excluded by policy (name:legacy-\\*). Fix: remove it"),
            "{body}"
        );
        // Expired first.
        assert!(body.find("### Expired").expect("expired") < body.find("### Due").expect("due"));
    }

    fn certificate(i: usize, urgency: Urgency) -> Entry {
        Entry {
            kind: Kind::Certificate,
            credential: "signing".into(),
            thumbprint: Some("3f2a9c1b0d4e5f60718293a4b5c6d7e8f9012345".into()),
            next_rotation_at: Some(OffsetDateTime::UNIX_EPOCH + time::Duration::days(19_970)),
            due_reason: Some("Key Vault certificate `myapp-signing` has a newer version".into()),
            link: "linked, a sync is pending".into(),
            signals: vec!["thumbprint".into()],
            vaults: vec![(
                "https://kv-production-westeurope.vault.azure.net/".into(),
                "myapp-signing".into(),
            )],
            ..entry(i, urgency)
        }
    }

    #[test]
    fn a_certificate_entry_says_so_and_its_box_is_keyed_apart_from_secret_boxes() {
        let cert = certificate(1, Urgency::Due);
        // A secret of the same application, whose keyId is (absurdly) the same: still two
        // boxes, each read back as its own kind.
        let secret = entry(1, Urgency::Due);
        let d = Dashboard {
            title: "t".into(),
            entries: vec![secret.clone(), cert.clone()],
            ..Dashboard::default()
        };
        let body = d.render(markdown::COMMENT_LIMIT, true);
        assert!(
            body.contains("2 credentials (1 certificate) of 1 applications"),
            "{body}"
        );
        let marker = certificate_marker(&cert.app_id, &cert.key_id);
        let line = body
            .lines()
            .find(|l| l.contains(&marker))
            .unwrap_or_else(|| panic!("{body}"));
        assert_eq!(
            line,
            format!(
                "- [ ] {marker} Rotate **app-00001 with a long descriptive display name for the tenant** / signing (certificate 3F2A9C1B) — expires 2024-10-04"
            )
        );
        assert!(body.contains(
            "  - linked, a sync is pending; confidence HIGH (`thumbprint`); app `00000000-0000-0000-0000-000000000001`; held by Key Vault certificate kv-production-westeurope/myapp-signing; next rotation 2024-09-04; last rotation 2026-11-02, success\n  - due: Key Vault certificate \\`myapp-signing\\` has a newer version\n"
        ), "{body}");
        assert!(!body.contains("rotor-risk"), "{body}");
        assert!(body.contains(&format!(
            "- [ ] {} Rotate",
            rotate_marker(&secret.app_id, &secret.key_id)
        )));
        // Both ticked: two requests of different kinds, never merged.
        let both = body.replace("- [ ] ", "- [x] ");
        let t = ticked(&both);
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(
            t.iter().map(|t| t.kind).collect::<Vec<_>>(),
            [Kind::Secret, Kind::Certificate]
        );
        assert!(
            t.iter()
                .all(|t| t.key_id == cert.key_id && !t.risk_accepted)
        );
        // A risk box does not apply to a certificate box.
        let risky = format!(
            "- [x] {marker}\n- [x] {}\n",
            risk_marker(&cert.app_id, &cert.key_id)
        );
        assert_eq!(
            ticked(&risky),
            vec![Ticked {
                kind: Kind::Certificate,
                app_id: cert.app_id.clone(),
                key_id: cert.key_id.clone(),
                risk_accepted: false,
            }]
        );
        // No box without a plain thumbprint either way, and no box in the summary.
        let summary = d.render(markdown::SUMMARY_LIMIT, false);
        assert!(!summary.contains("rotor-rotate"), "{summary}");
        assert!(summary.contains("/ signing (certificate 3F2A9C1B) — expires"));
    }

    #[test]
    fn certificates_share_the_urgency_order_and_the_size_limit() {
        let entries: Vec<Entry> = (0..4000)
            .map(|i| {
                let u = [Urgency::Fine, Urgency::Soon, Urgency::Due, Urgency::Expired][i % 4];
                if (i / 4) % 2 == 0 {
                    certificate(i, u)
                } else {
                    entry(i, u)
                }
            })
            .collect();
        let d = Dashboard {
            title: DEFAULT_TITLE.into(),
            entries,
            run_url: Some("https://github.com/o/r/actions/runs/1".into()),
            ..Dashboard::default()
        };
        let body = d.render(markdown::COMMENT_LIMIT, true);
        assert!(body.len() <= markdown::COMMENT_LIMIT, "{}", body.len());
        assert!(body.contains("4000 credentials (2000 certificates) of 4000 applications"));
        assert!(body.contains("more credentials (the least urgent) do not fit"));
        assert!(!body.contains("### Fine"), "least urgent left out");
        let expired = section_of(&body, "Expired");
        assert!(expired.contains("rotor-rotate-certificate") && expired.contains("rotor-rotate: "));
    }

    fn section_of<'a>(body: &'a str, name: &str) -> &'a str {
        let start = body.find(&format!("### {name} (")).expect("section");
        let rest = &body[start + 4..];
        &rest[..rest.find("\n### ").unwrap_or(rest.len())]
    }

    #[test]
    fn urgency() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1000);
        let d = time::Duration::days;
        assert_eq!(
            Urgency::of(now, Some(now - d(1)), None, false),
            Urgency::Expired
        );
        assert_eq!(
            Urgency::of(now, Some(now + d(5)), Some(now - d(1)), false),
            Urgency::Due
        );
        assert_eq!(
            Urgency::of(now, Some(now + d(50)), Some(now + d(20)), false),
            Urgency::Soon
        );
        assert_eq!(
            Urgency::of(now, Some(now + d(500)), Some(now + d(400)), false),
            Urgency::Fine
        );
    }
}
