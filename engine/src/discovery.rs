//! Discovery: applications from Graph, vaults from config and ARM.

use crate::config::Config;
use crate::endpoints::normalize_vault_url;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::Application;
use url::Url;

/// True when `filter` (a case-insensitive glob on the display name, or an exact appId) selects
/// `app`.
pub fn app_matches(app: &Application, filter: &str) -> Result<bool> {
    if app.app_id.eq_ignore_ascii_case(filter.trim()) {
        return Ok(true);
    }
    let m = globset::GlobBuilder::new(filter.trim())
        .case_insensitive(true)
        .build()
        .map_err(|e| Error::usage(format!("reading filter `{filter}`"), e.to_string()))?
        .compile_matcher();
    Ok(m.is_match(&app.display_name))
}

pub(crate) async fn discover(e: &Engine, filter: Option<&str>) -> Result<Vec<Application>> {
    let inner = &e.inner;
    let mut apps = inner.graph.list_applications(None).await?;
    if let Some(f) = filter {
        let mut kept = Vec::with_capacity(apps.len());
        for a in apps {
            if app_matches(&a, f)? {
                kept.push(a);
            }
        }
        apps = kept;
    }
    for a in &apps {
        inner.remember(a);
    }
    apps.sort_by(|a, b| {
        a.display_name
            .to_ascii_lowercase()
            .cmp(&b.display_name.to_ascii_lowercase())
            .then_with(|| a.app_id.cmp(&b.app_id))
    });
    Ok(apps)
}

pub(crate) async fn get_application(e: &Engine, app_id: &str) -> Result<Application> {
    e.inner.memo_app(app_id).await
}

pub(crate) async fn resolve_vaults(e: &Engine, config: &Config) -> Result<Vec<Url>> {
    let mut out: Vec<Url> = Vec::new();
    let mut push = |u: Url| {
        let u = normalize_vault_url(&u);
        if !out.contains(&u) {
            out.push(u);
        }
    };
    for v in &config.vaults {
        push(v.clone());
    }
    for sub in &config.subscriptions {
        for v in e.inner.arm.list_vaults(sub).await? {
            e.inner.vaults.learn_name(&v.url, &v.name);
            e.inner
                .vaults
                .learn_subscription(&v.url, &v.subscription_id);
            push(v.url);
        }
    }
    Ok(out)
}
