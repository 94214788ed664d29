//! `interpose ctl`: one request to a running proxy's control endpoint, its response back.

use std::{
    io::{self, BufRead, BufReader, Write},
    net::{TcpStream, ToSocketAddrs},
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    endpoint::read_token,
    protocol::{parse_response, Request},
    ControlError, Endpoint, TOKEN_FILE,
};
use crate::options::{expand_home, yaml::parse_config, RawValue, CONFIG_FILES};

/// Why `interpose ctl` failed.
#[derive(Debug)]
pub enum ClientError {
    /// No `--control` and no `control` in the config file.
    NoEndpoint {
        /// The configuration folder looked in.
        confdir: PathBuf,
    },
    /// The config file could not be read.
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The endpoint is not a valid `control` value.
    Endpoint(ControlError),
    /// The token file of a TCP endpoint could not be read.
    Token {
        /// The token file.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// Nobody answers at the endpoint.
    Connect {
        /// The endpoint as given.
        spec: String,
        /// The system's error.
        source: io::Error,
    },
    /// The connection failed mid-request, or the answer is not a response.
    Exchange {
        /// The endpoint as given.
        spec: String,
        /// What went wrong.
        problem: String,
    },
    /// The command failed: the proxy's error message.
    Command(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NoEndpoint { confdir } => write!(
                f,
                "no control endpoint: give --control ENDPOINT, or set control in {}; the proxy \
                 listens on one when started with --set control=PATH (or 127.0.0.1:PORT)",
                confdir.join(CONFIG_FILES[0]).display()
            ),
            ClientError::Config { path, problem } => write!(f, "{}: {problem}", path.display()),
            ClientError::Endpoint(e) => e.fmt(f),
            ClientError::Token { path, source } => write!(
                f,
                "cannot read the control token {}: {source} (give the proxy's --confdir)",
                path.display()
            ),
            ClientError::Connect { spec, source } => write!(
                f,
                "cannot connect to the control endpoint {spec}: {source}; is the proxy running \
                 with --set control={spec}?"
            ),
            ClientError::Exchange { spec, problem } => {
                write!(f, "control endpoint {spec}: {problem}")
            }
            ClientError::Command(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ClientError {}

/// Calls `command` with `args` on the proxy at `control` (default: the `control` value in
/// `confdir/config.yaml`; `confdir` defaults to `~/.interpose`) and returns its result.
pub fn call(
    control: Option<&str>,
    confdir: Option<&str>,
    command: &str,
    args: &[String],
) -> Result<String, ClientError> {
    let confdir = expand_home(confdir.unwrap_or("~/.interpose"));
    let spec = match control {
        Some(spec) => spec.to_string(),
        None => configured(&confdir)?.ok_or_else(|| ClientError::NoEndpoint {
            confdir: confdir.clone(),
        })?,
    };
    let endpoint = Endpoint::parse(&spec).map_err(ClientError::Endpoint)?;
    let mut request = Request {
        command: command.to_string(),
        args: args.to_vec(),
        token: None,
    };
    let connect_failed = |source| ClientError::Connect {
        spec: spec.clone(),
        source,
    };
    let stream: Box<dyn Stream> = match &endpoint {
        #[cfg(unix)]
        Endpoint::Unix(path) => {
            Box::new(std::os::unix::net::UnixStream::connect(path).map_err(connect_failed)?)
        }
        #[cfg(not(unix))]
        Endpoint::Unix(_) => unreachable!("Endpoint::parse refuses Unix paths here"),
        Endpoint::Tcp(address) => {
            let path = confdir.join(TOKEN_FILE);
            let token = read_token(&confdir).map_err(|source| ClientError::Token {
                path: path.clone(),
                source,
            })?;
            request.token = Some(token);
            Box::new(connect_tcp(address).map_err(connect_failed)?)
        }
    };
    exchange(stream, &request)
        .map_err(|problem| ClientError::Exchange {
            spec: spec.clone(),
            problem,
        })?
        .map_err(ClientError::Command)
}

/// A connection to the endpoint.
trait Stream: io::Read + io::Write {}
impl<T: io::Read + io::Write> Stream for T {}

fn connect_tcp(address: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Sends `request` and reads one response line.
fn exchange(
    mut stream: Box<dyn Stream>,
    request: &Request,
) -> Result<Result<String, String>, String> {
    stream
        .write_all(request.to_line().as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut line = Vec::new();
    BufReader::new(stream)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read the response: {e}"))?;
    if line.is_empty() {
        return Err("closed the connection without a response".to_string());
    }
    parse_response(line.trim_ascii()).ok_or_else(|| {
        format!(
            "not a response: {}",
            String::from_utf8_lossy(&line).trim_end()
        )
    })
}

/// The `control` value of the config file in `confdir`, if it has one.
fn configured(confdir: &Path) -> Result<Option<String>, ClientError> {
    for name in CONFIG_FILES {
        let path = confdir.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ClientError::Config {
                    path,
                    problem: e.to_string(),
                })
            }
        };
        let entries = parse_config(&text).map_err(|e| ClientError::Config {
            path: path.clone(),
            problem: format!("line {}: {}", e.line, e.problem),
        })?;
        if let Some(entry) = entries.into_iter().find(|e| e.name == "control") {
            return Ok(match entry.value {
                RawValue::Text(text) => Some(text),
                _ => None,
            });
        }
    }
    Ok(None)
}
