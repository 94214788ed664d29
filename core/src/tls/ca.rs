//! The certificate authority in `confdir`: created on first run, loaded on every later one,
//! never replaced behind the user's back. Several proxies starting at once on a fresh
//! `confdir` end up sharing one CA: the key file is written to a private temporary file and
//! published with a hard link, which fails rather than overwrite a CA that another process
//! published first; the loser loads the winner's.

use std::{
    fmt, fs,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The CA's private key followed by its certificate (PEM), readable by the owner only.
pub const CA_FILE: &str = "interpose-ca.pem";
/// The CA certificate alone (PEM), to install in clients.
pub const CA_CERT_PEM_FILE: &str = "interpose-ca-cert.pem";
/// The CA certificate alone (DER), for clients that want binary `.cer` files.
pub const CA_CERT_DER_FILE: &str = "interpose-ca-cert.cer";
/// The CA's subject common name and organization.
pub const CA_NAME: &str = "interpose";

/// How long a new CA is valid, counted from its start (as mitmproxy's, about ten years).
const CA_VALIDITY_DAYS: i64 = 3650;
/// Certificates start this many days in the past, so that clients whose clock is behind
/// accept them.
pub(crate) const CLOCK_SKEW_DAYS: i64 = 2;

/// Why the CA could not be loaded or created. Every variant names the file or folder.
#[derive(Debug)]
pub enum CaError {
    /// `confdir` could not be created.
    Confdir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The CA file exists but could not be read.
    Read {
        /// The CA file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The CA file was read but does not hold a usable CA; it is left as it is.
    Damaged {
        /// The CA file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A new CA could not be written (or a certificate file next to it).
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A new CA could not be generated.
    Generate {
        /// The CA file it was meant for.
        path: PathBuf,
        /// rcgen's error.
        problem: String,
    },
}

impl fmt::Display for CaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaError::Confdir { path, source } => {
                write!(f, "cannot create confdir {}: {source}", path.display())
            }
            CaError::Read { path, source } => {
                write!(f, "cannot read the CA file {}: {source}", path.display())
            }
            CaError::Damaged { path, problem } => write!(
                f,
                "the CA file {} is damaged: {problem} (fix it, or move it away to have a new \
                 CA created)",
                path.display()
            ),
            CaError::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            CaError::Generate { path, problem } => {
                write!(f, "cannot generate a CA for {}: {problem}", path.display())
            }
        }
    }
}

impl std::error::Error for CaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CaError::Confdir { source, .. }
            | CaError::Read { source, .. }
            | CaError::Write { source, .. } => Some(source),
            CaError::Damaged { .. } | CaError::Generate { .. } => None,
        }
    }
}

