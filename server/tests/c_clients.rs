//! The C and C++ EHR examples (`examples/c/ehr_demo.c`, `examples/cpp/ehr_demo.cpp`)
//! against a real `medvault-server`: the same programs the C ABI tests run on a local
//! store, given `--cloud URL CA.pem ADMIN_PASSWORD_FILE`, so each party registers, logs
//! in and works over HTTPS. Built against the static and the shared library and with
//! AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer. (Not under valgrind:
//! memcheck cannot follow ring's assembly, and flags the TLS records it encrypts as
//! uninitialised; the local runs in `tests/c_abi.rs` keep valgrind.)

#[path = "../../tests/common/c_build.rs"]
mod c_build;
mod common;

use std::path::Path;

use c_build::{Link, compile, crate_dir, run};
use common::Server;

fn run_against_server(sources: &[&str], name: &str) {
    for link in [Link::Static, Link::Shared, Link::Sanitized] {
        // A fresh server each time: the example registers its accounts.
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path());
        let exe = compile(name, sources, link);
        let (ca, admin) = (
            dir.path().join("tls/cert.pem"),
            dir.path().join("admin-password"),
        );
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let args: [&Path; 7] = [
            Path::new("--cloud"),
            Path::new(&server.url),
            &ca,
            &admin,
            &work,
            &crate_dir().join("tests/data/dicom/SC_rgb_jpeg_dcmd.dcm"),
            &crate_dir().join("tests/data/keys"),
        ];
        let out = run(&exe, &args, false);
        for line in [
            "hospital: 3 notes and 1 image sealed",
            "cloud: ingested 2 batches and merged them",
            "admin: request from Dr. Ada Okafor to st-mary-hospital",
            "doctor: accepted 1 grant(s)",
            "Start metformin 500 mg.",
            "diabetes controlled on metformin 1000 mg.",
            "doctor: diabetes AND metformin found 2 records",
            "identical to the original",
            "done",
        ] {
            assert!(out.contains(line), "missing {line:?} in:\n{out}");
        }
        assert!(!out.contains("Cardiology"), "{out}");
        // Nothing was kept locally: the store is the server's.
        assert!(!work.join("cloud").exists(), "{out}");
        drop(server);
    }
}

#[test]
fn the_c_example_runs_against_the_server() {
    run_against_server(&["examples/c/ehr_demo.c"], "ehr_demo_c_remote");
}

#[test]
fn the_cpp_example_runs_against_the_server() {
    run_against_server(&["examples/cpp/ehr_demo.cpp"], "ehr_demo_cpp_remote");
}
