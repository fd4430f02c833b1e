//! Leakage-abuse attacks run against what the cloud observed (`observe.rs`).
//!
//! **The count attack** (Cash, Grubbs, Perry, Ristenpart, CCS 2015), in its known-record
//! form for medvault's per-patient queries. The attacker (the cloud, or whoever reads
//! its disk) knows some records in clear: their patient and keywords, and their ids
//! (it stored them). For each observed search with answer `R`:
//! 1. the known records in `R` name the patient (a query is one patient's);
//! 2. the keyword is in every known record of `R`;
//! 3. and every known record of that patient holding the keyword is in `R` (the answer
//!    holds all of them), so `R` holds exactly as many known records with it as the
//!    attacker knows of: the count check;
//! 4. a search whose answer the attacker resolved fixes the keyword of every search
//!    with the same query bytes (the search pattern).
//!
//! The attacker knows the defence (Kerckhoffs): it runs the steps on the terms records
//! are indexed under (a keyword's bucket, say), then takes the keywords of the patient's
//! known records that map to the term it found. A search is recovered when exactly one
//! (patient, keyword) is left and it is the one asked; a single wrong candidate counts
//! as a failure, as does an ambiguous one.

use std::collections::{BTreeSet, HashMap};

use crate::corpus::{Corpus, Rng};
use crate::observe::{Defence, EpochSeen, Observed, epoch_of_day};

/// A record the attacker knows in clear.
pub struct KnownRecord<'a> {
    pub patient: usize,
    /// The day it was written.
    pub day: u32,
    pub keywords: BTreeSet<&'a str>,
    /// What it is indexed under (the defence is public).
    pub terms: BTreeSet<String>,
}

/// Records the attacker knows, by corpus position; and per patient, which.
pub struct Known<'a> {
    pub defence: Defence,
    pub records: HashMap<usize, KnownRecord<'a>>,
    pub by_patient: HashMap<usize, Vec<usize>>,
}

/// A `percent` sample of `corpus`'s records, from `seed`.
pub fn known_sample(corpus: &Corpus, defence: Defence, percent: u64, seed: u64) -> Known<'_> {
    let mut rng = Rng::new(seed);
    let chosen = (0..corpus.records.len()).filter(|_| rng.next() % 100 < percent);
    known_of(corpus, defence, chosen)
}

/// The attacker knows exactly `records` (positions in `corpus`).
pub fn known_of(
    corpus: &Corpus,
    defence: Defence,
    records: impl IntoIterator<Item = usize>,
) -> Known<'_> {
    let mut known = Known {
        defence,
        records: HashMap::new(),
        by_patient: HashMap::new(),
    };
    for r in records {
        let record = &corpus.records[r];
        known.records.insert(
            r,
            KnownRecord {
                patient: record.patient,
                day: record.day,
                keywords: record.keywords.iter().map(String::as_str).collect(),
                terms: defence.terms(&record.keywords).into_iter().collect(),
            },
        );
        known.by_patient.entry(record.patient).or_default().push(r);
    }
    known
}

