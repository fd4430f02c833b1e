//! Issuing and opening grants with 3072-bit RSA keys, one step at a time and as the
//! whole round through an in-process cloud (the doctor asks, the admin approves, the
//! provider grants, the doctor accepts), key generation excluded; and key generation
//! on its own, beside OpenSSL's in the same run (in process, and `openssl genpkey` as a
//! user runs it, process start included).
//!
//! `cargo bench --bench grant`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use medvault::{
    AccessRequest, Cloud, Grant, Identity, MasterKey, PatientId, Provider, ProviderId, Requester,
    Scope, SigningKey,
};

fn bench_grants(c: &mut Criterion) {
    let provider_keys = Identity::generate().unwrap();
    let doctor = Identity::generate().unwrap();
    let lab = Provider::new(
        ProviderId::new("city-lab").unwrap(),
        MasterKey::from_bytes([1; 32]),
        provider_keys.signing.clone(),
    );
    let alice = PatientId::new("+15550100").unwrap();
    let now = now_unix();
    let (request, pending) = AccessRequest::create(
        &doctor,
        "Dr. Grey",
        lab.id(),
        &provider_keys.public().encryption,
        Scope::Patient(alice),
        "follow-up",
        now,
    )
    .unwrap();
    let opened = request.open(&provider_keys.decryption).unwrap();
    let key = lab.key_for_scope(&opened.scope, None).unwrap();
    let grant = Grant::issue(&provider_keys, &opened, key.clone(), now, 86_400).unwrap();
    let issuer = provider_keys.public().verifying;

    let mut group = c.benchmark_group("grant-3072");
    group.sample_size(20);
    group.bench_function("request-create", |b| {
        b.iter(|| {
            AccessRequest::create(
                &doctor,
                "Dr. Grey",
                lab.id(),
                &provider_keys.public().encryption,
                pending.scope.clone(),
                "follow-up",
                now,
            )
            .unwrap()
        })
    });
    group.bench_function("request-open", |b| {
        b.iter(|| request.open(black_box(&provider_keys.decryption)).unwrap())
    });
    group.bench_function("issue", |b| {
        b.iter(|| {
            Grant::issue(&provider_keys, black_box(&opened), key.clone(), now, 86_400).unwrap()
        })
    });
    group.bench_function("open", |b| {
        b.iter(|| black_box(&grant).open(&issuer, &doctor, now).unwrap())
    });
    // The whole round, each iteration on a fresh cloud with the provider registered.
    group.bench_function("round-through-the-cloud", |b| {
        b.iter_batched(
            || {
                let cloud = Cloud::new();
                cloud
                    .register_provider(lab.id().clone(), provider_keys.public())
                    .unwrap();
                cloud
            },
            |cloud| {
                let pinned = cloud.provider_keys(lab.id()).unwrap();
                let (request, pending) = AccessRequest::create(
                    &doctor,
                    "Dr. Grey",
                    lab.id(),
                    &pinned.encryption,
                    pending.scope.clone(),
                    "follow-up",
                    now,
                )
                .unwrap();
                let id = cloud.submit_request(request.to_bytes()).unwrap();
                cloud.decide_request(id, true).unwrap();
                for approved in cloud.approved_requests(lab.id()) {
                    let opened = approved.open(&provider_keys.decryption).unwrap();
                    let key = lab.key_for_scope(&opened.scope, None).unwrap();
                    let grant = Grant::issue(&provider_keys, &opened, key, now, 86_400).unwrap();
                    cloud.post_grant(grant.to_bytes()).unwrap();
                }
                let mut requester = Requester::new();
                for grant in cloud.fetch_grants(&doctor.public().encryption.fingerprint()) {
                    requester
                        .accept_grant(&grant, &pending, &pinned.verifying, &doctor, now)
                        .unwrap();
                }
                requester
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// One RSA-3072 key (an identity holds two: signing and decryption). Key generation
/// time varies with how far the prime search runs, so the sample is large in time.
fn bench_keygen(c: &mut Criterion) {
    let mut group = c.benchmark_group("keygen-rsa-3072");
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(30));
    group.bench_function("medvault", |b| b.iter(|| SigningKey::generate().unwrap()));
    group.bench_function("openssl", |b| {
        b.iter(|| openssl::rsa::Rsa::generate(3072).unwrap())
    });
    // The command a user would run instead; skipped where the tool is missing.
    let genpkey = || {
        std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:3072",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
    };
    if genpkey().is_ok_and(|status| status.success()) {
        group.bench_function("openssl-genpkey", |b| {
            b.iter(|| assert!(genpkey().unwrap().success()))
        });
    } else {
        eprintln!("keygen-rsa-3072/openssl-genpkey skipped: no `openssl` command");
    }
    group.finish();
}

criterion_group!(benches, bench_grants, bench_keygen);
criterion_main!(benches);

/// The system clock in unix seconds.
fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}
