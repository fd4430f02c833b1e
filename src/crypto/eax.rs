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
//! latency-bound, and the keystream block computed beside it costs nothing (when
//! opening, the output is wiped again if the tag is wrong). A record of one chunk goes
//! further (`seal_alone`, `open_alone`): its nonce's and header's MACs run in the same
//! dispatch, beside the chunk's chain rather than before it.
//! The backend (AES-NI, VAES or software) is picked at run time by `aes`: from 0.9.3
//! on its VAES backends run on CPUs that have them (with 0.9.2, the lockfile's
//! version, only in builds that opt in with `--cfg aes_backend`). The wide paths serve
//! them and are tested through a 64-block test backend whatever the machine.
//!
//! The `cmac` and `ctr` crates remain the reference: the tests check the kernel against
//! them bit for bit, besides the Wycheproof vectors.

use cipher::{Array, InnerIvInit, StreamCipher, StreamCipherCoreWrapper, consts::U16};
use cmac::block_api::CmacCipher;
use cmac::digest::block_api::SmallBlockSizeUser;
use ctr::{CtrCore, flavors::Ctr128BE};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::cmac::{CbcMacKernel, Subkeys, xor_into};
pub(crate) use super::lanes::LANES;
use super::lanes::{AloneKernel, Apart, Direction, InPlace, Lane, LaneIo, LaneKernel, last_block};
use super::wide_ctr::WideCtrKernel;

/// EAX tag length in bytes (the full block; tags are never truncated here).
pub(crate) const TAG_LEN: usize = 16;

pub(crate) use super::cmac::Block;

/// An EAX instance: a keyed block cipher, the CMAC subkeys and the CBC-MAC state of
/// each OMAC after its one-block domain prefix.
#[derive(Clone)]
pub(crate) struct Eax<C: CmacCipher + Clone> {
    cipher: C,
    /// CMAC's subkeys, from `E(0)`.
    subkeys: Subkeys,
    /// `E([t]₁₂₈)` for `t` = 0, 1, 2: the CBC-MAC state of `OMACᵗ` after its domain
    /// block (`E([0]₁₂₈) = E(0)` is also the root of the subkeys).
    starts: [Block; 3],
}

impl<C: CmacCipher + Clone> Drop for Eax<C> {
    fn drop(&mut self) {
        // The cipher wipes itself (the `zeroize` feature of `aes`); these are derived
        // from the key too.
        self.starts.zeroize();
    }
}

