//! The leakage harness (`examples/leakage_report/`) on cases whose answer is known by
//! hand, so a harness that recovers nothing because it is broken cannot pass; and end
//! to end through a real cloud, where the attack must recover most searches without a
//! defence and far fewer with one.

// The example's modules; what only its report uses is unused here.
#[allow(dead_code)]
#[path = "../examples/leakage_report/attacks.rs"]
mod attacks;
#[allow(dead_code)]
#[path = "../examples/leakage_report/corpus.rs"]
mod corpus;
#[allow(dead_code)]
#[path = "../examples/leakage_report/injection.rs"]
mod injection;
#[allow(dead_code)]
#[path = "../examples/leakage_report/observe.rs"]
mod observe;

use corpus::{Corpus, PlainRecord};
use observe::{Defence, Observed};

/// Patient 0: r0 {a, b}, r1 {a}, r2 {b, c}; patient 1: r3 {a}; all written on day 0.
fn tiny() -> Corpus {
    let record = |patient, keywords: &[&str]| PlainRecord {
        patient,
        keywords: keywords.iter().map(|k| k.to_string()).collect(),
        size: 100,
        day: 0,
    };
    Corpus {
        patients: 2,
        records: vec![
            record(0, &["a", "b"]),
            record(0, &["a"]),
            record(0, &["b", "c"]),
            record(1, &["a"]),
        ],
    }
}

/// The tiny corpus with its four records' plaintext lengths set.
fn tiny_with_sizes(sizes: [usize; 4]) -> Corpus {
    let mut corpus = tiny();
    for (record, size) in corpus.records.iter_mut().zip(sizes) {
        record.size = size;
    }
    corpus
}

/// A record key to seal the tiny corpus's records with, for their sealed lengths.
fn sealing_key() -> medvault::RecordKey {
    medvault::RecordKey::from_bytes(
        medvault::ProviderId::new("st-mary-hospital").unwrap(),
        0,
        medvault::RecordId::from_bytes([7; 16]),
        [7; 32],
    )
}

/// A search as the cloud would see it: `tag` stands for its query bytes.
fn seen(tag: u8, results: &[usize]) -> Observed {
    Observed {
        query: [tag; 32],
        results: results.to_vec(),
        ..Observed::default()
    }
}

/// A search as the index's keeper would see it: `tag` stands for its query bytes, and
/// a label found an entry in each of `epochs`.
fn probed(tag: u8, epochs: &[u32]) -> Observed {
    Observed {
        query: [tag; 32],
        found: epochs.iter().map(|&e| (e, 0)).collect(),
        ..Observed::default()
    }
}

/// Epochs `0..n`, epoch `e` ingested on the evening of day `e`.
fn daily_epochs(n: u32) -> Vec<observe::EpochSeen> {
    (0..n)
        .map(|e| observe::EpochSeen {
            epoch: e,
            at: observe::YEAR_START + u64::from(e) * observe::DAY + observe::DAY / 4,
            entries: 1,
            records: 1,
        })
        .collect()
}

fn truth(pairs: &[(usize, &str)]) -> Vec<(usize, String)> {
    pairs.iter().map(|(p, k)| (*p, k.to_string())).collect()
}

#[test]
fn the_count_attack_recovers_what_a_hand_count_recovers() {
    let corpus = tiny();
    // (p0, a) → {r0, r1}; (p0, b) → {r0, r2}; (p0, c) → {r2}; (p1, a) → {r3}; and
    // (p0, c) again, with the same query bytes.
    let observed = [
        seen(1, &[0, 1]),
        seen(2, &[0, 2]),
        seen(3, &[2]),
        seen(4, &[3]),
        seen(3, &[2]),
    ];
    let asked = truth(&[(0, "a"), (0, "b"), (0, "c"), (1, "a"), (0, "c")]);

    // Knowing r0 and r1: {a, b} ∩ {a} = a; for b, r1 has no b but r0 does and is in
    // the answer, while a is refused because r1 (known, with a) is not in it; nothing
    // known is in the other answers.
    let known = attacks::known_of(&corpus, Defence::None, [0, 1]);
    let guesses = attacks::count_attack(&observed, &known);
    assert_eq!(
        guesses,
        vec![Some((0, "a")), Some((0, "b")), None, None, None]
    );
    assert_eq!(attacks::recovery_rate(&guesses, &asked), 2.0 / 5.0);

    // Knowing everything: r2's {b, c} loses b (r0 has b and is not in the answer).
    let all = attacks::known_of(&corpus, Defence::None, 0..4);
    let guesses = attacks::count_attack(&observed, &all);
    assert_eq!(attacks::recovery_rate(&guesses, &asked), 1.0);

    // The search pattern: knowing only r2, the first (p0, c) search is ambiguous
    // ({b, c}); none resolves it, so neither is its repeat.
    let only_r2 = attacks::known_of(&corpus, Defence::None, [2]);
    let guesses = attacks::count_attack(&observed, &only_r2);
    assert_eq!(guesses[2], None);
    assert_eq!(guesses[4], None);
    // Knowing r2 and r0, the first (p0, c) is resolved (b is refused: r0 has it and is
    // not in the answer), and its repeat with the same bytes inherits it.
    let r0_r2 = attacks::known_of(&corpus, Defence::None, [0, 2]);
    let guesses = attacks::count_attack(&observed, &r0_r2);
    assert_eq!(guesses[2], Some((0, "c")));
    assert_eq!(guesses[4], Some((0, "c")));
}

