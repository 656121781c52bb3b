//! The library core: formats, cryptography and policy, with no I/O.
//!
//! Everything here is a pure function of its inputs (the clock and the random source enter
//! only through explicit parameters or key generation), so the server and the CLI share one
//! implementation and the tests need no files or sockets.

pub mod bundle;
pub mod canonical;
pub mod constants;
pub mod digest;
pub mod dsse;
pub mod embed;
pub mod hygiene;
pub(crate) mod json_string;
pub mod keys;
pub mod logproof;
pub mod manifest;
pub mod merkle;
pub mod note;
pub mod revocation;
pub mod sign;
pub mod strict_json;
pub mod trust;
pub mod verify;
