//! Kubernetes: the `DataPolicy` custom resource (`meshdlp.io/v1alpha1`).
//!
//! No Kubernetes client or API crate here: the CRD is plain JSON built from the schemars schema of
//! the engine's own [`Manifest`](crate::Manifest) types ([`crd::crd`]), so the policy format has a
//! single source of truth. `meshdlp crd` prints it; `k8s/crd/datapolicies.meshdlp.io.yaml` is
//! that output, committed (`make crd` regenerates it, a test fails when it is stale).
//!
//! A `DataPolicy`'s `spec` is a policy manifest, its fields at the top level (so the engine's
//! error locations read `spec.routes[2]...`), plus four fields of its own: `selector.matchLabels`
//! (which workloads; empty = the whole namespace), `delivery.mode` (`EnvoyFilter`, the default,
//! or `WasmPlugin`), `scopes` (where the filter finds the caller's verified scopes: the
//! filter's own `scopes` setting) and `enforced` (on the mesh policy: a floor that namespace
//! policies cannot go below, see [`merge()`]). The API server checks what a schema and CEL can (shapes, enums, ranges,
//! unique route names / class names / key ids, exclusive route match fields); the rest is checked
//! by compiling the policy with the engine.
//!
//! [`DataPolicy::from_value`] reads such an object (errors located as `kubectl` shows them);
//! [`merge()`] joins a namespace policy with the mesh-wide one (the DataPolicy in the mesh root
//! namespace); [`render()`] turns the result into the Istio objects (an `EnvoyFilter`, or a
//! `WasmPlugin` in degraded mode) that `meshdlp render` prints and the controller writes.

pub mod crd;
pub mod merge;
pub mod render;
pub mod spec;

pub use crd::{crd, spec_schema, CRD_NAME, GROUP, KIND, PLURAL, SHORT_NAME, VERSION};
pub use merge::{merge, Merged};
pub use render::{
    render, ImageRef, RenderOptions, Rendered, SecretEnv, DATAPOLICY_LABEL,
    DEFAULT_MESH_ROOT_NAMESPACE, MANAGED_BY_LABEL, MESH_FILTER_NAME,
};
#[cfg(not(target_arch = "wasm32"))]
pub use spec::parse_document;
pub use spec::{is_data_policy, DataPolicy, DeliveryMode, Scopes, ScopesMetadata, API_VERSION};
