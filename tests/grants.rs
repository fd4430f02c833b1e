//! Access requests and grants: Wycheproof RSA vectors, OpenSSL interoperability, every
//! way a grant must be refused, and the paper's request → grant → search flow.

mod common;

use std::process::{Command, Stdio};

use common::data_file;
use medvault::{
    AccessRequest, Cloud, Combine, DecryptionKey, EncryptionKey, Error, Grant, Identity,
    KeyMismatch, MasterKey, PatientId, Provider, ProviderId, RecordId, RequestStatus, Requester,
    Scope, ScopeKind, SigningKey, VerifyingKey,
};
use serde::Deserialize;

fn pem(name: &str) -> String {
    String::from_utf8(data_file(&format!("keys/{name}.pem"))).unwrap()
}

fn identity(prefix: &str) -> Identity {
    Identity::new(
        SigningKey::from_pkcs8_pem(&pem(&format!("{prefix}-sign"))).unwrap(),
        DecryptionKey::from_pkcs8_pem(&pem(&format!("{prefix}-enc"))).unwrap(),
    )
    .unwrap()
}

// ------------------------------------------------------------------ Wycheproof

#[derive(Deserialize)]
struct OaepFile {
    #[serde(rename = "testGroups")]
    groups: Vec<OaepGroup>,
}
#[derive(Deserialize)]
struct OaepGroup {
    #[serde(rename = "privateKeyPem")]
    private_key_pem: String,
    tests: Vec<OaepCase>,
}
#[derive(Deserialize)]
struct OaepCase {
    #[serde(rename = "tcId")]
    id: usize,
    msg: String,
    ct: String,
    label: String,
    result: String,
}

#[test]
fn wycheproof_rsa_oaep_sha256() {
    let mut ran = 0;
    for file in [
        "rsa_oaep_2048_sha256_mgf1sha256_test.json",
        "rsa_oaep_3072_sha256_mgf1sha256_test.json",
    ] {
        let parsed: OaepFile =
            serde_json::from_slice(&data_file(&format!("wycheproof/{file}"))).unwrap();
        for group in parsed.groups {
            let key = DecryptionKey::from_pkcs8_pem(&group.private_key_pem).unwrap();
            for case in group.tests {
                let got = key.unwrap(
                    &hex::decode(&case.label).unwrap(),
                    &hex::decode(&case.ct).unwrap(),
                );
                match case.result.as_str() {
                    "valid" => assert_eq!(
                        got.unwrap().to_vec(),
                        hex::decode(&case.msg).unwrap(),
                        "{file} {}",
                        case.id
                    ),
                    _ => assert!(
                        matches!(got, Err(Error::AuthenticationFailed { .. })),
                        "{file} {} accepted",
                        case.id
                    ),
                }
                ran += 1;
            }
        }
    }
    assert!(ran >= 37 + 30, "{ran} cases");
}

#[derive(Deserialize)]
struct PssFile {
    #[serde(rename = "testGroups")]
    groups: Vec<PssGroup>,
}
#[derive(Deserialize)]
struct PssGroup {
    #[serde(rename = "publicKeyPem")]
    public_key_pem: String,
    #[serde(rename = "sLen")]
    salt: usize,
    tests: Vec<PssCase>,
}
#[derive(Deserialize)]
struct PssCase {
    #[serde(rename = "tcId")]
    id: usize,
    msg: String,
    sig: String,
    result: String,
}

#[test]
fn wycheproof_rsa_pss_sha256() {
    let mut ran = 0;
    for file in [
        "rsa_pss_2048_sha256_mgf1_32_test.json",
        "rsa_pss_3072_sha256_mgf1_32_test.json",
    ] {
        let parsed: PssFile =
            serde_json::from_slice(&data_file(&format!("wycheproof/{file}"))).unwrap();
        for group in parsed.groups {
            assert_eq!(group.salt, 32);
            let key = VerifyingKey::from_spki_pem(&group.public_key_pem).unwrap();
            for case in group.tests {
                let got = key.verify(
                    &hex::decode(&case.msg).unwrap(),
                    &hex::decode(&case.sig).unwrap(),
                );
                match case.result.as_str() {
                    "valid" => assert!(got.is_ok(), "{file} {} rejected", case.id),
                    _ => assert!(
                        matches!(got, Err(Error::SignatureInvalid)),
                        "{file} {} accepted",
                        case.id
                    ),
                }
                ran += 1;
            }
        }
    }
    assert!(ran >= 108 + 100, "{ran} cases");
}

