//! The TLS module end to end without sockets: CA files, leaves, both configuration factories
//! and handshakes over in-memory pipes (`tokio::io::duplex`), ClientHello parsing of a real
//! rustls client's first flight.

use std::{
    path::{Path, PathBuf},
    sync::{atomic::AtomicUsize, Arc, Barrier},
};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::{pki_types::CertificateDer, ClientConfig, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_rustls::{client, server};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;

/// A fresh folder under the system's temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("interpose-tls-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).unwrap().1
}

/// A context over a new CA in a temporary confdir; upstream verification trusts that CA only.
fn context(dir: &TempDir, user: UserCerts) -> TlsContext {
    let ca = Arc::new(CertificateAuthority::load_or_create(&dir.0.join("conf")).unwrap());
    let roots = UpstreamRoots {
        system: false,
        extra: vec![ca.cert_der().clone()],
    };
    TlsContext::new(ca, user, UpstreamConfigs::with_roots(false, roots)).unwrap()
}

/// A CA that is not the proxy's, and a leaf it signed for `names`: (CA DER, key + chain PEM,
/// leaf DER).
fn foreign_ca_and_leaf(
    names: &[&str],
) -> (CertificateDer<'static>, String, CertificateDer<'static>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "someone else's CA");
    let ca_cert = params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let leaf = CertificateParams::new(names)
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let pem = format!(
        "{}{}{}",
        leaf_key.serialize_pem(),
        leaf.pem(),
        ca_cert.pem()
    );
    (ca_cert.der().clone(), pem, leaf.der().clone())
}

/// Runs both handshakes over an in-memory pipe: the proxy's client side with `server`, a
/// client with `client` connecting to `name`.
async fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    name: &str,
) -> (
    Result<server::TlsStream<DuplexStream>, HandshakeError>,
    Result<client::TlsStream<DuplexStream>, HandshakeError>,
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    tokio::join!(accept(server, a, None), connect(client, name, b))
}

/// Checks that application data crosses the connection both ways.
async fn exchange(
    server: &mut server::TlsStream<DuplexStream>,
    client: &mut client::TlsStream<DuplexStream>,
) {
    client.write_all(b"ping").await.unwrap();
    client.flush().await.unwrap();
    let mut buf = [0; 4];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    server.write_all(b"pong").await.unwrap();
    server.flush().await.unwrap();
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_ca_is_created_private_and_reused() {
    let dir = TempDir::new("ca");
    let confdir = dir.0.join("new/conf");
    let ca = CertificateAuthority::load_or_create(&confdir).unwrap();
    assert_eq!(ca.path(), confdir.join(CA_FILE));
    #[cfg(unix)]
    {
        assert_eq!(mode(&confdir), 0o700);
        assert_eq!(mode(&confdir.join(CA_FILE)), 0o600);
    }
    let key_file = std::fs::read_to_string(confdir.join(CA_FILE)).unwrap();
    let key_at = key_file.find("-----BEGIN PRIVATE KEY-----").unwrap();
    assert!(key_at < key_file.find("-----BEGIN CERTIFICATE-----").unwrap());
    let cert_pem = std::fs::read_to_string(confdir.join(CA_CERT_PEM_FILE)).unwrap();
    assert_eq!(cert_pem, ca.cert_pem());
    assert!(!cert_pem.contains("PRIVATE"));
    assert_eq!(
        std::fs::read(confdir.join(CA_CERT_DER_FILE)).unwrap(),
        ca.cert_der().as_ref()
    );
    assert!(key_file.ends_with(ca.cert_pem()), "the PEM encoders agree");

    let cert = parse(ca.cert_der());
    let name = |cert: &X509Certificate<'_>| cert.subject().to_string();
    assert_eq!(name(&cert), "CN=interpose, O=interpose");
    assert_eq!(cert.issuer(), cert.subject());
    assert!(cert.basic_constraints().unwrap().unwrap().value.ca);
    let usage = cert.key_usage().unwrap().unwrap();
    assert!(usage.critical && usage.value.key_cert_sign() && usage.value.crl_sign());
    let validity = cert.validity();
    let days = (validity.not_after.timestamp() - validity.not_before.timestamp()) / 86400;
    assert_eq!(days, 3650);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - validity.not_before.timestamp() - 2 * 86400).abs() < 60);

    let again = CertificateAuthority::load_or_create(&confdir).unwrap();
    assert_eq!(again.cert_der(), ca.cert_der(), "same serial, same key");
    assert_eq!(
        std::fs::read_to_string(confdir.join(CA_FILE)).unwrap(),
        key_file
    );
    // A missing certificate-only file comes back; the CA does not change.
    std::fs::remove_file(confdir.join(CA_CERT_DER_FILE)).unwrap();
    let again = CertificateAuthority::load_or_create(&confdir).unwrap();
    assert_eq!(again.cert_der(), ca.cert_der());
    assert!(confdir.join(CA_CERT_DER_FILE).is_file());
}

