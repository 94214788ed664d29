//! The command line, with mitmdump's flag names where they exist.

use std::path::PathBuf;

use clap::Parser;
use interpose_plugin_abi::Level;

use crate::{app::Config, plugin::default_plugins_dir, proxy::Mode};

/// Interpose: an intercepting HTTP proxy whose addons are compiled Rust plugins.
#[derive(Debug, Parser)]
#[command(name = "interpose", version, about, long_about = None)]
pub struct Cli {
    /// Proxy mode: `regular` (explicit HTTP proxy) or `reverse:http://HOST[:PORT]`.
    #[arg(
        short = 'm',
        long = "mode",
        default_value = "regular",
        value_name = "MODE"
    )]
    pub mode: Mode,

    /// Address to bind the proxy to.
    #[arg(long = "listen-host", default_value = "127.0.0.1", value_name = "HOST")]
    pub listen_host: String,

    /// Port to bind the proxy to (0 picks a free port).
    #[arg(
        short = 'p',
        long = "listen-port",
        default_value_t = 8080,
        value_name = "PORT"
    )]
    pub listen_port: u16,

    /// Load the plugin library at PATH, after the plugins folder (repeatable, in order).
    #[arg(long = "plugin", value_name = "PATH")]
    pub plugins: Vec<PathBuf>,

    /// Folder whose plugin libraries (.so, .dylib, .dll) load at startup, in file-name order
    /// [default: ~/.interpose/plugins].
    #[arg(long = "plugins-dir", value_name = "DIR")]
    pub plugins_dir: Option<PathBuf>,

    /// Worker threads serving connections [default: one per CPU core].
    #[arg(long = "threads", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,

    /// Quiet: print errors only.
    #[arg(short = 'q', long = "quiet", conflicts_with = "verbose")]
    pub quiet: bool,

    /// Verbose: also print debug lines (connections, server errors).
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
}

impl Cli {
    /// The settings the command line asks for.
    pub fn into_config(self) -> Config {
        let log_level = if self.quiet {
            Level::Error
        } else if self.verbose {
            Level::Debug
        } else {
            Level::Info
        };
        Config {
            listen_host: self.listen_host,
            listen_port: self.listen_port,
            mode: self.mode,
            log_level,
            plugins_dir: self.plugins_dir.or_else(default_plugins_dir),
            plugins: self.plugins,
            threads: self.threads.map(usize::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mitmdump_style_flags() {
        let cli = Cli::try_parse_from([
            "interpose",
            "--mode",
            "reverse:http://127.0.0.1:9000",
            "-p",
            "8081",
            "-q",
            "--plugin",
            "a.so",
            "--plugin",
            "b.so",
            "--threads",
            "2",
        ])
        .unwrap();
        let config = cli.into_config();
        assert_eq!(config.listen_port, 8081);
        assert_eq!(config.listen_host, "127.0.0.1");
        assert_eq!(config.log_level, Level::Error);
        assert_eq!(
            config.plugins,
            [PathBuf::from("a.so"), PathBuf::from("b.so")]
        );
        assert_eq!(config.mode.spec(), "reverse:http://127.0.0.1:9000");
        assert_eq!(config.threads, Some(2));
    }

    #[test]
    fn defaults_and_errors() {
        let config = Cli::try_parse_from(["interpose"]).unwrap().into_config();
        assert_eq!(
            (config.listen_host.as_str(), config.listen_port),
            ("127.0.0.1", 8080)
        );
        assert_eq!(config.mode, Mode::Regular);
        assert_eq!(config.log_level, Level::Info);
        assert_eq!(config.threads, None);
        assert!(Cli::try_parse_from(["interpose", "-q", "-v"]).is_err());
        assert!(Cli::try_parse_from(["interpose", "--threads", "0"]).is_err());
        let err = Cli::try_parse_from(["interpose", "--mode", "reverse:https://x"]).unwrap_err();
        assert!(err.to_string().contains("not supported yet"), "{err}");
    }
}
