//! The fleet CA: it signs the collector's server certificate and one client
//! certificate per agent (subject common name = the agent id). Agents pin
//! it; the collector trusts client certificates it signed and nothing else.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// `<pki>/ca.pem`, `ca.key` (0600), `server.pem` (chain), `server.key` (0600).
#[derive(Debug, Clone)]
pub struct PkiDir(pub PathBuf);

impl PkiDir {
    pub fn ca_cert(&self) -> PathBuf {
        self.0.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.0.join("ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.0.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.0.join("server.key")
    }
}

/// Makes the fleet CA (unless there is one) and a server certificate for
/// `names` (host names or addresses agents use to reach the collector).
pub fn init(dir: &PkiDir, names: &[String]) -> Result<()> {
    if names.is_empty() {
        bail!("give at least one --name the agents will use to reach the collector");
    }
    let (ca, ca_key) = if dir.ca_cert().exists() {
        load_ca(dir)?
    } else {
        let key = KeyPair::generate().context("CA key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("Vigie fleet CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(3_650);
        params.serial_number = Some(serial());
        let cert = params.self_signed(&key).context("CA certificate")?;
        write(&dir.ca_key(), key.serialize_pem().as_bytes(), 0o600)?;
        write(&dir.ca_cert(), cert.pem().as_bytes(), 0o644)?;
        (cert, key)
    };
    let key = KeyPair::generate().context("server key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name("vigie-collector");
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n.clone().try_into().map(SanType::DnsName).with_context(|| format!("--name {n}")),
        })
        .collect::<Result<_>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(825);
    params.serial_number = Some(serial());
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &ca, &ca_key).context("server certificate")?;
    write(&dir.server_key(), key.serialize_pem().as_bytes(), 0o600)?;
    write(&dir.server_cert(), cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Vigie");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive, as RFC 5280 asks.
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    vigie_fleet::write_private(path, bytes, mode).with_context(|| path.display().to_string())
}

fn load_ca(dir: &PkiDir) -> Result<(Certificate, KeyPair)> {
    let key_pem =
        std::fs::read_to_string(dir.ca_key()).with_context(|| dir.ca_key().display().to_string())?;
    let cert_pem =
        std::fs::read_to_string(dir.ca_cert()).with_context(|| dir.ca_cert().display().to_string())?;
    let key = KeyPair::from_pem(&key_pem).context("CA key")?;
    let params = CertificateParams::from_ca_cert_pem(&cert_pem).context("CA certificate")?;
    // The same name and key as the certificate agents pinned: what it signs chains to it.
    let cert = params.self_signed(&key).context("CA certificate")?;
    Ok((cert, key))
}

/// Signs agents' certificate requests.
pub struct Issuer {
    ca: Certificate,
    key: KeyPair,
    days: u32,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").field("days", &self.days).finish_non_exhaustive()
    }
}

/// A certificate issued to an agent.
#[derive(Debug, Clone)]
pub struct Issued {
    pub pem: String,
    pub serial: String,
    pub not_after: OffsetDateTime,
}

impl Issuer {
    pub fn load(dir: &PkiDir, days: u32) -> Result<Self> {
        let (ca, key) = load_ca(dir)?;
        Ok(Self { ca, key, days })
    }

    /// A client certificate for `agent` and the key of `csr_pem`. Only the
    /// key is taken from the request (its signature proves the agent holds
    /// it); the name, usages and life are the collector's.
    pub fn issue(&self, agent: Uuid, csr_pem: &str) -> Result<Issued, String> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| format!("unreadable certificate request: {e}"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&agent.to_string());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(i64::from(self.days));
        let serial = serial();
        let serial_hex: String = serial.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        params.serial_number = Some(serial);
        params.use_authority_key_identifier_extension = true;
        csr.params = params;
        let not_after = csr.params.not_after;
        let cert = csr.signed_by(&self.ca, &self.key).map_err(|e| format!("signing: {e}"))?;
        Ok(Issued { pem: cert.pem(), serial: serial_hex, not_after })
    }
}

/// The organisational unit that marks an administrator's certificate: the
/// security team's console, allowed on `/v1/admin/` and nowhere else.
/// Agents never get it (their certificate's name is the collector's).
pub const ADMIN_UNIT: &str = "vigie-admin";

/// An administrator's identity: the certificate and its key in one PEM
/// file, made here (the key never travels but in that file).
#[derive(Debug, Clone)]
pub struct AdminIdentity {
    pub pem: String,
    pub serial: String,
    pub not_after: OffsetDateTime,
}