// ------------------------------------------------------------------ OpenSSL

/// Runs the openssl command; CI installs it, so its absence is a failure, not a skip.
fn openssl(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the openssl command is required for these tests (CI installs it)");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn keys_move_between_medvault_and_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();

    // OpenSSL → medvault: plain and password-encrypted PKCS#8, SPKI.
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &path("plain.pem"),
        ],
        None,
    );
    openssl(
        &[
            "pkey",
            "-in",
            &path("plain.pem"),
            "-aes-256-cbc",
            "-passout",
            "pass:s3cret",
            "-out",
            &path("enc.pem"),
        ],
        None,
    );
    openssl(
        &[
            "pkey",
            "-in",
            &path("plain.pem"),
            "-pubout",
            "-out",
            &path("pub.pem"),
        ],
        None,
    );
    let read = |p: &str| std::fs::read_to_string(path(p)).unwrap();
    let ours = DecryptionKey::from_pkcs8_pem(&read("plain.pem")).unwrap();
    let from_enc = DecryptionKey::from_pkcs8_encrypted_pem(&read("enc.pem"), b"s3cret").unwrap();
    assert!(matches!(
        DecryptionKey::from_pkcs8_encrypted_pem(&read("enc.pem"), b"wrong"),
        Err(Error::WrongPassword)
    ));
    let public = EncryptionKey::from_spki_pem(&read("pub.pem")).unwrap();
    assert_eq!(public, ours.public_key());
    assert_eq!(from_enc.public_key(), ours.public_key());

    // medvault → OpenSSL: plain and encrypted PKCS#8, SPKI; OpenSSL reads all three.
    std::fs::write(path("ours.pem"), ours.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    std::fs::write(
        path("ours-enc.pem"),
        ours.to_pkcs8_encrypted_pem(b"pw").unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::write(path("ours-pub.pem"), ours.public_key().to_spki_pem()).unwrap();
    let modulus = |args: &[&str]| String::from_utf8(openssl(args, None)).unwrap();
    let want = modulus(&["pkey", "-in", &path("plain.pem"), "-pubout"]);
    assert_eq!(
        modulus(&["pkey", "-in", &path("ours.pem"), "-pubout"]),
        want
    );
    assert_eq!(
        modulus(&[
            "pkey",
            "-in",
            &path("ours-enc.pem"),
            "-passin",
            "pass:pw",
            "-pubout"
        ]),
        want
    );
    assert_eq!(
        modulus(&["pkey", "-pubin", "-in", &path("ours-pub.pem"), "-pubout"]),
        want
    );

    // Cross-operations: OpenSSL wraps with OAEP-SHA256 and a label, medvault unwraps;
    // medvault signs with PSS-SHA256 salt 32, OpenSSL verifies.
    let label_hex = hex::encode(b"medvault/v1/grant");
    let ct = openssl(
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            &path("pub.pem"),
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
            "-pkeyopt",
            &format!("rsa_oaep_label:{label_hex}"),
        ],
        Some(b"a 32-byte key goes in here......"),
    );
    assert_eq!(
        &ours.unwrap(b"medvault/v1/grant", &ct).unwrap()[..],
        b"a 32-byte key goes in here......"
    );
    assert!(ours.unwrap(b"another label", &ct).is_err());
    let signer = SigningKey::from_pkcs8_pem(&read("plain.pem")).unwrap();
    let sig = signer.sign(b"grant bytes").unwrap();
    std::fs::write(path("sig"), &sig).unwrap();
    std::fs::write(path("msg"), b"grant bytes").unwrap();
    openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            &path("pub.pem"),
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-sigopt",
            "rsa_mgf1_md:sha256",
            "-signature",
            &path("sig"),
            &path("msg"),
        ],
        None,
    );
}

