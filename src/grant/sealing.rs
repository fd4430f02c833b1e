//! Sealing to a public key (RSA-OAEP wraps a fresh AES key, EAX seals the payload),
//! length-prefixed fields and ASCII armor: what requests and grants are made of.

use aes::Aes256Enc;
use cipher::KeyInit;
use pem_rfc7468::LineEnding;
use zeroize::Zeroizing;

use crate::crypto::eax::{Eax, TAG_LEN};
use crate::crypto::rng;
use crate::error::{Error, Result};
use crate::keys::identity::{DecryptionKey, EncryptionKey};
use crate::wire::Reader;

pub(super) struct Sealed<'a> {
    pub(super) wrapped: &'a [u8],
    pub(super) nonce: &'a [u8],
    pub(super) ciphertext: &'a [u8],
    pub(super) tag: &'a [u8],
}

pub(super) fn put_u16_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
    let len = u16::try_from(bytes.len())
        .map_err(|_| Error::InvalidArgument("a field is longer than 65535 bytes"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

pub(super) fn take_u16_bytes<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a [u8]> {
    let len = usize::from(u16::from_be_bytes(r.array(what)?));
    r.take(len, what)
}

/// Appends `wrapped key ‖ nonce ‖ ciphertext ‖ tag`, authenticating everything already
/// in `out` (and the nonce) as associated data.
pub(super) fn seal_to(
    out: &mut Vec<u8>,
    to: &EncryptionKey,
    label: &[u8],
    payload: &[u8],
) -> Result<()> {
    let key = Zeroizing::new(rng::array::<32>()?);
    put_u16_bytes(out, &to.wrap(label, &key[..])?)?;
    let nonce: [u8; 16] = rng::array()?;
    out.extend_from_slice(&nonce);
    let mut body = Zeroizing::new(payload.to_vec());
    let eax = Eax::new(Aes256Enc::new((&*key).into()));
    let tag = eax.seal_detached(&nonce, out, &mut body);
    put_u16_bytes(out, &body)?;
    out.extend_from_slice(&tag);
    Ok(())
}

pub(super) fn read_sealed<'a>(r: &mut Reader<'a>) -> Result<Sealed<'a>> {
    Ok(Sealed {
        wrapped: take_u16_bytes(r, "wrapped key")?,
        nonce: r.take(16, "nonce")?,
        ciphertext: take_u16_bytes(r, "sealed payload")?,
        tag: r.take(TAG_LEN, "tag")?,
    })
}

/// Opens what [`seal_to`] wrote; `associated` is every byte before the wrapped key,
/// then the wrapped key and nonce fields as they appear.
pub(super) fn open_sealed(
    sealed: &Sealed<'_>,
    associated: &[u8],
    with: &DecryptionKey,
    label: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let key = with.unwrap(label, sealed.wrapped)?;
    if key.len() != 32 {
        return Err(Error::AuthenticationFailed {
            what: "wrapped key",
        });
    }
    let key: Zeroizing<[u8; 32]> = Zeroizing::new(key[..].try_into().unwrap_or([0; 32]));
    let eax = Eax::new(Aes256Enc::new((&*key).into()));
    let mut body = Zeroizing::new(sealed.ciphertext.to_vec());
    if !eax.open_detached(sealed.nonce, associated, &mut body, sealed.tag) {
        return Err(Error::AuthenticationFailed {
            what: "sealed payload",
        });
    }
    Ok(body)
}

pub(super) fn put_text(
    out: &mut Vec<u8>,
    text: &str,
    max: usize,
    what: &'static str,
) -> Result<()> {
    if text.len() > max {
        return Err(Error::InvalidArgument(what));
    }
    put_u16_bytes(out, text.as_bytes())
}

pub(super) fn take_text(r: &mut Reader<'_>, max: usize, what: &'static str) -> Result<String> {
    let bytes = take_u16_bytes(r, what)?;
    if bytes.len() > max {
        return Err(r.malformed("text field too long"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| r.malformed("text field is not UTF-8"))
}

pub(super) fn armor(label: &str, bytes: &[u8]) -> String {
    // Encoding to a String cannot fail for a valid label and in-memory bytes.
    pem_rfc7468::encode_string(label, LineEnding::LF, bytes).unwrap_or_default()
}

pub(super) fn dearmor(label: &'static str, text: &str) -> Result<Vec<u8>> {
    let (found, bytes) =
        pem_rfc7468::decode_vec(text.trim().as_bytes()).map_err(|_| Error::Malformed {
            format: "ASCII armor",
            detail: "not a well-formed armored block",
        })?;
    if found != label {
        return Err(Error::Malformed {
            format: "ASCII armor",
            detail: "armored block of another kind",
        });
    }
    Ok(bytes)
}
