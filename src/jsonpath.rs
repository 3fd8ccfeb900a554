//! The JSONPath subset used by field rules and record limits.
//!
//! Supported: `$` root, `.name` / `['name']` child, `.*` / `[*]` any child, `[3]` index, and
//! `..name` / `..*` descendant at any depth. Paths are matched against the concrete path of each
//! value while the body is walked, so no DOM is built.

use std::fmt;

/// One step of a concrete path in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    Name(String),
    Index(usize),
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    descendant: bool,
    selector: Selector,
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathPattern {
    source: String,
    segments: Vec<Segment>,
}

/// A syntax error: column (1-based) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathError {
    pub(crate) column: usize,
    pub(crate) message: String,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at column {}", self.message, self.column)
    }
}

impl PathPattern {
    pub(crate) fn parse(source: &str) -> Result<PathPattern, PathError> {
        let b: Vec<char> = source.chars().collect();
        let err = |i: usize, m: String| PathError {
            column: i + 1,
            message: m,
        };
        let unexpected = |i: usize| match b.get(i) {
            Some(c) => err(i, format!("unexpected '{c}'")),
            None => err(i, "unexpected end of path".to_string()),
        };
        if b.first() != Some(&'$') {
            return Err(err(0, "a path starts with '$'".to_string()));
        }
        let mut i = 1;
        let mut segments = Vec::new();
        while i < b.len() {
            let mut descendant = false;
            match b[i] {
                '.' => {
                    i += 1;
                    if b.get(i) == Some(&'.') {
                        descendant = true;
                        i += 1;
                    }
                    if b.get(i) == Some(&'[') {
                        if !descendant {
                            return Err(unexpected(i));
                        }
                        continue_bracket(&b, &mut i, descendant, &mut segments)
                            .map_err(|(i, m)| err(i, m))?;
                        continue;
                    }
                    if b.get(i) == Some(&'*') {
                        segments.push(Segment {
                            descendant,
                            selector: Selector::Any,
                        });
                        i += 1;
                        continue;
                    }
                    let start = i;
                    while i < b.len()
                        && (b[i].is_alphanumeric()
                            || b[i] == '_'
                            || b[i] == '-'
                            || b[i] == '$'
                            || b[i] == '@')
                    {
                        i += 1;
                    }
                    if i == start {
                        return Err(unexpected(i));
                    }
                    segments.push(Segment {
                        descendant,
                        selector: Selector::Name(b[start..i].iter().collect()),
                    });
                }
                '[' => {
                    continue_bracket(&b, &mut i, false, &mut segments)
                        .map_err(|(i, m)| err(i, m))?;
                }
                _ => return Err(unexpected(i)),
            }
        }
        Ok(PathPattern {
            source: source.to_string(),
            segments,
        })
    }

