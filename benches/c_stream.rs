//! The C ABI's streaming calls (`medvault_sealer_*`, `medvault_opener_*`) beside its
//! one-shot `medvault_seal` / `medvault_open`, from a C program (`benches/c/
//! stream_timing.c`) compiled against the `libmedvault.a` this bench built. The program
//! times its own loop (the process start is not in the figures) and reports it to
//! criterion. Images are fed in 64 KiB pieces, as a C program reading a file would.
//!
//! `cargo bench --bench c_stream`

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

#[path = "../tests/common/c_build.rs"]
#[allow(
    dead_code,
    reason = "shared with the tests; the bench uses only `compile`"
)]
mod c_build;

/// Runs the timing program; returns the time it measured.
fn timed(exe: &Path, mode: &str, size: usize, iters: u64) -> Duration {
    let output = Command::new(exe)
        .args([
            mode,
            &size.to_string(),
            &iters.to_string(),
            &(64 << 10).to_string(),
        ])
        .output()
        .expect("runs the C timing program");
    assert!(
        output.status.success(),
        "{mode} {size}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let nanos: u64 = stdout
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("the program prints nanoseconds");
    Duration::from_nanos(nanos)
}

fn bench_c_stream(c: &mut Criterion) {
    let exe = c_build::compile(
        "stream-timing",
        &["benches/c/stream_timing.c"],
        c_build::Link::Static,
    );
    let mut group = c.benchmark_group("c-stream");
    for (size, name) in [(64usize << 10, "64KiB"), (64 << 20, "64MiB")] {
        group.throughput(Throughput::Bytes(size as u64));
        if size >= 64 << 20 {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(10));
        }
        for mode in ["seal", "stream-seal", "open", "stream-open"] {
            group.bench_function(BenchmarkId::new(mode, name), |b| {
                b.iter_custom(|iters| timed(&exe, mode, size, iters))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_c_stream);
criterion_main!(benches);
