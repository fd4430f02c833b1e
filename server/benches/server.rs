//! medvault-server against what users would otherwise compare it with, in one run
//! (`cargo bench -p medvault-server --bench server`; the figures go to stdout and to
//! `target/server-bench.md`):
//!
//! 1. 1 KiB sealed notes uploaded by 16 clients with keep-alive, through the server, and
//!    the same notes put into an in-process `Cloud` by 16 threads: one record per call
//!    (both fsync each record before acknowledging it), and in batches of 64 (a record
//!    pack, fsynced once per batch: `POST /v1/records/batch`, `Cloud::put_records`);
//! 2. a 100 MB sealed image up and down over loopback TLS, and the same bytes through
//!    `openssl s_client` → `openssl s_server` (up) and `curl` ← `openssl s_server -WWW`
//!    (down), which encrypt and move bytes and do nothing else;
//! 3. verified searches (10 results, 64 epochs) on a store of 10^6 index entries by 32
//!    concurrent clients through the server, and by 32 threads in process: p50 and p99.
//!
//! A load bench rather than criterion: each figure is a rate or a percentile over many
//! concurrent operations, and the comparisons must come from the same run.

#[path = "../../benches/common/keys.rs"]
mod keys;
#[path = "../../benches/common/store_fixture.rs"]
mod store_fixture;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use medvault::remote::Role;
use medvault::{
    Cloud, CloudService, MasterKey, PatientId, Provider, ProviderId, RecordId, RemoteCloud,
    SealedRecord, Sealer,
};

/// The server tests' helpers: a server on a free loopback port, accounts, identities.
#[path = "../tests/common/mod.rs"]
mod common;
use common::{PASSWORD, Server};

/// Registers `name` and logs in.
fn account(server: &Server, name: &str, role: Role, fingerprint: Option<String>) -> RemoteCloud {
    server.register(name, role, fingerprint);
    server.connect(name, PASSWORD).unwrap()
}

/// A server for the bench: up to 64 record uploads at once (more than its clients).
fn start(dir: &Path) -> Server {
    Server::start_with(dir, &["--max-uploads", "64"])
}

fn patient() -> PatientId {
    PatientId::new("+15550142").unwrap()
}

/// `clients` providers, each with `per_client` sealed 1 KiB notes committed by one
/// batch (returned, to be ingested before the notes are put).
fn sealed_notes(
    clients: usize,
    per_client: usize,
) -> Vec<(ProviderId, Vec<u8>, Vec<SealedRecord>)> {
    (0..clients)
        .map(|c| {
            let id = ProviderId::new(&format!("notes-{c}")).unwrap();
            let mut provider = Provider::new(
                id.clone(),
                MasterKey::from_bytes([c as u8 + 1; 32]),
                keys::signing(),
            );
            let notes = (0..per_client)
                .map(|n| {
                    let mut text =
                        format!("note {n} of client {c}: HbA1c 7.1 %, metformin. ").into_bytes();
                    text.resize(1024, b'.');
                    provider
                        .add_record(&patient(), &text, &["diabetes"])
                        .unwrap()
                })
                .collect();
            let batch = provider.finish().unwrap().to_bytes().to_vec();
            (id, batch, notes)
        })
        .collect()
}

/// Records per second of `put` over all notes, one thread per client, each call given
/// `per_call` of its notes.
fn upload_rate<C: Sync>(
    work: &[(ProviderId, Vec<u8>, Vec<SealedRecord>)],
    clouds: &[C],
    per_call: usize,
    put: impl Fn(&C, &[&[u8]]) + Sync,
) -> f64 {
    let barrier = Barrier::new(work.len() + 1);
    let total: usize = work.iter().map(|(_, _, notes)| notes.len()).sum();
    let started = std::thread::scope(|scope| {
        for ((_, _, notes), cloud) in work.iter().zip(clouds) {
            let (barrier, put) = (&barrier, &put);
            scope.spawn(move || {
                let notes: Vec<&[u8]> = notes.iter().map(|n| &n.bytes[..]).collect();
                barrier.wait();
                for call in notes.chunks(per_call) {
                    put(cloud, call);
                }
            });
        }
        barrier.wait();
        Instant::now()
    });
    total as f64 / started.elapsed().as_secs_f64()
}

/// Notes per batch in the batched rows.
const NOTES_PER_BATCH: usize = 64;