#[test]
fn patient_wide_answers_leave_the_count_attack_only_a_patients_keywords() {
    let corpus = tiny();
    // Every search for patient 0 answers all three of its records.
    let observed = [
        seen(9, &[0, 1, 2]),
        seen(9, &[0, 1, 2]),
        seen(9, &[0, 1, 2]),
    ];
    let asked = truth(&[(0, "a"), (0, "b"), (0, "c")]);
    // Knowing r0 and r1: the keywords {a, b} are all candidates: nothing recovered.
    let known = attacks::known_of(&corpus, Defence::PatientWide, [0, 1]);
    let guesses = attacks::count_attack(&observed, &known);
    assert_eq!(guesses, vec![None, None, None]);
    // Knowing only r1: its one keyword is the only candidate; it is right once in three.
    let known = attacks::known_of(&corpus, Defence::PatientWide, [1]);
    let guesses = attacks::count_attack(&observed, &known);
    assert_eq!(guesses, vec![Some((0, "a")); 3]);
    assert!((attacks::recovery_rate(&guesses, &asked) - 1.0 / 3.0).abs() < 1e-9);
}

#[test]
fn record_lengths_link_plaintexts_to_records_unless_padded() {
    let corpus = tiny_with_sizes([100, 100, 250, 4000]);
    let key = sealing_key();
    let sealed = |defence: Defence| -> Vec<u64> {
        corpus
            .records
            .iter()
            .map(|r| medvault::sealed_len(&key, defence.padded(r.size)).unwrap() as u64)
            .collect()
    };
    // The two 100-byte notes share a size; the others are unique.
    let linked = attacks::link_by_length(&corpus, Defence::None, &sealed(Defence::None), 0..4);
    assert_eq!(linked, vec![2, 3]);
    // Padded to 4 KiB, all four are sealed to one size.
    let padded = Defence::PaddedSizes(4096);
    assert!(attacks::link_by_length(&corpus, padded, &sealed(padded), 0..4).is_empty());
}

#[test]
fn through_a_real_cloud_the_attack_recovers_searches_and_defences_cut_it() {
    let corpus = corpus::hospital(40, 7);
    let mut rng = corpus::Rng::new(11);
    let queries: Vec<(usize, String)> = (0..120)
        .map(|_| {
            let record = &corpus.records[rng.below(corpus.records.len())];
            let keyword = &record.keywords[rng.below(record.keywords.len())];
            (record.patient, keyword.clone())
        })
        .collect();
    let rate = |defence: Defence, percent: u64| {
        let observation = observe::observe(&corpus, defence, observe::EPOCH_RECORDS, &queries, &[]);
        let (observed, costs) = (&observation.searches, observation.costs);
        assert_eq!(observed.len(), queries.len());
        // Every answer holds the records the plaintext index gives (and, with a
        // defence, more of the patient's).
        for (search, (patient, keyword)) in observed.iter().zip(&queries) {
            let expected = corpus
                .records
                .iter()
                .enumerate()
                .filter(|(_, r)| r.patient == *patient && r.keywords.contains(keyword))
                .map(|(i, _)| i);
            for r in expected {
                assert!(
                    search.results.contains(&r),
                    "{defence:?}: record {r} missing"
                );
            }
            assert!(
                search
                    .results
                    .iter()
                    .all(|&r| corpus.records[r].patient == *patient)
            );
        }
        let known = attacks::known_sample(&corpus, defence, percent, 3);
        let linked = attacks::link_by_length(
            &corpus,
            defence,
            &observation.sizes,
            known.records.keys().copied(),
        );
        let linked = linked.len() as f64 / known.records.len().max(1) as f64;
        (
            attacks::recovery_rate(&attacks::count_attack(observed, &known), &queries),
            costs,
            linked,
        )
    };
    let (none_all, none_costs, none_linked) = rate(Defence::None, 100);
    let (none_half, _, _) = rate(Defence::None, 50);
    let (wide_all, wide_costs, _) = rate(Defence::PatientWide, 100);
    let (_, padded_costs, padded_linked) = rate(Defence::PaddedSizes(4096), 100);
    // Lengths name most records; padded to 4 KiB, few.
    assert!(none_linked > 0.5, "linked by length: {none_linked}");
    assert!(padded_linked < none_linked / 4.0, "padded: {padded_linked}");
    assert!(padded_costs.stored_bytes > none_costs.stored_bytes);
    assert!(
        none_all > 0.6,
        "without a defence, knowing everything: {none_all}"
    );
    assert!(
        none_half > 0.2 && none_half <= none_all,
        "half known: {none_half}"
    );
    assert!(
        wide_all < none_all / 2.0,
        "patient-wide answers: {wide_all}"
    );
    assert!(wide_costs.opened_per_wanted > none_costs.opened_per_wanted);
    assert!((none_costs.opened_per_wanted - 1.0).abs() < 1e-9);
}

