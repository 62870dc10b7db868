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
    let cli = cli::Cli::parse();
    logging::init(cli.log_format);
    match cli::execute(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
