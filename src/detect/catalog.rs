//! The built-in classes as people read them: `meshdlp classes` and docs/CLASSES.md.

use serde::Serialize;

use super::builtin_pack;
use crate::error::PolicyError;

/// One built-in class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassInfo {
    /// The class name policies use (`email`).
    pub name: String,
    /// Its group (`pii`, `secrets`, `national_id.us`).
    pub group: String,
    /// `<group>.<name>`: also a valid selector.
    pub qualified: String,
    pub description: String,
    pub detectors: Vec<DetectorInfo>,
}

/// One detector of a class.
#[derive(Debug, Clone, Serialize)]
pub struct DetectorInfo {
    pub id: String,
    /// `pattern` (found anywhere in a text), `key` (the value of a hinted key), or both.
    pub finds: &'static str,
    /// Checksum or structural check applied to a match (`luhn`, `iban`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validator: Option<String>,
    /// Literals that must occur before the pattern runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// JSON / form keys that select (key detectors) or raise the confidence of the detector.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_hints: Vec<String>,
    /// Words before a match that raise its confidence.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<String>,
    pub confidence: f32,
    /// A body this detector finds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

/// Every built-in class with its detectors, in the pack's order of classes.
pub fn catalog() -> Result<Vec<ClassInfo>, PolicyError> {
    let pack = builtin_pack()?;
    let mut out = Vec::with_capacity(pack.class.len());
    for c in &pack.class {
        let detectors = pack
            .detector
            .iter()
            .filter(|d| d.class == c.name)
            .map(|d| DetectorInfo {
                id: d.id.clone(),
                finds: match (d.pattern.is_some(), d.value_pattern.is_some()) {
                    (true, true) => "pattern, key",
                    (false, true) => "key",
                    _ => "pattern",
                },
                validator: d.validator.and_then(|v| {
                    serde_json::to_value(v)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                }),
                keywords: d.keywords.clone(),
                key_hints: d.key_hints.clone(),
                context: d.context.clone(),
                confidence: d.confidence,
                example: d.example.clone(),
            })
            .collect();
        out.push(ClassInfo {
            name: c.name.clone(),
            group: c.group.clone(),
            qualified: format!("{}.{}", c.group, c.name),
            description: c.description.clone(),
            detectors,
        });
    }
    Ok(out)
}
