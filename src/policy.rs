//! Validation and compilation: [`Manifest`] (as written) -> [`Policy`] (validated, compiled,
//! immutable, cheap to clone and share across threads).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::detect::{ClassId, DetectorMask, Detectors};
use crate::error::PolicyError;
use crate::jsonpath::PathPattern;
use crate::manifest::{
    ActionSpec, BodyKind, DirectionSpec, ErrorAction, Manifest, Mode, RouteRules, ScopeSpec,
    ViolationAction,
};
use crate::route::RouteMatcher;
use crate::transform::{Action, KeyRing, Warning};

/// Default confidence threshold.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.5;

/// A compiled policy. Cloning is a reference-count increment.
///
/// ```
/// let policy = meshdlp::Policy::from_json(br#"{"mode": "enforce"}"#).unwrap();
/// let route = policy.route("GET", "/users/7", "api.local");
/// let inspection = policy.inspect(&meshdlp::Exchange {
///     route,
///     direction: meshdlp::Direction::Response,
///     content_type: Some("application/json"),
///     scopes: &[],
///     body: br#"{"email": "ada@example.com"}"#,
/// });
/// assert_eq!(inspection.body_or(b"").as_ref(), br#"{"email": "[REDACTED:email]"}"#);
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) min_confidence: f32,
    pub(crate) detectors: Detectors,
    pub(crate) keys: KeyRing,
    /// Matched routes in order; the last one is the default route (no matcher).
    pub(crate) routes: Vec<Route>,
    /// `routing.caseSensitive`: paths and matchers compared as written (default) or lower-cased.
    pub(crate) case_sensitive: bool,
    pub(crate) warnings: Vec<Warning>,
}

#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) name: Arc<str>,
    pub(crate) matcher: Option<RouteMatcher>,
    pub(crate) mode: Mode,
    pub(crate) request: Option<Plan>,
    pub(crate) response: Option<Plan>,
}

/// Compiled rules for one direction of one route.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) enabled: DetectorMask,
    pub(crate) fields: Vec<FieldRule>,
    /// Action per class id (`None`: no class action).
    pub(crate) class_actions: Vec<Option<Action>>,
    pub(crate) default_action: Action,
    pub(crate) scope: Option<Scope>,
    pub(crate) on_violation: ViolationAction,
    pub(crate) on_error: ErrorAction,
    pub(crate) body_kind: Option<BodyKind>,
}

#[derive(Debug)]
pub(crate) struct FieldRule {
    pub(crate) path: PathPattern,
    pub(crate) action: Action,
    pub(crate) class: Option<ClassId>,
}

#[derive(Debug)]
pub(crate) struct Scope {
    pub(crate) allow: HashSet<ClassId>,
    pub(crate) grants: HashMap<String, HashSet<ClassId>>,
    pub(crate) max_body_bytes: Option<u64>,
    pub(crate) max_records: Option<(PathPattern, u64)>,
}

impl Scope {
    pub(crate) fn permits(&self, class: ClassId, scopes: &[String]) -> bool {
        self.allow.contains(&class)
            || scopes
                .iter()
                .any(|s| self.grants.get(s).is_some_and(|g| g.contains(&class)))
    }
}

/// Identifies a route of a policy (index; the default route is the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteId(pub(crate) usize);

/// Which body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Request,
    Response,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

/// Deserializes a manifest from JSON, with the location of any error. A key given twice
/// anywhere (a repeated field, and a repeated key of a map such as `actions` or `grants`,
/// which deserializing alone would let the last copy win) and bytes after the document
/// (`{...} xyz`, a second document) are errors, as they are to the filter ([`json_value`]).
pub fn parse_manifest_json(bytes: &[u8]) -> Result<Manifest, PolicyError> {
    // Read twice (offline only: the filter deserializes the `Value`): the check, then the
    // manifest from the bytes, whose errors keep their line and column.
    json_value(bytes).map_err(|e| PolicyError::new("", e.to_string()))?;
    deserialize_located(&mut serde_json::Deserializer::from_slice(bytes))
}

