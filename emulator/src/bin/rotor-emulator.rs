//! `rotor-emulator --fixture FILE [--endpoints-file FILE]`: serve a fixture over HTTPS until
//! SIGINT/SIGTERM. Prints exactly one JSON line (the endpoints) on stdout; logs go to stderr.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use rotor_emulator::{Emulator, EmulatorOptions, Fixture};

#[derive(Debug, Parser)]
#[command(
    name = "rotor-emulator",
    version,
    about = "Local Entra ID + Graph + Key Vault + ARM emulator over HTTPS (for rotor's tests and demo)"
)]
struct Args {
    /// Fixture JSON file, or `sample` for the built-in sample tenant (the default).
    #[arg(long, value_name = "FILE")]
    fixture: Option<String>,
    /// Also write the endpoints JSON to this file; the CA PEM is written next to it.
    #[arg(long, value_name = "FILE")]
    endpoints_file: Option<PathBuf>,
    /// Milliseconds before a new password can log in (overrides the fixture).
    #[arg(long, value_name = "MS")]
    propagation_delay_ms: Option<u64>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let fixture = match args.fixture.as_deref() {
        None | Some("sample") => Fixture::sample(),
        Some(path) => Fixture::from_file(std::path::Path::new(path))?,
    };
    let mut opts = EmulatorOptions::default();
    if let Some(ms) = args.propagation_delay_ms {
        opts.propagation_delay = std::time::Duration::from_millis(ms);
    }
    if let Some(ep) = &args.endpoints_file {
        let dir = ep
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let stem = ep
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "endpoints".into());
        let ca = dir.join(format!("{stem}-ca.pem"));
        opts.ca_file = Some(std::path::absolute(&ca).unwrap_or(ca));
    }
    // Install the handlers before announcing readiness: a supervisor may signal right away.
    let signals = Signals::install()?;
    let emulator = Emulator::start(fixture, opts).await?;
    let line = emulator.endpoints_line();
    if let Some(ep) = &args.endpoints_file {
        std::fs::write(ep, format!("{line}\n"))
            .with_context(|| format!("writing the endpoints file `{}`", ep.display()))?;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").context("writing the endpoints line to stdout")?;
        out.flush().context("flushing stdout")?;
    }
    signals.wait().await;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    Ok(())
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
