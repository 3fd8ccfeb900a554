//! Checksums and structural checks run on a regex match before it becomes a finding.
//!
//! Each validator answers one question: "is this match really a value of the class?" They are
//! what separates a card number from a 16-digit order number, an SSN from any nine digits, an
//! IBAN from a SKU.

use std::net::Ipv6Addr;

use super::{eth, names, national, phone, vat};
use crate::manifest::Validator;

/// Runs `validator` on the match `text[s..e]`; the name checks also look at the words around
/// it (a name followed by "Street" is a place).
pub(crate) fn check_at(validator: Validator, text: &[u8], s: usize, e: usize) -> bool {
    match validator {
        Validator::GivenSurname => names::given_surname(text, s, e),
        Validator::KnownName => names::known_name(text, s, e),
        _ => check(validator, &text[s..e]),
    }
}

/// Runs `validator` on the matched bytes.
pub(crate) fn check(validator: Validator, m: &[u8]) -> bool {
    match validator {
        Validator::Luhn => luhn(&digits(m)),
        Validator::Mod97 => iban_mod97(m),
        Validator::CreditCard => credit_card(m),
        Validator::UsSsn => us_ssn(m),
        Validator::Iban => iban(m),
        Validator::Ipv4 => ipv4(m),
        Validator::Ipv6 => ipv6(m),
        Validator::Mac => mac(m),
        Validator::Email => email(m),
        Validator::Phone => phone(m),
        Validator::PhoneIntl => phone::international(m),
        Validator::Entropy => secret_like(m),
        Validator::Date => date(m),
        Validator::Street => street(m),
        Validator::PersonName => person_name(m),
        Validator::CapitalizedName => capitalized_name(m),
        Validator::UkNhs => national::uk_nhs(m),
        Validator::PlPesel => national::pl_pesel(m),
        Validator::BrCpf => national::br_cpf(m),
        Validator::BrCnpj => national::br_cnpj(m),
        Validator::InAadhaar => national::in_aadhaar(m),
        Validator::CaSin => national::ca_sin(m),
        Validator::FrNir => national::fr_nir(m),
        Validator::DeSteuerId => national::de_steuer_id(m),
        Validator::UsItin => national::us_itin(m),
        Validator::Imei => national::imei(m),
        Validator::NlBsn => national::nl_bsn(m),
        Validator::EsNif => national::es_nif(m),
        Validator::ItFiscalCode => national::it_fiscal_code(m),
        Validator::SePersonnummer => national::se_personnummer(m),
        Validator::ChAhv => national::ch_ahv(m),
        Validator::UsAba => national::us_aba(m),
        Validator::BeNationalNumber => national::be_national_number(m),
        Validator::CnResidentId => national::cn_resident_id(m),
        Validator::FiHetu => national::fi_hetu(m),
        Validator::UkNino => national::uk_nino(m),
        Validator::NoFodselsnummer => national::no_fodselsnummer(m),
        Validator::PtNif => national::pt_nif(m),
        Validator::IePpsn => national::ie_ppsn(m),
        Validator::AtSvnr => national::at_svnr(m),
        Validator::SgNric => national::sg_nric(m),
        Validator::AuTfn => national::au_tfn(m),
        Validator::AuAbn => national::au_abn(m),
        Validator::KrRrn => national::kr_rrn(m),
        Validator::ItVat => national::it_vat(m),
        Validator::DkCpr => national::dk_cpr(m),
        Validator::MxCurp => national::mx_curp(m),
        Validator::Vin => national::vin(m),
        Validator::SwiftBic => national::swift_bic(m),
        Validator::BtcAddress => national::btc_address(m),
        Validator::JpMyNumber => national::jp_my_number(m),
        Validator::ThTnin => national::th_tnin(m),
        Validator::EuVat => vat::eu_vat(m),
        Validator::EthChecksummed => eth::eth_checksummed(m),
        Validator::EthOneCase => eth::eth_one_case(m),
        Validator::GivenSurname => names::given_surname(m, 0, m.len()),
        Validator::KnownName => names::known_name(m, 0, m.len()),
        Validator::CjkName => names::cjk_name(m),
    }
}

