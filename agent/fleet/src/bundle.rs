//! The fleet policy bundle: the policy (and optionally the catalog) the
//! security team signs with an Ed25519 key kept off the collector. The
//! collector only stores and serves it; agents verify it against the public
//! key pinned at enrolment, so a compromised collector cannot push a policy.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const FORMAT: u32 = 1;

/// What is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleBody {
    pub format: u32,
    /// Strictly increasing: an agent refuses a bundle older than the one in force.
    pub version: u64,
    /// Seconds since the Unix epoch.
    pub issued_at: i64,
    /// Seconds since the Unix epoch; an agent refuses an expired bundle.
    pub expires_at: i64,
    /// The policy file's text (TOML).
    pub policy: String,
    /// The catalog file's text (TOML); none: the agent's bundled catalog.
    pub catalog: Option<String>,
}

/// The file `sign` writes and `publish` uploads: the body exactly as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedBundle {
    /// Base64 of the body's JSON bytes: verified as bytes, parsed after.
    pub body: String,
    /// Base64 of the Ed25519 signature of those bytes.
    pub signature: String,
    /// Which key signed (the first 16 hex digits of the SHA-256 of the public key).
    pub key_id: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("the bundle is not a signed Vigie policy bundle: {0}")]
    Malformed(String),
    #[error("the bundle was signed by key {found}, not the pinned fleet key {pinned}")]
    WrongKey { found: String, pinned: String },
    #[error("the bundle's signature does not verify with the pinned fleet key")]
    BadSignature,
    #[error("unsupported bundle format {0}")]
    Format(u32),
    #[error("the bundle (version {version}) expired at {expires_at} (Unix time)")]
    Expired { version: u64, expires_at: i64 },
    #[error("the bundle's version {offered} is older than the version in force ({in_force})")]
    Older { offered: u64, in_force: u64 },
    #[error("key: {0}")]
    Key(String),
}

pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A new signing key, from the operating system's random source.
pub fn generate_key(random: [u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&random)
}

pub fn private_key_pem(key: &SigningKey) -> Result<String, BundleError> {
    key.to_pkcs8_pem(Default::default())
        .map(|pem| pem.to_string())
        .map_err(|e| BundleError::Key(e.to_string()))
}

pub fn public_key_pem(key: &VerifyingKey) -> Result<String, BundleError> {
    key.to_public_key_pem(Default::default()).map_err(|e| BundleError::Key(e.to_string()))
}

pub fn read_private_key(pem: &str) -> Result<SigningKey, BundleError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|e| BundleError::Key(format!("not an Ed25519 private key: {e}")))
}

pub fn read_public_key(pem: &str) -> Result<VerifyingKey, BundleError> {
    VerifyingKey::from_public_key_pem(pem)
        .map_err(|e| BundleError::Key(format!("not an Ed25519 public key: {e}")))
}

pub fn sign(body: &BundleBody, key: &SigningKey) -> Result<SignedBundle, BundleError> {
    let bytes = serde_json::to_vec(body).map_err(|e| BundleError::Malformed(e.to_string()))?;
    let signature = key.sign(&bytes);
    Ok(SignedBundle {
        body: B64.encode(&bytes),
        signature: B64.encode(signature.to_bytes()),
        key_id: key_id(&key.verifying_key()),
    })
}

