//! AES-EAX (Bellare, Rogaway, Wagner 2004) over a RustCrypto block cipher.
//!
//! `N' = OMAC⁰(N)`, `H' = OMAC¹(H)`, `C = CTR_{N'}(M)`, `tag = N' ⊕ H' ⊕ OMAC²(C)`,
//! where `OMACᵗ(X) = CMAC(K, [t]₁₂₈ ‖ X)`.
//!
//! Two properties of EAX shape the API: `H'` does not depend on the nonce, so the
//! STREAM layer computes it once per record and reuses it for every chunk; and
//! `OMAC²(C)` does not depend on the nonce either, so a chunk's tag can be checked
//! against both the "last" and "not last" nonces for the cost of one MAC, which lets
//! the opener tell truncation apart from tampering.
//!
//! Speed. CMAC is a chain: each block waits ≈ 14 AES rounds of latency for the one
//! before it, while the AES unit could have many blocks in flight. So messages
//! (STREAM chunks) are MACed in *lanes*: at every step the kernel below feeds the
//! block cipher's parallel-blocks path with the CMAC state of every lane, eight
//! independent blocks for eight lanes (with VAES, whose batches are 30 or 64 blocks
//! wide, eight single AES-NI blocks instead). Their CTR runs apart, through the `ctr`
//! crate, or eight AES-NI blocks at a time with VAES (`WideCtrKernel`): before the MACs
//! when sealing (the MACs then read the ciphertext just written,
//! still in cache), after them when opening (only chunks whose tags verified are ever
//! decrypted). One message alone is sealed or opened in one pass instead: its chain is
//! latency-bound, and the keystream block computed beside it costs nothing.
//! The backend (AES-NI, VAES or software) is picked at run time by `aes`. With `aes`
//! pinned to 0.9.2 (`Cargo.toml` says why) its VAES backends run only when a build
//! opts in (`--cfg aes_backend="avx256"` or `"avx512"`); the wide paths serve those
//! builds and any later `aes`, and are tested through a 64-block test backend.
//!
//! The `cmac` and `ctr` crates remain the reference: the tests check the kernel against
//! them bit for bit, besides the Wycheproof vectors.

use cipher::typenum::Unsigned;
use cipher::{
    Array, BlockCipherEncBackend, BlockCipherEncClosure, BlockSizeUser, InnerIvInit, ParBlocks,
    StreamCipher, StreamCipherCoreWrapper, consts::U16,
};
use cmac::block_api::CmacCipher;
use cmac::digest::block_api::SmallBlockSizeUser;
use ctr::{CtrCore, flavors::Ctr128BE};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// EAX tag length in bytes (the full block; tags are never truncated here).
pub(crate) const TAG_LEN: usize = 16;

/// An EAX tag or an intermediate OMAC value.
pub(crate) type Block = [u8; 16];

/// Messages sealed or opened together by the multi-lane path: eight MAC chains, one
/// block each per step, keep AES-NI's two pipelines busy through a chain's latency
/// (14 rounds at 4 cycles), and `aes`'s AES-NI batches are eight blocks wide. Sixteen
/// lanes (two batches a step) were measured slower: twice the data in flight.
pub(crate) const LANES: usize = 8;

/// An EAX instance: a keyed block cipher, the CMAC subkeys and the CBC-MAC state of
/// each OMAC after its one-block domain prefix.
#[derive(Clone)]
pub(crate) struct Eax<C: CmacCipher + Clone> {
    cipher: C,
    /// CMAC subkeys `K1 = dbl(E(0))`, `K2 = dbl(K1)`.
    k1: Block,
    k2: Block,
    /// `E([t]₁₂₈)` for `t` = 0, 1, 2: the CBC-MAC state of `OMACᵗ` after its domain
    /// block (`E([0]₁₂₈) = E(0)` is also the root of the subkeys).
    starts: [Block; 3],
}

impl<C: CmacCipher + Clone> Drop for Eax<C> {
    fn drop(&mut self) {
        // The cipher wipes itself (the `zeroize` feature of `aes`); these are derived
        // from the key too.
        self.k1.zeroize();
        self.k2.zeroize();
        self.starts.zeroize();
    }
}

/// Doubling in GF(2^128) (the CMAC subkey step), without a secret-dependent branch.
pub(crate) fn dbl(block: Block) -> Block {
    let v = u128::from_be_bytes(block);
    let carry = 0u128.wrapping_sub(v >> 127) & 0x87;
    ((v << 1) ^ carry).to_be_bytes()
}

pub(crate) fn xor_into(acc: &mut [u8], other: &[u8]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a ^= b;
    }
}

/// Block `j` of `bytes` as one 128-bit word (native byte order: only ever XORed).
#[inline(always)]
fn load(bytes: &[u8], j: usize) -> u128 {
    let mut block = [0u8; 16];
    block.copy_from_slice(&bytes[16 * j..16 * j + 16]);
    u128::from_ne_bytes(block)
}

#[inline(always)]
fn store(bytes: &mut [u8], j: usize, value: u128) {
    bytes[16 * j..16 * j + 16].copy_from_slice(&value.to_ne_bytes());
}

/// The block ciphers EAX is built on here: 128-bit blocks, usable by `cmac` and `ctr`.
pub(crate) trait EaxCipher:
    CmacCipher + SmallBlockSizeUser<_BlockSize = U16> + Clone
{
}
impl<C: CmacCipher + SmallBlockSizeUser<_BlockSize = U16> + Clone> EaxCipher for C {}

/// Where a lane reads its input and writes its output: two buffers, or one in place.
trait LaneIo {
    fn input(&self) -> &[u8];
    fn output_mut(&mut self) -> &mut [u8];
}

struct Apart<'a> {
    input: &'a [u8],
    output: &'a mut [u8],
}

impl LaneIo for Apart<'_> {
    fn input(&self) -> &[u8] {
        self.input
    }
    fn output_mut(&mut self) -> &mut [u8] {
        self.output
    }
}

struct InPlace<'a>(&'a mut [u8]);

impl LaneIo for InPlace<'_> {
    fn input(&self) -> &[u8] {
        self.0
    }
    fn output_mut(&mut self) -> &mut [u8] {
        self.0
    }
}

