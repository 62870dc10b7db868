//! The `projector` command line: the binary edge, where errors become
//! messages and exit codes.

mod author_test;
mod cli;
mod client;
mod dead_letters;
mod kafka_publish;
mod logging;
mod scaffold;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cap_malloc_arenas();
    let cli = cli::Cli::parse();
    logging::init(cli.log_format);
    match cli::execute(cli) {
        Ok(code) => code,
        Err(err) => {
            if let Some(client::Refused(message)) = err.downcast_ref() {
                eprintln!("{message}");
                return ExitCode::from(1);
            }
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// glibc gives each thread that allocates its own arena (up to 8 per core)
/// and keeps freed memory in it. Projector runs several threads per
/// projection (worker, commit, snapshots) plus the HTTP pool, so memory
/// freed in one arena is not reused by another and RSS grows well past the
/// live data (the E benchmark: 331 MB -> 226 MB with this cap). Two arenas
/// per core keep allocation uncontended. `MALLOC_ARENA_MAX`, when set, wins.
/// The one `unsafe` of the binary: a libc call, no Rust API sets this.
#[allow(unsafe_code)]
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let arenas = i32::try_from(cores * 2).unwrap_or(i32::MAX);
        // SAFETY: called first thing in main, before any other thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
