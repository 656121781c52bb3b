//! Compiles `proto/` with protox (no system `protoc`) and writes the descriptor set that the
//! server's reflection service publishes.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = protox::compile(["byline/v1/byline.proto"], ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("byline_descriptor.bin"),
        prost::Message::encode_to_vec(&files),
    )?;
    tonic_prost_build::configure()
        // Malformed requests are INVALID_ARGUMENT, not INTERNAL (src/service/codec.rs).
        .codec_path("crate::service::codec::StrictProstCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds(files)?;
    Ok(())
}
