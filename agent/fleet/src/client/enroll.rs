//! `vigie-agent enroll`: the agent makes its own key, sends a certificate
//! request with a one-time enrolment token over TLS pinned to the fleet CA,
//! and keeps the certificate the collector issues (subject = its agent id).
//! The key never leaves the machine and is never logged.

use anyhow::{bail, Context, Result};

use super::{now_secs, refusal, save, Enrolment, FleetDir};
use crate::bundle;
use crate::proto::{self, EnrollRequest, EnrollResponse, RenewRequest};

#[derive(Debug, Clone)]
pub struct EnrollOptions {
    pub url: String,
    pub token: String,
    pub ca_pem: Vec<u8>,
    /// The security team's bundle public key, pinned for fleet policies.
    pub policy_key_pem: Option<String>,
    pub hostname: String,
    pub version: String,
    /// Enrol again although this agent is enrolled (a new identity).
    pub force: bool,
}

/// A fresh key and a request for it; the subject is the collector's to set.
fn key_and_request() -> Result<(rcgen::KeyPair, String)> {
    let key = rcgen::KeyPair::generate().context("making the agent's key")?;
    let request = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .context("making the certificate request")?;
    Ok((key, request))
}

fn identity(issued: &EnrollResponse, key: &rcgen::KeyPair) -> String {
    format!("{}\n{}", issued.certificate_pem.trim_end(), key.serialize_pem())
}

pub fn enroll(dir: &FleetDir, options: &EnrollOptions) -> Result<Enrolment> {
    let url = options.url.trim_end_matches('/').to_owned();
    if !url.starts_with("https://") {
        bail!("the collector URL must start with https:// (got `{url}`)");
    }
    if let Some(existing) = dir.enrolment()? {
        if !options.force {
            bail!(
                "this agent is already enrolled at {} as {}; add --force to enrol again with a new identity",
                existing.url,
                existing.agent_id
            );
        }
    }
    if let Some(pem) = &options.policy_key_pem {
        bundle::read_public_key(pem).context("--policy-key")?;
    }
    let client = super::https_client(&options.ca_pem, None).context("--ca")?;
    let (key, csr_pem) = key_and_request()?;
    let request = EnrollRequest {
        token: options.token.trim().to_owned(),
        csr_pem,
        hostname: options.hostname.clone(),
        version: options.version.clone(),
    };
    let response = client
        .post(format!("{url}{}", proto::ENROLL))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&request)?)
        .send()
        .with_context(|| format!("reaching the collector at {url}"))?;
    if !response.status().is_success() {
        return Err(refusal(response).context("enrolment refused"));
    }
    let body = super::uploader::read_limited(response, 64 << 10)?;
    let issued: EnrollResponse =
        serde_json::from_slice(&body).context("the collector's answer to the enrolment")?;
    let enrolment = Enrolment {
        url,
        agent_id: issued.agent_id.clone(),
        group: issued.group.clone(),
        not_after: issued.not_after,
        not_before: now_secs(),
    };
    save(&dir.ca_path(), &options.ca_pem, 0o644)?;
    if let Some(pem) = &options.policy_key_pem {
        save(&dir.policy_key_path(), pem.as_bytes(), 0o644)?;
    }
    save(&dir.identity_path(), identity(&issued, &key).as_bytes(), 0o600)?;
    // Last: its presence is what "enrolled" means.
    save(&dir.enrolment_path(), &serde_json::to_vec_pretty(&enrolment)?, 0o644)?;
    Ok(enrolment)
}

/// Renews the certificate (with a new key) once a third of its life went
/// by (a laptop left off for weeks still comes back with a valid one); returns the enrolment as it is now. The old certificate stays in use
/// until the new one is on disk.
pub fn renew_if_due(dir: &FleetDir, enrolment: &Enrolment, now: i64) -> Result<Option<Enrolment>> {
    let life = enrolment.not_after.saturating_sub(enrolment.not_before).max(0);
    let due = enrolment.not_before.saturating_add(life / 3);
    if now < due {
        return Ok(None);
    }
    let client = dir.client()?;
    let (key, csr_pem) = key_and_request()?;
    let response = client
        .post(format!("{}{}", enrolment.url, proto::RENEW))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&RenewRequest { csr_pem })?)
        .send()
        .context("reaching the collector to renew the certificate")?;
    if !response.status().is_success() {
        return Err(refusal(response).context("certificate renewal refused"));
    }
    let body = super::uploader::read_limited(response, 64 << 10)?;
    let issued: EnrollResponse = serde_json::from_slice(&body).context("the renewal answer")?;
    if issued.agent_id != enrolment.agent_id {
        bail!("the collector renewed the certificate for another agent id ({})", issued.agent_id);
    }
    let renewed = Enrolment { not_after: issued.not_after, not_before: now, ..enrolment.clone() };
    save(&dir.identity_path(), identity(&issued, &key).as_bytes(), 0o600)?;
    save(&dir.enrolment_path(), &serde_json::to_vec_pretty(&renewed)?, 0o644)?;
    Ok(Some(renewed))
}
