//! `interpose`: parse the command line, run the proxy, map failure to an exit code.

use std::process::ExitCode;

use clap::Parser;
use interpose::Cli;

fn main() -> ExitCode {
    let config = Cli::parse().into_config();
    match interpose::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("interpose: {e}");
            ExitCode::FAILURE
        }
    }
}
