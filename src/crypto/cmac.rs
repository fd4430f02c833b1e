//! CMAC (NIST SP 800-38B) as both the KDF's PRF and EAX's OMAC use it: the subkeys,
//! the masking of a message's last block, and one CBC-MAC chain run inside the block
//! cipher's backend. The many-chains-at-once paths build on these: the KDF's output
//! blocks (`kdf`), EAX's lanes (`lanes`).

use cipher::{Array, BlockCipherEncBackend, BlockCipherEncClosure, BlockSizeUser, consts::U16};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A block, a tag or an intermediate CBC-MAC state.
pub(crate) type Block = [u8; 16];

/// Doubling in GF(2^128) (the CMAC subkey step), without a secret-dependent branch.
fn dbl(block: Block) -> Block {
    let v = u128::from_be_bytes(block);
    let carry = 0u128.wrapping_sub(v >> 127) & 0x87;
    ((v << 1) ^ carry).to_be_bytes()
}

pub(crate) fn xor_into(acc: &mut [u8], other: &[u8]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a ^= b;
    }
}

/// CMAC's subkeys `K1 = dbl(L)` and `K2 = dbl(K1)`, from `L = E_K(0¹²⁸)`; wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Subkeys {
    k1: Block,
    k2: Block,
}

impl Subkeys {
    /// The subkeys from `L = E_K(0¹²⁸)`.
    pub(crate) fn from_zero_block(zero_block: &Block) -> Self {
        let k1 = dbl(*zero_block);
        Subkeys { k1, k2: dbl(k1) }
    }

    /// Masks a message's last block of `len` bytes (0 to 16; 0 only for the empty
    /// message), already XORed into `state`: a full block gets `K1`, a partial one the
    /// `10*` padding and `K2`.
    pub(crate) fn mask_last(&self, state: &mut [u8], len: usize) {
        if len == 16 {
            xor_into(state, &self.k1);
        } else {
            state[len] ^= 0x80;
            xor_into(state, &self.k2);
        }
    }

    /// `K1`, for a last block known to be full (a 16-byte nonce).
    pub(crate) fn k1(&self) -> &Block {
        &self.k1
    }
}

/// One CBC-MAC chain inside the backend (one dispatch for the whole message): the
/// full blocks of `middle`, then the already masked `last` block.
pub(crate) struct CbcMacKernel<'a> {
    pub(crate) state: &'a mut Array<u8, U16>,
    pub(crate) middle: &'a [u8],
    pub(crate) last: &'a Array<u8, U16>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_follow_sp_800_38b() {
        // SP 800-38B, D.1 (AES-128): L = 7df76b0c1ab899b33e42f047b91b546f.
        let l = [
            0x7d, 0xf7, 0x6b, 0x0c, 0x1a, 0xb8, 0x99, 0xb3, 0x3e, 0x42, 0xf0, 0x47, 0xb9, 0x1b,
            0x54, 0x6f,
        ];
        let subkeys = Subkeys::from_zero_block(&l);
        assert_eq!(
            subkeys.k1,
            u128::to_be_bytes(0xfbeed618357133667c85e08f7236a8de)
        );
        assert_eq!(
            subkeys.k2,
            u128::to_be_bytes(0xf7ddac306ae266ccf90bc11ee46d513b)
        );
    }
}
