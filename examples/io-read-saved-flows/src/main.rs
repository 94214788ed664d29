//! `io-read-saved-flows FILE`: prints every flow of a mitmproxy flow file (see the library).

use std::{fs::File, io, process::ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        eprintln!("usage: io-read-saved-flows FILE");
        return ExitCode::from(2);
    };
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("cannot open {}: {e}", path.to_string_lossy());
            return ExitCode::from(2);
        }
    };
    match io_read_saved_flows::print_flows(file, &mut io::stdout().lock()) {
        Ok(summary) if summary.corrupted.is_none() => ExitCode::SUCCESS,
        // mitmproxy's script exits 0 after "Flow file corrupted"; a status lets scripts tell.
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cannot write: {e}");
            ExitCode::FAILURE
        }
    }
}
