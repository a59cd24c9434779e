//! TLS for the controller session, both ends: TLS 1.3 only, ring, and
//! mutual authentication against one CA. PEM files in, rustls configs out;
//! every failure says which file and why.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The one crypto provider both ends use.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = path.display();
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| format!("{what}: {e}"))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no certificate in the file"));
    }
    Ok(certs)
}

/// Reads the private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A root store holding the CA certificate(s) of a PEM file.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path)? {
        roots
            .add(c)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The appliance side: trusts `ca`, presents `cert` + `key`.
pub fn client_config(ca: &Path, cert: &Path, key: &Path) -> Result<ClientConfig, String> {
    let roots = load_roots(ca)?;
    let chain = load_certs(cert)?;
    let key = load_key(key)?;
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("client certificate {}: {e}", cert.display()))?;
    // Every session is a full handshake: certificates are checked each time.
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(cfg)
}

/// The controller side: presents `cert` + `key`, requires a client
/// certificate issued by `ca`.
pub fn server_config(ca: &Path, cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    let roots = Arc::new(load_roots(ca)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| format!("client verifier for {}: {e}", ca.display()))?;
    let chain = load_certs(cert)?;
    let key = load_key(key)?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("server certificate {}: {e}", cert.display()))?;
    // No resumption: a client certificate is verified (expiry included) on
    // every connection, and no session cache grows with the fleet.
    cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    Ok(cfg)
}

/// Whether `name` is one of the DNS names of the (already verified) end
/// entity certificate `cert`. The controller binds an appliance's hello to
/// its certificate this way.
pub fn cert_is_for(cert: &CertificateDer<'_>, name: &str) -> Result<(), String> {
    let server_name =
        ServerName::try_from(name).map_err(|_| format!("{name:?} is not a DNS name"))?;
    let ee = webpki::EndEntityCert::try_from(cert).map_err(|e| format!("certificate: {e}"))?;
    ee.verify_is_valid_for_subject_name(&server_name)
        .map_err(|_| format!("the client certificate is not issued to {name:?}"))
}

/// Parses a server name for the client side.
pub fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_owned())
        .map_err(|_| format!("controller server_name {name:?} is not a DNS name or IP address"))
}