#[test]
fn a_damaged_ca_is_an_error_naming_the_file_and_is_left_alone() {
    let dir = TempDir::new("damaged");
    let path = dir.0.join(CA_FILE);
    let cases: [(&[u8], &str); 4] = [
        (b"not a CA at all", "no CERTIFICATE block"),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "no PRIVATE KEY block",
        ),
        (b"-----BEGIN CERTIFICATE-----\n!!!!\n", "unreadable PEM"),
        (
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n\
              -----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "encrypted",
        ),
    ];
    for (contents, problem) in cases {
        std::fs::write(&path, contents).unwrap();
        let error = CertificateAuthority::load_or_create(&dir.0).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, CaError::Damaged { .. }), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(problem), "{text}");
        assert_eq!(std::fs::read(&path).unwrap(), contents, "never replaced");
    }

    // A key that is not the certificate's.
    let other = TempDir::new("other");
    CertificateAuthority::load_or_create(&other.0).unwrap();
    let ours = std::fs::read_to_string(other.0.join(CA_FILE)).unwrap();
    let (_, foreign, _) = foreign_ca_and_leaf(&["x.test"]);
    let key = &ours[..ours.find("-----BEGIN CERTIFICATE").unwrap()];
    let cert = &foreign[foreign.find("-----BEGIN CERTIFICATE").unwrap()..];
    std::fs::write(&path, format!("{key}{cert}")).unwrap();
    let error = CertificateAuthority::load_or_create(&dir.0)
        .unwrap_err()
        .to_string();
    assert!(error.contains("does not belong"), "{error}");

    // A leaf is not a CA.
    let (_, foreign, _) = foreign_ca_and_leaf(&["x.test"]);
    std::fs::write(&path, foreign).unwrap();
    let error = CertificateAuthority::load_or_create(&dir.0)
        .unwrap_err()
        .to_string();
    assert!(error.contains("not a CA certificate"), "{error}");

    // Unreadable: a folder where the file should be.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let error = CertificateAuthority::load_or_create(&dir.0).unwrap_err();
    assert!(matches!(error, CaError::Read { .. }), "{error}");
    assert!(error.to_string().contains(&path.display().to_string()));
}

#[tokio::test]
async fn a_mitmproxy_style_rsa_ca_file_signs_leaves() {
    // `RSA PRIVATE KEY` (PKCS#1) then the certificate, as mitmproxy writes its CA file; made
    // with `openssl genrsa -traditional` and `openssl req -x509` (test data only).
    let dir = TempDir::new("rsa");
    std::fs::write(dir.0.join(CA_FILE), include_str!("testdata/rsa-ca.pem")).unwrap();
    let ca = CertificateAuthority::load_or_create(&dir.0).unwrap();
    assert_eq!(
        parse(ca.cert_der()).subject().to_string(),
        "CN=mitmproxy, O=mitmproxy"
    );
    let roots = UpstreamRoots {
        system: false,
        extra: vec![ca.cert_der().clone()],
    };
    let tls = TlsContext::new(
        Arc::new(ca),
        UserCerts::none(),
        UpstreamConfigs::with_roots(false, roots),
    )
    .unwrap();
    let server_config = tls.server_config(Some("rsa.test"), "", &[]).unwrap();
    let (server, client) = handshake(server_config, tls.client_config(&[], true), "rsa.test").await;
    server.unwrap();
    client.unwrap();
}

