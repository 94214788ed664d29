//! The user's own certificates (`certs`, `--certs [domain=]cert.pem`): each file holds a
//! private key and a chain, leaf first. As in mitmproxy, a certificate is served for its
//! common name, its subject alternative names and the given domain, which may be a wildcard
//! (`*.example.com`) and is `*` (every host) when left out; a later entry wins a name over an
//! earlier one, and a user certificate wins over a generated leaf.

use std::{
    collections::HashMap,
    fmt, fs, io,
    net::IpAddr,
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    sign::CertifiedKey,
};

use crate::options::expand_home;

/// One `certs` entry: `[domain=]path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// The host name (or `*.` wildcard) the certificate is served for, besides its own names;
    /// `None` means `*`, every host.
    pub domain: Option<String>,
    /// The PEM file, `~` expanded.
    pub path: PathBuf,
}

impl FromStr for CertSpec {
    type Err = String;

    /// Parses `[domain=]path`, splitting at the first `=` as mitmproxy does.
    fn from_str(spec: &str) -> Result<Self, String> {
        let (domain, path) = match spec.split_once('=') {
            Some((domain, path)) => (Some(domain.trim()), path),
            None => (None, spec),
        };
        if domain == Some("") {
            return Err(format!("{spec:?}: empty domain before '='"));
        }
        if path.is_empty() {
            return Err(format!("{spec:?}: no certificate file"));
        }
        Ok(CertSpec {
            domain: domain.map(str::to_ascii_lowercase),
            path: expand_home(path),
        })
    }
}

impl fmt::Display for CertSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(domain) = &self.domain {
            write!(f, "{domain}=")?;
        }
        write!(f, "{}", self.path.display())
    }
}

/// Why a `certs` file could not be used. Every variant names the file.
#[derive(Debug)]
pub enum UserCertError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file was read but cannot be used.
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

impl fmt::Display for UserCertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserCertError::Read { path, source } => {
                write!(
                    f,
                    "cannot read the certificate file {}: {source}",
                    path.display()
                )
            }
            UserCertError::Invalid { path, problem } => {
                write!(f, "certificate file {}: {problem}", path.display())
            }
        }
    }
}

impl std::error::Error for UserCertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UserCertError::Read { source, .. } => Some(source),
            UserCertError::Invalid { .. } => None,
        }
    }
}

/// The loaded `certs`, indexed by the names they are served for.
#[derive(Default)]
pub struct UserCerts {
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl fmt::Debug for UserCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.by_name.keys().collect();
        names.sort();
        f.debug_struct("UserCerts").field("names", &names).finish()
    }
}

impl UserCerts {
    /// No user certificates.
    pub fn none() -> Self {
        UserCerts::default()
    }

    /// Loads every entry, in order (a later entry wins a name over an earlier one).
    pub fn load(specs: &[CertSpec]) -> Result<Self, UserCertError> {
        let mut certs = UserCerts::default();
        for spec in specs {
            let bytes = fs::read(&spec.path).map_err(|source| UserCertError::Read {
                path: spec.path.clone(),
                source,
            })?;
            certs.add_pem(&spec.path, &bytes, spec.domain.as_deref())?;
        }
        Ok(certs)
    }

    /// Adds one PEM file's contents (`path` for errors), served for its own names and
    /// `domain` (`None`: `*`, every host).
    pub fn add_pem(
        &mut self,
        path: &Path,
        pem: &[u8],
        domain: Option<&str>,
    ) -> Result<(), UserCertError> {
        let invalid = |problem: String| UserCertError::Invalid {
            path: path.to_path_buf(),
            problem,
        };
        let chain = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("unreadable PEM: {e}")))?;
        if chain.is_empty() {
            return Err(invalid("no CERTIFICATE block".into()));
        }
        let key = match PrivateKeyDer::from_pem_slice(pem) {
            Ok(key) => key,
            Err(rustls::pki_types::pem::Error::NoItemsFound) => {
                return Err(invalid(
                    if pem.windows(9).any(|w| w == b"ENCRYPTED") {
                        "the private key is encrypted, which is not supported"
                    } else {
                        "no PRIVATE KEY block (the file must hold the key and the chain)"
                    }
                    .into(),
                ))
            }
            Err(e) => return Err(invalid(format!("unreadable private key: {e}"))),
        };
        let names = certificate_names(&chain[0]).map_err(invalid)?;
        let key = CertifiedKey::from_der(chain, key, super::provider())
            .map_err(|e| invalid(format!("unusable key or certificate: {e}")))?;
        let key = Arc::new(key);
        let domain = domain.unwrap_or("*").to_ascii_lowercase();
        for name in names.into_iter().chain([domain]) {
            self.by_name.insert(name, Arc::clone(&key));
        }
        Ok(())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The certificate for `host` (lower case): registered under the host itself, else under
    /// the nearest wildcard (`*.b.example.com`, then `*.example.com`, `*.com`), else `*`.
    pub fn lookup(&self, host: &str) -> Option<&Arc<CertifiedKey>> {
        if self.by_name.is_empty() {
            return None;
        }
        if let Some(key) = self.by_name.get(host) {
            return Some(key);
        }
        if host.parse::<IpAddr>().is_err() {
            let mut rest = host;
            while let Some((_, parent)) = rest.split_once('.') {
                if let Some(key) = self.by_name.get(&format!("*.{parent}")) {
                    return Some(key);
                }
                rest = parent;
            }
        }
        self.by_name.get("*")
    }
}

/// The leaf's common name and subject alternative names (DNS names in lower case, IP
/// addresses in their usual text form).
fn certificate_names(der: &[u8]) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("unreadable certificate: {e}"))?;
    let mut names = Vec::new();
    if let Some(cn) = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
    {
        names.push(cn.to_ascii_lowercase());
    }
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("unreadable subject alternative names: {e}"))?;
    for name in san.iter().flat_map(|san| &san.value.general_names) {
        match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => {
                names.push(dns.to_ascii_lowercase())
            }
            x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                let ip = match bytes.len() {
                    4 => <[u8; 4]>::try_from(*bytes).map(IpAddr::from).ok(),
                    16 => <[u8; 16]>::try_from(*bytes).map(IpAddr::from).ok(),
                    _ => None,
                };
                names.extend(ip.map(|ip| ip.to_string()));
            }
            _ => {}
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_as_mitmproxy_splits_them() {
        let spec: CertSpec = "*.Example.com=/a/b.pem".parse().unwrap();
        assert_eq!(spec.domain.as_deref(), Some("*.example.com"));
        assert_eq!(spec.path, PathBuf::from("/a/b.pem"));
        assert_eq!(spec.to_string(), "*.example.com=/a/b.pem");
        let spec: CertSpec = "/a/b.pem".parse().unwrap();
        assert_eq!(spec.domain, None);
        let spec: CertSpec = "~/x.pem".parse().unwrap();
        assert_eq!(spec.path, expand_home("~/x.pem"));
        assert!("=x.pem".parse::<CertSpec>().is_err());
        assert!("a.com=".parse::<CertSpec>().is_err());
        assert!("".parse::<CertSpec>().is_err());
    }
}
