//! The chunks of one record under STREAM: nonce `prefix ‖ index ‖ last flag`, EAX with
//! the header as associated data, up to [`LANES`] chunks at a time.

use aes::Aes256Enc;
use cipher::KeyInit;

use crate::crypto::eax::{Block, Eax, LANES, combine, tags_equal};
use crate::error::{Error, Result};
use crate::keys::RecordKey;

use super::header::*;

/// Encrypts and decrypts the chunks of one record.
pub(crate) struct ChunkCipher {
    eax: Eax<Aes256Enc>,
    header_mac: Block,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    chunk_size: usize,
}

impl ChunkCipher {
    pub(crate) fn new(key: &RecordKey, header: &RecordHeader) -> Self {
        let eax = Eax::new(Aes256Enc::new(key.expose_secret().into()));
        let header_mac = eax.header_mac(&header.to_bytes());
        ChunkCipher {
            eax,
            header_mac,
            nonce_prefix: header.nonce_prefix,
            chunk_size: header.chunk_size as usize,
        }
    }

    fn nonce(&self, index: u32, last: bool) -> [u8; 16] {
        chunk_nonce(&self.nonce_prefix, index, last)
    }

    fn nonce_mac(&self, index: u32, last: bool) -> Block {
        let mut out = [[0u8; 16]; 1];
        self.eax.nonce_macs(&[self.nonce(index, last)], &mut out);
        out[0]
    }

    /// Nonces of up to [`LANES`] consecutive chunks from `first`; the chunk with index
    /// `last_index`, if any, gets the last flag.
    fn nonces(&self, first: u32, last_index: Option<u32>) -> [[u8; 16]; LANES] {
        core::array::from_fn(|i| {
            let index = first.wrapping_add(i as u32);
            self.nonce(index, Some(index) == last_index)
        })
    }

    /// Seals up to [`LANES`] consecutive chunks from `inputs` into `ciphertext ‖ tag`
    /// regions, the first being chunk `first`; the chunk with index `last_index` (if
    /// among them) gets the last flag.
    pub(crate) fn seal_group(
        &self,
        first: u32,
        last_index: u32,
        inputs: &[&[u8]],
        regions: &mut [&mut [u8]],
    ) {
        let n = inputs.len();
        let nonces = self.nonces(first, Some(last_index));
        let mut tags = [[0u8; 16]; LANES];
        let (mut bodies, mut tag_slots) = split_regions(regions);
        self.eax.seal_lanes(
            &nonces[..n],
            &self.header_mac,
            inputs,
            &mut bodies,
            &mut tags[..n],
        );
        for (slot, tag) in tag_slots.iter_mut().zip(&tags) {
            slot.copy_from_slice(tag);
        }
    }

    /// Seals up to [`LANES`] consecutive `plaintext ‖ tag space` regions in place into
    /// `ciphertext ‖ tag`, the first being chunk `first`; the chunk with index
    /// `last_index` (if any, and among them) gets the last flag.
    pub(crate) fn seal_group_in_place(
        &self,
        first: u32,
        last_index: Option<u32>,
        regions: &mut [&mut [u8]],
    ) {
        let n = regions.len();
        let nonces = self.nonces(first, last_index);
        let mut tags = [[0u8; 16]; LANES];
        let (mut bodies, mut tag_slots) = split_regions(regions);
        self.eax
            .seal_lanes_in_place(&nonces[..n], &self.header_mac, &mut bodies, &mut tags[..n]);
        for (slot, tag) in tag_slots.iter_mut().zip(&tags) {
            slot.copy_from_slice(tag);
        }
    }