#[test]
fn proxies_starting_together_share_one_ca() {
    let dir = TempDir::new("race");
    let confdir = dir.0.join("conf");
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let cas: Vec<_> = (0..threads)
        .map(|_| {
            let (barrier, confdir) = (Arc::clone(&barrier), confdir.clone());
            std::thread::spawn(move || {
                barrier.wait();
                CertificateAuthority::load_or_create(&confdir)
                    .unwrap()
                    .cert_der()
                    .clone()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(cas.iter().all(|ca| *ca == cas[0]));
    let on_disk = CertificateAuthority::load(&confdir.join(CA_FILE)).unwrap();
    assert_eq!(*on_disk.cert_der(), cas[0]);
    let mut files: Vec<_> = std::fs::read_dir(&confdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [CA_CERT_DER_FILE, CA_CERT_PEM_FILE, CA_FILE],
        "no temporary files left"
    );
}

#[test]
fn leaves_name_the_host_and_chain_to_the_ca() {
    let dir = TempDir::new("leaf");
    let tls = context(&dir, UserCerts::none());
    let store = tls.store();
    let ca = parse(tls.ca().cert_der());

    let leaf = store.certified_key("Example.COM").unwrap();
    assert_eq!(leaf.cert.len(), 2, "leaf, then the CA");
    assert_eq!(leaf.cert[1], *tls.ca().cert_der());
    let cert = parse(&leaf.cert[0]);
    assert_eq!(cert.subject().to_string(), "CN=example.com");
    assert_eq!(cert.issuer(), ca.subject());
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names,
        [x509_parser::extensions::GeneralName::DNSName("example.com")]
    );
    assert!(cert.basic_constraints().unwrap().is_none());
    assert!(
        cert.extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .server_auth
    );
    let ski = |cert: &X509Certificate<'_>| {
        cert.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(id.0.to_vec())
                }
                _ => None,
            })
    };
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|id| id.0.to_vec())
            }
            _ => None,
        });
    assert_eq!(aki, ski(&ca), "AKI is the CA's SKI");
    assert_eq!(ski(&cert), None, "no SKI on leaves (SChannel)");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let validity = cert.validity();
    assert!((now - validity.not_before.timestamp() - 2 * 86400).abs() < 60);
    assert!((validity.not_after.timestamp() - now - 197 * 86400).abs() < 60);

    // Cached (any spelling), one key pair for all leaves, distinct serials.
    assert!(Arc::ptr_eq(
        &leaf,
        &store.certified_key("example.com.").unwrap()
    ));
    let other = store.certified_key("other.example").unwrap();
    assert_eq!(store.cached(), 2);
    assert!(Arc::ptr_eq(&leaf.key, &other.key));
    assert_ne!(cert.serial, parse(&other.cert[0]).serial);
    let cert2 = store.generate("example.com").unwrap();
    assert_ne!(cert.serial, parse(&cert2.cert[0]).serial);

    let ip = store.certified_key("[::1]").unwrap();
    let ip = parse(&ip.cert[0]);
    let san = ip.subject_alternative_name().unwrap().unwrap();
    let mut loopback = [0u8; 16];
    loopback[15] = 1;
    assert_eq!(
        san.value.general_names,
        [x509_parser::extensions::GeneralName::IPAddress(&loopback)]
    );

    let long = format!("{}.example", "a".repeat(60));
    let cert = store.certified_key(&long).unwrap();
    let cert = parse(&cert.cert[0]);
    assert_eq!(cert.subject().iter().count(), 0, "no CN over 63 characters");
    assert!(cert.subject_alternative_name().unwrap().unwrap().critical);

    assert!(matches!(
        store.certified_key(""),
        Err(LeafError::InvalidHost { .. })
    ));
    assert!(store.certified_key("bad host\u{e9}").is_err());
}

