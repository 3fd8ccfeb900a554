//! A namespace DataPolicy merged with the mesh-wide one (the DataPolicy in the mesh root
//! namespace).
//!
//! A sidecar runs one meshdlp VM: a namespace policy replaces the mesh filter for its workloads
//! (the rendered EnvoyFilter REMOVEs `meshdlp.mesh`) and carries the mesh rules itself. The
//! merged manifest: the namespace routes first, then the mesh routes (first match wins, so the
//! namespace decides where both match); classes and keys unioned; the namespace `defaultRoute`,
//! else the mesh one; document settings (`minConfidence`, `routing`) from the namespace, else
//! the mesh. A route name, class name or key id defined by both is an error naming both.
//!
//! `scopes` (where the filter finds the caller's verified scopes) is one setting of the sidecar's
//! filter, not a part of the policy: the namespace's `scopes` when it sets one (whole, never field
//! by field), else the mesh's. The mesh routes' `grants` then read the scopes where the
//! namespace says they are.
//!
//! The mesh parts keep their meaning in the merged document: a mesh route without its own `mode`
//! gets the mesh document's `mode`, and a mesh `hash`/`tokenize` action without a `key` gets the
//! mesh's first key (the merged document's first key is the namespace's).
//!
//! **An enforced mesh policy (`spec.enforced: true`) is a floor.** The mesh routes then come
//! *first* (a namespace route can no longer shadow one), and a namespace policy that would go
//! below the mesh rules anywhere is refused with a located error (never clamped: the namespace
//! owner's document must mean what it says). Below the floor ([`check_floor`]):
//! - every namespace route, and the namespace `defaultRoute`, against the mesh's default route
//!   (its own, or the implicit one: responses, every class, `redact`), since they now see only
//!   requests no mesh route matched: `monitor` where the floor enforces; a direction the floor
//!   inspects left uninspected; fewer classes detected; a weaker default action, per-class action
//!   or extra field rule (strength: `allow` < `mask` < `tokenize` < `hash` < `redact` = `drop` <
//!   `block`; a `mask` keeping more than the floor's); the floor's field rules not kept first and
//!   unchanged; a scope that lets through what the floor's does not (allow, grants, larger
//!   `maxBodyBytes`/`maxRecords`, `onViolation: redact` for `block`); `onError: allow` (fail open)
//!   for `block`; a different `contentType`;
//! - document settings: a higher `minConfidence`; `routing.caseSensitive: true` where the mesh
//!   compares paths case-insensitively; `scopes` other than the mesh's (a namespace could point
//!   the mesh's `grants` at a header any client can send); custom classes of its own (a
//!   namespace class winning an overlap would displace a built-in or mesh finding and cut what
//!   is redacted).
//!
//! Class names are compared as written, not resolved: where that cannot tell, the check refuses
//! (e.g. a namespace per-class action must be at least as strong as *every* action of the floor).

use crate::error::PolicyError;
use crate::manifest::{
    ActionDetail, ActionKind, ActionSpec, DirectionSpec, ErrorAction, Manifest, Mode, RouteRules,
    ViolationAction,
};
use crate::policy::DEFAULT_MIN_CONFIDENCE;

use super::spec::{DataPolicy, Scopes};

/// The merged manifest and where each part came from (to locate errors in the right object).
#[derive(Debug, Clone)]
pub struct Merged {
    /// The merged policy.
    pub manifest: Manifest,
    /// The mesh policy's `namespace/name`.
    pub mesh_id: String,
    /// Where the filter finds the caller's scopes: the namespace's setting, else the mesh's.
    pub scopes: Option<Scopes>,
    namespace_routes: usize,
    /// Mesh routes first (an enforced mesh policy): how many.
    mesh_routes_first: Option<usize>,
    namespace_classes: usize,
    namespace_keys: usize,
    default_from_mesh: bool,
}

