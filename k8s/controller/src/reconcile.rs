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
//!   namespace ones carry the mesh rules (engine merge).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalize};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use meshdlp::k8s::{
    render, DataPolicy, ImageRef, RenderOptions, Rendered, API_VERSION, GROUP, KIND,
    MANAGED_BY_LABEL, PLURAL, VERSION,
};
use meshdlp::PolicyError;
use serde_json::Value;

use crate::health::Health;
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
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(client: Client, settings: Settings, health: Arc<Health>) -> anyhow::Result<()> {
    let kinds = Kinds::new();
    let policies: Api<DynamicObject> = Api::all_with(client.clone(), &kinds.policy);
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}=meshdlp"));
    let mesh_policies: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &settings.mesh_root_namespace, &kinds.policy);
    let controller =
        Controller::new_with(policies, watcher::Config::default(), kinds.policy.clone())
            .owns_with(
                Api::<DynamicObject>::all_with(client.clone(), &kinds.envoy_filter),
                kinds.envoy_filter.clone(),
                managed.clone(),
            )
            .owns_with(
                Api::<DynamicObject>::all_with(client.clone(), &kinds.wasm_plugin),
                kinds.wasm_plugin.clone(),
                managed,
            )
            .reconcile_all_on(mesh_changes(mesh_policies))
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

/// One `()` per change of a mesh policy (its generation, its deletion), so every DataPolicy is
/// reconciled against the new mesh rules. Status writes do not count.
fn mesh_changes(api: Api<DynamicObject>) -> impl Stream<Item = ()> + Send + 'static {
    let mut seen: HashMap<String, (Option<i64>, bool)> = HashMap::new();
    watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| {
            let changed = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    let state = (
                        o.metadata.generation,
                        o.metadata.deletion_timestamp.is_some(),
                    );
                    seen.insert(o.uid().unwrap_or_default(), state) != Some(state)
                }
                Ok(watcher::Event::Delete(o)) => {
                    seen.remove(&o.uid().unwrap_or_default());
                    true
                }
                _ => false,
            };
            futures::future::ready(changed.then_some(()))
        })
}

fn error_policy(obj: Arc<DynamicObject>, error: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.health.reconcile_errors.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        datapolicy = %id(&obj),
        error = %error,
        "reconcile failed, retrying"
    );
    Action::requeue(Duration::from_secs(10))
}

fn id(obj: &DynamicObject) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = obj.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ctx.kinds.policy);
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
}

