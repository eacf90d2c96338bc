//! The rotation protocol (PRODUCT.md steps 1–7), resumable from Azure's state alone.

use crate::config::Config;
use crate::engine::Engine;
use crate::error::Result;
use crate::model::{AuditRecord, Link, LinkStatus, RotateOptions};
use crate::policy::Policy;
use crate::progress::Progress;
use url::Url;

pub(crate) async fn inspect_link(
    _e: &Engine,
    _link: &Link,
    _policy: &Policy,
) -> Result<LinkStatus> {
    todo!()
}

pub(crate) async fn rotate(
    _e: &Engine,
    _link: &Link,
    _policy: &Policy,
    _opts: &RotateOptions,
    _progress: &dyn Progress,
) -> AuditRecord {
    todo!()
}

pub(crate) async fn sync_targets(
    _e: &Engine,
    _link: &Link,
    _policy: &Policy,
    _progress: &dyn Progress,
) -> Result<AuditRecord> {
    todo!()
}

pub(crate) async fn adopt(
    _e: &Engine,
    _app_id: &str,
    _key_id: &str,
    _vaults: &[Url],
    _policy: &Policy,
) -> Result<Link> {
    todo!()
}

pub(crate) async fn due_links(_e: &Engine, _config: &Config) -> Result<Vec<(Link, LinkStatus)>> {
    todo!()
}

pub(crate) async fn links(_e: &Engine, _config: &Config) -> Result<Vec<Link>> {
    todo!()
}
