//! byline labels who wrote an article — a person, an AI, or both — and lets anyone verify
//! that label when the article is displayed.
//!
//! The crate is a library core with no I/O ([`core`]: canonical text, manifests, DSSE,
//! trust policy, Merkle log maths, signed notes) under thin front ends (the gRPC service, the
//! storage backends and the `byline` CLI).
//!
//! ```
//! use byline::core::canonical::{canonicalize, MediaType};
//!
//! let md = canonicalize(b"# Storm closes bridge\n\nThe *river* rose overnight.", MediaType::Markdown).unwrap();
//! let html = canonicalize(
//!     b"<nav>Home</nav><article><h1>Storm closes bridge</h1><p>The <em>river</em> rose overnight.</p></article>",
//!     MediaType::Html,
//! ).unwrap();
//! assert_eq!(md.text, html.text);
//! assert_eq!(md.text, "Storm closes bridge\nThe river rose overnight.");
//! ```

#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
pub mod core;
pub mod keyfile;
pub mod service;
pub mod storage;
pub(crate) mod worker_pool;

/// Generated protobuf messages and gRPC client and server code for `byline.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("byline.v1");

    /// The encoded file descriptor set of `proto/`, published by server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/byline_descriptor.bin"));
}
