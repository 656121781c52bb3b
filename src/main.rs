//! The `byline` binary: a thin front end over the library (see `byline::cli`).

fn main() -> std::process::ExitCode {
    byline::cli::main()
}
