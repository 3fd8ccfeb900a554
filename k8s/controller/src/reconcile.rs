//! Reconcile: DataPolicy -> engine (parse, merge with the mesh policy, compile, render) -> the
//! owned Istio object, written with server-side apply -> status.
//!
//! - Only a policy the engine compiles is applied: a bad spec sets `Compiled=False` (the
//!   engine's located error) and the objects programmed before stay as they were.
//! - Server-side apply with one field manager: an unchanged render writes nothing (the
//!   EnvoyFilter's resourceVersion stays), so reconciles are idempotent.
//! - A finalizer deletes the owned objects when the DataPolicy goes (owner references are set
//!   too, for the garbage collector of a real cluster; the test server has none).
//! - A change to a DataPolicy in the mesh root namespace re-reconciles every DataPolicy: the
//!   namespace ones carry the mesh rules (engine merge). The change is seen on the controller's
//!   own reflector, after its cache has it, and the mesh policy is read from that cache (no list
//!   call per reconcile). A namespace policy that cannot take the new mesh rules says so
//!   (Compiled=False, MeshMergeFailed), and so does the mesh policy's owner side: a Warning event
//!   on the mesh policy and the `stale_mesh_policies` gauge.
//! - An object the API server refuses (Istio's schema, etcd's size limit) gives Programmed=False
//!   (ApplyFailed) with the server's message; it is retried with exponential backoff (5 s doubling
//!   to 5 min), as are failed reconciles.
//! - Conflicts are decided on the cache and looked at again when the winner of their workload set
//!   changes (a policy starts or stops winning, or goes): an event, not a poll, and no list call.
//!   N policies with one selector cost O(N) reconciles, not O(N^2).
//! - The owned EnvoyFilters and WasmPlugins are read as metadata only ([`Owned`]): one nested
//!   deeper than serde_json's limit fails neither the owned watch nor a reconcile.
//! - Selectors that only partly overlap ([`may_overlap`]: no label key required with two
//!   different values) are not a conflict: both policies stay programmed (no Pods are read, so
//!   whether such a pod exists is unknown) and each gets `Overlapping=True` (SelectorOverlap)
//!   naming the other and the labels a pod would need, and a Warning event. Decided on the
//!   cache; a policy wakes another only when their overlap starts, ends or changes its labels.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::channel::mpsc;

use futures::StreamExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalize};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{reflector, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use meshdlp::k8s::{
    render, DataPolicy, ImageRef, RenderOptions, Rendered, API_VERSION, GROUP, KIND,
    MANAGED_BY_LABEL, PLURAL, VERSION,
};
use meshdlp::PolicyError;
use serde_json::Value;

use crate::health::Health;
use crate::policy::{Owned, Policy, MAX_DEPTH};
use crate::status::{self, Condition};

/// The field manager of every write (server-side apply and status).
pub const MANAGER: &str = "meshdlp-controller";
/// Removed once the owned objects are deleted.
pub const FINALIZER: &str = "meshdlp.io/cleanup";

/// What the flags decide.
pub struct Settings {
    pub image: ImageRef,
    pub mesh_root_namespace: String,
    pub events: bool,
    /// This replica (POD_NAME), for events.
    pub instance: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("a DataPolicy without a namespace")]
    NoNamespace,
    #[error("the engine rendered an unknown kind `{0}`")]
    UnknownKind(String),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The kinds the controller reads and writes.
struct Kinds {
    policy: ApiResource,
    envoy_filter: ApiResource,
    wasm_plugin: ApiResource,
}

impl Kinds {
    fn new() -> Self {
        let ar = |group: &str, version: &str, kind: &str, plural: &str| {
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
        };
        Kinds {
            policy: ar(GROUP, VERSION, KIND, PLURAL),
            envoy_filter: ar(
                "networking.istio.io",
                "v1alpha3",
                "EnvoyFilter",
                "envoyfilters",
            ),
            wasm_plugin: ar(
                "extensions.istio.io",
                "v1alpha1",
                "WasmPlugin",
                "wasmplugins",
            ),
        }
    }

    fn owned(&self) -> [&ApiResource; 2] {
        [&self.envoy_filter, &self.wasm_plugin]
    }

    fn of(&self, kind: &str) -> Option<&ApiResource> {
        self.owned().into_iter().find(|ar| ar.kind == kind)
    }
}

struct Ctx {
    client: Client,
    settings: Settings,
    kinds: Kinds,
    recorder: Option<Recorder>,
    health: Arc<Health>,
    /// The controller's DataPolicy cache (conflicts are decided on it).
    store: Store<Policy>,
    /// DataPolicies to reconcile again now (a conflict's winner changed or went).
    recheck: mpsc::UnboundedSender<ObjectRef<Policy>>,
    /// Winner (`ns/name`) -> the policies that lost a conflict to it.
    losers: Mutex<HashMap<String, HashSet<ObjectRef<Policy>>>>,
    /// Policies (`ns/name`) that won their workload set at their last reconcile -> its selector.
    winners: Mutex<HashMap<String, Value>>,
    /// Overlapping selectors as last decided, both ways: policy (`ns/name`) -> the policies it
    /// may share a pod with -> the labels such a pod carries ([`settle_overlaps`]).
    overlaps: Mutex<Overlaps>,
    /// Consecutive failures per DataPolicy uid (apply refused, reconcile error), and the
    /// generation they were counted at: the backoff.
    failures: Mutex<HashMap<String, (Option<i64>, u32)>>,
    /// Namespace policies (`ns/name`) that cannot take the current mesh policy.
    stale_mesh: Mutex<HashSet<String>>,
}

/// First retry after a failure; doubled per consecutive failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait between retries of a failing DataPolicy.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often a policy that lost a conflict is looked at anyway (its winner's changes wake it;
/// this only covers a winner removed while no controller ran its finalizer).
const CONFLICT_RECHECK: Duration = Duration::from_secs(300);
/// Longest API server message quoted in a condition.
const MAX_API_MESSAGE: usize = 1024;

/// The wait before retry number `failures` (1 = the first failure).
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(client: Client, settings: Settings, health: Arc<Health>) -> anyhow::Result<()> {
    let kinds = Kinds::new();
    let policies: Api<Policy> = Api::all_with(client.clone(), &kinds.policy);
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}=meshdlp"));
    let (recheck, rechecks) = mpsc::unbounded();
    let (mesh_changed, mesh_changes) = mpsc::unbounded();
    // The controller's own reflector (what Controller::new_with builds), with the mesh policy's
    // changes taken off it after the cache applied them: the reconciles they trigger read the
    // new mesh rules from the cache.
    let writer = Writer::new(kinds.policy.clone());
    let cache = writer.as_reader();
    let policy_events = reflector(writer, watcher(policies, watcher::Config::default()))
        .inspect(mesh_change_detector(
            settings.mesh_root_namespace.clone(),
            mesh_changed,
        ))
        .applied_objects();
    // Owned objects: metadata only, whatever their depth (crate::policy::Owned).
    let owned = |ar: &ApiResource| {
        watcher(Api::<Owned>::all_with(client.clone(), ar), managed.clone()).touched_objects()
    };
    let controller = Controller::for_stream_with(policy_events, cache, kinds.policy.clone())
        .owns_stream_with(owned(&kinds.envoy_filter), kinds.envoy_filter.clone())
        .owns_stream_with(owned(&kinds.wasm_plugin), kinds.wasm_plugin.clone())
        .reconcile_all_on(mesh_changes)
        .reconcile_on(rechecks)
        .shutdown_on_signal();
    let store = controller.store();
    {
        let health = health.clone();
        tokio::spawn(async move {
            // Polled again and again: the store's ready signal wakes only one waiter (a oneshot
            // receiver shared by all), and the controller's own runner waits on it too.
            loop {
                match tokio::time::timeout(Duration::from_millis(250), store.wait_until_ready())
                    .await
                {
                    Ok(Ok(())) => {
                        health.ready.store(true, Ordering::Relaxed);
                        tracing::info!("DataPolicy cache synced");
                        break;
                    }
                    Ok(Err(_)) => break,
                    Err(_) => {}
                }
            }
        });
    }
    let recorder = settings.events.then(|| {
        Recorder::new(
            client.clone(),
            Reporter {
                controller: MANAGER.into(),
                instance: settings.instance.clone(),
            },
        )
    });
    let ctx = Arc::new(Ctx {
        client,
        settings,
        kinds,
        recorder,
        health,
        store: controller.store(),
        recheck,
        losers: Mutex::default(),
        winners: Mutex::default(),
        overlaps: Mutex::default(),
        failures: Mutex::default(),
        stale_mesh: Mutex::default(),
    });
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::warn!(error = %e, "controller");
            }
        })
        .await;
    tracing::info!("meshdlp-controller stopped");
    Ok(())
}

