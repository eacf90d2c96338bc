//! `terraform-provider-rotor`: started by Terraform (go-plugin handshake on stdout, logs on stderr).
//!
//! Usage:
//!   terraform-provider-rotor            (by Terraform only)
//!   terraform-provider-rotor --debug    serve for `TF_REATTACH_PROVIDERS`
//!   terraform-provider-rotor docs DIR   write the registry docs generated from the schema
//!   terraform-provider-rotor --version

use std::process::ExitCode;

use terraform_provider_rotor::{
    docs, grpc::GrpcProvider, logging, plugin, provider::ProviderState,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version" | "-v" | "version") => {
            println!("terraform-provider-rotor {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("docs") => {
            let dir = args.get(1).map(String::as_str).unwrap_or("docs/provider");
            match docs::write(std::path::Path::new(dir)) {
                Ok(files) => {
                    for f in files {
                        println!("wrote {}", f.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: writing provider docs to `{dir}`: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("--debug") => serve(plugin::Launch::Debug),
        Some(other) if !other.is_empty() => {
            eprintln!(
                "error: unknown argument `{other}`\n\nusage: terraform-provider-rotor [--debug | docs DIR | --version]\n\n{}",
                plugin::RUN_BY_HAND
            );
            ExitCode::from(2)
        }
        _ => match plugin::launch_from_env(|k| std::env::var(k).ok()) {
            Ok(launch) => serve(launch),
            Err(message) => {
                eprintln!("{message}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(launch: plugin::Launch) -> ExitCode {
    logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let provider = GrpcProvider::new(ProviderState::from_env());
        let mut stdout = std::io::stdout();
        plugin::serve(provider, launch, &mut stdout).await
    });
    // Do not wait for lingering tasks (open streams): Terraform waits for this process to exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(50));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