#[test]
fn planted_records_reveal_later_searches_but_not_earlier_ones() {
    let corpus = tiny();
    let vocabulary: Vec<String> = ["a", "b", "c"].iter().map(|k| k.to_string()).collect();
    let before = truth(&[(0, "a"), (0, "b"), (1, "a")]);
    let after = truth(&[(0, "a"), (0, "b"), (0, "c"), (1, "a")]);
    let result = injection::file_injection(&corpus, &vocabulary, 2, &before, &after);
    // Two bits tell three keywords apart: two planted records per targeted patient.
    assert_eq!(result.planted, 4);
    // Forward privacy: the earlier tokens cover none of the planted records.
    assert_eq!((result.before, result.before_learned), (3, 0));
    assert_eq!((result.after, result.after_learned), (4, 4));
    // (0, a) → r0, r1; (0, b) → r0, r2; (0, c) → r2; (1, a) → r3: all labelled right.
    assert_eq!((result.linked, result.linked_right), (6, 6));
    // Asked of the hospital alone, the clinic gets no token: nothing revealed, and
    // the answers are smaller by the clinic's part.
    assert_eq!(result.scoped_learned, 0);
    assert!(result.scoped_answer_bytes < result.answer_bytes);
}

/// Days 0 to 3, an epoch a day. Patient 0: day 0 {a, b}, day 1 {a}, day 2 {b};
/// patient 1: day 1 {b}, day 3 {a}.
fn four_days() -> Corpus {
    let record = |patient, day, keywords: &[&str]| PlainRecord {
        patient,
        keywords: keywords.iter().map(|k| k.to_string()).collect(),
        size: 100,
        day,
    };
    Corpus {
        patients: 2,
        records: vec![
            record(0, 0, &["a", "b"]),
            record(0, 1, &["a"]),
            record(1, 1, &["b"]),
            record(0, 2, &["b"]),
            record(1, 3, &["a"]),
        ],
    }
}

