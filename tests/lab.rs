//! The paper's ciphers (`medvault::lab`): published known-answer vectors through the
//! lab's code paths, byte-for-byte interop with `openssl enc` both ways, chunked RSA,
//! and what PBE-CBC misses next to a sealed record.

use std::process::Command;

use medvault::lab::{
    LabCipher, PbeKey, cbc_decrypt, cbc_encrypt_blocks, hybrid_decrypt, hybrid_encrypt,
    pbe_decrypt, pbe_encrypt, rsa_block_len, rsa_decrypt_chunked, rsa_encrypt_chunked,
};
use medvault::{DecryptionKey, EncryptionKey};
use medvault::{Error, MasterKey, PatientId, ProviderId, RecordId};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// Electronic codebook through the lab's CBC path: each block alone under a zero IV.
fn ecb(cipher: LabCipher, key: &[u8], blocks: &[u8]) -> Vec<u8> {
    let iv = vec![0u8; cipher.block_len()];
    blocks
        .chunks(cipher.block_len())
        .flat_map(|b| cbc_encrypt_blocks(cipher, key, &iv, b).unwrap())
        .collect()
}

#[test]
fn aes_fips_197_appendix_c() {
    let pt = h("00112233445566778899aabbccddeeff");
    let k128 = h("000102030405060708090a0b0c0d0e0f");
    let k256 = h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    assert_eq!(
        ecb(LabCipher::Aes128Cbc, &k128, &pt),
        h("69c4e0d86a7b0430d8cdb78070b4c55a")
    );
    assert_eq!(
        ecb(LabCipher::Aes256Cbc, &k256, &pt),
        h("8ea2b7ca516745bfeafc49904b496089")
    );
}

#[test]
fn des_fips_81_ecb_and_cbc() {
    let key = h("0123456789abcdef");
    // FIPS 81 Appendix B (ECB) and C (CBC): "Now is the time for all ".
    let pt = h("4e6f772069732074 68652074696d6520 666f7220616c6c20");
    assert_eq!(
        ecb(LabCipher::DesCbc, &key, &pt),
        h("3fa40e8a984d4815 6a271787ab8883f9 893d51ec4b563b53")
    );
    assert_eq!(
        cbc_encrypt_blocks(LabCipher::DesCbc, &key, &h("1234567890abcdef"), &pt).unwrap(),
        h("e5c7cdde872bf27c 43e934008c389c0f 683788499a7c05f6")
    );
}

#[test]
fn triple_des_sp_800_67_example() {
    // SP 800-67 Rev. 1, Appendix B: three keys, "The qufck brown fox jump".
    let key = h("0123456789abcdef 23456789abcdef01 456789abcdef0123");
    let pt = h("5468652071756663 6b2062726f776e20 666f78206a756d70");
    assert_eq!(
        ecb(LabCipher::TripleDesCbc, &key, &pt),
        h("a826fd8ce53b855f cce21c8112256fe6 68d5c05dd9b6b900")
    );
}

#[test]
fn blowfish_schneier_cbc_vector() {
    // Schneier / Eric Young's CBC test: 16-byte key, "7654321 Now is the time for ".
    let key = h("0123456789abcdeff0e1d2c3b4a59687");
    let iv = h("fedcba9876543210");
    let pt = h("37363534333231204e6f77206973207468652074696d6520666f722000000000");
    assert_eq!(
        cbc_encrypt_blocks(LabCipher::BlowfishCbc, &key, &iv, &pt).unwrap(),
        h("6b77b4d63006dee605b156e27403979358deb9e7154616d959f1652bd5ff92cc")
    );
}

fn openssl_enc(cipher: LabCipher, decrypt: bool, input: &[u8], iterations: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::write(&inp, input).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.arg("enc")
        .arg(if decrypt { "-d" } else { "-e" })
        .arg(format!("-{}", cipher.openssl_name()))
        .args(["-pbkdf2", "-iter", &iterations.to_string(), "-md", "sha256"])
        .args(["-pass", "pass:correct horse battery staple"])
        .arg("-in")
        .arg(&inp)
        .arg("-out")
        .arg(&out);
    if cipher.is_legacy() {
        cmd.args(["-provider", "legacy", "-provider", "default"]);
    }
    let status = cmd.status().expect("the openssl command (CI installs it)");
    assert!(status.success(), "openssl enc {cipher} failed");
    std::fs::read(out).unwrap()
}