#[test]
fn key_import_rejects_garbage_and_weak_keys() {
    assert!(matches!(
        SigningKey::from_pkcs8_pem("not a key"),
        Err(Error::Malformed { .. })
    ));
    assert!(VerifyingKey::from_spki_der(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
    let weak = String::from_utf8(openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
        ],
        None,
    ))
    .unwrap();
    assert!(matches!(
        SigningKey::from_pkcs8_pem(&weak),
        Err(Error::InvalidArgument(_))
    ));
    let one = SigningKey::from_pkcs8_pem(&pem("doctor-sign")).unwrap();
    let same = DecryptionKey::from_pkcs8_pem(&pem("doctor-sign")).unwrap();
    assert!(matches!(
        Identity::new(one, same),
        Err(Error::InvalidArgument(_))
    ));
    // Private keys never print.
    let text = format!("{:?}", identity("doctor"));
    assert!(text.contains("<redacted>") && !text.contains("MII"));
}

#[test]
fn default_keys_are_3072_bits() {
    let key = SigningKey::generate().unwrap();
    assert_eq!(key.bits(), 3072);
    let sig = key.sign(b"m").unwrap();
    assert_eq!(sig.len(), 384);
    key.public_key().verify(b"m", &sig).unwrap();
}

// ------------------------------------------------------------------ grants

struct World {
    provider_a: Identity,
    provider_b: Identity,
    doctor: Identity,
    intruder: Identity,
    lab: Provider,
    alice: PatientId,
}

fn world() -> World {
    World {
        provider_a: identity("provider-a"),
        provider_b: identity("provider-b"),
        doctor: identity("doctor"),
        intruder: Identity::new(
            SigningKey::from_pkcs8_pem(&pem("provider-b-enc")).unwrap(),
            DecryptionKey::from_pkcs8_pem(&pem("intruder-enc")).unwrap(),
        )
        .unwrap(),
        lab: Provider::new(
            ProviderId::new("city-lab").unwrap(),
            MasterKey::from_bytes([1; 32]),
            identity("provider-a").signing,
        ),
        alice: PatientId::new("+15550100").unwrap(),
    }
}

const NOW: u64 = 1_800_000_000;
const DAY: u64 = 86_400;

/// A request from the doctor for Alice at the lab, opened by the lab, and its grant.
fn request_and_grant(w: &World) -> (AccessRequest, medvault::PendingRequest, Grant) {
    let (request, pending) = AccessRequest::create(
        &w.doctor,
        "Dr. Grey, endocrinology",
        w.lab.id(),
        &w.provider_a.public().encryption,
        Scope::Patient(w.alice.clone()),
        "diabetes follow-up",
        NOW,
    )
    .unwrap();
    let opened = AccessRequest::from_bytes(request.to_bytes())
        .unwrap()
        .open(&w.provider_a.decryption)
        .unwrap();
    assert_eq!(opened.scope, Scope::Patient(w.alice.clone()));
    let key = w.lab.key_for_scope(&opened.scope, None).unwrap();
    let grant = Grant::issue(&w.provider_a, &opened, key, NOW, 30 * DAY).unwrap();
    (request, pending, grant)
}

#[test]
fn a_good_grant_opens_and_answers_its_request() {
    let w = world();
    let (_, pending, grant) = request_and_grant(&w);
    let mut doctor = Requester::new();
    doctor
        .accept_grant(
            &grant,
            &pending,
            &w.provider_a.public().verifying,
            &w.doctor,
            NOW + 60,
        )
        .unwrap();
    assert_eq!(doctor.providers_for(&w.alice), vec![w.lab.id().clone()]);
    // Through the armor and back.
    let armored = grant.to_armor();
    assert!(armored.starts_with("-----BEGIN MEDVAULT GRANT-----\n"));
    assert_eq!(Grant::from_armor(&armored).unwrap(), grant);
    assert!(Grant::from_armor(&armored.replace("GRANT", "ACCESS REQUEST")).is_err());
    assert!(
        Grant::from_armor("-----BEGIN MEDVAULT GRANT-----\n!!!\n-----END MEDVAULT GRANT-----")
            .is_err()
    );
}

#[test]
fn a_grant_for_someone_else_is_refused() {
    let w = world();
    let (_, _, grant) = request_and_grant(&w);
    assert!(matches!(
        grant.open(&w.provider_a.public().verifying, &w.intruder, NOW),
        Err(Error::WrongRecipient)
    ));
}

