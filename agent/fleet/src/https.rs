//! The HTTPS client both ends of the fleet's clients use: the agent (its
//! certificate) and the security team's console (an administrator's).

use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A client that trusts `ca_pem` alone (never the system's roots: the fleet
/// CA is pinned), speaks TLS 1.3 only, and presents `identity` (a PEM file
/// with the certificate and its key) when given.
pub fn https_client(ca_pem: &[u8], identity: Option<&[u8]>) -> Result<reqwest::blocking::Client> {
    let provider = crate::crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots.add(cert.context("fleet CA: unreadable PEM")?).context("fleet CA")?;
    }
    if roots.is_empty() {
        bail!("the fleet CA file holds no certificate");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(pem) => {
            let chain: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
                .collect::<Result<_, _>>()
                .context("certificate: unreadable PEM")?;
            let key = rustls_pemfile::private_key(&mut &pem[..])
                .context("key: unreadable PEM")?
                .context("key: none in the file")?;
            builder.with_client_auth_cert(chain, key).context("certificate and key")?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(config)
        .https_only(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("vigie/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("HTTPS client")
}
