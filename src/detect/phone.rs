//! International phone numbers (`+<country> ...` and `00<country> ...`) checked against the
//! numbering plans of the countries whose numbers we see most: the country code is read
//! (ITU codes are prefix-free), then the national significant number's length and leading digit
//! must fit that country's plan. Numbers of other countries get the E.164 bounds only.
//!
//! Plans (ITU-T E.164 national numbering plans, as published by each regulator), the national
//! significant number (NSN: without the country code and without the trunk `0`):
//!
//! | code | country | NSN digits | leading digit |
//! |---|---|---|---|
//! | 1 | US, CA (NANP) | 10 | area code 2-9 |
//! | 44 | GB | 9-10 | 1, 2, 3, 5, 7, 8, 9 |
//! | 49 | DE | 6-13 | 1-9 |
//! | 33 | FR | 9 | 1-9 |
//! | 34 | ES | 9 | 6, 7, 8, 9 |
//! | 39 | IT | 6-11 | 0 (landlines keep it), 3 (mobiles), 8 |
//! | 31 | NL | 7-9 (0800/0900: 7-9) | 1-9 |
//! | 32 | BE | 8-9 | 1-9 |
//! | 41 | CH | 9 | 2-9 |
//! | 43 | AT | 4-13 | 1-9 |
//! | 48 | PL | 9 | 1-9 |
//! | 46 | SE | 7-10 | 1-9 |
//! | 81 | JP | 9-10 | 1-9 |
//! | 91 | IN | 10-11 (1800 toll-free: 11) | 1-9 |
//! | 55 | BR | 10-11 | 1-9 |
//! | 61 | AU | 9-10 (1300/1800: 10) | 1, 2, 3, 4, 7, 8 |
//!
//! A trunk `0` written after the country code is dropped first, as dialling does: in
//! parentheses (`+49 (0)30 ...`, the usual German, British, Swiss and Austrian form) or bare
//! (`+44 020 ...`, a common slip), except for Italy, where the `0` belongs to the number.
//!
//! Every number has at least 8 digits with its country code; written with `00`, at least 7
//! after it (the 00 form is also how zero-padded ids start: `0043-2021`).

/// `(country code, NSN digits min, max, allowed leading digits)`.
const PLANS: &[(&[u8], usize, usize, &[u8])] = &[
    (b"1", 10, 10, b"23456789"),
    (b"44", 9, 10, b"1235789"),
    (b"49", 6, 13, b"123456789"),
    (b"33", 9, 9, b"123456789"),
    (b"34", 9, 9, b"6789"),
    (b"39", 6, 11, b"038"),
    (b"31", 7, 9, b"123456789"),
    (b"32", 8, 9, b"123456789"),
    (b"41", 9, 9, b"23456789"),
    (b"43", 4, 13, b"123456789"),
    (b"48", 9, 9, b"123456789"),
    (b"46", 7, 10, b"123456789"),
    (b"81", 9, 10, b"123456789"),
    (b"91", 10, 11, b"123456789"),
    (b"55", 10, 11, b"123456789"),
    (b"61", 9, 10, b"123478"),
];

/// The length of the ITU country code `digits` starts with (1 to 3), or `None` for a leading 0.
pub(crate) fn country_code_len(digits: &[u8]) -> Option<usize> {
    let (a, b) = (*digits.first()?, digits.get(1).copied().unwrap_or(b'0'));
    Some(match a {
        b'1' | b'7' => 1,
        b'2' => 2 + usize::from(!matches!(b, b'0' | b'7')),
        b'3' => 2 + usize::from(matches!(b, b'5' | b'7' | b'8')),
        b'4' => 2 + usize::from(b == b'2'),
        b'5' => 2 + usize::from(matches!(b, b'0' | b'9')),
        b'6' => 2 + usize::from(b > b'6'),
        b'8' => 2 + usize::from(!matches!(b, b'1' | b'2' | b'4' | b'6')),
        b'9' => 2 + usize::from(!matches!(b, b'0'..=b'5' | b'8')),
        _ => return None,
    })
}

/// The country code of an international number as written (`+44 20 ...`, `0049 30 ...`,
/// `00 33 1 ...`), or `None` when it is not written in one of those forms.
/// With whether it was written with `00`.
fn split_prefix(m: &[u8]) -> Option<(&[u8], bool)> {
    let (m, zeros) = match m.strip_prefix(b"+") {
        Some(rest) => (rest, false),
        None => (m.strip_prefix(b"00")?, true),
    };
    Some((m.strip_prefix(b" ").unwrap_or(m), zeros))
}

