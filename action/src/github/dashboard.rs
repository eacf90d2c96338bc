//! The rotation dashboard: one issue, kept up to date by scheduled runs (`--dashboard`), that
//! shows every application credential rotor can see — expiry urgency, link status, confidence
//! and its signals, the Key Vault secrets that hold it, what blocks rotation and the fix, the
//! last rotation — and whose check-boxes request a rotation (the `issues` `edited` event, see
//! [`super::action`]).
//!
//! The issue is rotor's when its body starts with [`DASHBOARD_MARKER`] **and** its author is the
//! token's own login (GraphQL `viewer`), like the sticky comment. Every name from Azure goes
//! through [`markdown::escape`]; ids (GUIDs) are put in code spans and in the boxes' hidden
//! markers only after checking they are made of `[0-9A-Za-z-]`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use time::OffsetDateTime;

use super::markdown;

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
    /// Application display name.
    pub app: String,
    /// appId.
    pub app_id: String,
    /// Lineage name of the credential.
    pub credential: String,
    /// keyId of the credential the box names (the current one).
    pub key_id: String,
    /// End date of that credential.
    pub expires_at: Option<OffsetDateTime>,
    /// Urgency.
    pub urgency: Urgency,
    /// Link status in words (`linked`, `linked, targets diverge`, `rotation in progress`,
    /// `not linked`).
    pub link: String,
    /// Confidence word (`HIGH` …).
    pub confidence: String,
    /// The signals of the best match.
    pub signals: Vec<String>,
    /// Key Vault secrets holding it: (vault URL, secret name).
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

/// The hidden marker of the rotate box of (app, key).
pub fn rotate_marker(app_id: &str, key_id: &str) -> String {
    format!("<!-- rotor-rotate: {app_id} {key_id} -->")
}

/// The hidden marker of the risk box of (app, key).
pub fn risk_marker(app_id: &str, key_id: &str) -> String {
    format!("<!-- rotor-risk: {app_id} {key_id} -->")
}

/// A ticked request read from the issue body.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticked {
    /// appId.
    pub app_id: String,
    /// keyId the box named.
    pub key_id: String,
    /// The risk box is ticked too.
    pub risk_accepted: bool,
}

/// The ticked rotate boxes of a dashboard body (a line `- [x] <!-- rotor-rotate: A K -->`), with
/// whether their risk box is ticked. Boxes anywhere else (quoted, in code) are not boxes.
pub fn ticked(body: &str) -> Vec<Ticked> {
    let mut rotate = BTreeSet::new();
    let mut risk = BTreeSet::new();
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
        for (prefix, set) in [
            ("<!-- rotor-rotate: ", &mut rotate),
            ("<!-- rotor-risk: ", &mut risk),
        ] {
            if let Some(m) = rest.strip_prefix(prefix)
                && let Some((ids, _)) = m.split_once(" -->")
                && let Some((a, k)) = ids.split_once(' ')
                && plain_id(a)
                && plain_id(k)
            {
                set.insert((a.to_ascii_lowercase(), k.to_ascii_lowercase()));
            }
        }
    }
    rotate
        .into_iter()
        .map(|(a, k)| Ticked {
            risk_accepted: risk.contains(&(a.clone(), k.clone())),
            app_id: a,
            key_id: k,
        })
        .collect()
}