#[test]
fn every_lab_cipher_interoperates_with_openssl_enc_both_ways() {
    let password = b"correct horse battery staple";
    for cipher in LabCipher::ALL {
        for len in [0usize, 1, 7, 8, 15, 16, 17, 1000] {
            let plaintext: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let ours = pbe_encrypt(cipher, password, 1_000, &plaintext).unwrap();
            assert_eq!(
                openssl_enc(cipher, true, &ours, 1_000),
                plaintext,
                "{cipher} {len}"
            );
            let theirs = openssl_enc(cipher, false, &plaintext, 1_000);
            assert_eq!(
                pbe_decrypt(cipher, password, 1_000, &theirs).unwrap(),
                plaintext,
                "{cipher} {len}"
            );
            // Same salt, same bytes: the derivation and layout match exactly.
            let salt: [u8; 8] = theirs[8..16].try_into().unwrap();
            let again = PbeKey::derive(cipher, password, salt, 1_000)
                .unwrap()
                .encrypt(&plaintext)
                .unwrap();
            assert_eq!(again, theirs, "{cipher} {len}");
        }
    }
}

#[test]
fn garbage_and_truncated_pbe_files_are_typed_errors() {
    let file = pbe_encrypt(LabCipher::Aes128Cbc, b"pw", 10, b"clinical note").unwrap();
    for len in 0..file.len() {
        assert!(pbe_decrypt(LabCipher::Aes128Cbc, b"pw", 10, &file[..len]).is_err());
    }
    assert!(matches!(
        pbe_decrypt(
            LabCipher::Aes128Cbc,
            b"pw",
            10,
            b"not an openssl file at all"
        ),
        Err(Error::Malformed { .. })
    ));
    assert!(matches!(
        PbeKey::derive(LabCipher::DesCbc, b"pw", [0; 8], 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        cbc_decrypt(LabCipher::DesCbc, &[0; 7], &[0; 8], &[0; 8]),
        Err(Error::InvalidArgument(_))
    ));
}

fn rsa_keys() -> (EncryptionKey, DecryptionKey) {
    let pem = std::fs::read_to_string("tests/data/keys/provider-a-enc.pem").unwrap();
    let private = DecryptionKey::from_pkcs8_pem(&pem).unwrap();
    (private.public_key(), private)
}

#[test]
fn chunked_rsa_round_trips_and_rejects_a_flipped_byte_in_any_block() {
    let (public, private) = rsa_keys();
    assert_eq!(rsa_block_len(256), 190);
    for len in [0usize, 1, 189, 190, 191, 1_000] {
        let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let c = rsa_encrypt_chunked(&public, &plaintext).unwrap();
        assert_eq!(c.len(), len.div_ceil(190).max(1) * 256);
        assert_eq!(rsa_decrypt_chunked(&private, &c).unwrap(), plaintext);
    }
    let plaintext = vec![0x42u8; 1_000];
    let c = rsa_encrypt_chunked(&public, &plaintext).unwrap();
    for block in 0..c.len() / 256 {
        for at in [0, 1, 100, 255] {
            let mut bad = c.clone();
            bad[block * 256 + at] ^= 0x01;
            assert!(
                rsa_decrypt_chunked(&private, &bad).is_err(),
                "block {block} byte {at}"
            );
        }
    }
    assert!(rsa_decrypt_chunked(&private, &c[..c.len() - 1]).is_err());
    // Whole blocks dropped or swapped go unnoticed: the scheme has no order.
    let mut swapped = c.clone();
    swapped[..256].copy_from_slice(&c[256..512]);
    swapped[256..512].copy_from_slice(&c[..256]);
    assert!(rsa_decrypt_chunked(&private, &swapped).is_ok());
    assert_eq!(
        rsa_decrypt_chunked(&private, &c[256..]).unwrap().len(),
        1_000 - 190
    );
}

#[test]
fn hybrid_rsa_round_trips_and_rejects_every_change() {
    let (public, private) = rsa_keys();
    let plaintext = b"MRI, 42 slices; see attached".repeat(50);
    let file = hybrid_encrypt(&public, &plaintext).unwrap();
    assert_eq!(hybrid_decrypt(&private, &file).unwrap(), plaintext);
    for at in (0..file.len()).step_by(7) {
        let mut bad = file.clone();
        bad[at] ^= 0x10;
        assert!(hybrid_decrypt(&private, &bad).is_err(), "byte {at}");
    }
    for len in [0, 1, 2, 100, 258, file.len() - 1] {
        assert!(hybrid_decrypt(&private, &file[..len]).is_err());
    }
}

#[test]
fn cbc_is_malleable_where_a_sealed_record_is_not() {
    let mut note = b"Allergy: penicillin. Dose: 0500 mg amoxicillin twice daily".to_vec();
    note.resize(64, b'.');
    let key = PbeKey::derive(LabCipher::Aes256Cbc, b"pw", [7; 8], 10).unwrap();
    let file = key.encrypt(&note).unwrap();
    // "0500" sits in the second block; XOR the first block's ciphertext to turn it
    // into "5500". The decryption succeeds and nothing notices.
    let at = note.windows(4).position(|w| w == b"0500").unwrap();
    assert!((16..32).contains(&at));
    let mut forged = file.clone();
    forged[16 + at - 16] ^= b'0' ^ b'5';
    let opened = key.decrypt(&forged).unwrap();
    assert_eq!(&opened[at..at + 4], b"5500");
    assert_eq!(&opened[32..], &note[32..]);
    assert_ne!(
        &opened[..16],
        &note[..16],
        "only the block before was garbled"
    );

    // The same flip in a sealed record is rejected.
    let master = MasterKey::from_bytes([1; 32]);
    let patient = master.patient_key(
        &ProviderId::new("lab").unwrap(),
        &PatientId::new("+15550100").unwrap(),
        0,
    );
    let id = RecordId::from_bytes([2; 16]);
    let sealed = medvault::seal(&patient.record_key(id), &note).unwrap();
    let header = medvault::RecordHeader::parse(&sealed).unwrap().1;
    let mut forged = sealed.clone();
    forged[header + at] ^= b'0' ^ b'5';
    assert!(matches!(
        medvault::open(&patient, &forged),
        Err(Error::AuthenticationFailed { .. })
    ));
}

#[test]
fn a_wrong_password_can_decrypt_to_garbage_instead_of_an_error() {
    let note = b"Discharge summary: stable, follow up in two weeks.".to_vec();
    let file = PbeKey::derive(LabCipher::Aes128Cbc, b"right", [9; 8], 1)
        .unwrap()
        .encrypt(&note)
        .unwrap();
    // About one wrong key in 256 leaves valid PKCS#7 padding (a final byte 01).
    let (mut rejected, mut garbage) = (0, None);
    for i in 0..4_000 {
        match pbe_decrypt(
            LabCipher::Aes128Cbc,
            format!("wrong-{i}").as_bytes(),
            1,
            &file,
        ) {
            Err(_) => rejected += 1,
            Ok(text) => {
                garbage = Some(text);
                break;
            }
        }
    }
    let garbage = garbage.expect("some wrong password passes the padding check");
    assert_ne!(garbage, note);
    assert!(rejected > 0);
    // A sealed record under a wrong key is always an error.
    let a = MasterKey::from_bytes([1; 32]);
    let b = MasterKey::from_bytes([2; 32]);
    let (p, u) = (
        ProviderId::new("lab").unwrap(),
        PatientId::new("+15550100").unwrap(),
    );
    let sealed = medvault::seal(
        &a.patient_key(&p, &u, 0)
            .record_key(RecordId::from_bytes([3; 16])),
        &note,
    )
    .unwrap();
    assert!(medvault::open(&b.patient_key(&p, &u, 0), &sealed).is_err());
}