#[test]
fn a_grant_signed_by_another_provider_is_refused() {
    let w = world();
    let (request, pending, _) = request_and_grant(&w);
    let opened = request.open(&w.provider_a.decryption).unwrap();
    // Provider B signs a grant claiming to be the lab's.
    let forged = Grant::issue(
        &w.provider_b,
        &opened,
        w.lab.key_for_scope(&opened.scope, None).unwrap(),
        NOW,
        DAY,
    )
    .unwrap();
    let pinned = w.provider_a.public().verifying;
    assert!(matches!(
        forged.open(&pinned, &w.doctor, NOW),
        Err(Error::SignatureInvalid)
    ));
    let mut doctor = Requester::new();
    assert!(matches!(
        doctor.accept_grant(&forged, &pending, &pinned, &w.doctor, NOW),
        Err(Error::SignatureInvalid)
    ));
}

#[test]
fn an_expired_or_future_grant_is_refused() {
    let w = world();
    let (_, _, grant) = request_and_grant(&w);
    let pinned = w.provider_a.public().verifying;
    assert!(
        grant.open(&pinned, &w.doctor, NOW + 30 * DAY).is_ok(),
        "valid through its last second"
    );
    assert!(matches!(
        grant.open(&pinned, &w.doctor, NOW + 30 * DAY + 1),
        Err(Error::Expired { expired_at }) if expired_at == NOW + 30 * DAY
    ));
    assert!(matches!(
        grant.open(&pinned, &w.doctor, NOW - 3600),
        Err(Error::NotYetValid { .. })
    ));
}

#[test]
fn a_grant_replayed_for_another_scope_is_refused() {
    let w = world();
    let (_, _, grant_for_alice) = request_and_grant(&w);
    let pinned = w.provider_a.public().verifying;
    // The doctor also asked for Bob; the lab's Alice grant arrives in its place.
    let bob = PatientId::new("+15550111").unwrap();
    let (_, pending_bob) = AccessRequest::create(
        &w.doctor,
        "Dr. Grey",
        w.lab.id(),
        &w.provider_a.public().encryption,
        Scope::Patient(bob),
        "consult",
        NOW,
    )
    .unwrap();
    let mut doctor = Requester::new();
    assert!(matches!(
        doctor.accept_grant(&grant_for_alice, &pending_bob, &pinned, &w.doctor, NOW),
        Err(Error::ScopeMismatch)
    ));
    // A one-record request answered by a patient grant, even with the right request id.
    let record = RecordId::from_bytes([7; 16]);
    let (request, pending_record) = AccessRequest::create(
        &w.doctor,
        "Dr. Grey",
        w.lab.id(),
        &w.provider_a.public().encryption,
        Scope::Record(w.alice.clone(), record),
        "one scan",
        NOW,
    )
    .unwrap();
    let opened = request.open(&w.provider_a.decryption).unwrap();
    assert!(matches!(
        Grant::issue(
            &w.provider_a,
            &opened,
            w.lab
                .key_for_scope(&Scope::Patient(w.alice.clone()), None)
                .unwrap(),
            NOW,
            DAY
        ),
        Err(Error::ScopeMismatch)
    ));
    let record_grant = Grant::issue(
        &w.provider_a,
        &opened,
        w.lab.key_for_scope(&opened.scope, None).unwrap(),
        NOW,
        DAY,
    )
    .unwrap();
    doctor
        .accept_grant(&record_grant, &pending_record, &pinned, &w.doctor, NOW)
        .unwrap();
    assert!(matches!(
        doctor.accept_grant(
            &record_grant,
            &pending_bob_again(&w),
            &pinned,
            &w.doctor,
            NOW
        ),
        Err(Error::ScopeMismatch)
    ));
}

fn pending_bob_again(w: &World) -> medvault::PendingRequest {
    AccessRequest::create(
        &w.doctor,
        "Dr. Grey",
        w.lab.id(),
        &w.provider_a.public().encryption,
        Scope::Patient(PatientId::new("+15550111").unwrap()),
        "consult",
        NOW,
    )
    .unwrap()
    .1
}

