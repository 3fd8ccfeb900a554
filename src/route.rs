//! Route matching: path (exact, prefix, template, regex), methods and hosts. First match wins.

use regex::Regex;

use crate::error::PolicyError;
use crate::manifest::RouteMatch;

#[derive(Debug)]
enum PathMatch {
    Any,
    Exact(String),
    Prefix(String),
    Template(Vec<TemplatePart>),
    Regex(Regex),
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
    methods: Vec<String>,
    hosts: Vec<String>,
}

impl RouteMatcher {
    pub(crate) fn compile(m: &RouteMatch, loc: &str) -> Result<RouteMatcher, PolicyError> {
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
        let path = if let Some(p) = &m.path {
            must_start_with_slash("path", p)?;
            PathMatch::Exact(p.clone())
        } else if let Some(p) = &m.prefix {
            must_start_with_slash("prefix", p)?;
            PathMatch::Prefix(p.clone())
        } else if let Some(t) = &m.template {
            must_start_with_slash("template", t)?;
            PathMatch::Template(
                parse_template(t).map_err(|e| PolicyError::new(format!("{loc}.template"), e))?,
            )
        } else if let Some(r) = &m.regex {
            let re = regex::RegexBuilder::new(&format!("^(?:{r})$"))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
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
            methods,
            hosts,
        })
    }

    pub(crate) fn matches(&self, method: &str, path: &str, host: &str) -> bool {
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
        let path = path.split(['?', '#']).next().unwrap_or("");
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Template(parts) => template_matches(parts, path),
            PathMatch::Regex(re) => re.is_match(path),
        }
    }
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
        RouteMatcher::compile(&m, "routes[0].match").unwrap()
    }

    #[test]
    fn templates() {
        let r = matcher(RouteMatch {
            template: Some("/users/{id}".into()),
            ..Default::default()
        });
        assert!(r.matches("GET", "/users/7", "api"));
        assert!(r.matches("GET", "/users/7?x=1", "api"));
        assert!(!r.matches("GET", "/users/7/orders", "api"));
        assert!(!r.matches("GET", "/users/", "api"));
        let rest = matcher(RouteMatch {
            template: Some("/files/{*path}".into()),
            ..Default::default()
        });
        assert!(rest.matches("GET", "/files/a/b/c", "api"));
    }

    #[test]
    fn methods_hosts_regex() {
        let r = matcher(RouteMatch {
            regex: Some("/v[0-9]+/orders".into()),
            methods: vec!["post".into()],
            hosts: vec!["*.example.com".into()],
            ..Default::default()
        });
        assert!(r.matches("POST", "/v2/orders", "api.example.com:8443"));
        assert!(!r.matches("GET", "/v2/orders", "api.example.com"));
        assert!(!r.matches("POST", "/v2/orders/1", "api.example.com"));
        assert!(!r.matches("POST", "/v2/orders", "example.com"));
    }

    #[test]
    fn rejects_bad_matchers() {
        let e = RouteMatcher::compile(
            &RouteMatch {
                regex: Some("(".into()),
                ..Default::default()
            },
            "routes[1].match",
        )
        .unwrap_err();
        assert_eq!(e.location(), "routes[1].match.regex");
        let e = RouteMatcher::compile(
            &RouteMatch {
                methods: vec!["FETCH".into()],
                ..Default::default()
            },
            "routes[0].match",
        )
        .unwrap_err();
        assert_eq!(e.location(), "routes[0].match.methods[0]");
    }
}
