//! A provider's postings waiting for its next index batch.
//!
//! Postings arrive a record at a time, each for several (patient, keyword) lists, and
//! leave grouped by list when the batch is built. They are kept flat: one vector of
//! postings tagged with their list's number, each patient and keyword stored once.
//! One small vector per list instead costs an allocation to queue and a scattered free
//! per list; a batch of 100,000 one-posting lists then spent a tenth of its build time
//! freeing its queue.
//!
//! The queue's copies of patient ids and keywords are wiped when it is dropped.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use zeroize::Zeroize;

use crate::index::{Op, Posting};
use crate::keys::{PatientId, RecordId};

/// The queue of one batch.
#[derive(Default)]
pub(crate) struct Queue {
    /// The batch's patients and normalized keywords, each numbered once, in order of
    /// arrival.
    patients: Numbered<PatientId>,
    keywords: Numbered<QueuedKeyword>,
    /// Each list's (patient, keyword) numbers, by list number.
    lists: Vec<(usize, usize)>,
    /// By patient number: the list number of each of the patient's keyword numbers
    /// (small maps, touched while that patient's records arrive, stay in cache).
    lists_of_patient: Vec<HashMap<usize, usize, BuildHasherDefault<NumberHasher>>>,
    /// Each list's latest posting: an immediate repeat of it is queued once.
    latest: Vec<Posting>,
    /// Every posting with its list's number, in order of arrival.
    postings: Vec<(usize, Posting)>,
}

/// Hashes the queue's own keyword numbers with one multiplication. They are handed
/// out `0, 1, 2, …`, so no input can choose them to collide, and keyed hashing (which
/// the patient ids and keyword texts keep) is not needed here.
#[derive(Default)]
struct NumberHasher(u64);

impl Hasher for NumberHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(byte));
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: odd, so distinct numbers keep distinct low bits.
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// Values numbered `0, 1, 2, …` in order of arrival.
struct Numbered<T> {
    values: Vec<T>,
    numbers: HashMap<T, usize>,
}

impl<T> Default for Numbered<T> {
    fn default() -> Self {
        Numbered {
            values: Vec::new(),
            numbers: HashMap::new(),
        }
    }
}

impl<T: Hash + Eq + Clone> Numbered<T> {
    /// The number of `value`, given one (and a copy made by `own`) if it is new; then
    /// also `true`.
    fn number<Q>(&mut self, value: &Q, own: impl Fn(&Q) -> T) -> (usize, bool)
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(&number) = self.numbers.get(value) {
            return (number, false);
        }
        let number = self.values.len();
        let owned = own(value);
        self.values.push(owned.clone());
        self.numbers.insert(owned, number);
        (number, true)
    }
}

/// A queued keyword's text, wiped when the queue is dropped (keywords name diagnoses
/// and drugs; patient ids wipe themselves).
#[derive(Clone, PartialEq, Eq, Hash)]
struct QueuedKeyword(String);

impl Borrow<str> for QueuedKeyword {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Drop for QueuedKeyword {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The postings of a queue grouped by list (see [`Queue::grouped`]).
pub(crate) struct Grouped {
    postings: Vec<Posting>,
    /// List `i` holds `postings[bounds[i]..bounds[i + 1]]`.
    bounds: Vec<usize>,
}

/// One (patient, keyword) list of the batch.
pub(crate) struct List<'a> {
    /// The patient's position in [`Queue::patients`].
    pub(crate) patient: usize,
    pub(crate) keyword: &'a str,
    /// In order of arrival.
    pub(crate) postings: &'a [Posting],
}

impl Queue {
    /// Queues `(record, op)` for each of `keywords` (normalized, no duplicates) of
    /// `patient`, unless it repeats that list's latest posting.
    pub(crate) fn push(
        &mut self,
        patient: &PatientId,
        record: RecordId,
        keywords: &[String],
        op: Op,
    ) {
        if keywords.is_empty() {
            return;
        }
        let (patient, new) = self.patients.number(patient, PatientId::clone);
        if new {
            self.lists_of_patient.push(HashMap::default());
        }
        let lists_of_patient = &mut self.lists_of_patient[patient];
        let posting = (record, op);
        for keyword in keywords {
            let (keyword, _) = self
                .keywords
                .number(keyword.as_str(), |text| QueuedKeyword(text.to_owned()));
            let list = match lists_of_patient.get(&keyword) {
                Some(&list) => {
                    if self.latest[list] == posting {
                        continue;
                    }
                    self.latest[list] = posting;
                    list
                }
                None => {
                    let list = self.lists.len();
                    self.lists.push((patient, keyword));
                    self.latest.push(posting);
                    lists_of_patient.insert(keyword, list);
                    list
                }
            };
            self.postings.push((list, posting));
        }
    }

    /// Postings queued.
    pub(crate) fn len(&self) -> usize {
        self.postings.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.postings.is_empty()
    }

    /// (Patient, keyword) lists queued.
    pub(crate) fn list_count(&self) -> usize {
        self.lists.len()
    }

    /// The batch's patients, each once.
    pub(crate) fn patients(&self) -> &[PatientId] {
        &self.patients.values
    }

    /// The postings grouped by list, each list's in order of arrival (a counting sort:
    /// one pass to count, one to place).
    pub(crate) fn grouped(&self) -> Grouped {
        let mut bounds = vec![0usize; self.lists.len() + 1];
        for &(list, _) in &self.postings {
            bounds[list + 1] += 1;
        }
        for i in 1..bounds.len() {
            bounds[i] += bounds[i - 1];
        }
        let mut next = bounds.clone();
        let mut postings = vec![(RecordId::from_bytes([0; 16]), Op::Add); self.postings.len()];
        for &(list, posting) in &self.postings {
            postings[next[list]] = posting;
            next[list] += 1;
        }
        Grouped { postings, bounds }
    }

