//! CTR over one message inside the block cipher's backend, for backends whose batches
//! are wider than [`LANES`](super::lanes::LANES): `aes` picks its VAES backends at run
//! time from 0.9.3 on (with 0.9.2, only in builds that opt in with `--cfg
//! aes_backend`). Tested through a 64-block test backend whatever the machine.

use cipher::typenum::Unsigned;
use cipher::{Array, BlockCipherEncBackend, BlockCipherEncClosure, BlockSizeUser, consts::U16};

use zeroize::Zeroize;

use super::cmac::xor_into;
use super::lanes::{LANES, LaneIo, load, store};

/// CTR over one message inside the block cipher's backend, for backends whose batches
/// are wider than [`LANES`] (VAES: 30 or 64 blocks). There the `ctr` crate fills and
/// encrypts whole wide batches through `aes`'s VAES path, which measured slower than
/// eight AES-NI blocks at a time on one core (bench `seal`, `seal-into-1-thread` rows
/// on a VAES machine with `aes` 0.9.4). With AES-NI batches of eight, `ctr` already
/// runs that way, so the kernel leaves the message to it (`ran` stays false).
pub(super) struct WideCtrKernel<'a, Io> {
    pub(super) io: &'a mut Io,
    /// The counter block of message block `j` is `counter + j mod 2^128` (`Ctr128BE`).
    pub(super) counter: u128,
    pub(super) ran: &'a mut bool,
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
