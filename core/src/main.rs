//! `interpose`: parse the command line, build the options, run the proxy, map failure to an
//! exit code.

use std::process::ExitCode;

use clap::Parser;
use interpose::{Cli, OptionStore};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let store = match OptionStore::build(&cli.command_line()) {
        Ok(store) => store,
        Err(e) => return fail(e),
    };
    if cli.options {
        print!("{}", store.describe());
        return ExitCode::SUCCESS;
    }
    match interpose::run(store) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("interpose: {error}");
    ExitCode::FAILURE
}