/// Merges a namespace policy with the mesh policy.
pub fn merge(ns: &DataPolicy, mesh: &DataPolicy) -> Result<Merged, PolicyError> {
    let (n, m) = (&ns.manifest, &mesh.manifest);
    let mesh_id = mesh.id();
    let both = |what: &str, loc: String, name: &str, mesh_loc: String| {
        PolicyError::new(
            loc,
            format!("{what} `{name}` is also defined by the mesh policy {mesh_id} ({mesh_loc}): names must be unique across the merged policy"),
        )
    };
    for (i, r) in n.routes.iter().enumerate() {
        if let Some(j) = m.routes.iter().position(|x| x.name == r.name) {
            return Err(both(
                "route",
                format!("spec.routes[{i}].name"),
                &r.name,
                format!("spec.routes[{j}]"),
            ));
        }
    }
    for (i, c) in n.classes.iter().enumerate() {
        if let Some(j) = m.classes.iter().position(|x| x.name == c.name) {
            return Err(both(
                "class",
                format!("spec.classes[{i}].name"),
                &c.name,
                format!("spec.classes[{j}]"),
            ));
        }
    }
    for (i, k) in n.keys.iter().enumerate() {
        if let Some(j) = m.keys.iter().position(|x| x.id == k.id) {
            return Err(both(
                "key",
                format!("spec.keys[{i}].id"),
                &k.id,
                format!("spec.keys[{j}]"),
            ));
        }
    }

    // The mesh parts as they read in the mesh policy: its mode, its first key.
    let pin_mode = (m.mode != n.mode).then_some(m.mode);
    let pin_key = if n.keys.is_empty() {
        None
    } else {
        m.keys.first().map(|k| k.id.clone())
    };
    let pin = |rules: &mut RouteRules| {
        if rules.mode.is_none() {
            rules.mode = pin_mode;
        }
        if let Some(key) = &pin_key {
            for d in [&mut rules.request, &mut rules.response]
                .into_iter()
                .flatten()
            {
                pin_direction_key(d, key);
            }
        }
    };

    if mesh.enforced {
        check_floor(ns, mesh)?;
    }
    let mut merged = n.clone();
    let mut mesh_routes = Vec::with_capacity(m.routes.len());
    for r in &m.routes {
        let mut r = r.clone();
        let mut rules = r.rules();
        pin(&mut rules);
        r.mode = rules.mode;
        r.request = rules.request;
        r.response = rules.response;
        mesh_routes.push(r);
    }
    let mesh_routes_first = mesh.enforced.then_some(mesh_routes.len());
    if mesh.enforced {
        // The floor: no namespace route sees a request a mesh route matches.
        mesh_routes.append(&mut merged.routes);
        merged.routes = mesh_routes;
    } else {
        merged.routes.append(&mut mesh_routes);
    }
    merged.classes.extend(m.classes.iter().cloned());
    merged.keys.extend(m.keys.iter().cloned());
    let default_from_mesh = n.default_route.is_none() && m.default_route.is_some();
    if default_from_mesh {
        let mut rules = m.default_route.clone().unwrap_or_default();
        pin(&mut rules);
        merged.default_route = Some(rules);
    } else if mesh.enforced && n.default_route.is_none() && pin_mode.is_some() {
        // Neither has one: the implicit default route, in the mesh's mode (not the namespace
        // document's).
        merged.default_route = Some(RouteRules {
            mode: pin_mode,
            response: Some(DirectionSpec::default()),
            request: None,
        });
    }
    if merged.min_confidence.is_none() {
        merged.min_confidence = m.min_confidence;
    }
    if merged.routing.is_none() {
        merged.routing = m.routing.clone();
    }
    Ok(Merged {
        manifest: merged,
        mesh_id,
        scopes: ns.scopes.clone().or_else(|| mesh.scopes.clone()),
        namespace_routes: n.routes.len(),
        mesh_routes_first,
        namespace_classes: n.classes.len(),
        namespace_keys: n.keys.len(),
        default_from_mesh,
    })
}

/// `hash`/`tokenize` without a key get `key` (the default key differs in the merged policy).
fn pin_direction_key(d: &mut DirectionSpec, key: &str) {
    let pin = |a: &mut ActionSpec| match a {
        ActionSpec::Name(kind @ (ActionKind::Hash | ActionKind::Tokenize)) => {
            *a = ActionSpec::Detailed(ActionDetail {
                kind: *kind,
                placeholder: None,
                mask_char: None,
                keep_first: None,
                keep_last: None,
                keep_separators: None,
                key: Some(key.to_string()),
            });
        }
        ActionSpec::Detailed(detail)
            if matches!(detail.kind, ActionKind::Hash | ActionKind::Tokenize)
                && detail.key.is_none() =>
        {
            detail.key = Some(key.to_string());
        }
        _ => {}
    };
    for f in &mut d.fields {
        pin(&mut f.action);
    }
    for a in d.actions.values_mut() {
        pin(a);
    }
    if let Some(a) = &mut d.default_action {
        pin(a);
    }
}

