//! **File injection** (Zhang, Katz, Papamanthou, USENIX Security 2016) through a
//! provider the cloud controls, and the **cross-provider linkage** it buys.
//!
//! A clinic colludes with the cloud. The doctor holds keys at the hospital and at the
//! clinic for the same patients, so one query carries tokens for both, and the cloud
//! answers both parts together. For each targeted patient the clinic plants
//! `ceil(log2(V + 1))` records, record `j` indexed under every keyword whose number
//! (1 to V) has bit `j` set. Which of them a query's clinic part returns spells the
//! number of the keyword searched; the hospital's answer to the same query is then
//! known to be that patient's records with that keyword.
//!
//! Forward privacy: a token covers the epochs that existed when the doctor made it, and
//! each epoch's labels are unlinkable to the others', so replaying a query made before
//! the injection matches none of the planted records.
//!
//! The defence measured: the doctor asks the hospital alone (`Requester::query_at`),
//! so the clinic gets no token and none of its planted records can answer.

use std::collections::HashMap;

use medvault::{Combine, Identity, MasterKey, Provider, ProviderId, Requester};

use crate::corpus::Corpus;
use crate::observe::{Defence, EPOCH_RECORDS, cloud_with_clock, load, patient};

/// What the colluding provider and the cloud learned.
#[derive(Debug, Clone, Copy)]
pub struct Injection {
    /// Queries about targeted patients made before the injection, and how many of them
    /// a replay after it revealed.
    pub before: usize,
    pub before_learned: usize,
    /// Queries about targeted patients made after it, and how many it revealed.
    pub after: usize,
    pub after_learned: usize,
    /// The same queries asked of the hospital alone, and how many of them it revealed.
    pub scoped_learned: usize,
    /// Bytes of the answers, asked of both providers and of the hospital alone.
    pub answer_bytes: usize,
    pub scoped_answer_bytes: usize,
    /// Hospital records whose (patient, keyword) the revealed queries linked, and how
    /// many of those links were right.
    pub linked: usize,
    pub linked_right: usize,
    /// What the injection cost the clinic: records planted and index entries added.
    pub planted: usize,
    pub planted_entries: u64,
}