/// The fewest decimal digits a value `validator` accepts holds (0: no such bound).
pub(crate) fn min_digits(validator: Validator) -> usize {
    match validator {
        Validator::Phone => 7,
        // Two country-code digits and Austria's shortest plan (4); E.164's 8 for the others.
        Validator::PhoneIntl => 6,
        Validator::CreditCard => 13,
        Validator::UsSsn => 9,
        Validator::Luhn => 2,
        Validator::CaSin | Validator::UsItin | Validator::NlBsn | Validator::UsAba => 9,
        Validator::FiHetu => 9,
        Validator::PtNif | Validator::AuTfn => 9,
        Validator::IePpsn | Validator::SgNric => 7,
        Validator::AtSvnr => 10,
        Validator::NoFodselsnummer | Validator::AuAbn | Validator::ItVat => 11,
        Validator::KrRrn => 13,
        Validator::DkCpr => 10,
        Validator::MxCurp => 7,
        Validator::Vin => 3,
        // A base58 address starts with 1 or 3, a bech32 one with bc1.
        Validator::BtcAddress => 1,
        Validator::UkNino => 6,
        Validator::EsNif => 7,
        Validator::SePersonnummer => 10,
        Validator::BeNationalNumber => 11,
        Validator::ChAhv => 13,
        Validator::CnResidentId => 17,
        Validator::UkNhs => 10,
        Validator::PlPesel | Validator::BrCpf | Validator::DeSteuerId => 11,
        Validator::InAadhaar | Validator::JpMyNumber => 12,
        Validator::ThTnin => 13,
        // An old Irish number (`IE8Z49289F`): 6.
        Validator::EuVat => 6,
        Validator::BrCnpj => 14,
        // A Corsican NIR holds 14 (its department is 2A or 2B).
        Validator::FrNir => 14,
        Validator::Imei => 15,
        _ => 0,
    }
}

/// Street addresses (by key hint): some letters and a house number or a second line.
/// A person's name by key hint: letters of any script, spaces, apostrophes, hyphens and dots,
/// at least one letter, at most six words. (A validator, not a regex: Unicode letter classes
/// cost milliseconds to compile.)
fn person_name(m: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(m) else {
        return false;
    };
    s.chars().count() <= 100
        && s.chars().any(char::is_alphabetic)
        && s.chars().all(|c| {
            c.is_alphabetic() || matches!(c, ' ' | '\'' | '’' | '-' | '.') || is_combining_mark(c)
        })
        && s.split(' ').filter(|w| !w.is_empty()).count() <= 6
}

fn is_combining_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

/// "Given Family": two to four words separated by single spaces, each a capital followed by
/// lower-case letters, optionally joined by one `-` or `'` to another such part.
fn capitalized_name(m: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(m) else {
        return false;
    };
    // Without collecting the characters of each part and the words (two allocations a word).
    let part = |p: &str| {
        let mut cs = p.chars();
        cs.next().is_some_and(char::is_uppercase) && {
            let mut rest = cs.peekable();
            rest.peek().is_some() && rest.all(char::is_lowercase)
        }
    };
    let word = |w: &str| match w.split_once(['-', '\'']) {
        Some((a, b)) => part(a) && part(b),
        None => part(w),
    };
    let mut words = 0;
    for w in s.split(' ') {
        words += 1;
        if words > 4 || !word(w) {
            return false;
        }
    }
    words >= 2
}

fn street(m: &[u8]) -> bool {
    let letters = m.iter().filter(|b| b.is_ascii_alphabetic()).count();
    let has_digit = m.iter().any(u8::is_ascii_digit);
    let non_ascii = m.iter().any(|b| *b >= 0x80);
    (letters >= 3 || non_ascii) && has_digit && !m.contains(&b'@') && !m.starts_with(b"http")
}

/// Separators, if any, are all the same byte ("943 476-5919" is not written by anyone).
pub(super) fn consistent_separators(m: &[u8]) -> bool {
    let mut seps = m.iter().filter(|b| !b.is_ascii_digit());
    match seps.next() {
        None => true,
        Some(first) => seps.all(|s| s == first),
    }
}

/// The decimal digits of `m` (as values 0-9) in `buf`, or `None` when there are more than fit.
pub(super) fn digits_in<'b>(m: &[u8], buf: &'b mut [u8; 24]) -> Option<&'b [u8]> {
    let mut n = 0;
    for &b in m {
        if b.is_ascii_digit() {
            *buf.get_mut(n)? = b - b'0';
            n += 1;
        }
    }
    Some(&buf[..n])
}

fn digits(m: &[u8]) -> Vec<u8> {
    m.iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0')
        .collect()
}