impl Merged {
    /// An engine error on the merged manifest, located in the object it came from: the namespace
    /// policy's `spec...`, or `spec...` of the mesh policy (named in the message).
    pub fn relocate(&self, e: PolicyError) -> PolicyError {
        let loc = e.location();
        let mesh_part = |field: &str, own: usize| -> Option<String> {
            let rest = loc.strip_prefix(field)?.strip_prefix('[')?;
            let (index, tail) = rest.split_once(']')?;
            let index: usize = index.parse().ok()?;
            (index >= own).then(|| format!("{field}[{}]{tail}", index - own))
        };
        let mesh_route = match self.mesh_routes_first {
            // Mesh routes first: below their count they are the mesh's, above the namespace's.
            Some(mesh_routes) => {
                let rest = loc.strip_prefix("routes[").and_then(|r| r.split_once(']'));
                match rest.and_then(|(i, tail)| Some((i.parse::<usize>().ok()?, tail))) {
                    Some((i, tail)) if i < mesh_routes => Some(format!("routes[{i}]{tail}")),
                    Some((i, tail)) => {
                        return super::spec::under(
                            "spec",
                            PolicyError::new(
                                format!("routes[{}]{tail}", i - mesh_routes),
                                e.message(),
                            ),
                        )
                    }
                    None => None,
                }
            }
            None => mesh_part("routes", self.namespace_routes),
        };
        let from_mesh = mesh_route
            .or_else(|| mesh_part("classes", self.namespace_classes))
            .or_else(|| mesh_part("keys", self.namespace_keys))
            .or_else(|| {
                (self.default_from_mesh && loc.starts_with("defaultRoute")).then(|| loc.to_string())
            });
        match from_mesh {
            Some(mesh_loc) => PolicyError::new(
                format!("spec.{mesh_loc}"),
                format!("(in the mesh policy {}) {}", self.mesh_id, e.message()),
            ),
            None => super::spec::under("spec", e),
        }
    }
}

/// How much of a value an action lets through, lowest first (`mask` may keep characters,
/// `tokenize` is reversible with the key, `hash` linkable).
fn strength(kind: ActionKind) -> u8 {
    match kind {
        ActionKind::Allow => 0,
        ActionKind::Mask => 1,
        ActionKind::Tokenize => 2,
        ActionKind::Hash => 3,
        ActionKind::Redact | ActionKind::Drop => 4,
        ActionKind::Block => 5,
    }
}

fn kind(a: &ActionSpec) -> ActionKind {
    match a {
        ActionSpec::Name(k) => *k,
        ActionSpec::Detailed(d) => d.kind,
    }
}

fn detail(a: &ActionSpec) -> Option<&ActionDetail> {
    match a {
        ActionSpec::Name(_) => None,
        ActionSpec::Detailed(d) => Some(d),
    }
}

/// Whether `ns` lets through no more than `floor` does.
fn at_least(ns: &ActionSpec, floor: &ActionSpec) -> bool {
    let (a, b) = (strength(kind(ns)), strength(kind(floor)));
    if a != b {
        return a > b;
    }
    if kind(ns) == ActionKind::Mask {
        let keep = |a: &ActionSpec| {
            let d = detail(a);
            (
                d.and_then(|d| d.keep_first).unwrap_or(0),
                d.and_then(|d| d.keep_last).unwrap_or(0),
                d.and_then(|d| d.keep_separators).unwrap_or(false),
            )
        };
        let (nf, nl, ns_sep) = keep(ns);
        let (ff, fl, f_sep) = keep(floor);
        return nf <= ff && nl <= fl && (!ns_sep || f_sep);
    }
    true
}

fn show(a: &ActionSpec) -> String {
    serde_json::to_string(a).unwrap_or_default()
}

fn redact() -> ActionSpec {
    ActionSpec::Name(ActionKind::Redact)
}

/// Every detected class, or the named ones.
fn detects_all(d: &DirectionSpec) -> bool {
    d.detect.as_ref().is_none_or(|v| v.iter().any(|c| c == "*"))
}

/// Every action the floor's direction can give a finding (a scope violation included).
fn floor_actions(f: &DirectionSpec) -> Vec<ActionSpec> {
    let mut out = vec![f.default_action.clone().unwrap_or_else(redact)];
    out.extend(f.actions.values().cloned());
    out.extend(f.fields.iter().map(|r| r.action.clone()));
    if f.scope.is_some() {
        out.push(ActionSpec::Name(
            match f.on_violation.unwrap_or(ViolationAction::Block) {
                ViolationAction::Block => ActionKind::Block,
                ViolationAction::Redact => ActionKind::Redact,
            },
        ));
    }
    out
}

/// A namespace rule (`loc`, e.g. `spec.routes[1]`) against the floor's rule (`floor_loc` in the
/// mesh policy); `ns_mode`/`floor_mode` are the effective modes, `doc_mode` whether the
/// namespace's comes from its document (`spec.mode`).
struct Floor<'a> {
    mesh_id: &'a str,
    floor_loc: &'a str,
}

