//! The entries of one epoch's posting list: for one patient `u`, keyword `w` and epoch
//! `e`, the GGM leaf `leaf(w, e)` keys an AES-256 instance `A` used as a PRF on
//! domain-separated single blocks:
//!
//! * `label_i = A(01 ‖ 0³ ‖ 0⁴ ‖ 0⁴ ‖ [i]₃₂)`: where block `i` of the posting list lives;
//! * `value_i = block_i ⊕ (A(02 ‖ 0³ ‖ [j]₃₂ ‖ 0⁴ ‖ [i]₃₂) for j = 0..5)[..68]`.
//!
//! `block_i` packs [`ENTRIES_PER_BLOCK`] entries `op ‖ record_id` (`op` 1 = add,
//! 2 = delete, 0 = empty slot), so every value in every segment is [`VALUE_LEN`] bytes.
//! A single-block PRF call on AES is a PRF up to the birthday bound (2⁶⁴ blocks per leaf),
//! far beyond any posting list.

use aes::Aes256Enc;
use cipher::{Array, BlockCipherEncrypt, KeyInit, consts::U16};
use zeroize::Zeroize;

use crate::crypto::ggm::NodeKey;
use crate::error::{Error, Result};
use crate::keys::RecordId;

/// Bytes of a label.
pub const LABEL_LEN: usize = 16;
/// Entries packed in one value block.
pub const ENTRIES_PER_BLOCK: usize = 4;
/// Bytes of one packed entry: op ‖ record id.
pub const ENTRY_LEN: usize = 1 + 16;
/// Bytes of every value.
pub const VALUE_LEN: usize = ENTRIES_PER_BLOCK * ENTRY_LEN;
/// Bytes of one label-value pair on the wire.
pub const PAIR_LEN: usize = LABEL_LEN + VALUE_LEN;

/// Magic bytes of an index batch.
pub const BATCH_MAGIC: &[u8; 4] = b"MVIB";
/// Version of the batch format.
pub const INDEX_VERSION: u8 = 2;
/// Algorithm id: GGM over AES-256, AES-256 block PRF labels, 4-entry packed values.
pub const ALG_GGM_AES256_PACKED4: u8 = 1;

/// A label.
pub type Label = [u8; LABEL_LEN];
/// An encrypted packed block.
pub type Value = [u8; VALUE_LEN];

/// What an index entry says about a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// The record has the keyword.
    Add,
    /// The record no longer has the keyword (from this epoch on).
    Delete,
}

impl Op {
    pub(crate) fn code(self) -> u8 {
        match self {
            Op::Add => 1,
            Op::Delete => 2,
        }
    }
}

/// One decrypted entry: a record id and what happened to it.
pub type Posting = (RecordId, Op);

/// The per-(patient, keyword, epoch) PRF: the leaf key as an AES-256 instance.
pub(crate) struct EpochKey(Aes256Enc);

impl EpochKey {
    pub(crate) fn new(leaf: &NodeKey) -> Self {
        EpochKey(Aes256Enc::new(&leaf.0.into()))
    }

    pub(crate) fn label(&self, i: u32) -> Label {
        let mut block = [0u8; 16];
        block[0] = 1;
        block[12..].copy_from_slice(&i.to_be_bytes());
        let mut block = Array::from(block);
        self.0.encrypt_block(&mut block);
        block.into()
    }

    fn keystream(&self, i: u32) -> [u8; 80] {
        let mut out = [0u8; 80];
        for (j, counter) in out.chunks_exact_mut(16).enumerate() {
            counter[0] = 2;
            counter[4..8].copy_from_slice(&(j as u32).to_be_bytes());
            counter[12..].copy_from_slice(&i.to_be_bytes());
        }
        // Encrypted in place: no copy of the keystream is left behind.
        let (blocks, _) = Array::<u8, U16>::slice_as_chunks_mut(&mut out);
        self.0.encrypt_blocks(blocks);
        out
    }

    /// Encrypts block `i` of a posting list (at most [`ENTRIES_PER_BLOCK`] entries).
    pub(crate) fn seal_block(&self, i: u32, postings: &[Posting]) -> Value {
        debug_assert!(postings.len() <= ENTRIES_PER_BLOCK);
        let mut value = [0u8; VALUE_LEN];
        for (slot, (record, op)) in value.chunks_exact_mut(ENTRY_LEN).zip(postings) {
            slot[0] = op.code();
            slot[1..].copy_from_slice(record.as_bytes());
        }
        let stream = self.keystream(i);
        for (v, k) in value.iter_mut().zip(stream.iter()) {
            *v ^= k;
        }
        value
    }

    /// Decrypts block `i`, appending its entries to `out`.
    pub(crate) fn open_block(&self, i: u32, value: &Value, out: &mut Vec<Posting>) -> Result<()> {
        let mut plain = *value;
        for (v, k) in plain.iter_mut().zip(self.keystream(i).iter()) {
            *v ^= k;
        }
        for slot in plain.chunks_exact(ENTRY_LEN) {
            let op = match slot[0] {
                0 => continue,
                1 => Op::Add,
                2 => Op::Delete,
                _ => {
                    return Err(Error::Corrupt {
                        what: "index entry (undecodable block)".to_owned(),
                    });
                }
            };
            let mut id = [0u8; 16];
            id.copy_from_slice(&slot[1..]);
            out.push((RecordId::from_bytes(id), op));
        }
        plain.zeroize();
        Ok(())
    }
}