/// JSON read into a `serde_json::Value` (for [`deserialize_located`]), refusing an object
/// that holds a key twice, with its line and column: a `Value` keeps the last of them
/// without a word, where a manifest deserialized from the bytes refuses the repeated field.
/// So `{"auditLog": true, "auditLog": false}` is an error wherever a configuration is read,
/// not a configuration that means whatever its last copy says.
pub fn json_value(bytes: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::from_slice::<UniqueKeys>(bytes).map(|v| v.0)
}

/// A JSON value whose objects hold each key once (see [`json_value`]).
struct UniqueKeys(serde_json::Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor).map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // Finite: the JSON reader refuses numbers out of range.
        Ok(v.into())
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key `{key}`"
                )));
            }
            let UniqueKeys(v) = map.next_value()?;
            object.insert(key, v);
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// Deserializes with `serde_path_to_error`, turning its path into the error location.
pub fn deserialize_located<'de, D, T>(de: D) -> Result<T, PolicyError>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let location = if path == "." { String::new() } else { path };
        PolicyError::new(location, e.into_inner().to_string())
    })
}

/// The default policy used when the filter has no configuration: every class detected in
/// responses; private keys and cloud credentials block the response, cards are masked to their
/// last four digits, everything else is redacted. Requests are not inspected.
pub const BUILTIN_DEFAULT_POLICY: &str = include_str!("default_policy.json");

impl Policy {
    /// Parses and compiles a JSON manifest; keys come from the process environment.
    pub fn from_json(bytes: &[u8]) -> Result<Policy, PolicyError> {
        Policy::compile(&parse_manifest_json(bytes)?)
    }

    /// The built-in default policy.
    pub fn builtin_default() -> Result<Policy, PolicyError> {
        Policy::from_json(BUILTIN_DEFAULT_POLICY.as_bytes())
    }

    /// Compiles a manifest; keys referenced by `env` come from the process environment.
    pub fn compile(m: &Manifest) -> Result<Policy, PolicyError> {
        Policy::compile_with_env(m, &|var| std::env::var(var).ok())
    }