    /// Verifies up to [`LANES`] consecutive chunks, each a `ciphertext ‖ tag` region,
    /// the first being chunk `first` (the chunk with index `last_index`, if among them,
    /// is checked as the final one), and decrypts them into `outputs`. No plaintext of
    /// a chunk that failed is left in its output; the first failure, in chunk order, is
    /// reported.
    pub(crate) fn open_group(
        &self,
        first: u32,
        last_index: u32,
        regions: &[&[u8]],
        outputs: &mut [&mut [u8]],
    ) -> Result<()> {
        let n = regions.len();
        let nonces: [[u8; 16]; LANES] = core::array::from_fn(|i| {
            let index = first.wrapping_add(i as u32);
            self.nonce(index, index == last_index)
        });
        let split: [(&[u8], &[u8]); LANES] = core::array::from_fn(|i| {
            regions.get(i).map_or((&[][..], &[][..]), |r| {
                r.split_at(r.len().saturating_sub(CHUNK_OVERHEAD))
            })
        });
        let bodies: [&[u8]; LANES] = core::array::from_fn(|i| split[i].0);
        let tags: [&[u8]; LANES] = core::array::from_fn(|i| split[i].1);
        match self.eax.open_lanes(
            &nonces[..n],
            &self.header_mac,
            &bodies[..n],
            &tags[..n],
            outputs,
        ) {
            None => Ok(()),
            Some((bad, ct_mac)) => {
                let index = first.wrapping_add(bad as u32);
                let last = index == last_index;
                Err(self.rejection(index, last, bodies[bad].len(), &ct_mac, tags[bad]))
            }
        }
    }

    /// Verifies up to [`LANES`] consecutive `ciphertext ‖ tag` regions, the first being
    /// chunk `first` (the chunk with index `last_index`, if any and among them, is
    /// checked as the final one), and decrypts each ciphertext in place. The first
    /// failure in chunk order is reported; a chunk that failed keeps its ciphertext.
    /// One chunk alone is opened in one pass.
    pub(crate) fn open_group_in_place(
        &self,
        first: u32,
        last_index: Option<u32>,
        regions: &mut [&mut [u8]],
    ) -> Result<()> {
        let (mut bodies, tag_slots) = split_regions(regions);
        if let ([body], [tag]) = (&mut bodies[..], &tag_slots[..]) {
            return self.open_chunk(first, last_index == Some(first), body, tag);
        }
        let nonces = self.nonces(first, last_index);
        let n = bodies.len().min(LANES);
        let tags: Vec<&[u8]> = tag_slots.iter().map(|tag| &tag[..]).collect();
        match self
            .eax
            .open_lanes_in_place(&nonces[..n], &self.header_mac, &mut bodies, &tags)
        {
            None => Ok(()),
            Some((bad, ct_mac)) => {
                let index = first.wrapping_add(bad as u32);
                let last = Some(index) == last_index;
                let len = bodies.get(bad).map_or(0, |body| body.len());
                let tag = tags.get(bad).copied().unwrap_or_default();
                Err(self.rejection(index, last, len, &ct_mac, tag))
            }
        }
    }

    /// Why chunk `index` (`len` bytes of ciphertext, `OMAC²` of it `ct_mac`) failed to
    /// verify: a final chunk of full size whose tag verifies as a middle chunk's means
    /// the record was cut at a chunk boundary; anything else is tampering.
    fn rejection(&self, index: u32, last: bool, len: usize, ct_mac: &Block, tag: &[u8]) -> Error {
        if last && len == self.chunk_size {
            let as_middle = combine(&self.nonce_mac(index, false), &self.header_mac, ct_mac);
            if tags_equal(&as_middle, tag) {
                return Error::Truncated {
                    format: FORMAT,
                    detail: "the record ends before its final chunk",
                };
            }
        }
        Error::AuthenticationFailed {
            what: "sealed record chunk",
        }
    }

