//! The paper's experiment end to end: every algorithm on text and image files of 1, 10
//! and 100 MB, encrypted and decrypted once each through medvault and through OpenSSL,
//! written as a markdown table and an SVG chart under `target/cipher-report/`.
//!
//! ```text
//! cargo run --release --features lab --example cipher_report -- [--quick] [--rsa-max-mb N] [--out DIR]
//!     [--only ID]... [--kind text|image] [--sizes 1,10,100]
//! ```
//!
//! Operations under 0.2 s are repeated and the median kept; longer ones run once.
//! `--quick` runs 1 MB only (what CI runs). Chunked RSA costs one private-key operation
//! per 190 or 318 bytes, so `--rsa-max-mb` (default 10; a fraction such as 0.125 is
//! allowed) caps its sizes; larger RSA cells are extrapolated linearly from the largest
//! measured one, or from a sample of exactly the cap when no selected size is at or
//! below it, and marked `≈`. CI runs `--quick --rsa-max-mb 0.125`.
//! `--only` (an algorithm id such as `rsa3072-chunked`, repeatable), `--kind` and
//! `--sizes` run part of the table, so the hours of chunked RSA at 100 MB can be split
//! across runs. The program checks that every cell of the selected table is filled
//! and exits 1 otherwise.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;

#[path = "../benches/common/paper.rs"]
mod paper;
use paper::{Algorithm, Kind, MB, Runner, SIZES_MB, cross_check, input};

