//! Identifiers and the key hierarchy.
//!
//! ```text
//! provider master key MK (32 B, random, or unlocked from a key file)
//! └── patient key   K(p,u) = KDF(MK, "patient", provider_id ‖ patient_id ‖ generation)
//!     ├── search key S = KDF(K(p,u), "search")    keyword trapdoors
//!     └── data key   D = KDF(K(p,u), "data")
//!         └── record key R = KDF(D, "record", record_id)
//! ```
//!
//! Every key type zeroizes its bytes on drop and prints as `<redacted>` in `Debug`.
//! [`PatientId`] is personal data: it is also zeroized and redacted.

pub(crate) mod identity;
pub mod keyfile;
#[cfg(test)]
pub(crate) mod test_keys;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::kdf::{Kdf, derive_key, label};
use crate::crypto::rng;
use crate::error::{Error, KeyMismatch, Result};

/// Longest provider id, in bytes.
pub const MAX_PROVIDER_ID_LEN: usize = 64;
/// Longest patient id, in bytes.
pub const MAX_PATIENT_ID_LEN: usize = 255;

/// A care provider's public name, such as `st-mary-hospital`: 1 to 64 ASCII letters,
/// digits, `.`, `_` or `-`. It is public: the cloud lists it in its manifest, and it
/// names files in the store, hence the narrow alphabet.
///
/// Shared, not copied, when cloned: every record key and header carries one (bench
/// `peers`, `medvault-open/1KiB`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderId(Arc<str>);

impl ProviderId {
    /// Checks and wraps a provider id: 1 to 64 lowercase ASCII letters, digits, `.`,
    /// `_` or `-`. Lowercase only, so that no two providers' ids differ by case alone:
    /// on a case-insensitive file system "Lab" and "lab" would share one records
    /// directory of the cloud's store.
    pub fn new(id: &str) -> Result<Self> {
        if Self::is_valid(id.as_bytes()) {
            Ok(ProviderId(Arc::from(id)))
        } else {
            Err(Error::InvalidArgument(
                "a provider id is 1 to 64 lowercase ASCII letters, digits, '.', '_' or '-'",
            ))
        }
    }

    pub(crate) fn is_valid(bytes: &[u8]) -> bool {
        !bytes.is_empty()
            && bytes.len() <= MAX_PROVIDER_ID_LEN
            && bytes.iter().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && bytes != b"."
            && bytes != b".."
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Appends the wire form: a length byte, then the bytes.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        // Bounded by MAX_PROVIDER_ID_LEN (64) at construction.
        out.push(self.0.len() as u8);
        out.extend_from_slice(self.0.as_bytes());
    }

    /// Reads the wire form written by [`ProviderId::encode_into`].
    pub(crate) fn decode(reader: &mut crate::wire::Reader<'_>) -> Result<Self> {
        let len = reader.u8("provider id length")? as usize;
        let bytes = reader.take(len, "provider id")?;
        if !Self::is_valid(bytes) {
            return Err(reader.malformed("invalid provider id"));
        }
        // is_valid admits ASCII only, so this is valid UTF-8.
        Ok(ProviderId(Arc::from(&*String::from_utf8_lossy(bytes))))
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ProviderId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ProviderId::new(s)
    }
}

/// The provider's identifier for a patient: the paper uses the patient's mobile number,
/// a medical record number works as well. 1 to 255 bytes, compared byte for byte (so
/// normalize phone numbers before use). It never leaves the provider or the requester
/// in the clear: it only enters key derivation.
#[derive(Clone, PartialEq, Eq, Hash, Zeroize, ZeroizeOnDrop)]
pub struct PatientId(Vec<u8>);

impl PatientId {
    /// Checks and wraps a patient id.
    pub fn new(id: impl AsRef<[u8]>) -> Result<Self> {
        let id = id.as_ref();
        if id.is_empty() || id.len() > MAX_PATIENT_ID_LEN {
            return Err(Error::InvalidArgument("a patient id is 1 to 255 bytes"));
        }
        Ok(PatientId(id.to_vec()))
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for PatientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PatientId(<redacted>)")
    }
}

/// A record's public id: 16 random bytes the library generates. Provider identifiers
/// (MRN, accession number, file name) go inside the sealed record, never here.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId([u8; 16]);

impl RecordId {
    /// A fresh random record id.
    pub fn generate() -> Result<Self> {
        Ok(RecordId(rng::array()?))
    }