fn bench_uploads(out: &mut String) {
    let (clients, per_client) = (16, 2048);
    let work = sealed_notes(clients, per_client);
    for per_call in [1, NOTES_PER_BATCH] {
        // In process, on a fresh store.
        let dir = tempfile::tempdir().unwrap();
        let cloud = Cloud::open(dir.path().join("store")).unwrap();
        for (id, batch, _) in &work {
            cloud
                .register_provider(id.clone(), keys::identity().public())
                .unwrap();
            cloud.ingest_bytes(batch).unwrap();
        }
        let clouds: Vec<&Cloud> = vec![&cloud; clients];
        let local = upload_rate(&work, &clouds, per_call, |cloud, notes| {
            if let [note] = notes {
                cloud.put_record(note.to_vec()).unwrap();
            } else {
                cloud.put_records(notes).unwrap();
            }
        });
        drop(cloud);
        // Through a fresh server.
        let dir = tempfile::tempdir().unwrap();
        let server = start(dir.path());
        let sessions: Vec<RemoteCloud> = work
            .iter()
            .map(|(id, batch, _)| {
                let session = account(&server, id.as_str(), Role::Provider, None);
                session
                    .register_provider(id.clone(), keys::identity().public())
                    .unwrap();
                session.ingest_bytes(batch).unwrap();
                session
            })
            .collect();
        let remote = upload_rate(&work, &sessions, per_call, |session, notes| {
            if let [note] = notes {
                session.put_record_from(&mut &note[..]).unwrap();
            } else {
                session.put_records(notes).unwrap();
            }
        });
        let how = if per_call == 1 {
            "one per request".to_string()
        } else {
            format!("{per_call} per request")
        };
        let line = format!(
            "| 1 KiB notes, {how}, 16 clients, keep-alive | {remote:.0} records/s through the server | {local:.0} records/s in process | {:.2}x (target >= 0.5x and >= 20,000/s) |\n",
            remote / local
        );
        print!("{line}");
        out.push_str(&line);
    }
}

/// Waits until `port` accepts connections (using up one of the server's accepts, so
/// `openssl s_server` is given `-naccept 2`).
fn wait_for(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {port}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `openssl s_server` on `port` with the server's certificate (`dir/tls`), serving
/// files of `dir` with `-WWW`, ready after [`wait_for`].
fn s_server(dir: &Path, port: u16, extra: &[&str]) -> std::process::Child {
    Command::new("openssl")
        .current_dir(dir)
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-naccept",
            "2",
            "-quiet",
        ])
        .args(extra)
        .arg("-cert")
        .arg(dir.join("tls/cert.pem"))
        .arg("-key")
        .arg(dir.join("tls/key.pem"))
        .stdin(Stdio::piped()) // held open: s_server ends its connection at EOF on stdin
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn bench_image(out: &mut String) {
    const IMAGE: usize = 100_000_000;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let id = ProviderId::new("imaging").unwrap();
    let session = account(&server, "imaging", Role::Provider, None);
    session
        .register_provider(id.clone(), keys::identity().public())
        .unwrap();
    let mut provider = Provider::new(id.clone(), MasterKey::from_bytes([7; 32]), keys::signing());
    // Seal 100 MB of pseudo-random pixels as a stream to a file.
    let record = RecordId::generate().unwrap();
    let sealed_path = dir.path().join("image.sealed");
    {
        let file = std::io::BufWriter::new(std::fs::File::create(&sealed_path).unwrap());
        let mut sealer = Sealer::new(file, &provider.record_key(&patient(), record)).unwrap();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut piece = vec![0u8; 1 << 20];
        for _ in 0..IMAGE / piece.len() {
            for b in piece.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            sealer.write_all(&piece).unwrap();
        }
        sealer.finish().unwrap().flush().unwrap();
    }
    provider
        .commit_record(record, std::fs::File::open(&sealed_path).unwrap())
        .unwrap();
    provider.index(&patient(), record, &["dicom"]).unwrap();
    let batch = provider.finish().unwrap().to_bytes().to_vec();
    session.ingest_bytes(&batch).unwrap();
    let size = std::fs::metadata(&sealed_path).unwrap().len() as f64;

    let started = Instant::now();
    let mut file =
        std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&sealed_path).unwrap());
    session.put_record_from(&mut file).unwrap();
    let up = size / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let got = session
        .record_to(&id, record, &mut std::io::sink())
        .unwrap();
    let down = size / started.elapsed().as_secs_f64();
    assert_eq!(got, Some(size as u64));
    // What the store alone costs: the same record into an in-process cloud.
    let local_dir = tempfile::tempdir().unwrap();
    let local = Cloud::open(local_dir.path()).unwrap();
    local
        .register_provider(id.clone(), keys::identity().public())
        .unwrap();
    local.ingest_bytes(&batch).unwrap();
    let started = Instant::now();
    let mut file =
        std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&sealed_path).unwrap());
    local.put_record_from(&mut file).unwrap();
    let local_up = size / started.elapsed().as_secs_f64();
    drop(local);

    // The same bytes through openssl and curl, with the server's certificate.
    let cert = dir.path().join("tls/cert.pem");
    let port = free_port();
    let mut sink = s_server(dir.path(), port, &[]);
    wait_for(port);
    let started = Instant::now();
    let sent = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-quiet",
            "-no_ign_eof",
            "-nocommands",
        ])
        .stdin(std::fs::File::open(&sealed_path).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    sink.wait().unwrap();
    let openssl_up = size / started.elapsed().as_secs_f64();
    assert!(
        sent.status.success(),
        "openssl s_client: {}",
        String::from_utf8_lossy(&sent.stderr)
    );

    let port = free_port();
    let mut www = s_server(dir.path(), port, &["-WWW"]);
    wait_for(port);
    let started = Instant::now();
    let fetched = Command::new("curl")
        .args(["--silent", "--fail", "--output", "/dev/null", "--cacert"])
        .arg(&cert)
        .arg(format!("https://127.0.0.1:{port}/image.sealed"))
        .status()
        .unwrap();
    let curl_down = size / started.elapsed().as_secs_f64();
    assert!(fetched.success());
    let _ = www.kill();
    let _ = www.wait();

    let mb = |rate: f64| rate / 1e6;
    let lines = format!(
        "| 100 MB image up | {:.0} MB/s through the server (stored, digest checked, fsynced; in process {:.0} MB/s) | {:.0} MB/s openssl s_client -> s_server | {:.2}x (target >= 0.5x) |\n\
         | 100 MB image down | {:.0} MB/s through the server | {:.0} MB/s curl <- openssl s_server -WWW | {:.2}x (target >= 0.5x) |\n",
        mb(up),
        mb(local_up),
        mb(openssl_up),
        up / openssl_up,
        mb(down),
        mb(curl_down),
        down / curl_down
    );
    print!("{lines}");
    out.push_str(&lines);
}

