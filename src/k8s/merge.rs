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

use crate::error::PolicyError;
use crate::manifest::{ActionDetail, ActionKind, ActionSpec, DirectionSpec, Manifest, RouteRules};

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

    let mut merged = n.clone();
    for r in &m.routes {
        let mut r = r.clone();
        let mut rules = r.rules();
        pin(&mut rules);
        r.mode = rules.mode;
        r.request = rules.request;
        r.response = rules.response;
        merged.routes.push(r);
    }
    merged.classes.extend(m.classes.iter().cloned());
    merged.keys.extend(m.keys.iter().cloned());
    let default_from_mesh = n.default_route.is_none() && m.default_route.is_some();
    if default_from_mesh {
        let mut rules = m.default_route.clone().unwrap_or_default();
        pin(&mut rules);
        merged.default_route = Some(rules);
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
        let from_mesh = mesh_part("routes", self.namespace_routes)
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