    /// Wraps an id read from elsewhere (a manifest, a response).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        RecordId(bytes)
    }

    /// The id's bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({self})")
    }
}

impl FromStr for RecordId {
    type Err = Error;
    /// Parses 32 hex digits.
    fn from_str(s: &str) -> Result<Self> {
        let invalid = || Error::InvalidArgument("a record id is 32 hex digits");
        if s.len() != 32 || !s.is_ascii() {
            return Err(invalid());
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
        }
        Ok(RecordId(out))
    }
}

/// Writes `Name(<redacted>)` for a secret type.
macro_rules! redacted_debug {
    ($ty:ident) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($ty), "(<redacted>)"))
            }
        }
    };
}

/// A provider's master key: the root of all its patient and record keys.
///
/// Generate it once with [`MasterKey::generate`] and keep it in a password-protected
/// key file ([`crate::keys::keyfile`]).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);
redacted_debug!(MasterKey);

impl MasterKey {
    /// A fresh master key from the OS random number generator.
    pub fn generate() -> Result<Self> {
        Ok(MasterKey(rng::array()?))
    }

    /// Wraps existing key bytes (for example from an HSM or a key file).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(bytes)
    }

    /// The secret key bytes. Handle with care: copies are not zeroized for you.
    pub const fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }

    /// Derives `K(p,u)` for `patient` at `provider` in key generation `generation`.
    pub fn patient_key(
        &self,
        provider: &ProviderId,
        patient: &PatientId,
        generation: u32,
    ) -> PatientKey {
        // Length-prefixed fields keep the context injective.
        let mut context = Vec::with_capacity(2 + provider.0.len() + patient.0.len() + 4);
        provider.encode_into(&mut context);
        context.push(patient.0.len() as u8); // ≤ MAX_PATIENT_ID_LEN (255)
        context.extend_from_slice(&patient.0);
        context.extend_from_slice(&generation.to_be_bytes());
        let key = derive_key(&self.0, label::PATIENT, &context);
        context.zeroize();
        PatientKey::from_bytes(provider.clone(), generation, key)
    }
}

/// `K(p,u)`: everything of one patient at one provider in one key generation. Holding
/// it means searching and reading all of that patient's records there; a grant of
/// "the patient" delivers this key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PatientKey {
    #[zeroize(skip)]
    provider: ProviderId,
    generation: u32,
    key: [u8; 32],
    /// `D = KDF(K(p,u), "data")`, derived once and keyed once: every record key is one
    /// derivation under it, with no key schedule or CMAC subkeys of its own (bench
    /// `peers`, `floor-derive/1KiB`). Its cipher and subkeys wipe themselves on drop.
    /// Boxed: a keyed AES-256 holds both of `aes`'s key schedules (about a kilobyte).
    #[zeroize(skip)]
    data_kdf: Box<Kdf>,
}
redacted_debug!(PatientKey);

impl PatientKey {
    /// Rebuilds a patient key from its parts (for example out of a grant).
    pub fn from_bytes(provider: ProviderId, generation: u32, key: [u8; 32]) -> Self {
        let mut data_key = derive_key(&key, label::DATA, &[]);
        let data_kdf = Box::new(Kdf::new(&data_key));
        data_key.zeroize();
        PatientKey {
            provider,
            generation,
            data_kdf,
            key,
        }
    }

    /// The provider this key belongs to.
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }

    /// The key generation this key belongs to.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The secret key bytes. Handle with care: copies are not zeroized for you.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.key
    }

    /// `R = KDF(KDF(K(p,u), "data"), "record", record_id)`.
    pub fn record_key(&self, record: RecordId) -> RecordKey {
        let mut key = [0u8; 32];
        self.data_kdf
            .derive_into(label::RECORD, &record.0, &mut key);
        RecordKey {
            provider: self.provider.clone(),
            generation: self.generation,
            record,
            key,
        }
    }

    /// `S = KDF(K(p,u), "search")`: the root of this patient's keyword trapdoors.
    pub(crate) fn search_key(&self) -> SearchKey {
        SearchKey(derive_key(&self.key, label::SEARCH, &[]))
    }
}

/// `S`: derives the GGM root of each keyword for one patient at one provider.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct SearchKey([u8; 32]);

impl SearchKey {
    /// `root(w) = KDF(S, "keyword", w)` for a normalized keyword `w`.
    pub(crate) fn keyword_root(&self, normalized: &str) -> crate::crypto::ggm::NodeKey {
        self.keyword_roots().root(normalized)
    }

