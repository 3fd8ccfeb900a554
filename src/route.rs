//! Route matching: path (exact, prefix, template, regex), methods and hosts. First match wins.
//!
//! Paths are compared as the application will understand them, not as they were written: a
//! route that can be missed by writing `/Echo`, `//echo`, `/ech%6F`, `/a/../echo` or
//! `/echo;x=1` is a route that can be bypassed (usually into the default route, which may not
//! inspect requests). [`normalize`] is applied to the request path and, at compile time, to the
//! literal parts of every matcher, so both sides are in the same form.

use crate::matcher::{self, Matcher};

use crate::error::PolicyError;
use crate::manifest::RouteMatch;

#[derive(Debug)]
enum PathMatch {
    Any,
    Exact(String),
    Prefix(String),
    Template(Vec<TemplatePart>),
    Regex(Matcher),
}

#[derive(Debug, PartialEq, Eq)]
enum TemplatePart {
    Literal(String),
    Param,
    Rest,
}

#[derive(Debug)]
pub(crate) struct RouteMatcher {
    path: PathMatch,
    /// A `prefix` written with a trailing slash: the directory itself matches too.
    prefix_dir: bool,
    methods: Vec<String>,
    hosts: Vec<String>,
}

impl RouteMatcher {
    pub(crate) fn compile(
        m: &RouteMatch,
        loc: &str,
        case_sensitive: bool,
    ) -> Result<RouteMatcher, PolicyError> {
        let given = [
            m.path.is_some(),
            m.prefix.is_some(),
            m.template.is_some(),
            m.regex.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if given > 1 {
            return Err(PolicyError::new(
                loc,
                "use one of `path`, `prefix`, `template` or `regex`",
            ));
        }
        let must_start_with_slash = |field: &str, v: &str| {
            if v.starts_with('/') {
                Ok(())
            } else {
                Err(PolicyError::new(
                    format!("{loc}.{field}"),
                    format!("`{v}` must start with '/'"),
                ))
            }
        };
        let norm = |p: &str| normalize(p, true, case_sensitive);
        let mut prefix_dir = false;
        let path = if let Some(p) = &m.path {
            must_start_with_slash("path", p)?;
            PathMatch::Exact(norm(p))
        } else if let Some(p) = &m.prefix {
            must_start_with_slash("prefix", p)?;
            prefix_dir = p.ends_with('/');
            PathMatch::Prefix(norm(p))
        } else if let Some(t) = &m.template {
            must_start_with_slash("template", t)?;
            let mut parts =
                parse_template(t).map_err(|e| PolicyError::new(format!("{loc}.template"), e))?;
            for part in &mut parts {
                if let TemplatePart::Literal(l) = part {
                    *l = normalize_segment(l, case_sensitive);
                }
            }
            // `/users/{id}/` is `/users/{id}`: a trailing slash is never significant.
            if parts.len() > 1 && parts.last() == Some(&TemplatePart::Literal(String::new())) {
                parts.pop();
            }
            PathMatch::Template(parts)
        } else if let Some(r) = &m.regex {
            let options = matcher::Options {
                utf8: true,
                case_insensitive: !case_sensitive,
                size_limit: 1 << 20,
                cache_capacity: 2 << 20,
            };
            let re = Matcher::new(&format!("^(?:{r})$"), options).map_err(|e| {
                PolicyError::new(
                    format!("{loc}.regex"),
                    format!("invalid regex: {}", e.to_string().replace('\n', " ")),
                )
            })?;
            PathMatch::Regex(re)
        } else {
            PathMatch::Any
        };
        const METHODS: &[&str] = &[
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
        ];
        let mut methods = Vec::new();
        for (i, method) in m.methods.iter().enumerate() {
            let up = method.to_ascii_uppercase();
            if !METHODS.contains(&up.as_str()) {
                return Err(PolicyError::new(
                    format!("{loc}.methods[{i}]"),
                    format!("unknown HTTP method `{method}`"),
                ));
            }
            methods.push(up);
        }
        let hosts = m.hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        Ok(RouteMatcher {
            path,
            prefix_dir,
            methods,
            hosts,
        })
    }

    /// Whether the route matches. `paths` are the readings of the request path, each already
    /// [`normalize`]d: the route matches if any does.
    pub(crate) fn matches(&self, method: &str, paths: &[String], host: &str) -> bool {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
        {
            return false;
        }
        if !self.hosts.is_empty() {
            let host = strip_port(host).to_ascii_lowercase();
            if !self.hosts.iter().any(|h| host_matches(h, &host)) {
                return false;
            }
        }
        paths.iter().any(|path| self.path_matches(path))
    }

    fn path_matches(&self, path: &str) -> bool {
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) if p == "/" => true,
            PathMatch::Prefix(p) if self.prefix_dir => {
                path == p
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Template(parts) => template_matches(parts, path),
            // Normalised paths have no trailing slash; a regex written with one still matches.
            PathMatch::Regex(re) => {
                re.is_match(path.as_bytes())
                    || (path != "/" && re.is_match(format!("{path}/").as_bytes()))
            }
        }
    }
}

