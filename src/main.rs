//! The `byline` binary: a thin front end over the library (see `byline::cli`).

/// mimalloc rather than the system allocator: a signing call makes a few dozen short-lived
/// allocations (request, statement, envelope, bundle), and glibc's allocator spent about a
/// tenth of the server's CPU on them under load (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    byline::cli::main()
}