#[test]
fn the_epoch_pattern_attack_recovers_what_a_hand_count_recovers() {
    let corpus = four_days();
    let epochs = daily_epochs(4);
    // Records of day d are in epoch d; a day before the first epoch's is in it too.
    assert_eq!(observe::epoch_of_day(&epochs, 2), Some(2));
    assert_eq!(observe::epoch_of_day(&epochs, 4), None);
    let everything = attacks::known_of(&corpus, Defence::None, 0..5);
    let searches = [
        // (0, a): epochs {0, 1}. (0, a) fits with two, (1, b) = {1} with one: (0, a).
        probed(1, &[0, 1]),
        // (0, b): {0, 2}. Only (0, b) fits; (0, a) would need epoch 1.
        probed(2, &[0, 2]),
        // (1, a): the only pair in epoch 3.
        probed(3, &[3]),
        // (1, b): {1}. Only (1, b) fits; (0, a) would need epoch 0.
        probed(4, &[1]),
        // The same query bytes as the first.
        probed(1, &[0, 1]),
    ];
    let alone: Vec<Vec<&Observed>> = searches.iter().map(|s| vec![s]).collect();
    let named = attacks::epoch_pattern_attack(&alone, &everything, &epochs);
    assert_eq!(named[0], [(0, "a")]);
    assert_eq!(named[1], [(0, "b")]);
    assert_eq!(named[2], [(1, "a")]);
    assert_eq!(named[3], [(1, "b")]);
    assert_eq!(named[4], [(0, "a")]);
    let asked = truth(&[(0, "a"), (0, "b"), (1, "a"), (1, "b"), (0, "a")]);
    let each: Vec<usize> = (0..5).collect();
    assert_eq!(attacks::named_rate(&named, &each, &asked, false), 1.0);

    // Knowing only day 1's records: (0, a) and (1, b) both account for epoch 1 alone,
    // a tie, so a search that hit it names nobody; (0, b) and (1, a) are unknown.
    let day_one = attacks::known_of(&corpus, Defence::None, [1, 2]);
    let named = attacks::epoch_pattern_attack(&alone, &day_one, &epochs);
    assert!(named.iter().all(Vec::is_empty), "{named:?}");

    // Two searches sent together, (0, a) and (1, b): the union {0, 1} is seen, where
    // exactly those two fit, so both are named.
    let together = vec![vec![&searches[0], &searches[3]]];
    let named = attacks::epoch_pattern_attack(&together, &everything, &epochs);
    assert_eq!(named[0], [(0, "a"), (1, "b")]);
    // (0, b) and (1, a) together: the union {0, 2, 3}, where they are the two that fit.
    let other_two = vec![vec![&searches[1], &searches[2]]];
    let named_other = attacks::epoch_pattern_attack(&other_two, &everything, &epochs);
    assert_eq!(named_other[0], [(0, "b"), (1, "a")]);
    // Three searches sent together, the union {0, 1, 2}: (0, a) and (0, b) fit with two
    // epochs, (1, b) with one; the three named hold the two asked.
    let three = vec![vec![&searches[0], &searches[1], &searches[0]]];
    let named_three = attacks::epoch_pattern_attack(&three, &everything, &epochs);
    assert_eq!(named_three[0], [(0, "a"), (0, "b"), (1, "b")]);
    let asked_together = truth(&[(0, "a"), (1, "b")]);
    assert_eq!(
        attacks::named_rate(&named, &[0, 0], &asked_together, false),
        1.0
    );
    // The same pair sent with a dummy: the attacker names both and cannot tell which
    // was asked, so each real search counts a half.
    assert_eq!(
        attacks::named_rate(&named, &[0], &truth(&[(0, "a")]), true),
        0.5
    );
    // The count attack's guesses diluted by dummies: search 0 guessed right, with one
    // dummy naming another pair and one the same pair (two pairs: a half); search 1
    // right with dummies that named nothing (whole); search 2 wrong (nothing).
    let real = [Some((0, "a")), Some((1, "b")), Some((0, "b"))];
    let dummies = [
        Some((1, "a")),
        Some((0, "a")),
        None,
        None,
        None,
        Some((0, "a")),
    ];
    let asked = truth(&[(0, "a"), (1, "b"), (0, "c")]);
    assert_eq!(
        attacks::diluted_rate(&real, &dummies, 2, &asked),
        (0.5 + 1.0) / 3.0
    );
    // Patient-wide answers: every record under one term, so a search hits all of its
    // patient's epochs and the pair that fits names every keyword of the patient, more
    // than one search can hold: nothing named.
    let wide = attacks::known_of(&corpus, Defence::PatientWide, 0..5);
    let patient_wide = [probed(6, &[0, 1, 2]), probed(7, &[1, 3])];
    let alone: Vec<Vec<&Observed>> = patient_wide.iter().map(|s| vec![s]).collect();
    let named = attacks::epoch_pattern_attack(&alone, &wide, &epochs);
    assert!(named.iter().all(Vec::is_empty), "{named:?}");
}

#[test]
fn the_co_occurrence_attack_finds_the_one_assignment_that_fits() {
    // One patient: x in four records, y in two, z in one, never together.
    let record = |keywords: &[&str]| PlainRecord {
        patient: 0,
        keywords: keywords.iter().map(|k| k.to_string()).collect(),
        size: 100,
        day: 0,
    };
    let corpus = Corpus {
        patients: 1,
        records: vec![
            record(&["x"]),
            record(&["x"]),
            record(&["x"]),
            record(&["x"]),
            record(&["y"]),
            record(&["y"]),
            record(&["z"]),
        ],
    };
    let observed = [seen(1, &[4, 5]), seen(2, &[6]), seen(3, &[0, 1, 2, 3])];
    let asked = truth(&[(0, "y"), (0, "z"), (0, "x")]);
    let known = attacks::known_of(&corpus, Defence::None, 0..7);
    let guesses = attacks::co_occurrence_attack(&observed, &known, 7, 3_000, 1);
    assert_eq!(guesses, vec!["y", "z", "x"]);
    assert_eq!(attacks::keyword_rate(&guesses, &asked), 1.0);
    // Knowing nothing, it has no keyword to guess.
    let none = attacks::known_of(&corpus, Defence::None, []);
    let guesses = attacks::co_occurrence_attack(&observed, &none, 7, 3_000, 1);
    assert_eq!(attacks::keyword_rate(&guesses, &asked), 0.0);
}