    /// Verifies and decrypts chunk `index` in place. A final-position chunk that
    /// verifies only as a non-final chunk means the record was cut at a chunk boundary.
    pub(crate) fn open_chunk(
        &self,
        index: u32,
        last: bool,
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<()> {
        if last && buf.is_empty() && index > 0 {
            // Writers put at least one byte in a final chunk unless the record is empty,
            // so this is a record cut just after a chunk's worth of tag bytes.
            return Err(Error::Truncated {
                format: FORMAT,
                detail: "the record ends inside a chunk",
            });
        }
        let nonce_mac = self.nonce_mac(index, last);
        match self
            .eax
            .decrypt_or_mac(&nonce_mac, &self.header_mac, buf, tag)
        {
            Ok(()) => Ok(()),
            Err(ct_mac) => Err(self.rejection(index, last, buf.len(), &ct_mac, tag)),
        }
    }
}

/// The nonce of chunk `index`: `prefix ‖ index (u32 BE) ‖ last flag`.
fn chunk_nonce(prefix: &[u8; NONCE_PREFIX_LEN], index: u32, last: bool) -> [u8; 16] {
    let mut nonce = [0u8; 16];
    nonce[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
    nonce[NONCE_PREFIX_LEN..15].copy_from_slice(&index.to_be_bytes());
    nonce[15] = u8::from(last);
    nonce
}

/// Seals a record of one chunk (a note that fits in a chunk, the most common record)
/// into `region` (`ciphertext ‖ tag`): the header's MAC is computed beside the chunk
/// in one pass, not before it as [`ChunkCipher::new`] does for records of many chunks.
/// `header_bytes` is the serialized header, whose nonce prefix is `nonce_prefix`.
pub(crate) fn seal_lone_chunk(
    key: &RecordKey,
    header_bytes: &[u8],
    nonce_prefix: &[u8; NONCE_PREFIX_LEN],
    plaintext: &[u8],
    region: &mut [u8],
) {
    let eax = Eax::new(Aes256Enc::new(key.expose_secret().into()));
    let (body, tag_slot) = region.split_at_mut(region.len().saturating_sub(CHUNK_OVERHEAD));
    let tag = eax.seal_alone(
        &chunk_nonce(nonce_prefix, 0, true),
        header_bytes,
        plaintext,
        body,
    );
    tag_slot.copy_from_slice(&tag[..tag_slot.len()]);
}

/// Opens a record of one whole chunk (`region`, `ciphertext ‖ tag`) into `out`, in one
/// pass as [`seal_lone_chunk`] seals it. `header_bytes` is the header as stored. On
/// failure `out` holds zeros, and the error tells a record cut at a chunk boundary
/// from tampering as [`ChunkCipher::open_group`] does.
pub(crate) fn open_lone_chunk(
    key: &RecordKey,
    header: &RecordHeader,
    header_bytes: &[u8],
    region: &[u8],
    out: &mut [u8],
) -> Result<()> {
    debug_assert!(
        header_bytes == header.to_bytes(),
        "a header parses only canonically"
    );
    let eax = Eax::new(Aes256Enc::new(key.expose_secret().into()));
    let (body, tag) = region.split_at(region.len().saturating_sub(CHUNK_OVERHEAD));
    let nonce = chunk_nonce(&header.nonce_prefix, 0, true);
    eax.open_alone(&nonce, header_bytes, body, tag, out)
        .map_err(|ct_mac| {
            ChunkCipher::new(key, header).rejection(0, true, body.len(), &ct_mac, tag)
        })
}

/// Each `body ‖ tag` region split into its body and its last [`CHUNK_OVERHEAD`] bytes
/// (a region shorter than that is all tag).
pub(super) fn split_regions<'a>(
    regions: &'a mut [&mut [u8]],
) -> (Vec<&'a mut [u8]>, Vec<&'a mut [u8]>) {
    regions
        .iter_mut()
        .map(|region| {
            let len = region.len().saturating_sub(CHUNK_OVERHEAD);
            region.split_at_mut(len)
        })
        .unzip()
}

/// `outputs` cut into one piece per `ciphertext ‖ tag` region, each the length of the
/// region's ciphertext (as far as `outputs` reaches).
pub(super) fn split_by_bodies<'a>(regions: &[&[u8]], outputs: &'a mut [u8]) -> Vec<&'a mut [u8]> {
    let mut rest = outputs;
    let mut pieces = Vec::with_capacity(regions.len());
    for region in regions {
        let len = region.len().saturating_sub(CHUNK_OVERHEAD).min(rest.len());
        let (piece, tail) = core::mem::take(&mut rest).split_at_mut(len);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}
