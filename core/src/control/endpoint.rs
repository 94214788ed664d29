//! Where the control endpoint listens: the `control` option parsed, the socket bound (a Unix
//! socket only its owner may use, or a loopback TCP port guarded by a token file), and the
//! socket file removed at exit.

use std::{
    fmt,
    net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs},
    path::{Path, PathBuf},
};

use super::{ControlError, TOKEN_FILE};
use crate::options::expand_home;

/// A parsed `control` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix domain socket at this path.
    Unix(PathBuf),
    /// A TCP port on a loopback address: `HOST:PORT` as given (brackets around IPv6 kept).
    Tcp(String),
}

impl Endpoint {
    /// Parses a `control` value: `unix:PATH` or a path (anything with a `/`, or a bare file
    /// name) is a Unix socket; `HOST:PORT` (or `tcp:HOST:PORT`) is TCP, refused at once when
    /// HOST is an IP address that is not loopback.
    pub fn parse(spec: &str) -> Result<Endpoint, ControlError> {
        let problem = |problem: &str| ControlError::Spec {
            spec: spec.to_string(),
            problem: problem.to_string(),
        };
        if spec.trim().is_empty() {
            return Err(problem(
                "expected a socket path or HOST:PORT on a loopback address",
            ));
        }
        if let Some(path) = spec.strip_prefix("unix:") {
            return unix(spec, path);
        }
        let tcp = spec.strip_prefix("tcp:");
        let text = tcp.unwrap_or(spec);
        let host_port = match text.rsplit_once(':') {
            Some((host, port)) if !text.contains('/') && port.parse::<u16>().is_ok() => {
                Some((host, port))
            }
            _ => None,
        };
        let Some((host, _)) = host_port else {
            if tcp.is_some() {
                return Err(problem("expected tcp:HOST:PORT"));
            }
            return unix(spec, spec);
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.is_empty() {
            return Err(problem("no host before the port (say 127.0.0.1:PORT)"));
        }
        if let Ok(ip) = bare.parse::<IpAddr>() {
            if !ip.is_loopback() {
                return Err(ControlError::NotLoopback {
                    spec: spec.to_string(),
                    address: ip.to_string(),
                });
            }
        }
        Ok(Endpoint::Tcp(text.to_string()))
    }

    /// The TCP endpoint's addresses, every one of them loopback (a name that resolves to
    /// another address is refused).
    fn loopback_addresses(&self) -> Result<Vec<SocketAddr>, ControlError> {
        let Endpoint::Tcp(text) = self else {
            return Ok(Vec::new());
        };
        let addresses: Vec<SocketAddr> = text
            .to_socket_addrs()
            .map_err(|e| ControlError::Spec {
                spec: text.clone(),
                problem: format!("cannot resolve it: {e}"),
            })?
            .collect();
        if let Some(other) = addresses.iter().find(|a| !a.ip().is_loopback()) {
            return Err(ControlError::NotLoopback {
                spec: text.clone(),
                address: other.ip().to_string(),
            });
        }
        Ok(addresses)
    }
}

/// A Unix socket endpoint at `path` (`~` expanded); refused where there are no Unix sockets.
fn unix(spec: &str, path: &str) -> Result<Endpoint, ControlError> {
    if path.is_empty() {
        return Err(ControlError::Spec {
            spec: spec.to_string(),
            problem: "no socket path".to_string(),
        });
    }
    if cfg!(unix) {
        Ok(Endpoint::Unix(expand_home(path)))
    } else {
        Err(ControlError::Spec {
            spec: spec.to_string(),
            problem: "Unix sockets need a Unix system; use 127.0.0.1:PORT".to_string(),
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Tcp(text) => write!(f, "tcp:{text}"),
        }
    }
}

/// A bound socket, not yet serving.
pub enum Listener {
    /// A Unix socket.
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener),
    /// A loopback TCP port and the token its clients must present.
    Tcp(TcpListener, String),
}

/// The control endpoint of a running proxy: bound at startup, served on the proxy's runtime
/// ([`Control::take_listener`], [`super::server::serve`]); dropping it removes the Unix
/// socket file (if it is still the one bound).
pub struct Control {
    /// Where it listens (a TCP port as bound, so port 0 shows the port chosen).
    endpoint: Endpoint,
    listener: Option<Listener>,
    /// Held for its `Drop`, which removes the socket file.
    #[cfg(unix)]
    _socket: Option<SocketFile>,
}

impl Control {
    /// Binds `endpoint`. A Unix socket is made with mode 0600 in place of a stale one (a
    /// socket file nobody answers on); a TCP endpoint writes a fresh token to
    /// `confdir/control-token` (mode 0600).
    pub fn open(endpoint: &Endpoint, confdir: &Path) -> Result<Control, ControlError> {
        match endpoint {
            #[cfg(unix)]
            Endpoint::Unix(path) => {
                let (listener, socket) = bind_unix(path)?;
                Ok(Control {
                    endpoint: endpoint.clone(),
                    listener: Some(Listener::Unix(listener)),
                    _socket: Some(socket),
                })
            }
            #[cfg(not(unix))]
            Endpoint::Unix(path) => Err(ControlError::Spec {
                spec: path.display().to_string(),
                problem: "Unix sockets need a Unix system".to_string(),
            }),
            Endpoint::Tcp(text) => {
                let addresses = endpoint.loopback_addresses()?;
                let listener =
                    TcpListener::bind(&addresses[..]).map_err(|source| ControlError::Bind {
                        endpoint: endpoint.to_string(),
                        source,
                    })?;
                let bound = listener
                    .local_addr()
                    .map(|a| Endpoint::Tcp(a.to_string()))
                    .unwrap_or_else(|_| Endpoint::Tcp(text.clone()));
                let token = write_token(confdir)?;
                Ok(Control {
                    endpoint: bound,
                    listener: Some(Listener::Tcp(listener, token)),
                    #[cfg(unix)]
                    _socket: None,
                })
            }
        }
    }

