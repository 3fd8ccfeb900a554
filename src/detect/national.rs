//! Check digits of national identifiers and device numbers: each function takes the matched
//! bytes as written (with their separators) and says whether the digits are a valid number of
//! that kind. Nothing here allocates: a detector calls these for every candidate it finds.
//!
//! Sources: each scheme's issuing authority as summarised in public references (NHS Digital's
//! NHS number modulus 11, the Polish PESEL act, Receita Federal's CPF/CNPJ check digits, UIDAI's
//! Verhoeff check for Aadhaar, the Canadian SIN's Luhn check, INSEE's NIR key, ISO 7064 MOD
//! 11,10 for the German Steuer-ID, the IRS ITIN ranges, 3GPP TS 23.003 for IMEI).

/// The decimal digits of `m` as values 0-9, when there are exactly `N` of them.
fn digits<const N: usize>(m: &[u8]) -> Option<[u8; N]> {
    let mut buf = [0; 24];
    digits_in(m, &mut buf)?.try_into().ok()
}

fn all_same(d: &[u8]) -> bool {
    d.iter().all(|x| *x == d[0])
}

use super::validate::{consistent_separators, digits_in, luhn};

/// UK NHS number: 10 digits, weights 10..2 over the first nine, check = 11 - sum mod 11
/// (11 -> 0; 10 never issued).
pub(crate) fn uk_nhs(m: &[u8]) -> bool {
    let Some(d) = digits::<10>(m) else {
        return false;
    };
    if !consistent_separators(m) || all_same(&d) {
        return false;
    }
    let sum: u32 = d[..9]
        .iter()
        .zip((2..=10).rev())
        .map(|(x, w)| u32::from(*x) * w)
        .sum();
    match 11 - sum % 11 {
        11 => d[9] == 0,
        10 => false,
        c => u32::from(d[9]) == c,
    }
}

/// Polish PESEL: 11 digits, YYMMDD with the century in the month (+80 1800s, +0 1900s,
/// +20 2000s, +40 2100s, +60 2200s), weights 1 3 7 9 1 3 7 9 1 3, check = (10 - sum mod 10)
/// mod 10.
pub(crate) fn pl_pesel(m: &[u8]) -> bool {
    let Some(d) = digits::<11>(m) else {
        return false;
    };
    if all_same(&d) {
        return false;
    }
    let month = u32::from(d[2]) * 10 + u32::from(d[3]);
    let day = u32::from(d[4]) * 10 + u32::from(d[5]);
    if !(1..=12).contains(&(month % 20)) || !(1..=31).contains(&day) {
        return false;
    }
    const W: [u32; 10] = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
    let sum: u32 = d[..10].iter().zip(W).map(|(x, w)| u32::from(*x) * w).sum();
    u32::from(d[10]) == (10 - sum % 10) % 10
}

/// A mod-11 check digit over `d` with `weights` (Brazilian style: remainder < 2 -> 0).
fn br_check(d: &[u8], weights: &[u32]) -> u8 {
    let sum: u32 = d.iter().zip(weights).map(|(x, w)| u32::from(*x) * w).sum();
    let r = sum % 11;
    if r < 2 {
        0
    } else {
        (11 - r) as u8
    }
}

/// Brazilian CPF: 11 digits, two mod-11 check digits; repeated digits are not issued.
pub(crate) fn br_cpf(m: &[u8]) -> bool {
    let Some(d) = digits::<11>(m) else {
        return false;
    };
    !all_same(&d)
        && br_check(&d[..9], &[10, 9, 8, 7, 6, 5, 4, 3, 2]) == d[9]
        && br_check(&d[..10], &[11, 10, 9, 8, 7, 6, 5, 4, 3, 2]) == d[10]
}

/// Brazilian CNPJ (numeric form): 14 digits, two mod-11 check digits.
pub(crate) fn br_cnpj(m: &[u8]) -> bool {
    let Some(d) = digits::<14>(m) else {
        return false;
    };
    !all_same(&d)
        && br_check(&d[..12], &[5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]) == d[12]
        && br_check(&d[..13], &[6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]) == d[13]
}

/// The Verhoeff check (dihedral group D5): catches every single-digit error and every
/// transposition of adjacent digits.
fn verhoeff(d: &[u8]) -> bool {
    const MUL: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const PERM: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let c = d.iter().rev().enumerate().fold(0u8, |c, (i, &x)| {
        MUL[usize::from(c)][usize::from(PERM[i % 8][usize::from(x)])]
    });
    c == 0
}