#[test]
fn every_tampered_byte_of_a_grant_is_refused() {
    let w = world();
    let (_, pending, grant) = request_and_grant(&w);
    let pinned = w.provider_a.public().verifying;
    let bytes = grant.to_bytes().to_vec();
    for pos in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x04;
        let result = Grant::from_bytes(&bad).and_then(|g| {
            let opened = g.open(&pinned, &w.doctor, NOW)?;
            opened.check_answers(&pending)
        });
        let err = result.expect_err(&format!("byte {pos} accepted"));
        // The signature covers every byte but its own; a changed signature fails too.
        assert!(
            matches!(
                err,
                Error::SignatureInvalid
                    | Error::Malformed { .. }
                    | Error::Truncated { .. }
                    | Error::UnsupportedVersion { .. }
                    | Error::UnsupportedAlgorithm { .. }
            ),
            "byte {pos}: {err:?}"
        );
    }
    for len in 0..bytes.len() {
        assert!(Grant::from_bytes(&bytes[..len]).is_err(), "cut at {len}");
    }
}

#[test]
fn tampered_or_misdirected_requests_are_refused() {
    let w = world();
    let (request, _, _) = request_and_grant(&w);
    let bytes = request.to_bytes().to_vec();
    for pos in (0..bytes.len()).step_by(7) {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x20;
        assert!(AccessRequest::from_bytes(&bad).is_err(), "byte {pos}");
    }
    // Opened by a provider it was not sealed to.
    assert!(matches!(
        request.open(&w.provider_b.decryption),
        Err(Error::WrongRecipient)
    ));
    // The patient id is nowhere in the request, nor in its armor.
    assert!(!bytes.windows(9).any(|win| win == w.alice.as_bytes()));
    let armored = request.to_armor();
    assert!(armored.starts_with("-----BEGIN MEDVAULT ACCESS REQUEST-----"));
    assert_eq!(AccessRequest::from_armor(&armored).unwrap(), request);
}

// ------------------------------------------------------------------ end to end