/// The readings of a raw request path to match routes against: the normalised path, and when
/// it has an encoded slash, also the reading that keeps it encoded. The first route that matches
/// either wins, so an encoded slash cannot move a request to a later (or the default) route
/// whichever way the application reads it.
pub(crate) fn readings(raw: &str, case_sensitive: bool) -> Vec<String> {
    let mut paths = vec![normalize(raw, true, case_sensitive)];
    if has_escaped_slash(raw) {
        let kept = normalize(raw, false, case_sensitive);
        if kept != paths[0] {
            paths.push(kept);
        }
    }
    paths
}

/// Whether a raw path has an encoded slash or backslash (`%2F`, `%5C`), which applications
/// disagree about: some decode it into a separator, some keep it inside a segment.
pub(crate) fn has_escaped_slash(raw: &str) -> bool {
    let path = raw.split(['?', '#']).next().unwrap_or("");
    path.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_uppercase()),
                (b'2', b'F') | (b'5', b'C')
            )
    })
}

/// The path as an application serves it:
///
/// * the query and fragment are cut off;
/// * percent-encoded unreserved characters (`ALPHA DIGIT - . _ ~`, RFC 3986 2.3) are decoded,
///   other escapes are kept with upper-case hex (`%2e` is `.`, `%6F` is `o`, `%20` stays);
/// * a backslash is a slash (Envoy's `normalize_path` does the same);
/// * with `unescape_slashes`, `%2F` and `%5C` are slashes too (Envoy's `UNESCAPE_AND_REDIRECT`
///   reading); without, they stay inside their segment;
/// * `;` parameters are cut from each segment (`/echo;x=1`, and `..;` is `..` as in Tomcat);
/// * empty and `.` segments are dropped (so `//echo` is `/echo`), `..` removes the segment
///   before it and never climbs above the root;
/// * a trailing slash is dropped: `/echo/` is `/echo` (frameworks serve both or redirect one to
///   the other; a route must not be escaped by adding one);
/// * without `case_sensitive`, ASCII letters are lower-cased.
///
/// A path that does not start with `/` (`*` of `OPTIONS *`) keeps its form.
pub(crate) fn normalize(raw: &str, unescape_slashes: bool, case_sensitive: bool) -> String {
    let path = raw.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with(['/', '\\']) && !path.to_ascii_uppercase().starts_with("%2F") {
        return if case_sensitive {
            path.to_string()
        } else {
            path.to_ascii_lowercase()
        };
    }
    let decoded = percent_decode_unreserved(path.as_bytes(), unescape_slashes);
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in decoded.split(|b| *b == b'/') {
        let segment = match segment.iter().position(|b| *b == b';') {
            Some(i) => &segment[..i],
            None => segment,
        };
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = Vec::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    if !case_sensitive {
        out.make_ascii_lowercase();
    }
    // Only ASCII bytes were changed or inserted; other bytes are copied whole.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// One template literal in the normalised form (no `/` inside, so no slash handling).
fn normalize_segment(segment: &str, case_sensitive: bool) -> String {
    let mut out = percent_decode_unreserved(segment.as_bytes(), false);
    if !case_sensitive {
        out.make_ascii_lowercase();
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn percent_decode_unreserved(path: &[u8], unescape_slashes: bool) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                path.get(i + 1).copied().and_then(hex),
                path.get(i + 2).copied().and_then(hex),
            ) {
                let v = h << 4 | l;
                if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                    out.push(v);
                } else if unescape_slashes && (v == b'/' || v == b'\\') {
                    out.push(b'/');
                } else {
                    out.push(b'%');
                    out.extend_from_slice(format!("{v:02X}").as_bytes());
                }
                i += 3;
                continue;
            }
        }
        out.push(if b == b'\\' { b'/' } else { b });
        i += 1;
    }
    out
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [::1]:8080
        return host
            .split(']')
            .next()
            .map_or(host, |h| &host[..h.len() + 1]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len() + 1
                && host.ends_with(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        }
        None => pattern == host,
    }
}