#[tokio::test]
async fn a_client_trusting_the_ca_accepts_the_leaf_for_a_name() {
    let dir = TempDir::new("hs-name");
    let tls = context(&dir, UserCerts::none());
    let alpn = [b"h2".to_vec(), b"http/1.1".to_vec()];
    let server_config = tls
        .server_config(Some("example.com"), "ignored", &alpn)
        .unwrap();
    let client_config = tls.client_config(&alpn, true);
    let (server, client) = handshake(server_config, client_config, "example.com").await;
    let (mut server, mut client) = (server.unwrap(), client.unwrap());
    exchange(&mut server, &mut client).await;

    let client_side = TlsDetails::of_client(&server);
    assert_eq!(client_side.sni.as_deref(), Some("example.com"));
    assert_eq!(client_side.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(client_side.tls_version, Some("TLSv1.3"));
    assert!(client_side.cipher.as_deref().unwrap().starts_with("TLS_"));
    assert!(
        client_side.certificate_list.is_empty(),
        "no client certificate"
    );
    let server_side = TlsDetails::of_server(&client, Some("example.com"));
    assert_eq!(server_side.alpn, client_side.alpn);
    assert_eq!(server_side.cipher, client_side.cipher);
    let leaf = tls.store().certified_key("example.com").unwrap();
    assert_eq!(server_side.certificate_list, leaf.cert);
}

#[tokio::test]
async fn a_client_without_sni_gets_the_fallback_host_ip() {
    let dir = TempDir::new("hs-ip");
    let tls = context(&dir, UserCerts::none());
    let server_config = tls.server_config(None, "127.0.0.1", &[]).unwrap();
    let (server, client) =
        handshake(server_config, tls.client_config(&[], true), "127.0.0.1").await;
    let (server, client) = (server.unwrap(), client.unwrap());
    assert_eq!(TlsDetails::of_client(&server).sni, None, "no SNI for an IP");
    let details = TlsDetails::of_server(&client, None);
    assert_eq!(details.alpn, None);
    let san = parse(&details.certificate_list[0])
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .clone();
    assert_eq!(
        san,
        [x509_parser::extensions::GeneralName::IPAddress(&[
            127, 0, 0, 1
        ])]
    );
}

#[tokio::test]
async fn user_certificates_win_by_name_wildcard_and_default() {
    let dir = TempDir::new("user");
    let (user_ca, named_pem, named_leaf) = foreign_ca_and_leaf(&["user.test", "10.1.2.3"]);
    let (wild_ca, wild_pem, wild_leaf) = foreign_ca_and_leaf(&["*.wild.test"]);
    let (_, any_pem, any_leaf) = foreign_ca_and_leaf(&["catchall.test"]);
    let write = |name: &str, pem: &str| {
        let path = dir.0.join(name);
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    };
    let specs: Vec<CertSpec> = [
        write("any.pem", &any_pem),
        format!("*.wild.test={}", write("wild.pem", &wild_pem)),
        write("named.pem", &named_pem),
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    // The last entry without a domain takes `*` from the first one.
    let user = UserCerts::load(&specs).unwrap();
    let leaf_of = |host: &str| user.lookup(host).map(|k| k.cert[0].clone());
    assert_eq!(leaf_of("user.test"), Some(named_leaf.clone()));
    assert_eq!(leaf_of("10.1.2.3"), Some(named_leaf.clone()));
    assert_eq!(leaf_of("a.wild.test"), Some(wild_leaf.clone()));
    assert_eq!(leaf_of("a.b.wild.test"), Some(wild_leaf.clone()));
    assert_eq!(leaf_of("catchall.test"), Some(any_leaf));
    assert_eq!(leaf_of("elsewhere.test"), Some(named_leaf.clone()), "*");

    let tls = context(&dir, user);
    let roots = UpstreamRoots {
        system: false,
        extra: vec![user_ca, wild_ca],
    };
    let trusting = UpstreamConfigs::with_roots(false, roots);
    for (host, leaf) in [("user.test", &named_leaf), ("x.wild.test", &wild_leaf)] {
        let server_config = tls.server_config(Some(host), host, &[]).unwrap();
        let (server, client) =
            handshake(server_config, trusting.client_config(&[], true), host).await;
        server.unwrap();
        let details = TlsDetails::of_server(&client.unwrap(), Some(host));
        assert_eq!(details.certificate_list[0], *leaf);
    }

    // Without any `*`, other hosts get generated leaves.
    let only_wild = UserCerts::load(&specs[1..2]).unwrap();
    assert!(only_wild.lookup("elsewhere.test").is_none());
    let tls = context(&dir, only_wild);
    let generated = tls.store().certified_key("elsewhere.test").unwrap();
    assert_eq!(generated.cert[1], *tls.ca().cert_der());
}

#[test]
fn unusable_user_certificates_name_the_file() {
    let dir = TempDir::new("user-bad");
    let (_, pem, _) = foreign_ca_and_leaf(&["user.test"]);
    let missing_key = &pem[pem.find("-----BEGIN CERTIFICATE").unwrap()..];
    let (_, other_pem, _) = foreign_ca_and_leaf(&["x.test"]);
    let other_key = &other_pem[..other_pem.find("-----BEGIN CERTIFICATE").unwrap()];
    for (name, contents, problem) in [
        ("nokey.pem", missing_key.to_string(), "no PRIVATE KEY"),
        ("nocert.pem", other_key.to_string(), "no CERTIFICATE"),
        (
            "mismatch.pem",
            format!("{other_key}{missing_key}"),
            "unusable key or certificate",
        ),
    ] {
        let path = dir.0.join(name);
        std::fs::write(&path, contents).unwrap();
        let spec = path.display().to_string().parse().unwrap();
        let error = UserCerts::load(&[spec]).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains(problem), "{error}");
    }
    let spec = dir
        .0
        .join("absent.pem")
        .display()
        .to_string()
        .parse()
        .unwrap();
    assert!(matches!(
        UserCerts::load(&[spec]),
        Err(UserCertError::Read { .. })
    ));
}

#[tokio::test]
async fn alpn_follows_the_proxy_preference_among_the_client_offers() {
    let dir = TempDir::new("alpn");
    let tls = context(&dir, UserCerts::none());
    let h2 = b"h2".to_vec();
    let h1 = b"http/1.1".to_vec();
    let negotiate = |server: Vec<Vec<u8>>, client: Vec<Vec<u8>>| {
        let tls = &tls;
        async move {
            let server_config = tls.server_config(Some("alpn.test"), "", &server).unwrap();
            let (server, client) =
                handshake(server_config, tls.client_config(&client, true), "alpn.test").await;
            match (server, client) {
                (Ok(server), Ok(_)) => Ok(TlsDetails::of_client(&server).alpn),
                (Err(e), _) => Err(e),
                (Ok(_), Err(e)) => panic!("client failed alone: {e}"),
            }
        }
    };
    assert_eq!(
        negotiate(vec![h2.clone(), h1.clone()], vec![h1.clone(), h2.clone()])
            .await
            .unwrap(),
        Some(h2.clone())
    );
    assert_eq!(
        negotiate(vec![h1.clone()], vec![h2.clone(), h1.clone()])
            .await
            .unwrap(),
        Some(h1.clone())
    );
    assert_eq!(negotiate(vec![h1.clone()], vec![]).await.unwrap(), None);
    let error = negotiate(vec![h1.clone()], vec![b"spdy/3".to_vec()])
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("no ALPN protocol in common"),
        "{error}"
    );

    // One shared configuration per ALPN list (with SNI); the upstream ones are cached too.
    let (only_h1, only_h2) = (vec![h1.clone()], vec![h2.clone()]);
    let a = tls.server_config(Some("a.test"), "", &only_h1).unwrap();
    let b = tls.server_config(Some("b.test"), "", &only_h1).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let c = tls.server_config(Some("a.test"), "", &only_h2).unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
    assert!(Arc::ptr_eq(
        &tls.client_config(&only_h1, true),
        &tls.client_config(&only_h1, true)
    ));
    assert!(!tls.client_config(&only_h1, false).enable_sni);
}

