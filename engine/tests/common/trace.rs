//! Every log line at TRACE, for tests that prove nothing secret is logged.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// What the subscriber installed by [`capture`] wrote.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything logged so far (UTF-8, or the test fails).
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("the log is UTF-8")
    }
}

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the global subscriber (all threads, bridging the `log` crate — reqwest, rustls — as
/// the CLI does) at TRACE for everything but the emulator; call once per test binary.
pub fn capture() -> Captured {
    use tracing_subscriber::util::SubscriberInitExt;
    let buf = Captured::default();
    let writer = buf.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "trace,rotor_emulator=off",
        ))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish()
        .try_init()
        .expect("the only subscriber in this test binary");
    buf
}
