//! Operating the server: Prometheus metrics at `/metrics` and `--merge-interval`.

mod common;
use common::*;

use medvault::{CloudService, PatientId};

/// The value of the sample `line_start` (name and labels) in a metrics page.
fn sample(metrics: &str, line_start: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(line_start)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

#[test]
fn metrics_count_requests_by_route_and_the_merge_interval_merges() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--merge-interval", "1"]);
    let agent = server.raw_agent();
    let scrape = || {
        let mut response = agent.get(format!("{}/metrics", server.url)).call().unwrap();
        assert_eq!(response.status(), 200);
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        response.body_mut().read_to_string().unwrap()
    };

    let (lab_cloud, mut lab) = server.provider("city-lab", 4);
    let alice = PatientId::new("+15550100").unwrap();
    let mut record_bytes = 0;
    for note in ["HbA1c 7.9 %", "glucose 9.1", "lipids normal"] {
        let sealed = lab
            .add_record(&alice, note.as_bytes(), &["diabetes", "lab"])
            .unwrap();
        lab_cloud
            .ingest_bytes(&lab.finish().unwrap().to_bytes())
            .unwrap();
        lab_cloud.put_record_from(&mut &sealed.bytes[..]).unwrap();
        record_bytes += sealed.bytes.len();
    }

    // Three batches are three segments until the interval merges them into one.
    let started = std::time::Instant::now();
    let metrics = loop {
        let metrics = scrape();
        if sample(&metrics, "medvault_merges_total") >= Some(1.0)
            && sample(&metrics, "medvault_index_segments") == Some(1.0)
        {
            break metrics;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no merge within 30 s:\n{metrics}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(sample(&metrics, "medvault_merge_failures_total"), Some(0.0));
    assert_eq!(sample(&metrics, "medvault_records"), Some(3.0));
    assert_eq!(
        sample(&metrics, "medvault_record_bytes"),
        Some(record_bytes as f64)
    );
    // Two keywords per record, padded per batch: at least six entries.
    assert!(
        sample(&metrics, "medvault_index_entries") >= Some(6.0),
        "{metrics}"
    );
    let batches = r#"medvault_requests_total{method="POST",route="/v1/batches",status="204"}"#;
    assert_eq!(sample(&metrics, batches), Some(3.0), "{metrics}");
    let uploads = r#"{method="POST",route="/v1/records""#;
    assert_eq!(
        sample(
            &metrics,
            &format!("medvault_request_duration_seconds_count{uploads}}}")
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("medvault_request_duration_seconds_bucket{uploads},le=\"+Inf\"}}")
        ),
        Some(3.0)
    );
    // Route templates only: no provider, no record id, no patient.
    for name in ["city-lab", "+15550100"] {
        assert!(!metrics.contains(name), "{metrics}");
    }
    // Every sample line parses as `name{labels} value`.
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

/// The demo example (`cargo test` builds the library's examples beside the test
/// binaries, in `target/<profile>/examples/`).
fn demo() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().unwrap().parent().unwrap();
    let path = profile
        .join("examples")
        .join(format!("demo{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} not built: run the workspace's tests (`cargo test --workspace --features lab,postgres`)",
        path.display()
    );
    path
}

#[test]
fn the_demo_runs_its_whole_story_against_the_server_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let state = dir.path().join("demo-state");
    let ca = dir.path().join("tls/cert.pem");
    let admin = dir.path().join("admin-password");
    let run = |query: &str| {
        let out = std::process::Command::new(demo())
            .args(["--patients", "4", "--epochs", "2", "--query", query])
            .args(["--cloud", &server.url, "--ca"])
            .arg(&ca)
            .arg("--admin-password-file")
            .arg(&admin)
            .arg("--store")
            .arg(&state)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let first = run("diabetes AND metformin");
    for line in [
        "1. The cloud: medvault-server at https://127.0.0.1:",
        "each logged in to an account of their own",
        "every owner approved: the doctor holds 4 sealed grants",
        "checked: every owner's signed log, every posting list proven epoch by epoch",
        "finds it: false, opens it: false",
    ] {
        assert!(first.contains(line), "missing {line:?} in:\n{first}");
    }
    // The server keeps the store; the demo's directory has keys and passwords only.
    assert!(!state.join("records").exists() && state.join("demo-accounts").exists());
    let second = run("diabetes OR hypertension");
    assert!(
        second.contains("(resumed)") && second.contains("Upload: already in the store"),
        "{second}"
    );
    assert!(
        second.contains("exactly the records a plaintext index gives"),
        "{second}"
    );
}

#[test]
fn sigterm_lets_an_upload_in_flight_finish_then_the_server_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let (lab_cloud, mut lab) = server.provider("city-lab", 6);
    let lab_id = lab.id().clone();
    let alice = PatientId::new("+15550100").unwrap();
    let scan = vec![7u8; 4 << 20];
    let sealed = lab.add_record(&alice, &scan, &["radiology"]).unwrap();
    lab_cloud
        .ingest_bytes(&lab.finish().unwrap().to_bytes())
        .unwrap();

    // An upload that takes about two seconds (64 KiB every 30 ms), SIGTERM in its
    // middle: it is acknowledged, and the server then exits on its own, cleanly.
    struct Slow<'a>(&'a [u8], Option<std::sync::mpsc::Sender<()>>);
    impl std::io::Read for Slow<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if let Some(started) = self.1.take() {
                let _ = started.send(());
            }
            std::thread::sleep(std::time::Duration::from_millis(30));
            let n = buf.len().min(64 << 10).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let (started, uploading) = std::sync::mpsc::channel();
    let bytes = sealed.bytes.clone();
    let upload =
        std::thread::spawn(move || lab_cloud.put_record_from(&mut Slow(&bytes, Some(started))));
    uploading.recv().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let terminated = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let stored = upload.join().unwrap().unwrap();
    assert_eq!(stored.2, sealed.bytes.len() as u64);
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    // New connections are refused once it has gone; after a restart the record is there.
    assert!(server.connect("city-lab", PASSWORD).is_err());
    drop(server);
    let server = Server::start(dir.path());
    let lab_cloud = server.connect("city-lab", PASSWORD).unwrap();
    let mut copy = Vec::new();
    lab_cloud.record_to(&lab_id, sealed.id, &mut copy).unwrap();
    assert!(copy == sealed.bytes);
}
