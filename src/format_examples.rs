//! Checks the worked examples in FORMAT.md against the code, byte for byte.

use crate::keys::keyfile::{self, PasswordKdf};
use crate::keys::{MasterKey, PatientId, ProviderId, RecordId};
use crate::record::seal::{open, seal_with_prefix};

const FORMAT_MD: &str = include_str!("../FORMAT.md");

/// The hex in the fenced block after `<!-- example: NAME -->`, whitespace removed and
/// `#` comments dropped.
fn example(name: &str) -> Vec<u8> {
    let marker = format!("<!-- example: {name} -->");
    let start = FORMAT_MD
        .find(&marker)
        .unwrap_or_else(|| panic!("FORMAT.md lacks {marker}"));
    let rest = &FORMAT_MD[start..];
    let open = rest.find("```").unwrap() + 3;
    let body = &rest[open..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let body = &body[..body.find("```").unwrap()];
    let hex: String = body
        .lines()
        .map(|l| l.split('#').next().unwrap())
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    hex::decode(hex).unwrap()
}

fn example_inputs() -> (MasterKey, ProviderId, PatientId) {
    let master = MasterKey::from_bytes(core::array::from_fn(|i| i as u8));
    (
        master,
        ProviderId::new("city-lab").unwrap(),
        PatientId::new("+15550100").unwrap(),
    )
}

const PLAINTEXT: &[u8] = b"HbA1c 7.9 % (LOINC 4548-4); metformin 500 mg";

#[test]
fn sealed_record_example_matches() {
    let (master, provider, patient) = example_inputs();
    let patient_key = master.patient_key(&provider, &patient, 0);
    assert_eq!(
        hex::encode(patient_key.expose_secret()),
        hex::encode(example("patient-key"))
    );
    let record = RecordId::from_bytes(
        hex::decode("00112233445566778899aabbccddeeff")
            .unwrap()
            .try_into()
            .unwrap(),
    );
    let record_key = patient_key.record_key(record);
    assert_eq!(
        hex::encode(record_key.expose_secret()),
        hex::encode(example("record-key"))
    );
    let prefix = core::array::from_fn(|i| 0xa0 + i as u8);
    let sealed = seal_with_prefix(&record_key, PLAINTEXT, 32, prefix).unwrap();
    // Hex on both sides, so a mismatch prints the bytes FORMAT.md should show.
    assert_eq!(hex::encode(&sealed), hex::encode(example("sealed-record")));
    assert_eq!(
        open(&patient_key, &example("sealed-record")).unwrap(),
        PLAINTEXT
    );
}

#[test]
fn key_file_example_matches() {
    let (master, provider, _) = example_inputs();
    let kdf = PasswordKdf::Pbkdf2Sha256 {
        iterations: 100_000,
    };
    let salt = core::array::from_fn(|i| 0x10 + i as u8);
    let nonce = core::array::from_fn(|i| 0x20 + i as u8);
    let file = keyfile::lock_with(&master, &provider, b"correct horse", kdf, salt, nonce).unwrap();
    assert_eq!(hex::encode(&file), hex::encode(example("key-file")));
    let unlocked = keyfile::unlock(&example("key-file"), b"correct horse").unwrap();
    assert_eq!(unlocked.master_key.expose_secret(), master.expose_secret());
}

#[test]
fn index_example_matches() {
    use crate::crypto::ggm;
    use crate::index::{EpochKey, Op};
    let (master, provider, patient) = example_inputs();
    let patient_key = master.patient_key(&provider, &patient, 0);
    let root = patient_key.search_key().keyword_root("diabetes");
    assert_eq!(hex::encode(root.0), hex::encode(example("keyword-root")));
    let leaf = ggm::leaf(&root, 5);
    assert_eq!(hex::encode(leaf.0), hex::encode(example("epoch-leaf")));
    let key = EpochKey::new(&leaf);
    let record = RecordId::from_bytes(
        hex::decode("00112233445566778899aabbccddeeff")
            .unwrap()
            .try_into()
            .unwrap(),
    );
    let mut pair = key.label(0).to_vec();
    pair.extend_from_slice(&key.seal_block(0, &[(record, Op::Add)]));
    assert_eq!(hex::encode(&pair), hex::encode(example("index-entry")));
}

#[test]
fn signed_log_example_matches() {
    use crate::index::log::{self, RecordTable};
    use crate::index::manifest::EpochInfo;
    // The index example's one entry as epoch 0 of city-lab, generation 0, committing
    // the sealed-record example.
    let (_, provider, _) = example_inputs();
    let entry = example("index-entry");
    let (label, value) = entry.split_at(16);
    let table = crate::index::Table::from_unsorted(vec![(
        label.try_into().unwrap(),
        value.try_into().unwrap(),
    )])
    .unwrap();
    let record = RecordId::from_bytes(
        hex::decode("00112233445566778899aabbccddeeff")
            .unwrap()
            .try_into()
            .unwrap(),
    );
    let records = RecordTable::new(vec![(
        record,
        log::record_digest(&example("sealed-record")),
    )])
    .unwrap();
    let info = EpochInfo {
        generation: 0,
        entries: 1,
        pairs_root: log::EpochPairs::new(table.clone()).root(),
        records: 1,
        records_root: records.root(),
    };
    let mut commit = Vec::new();
    log::encode_commit(&info, &mut commit);
    assert_eq!(hex::encode(&commit), hex::encode(example("log-commit")));
    let chain = log::next_chain(&provider, 0, &info, &log::CHAIN_START);
    assert_eq!(hex::encode(chain), hex::encode(example("log-chain")));
    assert_eq!(
        hex::encode(log::head_message(&provider, 1, &chain)),
        hex::encode(example("log-head"))
    );
}