#[tokio::test]
async fn upstream_verification() {
    let dir = TempDir::new("upstream");
    let tls = context(&dir, UserCerts::none());
    let server_config = || tls.server_config(Some("example.com"), "", &[]).unwrap();

    // Trusted: the test CA is an extra root.
    let (server, client) =
        handshake(server_config(), tls.client_config(&[], true), "example.com").await;
    server.unwrap();
    client.unwrap();

    // Unknown CA.
    let (foreign_ca, _, _) = foreign_ca_and_leaf(&["x.test"]);
    let strangers = UpstreamConfigs::with_roots(
        false,
        UpstreamRoots {
            system: false,
            extra: vec![foreign_ca],
        },
    );
    let (_, client) = handshake(
        server_config(),
        strangers.client_config(&[], true),
        "example.com",
    )
    .await;
    let error = client.unwrap_err();
    assert!(error.is_certificate_error());
    assert_eq!(error.peer, Peer::Server("example.com".into()));
    assert_eq!(
        error.to_string(),
        "TLS handshake with the server example.com failed: its certificate is not trusted \
         (unknown issuer); ssl_insecure turns verification off"
    );

    // ssl_insecure accepts it, still checking that the server holds the key.
    let insecure = UpstreamConfigs::with_roots(true, UpstreamRoots::default());
    assert!(!insecure.verifies());
    let (server, client) = handshake(
        server_config(),
        insecure.client_config(&[], true),
        "example.com",
    )
    .await;
    server.unwrap();
    client.unwrap();

    // The wrong name (a leaf for example.com whatever the SNI says).
    let fixed = tls.server_config(None, "example.com", &[]).unwrap();
    let (_, client) = handshake(fixed, tls.client_config(&[], true), "other.test").await;
    let error = client.unwrap_err().to_string();
    assert!(error.contains("not valid for other.test"), "{error}");

    // No roots at all: an error when verifying, not before.
    let none = UpstreamConfigs::with_roots(false, UpstreamRoots::default());
    let config = none.client_config(&[], true);
    let (_, client) = handshake(server_config(), config, "example.com").await;
    let error = client.unwrap_err().to_string();
    assert!(error.contains("no trusted root certificates"), "{error}");
    assert!(none.load_roots().is_err());
    assert_eq!(tls.upstream().load_roots().unwrap(), 1);
}