impl Floor<'_> {
    fn below(&self, loc: String, what: String) -> PolicyError {
        PolicyError::new(
            loc,
            format!(
                "below the floor of the enforced mesh policy {}: {what} (the mesh's spec.{})",
                self.mesh_id, self.floor_loc
            ),
        )
    }

    fn direction(
        &self,
        loc: &str,
        dir: &str,
        ns: Option<&DirectionSpec>,
        floor: Option<&DirectionSpec>,
    ) -> Result<(), PolicyError> {
        let Some(f) = floor else { return Ok(()) };
        let loc = format!("{loc}.{dir}");
        let Some(n) = ns else {
            return Err(self.below(
                loc,
                format!("{dir} bodies are not inspected, the mesh inspects them"),
            ));
        };
        if detects_all(f) && !detects_all(n)
            || !detects_all(n) && {
                let have = n.detect.as_deref().unwrap_or_default();
                f.detect
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|c| !have.contains(c))
            }
        {
            return Err(self.below(
                format!("{loc}.detect"),
                "detects fewer classes than the mesh (as written: every class the mesh names, or `*`)".into(),
            ));
        }
        let fa = floor_actions(f);
        let strongest = |a: &ActionSpec| fa.iter().all(|f| at_least(a, f));
        // The floor's field rules first and unchanged (first match wins); any further one at
        // least as strong as everything the floor does.
        if n.fields.len() < f.fields.len() || n.fields[..f.fields.len()] != f.fields[..] {
            return Err(self.below(
                format!("{loc}.fields"),
                format!(
                    "the mesh's {} field rule(s) must come first, unchanged",
                    f.fields.len()
                ),
            ));
        }
        for (i, r) in n.fields.iter().enumerate().skip(f.fields.len()) {
            if !strongest(&r.action) {
                return Err(self.below(
                    format!("{loc}.fields[{i}].action"),
                    format!("{} is weaker than an action of the mesh rule (a further field rule must be at least as strong as all of them)", show(&r.action)),
                ));
            }
        }
        for (c, a) in &n.actions {
            if !strongest(a) {
                return Err(self.below(
                    format!("{loc}.actions.{c}"),
                    format!("{} is weaker than an action of the mesh rule (class names are not resolved: a per-class action must be at least as strong as all of them)", show(a)),
                ));
            }
        }
        let n_default = n.default_action.clone().unwrap_or_else(redact);
        let f_default = f.default_action.clone().unwrap_or_else(redact);
        if !at_least(&n_default, &f_default) {
            return Err(self.below(
                format!("{loc}.defaultAction"),
                format!(
                    "{} is weaker than the mesh's {}",
                    show(&n_default),
                    show(&f_default)
                ),
            ));
        }
        let ns_lets_through = n
            .scope
            .as_ref()
            .is_some_and(|s| !s.allow.is_empty() || !s.grants.is_empty());
        for (c, a) in &f.actions {
            let kept = n.actions.get(c).is_some_and(|x| at_least(x, a));
            if !kept && (ns_lets_through || !at_least(&n_default, a)) {
                return Err(self.below(
                    format!("{loc}.actions"),
                    format!(
                        "class `{c}` needs an action at least as strong as the mesh's {}",
                        show(a)
                    ),
                ));
            }
        }
        match (&n.scope, &f.scope) {
            (Some(s), None) if ns_lets_through => {
                return Err(self.below(
                    format!("{loc}.scope"),
                    format!("`allow`/`grants` let classes through ({}) that the mesh rule, without a scope, acts on", s.allow.join(", ")),
                ))
            }
            (None, Some(_)) => {
                return Err(self.below(format!("{loc}.scope"), "no scope where the mesh declares one".into()))
            }
            (Some(s), Some(fs)) => {
                if let Some(c) = s.allow.iter().find(|c| !fs.allow.contains(c)) {
                    return Err(self.below(format!("{loc}.scope.allow"), format!("`{c}` is not allowed by the mesh")));
                }
                for (g, cs) in &s.grants {
                    let granted = fs.grants.get(g);
                    if let Some(c) = cs
                        .iter()
                        .find(|c| !fs.allow.contains(c) && !granted.is_some_and(|v| v.contains(c)))
                    {
                        return Err(self.below(
                            format!("{loc}.scope.grants.{g}"),
                            format!("`{c}` is not granted to `{g}` by the mesh"),
                        ));
                    }
                }
                if let Some(max) = fs.max_body_bytes {
                    if s.max_body_bytes.is_none_or(|x| x > max) {
                        return Err(self.below(format!("{loc}.scope.maxBodyBytes"), format!("the mesh's limit is {max}")));
                    }
                }
                if let Some(r) = &fs.max_records {
                    if s.max_records.as_ref().is_none_or(|x| x.path != r.path || x.max > r.max) {
                        return Err(self.below(
                            format!("{loc}.scope.maxRecords"),
                            format!("the mesh's limit is {} at `{}`", r.max, r.path),
                        ));
                    }
                }
                let block = |v: Option<ViolationAction>| v.unwrap_or(ViolationAction::Block) == ViolationAction::Block;
                if block(f.on_violation) && !block(n.on_violation) {
                    return Err(self.below(format!("{loc}.onViolation"), "`redact` where the mesh blocks".into()));
                }
            }
            _ => {}
        }
        let fail_open = |e: Option<ErrorAction>| e == Some(ErrorAction::Allow);
        if fail_open(n.on_error) && !fail_open(f.on_error) {
            return Err(self.below(
                format!("{loc}.onError"),
                "`allow` (fail open) where the mesh blocks (fails closed)".into(),
            ));
        }
        if n.content_type != f.content_type {
            return Err(self.below(
                format!("{loc}.contentType"),
                "a content type other than the mesh's (bodies would be read differently)".into(),
            ));
        }
        Ok(())
    }

    /// A namespace route or default route (`loc`) against the floor's rules.
    fn rules(
        &self,
        loc: &str,
        ns: &RouteRules,
        ns_doc_mode: Mode,
        floor: &RouteRules,
        floor_mode: Mode,
    ) -> Result<(), PolicyError> {
        if floor_mode == Mode::Enforce && ns.mode.unwrap_or(ns_doc_mode) == Mode::Monitor {
            let at = if ns.mode.is_some() {
                format!("{loc}.mode")
            } else {
                "spec.mode".into()
            };
            return Err(self.below(at, format!("`monitor` for {loc}, where the mesh enforces")));
        }
        self.direction(loc, "request", ns.request.as_ref(), floor.request.as_ref())?;
        self.direction(
            loc,
            "response",
            ns.response.as_ref(),
            floor.response.as_ref(),
        )
    }
}