    /// The KDF keyed with `S`, for deriving the roots of many keywords.
    pub(crate) fn keyword_roots(&self) -> KeywordRoots {
        KeywordRoots(Kdf::new(&self.0))
    }
}

/// `S` as a keyed KDF: [`SearchKey::keyword_root`] for many keywords of one patient.
pub(crate) struct KeywordRoots(Kdf);

impl KeywordRoots {
    /// `root(w) = KDF(S, "keyword", w)` for a normalized keyword `w`.
    pub(crate) fn root(&self, normalized: &str) -> crate::crypto::ggm::NodeKey {
        let mut root = crate::crypto::ggm::NodeKey([0; 32]);
        self.0
            .derive_into(label::KEYWORD, normalized.as_bytes(), &mut root.0);
        root
    }
}

/// `R`: opens exactly one record (the paper's per-file request).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RecordKey {
    #[zeroize(skip)]
    provider: ProviderId,
    generation: u32,
    #[zeroize(skip)]
    record: RecordId,
    key: [u8; 32],
}
redacted_debug!(RecordKey);

impl RecordKey {
    /// Rebuilds a record key from its parts (for example out of a grant).
    pub fn from_bytes(
        provider: ProviderId,
        generation: u32,
        record: RecordId,
        key: [u8; 32],
    ) -> Self {
        RecordKey {
            provider,
            generation,
            record,
            key,
        }
    }

    /// The provider this key belongs to.
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }

    /// The key generation this key belongs to.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The record this key opens.
    pub fn record_id(&self) -> RecordId {
        self.record
    }

    /// The secret key bytes. Handle with care: copies are not zeroized for you.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.key
    }
}

/// A key that can open sealed records: a [`RecordKey`] opens its one record, a
/// [`PatientKey`] opens every record of its patient, provider and generation.
pub trait RecordKeySource {
    /// The record key for the record `header` describes, or [`Error::WrongKey`] if this
    /// key does not cover it.
    fn record_key_for(
        &self,
        provider: &ProviderId,
        generation: u32,
        record: RecordId,
    ) -> Result<RecordKey>;
}

/// Whether a key of `key_provider` and `key_generation` covers an object of `provider`
/// and `generation`.
fn check_scope(
    provider: &ProviderId,
    generation: u32,
    key_provider: &ProviderId,
    key_generation: u32,
) -> Result<()> {
    if provider != key_provider {
        Err(Error::WrongKey(KeyMismatch::Provider))
    } else if generation != key_generation {
        Err(Error::WrongKey(KeyMismatch::Generation))
    } else {
        Ok(())
    }
}

impl<K: RecordKeySource + ?Sized> RecordKeySource for &K {
    fn record_key_for(
        &self,
        provider: &ProviderId,
        generation: u32,
        record: RecordId,
    ) -> Result<RecordKey> {
        (**self).record_key_for(provider, generation, record)
    }
}

impl RecordKeySource for RecordKey {
    fn record_key_for(
        &self,
        provider: &ProviderId,
        generation: u32,
        record: RecordId,
    ) -> Result<RecordKey> {
        check_scope(provider, generation, &self.provider, self.generation)?;
        if record != self.record {
            return Err(Error::WrongKey(KeyMismatch::Record));
        }
        Ok(self.clone())
    }
}