/// One message in flight: its buffers, CBC-MAC state and first counter value.
struct Lane<Io> {
    io: Io,
    /// Position among the messages the caller passed.
    slot: usize,
    /// CBC-MAC state of OMAC² (native byte order, as [`load`] gives blocks).
    state: u128,
    /// `N'` as a number: the counter block of message block `j` is `N' + j mod 2^128`.
    counter: u128,
    /// Blocks before the last one (the last is masked with a subkey, not chained).
    middle: usize,
}

impl<Io: LaneIo> Lane<Io> {
    fn len(&self) -> usize {
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
enum Direction {
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
fn encrypt_all<B: BlockCipherEncBackend<BlockSize = U16>>(
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
struct LaneKernel<'a, Io> {
    lanes: &'a mut [Lane<Io>],
    from: usize,
    to: usize,
    direction: Direction,
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

/// CTR over one message inside the block cipher's backend, for backends whose batches
/// are wider than [`LANES`] (VAES: 30 or 64 blocks). There the `ctr` crate fills and
/// encrypts whole wide batches through `aes`'s VAES path, which was measured slower
/// than eight AES-NI blocks at a time: 3.8 against 5.3–5.6 GiB/s on one core
/// (2026-11-30, AMD EPYC with AVX-512). With AES-NI batches of eight, `ctr` already
/// runs that way, so the kernel leaves the message to it (`ran` stays false).
struct WideCtrKernel<'a, Io> {
    io: &'a mut Io,
    /// The counter block of message block `j` is `counter + j mod 2^128` (`Ctr128BE`).
    counter: u128,
    ran: &'a mut bool,
}

impl<Io> BlockSizeUser for WideCtrKernel<'_, Io> {
    type BlockSize = U16;
}

impl<Io: LaneIo> BlockCipherEncClosure for WideCtrKernel<'_, Io> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        if B::ParBlocksSize::USIZE <= LANES {
            return;
        }
        *self.ran = true;
        let counter = self.counter;
        let len = self.io.input().len();
        let full = len / 16;
        let mut keystream = [Array::<u8, U16>::default(); LANES];
        let mut j = 0;
        while j + LANES <= full {
            for (k, block) in keystream.iter_mut().enumerate() {
                *block = Array::from(counter.wrapping_add((j + k) as u128).to_be_bytes());
            }
            for block in keystream.iter_mut() {
                backend.encrypt_block_inplace(block);
            }
            for (k, block) in keystream.iter().enumerate() {
                let word = load(self.io.input(), j + k) ^ u128::from_ne_bytes((*block).into());
                store(self.io.output_mut(), j + k, word);
            }
            j += LANES;
        }
        // The last full blocks, then the partial one.
        for j in j..len.div_ceil(16) {
            let (start, end) = (16 * j, (16 * j + 16).min(len));
            let block = &mut keystream[0];
            *block = Array::from(counter.wrapping_add(j as u128).to_be_bytes());
            backend.encrypt_block_inplace(block);
            let mut produced = [0u8; 16];
            produced[..end - start].copy_from_slice(&self.io.input()[start..end]);
            xor_into(&mut produced[..end - start], &block[..end - start]);
            self.io.output_mut()[start..end].copy_from_slice(&produced[..end - start]);
            produced.zeroize();
        }
        keystream.zeroize();
    }
}

/// One CBC-MAC chain inside the backend (one dispatch for the whole message): the
/// full blocks of `middle`, then the already masked `last` block.
struct CbcMacKernel<'a> {
    state: &'a mut Array<u8, U16>,
    middle: &'a [u8],
    last: &'a Array<u8, U16>,
}

impl BlockSizeUser for CbcMacKernel<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for CbcMacKernel<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        for block in self.middle.chunks_exact(16) {
            xor_into(self.state, block);
            backend.encrypt_block_inplace(self.state);
        }
        xor_into(self.state, self.last);
        backend.encrypt_block_inplace(self.state);
    }
}

/// Block `j` of `bytes`.
#[inline(always)]
fn block_at(bytes: &[u8], j: usize) -> [u8; 16] {
    let mut block = [0u8; 16];
    block.copy_from_slice(&bytes[16 * j..16 * j + 16]);
    block
}

/// A 16-byte XOR the compiler turns into one vector instruction (a `u128` XOR would
/// go through two general-purpose registers).
#[inline(always)]
fn xor16(acc: &mut [u8], other: &[u8; 16]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a ^= b;
    }
}