/// Runs the injection against `corpus` at the hospital: `before` queries, then the
/// clinic plants records for patients `0..targets`, then `after` queries. `vocabulary`
/// is every keyword the attacker wants to tell apart.
pub fn file_injection(
    corpus: &Corpus,
    vocabulary: &[String],
    targets: usize,
    before: &[(usize, String)],
    after: &[(usize, String)],
) -> Injection {
    let (cloud, clock) = cloud_with_clock();
    let hospital = load(
        &cloud,
        &clock,
        "st-mary-hospital",
        corpus,
        Defence::None,
        EPOCH_RECORDS,
    );
    // The clinic sees the same patients (it holds a record for each, as clinics do).
    let clinic_keys = Identity::generate_with_bits(2048).unwrap();
    let clinic_id = ProviderId::new("corner-clinic").unwrap();
    cloud
        .register_provider(clinic_id.clone(), clinic_keys.public())
        .unwrap();
    let mut clinic = Provider::new(
        clinic_id.clone(),
        MasterKey::from_bytes([0xc1; 32]),
        clinic_keys.signing.clone(),
    );
    let mut pending = Vec::new();
    for p in 0..corpus.patients {
        pending.push(
            clinic
                .add_record(&patient(p), b"walk-in visit", &["visit"])
                .unwrap(),
        );
    }
    cloud.ingest(clinic.finish().unwrap()).unwrap();
    for sealed in pending.drain(..) {
        cloud.put_record(sealed.bytes).unwrap();
    }

    let mut doctor = Requester::new();
    doctor
        .trust_provider(
            hospital.provider.id().clone(),
            hospital.keys.public().verifying,
        )
        .unwrap();
    doctor
        .trust_provider(clinic_id.clone(), clinic_keys.public().verifying)
        .unwrap();
    for p in 0..corpus.patients {
        doctor.add_patient_key(patient(p), hospital.provider.patient_key(&patient(p)));
        doctor.add_patient_key(patient(p), clinic.patient_key(&patient(p)));
    }
    let manifest = cloud.manifest();
    let made_before: Vec<_> = before
        .iter()
        .map(|(p, k)| {
            doctor
                .query(&patient(*p), &[k.as_str()], Combine::Or, &manifest)
                .unwrap()
        })
        .collect();

    // The injection: bit j of keyword number n (1 to V) set → n's keyword on record j.
    let number: HashMap<&str, usize> = vocabulary
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i + 1))
        .collect();
    let bits = usize::BITS as usize - vocabulary.len().leading_zeros() as usize;
    let mut planted_bit: HashMap<medvault::RecordId, usize> = HashMap::new();
    let entries_before: u64 = cloud.manifest().segments.iter().sum();
    for p in 0..targets {
        for j in 0..bits {
            let keywords: Vec<&str> = vocabulary
                .iter()
                .enumerate()
                .filter(|(i, _)| (i + 1) >> j & 1 == 1)
                .map(|(_, k)| k.as_str())
                .collect();
            let sealed = clinic
                .add_record(&patient(p), b"planted", &keywords)
                .unwrap();
            planted_bit.insert(sealed.id, j);
            pending.push(sealed);
        }
    }
    cloud.ingest(clinic.finish().unwrap()).unwrap();
    for sealed in pending.drain(..) {
        cloud.put_record(sealed.bytes).unwrap();
    }
    let planted_entries = cloud.manifest().segments.iter().sum::<u64>() - entries_before;

    // What the clinic's part of an answer spells, if anything.
    let decode = |response: &medvault::SearchResponse| -> Option<usize> {
        let clinic_part = response
            .providers
            .iter()
            .find(|p| p.provider == clinic_id)?;
        let n: usize = clinic_part
            .records
            .iter()
            .filter_map(|(id, _)| planted_bit.get(id))
            .map(|j| 1 << j)
            .sum();
        (n > 0).then_some(n)
    };
    let mut result = Injection {
        before: 0,
        before_learned: 0,
        after: 0,
        after_learned: 0,
        scoped_learned: 0,
        answer_bytes: 0,
        scoped_answer_bytes: 0,
        linked: 0,
        linked_right: 0,
        planted: planted_bit.len(),
        planted_entries,
    };
    // The cloud replays the queries it kept from before the injection.
    for ((p, keyword), prepared) in before.iter().zip(&made_before) {
        if *p >= targets {
            continue;
        }
        result.before += 1;
        let response = cloud.search(prepared.query()).unwrap();
        if let Some(n) = decode(&response)
            && Some(&n) == number.get(keyword.as_str())
        {
            result.before_learned += 1;
        }
    }
    let manifest = cloud.manifest();
    for (p, keyword) in after {
        if *p >= targets {
            continue;
        }
        result.after += 1;
        let prepared = doctor
            .query(&patient(*p), &[keyword.as_str()], Combine::Or, &manifest)
            .unwrap();
        let response = cloud.search(prepared.query()).unwrap();
        result.answer_bytes += response.to_bytes().len();
        let at_hospital = doctor
            .query_at(
                &patient(*p),
                &[keyword.as_str()],
                Combine::Or,
                &manifest,
                std::slice::from_ref(hospital.provider.id()),
            )
            .unwrap();
        let scoped = cloud.search(at_hospital.query()).unwrap();
        result.scoped_answer_bytes += scoped.to_bytes().len();
        if let Some(n) = decode(&scoped)
            && Some(&n) == number.get(keyword.as_str())
        {
            result.scoped_learned += 1;
        }
        let Some(n) = decode(&response) else {
            continue;
        };
        let learned = &vocabulary[n - 1];
        if learned == keyword {
            result.after_learned += 1;
        }
        // The hospital's part of the same answer: that patient's records with it.
        let hospital_part = response
            .providers
            .iter()
            .find(|part| &part.provider == hospital.provider.id());
        for (id, _) in hospital_part.map_or(&[][..], |part| &part.records[..]) {
            let record = &corpus.records[hospital.corpus_index[id]];
            result.linked += 1;
            if record.patient == *p && record.keywords.contains(learned) {
                result.linked_right += 1;
            }
        }
    }
    result
}