/// The Luhn (mod 10) checksum over decimal digits.
pub(crate) fn luhn(d: &[u8]) -> bool {
    if d.len() < 2 {
        return false;
    }
    let mut sum = 0u32;
    for (i, &x) in d.iter().rev().enumerate() {
        let mut v = u32::from(x);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn credit_card(m: &[u8]) -> bool {
    // Separators must be consistent: none, or all spaces, or all dashes.
    if !consistent_separators(m) {
        return false;
    }
    let mut buf = [0; 24];
    let Some(d) = digits_in(m, &mut buf) else {
        return false;
    };
    if !(13..=19).contains(&d.len()) || !luhn(d) {
        return false;
    }
    // All the same digit (0000 0000 ...) passes Luhn but is no card.
    if d.iter().all(|x| *x == d[0]) {
        return false;
    }
    let n = |k: usize| d[..k].iter().fold(0u32, |a, x| a * 10 + u32::from(*x));
    let len = d.len();
    let (p1, p2, p3, p4, p6) = (n(1), n(2), n(3), n(4), n(6));
    match p1 {
        4 => matches!(len, 13 | 16 | 19),          // Visa
        5 if (51..=55).contains(&p2) => len == 16, // Mastercard
        5 if p2 == 50 || (56..=59).contains(&p2) => (12..=19).contains(&len), // Maestro
        2 if (2221..=2720).contains(&p4) => len == 16, // Mastercard 2-series
        3 if p2 == 34 || p2 == 37 => len == 15,    // Amex
        3 if (3528..=3589).contains(&p4) => (16..=19).contains(&len), // JCB
        2 if p4 == 2131 => len == 15,              // JCB (15 digits)
        1 if p4 == 1800 => len == 15,              // JCB (15 digits)
        2 if (2200..=2204).contains(&p4) => (16..=19).contains(&len), // Mir
        3 if (300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 => {
            (14..=19).contains(&len) // Diners
        }
        6 if p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) => (16..=19).contains(&len), // Discover
        6 if (622126..=622925).contains(&p6) || p2 == 62 => (16..=19).contains(&len), // UnionPay
        6 if p2 == 63 || p2 == 67 || p2 == 68 || p2 == 69 || p2 == 60 || p2 == 61 => {
            (12..=19).contains(&len) // Maestro
        }
        _ => false,
    }
}

fn us_ssn(m: &[u8]) -> bool {
    let mut buf = [0; 24];
    let Some(d) = digits_in(m, &mut buf) else {
        return false;
    };
    if d.len() != 9 {
        return false;
    }
    // Separators, if any, must be the same ("123-45 6789" is not an SSN).
    let mut seps = m.iter().filter(|b| !b.is_ascii_digit());
    if let (Some(a), Some(b), None) = (seps.next(), seps.next(), seps.next()) {
        if a != b {
            return false;
        }
    }
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    let group = u32::from(d[3]) * 10 + u32::from(d[4]);
    let serial = d[5..].iter().fold(0u32, |a, x| a * 10 + u32::from(*x));
    // The SSA's rules: no area 000, 666 or 9xx, no group 00, no serial 0000.
    !(area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0)
}

/// IBAN length per country (ISO 13616 registry).
fn iban_length(country: &[u8]) -> Option<usize> {
    const TABLE: &[(&[u8; 2], usize)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AL", 28),
        (b"AT", 20),
        (b"AZ", 28),
        (b"BA", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BH", 22),
        (b"BR", 29),
        (b"BY", 28),
        (b"CH", 21),
        (b"CR", 22),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DK", 18),
        (b"DO", 28),
        (b"EE", 20),
        (b"EG", 29),
        (b"ES", 24),
        (b"FI", 18),
        (b"FO", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GE", 22),
        (b"GI", 23),
        (b"GL", 18),
        (b"GR", 27),
        (b"GT", 28),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IL", 23),
        (b"IQ", 23),
        (b"IS", 26),
        (b"IT", 27),
        (b"JO", 30),
        (b"KW", 30),
        (b"KZ", 20),
        (b"LB", 28),
        (b"LC", 32),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"MC", 27),
        (b"MD", 24),
        (b"ME", 22),
        (b"MK", 19),
        (b"MR", 27),
        (b"MT", 31),
        (b"MU", 30),
        (b"NL", 18),
        (b"NO", 15),
        (b"PK", 24),
        (b"PL", 28),
        (b"PS", 29),
        (b"PT", 25),
        (b"QA", 29),
        (b"RO", 24),
        (b"RS", 22),
        (b"SA", 24),
        (b"SC", 31),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"ST", 25),
        (b"SV", 28),
        (b"TL", 23),
        (b"TN", 24),
        (b"TR", 26),
        (b"UA", 29),
        (b"VA", 22),
        (b"VG", 24),
        (b"XK", 20),
    ];
    TABLE
        .iter()
        .find(|(c, _)| c.as_slice() == country)
        .map(|(_, n)| *n)
}

/// At least the longest IBAN of `iban_length`'s table (ISO 13616 allows 34 characters).
const IBAN_MAX: usize = 34;

fn iban(m: &[u8]) -> bool {
    // The bytes but spaces, on the stack: a longer string is no IBAN.
    let mut buf = [0u8; IBAN_MAX];
    let mut n = 0;
    for &b in m.iter().filter(|b| **b != b' ') {
        let Some(slot) = buf.get_mut(n) else {
            return false;
        };
        *slot = b;
        n += 1;
    }
    let s = &buf[..n];
    s.len() >= 4 && iban_length(&s[..2]) == Some(s.len()) && iban_mod97(s)
}

/// ISO 7064 mod 97-10 over an IBAN-shaped string (country, check digits, BBAN), spaces
/// ignored: the bytes after the first four, then those four.
fn iban_mod97(m: &[u8]) -> bool {
    let mut head = [0u8; 4];
    let mut n = 0usize;
    let mut rem: u32 = 0;
    let mut step = |b: u8| -> bool {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            b'a'..=b'z' => u32::from(b - b'a') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
        true
    };
    for &b in m.iter().filter(|b| **b != b' ') {
        if n < 4 {
            head[n] = b;
        } else if !step(b) {
            return false;
        }
        n += 1;
    }
    n >= 5 && head.iter().all(|&b| step(b)) && rem == 1
}

fn ipv4(m: &[u8]) -> bool {
    let mut parts = 0;
    // On the bytes: a UTF-8 check, `str::split` and `u8::from_str` cost ~750 instructions a
    // candidate. As before: a part is one to three bytes, not a `0` before more, and what
    // `u8::from_str` takes (digits, after a `+` or not, at most 255; so `+0` and `+09` pass,
    // `+255` is too long). The length and digit checks come before the sum: it cannot
    // overflow.
    for p in m.split(|&b| b == b'.') {
        parts += 1;
        let digits = match p {
            [b'+', rest @ ..] => rest,
            _ => p,
        };
        let octet = !p.is_empty()
            && p.len() <= 3
            && (p.len() == 1 || p[0] != b'0')
            && !digits.is_empty()
            && digits.iter().all(u8::is_ascii_digit)
            && digits
                .iter()
                .fold(0u32, |v, &d| v * 10 + u32::from(d - b'0'))
                <= 255;
        if parts > 4 || !octet {
            return false;
        }
    }
    // 0.0.0.0 and x.0.0.0 forms are masks/placeholders far more often than addresses.
    parts == 4 && !m.starts_with(b"0.")
}

fn ipv6(m: &[u8]) -> bool {
    if !m.is_ascii() && std::str::from_utf8(m).is_err() {
        return false;
    }
    // The address before a zone (`%eth0`), and its groups (runs of bytes other than `:`),
    // counted on the bytes: the two `str::split`s cost more than the parse.
    let addr = m.split(|&b| b == b'%').next().unwrap_or(m);
    let (mut groups, mut after_colon) = (0, true);
    for &b in addr {
        groups += usize::from(after_colon && b != b':');
        after_colon = b == b':';
    }
    // "a::b" or "10:30:00" parse or nearly do; real addresses have three groups or more.
    if groups < 3 && !addr.starts_with(b"::") {
        return false;
    }
    if addr.starts_with(b"::") && groups < 1 {
        return false;
    }
    std::str::from_utf8(addr).is_ok_and(|a| a.parse::<Ipv6Addr>().is_ok())
}

fn mac(m: &[u8]) -> bool {
    if m.contains(&b'.') {
        return m.len() == 14;
    }
    // Consistent separator, and not all-zero / all-ff placeholders? Those are real MACs, keep.
    let mut seps = m.iter().filter(|b| matches!(b, b':' | b'-'));
    let first = seps.next();
    let mut n = usize::from(first.is_some());
    for s in seps {
        if Some(s) != first {
            return false;
        }
        n += 1;
    }
    n == 5
}

fn email(m: &[u8]) -> bool {
    let Some(at) = memchr::memchr(b'@', m) else {
        return false;
    };
    let local = &m[..at];
    let domain = &m[at + 1..];
    if local.ends_with(b".") || memchr::memmem::find(local, b"..").is_some() {
        return false;
    }
    let tld = match memchr::memrchr(b'.', domain) {
        Some(p) => &domain[p + 1..],
        None => domain,
    };
    !file_extension(tld)
}

/// Asset references such as "logo@2x.png" look like addresses but end in a file extension:
/// whether `tld`, in any ASCII case, is one of those.
fn file_extension(tld: &[u8]) -> bool {
    let mut buf = [0u8; 5];
    let Some(lower) = buf.get_mut(..tld.len()) else {
        return false;
    };
    lower.copy_from_slice(tld);
    lower.make_ascii_lowercase();
    matches!(
        &*lower,
        b"png"
            | b"jpg"
            | b"jpeg"
            | b"gif"
            | b"svg"
            | b"webp"
            | b"ico"
            | b"css"
            | b"js"
            | b"json"
            | b"map"
            | b"woff"
            | b"woff2"
            | b"ttf"
            | b"bmp"
            | b"tiff"
            | b"mp4"
            | b"mp3"
            | b"txt"
            | b"yaml"
            | b"yml"
    )
}

fn phone(m: &[u8]) -> bool {
    let mut buf = [0; 24];
    let Some(d) = digits_in(m, &mut buf) else {
        return false;
    };
    if !(7..=15).contains(&d.len()) {
        return false;
    }
    if d.iter().all(|x| *x == d[0]) {
        return false;
    }
    // Dates written with separators look like national numbers: 03-12-2024, 2024.01.15, and
    // after a list number in parentheses, (03) 2024-01-15.
    let m = match m.strip_prefix(b"(") {
        Some(rest) => match rest.iter().position(|&b| b == b')') {
            Some(close) => rest[close + 1..].trim_ascii_start(),
            None => m,
        },
        None => m,
    };
    let mut split = m
        .split(|b| matches!(b, b'-' | b'.' | b'/' | b' '))
        .filter(|p| !p.is_empty());
    let parts = [split.next(), split.next(), split.next(), split.next()];
    if let [Some(a), Some(b), Some(c), None] = parts {
        let parts = [a, b, c];
        if !parts.iter().all(|p| p.iter().all(u8::is_ascii_digit)) {
            return true;
        }
        let lens = parts.map(<[u8]>::len);
        let year_last =
            lens == [2, 2, 4] && (parts[2].starts_with(b"19") || parts[2].starts_with(b"20"));
        let year_first =
            lens == [4, 2, 2] && (parts[0].starts_with(b"19") || parts[0].starts_with(b"20"));
        if year_last || year_first {
            return false;
        }
    }
    true
}

/// Secret-looking values: long enough, varied enough, not a placeholder.
fn secret_like(m: &[u8]) -> bool {
    if m.len() < 6 {
        return false;
    }
    let lower = m.to_ascii_lowercase();
    const PLACEHOLDERS: &[&[u8]] = &[
        b"redacted",
        b"<redacted>",
        b"[redacted]",
        b"null",
        b"none",
        b"undefined",
        b"true",
        b"false",
        b"password",
        b"xxxxxx",
        b"your_api_key",
        b"<token>",
    ];
    if PLACEHOLDERS.contains(&lower.as_slice())
        || lower.starts_with(b"${")
        || lower.starts_with(b"{{")
    {
        return false;
    }
    if m.iter().all(|b| *b == m[0])
        || m.starts_with(b"[REDACTED")
        || m.starts_with(b"hmac:")
        || m.starts_with(b"tok:")
    {
        return false;
    }
    shannon_entropy(m) >= 2.0
}

/// Shannon entropy in bits per byte.
pub(crate) fn shannon_entropy(m: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in m {
        counts[b as usize] += 1;
    }
    let n = m.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// A plausible calendar date (for dates of birth found by key hint or context).
fn date(m: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(m) else {
        return false;
    };
    let nums: Vec<u32> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect();
    let plausible_year = |y: u32| (1880..=2100).contains(&y) || y < 100;
    match nums.as_slice() {
        [ymd] if s.len() == 8 => {
            let (y, mo, d) = (ymd / 10000, ymd / 100 % 100, ymd % 100);
            (1880..=2100).contains(&y) && (1..=12).contains(&mo) && (1..=31).contains(&d)
        }
        // "12 March 1985", "March 12, 1985", "1985" alone is not enough
        [a, y] => plausible_year(*y) && (1..=31).contains(a) && s.chars().any(char::is_alphabetic),
        [a, b, c, ..] => {
            if *a >= 1000 {
                plausible_year(*a) && (1..=12).contains(b) && (1..=31).contains(c)
            } else {
                plausible_year(*c)
                    && (1..=31).contains(a)
                    && (1..=31).contains(b)
                    && (*a <= 12 || *b <= 12)
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The email check as first written (21 extensions compared one by one), the reference
    /// of the one that looks the extension up.
    fn email_before(m: &[u8]) -> bool {
        let Some(at) = m.iter().position(|b| *b == b'@') else {
            return false;
        };
        let local = &m[..at];
        let domain = &m[at + 1..];
        if local.ends_with(b".") || local.windows(2).any(|w| w == b"..") {
            return false;
        }
        let tld = domain.rsplit(|b| *b == b'.').next().unwrap_or(b"");
        const FILE_EXTENSIONS: &[&[u8]] = &[
            b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"ico", b"css", b"js", b"json",
            b"map", b"woff", b"woff2", b"ttf", b"bmp", b"tiff", b"mp4", b"mp3", b"txt", b"yaml",
            b"yml",
        ];
        !FILE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(tld))
    }

    #[test]
    fn the_email_check_is_the_one_first_written() {
        let parts: [&[u8]; 14] = [
            b"a",
            b".",
            b"..",
            b"@",
            b"png",
            b"PNG",
            b"woff2",
            b"Js",
            b"jsx",
            b"x",
            b"\xc3\xa9",
            b"yml",
            b"mp",
            b"",
        ];
        let mut rng = crate::detect::tests::xorshift(0xe3a1);
        for _ in 0..100_000 {
            let mut m = Vec::new();
            for _ in 0..rng() % 9 {
                m.extend_from_slice(parts[(rng() % parts.len() as u64) as usize]);
            }
            assert_eq!(
                email(&m),
                email_before(&m),
                "{}",
                String::from_utf8_lossy(&m)
            );
        }
        for m in [&b"logo@2x.png"[..], b"a@b.WOFF2", b"a..b@c.de", b"a.@b.de"] {
            assert!(!email(m), "{}", String::from_utf8_lossy(m));
        }
        assert!(email(b"ada.lovelace@example.com") && email(b"a@b.woff22"));
    }

    /// The byte-level IPv4 and IPv6 group checks and the allocation-free capitalised-name
    /// check answer as the string code they replaced (copied here), on random strings of the
    /// bytes and characters that matter (digits, dots, signs, leading zeros, hex groups,
    /// zones, cases, title-case and caseless letters, broken UTF-8 anywhere).
    #[test]
    fn ip_addresses_and_capitalized_names_answer_as_the_string_checks() {
        fn ipv4_reference(m: &[u8]) -> bool {
            let Ok(s) = std::str::from_utf8(m) else {
                return false;
            };
            let mut parts = 0;
            for p in s.split('.') {
                parts += 1;
                let octet = !p.is_empty()
                    && p.len() <= 3
                    && (p.len() == 1 || !p.starts_with('0'))
                    && p.parse::<u8>().is_ok();
                if parts > 4 || !octet {
                    return false;
                }
            }
            parts == 4 && !s.starts_with("0.")
        }
        fn ipv6_reference(m: &[u8]) -> bool {
            let Ok(s) = std::str::from_utf8(m) else {
                return false;
            };
            let addr = s.split('%').next().unwrap_or(s);
            let groups = addr.split(':').filter(|g| !g.is_empty()).count();
            if groups < 3 && !addr.starts_with("::") {
                return false;
            }
            if addr.starts_with("::") && groups < 1 {
                return false;
            }
            addr.parse::<Ipv6Addr>().is_ok()
        }
        fn name_reference(m: &[u8]) -> bool {
            let Ok(s) = std::str::from_utf8(m) else {
                return false;
            };
            let part = |p: &str| {
                let mut cs = p.chars();
                cs.next().is_some_and(char::is_uppercase) && {
                    let rest: Vec<char> = cs.collect();
                    !rest.is_empty() && rest.iter().all(|c| c.is_lowercase())
                }
            };
            let word = |w: &str| match w.split_once(['-', '\'']) {
                Some((a, b)) => part(a) && part(b),
                None => part(w),
            };
            let words: Vec<&str> = s.split(' ').collect();
            (2..=4).contains(&words.len()) && words.iter().all(|w| word(w))
        }
        let mut next = crate::detect::tests::xorshift(0x1B4);
        let pick = |next: &mut dyn FnMut() -> u64, set: &[&str], n: usize| -> Vec<u8> {
            (0..n)
                .flat_map(|_| set[(next() % set.len() as u64) as usize].bytes())
                .collect()
        };
        let ip = [
            "1", "2", "5", "9", "0", "25", "255", "256", ".", ".", ".", "+", "+0", "+25", "-", "a",
            "\u{e9}",
        ];
        let ip6 = [
            "0", "1", "a", "F", "ffff", "12345", ":", ":", ":", "::", ".", "1.2.3.4", "%", "g",
            "\u{e9}",
        ];
        let names = [
            "A", "a", "b", "\u{c9}", "\u{e9}", " ", " ", "-", "'", "\u{df}", "\u{1c5}", "1", "Ada",
        ];
        for round in 0..60_000 {
            let n = (next() % 12) as usize;
            let set: &[&str] = match round % 3 {
                0 => &ip,
                1 => &names,
                _ => &ip6,
            };
            let mut v = pick(&mut next, set, n);
            // A byte that is not UTF-8, anywhere (after a zone too).
            if round % 7 == 0 {
                let at = (next() % (v.len() as u64 + 1)) as usize;
                v.insert(at, 0xFF);
            }
            assert_eq!(
                ipv4(&v),
                ipv4_reference(&v),
                "{:?}",
                String::from_utf8_lossy(&v)
            );
            let ip6_text = String::from_utf8_lossy(&v);
            assert_eq!(ipv6(&v), ipv6_reference(&v), "{ip6_text:?}");
            assert_eq!(
                capitalized_name(&v),
                name_reference(&v),
                "{:?}",
                String::from_utf8_lossy(&v)
            );
        }
        for v in [
            "1.2.3.4",
            "255.255.255.255",
            "+1.2.3.4",
            "1.+22.3.4",
            "01.2.3.4",
            "0.1.2.3",
            "1.+01.2.3",
            "1.+255.2.3",
            "+0.1.2.3",
            "1.+0.2.3",
            "1.+09.2.3",
            "1.2.3.+",
        ] {
            assert_eq!(ipv4(v.as_bytes()), ipv4_reference(v.as_bytes()), "{v}");
        }
        for v in [
            &b"1:2:3::4"[..],
            b"1:2:3::4%\xFF",
            b"1:2:3::4%eth0",
            b"::1",
            b"::",
            b"fe80::1%eth0",
            b"1:2:3:4:5:6:7:8",
            b"1:2:3:4:5:6:7:8:9",
            b"::ffff:1.2.3.4",
            b"1::2::3",
            b"1:2:3:\xFF::4",
        ] {
            assert_eq!(
                ipv6(v),
                ipv6_reference(v),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        for v in [
            "Ada Lee",
            "Ada Lee Ada Lee",
            "Ada Lee Ada Lee Ada",
            "Ada",
            "Ada-Lee O'Brien",
            "Ada  Lee",
            "Élodie Ünal",
        ] {
            let want = name_reference(v.as_bytes());
            assert_eq!(capitalized_name(v.as_bytes()), want, "{v}");
        }
    }

    mod before {
        //! The validators as they were, allocating: the references of
        //! `the_validators_on_the_stack_equal_the_allocating_ones`.
        use super::super::iban_length;

        fn compact(m: &[u8]) -> Vec<u8> {
            m.iter().copied().filter(|b| *b != b' ').collect()
        }

        pub(super) fn iban(m: &[u8]) -> bool {
            let s = compact(m);
            s.len() >= 4 && iban_length(&s[..2]) == Some(s.len()) && iban_mod97(&s)
        }

        pub(super) fn iban_mod97(m: &[u8]) -> bool {
            let s = compact(m);
            if s.len() < 5 || !s.iter().all(u8::is_ascii_alphanumeric) {
                return false;
            }
            let mut rem: u32 = 0;
            for &b in s[4..].iter().chain(&s[..4]) {
                let v = match b {
                    b'0'..=b'9' => u32::from(b - b'0'),
                    b'A'..=b'Z' => u32::from(b - b'A') + 10,
                    b'a'..=b'z' => u32::from(b - b'a') + 10,
                    _ => return false,
                };
                rem = if v >= 10 {
                    (rem * 100 + v) % 97
                } else {
                    (rem * 10 + v) % 97
                };
            }
            rem == 1
        }

        pub(super) fn ipv4(m: &[u8]) -> bool {
            let Ok(s) = std::str::from_utf8(m) else {
                return false;
            };
            let parts: Vec<&str> = s.split('.').collect();
            parts.len() == 4
                && parts.iter().all(|p| {
                    !p.is_empty()
                        && p.len() <= 3
                        && (p.len() == 1 || !p.starts_with('0'))
                        && p.parse::<u8>().is_ok()
                })
                && !s.starts_with("0.")
        }

        pub(super) fn mac(m: &[u8]) -> bool {
            if m.contains(&b'.') {
                return m.len() == 14;
            }
            let seps: Vec<u8> = m
                .iter()
                .copied()
                .filter(|b| *b == b':' || *b == b'-')
                .collect();
            seps.len() == 5 && seps.iter().all(|s| *s == seps[0])
        }
    }

    /// Random strings over each validator's alphabet (valid values with bytes changed, cut,
    /// doubled and spaced), and no IBAN of the table is longer than `IBAN_MAX`.
    #[test]
    fn the_validators_on_the_stack_equal_the_allocating_ones() {
        let longest = (b'A'..=b'Z')
            .flat_map(|a| (b'A'..=b'Z').map(move |b| [a, b]))
            .filter_map(|c| iban_length(&c))
            .max();
        assert!(longest.is_some_and(|l| l <= IBAN_MAX), "{longest:?}");
        let seeds: [&[u8]; 8] = [
            b"DE89 3704 0044 0532 0130 00",
            b"GB82WEST12345698765432",
            b"MT84MALT011000012345MTLCAST001S",
            b"192.168.0.1",
            b"10.0.0.255",
            b"00:1a:2b:3c:4d:5e",
            b"00-1A-2B-3C-4D-5E",
            b"001a.2b3c.4d5e",
        ];
        const BYTES: &[u8] = b"0123456789AZaz .:-%\xff";
        let mut next = crate::detect::tests::xorshift(0x7A11_DA7E_5EED_0001);
        let (mut ok, mut total) = ([0usize; 4], 0);
        for round in 0..200_000 {
            let mut v = seeds[round % seeds.len()].to_vec();
            for _ in 0..(next() % 4) {
                let at = (next() as usize) % (v.len() + 1);
                match next() % 4 {
                    0 if at < v.len() => v[at] = BYTES[(next() % BYTES.len() as u64) as usize],
                    1 if at < v.len() => {
                        v.remove(at);
                    }
                    2 => v.insert(at, BYTES[(next() % BYTES.len() as u64) as usize]),
                    _ => v = [&v[..], &v[..]].concat(),
                }
            }
            type Check = fn(&[u8]) -> bool;
            let pairs: [(Check, Check); 4] = [
                (iban, before::iban),
                (iban_mod97, before::iban_mod97),
                (ipv4, before::ipv4),
                (mac, before::mac),
            ];
            for (k, (new, old)) in pairs.iter().enumerate() {
                let want = old(&v);
                assert_eq!(new(&v), want, "{k} {:?}", String::from_utf8_lossy(&v));
                ok[k] += usize::from(want);
            }
            total += 1;
        }
        // Short strings around the five characters mod 97 needs (`0001` is 1 mod 97).
        for n in 0..100_000u32 {
            for v in [
                format!("{n:04}"),
                format!("{n:05}"),
                format!("{:03} {}", n % 1000, n % 10),
            ] {
                let v = v.as_bytes();
                assert_eq!(iban_mod97(v), before::iban_mod97(v), "{v:?}");
                assert_eq!(iban(v), before::iban(v), "{v:?}");
            }
        }
        // Each validator both accepted and rejected many of them.
        assert!(ok.iter().all(|&n| n > 2_000 && n < total - 2_000), "{ok:?}");
    }

    /// `min_digits` lets the numeric-span filter skip spans: a validator must never accept a
    /// value with fewer digits than it says (random digit strings with separators, one digit
    /// short and below).
    #[test]
    fn no_validator_accepts_fewer_digits_than_min_digits_says() {
        let all = [
            Validator::Luhn,
            Validator::CreditCard,
            Validator::UsSsn,
            Validator::Phone,
            Validator::PhoneIntl,
            Validator::UkNhs,
            Validator::PlPesel,
            Validator::BrCpf,
            Validator::BrCnpj,
            Validator::InAadhaar,
            Validator::CaSin,
            Validator::FrNir,
            Validator::DeSteuerId,
            Validator::UsItin,
            Validator::Imei,
            Validator::NlBsn,
            Validator::EsNif,
            Validator::SePersonnummer,
            Validator::ChAhv,
            Validator::UsAba,
            Validator::BeNationalNumber,
            Validator::CnResidentId,
            Validator::FiHetu,
            Validator::UkNino,
            Validator::NoFodselsnummer,
            Validator::PtNif,
            Validator::IePpsn,
            Validator::AtSvnr,
            Validator::SgNric,
            Validator::AuTfn,
            Validator::AuAbn,
            Validator::KrRrn,
            Validator::ItVat,
            Validator::DkCpr,
            Validator::MxCurp,
            Validator::Vin,
            Validator::BtcAddress,
            Validator::JpMyNumber,
            Validator::ThTnin,
            Validator::EuVat,
        ];
        let mut next = crate::detect::tests::xorshift(0x2545_F491_4F6C_DD1D);
        for v in all {
            let min = min_digits(v);
            assert!(min > 0, "{v:?}");
            for _ in 0..20_000 {
                let n = (next() % min as u64) as usize;
                let mut m = Vec::new();
                for i in 0..n {
                    if i > 0 && next().is_multiple_of(4) {
                        m.push(b" -./"[(next() % 4) as usize]);
                    }
                    m.push(b'0' + (next() % 10) as u8);
                }
                assert!(
                    !check(v, &m),
                    "{v:?} accepted {}",
                    String::from_utf8_lossy(&m)
                );
            }
        }
    }

    #[test]
    fn luhn_accepts_test_cards_and_rejects_off_by_one() {
        assert!(credit_card(b"4111111111111111"));
        assert!(credit_card(b"5500 0000 0000 0004"));
        assert!(credit_card(b"2223-0031-2200-3222"));
        assert!(credit_card(b"378282246310005"));
        assert!(!credit_card(b"4111111111111112"));
        assert!(!credit_card(b"4111-1111 1111-1111"), "mixed separators");
        assert!(!credit_card(b"1234567812345670"), "no brand starts with 1");
    }

    #[test]
    fn ssn_rules() {
        assert!(us_ssn(b"536-22-1234"));
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "536-00-1234",
            "536-22-0000",
            "536-22 1234",
        ] {
            assert!(!us_ssn(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn iban_checksum_and_length() {
        assert!(iban(b"DE89370400440532013000"));
        assert!(iban(b"GB82 WEST 1234 5698 7654 32"));
        assert!(!iban(b"DE89370400440532013001"));
        assert!(!iban(b"DE8937040044053201300"), "wrong length");
    }

    #[test]
    fn ip_forms() {
        assert!(ipv4(b"192.168.1.20"));
        assert!(!ipv4(b"192.168.01.20"));
        assert!(ipv6(b"2001:db8::8a2e:370:7334"));
        assert!(ipv6(b"fe80::1ff:fe23:4567:890a%eth0"));
        assert!(!ipv6(b"10:30:00"));
        assert!(!ipv6(b"00:1A:2B:3C:4D:5E"));
    }

    #[test]
    fn names() {
        assert!(person_name("María García-López".as_bytes()));
        assert!(person_name("O'Brien".as_bytes()));
        assert!(!person_name(b"user42"));
        assert!(!person_name(b"a@b.io"));
        assert!(capitalized_name(b"Ada Lovelace"));
        assert!(capitalized_name(b"Jean-Luc Picard"));
        assert!(!capitalized_name(b"Hello-World"));
        assert!(!capitalized_name(b"Premium widget"));
        assert!(!capitalized_name(b"ACME Corp"));
    }

    #[test]
    fn dates() {
        assert!(date(b"1985-03-12"));
        assert!(date(b"12/03/1985"));
        assert!(date(b"March 12, 1985"));
        assert!(!date(b"1985-13-45"));
    }
}