/// The certificate authority that signs every leaf.
pub struct CertificateAuthority {
    path: PathBuf,
    cert: CertificateDer<'static>,
    cert_pem: String,
    /// The CA certificate, then any further certificates of the CA file: what follows a leaf
    /// when it is served.
    chain: Vec<CertificateDer<'static>>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Loads the CA of `confdir`, creating `confdir` (mode 0700) and a new CA (key file mode
    /// 0600, plus the two certificate-only files) when there is none. An existing CA file that
    /// cannot be read or used is an error, never replaced.
    pub fn load_or_create(confdir: &Path) -> Result<Self, CaError> {
        create_confdir(confdir)?;
        let path = confdir.join(CA_FILE);
        let ca = match fs::read(&path) {
            Ok(bytes) => {
                warn_if_readable_by_others(&path);
                Self::from_pem(&path, &bytes)?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Self::create(confdir, &path)?,
            Err(source) => return Err(CaError::Read { path, source }),
        };
        ca.write_cert_files(confdir)?;
        Ok(ca)
    }

    /// Loads a CA file: a private key (PKCS#8, or PKCS#1 for RSA) and the CA certificate, in
    /// PEM, in any order; further certificates are served after each leaf.
    pub fn load(path: &Path) -> Result<Self, CaError> {
        let bytes = fs::read(path).map_err(|source| CaError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_pem(path, &bytes)
    }

    /// The CA file (`confdir/interpose-ca.pem`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificates served after a leaf: the CA's, then any others of the CA file.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    fn create(confdir: &Path, path: &Path) -> Result<Self, CaError> {
        let generate = |e: rcgen::Error| CaError::Generate {
            path: path.to_path_buf(),
            problem: e.to_string(),
        };
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, CA_NAME);
        name.push(DnType::OrganizationName, CA_NAME);
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.serial_number = Some(random_serial());
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(CLOCK_SKEW_DAYS);
        params.not_after = params.not_before + time::Duration::days(CA_VALIDITY_DAYS);
        let cert = params.self_signed(&key).map_err(generate)?;
        let contents = format!("{}{}", key.serialize_pem(), cert.pem());

        let temp = confdir.join(unique_temp_name(CA_FILE));
        write_private(&temp, contents.as_bytes()).map_err(|source| {
            let _ = fs::remove_file(&temp);
            CaError::Write {
                path: temp.clone(),
                source,
            }
        })?;
        // A hard link never replaces an existing file: whoever links first has published the
        // CA, complete (it was written and synced before), and everybody else loads it.
        let published = fs::hard_link(&temp, path);
        let _ = fs::remove_file(&temp);
        match published {
            Ok(()) => {
                if let Ok(dir) = fs::File::open(confdir) {
                    let _ = dir.sync_all();
                }
                Self::from_pem(path, contents.as_bytes())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::load(path),
            Err(source) => Err(CaError::Write {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    fn from_pem(path: &Path, bytes: &[u8]) -> Result<Self, CaError> {
        let damaged = |problem: String| CaError::Damaged {
            path: path.to_path_buf(),
            problem,
        };
        let chain = CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| damaged(format!("unreadable PEM: {e}")))?;
        let Some(cert) = chain.first().cloned() else {
            return Err(damaged("no CERTIFICATE block".into()));
        };
        let key = match PrivateKeyDer::from_pem_slice(bytes) {
            Ok(key) => key,
            Err(rustls::pki_types::pem::Error::NoItemsFound) => {
                let problem = if contains(bytes, b"ENCRYPTED") {
                    "the private key is encrypted, which is not supported"
                } else {
                    "no PRIVATE KEY block"
                };
                return Err(damaged(problem.into()));
            }
            Err(e) => return Err(damaged(format!("unreadable private key: {e}"))),
        };
        let key = signing_key(&key).map_err(|e| damaged(format!("unusable private key: {e}")))?;

        let (_, parsed) = x509_parser::parse_x509_certificate(&cert)
            .map_err(|e| damaged(format!("unreadable certificate: {e}")))?;
        if parsed.tbs_certificate.subject_pki.raw
            != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
        {
            return Err(damaged(
                "the private key does not belong to the first certificate".into(),
            ));
        }
        match parsed.basic_constraints() {
            Ok(Some(constraints)) if constraints.value.ca => {}
            _ => {
                return Err(damaged(
                    "the first certificate is not a CA certificate (basic constraints)".into(),
                ))
            }
        }
        let issuer = Issuer::from_ca_cert_der(&cert, key)
            .map_err(|e| damaged(format!("unusable CA certificate: {e}")))?;
        let cert_pem = pem_encode("CERTIFICATE", &cert);
        Ok(CertificateAuthority {
            path: path.to_path_buf(),
            cert,
            cert_pem,
            chain,
            issuer,
        })
    }

    /// Writes the certificate-only files when they are missing or hold another certificate
    /// (the user replaced the CA file). They are public: replaced by rename, atomically.
    fn write_cert_files(&self, confdir: &Path) -> Result<(), CaError> {
        for (name, contents) in [
            (CA_CERT_PEM_FILE, self.cert_pem.as_bytes()),
            (CA_CERT_DER_FILE, self.cert.as_ref()),
        ] {
            let path = confdir.join(name);
            if fs::read(&path).is_ok_and(|old| old == contents) {
                continue;
            }
            let temp = confdir.join(unique_temp_name(name));
            let written = fs::write(&temp, contents).and_then(|()| fs::rename(&temp, &path));
            if let Err(source) = written {
                let _ = fs::remove_file(&temp);
                return Err(CaError::Write { path, source });
            }
        }
        Ok(())
    }
}

/// A random positive serial number of 16 bytes. rcgen's default derives the serial from the
/// public key, which would give every leaf (they share one key) the same serial.
pub(crate) fn random_serial() -> rcgen::SerialNumber {
    let mut bytes = [0u8; 16];
    if super::provider().secure_random.fill(&mut bytes).is_err() {
        // ring's system random source does not fail on supported platforms; a time-based
        // serial still keeps serials distinct if it ever does.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = nanos.to_be_bytes();
    }
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    rcgen::SerialNumber::from_slice(&bytes)
}

/// An rcgen signing key from PKCS#8, or from PKCS#1 (mitmproxy's RSA CA files) wrapped into
/// PKCS#8, since rcgen with ring reads PKCS#8 only.
fn signing_key(key: &PrivateKeyDer<'_>) -> Result<KeyPair, String> {
    match key {
        PrivateKeyDer::Pkcs8(_) => KeyPair::try_from(key).map_err(|e| e.to_string()),
        PrivateKeyDer::Pkcs1(rsa) => {
            let pkcs8 = pkcs1_to_pkcs8(rsa.secret_pkcs1_der());
            KeyPair::from_pkcs8_der_and_sign_algo(
                &PrivatePkcs8KeyDer::from(pkcs8),
                &rcgen::PKCS_RSA_SHA256,
            )
            .map_err(|e| e.to_string())
        }
        _ => Err(
            "EC PRIVATE KEY (SEC1) is not supported here: convert it to PKCS#8 \
                  (openssl pkcs8 -topk8 -nocrypt)"
                .into(),
        ),
    }
}

/// `PrivateKeyInfo { version 0, rsaEncryption with NULL parameters, OCTET STRING pkcs1 }`.
fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    const VERSION_AND_ALGORITHM: [u8; 18] = [
        0x02, 0x01, 0x00, // INTEGER 0
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
        0x00, // SEQUENCE { OID rsaEncryption, NULL }
    ];
    let octet_string = der_tlv(0x04, pkcs1);
    let mut body = VERSION_AND_ALGORITHM.to_vec();
    body.extend_from_slice(&octet_string);
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Writes a new file that nobody but the owner can read at any moment: created with mode
/// 0600 (not chmod-ed afterwards), refused if the name exists, synced before returning.
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// The key file should be the owner's alone; an existing one is used as it is, but not
/// silently.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = fs::metadata(path) {
            let mode = metadata.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    "the CA private key in {} is readable by others (mode {:o}); chmod 600 it",
                    path.display(),
                    mode & 0o777
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn create_confdir(confdir: &Path) -> Result<(), CaError> {
    if confdir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(confdir).map_err(|source| CaError::Confdir {
        path: confdir.to_path_buf(),
        source,
    })
}

/// `.NAME.PID.N.tmp`: hidden, and distinct across processes and threads.
fn unique_temp_name(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{name}.{}.{n}.tmp", std::process::id())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// PEM text of one DER block, 64 characters a line.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut base64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            base64.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]
            } else {
                b'='
            });
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in base64.chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
