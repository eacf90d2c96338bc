//! Argument parsing and dispatch. Owned by the CLI (`commands`) work; `github` adds its own
//! subcommands (`action`, `report`) through `crate::github::{ActionArgs, ReportArgs}`.

pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