/// An international number: a known country's plan, or the E.164 bounds (8 to 15 digits with
/// the country code) for the others when written with `+`. Written with `00`, only the known
/// countries: `007-952-3690` is an internal id far more often than a Russian number.
pub(crate) fn international(m: &[u8]) -> bool {
    let Some((rest, zeros)) = split_prefix(m) else {
        return false;
    };
    // The digits as written (ASCII), at most 24 of them.
    let mut buf = [0u8; 24];
    let mut n = 0;
    for &b in rest.iter().filter(|b| b.is_ascii_digit()) {
        let Some(slot) = buf.get_mut(n) else {
            return false;
        };
        *slot = b;
        n += 1;
    }
    let digits = &buf[..n];
    let Some(cc_len) = country_code_len(digits) else {
        return false;
    };
    // The country code is written as one group ("+4 930 ..." is not a number).
    if !rest.starts_with(&digits[..cc_len.min(digits.len())]) || digits.len() <= cc_len {
        return false;
    }
    let (cc, mut nsn) = digits.split_at(cc_len);
    if nsn.iter().all(|d| *d == nsn[0]) {
        return false;
    }
    if !(8..=15).contains(&digits.len()) {
        return false;
    }
    let Some(&(_, min, max, leading)) = PLANS.iter().find(|p| p.0 == cc) else {
        return !zeros;
    };
    // The trunk 0, "(0)" or bare, outside Italy.
    if nsn[0] == b'0' && cc != b"39" {
        nsn = &nsn[1..];
    }
    (min..=max).contains(&nsn.len())
        && nsn.first().is_some_and(|d| leading.contains(d))
        && (!zeros || nsn.len() >= 7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes_are_read_as_itu_assigns_them() {
        for (digits, len) in [
            ("12125550123", 1),
            ("74951234567", 1),
            ("201234", 2),
            ("271234", 2),
            ("2121234", 3), // Morocco 212
            ("3312345", 2),
            ("35312345", 3), // Ireland 353
            ("3801234", 3),  // Ukraine 380
            ("4420", 2),
            ("420123", 3), // Czechia 420
            ("5511", 2),
            ("5921234", 3), // Guyana 592
            ("6112", 2),
            ("6851234", 3), // Samoa 685
            ("8190", 2),
            ("8521234", 3), // Hong Kong 852
            ("9122", 2),
            ("9711234", 3), // UAE 971
            ("9812", 2),
        ] {
            assert_eq!(country_code_len(digits.as_bytes()), Some(len), "{digits}");
        }
        assert_eq!(country_code_len(b"0049"), None);
    }

    #[test]
    fn numbers_follow_their_countrys_plan() {
        for ok in [
            "+1 212 555 0123",
            "+1-416-555-0199",
            "+44 20 7946 0958",
            "+44 (0)20 7946 0958",
            "+44 7700 900123",
            "+44 1632 960123",
            "+49 30 12345678",
            "+49 (0)30 12345678",
            "+49 171 1234567",
            "+33 1 42 68 53 00",
            "+33 6 12 34 56 78",
            "+34 612 345 678",
            "+34 912 345 678",
            "+39 06 1234 5678",
            "+39 312 345 6789",
            "+31 20 123 4567",
            "+31 6 12345678",
            "+32 2 123 45 67",
            "+32 470 12 34 56",
            "+41 44 668 18 00",
            "+41 79 123 45 67",
            "+41 61 123 45 67",
            "+39 (0)2 1234 5678",
            "+61 1300 123 456",
            "+91 1800 123 4567",
            "+31 800 1234",
            "+43 1 5123456",
            "+43 664 1234567",
            "+48 22 123 45 67",
            "+48 512 345 678",
            "+46 8 123 456 78",
            "+46 70 123 45 67",
            "+81 3-1234-5678",
            "+81 90-1234-5678",
            "+91 98765 43210",
            "+91 22 2345 6789",
            "+55 11 98765-4321",
            "+55 21 2345-6789",
            "+61 2 9876 5432",
            "+61 412 345 678",
            "0049 30 12345678",
            "00 33 1 42 68 53 00",
            "0044 20 7946 0958",
            "0034 612 345 678",
            "+353 1 234 5678",
            "+420 212 345 678",
            "+7 495 123-45-67",
        ] {
            assert!(international(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "+34 512 345 678",  // Spanish numbers start 6-9
            "+34 612 345 67",   // 8 digits
            "+33 1 42 68 53 0", // 8 digits
            "+1 112 555 0123",  // area codes start 2-9
            "+1 212 555 012",   // 9 digits
            "+44 4 1234 5678",  // GB has no 4
            "+61 5 9876 5432",  // AU has no 5
            "+41 12 345 67 89", // CH has no 1
            "+43 1234",         // 6 digits
            "0043-2021",        // a zero-padded id: too short for the 00 form
            "00 43 12 34",
            "+49 1",           // too short
            "+48 22 123 45 6", // PL: 9 digits
            "+4 930 1234567",  // the country code split
            "+0 123 456 789",  // no country code starts with 0
            "+353 1",          // E.164 bounds
            "+31 6 66666666",  // one digit repeated
            "0034 5123 45678",
            "007-952-3690",   // 00 + a country without a plan here
            "12 34 56 78 90", // not international
        ] {
            assert!(!international(bad.as_bytes()), "{bad}");
        }
    }
}