    /// Compiles a manifest, resolving key environment variables with `env`.
    pub fn compile_with_env(
        m: &Manifest,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Policy, PolicyError> {
        let mut warnings = Vec::new();
        let min_confidence = m.min_confidence.unwrap_or(DEFAULT_MIN_CONFIDENCE);
        if !(0.0..=1.0).contains(&min_confidence) {
            return Err(PolicyError::new("minConfidence", "must be between 0 and 1"));
        }
        for (i, c) in m.classes.iter().enumerate() {
            if let Some(conf) = c.confidence {
                if !(0.0..=1.0).contains(&conf) {
                    return Err(PolicyError::new(
                        format!("classes[{i}].confidence"),
                        "must be between 0 and 1",
                    ));
                }
            }
        }
        let detectors = Detectors::compile(&m.classes, min_confidence)?;
        let keys = KeyRing::compile(&m.keys, env, &mut warnings)?;
        let ctx = Ctx {
            detectors: &detectors,
            keys: &keys,
        };
        let case_sensitive = m
            .routing
            .as_ref()
            .and_then(|r| r.case_sensitive)
            .unwrap_or(true);
        let mut routes = Vec::with_capacity(m.routes.len() + 1);
        let mut names = HashSet::new();
        for (i, r) in m.routes.iter().enumerate() {
            let loc = format!("routes[{i}]");
            if r.name.is_empty()
                || r.name.len() > 64
                || !r
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            {
                return Err(PolicyError::new(format!("{loc}.name"), format!("`{}` is not a valid route name ([A-Za-z0-9_-], 1 to 64; it becomes a metric label)", r.name)));
            }
            if !names.insert(r.name.as_str()) || r.name == "default" {
                return Err(PolicyError::new(
                    format!("{loc}.name"),
                    format!("duplicate route name `{}`", r.name),
                ));
            }
            let matcher =
                RouteMatcher::compile(&r.matcher, &format!("{loc}.match"), case_sensitive)?;
            routes.push(ctx.route(&r.name, Some(matcher), &r.rules(), m.mode, &loc)?);
        }
        let default_rules = m.default_route.clone().unwrap_or_else(|| RouteRules {
            response: Some(DirectionSpec::default()),
            ..RouteRules::default()
        });
        routes.push(ctx.route("default", None, &default_rules, m.mode, "defaultRoute")?);
        let mut detectors = detectors;
        let plan_masks: Vec<DetectorMask> = routes
            .iter()
            .flat_map(|r| [&r.request, &r.response])
            .flatten()
            .map(|p| p.enabled)
            .collect();
        detectors
            .restrict_keywords(&plan_masks)
            .map_err(|m| PolicyError::new("classes", m))?;
        Ok(Policy {
            inner: Arc::new(Inner {
                min_confidence,
                detectors,
                keys,
                routes,
                case_sensitive,
                warnings,
            }),
        })
    }

    /// Non-fatal remarks (e.g. inline keys).
    pub fn warnings(&self) -> &[Warning] {
        &self.inner.warnings
    }

    /// The route for a request: the first that matches, else the default route. `path` is the
    /// raw `:path`; it is normalised as an application would read it before matching (query
    /// cut, unreserved escapes decoded, dot segments resolved, duplicate and trailing slashes and
    /// `;` parameters removed, case folded if `routing.caseSensitive` is false), and a path with
    /// an encoded slash matches a route if either reading of it does.
    ///
    /// ```
    /// let policy = meshdlp::Policy::from_json(
    ///     br#"{"routes": [{"name": "echo", "match": {"path": "/echo"}, "request": {}}]}"#,
    /// ).unwrap();
    /// for path in ["/echo", "/echo/", "//echo", "/ech%6F", "/a/../echo", "/echo;x=1", "/echo?q"] {
    ///     assert_eq!(policy.route_name(policy.route("POST", path, "api")), "echo", "{path}");
    /// }
    /// ```
    pub fn route(&self, method: &str, path: &str, host: &str) -> RouteId {
        let routes = &self.inner.routes;
        let paths = crate::route::readings(path, self.inner.case_sensitive);
        let path = paths.as_slice();
        let i = routes
            .iter()
            .position(|r| {
                r.matcher
                    .as_ref()
                    .is_some_and(|m| m.matches(method, path, host))
            })
            .unwrap_or(routes.len() - 1);
        RouteId(i)
    }

    /// The route's name (`default` for the default route).
    pub fn route_name(&self, route: RouteId) -> &str {
        self.inner
            .routes
            .get(route.0)
            .map_or("default", |r| &r.name)
    }

    /// Whether bodies of this route and direction are inspected at all.
    pub fn inspects(&self, route: RouteId, direction: Direction) -> bool {
        self.inner
            .routes
            .get(route.0)
            .is_some_and(|r| r.plan(direction).is_some())
    }

    /// The effective mode of a route.
    pub fn mode(&self, route: RouteId) -> Mode {
        self.inner
            .routes
            .get(route.0)
            .map_or(Mode::Enforce, |r| r.mode)
    }

    /// What a body error does on this route and direction.
    pub fn on_error(&self, route: RouteId, direction: Direction) -> ErrorAction {
        self.inner
            .routes
            .get(route.0)
            .and_then(|r| r.plan(direction))
            .map_or(ErrorAction::Block, |p| p.on_error)
    }

    /// Builds now what the policy otherwise builds on first use (pre-check DFAs, and the
    /// built-in regexes a search can reach: not those of detectors whose DFAs find the whole
    /// match): a proxy calls this once per VM so memory is allocated up front and no request
    /// pays for a first use. `compile` stays cheap for tools that check or test policies.
    pub fn prepare(&self) {
        self.inner.detectors.prepare();
    }

    /// Per detector that ran since the last reset: id, runs, nanoseconds, hits, costliest
    /// first (cargo feature `profile`; the counters are process-wide).
    #[cfg(feature = "profile")]
    pub fn detector_profile(&self, reset: bool) -> Vec<(String, u64, u64, u64)> {
        let rows = crate::detect::profile::report(&self.inner.detectors);
        if reset {
            crate::detect::profile::reset();
        }
        rows
    }

    /// Every class id known to this policy (built-in and custom).
    pub fn classes(&self) -> Vec<&str> {
        self.inner.detectors.classes.names().collect()
    }
}

impl Route {
    pub(crate) fn plan(&self, direction: Direction) -> Option<&Plan> {
        match direction {
            Direction::Request => self.request.as_ref(),
            Direction::Response => self.response.as_ref(),
        }
    }
}

/// How specific an `actions` key is: groups by depth, then qualified and plain class names.
fn selector_specificity(selector: &str, table: &crate::detect::ClassTable) -> usize {
    if table.id(selector).is_some() {
        return usize::MAX;
    }
    match selector.strip_suffix(".*") {
        Some(group) => group.split('.').count(),
        // `a.b` is a group or a qualified class name: the engine cannot tell without the table,
        // and a deeper group or a class name is more specific either way.
        None => selector.split('.').count(),
    }
}

struct Ctx<'a> {
    detectors: &'a Detectors,
    keys: &'a KeyRing,
}

