//! Leakage measured: runs a generated hospital through a real cloud under each defence,
//! records what the cloud observes of a doctor's searches, and runs the count attack
//! against it with the attacker knowing 0 to 100 % of the records in clear. Writes
//! `docs/leakage.md` (the tables) and `docs/leakage.svg` (recovery against known
//! fraction, one line per defence).
//!
//! ```text
//! cargo run --release --example leakage_report -- [--patients N] [--queries N] [--seed N]
//!     [--also-patients N,N,…] [--out DIR]
//! ```
//!
//! Dev-only: the attacks live in this example (and `tests/leakage.rs`), never in the
//! library EHR software links.

mod attacks;
mod corpus;
mod injection;
mod observe;

use std::fmt::Write as _;
use std::path::PathBuf;

use observe::{Costs, Defence};
use plotters::prelude::*;

const KNOWN_PERCENT: [u64; 6] = [0, 5, 25, 50, 75, 100];
const DEFENCES: [Defence; 6] = [
    Defence::None,
    Defence::PowerOfTwo,
    Defence::Buckets(64),
    Defence::Buckets(8),
    Defence::PatientWide,
    Defence::PaddedSizes(4096),
];

/// One defence's results: the count attack's recovery rate at each known fraction
/// (ids known), the share of known plaintexts linked to their record by length, the
/// count attack's rate with only those, and the costs.
struct Row {
    defence: Defence,
    rates: Vec<f64>,
    linked: Vec<f64>,
    by_length: Vec<f64>,
    co_occurrence: Vec<f64>,
    volume: Vec<f64>,
    costs: Costs,
}

struct Args {
    patients: usize,
    /// Other hospital sizes for the scale table (count attack at 50 % known).
    also: Vec<usize>,
    queries: usize,
    seed: u64,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        patients: 10_000,
        also: Vec::new(),
        queries: 2_000,
        seed: 1,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|_| format!("{flag}: a number"));
        match flag.as_str() {
            "--patients" => args.patients = number(value()?)?,
            "--queries" => args.queries = number(value()?)?,
            "--seed" => args.seed = number(value()?)? as u64,
            "--out" => args.out = value()?.into(),
            "--also-patients" => {
                args.also = value()?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().ok().filter(|&n| n > 0))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(format!("{flag}: numbers above 0, separated by commas"))?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.patients == 0 || args.queries == 0 {
        return Err("--patients and --queries must be at least 1".into());
    }
    Ok(args)
}

