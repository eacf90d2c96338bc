//! Live progress on stderr: a progress display on a terminal, one line per step elsewhere, or JSON
//! events (`--progress json`, one [`rotor_engine::ProgressEvent`] object per line).
//!
//! Events never hold secret values (the engine guarantees it); this module prints only ids,
//! names, steps and the engine's messages.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;
use rotor_engine::{Endpoints, Progress, ProgressEvent, Step, StepState, Target};

use crate::cli::ProgressMode;

/// The progress sink used by every changing command.
pub struct Reporter {
    mode: Mode,
    endpoints: Endpoints,
}

enum Mode {
    Live(Live),
    Plain,
    Json,
}

struct Live {
    multi: MultiProgress,
    /// One line per rotation (key: rotation id) and per target (key: rotation id + target key).
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Reporter {
    /// A reporter for `mode`; `auto` is a live display when stderr is a terminal, else plain.
    pub fn new(mode: ProgressMode, endpoints: &Endpoints) -> Reporter {
        let mode = match mode {
            ProgressMode::Json => Mode::Json,
            ProgressMode::Plain => Mode::Plain,
            ProgressMode::Auto if std::io::stderr().is_terminal() => Mode::Live(Live {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::new(HashMap::new()),
            }),
            ProgressMode::Auto => Mode::Plain,
        };
        Reporter {
            mode,
            endpoints: endpoints.clone(),
        }
    }

    /// Finishes every live line (call before printing the result table).
    pub fn finish(&self) {
        if let Mode::Live(l) = &self.mode {
            for (_, bar) in l.bars.lock().drain() {
                if !bar.is_finished() {
                    bar.finish();
                }
            }
            let _ = l.multi.clear();
        }
    }

    fn target_label(&self, t: &Target) -> String {
        format!(
            "{}/{}",
            self.endpoints.vault_name(&t.vault_url),
            t.secret_name
        )
    }

    /// One human line for an event: `MyApp · update-target kv-prod/myapp-secret: done — message`.
    pub fn plain_line(&self, e: &ProgressEvent) -> String {
        let who = if e.app_name.is_empty() {
            e.app_id.as_str()
        } else {
            e.app_name.as_str()
        };
        let mut line = format!("{who} · {}", step_name(e.step));
        if let Some(t) = &e.target {
            line.push(' ');
            line.push_str(&self.target_label(t));
        }
        line.push_str(": ");
        line.push_str(state_name(e.state));
        if !e.message.is_empty() {
            line.push_str(" — ");
            line.push_str(&e.message);
        }
        line
    }

    fn live_event(&self, l: &Live, e: &ProgressEvent) {
        let key = match &e.target {
            Some(t) => format!("{}|{}", e.rotation_id, t.key()),
            None => e.rotation_id.clone(),
        };
        let mut bars = l.bars.lock();
        let bar = bars
            .entry(key)
            .or_insert_with(|| {
                let bar = l.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                let who = if e.app_name.is_empty() {
                    e.app_id.clone()
                } else {
                    e.app_name.clone()
                };
                let prefix = match &e.target {
                    Some(t) => format!("  {}", self.target_label(t)),
                    None => who,
                };
                bar.set_prefix(prefix);
                bar
            })
            .clone();
        drop(bars);
        if e.target.is_none() && !e.app_name.is_empty() {
            bar.set_prefix(e.app_name.clone());
        }
        let msg = if e.message.is_empty() {
            format!("{} {}", step_name(e.step), state_name(e.state))
        } else {
            format!("{}: {}", step_name(e.step), e.message)
        };
        let finished = e.status.is_some()
            || (e.target.is_some() && matches!(e.state, StepState::Done | StepState::Failed));
        if finished {
            let mark = match e.state {
                StepState::Failed => "✗",
                StepState::Skipped => "–",
                _ => "✓",
            };
            bar.finish_with_message(format!("{mark} {msg}"));
        } else {
            bar.set_message(msg);
        }
        // Keep a plain record of failures above the display.
        if e.state == StepState::Failed {
            let _ = l.multi.println(self.plain_line(e));
        }
    }
}

impl Progress for Reporter {
    fn event(&self, e: &ProgressEvent) {
        match &self.mode {
            Mode::Json => {
                if let Ok(line) = serde_json::to_string(e) {
                    let mut err = std::io::stderr().lock();
                    let _ = writeln!(err, "{line}");
                }
            }
            Mode::Plain => {
                let line = self.plain_line(e);
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
            }
            Mode::Live(l) => self.live_event(l, e),
        }
    }
}

/// The stable name of a step (as in `--progress json`).
pub fn step_name(s: Step) -> &'static str {
    match s {
        Step::Preflight => "preflight",
        Step::MakeRoom => "make-room",
        Step::Create => "create",
        Step::Verify => "verify",
        Step::UpdateTarget => "update-target",
        Step::Audit => "audit",
        Step::Cleanup => "cleanup",
        Step::Resume => "resume",
    }
}

/// The stable name of a step state.
pub fn state_name(s: StepState) -> &'static str {
    match s {
        StepState::Started => "started",
        StepState::Waiting => "waiting",
        StepState::Done => "done",
        StepState::Skipped => "skipped",
        StepState::Failed => "failed",
    }
}
