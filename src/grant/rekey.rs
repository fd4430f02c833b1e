//! Re-keying (`MVRK`, FORMAT.md "Re-keying"): a provider replaces its public keys with a
//! statement signed by its *old* signing key, so the cloud's directory and every
//! requester that pinned the old keys can follow without trusting anyone else.
//!
//! The provider's signed log is unaffected (its chain does not depend on the key):
//! after re-keying, the next head is signed with the new key and verified under it.
//!
//! **Leaks** to whoever carries it: the provider and its new public keys, which are
//! public anyway.

use crate::error::{Error, Result};
use crate::keys::ProviderId;
use crate::keys::identity::{EncryptionKey, PublicIdentity, SigningKey, VerifyingKey};
use crate::wire::{Reader, put_preamble};

use super::sealing::{put_u16_bytes, take_u16_bytes};

/// Magic bytes of a re-keying statement.
pub const REKEY_MAGIC: &[u8; 4] = b"MVRK";
/// The re-keying format version.
pub const REKEY_VERSION: u8 = 1;
/// Algorithm `01`: RSA-PSS-SHA256 over SPKI DER keys (FORMAT.md, "Public-key primitives").
const ALG_RSA: u8 = 1;

/// A provider's new public keys, signed by its old signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rekey {
    bytes: Vec<u8>,
    provider: ProviderId,
    new_keys: PublicIdentity,
    signed_len: usize,
}

impl Rekey {
    /// The statement that `provider`'s keys are now `new_keys`, signed with `old`.
    pub fn issue(
        provider: &ProviderId,
        old: &SigningKey,
        new_keys: &PublicIdentity,
    ) -> Result<Self> {
        if old.public_key() == new_keys.verifying {
            return Err(Error::InvalidArgument(
                "re-keying to the same signing key changes nothing",
            ));
        }
        let mut out = Vec::new();
        put_preamble(&mut out, REKEY_MAGIC, REKEY_VERSION, ALG_RSA);
        provider.encode_into(&mut out);
        put_u16_bytes(&mut out, &new_keys.verifying.to_spki_der())?;
        put_u16_bytes(&mut out, &new_keys.encryption.to_spki_der())?;
        let signed_len = out.len();
        let signature = old.sign(&out)?;
        put_u16_bytes(&mut out, &signature)?;
        Ok(Rekey {
            bytes: out,
            provider: provider.clone(),
            new_keys: new_keys.clone(),
            signed_len,
        })
    }

    /// Parses a statement (its signature is checked by [`Rekey::verify`], against the
    /// old key the reader trusts).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "re-keying statement");
        r.preamble(REKEY_MAGIC, REKEY_VERSION, &[ALG_RSA])?;
        let provider = ProviderId::decode(&mut r)?;
        let verifying = VerifyingKey::from_spki_der(take_u16_bytes(&mut r, "new verifying key")?)?;
        let encryption =
            EncryptionKey::from_spki_der(take_u16_bytes(&mut r, "new encryption key")?)?;
        let signed_len = bytes.len() - r.remaining();
        if take_u16_bytes(&mut r, "signature")?.is_empty() {
            return Err(r.malformed("no signature"));
        }
        r.finish()?;
        Ok(Rekey {
            bytes: bytes.to_vec(),
            provider,
            new_keys: PublicIdentity {
                verifying,
                encryption,
            },
            signed_len,
        })
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// The provider re-keyed.
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }

    /// Its new public keys.
    pub fn new_keys(&self) -> &PublicIdentity {
        &self.new_keys
    }

    /// Checks the signature under the provider's old verifying key `old`
    /// ([`Error::SignatureInvalid`] otherwise).
    pub fn verify(&self, old: &VerifyingKey) -> Result<()> {
        let signature = &self.bytes[self.signed_len + 2..];
        old.verify(&self.bytes[..self.signed_len], signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::test_keys::{provider_a, provider_b};

    #[test]
    fn a_rekey_verifies_under_the_old_key_only_and_every_byte_counts() {
        let lab = ProviderId::new("lab").unwrap();
        let (old, new) = (provider_a(), provider_b());
        let rekey = Rekey::issue(&lab, &old.signing, &new.public()).unwrap();
        let bytes = rekey.to_bytes();
        let parsed = Rekey::from_bytes(&bytes).unwrap();
        assert_eq!(parsed, rekey);
        assert_eq!(parsed.new_keys(), &new.public());
        parsed.verify(&old.public().verifying).unwrap();
        assert!(matches!(
            parsed.verify(&new.public().verifying),
            Err(Error::SignatureInvalid)
        ));
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            if let Ok(statement) = Rekey::from_bytes(&bad) {
                assert!(
                    statement.verify(&old.public().verifying).is_err(),
                    "flip at {at} accepted"
                );
            }
        }
        for len in 0..bytes.len() {
            assert!(Rekey::from_bytes(&bytes[..len]).is_err(), "cut at {len}");
        }
        let mut future = bytes.clone();
        future[4] = 2;
        assert!(matches!(
            Rekey::from_bytes(&future),
            Err(Error::UnsupportedVersion { version: 2, .. })
        ));
        assert!(matches!(
            Rekey::issue(&lab, &old.signing, &old.public()),
            Err(Error::InvalidArgument(_))
        ));
    }
}
