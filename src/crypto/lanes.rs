//! The lane scheduler under EAX: up to [`LANES`] messages (STREAM chunks) MACed side by
//! side, so that the AES unit has a block of every chain in flight while each chain
//! waits on the one before it.

use cipher::typenum::Unsigned;
use cipher::{
    Array, BlockCipherEncBackend, BlockCipherEncClosure, BlockSizeUser, ParBlocks, consts::U16,
};
use zeroize::Zeroize;

use super::cmac::{Block, Subkeys, xor_into};

/// Messages sealed or opened together by the multi-lane path: eight MAC chains, one
/// block each per step, keep AES-NI's two pipelines busy through a chain's latency
/// (14 rounds at 4 cycles), and `aes`'s AES-NI batches are eight blocks wide. Sixteen
/// lanes (two batches a step) were measured slower: twice the data in flight.
pub(crate) const LANES: usize = 8;

/// Block `j` of `bytes` as one 128-bit word (native byte order: only ever XORed).
#[inline(always)]
pub(super) fn load(bytes: &[u8], j: usize) -> u128 {
    let mut block = [0u8; 16];
    block.copy_from_slice(&bytes[16 * j..16 * j + 16]);
    u128::from_ne_bytes(block)
}

#[inline(always)]
pub(super) fn store(bytes: &mut [u8], j: usize, value: u128) {
    bytes[16 * j..16 * j + 16].copy_from_slice(&value.to_ne_bytes());
}

/// Where a lane reads its input and writes its output: two buffers, or one in place.
pub(super) trait LaneIo {
    fn input(&self) -> &[u8];
    fn output_mut(&mut self) -> &mut [u8];
}

pub(super) struct Apart<'a> {
    pub(super) input: &'a [u8],
    pub(super) output: &'a mut [u8],
}

impl LaneIo for Apart<'_> {
    fn input(&self) -> &[u8] {
        self.input
    }
    fn output_mut(&mut self) -> &mut [u8] {
        self.output
    }
}

pub(super) struct InPlace<'a>(pub(super) &'a mut [u8]);

impl LaneIo for InPlace<'_> {
    fn input(&self) -> &[u8] {
        self.0
    }
    fn output_mut(&mut self) -> &mut [u8] {
        self.0
    }
}

/// One message in flight: its buffers, CBC-MAC state and first counter value.
pub(super) struct Lane<Io> {
    pub(super) io: Io,
    /// Position among the messages the caller passed.
    pub(super) slot: usize,
    /// CBC-MAC state of OMAC² (native byte order, as [`load`] gives blocks).
    pub(super) state: u128,
    /// `N'` as a number: the counter block of message block `j` is `N' + j mod 2^128`.
    pub(super) counter: u128,
    /// Blocks before the last one (the last is masked with a subkey, not chained).
    pub(super) middle: usize,
}

impl<Io: LaneIo> Lane<Io> {
    pub(super) fn len(&self) -> usize {
        self.io.input().len()
    }
}

/// What the kernel does with each block. One lane alone seals or opens in one pass:
/// its MAC chain is latency-bound, so the keystream block beside it is free (opening
/// decrypts in place before the tag is known; the caller undoes it if the tag is
/// wrong). Several lanes only MAC (`MacOnly`): the ciphertext a lane reads is already
/// there, produced by the `ctr` crate before (sealing) or decrypted only after its tag
/// verified (opening). Fusing CTR into the multi-lane MAC step was measured slower:
/// sixteen AES blocks per step leave the compiler short of vector registers, and the
/// MAC step then waits on the keystream batch before it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Seal,
    Open,
    MacOnly,
}

/// Encrypts `blocks` in place through the backend's parallel path: whole batches, then
/// the rest. With AES-NI (batches of eight) the rest is padded to one more batch: a
/// batch of eight costs about what eight blocks do, while blocks sent one by one run as
/// separate latency chains. With VAES (batches of 30 or 64 blocks) a padded batch
/// would cost many times the rest, so the rest goes one block at a time.
#[inline(always)]
pub(super) fn encrypt_all<B: BlockCipherEncBackend<BlockSize = U16>>(
    backend: &B,
    blocks: &mut [Array<u8, U16>],
) {
    let mut batches = blocks.chunks_exact_mut(B::ParBlocksSize::USIZE);
    for batch in &mut batches {
        if let Some(batch) = ParBlocks::<B>::slice_as_mut_array(batch) {
            backend.encrypt_par_blocks_inplace(batch);
        }
    }
    match batches.into_remainder() {
        [] => {}
        [block] => backend.encrypt_block_inplace(block),
        rest if B::ParBlocksSize::USIZE > LANES => {
            for block in rest {
                backend.encrypt_block_inplace(block);
            }
        }
        rest => {
            // Padded with copies of its own blocks, not zeros: the spare outputs then
            // equal ones the caller gets anyway, while zeros would encrypt to E(0), the
            // root of CMAC's subkeys, to be wiped on every call.
            let mut padded = ParBlocks::<B>::default();
            for (slot, block) in padded.iter_mut().zip(rest.iter().cycle()) {
                *slot = *block;
            }
            backend.encrypt_par_blocks_inplace(&mut padded);
            rest.copy_from_slice(&padded[..rest.len()]);
        }
    }
}

