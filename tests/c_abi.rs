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
use std::process::{Command, Output};
use std::sync::OnceLock;

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory of the `libmedvault.a` and `libmedvault.so` this test run was built
/// with: `target/<profile>/deps/`, where cargo writes them (without a hash in their
/// names) beside the test executables; `target/<profile>/` if a `cargo build` put them
/// only there.
fn library_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        let deps = exe.parent().expect("test executables live in a directory");
        let candidates = [Some(deps), deps.parent()];
        let has_both = |dir: &&Path| {
            ["libmedvault.a", "libmedvault.so"]
                .iter()
                .all(|lib| dir.join(lib).exists())
        };
        candidates
            .into_iter()
            .flatten()
            .find(has_both)
            .unwrap_or_else(|| {
                panic!(
                    "libmedvault.a and libmedvault.so are missing from {} and its parent: \
                     cargo builds them with the tests",
                    deps.display()
                )
            })
            .to_path_buf()
    })
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Link {
    Static,
    Shared,
    /// Static, with AddressSanitizer and UndefinedBehaviorSanitizer.
    Sanitized,
}

/// Compiles `sources` (C, or C++ if the first ends in .cpp) into an executable.
fn compile(name: &str, sources: &[&str], link: Link) -> PathBuf {
    let lib = library_dir();
    let cpp = sources[0].ends_with(".cpp");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("c-abi-bin")
        .join(format!("{name}-{link:?}").to_lowercase());
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut cmd = Command::new(if cpp { "g++" } else { "gcc" });
    cmd.current_dir(crate_dir())
        .args(if cpp { ["-std=c++20"] } else { ["-std=c11"] })
        .args([
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-g",
            "-Iinclude",
        ])
        .args(sources)
        .arg("-o")
        .arg(&out);
    match link {
        Link::Static => {
            cmd.arg(lib.join("libmedvault.a"));
        }
        Link::Sanitized => {
            cmd.args(["-fsanitize=address,undefined", "-fno-omit-frame-pointer"])
                .arg(lib.join("libmedvault.a"));
        }
        Link::Shared => {
            cmd.arg("-L")
                .arg(lib)
                .arg("-lmedvault")
                .arg(format!("-Wl,-rpath,{}", lib.display()));
        }
    }
    cmd.args(["-lpthread", "-ldl", "-lm"]);
    let output = cmd.output().expect("cannot run gcc/g++");
    assert!(
        output.status.success(),
        "compiling {name} ({link:?}) failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// Runs `exe` with `args`, directly or under valgrind; panics with its output unless it
/// exits 0.
fn run(exe: &Path, args: &[&Path], valgrind: bool) -> String {
    let mut cmd = if valgrind {
        let mut c = Command::new("valgrind");
        c.args([
            "--quiet",
            "--error-exitcode=1",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect,possible",
        ])
        .arg(exe);
        c
    } else {
        Command::new(exe)
    };
    // `cargo test` puts `target/<profile>` on LD_LIBRARY_PATH, which the loader searches
    // before the executable's RUNPATH: a `libmedvault.so` left there by an earlier
    // `cargo build` would be the one loaded, not the one this run built.
    cmd.args(args)
        .env("LD_LIBRARY_PATH", library_dir())
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1");
    let output: Output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (valgrind {valgrind}): {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} (valgrind {valgrind}) failed with {}:\n{stdout}\n{}",
        exe.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

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
