//! A hospital's records for the leakage experiments, seeded: what each record is about,
//! never its text.
//!
//! The distribution (docs/leakage.md, "Corpus"):
//! - each patient has 1 to 11 records (uniform, mean 6);
//! - each patient has 1 to 4 conditions, drawn from 1,000 diagnosis codes by a Zipf law
//!   of exponent 1.1 (a few codes, hypertension-like, are very common; most are rare);
//! - each record is about 1 or 2 of its patient's conditions, and carries the common
//!   terms `visit` (90 % of records), `vitals` (50 %) and `medication` (30 %);
//! - 5 % of records are images of 20 to 200 KiB, the others notes of 200 to 3,000 bytes;
//! - each record is written on a day of the year (uniform, from a stream of its own so
//!   the rest does not depend on it), and records are uploaded in day order.

/// Days in the corpus's year.
pub const DAYS: u32 = 365;
/// Diagnosis codes in the vocabulary.
pub const CODES: usize = 1_000;
/// Terms most records carry, with the percentage of records that do.
pub const COMMON: [(&str, u64); 3] = [("visit", 90), ("vitals", 50), ("medication", 30)];

/// One record as its provider knows it (the cloud sees only its id and sealed size).
#[derive(Debug, Clone)]
pub struct PlainRecord {
    pub patient: usize,
    pub keywords: Vec<String>,
    /// Plaintext length in bytes.
    pub size: usize,
    /// The day of the year it was written (0 to 364): records are uploaded in day order.
    pub day: u32,
}

#[derive(Debug, Clone)]
pub struct Corpus {
    pub patients: usize,
    pub records: Vec<PlainRecord>,
}

/// splitmix64: small, seeded, and the same on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    /// A uniform float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The cumulative Zipf(1.1) weights of the codes, for sampling by binary search.
fn zipf_table() -> Vec<f64> {
    let mut total = 0.0;
    let mut table: Vec<f64> = (1..=CODES)
        .map(|rank| {
            total += 1.0 / (rank as f64).powf(1.1);
            total
        })
        .collect();
    for w in &mut table {
        *w /= total;
    }
    table
}

/// The name of code `rank` (0 = the most common).
pub fn code(rank: usize) -> String {
    format!("dx-{rank:04}")
}

/// `patients` patients' records, from `seed`.
pub fn hospital(patients: usize, seed: u64) -> Corpus {
    let mut rng = Rng::new(seed);
    let zipf = zipf_table();
    let mut records = Vec::new();
    for patient in 0..patients {
        let mut conditions: Vec<usize> = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let u = rng.unit();
            let rank = zipf.partition_point(|&w| w < u).min(CODES - 1);
            if !conditions.contains(&rank) {
                conditions.push(rank);
            }
        }
        for _ in 0..1 + rng.below(11) {
            let mut keywords: Vec<String> = Vec::new();
            for _ in 0..1 + rng.below(2) {
                let c = code(conditions[rng.below(conditions.len())]);
                if !keywords.contains(&c) {
                    keywords.push(c);
                }
            }
            for (term, percent) in COMMON {
                if rng.chance(percent) {
                    keywords.push(term.to_owned());
                }
            }
            let size = if rng.chance(5) {
                20_480 + rng.below(180 * 1024)
            } else {
                200 + rng.below(2_800)
            };
            records.push(PlainRecord {
                patient,
                keywords,
                size,
                day: 0,
            });
        }
    }
    let mut days = Rng::new(seed ^ 0xda7e);
    for record in &mut records {
        record.day = days.below(DAYS as usize) as u32;
    }
    // Stable: within a day, patient order.
    records.sort_by_key(|record| record.day);
    Corpus { patients, records }
}
