//! Compiling and running C and C++ programs against the libmedvault this `cargo test`
//! built: shared by the C ABI tests (`tests/c_abi.rs`) and the server's C client tests
//! (`server/tests/c_clients.rs`), which include it by path.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The library crate's directory (sources and `include/` are relative to it): the
/// including package's directory or the nearest one above it with `include/medvault.h`.
pub fn crate_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .find(|dir| dir.join("include/medvault.h").exists())
            .expect("include/medvault.h above the package's directory")
            .to_path_buf()
    })
}

/// The directory of the `libmedvault.a` and `libmedvault.so` this test run was built
/// with: `target/<profile>/deps/`, where cargo writes them (without a hash in their
/// names) beside the test executables; `target/<profile>/` if a `cargo build` put them
/// only there.
pub fn library_dir() -> &'static Path {
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
pub enum Link {
    Static,
    Shared,
    /// Static, with AddressSanitizer and UndefinedBehaviorSanitizer.
    Sanitized,
}

/// Compiles `sources` (C, or C++ if the first ends in .cpp) into an executable.
pub fn compile(name: &str, sources: &[&str], link: Link) -> PathBuf {
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
pub fn run(exe: &Path, args: &[&Path], valgrind: bool) -> String {
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