fn percentiles(mut latencies: Vec<Duration>) -> (Duration, Duration) {
    latencies.sort();
    let at = |p: usize| latencies[(latencies.len() - 1) * p / 100];
    (at(50), at(99))
}

/// Runs `search` from `clients` threads for `seconds`; every latency.
fn concurrent_searches(
    clients: usize,
    seconds: u64,
    search: impl Fn(usize) + Sync,
) -> Vec<Duration> {
    let until = Instant::now() + Duration::from_secs(seconds);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let search = &search;
                scope.spawn(move || {
                    let mut times = Vec::new();
                    while Instant::now() < until {
                        let started = Instant::now();
                        search(c);
                        times.push(started.elapsed());
                    }
                    times
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn bench_search(out: &mut String) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let fixture = store_fixture::build(&store, 1_000_000, 64, 10, 16, |_| {});
    let entries: u64 = fixture.cloud.manifest().segments.iter().sum();
    let prepared = fixture.needle_query();
    let query = prepared.query().to_bytes();
    let local = concurrent_searches(32, 10, |_| {
        let response = fixture.cloud.search_bytes(&query).unwrap();
        let results = fixture.requester.open(&prepared, &response).unwrap();
        assert_eq!(results.record_count(), 10);
    });
    let store_fixture::StoreFixture {
        cloud, requester, ..
    } = fixture;
    drop(cloud);
    // The server on the same store.
    let server = start(dir.path());
    let fingerprint = medvault::remote::hex(&keys::identity().public().encryption.fingerprint());
    account(&server, "bench-dr", Role::Requester, Some(fingerprint));
    let sessions: Vec<RemoteCloud> = (0..32)
        .map(|_| RemoteCloud::connect(&server.url, &server.ca, "bench-dr", PASSWORD).unwrap())
        .collect();
    let remote = concurrent_searches(32, 10, |c| {
        let response = sessions[c].search_bytes(&query).unwrap();
        let results = requester.open(&prepared, &response).unwrap();
        assert_eq!(results.record_count(), 10);
    });
    let (count_local, count_remote) = (local.len(), remote.len());
    let ((p50l, p99l), (p50r, p99r)) = (percentiles(local), percentiles(remote));
    let line = format!(
        "| search, {entries} entries, 10 results in 64 epochs, 32 clients, verified | p50 {p50r:.2?}, p99 {p99r:.2?} through the server ({count_remote} in 10 s) | p50 {p50l:.2?}, p99 {p99l:.2?} in process ({count_local} in 10 s) | p50 {:.2}x |\n",
        p50r.as_secs_f64() / p50l.as_secs_f64()
    );
    print!("{line}");
    out.push_str(&line);
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks parts.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let mut out =
        String::from("| what | medvault-server | compared with | ratio |\n|---|---|---|---|\n");
    print!("{out}");
    if wanted("uploads") {
        bench_uploads(&mut out);
    }
    if wanted("image") {
        bench_image(&mut out);
    }
    if wanted("search") {
        bench_search(&mut out);
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/server-bench.md");
    std::fs::write(&target, &out).unwrap();
    println!("written to {}", target.display());
}
