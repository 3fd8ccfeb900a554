//! Check digits of national identifiers and device numbers: each function takes the matched
//! bytes as written (with their separators) and says whether the digits are a valid number of
//! that kind. Nothing here allocates: a detector calls these for every candidate it finds.
//!
//! Sources: each scheme's issuing authority as summarised in public references (NHS Digital's
//! NHS number modulus 11, the Polish PESEL act, Receita Federal's CPF/CNPJ check digits, UIDAI's
//! Verhoeff check for Aadhaar, the Canadian SIN's Luhn check, INSEE's NIR key, ISO 7064 MOD
//! 11,10 for the German Steuer-ID, the IRS ITIN ranges, 3GPP TS 23.003 for IMEI; Skatteetaten's
//! fødselsnummer check digits, Portugal's NIF, Ireland's PPSN, Austria's SVNR, Singapore's
//! NRIC/FIN, the ATO's TFN and ABN algorithms, Korea's RRN, Italy's partita IVA).

/// The decimal digits of `m` as values 0-9, when there are exactly `N` of them.
fn digits<const N: usize>(m: &[u8]) -> Option<[u8; N]> {
    let mut buf = [0; 24];
    digits_in(m, &mut buf)?.try_into().ok()
}

pub(super) fn all_same(d: &[u8]) -> bool {
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
/// 2 (7 and 8 for temporary numbers). Born in Corsica: the department (digits 6-7) is 2A or
/// 2B, which count as 19 and 18 in the key.
pub(crate) fn fr_nir(m: &[u8]) -> bool {
    let mut d = [0u8; 15];
    let mut n = 0;
    for &b in m {
        let v = match b {
            b'0'..=b'9' => b - b'0',
            b'A' | b'B' if n == 6 && d[5] == 2 => {
                d[5] = 1;
                if b == b'A' {
                    9
                } else {
                    8
                }
            }
            _ => continue,
        };
        let Some(slot) = d.get_mut(n) else {
            return false;
        };
        *slot = v;
        n += 1;
    }
    if n != 15 {
        return false;
    }
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
    u32::from(d[10]) == iso7064_mod11_10(&d[..10])
}

/// The ISO 7064 MOD 11,10 check digit of `d` (German Steuer-ID, German VAT number).
pub(super) fn iso7064_mod11_10(d: &[u8]) -> u32 {
    let mut product = 10u32;
    for x in d {
        let mut sum = (u32::from(*x) + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = sum * 2 % 11;
    }
    (11 - product) % 10
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

/// A calendar date from two-digit day, month (1-12) and a full year.
pub(super) fn valid_date(day: u32, month: u32, year: u32) -> bool {
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

pub(super) fn two(d: &[u8], i: usize) -> u32 {
    u32::from(d[i]) * 10 + u32::from(d[i + 1])
}

/// Dutch BSN: 9 digits, the "11-proef": 9*d1 + 8*d2 + ... + 2*d8 - d9 is a multiple of 11.
pub(crate) fn nl_bsn(m: &[u8]) -> bool {
    let Some(d) = digits::<9>(m) else {
        return false;
    };
    if all_same(&d) || !consistent_separators(m) {
        return false;
    }
    let sum: i32 = d[..8]
        .iter()
        .zip((2..=9).rev())
        .map(|(x, w)| i32::from(*x) * w)
        .sum::<i32>()
        - i32::from(d[8]);
    sum % 11 == 0 && sum != 0
}

/// Spanish DNI/NIF (8 digits and a letter) and NIE (X, Y or Z, 7 digits, a letter): the letter
/// is `TRWAGMYFPDXBNJZSQVHLCKE`[number mod 23], X/Y/Z counting as 0/1/2.
pub(crate) fn es_nif(m: &[u8]) -> bool {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let mut number: u32 = 0;
    let mut count = 0;
    let mut letter = None;
    for (i, &b) in m.iter().enumerate() {
        match b {
            b'X' | b'Y' | b'Z' | b'x' | b'y' | b'z' if i == 0 => {
                number = u32::from(b.to_ascii_uppercase() - b'X');
                count += 1;
            }
            b'0'..=b'9' if letter.is_none() => {
                number = number * 10 + u32::from(b - b'0');
                count += 1;
            }
            b'-' | b' ' | b'.' if letter.is_none() => {}
            b'A'..=b'Z' | b'a'..=b'z' if letter.is_none() && count == 8 => {
                letter = Some(b.to_ascii_uppercase());
            }
            _ => return false,
        }
    }
    count == 8 && number != 0 && letter == Some(LETTERS[(number % 23) as usize])
}

/// Italian codice fiscale: 16 characters, the last a check letter from the other 15 (odd and
/// even positions weighted by two published tables); digits may be replaced by the letters
/// `LMNPQRSTUV` (omocodia), and the day of birth is 1-31 or 41-71.
pub(crate) fn it_fiscal_code(m: &[u8]) -> bool {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let Ok(c) = <[u8; 16]>::try_from(m) else {
        return false;
    };
    let c = c.map(|b| b.to_ascii_uppercase());
    // Letters, then the date/place fields, in which a digit may be an omocodia letter.
    let digitish = |b: u8| b.is_ascii_digit() || b"LMNPQRSTUV".contains(&b);
    let value = |b: u8| match b {
        b'0'..=b'9' => u32::from(b - b'0'),
        _ => b"LMNPQRSTUV".iter().position(|&x| x == b).unwrap_or(0) as u32,
    };
    let letters_ok = [0, 1, 2, 3, 4, 5, 8, 11, 15]
        .iter()
        .all(|&i| c[i].is_ascii_uppercase());
    let digits_ok = [6, 7, 9, 10, 12, 13, 14].iter().all(|&i| digitish(c[i]));
    if !letters_ok || !digits_ok || !b"ABCDEHLMPRST".contains(&c[8]) {
        return false;
    }
    let day = value(c[9]) * 10 + value(c[10]);
    if !(1..=31).contains(&day) && !(41..=71).contains(&day) {
        return false;
    }
    let sum: u32 = c[..15]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let v = if b.is_ascii_digit() {
                u32::from(b - b'0')
            } else {
                u32::from(b - b'A')
            };
            // Positions are counted from 1: odd ones use the table.
            if i % 2 == 0 {
                ODD[v as usize]
            } else {
                v
            }
        })
        .sum();
    c[15] == b'A' + (sum % 26) as u8
}

/// Swedish personnummer: YYMMDD (or YYYYMMDD), `-` or `+`, then 4 digits; a valid date (the day
/// plus 60 for a samordningsnummer) and a Luhn check over the 10 digits from YY.
pub(crate) fn se_personnummer(m: &[u8]) -> bool {
    let mut buf = [0; 24];
    let Some(all) = digits_in(m, &mut buf) else {
        return false;
    };
    let d = match all.len() {
        10 => all,
        12 => &all[2..],
        _ => return false,
    };
    if all_same(d) {
        return false;
    }
    let (month, day) = (two(d, 2), two(d, 4));
    let day = if day > 60 { day - 60 } else { day };
    valid_date(day, month, 2000) && luhn(d)
}

/// Swiss AHV/AVS number: 756 (Switzerland), 9 digits and an EAN-13 check digit.
pub(crate) fn ch_ahv(m: &[u8]) -> bool {
    let Some(d) = digits::<13>(m) else {
        return false;
    };
    if d[..3] != [7, 5, 6] || !consistent_separators(m) {
        return false;
    }
    let sum: u32 = d[..12]
        .iter()
        .enumerate()
        .map(|(i, x)| u32::from(*x) * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    u32::from(d[12]) == (10 - sum % 10) % 10
}

/// US ABA routing number: 9 digits, weights 3 7 1 repeated sum to a multiple of 10, and the
/// first two digits are a Federal Reserve routing symbol (00-12, 21-32, 61-72, 80).
pub(crate) fn us_aba(m: &[u8]) -> bool {
    let Some(d) = digits::<9>(m) else {
        return false;
    };
    if all_same(&d) || !matches!(two(&d, 0), 0..=12 | 21..=32 | 61..=72 | 80) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .zip([3, 7, 1].iter().cycle())
        .map(|(x, w)| u32::from(*x) * w)
        .sum();
    sum.is_multiple_of(10)
}

/// Belgian national register number: YY.MM.DD-NNN.CC, the check 97 - (the first nine digits
/// mod 97), with a 2 in front of them for people born from 2000.
pub(crate) fn be_national_number(m: &[u8]) -> bool {
    let Some(d) = digits::<11>(m) else {
        return false;
    };
    if all_same(&d) {
        return false;
    }
    // Month and day may be 0 (unknown date of birth) or raised by 20/40 (bis numbers).
    if two(&d, 2) % 20 > 12 || two(&d, 4) > 31 {
        return false;
    }
    let base = d[..9].iter().fold(0u64, |n, x| n * 10 + u64::from(*x));
    let check = u64::from(two(&d, 9));
    97 - base % 97 == check || 97 - (2_000_000_000 + base) % 97 == check
}

/// Chinese resident identity number: 6-digit region, YYYYMMDD, 3 digits, and an ISO 7064
/// MOD 11-2 check character (0-9 or X).
pub(crate) fn cn_resident_id(m: &[u8]) -> bool {
    let Ok(c) = <[u8; 18]>::try_from(m) else {
        return false;
    };
    if !c[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let d = c.map(|b| b.wrapping_sub(b'0'));
    let year = two(&d, 6) * 100 + two(&d, 8);
    if !(1900..=2099).contains(&year) || !valid_date(two(&d, 12), two(&d, 10), year) {
        return false;
    }
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = d[..17].iter().zip(W).map(|(x, w)| u32::from(*x) * w).sum();
    c[17].to_ascii_uppercase() == b"10X98765432"[(sum % 11) as usize]
}

/// Finnish personal identity code (HETU): DDMMYY, a century sign, 3 digits and a check
/// character: `0123456789ABCDEFHJKLMNPRSTUVWXY`[DDMMYYNNN mod 31].
pub(crate) fn fi_hetu(m: &[u8]) -> bool {
    let Ok(c) = <[u8; 11]>::try_from(m) else {
        return false;
    };
    let century = match c[6] {
        b'+' => 1800,
        b'-' | b'U'..=b'Y' => 1900,
        b'A'..=b'F' => 2000,
        _ => return false,
    };
    let digits = [0, 1, 2, 3, 4, 5, 7, 8, 9];
    if !digits.iter().all(|&i| c[i].is_ascii_digit()) {
        return false;
    }
    let d = c.map(|b| b.wrapping_sub(b'0'));
    if !valid_date(two(&d, 0), two(&d, 2), century + two(&d, 4)) {
        return false;
    }
    let n = digits.iter().fold(0u32, |n, &i| n * 10 + u32::from(d[i]));
    c[10] == b"0123456789ABCDEFHJKLMNPRSTUVWXY"[(n % 31) as usize]
}

/// UK National Insurance number: two prefix letters (neither D, F, I, Q, U or V; the second not
/// O; never BG, GB, KN, NK, NT, TN or ZZ), six digits, a suffix A-D. There is no check digit.
pub(crate) fn uk_nino(m: &[u8]) -> bool {
    let mut buf = [0u8; 9];
    let mut n = 0;
    for &c in m.iter().filter(|c| **c != b' ') {
        let Some(slot) = buf.get_mut(n) else {
            return false;
        };
        *slot = c;
        n += 1;
    }
    let [a, b, rest @ ..] = &buf[..n] else {
        return false;
    };
    let (digits, suffix) = match rest {
        [d @ .., s] => (d, *s),
        [] => return false,
    };
    let bad_first = b"DFIQUV";
    let bad_second = b"DFIOQUV";
    const UNALLOCATED: [&[u8; 2]; 7] = [b"BG", b"GB", b"KN", b"NK", b"NT", b"TN", b"ZZ"];
    a.is_ascii_uppercase()
        && b.is_ascii_uppercase()
        && !bad_first.contains(a)
        && !bad_second.contains(b)
        && !UNALLOCATED.contains(&&[*a, *b])
        && digits.len() == 6
        && digits.iter().all(u8::is_ascii_digit)
        && !all_same(digits)
        && (b'A'..=b'D').contains(&suffix)
}

/// A weighted digit sum.
pub(super) fn weighted(d: &[u8], weights: &[u32]) -> u32 {
    d.iter().zip(weights).map(|(x, w)| u32::from(*x) * w).sum()
}

/// Norwegian fødselsnummer / D-number: DDMMYY (D-numbers add 4 to the first digit, H-numbers
/// 4 to the third), an individual number, and two mod-11 check digits (weights 3 7 6 1 8 9 4
/// 5 2, then 5 4 3 2 7 6 5 4 3 2; a check of 10 is never issued).
pub(crate) fn no_fodselsnummer(m: &[u8]) -> bool {
    let Some(d) = digits::<11>(m) else {
        return false;
    };
    if !consistent_separators(m) || all_same(&d) {
        return false;
    }
    let day = two(&d, 0) % 40;
    let month = two(&d, 2) % 40;
    if !valid_date(day, month, 2000) {
        return false;
    }
    let check = |n: usize, w: &[u32]| match 11 - weighted(&d[..n], w) % 11 {
        11 => d[n] == 0,
        10 => false,
        c => u32::from(d[n]) == c,
    };
    check(9, &[3, 7, 6, 1, 8, 9, 4, 5, 2]) && check(10, &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2])
}

/// Portuguese NIF: 9 digits, the first 1-3, 5, 6, 8 or 9 (persons, companies, public bodies),
/// or 45 (non-resident persons), or 70-72, 74, 75, 77, 79 (estates, non-resident companies,
/// funds, ...); weights 9..2, check = 11 - sum mod 11 (0 when that is 10 or 11).
pub(crate) fn pt_nif(m: &[u8]) -> bool {
    let Some(d) = digits::<9>(m) else {
        return false;
    };
    let prefix = match d[0] {
        1 | 2 | 3 | 5 | 6 | 8 | 9 => true,
        4 => d[1] == 5,
        7 => matches!(d[1], 0 | 1 | 2 | 4 | 5 | 7 | 9),
        _ => false,
    };
    if !prefix || all_same(&d) {
        return false;
    }
    let r = weighted(&d[..8], &[9, 8, 7, 6, 5, 4, 3, 2]) % 11;
    u32::from(d[8]) == if r < 2 { 0 } else { 11 - r }
}

/// Irish PPS number: 7 digits, a check letter and an optional second letter (A-I, or W):
/// weights 8..2, plus 9 times the second letter's value (W = 0), mod 23 -> `WABC...V`.
pub(crate) fn ie_ppsn(m: &[u8]) -> bool {
    if !matches!(m.len(), 8 | 9) || !m[..7].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut d = [0u8; 7];
    for (x, b) in d.iter_mut().zip(m) {
        *x = b - b'0';
    }
    let mut sum = weighted(&d, &[8, 7, 6, 5, 4, 3, 2]);
    match m.get(8).map(u8::to_ascii_uppercase) {
        None | Some(b'W') => {}
        Some(l @ b'A'..=b'I') => sum += 9 * u32::from(l - b'A' + 1),
        Some(_) => return false,
    }
    m[7].to_ascii_uppercase() == b"WABCDEFGHIJKLMNOPQRSTUV"[(sum % 23) as usize]
}

/// Austrian social security number: a 3-digit serial, a check digit, the birth date DDMMYY;
/// check = (weights 3 7 9 _ 5 8 4 2 1 6) mod 11, never 10; the serial never starts with 0.
pub(crate) fn at_svnr(m: &[u8]) -> bool {
    let Some(d) = digits::<10>(m) else {
        return false;
    };
    if d[0] == 0 || !consistent_separators(m) {
        return false;
    }
    // Day 1-31 and month 1-12 (not the calendar: the number keeps the date as registered).
    // Numbers of people with an unknown birth date, given other values, are missed.
    if !(1..=31).contains(&two(&d, 4)) || !(1..=12).contains(&two(&d, 6)) {
        return false;
    }
    let sum = weighted(&d, &[3, 7, 9, 0, 5, 8, 4, 2, 1, 6]) % 11;
    sum != 10 && u32::from(d[3]) == sum
}

/// Singapore NRIC/FIN: S/T (citizens, residents), F/G (foreigners) or M (FINs from 2022), 7
/// digits, a check letter: weights 2 7 6 5 4 3 2, +4 for T and G, +3 for M, mod 11 = r ->
/// `JZIHGFEDCBA`[r] (S/T), `XWUTRQPNMLK`[r] (F/G), `KLJNPQRTUWX`[10 - r] (M).
pub(crate) fn sg_nric(m: &[u8]) -> bool {
    let Ok(c) = <[u8; 9]>::try_from(m) else {
        return false;
    };
    let prefix = c[0].to_ascii_uppercase();
    if !c[1..8].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let d = c.map(|b| b.wrapping_sub(b'0'));
    let offset = match prefix {
        b'T' | b'G' => 4,
        b'M' => 3,
        _ => 0,
    };
    let r = ((weighted(&d[1..8], &[2, 7, 6, 5, 4, 3, 2]) + offset) % 11) as usize;
    let letter = match prefix {
        b'S' | b'T' => b"JZIHGFEDCBA"[r],
        b'F' | b'G' => b"XWUTRQPNMLK"[r],
        b'M' => b"KLJNPQRTUWX"[10 - r],
        _ => return false,
    };
    c[8].to_ascii_uppercase() == letter
}

/// Australian tax file number: 9 digits, weights 1 4 3 7 5 8 6 9 10, sum mod 11 = 0.
pub(crate) fn au_tfn(m: &[u8]) -> bool {
    let Some(d) = digits::<9>(m) else {
        return false;
    };
    consistent_separators(m)
        && !all_same(&d)
        && weighted(&d, &[1, 4, 3, 7, 5, 8, 6, 9, 10]).is_multiple_of(11)
}

/// Australian business number: 11 digits; subtract 1 from the first, weights 10 1 3 5 ... 19,
/// sum mod 89 = 0.
pub(crate) fn au_abn(m: &[u8]) -> bool {
    let Some(mut d) = digits::<11>(m) else {
        return false;
    };
    if d[0] == 0 || !consistent_separators(m) {
        return false;
    }
    d[0] -= 1;
    weighted(&d, &[10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19]).is_multiple_of(89)
}

/// Korean resident registration number: YYMMDD-GNNNNNN with G 1-8 (century and sex; 5-8
/// foreign residents). Numbers issued before October 2020 end in a check digit (weights 2..9,
/// 2..5, (11 - sum mod 11) mod 10); later ones do not, so only the date and G are checked.
pub(crate) fn kr_rrn(m: &[u8]) -> bool {
    let Some(d) = digits::<13>(m) else {
        return false;
    };
    let year = match d[6] {
        1 | 2 | 5 | 6 => 1900,
        3 | 4 | 7 | 8 => 2000,
        _ => return false,
    } + two(&d, 0);
    valid_date(two(&d, 4), two(&d, 2), year)
}

/// Italian VAT number (partita IVA): 11 digits, Luhn; the office code (digits 8-10) is 001-100,
/// 120, 121, 888 or 999.
pub(crate) fn it_vat(m: &[u8]) -> bool {
    let Some(d) = digits::<11>(m) else {
        return false;
    };
    let office = u32::from(d[7]) * 100 + two(&d, 8);
    !all_same(&d[..7]) && matches!(office, 1..=100 | 120 | 121 | 888 | 999) && luhn(&d)
}

/// Danish CPR number: DDMMYY-SSSS. The mod-11 check was dropped in 2007, so only the date is
/// checked.
pub(crate) fn dk_cpr(m: &[u8]) -> bool {
    let Some(d) = digits::<10>(m) else {
        return false;
    };
    !all_same(&d[6..]) && valid_date(two(&d, 0), two(&d, 2), 2000)
}

/// Mexican CURP: 4 letters, the birth date YYMMDD, H/M/X, a 2-letter state, 3 consonants, a
/// homoclave and a check digit: values in `0-9A-N&O-Z` (Ñ written `&` in the table) times 18..2,
/// check = (10 - sum mod 10) mod 10.
pub(crate) fn mx_curp(m: &[u8]) -> bool {
    let Ok(c) = <[u8; 18]>::try_from(m) else {
        return false;
    };
    let letters = |r: std::ops::Range<usize>| c[r].iter().all(u8::is_ascii_uppercase);
    if !letters(0..4)
        || !c[4..10].iter().all(u8::is_ascii_digit)
        || !matches!(c[10], b'H' | b'M' | b'X')
        || !letters(11..16)
        || !c[16].is_ascii_alphanumeric()
        || !c[17].is_ascii_digit()
    {
        return false;
    }
    let d = c.map(|b| b.wrapping_sub(b'0'));
    if !(1..=12).contains(&two(&d, 6)) || !(1..=31).contains(&two(&d, 8)) {
        return false;
    }
    let value = |b: u8| match b {
        b'0'..=b'9' => u32::from(b - b'0'),
        b'A'..=b'N' => u32::from(b - b'A') + 10,
        _ => u32::from(b - b'A') + 11,
    };
    let sum: u32 = c[..17]
        .iter()
        .zip((2..=18).rev())
        .map(|(b, w)| value(*b) * w)
        .sum();
    u32::from(d[17]) == (10 - sum % 10) % 10
}

/// Vehicle identification number: 17 of `A-HJ-NPR-Z0-9` with letters and digits. North
/// American VINs (first character 1-5) carry a check digit in position 9 (transliterated
/// values, weights 8 7 6 5 4 3 2 10 0 9 8 7 6 5 4 3 2, mod 11, 10 = `X`); others need not.
pub(crate) fn vin(m: &[u8]) -> bool {
    let Ok(c) = <[u8; 17]>::try_from(m) else {
        return false;
    };
    let value = |b: u8| -> Option<u32> {
        Some(match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'H' => u32::from(b - b'A') + 1,
            b'J'..=b'N' => u32::from(b - b'J') + 1,
            b'P' => 7,
            b'R' => 9,
            b'S'..=b'Z' => u32::from(b - b'S') + 2,
            _ => return None,
        })
    };
    let mut sum = 0;
    for (b, w) in c
        .iter()
        .zip([8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2])
    {
        let Some(v) = value(*b) else {
            return false;
        };
        sum += v * w;
    }
    let digits = c.iter().filter(|b| b.is_ascii_digit()).count();
    if digits < 3 || digits == 17 || all_same(&c) {
        return false;
    }
    !matches!(c[0], b'1'..=b'5') || c[8] == b"0123456789X"[(sum % 11) as usize]
}

/// ISO 3166-1 alpha-2 country codes (officially assigned), for SWIFT/BIC codes.
const ISO_COUNTRIES: &[u8] = b"ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZ\
CACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGNGPGQ\
GRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMD\
MEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPKPLPMPNPRPSPTPWPYQARERORS\
RURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVN\
VUWFWSYEYTZAZMZWXK";

/// SWIFT/BIC: a 4-letter bank code, an ISO country code, a 2-character location and an optional
/// 3-character branch. There is no check digit; the country must exist.
pub(crate) fn swift_bic(m: &[u8]) -> bool {
    if !matches!(m.len(), 8 | 11)
        || !m[..6].iter().all(u8::is_ascii_uppercase)
        || !m[6..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return false;
    }
    ISO_COUNTRIES.chunks(2).any(|cc| cc == &m[4..6])
}

/// Japanese Individual Number (My Number): 12 digits, the last a check digit: with P(n) the
/// n-th digit left of it (n = 1..11) and Q(n) = n + 1 for n <= 6, n - 5 after, r = sum P*Q mod
/// 11, the check is 0 when r <= 1, else 11 - r.
pub(crate) fn jp_my_number(m: &[u8]) -> bool {
    let Some(d) = digits::<12>(m) else {
        return false;
    };
    if !consistent_separators(m) || all_same(&d) {
        return false;
    }
    let sum: u32 = (1..=11u32)
        .map(|n| {
            let p = u32::from(d[11 - n as usize]);
            p * if n <= 6 { n + 1 } else { n - 5 }
        })
        .sum();
    let r = sum % 11;
    u32::from(d[11]) == if r <= 1 { 0 } else { 11 - r }
}

/// Thai national identification number: 13 digits, the first 1-8 (the kind of registration),
/// weights 13..2 over the first twelve, check = (11 - sum mod 11) mod 10.
pub(crate) fn th_tnin(m: &[u8]) -> bool {
    let Some(d) = digits::<13>(m) else {
        return false;
    };
    if !(1..=8).contains(&d[0]) || all_same(&d[1..]) || !consistent_separators(m) {
        return false;
    }
    let sum: u32 = d[..12]
        .iter()
        .zip((2..=13).rev())
        .map(|(x, w)| u32::from(*x) * w)
        .sum();
    u32::from(d[12]) == (11 - sum % 11) % 10
}

/// Bitcoin addresses: base58check (P2PKH `1...`, P2SH `3...`: 25 bytes, the last 4 the first 4
/// of SHA-256(SHA-256(the rest))) or bech32/bech32m (`bc1...`, BIP 173/350 checksums).
pub(crate) fn btc_address(m: &[u8]) -> bool {
    if m.len() > 3 && m[..3].eq_ignore_ascii_case(b"bc1") {
        bech32(m)
    } else {
        base58check(m)
    }
}

fn base58check(m: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    if !(26..=35).contains(&m.len()) {
        return false;
    }
    let mut out = [0u8; 25];
    for &c in m {
        let Some(v) = ALPHABET.iter().position(|&a| a == c) else {
            return false;
        };
        let mut carry = v as u32;
        for byte in out.iter_mut().rev() {
            carry += u32::from(*byte) * 58;
            *byte = carry as u8;
            carry >>= 8;
        }
        if carry != 0 {
            return false;
        }
    }
    // Each leading '1' is a leading zero byte, and only those are: a shorter string would
    // leave zero bytes that no '1' wrote.
    let ones = m.iter().take_while(|&&c| c == b'1').count();
    let zeros = out.iter().take_while(|&&b| b == 0).count();
    if ones != zeros {
        return false;
    }
    if !matches!((out[0], m[0]), (0x00, b'1') | (0x05, b'3')) {
        return false;
    }
    let hash = Sha256::digest(Sha256::digest(&out[..21]));
    hash[..4] == out[21..]
}

fn bech32(m: &[u8]) -> bool {
    const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    if !(14..=74).contains(&m.len())
        || !(m.iter().all(|b| !b.is_ascii_uppercase()) || m.iter().all(|b| !b.is_ascii_lowercase()))
    {
        return false;
    }
    let polymod = |values: &mut dyn Iterator<Item = u8>| {
        const GEN: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
        let mut chk = 1u32;
        for v in values {
            let top = chk >> 25;
            chk = (chk & 0x1ff_ffff) << 5 ^ u32::from(v);
            for (i, g) in GEN.iter().enumerate() {
                if top >> i & 1 == 1 {
                    chk ^= g;
                }
            }
        }
        chk
    };
    let mut data = [0u8; 72];
    let body = &m[3..];
    for (slot, c) in data.iter_mut().zip(body) {
        let Some(v) = CHARSET.iter().position(|&a| a == c.to_ascii_lowercase()) else {
            return false;
        };
        *slot = v as u8;
    }
    let data = &data[..body.len()];
    // hrp "bc" expanded: high bits, 0, low bits.
    let hrp = [3u8, 3, 0, 2, 3];
    let chk = polymod(&mut hrp.iter().copied().chain(data.iter().copied()));
    match data.first() {
        Some(0) => chk == 1,
        Some(1..=16) => chk == 0x2bc8_30a3,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Check = fn(&[u8]) -> bool;

    #[test]
    fn published_examples_validate_and_one_changed_digit_does_not() {
        let valid: [(Check, &str); 55] = [
            (dk_cpr, "070761-4285"),
            (jp_my_number, "123456789018"),
            (jp_my_number, "9876 5432 1093"),
            (th_tnin, "1101700207366"),
            (th_tnin, "3-1006-00445-93-7"),
            (mx_curp, "HEGG560427MVZRRL04"),
            (mx_curp, "MAHJ280603MSPRRV09"),
            (vin, "1HGCM82633A004352"),
            (vin, "1M8GDM9AXKP042788"),
            (btc_address, "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"),
            (btc_address, "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"),
            (btc_address, "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),
            (btc_address, "BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ"),
            (
                btc_address,
                "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297",
            ),
            (it_vat, "07643520567"),
            (no_fodselsnummer, "15076500565"),
            (no_fodselsnummer, "150765 00565"),
            (pt_nif, "123456789"),
            (pt_nif, "501964843"),
            (ie_ppsn, "1234567T"),
            (ie_ppsn, "1234567FA"),
            (at_svnr, "1237 010180"),
            (sg_nric, "S1234567D"),
            (au_tfn, "123 456 782"),
            (au_abn, "51 824 753 556"),
            (uk_nino, "AB 12 34 56 D"),
            (nl_bsn, "111222333"),
            (nl_bsn, "1234.56.782"),
            (es_nif, "12345678Z"),
            (es_nif, "X1234567L"),
            (it_fiscal_code, "RSSMRA85T10A562S"),
            (se_personnummer, "811228-9874"),
            (se_personnummer, "19811228-9874"),
            (ch_ahv, "756.9217.0769.85"),
            (us_aba, "021000021"),
            (be_national_number, "85.07.30-033.28"),
            (cn_resident_id, "11010519491231002X"),
            (fi_hetu, "131052-308T"),
            (uk_nhs, "943 476 5919"),
            (uk_nhs, "4010232137"),
            (pl_pesel, "44051401359"),
            (pl_pesel, "90121878017"),
            (br_cpf, "529.982.247-25"),
            (br_cnpj, "11.222.333/0001-81"),
            (in_aadhaar, "2341 2341 2346"),
            (ca_sin, "182 156 380"),
            (fr_nir, "1 84 12 76 451 089 46"),
            (fr_nir, "1 84 12 2A 004 089 57"),
            (fr_nir, "184122B00408984"),
            (pt_nif, "451234561"),
            (pt_nif, "701234563"),
            (sg_nric, "M1234567K"),
            (de_steuer_id, "65 929 970 489"),
            (us_itin, "912-70-1234"),
            (imei, "490154203237518"),
        ];
        for (check, text) in valid {
            assert!(check(text.as_bytes()), "{text} should validate");
            // Change the last character: every scheme here rejects a single changed check.
            let mut changed = text.as_bytes().to_vec();
            let last = changed.len() - 1;
            changed[last] = match changed[last] {
                c @ b'0'..=b'9' => b'0' + (c - b'0' + 1) % 10,
                b'Z' => b'A',
                c => c + 1,
            };
            if !matches!(text, "912-70-1234" | "070761-4285") {
                assert!(
                    !check(&changed),
                    "{} should not validate",
                    String::from_utf8_lossy(&changed)
                );
            }
        }
    }

    #[test]
    fn swift_vin_and_wallet_forms() {
        for ok in ["DEUTDEFF", "DEUTDEFF500", "BOFAUS3N", "NWBKGB2L"] {
            assert!(swift_bic(ok.as_bytes()), "{ok}");
        }
        for bad in ["DEUTXXFF", "DEUTDEF", "deutdeff", "DEUT1EFF"] {
            assert!(!swift_bic(bad.as_bytes()), "{bad}");
        }
        // A European VIN has no check digit; a North American one must have it right.
        assert!(vin(b"WVWZZZ1JZXW000001"));
        assert!(!vin(b"1HGCM82643A004352"));
        assert!(!vin(b"11111111111111111"));
        assert!(!vin(b"1HGCM8263IA004352"));
        // Mixed case, a changed character, a wrong version, a non-canonical leading one.
        for bad in [
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5MDQ",
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdp",
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3",
            "11BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
            "2BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
        ] {
            assert!(!btc_address(bad.as_bytes()), "{bad}");
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
