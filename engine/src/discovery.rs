//! Discovery: applications from Graph, vaults from config and ARM.

use crate::config::Config;
use crate::endpoints::normalize_vault_url;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::Application;
use url::Url;

/// A compiled application filter: a case-insensitive glob on the display name, or an exact appId.
struct AppFilter<'a> {
    raw: &'a str,
    glob: globset::GlobMatcher,
}

impl<'a> AppFilter<'a> {
    fn new(filter: &'a str) -> Result<Self> {
        let glob = globset::GlobBuilder::new(filter.trim())
            .case_insensitive(true)
            .build()
            .map_err(|e| Error::usage(format!("reading filter `{filter}`"), e.to_string()))?
            .compile_matcher();
        Ok(AppFilter {
            raw: filter.trim(),
            glob,
        })
    }

    fn matches(&self, app: &Application) -> bool {
        app.app_id.eq_ignore_ascii_case(self.raw) || self.glob.is_match(&app.display_name)
    }
}

/// True when `filter` (a case-insensitive glob on the display name, or an exact appId) selects
/// `app`.
pub fn app_matches(app: &Application, filter: &str) -> Result<bool> {
    Ok(AppFilter::new(filter)?.matches(app))
}

pub(crate) async fn discover(e: &Engine, filter: Option<&str>) -> Result<Vec<Application>> {
    let inner = &e.inner;
    let mut apps = inner.graph.list_applications(None).await?;
    if let Some(f) = filter {
        // compiled once, not per application
        let f = AppFilter::new(f)?;
        apps.retain(|a| f.matches(a));
    }
    for a in &apps {
        inner.remember(a);
    }
    sort_apps(&mut apps);
    Ok(apps)
}

fn sort_apps(apps: &mut [Application]) {
    apps.sort_by(|a, b| {
        a.display_name
            .to_ascii_lowercase()
            .cmp(&b.display_name.to_ascii_lowercase())
            .then_with(|| a.app_id.cmp(&b.app_id))
    });
}

/// Every application (as [`discover`] without a filter) matched against `vaults` (as
/// [`crate::Engine::match_secrets`]), the application pages listed while the vaults are: the
/// Graph paging and the vault listings overlap instead of following each other. The
/// applications are parsed page by page into the one list returned and are not memoised (a
/// second copy of every application): callers memoise those they go on with.
pub(crate) async fn discover_and_match(
    e: &Engine,
    vaults: &[Url],
    policy: &crate::policy::Policy,
) -> Result<(Vec<Application>, crate::model::MatchReport)> {
    let apps = async {
        let mut apps = e.inner.graph.list_applications(None).await?;
        sort_apps(&mut apps);
        Ok::<_, Error>(apps)
    };
    let facts = crate::matching::gather_facts(e, vaults, policy);
    let (apps, facts) = futures::join!(apps, facts);
    // the Graph error first, as when discovery ran before matching
    let apps = apps?;
    let (facts, read) = facts?;
    let report = crate::matching::finish_matching(e, &apps, facts, read, vaults, policy).await?;
    Ok((apps, report))
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
    e.inner.widen_scope(&out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(app_id: &str, name: &str) -> Application {
        Application {
            object_id: "o".into(),
            app_id: app_id.into(),
            display_name: name.into(),
            sign_in_audience: None,
            password_credentials: Vec::new(),
            key_credentials: Vec::new(),
        }
    }

    #[test]
    fn filter_is_an_app_id_or_a_case_insensitive_name_glob() {
        let a = app("b0000001-0000-4000-8000-000000000001", "Payments API");
        assert!(app_matches(&a, "B0000001-0000-4000-8000-000000000001").expect("filter"));
        assert!(app_matches(&a, "payments*").expect("filter"));
        assert!(!app_matches(&a, "orders*").expect("filter"));
        assert!(!app_matches(&a, "b0000002-0000-4000-8000-000000000002").expect("filter"));
        let err = app_matches(&a, "pay[").expect_err("invalid glob");
        assert!(err.to_string().contains("pay["), "{err}");
    }
}