/// The block ciphers EAX is built on here: 128-bit blocks, usable by `cmac` and `ctr`.
pub(crate) trait EaxCipher:
    CmacCipher + SmallBlockSizeUser<_BlockSize = U16> + Clone
{
}
impl<C: CmacCipher + SmallBlockSizeUser<_BlockSize = U16> + Clone> EaxCipher for C {}

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
        let subkeys = Subkeys::from_zero_block(&starts[0]);
        Eax {
            cipher,
            subkeys,
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
            xor_into(block, self.subkeys.k1());
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
            *state = last_block(&self.subkeys, lane, keystream, direction);
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
    /// tag verified: the lanes' MACs run interleaved first, then each good lane's
    /// keystream. A failed lane's output holds no plaintext: it is left as it was, or
    /// zero-filled when that lane ran alone (decrypted beside its MAC chain). Returns
    /// the first lane that failed, if any, with `OMAC²` of its ciphertext (so the caller
    /// can test the tag under another nonce without a second pass).
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
            |_, Apart { output, .. }| output.fill(0),
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
        // In place, decrypting and undoing a decryption are the same keystream.
        let keystream = |nonce_mac: &Block, InPlace(buf): &mut InPlace<'_>| {
            self.apply_keystream(nonce_mac, buf)
        };
        self.verify_then_decrypt(
            &mut lanes,
            &nonce_macs,
            header_mac,
            tags,
            first_bad,
            keystream,
            keystream,
        )
    }

    /// The opening half both `open_lanes` variants share: the lanes' MAC chains run
    /// interleaved over the ciphertexts, then `decrypt` runs for each lane whose tag
    /// verified. One lane alone is decrypted in the same pass as its MAC chain instead
    /// (the chain is latency-bound, so the keystream block beside each step is free; a
    /// separate CTR pass cost a tenth of a 1 KiB record's opening: bench `peers`,
    /// `peers-1-thread/medvault-open/1KiB`), and `undo` removes its plaintext if the
    /// tag is wrong. Returns the first failing slot (from `first_bad`, lanes that could
    /// not run, or a wrong tag) with `OMAC²` of its ciphertext.
    #[allow(clippy::too_many_arguments)]
    fn verify_then_decrypt<Io: LaneIo>(
        &self,
        lanes: &mut [Lane<Io>],
        nonce_macs: &[Block; LANES],
        header_mac: &Block,
        tags: &[&[u8]],
        mut first_bad: Option<usize>,
        decrypt: impl Fn(&Block, &mut Io),
        undo: impl Fn(&Block, &mut Io),
    ) -> Option<(usize, Block)> {
        let mut ct_macs = [[0u8; 16]; LANES];
        let one_pass = lanes.len() == 1;
        let direction = if one_pass {
            Direction::Open
        } else {
            Direction::MacOnly
        };
        self.run_lanes(lanes, direction, &mut ct_macs);
        for lane in lanes.iter_mut() {
            let i = lane.slot;
            let expected = combine(&nonce_macs[i], header_mac, &ct_macs[i]);
            if tags.get(i).is_some_and(|tag| tags_equal(&expected, tag)) {
                if !one_pass {
                    decrypt(&nonce_macs[i], &mut lane.io);
                }
            } else {
                if one_pass {
                    undo(&nonce_macs[i], &mut lane.io);
                }
                first_bad = Some(first_bad.map_or(i, |bad: usize| bad.min(i)));
            }
        }
        first_bad.map(|bad| (bad, ct_macs[bad]))
    }

    /// `OMACᵗ(data) = CMAC([t]₁₂₈ ‖ data)` for `t = domain` (0, 1 or 2).
    fn omac(&self, domain: usize, data: &[u8]) -> Block {
        let (mut state, middle, last) = self.omac_parts(domain, data);
        let mut last = Array::<u8, U16>::from(last);
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

    /// `OMACᵗ(data)` as a CBC-MAC chain to run: its state after the domain block (zero
    /// if `data` is empty), the full blocks before the last, and the last block masked:
    /// full with K1, else padded with K2 (for empty `data`, the domain block itself).
    fn omac_parts<'d>(&self, domain: usize, data: &'d [u8]) -> (Block, &'d [u8], Block) {
        match data.len() {
            0 => {
                let mut domain_block = [0u8; 16];
                domain_block[15] = domain as u8;
                self.subkeys.mask_last(&mut domain_block, 16);
                ([0u8; 16], &[][..], domain_block)
            }
            len => {
                let last_len = (len - 1) % 16 + 1;
                let mut last = [0u8; 16];
                last[..last_len].copy_from_slice(&data[len - last_len..]);
                self.subkeys.mask_last(&mut last, last_len);
                (self.starts[domain], &data[..len - last_len], last)
            }
        }
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

    /// One message alone, with its nonce's and header's MACs, in one dispatch into the
    /// block cipher's backend ([`AloneKernel`]). Returns `[N', H', OMAC²(C)]`.
    fn run_alone<Io: LaneIo>(
        &self,
        nonce: &[u8; 16],
        header: &[u8],
        io: Io,
        direction: Direction,
    ) -> [Block; 3] {
        // `N'`: one full block after the domain block, masked with K1.
        let mut nonce_block = Array::from(self.starts[0]);
        xor_into(&mut nonce_block, nonce);
        xor_into(&mut nonce_block, self.subkeys.k1());
        let (header_state, header_middle, header_last) = self.omac_parts(1, header);
        // Its counter is set by the kernel, once `N'` is known.
        let mut lane = self.lane(io, 0, &[0; 16]);
        let mut macs = [[0u8; 16]; 3];
        self.cipher.encrypt_with_backend(AloneKernel {
            lane: &mut lane,
            direction,
            subkeys: &self.subkeys,
            nonce_block,
            header_state: Array::from(header_state),
            header_middle,
            header_last: Array::from(header_last),
            macs: &mut macs,
        });
        macs
    }

    /// Seals one message from `input` into `output` (same length) under `nonce` with
    /// `header` as associated data, and returns the tag: `N'` and `H'` are computed in
    /// the same pass as the message, beside its MAC chain, instead of before it (bench
    /// `peers`, `medvault-seal/1KiB`). Lengths that differ (callers rule it out) fail
    /// closed: `output` is zero-filled and the tag is zero.
    pub(crate) fn seal_alone(
        &self,
        nonce: &[u8; 16],
        header: &[u8],
        input: &[u8],
        output: &mut [u8],
    ) -> Block {
        if input.len() != output.len() {
            output.fill(0);
            return [0; 16];
        }
        let [nonce_mac, header_mac, ct_mac] =
            self.run_alone(nonce, header, Apart { input, output }, Direction::Seal);
        combine(&nonce_mac, &header_mac, &ct_mac)
    }

    /// Opens one message from `ciphertext` into `output` (same length) under `nonce`
    /// with `header` as associated data, in one pass as [`Eax::seal_alone`] seals it.
    /// If `tag` is wrong (or the lengths differ), `output` is zero-filled and
    /// `OMAC²(ciphertext)` is returned, so the caller can test the tag under another
    /// nonce.
    pub(crate) fn open_alone(
        &self,
        nonce: &[u8; 16],
        header: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        output: &mut [u8],
    ) -> Result<(), Block> {
        if ciphertext.len() != output.len() {
            output.fill(0);
            return Err(self.omac(2, ciphertext));
        }
        let io = Apart {
            input: ciphertext,
            output: &mut *output,
        };
        let [nonce_mac, header_mac, ct_mac] = self.run_alone(nonce, header, io, Direction::Open);
        if tags_equal(&combine(&nonce_mac, &header_mac, &ct_mac), tag) {
            return Ok(());
        }
        output.fill(0);
        Err(ct_mac)
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
#[path = "eax_tests.rs"]
mod tests;