/// A doctor's searches: a random record's patient and one of its keywords.
fn sample_queries(corpus: &corpus::Corpus, count: usize, seed: u64) -> Vec<(usize, String)> {
    let mut rng = corpus::Rng::new(seed ^ 0x5eed);
    (0..count)
        .map(|_| {
            let record = &corpus.records[rng.below(corpus.records.len())];
            let keyword = &record.keywords[rng.below(record.keywords.len())];
            (record.patient, keyword.clone())
        })
        .collect()
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let corpus = corpus::hospital(args.patients, args.seed);
    let queries = sample_queries(&corpus, args.queries, args.seed);
    let mut rows: Vec<Row> = Vec::new();
    for defence in DEFENCES {
        let observation = observe::observe(&corpus, defence, &queries);
        let mut rates = Vec::new();
        let mut linked = Vec::new();
        let mut by_length = Vec::new();
        let mut co_occurrence = Vec::new();
        let mut volume = Vec::new();
        for &percent in &KNOWN_PERCENT {
            let known = attacks::known_sample(&corpus, defence, percent, args.seed + percent);
            let guesses = attacks::count_attack(&observation.searches, &known);
            rates.push(attacks::recovery_rate(&guesses, &queries));
            let ikk = attacks::co_occurrence_attack(
                &observation.searches,
                &known,
                corpus.records.len(),
                100 * queries.len(),
                args.seed,
            );
            co_occurrence.push(attacks::keyword_rate(&ikk, &queries));
            let by_volume =
                attacks::volume_attack(&corpus, &observation.searches, &known, &observation.sizes);
            volume.push(attacks::recovery_rate(&by_volume, &queries));
            // The same plaintexts, their ids unknown: linked by length first.
            let plaintexts: Vec<usize> = known.records.keys().copied().collect();
            let found =
                attacks::link_by_length(&corpus, defence, &observation.sizes, plaintexts.clone());
            linked.push(found.len() as f64 / plaintexts.len().max(1) as f64);
            let known = attacks::known_of(&corpus, defence, found);
            let guesses = attacks::count_attack(&observation.searches, &known);
            by_length.push(attacks::recovery_rate(&guesses, &queries));
        }
        println!(
            "{:<22} {}",
            defence.name(),
            rates
                .iter()
                .map(|r| format!("{:5.1} %", r * 100.0))
                .collect::<Vec<_>>()
                .join("  ")
        );
        rows.push(Row {
            defence,
            rates,
            linked,
            by_length,
            co_occurrence,
            volume,
            costs: observation.costs,
        });
    }
    // File injection: the clinic targets the first 100 patients (or all, if fewer);
    // half the searches come before the planting, half after.
    let mut vocabulary: Vec<String> = (0..corpus::CODES).map(corpus::code).collect();
    vocabulary.extend(corpus::COMMON.iter().map(|(term, _)| term.to_string()));
    let targets = args.patients.min(100);
    let targeted: Vec<(usize, String)> = sample_queries(&corpus, args.queries * 4, args.seed + 9)
        .into_iter()
        .filter(|(p, _)| *p < targets)
        .take(400)
        .collect();
    let (before, after) = targeted.split_at(targeted.len() / 2);
    let injected = injection::file_injection(&corpus, &vocabulary, targets, before, after);
    println!("file injection: {injected:?}");
    // The scale table: the count attack at 50 % known, without a defence and with
    // patient-wide answers, at each size (this run's included).
    let mut sizes: Vec<usize> = args.also.clone();
    sizes.push(args.patients);
    sizes.sort_unstable();
    sizes.dedup();
    let mut scale: Vec<(usize, usize, f64, f64)> = Vec::new();
    for &patients in &sizes {
        let (records, none, wide) = if patients == args.patients {
            let at = |d: Defence| {
                let row = rows
                    .iter()
                    .find(|r| r.defence == d)
                    .expect("a measured defence");
                row.rates[KNOWN_PERCENT.iter().position(|&p| p == 50).expect("50 %")]
            };
            (
                corpus.records.len(),
                at(Defence::None),
                at(Defence::PatientWide),
            )
        } else {
            let other = corpus::hospital(patients, args.seed);
            let asked = sample_queries(&other, args.queries, args.seed);
            let rate = |defence: Defence| {
                let observation = observe::observe(&other, defence, &asked);
                let known = attacks::known_sample(&other, defence, 50, args.seed + 50);
                attacks::recovery_rate(
                    &attacks::count_attack(&observation.searches, &known),
                    &asked,
                )
            };
            (
                other.records.len(),
                rate(Defence::None),
                rate(Defence::PatientWide),
            )
        };
        println!(
            "{patients} patients: {:.1} % / {:.1} %",
            none * 100.0,
            wide * 100.0
        );
        scale.push((patients, records, none, wide));
    }
    std::fs::create_dir_all(&args.out).expect("create the output directory");
    let mut markdown = report(&args, &corpus, &rows, &injected, targets, vocabulary.len());
    let _ = writeln!(markdown, "## Scale\n");
    let _ = writeln!(
        markdown,
        "The count attack at 50 % known, {} searches, at each hospital size (the same generator and seed).\n",
        args.queries
    );
    let _ = writeln!(
        markdown,
        "| patients | records | none | patient-wide answers |"
    );
    let _ = writeln!(markdown, "|---:|---:|---:|---:|");
    for (patients, records, none, wide) in scale {
        let _ = writeln!(
            markdown,
            "| {patients} | {records} | {:.1} % | {:.1} % |",
            none * 100.0,
            wide * 100.0
        );
    }
    std::fs::write(args.out.join("leakage.md"), markdown).expect("write leakage.md");
    plot(&args.out.join("leakage.svg"), &rows);
    println!(
        "wrote {} and leakage.svg",
        args.out.join("leakage.md").display()
    );
}

