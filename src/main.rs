//! The `byline` binary: a thin front end over the library (see `byline::cli`).

/// mimalloc rather than the C library's allocator: the signing path allocates and frees many
/// small strings and buffers per call (protobuf, JSON, HTTP/2), and glibc's malloc was about a
/// tenth of the server's CPU under load (see docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    byline::cli::main()
}
