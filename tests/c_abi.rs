//! The C ABI from real C and C++ programs: the examples, the misuse tests and the
//! thread tests are compiled with gcc/g++ (`-Wall -Wextra -Werror`) against the static
//! and the shared library, run, run again under valgrind (no errors, no leaks), and
//! built again with `-fsanitize=address,undefined`.
//!
//! The libraries are the ones `cargo test` has just built: it builds the library with
//! every crate type `Cargo.toml` declares (rlib, cdylib, staticlib) before running any
//! test, into `target/<profile>/deps/`, beside this test's executable. Needs gcc, g++
//! and valgrind (present on the project's machines; `.ci/run` installs them if missing).

use std::path::{Path, PathBuf};

#[path = "common/c_build.rs"]
mod c_build;
use c_build::{Link, compile, crate_dir, run};

fn image() -> PathBuf {
    crate_dir().join("tests/data/dicom/SC_rgb_jpeg_dcmd.dcm")
}

fn keys() -> PathBuf {
    crate_dir().join("tests/data/keys")
}

/// The lines the EHR example must print: the query's two records and the image.
fn check_demo_output(out: &str) {
    for line in [
        "hospital: 3 notes and 1 image sealed",
        "cloud: ingested 2 batches and merged them",
        "admin: request from Dr. Ada Okafor to st-mary-hospital",
        "hospital: Dr. Ada Okafor asks for patient +15550100",
        "doctor: accepted 1 grant(s)",
        "Start metformin 500 mg.",
        "diabetes controlled on metformin 1000 mg.",
        "doctor: diabetes AND metformin found 2 records",
        "identical to the original",
        "hospital: streamed the image back in 5000-byte pieces: 197506 bytes, identical",
        "done",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(
        !out.contains("Cardiology"),
        "a non-matching record was returned:\n{out}"
    );
}

fn run_demo(sources: &[&str], name: &str) {
    for link in [Link::Static, Link::Shared, Link::Sanitized] {
        let exe = compile(name, sources, link);
        let valgrind_runs: &[bool] = if link == Link::Shared {
            &[false, true]
        } else {
            &[false]
        };
        for &valgrind in valgrind_runs {
            let work = tempfile::tempdir().unwrap();
            let out = run(&exe, &[work.path(), &image(), &keys()], valgrind);
            check_demo_output(&out);
        }
    }
}

#[test]
fn the_c_example_runs_clean_static_shared_valgrind_and_sanitized() {
    run_demo(&["examples/c/ehr_demo.c"], "ehr_demo_c");
}

#[test]
fn the_cpp_example_runs_clean_static_shared_valgrind_and_sanitized() {
    run_demo(&["examples/cpp/ehr_demo.cpp"], "ehr_demo_cpp");
}

#[test]
fn misuse_gets_documented_statuses_and_leaks_nothing() {
    for link in [Link::Static, Link::Sanitized] {
        let exe = compile("misuse", &["tests/c/misuse.c"], link);
        let work = tempfile::tempdir().unwrap();
        let out = run(&exe, &[work.path(), &keys()], link == Link::Static);
        assert!(out.contains("misuse: all checks passed"), "{out}");
    }
}

#[test]
fn threads_use_separate_and_shared_handles() {
    for link in [Link::Shared, Link::Sanitized] {
        let exe = compile("threads", &["tests/c/threads.c"], link);
        let work = tempfile::tempdir().unwrap();
        let out = run(&exe, &[work.path(), &keys()], link == Link::Shared);
        assert!(out.contains("threads: all checks passed"), "{out}");
    }
}

/// The misuse test calls every function the header declares, so a new export cannot
/// skip its NULL and bad-input checks.
#[test]
fn the_misuse_test_covers_every_exported_function() {
    let header = std::fs::read_to_string(crate_dir().join("include/medvault.h")).unwrap();
    let misuse = std::fs::read_to_string(crate_dir().join("tests/c/misuse.c")).unwrap();
    let mut exported = 0;
    for line in header
        .lines()
        .filter(|l| !l.starts_with("//") && !l.starts_with(' '))
    {
        let Some(open) = line.find('(') else { continue };
        let Some(name) = line[..open].rsplit([' ', '*']).next() else {
            continue;
        };
        if !name.starts_with("medvault_") {
            continue;
        }
        exported += 1;
        assert!(
            misuse.contains(&format!("{name}(")),
            "tests/c/misuse.c never calls {name}"
        );
    }
    assert!(exported > 80, "found only {exported} exported functions");
}

/// The README's C quick start compiles, runs clean under the sanitizers, and prints the
/// note it sealed and opened.
#[test]
fn the_readme_c_quick_start_works() {
    let readme = std::fs::read_to_string(crate_dir().join("README.md")).unwrap();
    let start = readme.find("```c\n").expect("README has a ```c block") + 5;
    let len = readme[start..].find("```").unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-abi-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("readme_quick_start.c");
    std::fs::write(&source, &readme[start..start + len]).unwrap();
    let exe = compile(
        "readme_quick_start",
        &[source.to_str().unwrap()],
        Link::Sanitized,
    );
    assert_eq!(run(&exe, &[], false), "HbA1c 7.9 %\n");
}
