//! Compiles the plugin protocol (`proto/`) with protox (pure Rust, no system `protoc`) and
//! tonic-prost-build. Server stubs get default `Unimplemented` bodies so RPCs the provider does
//! not serve (state stores, actions, list resources, ...) answer the way Terraform expects.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../proto");
    // `scripts/update-protos` refreshes both files from the crates.io packages that ship them.
    let files = ["tfplugin6.proto", "goplugin.proto"];
    for file in &files {
        println!("cargo:rerun-if-changed={}", proto_dir.join(file).display());
    }
    let descriptors = protox::compile(files, [&proto_dir])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .generate_default_stubs(true)
        .compile_fds(descriptors)?;
    Ok(())
}
