//! The whole story through a real `medvault-server` on a loopback port: accounts and
//! login, a provider's signed uploads, the admin's decision, a sealed grant, a search
//! the requester verifies and opens, all through `RemoteCloud`; who may call what; and
//! a restart that keeps accounts, the key directory, the index, requests and grants.

mod common;
use common::*;
#[path = "../../tests/common/postgres.rs"]
mod pg;

use medvault::remote::Role;
use medvault::{
    AccessRequest, CloudService, Combine, Error, Grant, MasterKey, PatientId, Provider, ProviderId,
    RemoteCloud, Requester, Scope,
};

#[test]
fn the_whole_flow_runs_against_the_server_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    whole_flow(dir.path(), dir.path().join("store").as_os_str());
}

/// The same flow with the server on the PostgreSQL store (`--store postgresql://…`):
/// accounts, keys, index, records, requests and grants in the database, kept across a
/// restart.
#[test]
fn the_whole_flow_runs_against_a_server_on_postgresql_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let database = pg::shared().fresh_database();
    whole_flow(dir.path(), pg::url_of(&database).as_ref());
    let mut client = postgres::Client::connect(&database, postgres::NoTls).unwrap();
    let accounts: i64 = client
        .query_one("SELECT count(*) FROM medvault_server_accounts", &[])
        .unwrap()
        .get(0);
    assert_eq!(accounts, 4, "admin, city-lab, dr-grey, st-mary");
}