/// The count attack: for each observed search, the (patient, keyword) the attacker
/// concludes, if exactly one is left.
pub fn count_attack<'a>(observed: &[Observed], known: &Known<'a>) -> Vec<Option<(usize, &'a str)>> {
    let mut guesses: Vec<Option<(usize, &'a str)>> = observed
        .iter()
        .map(|search| {
            let answer: BTreeSet<usize> = search.results.iter().copied().collect();
            let in_answer: Vec<&KnownRecord<'a>> = search
                .results
                .iter()
                .filter_map(|r| known.records.get(r))
                .collect();
            let first = in_answer.first()?;
            let patient = first.patient;
            let mut terms: BTreeSet<&str> = first.terms.iter().map(String::as_str).collect();
            for record in &in_answer[1..] {
                terms.retain(|t| record.terms.contains(*t));
            }
            // Every known record of the patient indexed under the term is in the answer.
            let of_patient = &known.by_patient[&patient];
            terms.retain(|t| {
                of_patient
                    .iter()
                    .all(|r| answer.contains(r) || !known.records[r].terms.contains(*t))
            });
            // The keywords of the patient's known records indexed under those terms.
            let mut keywords: BTreeSet<&'a str> = BTreeSet::new();
            for r in of_patient {
                for keyword in &known.records[r].keywords {
                    let term = known.defence.term(keyword);
                    if terms.contains(term.as_str()) {
                        keywords.insert(keyword);
                    }
                }
            }
            let mut left = keywords.into_iter();
            match (left.next(), left.next()) {
                (Some(keyword), None) => Some((patient, keyword)),
                _ => None,
            }
        })
        .collect();
    // The search pattern: the same query bytes are the same (patient, keyword).
    let mut resolved: HashMap<[u8; 32], (usize, &'a str)> = HashMap::new();
    for (search, guess) in observed.iter().zip(&guesses) {
        if let Some(guess) = guess {
            resolved.entry(search.query).or_insert(*guess);
        }
    }
    for (search, guess) in observed.iter().zip(guesses.iter_mut()) {
        if guess.is_none() {
            *guess = resolved.get(&search.query).copied();
        }
    }
    guesses
}

/// **The epoch-pattern attack**, by whoever keeps the index tables but holds no token:
/// the operator of the database under `PgStore` (or of one shard of its entries
/// table), or anyone reading the store's segment files as searches run. It sees which
/// labels a search looks up and which of them exist, and each entry's epoch (a column
/// of the entries table, kept for provenance), so it learns in which epochs the list
/// searched has entries; the timing of epochs says which days each epoch holds. It
/// knows some records in clear with the day each was written, so for each (patient,
/// term) the epochs its known records are in. A (patient, term) fits a search when
/// each of those epochs is one the search hit (the list holds every record under the
/// term, known or not); of those that fit, the attacker keeps the ones that account
/// for the most epochs hit (the likeliest), then takes the keywords of that patient's
/// known records that map to the term, as the count attack does.
///
/// Searches sent together (`groups`) reach the index as one set of lookups: their
/// labels are pseudorandom and arrive in the same rounds, so only the union of the
/// epochs they hit is seen. For a group of `k` searches the attacker names the `k`
/// (patient, keyword) pairs that account for the most epochs, when the `k`-th accounts
/// for more than the next (a tie names only those above it), and nothing when that
/// leaves more pairs than `k`. A single search it names is resolved, and so is every
/// search with the same query bytes (the search pattern).
pub fn epoch_pattern_attack<'a>(
    groups: &[Vec<&Observed>],
    known: &Known<'a>,
    epochs: &[EpochSeen],
) -> Vec<Vec<(usize, &'a str)>> {
    // (patient, term) → the epochs of the known records under it.
    let mut fits: HashMap<(usize, &str), BTreeSet<u32>> = HashMap::new();
    for record in known.records.values() {
        let Some(epoch) = epoch_of_day(epochs, record.day) else {
            continue;
        };
        for term in &record.terms {
            fits.entry((record.patient, term.as_str()))
                .or_default()
                .insert(epoch);
        }
    }
    // Each (patient, term) listed under its first epoch: a search need only look at
    // the candidates whose first epoch it hit.
    let mut by_first: HashMap<u32, Vec<(usize, &str)>> = HashMap::new();
    for (candidate, in_epochs) in &fits {
        let first = *in_epochs.first().expect("at least one epoch");
        by_first.entry(first).or_default().push(*candidate);
    }
    let mut named: Vec<Vec<(usize, &'a str)>> = groups
        .iter()
        .map(|group| {
            let k = group.len();
            let hit: BTreeSet<u32> = group.iter().flat_map(|s| s.epochs_hit()).collect();
            // (epochs accounted for, patient, term), best first.
            let mut ranked: Vec<(usize, usize, &str)> = hit
                .iter()
                .flat_map(|epoch| by_first.get(epoch).map_or(&[][..], |v| &v[..]))
                .filter(|candidate| fits[*candidate].is_subset(&hit))
                .map(|&(patient, term)| (fits[&(patient, term)].len(), patient, term))
                .collect();
            ranked.sort_unstable_by(|a, b| b.cmp(a));
            let cut = match ranked.get(k) {
                None => ranked.len(),
                Some(&(next, ..)) => ranked.iter().take_while(|c| c.0 > next).count(),
            };
            let mut pairs: BTreeSet<(usize, &'a str)> = BTreeSet::new();
            for &(_, patient, term) in &ranked[..cut] {
                for r in &known.by_patient[&patient] {
                    for keyword in &known.records[r].keywords {
                        if known.defence.term(keyword) == term {
                            pairs.insert((patient, *keyword));
                        }
                    }
                }
            }
            if pairs.len() <= k {
                pairs.into_iter().collect()
            } else {
                Vec::new()
            }
        })
        .collect();
    // The search pattern, for searches seen alone.
    let mut resolved: HashMap<[u8; 32], (usize, &'a str)> = HashMap::new();
    for (group, names) in groups.iter().zip(&named) {
        if let ([search], [pair]) = (&group[..], &names[..]) {
            resolved.entry(search.query).or_insert(*pair);
        }
    }
    for (group, names) in groups.iter().zip(named.iter_mut()) {
        if let [search] = &group[..]
            && names.len() != 1
            && let Some(pair) = resolved.get(&search.query)
        {
            *names = vec![*pair];
        }
    }
    named
}

/// The share of searches the attacker recovered from what it named for their group
/// (`group_of[i]` is search `i`'s): a search whose (patient, keyword) is among `n`
/// pairs named counts fully when every search of the group is real (a batch: it
/// learned what the doctor searched), and as `1 / n` when `dummies` (it cannot tell
/// the real one from the dummies named with it).
pub fn named_rate(
    named: &[Vec<(usize, &str)>],
    group_of: &[usize],
    truth: &[(usize, String)],
    dummies: bool,
) -> f64 {
    let recovered: f64 = truth
        .iter()
        .zip(group_of)
        .map(|((patient, keyword), group)| {
            let names = &named[*group];
            if !names.iter().any(|(p, k)| p == patient && k == keyword) {
                0.0
            } else if dummies {
                1.0 / names.len() as f64
            } else {
                1.0
            }
        })
        .sum();
    recovered / truth.len().max(1) as f64
}

/// The count attack's share of real searches when each went with `per_real` dummy
/// searches (`dummies[i * per_real ..][.. per_real]` are search `i`'s): the cloud sees
/// each search on its own, but not which of a group is real, so a right guess counts
/// `1 / n` when the group's guesses name `n` different pairs.
pub fn diluted_rate(
    real: &[Option<(usize, &str)>],
    dummies: &[Option<(usize, &str)>],
    per_real: usize,
    truth: &[(usize, String)],
) -> f64 {
    let recovered: f64 = real
        .iter()
        .zip(truth)
        .enumerate()
        .map(|(i, (guess, (patient, keyword)))| match guess {
            Some((p, k)) if p == patient && k == keyword => {
                let group = &dummies[i * per_real..(i + 1) * per_real];
                let named: BTreeSet<(usize, &str)> =
                    group.iter().flatten().chain([&(*p, *k)]).copied().collect();
                1.0 / named.len() as f64
            }
            _ => 0.0,
        })
        .sum();
    recovered / truth.len().max(1) as f64
}

/// The fraction of searches whose (patient, keyword) `guesses` got right.
pub fn recovery_rate(guesses: &[Option<(usize, &str)>], truth: &[(usize, String)]) -> f64 {
    let right = guesses
        .iter()
        .zip(truth)
        .filter(|(guess, (patient, keyword))| {
            guess.is_some_and(|(p, k)| p == *patient && k == keyword)
        })
        .count();
    right as f64 / truth.len().max(1) as f64
}

/// **The volume attack on record lengths.** An attacker holding plaintexts (a leak of
/// the hospital's notes, say) without their record ids links each to the stored record
/// whose sealed size is the one its length seals to (the format is public, so
/// `sealed_len` says), when exactly one stored record has that size. Returns the
/// corpus positions it linked, each to itself (a unique size cannot link wrongly).
pub fn link_by_length(
    corpus: &Corpus,
    defence: Defence,
    sizes: &[u64],
    plaintexts: impl IntoIterator<Item = usize>,
) -> Vec<usize> {
    let provider = medvault::ProviderId::new("st-mary-hospital").unwrap();
    let key = medvault::RecordKey::from_bytes(
        provider,
        0,
        medvault::RecordId::from_bytes([0; 16]),
        [0; 32],
    );
    let mut records_of_size: HashMap<u64, usize> = HashMap::new();
    for size in sizes {
        *records_of_size.entry(*size).or_default() += 1;
    }
    plaintexts
        .into_iter()
        .filter(|&r| {
            // The attacker pads as the defence does (it knows the defence).
            let length = defence.padded(corpus.records[r].size);
            let sealed = medvault::sealed_len(&key, length).unwrap() as u64;
            records_of_size.get(&sealed) == Some(&1)
        })
        .collect()
}

/// **The co-occurrence attack** (Islam, Kuzu, Kantarcioglu, NDSS 2012). From the known
/// records the attacker estimates how often each pair of keywords occurs in the same
/// record (`background`, a fraction of records); from the answers, how often each pair
/// of searches returned the same record (a fraction of all `records` stored). It then
/// looks for the assignment of `candidates` to searches whose co-occurrences match best
/// (least squares), by simulated annealing from `seed`, with `steps` proposals.
/// Returns each search's keyword (the patient is not part of the guess: the attack
/// works on keywords alone, as published).
pub fn co_occurrence_attack<'a>(
    observed: &[Observed],
    known: &Known<'a>,
    records: usize,
    steps: usize,
    seed: u64,
) -> Vec<&'a str> {
    // The candidate keywords: the most frequent in the known records, as many as there
    // are distinct searches (the published setting), at least one.
    let mut frequency: HashMap<&'a str, usize> = HashMap::new();
    for record in known.records.values() {
        for keyword in &record.keywords {
            *frequency.entry(keyword).or_default() += 1;
        }
    }
    let mut candidates: Vec<(&'a str, usize)> = frequency.into_iter().collect();
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let distinct: BTreeSet<[u8; 32]> = observed.iter().map(|o| o.query).collect();
    candidates.truncate(distinct.len().max(1));
    let words: Vec<&'a str> = candidates.iter().map(|(k, _)| *k).collect();
    if words.is_empty() || observed.is_empty() {
        return vec![""; observed.len()];
    }
    let index: HashMap<&str, usize> = words.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let known_count = known.records.len().max(1) as f64;
    let mut background = vec![vec![0.0f64; words.len()]; words.len()];
    for record in known.records.values() {
        let present: Vec<usize> = record
            .keywords
            .iter()
            .filter_map(|k| index.get(k))
            .copied()
            .collect();
        for &a in &present {
            for &b in &present {
                background[a][b] += 1.0 / known_count;
            }
        }
    }
    let sets: Vec<BTreeSet<usize>> = observed
        .iter()
        .map(|o| o.results.iter().copied().collect())
        .collect();
    let n = observed.len();
    let mut seen = vec![vec![0.0f64; n]; n];
    for i in 0..n {
        for j in 0..n {
            seen[i][j] = sets[i].intersection(&sets[j]).count() as f64 / records.max(1) as f64;
        }
    }
    let cost_of = |i: usize, assignment: &[usize]| -> f64 {
        (0..n)
            .map(|j| {
                let d = seen[i][j] - background[assignment[i]][assignment[j]];
                d * d
            })
            .sum()
    };
    let mut rng = Rng::new(seed);
    let mut assignment: Vec<usize> = (0..n).map(|_| rng.below(words.len())).collect();
    let mut cost: f64 = (0..n).map(|i| cost_of(i, &assignment)).sum();
    let mut temperature = cost.max(1e-12) / n as f64;
    let (mut best, mut best_cost) = (assignment.clone(), cost);
    for _ in 0..steps {
        let i = rng.below(n);
        let before = assignment[i];
        let after = rng.below(words.len());
        if after == before {
            continue;
        }
        // Only row and column i change (the matrix is symmetric): twice row i, less
        // the diagonal counted twice.
        let old = 2.0 * cost_of(i, &assignment) - (seen[i][i] - background[before][before]).powi(2);
        assignment[i] = after;
        let new = 2.0 * cost_of(i, &assignment) - (seen[i][i] - background[after][after]).powi(2);
        let delta = new - old;
        if delta <= 0.0 || rng.unit() < (-delta / temperature).exp() {
            cost += delta;
            if cost < best_cost - 1e-15 {
                best_cost = cost;
                best.clone_from(&assignment);
            }
        } else {
            assignment[i] = before;
        }
        temperature *= 0.9995;
    }
    best.into_iter().map(|a| words[a]).collect()
}

/// The fraction of searches whose keyword `guesses` got right (patients aside).
pub fn keyword_rate(guesses: &[&str], truth: &[(usize, String)]) -> f64 {
    let right = guesses
        .iter()
        .zip(truth)
        .filter(|(guess, (_, keyword))| **guess == keyword)
        .count();
    right as f64 / truth.len().max(1) as f64
}

/// **The volume attack on result sizes** (in the spirit of Grubbs, Lacharité, Minaud,
/// Paterson, CCS 2018 / Blackstone, Kamara, Moataz, NDSS 2020): the attacker ignores
/// which records an answer holds and uses only its volume, the sum of the sealed sizes
/// of the records returned. From the known records it computes, for each (patient,
/// keyword), the volume an answer for it would have (their lengths, sealed as the
/// public format seals them); a search is recovered when exactly one (patient,
/// keyword) has its volume and it is the one asked.
pub fn volume_attack<'a>(
    corpus: &Corpus,
    observed: &[Observed],
    known: &Known<'a>,
    sizes: &[u64],
) -> Vec<Option<(usize, &'a str)>> {
    let provider = medvault::ProviderId::new("st-mary-hospital").unwrap();
    let key = medvault::RecordKey::from_bytes(
        provider,
        0,
        medvault::RecordId::from_bytes([0; 16]),
        [0; 32],
    );
    let mut volume_of: HashMap<(usize, &'a str), u64> = HashMap::new();
    for (&r, record) in &known.records {
        let length = known.defence.padded(corpus.records[r].size);
        let sealed = medvault::sealed_len(&key, length).unwrap() as u64;
        for keyword in &record.keywords {
            // What an answer for the keyword's term returns: with a defence that
            // widens answers, every record under the same term.
            *volume_of.entry((record.patient, keyword)).or_default() += sealed;
        }
    }
    if matches!(known.defence, Defence::PatientWide | Defence::Buckets(_)) {
        // The attacker knows the defence: an answer is everything under the term.
        let mut by_term: HashMap<(usize, String), u64> = HashMap::new();
        for (&r, record) in &known.records {
            let length = known.defence.padded(corpus.records[r].size);
            let sealed = medvault::sealed_len(&key, length).unwrap() as u64;
            for term in &record.terms {
                *by_term.entry((record.patient, term.clone())).or_default() += sealed;
            }
        }
        for ((patient, keyword), volume) in volume_of.iter_mut() {
            *volume = by_term[&(*patient, known.defence.term(keyword))];
        }
    }
    let mut candidates: HashMap<u64, Vec<(usize, &'a str)>> = HashMap::new();
    for (pair, volume) in volume_of {
        candidates.entry(volume).or_default().push(pair);
    }
    observed
        .iter()
        .map(|search| {
            let volume: u64 = search.results.iter().map(|&r| sizes[r]).sum();
            match candidates.get(&volume).map(Vec::as_slice) {
                Some([only]) => Some(*only),
                _ => None,
            }
        })
        .collect()
}
