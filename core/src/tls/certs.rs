//! Leaf certificates for the hosts the proxy impersonates: the user's own (`certs`) when one
//! matches, otherwise one signed by the CA on first use and kept in a bounded cache. Every
//! generated leaf shares one key pair, made at startup, so a new host costs one signature.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    net::IpAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType,
};
use rustls::{
    pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
    sign::{CertifiedKey, SigningKey},
};

use super::{
    ca::{random_serial, CertificateAuthority, CLOCK_SKEW_DAYS},
    UserCerts,
};

/// How many generated leaves are kept (mitmproxy keeps 100). Signing a new one takes well
/// under a millisecond, so the cache saves little more than that per connection.
pub const LEAF_CACHE_CAPACITY: usize = 100;

/// How long a leaf is valid from its start, two days in the past: it expires 197 days from
/// now, under the 200 days some browsers accept (mitmproxy's current value).
const LEAF_VALIDITY_DAYS: i64 = 199;

/// A common name longer than this is left out (X.509's upper bound is 64 characters).
const MAX_COMMON_NAME: usize = 63;

/// Why a leaf could not be made. Every variant names the host.
#[derive(Debug)]
pub enum LeafError {
    /// The host is not a DNS name or IP address a certificate can name.
    InvalidHost {
        /// The host as given.
        host: String,
    },
    /// Key generation or signing failed.
    Sign {
        /// The host (empty for the shared leaf key pair).
        host: String,
        /// rcgen's or rustls's error.
        problem: String,
    },
}

impl fmt::Display for LeafError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeafError::InvalidHost { host } => {
                write!(f, "cannot make a certificate for {host:?}: not a host name")
            }
            LeafError::Sign { host, problem } if host.is_empty() => {
                write!(f, "cannot make the leaf key pair: {problem}")
            }
            LeafError::Sign { host, problem } => {
                write!(f, "cannot make a certificate for {host}: {problem}")
            }
        }
    }
}

impl std::error::Error for LeafError {}

/// The certificates the proxy presents to clients.
pub struct CertStore {
    ca: Arc<CertificateAuthority>,
    user: UserCerts,
    leaf_key: KeyPair,
    leaf_signer: Arc<dyn SigningKey>,
    cache: LeafCache,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("ca", &self.ca)
            .field("user", &self.user)
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// A store signing with `ca`, preferring `user` certificates, caching
    /// [`LEAF_CACHE_CAPACITY`] leaves.
    pub fn new(ca: Arc<CertificateAuthority>, user: UserCerts) -> Result<Self, LeafError> {
        Self::with_capacity(ca, user, LEAF_CACHE_CAPACITY)
    }

    /// Like [`CertStore::new`] with another cache size (0: no cache).
    pub fn with_capacity(
        ca: Arc<CertificateAuthority>,
        user: UserCerts,
        capacity: usize,
    ) -> Result<Self, LeafError> {
        let sign = |e: &dyn fmt::Display| LeafError::Sign {
            host: String::new(),
            problem: e.to_string(),
        };
        let leaf_key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| sign(&e))?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let leaf_signer = super::provider()
            .key_provider
            .load_private_key(der)
            .map_err(|e| sign(&e))?;
        Ok(CertStore {
            ca,
            user,
            leaf_key,
            leaf_signer,
            cache: LeafCache::new(capacity),
        })
    }

    /// The CA that signs the leaves.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// The certificate (chain and key) to present for `host`, a DNS name or an IP address
    /// (IPv6 with or without brackets): a matching user certificate, else the cached leaf,
    /// else a new one. Concurrent first requests for one host may both sign; the first to
    /// finish is kept and returned to both.
    pub fn certified_key(&self, host: &str) -> Result<Arc<CertifiedKey>, LeafError> {
        let host = normalize_host(host);
        if let Some(key) = self.user.lookup(&host) {
            return Ok(Arc::clone(key));
        }
        if let Some(key) = self.cache.get(&host) {
            return Ok(key);
        }
        let key = self.generate(&host)?;
        Ok(self.cache.insert(host, key))
    }

    /// A new leaf for `host`, signed now, bypassing the cache and the user certificates.
    pub fn generate(&self, host: &str) -> Result<Arc<CertifiedKey>, LeafError> {
        let host = normalize_host(host);
        let invalid = || LeafError::InvalidHost {
            host: host.to_string(),
        };
        if host.is_empty() {
            return Err(invalid());
        }
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.as_ref().try_into().map_err(|_| invalid())?),
        };
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        if host.len() <= MAX_COMMON_NAME {
            name.push(DnType::CommonName, host.as_ref());
        }
        params.distinguished_name = name;
        params.subject_alt_names = vec![san];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(CLOCK_SKEW_DAYS);
        params.not_after = params.not_before + time::Duration::days(LEAF_VALIDITY_DAYS);
        let cert = params
            .signed_by(&self.leaf_key, self.ca.issuer())
            .map_err(|e| LeafError::Sign {
                host: host.to_string(),
                problem: e.to_string(),
            })?;
        let mut chain = Vec::with_capacity(1 + self.ca.chain().len());
        chain.push(cert.der().clone());
        chain.extend(self.ca.chain().iter().cloned());
        Ok(Arc::new(CertifiedKey::new(
            chain,
            Arc::clone(&self.leaf_signer),
        )))
    }

    /// How many generated leaves are cached.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

