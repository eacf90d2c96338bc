//! Compile-time proof that every public async method of [`Engine`] returns a `Send` future, so
//! front ends can `tokio::spawn` them (or hold them across `.await` in `Send` tasks) directly.
//! If one of these stops compiling, a `!Send` value (or a higher-ranked lifetime the compiler
//! cannot prove `Send` for) is being held across an `.await` inside that method.

use rotor_engine::{Config, Engine, Link, NoProgress, Policy, RotateOptions};
use url::Url;

fn require_send<T: Send>(_: &T) {}

/// Borrowed arguments for the engine calls below.
struct Args<'a> {
    engine: &'a Engine,
    config: &'a Config,
    policy: &'a Policy,
    link: &'a Link,
    links: &'a [Link],
    apps: &'a [rotor_engine::Application],
    vaults: &'a [Url],
    opts: &'a RotateOptions,
}

/// Never called: it only has to type-check.
#[allow(dead_code)]
fn every_engine_future_is_send(a: Args<'_>) {
    let Args {
        engine,
        config,
        policy,
        link,
        links,
        apps,
        vaults,
        opts,
    } = a;
    let progress = NoProgress;
    require_send(&engine.discover(None));
    require_send(&engine.get_application("app"));
    require_send(&engine.resolve_vaults(config));
    require_send(&engine.match_secrets(apps, vaults, policy));
    require_send(&engine.inspect_link(link, policy));
    require_send(&engine.rotate(link, policy, opts, &progress));
    require_send(&engine.sync_targets(link, policy, &progress));
    require_send(&engine.adopt("app", "key", vaults, policy));
    require_send(&engine.cleanup(link, policy, false));
    require_send(&engine.due_links(config));
    require_send(&engine.links(config));
    require_send(&engine.rotate_many(links, policy, opts, &progress));
    require_send(&engine.cleanup_many(links, policy, false));
}

/// The same, spawned for real on a multi-threaded runtime with `'static` owned arguments (what the
/// provider does): this needs `Send + 'static`, not just `Send`.
#[test]
fn engine_futures_can_be_spawned() {
    fn spawnable<F: std::future::Future + Send + 'static>(_: F) {}
    #[allow(dead_code)]
    fn check(
        engine: Engine,
        apps: Vec<rotor_engine::Application>,
        vaults: Vec<Url>,
        policy: Policy,
    ) {
        let e = engine.clone();
        let (v, p) = (vaults.clone(), policy.clone());
        spawnable(async move { e.match_secrets(&apps, &v, &p).await });
        spawnable(async move { engine.adopt("app", "key", &vaults, &policy).await });
    }
}
