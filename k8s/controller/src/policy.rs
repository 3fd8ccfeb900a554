//! A DataPolicy as the controller reads it: a `DynamicObject` that decoding cannot fail on.
//!
//! kube-client decodes every list, watch event and response with serde_json, which stops at 128
//! levels of nesting. The CRD bounds the depth of what it stores now (an action is a name or one
//! level of scalars), but objects stored before that CRD are still served as they are: one of
//! them, nested 130 levels deep, failed the DataPolicy list for every namespace, so nothing was
//! reconciled anywhere (review of session 7). Here each object is first taken as raw JSON
//! (serde_json skips a value without recursing), its depth is measured, and only then is it
//! parsed; a deeper one keeps its metadata and its `status` only and is refused by the reconcile
//! (Compiled=False), where its owner sees it. Its status is kept so that an unchanged verdict is
//! not written again (without it every reconcile rewrote the conditions and sent the events anew).
//!
//! The Istio objects the controller owns are read the same way ([`Owned`]): their metadata only,
//! `managedFields` left out (a patch value nested 130 levels deep is recorded there as deeply).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Deref;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{ApiResource, DynamicObject, ObjectMeta};
use kube::core::DynamicResourceScope;
use kube::Resource;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// Deepest nesting parsed; a DataPolicy under the current CRD is about 10 levels deep.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone)]
pub struct Policy {
    pub obj: DynamicObject,
    /// The object as stored was nested deeper than [`MAX_DEPTH`]: only its metadata was kept.
    pub too_deep: Option<usize>,
}

impl Deref for Policy {
    type Target = DynamicObject;
    fn deref(&self) -> &DynamicObject {
        &self.obj
    }
}

/// The nesting depth of a JSON text (arrays and objects), without recursion.
pub fn depth(json: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in json.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The metadata alone: serde skips the other fields without recursing, `managedFields` too
/// (the server records the field set of the spec there: it is as deep as the spec).
#[derive(Deserialize)]
struct MetaOnly {
    #[serde(default)]
    metadata: MetaLite,
    /// Taken raw and parsed only when shallow (the controller writes it; it is about 4 deep).
    #[serde(default)]
    status: Option<Box<RawValue>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct MetaLite {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
}

impl From<MetaLite> for ObjectMeta {
    fn from(m: MetaLite) -> ObjectMeta {
        ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            finalizers: m.finalizers,
            labels: m.labels,
            annotations: m.annotations,
            owner_references: m.owner_references,
            ..ObjectMeta::default()
        }
    }
}

impl Policy {
    pub fn from_json(json: &str) -> Result<Policy, serde_json::Error> {
        let d = depth(json);
        if d <= MAX_DEPTH {
            return Ok(Policy {
                obj: serde_json::from_str(json)?,
                too_deep: None,
            });
        }
        let meta: MetaOnly = serde_json::from_str(json)?;
        let mut data = serde_json::Map::new();
        if let Some(status) = meta.status.filter(|s| depth(s.get()) <= MAX_DEPTH) {
            data.insert("status".into(), serde_json::from_str(status.get())?);
        }
        Ok(Policy {
            obj: DynamicObject {
                types: None,
                metadata: meta.metadata.into(),
                data: serde_json::Value::Object(data),
            },
            too_deep: Some(d),
        })
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        Policy::from_json(raw.get()).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.obj.serialize(s)
    }
}

impl Resource for Policy {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::kind(dt)
    }
    fn group(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::group(dt)
    }
    fn version(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::version(dt)
    }
    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::api_version(dt)
    }
    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.obj.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.obj.metadata
    }
}

/// An owned EnvoyFilter or WasmPlugin as the controller reads it (watch, get): its metadata only,
/// whatever the depth of the rest. Only names, labels and owner references are ever used; a
/// labelled object nested deeper than serde_json's 128 levels failed the owned watch (for every
/// namespace: drift was no longer repaired) and the reads of the reconcile (review of session 8).
/// The server sends the whole object (a metadata-only watch still carries `managedFields`, as
/// deep as the spec); serde skips everything but the fields below without recursing.
#[derive(Debug, Clone)]
pub struct Owned {
    pub metadata: ObjectMeta,
}

impl<'de> Deserialize<'de> for Owned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Meta {
            #[serde(default)]
            metadata: MetaLite,
        }
        Ok(Owned {
            metadata: Meta::deserialize(d)?.metadata.into(),
        })
    }
}