    /// Every list, in order of first arrival, with its postings from `grouped` (which
    /// [`Queue::grouped`] made from this queue).
    pub(crate) fn lists<'a>(&'a self, grouped: &'a Grouped) -> impl Iterator<Item = List<'a>> {
        (0..self.lists.len()).map(move |i| self.list(grouped, i))
    }

    /// List `i` (below [`Queue::list_count`]) with its postings from `grouped`.
    pub(crate) fn list<'a>(&'a self, grouped: &'a Grouped, i: usize) -> List<'a> {
        let (patient, keyword) = self.lists[i];
        List {
            patient,
            keyword: &self.keywords.values[keyword].0,
            postings: &grouped.postings[grouped.bounds[i]..grouped.bounds[i + 1]],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient(name: &str) -> PatientId {
        PatientId::new(name).unwrap()
    }

    fn record(n: u8) -> RecordId {
        RecordId::from_bytes([n; 16])
    }

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| w.to_string()).collect()
    }

    /// (patient, keyword, postings) of every list, in the queue's order.
    fn contents(queue: &Queue) -> Vec<(PatientId, String, Vec<Posting>)> {
        let grouped = queue.grouped();
        queue
            .lists(&grouped)
            .map(|list| {
                (
                    queue.patients()[list.patient].clone(),
                    list.keyword.to_owned(),
                    list.postings.to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn an_empty_queue_has_no_lists() {
        let mut queue = Queue::default();
        // A record without keywords queues nothing, not even its patient.
        queue.push(&patient("alice"), record(1), &[], Op::Add);
        assert!(queue.patients().is_empty());
        assert!(queue.is_empty());
        assert_eq!(queue.len(), 0);
        assert_eq!(queue.list_count(), 0);
        assert!(contents(&queue).is_empty());
    }

    #[test]
    fn interleaved_postings_come_out_grouped_in_arrival_order() {
        let mut queue = Queue::default();
        let (alice, bob) = (patient("alice"), patient("bob"));
        queue.push(&alice, record(1), &words(&["flu", "fever"]), Op::Add);
        queue.push(&bob, record(2), &words(&["flu"]), Op::Add);
        queue.push(&alice, record(3), &words(&["fever"]), Op::Add);
        queue.push(&alice, record(1), &words(&["flu"]), Op::Delete);
        queue.push(&bob, record(4), &words(&["cough", "flu"]), Op::Add);
        assert_eq!(queue.len(), 7);
        assert_eq!(queue.list_count(), 4);
        assert_eq!(queue.patients().len(), 2);
        assert_eq!(
            contents(&queue),
            vec![
                (
                    alice.clone(),
                    "flu".into(),
                    vec![(record(1), Op::Add), (record(1), Op::Delete)]
                ),
                (
                    alice.clone(),
                    "fever".into(),
                    vec![(record(1), Op::Add), (record(3), Op::Add)]
                ),
                (
                    bob.clone(),
                    "flu".into(),
                    vec![(record(2), Op::Add), (record(4), Op::Add)]
                ),
                (bob.clone(), "cough".into(), vec![(record(4), Op::Add)]),
            ]
        );
    }

    #[test]
    fn only_an_immediate_repeat_is_dropped() {
        let mut queue = Queue::default();
        let alice = patient("alice");
        for (n, op) in [
            (1, Op::Add),
            (1, Op::Add),
            (1, Op::Delete),
            (1, Op::Add),
            (2, Op::Add),
            (2, Op::Add),
        ] {
            queue.push(&alice, record(n), &words(&["flu"]), op);
        }
        // Another list's postings in between do not hide a repeat.
        queue.push(&alice, record(9), &words(&["fever"]), Op::Add);
        queue.push(&alice, record(2), &words(&["flu"]), Op::Add);
        assert_eq!(
            contents(&queue)[0].2,
            vec![
                (record(1), Op::Add),
                (record(1), Op::Delete),
                (record(1), Op::Add),
                (record(2), Op::Add),
            ]
        );
        assert_eq!(queue.len(), 5);
    }

    #[test]
    fn many_lists_group_like_a_stable_sort() {
        let mut queue = Queue::default();
        let patients: Vec<PatientId> = (0..7).map(|i| patient(&format!("p{i}"))).collect();
        let vocabulary = words(&["a", "b", "c", "d", "e"]);
        let mut expected: Vec<((usize, usize), Posting)> = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for n in 0..2000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let p = (seed % 7) as usize;
            let k = ((seed >> 8) % 5) as usize;
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&n.to_be_bytes());
            let posting = (RecordId::from_bytes(id), Op::Add);
            queue.push(&patients[p], posting.0, &vocabulary[k..=k], Op::Add);
            expected.push(((p, k), posting));
        }
        assert_eq!(queue.len(), 2000);
        let grouped = queue.grouped();
        let mut seen = 0;
        for list in queue.lists(&grouped) {
            let name = queue.patients()[list.patient].clone();
            let p = patients.iter().position(|q| *q == name).unwrap();
            let k = vocabulary.iter().position(|w| w == list.keyword).unwrap();
            let want: Vec<Posting> = expected
                .iter()
                .filter(|(key, _)| *key == (p, k))
                .map(|(_, posting)| *posting)
                .collect();
            assert_eq!(list.postings, &want[..]);
            seen += want.len();
        }
        assert_eq!(seen, 2000);
    }
}
