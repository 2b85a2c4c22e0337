//! The `stopgate` binary: the command line is in [`stopgate::cli`].

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    stopgate::cli::run()
}