/// A mesh policy's state as far as the namespace policies care: its generation, its deletion.
type MeshState = HashMap<String, (Option<i64>, bool)>;

/// Sends one `()` per change of a mesh policy (its generation, its deletion, its removal), so
/// every DataPolicy is reconciled against the new mesh rules; status writes do not count. Runs
/// on the controller's reflector stream, after the cache applied the event (a relist's objects
/// are in the cache only at `InitDone`: the change is told then).
fn mesh_change_detector(
    root: String,
    changed: mpsc::UnboundedSender<()>,
) -> impl FnMut(&Result<watcher::Event<Policy>, watcher::Error>) + Send + 'static {
    let mut seen = MeshState::new();
    let mut relist: Option<MeshState> = None;
    move |event| {
        let Ok(event) = event else { return };
        let in_root = |o: &Policy| o.namespace().as_deref() == Some(root.as_str());
        let state = |o: &Policy| {
            (
                o.metadata.generation,
                o.metadata.deletion_timestamp.is_some(),
            )
        };
        let tell = match event {
            watcher::Event::Init => {
                relist = Some(MeshState::new());
                false
            }
            watcher::Event::InitApply(o) if in_root(o) => {
                relist
                    .get_or_insert_with(MeshState::new)
                    .insert(o.uid().unwrap_or_default(), state(o));
                false
            }
            watcher::Event::InitDone => match relist.take() {
                Some(now) if now != seen => {
                    seen = now;
                    true
                }
                _ => false,
            },
            watcher::Event::Apply(o) if in_root(o) => {
                seen.insert(o.uid().unwrap_or_default(), state(o)) != Some(state(o))
            }
            watcher::Event::Delete(o) if in_root(o) => {
                seen.remove(&o.uid().unwrap_or_default());
                true
            }
            _ => false,
        };
        if tell {
            // Closed only when the controller stops.
            let _ = changed.unbounded_send(());
        }
    }
}

fn error_policy(obj: Arc<Policy>, error: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.health.reconcile_errors.fetch_add(1, Ordering::Relaxed);
    let wait = ctx.failed(&obj);
    tracing::warn!(
        datapolicy = %id(&obj),
        retry_in_seconds = wait.as_secs(),
        error = %error,
        "reconcile failed"
    );
    Action::requeue(wait)
}

fn id(obj: &DynamicObject) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

async fn reconcile(obj: Arc<Policy>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = obj.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<Policy> = Api::namespaced_with(ctx.client.clone(), &ns, &ctx.kinds.policy);
    if obj.too_deep.is_some() && !obj.finalizers().iter().any(|f| f == FINALIZER) {
        // Only its status is written: nothing is programmed for it, and a finalizer added now
        // could not be removed (the server checks the stored spec on every update, and this
        // one no longer passes the CRD).
        let action = ctx.apply(&api, &obj).await?;
        ctx.health.reconciles.fetch_add(1, Ordering::Relaxed);
        return Ok(action);
    }
    let action = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Finalize::Apply(o) => ctx.apply(&api, &o).await,
            Finalize::Cleanup(o) => ctx.cleanup(&o).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))?;
    ctx.health.reconciles.fetch_add(1, Ordering::Relaxed);
    Ok(action)
}