/// One cell group of the table: seconds for each of the four operations.
struct Row {
    algorithm: Algorithm,
    kind: Kind,
    mb: usize,
    /// medvault encrypt, decrypt; OpenSSL encrypt, decrypt.
    seconds: [f64; 4],
    extrapolated: bool,
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

/// Seconds of `op`, whose first run (already done, by the caller's correctness check)
/// took `first`: kept if it took 0.2 s or more; otherwise `op` runs again up to 15
/// times (or about 0.5 s) and the median is kept, so 1 MB cells are not one noisy
/// sample (the first run then only warmed up).
fn seconds_of(first: f64, mut op: impl FnMut()) -> f64 {
    if first >= 0.2 {
        return first;
    }
    let reps = ((0.5 / first.max(1e-6)) as usize).clamp(3, 15);
    let mut runs: Vec<f64> = (0..reps).map(|_| timed(&mut op).1).collect();
    runs.sort_by(f64::total_cmp);
    runs[reps / 2]
}

/// The four timings of one cell group. Each operation's first run is also its round-
/// trip check, so a slow operation (chunked RSA at 10 MB) runs once, not twice.
fn measure(runner: &Runner, data: &[u8]) -> [f64; 4] {
    let name = runner.algorithm.name();
    let (ours, encrypt_first) = timed(|| runner.encrypt(data));
    let (opened, decrypt_first) = timed(|| runner.decrypt(&ours));
    assert!(opened == data, "{name} did not round-trip");
    drop(opened);
    let (theirs, openssl_encrypt_first) = timed(|| runner.openssl_encrypt(data));
    let (opened, openssl_decrypt_first) = timed(|| runner.openssl_decrypt(&theirs));
    assert!(opened == data, "OpenSSL {name} did not round-trip");
    drop(opened);
    [
        seconds_of(encrypt_first, || {
            drop(std::hint::black_box(runner.encrypt(data)))
        }),
        seconds_of(decrypt_first, || {
            drop(std::hint::black_box(runner.decrypt(&ours)))
        }),
        seconds_of(openssl_encrypt_first, || {
            drop(std::hint::black_box(runner.openssl_encrypt(data)))
        }),
        seconds_of(openssl_decrypt_first, || {
            drop(std::hint::black_box(runner.openssl_decrypt(&theirs)))
        }),
    ]
}

/// Three significant figures, whatever the magnitude.
fn sig(v: f64) -> String {
    match v {
        v if v >= 100.0 => format!("{v:.0}"),
        v if v >= 10.0 => format!("{v:.1}"),
        v if v >= 1.0 => format!("{v:.2}"),
        v if v >= 0.1 => format!("{v:.3}"),
        v => format!("{v:.4}"),
    }
}

fn main() {
    let mut quick = false;
    let mut rsa_max_mb = 10.0f64;
    let mut out_dir = PathBuf::from("target/cipher-report");
    let mut only: Vec<String> = Vec::new();
    let mut kinds: Vec<Kind> = Kind::ALL.to_vec();
    let mut chosen_sizes: Option<Vec<usize>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--rsa-max-mb" => {
                rsa_max_mb = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    // A sample must hold the 4 KiB the cross-check compares.
                    .filter(|mb: &f64| mb.is_finite() && *mb * MB as f64 >= 4096.0)
                    .unwrap_or_else(|| usage())
            }
            "--out" => out_dir = args.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "--only" => only.push(args.next().unwrap_or_else(|| usage())),
            "--kind" => {
                let name = args.next().unwrap_or_else(|| usage());
                kinds = vec![
                    Kind::ALL
                        .into_iter()
                        .find(|k| k.name() == name)
                        .unwrap_or_else(|| usage()),
                ];
            }
            "--sizes" => {
                let list = args.next().unwrap_or_else(|| usage());
                let parsed: Option<Vec<usize>> = list
                    .split(',')
                    .map(|v| v.parse().ok().filter(|mb| SIZES_MB.contains(mb)))
                    .collect();
                chosen_sizes = Some(parsed.unwrap_or_else(|| usage()));
            }
            _ => usage(),
        }
    }
    let mut sizes: Vec<usize> = match (quick, chosen_sizes) {
        (true, _) => vec![1],
        (false, Some(chosen)) => chosen,
        (false, None) => SIZES_MB.to_vec(),
    };
    sizes.sort_unstable();
    sizes.dedup();
    let algorithms: Vec<Algorithm> = Algorithm::all()
        .into_iter()
        .filter(|a| only.is_empty() || only.contains(&a.id()))
        .collect();
    if algorithms.is_empty() {
        eprintln!(
            "--only matches no algorithm; the ids are: {}",
            Algorithm::all()
                .iter()
                .map(|a| a.id())
                .collect::<Vec<_>>()
                .join(", ")
        );
        std::process::exit(2);
    }
    let total = algorithms.len() * kinds.len() * sizes.len();
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
            .unwrap()
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    for &algorithm in &algorithms {
        let runner = Runner::new(algorithm);
        for &kind in &kinds {
            for &mb in &sizes {
                bar.set_message(format!("{} {} {mb} MB", algorithm.name(), kind.name()));
                let is_rsa = matches!(algorithm, Algorithm::RsaChunked(_));
                let row = if is_rsa && mb as f64 > rsa_max_mb {
                    // Linear in the number of blocks: scale the largest size done (measured,
                    // or itself scaled), or a sample of the cap's size when none was.
                    let (base_mb, base_seconds) = match rows
                        .iter()
                        .rev()
                        .find(|r| r.algorithm == algorithm && r.kind == kind)
                    {
                        Some(base) => (base.mb as f64, base.seconds),
                        None => {
                            let data = input(kind, (rsa_max_mb * MB as f64) as usize);
                            cross_check(&runner, &data[..4096]);
                            (rsa_max_mb, measure(&runner, &data))
                        }
                    };
                    let scale = mb as f64 / base_mb;
                    Row {
                        algorithm,
                        kind,
                        mb,
                        seconds: base_seconds.map(|s| s * scale),
                        extrapolated: true,
                    }
                } else {
                    let data = input(kind, mb * MB);
                    cross_check(&runner, &data[..4096]);
                    Row {
                        algorithm,
                        kind,
                        mb,
                        seconds: measure(&runner, &data),
                        extrapolated: false,
                    }
                };
                rows.push(row);
                bar.inc(1);
            }
        }
    }
    bar.finish_with_message("done");

    let derive: Vec<(String, f64, f64)> = [medvault::lab::LabCipher::Aes256Cbc]
        .into_iter()
        .map(|cipher| {
            let (_, ours) = timed(|| paper::derive_pbe(cipher));
            let (_, theirs) = timed(|| paper::openssl_pbe_key(cipher));
            (cipher.to_string(), ours, theirs)
        })
        .collect();

    std::fs::create_dir_all(&out_dir).expect("the output directory");
    let table = markdown(
        &rows,
        &derive,
        started.elapsed().as_secs_f64(),
        quick,
        rsa_max_mb,
    );
    let table_path = out_dir.join("results.md");
    std::fs::write(&table_path, &table).expect("write the table");
    let chart_path = out_dir.join("chart.svg");
    chart(&rows, &algorithms, &sizes, &chart_path).expect("draw the chart");

    // The table is complete: every selected algorithm, file kind and size, every
    // figure finite.
    let expected = algorithms.len() * kinds.len() * sizes.len();
    let complete = rows.len() == expected
        && rows
            .iter()
            .all(|r| r.seconds.iter().all(|s| s.is_finite() && *s > 0.0));
    let lines = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| algorithm"))
        .count();
    println!("{table}");
    println!(
        "wrote {} and {}",
        table_path.display(),
        chart_path.display()
    );
    if !complete || lines < expected {
        eprintln!("the table is incomplete: {} of {expected} rows", rows.len());
        std::process::exit(1);
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: cipher_report [--quick] [--rsa-max-mb N] [--out DIR] [--only ID]... \
         [--kind text|image] [--sizes 1,10,100]"
    );
    std::process::exit(2)
}