/// Registers, uploads, requests, grants and searches through a server on `store`
/// (certificate, admin password and log in `dir`), restarts it, and checks it all.
fn whole_flow(dir: &std::path::Path, store: &std::ffi::OsStr) {
    let server = Server::start_on(dir, store, &[]);
    let lab_id = ProviderId::new("city-lab").unwrap();
    let (lab_keys, doctor_keys) = (lab_identity(), doctor_identity());
    server.register("city-lab", Role::Provider, None);
    server.register(
        "dr-grey",
        Role::Requester,
        Some(hex(&doctor_keys.public().encryption.fingerprint())),
    );

    // The lab registers its keys and uploads signed batches and records.
    let lab_cloud = server.connect("city-lab", PASSWORD).unwrap();
    lab_cloud
        .register_provider(lab_id.clone(), lab_keys.public())
        .unwrap();
    let mut lab = Provider::new(
        lab_id.clone(),
        MasterKey::from_bytes([9; 32]),
        lab_keys.signing.clone(),
    );
    let alice = PatientId::new("+15550100").unwrap();
    let notes: [&[u8]; 3] = [b"HbA1c 7.9 %", b"glucose 9.1 fasting", b"lipids normal"];
    let mut sealed = Vec::new();
    for (i, note) in notes.iter().enumerate() {
        let words: &[&str] = if i < 2 { &["diabetes"] } else { &["lipids"] };
        sealed.push(lab.add_record(&alice, note, words).unwrap());
        lab_cloud
            .ingest_bytes(&lab.finish().unwrap().to_bytes())
            .unwrap();
        let bytes = sealed[i].bytes.clone();
        lab_cloud.put_record_from(&mut &bytes[..]).unwrap();
    }
    // Records come back byte for byte.
    let mut copy = Vec::new();
    let stored = lab_cloud
        .record_to(&lab_id, sealed[0].id, &mut copy)
        .unwrap();
    assert_eq!(
        (stored, copy),
        (Some(sealed[0].bytes.len() as u64), sealed[0].bytes.clone())
    );

    // The doctor asks, the admin approves, the lab grants, the doctor accepts.
    let doctor_cloud = server.connect("dr-grey", PASSWORD).unwrap();
    let pinned = doctor_cloud.provider_keys(&lab_id).unwrap().unwrap();
    let (request, pending) = AccessRequest::create(
        &doctor_keys,
        "Dr. Grey",
        &lab_id,
        &pinned.encryption,
        Scope::Patient(alice.clone()),
        "diabetes follow-up",
        now(),
    )
    .unwrap();
    let request_id = doctor_cloud.submit_request(request.to_bytes()).unwrap();
    let admin = server.connect("admin", ADMIN_PASSWORD).unwrap();
    assert_eq!(admin.admin_view().unwrap().requests.len(), 1);
    admin.decide_request(request_id, true).unwrap();
    let approved = lab_cloud.approved_requests(&lab_id).unwrap();
    assert_eq!(approved.len(), 1);
    let opened = approved[0].open(&lab_keys.decryption).unwrap();
    let key = lab.key_for_scope(&opened.scope, None).unwrap();
    let grant = Grant::issue(&lab_keys, &opened, key, now(), 86_400).unwrap();
    lab_cloud.post_grant(grant.to_bytes()).unwrap();
    let mailbox = doctor_cloud
        .fetch_grants(&doctor_keys.public().encryption.fingerprint())
        .unwrap();
    assert_eq!(mailbox.len(), 1);
    let mut doctor = Requester::new();
    doctor
        .trust_provider(lab_id.clone(), pinned.verifying.clone())
        .unwrap();
    doctor
        .accept_grant(
            &mailbox[0],
            &pending,
            &pinned.verifying,
            &doctor_keys,
            now(),
        )
        .unwrap();

    // One search through the server, verified and opened by the doctor.
    let search = |cloud: &RemoteCloud, doctor: &mut Requester| {
        let q = doctor
            .query(
                &alice,
                &["diabetes"],
                Combine::Or,
                &cloud.manifest().unwrap(),
            )
            .unwrap();
        let response = cloud.search_bytes(&q.query().to_bytes()).unwrap();
        let results = doctor.open(&q, &response).unwrap();
        let mut texts: Vec<Vec<u8>> = results.providers[0]
            .records
            .iter()
            .map(|r| r.plaintext.to_vec())
            .collect();
        texts.sort();
        texts
    };
    assert_eq!(
        search(&doctor_cloud, &mut doctor),
        vec![b"HbA1c 7.9 %".to_vec(), b"glucose 9.1 fasting".to_vec()]
    );

    // Who may call what.
    assert!(refused(
        server.connect("dr-grey", "wrong password!!"),
        "bad_login"
    ));
    assert!(refused(doctor_cloud.admin_view(), "forbidden"));
    assert!(refused(lab_cloud.admin_view(), "forbidden"));
    assert!(refused(lab_cloud.search_bytes(b"MVQY"), "forbidden"));
    assert!(refused(
        doctor_cloud.fetch_grants(&lab_keys.public().encryption.fingerprint()),
        "forbidden"
    ));
    let other = ProviderId::new("st-mary").unwrap();
    assert!(refused(
        lab_cloud.register_provider(other.clone(), lab_keys.public()),
        "forbidden"
    ));
    assert!(refused(
        doctor_cloud.approved_requests(&lab_id),
        "forbidden"
    ));
    // A batch of another provider, uploaded by this provider's account: refused by the
    // server before the cloud sees it.
    server.register("st-mary", Role::Provider, None);
    let mut mary = Provider::new(
        other.clone(),
        MasterKey::from_bytes([3; 32]),
        lab_keys.signing.clone(),
    );
    mary.add_record(&alice, b"x", &["x"]).unwrap();
    assert!(refused(
        lab_cloud.ingest_bytes(&mary.finish().unwrap().to_bytes()),
        "forbidden"
    ));
    // A replayed batch: the cloud's own check, as a typed error.
    let replay = lab.finish().unwrap();
    lab_cloud.ingest_bytes(&replay.to_bytes()).unwrap();
    assert!(matches!(
        lab_cloud.ingest_bytes(&replay.to_bytes()),
        Err(Error::EpochOutOfOrder {
            expected: 4,
            found: 3
        })
    ));

    // A restart keeps accounts, keys, index, records, requests and grants.
    drop(server);
    let server = Server::start_on(dir, store, &[]);
    let doctor_cloud = server.connect("dr-grey", PASSWORD).unwrap();
    let mailbox = doctor_cloud
        .fetch_grants(&doctor_keys.public().encryption.fingerprint())
        .unwrap();
    assert_eq!(mailbox, vec![grant]);
    let admin = server.connect("admin", ADMIN_PASSWORD).unwrap();
    let view = admin.admin_view().unwrap();
    assert_eq!(view.requests.len(), 1);
    assert_eq!(view.requests[0].status, medvault::RequestStatus::Granted);
    assert_eq!(view.files.len(), 3);
    assert_eq!(
        search(&doctor_cloud, &mut doctor),
        vec![b"HbA1c 7.9 %".to_vec(), b"glucose 9.1 fasting".to_vec()]
    );

    // The log has a line per request, by route template: no password, no patient, no
    // keyword, no record id, no session.
    drop(server);
    let log = server_log(dir);
    assert!(
        log.contains(r#"route="/v1/records/{provider}/{record}""#)
            && log.contains(r#"route="/v1/search""#),
        "{log}"
    );
    for secret in [
        PASSWORD,
        ADMIN_PASSWORD,
        "+15550100",
        "diabetes",
        &sealed[0].id.to_string(),
        "Bearer",
        "authorization",
    ] {
        assert!(!log.contains(secret), "the log has {secret:?}:\n{log}");
    }
}

#[test]
fn every_route_but_health_accounts_and_login_needs_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let agent = server.raw_agent();
    let url = |path: &str| format!("{}{path}", server.url);
    let fp = "00".repeat(32);
    let id = "00".repeat(16);
    let gets = [
        "/v1/providers/city-lab/keys".to_owned(),
        "/v1/providers/city-lab/approved".to_owned(),
        format!("/v1/records/city-lab/{id}"),
        "/v1/manifest".to_owned(),
        format!("/v1/grants/{fp}"),
        "/v1/admin/view".to_owned(),
    ];
    let posts = [
        "/v1/logout".to_owned(),
        "/v1/providers/city-lab/keys".to_owned(),
        "/v1/rekey".to_owned(),
        "/v1/batches".to_owned(),
        "/v1/records".to_owned(),
        "/v1/search".to_owned(),
        "/v1/requests".to_owned(),
        format!("/v1/requests/{id}/decision"),
        "/v1/grants".to_owned(),
        "/v1/admin/merge".to_owned(),
    ];
    let check = |response: ureq::http::Response<ureq::Body>, what: &str| {
        assert_eq!(response.status().as_u16(), 401, "{what}");
        let body = response.into_body().read_to_string().unwrap();
        assert!(
            body.contains("\"error\":\"unauthorized\""),
            "{what}: {body}"
        );
    };
    for path in &gets {
        check(agent.get(url(path)).call().unwrap(), path);
        let forged = agent
            .get(url(path))
            .header("authorization", format!("Bearer {}", "ab".repeat(32)))
            .call()
            .unwrap();
        check(forged, path);
    }
    for path in &posts {
        check(agent.post(url(path)).send(&b"{}"[..]).unwrap(), path);
    }
    // Bodies that are not what the route takes: a 4xx with a JSON error, never 5xx.
    let bad_bodies: [(&str, &str, &[u8], u16); 4] = [
        ("/v1/accounts", "application/json", b"{not json", 400),
        (
            "/v1/accounts",
            "application/json",
            br#"{"account": 7}"#,
            422,
        ),
        ("/v1/accounts", "text/plain", br#"{"account": "x"}"#, 415),
        ("/v1/login", "application/json", b"\xff\xfe", 400),
    ];
    for (path, kind, body, status) in bad_bodies {
        let response = agent
            .post(url(path))
            .header("content-type", kind)
            .send(body)
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{path} {kind}");
        let text = response.into_body().read_to_string().unwrap();
        assert!(text.contains("\"error\":\"bad_json\""), "{path}: {text}");
    }
    let health = agent.get(url("/health")).call().unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let unknown = agent.get(url("/v1/nothing")).call().unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    // Plain HTTP on the TLS port gets no answer.
    let plain = ureq::get(server.url.replacen("https", "http", 1) + "/health").call();
    assert!(plain.is_err());
    // A client that trusts another CA refuses the server.
    let other_dir = tempfile::tempdir().unwrap();
    let stranger = Server::start(other_dir.path());
    assert!(refused(
        RemoteCloud::connect(&server.url, &stranger.ca, "admin", ADMIN_PASSWORD),
        "transport"
    ));
    // Failed logins are limited per account.
    for _ in 0..5 {
        assert!(refused(
            server.connect("admin", "wrong password!!"),
            "bad_login"
        ));
    }
    assert!(refused(
        server.connect("admin", ADMIN_PASSWORD),
        "too_many_failures"
    ));
}

/// Every route the router declares (from `server/src/api.rs`) as (method, path).
#[test]
fn the_openapi_document_lists_exactly_the_routes_and_each_is_served() {
    let document: serde_json::Value =
        serde_json::from_str(include_str!("../openapi.json")).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let routes = routes_in_source();
    assert!(routes.len() >= 19, "{routes:?}");
    assert_eq!(documented, routes, "openapi.json and the router differ");

    // Served as committed, and every documented operation is routed (anonymously it
    // is 401 or answered, never the fallback's 404 or a 405).
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let agent = server.raw_agent();
    let served = agent
        .get(format!("{}/openapi.json", server.url))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert_eq!(served, include_str!("../openapi.json"));
    for (method, path) in &routes {
        let concrete = path
            .replace("{id}", "city-lab")
            .replace("{provider}", "city-lab")
            .replace("{record}", &"00".repeat(16))
            .replace("{fingerprint}", &"00".repeat(32));
        let url = format!("{}{concrete}", server.url);
        let response = match method.as_str() {
            "get" => agent.get(url).call().unwrap(),
            _ => agent.post(url).send(&b"{}"[..]).unwrap(),
        };
        let status = response.status().as_u16();
        let body = response.into_body().read_to_string().unwrap();
        assert!(
            status != 405 && !body.contains("no_route"),
            "{method} {path}: {status} {body}"
        );
    }
}

/// Reads from `stream` until the server closes it (or `limit` passes); true if it
/// closed.
fn closed_within(stream: &mut impl std::io::Read, limit: std::time::Duration) -> bool {
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn slow_clients_are_cut_off_and_uploads_are_limited() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--idle-timeout", "1", "--max-uploads", "1"]);
    let address = server.url.trim_start_matches("https://").to_owned();
    let wait = std::time::Duration::from_secs(5);

    // A connection that never starts its TLS handshake.
    let mut silent = std::net::TcpStream::connect(&address).unwrap();
    silent
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    assert!(
        closed_within(&mut silent, wait),
        "a silent connection stays open"
    );

    // Slowloris: TLS done, headers started and never finished.
    // ring, as the server and ureq use (deprecated only for lacking post-quantum).
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for item in ureq::tls::parse_pem(&server.ca) {
        if let Ok(ureq::tls::PemItem::Certificate(cert)) = item {
            roots
                .add(rustls::pki_types::CertificateDer::from(cert.der().to_vec()))
                .unwrap();
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tcp = std::net::TcpStream::connect(&address).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let connection =
        rustls::ClientConnection::new(std::sync::Arc::new(config.clone()), name.clone()).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    tls.flush().unwrap();
    assert!(
        closed_within(&mut tls, wait),
        "half-sent headers keep the connection"
    );

    // A batch whose body stops after a few bytes: 408 once a piece is 6 × the idle
    // timeout late, and the connection's worker is free again.
    server.register("city-lab", Role::Provider, None);
    let mut login = server
        .raw_agent()
        .post(format!("{}/v1/login", server.url))
        .header("content-type", "application/json")
        .send(format!(
            r#"{{"account":"city-lab","password":"{PASSWORD}"}}"#
        ))
        .unwrap();
    let session: serde_json::Value =
        serde_json::from_str(&login.body_mut().read_to_string().unwrap()).unwrap();
    let token = session["token"].as_str().unwrap();
    let tcp = std::net::TcpStream::connect(&address).unwrap();
    let connection =
        rustls::ClientConnection::new(std::sync::Arc::new(config.clone()), name.clone()).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    write!(
        tls,
        "POST /v1/batches HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\nMVIB"
    )
    .unwrap();
    tls.flush().unwrap();
    let sent = std::time::Instant::now();
    tls.sock
        .set_read_timeout(Some(std::time::Duration::from_secs(12)))
        .unwrap();
    let mut answer = [0u8; 64];
    let n = std::io::Read::read(&mut tls, &mut answer).unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a stalled batch body got {answer:?} after {:?}",
        sent.elapsed()
    );
    assert!(sent.elapsed() >= std::time::Duration::from_secs(5));

    // One upload at a time: a second one while the first stalls is 503 busy, and the
    // stalled one is cut off without storing anything.
    let lab = server.connect("city-lab", PASSWORD).unwrap();
    let (release, stalled) = std::sync::mpsc::channel::<()>();
    struct Stalling(std::sync::mpsc::Receiver<()>, bool);
    impl std::io::Read for Stalling {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if !self.1 {
                self.1 = true;
                buf[..4].copy_from_slice(b"MVRC");
                return Ok(4);
            }
            // Longer than the server waits for a piece (6 × the idle timeout).
            let _ = self.0.recv_timeout(std::time::Duration::from_secs(8));
            Ok(0)
        }
    }
    let first = std::thread::spawn(move || {
        let mut reader = Stalling(stalled, false);
        lab.put_record_from(&mut reader)
    });
    // The first upload holds the one permit from when its request arrives until the
    // server gives up on it (6 s); until then every other upload is busy. (Retried
    // while the first request may not have arrived yet: a refused upload changes
    // nothing.)
    let second = server.connect("city-lab", PASSWORD).unwrap();
    let bytes = b"MVRC not really a record".to_vec();
    let started = std::time::Instant::now();
    let busy = loop {
        match second.put_record_from(&mut &bytes[..]) {
            Err(Error::Remote { code, .. }) if code == "busy" => break true,
            Err(Error::Remote { .. }) if started.elapsed() < wait => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => panic!("a second upload while the first stalls: {other:?}"),
        }
    };
    assert!(busy);
    let stalled_result = first.join().unwrap();
    drop(release);
    assert!(stalled_result.is_err(), "{stalled_result:?}");
    let admin = server.connect("admin", ADMIN_PASSWORD).unwrap();
    assert!(admin.admin_view().unwrap().files.is_empty());
    // The permit came back: the next upload is read (and refused for what it is).
    match second.put_record_from(&mut &bytes[..]) {
        Err(Error::Remote { code, .. }) => assert_ne!(code, "busy"),
        other => panic!("{other:?}"),
    }
}

/// A provider's notes in one request (`POST /v1/records/batch`): stored whole and
/// durable (they come back after a restart), or not at all when any of them is refused;
/// another provider cannot upload them, and garbage is a 4xx naming the problem.
#[test]
fn record_batches_are_stored_whole_or_not_at_all_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (lab_cloud, mut lab) = server.provider("city-lab", 5);
    let lab_id = lab.id().clone();
    let alice = PatientId::new("+15550100").unwrap();
    let notes: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            lab.add_record(&alice, format!("note {i}").as_bytes(), &["x"])
                .unwrap()
                .bytes
        })
        .collect();
    lab_cloud
        .ingest_bytes(&lab.finish().unwrap().to_bytes())
        .unwrap();
    let uncommitted = lab.add_record(&alice, b"later", &["x"]).unwrap().bytes;

    // One record no signed batch committed: the whole batch is refused.
    let mut with_forged = notes[..2].to_vec();
    with_forged.push(uncommitted);
    assert!(refused(
        lab_cloud.put_records(&as_slices(&with_forged)),
        "not_authentic"
    ));
    // Another provider cannot upload the lab's records.
    let (clinic_cloud, _) = server.provider("st-mary", 6);
    assert!(refused(
        clinic_cloud.put_records(&as_slices(&notes[..2])),
        "forbidden"
    ));
    let held = |cloud: &RemoteCloud, id| {
        let mut copy = Vec::new();
        cloud
            .record_to(&lab_id, id, &mut copy)
            .unwrap()
            .map(|_| copy)
    };
    let ids: Vec<medvault::RecordId> = notes
        .iter()
        .map(|n| medvault::RecordHeader::parse(n).unwrap().0.record_id())
        .collect();
    assert_eq!(
        held(&lab_cloud, ids[0]),
        None,
        "a refused batch left a record"
    );

    let stored = lab_cloud.put_records(&as_slices(&notes[..4])).unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|(p, id, size)| (p.clone(), *id, *size))
            .collect::<Vec<_>>(),
        (0..4)
            .map(|i| (lab_id.clone(), ids[i], notes[i].len() as u64))
            .collect::<Vec<_>>()
    );
    // Garbage and an empty body are refused with a JSON error; so is a batch again.
    let agent = server.raw_agent();
    let token = {
        let mut answer = agent
            .post(format!("{}/v1/login", server.url))
            .header("content-type", "application/json")
            .send(
                serde_json::to_vec(&serde_json::json!({
                    "account": "city-lab", "password": PASSWORD
                }))
                .unwrap(),
            )
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
        body["token"].as_str().unwrap().to_owned()
    };
    for body in [
        &b"garbage garbage"[..],
        b"",
        b"MVRB\x01\x00\x00\x00\x00\x09",
    ] {
        let mut answer = agent
            .post(format!("{}/v1/records/batch", server.url))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/octet-stream")
            .send(body)
            .unwrap();
        let status = answer.status().as_u16();
        let text = answer.body_mut().read_to_string().unwrap();
        assert_eq!(status, 400, "{body:?}: {text}");
        assert!(text.contains("\"error\""), "{text}");
    }
    assert!(lab_cloud.put_records(&as_slices(&notes[3..])).is_err());
    assert_eq!(held(&lab_cloud, ids[4]), None);

    // Acknowledged means durable: after SIGKILL and a restart every record of the batch
    // is there.
    drop(server);
    let server = Server::start(dir.path());
    let lab_cloud = server.connect("city-lab", PASSWORD).unwrap();
    for (id, note) in ids.iter().zip(&notes).take(4) {
        assert_eq!(held(&lab_cloud, *id).as_ref(), Some(note));
    }
}

fn as_slices(records: &[Vec<u8>]) -> Vec<&[u8]> {
    records.iter().map(Vec::as_slice).collect()
}