#[test]
fn request_grant_search_across_two_providers_then_rotation_revokes() {
    let cloud = Cloud::new();
    let a_keys = identity("provider-a");
    let b_keys = identity("provider-b");
    let doctor_keys = identity("doctor");
    let mut hospital = Provider::new(
        ProviderId::new("st-mary").unwrap(),
        MasterKey::from_bytes([2; 32]),
        a_keys.signing.clone(),
    );
    let mut lab = Provider::new(
        ProviderId::new("city-lab").unwrap(),
        MasterKey::from_bytes([3; 32]),
        b_keys.signing.clone(),
    );
    cloud
        .register_provider(hospital.id().clone(), a_keys.public())
        .unwrap();
    cloud
        .register_provider(lab.id().clone(), b_keys.public())
        .unwrap();
    // The directory is first-come: the lab (or anyone) registering its keys under the
    // hospital's id is refused and changes nothing; the same keys again are accepted.
    assert!(matches!(
        cloud.register_provider(hospital.id().clone(), b_keys.public()),
        Err(Error::AlreadyRegistered)
    ));
    assert_eq!(cloud.provider_keys(hospital.id()).unwrap(), a_keys.public());
    cloud
        .register_provider(hospital.id().clone(), a_keys.public())
        .unwrap();
    let alice = PatientId::new("+15550100").unwrap();
    for (provider, text) in [
        (&mut hospital, "note: diabetes, start metformin"),
        (&mut lab, "HbA1c high; diabetes"),
    ] {
        let rec = provider
            .add_record(&alice, text.as_bytes(), &["diabetes"])
            .unwrap();
        cloud.ingest(provider.finish().unwrap()).unwrap();
        cloud.put_record(rec.bytes).unwrap();
    }

    // The doctor asks both providers through the cloud.
    let now = now_unix();
    let mut pending = Vec::new();
    for (provider, keys) in [(&hospital, &a_keys), (&lab, &b_keys)] {
        // The doctor pinned these keys out of band; the directory must agree.
        assert_eq!(cloud.provider_keys(provider.id()).unwrap(), keys.public());
        let (request, p) = AccessRequest::create(
            &doctor_keys,
            "Dr. Grey",
            provider.id(),
            &keys.public().encryption,
            Scope::Patient(alice.clone()),
            "follow-up",
            now,
        )
        .unwrap();
        cloud
            .submit_request(
                AccessRequest::from_armor(&request.to_armor())
                    .unwrap()
                    .to_bytes(),
            )
            .unwrap();
        pending.push(p);
    }
    // The admin sees two pending requests, and no patient id anywhere.
    let view = cloud.admin_view();
    assert_eq!(view.requests.len(), 2);
    assert!(
        view.requests
            .iter()
            .all(|r| r.status == RequestStatus::Pending && r.scope == ScopeKind::Patient)
    );
    assert_eq!(view.files.len(), 2);
    assert!(!format!("{view:?}").contains("5550100"));
    // A grant before approval is refused.
    for r in &view.requests {
        cloud.decide_request(r.id, true).unwrap();
    }
    assert!(
        cloud.decide_request(view.requests[0].id, false).is_err(),
        "decided once"
    );
    for (provider, keys) in [(&hospital, &a_keys), (&lab, &b_keys)] {
        for request in cloud.approved_requests(provider.id()) {
            let opened = request.open(&keys.decryption).unwrap();
            let grant = Grant::issue(
                keys,
                &opened,
                provider.key_for_scope(&opened.scope, None).unwrap(),
                now,
                DAY,
            )
            .unwrap();
            cloud.post_grant(grant.to_bytes()).unwrap();
            assert!(cloud.post_grant(grant.to_bytes()).is_err(), "granted once");
        }
    }
    let mut doctor = Requester::new();
    let grants = cloud.fetch_grants(&doctor_keys.public().encryption.fingerprint());
    assert_eq!(grants.len(), 2);
    for grant in &grants {
        let p = pending.iter().find(|p| p.id == grant.request_id()).unwrap();
        let issuer = if grant.provider() == hospital.id() {
            &a_keys
        } else {
            &b_keys
        };
        doctor
            .accept_grant(grant, p, &issuer.public().verifying, &doctor_keys, now)
            .unwrap();
    }
    assert!(
        cloud
            .admin_view()
            .requests
            .iter()
            .all(|r| r.status == RequestStatus::Granted)
    );

    // One query, both providers.
    assert_eq!(
        common::records_found(&doctor, &cloud, &alice, "diabetes"),
        2
    );

    // The hospital rotates; a record sealed afterwards is out of the old grant's reach.
    hospital.rotate().unwrap();
    let secret = hospital
        .add_record(&alice, b"new diagnosis after rotation", &["diabetes"])
        .unwrap();
    cloud.ingest(hospital.finish().unwrap()).unwrap();
    cloud.put_record(secret.bytes.clone()).unwrap();
    assert!(matches!(
        doctor.open_record(Some(&alice), &secret.bytes),
        Err(Error::WrongKey(KeyMismatch::Generation))
    ));
    let q = doctor
        .query(&alice, &["diabetes"], Combine::Or, &cloud.manifest())
        .unwrap();
    let results = doctor.open(&q, &cloud.search(q.query()).unwrap()).unwrap();
    assert_eq!(results.record_count(), 2, "the old grant finds nothing new");
    assert!(
        results
            .providers
            .iter()
            .flat_map(|p| &p.records)
            .all(|r| r.id != secret.id)
    );
    // Old data still opens.
    let old = cloud.records();
    assert!(old.iter().any(|r| {
        &r.provider == hospital.id()
            && doctor
                .open_record(
                    Some(&alice),
                    &cloud.record(&r.provider, r.record).unwrap().unwrap(),
                )
                .is_ok()
    }));
}

