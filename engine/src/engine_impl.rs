//! Engine internals (shared state behind the `Arc`).

use crate::endpoints::Endpoints;
use crate::engine::{Clock, Engine, EngineOptions};
use crate::error::Result;
use time::OffsetDateTime;

pub(crate) struct Inner {
    pub(crate) endpoints: Endpoints,
    pub(crate) clock: Option<Clock>,
}

impl Inner {
    pub(crate) fn now(&self) -> OffsetDateTime {
        match &self.clock {
            Some(c) => c(),
            None => OffsetDateTime::now_utc(),
        }
    }
}

pub(crate) fn new(opts: EngineOptions) -> Result<Engine> {
    Ok(Engine {
        inner: std::sync::Arc::new(Inner {
            endpoints: opts.endpoints,
            clock: opts.clock,
        }),
    })
}