fn parse_template(t: &str) -> Result<Vec<TemplatePart>, String> {
    let segs: Vec<&str> = t[1..].split('/').collect();
    let mut parts = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        if let Some(inner) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if let Some(name) = inner.strip_prefix('*') {
                if i + 1 != segs.len() {
                    return Err(format!("`{{*{name}}}` must be the last segment"));
                }
                parts.push(TemplatePart::Rest);
            } else if inner.is_empty() || !inner.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return Err(format!("bad parameter `{s}`"));
            } else {
                parts.push(TemplatePart::Param);
            }
        } else if s.contains('{') || s.contains('}') {
            return Err(format!("a parameter must be a whole segment: `{s}`"));
        } else {
            parts.push(TemplatePart::Literal(s.to_string()));
        }
    }
    Ok(parts)
}

fn template_matches(parts: &[TemplatePart], path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let segs: Vec<&str> = rest.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        match part {
            TemplatePart::Rest => return true,
            TemplatePart::Param => {
                if segs.get(i).is_none_or(|s| s.is_empty()) {
                    return false;
                }
            }
            TemplatePart::Literal(l) => {
                if segs.get(i) != Some(&l.as_str()) {
                    return false;
                }
            }
        }
    }
    segs.len() == parts.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(m: RouteMatch) -> RouteMatcher {
        RouteMatcher::compile(&m, "routes[0].match", true).unwrap()
    }

    impl RouteMatcher {
        fn matches_raw(&self, method: &str, raw: &str, host: &str) -> bool {
            self.matches(method, &readings(raw, true), host)
        }
    }

    #[test]
    fn templates() {
        let r = matcher(RouteMatch {
            template: Some("/users/{id}".into()),
            ..Default::default()
        });
        assert!(r.matches_raw("GET", "/users/7", "api"));
        assert!(r.matches_raw("GET", "/users/7?x=1", "api"));
        assert!(!r.matches_raw("GET", "/users/7/orders", "api"));
        assert!(!r.matches_raw("GET", "/users/", "api"));
        let rest = matcher(RouteMatch {
            template: Some("/files/{*path}".into()),
            ..Default::default()
        });
        assert!(rest.matches_raw("GET", "/files/a/b/c", "api"));
    }

    #[test]
    fn methods_hosts_regex() {
        let r = matcher(RouteMatch {
            regex: Some("/v[0-9]+/orders".into()),
            methods: vec!["post".into()],
            hosts: vec!["*.example.com".into()],
            ..Default::default()
        });
        assert!(r.matches_raw("POST", "/v2/orders", "api.example.com:8443"));
        assert!(!r.matches_raw("GET", "/v2/orders", "api.example.com"));
        assert!(!r.matches_raw("POST", "/v2/orders/1", "api.example.com"));
        assert!(!r.matches_raw("POST", "/v2/orders", "example.com"));
    }

    #[test]
    fn rejects_bad_matchers() {
        let e = RouteMatcher::compile(
            &RouteMatch {
                regex: Some("(".into()),
                ..Default::default()
            },
            "routes[1].match",
            true,
        )
        .unwrap_err();
        assert_eq!(e.location(), "routes[1].match.regex");
        let e = RouteMatcher::compile(
            &RouteMatch {
                methods: vec!["FETCH".into()],
                ..Default::default()
            },
            "routes[0].match",
            true,
        )
        .unwrap_err();
        assert_eq!(e.location(), "routes[0].match.methods[0]");
    }

    #[test]
    fn normalize_table() {
        // (raw, normalised with %2F unescaped, normalised with %2F kept)
        let rows: &[(&str, &str, &str)] = &[
            ("/echo", "/echo", "/echo"),
            ("/echo/", "/echo", "/echo"),
            ("//echo", "/echo", "/echo"),
            ("/a//b///c", "/a/b/c", "/a/b/c"),
            ("/echo;x=1", "/echo", "/echo"),
            ("/echo;x=1/more;y", "/echo/more", "/echo/more"),
            ("/ech%6F", "/echo", "/echo"),
            ("/ech%6f", "/echo", "/echo"),
            ("/%65%63%68%6F", "/echo", "/echo"),
            ("/a/../echo", "/echo", "/echo"),
            ("/./echo", "/echo", "/echo"),
            ("/a/%2e%2e/echo", "/echo", "/echo"),
            ("/a/.%2E/echo", "/echo", "/echo"),
            ("/a/..;/echo", "/echo", "/echo"),
            ("/../../echo", "/echo", "/echo"),
            ("/echo/.", "/echo", "/echo"),
            ("/echo/x/..", "/echo", "/echo"),
            ("/echo?a=/admin", "/echo", "/echo"),
            ("/echo#frag", "/echo", "/echo"),
            ("/a\\..\\echo", "/echo", "/echo"),
            ("/echo%2F..", "/", "/echo%2F.."),
            ("/echo%2f..", "/", "/echo%2F.."),
            ("/admin%2Fecho", "/admin/echo", "/admin%2Fecho"),
            ("/admin%5cecho", "/admin/echo", "/admin%5Cecho"),
            ("/a%20b", "/a%20b", "/a%20b"),
            ("/a%3bb", "/a%3Bb", "/a%3Bb"),
            ("/%252e%252e/echo", "/%252e%252e/echo", "/%252e%252e/echo"),
            ("/caf\u{e9}", "/caf\u{e9}", "/caf\u{e9}"),
            ("/bad%zz%4", "/bad%zz%4", "/bad%zz%4"),
            ("/", "/", "/"),
            ("", "", ""),
            ("*", "*", "*"),
        ];
        for (raw, unescaped, kept) in rows {
            assert_eq!(normalize(raw, true, true), *unescaped, "{raw}");
            assert_eq!(normalize(raw, false, true), *kept, "{raw} (kept)");
        }
        assert_eq!(normalize("/Echo/X", true, false), "/echo/x");
        assert_eq!(normalize("/Echo/X", true, true), "/Echo/X");
    }

    #[test]
    fn every_spelling_of_a_path_matches_its_route() {
        let exact = matcher(RouteMatch {
            path: Some("/echo".into()),
            ..Default::default()
        });
        for raw in [
            "/echo",
            "/echo/",
            "//echo",
            "/echo;x=1",
            "/ech%6F",
            "/a/../echo",
            "/./echo",
            "/%2e/echo",
            "/echo/x/%2E%2E",
            "/echo?x",
            "/a\\..\\echo",
            "/a%2F..%2Fecho",
        ] {
            assert!(exact.matches_raw("GET", raw, "api"), "{raw}");
        }
        for raw in ["/Echo", "/echoes", "/echo/x", "/e%63ho2"] {
            assert!(!exact.matches_raw("GET", raw, "api"), "{raw}");
        }
        let template = matcher(RouteMatch {
            template: Some("/users/{id}/orders".into()),
            ..Default::default()
        });
        for raw in [
            "/users/7/orders",
            "/users/7/orders/",
            "/users//7/orders",
            "/users/7;v=1/orders",
            "/users/7/%6Frders",
            "/users/x/../7/orders",
            // The application may keep `%2F` inside the segment: that reading matches.
            "/users/a%2Fb/orders",
        ] {
            assert!(template.matches_raw("GET", raw, "api"), "{raw}");
        }
        assert!(!template.matches_raw("GET", "/users/orders", "api"));
        let dir = matcher(RouteMatch {
            prefix: Some("/orders/".into()),
            ..Default::default()
        });
        for raw in [
            "/orders",
            "/orders/",
            "/orders/7",
            "//orders//7",
            "/Orders/../orders/7",
        ] {
            assert!(dir.matches_raw("GET", raw, "api"), "{raw}");
        }
        assert!(!dir.matches_raw("GET", "/ordersx", "api"));
        let regex = matcher(RouteMatch {
            regex: Some("/v[0-9]+/orders/".into()),
            ..Default::default()
        });
        assert!(regex.matches_raw("GET", "/v2//orders", "api"));
        // Patterns are normalised too: written with an escape or a trailing slash, they still
        // match the plain path.
        let written = matcher(RouteMatch {
            path: Some("/ech%6F/".into()),
            ..Default::default()
        });
        assert!(written.matches_raw("GET", "/echo", "api"));
    }

    #[test]
    fn case_insensitive_routing_is_opt_in() {
        let m = RouteMatch {
            template: Some("/Users/{id}".into()),
            ..Default::default()
        };
        let sensitive = RouteMatcher::compile(&m, "r", true).unwrap();
        let insensitive = RouteMatcher::compile(&m, "r", false).unwrap();
        assert!(!sensitive.matches("GET", &readings("/users/7", true), "api"));
        assert!(insensitive.matches("GET", &readings("/USERS/7", false), "api"));
        let re = RouteMatcher::compile(
            &RouteMatch {
                regex: Some("/echo".into()),
                ..Default::default()
            },
            "r",
            false,
        )
        .unwrap();
        assert!(re.matches("GET", &readings("/ECHO", false), "api"));
    }
}