impl SignedBundle {
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))
    }

    /// The body, once the signature holds with `pinned`; nothing else is
    /// read before that. Freshness is the caller's: [`BundleBody::check_fresh`].
    pub fn verify(&self, pinned: &VerifyingKey) -> Result<BundleBody, BundleError> {
        let pinned_id = key_id(pinned);
        if self.key_id != pinned_id {
            return Err(BundleError::WrongKey { found: self.key_id.clone(), pinned: pinned_id });
        }
        let bytes = B64.decode(&self.body).map_err(|e| BundleError::Malformed(format!("body: {e}")))?;
        let signature = B64
            .decode(&self.signature)
            .ok()
            .and_then(|raw| Signature::from_slice(&raw).ok())
            .ok_or_else(|| BundleError::Malformed("signature: not 64 bytes of base64".into()))?;
        pinned.verify(&bytes, &signature).map_err(|_| BundleError::BadSignature)?;
        let body: BundleBody =
            serde_json::from_slice(&bytes).map_err(|e| BundleError::Malformed(format!("body: {e}")))?;
        if body.format != FORMAT {
            return Err(BundleError::Format(body.format));
        }
        Ok(body)
    }

    /// An ETag for the bundle: the digest of what was signed.
    pub fn etag(&self) -> String {
        let digest = Sha256::digest(self.body.as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    }
}

impl BundleBody {
    /// Refuses an expired bundle, and one older than the version in force
    /// (the same version again is the bundle in force: fine).
    pub fn check_fresh(&self, now_secs: i64, in_force: Option<u64>) -> Result<(), BundleError> {
        if now_secs >= self.expires_at {
            return Err(BundleError::Expired { version: self.version, expires_at: self.expires_at });
        }
        match in_force {
            Some(current) if self.version < current => {
                Err(BundleError::Older { offered: self.version, in_force: current })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(version: u64) -> BundleBody {
        BundleBody {
            format: FORMAT,
            version,
            issued_at: 1_000,
            expires_at: 2_000,
            policy: "name = \"p\"\n".into(),
            catalog: None,
        }
    }

    #[test]
    fn a_signed_bundle_verifies_and_any_change_is_refused() {
        let key = generate_key([7; 32]);
        let signed = sign(&body(3), &key).unwrap();
        let pinned = key.verifying_key();
        assert_eq!(signed.verify(&pinned).unwrap(), body(3));

        // The body changed after signing (a collector rewriting the policy).
        let mut forged = signed.clone();
        let other = serde_json::to_vec(&body(4)).unwrap();
        forged.body = B64.encode(other);
        assert_eq!(forged.verify(&pinned), Err(BundleError::BadSignature));

        // Signed by another key, whatever key id it claims.
        let intruder = generate_key([9; 32]);
        let mut resigned = sign(&body(3), &intruder).unwrap();
        assert!(matches!(resigned.verify(&pinned), Err(BundleError::WrongKey { .. })));
        resigned.key_id = key_id(&pinned);
        assert_eq!(resigned.verify(&pinned), Err(BundleError::BadSignature));

        // Garbage never panics.
        for junk in [&b""[..], b"{}", b"{\"body\":\"!!\",\"signature\":\"\",\"key_id\":\"\"}", &[0xff; 40]] {
            if let Ok(parsed) = SignedBundle::parse(junk) {
                assert!(parsed.verify(&pinned).is_err());
            }
        }
    }

    #[test]
    fn expired_and_older_bundles_are_refused() {
        let b = body(5);
        assert_eq!(b.check_fresh(1_500, Some(5)), Ok(()));
        assert_eq!(b.check_fresh(1_500, Some(4)), Ok(()));
        assert_eq!(b.check_fresh(1_500, None), Ok(()));
        assert_eq!(b.check_fresh(2_000, None), Err(BundleError::Expired { version: 5, expires_at: 2_000 }));
        assert_eq!(b.check_fresh(1_500, Some(6)), Err(BundleError::Older { offered: 5, in_force: 6 }));
    }

    #[test]
    fn keys_round_trip_through_pem() {
        let key = generate_key([1; 32]);
        let pem = private_key_pem(&key).unwrap();
        assert_eq!(read_private_key(&pem).unwrap().to_bytes(), key.to_bytes());
        let public = public_key_pem(&key.verifying_key()).unwrap();
        assert_eq!(read_public_key(&public).unwrap(), key.verifying_key());
        assert!(read_public_key(&pem).is_err());
    }
}