/// The lane kernel: blocks `from..to` of every lane (all lanes have at least `to`
/// middle blocks), CTR and CBC-MAC together, run inside the block cipher's backend so
/// the whole loop is one dispatch.
pub(super) struct LaneKernel<'a, Io> {
    pub(super) lanes: &'a mut [Lane<Io>],
    pub(super) from: usize,
    pub(super) to: usize,
    pub(super) direction: Direction,
}

impl<Io> BlockSizeUser for LaneKernel<'_, Io> {
    type BlockSize = U16;
}

impl<Io: LaneIo> BlockCipherEncClosure for LaneKernel<'_, Io> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let (from, to, direction) = (self.from, self.to, self.direction);
        if direction != Direction::MacOnly {
            for lane in self.lanes.iter_mut() {
                single_lane(backend, lane, from, to, direction);
            }
            return;
        }
        for batch in self.lanes.chunks_mut(LANES) {
            // Fixed-size batches: the compiler unrolls the per-lane loops and keeps the
            // blocks in registers.
            macro_rules! fixed {
                ($($n:literal)*) => {
                    match batch.len() {
                        $($n => {
                            if let Ok(lanes) = <&mut [Lane<Io>; $n]>::try_from(&mut *batch) {
                                mac_batch(backend, lanes, from, to);
                                continue;
                            }
                        })*
                        _ => {}
                    }
                };
            }
            fixed!(2 3 4 5 6 7 8);
            for lane in batch {
                single_lane(backend, lane, from, to, direction);
            }
        }
    }
}

/// Block `j` of `bytes`.
#[inline(always)]
pub(super) fn block_at(bytes: &[u8], j: usize) -> [u8; 16] {
    let mut block = [0u8; 16];
    block.copy_from_slice(&bytes[16 * j..16 * j + 16]);
    block
}

/// A 16-byte XOR the compiler turns into one vector instruction (a `u128` XOR would
/// go through two general-purpose registers).
#[inline(always)]
pub(super) fn xor16(acc: &mut [u8], other: &[u8; 16]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a ^= b;
    }
}

/// The CBC-MAC chains of `N` lanes (at most [`LANES`]) over blocks `from..to`, one
/// parallel-blocks call of `N` per step.
#[inline(always)]
pub(super) fn mac_batch<const N: usize, B: BlockCipherEncBackend<BlockSize = U16>, Io: LaneIo>(
    backend: &B,
    lanes: &mut [Lane<Io>; N],
    from: usize,
    to: usize,
) {
    let mut macs: [Array<u8, U16>; N] =
        core::array::from_fn(|i| Array::from(lanes[i].state.to_ne_bytes()));
    for j in from..to {
        for (mac, lane) in macs.iter_mut().zip(lanes.iter()) {
            xor16(mac, &block_at(lane.io.input(), j));
        }
        encrypt_all(backend, &mut macs);
    }
    for (lane, mac) in lanes.iter_mut().zip(&macs) {
        lane.state = u128::from_ne_bytes((*mac).into());
    }
}

/// One lane alone: its chain is latency-bound, so the loop keeps the MAC state and the
/// keystream block in registers (no array to index) and the CTR block, which does not
/// depend on the chain, overlaps with it in the pipeline.
#[inline(always)]
pub(super) fn single_lane<B: BlockCipherEncBackend<BlockSize = U16>, Io: LaneIo>(
    backend: &B,
    lane: &mut Lane<Io>,
    from: usize,
    to: usize,
    direction: Direction,
) {
    let xor = |block: Array<u8, U16>, word: u128| {
        Array::from((u128::from_ne_bytes(block.into()) ^ word).to_ne_bytes())
    };
    let mut state = Array::<u8, U16>::from(lane.state.to_ne_bytes());
    if direction == Direction::MacOnly {
        for j in from..to {
            state = xor(state, load(lane.io.input(), j));
            backend.encrypt_block_inplace(&mut state);
        }
        lane.state = u128::from_ne_bytes(state.into());
        return;
    }
    for j in from..to {
        let mut keystream = Array::from(lane.counter.wrapping_add(j as u128).to_be_bytes());
        backend.encrypt_block_inplace(&mut keystream);
        let keystream_word = u128::from_ne_bytes(keystream.into());
        let input = load(lane.io.input(), j);
        let ciphertext = match direction {
            Direction::Seal => input ^ keystream_word,
            Direction::Open | Direction::MacOnly => input,
        };
        store(lane.io.output_mut(), j, input ^ keystream_word);
        state = xor(state, ciphertext);
        backend.encrypt_block_inplace(&mut state);
    }
    lane.state = u128::from_ne_bytes(state.into());
}