    /// Where it listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The bound socket, for the server (once).
    pub fn take_listener(&mut self) -> Option<Listener> {
        self.listener.take()
    }
}

/// A fresh random token (32 hex digits) in `confdir/control-token`, readable by the owner only.
fn write_token(confdir: &Path) -> Result<String, ControlError> {
    let path = confdir.join(TOKEN_FILE);
    let failed = |source| ControlError::Token {
        path: path.clone(),
        source,
    };
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| failed(std::io::Error::other(e.to_string())))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(confdir).map_err(failed)?;
    // A new file every time: an old one may have looser permissions, or be open elsewhere.
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(failed)?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes()).map_err(failed)?;
    Ok(token)
}

/// Reads the token a TCP endpoint wrote to `confdir/control-token`.
pub fn read_token(confdir: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(confdir.join(TOKEN_FILE))?
        .trim()
        .to_string())
}

/// The Unix socket file this proxy made; removed on drop if it is still that file.
#[cfg(unix)]
struct SocketFile {
    path: PathBuf,
    inode: (u64, u64),
}

#[cfg(unix)]
impl Drop for SocketFile {
    fn drop(&mut self) {
        if inode(&self.path).ok() == Some(self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(unix)]
fn inode(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// Binds a Unix socket at `path` with mode 0600. The socket is bound in a fresh folder of
/// mode 0700 next to `path`, made 0600 there, and only then renamed to `path`: nobody else
/// can connect in between (a chmod after binding in place leaves a window, a umask is
/// process-wide).
#[cfg(unix)]
fn bind_unix(path: &Path) -> Result<(std::os::unix::net::UnixListener, SocketFile), ControlError> {
    use std::os::unix::{
        fs::{DirBuilderExt, FileTypeExt, PermissionsExt},
        net::{UnixListener, UnixStream},
    };
    let endpoint = format!("unix:{}", path.display());
    let failed = |source| ControlError::Bind {
        endpoint: endpoint.clone(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ControlError::NotASocket {
                path: path.to_path_buf(),
            })
        }
        Ok(_) => {
            if UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse {
                    path: path.to_path_buf(),
                });
            }
            // A stale socket of a proxy that is gone: the rename below replaces it.
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(failed)?;
    let staging = parent.join(format!(".interpose-control-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(failed)?;
    let bound = (|| {
        let temporary = staging.join("s");
        let listener = UnixListener::bind(&temporary)?;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&temporary, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    let listener = bound.map_err(failed)?;
    let inode = inode(path).map_err(failed)?;
    Ok((
        listener,
        SocketFile {
            path: path.to_path_buf(),
            inode,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_paths_or_loopback_ports() {
        assert_eq!(
            Endpoint::parse("/run/ctl.sock").unwrap(),
            Endpoint::Unix("/run/ctl.sock".into())
        );
        assert_eq!(
            Endpoint::parse("ctl.sock").unwrap(),
            Endpoint::Unix("ctl.sock".into())
        );
        assert_eq!(
            Endpoint::parse("unix:a:1").unwrap(),
            Endpoint::Unix("a:1".into())
        );
        assert_eq!(
            Endpoint::parse("127.0.0.1:9000").unwrap(),
            Endpoint::Tcp("127.0.0.1:9000".into())
        );
        assert_eq!(
            Endpoint::parse("[::1]:9000").unwrap(),
            Endpoint::Tcp("[::1]:9000".into())
        );
        assert_eq!(
            Endpoint::parse("tcp:localhost:9").unwrap(),
            Endpoint::Tcp("localhost:9".into())
        );
        let error = Endpoint::parse("0.0.0.0:1234").unwrap_err().to_string();
        assert!(
            error.contains("0.0.0.0 is not a loopback address"),
            "{error}"
        );
        assert!(Endpoint::parse("10.1.2.3:80").is_err());
        assert!(Endpoint::parse("").is_err());
        assert!(Endpoint::parse(":80").is_err());
        assert!(Endpoint::parse("tcp:nowhere").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn unix_socket_is_private_replaces_stale_and_goes_away() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("interpose-ctl-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("ctl.sock");
        let endpoint = Endpoint::Unix(path.clone());
        let first = Control::open(&endpoint, &dir).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Live: refused.
        let error = Control::open(&endpoint, &dir).err().unwrap();
        assert!(matches!(error, ControlError::InUse { .. }), "{error}");
        // Stale (nobody listens any more, the file stays): replaced.
        let Control {
            listener,
            _socket: socket,
            ..
        } = first;
        drop(listener);
        std::mem::forget(socket);
        let second = Control::open(&endpoint, &dir).unwrap();
        drop(second);
        assert!(!path.exists());
        std::fs::write(&path, "not a socket").unwrap();
        let error = Control::open(&endpoint, &dir).err().unwrap();
        assert!(matches!(error, ControlError::NotASocket { .. }), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tcp_writes_a_private_token() {
        let dir = std::env::temp_dir().join(format!("interpose-ctl-tok-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let control = Control::open(&Endpoint::parse("127.0.0.1:0").unwrap(), &dir).unwrap();
        let Endpoint::Tcp(bound) = control.endpoint() else {
            panic!("not tcp")
        };
        assert!(!bound.ends_with(":0"), "{bound}");
        let token = read_token(&dir).unwrap();
        assert_eq!(token.len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