impl Issuer {
    /// A client certificate for the administrator `who`, valid `days`.
    pub fn issue_admin(&self, who: &str, days: u32) -> Result<AdminIdentity> {
        let key = KeyPair::generate().context("administrator key")?;
        let mut params = CertificateParams::default();
        let mut dn = name(who);
        dn.push(DnType::OrganizationalUnitName, ADMIN_UNIT);
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(i64::from(days));
        let serial = serial();
        let serial_hex: String = serial.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        params.serial_number = Some(serial);
        params.use_authority_key_identifier_extension = true;
        let not_after = params.not_after;
        let cert = params.signed_by(&key, &self.ca, &self.key).context("administrator certificate")?;
        Ok(AdminIdentity {
            pem: format!("{}{}", cert.pem(), key.serialize_pem()),
            serial: serial_hex,
            not_after,
        })
    }
}

/// The server's TLS: TLS 1.3, the collector's certificate, and client
/// certificates verified against the fleet CA when presented (enrolment
/// comes without one; every other route requires one).
pub fn server_config(dir: &PkiDir) -> Result<Arc<rustls::ServerConfig>> {
    let provider = vigie_fleet::crypto_provider();
    let read = |path: PathBuf| std::fs::read(&path).with_context(|| path.display().to_string());
    let roots = roots(&read(dir.ca_cert())?, "fleet CA")?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .allow_unauthenticated()
            .build()
            .context("client certificate verifier")?;
    let chain_pem = read(dir.server_cert())?;
    let chain = rustls_pemfile::certs(&mut &chain_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .context("server certificate")?;
    let key_pem = read(dir.server_key())?;
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .context("server key")?
        .context("server key: none in the file")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("server certificate and key")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates of a PEM file, as the only roots trusted.
pub fn roots(pem: &[u8], what: &str) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.with_context(|| what.to_owned())?).with_context(|| what.to_owned())?;
    }
    if roots.is_empty() {
        anyhow::bail!("{what}: no certificate in the file");
    }
    Ok(roots)
}

/// A TLS client that trusts the CA in `ca` alone (a SIEM's receiver, a
/// webhook): never the system's roots.
pub fn client_trusting(ca: &Path) -> Result<rustls::ClientConfig> {
    let pem = std::fs::read(ca).with_context(|| ca.display().to_string())?;
    Ok(rustls::ClientConfig::builder_with_provider(vigie_fleet::crypto_provider())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots(&pem, &ca.display().to_string())?)
        .with_no_client_auth())
}

/// Where the collector may POST (a SIEM's HTTPS input, a webhook):
/// `https://` with `ca` pinned, or plain `http://` to this machine only (a
/// local Vector or Fluent Bit). The host is parsed, not matched as text:
/// `http://127.evil.example` is not this machine.
pub fn check_post_url(url: &str, ca: Option<&Path>) -> Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    match parsed.scheme() {
        "https" if ca.is_some() => Ok(()),
        "https" => anyhow::bail!("`{url}`: an https:// URL needs the receiver's CA (PEM) to pin"),
        "http" => {
            let host = parsed.host_str().unwrap_or_default();
            let local = match host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
                Ok(ip) => ip.is_loopback(),
                Err(_) => host.eq_ignore_ascii_case("localhost"),
            };
            if local {
                Ok(())
            } else {
                anyhow::bail!(
                    "`{url}`: plain http:// only to this machine; use https:// with the receiver's CA"
                )
            }
        }
        other => anyhow::bail!("`{url}`: {other}:// is neither https:// nor http://"),
    }
}

/// A client for [`check_post_url`]'s URLs: the CA alone trusted, no
/// redirect followed, no proxy from the environment.
pub fn post_client(url: &str, ca: Option<&Path>, timeout: std::time::Duration) -> Result<reqwest::Client> {
    check_post_url(url, ca)?;
    let mut builder =
        reqwest::Client::builder().timeout(timeout).redirect(reqwest::redirect::Policy::none()).no_proxy();
    if let Some(ca) = ca {
        builder = builder.tls_backend_preconfigured(client_trusting(ca)?);
    }
    builder.build().context("HTTPS client")
}

/// The agent id a verified client certificate names (its common name),
/// and the certificate's serial number in hex.
pub fn agent_of(cert_der: &[u8]) -> Option<(Uuid, String)> {
    match peer_of(cert_der)? {
        PeerIdentity::Agent(agent, serial) => Some((agent, serial)),
        PeerIdentity::Admin(..) => None,
    }
}

/// Who a verified client certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// An agent: its id and the certificate's serial.
    Agent(Uuid, String),
    /// A member of the security team: their name and the serial.
    Admin(String, String),
}

/// The identity in a client certificate the TLS layer verified against the
/// fleet CA: an administrator's carries [`ADMIN_UNIT`], an agent's names
/// its id; anything else is no one.
pub fn peer_of(cert_der: &[u8]) -> Option<PeerIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    let serial: String = cert.raw_serial().iter().map(|b| format!("{b:02x}")).collect();
    let admin = cert.subject().iter_organizational_unit().any(|ou| ou.as_str().ok() == Some(ADMIN_UNIT));
    if admin {
        return Some(PeerIdentity::Admin(cn.to_owned(), serial));
    }
    Some(PeerIdentity::Agent(Uuid::parse_str(cn).ok()?, serial))
}