/// The last block of `lane` (its `16 × middle`th byte on, 0 to 16 bytes), given its
/// keystream block: writes its output (sealing or opening; `MacOnly` writes nothing) and
/// returns the input of `OMAC²`'s final AES call, masked with K1 (full) or padded and
/// masked with K2, or for the empty message the domain block alone, masked as full.
pub(super) fn last_block<Io: LaneIo>(
    subkeys: &Subkeys,
    lane: &mut Lane<Io>,
    keystream: &Array<u8, U16>,
    direction: Direction,
) -> Array<u8, U16> {
    let start = 16 * lane.middle;
    let len = lane.len();
    let mut last = [0u8; 16];
    let tail = len - start.min(len);
    if direction == Direction::Seal {
        let mut produced = [0u8; 16];
        produced[..tail].copy_from_slice(&lane.io.input()[start..]);
        xor_into(&mut produced[..tail], &keystream[..tail]);
        lane.io.output_mut()[start..].copy_from_slice(&produced[..tail]);
        last[..tail].copy_from_slice(&produced[..tail]);
        produced.zeroize();
    } else {
        last[..tail].copy_from_slice(&lane.io.input()[start..]);
    }
    if direction == Direction::Open {
        let mut produced = last;
        xor_into(&mut produced[..tail], &keystream[..tail]);
        lane.io.output_mut()[start..].copy_from_slice(&produced[..tail]);
        produced.zeroize();
    }
    let mut state = if len == 0 {
        let mut domain = [0u8; 16];
        domain[15] = 2;
        Array::from(domain)
    } else {
        let mut state = Array::from(lane.state.to_ne_bytes());
        xor_into(&mut state, &last[..tail]);
        state
    };
    subkeys.mask_last(&mut state, if len == 0 { 16 } else { tail });
    state
}

/// One message alone with its nonce's and header's MACs, in one dispatch: `H'`'s chain
/// and `N'` are issued first and the message's own chain right after. Nothing joins
/// them until the tag, so the CPU runs the header's chain beside the message's first
/// blocks instead of before them (what a record of one chunk, most notes, spends
/// outside its own chain: bench `peers`, `medvault-seal/1KiB` and `medvault-open/1KiB`).
pub(super) struct AloneKernel<'a, Io> {
    pub(super) lane: &'a mut Lane<Io>,
    /// `Seal` or `Open` (`MacOnly` would leave the output unwritten).
    pub(super) direction: Direction,
    pub(super) subkeys: &'a Subkeys,
    /// The one block of `OMAC⁰(nonce)`, masked, before its AES call.
    pub(super) nonce_block: Array<u8, U16>,
    /// `OMAC¹(header)` to run: the state after its domain block, its full blocks before
    /// the last, and its masked last block.
    pub(super) header_state: Array<u8, U16>,
    pub(super) header_middle: &'a [u8],
    pub(super) header_last: Array<u8, U16>,
    /// Out: `N'`, `H'` and `OMAC²` of the ciphertext.
    pub(super) macs: &'a mut [Block; 3],
}

impl<Io> BlockSizeUser for AloneKernel<'_, Io> {
    type BlockSize = U16;
}

impl<Io: LaneIo> BlockCipherEncClosure for AloneKernel<'_, Io> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let mut header = self.header_state;
        for block in self.header_middle.chunks_exact(16) {
            xor_into(&mut header, block);
            backend.encrypt_block_inplace(&mut header);
        }
        xor_into(&mut header, &self.header_last);
        backend.encrypt_block_inplace(&mut header);
        let mut nonce_mac = self.nonce_block;
        backend.encrypt_block_inplace(&mut nonce_mac);
        let lane = self.lane;
        lane.counter = u128::from_be_bytes(nonce_mac.into());
        single_lane(backend, lane, 0, lane.middle, self.direction);
        let mut keystream =
            Array::from(lane.counter.wrapping_add(lane.middle as u128).to_be_bytes());
        backend.encrypt_block_inplace(&mut keystream);
        let mut state = last_block(self.subkeys, lane, &keystream, self.direction);
        backend.encrypt_block_inplace(&mut state);
        *self.macs = [nonce_mac.into(), header.into(), state.into()];
        keystream.zeroize();
    }
}
