//! From [`Settings`] to rustls configurations: the trusted roots, the certificates and
//! keys read from PEM files, and the ring provider passed explicitly (no process-wide
//! default is installed, so no other provider can be picked by accident).

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use log::{info, warn};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, Error, RootCertStore, ServerConfig, SignatureScheme,
};

use super::settings::{Settings, Side};

/// The one crypto provider: ring.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

/// A client configuration, and whether the server asked for a certificate on the
/// connection made with it (one configuration per connection).
pub struct Client {
    /// The configuration.
    pub config: Arc<ClientConfig>,
    /// Its record of a certificate request.
    pub asked: Arc<Asked>,
}

/// Builds a client's configuration from `s` (files read now, so a renewed certificate
/// is taken at the next connect).
pub fn client(s: &Settings) -> io::Result<Client> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let builder = match s.insecure {
        true => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(
                provider().signature_verification_algorithms,
            ))),
        false => {
            let roots = match &s.ca {
                Some(path) => Arc::new(bundle(path, "ca")?),
                None => system_roots(),
            };
            let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| io::Error::other(format!("ca=: {e}")))?;
            builder.with_webpki_verifier(verifier)
        }
    };
    let mut config = match (&s.cert, &s.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(chain(cert)?, private_key(key)?)
            .map_err(|e| bad_pair(cert, key, e))?,
        _ => builder.with_no_client_auth(),
    };
    let asked = Arc::new(Asked {
        inner: Arc::clone(&config.client_auth_cert_resolver),
        asked: AtomicBool::new(false),
    });
    config.client_auth_cert_resolver = asked.clone();
    config.alpn_protocols = s.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Client {
        config: Arc::new(config),
        asked,
    })
}

/// Builds a listener's configuration from `s`.
pub fn server(s: &Settings) -> io::Result<Arc<ServerConfig>> {
    let (Some(cert), Some(key)) = (&s.cert, &s.key) else {
        return Err(io::Error::other("cert=FILE,key=FILE are needed"));
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let builder = match &s.client_ca {
        Some(path) => {
            let roots = Arc::new(bundle(path, "client-ca")?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| io::Error::other(format!("client-ca=: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain(cert)?, private_key(key)?)
        .map_err(|e| bad_pair(cert, key, e))?;
    config.alpn_protocols = s.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

/// Builds the configuration once, so that bad files are found before anything opens.
pub fn check(s: &Settings) -> io::Result<()> {
    match s.side {
        Side::Client => client(s).map(drop),
        Side::Server => server(s).map(drop),
    }
}

/// The name the server must prove it is: `sni=`, else the host connected to.
pub fn server_name(s: &Settings, host: &str) -> io::Result<ServerName<'static>> {
    let name = s.sni.as_deref().unwrap_or(host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(name.to_string()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{name}' is not a name a certificate can be for; give one with sni=NAME"),
        )
    })
}

/// The system's trusted roots, read once; if it has none, Mozilla's compiled in.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    Arc::clone(ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            info!(
                "TLS: no trusted CAs found on this system (SSL_CERT_FILE, the system store); \
                 using Mozilla's, built in"
            );
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        Arc::new(roots)
    }))
}

/// A PEM bundle of CA certificates; `key` names the setting, for messages.
fn bundle(path: &Path, key: &str) -> io::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path, key)? {
        roots
            .add(cert)
            .map_err(|e| file_error(path, key, &format!("not a CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The largest PEM file read: a system's whole CA bundle is some 200 KB.
const LARGEST_FILE: u64 = 16 * 1024 * 1024;

/// A PEM file's bytes: a regular file, at most [`LARGEST_FILE`] (not a device, a pipe
/// or a folder, which could block or never end).
fn read_file(path: &Path, key: &str) -> io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| file_error(path, key, &crate::error::os_message(&e)))?;
    if !meta.is_file() {
        return Err(file_error(path, key, "not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(LARGEST_FILE + 1).read_to_end(&mut bytes))
        .map_err(|e| file_error(path, key, &crate::error::os_message(&e)))?;
    if bytes.len() as u64 > LARGEST_FILE {
        return Err(file_error(path, key, "larger than 16 MiB; not a PEM file"));
    }
    Ok(bytes)
}

/// The certificates of a PEM file, at least one.
fn certificates(path: &Path, key: &str) -> io::Result<Vec<CertificateDer<'static>>> {
    let bytes = read_file(path, key)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, key, e))?;
    if certs.is_empty() {
        return Err(file_error(path, key, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn chain(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    certificates(path, "cert")
}

fn private_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(&read_file(path, "key")?).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => file_error(
            path,
            "key",
            "no unencrypted PEM private key in it (an encrypted one must be decrypted \
                 first: openssl pkey -in KEY -out PLAIN)",
        ),
        e => pem_error(path, "key", e),
    })
}

fn pem_error(path: &Path, key: &str, e: rustls::pki_types::pem::Error) -> io::Error {
    match e {
        rustls::pki_types::pem::Error::Io(e) => {
            file_error(path, key, &crate::error::os_message(&e))
        }
        e => file_error(path, key, &format!("not a PEM file: {e}")),
    }
}

fn file_error(path: &Path, key: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{key}={}: {why}", path.display()),
    )
}

fn bad_pair(cert: &Path, key: &Path, e: Error) -> io::Error {
    let why = match e {
        Error::InconsistentKeys(_) => "the key is not the certificate's".to_string(),
        e => e.to_string(),
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "cert={} and key={} do not go together: {why}",
            cert.display(),
            key.display()
        ),
    )
}

/// Records that the server asked for a client certificate, then answers as `inner`.
#[derive(Debug)]
pub struct Asked {
    inner: Arc<dyn ResolvesClientCert>,
    asked: AtomicBool,
}

impl Asked {
    /// Whether the server asked for a certificate.
    pub fn asked(&self) -> bool {
        self.asked.load(Ordering::Acquire)
    }

    /// Whether the server asked for a certificate and this end had none to give.
    pub fn unanswered(&self) -> bool {
        self.asked() && !self.inner.has_certs()
    }
}

impl ResolvesClientCert for Asked {
    fn resolve(&self, hints: &[&[u8]], schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Release);
        self.inner.resolve(hints, schemes)
    }

    fn has_certs(&self) -> bool {
        self.inner.has_certs()
    }
}

/// `insecure`: any certificate is taken; the handshake's signatures are still checked,
/// so the connection is encrypted, to whoever is at the other end.
#[derive(Debug)]
struct Unverified(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The warning `insecure` gets at every start.
pub fn warn_insecure(name: &str) {
    warn!(
        "{name}: insecure: the server's certificate is not checked, so anyone on the way \
         can read and change the data; use ca=FILE instead"
    );
}
