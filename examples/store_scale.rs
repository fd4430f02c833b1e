//! Builds a directory store of 10^8 index entries (8.4 GB of segments) on this machine,
//! merges it, reopens it, and measures what the store benchmark measures at 10^6 and
//! 10^7: ingest rate, merge throughput, search latency p50 / p99, and memory.
//!
//! ```text
//! cargo run --release --example store_scale -- [--entries N] [--epochs E] [--dir DIR]
//! ```
//!
//! It needs about twice the segment size free on disk while merging. See the README's
//! performance section for a run.

use std::time::Instant;

#[path = "../benches/common/keys.rs"]
mod keys;
#[path = "../benches/common/store_fixture.rs"]
mod store_fixture;

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let mut entries: u64 = 100_000_000;
    let mut epochs: u32 = 256;
    let mut merge_every: u32 = 64;
    let mut dir: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&arg));
        match arg.as_str() {
            "--entries" => entries = value().parse().unwrap_or_else(|_| usage("--entries")),
            "--epochs" => epochs = value().parse().unwrap_or_else(|_| usage("--epochs")),
            "--merge-every" => {
                merge_every = value().parse().unwrap_or_else(|_| usage("--merge-every"))
            }
            "--dir" => dir = Some(value().into()),
            _ => usage(&arg),
        }
    }
    let parent = dir.unwrap_or_else(|| std::path::PathBuf::from("."));
    if let Err(e) = std::fs::create_dir_all(&parent) {
        eprintln!("store_scale: could not create {}: {e}", parent.display());
        std::process::exit(2);
    }
    let scratch = match tempfile::tempdir_in(&parent) {
        Ok(scratch) => scratch,
        Err(e) => {
            eprintln!(
                "store_scale: could not make a scratch directory in {}: {e}",
                parent.display()
            );
            std::process::exit(2);
        }
    };
    let gb = entries as f64 * medvault::IndexBatch::PAIR_LEN as f64 / 1e9;
    println!(
        "building {entries} entries ({gb:.1} GB of pairs) in {epochs} epochs, merging every {merge_every}, in {}",
        scratch.path().display()
    );
    let start = Instant::now();
    let fixture = store_fixture::build(scratch.path(), entries, epochs, 10, merge_every, |e| {
        if e % 16 == 0 {
            println!(
                "  epoch {e:>4}/{epochs}  {:>7.1} s  RSS {:>7.1} MiB",
                start.elapsed().as_secs_f64(),
                rss_mib()
            );
        }
    });
    let built = start.elapsed().as_secs_f64();
    println!(
        "built in {built:.1} s: {:.2} M entries/s including merges and the ingest checks",
        entries as f64 / built / 1e6
    );

    for (merged, seconds) in &fixture.merges {
        println!(
            "merge of {merged} entries: {seconds:.1} s, {:.0} MB/s",
            *merged as f64 * medvault::IndexBatch::PAIR_LEN as f64 / seconds / 1e6
        );
    }
    let (p50, p99) = store_fixture::search_latency(&fixture, 2_000, 10);
    println!("search, 10 results over {epochs} epochs, warm: p50 {p50:.0} µs, p99 {p99:.0} µs");
    println!("RSS after searching: {:.1} MiB", rss_mib());

    let segments = fixture.cloud.manifest().segments;
    println!("segments: {segments:?}");
    drop(fixture);

    let start = Instant::now();
    let cloud = medvault::Cloud::open(scratch.path()).expect("reopen");
    println!(
        "reopened in {:.2} s, RSS {:.1} MiB",
        start.elapsed().as_secs_f64(),
        rss_mib()
    );
    drop(cloud);
}

fn usage(arg: &str) -> ! {
    eprintln!(
        "bad argument {arg}\nusage: store_scale [--entries N] [--epochs E] [--merge-every M] [--dir DIR]"
    );
    std::process::exit(2)
}
