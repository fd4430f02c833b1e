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

/// Searches sent together in the batching defence.
const BATCH: usize = 4;
/// Dummy searches sent with each real one in the dummy-search defence.
const DUMMIES: usize = 3;

/// One defence's results: the count attack's recovery rate at each known fraction
/// (ids known), the share of known plaintexts linked to their record by length, the
/// count attack's rate with only those, and the costs.
struct Row {
    defence: Defence,
    rates: Vec<f64>,
    /// The epoch-pattern attack (the index's keeper), each search seen alone.
    epoch_pattern: Vec<f64>,
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

/// The epoch-pattern attack against searches sent in groups (no index defence): at each
/// known fraction, with each search alone, in batches of [`BATCH`], and each with
/// [`DUMMIES`] dummy searches; and what the dummies cost.
struct Grouped {
    alone: Vec<f64>,
    batched: Vec<f64>,
    with_dummies: Vec<f64>,
    /// The count attack, each search alone and each with its dummies.
    count_alone: Vec<f64>,
    count_with_dummies: Vec<f64>,
    /// Answer bytes and search time per real search, alone and with the dummies'.
    plain_bytes: f64,
    plain_search: std::time::Duration,
    dummy_bytes: f64,
    dummy_search: std::time::Duration,
}

impl Grouped {
    fn measure(
        corpus: &corpus::Corpus,
        observation: &observe::Observation,
        queries: &[(usize, String)],
        seed: u64,
    ) -> Grouped {
        let searches = &observation.searches;
        let alone: Vec<Vec<&observe::Observed>> = searches.iter().map(|s| vec![s]).collect();
        let batches: Vec<Vec<&observe::Observed>> =
            searches.chunks(BATCH).map(|c| c.iter().collect()).collect();
        // Each real search sent with its dummies, in an order the cloud cannot use.
        let padded: Vec<Vec<&observe::Observed>> = searches
            .iter()
            .zip(observation.dummies.chunks(DUMMIES))
            .map(|(real, dummies)| {
                let mut group: Vec<&observe::Observed> = dummies.iter().collect();
                group.insert(group.len() / 2, real);
                group
            })
            .collect();
        let each: Vec<usize> = (0..queries.len()).collect();
        let by_batch: Vec<usize> = (0..queries.len()).map(|i| i / BATCH).collect();
        let (mut alone_rates, mut batched, mut with_dummies) = (Vec::new(), Vec::new(), Vec::new());
        let (mut count_alone, mut count_with_dummies) = (Vec::new(), Vec::new());
        for &percent in &KNOWN_PERCENT {
            let known = attacks::known_sample(corpus, Defence::None, percent, seed + percent);
            let rate = |groups: &[Vec<&observe::Observed>], group_of: &[usize], dummies| {
                let named = attacks::epoch_pattern_attack(groups, &known, &observation.epochs);
                attacks::named_rate(&named, group_of, queries, dummies)
            };
            alone_rates.push(rate(&alone, &each, false));
            batched.push(rate(&batches, &by_batch, false));
            with_dummies.push(rate(&padded, &each, true));
            let real = attacks::count_attack(searches, &known);
            let dummies = attacks::count_attack(&observation.dummies, &known);
            count_alone.push(attacks::recovery_rate(&real, queries));
            count_with_dummies.push(attacks::diluted_rate(&real, &dummies, DUMMIES, queries));
        }
        let n = queries.len().max(1) as f64;
        let dummy_answers: usize = observation.dummies.iter().map(|d| d.response_bytes).sum();
        Grouped {
            alone: alone_rates,
            batched,
            with_dummies,
            count_alone,
            count_with_dummies,
            plain_bytes: observation.costs.mean_response_bytes,
            plain_search: observation.costs.mean_search,
            dummy_bytes: observation.costs.mean_response_bytes + dummy_answers as f64 / n,
            dummy_search: observation.costs.mean_search + observation.dummy_search / n as u32,
        }
    }
}

/// What the transcript of the run without a defence holds, in numbers.
struct TranscriptSummary {
    epochs: usize,
    first_at: u64,
    last_at: u64,
    mean_epoch_entries: f64,
    mean_labels_probed: f64,
    mean_labels_found: f64,
    mean_epochs_hit: f64,
    records: usize,
}

impl TranscriptSummary {
    fn of(observation: &observe::Observation) -> TranscriptSummary {
        let n = observation.searches.len().max(1) as f64;
        let epochs = &observation.epochs;
        TranscriptSummary {
            epochs: epochs.len(),
            first_at: epochs.first().map_or(0, |e| e.at),
            last_at: epochs.last().map_or(0, |e| e.at),
            mean_epoch_entries: epochs.iter().map(|e| e.entries).sum::<u64>() as f64
                / epochs.len().max(1) as f64,
            mean_labels_probed: observation
                .searches
                .iter()
                .map(|s| s.labels_probed())
                .sum::<usize>() as f64
                / n,
            mean_labels_found: observation
                .searches
                .iter()
                .map(|s| s.found.len())
                .sum::<usize>() as f64
                / n,
            mean_epochs_hit: observation
                .searches
                .iter()
                .map(|s| s.epochs_hit().len())
                .sum::<usize>() as f64
                / n,
            records: observation.uploaded_at.iter().filter(|&&t| t > 0).count(),
        }
    }
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
    // Dummy searches look like a doctor's: drawn the same way, from their own stream.
    let dummy_queries = sample_queries(&corpus, DUMMIES * queries.len(), args.seed ^ 0xd0d0);
    let mut rows: Vec<Row> = Vec::new();
    let mut grouped: Option<Grouped> = None;
    let mut transcript: Option<TranscriptSummary> = None;
    for defence in DEFENCES {
        let observation = observe::observe(&corpus, defence, observe::EPOCH_RECORDS, &queries, &[]);
        if defence == Defence::None {
            transcript = Some(TranscriptSummary::of(&observation));
            // The same, with an epoch a day, and the dummy searches.
            let daily = observe::observe(&corpus, defence, 1, &queries, &dummy_queries);
            grouped = Some(Grouped::measure(&corpus, &daily, &queries, args.seed));
        }
        let alone: Vec<Vec<&observe::Observed>> =
            observation.searches.iter().map(|s| vec![s]).collect();
        let each: Vec<usize> = (0..queries.len()).collect();
        let mut epoch_pattern = Vec::new();
        let mut rates = Vec::new();
        let mut linked = Vec::new();
        let mut by_length = Vec::new();
        let mut co_occurrence = Vec::new();
        let mut volume = Vec::new();
        for &percent in &KNOWN_PERCENT {
            let known = attacks::known_sample(&corpus, defence, percent, args.seed + percent);
            let guesses = attacks::count_attack(&observation.searches, &known);
            rates.push(attacks::recovery_rate(&guesses, &queries));
            let named = attacks::epoch_pattern_attack(&alone, &known, &observation.epochs);
            epoch_pattern.push(attacks::named_rate(&named, &each, &queries, false));
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
            epoch_pattern,
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
                let observation =
                    observe::observe(&other, defence, observe::EPOCH_RECORDS, &asked, &[]);
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
    let mut markdown = report(
        &args,
        &corpus,
        &rows,
        &injected,
        targets,
        vocabulary.len(),
        &grouped.expect("the run without a defence"),
        &transcript.expect("the run without a defence"),
    );
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

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    corpus: &corpus::Corpus,
    rows: &[Row],
    injected: &injection::Injection,
    targets: usize,
    vocabulary: usize,
    grouped: &Grouped,
    transcript: &TranscriptSummary,
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
of 20 to 200 KiB; each record is written on a day of one year (uniform) and uploaded in day order, in a batch (an epoch) at the end \
of the first day that brings the batch to 1,000 records. Most frequent keywords: {}.\n",
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
        "{} searches, each for one patient and one keyword of one of the patient's records, go through a real `Cloud`, whose clock \
the harness sets to the corpus's days. The transcript (`observe.rs`) keeps what the cloud sees through the public API:\n\n\
- **the timing of epochs**: each ingest's arrival time, entry count and records committed. Without a defence: {} epochs, from \
unix time {} to {}, {:.0} entries each on average; and each of the {} stored records' upload time;\n\
- **the labels probed** by each search: each label that found an entry, as the entry's epoch and place (the proofs in the \
response name them), and the one per epoch covered that found nothing. Without a defence a search probed {:.1} labels on \
average, {:.2} of them found an entry, in {:.2} epochs;\n\
- **the postings returned** (the access pattern: the answer's record ids), the **query's bytes** (equal bytes are the same \
search: the search pattern), the **answer's size**, and every stored record's **sealed size**.\n\n\
The **count attack** (Cash, Grubbs, Perry, Ristenpart, CCS 2015) runs on that, in its known-record form (`attacks.rs`): the \
attacker knows a fraction of the records in clear; a known record in an answer names the patient; the keyword must be in every \
known record of the answer, and every known record of that patient with the keyword must be in it; equal query bytes share the \
result. It knows the defence in use. A search counts as recovered when exactly one (patient, keyword) is left and it is the one \
asked.\n",
        args.queries,
        transcript.epochs,
        transcript.first_at,
        transcript.last_at,
        transcript.mean_epoch_entries,
        transcript.records,
        transcript.mean_labels_probed,
        transcript.mean_labels_found,
        transcript.mean_epochs_hit,
    );
    let _ = writeln!(md, "## Recovery rate of the count attack\n");
    rate_table(&mut md, rows, 0, |row, i| percent(row.rates[i]));
    let _ = writeln!(
        md,
        "\n![recovery rate against known fraction](leakage.svg)\n"
    );
    let _ = writeln!(
        md,
        "## The epoch-pattern attack: the labels probed and the timing of epochs\n"
    );
    let _ = writeln!(
        md,
        "Whoever keeps the index tables but holds no token (the operator of the PostgreSQL database under `PgStore`, or of one \
shard of its entries table; anyone reading the store's files while searches run) sees which labels a search looks up and which \
exist, and each entry's epoch, a column kept for provenance: the epochs in which the list searched has entries. The timing of \
epochs says which days each epoch holds. It does not see the record ids, which are encrypted in the entries. The attack \
(`attacks::epoch_pattern_attack`) knows a fraction of the records in clear with the day each was written; a (patient, keyword) \
fits a search when every epoch holding a known record of it is one the search hit; of those that fit, it keeps the ones that \
account for the most epochs hit. A search is recovered when exactly one (patient, keyword) is left and it is the one asked; \
equal query bytes share the result. Epochs of 1,000 records or more, as everywhere else on this page.\n"
    );
    rate_table(&mut md, rows, 1, |row, i| percent(row.epoch_pattern[i]));
    let _ = writeln!(
        md,
        "\n**Epoch size, batching and dummy searches**, measured against the same attack with no index defence, the same \
corpus and searches. *An epoch a day*: the hospital uploads a batch every evening instead of waiting for 1,000 records. \
*Batches of {BATCH}*: a doctor's next {BATCH} searches go together; searches sent together reach the index as one set of \
lookups (the labels are pseudorandom and arrive in the same rounds), so only the union of the epochs they hit is seen, and the \
attacker names the {BATCH} pairs that account for the most of it; a search counts as recovered when its pair is among those \
named. *{DUMMIES} dummy searches*: each search goes with {DUMMIES} others drawn the same way (a random record's patient and \
keyword), whose answers the doctor drops; the attacker cannot tell the real one among those it names, so a search counts as \
1/n when its pair is among n named.\n"
    );
    let _ = write!(md, "| attack | searches sent | epochs |");
    for p in &KNOWN_PERCENT[1..] {
        let _ = write!(md, " {p} % known |");
    }
    let _ = writeln!(
        md,
        "\n|---|---|---|{}",
        "---:|".repeat(KNOWN_PERCENT.len() - 1)
    );
    let batches = format!("in batches of {BATCH}");
    let dummies = format!("each with {DUMMIES} dummy searches");
    for (attack, name, epochs, rates) in [
        (
            "epoch pattern",
            "one at a time",
            "≥ 1,000 records",
            &rows[0].epoch_pattern,
        ),
        ("epoch pattern", "one at a time", "a day", &grouped.alone),
        ("epoch pattern", &batches[..], "a day", &grouped.batched),
        (
            "epoch pattern",
            &dummies[..],
            "a day",
            &grouped.with_dummies,
        ),
        ("count", "one at a time", "a day", &grouped.count_alone),
        ("count", &dummies[..], "a day", &grouped.count_with_dummies),
    ] {
        let _ = write!(md, "| {attack} | {name} | {epochs} |");
        for rate in &rates[1..] {
            let _ = write!(md, " {} |", percent(*rate));
        }
        let _ = writeln!(md);
    }
    let days_per_epoch = (transcript.last_at - transcript.first_at) as f64
        / observe::DAY as f64
        / transcript.epochs.saturating_sub(1).max(1) as f64;
    let _ = writeln!(
        md,
        "\n- **Larger epochs** blur the pattern (each epoch holds more patients' records), at the price of freshness: a \
record is found only once its epoch is in, and 1,000 records took this hospital {days_per_epoch:.1} days.\n\
- **Batching** hardly helps: the union of {BATCH} searches' epochs still picks out their pairs, and at low knowledge naming \
{BATCH} pairs is easier than naming one. It costs latency (a search waits for {} others) and no bandwidth.\n\
- **Dummy searches** help most of the three, since the attacker cannot tell which pair named was asked: they cost \
{:.0} answer bytes per real search instead of {:.0}, and {:.0} µs of search instead of {:.0}. Dummy *probes* (tokens under \
random keys) would cost little and hide nothing: each finds no entry in any epoch, and the keeper tells a miss from a hit.\n\
- Against the **count attack** (the cloud itself, which holds every token of a group and decrypts each list on its own), \
epoch size and batching change nothing: it sees each search's record ids as if the search had come alone. Dummy searches \
dilute it the same way (the last two rows: the cloud recovers the dummies too, and cannot tell which one was asked), at the \
same price. **Patient-wide answers** stop both attacks outright: the index then holds one list per patient, which says \
nothing of keywords.\n",
        BATCH - 1,
        grouped.dummy_bytes,
        grouped.plain_bytes,
        grouped.dummy_search.as_secs_f64() * 1e6,
        grouped.plain_search.as_secs_f64() * 1e6,
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
        "| made after the planting, asked of the hospital alone (`Requester::query_at`) | {} | {:.1} % |",
        injected.after,
        share(injected.scoped_learned, injected.after)
    );
    let _ = writeln!(
        md,
        "\nThe revealed searches labelled {} of the hospital's records with their patient and keyword ({:.1} % of the labels right). \
The planting cost the clinic {} records and {} index entries. The 0 % before is what planting buys against forward privacy; \
it is not a protection against the clinic itself, which can recompute its own tokens for any (patient, keyword) and compare them \
with its part of any query, earlier ones included. No index defence above changes this: the clinic holds its own keys. \
`Requester::query` sends tokens to every provider that granted the doctor keys for the patient, so a grant from a provider the \
doctor does not trust exposes every later search for that patient, at every provider. `Requester::query_at` \
(`medvault_requester_query_at` in C) sends them to the providers named only: asked of the hospital alone, the same searches \
revealed nothing, since the clinic received no token and none of its records could answer. Its price is what the doctor does \
not see: the clinic's records (answers of {:.0} bytes on average instead of {:.0}).\n",
        injected.linked,
        share(injected.linked_right, injected.linked),
        injected.planted,
        injected.planted_entries,
        injected.scoped_answer_bytes as f64 / injected.after.max(1) as f64,
        injected.answer_bytes as f64 / injected.after.max(1) as f64,
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
the answer's record ids are the same, so it does not slow the count attack, and a list of one patient's records rarely has \
more than one block an epoch, so it does not slow the epoch-pattern attack either.\n\
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