/// What an enforced mesh policy forbids a namespace policy (see the module's documentation).
fn check_floor(ns: &DataPolicy, mesh: &DataPolicy) -> Result<(), PolicyError> {
    let (n, m) = (&ns.manifest, &mesh.manifest);
    let mesh_id = mesh.id();
    let doc = |loc: &str, what: String| {
        PolicyError::new(
            loc,
            format!("below the floor of the enforced mesh policy {mesh_id}: {what}"),
        )
    };
    let (nc, mc) = (
        n.min_confidence.unwrap_or(DEFAULT_MIN_CONFIDENCE),
        m.min_confidence.unwrap_or(DEFAULT_MIN_CONFIDENCE),
    );
    if nc > mc {
        return Err(doc(
            "spec.minConfidence",
            format!("{nc} is higher than the mesh's {mc} (fewer findings)"),
        ));
    }
    let case_sensitive =
        |r: &Option<crate::manifest::RoutingSpec>| r.as_ref().and_then(|r| r.case_sensitive);
    if n.routing.is_some()
        && case_sensitive(&n.routing).unwrap_or(true)
        && !case_sensitive(&m.routing).unwrap_or(true)
    {
        return Err(doc(
            "spec.routing.caseSensitive",
            "the mesh compares paths case-insensitively (`/Users` would step around its `/users` routes)".into(),
        ));
    }
    if ns.scopes.is_some() && ns.scopes != mesh.scopes {
        return Err(doc(
            "spec.scopes",
            "other than the mesh's: the mesh routes' `grants` would read the caller's scopes elsewhere (leave it out to get the mesh's)".into(),
        ));
    }
    // Any class of its own: overlap resolution keeps the more confident of two overlapping
    // findings, so a namespace class (confidence 1.0, `-[0-9]{2}-`) would displace a built-in
    // or mesh finding (`123-45-6789` as an SSN) and only its own span would be acted on, on the
    // mesh routes too (hostile review, session 9).
    if !n.classes.is_empty() {
        return Err(doc(
            "spec.classes",
            "custom classes under an enforced mesh policy: a namespace class can displace a built-in or mesh finding it overlaps and cut what is redacted (ask the mesh owner to add the class to the mesh policy)".into(),
        ));
    }
    let (floor, floor_loc) = match &m.default_route {
        Some(d) => (d.clone(), "defaultRoute"),
        None => (
            RouteRules {
                response: Some(DirectionSpec::default()),
                ..RouteRules::default()
            },
            "defaultRoute (absent: responses, every class, redact)",
        ),
    };
    let floor_mode = floor.mode.unwrap_or(m.mode);
    let f = Floor {
        mesh_id: &mesh_id,
        floor_loc,
    };
    for (i, r) in n.routes.iter().enumerate() {
        f.rules(
            &format!("spec.routes[{i}]"),
            &r.rules(),
            n.mode,
            &floor,
            floor_mode,
        )?;
    }
    if let Some(d) = &n.default_route {
        f.rules("spec.defaultRoute", d, n.mode, &floor, floor_mode)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn policy(ns: &str, name: &str, spec: Value) -> DataPolicy {
        DataPolicy::from_value(&json!({
            "apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec
        }))
        .expect("valid DataPolicy")
    }

    /// An enforced mesh policy: one route, a default route with a per-class `block`.
    fn mesh(enforced: bool) -> DataPolicy {
        policy(
            "istio-system",
            "floor",
            json!({
                "enforced": enforced,
                "minConfidence": 0.6,
                "keys": [{"id": "mesh", "secretRef": {"name": "mesh-keys", "key": "mesh"}}],
                "routing": {"caseSensitive": false},
                "scopes": {"metadata": {"key": "https://issuer.example"}},
                "routes": [{"name": "exports", "match": {"prefix": "/export/"},
                            "response": {"fields": [{"path": "$..email", "action": "hash"}],
                                         "scope": {"allow": ["email"], "maxRecords": {"path": "$.items", "max": 100}}}}],
                "defaultRoute": {"response": {
                    "actions": {"private_key": "block"},
                    "defaultAction": {"type": "mask", "keepLast": 4},
                    "scope": {"allow": ["email"], "grants": {"users:pii": ["phone"]}, "maxBodyBytes": 1048576}
                }}
            }),
        )
    }

    fn ns(spec: Value) -> DataPolicy {
        policy("shop", "orders", spec)
    }

    /// A route that would see every request, with `response`.
    fn catch_all(response: Value) -> Value {
        json!({"routes": [{"name": "all", "match": {"prefix": "/"}, "response": response}]})
    }

    /// A response rule exactly at the floor (the mesh's default route).
    fn at_floor() -> Value {
        json!({
            "actions": {"private_key": "block"},
            "defaultAction": {"type": "mask", "keepLast": 4},
            "scope": {"allow": ["email"], "grants": {"users:pii": ["phone"]}, "maxBodyBytes": 1048576}
        })
    }

    fn with(mut base: Value, patch: Value) -> Value {
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base
    }

    fn refused(spec: Value) -> PolicyError {
        let e = merge(&ns(spec.clone()), &mesh(true)).expect_err(&spec.to_string());
        assert!(
            e.message()
                .starts_with("below the floor of the enforced mesh policy istio-system/floor: "),
            "{e}"
        );
        // Without `enforced`, the same namespace policy merges (today's behaviour).
        merge(&ns(spec), &mesh(false)).expect("merges without enforced");
        e
    }

    #[test]
    fn without_enforced_namespace_routes_come_first_and_may_weaken() {
        let m = merge(
            &ns(json!({"mode": "monitor", "minConfidence": 0.99,
                       "routes": [{"name": "all", "match": {"prefix": "/"}, "response": {"defaultAction": "allow"}}]})),
            &mesh(false),
        )
        .unwrap();
        let names: Vec<_> = m.manifest.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["all", "exports"]);
        assert_eq!(m.manifest.min_confidence, Some(0.99));
    }

    #[test]
    fn enforced_puts_the_mesh_routes_first() {
        let m = merge(
            &ns(json!({"routes": [{"name": "users", "match": {"prefix": "/users/"}, "response": at_floor()}]})),
            &mesh(true),
        )
        .unwrap();
        let names: Vec<_> = m.manifest.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["exports", "users"]);
        // the floor's minConfidence, routing and scopes
        assert_eq!(m.manifest.min_confidence, Some(0.6));
        assert_eq!(
            m.manifest.routing.as_ref().unwrap().case_sensitive,
            Some(false)
        );
        assert_eq!(m.scopes, mesh(true).scopes);
        super::super::spec::compile_placeholder(&m.manifest).unwrap();
    }

    #[test]
    fn attacks_on_the_floor_are_refused_where_they_are_written() {
        let cases: Vec<(Value, &str)> = vec![
            // monitor mode, for the document and for one route
            (
                with(catch_all(at_floor()), json!({"mode": "monitor"})),
                "spec.mode",
            ),
            (
                json!({"routes": [{"name": "all", "match": {"prefix": "/"}, "mode": "monitor", "response": at_floor()}]}),
                "spec.routes[0].mode",
            ),
            (
                json!({"defaultRoute": {"mode": "monitor", "response": at_floor()}}),
                "spec.defaultRoute.mode",
            ),
            // fewer findings
            (json!({"minConfidence": 0.99}), "spec.minConfidence"),
            // /Users steps around the mesh's /users routes
            (
                json!({"routing": {"caseSensitive": true}}),
                "spec.routing.caseSensitive",
            ),
            (json!({"routing": {}}), "spec.routing.caseSensitive"),
            // the mesh's grants read a header any client can send
            (
                json!({"scopes": {"header": "x-scopes", "trustHeader": true}}),
                "spec.scopes",
            ),
            // a catch-all route that inspects nothing, or not the responses
            (
                json!({"routes": [{"name": "all", "match": {"prefix": "/"}}]}),
                "spec.routes[0].response",
            ),
            (
                json!({"routes": [{"name": "all", "match": {"prefix": "/"}, "request": {}}]}),
                "spec.routes[0].response",
            ),
            // fewer classes
            (
                catch_all(with(at_floor(), json!({"detect": ["email"]}))),
                "spec.routes[0].response.detect",
            ),
            // weaker actions: default, per class, a further field rule, a mask keeping more
            (
                catch_all(with(at_floor(), json!({"defaultAction": "allow"}))),
                "spec.routes[0].response.defaultAction",
            ),
            (
                catch_all(with(
                    at_floor(),
                    json!({"defaultAction": {"type": "mask", "keepLast": 8}}),
                )),
                "spec.routes[0].response.defaultAction",
            ),
            (
                catch_all(with(
                    at_floor(),
                    json!({"actions": {"private_key": "block", "us_ssn": "allow"}}),
                )),
                "spec.routes[0].response.actions.us_ssn",
            ),
            (
                catch_all(with(at_floor(), json!({"actions": null}))),
                "spec.routes[0].response.actions",
            ),
            (
                catch_all(with(
                    at_floor(),
                    json!({"fields": [{"path": "$..*", "action": "allow"}]}),
                )),
                "spec.routes[0].response.fields[0].action",
            ),
            // a wider scope: allow, grants, limits, redact for block
            (
                catch_all(with(
                    at_floor(),
                    json!({"scope": {"allow": ["email", "phone"]}}),
                )),
                "spec.routes[0].response.scope.allow",
            ),
            (
                catch_all(with(
                    at_floor(),
                    json!({"scope": {"allow": ["email"], "grants": {"users:pii": ["us_ssn"]}, "maxBodyBytes": 1048576}}),
                )),
                "spec.routes[0].response.scope.grants.users:pii",
            ),
            (
                catch_all(with(at_floor(), json!({"scope": {"allow": ["email"]}}))),
                "spec.routes[0].response.scope.maxBodyBytes",
            ),
            (
                catch_all(with(
                    at_floor(),
                    json!({"scope": {"allow": ["email"], "maxBodyBytes": 2097152}}),
                )),
                "spec.routes[0].response.scope.maxBodyBytes",
            ),
            (
                catch_all(with(at_floor(), json!({"scope": null}))),
                "spec.routes[0].response.scope",
            ),
            (
                catch_all(with(at_floor(), json!({"onViolation": "redact"}))),
                "spec.routes[0].response.onViolation",
            ),
            // fail open, or bodies read as something else
            (
                catch_all(with(at_floor(), json!({"onError": "allow"}))),
                "spec.routes[0].response.onError",
            ),
            (
                catch_all(with(at_floor(), json!({"contentType": "text"}))),
                "spec.routes[0].response.contentType",
            ),
            // the namespace default route below the mesh's
            (
                json!({"defaultRoute": {"response": with(at_floor(), json!({"defaultAction": "allow"}))}}),
                "spec.defaultRoute.response.defaultAction",
            ),
            // a class of its own could win an overlap with a private key
            (
                json!({"classes": [{"name": "blob", "pattern": "[A-Za-z0-9+/=]{40,}", "confidence": 1.0}]}),
                "spec.classes",
            ),
            // ... or cut an SSN to its middle (`123-[mid]6789`), where the mesh has no
            // per-class action at all (hostile review, session 9)
            (
                json!({"classes": [{"name": "mid", "pattern": "-[0-9]{2}-", "confidence": 1.0}]}),
                "spec.classes",
            ),
        ];
        for (spec, loc) in cases {
            let e = refused(spec.clone());
            assert_eq!(e.location(), loc, "{spec}: {e}");
        }
    }

    #[test]
    fn the_floor_of_a_route_is_the_mesh_default_route_even_for_a_narrow_path() {
        // A namespace route for its own path still replaces the mesh default route there.
        let e = refused(
            json!({"routes": [{"name": "mine", "match": {"path": "/mine"},
                                          "response": {"defaultAction": "allow"}}]}),
        );
        assert_eq!(e.location(), "spec.routes[0].response.defaultAction", "{e}");
        assert!(
            e.message().ends_with("(the mesh's spec.defaultRoute)"),
            "{e}"
        );
    }

    #[test]
    fn stricter_namespace_policies_are_accepted() {
        let mesh = mesh(true);
        for spec in [
            json!({}),
            json!({"minConfidence": 0.3, "routing": {"caseSensitive": false},
                   "scopes": {"metadata": {"key": "https://issuer.example"}}}),
            catch_all(at_floor()),
            catch_all(with(
                at_floor(),
                json!({"defaultAction": "block", "onViolation": "block", "onError": "block",
                       "actions": {"private_key": "block", "us_ssn": "block"},
                       "fields": [{"path": "$.card", "action": "block", "class": "credit_card"}],
                       "scope": {"allow": [], "maxBodyBytes": 1024}}),
            )),
            catch_all(with(
                at_floor(),
                json!({"defaultAction": {"type": "mask", "keepLast": 2, "maskChar": "#"}}),
            )),
            // requests inspected too: the floor inspects none
            json!({"routes": [{"name": "all", "match": {"prefix": "/"}, "request": {"defaultAction": "allow"},
                               "response": at_floor()}]}),
            json!({"defaultRoute": {"response": with(at_floor(), json!({"defaultAction": "redact"}))}}),
            // a key of its own
            json!({"keys": [{"id": "k1", "secretRef": {"name": "s", "key": "k1"}}]}),
        ] {
            let m = merge(&ns(spec.clone()), &mesh).unwrap_or_else(|e| panic!("{spec}: {e}"));
            super::super::spec::compile_placeholder(&m.manifest)
                .unwrap_or_else(|e| panic!("{spec}: {e}"));
        }
    }

    #[test]
    fn a_monitor_floor_takes_monitor_namespaces_but_not_weaker_rules() {
        let mesh = policy(
            "istio-system",
            "floor",
            json!({"enforced": true, "mode": "monitor"}),
        );
        merge(
            &ns(json!({"mode": "monitor", "routes": [{"name": "a", "match": {"prefix": "/"}, "response": {}}]})),
            &mesh,
        )
        .unwrap();
        let e = merge(
            &ns(json!({"mode": "monitor", "routes": [{"name": "a", "match": {"prefix": "/"}, "response": {"defaultAction": "hash"}}]})),
            &mesh,
        )
        .unwrap_err();
        assert_eq!(e.location(), "spec.routes[0].response.defaultAction");
        assert!(
            e.message().contains(
                "(the mesh's spec.defaultRoute (absent: responses, every class, redact))"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_monitor_document_without_rules_of_its_own_changes_nothing() {
        // The mesh parts keep the mesh's mode: `spec.mode` reaches only namespace rules.
        let m = merge(&ns(json!({"mode": "monitor"})), &mesh(true)).unwrap();
        assert_eq!(m.manifest.mode, Mode::Monitor);
        assert_eq!(m.manifest.routes[0].mode, Some(Mode::Enforce));
        assert_eq!(
            m.manifest.default_route.as_ref().unwrap().mode,
            Some(Mode::Enforce)
        );
    }

    #[test]
    fn the_implicit_default_route_keeps_the_mesh_mode() {
        let mesh = policy("istio-system", "floor", json!({"enforced": true}));
        // Every namespace rule has its own mode: the document's `monitor` reaches only the
        // implicit default route, which the merge pins to the mesh's `enforce`.
        let m = merge(
            &ns(json!({"mode": "monitor", "routes": [{"name": "a", "match": {"prefix": "/a/"}, "mode": "enforce", "response": {}}]})),
            &mesh,
        )
        .unwrap();
        let d = m
            .manifest
            .default_route
            .as_ref()
            .expect("pinned default route");
        assert_eq!(d.mode, Some(Mode::Enforce));
        assert_eq!(d.response, Some(DirectionSpec::default()));
        assert!(d.request.is_none());
        // Not enforced: unchanged (the namespace's document mode).
        let m = merge(
            &ns(json!({"mode": "monitor"})),
            &policy("istio-system", "floor", json!({})),
        )
        .unwrap();
        assert!(m.manifest.default_route.is_none());
    }

    #[test]
    fn engine_errors_are_located_with_the_mesh_routes_first() {
        let mesh = mesh(true);
        let spec = json!({"routes": [
            {"name": "a", "match": {"prefix": "/a/"}, "response": at_floor()},
            {"name": "b", "match": {"regex": "("}, "response": at_floor()}
        ]});
        let m = merge(&ns(spec), &mesh).unwrap();
        let e = super::super::spec::compile_placeholder(&m.manifest).unwrap_err();
        assert_eq!(e.location(), "routes[2].match.regex");
        let e = m.relocate(e);
        assert_eq!(e.location(), "spec.routes[1].match.regex", "{e}");
        assert!(!e.message().contains("in the mesh policy"), "{e}");
        let e = m.relocate(PolicyError::new("routes[0].response.fields[0].path", "x"));
        assert_eq!(e.location(), "spec.routes[0].response.fields[0].path");
        assert!(
            e.message()
                .starts_with("(in the mesh policy istio-system/floor)"),
            "{e}"
        );
    }
}
