//! The README's first command and the tutorial example run end to end: small sizes,
//! exit codes and the key lines of their output. `cargo test` builds the examples next
//! to the test binaries (`target/<profile>/examples/`).

use std::path::PathBuf;
use std::process::{Command, Output};

fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let profile = deps.parent().unwrap().parent().unwrap();
    let path = profile
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} not built", path.display());
    path
}

fn run(name: &str, args: &[&str]) -> (Output, String) {
    let out = Command::new(example(name)).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

#[test]
fn the_demo_runs_the_whole_system_and_checks_its_answer() {
    let (out, stdout) = run("demo", &["--patients", "6", "--epochs", "2", "--seed", "5"]);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "1. The cloud: a directory store",
        "2. Data owners: st-mary-hospital, city-lab, corner-pharmacy, patient-maria",
        "4. The cloud admin's view: 4 pending requests",
        "every owner approved: the doctor holds 4 sealed grants",
        "5. The doctor's query \"diabetes AND metformin\"",
        "6. What the cloud saw:",
        "the cloud checked every signature and record digest",
        "checked: every owner's signed log, every posting list proven epoch by epoch against what its owner signed, every record proven to be what its owner committed, exactly the records a plaintext index gives",
        "finds it: false, opens it: false",
        "Timing:",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    // Maria's diabetes and metformin records come from several owners.
    for owner in ["st-mary-hospital —", "corner-pharmacy —", "patient-maria —"] {
        let count = stdout
            .lines()
            .find(|l| l.contains(owner))
            .unwrap_or_else(|| panic!("no {owner} line in:\n{stdout}"));
        assert!(!count.contains("— 0 record"), "{count}");
    }
}

#[test]
fn the_demo_resumes_a_kept_store_and_takes_other_queries() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("cloud");
    let store = store.to_str().unwrap();
    let args = ["--patients", "4", "--epochs", "2", "--store", store];
    let (first, stdout) = run("demo", &args);
    assert!(first.status.success(), "{stdout}");
    assert!(!stdout.contains("(resumed)"));
    let (second, stdout) = run(
        "demo",
        &[&args[..], &["--query", "diabetes OR hypertension"]].concat(),
    );
    assert!(
        second.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(stdout.contains("(resumed)") && stdout.contains("Upload: already in the store"));
    assert!(
        stdout.contains("every record proven to be what its owner committed, exactly the records")
    );
}

#[test]
fn the_demo_refuses_bad_arguments() {
    for args in [
        &["--patients", "many"][..],
        &["--query", "a AND b OR c"],
        &["--frobnicate"],
        &["--cloud", "https://127.0.0.1:1"],
        &["--cloud", "https://127.0.0.1:1", "--ca", "ca.pem"],
    ] {
        let (out, _) = run("demo", args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    }
    let (help, stdout) = run("demo", &["--help"]);
    assert!(help.status.success() && stdout.contains("--patients N"));
}

#[test]
fn the_demo_names_the_file_it_could_not_use() {
    // A store under a regular file, and DICOM samples that are not where it is told.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    let store = file.join("store");
    let (out, _) = run("demo", &["--store", store.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("could not create the store directory")
            && stderr.contains(store.to_str().unwrap()),
        "{stderr}"
    );
    let images = dir.path().join("no-images-here");
    let (out, _) = run("demo", &["--images", images.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("could not open the DICOM sample") && stderr.contains("no-images-here"),
        "{stderr}"
    );
}

#[test]
fn owner_and_user_follows_the_papers_flowcharts() {
    let dir = tempfile::tempdir().unwrap();
    let save = dir.path().join("saved");
    let (out, stdout) = run(
        "owner_and_user",
        &[
            "--keyword",
            "metformin",
            "--save-to",
            save.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "DataOwner 3. uploaded",
        "of ciphertext",
        "opening it fails",
        "DataUser  4. received and opened the sealed grant",
        "The saved file is identical",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    let saved: Vec<_> = std::fs::read_dir(&save).unwrap().collect();
    assert_eq!(saved.len(), 1);
}

/// The demo on a PostgreSQL store (`--store postgresql://…`, the parties' keys in
/// `--keys`): the whole story, then a second run that resumes the database.
#[cfg(feature = "postgres")]
#[test]
fn the_demo_runs_on_a_postgresql_store_and_resumes_it() {
    #[path = "common/postgres.rs"]
    mod pg;
    let url = pg::url_of(&pg::shared().fresh_database());
    let keys = tempfile::tempdir().unwrap();
    let keys = keys.path().to_str().unwrap();
    let args = [
        "--store",
        &url,
        "--keys",
        keys,
        "--patients",
        "6",
        "--epochs",
        "2",
    ];
    let (out, stdout) = run("demo", &args);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1. The cloud: a PostgreSQL store; the parties' keys in"));
    assert!(stdout.contains("exactly the records a plaintext index gives"));
    assert!(!stdout.contains(&url), "the URL is never printed");
    let (out, stdout) = run("demo", &args);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("1. The cloud: a PostgreSQL store (resumed)"));
    assert!(stdout.contains("3. Upload: already in the store, skipped"));
}

/// The leakage report runs end to end on a small hospital and writes both files.
#[test]
fn the_leakage_report_writes_its_tables_and_plot() {
    let out_dir = tempfile::tempdir().unwrap();
    let (out, stdout) = run(
        "leakage_report",
        &[
            "--patients",
            "150",
            "--queries",
            "150",
            "--out",
            out_dir.path().to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let markdown = std::fs::read_to_string(out_dir.path().join("leakage.md")).unwrap();
    for row in [
        "| none |",
        "| power-of-two padding |",
        "| 8 keyword buckets |",
        "| patient-wide answers |",
        "| 50 % known |",
        "## The epoch-pattern attack",
        "| epoch pattern | in batches of 4 | a day |",
        "| count | each with 3 dummy searches | a day |",
        "asked of the hospital alone",
    ] {
        assert!(markdown.contains(row), "missing {row:?} in:\n{markdown}");
    }
    let svg = std::fs::read_to_string(out_dir.path().join("leakage.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("patient-wide answers"));
    let (out, _) = run("leakage_report", &["--patients", "0"]);
    assert_eq!(out.status.code(), Some(2), "bad arguments are refused");
}