fn report(
    args: &Args,
    corpus: &corpus::Corpus,
    rows: &[Row],
    injected: &injection::Injection,
    targets: usize,
    vocabulary: usize,
) -> String {
    let mut frequency: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for record in &corpus.records {
        for keyword in &record.keywords {
            *frequency.entry(keyword).or_default() += 1;
        }
    }
    let mut by_count: Vec<(&str, usize)> = frequency.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let n = corpus.records.len();
    let mut md = String::new();
    let _ = writeln!(md, "# Leakage, measured\n");
    let _ = writeln!(
        md,
        "Generated by `cargo run --release --example leakage_report -- --patients {} --queries {} --seed {}{}`; do not edit by \
hand. SECURITY.md says what each operation leaks; this page measures what an attacker recovers from it.\n",
        args.patients,
        args.queries,
        args.seed,
        if args.also.is_empty() {
            String::new()
        } else {
            format!(
                " --also-patients {}",
                args.also
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
    );
    let _ = writeln!(md, "## Corpus\n");
    let _ = writeln!(
        md,
        "{} patients, {} records at one provider, {} distinct keywords (`examples/leakage_report/corpus.rs`): each patient has 1 to 11 \
records and 1 to 4 conditions drawn from 1,000 diagnosis codes by a Zipf law (exponent 1.1); each record is about 1 or 2 of its \
patient's conditions and carries the common terms `visit` (90 % of records), `vitals` (50 %) and `medication` (30 %); 5 % are images \
of 20 to 200 KiB. Most frequent keywords: {}.\n",
        corpus.patients,
        n,
        by_count.len(),
        by_count
            .iter()
            .take(6)
            .map(|(k, c)| format!("`{k}` {:.1} %", *c as f64 * 100.0 / n as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(md, "## What the cloud observes, and the attack\n");
    let _ = writeln!(
        md,
        "{} searches, each for one patient and one keyword of one of the patient's records, go through a real `Cloud`; for each, the \
harness keeps what the cloud sees through the public API: the query's bytes (the search pattern), the record ids of the answer (the \
access pattern), the index blocks found and the answer's size (`observe.rs`). The **count attack** (Cash, Grubbs, Perry, Ristenpart, \
CCS 2015) runs on that, in its known-record form (`attacks.rs`): the attacker knows a fraction of the records in clear; a known record \
in an answer names the patient; the keyword must be in every known record of the answer, and every known record of that patient \
with the keyword must be in it; equal query bytes share the result. It knows the defence in use. A search counts as recovered when \
exactly one (patient, keyword) is left and it is the one asked.\n",
        args.queries
    );
    let _ = writeln!(md, "## Recovery rate of the count attack\n");
    rate_table(&mut md, rows, 0, |row, i| percent(row.rates[i]));
    let _ = writeln!(
        md,
        "\n![recovery rate against known fraction](leakage.svg)\n"
    );
    let _ = writeln!(md, "## The co-occurrence attack\n");
    let _ = writeln!(
        md,
        "The co-occurrence attack (Islam, Kuzu, Kantarcioglu, NDSS 2012; `attacks::co_occurrence_attack`) matches how often two \
searches return the same record against how often two keywords share a record in the known records, by simulated annealing over \
the most frequent keywords, and guesses each search's keyword (not its patient). Each cell: searches whose keyword it got right. \
Medvault's tokens are per patient, so an answer is a few of one patient's records and two searches share records only when they \
are about the same patient: what the cloud sees is far below the hospital-wide keyword frequencies the attack matches it against, \
its best fit assigns rare keywords, and it recovers almost nothing. The count attack above is the one that works here.\n"
    );
    rate_table(&mut md, rows, 1, |row, i| percent(row.co_occurrence[i]));
    let _ = writeln!(md);
    let _ = writeln!(md, "## The volume attack on result sizes\n");
    let _ = writeln!(
        md,
        "The volume attack (`attacks::volume_attack`; Grubbs et al. CCS 2018, Blackstone et al. NDSS 2020) uses only each answer's \
volume, the sum of the sealed sizes of its records: from the known records it computes the volume an answer for each (patient, \
keyword) would have, and recovers a search when exactly one (patient, keyword) has the observed volume and it is the one asked. \
It needs every record of the answer known to compute the right volume, so it works only near full knowledge. Each cell: searches \
recovered.\n"
    );
    rate_table(&mut md, rows, 1, |row, i| percent(row.volume[i]));
    let _ = writeln!(md);
    let _ = writeln!(md, "## The volume attack on record lengths\n");
    let _ = writeln!(
        md,
        "An attacker holding plaintexts without their record ids (a leak of notes, say) links each to the stored record whose \
sealed size is the one its length seals to (the format is public), when exactly one stored record has that size \
(`attacks::link_by_length`); the count attack then runs with the records it linked. Each cell: known plaintexts linked / searches \
recovered.\n"
    );
    rate_table(&mut md, rows, 1, |row, i| {
        format!("{} / {}", percent(row.linked[i]), percent(row.by_length[i]))
    });
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "## File injection through a colluding provider, and cross-provider linkage\n"
    );
    let _ = writeln!(
        md,
        "A clinic colludes with the cloud (`injection.rs`; Zhang, Katz, Papamanthou, USENIX Security 2016). The doctor holds keys \
at the hospital and at the clinic for the same patients, so one query carries tokens for both and the cloud answers both parts \
together. For each of {targets} targeted patients the clinic plants {bits} records, record `j` indexed under every keyword (of \
{vocabulary}) whose number has bit `j` set; which planted records a query's clinic part returns spells the keyword, and the \
hospital's answer to the same query is then known to be that patient's records with that keyword.\n",
        bits = injected.planted / targets.max(1),
    );
    let share = |part: usize, whole: usize| part as f64 * 100.0 / whole.max(1) as f64;
    let _ = writeln!(md, "| | searches | revealed |");
    let _ = writeln!(md, "|---|---:|---:|");
    let _ = writeln!(
        md,
        "| made before the planting, replayed after it (forward privacy) | {} | {:.1} % |",
        injected.before,
        share(injected.before_learned, injected.before)
    );
    let _ = writeln!(
        md,
        "| made after the planting | {} | {:.1} % |",
        injected.after,
        share(injected.after_learned, injected.after)
    );
    let _ = writeln!(
        md,
        "\nThe revealed searches labelled {} of the hospital's records with their patient and keyword ({:.1} % of the labels right). \
The planting cost the clinic {} records and {} index entries. The 0 % before is what planting buys against forward privacy; \
it is not a protection against the clinic itself, which can recompute its own tokens for any (patient, keyword) and compare them \
with its part of any query, earlier ones included. No defence above changes this: the clinic holds its own keys. A query carries \
tokens for every provider that granted the doctor keys for the patient (`Requester::query`), so a grant from a provider the doctor \
does not trust exposes every later search for that patient, at every provider; choosing the providers of one query is not in the \
API yet.\n",
        injected.linked,
        share(injected.linked_right, injected.linked),
        injected.planted,
        injected.planted_entries
    );
    let _ = writeln!(md, "## What each defence costs\n");
    let _ = writeln!(
        md,
        "| defence | index entries | stored bytes | records per answer | opened per record wanted | answer bytes | search time |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    for Row { defence, costs, .. } in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.2} | {:.0} | {:.0} µs |",
            defence.name(),
            costs.index_entries,
            costs.stored_bytes,
            costs.mean_results,
            costs.opened_per_wanted,
            costs.mean_response_bytes,
            costs.mean_search.as_secs_f64() * 1e6
        );
    }
    let _ = writeln!(
        md,
        "\n- **Power-of-two padding** hides how many index blocks a list has from someone who holds the index but no token; \
the answer's record ids are the same, so it does not slow the count attack.\n\
- **Keyword buckets** index a record under a hash of each keyword into a fixed number of buckets (a public map); a search asks \
for its keyword's bucket and the doctor keeps the records that have the keyword after opening them. The attacker learns the \
bucket; fewer buckets hide more and cost more records opened per record wanted.\n\
- **Patient-wide answers** index every record under one term: a search returns all the patient's records at the provider and \
the doctor filters them after opening. The cloud learns which patient, never which keyword.\n\
- **Padded sizes** pad each record's plaintext up to a multiple of 4 KiB before sealing (the application's own filler, removed \
after opening): records of similar lengths then have the same sealed size, and a leaked plaintext no longer names its record by \
length. It does nothing against the count attack when the attacker knows the ids.\n"
    );
    md
}

/// A rate as the tables show it.
fn percent(rate: f64) -> String {
    format!("{:.1} %", rate * 100.0)
}

/// A table with a row per defence and a column per known fraction (from the
/// `first`-th), each cell `cell(row, fraction index)`.
fn rate_table(md: &mut String, rows: &[Row], first: usize, cell: impl Fn(&Row, usize) -> String) {
    let columns = first..KNOWN_PERCENT.len();
    let _ = write!(md, "| defence |");
    for i in columns.clone() {
        let _ = write!(md, " {} % known |", KNOWN_PERCENT[i]);
    }
    let _ = write!(md, "\n|---|");
    for _ in columns.clone() {
        let _ = write!(md, "---:|");
    }
    let _ = writeln!(md);
    for row in rows {
        let _ = write!(md, "| {} |", row.defence.name());
        for i in columns.clone() {
            let _ = write!(md, " {} |", cell(row, i));
        }
        let _ = writeln!(md);
    }
}

fn plot(path: &std::path::Path, rows: &[Row]) {
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE).expect("draw");
    let mut chart = ChartBuilder::on(&root)
        .caption("Count attack: searches recovered", ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..100f64, 0f64..100f64)
        .expect("chart");
    chart
        .configure_mesh()
        .x_desc("records known in clear (%)")
        .y_desc("searches recovered (%)")
        .draw()
        .expect("mesh");
    let colors = [RED, BLUE, GREEN, MAGENTA, BLACK, CYAN];
    for (Row { defence, rates, .. }, color) in rows.iter().zip(colors) {
        let points: Vec<(f64, f64)> = KNOWN_PERCENT
            .iter()
            .zip(rates)
            .map(|(&p, &r)| (p as f64, r * 100.0))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .expect("series")
            .label(defence.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .expect("legend");
    root.present().expect("write the plot");
}
