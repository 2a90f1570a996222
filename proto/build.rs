//! Compiles `proto/dapr/proto/components/v1/*.proto` with protox (a protobuf compiler in
//! Rust, so no system `protoc` is needed), generates tonic client and server code from the
//! resulting descriptors, and writes the encoded descriptor set for gRPC reflection.
//!
//! Two passes. The first generates the messages and the client. The second generates only
//! the server, with every message taken from the first pass, except that its PullMessages
//! stream sends [`EncodedPullResponse`](crate::encoded::EncodedPullResponse): a
//! `PullMessagesResponse` that the component encodes itself (see that type's docs).

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &["dapr/proto/components/v1/common.proto", "dapr/proto/components/v1/pubsub.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed=proto/{proto}");
    }
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .bytes(".dapr.proto.components.v1")
        .compile_fds(fds.clone())?;
    let server_dir = out_dir.join("server");
    std::fs::create_dir_all(&server_dir)?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .out_dir(&server_dir)
        .extern_path(".dapr.proto.components.v1", "crate::components")
        .extern_path(".dapr.proto.components.v1.PullMessagesResponse", "crate::encoded::EncodedPullResponse")
        .compile_fds(fds)?;
    Ok(())
}