/// Indian Aadhaar: 12 digits, the first 2-9, Verhoeff check digit.
pub(crate) fn in_aadhaar(m: &[u8]) -> bool {
    let Some(d) = digits::<12>(m) else {
        return false;
    };
    d[0] >= 2 && consistent_separators(m) && !all_same(&d) && verhoeff(&d)
}

/// Canadian SIN: 9 digits, Luhn; 0 and 8 are not used as first digits.
pub(crate) fn ca_sin(m: &[u8]) -> bool {
    let Some(d) = digits::<9>(m) else {
        return false;
    };
    d[0] != 0 && d[0] != 8 && consistent_separators(m) && !all_same(&d) && luhn(&d)
}

/// French NIR (INSEE number): 13 digits and a two-digit key = 97 - (number mod 97); sex 1 or
/// 2 (7 and 8 for temporary numbers). Corsican departments (2A, 2B) are not matched yet.
pub(crate) fn fr_nir(m: &[u8]) -> bool {
    let Some(d) = digits::<15>(m) else {
        return false;
    };
    if !matches!(d[0], 1 | 2 | 7 | 8) {
        return false;
    }
    let number = d[..13].iter().fold(0u64, |n, x| n * 10 + u64::from(*x));
    let key = u64::from(d[13]) * 10 + u64::from(d[14]);
    key == 97 - number % 97
}

/// German tax identification number (Steuer-ID): 11 digits, no leading 0; in the first ten
/// one digit occurs two or three times and the others at most once; ISO 7064 MOD 11,10 check.
pub(crate) fn de_steuer_id(m: &[u8]) -> bool {
    let Some(d) = digits::<11>(m) else {
        return false;
    };
    if d[0] == 0 {
        return false;
    }
    let mut counts = [0u8; 10];
    for x in &d[..10] {
        counts[usize::from(*x)] += 1;
    }
    let repeated = counts.iter().filter(|&&c| c >= 2).count();
    if repeated != 1 || counts.iter().any(|&c| c > 3) {
        return false;
    }
    // A digit that occurs three times never does so three in a row.
    if d[..10].windows(3).any(|w| w[0] == w[1] && w[1] == w[2]) {
        return false;
    }
    let mut product = 10u32;
    for x in &d[..10] {
        let mut sum = (u32::from(*x) + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = sum * 2 % 11;
    }
    let check = (11 - product) % 10;
    u32::from(d[10]) == check
}

/// US ITIN: 9 digits, area 9xx, group 50-65, 70-88, 90-92 or 94-99.
pub(crate) fn us_itin(m: &[u8]) -> bool {
    let Some(d) = digits::<9>(m) else {
        return false;
    };
    let group = d[3] * 10 + d[4];
    d[0] == 9
        && !all_same(&d)
        && consistent_separators(m)
        && matches!(group, 50..=65 | 70..=88 | 90..=92 | 94..=99)
}

/// IMEI: 15 digits with a Luhn check digit (the 14-digit TAC + serial, then the check).
pub(crate) fn imei(m: &[u8]) -> bool {
    let Some(d) = digits::<15>(m) else {
        return false;
    };
    !all_same(&d) && luhn(&d)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Check = fn(&[u8]) -> bool;

    #[test]
    fn published_examples_validate_and_one_changed_digit_does_not() {
        let valid: [(Check, &str); 12] = [
            (uk_nhs, "943 476 5919"),
            (uk_nhs, "4010232137"),
            (pl_pesel, "44051401359"),
            (pl_pesel, "90121878017"),
            (br_cpf, "529.982.247-25"),
            (br_cnpj, "11.222.333/0001-81"),
            (in_aadhaar, "2341 2341 2346"),
            (ca_sin, "182 156 380"),
            (fr_nir, "1 84 12 76 451 089 46"),
            (de_steuer_id, "65 929 970 489"),
            (us_itin, "912-70-1234"),
            (imei, "490154203237518"),
        ];
        for (check, text) in valid {
            assert!(check(text.as_bytes()), "{text} should validate");
            // Change the last digit: every scheme here rejects a single changed digit.
            let mut changed = text.as_bytes().to_vec();
            let last = changed.len() - 1;
            changed[last] = b'0' + (changed[last] - b'0' + 1) % 10;
            if text != "912-70-1234" {
                assert!(
                    !check(&changed),
                    "{} should not validate",
                    String::from_utf8_lossy(&changed)
                );
            }
        }
    }

    #[test]
    fn verhoeff_catches_adjacent_transpositions() {
        let d = [2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 6];
        assert!(verhoeff(&d));
        for i in 0..d.len() - 1 {
            if d[i] != d[i + 1] {
                let mut t = d;
                t.swap(i, i + 1);
                assert!(!verhoeff(&t), "{t:?}");
            }
        }
    }
}