#[test]
fn the_volume_attack_recovers_searches_whose_answer_size_is_unique() {
    let corpus = tiny_with_sizes([100, 200, 400, 800]);
    let key = sealing_key();
    let sizes: Vec<u64> = corpus
        .records
        .iter()
        .map(|r| medvault::sealed_len(&key, r.size).unwrap() as u64)
        .collect();
    // (p0, a) → r0 + r1; (p0, b) → r0 + r2; (p0, c) → r2; (p1, a) → r3: every volume
    // is a different sum, so knowing every record recovers all four.
    let observed = [
        seen(1, &[0, 1]),
        seen(2, &[0, 2]),
        seen(3, &[2]),
        seen(4, &[3]),
    ];
    let asked = truth(&[(0, "a"), (0, "b"), (0, "c"), (1, "a")]);
    let all = attacks::known_of(&corpus, Defence::None, 0..4);
    let guesses = attacks::volume_attack(&corpus, &observed, &all, &sizes);
    assert_eq!(attacks::recovery_rate(&guesses, &asked), 1.0);
    // Without r1 the attacker computes (p0, a) as r0 alone: that volume is no answer's.
    let partial = attacks::known_of(&corpus, Defence::None, [0, 2, 3]);
    let guesses = attacks::volume_attack(&corpus, &observed, &partial, &sizes);
    assert_eq!(guesses[0], None);
    assert_eq!(guesses[1], Some((0, "b")));
}

/// The transcript through a real cloud holds the timing of epochs and the labels
/// probed as they are: each record was uploaded with its epoch, each search probed one
/// missing label per epoch and found entries exactly in the epochs of its answer's
/// records. From that alone (no record ids), the epoch-pattern attack recovers most
/// searches when uploads come daily, and none under patient-wide answers.
#[test]
fn through_a_real_cloud_the_index_keeper_learns_the_epochs_hit() {
    let corpus = corpus::hospital(40, 5);
    let mut rng = corpus::Rng::new(13);
    let queries: Vec<(usize, String)> = (0..80)
        .map(|_| {
            let record = &corpus.records[rng.below(corpus.records.len())];
            let keyword = &record.keywords[rng.below(record.keywords.len())];
            (record.patient, keyword.clone())
        })
        .collect();
    let each: Vec<usize> = (0..queries.len()).collect();
    let rate = |defence: Defence| {
        let observation = observe::observe(&corpus, defence, 1, &queries, &[]);
        let epochs = &observation.epochs;
        assert!(epochs.len() > 100, "a batch a day: {} epochs", epochs.len());
        assert!(epochs.windows(2).all(|w| w[0].at < w[1].at));
        assert_eq!(
            epochs.iter().map(|e| e.records).sum::<usize>(),
            corpus.records.len()
        );
        for (r, record) in corpus.records.iter().enumerate() {
            let epoch = observe::epoch_of_day(epochs, record.day).unwrap();
            assert_eq!(observation.uploaded_at[r], epochs[epoch as usize].at);
        }
        for search in &observation.searches {
            assert_eq!(search.missed.len(), epochs.len(), "a miss per epoch");
            assert_eq!(search.labels_probed(), search.found.len() + epochs.len());
            let of_answer: std::collections::BTreeSet<u32> = search
                .results
                .iter()
                .map(|&r| observe::epoch_of_day(epochs, corpus.records[r].day).unwrap())
                .collect();
            assert_eq!(search.epochs_hit(), of_answer);
        }
        let known = attacks::known_sample(&corpus, defence, 100, 3);
        let alone: Vec<Vec<&Observed>> = observation.searches.iter().map(|s| vec![s]).collect();
        let named = attacks::epoch_pattern_attack(&alone, &known, epochs);
        attacks::named_rate(&named, &each, &queries, false)
    };
    let none = rate(Defence::None);
    assert!(none > 0.5, "an epoch a day, everything known: {none}");
    assert_eq!(rate(Defence::PatientWide), 0.0);
}