/// The CBC-MAC chains of `N` lanes (at most [`LANES`]) over blocks `from..to`, one
/// parallel-blocks call of `N` per step.
#[inline(always)]
fn mac_batch<const N: usize, B: BlockCipherEncBackend<BlockSize = U16>, Io: LaneIo>(
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
fn single_lane<B: BlockCipherEncBackend<BlockSize = U16>, Io: LaneIo>(
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

impl<C: EaxCipher> Eax<C> {
    /// Prepares EAX over an already keyed block cipher.
    pub(crate) fn new(cipher: C) -> Self {
        // The three domain blocks in one call (each call into `aes` has a fixed cost).
        let mut domains = [Array::<u8, U16>::default(); 3];
        for (t, block) in domains.iter_mut().enumerate() {
            block[15] = t as u8;
        }
        cipher.encrypt_blocks(&mut domains);
        let starts = domains.map(|block| -> Block { block.into() });
        domains.zeroize();
        let k1 = dbl(starts[0]);
        let k2 = dbl(k1);
        Eax {
            cipher,
            k1,
            k2,
            starts,
        }
    }

    /// `N' = OMAC⁰(nonce)` for up to [`LANES`] 16-byte nonces at once.
    pub(crate) fn nonce_macs(&self, nonces: &[[u8; 16]], out: &mut [Block]) {
        let mut blocks = [Array::from([0u8; 16]); LANES];
        for (block, nonce) in blocks.iter_mut().zip(nonces) {
            // One full block after the domain block: the last block, masked with K1.
            *block = Array::from(self.starts[0]);
            xor_into(block, nonce);
            xor_into(block, &self.k1);
        }
        let n = nonces.len().min(LANES);
        self.cipher.encrypt_blocks(&mut blocks[..n]);
        for (o, b) in out.iter_mut().zip(&blocks[..n]) {
            *o = (*b).into();
        }
    }

    /// Runs EAX's CTR and OMAC² over every lane (at most [`LANES`]), writing each
    /// lane's output and returning `OMAC²(ciphertext)` per caller slot in `macs`.
    fn run_lanes<Io: LaneIo>(
        &self,
        lanes: &mut [Lane<Io>],
        direction: Direction,
        macs: &mut [Block],
    ) {
        // Longest first, so the lanes still running are always a prefix.
        lanes.sort_by_key(|lane| core::cmp::Reverse(lane.middle));
        let mut at = 0;
        let mut running = lanes.len();
        loop {
            while running > 0 && lanes[running - 1].middle <= at {
                running -= 1;
            }
            if running == 0 {
                break;
            }
            let to = lanes[running - 1].middle;
            self.cipher.encrypt_with_backend(LaneKernel {
                lanes: &mut lanes[..running],
                from: at,
                to,
                direction,
            });
            at = to;
        }
        // The last block of each message: the keystream of its (possibly partial)
        // block, then the MAC of it, masked with K1 (full) or padded and masked with K2.
        let n = lanes.len();
        let mut keystream = [Array::<u8, U16>::default(); LANES];
        for (block, lane) in keystream.iter_mut().zip(lanes.iter()) {
            *block = Array::from(lane.counter.wrapping_add(lane.middle as u128).to_be_bytes());
        }
        self.cipher.encrypt_blocks(&mut keystream[..n]);
        let mut states = [Array::<u8, U16>::default(); LANES];
        for ((state, lane), keystream) in states.iter_mut().zip(lanes.iter_mut()).zip(&keystream) {
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
            if len == 0 {
                // The domain block alone is the (full) last block.
                let mut domain = [0u8; 16];
                domain[15] = 2;
                *state = Array::from(domain);
                xor_into(state, &self.k1);
                continue;
            }
            *state = Array::from(lane.state.to_ne_bytes());
            xor_into(state, &last[..tail]);
            if tail == 16 {
                xor_into(state, &self.k1);
            } else {
                state[tail] ^= 0x80;
                xor_into(state, &self.k2);
            }
        }
        self.cipher.encrypt_blocks(&mut states[..n]);
        for (lane, state) in lanes.iter().zip(&states) {
            if let Some(mac) = macs.get_mut(lane.slot) {
                *mac = (*state).into();
            }
        }
        keystream.zeroize();
    }

    fn lane<Io: LaneIo>(&self, io: Io, slot: usize, nonce_mac: &Block) -> Lane<Io> {
        let len = io.input().len();
        Lane {
            io,
            slot,
            state: u128::from_ne_bytes(self.starts[2]),
            counter: u128::from_be_bytes(*nonce_mac),
            middle: len.div_ceil(16).saturating_sub(1),
        }
    }

    /// One lane per `inputs[i]` → `outputs[i]` pair with its nonce MAC. A pair that
    /// cannot run (lengths differ, beyond the nonces given, or an input without an
    /// output; callers rule all out) fails closed: its output is zero-filled and the
    /// first such slot is returned.
    fn apart_lanes<'a>(
        &self,
        nonce_macs: &[Block],
        inputs: &[&'a [u8]],
        outputs: &'a mut [&mut [u8]],
    ) -> (Vec<Lane<Apart<'a>>>, Option<usize>) {
        let mut lanes = Vec::with_capacity(nonce_macs.len());
        let mut rejected = (inputs.len() > outputs.len()).then_some(outputs.len());
        for (slot, (input, output)) in inputs.iter().zip(outputs.iter_mut()).enumerate() {
            match nonce_macs.get(slot) {
                Some(nonce_mac) if input.len() == output.len() => {
                    let io = Apart {
                        input,
                        output: &mut output[..],
                    };
                    lanes.push(self.lane(io, slot, nonce_mac));
                }
                _ => {
                    output.fill(0);
                    rejected = Some(rejected.map_or(slot, |first: usize| first.min(slot)));
                }
            }
        }
        (lanes, rejected)
    }

    /// Encrypts up to [`LANES`] messages from `inputs` into `outputs` (same lengths),
    /// each under its own 16-byte nonce, all with the same associated-data MAC; writes
    /// tags. Each message is encrypted by CTR first, then the lanes' MAC
    /// chains run interleaved over the ciphertexts just written (still in cache). A
    /// pair whose lengths differ (callers rule it out) fails closed: zero-filled.
    pub(crate) fn seal_lanes(
        &self,
        nonces: &[[u8; 16]],
        header_mac: &Block,
        inputs: &[&[u8]],
        outputs: &mut [&mut [u8]],
        tags: &mut [Block],
    ) {
        let n = inputs.len().min(LANES);
        let mut nonce_macs = [[0u8; 16]; LANES];
        self.nonce_macs(&nonces[..n], &mut nonce_macs);
        // One message alone: copied, then sealed in place in one pass (its keystream
        // beside its MAC chain) instead of a CTR pass and then the chain.
        if let ([input], [output], [tag, ..]) = (&inputs[..n], &mut outputs[..], &mut tags[..])
            && input.len() == output.len()
        {
            output.copy_from_slice(input);
            *tag = self.encrypt(&nonce_macs[0], header_mac, output);
            return;
        }
        let mut lanes = Vec::with_capacity(n);
        for (slot, (input, output)) in inputs.iter().zip(outputs.iter_mut()).enumerate().take(n) {
            self.apply_keystream_b2b(&nonce_macs[slot], input, output);
            if input.len() == output.len() {
                lanes.push(self.lane(InPlace(&mut output[..]), slot, &nonce_macs[slot]));
            }
        }
        self.tag_lanes(&mut lanes, &nonce_macs[..n], header_mac, tags);
    }

    /// As [`Eax::seal_lanes`], encrypting each of `bufs` in place (one alone in one
    /// pass, its keystream beside its MAC chain).
    pub(crate) fn seal_lanes_in_place(
        &self,
        nonces: &[[u8; 16]],
        header_mac: &Block,
        bufs: &mut [&mut [u8]],
        tags: &mut [Block],
    ) {
        let n = bufs.len().min(LANES);
        let mut nonce_macs = [[0u8; 16]; LANES];
        self.nonce_macs(&nonces[..n], &mut nonce_macs);
        if let ([buf], [tag, ..]) = (&mut bufs[..n], &mut tags[..]) {
            *tag = self.encrypt(&nonce_macs[0], header_mac, buf);
            return;
        }
        let mut lanes = Vec::with_capacity(n);
        for (slot, buf) in bufs.iter_mut().enumerate().take(n) {
            self.apply_keystream(&nonce_macs[slot], buf);
            lanes.push(self.lane(InPlace(&mut buf[..]), slot, &nonce_macs[slot]));
        }
        self.tag_lanes(&mut lanes, &nonce_macs[..n], header_mac, tags);
    }

    /// The tags of freshly encrypted lanes: their MAC chains interleaved over the
    /// ciphertext, combined with each nonce's and the header's MAC.
    fn tag_lanes(
        &self,
        lanes: &mut [Lane<InPlace<'_>>],
        nonce_macs: &[Block],
        header_mac: &Block,
        tags: &mut [Block],
    ) {
        let mut ct_macs = [[0u8; 16]; LANES];
        self.run_lanes(lanes, Direction::MacOnly, &mut ct_macs);
        for ((tag, nonce_mac), ct_mac) in tags.iter_mut().zip(nonce_macs).zip(&ct_macs) {
            *tag = combine(nonce_mac, header_mac, ct_mac);
        }
    }

    /// Verifies up to [`LANES`] ciphertexts and decrypts into `outputs` only those whose
    /// tag verified (the others' outputs are left as they were): the lanes' MACs run
    /// interleaved first, then each good lane's keystream. Returns the first lane that
    /// failed, if any, with `OMAC²` of its ciphertext (so the caller can test the tag
    /// under another nonce without a second pass).
    pub(crate) fn open_lanes(
        &self,
        nonces: &[[u8; 16]],
        header_mac: &Block,
        ciphertexts: &[&[u8]],
        tags: &[&[u8]],
        outputs: &mut [&mut [u8]],
    ) -> Option<(usize, Block)> {
        let n = ciphertexts.len().min(LANES);
        let mut nonce_macs = [[0u8; 16]; LANES];
        self.nonce_macs(&nonces[..n], &mut nonce_macs);
        let (mut lanes, first_bad) = self.apart_lanes(&nonce_macs[..n], ciphertexts, outputs);
        self.verify_then_decrypt(
            &mut lanes,
            &nonce_macs,
            header_mac,
            tags,
            first_bad,
            |nonce_mac, Apart { input, output }| self.apply_keystream_b2b(nonce_mac, input, output),
        )
    }

    /// As [`Eax::open_lanes`], each of `bufs` holding a ciphertext that is decrypted in
    /// place once its tag verified (a buffer that failed keeps its ciphertext). A buffer
    /// beyond the nonces given, or beyond [`LANES`], is reported as failing.
    pub(crate) fn open_lanes_in_place(
        &self,
        nonces: &[[u8; 16]],
        header_mac: &Block,
        bufs: &mut [&mut [u8]],
        tags: &[&[u8]],
    ) -> Option<(usize, Block)> {
        let n = bufs.len().min(nonces.len()).min(LANES);
        let first_bad = (bufs.len() > n).then_some(n);
        let mut nonce_macs = [[0u8; 16]; LANES];
        self.nonce_macs(&nonces[..n], &mut nonce_macs);
        let mut lanes: Vec<Lane<InPlace<'_>>> = bufs[..n]
            .iter_mut()
            .enumerate()
            .map(|(slot, buf)| self.lane(InPlace(&mut buf[..]), slot, &nonce_macs[slot]))
            .collect();
        self.verify_then_decrypt(
            &mut lanes,
            &nonce_macs,
            header_mac,
            tags,
            first_bad,
            |nonce_mac, InPlace(buf)| self.apply_keystream(nonce_mac, buf),
        )
    }

    /// The opening half both `open_lanes` variants share: the lanes' MAC chains run
    /// interleaved over the ciphertexts, then `decrypt` runs for each lane whose tag
    /// verified. Returns the first failing slot (from `first_bad`, lanes that could not
    /// run, or a wrong tag) with `OMAC²` of its ciphertext.
    fn verify_then_decrypt<Io: LaneIo>(
        &self,
        lanes: &mut [Lane<Io>],
        nonce_macs: &[Block; LANES],
        header_mac: &Block,
        tags: &[&[u8]],
        mut first_bad: Option<usize>,
        decrypt: impl Fn(&Block, &mut Io),
    ) -> Option<(usize, Block)> {
        let mut ct_macs = [[0u8; 16]; LANES];
        self.run_lanes(lanes, Direction::MacOnly, &mut ct_macs);
        for lane in lanes.iter_mut() {
            let i = lane.slot;
            let expected = combine(&nonce_macs[i], header_mac, &ct_macs[i]);
            if tags.get(i).is_some_and(|tag| tags_equal(&expected, tag)) {
                decrypt(&nonce_macs[i], &mut lane.io);
            } else {
                first_bad = Some(first_bad.map_or(i, |bad: usize| bad.min(i)));
            }
        }
        first_bad.map(|bad| (bad, ct_macs[bad]))
    }

    /// `OMACᵗ(data) = CMAC([t]₁₂₈ ‖ data)` for `t = domain` (0, 1 or 2).
    fn omac(&self, domain: usize, data: &[u8]) -> Block {
        // The message's last block, masked: full with K1, else padded with K2. When
        // `data` is empty the domain block itself is the last one.
        let (mut state, middle, last) = match data.len() {
            0 => {
                let mut domain_block = [0u8; 16];
                domain_block[15] = domain as u8;
                ([0u8; 16], &[][..], domain_block)
            }
            len => {
                let last_len = (len - 1) % 16 + 1;
                let mut last = [0u8; 16];
                last[..last_len].copy_from_slice(&data[len - last_len..]);
                if last_len < 16 {
                    last[last_len] = 0x80;
                }
                (self.starts[domain], &data[..len - last_len], last)
            }
        };
        let full = data.len().is_multiple_of(16);
        let mut last = Array::<u8, U16>::from(last);
        xor_into(&mut last, if full { &self.k1 } else { &self.k2 });
        let mut chain = Array::<u8, U16>::from(state);
        self.cipher.encrypt_with_backend(CbcMacKernel {
            state: &mut chain,
            middle,
            last: &last,
        });
        state = chain.into();
        chain.zeroize();
        last.zeroize();
        state
    }

    /// `N' = OMAC⁰(nonce)`: also the initial counter block.
    pub(crate) fn nonce_mac(&self, nonce: &[u8]) -> Block {
        self.omac(0, nonce)
    }

    /// `H' = OMAC¹(associated data)`: independent of the nonce.
    pub(crate) fn header_mac(&self, associated_data: &[u8]) -> Block {
        self.omac(1, associated_data)
    }

    /// CTR keystream starting at counter block `nonce_mac`, from `input` into `output`
    /// (same length).
    fn apply_keystream_b2b(&self, nonce_mac: &Block, input: &[u8], output: &mut [u8]) {
        if input.len() != output.len() {
            // Callers rule this out; fail closed rather than panic.
            output.fill(0);
            return;
        }
        if self.wide_ctr(
            nonce_mac,
            Apart {
                input,
                output: &mut *output,
            },
        ) {
            return;
        }
        let core = CtrCore::<C, Ctr128BE>::inner_iv_init(self.cipher.clone(), nonce_mac.into());
        StreamCipherCoreWrapper::from_core(core).apply_keystream_b2b(input, output);
    }

    /// CTR keystream starting at counter block `nonce_mac`, XORed into `buf`.
    fn apply_keystream(&self, nonce_mac: &Block, buf: &mut [u8]) {
        if self.wide_ctr(nonce_mac, InPlace(&mut *buf)) {
            return;
        }
        let core = CtrCore::<C, Ctr128BE>::inner_iv_init(self.cipher.clone(), nonce_mac.into());
        StreamCipherCoreWrapper::from_core(core).apply_keystream(buf);
    }

    /// Runs [`WideCtrKernel`] and says whether it applied the keystream (it does only
    /// on a backend with batches wider than [`LANES`]; the caller then uses `ctr`).
    fn wide_ctr<Io: LaneIo>(&self, nonce_mac: &Block, mut io: Io) -> bool {
        let mut ran = false;
        self.cipher.encrypt_with_backend(WideCtrKernel {
            io: &mut io,
            counter: u128::from_be_bytes(*nonce_mac),
            ran: &mut ran,
        });
        ran
    }

    /// Encrypts `buf` in place and returns the tag.
    pub(crate) fn encrypt(&self, nonce_mac: &Block, header_mac: &Block, buf: &mut [u8]) -> Block {
        let mut lanes = [self.lane(InPlace(buf), 0, nonce_mac)];
        let mut ct_mac = [[0u8; 16]; 1];
        self.run_lanes(&mut lanes, Direction::Seal, &mut ct_mac);
        combine(nonce_mac, header_mac, &ct_mac[0])
    }

    /// Decrypts `buf` in place and checks `tag`. On a mismatch `buf` is restored to the
    /// ciphertext (the keystream applied again) and `OMAC²(ciphertext)` is returned, so
    /// a caller can test the tag under another nonce without a second pass.
    pub(crate) fn decrypt_or_mac(
        &self,
        nonce_mac: &Block,
        header_mac: &Block,
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Block> {
        let mut lanes = [self.lane(InPlace(buf), 0, nonce_mac)];
        let mut ct_mac = [[0u8; 16]; 1];
        self.run_lanes(&mut lanes, Direction::Open, &mut ct_mac);
        if tags_equal(&combine(nonce_mac, header_mac, &ct_mac[0]), tag) {
            return Ok(());
        }
        let [lane] = lanes;
        self.apply_keystream(nonce_mac, lane.io.0);
        Err(ct_mac[0])
    }

    /// Verifies `tag` over `buf` (ciphertext) and decrypts it in place. On a mismatch
    /// `buf` is left holding the ciphertext, as it was.
    pub(crate) fn decrypt(
        &self,
        nonce_mac: &Block,
        header_mac: &Block,
        buf: &mut [u8],
        tag: &[u8],
    ) -> bool {
        self.decrypt_or_mac(nonce_mac, header_mac, buf, tag).is_ok()
    }

    /// One-shot encryption with an arbitrary-length nonce.
    pub(crate) fn seal_detached(
        &self,
        nonce: &[u8],
        associated_data: &[u8],
        buf: &mut [u8],
    ) -> Block {
        self.encrypt(
            &self.nonce_mac(nonce),
            &self.header_mac(associated_data),
            buf,
        )
    }

    /// One-shot decryption with an arbitrary-length nonce.
    pub(crate) fn open_detached(
        &self,
        nonce: &[u8],
        associated_data: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> bool {
        self.decrypt(
            &self.nonce_mac(nonce),
            &self.header_mac(associated_data),
            buf,
            tag,
        )
    }
}

/// `N' ⊕ H' ⊕ C'`.
pub(crate) fn combine(nonce_mac: &Block, header_mac: &Block, ciphertext_mac: &Block) -> Block {
    let mut tag = [0u8; 16];
    for i in 0..16 {
        tag[i] = nonce_mac[i] ^ header_mac[i] ^ ciphertext_mac[i];
    }
    tag
}

/// Constant-time tag comparison; a tag of the wrong length never matches.
pub(crate) fn tags_equal(expected: &Block, found: &[u8]) -> bool {
    found.len() == TAG_LEN && bool::from(expected.ct_eq(found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::{Aes128, Aes192, Aes256};
    use cipher::KeyInit;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct File {
        #[serde(rename = "testGroups")]
        groups: Vec<Group>,
        #[serde(rename = "numberOfTests")]
        count: usize,
    }
    #[derive(Deserialize)]
    struct Group {
        #[serde(rename = "keySize")]
        key_size: usize,
        tests: Vec<Case>,
    }
    #[derive(Deserialize)]
    struct Case {
        #[serde(rename = "tcId")]
        id: usize,
        key: String,
        iv: String,
        aad: String,
        msg: String,
        ct: String,
        tag: String,
        result: String,
    }

    fn run<C: EaxCipher + KeyInit>(case: &Case) {
        let unhex = |s: &str| hex::decode(s).unwrap();
        let eax = Eax::new(C::new_from_slice(&unhex(&case.key)).unwrap());
        let (nonce, aad, msg, ct, tag) = (
            unhex(&case.iv),
            unhex(&case.aad),
            unhex(&case.msg),
            unhex(&case.ct),
            unhex(&case.tag),
        );
        let mut buf = ct.clone();
        let opened = eax.open_detached(&nonce, &aad, &mut buf, &tag);
        match case.result.as_str() {
            "valid" => {
                assert!(opened, "tcId {} must open", case.id);
                assert_eq!(buf, msg, "tcId {} plaintext", case.id);
                let mut sealed = msg.clone();
                let computed = eax.seal_detached(&nonce, &aad, &mut sealed);
                assert_eq!(sealed, ct, "tcId {} ciphertext", case.id);
                assert_eq!(computed.to_vec(), tag, "tcId {} tag", case.id);
            }
            "invalid" => {
                assert!(!opened, "tcId {} must be rejected", case.id);
                assert_eq!(buf, ct, "tcId {}: a rejected buffer is untouched", case.id);
            }
            other => panic!("tcId {}: unexpected result {other}", case.id),
        }
    }

    /// Every case of Wycheproof's `aes_eax_test.json` (AES-128/192/256, nonces of 0 to
    /// 257 bytes), through the same `Eax` the sealed-record format uses.
    #[test]
    fn wycheproof_aes_eax() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/wycheproof/aes_eax_test.json"
        );
        let file: File = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut ran = 0;
        for group in &file.groups {
            for case in &group.tests {
                match group.key_size {
                    128 => run::<Aes128>(case),
                    192 => run::<Aes192>(case),
                    256 => run::<Aes256>(case),
                    other => panic!("unexpected key size {other}"),
                }
                ran += 1;
            }
        }
        assert_eq!(ran, file.count);
        assert_eq!(ran, 240);
    }

    /// Wycheproof's AES-256 cases with 16-byte nonces through the multi-lane path: one
    /// lane, three at once (a batch padded to the backend's width) and eight at once.
    #[test]
    fn wycheproof_aes256_eax_through_the_lanes() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/wycheproof/aes_eax_test.json"
        );
        let file: File = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let unhex = |s: &str| hex::decode(s).unwrap();
        let mut ran = 0;
        for group in file.groups.iter().filter(|g| g.key_size == 256) {
            for case in group.tests.iter().filter(|c| c.iv.len() == 32) {
                let eax = Eax::new(Aes256::new_from_slice(&unhex(&case.key)).unwrap());
                let nonce: [u8; 16] = unhex(&case.iv).try_into().unwrap();
                let header_mac = eax.header_mac(&unhex(&case.aad));
                let (msg, ct, tag) = (unhex(&case.msg), unhex(&case.ct), unhex(&case.tag));
                for lanes in [1, 3, LANES] {
                    let nonces = vec![nonce; lanes];
                    let cts: Vec<&[u8]> = vec![&ct[..]; lanes];
                    let tags: Vec<&[u8]> = vec![&tag[..]; lanes];
                    let mut bufs: Vec<Vec<u8>> = vec![vec![0xee; ct.len()]; lanes];
                    let mut views: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
                    let bad = eax
                        .open_lanes(&nonces, &header_mac, &cts, &tags, &mut views)
                        .map(|(lane, _)| lane);
                    if case.result == "valid" {
                        assert_eq!(bad, None, "tcId {}", case.id);
                        assert!(bufs.iter().all(|b| *b == msg), "tcId {}", case.id);
                        let msgs: Vec<&[u8]> = vec![&msg[..]; lanes];
                        let mut sealed: Vec<Vec<u8>> = vec![vec![0; msg.len()]; lanes];
                        let mut views: Vec<&mut [u8]> =
                            sealed.iter_mut().map(|b| &mut b[..]).collect();
                        let mut out = vec![[0u8; 16]; lanes];
                        eax.seal_lanes(&nonces, &header_mac, &msgs, &mut views, &mut out);
                        assert!(sealed.iter().all(|b| *b == ct), "tcId {}", case.id);
                        assert!(out.iter().all(|t| t[..] == tag[..]), "tcId {}", case.id);
                    } else {
                        assert_eq!(bad, Some(0), "tcId {}", case.id);
                        assert!(
                            bufs.iter().all(|b| b.iter().all(|&x| x == 0xee)),
                            "tcId {}: nothing written",
                            case.id
                        );
                    }
                }
                ran += 1;
            }
        }
        assert_eq!(ran, 56);
    }

    /// EAX straight from the `ctr` and `cmac` crates, one message at a time: the
    /// reference the lane kernel must match bit for bit.
    fn reference_seal(
        eax: &Eax<Aes256>,
        nonce_mac: &Block,
        header_mac: &Block,
        buf: &mut [u8],
    ) -> Block {
        ctr_crate(eax, nonce_mac, buf);
        combine(nonce_mac, header_mac, &eax.omac(2, buf))
    }

    /// The `ctr` crate's keystream, the reference for the wide-backend kernel.
    fn ctr_crate(eax: &Eax<Aes256>, nonce_mac: &Block, buf: &mut [u8]) {
        let core = CtrCore::<Aes256, Ctr128BE>::inner_iv_init(eax.cipher.clone(), nonce_mac.into());
        StreamCipherCoreWrapper::from_core(core).apply_keystream(buf);
    }

    /// `OMACᵗ` is CMAC of `[t]₁₂₈ ‖ data`, as the `cmac` crate computes it, for every
    /// domain and every length from 0 to 100 bytes (empty, partial and full last
    /// blocks), under two key sizes' worth of keys.
    #[test]
    fn omac_equals_the_cmac_crate() {
        use cmac::digest::common::InnerInit;
        use cmac::{Cmac, Mac};
        for key in [[0u8; 32], [0xA7; 32]] {
            let cipher = Aes256::new(&key.into());
            let eax = Eax::new(cipher.clone());
            let data: Vec<u8> = (0..100u32).map(|i| (i * 37 + 11) as u8).collect();
            for domain in 0..3u8 {
                for len in 0..=data.len() {
                    let mut reference = Cmac::inner_init(cipher.clone());
                    let mut prefix = [0u8; 16];
                    prefix[15] = domain;
                    reference.update(&prefix);
                    reference.update(&data[..len]);
                    let want: Block = reference.finalize().into_bytes().into();
                    assert_eq!(
                        eax.omac(domain.into(), &data[..len]),
                        want,
                        "OMAC{domain}, {len} bytes"
                    );
                }
            }
        }
    }

    /// A backend with VAES-wide batches whatever the CPU, so the wide CTR kernel is
    /// tested on every machine: single blocks through `aes`, batches block by block.
    struct WideBackend<'a>(&'a Aes256);
    impl BlockSizeUser for WideBackend<'_> {
        type BlockSize = U16;
    }
    impl cipher::ParBlocksSizeUser for WideBackend<'_> {
        type ParBlocksSize = cipher::consts::U64;
    }
    impl BlockCipherEncBackend for WideBackend<'_> {
        fn encrypt_block(&self, mut block: cipher::inout::InOut<'_, '_, Array<u8, U16>>) {
            let mut b = *block.get_in();
            cipher::BlockCipherEncrypt::encrypt_block(self.0, &mut b);
            *block.get_out() = b;
        }
    }

    /// The wide kernel's keystream is the `ctr` crate's, in place and buffer to buffer,
    /// for every length from 0 to 300 bytes and a few long ones, and across the
    /// counter's wrap; on a backend with batches of eight it leaves the work to `ctr`.
    #[test]
    fn the_wide_ctr_kernel_equals_the_ctr_crate() {
        let aes = Aes256::new(&[5u8; 32].into());
        let eax = Eax::new(aes.clone());
        let mut seed = 0x5eed_u64;
        let lengths = (0..=300).chain([1024, 16 * 64 + 15, 65_536 + 3]);
        for (n, len) in lengths.enumerate() {
            let start = match n % 3 {
                0 => 0u128.wrapping_sub(3),
                1 => u128::from(xorshift(&mut seed)) << 64 | u128::from(xorshift(&mut seed)),
                _ => 7,
            };
            let nonce_mac = start.to_be_bytes();
            let plain: Vec<u8> = (0..len).map(|_| xorshift(&mut seed) as u8).collect();
            let mut want = plain.clone();
            ctr_crate(&eax, &nonce_mac, &mut want);

            let mut in_place = plain.clone();
            let mut ran = false;
            WideCtrKernel {
                io: &mut InPlace(&mut in_place),
                counter: start,
                ran: &mut ran,
            }
            .call(&WideBackend(&aes));
            assert!(ran);
            assert_eq!(in_place, want, "in place, {len} bytes");

            let mut output = vec![0xAA; len];
            let mut ran = false;
            let mut io = Apart {
                input: &plain,
                output: &mut output,
            };
            WideCtrKernel {
                io: &mut io,
                counter: start,
                ran: &mut ran,
            }
            .call(&WideBackend(&aes));
            assert!(ran);
            assert_eq!(output, want, "buffer to buffer, {len} bytes");

            // Through the `Eax` entry points, whichever backend this CPU picks.
            let mut through = plain.clone();
            eax.apply_keystream(&nonce_mac, &mut through);
            assert_eq!(through, want);
            let mut output = vec![0; len];
            eax.apply_keystream_b2b(&nonce_mac, &plain, &mut output);
            assert_eq!(output, want);
        }
        // Eight-block batches (AES-NI): the kernel declines.
        struct NarrowBackend<'a>(WideBackend<'a>);
        impl BlockSizeUser for NarrowBackend<'_> {
            type BlockSize = U16;
        }
        impl cipher::ParBlocksSizeUser for NarrowBackend<'_> {
            type ParBlocksSize = cipher::consts::U8;
        }
        impl BlockCipherEncBackend for NarrowBackend<'_> {
            fn encrypt_block(&self, block: cipher::inout::InOut<'_, '_, Array<u8, U16>>) {
                self.0.encrypt_block(block);
            }
        }
        let mut buf = vec![1u8; 100];
        let mut ran = false;
        WideCtrKernel {
            io: &mut InPlace(&mut buf),
            counter: 0,
            ran: &mut ran,
        }
        .call(&NarrowBackend(WideBackend(&aes)));
        assert!(!ran);
        assert_eq!(buf, vec![1u8; 100], "left untouched for `ctr`");
    }

    fn xorshift(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// The multi-lane path and the in-place path are bit-identical to the reference for
    /// random lengths (up to 70 blocks, so the kernel runs many steps), ragged groups,
    /// empty messages and every group size; opening reports the first bad lane and
    /// writes nothing of it.
    #[test]
    fn lanes_agree_with_the_reference() {
        let eax = Eax::new(Aes256::new(&[9u8; 32].into()));
        let header_mac = eax.header_mac(b"header");
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || xorshift(&mut seed);
        for round in 0..300 {
            let n = 1 + (next() % LANES as u64) as usize;
            let lens: Vec<usize> = (0..n)
                .map(|_| match round % 3 {
                    0 => 160,
                    1 => (next() % 300) as usize,
                    _ => (next() % 1120) as usize,
                })
                .collect();
            let nonces: Vec<[u8; 16]> = (0..n)
                .map(|_| core::array::from_fn(|_| next() as u8))
                .collect();
            let plain: Vec<Vec<u8>> = lens
                .iter()
                .map(|&l| (0..l).map(|_| next() as u8).collect())
                .collect();
            let inputs: Vec<&[u8]> = plain.iter().map(|p| &p[..]).collect();
            let mut sealed: Vec<Vec<u8>> = lens.iter().map(|&l| vec![0; l]).collect();
            let mut views: Vec<&mut [u8]> = sealed.iter_mut().map(|b| &mut b[..]).collect();
            let mut tags = vec![[0u8; 16]; n];
            eax.seal_lanes(&nonces, &header_mac, &inputs, &mut views, &mut tags);
            for i in 0..n {
                let nonce_mac = eax.nonce_mac(&nonces[i]);
                let mut reference = plain[i].clone();
                let reference_tag = reference_seal(&eax, &nonce_mac, &header_mac, &mut reference);
                assert_eq!(sealed[i], reference, "lane {i} of {n}, {} bytes", lens[i]);
                assert_eq!(tags[i], reference_tag, "lane {i} of {n}, {} bytes", lens[i]);
                let mut in_place = plain[i].clone();
                assert_eq!(
                    eax.encrypt(&nonce_mac, &header_mac, &mut in_place),
                    reference_tag
                );
                assert_eq!(in_place, reference);
                assert!(eax.decrypt(&nonce_mac, &header_mac, &mut in_place, &reference_tag));
                assert_eq!(in_place, plain[i]);
            }
            // Break one lane: it alone is reported, and nothing of it is written.
            let bad = (next() % n as u64) as usize;
            tags[bad][0] ^= 1;
            let tag_views: Vec<&[u8]> = tags.iter().map(|t| &t[..]).collect();
            let cts: Vec<&[u8]> = sealed.iter().map(|c| &c[..]).collect();
            let mut opened: Vec<Vec<u8>> = lens.iter().map(|&l| vec![0x5a; l]).collect();
            let mut views: Vec<&mut [u8]> = opened.iter_mut().map(|b| &mut b[..]).collect();
            assert_eq!(
                eax.open_lanes(&nonces, &header_mac, &cts, &tag_views, &mut views),
                Some((bad, eax.omac(2, &sealed[bad])))
            );
            for i in 0..n {
                if i == bad {
                    assert!(
                        opened[i].iter().all(|&b| b == 0x5a),
                        "nothing of a failed lane is written"
                    );
                } else {
                    assert_eq!(opened[i], plain[i]);
                }
            }
            // Opening in place: the same verdict; the good lanes hold their plaintext,
            // the bad one still its ciphertext.
            let mut in_place = sealed.clone();
            let mut views: Vec<&mut [u8]> = in_place.iter_mut().map(|b| &mut b[..]).collect();
            assert_eq!(
                eax.open_lanes_in_place(&nonces, &header_mac, &mut views, &tag_views),
                Some((bad, eax.omac(2, &sealed[bad])))
            );
            for i in 0..n {
                let expected = if i == bad { &sealed[i] } else { &plain[i] };
                assert_eq!(&in_place[i], expected, "in place, lane {i} of {n}");
            }
            tags[bad][0] ^= 1;
            let tag_views: Vec<&[u8]> = tags.iter().map(|t| &t[..]).collect();
            let mut in_place = sealed.clone();
            let mut views: Vec<&mut [u8]> = in_place.iter_mut().map(|b| &mut b[..]).collect();
            assert_eq!(
                eax.open_lanes_in_place(&nonces, &header_mac, &mut views, &tag_views),
                None
            );
            assert_eq!(in_place, plain);
            tags[bad][0] ^= 1;
            // The in-place path restores the ciphertext when the tag is wrong, and hands
            // back OMAC²(C) so the caller can test another nonce.
            let mut rejected = sealed[bad].clone();
            let nonce_mac = eax.nonce_mac(&nonces[bad]);
            let ct_mac = eax
                .decrypt_or_mac(&nonce_mac, &header_mac, &mut rejected, &tags[bad])
                .unwrap_err();
            assert_eq!(rejected, sealed[bad]);
            assert_eq!(ct_mac, eax.omac(2, &sealed[bad]));
        }
    }

    /// The counter is the whole 128-bit block, big-endian, wrapping: the kernel's
    /// arithmetic matches `Ctr128BE` across the wrap, in both directions.
    #[test]
    fn the_counter_wraps_as_ctr128be_does() {
        let eax = Eax::new(Aes256::new(&[3u8; 32].into()));
        let header_mac = eax.header_mac(b"");
        for below in [1u128, 5, 40] {
            let nonce_mac = (0u128.wrapping_sub(below)).to_be_bytes();
            let plain: Vec<u8> = (0..16 * 64 + 7).map(|i| i as u8).collect();
            let mut reference = plain.clone();
            let tag = reference_seal(&eax, &nonce_mac, &header_mac, &mut reference);
            let mut sealed = plain.clone();
            assert_eq!(eax.encrypt(&nonce_mac, &header_mac, &mut sealed), tag);
            assert_eq!(sealed, reference);
            assert!(eax.decrypt(&nonce_mac, &header_mac, &mut sealed, &tag));
            assert_eq!(sealed, plain);
        }
    }

    /// A lane that cannot run is reported, never skipped: a ciphertext without an
    /// output slot, or one whose output has another length, fails closed.
    #[test]
    fn lanes_that_cannot_run_fail_closed() {
        let eax = Eax::new(Aes256::new(&[5u8; 32].into()));
        let header_mac = eax.header_mac(b"");
        let nonces = [[1u8; 16], [2; 16], [3; 16]];
        let plain: [&[u8]; 3] = [&[7u8; 40], &[8; 33], &[9; 16]];
        let mut sealed = [vec![0u8; 40], vec![0; 33], vec![0; 16]];
        let mut views: Vec<&mut [u8]> = sealed.iter_mut().map(|b| &mut b[..]).collect();
        let mut tags = [[0u8; 16]; 3];
        eax.seal_lanes(&nonces, &header_mac, &plain, &mut views, &mut tags);
        let cts: Vec<&[u8]> = sealed.iter().map(|c| &c[..]).collect();
        let tag_views: Vec<&[u8]> = tags.iter().map(|t| &t[..]).collect();
        let mut outs = [vec![0u8; 40], vec![0; 33]];
        let mut two: Vec<&mut [u8]> = outs.iter_mut().map(|b| &mut b[..]).collect();
        let failed = eax.open_lanes(&nonces, &header_mac, &cts, &tag_views, &mut two);
        assert_eq!(failed.map(|(lane, _)| lane), Some(2));
        let mut outs = [vec![0u8; 40], vec![0; 32], vec![0; 16]];
        let mut short: Vec<&mut [u8]> = outs.iter_mut().map(|b| &mut b[..]).collect();
        let failed = eax.open_lanes(&nonces, &header_mac, &cts, &tag_views, &mut short);
        assert_eq!(failed.map(|(lane, _)| lane), Some(1));
        // In place: a buffer beyond the nonces given, or without a tag, fails.
        let mut bufs = sealed.clone();
        let mut views: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
        let failed = eax.open_lanes_in_place(&nonces[..2], &header_mac, &mut views, &tag_views);
        assert_eq!(failed.map(|(lane, _)| lane), Some(2));
        assert_eq!(
            bufs[2], sealed[2],
            "the lane that could not run is untouched"
        );
        let mut bufs = sealed.clone();
        let mut views: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
        let failed = eax.open_lanes_in_place(&nonces, &header_mac, &mut views, &tag_views[..1]);
        assert_eq!(failed.map(|(lane, _)| lane), Some(1));
        assert_eq!(bufs[0], plain[0]);
    }

    #[test]
    fn truncated_or_long_tags_never_match() {
        let expected = [7u8; 16];
        assert!(tags_equal(&expected, &[7u8; 16]));
        assert!(!tags_equal(&expected, &[7u8; 15]));
        assert!(!tags_equal(&expected, &[7u8; 17]));
        assert!(!tags_equal(&expected, &[]));
    }
}
