//! Ethereum addresses: `0x` and 40 hex digits. Written in mixed case, an address carries the
//! EIP-55 checksum (a letter is upper case exactly when the matching nibble of the Keccak-256
//! hash of the lower-case hex is 8 or more); written in one case, it carries none.
//!
//! Keccak-256 is the original Keccak submission (padding `0x01`), not FIPS 202 SHA3-256
//! (padding `0x06`): Ethereum fixed it before the standard changed. Implemented here from the
//! Keccak reference (the permutation is 60 lines, and an address needs one block).

/// The 24 round constants of Keccak-f[1600].
const RC: [u64; 24] = [
    0x0000_0000_0000_0001,
    0x0000_0000_0000_8082,
    0x8000_0000_0000_808A,
    0x8000_0000_8000_8000,
    0x0000_0000_0000_808B,
    0x0000_0000_8000_0001,
    0x8000_0000_8000_8081,
    0x8000_0000_0000_8009,
    0x0000_0000_0000_008A,
    0x0000_0000_0000_0088,
    0x0000_0000_8000_8009,
    0x0000_0000_8000_000A,
    0x0000_0000_8000_808B,
    0x8000_0000_0000_008B,
    0x8000_0000_0000_8089,
    0x8000_0000_0000_8003,
    0x8000_0000_0000_8002,
    0x8000_0000_0000_0080,
    0x0000_0000_0000_800A,
    0x8000_0000_8000_000A,
    0x8000_0000_8000_8081,
    0x8000_0000_0000_8080,
    0x0000_0000_8000_0001,
    0x8000_0000_8000_8008,
];

/// The rotation offsets of rho, lane (x, y) at `x + 5 * y`, from the reference's walk
/// (x, y) -> (y, 2x + 3y) starting at (1, 0): step t rotates by (t + 1)(t + 2) / 2 mod 64.
const ROT: [u32; 25] = {
    let mut rot = [0u32; 25];
    let (mut x, mut y, mut t) = (1usize, 0usize, 0usize);
    while t < 24 {
        rot[x + 5 * y] = (((t + 1) * (t + 2) / 2) % 64) as u32;
        let next_y = (2 * x + 3 * y) % 5;
        x = y;
        y = next_y;
        t += 1;
    }
    rot
};

/// Keccak-f[1600] on a state of 25 lanes, lane (x, y) at `x + 5 * y`.
fn keccak_f(a: &mut [u64; 25]) {
    for rc in RC {
        // theta
        let mut c = [0u64; 5];
        for (x, cx) in c.iter_mut().enumerate() {
            *cx = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        }
        for x in 0..5 {
            let d = c[(x + 4) % 5] ^ c[(x + 1) % 5].rotate_left(1);
            for y in 0..5 {
                a[x + 5 * y] ^= d;
            }
        }
        // rho and pi: B[y, 2x + 3y] = rot(A[x, y], r[x, y])
        let mut b = [0u64; 25];
        for y in 0..5 {
            for x in 0..5 {
                b[y + 5 * ((2 * x + 3 * y) % 5)] = a[x + 5 * y].rotate_left(ROT[x + 5 * y]);
            }
        }
        // chi
        for y in 0..5 {
            for x in 0..5 {
                a[x + 5 * y] = b[x + 5 * y] ^ (!b[(x + 1) % 5 + 5 * y] & b[(x + 2) % 5 + 5 * y]);
            }
        }
        // iota
        a[0] ^= rc;
    }
}

/// Keccak-256 of `data` (rate 136 bytes).
pub(crate) fn keccak256(data: &[u8]) -> [u8; 32] {
    const RATE: usize = 136;
    let mut state = [0u64; 25];
    let absorb = |state: &mut [u64; 25], block: &[u8; RATE]| {
        for (i, lane) in block.chunks_exact(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(lane);
            state[i] ^= u64::from_le_bytes(w);
        }
        keccak_f(state);
    };
    let mut chunks = data.chunks_exact(RATE);
    for chunk in &mut chunks {
        let mut block = [0u8; RATE];
        block.copy_from_slice(chunk);
        absorb(&mut state, &block);
    }
    let rest = chunks.remainder();
    let mut block = [0u8; RATE];
    block[..rest.len()].copy_from_slice(rest);
    block[rest.len()] ^= 0x01;
    block[RATE - 1] ^= 0x80;
    absorb(&mut state, &block);
    let mut out = [0u8; 32];
    for (o, lane) in out.chunks_exact_mut(8).zip(state) {
        o.copy_from_slice(&lane.to_le_bytes());
    }
    out
}

/// `0x` and 40 hex digits in mixed case whose case is the EIP-55 checksum.
pub(crate) fn eth_checksummed(m: &[u8]) -> bool {
    let Some(hex) = address_hex(m) else {
        return false;
    };
    let upper = hex.iter().any(u8::is_ascii_uppercase);
    let lower = hex.iter().any(u8::is_ascii_lowercase);
    if !(upper && lower) {
        return false;
    }
    let mut lowered = [0u8; 40];
    for (l, h) in lowered.iter_mut().zip(hex) {
        *l = h.to_ascii_lowercase();
    }
    let hash = keccak256(&lowered);
    hex.iter().enumerate().all(|(i, &c)| {
        let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0xf;
        !c.is_ascii_alphabetic() || c.is_ascii_uppercase() == (nibble >= 8)
    })
}

/// `0x` and 40 hex digits in one case (no checksum), not all one digit.
pub(crate) fn eth_one_case(m: &[u8]) -> bool {
    let Some(hex) = address_hex(m) else {
        return false;
    };
    let mixed = hex.iter().any(u8::is_ascii_uppercase) && hex.iter().any(u8::is_ascii_lowercase);
    !mixed && hex.iter().any(|c| *c != hex[0]) && hex.iter().any(u8::is_ascii_alphabetic)
}

fn address_hex(m: &[u8]) -> Option<&[u8]> {
    let hex = m.strip_prefix(b"0x")?;
    (hex.len() == 40 && hex.iter().all(u8::is_ascii_hexdigit)).then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn keccak256_matches_the_reference_vectors() {
        assert_eq!(
            hex(&keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        assert_eq!(
            hex(&keccak256(b"abc")),
            "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
        );
        // Longer than one block (136 bytes): the absorb loop.
        let long = [b'a'; 200];
        assert_ne!(keccak256(&long), keccak256(&long[..199]));
    }

    #[test]
    fn the_eip55_examples_validate_and_a_flipped_case_does_not() {
        // The test vectors of EIP-55.
        for a in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            assert!(eth_checksummed(a.as_bytes()), "{a}");
            assert!(!eth_one_case(a.as_bytes()), "{a}");
            // Flip the case of each letter in turn: every flip breaks the checksum.
            for (i, c) in a.bytes().enumerate().skip(2) {
                if c.is_ascii_alphabetic() {
                    let mut w = a.as_bytes().to_vec();
                    w[i] ^= 0x20;
                    assert!(!eth_checksummed(&w), "{a} with byte {i} flipped");
                }
            }
        }
        for a in [
            "0x52908400098527886E0F7030069857D2E4169EE7",
            "0xde709f2102306220921060314715629080e2fb77",
        ] {
            assert!(!eth_checksummed(a.as_bytes()), "{a}");
            assert!(eth_one_case(a.as_bytes()), "{a}");
        }
        for a in [
            "0x0000000000000000000000000000000000000000",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe",
            "0X5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg",
        ] {
            assert!(
                !eth_checksummed(a.as_bytes()) && !eth_one_case(a.as_bytes()),
                "{a}"
            );
        }
    }
}