fn mb_s(mb: usize, seconds: f64) -> f64 {
    mb as f64 / seconds
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {cores} cores; {}", openssl::version::version())
}

fn markdown(
    rows: &[Row],
    derive: &[(String, f64, f64)],
    total_seconds: f64,
    quick: bool,
    rsa_max_mb: f64,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Machine: {}. Run took {total_seconds:.0} s{}.",
        machine(),
        if quick { " (--quick: 1 MB only)" } else { "" }
    );
    let _ = writeln!(
        md,
        "Wall-clock seconds per operation (one run when it takes 0.2 s or more, else the median of 3–15), one thread except medvault's sealing of records over 704 KiB (more than 11 chunks); \
         MB = 10^6 bytes. `≈`: RSA above {rsa_max_mb} MB, extrapolated linearly from the \
         largest measured size (or from a {rsa_max_mb} MB sample when none was). Ratio = medvault MB/s ÷ OpenSSL MB/s.\n"
    );
    let _ = writeln!(
        md,
        "| algorithm | file | size | encrypt s | encrypt MB/s | decrypt s | decrypt MB/s | OpenSSL encrypt MB/s | OpenSSL decrypt MB/s | ratio encrypt | ratio decrypt |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let [enc, dec, penc, pdec] = r.seconds;
        let mark = if r.extrapolated { "≈" } else { "" };
        let _ = writeln!(
            md,
            "| {} | {} | {} MB | {mark}{} | {mark}{} | {mark}{} | {mark}{} | {mark}{} | {mark}{} | {:.2} | {:.2} |",
            r.algorithm.name(),
            r.kind.name(),
            r.mb,
            sig(enc),
            sig(mb_s(r.mb, enc)),
            sig(dec),
            sig(mb_s(r.mb, dec)),
            sig(mb_s(r.mb, penc)),
            sig(mb_s(r.mb, pdec)),
            penc / enc,
            pdec / dec,
        );
    }
    let _ = writeln!(md);
    for (cipher, ours, theirs) in derive {
        let _ = writeln!(
            md,
            "PBE key derivation ({cipher}, PBKDF2-HMAC-SHA256, {} iterations), measured apart: medvault {:.1} ms, OpenSSL {:.1} ms.",
            paper::PBE_ITERATIONS,
            ours * 1e3,
            theirs * 1e3
        );
    }
    md
}

/// Seconds against file size per algorithm (text files), encryption and decryption
/// side by side, log-log: the shape of the paper's figures.
fn chart(
    rows: &[Row],
    algorithms: &[Algorithm],
    sizes: &[usize],
    path: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let (min_s, max_s) = rows
        .iter()
        .flat_map(|r| [r.seconds[0], r.seconds[1]])
        .fold((f64::MAX, f64::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)));
    let x_max = *sizes.iter().max().unwrap_or(&1) as f64 * 1.5;
    for (panel, (title, column)) in panels
        .iter()
        .zip([("encryption", 0usize), ("decryption", 1)])
    {
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("Time for {title} of text files (s)"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (0.7f64..x_max).log_scale(),
                ((min_s / 2.0).max(1e-5)..max_s * 2.0).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("file size (MB)")
            .y_desc("seconds")
            .draw()?;
        for (i, &algorithm) in algorithms.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.algorithm == algorithm && r.kind == Kind::Text)
                .map(|r| (r.mb as f64, r.seconds[column]))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(algorithm.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
