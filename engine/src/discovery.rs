//! Discovery: applications from Graph, vaults from config and ARM.

use crate::config::Config;
use crate::engine::Engine;
use crate::error::Result;
use crate::model::Application;
use url::Url;

pub(crate) async fn discover(_e: &Engine, _filter: Option<&str>) -> Result<Vec<Application>> {
    todo!()
}

pub(crate) async fn get_application(_e: &Engine, _app_id: &str) -> Result<Application> {
    todo!()
}

pub(crate) async fn resolve_vaults(_e: &Engine, _config: &Config) -> Result<Vec<Url>> {
    todo!()
}
