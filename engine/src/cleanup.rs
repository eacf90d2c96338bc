//! Cleanup of old credentials after the grace period (protocol step 7).

use crate::engine::Engine;
use crate::error::Result;
use crate::model::{CleanupOutcome, Link};
use crate::policy::Policy;

pub(crate) async fn cleanup(
    _e: &Engine,
    _link: &Link,
    _policy: &Policy,
    _dry_run: bool,
) -> Result<CleanupOutcome> {
    todo!()
}