impl RecordKeySource for PatientKey {
    fn record_key_for(
        &self,
        provider: &ProviderId,
        generation: u32,
        record: RecordId,
    ) -> Result<RecordKey> {
        check_scope(provider, generation, &self.provider, self.generation)?;
        Ok(self.record_key(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_are_checked() {
        assert!(ProviderId::new("st-mary_hospital.1").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "é",
            &"x".repeat(65),
            "Lab",
            "city-LAB",
        ] {
            assert!(ProviderId::new(bad).is_err(), "{bad:?}");
        }
        assert!(ProviderId::new(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn provider_ids_that_differ_by_case_cannot_both_exist() {
        // "Lab" and "lab" would share one records directory on a case-insensitive file
        // system; only the lowercase form is an id, on the wire too.
        assert!(ProviderId::new("lab").is_ok());
        assert!(matches!(
            ProviderId::new("Lab"),
            Err(Error::InvalidArgument(_))
        ));
        let mut wire = Vec::new();
        ProviderId::new("lab").unwrap().encode_into(&mut wire);
        wire[1] = b'L';
        let mut reader = crate::wire::Reader::new(&wire, "test");
        assert!(matches!(
            ProviderId::decode(&mut reader),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn patient_ids_are_checked_and_redacted() {
        assert!(PatientId::new("").is_err());
        assert!(PatientId::new(vec![1u8; 256]).is_err());
        let id = PatientId::new("+15550100").unwrap();
        assert!(!format!("{id:?}").contains("5550100"));
    }

    #[test]
    fn record_ids_round_trip_through_hex() {
        let id = RecordId::generate().unwrap();
        assert_eq!(id.to_string().parse::<RecordId>().unwrap(), id);
        assert!("zz".parse::<RecordId>().is_err());
        assert!("é".repeat(16).parse::<RecordId>().is_err());
    }

    #[test]
    fn keys_never_print_their_bytes() {
        let mk = MasterKey::from_bytes([0xab; 32]);
        let pk = mk.patient_key(
            &ProviderId::new("lab").unwrap(),
            &PatientId::new("p").unwrap(),
            0,
        );
        let rk = pk.record_key(RecordId::from_bytes([1; 16]));
        for text in [format!("{mk:?}"), format!("{pk:?}"), format!("{rk:?}")] {
            assert!(text.contains("<redacted>"), "{text}");
            assert!(!text.to_lowercase().contains("abab"), "{text}");
            assert!(!text.contains("171"), "{text}"); // 0xab in decimal
        }
    }

    #[test]
    fn derivation_separates_provider_patient_generation_and_record() {
        let mk = MasterKey::from_bytes([7; 32]);
        let lab = ProviderId::new("lab").unwrap();
        let hosp = ProviderId::new("hospital").unwrap();
        let alice = PatientId::new("alice").unwrap();
        let bob = PatientId::new("bob").unwrap();
        let base = mk.patient_key(&lab, &alice, 0);
        for other in [
            mk.patient_key(&hosp, &alice, 0),
            mk.patient_key(&lab, &bob, 0),
            mk.patient_key(&lab, &alice, 1),
        ] {
            assert_ne!(base.expose_secret(), other.expose_secret());
        }
        // Same inputs, same key: derivation is deterministic.
        assert_eq!(
            base.expose_secret(),
            mk.patient_key(&lab, &alice, 0).expose_secret()
        );
        let r1 = base.record_key(RecordId::from_bytes([1; 16]));
        let r2 = base.record_key(RecordId::from_bytes([2; 16]));
        assert_ne!(r1.expose_secret(), r2.expose_secret());
        assert_ne!(r1.expose_secret(), base.expose_secret());
        assert_ne!(&base.search_key().0, base.expose_secret());
        assert_ne!(&base.search_key().0, r1.expose_secret());
        // The keyed KDF the provider builds batches with (and the requester's one-off
        // roots) give `root(w) = KDF(S, "keyword", w)`.
        let search = base.search_key();
        let roots = search.keyword_roots();
        for keyword in ["diabetes", "metformin", "", "x".repeat(300).as_str()] {
            let expected = derive_key(&search.0, label::KEYWORD, keyword.as_bytes());
            assert_eq!(roots.root(keyword).0, expected);
            assert_eq!(search.keyword_root(keyword).0, expected);
        }
        assert_ne!(roots.root("a").0, roots.root("b").0);
    }

    #[test]
    fn key_sources_check_scope() {
        let mk = MasterKey::from_bytes([7; 32]);
        let lab = ProviderId::new("lab").unwrap();
        let pk = mk.patient_key(&lab, &PatientId::new("alice").unwrap(), 3);
        let id = RecordId::from_bytes([9; 16]);
        let rk = pk.record_key(id);
        assert_eq!(
            pk.record_key_for(&lab, 3, id).unwrap().expose_secret(),
            rk.expose_secret()
        );
        assert!(rk.record_key_for(&lab, 3, id).is_ok());
        let other = ProviderId::new("pharmacy").unwrap();
        assert!(matches!(
            pk.record_key_for(&other, 3, id),
            Err(Error::WrongKey(KeyMismatch::Provider))
        ));
        assert!(matches!(
            pk.record_key_for(&lab, 4, id),
            Err(Error::WrongKey(KeyMismatch::Generation))
        ));
        assert!(matches!(
            rk.record_key_for(&lab, 3, RecordId::from_bytes([8; 16])),
            Err(Error::WrongKey(KeyMismatch::Record))
        ));
    }
}
