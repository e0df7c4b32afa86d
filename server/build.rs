//! Compile `proto/naksha/v1/naksha.proto` with protox (pure Rust: no system
//! `protoc` needed) and generate the tonic service and client.

use protox::prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["naksha/v1/naksha.proto"], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    #[allow(clippy::disallowed_methods)] // build script: std::fs is fine here
    std::fs::write(out.join("naksha_v1_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