impl Ctx {
    /// The DataPolicy as the engine reads it (the watch may leave out apiVersion/kind).
    fn policy_value(&self, obj: &DynamicObject) -> Result<Value, Error> {
        let mut value = serde_json::to_value(obj)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), API_VERSION.into());
            map.insert("kind".into(), KIND.into());
        }
        Ok(value)
    }

    /// The DataPolicies of the mesh root namespace that are not being deleted, oldest first
    /// (read fresh, not from the cache: a mesh change re-reconciles everything and must not
    /// race the cache).
    async fn mesh_policies(&self) -> Result<Vec<DynamicObject>, Error> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.settings.mesh_root_namespace,
            &self.kinds.policy,
        );
        let mut list: Vec<DynamicObject> = api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
            .collect();
        list.sort_by(|a, b| {
            (&a.metadata.creation_timestamp, a.name_any())
                .cmp(&(&b.metadata.creation_timestamp, b.name_any()))
        });
        Ok(list)
    }

    /// The mesh policy a namespace policy merges with: the oldest of the mesh root namespace.
    async fn mesh_policy(&self) -> Result<Option<Result<DataPolicy, String>>, Error> {
        let list = self.mesh_policies().await?;
        let Some(mesh) = list.first() else {
            return Ok(None);
        };
        // Located as render() locates the mesh policy's compile errors.
        let parsed = DataPolicy::from_value(&self.policy_value(mesh)?).map_err(|e| {
            format!(
                "{}: (in the mesh policy {}) {}",
                e.location(),
                id(mesh),
                e.message()
            )
        });
        Ok(Some(parsed))
    }

    /// An older DataPolicy of `obj`'s namespace with the same selector (empty = the whole
    /// namespace): it wins, `obj` is a conflict. Partial overlaps need the pods' labels (not
    /// read). Policies that do not parse are not programmed and do not count.
    async fn older_same_selector(
        &self,
        obj: &DynamicObject,
        dp: &DataPolicy,
    ) -> Result<Option<String>, Error> {
        let ns = obj.namespace().ok_or(Error::NoNamespace)?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &ns, &self.kinds.policy);
        let age = |o: &DynamicObject| (o.metadata.creation_timestamp.clone(), o.name_any());
        let mut older = Vec::new();
        for other in api.list(&ListParams::default()).await?.items {
            if other.uid() == obj.uid()
                || other.metadata.deletion_timestamp.is_some()
                || age(&other) >= age(obj)
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
        Ok(older.into_iter().next().map(|(_, id)| id))
    }

    /// Parse, merge and render with the engine.
    async fn render(&self, obj: &DynamicObject) -> Result<Result<Rendered, Refused>, Error> {
        let refused = |e: PolicyError| {
            let not_accepted = e
                .message()
                .starts_with("UnsupportedCombination")
                .then_some("UnsupportedCombination");
            Ok(Err(Refused {
                error: e.to_string(),
                not_accepted,
            }))
        };
        let dp = match DataPolicy::from_value(&self.policy_value(obj)?) {
            Ok(dp) => dp,
            Err(e) => return refused(e),
        };
        let root = self.settings.mesh_root_namespace.as_str();
        let mesh = if dp.namespace.as_deref() == Some(root) {
            // One mesh policy: its filter is `meshdlp.mesh`, two would both be inserted.
            if let Some(oldest) = self.mesh_policies().await?.first() {
                if oldest.uid() != obj.uid() {
                    return Ok(Err(Refused {
                        error: format!(
                            "metadata.name: Conflict: {} is the mesh policy of the mesh root namespace `{root}` (the oldest DataPolicy there); only one is programmed",
                            id(oldest)
                        ),
                        not_accepted: Some("Conflict"),
                    }));
                }
            }
            None
        } else {
            if let Some(older) = self.older_same_selector(obj, &dp).await? {
                return Ok(Err(Refused {
                    error: format!(
                        "spec.selector: Conflict: the older DataPolicy {older} selects the same workloads; one policy per workload set is programmed"
                    ),
                    not_accepted: Some("Conflict"),
                }));
            }
            match self.mesh_policy().await? {
                None => None,
                Some(Ok(mesh)) => Some(mesh),
                Some(Err(error)) => {
                    return Ok(Err(Refused {
                        error,
                        not_accepted: None,
                    }))
                }
            }
        };
        let opts = RenderOptions {
            image: self.settings.image.clone(),
            mesh_root_namespace: self.settings.mesh_root_namespace.clone(),
        };
        match render(&dp, mesh.as_ref(), &opts) {
            Ok(rendered) => Ok(Ok(rendered)),
            Err(e) => refused(e),
        }
    }

    async fn apply(&self, api: &Api<DynamicObject>, obj: &DynamicObject) -> Result<Action, Error> {
        let ns = obj.namespace().ok_or(Error::NoNamespace)?;
        // A conflict is looked at again soon: nothing else wakes it when the winner goes.
        let mut requeue = Duration::from_secs(30 * 60);
        let conditions = match self.render(obj).await? {
            Ok(rendered) => {
                let mut written = Vec::new();
                for object in &rendered.objects {
                    written.push(self.apply_object(&ns, object).await?);
                }
                // A delivery mode switch leaves the other kind behind.
                for ar in self.kinds.owned() {
                    if !rendered
                        .objects
                        .iter()
                        .any(|o| o["kind"] == ar.kind.as_str())
                    {
                        self.delete_owned(ar, &ns, obj).await?;
                    }
                }
                let mut compiled = "the engine compiled the policy".to_string();
                if let Some(mesh) = &rendered.merged_with {
                    compiled.push_str(&format!(" (merged with the mesh policy {mesh})"));
                }
                vec![
                    Condition::new("Accepted", true, "Accepted", ""),
                    Condition::new("Compiled", true, "Compiled", compiled),
                    Condition::new("Programmed", true, "Programmed", written.join(", ")),
                ]
            }
            Err(refused) => {
                self.health.compile_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(datapolicy = %id(obj), error = %refused.error, "policy not programmed");
                let kept = self.kept(&ns, obj).await?;
                let message = refused.error;
                if refused.not_accepted == Some("Conflict") {
                    requeue = Duration::from_secs(10);
                }
                let (accepted, compiled) = if let Some(reason) = refused.not_accepted {
                    (
                        Condition::new("Accepted", false, reason, message.clone()),
                        Condition::new("Compiled", false, "NotAccepted", message),
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
        self.write_status(api, obj, &conditions).await?;
        Ok(Action::requeue(requeue))
    }

    /// Server-side apply of one rendered object; returns `Kind ns/name`.
    async fn apply_object(&self, ns: &str, object: &Value) -> Result<String, Error> {
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let Some(ar) = self.kinds.of(kind) else {
            return Err(Error::UnknownKind(kind.to_string()));
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, ar);
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
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, ar);
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
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, ar);
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
        api: &Api<DynamicObject>,
        obj: &DynamicObject,
        conditions: &[Condition],
    ) -> Result<(), Error> {
        let generation = obj.metadata.generation;
        let (mut patch, mut changed) = status::patch(obj, generation, conditions);
        if patch.is_some() {
            // The cache may lag behind our own last status write (a reconcile triggered by the
            // owned object's change): decide again on the stored object, so a status is never
            // written twice with a new lastTransitionTime.
            // A plain GET: the RBAC grants no `get` on the status subresource.
            let fresh = api.get(&obj.name_any()).await?;
            (patch, changed) = status::patch(&fresh, generation, conditions);
        }
        if let Some(patch) = patch {
            api.patch_status(
                &obj.name_any(),
                &PatchParams::apply(MANAGER),
                &Patch::Merge(&patch),
            )
            .await?;
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

/// The name of the objects rendered for `obj` (render.rs: `meshdlp-<name>`).
fn object_name(obj: &DynamicObject) -> String {
    format!("meshdlp-{}", obj.name_any())
}

fn owned_by(o: &DynamicObject, owner: &DynamicObject) -> bool {
    let Some(uid) = owner.uid() else {
        return false;
    };
    o.owner_references().iter().any(|r| r.uid == uid)
}

async fn get_opt(api: &Api<DynamicObject>, name: &str) -> Result<Option<DynamicObject>, Error> {
    match api.get_opt(name).await {
        Ok(o) => Ok(o),
        // The kind is not served (e.g. no WasmPlugin CRD): nothing of it exists.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}
