//! Whether Terraform is still there, and what the provider does when it is not.
//!
//! go-plugin providers are not killed with Terraform: after a `kill -9` of terraform (OOM killer,
//! a cancelled CI job) the provider keeps running, and so would a rotation it is in the middle of.
//! Terraform 1.0 even runs itself twice (panicwrap): the process the user started and, as its
//! child, the real one that started us — which lives on after its parent's death until its next
//! line of output hits the closed pipe (`Still creating...`, up to 10 s later).
//!
//! So `plugin::serve` watches our parent (`getppid()` changes when it dies) and, when the parent
//! is panicwrap's inner terraform (same executable as its own parent), that outer process too.
//! When either goes, [`mark_terraform_gone`] makes every [`TerraformProgress`] answer
//! `cancelled() == true`, so the engine stops at its next safe point (before the next step that
//! changes Azure); the process exits as soon as no Azure-changing call is in flight, and at the
//! latest after [`STOP_GRACE`]. The rotation protocol is resumable: the next apply finishes or
//! cleans up what was interrupted. A dropped RPC (Terraform's connection closing) drops the
//! handler's future and with it the engine's work, which the protocol resumes the same way.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rotor_engine::{Progress, ProgressEvent};

static GONE: AtomicBool = AtomicBool::new(false);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// How long the process waits, once Terraform is gone, for an in-flight call to reach a safe
/// point before it exits anyway.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Whether Terraform has gone away.
pub fn terraform_gone() -> bool {
    GONE.load(Ordering::SeqCst)
}

/// Records that Terraform has gone away: every [`TerraformProgress`] answers `cancelled()`.
pub fn mark_terraform_gone() {
    GONE.store(true, Ordering::SeqCst);
}

/// A call that may change Azure, in flight while this guard lives.
#[must_use = "the call counts as in flight only while the guard lives"]
pub struct InFlight(());

impl InFlight {
    /// Counts one call in flight until the guard drops (also when its future is dropped).
    pub fn begin() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The number of Azure-changing calls in flight.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::SeqCst)
}

/// Waits until no call is in flight, or `grace` has passed.
pub async fn wait_idle(grace: Duration) {
    let deadline = Instant::now() + grace;
    while in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The [`Progress`] the provider gives the engine: events go to the log (debug), and
/// `cancelled()` is true once Terraform has gone away.
#[derive(Debug, Default, Clone, Copy)]
pub struct TerraformProgress;

impl Progress for TerraformProgress {
    fn event(&self, e: &ProgressEvent) {
        tracing::debug!(step = ?e.step, state = ?e.state, "{}", e.message);
    }

    fn cancelled(&self) -> bool {
        terraform_gone()
    }
}

/// Who started us, to notice when it dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ancestry {
    /// Our parent (terraform).
    pub parent: u32,
    /// panicwrap's outer terraform, when our parent is its inner process (Linux only).
    pub wrapper: Option<u32>,
}

impl Ancestry {
    /// The ancestry now.
    pub fn current() -> Ancestry {
        let parent = std::os::unix::process::parent_id();
        let wrapper = parent_of(parent).filter(|gp| *gp > 1 && same_executable(parent, *gp));
        Ancestry { parent, wrapper }
    }

    /// Why Terraform is gone, if it is: our parent changed, or panicwrap's outer process died
    /// (the inner one got a new parent).
    pub fn gone(&self) -> Option<String> {
        let parent = std::os::unix::process::parent_id();
        if parent != self.parent {
            return Some(format!("Terraform (process {}) went away", self.parent));
        }
        if let Some(w) = self.wrapper
            && parent_of(self.parent).is_some_and(|p| p != w)
        {
            return Some(format!(
                "Terraform (process {w}, the parent of process {}) went away",
                self.parent
            ));
        }
        None
    }
}

/// The parent of process `pid` (Linux `/proc`; `None` elsewhere or once it is gone).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether two processes run the same executable (panicwrap re-executes terraform itself).
fn same_executable(a: u32, b: u32) -> bool {
    let exe = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    matches!((exe(a), exe(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestry_of_a_live_process_is_not_gone() {
        let a = Ancestry::current();
        assert_eq!(a.parent, std::os::unix::process::parent_id());
        assert_eq!(a.gone(), None);
        let moved = Ancestry {
            parent: a.parent.wrapping_add(1),
            wrapper: None,
        };
        assert!(moved.gone().expect("gone").contains("went away"));
    }

    #[test]
    fn a_dead_wrapper_means_terraform_is_gone() {
        let a = Ancestry::current();
        // Pretend our parent's parent was some other process: it is "gone".
        let Some(real) = parent_of(a.parent) else {
            return; // not Linux
        };
        let w = Ancestry {
            parent: a.parent,
            wrapper: Some(real.wrapping_add(1)),
        };
        assert!(w.gone().is_some());
        let same = Ancestry {
            parent: a.parent,
            wrapper: Some(real),
        };
        assert_eq!(same.gone(), None);
    }

    #[tokio::test]
    async fn in_flight_guards_count_and_wait_idle_returns() {
        let g = InFlight::begin();
        assert!(in_flight() >= 1);
        let started = Instant::now();
        wait_idle(Duration::from_millis(60)).await;
        assert!(started.elapsed() >= Duration::from_millis(60));
        drop(g);
    }
}