impl Resource for Owned {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::kind(dt)
    }
    fn group(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::group(dt)
    }
    fn version(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::version(dt)
    }
    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::api_version(dt)
    }
    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;

    fn nested(levels: usize) -> String {
        let mut action = "\"redact\"".to_string();
        for _ in 0..levels {
            action = format!("{{\"type\":\"mask\",\"x\":{action}}}");
        }
        // The server's managedFields record the spec's field set: as deep as the spec.
        let mut fields = "{}".to_string();
        for _ in 0..levels {
            fields = format!("{{\"f:x\":{fields}}}");
        }
        format!(
            r#"{{"apiVersion":"meshdlp.io/v1alpha1","kind":"DataPolicy","metadata":{{"name":"deep","namespace":"shop","uid":"u1","generation":3,"finalizers":["meshdlp.io/cleanup"],"managedFields":[{{"manager":"kubectl","operation":"Apply","fieldsType":"FieldsV1","fieldsV1":{fields}}}]}},"spec":{{"defaultRoute":{{"response":{{"defaultAction":{action}}}}}}}}}"#
        )
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(depth(r#"{"a":"[{\"}{[","b":[[1]]}"#), 3);
        assert_eq!(depth("1"), 0);
    }

    /// Regression (review of session 7): one object deeper than serde_json's limit failed the
    /// whole DataPolicy list.
    #[test]
    fn a_list_with_a_deep_object_decodes() {
        let list = format!(
            r#"{{"apiVersion":"v1","kind":"List","metadata":{{}},"items":[{},{}]}}"#,
            nested(130),
            nested(2)
        );
        assert!(serde_json::from_str::<kube::core::ObjectList<DynamicObject>>(&list).is_err());
        let got: kube::core::ObjectList<Policy> = serde_json::from_str(&list).unwrap();
        assert!(got.items[0].too_deep.is_some_and(|d| d > 130));
        assert_eq!(got.items[0].metadata.name.as_deref(), Some("deep"));
        assert_eq!(got.items[0].metadata.generation, Some(3));
        assert_eq!(got.items[0].finalizers(), ["meshdlp.io/cleanup"]);
        assert_eq!(got.items[1].too_deep, None);
        assert_eq!(
            got.items[1].data["spec"]["defaultRoute"]["response"]["defaultAction"]["x"]["x"],
            "redact"
        );
        let event = format!(r#"{{"type":"ADDED","object":{}}}"#, nested(500));
        let got: kube::core::WatchEvent<Policy> = serde_json::from_str(&event).unwrap();
        assert!(
            matches!(got, kube::core::WatchEvent::Added(p) if p.too_deep.is_some_and(|d| d > 500))
        );
    }

    /// Regression (review of session 8): a too-deep DataPolicy kept no status, so every reconcile
    /// found none and wrote its conditions (and sent its events) again.
    #[test]
    fn a_deep_object_keeps_its_status() {
        let status =
            r#"{"observedGeneration":3,"conditions":[{"type":"Compiled","status":"False"}]}"#;
        let json =
            nested(130).replacen(r#","spec":"#, &format!(r#","status":{status},"spec":"#), 1);
        let got = Policy::from_json(&json).unwrap();
        assert!(got.too_deep.is_some());
        assert_eq!(
            got.data["status"],
            serde_json::from_str::<serde_json::Value>(status).unwrap()
        );
        // A status too deep itself is dropped, not parsed.
        let mut deep_status = "1".to_string();
        for _ in 0..200 {
            deep_status = format!("[{deep_status}]");
        }
        let json = nested(130).replacen(
            r#","spec":"#,
            &format!(r#","status":{deep_status},"spec":"#),
            1,
        );
        let got = Policy::from_json(&json).unwrap();
        assert!(got.data.get("status").is_none());
    }

    /// Regression (review of session 8): a labelled EnvoyFilter nested 130 levels deep (its patch
    /// value, and the managedFields recording it) failed the owned objects' watch.
    #[test]
    fn an_owned_object_is_read_whatever_its_depth() {
        let mut value = "1".to_string();
        let mut fields = "{}".to_string();
        for _ in 0..300 {
            value = format!(r#"{{"x":{value}}}"#);
            fields = format!(r#"{{"f:x":{fields}}}"#);
        }
        let ef = |name: &str| {
            format!(
                r#"{{"apiVersion":"networking.istio.io/v1alpha3","kind":"EnvoyFilter","metadata":{{"name":"{name}","namespace":"shop","uid":"u-{name}","labels":{{"app.kubernetes.io/managed-by":"meshdlp"}},"ownerReferences":[{{"apiVersion":"meshdlp.io/v1alpha1","kind":"DataPolicy","name":"p","uid":"owner","controller":true}}],"managedFields":[{{"manager":"kubectl","operation":"Update","fieldsType":"FieldsV1","fieldsV1":{fields}}}]}},"spec":{{"configPatches":[{{"patch":{{"value":{value}}}}}]}}}}"#
            )
        };
        let list = format!(
            r#"{{"apiVersion":"v1","kind":"List","metadata":{{}},"items":[{},{}]}}"#,
            ef("deep"),
            ef("other")
        );
        assert!(serde_json::from_str::<kube::core::ObjectList<DynamicObject>>(&list).is_err());
        let got: kube::core::ObjectList<Owned> = serde_json::from_str(&list).unwrap();
        assert_eq!(got.items[0].name_any(), "deep");
        assert_eq!(got.items[1].owner_references()[0].uid, "owner");
        assert_eq!(
            got.items[1].labels()["app.kubernetes.io/managed-by"],
            "meshdlp"
        );
        let event = format!(r#"{{"type":"MODIFIED","object":{}}}"#, ef("deep"));
        let got: kube::core::WatchEvent<Owned> = serde_json::from_str(&event).unwrap();
        assert!(
            matches!(got, kube::core::WatchEvent::Modified(o) if o.uid().as_deref() == Some("u-deep"))
        );
    }
}