/// An encrypted PKCS#8 key carries its own KDF parameters: a forged file demanding
/// 2^30 scrypt cost (128 GiB) or 10^8 PBKDF2 iterations is refused before any work.
#[test]
fn hostile_encrypted_key_parameters_are_refused() {
    use pkcs8::der::{Decode, Encode};
    use pkcs8::pkcs5::{EncryptionScheme, pbes2::Kdf};
    let key = DecryptionKey::from_pkcs8_pem(&pem("doctor-enc")).unwrap();
    let ours = key.to_pkcs8_encrypted_pem(b"pw").unwrap();
    // Our own export (scrypt) imports again.
    assert_eq!(
        DecryptionKey::from_pkcs8_encrypted_pem(&ours, b"pw")
            .unwrap()
            .public_key(),
        key.public_key()
    );
    let (label, document) = pkcs8::Document::from_pem(&ours).unwrap();
    let forge = |edit: &dyn Fn(&mut Kdf)| {
        let mut info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(document.as_bytes()).unwrap();
        let EncryptionScheme::Pbes2(params) = &mut info.encryption_algorithm else {
            panic!("PBES2 expected")
        };
        edit(&mut params.kdf);
        pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, &info.to_der().unwrap())
            .unwrap()
    };
    let huge_scrypt = forge(&|kdf| {
        if let Kdf::Scrypt(p) = kdf {
            p.cost_parameter = 1 << 30;
        }
    });
    // Deriving with these parameters would abort on allocation; the error proves the
    // refusal came first.
    assert!(matches!(
        DecryptionKey::from_pkcs8_encrypted_pem(&huge_scrypt, b"pw"),
        Err(Error::Malformed { .. })
    ));
    let many_rounds = forge(&|kdf| {
        let salt = match kdf {
            Kdf::Scrypt(p) => p.salt,
            Kdf::Pbkdf2(p) => p.salt,
            _ => unreachable!(),
        };
        let mut p = pkcs8::pkcs5::pbes2::Pbkdf2Params::hmac_sha256(1000, salt.as_ref()).unwrap();
        p.iteration_count = 100_000_000;
        *kdf = Kdf::Pbkdf2(p);
    });
    assert!(matches!(
        DecryptionKey::from_pkcs8_encrypted_pem(&many_rounds, b"pw"),
        Err(Error::Malformed { .. })
    ));
}

/// The system clock in unix seconds.
fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

#[test]
fn acknowledged_requests_decisions_and_grants_survive_a_restart() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let (request, _, grant) = request_and_grant(&w);
    let (second, _) = AccessRequest::create(
        &w.doctor,
        "Dr. Grey, endocrinology",
        w.lab.id(),
        &w.provider_a.public().encryption,
        Scope::Patient(w.alice.clone()),
        "second opinion",
        NOW,
    )
    .unwrap();
    {
        let cloud = Cloud::open(dir.path()).unwrap();
        cloud
            .register_provider(w.lab.id().clone(), w.provider_a.public())
            .unwrap();
        cloud.submit_request(request.to_bytes()).unwrap();
        cloud.submit_request(second.to_bytes()).unwrap();
        cloud.decide_request(request.id(), true).unwrap();
        cloud.decide_request(second.id(), false).unwrap();
        cloud.post_grant(grant.to_bytes()).unwrap();
        // Refused calls leave nothing behind.
        assert!(cloud.post_grant(grant.to_bytes()).is_err());
        assert!(cloud.decide_request(second.id(), true).is_err());
        assert!(cloud.submit_request(request.to_bytes()).is_err());
    }
    let statuses = |cloud: &Cloud| {
        cloud
            .admin_view()
            .requests
            .iter()
            .map(|r| (r.id, r.status))
            .collect::<Vec<_>>()
    };
    let expected = vec![
        (request.id(), RequestStatus::Granted),
        (second.id(), RequestStatus::Denied),
    ];
    let mailbox = w.doctor.public().encryption.fingerprint();
    let cloud = Cloud::open(dir.path()).unwrap();
    assert_eq!(statuses(&cloud), expected);
    assert_eq!(cloud.fetch_grants(&mailbox), vec![grant.clone()]);
    assert!(cloud.approved_requests(w.lab.id()).is_empty());
    drop(cloud);

    // A crash in the middle of an append leaves a torn last event: cut off on open,
    // everything acknowledged before it kept.
    let journal = dir.path().join("BROKER");
    let whole = std::fs::read(&journal).unwrap();
    let mut torn = whole.clone();
    torn.extend_from_slice(&[1, 0, 0, 0x40, 0]);
    std::fs::write(&journal, &torn).unwrap();
    let cloud = Cloud::open(dir.path()).unwrap();
    assert_eq!(statuses(&cloud), expected);
    drop(cloud);
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        whole,
        "the torn end is cut off"
    );
    // Damage before the end is reported by name, never replayed.
    let mut damaged = whole.clone();
    damaged[20] ^= 0x04;
    std::fs::write(&journal, &damaged).unwrap();
    assert!(matches!(
        Cloud::open(dir.path()),
        Err(Error::Corrupt { what }) if what.contains("BROKER")
    ));
}