impl Ctx<'_> {
    fn route(
        &self,
        name: &str,
        matcher: Option<RouteMatcher>,
        rules: &RouteRules,
        mode: Mode,
        loc: &str,
    ) -> Result<Route, PolicyError> {
        Ok(Route {
            name: Arc::from(name),
            matcher,
            mode: rules.mode.unwrap_or(mode),
            request: rules
                .request
                .as_ref()
                .map(|d| self.plan(d, &format!("{loc}.request")))
                .transpose()?,
            response: rules
                .response
                .as_ref()
                .map(|d| self.plan(d, &format!("{loc}.response")))
                .transpose()?,
        })
    }

    fn class(&self, name: &str, loc: &str) -> Result<ClassId, PolicyError> {
        self.detectors.classes.id(name).ok_or_else(|| {
            let known: Vec<&str> = self.detectors.classes.names().collect();
            PolicyError::new(
                loc,
                format!("unknown class `{name}` (known: {})", known.join(", ")),
            )
        })
    }

    /// The classes of a selector: a class, a qualified class (`pii.email`), a group
    /// (`national_id.us`) or a group with `.*` (`secrets.*`).
    fn select(&self, selector: &str, loc: &str) -> Result<Vec<ClassId>, PolicyError> {
        let table = &self.detectors.classes;
        table.select(selector).ok_or_else(|| {
            let known: Vec<&str> = table.names().collect();
            let message = if selector.contains('.') || selector.ends_with('*') {
                format!(
                    "unknown class or group `{selector}` (groups: {}; `meshdlp classes` lists every class)",
                    table.group_names().join(", ")
                )
            } else {
                format!("unknown class `{selector}` (known: {})", known.join(", "))
            };
            PolicyError::new(loc, message)
        })
    }

    fn classes(&self, names: &[String], loc: &str) -> Result<HashSet<ClassId>, PolicyError> {
        let mut out = HashSet::new();
        for (i, n) in names.iter().enumerate() {
            out.extend(self.select(n, &format!("{loc}[{i}]"))?);
        }
        Ok(out)
    }

    fn action(&self, spec: &ActionSpec, loc: &str) -> Result<Action, PolicyError> {
        Action::compile(spec, self.keys, loc)
    }

    fn plan(&self, d: &DirectionSpec, loc: &str) -> Result<Plan, PolicyError> {
        let enabled = match &d.detect {
            None => self.detectors.all(),
            Some(list) if list.iter().any(|c| c == "*") => {
                if list.len() > 1 {
                    return Err(PolicyError::new(
                        format!("{loc}.detect"),
                        "`*` already means every class",
                    ));
                }
                self.detectors.all()
            }
            Some(list) => {
                let mut seen = HashSet::new();
                for (i, c) in list.iter().enumerate() {
                    if !seen.insert(c) {
                        return Err(PolicyError::new(
                            format!("{loc}.detect[{i}]"),
                            format!("duplicate class `{c}`"),
                        ));
                    }
                }
                self.detectors
                    .for_classes(&self.classes(list, &format!("{loc}.detect"))?)
            }
        };
        let mut fields = Vec::with_capacity(d.fields.len());
        for (i, f) in d.fields.iter().enumerate() {
            let floc = format!("{loc}.fields[{i}]");
            let path = PathPattern::parse(&f.path)
                .map_err(|e| PolicyError::new(format!("{floc}.path"), e.to_string()))?;
            let class = f
                .class
                .as_deref()
                .map(|c| self.class(c, &format!("{floc}.class")))
                .transpose()?;
            fields.push(FieldRule {
                path,
                action: self.action(&f.action, &format!("{floc}.action"))?,
                class,
            });
        }
        // A key may be a class or a group selector; the most specific key wins for a class
        // (a class name, then the deepest group), whatever the order they are written in.
        let mut class_actions = vec![None; self.detectors.classes.count()];
        let mut keyed: Vec<(usize, &String, &ActionSpec)> = d
            .actions
            .iter()
            .map(|(k, spec)| (selector_specificity(k, &self.detectors.classes), k, spec))
            .collect();
        keyed.sort_by_key(|(rank, _, _)| *rank);
        for (_, class, spec) in keyed {
            let aloc = format!("{loc}.actions.{class}");
            let action = self.action(spec, &aloc)?;
            for id in self.select(class, &aloc)? {
                class_actions[usize::from(id)] = Some(action.clone());
            }
        }
        let default_action = match &d.default_action {
            Some(spec) => self.action(spec, &format!("{loc}.defaultAction"))?,
            None => Action::redact(),
        };
        let scope = d
            .scope
            .as_ref()
            .map(|s| self.scope(s, &format!("{loc}.scope")))
            .transpose()?;
        Ok(Plan {
            enabled,
            fields,
            class_actions,
            default_action,
            scope,
            on_violation: d.on_violation.unwrap_or(ViolationAction::Block),
            on_error: d.on_error.unwrap_or(ErrorAction::Block),
            body_kind: d.content_type,
        })
    }

    fn scope(&self, s: &ScopeSpec, loc: &str) -> Result<Scope, PolicyError> {
        let allow = self.classes(&s.allow, &format!("{loc}.allow"))?;
        let mut grants = HashMap::new();
        for (scope, classes) in &s.grants as &BTreeMap<String, Vec<String>> {
            if scope.is_empty() || scope.chars().any(char::is_whitespace) {
                return Err(PolicyError::new(
                    format!("{loc}.grants"),
                    format!("`{scope}` is not a valid scope name"),
                ));
            }
            grants.insert(
                scope.clone(),
                self.classes(classes, &format!("{loc}.grants.{scope}"))?,
            );
        }
        let max_records = s
            .max_records
            .as_ref()
            .map(|r| {
                PathPattern::parse(&r.path)
                    .map(|p| (p, r.max))
                    .map_err(|e| PolicyError::new(format!("{loc}.maxRecords.path"), e.to_string()))
            })
            .transpose()?;
        Ok(Scope {
            allow,
            grants,
            max_body_bytes: s.max_body_bytes,
            max_records,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        Policy::from_json(json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn policy_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Policy>();
    }

    #[test]
    fn errors_carry_locations() {
        assert_eq!(
            err(
                r#"{"routes": [{"name": "a", "match": {"prefix": "/"}, "response": {"fields": [{"path": "$.items[*]]", "action": "redact"}]}}]}"#
            ),
            "routes[0].response.fields[0].path: unexpected ']' at column 11"
        );
        assert!(err(r#"{"modes": "enforce"}"#).contains("unknown field `modes`"));
        assert!(err(
            r#"{"routes": [{"name": "a", "match": {}, "response": {"detect": ["emial"]}}]}"#
        )
        .starts_with("routes[0].response.detect[0]: unknown class `emial`"));
        assert!(
            err(r#"{"routes": [{"name": "a", "match": {}}, {"name": "a", "match": {}}]}"#)
                .starts_with("routes[1].name: duplicate")
        );
        assert!(err(r#"{"classes": [{"name": "email", "pattern": "x"}]}"#)
            .starts_with("classes[0].name: class `email` is already defined"));
        assert!(err(r#"{"classes": [{"name": "emp", "pattern": "(x"}]}"#)
            .starts_with("classes[0].pattern: invalid regex"));
        // Keywords are bounded (the keyword table grows with them): count, length, non-empty.
        let many: Vec<String> = (0..65).map(|i| format!("\"k{i}\"")).collect();
        let e = err(&format!(
            r#"{{"classes": [{{"name": "emp", "pattern": "x", "keywords": [{}]}}]}}"#,
            many.join(",")
        ));
        assert!(
            e.contains("keywords") && e.contains("65 keywords; at most 64"),
            "{e}"
        );
        let long = "k".repeat(65);
        let e = err(&format!(
            r#"{{"classes": [{{"name": "emp", "pattern": "x", "keywords": ["{long}"]}}]}}"#
        ));
        assert!(e.contains("keywords") && e.contains("65 characters"), "{e}");
        let e = err(r#"{"classes": [{"name": "emp", "pattern": "x", "keywords": [""]}]}"#);
        assert!(e.contains("keywords") && e.contains("0 characters"), "{e}");
        assert!(
            err(r#"{"classes": [{"name": "emp", "pattern": "\\w{1000}{1000}"}]}"#)
                .contains("too large")
        );
        assert!(err(r#"{"routes": [{"name": "a", "match": {}, "response": {"actions": {"email": "tokenize"}}}]}"#)
            .contains("tokenize needs a key"));
        assert!(err(r#"{"routes": [{"name": "a", "match": {}, "response": {"actions": {"email": "scramble"}}}]}"#)
            .starts_with("routes[0].response.actions.email"));
    }

    #[test]
    fn route_paths_are_normalised_and_case_folding_is_configurable() {
        let routes = r#""routes": [
            {"name": "echo", "match": {"path": "/echo"}, "request": {}},
            {"name": "users", "match": {"template": "/users/{id}"}, "request": {}}]"#;
        let p = Policy::from_json(format!("{{{routes}}}").as_bytes()).unwrap();
        let name = |p: &Policy, path: &str| p.route_name(p.route("GET", path, "api")).to_string();
        for path in [
            "/echo/",
            "//echo",
            "/echo;x=1",
            "/ech%6F",
            "/a/../echo",
            "/./echo",
        ] {
            assert_eq!(name(&p, path), "echo", "{path}");
        }
        assert_eq!(name(&p, "/Echo"), "default");
        assert_eq!(name(&p, "/users/a%2Fb"), "users");
        let folded = format!(r#"{{"routing": {{"caseSensitive": false}}, {routes}}}"#);
        let p = Policy::from_json(folded.as_bytes()).unwrap();
        assert_eq!(name(&p, "/Echo"), "echo");
        assert_eq!(name(&p, "/USERS/7"), "users");
        assert!(err(r#"{"routing": {"caseSensitiv": false}}"#).contains("unknown field"));
    }

    #[test]
    fn keys_from_env_secret_ref_or_inline() {
        let compile = |keys: &str| {
            let m = parse_manifest_json(format!(r#"{{"keys": {keys}}}"#).as_bytes())
                .map_err(|e| e.to_string())?;
            Policy::compile_with_env(&m, &|var: &str| {
                (var == "MESHDLP_KEY_PROD_K1" || var == "MY_KEY")
                    .then(|| "0123456789abcdef0123".to_string())
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
        };
        assert_eq!(
            compile(r#"[{"id": "prod-k1", "secretRef": {"name": "dlp-keys", "key": "k1"}}]"#),
            Ok(())
        );
        assert_eq!(compile(r#"[{"id": "a", "env": "MY_KEY"}]"#), Ok(()));
        assert_eq!(
            compile(r#"[{"id": "k2", "secretRef": {"name": "dlp-keys", "key": "k2"}}]"#),
            Err("keys[0].secretRef: environment variable `MESHDLP_KEY_K2` is not set".into())
        );
        assert_eq!(
            compile(r#"[{"id": "a", "env": "MY_KEY", "secretRef": {"name": "s", "key": "k"}}]"#),
            Err("keys[0]: a key needs exactly one of `env`, `secretRef` or `inline`".into())
        );
        assert_eq!(
            compile(r#"[{"id": "prod-k1", "secretRef": {"name": "s", "key": "a"}}, {"id": "PROD-K1", "secretRef": {"name": "s", "key": "b"}}]"#),
            Err("keys[1].id: keys `prod-k1` and `PROD-K1` would share the environment variable `MESHDLP_KEY_PROD_K1`".into())
        );
        assert!(compile(r#"[{"id": "a", "secretRef": {"name": "s"}}]"#)
            .unwrap_err()
            .contains("missing field `key`"));
        assert_eq!(
            crate::manifest::secret_ref_env("prod-k1"),
            "MESHDLP_KEY_PROD_K1"
        );
    }

    #[test]
    fn builtin_default_compiles() {
        let p = Policy::builtin_default().unwrap();
        assert!(p.classes().contains(&"email"));
    }
}
