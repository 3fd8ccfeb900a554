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

/// Renders a concrete path as `$.a.b[0]['odd key']`.
pub(crate) fn render(path: &[Step<'_>]) -> String {
    let mut s = String::from("$");
    for step in path {
        match step {
            Step::Index(i) => {
                use std::fmt::Write;
                let _ = write!(s, "[{i}]");
            }
            Step::Key(k)
                if !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-') =>
            {
                s.push('.');
                s.push_str(k);
            }
            Step::Key(k) => {
                s.push_str("['");
                s.push_str(&k.replace('\'', "\\'"));
                s.push_str("']");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use Step::*;

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
}