    /// Whether the pattern selects exactly this path.
    pub(crate) fn matches(&self, path: &[Step<'_>]) -> bool {
        match_from(&self.segments, path)
    }

    /// Whether the pattern selects this path or one of its ancestors.
    pub(crate) fn matches_within(&self, path: &[Step<'_>]) -> bool {
        (0..=path.len()).any(|n| match_from(&self.segments, &path[..n]))
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn continue_bracket(
    b: &[char],
    i: &mut usize,
    descendant: bool,
    segments: &mut Vec<Segment>,
) -> Result<(), (usize, String)> {
    // at '['
    *i += 1;
    let selector = match b.get(*i) {
        Some('*') => {
            *i += 1;
            Selector::Any
        }
        Some(q @ ('\'' | '"')) => {
            let q = *q;
            *i += 1;
            let start = *i;
            while *i < b.len() && b[*i] != q {
                *i += 1;
            }
            if *i >= b.len() {
                return Err((start - 1, "unterminated quoted name".to_string()));
            }
            let name: String = b[start..*i].iter().collect();
            *i += 1;
            Selector::Name(name)
        }
        Some(c) if c.is_ascii_digit() => {
            let start = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            let n: String = b[start..*i].iter().collect();
            Selector::Index(
                n.parse()
                    .map_err(|_| (start, "index too large".to_string()))?,
            )
        }
        Some(c) => return Err((*i, format!("unexpected '{c}'"))),
        None => return Err((*i, "unexpected end of path".to_string())),
    };
    match b.get(*i) {
        Some(']') => *i += 1,
        Some(c) => return Err((*i, format!("unexpected '{c}', expected ']'"))),
        None => return Err((*i, "unexpected end of path, expected ']'".to_string())),
    }
    segments.push(Segment {
        descendant,
        selector,
    });
    Ok(())
}

fn selects(sel: &Selector, step: &Step<'_>) -> bool {
    match (sel, step) {
        (Selector::Any, _) => true,
        (Selector::Name(n), Step::Key(k)) => n == k,
        (Selector::Index(n), Step::Index(i)) => n == i,
        _ => false,
    }
}

fn match_from(segs: &[Segment], path: &[Step<'_>]) -> bool {
    let Some((seg, rest)) = segs.split_first() else {
        return path.is_empty();
    };
    if seg.descendant {
        (0..path.len())
            .any(|skip| selects(&seg.selector, &path[skip]) && match_from(rest, &path[skip + 1..]))
    } else {
        path.first().is_some_and(|s| selects(&seg.selector, s)) && match_from(rest, &path[1..])
    }
}

/// Longest rendered path in bytes; a longer one is cut and ends in `…`. A path is rendered for
/// every value with findings, so a hostile 500 KB key must not be copied into each of them.
pub(crate) const MAX_RENDERED_PATH: usize = 256;

/// Renders a concrete path as `$.a.b[0]['odd key']`.
pub(crate) fn render(path: &[Step<'_>]) -> String {
    let mut s = String::from("$");
    for step in path {
        match step {
            Step::Index(i) => push_index(&mut s, *i),
            Step::Key(k) => push_key(&mut s, k, None),
        }
        if s.len() > MAX_RENDERED_PATH {
            break;
        }
    }
    truncate_path(&mut s);
    s
}

pub(crate) fn push_index(s: &mut String, i: usize) {
    // The digits by hand: `write!` costs ~10x more, once per array level of every path.
    let mut digits = [0u8; 20];
    let (mut n, mut at) = (i, digits.len());
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // A char at a time: a `from_utf8` of the digits cost more than the pushes.
    s.push('[');
    for &d in &digits[at..] {
        s.push(char::from(d));
    }
    s.push(']');
}

/// Appends one key to a rendered path. Paths go to audit lines and logs, and a key may itself
/// be a value (a map keyed by email addresses, card numbers, names): this is the one place that
/// decides how a key is shown. A key in which a detector found `class` renders as `[<class>]`;
/// a key that merely looks like a value (see [`key_looks_like_value`]) renders as `[<key>]`.
pub(crate) fn push_key(s: &mut String, key: &str, found: Option<&str>) {
    if found.is_none() && plain_ascii_name(key.as_bytes()) {
        // Most keys: one pass over the bytes, for what the checks below decide for them.
        s.push('.');
        s.push_str(key);
    } else if let Some(class) = found {
        s.push_str("[<");
        s.push_str(class);
        s.push_str(">]");
    } else if key_looks_like_value(key) {
        s.push_str("[<key>]");
    } else if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        s.push('.');
        s.push_str(key);
    } else {
        s.push_str("['");
        s.push_str(&key.replace('\'', "\\'"));
        s.push_str("']");
    }
}

/// A key of ASCII letters, digits, `_` and `-`, of 1 to 64 bytes, without six digits in a run
/// (`-` between them, as [`key_looks_like_value`] counts them): one [`push_key`] renders as
/// `.key`.
fn plain_ascii_name(key: &[u8]) -> bool {
    if key.is_empty() || key.len() > 64 {
        return false;
    }
    let (mut run, mut longest) = (0u8, 0u8);
    for &b in key {
        match b {
            b'0'..=b'9' => {
                run += 1;
                longest = longest.max(run);
            }
            b'-' => {}
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => run = 0,
            _ => return false,
        }
    }
    longest < 6
}

/// Whether a key may be a value rather than a name: an `@`, a run of six or more digits (with
/// the separators of phone, card and SSN formats between them), a long key, or words that all
/// start with a capital letter ("Ada Lovelace"). Errs on the side of hiding.
pub(crate) fn key_looks_like_value(key: &str) -> bool {
    if key.len() > 64 || key.contains('@') {
        return true;
    }
    let (mut run, mut longest) = (0usize, 0usize);
    for b in key.bytes() {
        match b {
            b'0'..=b'9' => {
                run += 1;
                longest = longest.max(run);
            }
            b' ' | b'-' | b'.' | b'(' | b')' | b'/' | b'+' => {}
            _ => run = 0,
        }
    }
    if longest >= 6 {
        return true;
    }
    let mut words = key.split(' ').filter(|w| !w.is_empty()).peekable();
    key.contains(' ')
        && words.peek().is_some()
        && words.all(|w| w.chars().next().is_some_and(char::is_uppercase))
}

/// Cuts a rendered path to [`MAX_RENDERED_PATH`] bytes (at a character boundary) plus `…`.
pub(crate) fn truncate_path(s: &mut String) {
    if s.len() > MAX_RENDERED_PATH {
        let mut cut = MAX_RENDERED_PATH;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}

/// Lower-cases and drops `_`, `-`, `.` and spaces: `phoneNumber`, `phone_number` and
/// `Phone-Number` all become `phonenumber`; `IČ DPH` becomes `ičdph`, `ΑΦΜ` `αφμ` (letters
/// beyond ASCII are lower-cased too, and the ideographic space is dropped: `名前　`).
pub(crate) fn normalize_key(key: &str, out: &mut Vec<u8>) {
    if !normalize_ascii_key(key.as_bytes(), out) {
        out.clear();
        let mut buf = [0u8; 4];
        for c in key
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | '.' | ' ' | '\u{3000}'))
            .flat_map(char::to_lowercase)
        {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
}

/// [`normalize_key`] of a key given as bytes, when they are ASCII (no UTF-8 check needed):
/// `false`, `out` empty, when they are not. Bytes, not a `String`: every key of every body comes
/// here, and a `char` pushed per byte cost ~30 instructions a byte (3% of a corpus pass).
pub(crate) fn normalize_ascii_key(key: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    if !key.is_ascii() {
        return false;
    }
    out.extend(
        key.iter()
            .filter(|&&b| !matches!(b, b'_' | b'-' | b'.' | b' '))
            .map(u8::to_ascii_lowercase),
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use Step::*;

    /// The byte-wise key normalization is the `char` filter it replaced, at every length, and
    /// refuses a key with a byte beyond ASCII wherever it is.
    #[test]
    fn keys_normalize_as_the_char_filter_does() {
        let reference = |key: &str| -> Vec<u8> {
            key.chars()
                .filter(|c| !matches!(c, '_' | '-' | '.' | ' ' | '\u{3000}'))
                .flat_map(char::to_lowercase)
                .collect::<String>()
                .into_bytes()
        };
        let alphabet = b"aZ_-. 09xY\"'@";
        let mut out = b"stale".to_vec();
        for len in 0..70 {
            for seed in 0..alphabet.len() {
                let key: String = (0..len)
                    .map(|i| char::from(alphabet[(i * 7 + seed * 3 + i / 5) % alphabet.len()]))
                    .collect();
                assert!(normalize_ascii_key(key.as_bytes(), &mut out), "{key:?}");
                assert_eq!(out, reference(&key), "{key:?}");
                normalize_key(&key, &mut out);
                assert_eq!(out, reference(&key), "{key:?}");
            }
            for at in 0..len {
                let mut key: Vec<u8> = (0..len).map(|i| [b'A', b'b', b'_'][i % 3]).collect();
                key[at] = 0xC3;
                assert!(!normalize_ascii_key(&key, &mut out), "{len} {at}");
                assert!(out.is_empty());
            }
        }
        for key in [
            "Nom_Prénom",
            "ФАМИЛИЯ",
            "名前\u{3000}姓",
            "É-MAIL.Address",
            "İD",
        ] {
            normalize_key(key, &mut out);
            assert_eq!(out, reference(key), "{key}");
        }
    }

    /// The hand-written index and the ASCII key check render what `write!` and the `char`
    /// check did.
    #[test]
    fn indexes_and_keys_render_as_before() {
        let mut values: Vec<usize> = (0..2000).collect();
        values.extend(
            (1..20)
                .filter_map(|p| 10usize.checked_pow(p))
                .flat_map(|v| [v - 1, v, v.saturating_add(1)]),
        );
        values.push(usize::MAX);
        for i in values {
            let mut s = String::from("$.a");
            push_index(&mut s, i);
            assert_eq!(s, format!("$.a[{i}]"));
        }
        for key in [
            "id", "user_id", "x-y", "Name", "a b", "a'b", "a.b", "é", "ключ", "名前", "_", "-",
            "a\u{0}",
        ] {
            let mut s = String::new();
            push_key(&mut s, key, None);
            assert_eq!(s, rendered_by_the_general_checks(key), "{key}");
        }
    }

    /// A key as `push_key` renders it without the one-pass check for plain ASCII names.
    fn rendered_by_the_general_checks(key: &str) -> String {
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
        if key_looks_like_value(key) {
            "[<key>]".to_string()
        } else if plain {
            format!(".{key}")
        } else {
            format!("['{}']", key.replace('\'', "\\'"))
        }
    }

    /// Keys of name bytes, digits, separators and non-ASCII letters render through the
    /// one-pass check as through the general ones.
    #[test]
    fn plain_keys_render_as_the_general_checks_render_them() {
        let parts = [
            "a", "Z", "_", "-", "1", "12", "123", " ", "@", ".", "é", "'", "(", "+", "A b",
        ];
        let mut rng = crate::detect::tests::xorshift(0x6b65_7973);
        for n in 0..100_000 {
            let mut key = String::new();
            for _ in 0..rng() % 12 {
                key.push_str(parts[(rng() % parts.len() as u64) as usize]);
            }
            if n % 100 == 0 {
                key = key.repeat(8);
            }
            let mut s = String::new();
            push_key(&mut s, &key, None);
            assert_eq!(s, rendered_by_the_general_checks(&key), "{key:?}");
        }
    }

    #[test]
    fn parses_and_matches() {
        let p = PathPattern::parse("$.items[*].card").unwrap();
        assert!(p.matches(&[Key("items"), Index(3), Key("card")]));
        assert!(!p.matches(&[Key("items"), Key("card")]));
        let d = PathPattern::parse("$..email").unwrap();
        assert!(d.matches(&[Key("a"), Index(0), Key("email")]));
        assert!(d.matches(&[Key("email")]));
        let q = PathPattern::parse("$['odd key'][0]").unwrap();
        assert!(q.matches(&[Key("odd key"), Index(0)]));
        assert!(PathPattern::parse("$.user")
            .unwrap()
            .matches_within(&[Key("user"), Key("email")]));
    }

    #[test]
    fn reports_columns() {
        let e = PathPattern::parse("$.items[*]]").unwrap_err();
        assert_eq!(e.to_string(), "unexpected ']' at column 11");
        let e = PathPattern::parse("items").unwrap_err();
        assert_eq!(e.column, 1);
        assert!(PathPattern::parse("$.a[").is_err());
        assert!(PathPattern::parse("$.").is_err());
    }

    #[test]
    fn renders() {
        assert_eq!(render(&[Key("a"), Index(2), Key("b c")]), "$.a[2]['b c']");
    }

    #[test]
    fn keys_that_look_like_values_are_never_rendered() {
        for (key, want) in [
            ("ada@example.com", "$.m[<key>]"),
            ("4111 1111 1111 1111", "$.m[<key>]"),
            ("536-22-1234", "$.m[<key>]"),
            ("+44 20 7946 0958", "$.m[<key>]"),
            ("Ada Lovelace", "$.m[<key>]"),
            ("order12345", "$.m.order12345"),
            ("first name", "$.m['first name']"),
            ("v1.2.3", "$.m['v1.2.3']"),
        ] {
            assert_eq!(render(&[Key("m"), Key(key)]), want, "{key}");
        }
        let long = "k".repeat(500_000);
        let r = render(&[Key("a"), Index(1), Key(&long)]);
        assert_eq!(r, "$.a[1][<key>]");
        let many: Vec<Step<'_>> = (0..200).map(|_| Key("abcdef")).collect();
        let r = render(&many);
        assert!(r.len() <= MAX_RENDERED_PATH + '…'.len_utf8() && r.ends_with('…'));
    }
}