/// Lower case, no trailing dot, no IPv6 brackets: one cache entry per host however a client
/// spells it.
fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        host.to_ascii_lowercase().into()
    } else {
        host.into()
    }
}

/// A bounded map of leaves with second-chance eviction: a hit only sets a flag under the read
/// lock; when the cache is full, entries are evicted in insertion order, except that one hit
/// since it was last looked at goes to the back of the queue instead, once.
struct LeafCache {
    capacity: usize,
    inner: RwLock<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<String, CacheEntry>,
    order: VecDeque<String>,
}

struct CacheEntry {
    key: Arc<CertifiedKey>,
    referenced: AtomicBool,
}

impl LeafCache {
    fn new(capacity: usize) -> Self {
        LeafCache {
            capacity,
            inner: RwLock::new(CacheInner::default()),
        }
    }

    fn len(&self) -> usize {
        self.inner.read().map_or(0, |inner| inner.entries.len())
    }

    fn get(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let entry = inner.entries.get(host)?;
        if !entry.referenced.load(Ordering::Relaxed) {
            entry.referenced.store(true, Ordering::Relaxed);
        }
        Some(Arc::clone(&entry.key))
    }

    /// Keeps `key` for `host` and returns it, or returns the leaf another thread stored for
    /// `host` meanwhile.
    fn insert(&self, host: std::borrow::Cow<'_, str>, key: Arc<CertifiedKey>) -> Arc<CertifiedKey> {
        if self.capacity == 0 {
            return key;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = inner.entries.get(host.as_ref()) {
            return Arc::clone(&existing.key);
        }
        while inner.entries.len() >= self.capacity {
            inner.evict_one();
        }
        let host = host.into_owned();
        inner.order.push_back(host.clone());
        inner.entries.insert(
            host,
            CacheEntry {
                key: Arc::clone(&key),
                referenced: AtomicBool::new(false),
            },
        );
        key
    }
}

impl CacheInner {
    fn evict_one(&mut self) {
        // Each pass clears a flag or evicts, so this ends within two rounds of the queue.
        while let Some(host) = self.order.pop_front() {
            let referenced = self
                .entries
                .get(&host)
                .is_some_and(|e| e.referenced.swap(false, Ordering::Relaxed));
            if referenced {
                self.order.push_back(host);
            } else {
                self.entries.remove(&host);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Arc<CertifiedKey> {
        #[derive(Debug)]
        struct NoKey;
        impl SigningKey for NoKey {
            fn choose_scheme(
                &self,
                _: &[rustls::SignatureScheme],
            ) -> Option<Box<dyn rustls::sign::Signer>> {
                None
            }
            fn algorithm(&self) -> rustls::SignatureAlgorithm {
                rustls::SignatureAlgorithm::ECDSA
            }
        }
        Arc::new(CertifiedKey::new(
            vec![rustls::pki_types::CertificateDer::from(vec![0])],
            Arc::new(NoKey),
        ))
    }

    #[test]
    fn the_cache_is_bounded_and_gives_hit_entries_a_second_chance() {
        let cache = LeafCache::new(3);
        for host in ["a", "b", "c"] {
            cache.insert(host.into(), key());
        }
        assert!(cache.get("a").is_some());
        cache.insert("d".into(), key());
        assert_eq!(cache.len(), 3);
        assert!(cache.get("a").is_some(), "a was used: kept");
        assert!(cache.get("b").is_none(), "b was the oldest unused: evicted");
        cache.insert("e".into(), key());
        assert!(cache.get("c").is_none());
        assert!(cache.get("a").is_some() && cache.get("d").is_some());
    }

    #[test]
    fn a_concurrent_insert_keeps_the_first_leaf() {
        let cache = LeafCache::new(3);
        let first = cache.insert("a".into(), key());
        let second = cache.insert("a".into(), key());
        assert!(Arc::ptr_eq(&first, &second));
        assert!(Arc::ptr_eq(
            &LeafCache::new(0).insert("a".into(), first.clone()),
            &first
        ));
    }

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(normalize_host("Example.COM."), "example.com");
        assert_eq!(normalize_host("[::1]"), "::1");
        assert_eq!(normalize_host("10.0.0.1"), "10.0.0.1");
    }
}