fn date(t: OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

impl Entry {
    /// One list item (with its nested lines), `boxes`: render check-boxes.
    fn render(&self, boxes: bool) -> String {
        let mut s = String::new();
        let name = format!(
            "**{}** / {}",
            markdown::escape(&self.app),
            markdown::escape(&self.credential)
        );
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
                    rotate_marker(&self.app_id, &self.key_id)
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
            let _ = write!(detail, "; held by {}", v.join(", "));
        }
        match &self.last_rotation {
            Some(l) => {
                let _ = write!(detail, "; last rotation {}", markdown::escape(l));
            }
            None => detail.push_str("; no rotation in the history"),
        }
        s.push_str(&detail);
        s.push('\n');
        if let Some((what, fix)) = &self.blocked {
            let _ = writeln!(
                s,
                "  - blocked: {}. Fix: {}",
                markdown::escape(what),
                markdown::escape(fix)
            );
        }
        if let (Action::RotateAtRisk(c), true) = (&self.action, boxes && ids_ok) {
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
            (a.urgency, a.blocked.is_some(), &a.app, &a.credential).cmp(&(
                b.urgency,
                b.blocked.is_some(),
                &b.app,
                &b.credential,
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
        let _ = writeln!(
            head,
            "{} credentials of {} applications: {}; {blocked} blocked.\n",
            self.entries.len(),
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
                "Tick a box to rotate that credential now (you need write access to this repository; policy, exclusions and confidence rules still apply). rotor comments the result and clears the box.\n\n",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize, urgency: Urgency) -> Entry {
        Entry {
            app: format!("app-{i:05} with a long descriptive display name for the tenant"),
            app_id: format!("00000000-0000-0000-0000-{i:012}"),
            credential: "Client secret for production workloads".into(),
            key_id: format!("11111111-2222-3333-4444-{i:012}"),
            expires_at: Some(OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000)),
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

/// What a one-click rotation of an entry rotates: the link, and for a below-minimum match the
/// confidence the policy is lowered to for that one rotation (only with the risk box ticked).
#[derive(Debug, Clone)]
pub struct Rotatable {
    /// The link to rotate.
    pub link: rotor_engine::Link,
    /// `Some(confidence)` for a match below the policy minimum.
    pub at_risk: Option<rotor_engine::Confidence>,
}

/// The tenant as the dashboard shows it.
#[derive(Debug, Default)]
pub struct Tenant {
    /// One entry per application credential lineage.
    pub entries: Vec<Entry>,
    /// Keyed by (appId, keyId) lowercased: the entries that have a box.
    pub rotatable: BTreeMap<(String, String), Rotatable>,
    /// Vaults that could not be listed (escaped notes).
    pub notes: Vec<String>,
}

/// Reads the tenant: applications, matches, links and their status, and the history's last
/// rotation of each credential. Read-only.
pub async fn collect(
    engine: &rotor_engine::Engine,
    config: &rotor_engine::Config,
    history: &std::path::Path,
) -> anyhow::Result<Tenant> {
    use rotor_engine::{Confidence, Link};
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
            let last = records
                .iter()
                .filter(|r| r.app_id.eq_ignore_ascii_case(&app.app_id) && !r.dry_run)
                .filter(|r| {
                    [&r.old_key_id, &r.new_key_id]
                        .into_iter()
                        .flatten()
                        .any(|k| keys.contains(&k.to_ascii_lowercase()))
                })
                .max_by_key(|r| r.started_at)
                .map(|r| format!("{}, {}", date(r.started_at), r.status));
            let matches: Vec<&rotor_engine::Match> = report
                .matches
                .iter()
                .filter(|m| {
                    m.app_id.eq_ignore_ascii_case(&app.app_id)
                        && keys.contains(&m.key_id.to_ascii_lowercase())
                        && m.rejected.is_none()
                })
                .collect();
            let display = if lineage.is_empty() {
                "(unnamed credential)".to_string()
            } else {
                lineage.clone()
            };
            let mut entry = Entry {
                app: app.display_name.clone(),
                app_id: app.app_id.clone(),
                credential: display,
                key_id: newest.map(|c| c.key_id.clone()).unwrap_or_default(),
                expires_at: newest.map(|c| c.end),
                urgency: Urgency::Fine,
                link: "not linked".into(),
                confidence: Confidence::None.to_string(),
                signals: vec![],
                vaults: vec![],
                blocked: None,
                last_rotation: last,
                action: Action::None,
            };
            let signals_of = |key: &str, ms: &[&rotor_engine::Match]| -> Vec<String> {
                let mut s: Vec<String> = ms
                    .iter()
                    .filter(|m| m.key_id.eq_ignore_ascii_case(key))
                    .flat_map(|m| m.signals.iter().map(|x| x.as_str().to_string()))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                s.sort();
                s
            };
            let next_of = |end: Option<OffsetDateTime>| {
                end.map(|e| e - time::Duration::days(i64::from(policy.rotate_before_expiry_days)))
            };
            if let Some((link, status)) = statuses.get(&(app.app_id.clone(), lineage.clone())) {
                if let Some(k) = &status.current_key_id {
                    entry.key_id = k.clone();
                }
                if status.current_expires_at.is_some() {
                    entry.expires_at = status.current_expires_at;
                }
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
                    tenant.rotatable.insert(
                        (
                            app.app_id.to_ascii_lowercase(),
                            entry.key_id.to_ascii_lowercase(),
                        ),
                        Rotatable {
                            link: link.clone(),
                            at_risk: None,
                        },
                    );
                }
            } else {
                entry.urgency =
                    Urgency::of(now, entry.expires_at, next_of(entry.expires_at), false);
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
                                tenant.rotatable.insert(
                                    (
                                        app.app_id.to_ascii_lowercase(),
                                        m.key_id.to_ascii_lowercase(),
                                    ),
                                    Rotatable {
                                        link: Link {
                                            application_id: app.app_id.clone(),
                                            credential_display_name: lineage.clone(),
                                            targets: same.iter().map(|x| x.target()).collect(),
                                        },
                                        at_risk: Some(m.confidence),
                                    },
                                );
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
    Ok(tenant)
}