#[test]
fn the_system_trust_store_loads_lazily() {
    let system = UpstreamConfigs::new(false);
    // Whether this machine has a store or not, building configurations never needs it.
    system.client_config(&[b"h2".to_vec()], true);
    match system.load_roots() {
        Ok(n) => assert!(n > 0),
        Err(e) => assert!(e.to_string().contains("ssl_insecure"), "{e}"),
    }
}

/// The first flight of a real rustls client.
fn first_flight(sni: &str, alpn: &[&[u8]]) -> Vec<u8> {
    let mut config = ClientConfig::builder_with_provider(Arc::clone(provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut flight = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut flight).unwrap();
    }
    flight
}

#[test]
fn client_hello_of_a_real_client() {
    let flight = first_flight("example.com", &[b"h2", b"http/1.1"]);
    let HelloParse::Complete(hello) = ClientHello::parse(&flight) else {
        panic!("not parsed");
    };
    assert_eq!(hello.sni.as_deref(), Some("example.com"));
    assert_eq!(hello.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert!(hello.cipher_suites.contains(&0x1301));
    assert!(hello
        .cipher_list()
        .contains(&"TLS_AES_256_GCM_SHA384".to_string()));
    assert!(hello.supported_versions.contains(&0x0304));
    assert_eq!(hello.legacy_version, 0x0303);
    assert_eq!(hello.records_len, flight.len());
    assert_eq!(hello.raw, flight[5..]);
    assert!(hello.extensions.iter().any(|(kind, _)| *kind == 16));

    // Arriving a few bytes at a time: incomplete until the last byte.
    for n in [0, 1, 3, 5, 6, 50, flight.len() - 1] {
        assert_eq!(
            ClientHello::parse(&flight[..n]),
            HelloParse::Incomplete,
            "{n}"
        );
    }
    // Trailing bytes (the next flight) do not matter.
    let mut more = flight.clone();
    more.extend_from_slice(b"\x14\x03\x03\x00\x01\x01");
    assert_eq!(
        ClientHello::parse(&more),
        HelloParse::Complete(hello.clone())
    );

    // The same message split over two records, as a client may send it.
    let message = &flight[5..];
    let (first, second) = message.split_at(40);
    let mut split = Vec::new();
    for part in [first, second] {
        split.extend_from_slice(&[22, 3, 1]);
        split.extend_from_slice(&(part.len() as u16).to_be_bytes());
        split.extend_from_slice(part);
    }
    for n in [44, 45, 46, split.len() - 1] {
        assert_eq!(
            ClientHello::parse(&split[..n]),
            HelloParse::Incomplete,
            "{n}"
        );
    }
    let HelloParse::Complete(again) = ClientHello::parse(&split) else {
        panic!("split hello not parsed");
    };
    assert_eq!(again.sni, hello.sni);
    assert_eq!(again.alpn_protocols, hello.alpn_protocols);
    assert_eq!(again.raw, hello.raw);
    assert_eq!(again.records_len, split.len());

    // No SNI for an IP address.
    let HelloParse::Complete(ip) = ClientHello::parse(&first_flight("127.0.0.1", &[])) else {
        panic!("not parsed");
    };
    assert_eq!(ip.sni, None);
    assert!(ip.alpn_protocols.is_empty());
}

#[test]
fn context_from_options() {
    let dir = TempDir::new("options");
    let (_, pem, leaf) = foreign_ca_and_leaf(&["user.test"]);
    let pem_path = dir.0.join("user.pem");
    std::fs::write(&pem_path, pem).unwrap();
    let options = CoreOptions {
        confdir: dir.0.join("conf"),
        certs: vec![format!("user.test={}", pem_path.display()).parse().unwrap()],
        ssl_insecure: true,
        ..CoreOptions::default()
    };
    let tls = TlsContext::load(&options).unwrap();
    assert!(!tls.upstream().verifies());
    assert_eq!(tls.ca().path(), options.confdir.join(CA_FILE));
    assert_eq!(
        tls.store().certified_key("user.test").unwrap().cert[0],
        leaf
    );

    let broken = CoreOptions {
        certs: vec![format!("{}", dir.0.join("absent.pem").display())
            .parse()
            .unwrap()],
        ..options
    };
    let error = TlsContext::load(&broken).unwrap_err();
    assert!(matches!(error, TlsSetupError::UserCert(_)), "{error}");
    assert!(error.to_string().contains("absent.pem"));
}