/// Why a policy was not programmed.
struct Refused {
    /// The engine's error, `location: message`.
    error: String,
    /// Accepted=False with this reason (UnsupportedCombination, Conflict); None: Compiled=False.
    not_accepted: Option<&'static str>,
    /// The policy compiles alone but not with this mesh policy (or the mesh policy is bad).
    mesh: Option<DynamicObject>,
}

/// `spec.selector.matchLabels` as written (absent = empty = the whole namespace).
fn selector_of(obj: &DynamicObject) -> Value {
    match obj.data.pointer("/spec/selector/matchLabels") {
        Some(Value::Object(m)) if !m.is_empty() => Value::Object(m.clone()),
        _ => Value::Object(serde_json::Map::new()),
    }
}

/// Two `matchLabels` selectors (as [`selector_of`] gives them) may select one pod: no label key
/// is required with two different values. An empty selector selects every pod of the namespace.
/// Symmetric; equal selectors are a conflict, decided before.
pub fn may_overlap(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return true;
    };
    a.iter().all(|(k, v)| b.get(k).is_none_or(|w| w == v))
}

/// The labels a pod needs to be selected by both (the union), `k=v` sorted, comma-separated.
pub fn shared_labels(a: &Value, b: &Value) -> String {
    let mut labels = BTreeMap::new();
    for m in [a, b].into_iter().filter_map(Value::as_object) {
        for (k, v) in m {
            labels.insert(k.as_str(), v.as_str().unwrap_or_default());
        }
    }
    if labels.is_empty() {
        return "any labels".into();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Policy (`ns/name`) -> the policies it may share a pod with -> [`shared_labels`].
type Overlaps = HashMap<String, BTreeMap<String, String>>;

/// Records that `key` now overlaps `now` (partner -> labels) and keeps the relation symmetric;
/// returns the partners to reconcile again: those whose overlap with `key` started, ended or
/// changed its labels. A partner that already has it recorded (it found `key` first) is not
/// woken: each change of an overlap costs one reconcile of each side.
pub fn settle_overlaps(
    map: &mut Overlaps,
    key: &str,
    now: BTreeMap<String, String>,
) -> Vec<String> {
    let before = map.remove(key).unwrap_or_default();
    let mut wake = Vec::new();
    for partner in before
        .keys()
        .chain(now.keys().filter(|k| !before.contains_key(*k)))
    {
        let want = now.get(partner);
        let theirs = map.entry(partner.clone()).or_default();
        if theirs.get(key) != want {
            match want {
                Some(labels) => theirs.insert(key.to_string(), labels.clone()),
                None => theirs.remove(key),
            };
            wake.push(partner.clone());
        }
        if theirs.is_empty() {
            map.remove(partner);
        }
    }
    if !now.is_empty() {
        map.insert(key.to_string(), now);
    }
    wake
}

/// The condition message of a policy that may share pods with `others` (`(id, labels)`).
fn overlap_message(others: &BTreeMap<String, String>) -> String {
    let list: Vec<String> = others
        .iter()
        .map(|(id, labels)| format!("{id} (a pod labelled {labels})"))
        .collect();
    let all = if others.len() == 1 { "both" } else { "all" };
    format!(
        "spec.selector: a pod may get the filters of this policy and of {}, in an order Istio decides; {all} stay programmed (selectors that only partly overlap; give each workload one policy)",
        list.join(", ")
    )
}

fn age(
    o: &DynamicObject,
) -> (
    Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    String,
) {
    (o.metadata.creation_timestamp.clone(), o.name_any())
}

impl Ctx {
    /// Counts a failure of `obj` (reset when its generation changes); returns the wait.
    fn failed(&self, obj: &DynamicObject) -> Duration {
        let mut failures = lock(&self.failures);
        let entry = failures
            .entry(obj.uid().unwrap_or_default())
            .or_insert((obj.metadata.generation, 0));
        if entry.0 != obj.metadata.generation {
            *entry = (obj.metadata.generation, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        backoff(entry.1)
    }

    fn succeeded(&self, obj: &DynamicObject) {
        lock(&self.failures).remove(&obj.uid().unwrap_or_default());
    }

    fn policy_ref(&self, obj: &DynamicObject) -> ObjectRef<Policy> {
        let r = ObjectRef::new_with(&obj.name_any(), self.kinds.policy.clone());
        match obj.namespace() {
            Some(ns) => r.within(&ns),
            None => r,
        }
    }

    /// `obj` was reconciled (`wins`: it won its workload set, the selector) or goes (None).
    /// Only when the winner changes are others reconciled again: when `obj` stops winning (or
    /// wins elsewhere), the policies that lost to it; when it starts winning, the younger ones
    /// of its namespace with its selector (they lose to it now). A reconcile that changes no
    /// winner - a status write's echo, a spec change of the winner - wakes nobody: N policies
    /// with one selector cost O(N) reconciles (each woke every younger one: O(N^2)). One pass
    /// over the cache at most; a policy only ever wakes younger ones or its losers (no cycle).
    fn settle_conflicts(&self, obj: &DynamicObject, wins: Option<Value>) {
        let key = id(obj);
        let before = {
            let mut winners = lock(&self.winners);
            match &wins {
                Some(selector) => winners.insert(key.clone(), selector.clone()),
                None => winners.remove(&key),
            }
        };
        let mut refs = HashSet::new();
        // Its losers, once it no longer wins what they lost (or never did: stale registrations).
        if wins.is_none() || before.as_ref().is_some_and(|b| Some(b) != wins.as_ref()) {
            refs.extend(lock(&self.losers).remove(&key).unwrap_or_default());
        }
        if let Some(selector) = wins.as_ref().filter(|&w| before.as_ref() != Some(w)) {
            let ns = obj.namespace();
            for other in self.store.state() {
                if other.namespace() == ns
                    && other.uid() != obj.uid()
                    && age(&other) > age(obj)
                    && selector_of(&other) == *selector
                {
                    refs.insert(self.policy_ref(&other));
                }
            }
        }
        for r in refs {
            // Closed only when the controller stops.
            let _ = self.recheck.unbounded_send(r);
        }
    }

    /// Records whether the namespace policy `obj` carries the current mesh policy; tells the
    /// mesh policy's owner (event) when it stops doing so.
    async fn mark_mesh(&self, obj: &DynamicObject, stale: Option<(&DynamicObject, &str)>) {
        let key = id(obj);
        let newly = {
            let mut set = lock(&self.stale_mesh);
            let newly = match stale {
                Some(_) => set.insert(key.clone()),
                None => {
                    set.remove(&key);
                    false
                }
            };
            self.health
                .stale_mesh_policies
                .store(set.len() as u64, Ordering::Relaxed);
            newly
        };
        if let (true, Some((mesh, error))) = (newly, stale) {
            tracing::warn!(datapolicy = %key, mesh = %id(mesh), error = %error, "the namespace policy cannot take the mesh policy: it keeps the mesh rules it was programmed with");
            self.event(
                mesh,
                EventType::Warning,
                "MeshMergeFailed",
                "Reconcile",
                format!("{key} cannot take this mesh policy and keeps the mesh rules it was programmed with (nothing, if it never was): {error}"),
            )
            .await;
        }
    }

    /// The DataPolicy as the engine reads it (the watch may leave out apiVersion/kind).
    fn policy_value(&self, obj: &DynamicObject) -> Result<Value, Error> {
        let mut value = serde_json::to_value(obj)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), API_VERSION.into());
            map.insert("kind".into(), KIND.into());
        }
        Ok(value)
    }

    /// The DataPolicies of the mesh root namespace that are not being deleted, oldest first,
    /// from the controller's cache. A mesh change is told to the reconciles only after the cache
    /// applied it (`mesh_change_detector`), so they read the new rules; no list call.
    fn mesh_policies(&self) -> Vec<Arc<Policy>> {
        let root = self.settings.mesh_root_namespace.as_str();
        let mut list: Vec<Arc<Policy>> = self
            .store
            .state()
            .into_iter()
            .filter(|o| {
                o.namespace().as_deref() == Some(root) && o.metadata.deletion_timestamp.is_none()
            })
            .collect();
        list.sort_by(|a, b| {
            (&a.metadata.creation_timestamp, a.name_any())
                .cmp(&(&b.metadata.creation_timestamp, b.name_any()))
        });
        list
    }

    /// The mesh policy a namespace policy merges with: the oldest of the mesh root namespace.
    #[allow(clippy::type_complexity)]
    fn mesh_policy(&self) -> Result<Option<(Arc<Policy>, Result<DataPolicy, String>)>, Error> {
        let Some(mesh) = self.mesh_policies().into_iter().next() else {
            return Ok(None);
        };
        if let Some(depth) = mesh.too_deep {
            let error = format!(
                "spec: (in the mesh policy {}) {}",
                id(&mesh),
                too_deep(depth)
            );
            return Ok(Some((mesh, Err(error))));
        }
        // Located as render() locates the mesh policy's compile errors.
        let parsed = DataPolicy::from_value(&self.policy_value(&mesh)?).map_err(|e| {
            format!(
                "{}: (in the mesh policy {}) {}",
                e.location(),
                id(&mesh),
                e.message()
            )
        });
        Ok(Some((mesh, parsed)))
    }

    /// An older DataPolicy of `obj`'s namespace with the same selector (empty = the whole
    /// namespace): it wins, `obj` is a conflict (and is registered to be looked at again when
    /// the winner changes). Partial overlaps are not conflicts ([`Ctx::overlapping`]). Policies that do
    /// not parse are not programmed and do not count. Read from the cache: the winner's own
    /// events wake the losers, so nothing is listed per conflict.
    fn older_same_selector(
        &self,
        obj: &DynamicObject,
        dp: &DataPolicy,
    ) -> Result<Option<String>, Error> {
        let ns = obj.namespace().ok_or(Error::NoNamespace)?;
        let selector = selector_of(obj);
        let mut older = Vec::new();
        for other in self.store.state() {
            if other.namespace().as_deref() != Some(ns.as_str())
                || other.uid() == obj.uid()
                || other.metadata.deletion_timestamp.is_some()
                || age(&other) >= age(obj)
                || selector_of(&other) != selector
            {
                continue;
            }
            if let Ok(o) = DataPolicy::from_value(&self.policy_value(&other)?) {
                if o.selector == dp.selector {
                    older.push((age(&other), id(&other)));
                }
            }
        }
        older.sort();
        let winner = older.into_iter().next().map(|(_, id)| id);
        if let Some(w) = &winner {
            lock(&self.losers)
                .entry(w.clone())
                .or_default()
                .insert(self.policy_ref(obj));
        }
        Ok(winner)
    }

    /// The policies of `obj`'s namespace that may select a pod `obj` selects, with the labels
    /// such a pod carries: for each other selector that [`may_overlap`] `obj`'s, the winner of
    /// that workload set (its oldest policy that parses and is not being deleted, as
    /// [`Ctx::older_same_selector`] decides; the others are its conflicts and programmed
    /// nothing). Only for a policy that wins its own workload set, outside the mesh root
    /// namespace (one policy is programmed there). From the cache; only the candidates are parsed.
    fn overlapping(&self, obj: &DynamicObject) -> Result<BTreeMap<String, String>, Error> {
        let ns = obj.namespace();
        let mine = selector_of(obj);
        let mut sets: BTreeMap<String, Vec<Arc<Policy>>> = BTreeMap::new();
        for other in self.store.state() {
            if other.namespace() != ns
                || other.uid() == obj.uid()
                || other.metadata.deletion_timestamp.is_some()
                || other.too_deep.is_some()
            {
                continue;
            }
            let theirs = selector_of(&other);
            if theirs != mine && may_overlap(&mine, &theirs) {
                sets.entry(theirs.to_string()).or_default().push(other);
            }
        }
        let mut out = BTreeMap::new();
        for (_, mut set) in sets {
            set.sort_by_key(|o| age(o));
            for other in set {
                if DataPolicy::from_value(&self.policy_value(&other)?).is_ok() {
                    out.insert(id(&other), shared_labels(&mine, &selector_of(&other)));
                    break;
                }
            }
        }
        Ok(out)
    }

    /// `obj` now overlaps `now`: the partners whose overlap with it changed are reconciled again.
    fn settle_overlaps(&self, obj: &DynamicObject, now: BTreeMap<String, String>) {
        let wake = settle_overlaps(&mut lock(&self.overlaps), &id(obj), now);
        for key in wake {
            let Some((ns, name)) = key.split_once('/') else {
                continue;
            };
            let r = ObjectRef::new_with(name, self.kinds.policy.clone()).within(ns);
            // Closed only when the controller stops.
            let _ = self.recheck.unbounded_send(r);
        }
    }

    /// Parse, merge and render with the engine. `wins`: set when `obj` is the winner of its
    /// workload set (a namespace policy that parses, with no older one of its selector).
    fn render(&self, obj: &Policy, wins: &mut bool) -> Result<Result<Rendered, Refused>, Error> {
        let refused = |e: PolicyError| {
            let not_accepted = e
                .message()
                .starts_with("UnsupportedCombination")
                .then_some("UnsupportedCombination");
            Ok(Err(Refused {
                error: e.to_string(),
                not_accepted,
                mesh: None,
            }))
        };
        if let Some(depth) = obj.too_deep {
            return Ok(Err(Refused {
                error: format!("spec: {}", too_deep(depth)),
                not_accepted: None,
                mesh: None,
            }));
        }
        let dp = match DataPolicy::from_value(&self.policy_value(obj)?) {
            Ok(dp) => dp,
            Err(e) => return refused(e),
        };
        let root = self.settings.mesh_root_namespace.as_str();
        let mesh = if dp.namespace.as_deref() == Some(root) {
            // One mesh policy: its filter is `meshdlp.mesh`, two would both be inserted.
            if let Some(oldest) = self.mesh_policies().first() {
                if oldest.uid() != obj.uid() {
                    return Ok(Err(Refused {
                        error: format!(
                            "metadata.name: Conflict: {} is the mesh policy of the mesh root namespace `{root}` (the oldest DataPolicy there); only one is programmed",
                            id(oldest)
                        ),
                        not_accepted: Some("Conflict"),
                        mesh: None,
                    }));
                }
            }
            None
        } else {
            if let Some(older) = self.older_same_selector(obj, &dp)? {
                return Ok(Err(Refused {
                    error: format!(
                        "spec.selector: Conflict: the older DataPolicy {older} selects the same workloads; one policy per workload set is programmed"
                    ),
                    not_accepted: Some("Conflict"),
                    mesh: None,
                }));
            }
            *wins = true;
            match self.mesh_policy()? {
                None => None,
                Some((mesh, Ok(parsed))) => Some((mesh, parsed)),
                Some((mesh, Err(error))) => {
                    return Ok(Err(Refused {
                        error,
                        not_accepted: None,
                        mesh: Some(mesh.obj.clone()),
                    }))
                }
            }
        };
        let opts = RenderOptions {
            image: self.settings.image.clone(),
            mesh_root_namespace: self.settings.mesh_root_namespace.clone(),
        };
        match render(&dp, mesh.as_ref().map(|(_, m)| m), &opts) {
            Ok(rendered) => Ok(Ok(rendered)),
            Err(e) => {
                let mut out = refused(e);
                // Compiles alone, not with the mesh policy: the mesh update is what it cannot take.
                if let (Ok(Err(r)), Some((mesh, _))) = (&mut out, mesh) {
                    if r.not_accepted.is_none() && render(&dp, None, &opts).is_ok() {
                        r.mesh = Some(mesh.obj.clone());
                    }
                }
                out
            }
        }
    }

    async fn apply(&self, api: &Api<Policy>, obj: &Policy) -> Result<Action, Error> {
        let ns = obj.namespace().ok_or(Error::NoNamespace)?;
        let mut requeue = Duration::from_secs(30 * 60);
        let mut stale_mesh = None;
        let mut wins = false;
        let conditions = match self.render(obj, &mut wins)? {
            Ok(rendered) => {
                let mut compiled = "the engine compiled the policy".to_string();
                if let Some(mesh) = &rendered.merged_with {
                    compiled.push_str(&format!(" (merged with the mesh policy {mesh})"));
                }
                let accepted = Condition::new("Accepted", true, "Accepted", "");
                let compiled = Condition::new("Compiled", true, "Compiled", compiled);
                match self.program(&ns, obj, &rendered).await? {
                    Ok(written) => {
                        self.succeeded(obj);
                        vec![
                            accepted,
                            compiled,
                            Condition::new("Programmed", true, "Programmed", written.join(", ")),
                        ]
                    }
                    Err(refused) => {
                        // The message stays the same from one retry to the next (no attempt
                        // count, no time): an unchanged status is not written again.
                        requeue = self.failed(obj);
                        self.health.apply_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(datapolicy = %id(obj), retry_in_seconds = requeue.as_secs(), error = %refused, "apply refused by the API server");
                        let kept = self.kept(&ns, obj).await?;
                        vec![
                            accepted,
                            compiled,
                            Condition::new(
                                "Programmed",
                                false,
                                "ApplyFailed",
                                format!("{refused}; retried with backoff; {kept}"),
                            ),
                        ]
                    }
                }
            }
            Err(refused) => {
                self.succeeded(obj);
                self.health.compile_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(datapolicy = %id(obj), error = %refused.error, "policy not programmed");
                let mut kept = self.kept(&ns, obj).await?;
                let message = refused.error;
                if refused.not_accepted == Some("Conflict") {
                    requeue = CONFLICT_RECHECK;
                }
                let (accepted, compiled) = if let Some(reason) = refused.not_accepted {
                    (
                        Condition::new("Accepted", false, reason, message.clone()),
                        Condition::new("Compiled", false, "NotAccepted", message),
                    )
                } else if let Some(mesh) = refused.mesh {
                    if !kept.starts_with("nothing") {
                        kept.push_str(" (with the mesh rules of then)");
                    }
                    stale_mesh = Some((mesh, message.clone()));
                    (
                        Condition::new("Accepted", true, "Accepted", ""),
                        Condition::new("Compiled", false, "MeshMergeFailed", message),
                    )
                } else {
                    (
                        Condition::new("Accepted", true, "Accepted", ""),
                        Condition::new("Compiled", false, "InvalidPolicy", message),
                    )
                };
                vec![
                    accepted,
                    compiled,
                    Condition::new("Programmed", false, "NotCompiled", kept),
                ]
            }
        };
        let mut conditions = conditions;
        let overlaps = if wins && ns != self.settings.mesh_root_namespace {
            self.overlapping(obj)?
        } else {
            BTreeMap::new()
        };
        if !overlaps.is_empty() {
            conditions.push(Condition::new(
                "Overlapping",
                true,
                "SelectorOverlap",
                overlap_message(&overlaps),
            ));
            // As for a conflict: covers a partner removed while no controller ran its finalizer.
            requeue = requeue.min(CONFLICT_RECHECK);
        }
        if ns != self.settings.mesh_root_namespace {
            self.mark_mesh(obj, stale_mesh.as_ref().map(|(m, e)| (m, e.as_str())))
                .await;
        }
        self.write_status(api, obj, &conditions).await?;
        self.settle_conflicts(obj, wins.then(|| selector_of(obj)));
        self.settle_overlaps(obj, overlaps);
        Ok(Action::requeue(requeue))
    }

    /// Writes the rendered objects and deletes an owned object of the other kind (a delivery
    /// switch). `Ok(Err(..))`: the API server refused an object (its answer, bounded).
    async fn program(
        &self,
        ns: &str,
        obj: &DynamicObject,
        rendered: &Rendered,
    ) -> Result<Result<Vec<String>, String>, Error> {
        let mut written = Vec::new();
        for object in &rendered.objects {
            match self.apply_object(ns, object).await {
                Ok(w) => written.push(w),
                Err(Error::Kube(kube::Error::Api(status))) => {
                    let what = format!(
                        "{} {ns}/{}",
                        object["kind"].as_str().unwrap_or_default(),
                        object["metadata"]["name"].as_str().unwrap_or_default()
                    );
                    return Ok(Err(refusal(&what, &status)));
                }
                Err(e) => return Err(e),
            }
        }
        for ar in self.kinds.owned() {
            if !rendered
                .objects
                .iter()
                .any(|o| o["kind"] == ar.kind.as_str())
            {
                self.delete_owned(ar, ns, obj).await?;
            }
        }
        Ok(Ok(written))
    }

    /// Server-side apply of one rendered object; returns `Kind ns/name`.
    async fn apply_object(&self, ns: &str, object: &Value) -> Result<String, Error> {
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let Some(ar) = self.kinds.of(kind) else {
            return Err(Error::UnknownKind(kind.to_string()));
        };
        // The answer is the whole object, with what other managers added: decoded as metadata.
        let api: Api<Owned> = Api::namespaced_with(self.client.clone(), ns, ar);
        api.patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(object),
        )
        .await?;
        Ok(format!("{kind} {ns}/{name}"))
    }

    /// The owned objects of `obj` that exist now: `Kind ns/name`.
    async fn owned_objects(
        &self,
        ns: &str,
        obj: &DynamicObject,
    ) -> Result<Vec<(&ApiResource, String)>, Error> {
        let name = object_name(obj);
        let mut out = Vec::new();
        for ar in self.kinds.owned() {
            let api: Api<Owned> = Api::namespaced_with(self.client.clone(), ns, ar);
            if let Some(o) = get_opt(&api, &name).await? {
                if owned_by(&o, obj) {
                    out.push((ar, name.clone()));
                }
            }
        }
        Ok(out)
    }

    /// The Programmed=False message: what stays programmed from before.
    async fn kept(&self, ns: &str, obj: &DynamicObject) -> Result<String, Error> {
        let owned = self.owned_objects(ns, obj).await?;
        if owned.is_empty() {
            return Ok("nothing is programmed".into());
        }
        let list: Vec<String> = owned
            .iter()
            .map(|(ar, name)| format!("{} {ns}/{name}", ar.kind))
            .collect();
        let since = status::current(obj, "Programmed")
            .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
            .and_then(|c| c.get("observedGeneration"))
            .and_then(Value::as_i64)
            .map(|g| format!(" (generation {g})"))
            .unwrap_or_default();
        Ok(format!(
            "the objects programmed before{since} are kept unchanged: {}",
            list.join(", ")
        ))
    }

    async fn delete_owned(
        &self,
        ar: &ApiResource,
        ns: &str,
        obj: &DynamicObject,
    ) -> Result<(), Error> {
        let api: Api<Owned> = Api::namespaced_with(self.client.clone(), ns, ar);
        let name = object_name(obj);
        match get_opt(&api, &name).await? {
            Some(o) if owned_by(&o, obj) => {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {
                        tracing::info!(datapolicy = %id(obj), "deleted {} {ns}/{name}", ar.kind);
                        Ok(())
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            _ => Ok(()),
        }
    }

    async fn cleanup(&self, obj: &DynamicObject) -> Result<Action, Error> {
        let ns = obj.namespace().ok_or(Error::NoNamespace)?;
        for ar in self.kinds.owned() {
            self.delete_owned(ar, &ns, obj).await?;
        }
        self.mark_mesh(obj, None).await;
        self.succeeded(obj);
        self.settle_conflicts(obj, None);
        self.settle_overlaps(obj, BTreeMap::new());
        self.event(
            obj,
            EventType::Normal,
            "Deleted",
            "Cleanup",
            "the owned Istio objects were deleted".into(),
        )
        .await;
        Ok(Action::await_change())
    }

    async fn write_status(
        &self,
        api: &Api<Policy>,
        obj: &DynamicObject,
        conditions: &[Condition],
    ) -> Result<(), Error> {
        let generation = obj.metadata.generation;
        let (mut patch, mut changed) = status::patch(obj, generation, conditions);
        let overlap_before = |o: &DynamicObject| {
            status::current(o, "Overlapping")
                .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
                .and_then(|c| c.get("message").and_then(Value::as_str))
                .map(str::to_string)
        };
        let mut overlapped = overlap_before(obj);
        if patch.is_some() {
            // The cache may lag behind our own last status write (a reconcile triggered by the
            // owned object's change): decide again on the stored object, so a status is never
            // written twice with a new lastTransitionTime.
            // A plain GET: the RBAC grants no `get` on the status subresource.
            let fresh = api.get(&obj.name_any()).await?;
            (patch, changed) = status::patch(&fresh, generation, conditions);
            overlapped = overlap_before(&fresh);
        }
        let written = patch.is_some();
        if let Some(patch) = patch {
            api.patch_status(
                &obj.name_any(),
                &PatchParams::apply(MANAGER),
                &Patch::Merge(&patch),
            )
            .await?;
        }
        // Overlapping is told apart (True is the warning): a Warning when it appears or names
        // other policies or labels, a Normal event when it goes.
        let overlap = conditions.iter().find(|c| c.type_ == "Overlapping");
        changed.retain(|t| *t != "Overlapping");
        match (overlap, overlapped) {
            _ if !written => {}
            (Some(c), before) if before.as_deref() != Some(c.message.as_str()) => {
                tracing::warn!(datapolicy = %id(obj), overlap = %c.message, "selectors overlap");
                self.event(
                    obj,
                    EventType::Warning,
                    c.reason,
                    "Reconcile",
                    c.message.clone(),
                )
                .await;
            }
            (None, Some(_)) => {
                tracing::info!(datapolicy = %id(obj), "selectors no longer overlap");
                self.event(
                    obj,
                    EventType::Normal,
                    "SelectorOverlapResolved",
                    "Reconcile",
                    "no other DataPolicy of the namespace may select a pod this one selects".into(),
                )
                .await;
            }
            _ => {}
        }
        for c in conditions.iter().filter(|c| changed.contains(&c.type_)) {
            let kind = if c.status {
                EventType::Normal
            } else {
                EventType::Warning
            };
            let reason = if c.status { c.type_ } else { c.reason };
            self.event(obj, kind, reason, "Reconcile", c.message.clone())
                .await;
        }
        if let Some(c) = conditions
            .iter()
            .find(|c| c.type_ == "Programmed" && c.status)
        {
            if changed.contains(&"Programmed") {
                tracing::info!(datapolicy = %id(obj), objects = %c.message, "programmed");
            }
        }
        Ok(())
    }

    async fn event(
        &self,
        obj: &DynamicObject,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        let mut note = note;
        if note.len() > 1000 {
            let mut end = 1000;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = recorder
            .publish(&event, &obj.object_ref(&self.kinds.policy))
            .await
        {
            tracing::warn!(datapolicy = %id(obj), error = %e, "recording an event");
        }
    }
}

/// A refused apply as a condition message: the server's code, reason and message, bounded (the
/// object holds no key material; its message may quote the object's fields).
fn refusal(what: &str, status: &kube::core::Status) -> String {
    let mut message = status.message.clone();
    if message.len() > MAX_API_MESSAGE {
        let mut cut = MAX_API_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(" ...");
    }
    let reason = if status.reason.is_empty() {
        String::new()
    } else {
        format!(" {}", status.reason)
    };
    format!(
        "the API server refused {what} ({}{reason}): {message}",
        status.code
    )
}

/// Why an object nested too deep for the controller is not read.
fn too_deep(depth: usize) -> String {
    format!("nested {depth} levels deep, more than the {MAX_DEPTH} the controller reads (stored before the CRD bounded an action to one level of scalars): fix or delete it")
}

/// The name of the objects rendered for `obj` (render.rs: `meshdlp-<name>`).
fn object_name(obj: &DynamicObject) -> String {
    format!("meshdlp-{}", obj.name_any())
}

fn owned_by(o: &Owned, owner: &DynamicObject) -> bool {
    let Some(uid) = owner.uid() else {
        return false;
    };
    o.owner_references().iter().any(|r| r.uid == uid)
}

/// An owned object's metadata (the whole object is sent; only the metadata is decoded, whatever
/// the depth of the rest).
async fn get_opt(api: &Api<Owned>, name: &str) -> Result<Option<Owned>, Error> {
    match api.get_opt(name).await {
        Ok(o) => Ok(o),
        // The kind is not served (e.g. no WasmPlugin CRD): nothing of it exists.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_5_s_and_stops_at_5_min() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(0), FIRST_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_refusal_is_bounded_and_names_the_object() {
        let status = kube::core::Status {
            code: 500,
            reason: "InternalError".into(),
            message: "é".repeat(2000),
            ..kube::core::Status::default()
        };
        let m = refusal("EnvoyFilter shop/meshdlp-x", &status);
        assert!(m.starts_with(
            "the API server refused EnvoyFilter shop/meshdlp-x (500 InternalError): "
        ));
        assert!(
            m.len() < MAX_API_MESSAGE + 100 && m.ends_with(" ..."),
            "{}",
            m.len()
        );
    }

    /// The mesh policy's changes are told once each, status writes not at all, a relist's at
    /// its end (when the cache has them) and only if something changed meanwhile.
    #[test]
    fn mesh_changes_are_told_once_and_after_a_relist() {
        let (tx, mut rx) = mpsc::unbounded();
        let mut detect = mesh_change_detector("istio-system".into(), tx);
        let policy = |ns: &str, uid: &str, generation: i64| {
            let json = serde_json::json!({
                "apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": "p", "namespace": ns, "uid": uid, "generation": generation},
                "spec": {},
            });
            Policy::from_json(&json.to_string()).unwrap()
        };
        let mut told = |events: Vec<watcher::Event<Policy>>| {
            for e in events {
                detect(&Ok(e));
            }
            let mut n = 0;
            while let Ok(()) = rx.try_recv() {
                n += 1;
            }
            n
        };
        use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
        let start = vec![
            Init,
            InitApply(policy("istio-system", "m", 1)),
            InitApply(policy("shop", "s", 1)),
        ];
        assert_eq!(told(start), 0, "not before the cache has them");
        assert_eq!(told(vec![InitDone]), 1);
        assert_eq!(
            told(vec![Apply(policy("istio-system", "m", 1))]),
            0,
            "a status write"
        );
        assert_eq!(told(vec![Apply(policy("istio-system", "m", 2))]), 1);
        assert_eq!(
            told(vec![Apply(policy("shop", "s", 2))]),
            0,
            "not a mesh policy"
        );
        let same = vec![Init, InitApply(policy("istio-system", "m", 2)), InitDone];
        assert_eq!(told(same), 0, "a relist with nothing changed");
        assert_eq!(told(vec![Init, InitDone]), 1, "deleted while not watched");
        assert_eq!(told(vec![Apply(policy("istio-system", "n", 1))]), 1);
        assert_eq!(told(vec![Delete(policy("istio-system", "n", 1))]), 1);
        assert_eq!(told(vec![Delete(policy("shop", "s", 2))]), 0);
    }

    fn labels(pairs: &[(&str, &str)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect(),
        )
    }

    #[test]
    fn selectors_overlap_unless_a_key_is_required_with_two_values() {
        let shop = labels(&[("app", "shop")]);
        let web = labels(&[("tier", "web")]);
        let shop_web = labels(&[("app", "shop"), ("tier", "web")]);
        let shop_api = labels(&[("app", "shop"), ("tier", "api")]);
        let everything = labels(&[]);
        let cases = [
            (&shop, &web, true),            // no common key: a pod may carry both
            (&shop, &shop_web, true),       // a subset
            (&everything, &shop_web, true), // the empty selector selects every pod
            (&shop_web, &shop_api, false),  // tier: web or api
            (&labels(&[("app", "a")]), &labels(&[("app", "b")]), false),
            (&shop, &shop, true), // equal: a conflict, decided before
        ];
        for (a, b, want) in cases {
            assert_eq!(may_overlap(a, b), want, "{a} vs {b}");
            assert_eq!(may_overlap(b, a), want, "{b} vs {a} (symmetric)");
        }
        assert_eq!(shared_labels(&shop, &web), "app=shop, tier=web");
        assert_eq!(shared_labels(&web, &shop_web), "app=shop, tier=web");
        assert_eq!(shared_labels(&everything, &shop), "app=shop");
        assert_eq!(shared_labels(&everything, &everything), "any labels");
    }

    #[test]
    fn an_overlap_wakes_each_side_once_per_change() {
        let mut map = Overlaps::new();
        let one = |k: &str, l: &str| BTreeMap::from([(k.to_string(), l.to_string())]);
        // a finds b: b is told; b then finds a (already recorded): nobody is woken
        let web = "app=shop, tier=web";
        assert_eq!(settle_overlaps(&mut map, "s/a", one("s/b", web)), ["s/b"]);
        assert!(settle_overlaps(&mut map, "s/b", one("s/a", web)).is_empty());
        // a's status write echo: the same again
        assert!(settle_overlaps(&mut map, "s/a", one("s/b", web)).is_empty());
        // b changes its selector, still overlapping: a's message names other labels
        let api = "app=shop, tier=api";
        assert_eq!(settle_overlaps(&mut map, "s/b", one("s/a", api)), ["s/a"]);
        assert!(settle_overlaps(&mut map, "s/a", one("s/b", api)).is_empty());
        // c arrives beside both
        let mut both = one("s/a", "app=shop");
        both.extend(one("s/b", api));
        assert_eq!(settle_overlaps(&mut map, "s/c", both), ["s/a", "s/b"]);
        // a goes: b and c are told, and nothing of a is left
        let mut woken = settle_overlaps(&mut map, "s/a", BTreeMap::new());
        woken.sort();
        assert_eq!(woken, ["s/b", "s/c"]);
        assert!(!map.contains_key("s/a") && map.values().all(|m| !m.contains_key("s/a")));
        // b moves away from c: c is told; then c finds nothing
        assert_eq!(settle_overlaps(&mut map, "s/b", BTreeMap::new()), ["s/c"]);
        assert!(settle_overlaps(&mut map, "s/c", BTreeMap::new()).is_empty());
        assert!(map.is_empty(), "{map:?}");
    }

    #[test]
    fn the_overlap_message_names_the_others_and_the_labels() {
        let mut others = BTreeMap::from([("shop/web".to_string(), "app=shop, tier=web".into())]);
        assert_eq!(
            overlap_message(&others),
            "spec.selector: a pod may get the filters of this policy and of shop/web (a pod labelled app=shop, tier=web), in an order Istio decides; both stay programmed (selectors that only partly overlap; give each workload one policy)"
        );
        others.insert("shop/all".into(), "app=shop".into());
        assert!(overlap_message(&others).contains(
            "of shop/all (a pod labelled app=shop), shop/web (a pod labelled app=shop, tier=web), in an order Istio decides; all stay"
        ));
    }

    #[test]
    fn selector_absent_or_empty_is_the_whole_namespace() {
        let obj = |spec: Value| -> DynamicObject {
            serde_json::from_value(serde_json::json!({
                "apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": "p", "namespace": "shop"}, "spec": spec,
            }))
            .unwrap()
        };
        let none = selector_of(&obj(serde_json::json!({})));
        assert_eq!(none, selector_of(&obj(serde_json::json!({"selector": {}}))));
        assert_eq!(
            none,
            selector_of(&obj(serde_json::json!({"selector": {"matchLabels": {}}})))
        );
        assert_ne!(
            none,
            selector_of(&obj(
                serde_json::json!({"selector": {"matchLabels": {"app": "a"}}})
            ))
        );
    }
}
