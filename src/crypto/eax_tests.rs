//! EAX against Wycheproof, and the lane kernels against the `cmac` and `ctr` crates.

use super::*;
use aes::{Aes128, Aes192, Aes256};
use cipher::{BlockCipherEncBackend, BlockCipherEncClosure, BlockSizeUser, KeyInit};
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
                    let mut views: Vec<&mut [u8]> = sealed.iter_mut().map(|b| &mut b[..]).collect();
                    let mut out = vec![[0u8; 16]; lanes];
                    eax.seal_lanes(&nonces, &header_mac, &msgs, &mut views, &mut out);
                    assert!(sealed.iter().all(|b| *b == ct), "tcId {}", case.id);
                    assert!(out.iter().all(|t| t[..] == tag[..]), "tcId {}", case.id);
                } else {
                    assert_eq!(bad, Some(0), "tcId {}", case.id);
                    // Lane 0 failed: alone it was decrypted and wiped, among others
                    // never written. The other lanes carry the same forgery.
                    let left = if lanes == 1 { 0 } else { 0xee };
                    assert!(
                        bufs.iter().all(|b| b.iter().all(|&x| x == left)),
                        "tcId {}: no plaintext left",
                        case.id
                    );
                }
            }
            // The one-pass path for a message alone, its header MACed beside it.
            let aad = unhex(&case.aad);
            let mut out = vec![0xee; ct.len()];
            let alone = eax.open_alone(&nonce, &aad, &ct, &tag, &mut out);
            if case.result == "valid" {
                assert_eq!(alone, Ok(()), "tcId {} alone", case.id);
                assert_eq!(out, msg, "tcId {} alone", case.id);
                let mut sealed = vec![0u8; msg.len()];
                let sealed_tag = eax.seal_alone(&nonce, &aad, &msg, &mut sealed);
                assert_eq!(sealed, ct, "tcId {} alone", case.id);
                assert_eq!(sealed_tag[..], tag[..], "tcId {} alone", case.id);
            } else {
                assert!(alone.is_err(), "tcId {} alone", case.id);
                assert!(out.iter().all(|&x| x == 0), "tcId {}: wiped", case.id);
            }
            ran += 1;
        }
    }
    assert_eq!(ran, 56);
}

/// The one-pass path (`N'` and `H'` beside the message's chain) equals the reference
/// for message lengths across many block boundaries and header lengths empty, partial
/// and whole; a wrong tag, or lengths that differ, leave zeros and hand back `OMAC²`.
#[test]
fn alone_agrees_with_the_reference() {
    let eax = Eax::new(Aes256::new(&[4u8; 32].into()));
    let mut seed = 0x0bad_cafe_f00d_1234u64;
    let mut next = || xorshift(&mut seed);
    for len in (0..=70).chain([160, 1024, 1040]) {
        for header_len in [0usize, 1, 15, 16, 17, 32, 57, 100] {
            let nonce: [u8; 16] = core::array::from_fn(|_| next() as u8);
            let header: Vec<u8> = (0..header_len).map(|_| next() as u8).collect();
            let plain: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let what = format!("{len} bytes, header {header_len}");
            let nonce_mac = eax.nonce_mac(&nonce);
            let header_mac = eax.header_mac(&header);
            let mut reference = plain.clone();
            let reference_tag = reference_seal(&eax, &nonce_mac, &header_mac, &mut reference);
            let mut sealed = vec![0u8; len];
            let tag = eax.seal_alone(&nonce, &header, &plain, &mut sealed);
            assert_eq!(sealed, reference, "{what}");
            assert_eq!(tag, reference_tag, "{what}");
            let mut opened = vec![0xee; len];
            assert_eq!(
                eax.open_alone(&nonce, &header, &sealed, &tag, &mut opened),
                Ok(()),
                "{what}"
            );
            assert_eq!(opened, plain, "{what}");
            let mut bad = tag;
            bad[(next() % 16) as usize] ^= 1 << (next() % 8);
            let mut opened = vec![0xee; len];
            assert_eq!(
                eax.open_alone(&nonce, &header, &sealed, &bad, &mut opened),
                Err(eax.omac(2, &sealed)),
                "{what}"
            );
            assert!(opened.iter().all(|&b| b == 0), "{what}: wiped");
        }
    }
    let mut short = [0xee; 3];
    assert_eq!(eax.seal_alone(&[0; 16], b"h", &[1; 4], &mut short), [0; 16]);
    assert_eq!(short, [0; 3]);
    let mut short = [0xee; 3];
    assert_eq!(
        eax.open_alone(&[0; 16], b"h", &[1; 4], &[0; 16], &mut short),
        Err(eax.omac(2, &[1; 4]))
    );
    assert_eq!(short, [0; 3]);
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
/// leaves none of its plaintext.
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
                // Among several lanes it was never decrypted; alone, it was decrypted
                // beside its MAC chain and then wiped.
                let left = if n == 1 { 0 } else { 0x5a };
                assert!(
                    opened[i].iter().all(|&b| b == left),
                    "no plaintext of a failed lane is left, lane {i} of {n}"
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
