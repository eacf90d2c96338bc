//! Live progress events (per rotation step and per target).

use crate::model::{RotationStatus, Target};
use serde::{Deserialize, Serialize};

/// A protocol step (docs/protocol.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// 1. read the app and the targets, check policy and permissions.
    Preflight,
    /// 2. remove an expired-grace unreferenced credential to stay under the password cap.
    MakeRoom,
    /// 3. `addPassword`.
    Create,
    /// 4. prove the new credential by logging in with it.
    Verify,
    /// 5. write and read back each target.
    UpdateTarget,
    /// 6. audit record.
    Audit,
    /// 7. remove old credentials whose grace period passed (and orphans).
    Cleanup,
    /// Resuming: finishing another run's rotation.
    Resume,
}

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    /// Started.
    Started,
    /// Waiting/retrying (propagation delay, throttling).
    Waiting,
    /// Finished well.
    Done,
    /// Not needed / not done.
    Skipped,
    /// Failed (message says why).
    Failed,
}

/// One progress event. Serialises to one JSON object (`--progress json`). Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressEvent {
    /// Rotation id.
    pub rotation_id: String,
    /// appId.
    pub app_id: String,
    /// Application display name (may be empty before preflight read it).
    pub app_name: String,
    /// Step.
    pub step: Step,
    /// State of the step.
    pub state: StepState,
    /// The target concerned (UpdateTarget).
    pub target: Option<Target>,
    /// Human-readable line.
    pub message: String,
    /// Set on the final event of a rotation.
    pub status: Option<RotationStatus>,
}

/// Receives progress events. Implementations must be cheap and must not block.
pub trait Progress: Send + Sync {
    /// Called for each event, from any task.
    fn event(&self, e: &ProgressEvent);

    /// Asked at the protocol's safe points (before each step that changes Azure): `true` stops
    /// the rotation there, leaving Azure in a state any later run resumes from (docs/protocol.md).
    /// The provider answers `true` once Terraform has gone away.
    fn cancelled(&self) -> bool {
        false
    }
}

/// Ignores events.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _e: &ProgressEvent) {}
}

/// Collects events in memory (tests, reports).
#[derive(Debug, Default)]
pub struct CollectProgress(pub parking_lot::Mutex<Vec<ProgressEvent>>);

impl Progress for CollectProgress {
    fn event(&self, e: &ProgressEvent) {
        self.0.lock().push(e.clone());
    }
}

impl CollectProgress {
    /// A snapshot of the events so far.
    pub fn events(&self) -> Vec<ProgressEvent> {
        self.0.lock().clone()
    }
}
