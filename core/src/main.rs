//! `interpose`: parse the command line, build the options, run the proxy, map failure to an
//! exit code.

use std::process::ExitCode;

use clap::Parser;
use interpose::{cli::Action, control, Cli, OptionStore};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Action::Ctl(ctl)) = &cli.action {
        return match control::client::call(
            ctl.control.as_deref(),
            ctl.confdir.as_deref(),
            &ctl.command,
            &ctl.args,
        ) {
            Ok(result) => {
                if !result.is_empty() {
                    println!("{}", result.trim_end_matches('\n'));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let store = match OptionStore::build(&cli.command_line()) {
        Ok(store) => store,
        Err(e) => return fail(e),
    };
    if cli.options {
        return match interpose::app::describe_options(store) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        };
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
