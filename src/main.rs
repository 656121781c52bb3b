//! The `byline` binary: a thin front end over the library (see `byline::cli`).

/// mimalloc rather than the C library's allocator. A signed and logged call allocates some
/// forty blocks, several of them over a kilobyte (the boxed signing future, base64 strings,
/// the payload and the bundle), and glibc's malloc took a seventh of the server's async
/// thread on them, much of it consolidating its fast bins before each large block. mimalloc
/// builds from one C file with the same compiler as the bundled SQLite, so the build needs
/// nothing more. See `docs/BENCHMARKS.md`, eighth session, for the CPU and memory it trades.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    byline::cli::main()
}
