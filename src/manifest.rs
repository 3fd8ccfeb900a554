//! The policy manifest as people write it: plain serde types, no validation.
//!
//! These types are the single source of truth for the policy format. The Kubernetes CRD schema
//! is generated from them (feature `schema`), so every field is documented here. Validation and
//! compilation into a ready-to-use [`crate::Policy`] live in [`crate::policy`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "schema")]
use schemars::JsonSchema;

/// A complete policy document.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// `enforce` (default) applies verdicts; `monitor` detects, counts and logs only.
    #[serde(default)]
    pub mode: Mode,
    /// Findings below this confidence are ignored (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_confidence: Option<f32>,
    /// Custom data classes, detected beside the built-in ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ClassSpec>,
    /// Keys for `hash` and `tokenize`, referenced by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeySpec>,
    /// Routes, tried in order; the first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSpec>,
    /// How request paths are compared with route matchers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingSpec>,
    /// What applies when no route matches. Absent: bodies of unmatched routes are inspected with
    /// every class enabled and the default action (`redact`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_route: Option<RouteRules>,
}

/// Route matching settings. Paths are always normalised (see `docs/POLICY.md`, "Routes").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingSpec {
    /// Whether paths are compared case-sensitively (default `true`, as RFC 3986 and most
    /// frameworks do). Set `false` when the application serves `/Users` and `/users` alike
    /// (ASP.NET, Express by default), so `/Users` cannot step around the `/users` route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_sensitive: Option<bool>,
}

/// Enforce or only observe.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Monitor,
}

/// A custom data class.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClassSpec {
    /// Class id, `[a-z][a-z0-9_]*`; must not clash with a built-in class.
    pub name: String,
    /// Regular expression (Rust `regex` syntax) matching a value. Optional when `keyHints` is
    /// given: the whole value of a hinted JSON key is then the finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Literals that must occur in the text for the pattern to run (case-insensitive prefilter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// Checksum the match must pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<Validator>,
    /// JSON key names (case and `_`/`-` insensitive) that raise confidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_hints: Vec<String>,
    /// Words shortly before a match that raise confidence, matched in any case (for letters
    /// beyond ASCII: lower case, upper case, or a capital first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context_words: Vec<String>,
    /// Base confidence of a match (default 0.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// Exact values that are never findings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
}

/// Checksums and structural validators.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    Luhn,
    Mod97,
    CreditCard,
    UsSsn,
    Iban,
    Ipv4,
    Ipv6,
    Mac,
    Email,
    Phone,
    /// An international number (`+44 ...`, `0049 ...`) checked against its country's numbering
    /// plan (length and leading digit) for 16 country codes, E.164 bounds for the others.
    PhoneIntl,
    Entropy,
    Date,
    Street,
    /// Letters (any script), spaces, `'`, `-`, `.`; up to six words.
    PersonName,
    /// Two to four capitalised words ("Ada Lovelace", "Jean-Luc Picard").
    CapitalizedName,
    /// UK NHS number (modulus 11).
    UkNhs,
    /// Polish PESEL (birth date, weighted check digit).
    PlPesel,
    /// Brazilian CPF (two mod-11 check digits).
    BrCpf,
    /// Brazilian CNPJ (two mod-11 check digits).
    BrCnpj,
    /// Indian Aadhaar (Verhoeff).
    InAadhaar,
    /// Canadian SIN (Luhn, no leading 0 or 8).
    CaSin,
    /// French NIR (mod-97 key).
    FrNir,
    /// German Steuer-ID (ISO 7064 MOD 11,10 and its digit rule).
    DeSteuerId,
    /// US ITIN (area 9xx, IRS group ranges).
    UsItin,
    /// IMEI (15 digits, Luhn).
    Imei,
    /// Dutch BSN (11-proef).
    NlBsn,
    /// Spanish DNI/NIF/NIE (mod-23 check letter).
    EsNif,
    /// Italian codice fiscale (check letter, omocodia).
    ItFiscalCode,
    /// Swedish personnummer (date, Luhn).
    SePersonnummer,
    /// Swiss AHV/AVS number (756, EAN-13 check digit).
    ChAhv,
    /// US ABA routing number (3-7-1 checksum).
    UsAba,
    /// Belgian national register number (mod 97).
    BeNationalNumber,
    /// Chinese resident identity number (ISO 7064 MOD 11-2).
    CnResidentId,
    /// Finnish HETU (mod-31 check character).
    FiHetu,
    /// UK National Insurance number (prefix and suffix rules; no check digit).
    UkNino,
    /// Norwegian fødselsnummer / D-number (date, two mod-11 check digits).
    NoFodselsnummer,
    /// Portuguese NIF (first digit, mod-11 check digit).
    PtNif,
    /// Irish PPS number (mod-23 check letter).
    IePpsn,
    /// Austrian social security number (mod-11 check digit, birth date).
    AtSvnr,
    /// Singapore NRIC/FIN (S/T/F/G, mod-11 check letter).
    SgNric,
    /// Australian tax file number (weighted mod 11).
    AuTfn,
    /// Australian business number (weighted mod 89).
    AuAbn,
    /// Korean resident registration number (birth date, century/sex digit).
    KrRrn,
    /// Italian VAT number, partita IVA (Luhn, office code).
    ItVat,
    /// Danish CPR number (date; no check digit since 2007).
    DkCpr,
    /// Mexican CURP (structure, date, mod-10 check digit).
    MxCurp,
    /// Vehicle identification number (check digit for North American VINs).
    Vin,
    /// SWIFT/BIC code (structure, ISO country code).
    SwiftBic,
    /// Bitcoin address (base58check or bech32/bech32m checksum).
    BtcAddress,
    /// Japanese Individual Number, My Number (mod-11 check digit).
    JpMyNumber,
    /// Thai national identification number (mod-11 check digit).
    ThTnin,
    /// EU VAT number with its country prefix (the member state's check).
    EuVat,
    /// Ethereum address in mixed case (the EIP-55 checksum).
    EthChecksummed,
    /// Ethereum address in one case (no checksum to check).
    EthOneCase,
    /// Two to five capitalised words, the first a listed given name, the last a listed surname,
    /// not part of a place name ("Maria Garcia", not "Maria Garcia Street").
    GivenSurname,
    /// Capitalised words, the first a listed given name or surname, not part of a place name
    /// (the name after a greeting or a header).
    KnownName,
    /// Two to four Han characters starting with a listed surname (`山田太郎`).
    CjkName,
}

/// A key for `hash` / `tokenize`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeySpec {
    /// Key id, written into every hash and token so keys can rotate (`[A-Za-z0-9-]{1,32}`).
    pub id: String,
    /// Environment variable holding the secret (at least 16 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Kubernetes: a key of a Secret in the workloads' namespace holding the secret. It reaches
    /// the sidecar as the environment variable `MESHDLP_KEY_<ID>` (the id upper-cased, `-` as
    /// `_`), which is where the engine reads it; the value is never in the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// The secret itself. For local testing only: a warning is emitted. Not allowed in a
    /// DataPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
}

impl KeySpec {
    /// The environment variable the secret is read from: `env`, or for `secretRef` the variable
    /// the Kubernetes controller fills ([`secret_ref_env`]). `None` for an inline key.
    pub fn env_var(&self) -> Option<String> {
        match (&self.env, &self.secret_ref) {
            (Some(var), _) => Some(var.clone()),
            (None, Some(_)) => Some(secret_ref_env(&self.id)),
            (None, None) => None,
        }
    }
}

/// The environment variable of a `secretRef` key: `MESHDLP_KEY_` and the key id upper-cased,
/// `-` as `_` (`k1` -> `MESHDLP_KEY_K1`).
pub fn secret_ref_env(key_id: &str) -> String {
    format!(
        "MESHDLP_KEY_{}",
        key_id.to_ascii_uppercase().replace('-', "_")
    )
}

/// A key of a Kubernetes Secret (as in a pod's `secretKeyRef`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret, in the namespace of the workloads.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}

/// A route: what to match, and the rules that apply.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteSpec {
    /// Name used in metrics and logs; unique.
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    /// Overrides the document `mode` for this route (gradual roll-out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Rules for request bodies (to the upstream). Absent: requests are not inspected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<DirectionSpec>,
    /// Rules for response bodies (to the client). Absent: responses are not inspected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<DirectionSpec>,
}

impl RouteSpec {
    /// The rules part (the same shape as the default route). Not `#[serde(flatten)]`: flattening
    /// would lose the location of errors inside the rules.
    pub fn rules(&self) -> RouteRules {
        RouteRules {
            mode: self.mode,
            request: self.request.clone(),
            response: self.response.clone(),
        }
    }
}

/// How a route matches a request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatch {
    /// Exact path (query string ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Path prefix, on segment boundaries or not (`/api` matches `/api2` too; use `/api/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Path template: `/users/{id}` matches one segment per `{name}`; a trailing `{*rest}`
    /// matches the remainder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Regular expression over the whole path (anchored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// HTTP methods (any when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Hosts (`:authority` without port; `*.example.com` wildcards). Any when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// Rules of a route (or the default route).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteRules {
    /// Overrides the document `mode` for this route (gradual roll-out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Rules for request bodies (to the upstream). Absent: requests are not inspected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<DirectionSpec>,
    /// Rules for response bodies (to the client). Absent: responses are not inspected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<DirectionSpec>,
}

/// Rules for one direction of a route.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectionSpec {
    /// Classes to detect anywhere in the body; `["*"]` (the default) means every class. A class
    /// name (`email`), qualified name (`pii.email`) or group (`secrets`, `secrets.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect: Option<Vec<String>>,
    /// Rules for JSON fields chosen by path; the first matching rule applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldRule>,
    /// Action per class (overrides `defaultAction` and scope).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub actions: BTreeMap<String, ActionSpec>,
    /// Action for findings no other rule covers (default `redact`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<ActionSpec>,
    /// Declared scope of the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeSpec>,
    /// What a scope violation does (default `block`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_violation: Option<ViolationAction>,
    /// What an oversize, undecodable or malformed body does (default `block`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<ErrorAction>,
    /// Treat the body as this content type whatever the header says (`json`, `ndjson`, `text`,
    /// `form`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<BodyKind>,
}

/// A rule for JSON fields selected by a path.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldRule {
    /// JSONPath subset: `$.a.b`, `$.items[*].card`, `$..email`, `$['odd key']`, `$.a[0]`, `*`.
    pub path: String,
    /// Action on the value at the path. With `class`, the whole value is a finding of that class;
    /// without, the action applies to what is detected inside the value (`allow` exempts it).
    pub action: ActionSpec,
    /// Declares the class of the value at the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

/// An action, as a bare name (`redact`) or with options (`{type: mask, keepLast: 4}`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(untagged)]
pub enum ActionSpec {
    Name(ActionKind),
    Detailed(ActionDetail),
}

impl Default for ActionSpec {
    fn default() -> Self {
        ActionSpec::Name(ActionKind::Redact)
    }
}

// Hand-written so that errors name the problem ("unknown variant `scramble`, expected one of
// ...") instead of serde's "data did not match any variant of untagged enum".
impl<'de> Deserialize<'de> for ActionSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ActionSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an action name (redact, mask, hash, tokenize, drop, block, allow) or {type: ..., options}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ActionSpec, E> {
                use serde::de::IntoDeserializer;
                ActionKind::deserialize(v.into_deserializer()).map(ActionSpec::Name)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ActionSpec, A::Error> {
                ActionDetail::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ActionSpec::Detailed)
            }
        }
        d.deserialize_any(V)
    }
}

/// The kinds of action.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Replace with a placeholder (default `[REDACTED:<class>]`).
    Redact,
    /// Replace characters with a mask character, optionally keeping some.
    Mask,
    /// Keyed HMAC-SHA256: deterministic, irreversible, prefixed `hmac:<keyId>:`.
    Hash,
    /// AES-SIV: deterministic and reversible with the key, prefixed `tok:<keyId>:`.
    Tokenize,
    /// Remove the JSON member (or array element); in text, like `redact`.
    Drop,
    /// Block the whole body.
    Block,
    /// Leave the value as it is.
    Allow,
}

impl ActionKind {
    /// The name policies and audit lines use (`redact`, `mask`...).
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Redact => "redact",
            ActionKind::Mask => "mask",
            ActionKind::Hash => "hash",
            ActionKind::Tokenize => "tokenize",
            ActionKind::Drop => "drop",
            ActionKind::Block => "block",
            ActionKind::Allow => "allow",
        }
    }
}

/// An action with its options.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionDetail {
    #[serde(rename = "type")]
    pub kind: ActionKind,
    /// `redact`: placeholder; `{class}` is replaced by the class id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// `mask`: the mask character (default `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_char: Option<char>,
    /// `mask`: characters kept at the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_first: Option<usize>,
    /// `mask`: characters kept at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<usize>,
    /// `mask`: keep non-alphanumeric characters (`-`, ` `, `@`, `.`) as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_separators: Option<bool>,
    /// `hash` / `tokenize`: key id (default: the first key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A payload's declared scope.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScopeSpec {
    /// Classes any caller may receive.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Further classes per caller scope (from the scope header or JWT metadata).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grants: BTreeMap<String, Vec<String>>,
    /// Largest body, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Most records: elements of the arrays at `path` (`$` for a top-level array; NDJSON counts
    /// lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_records: Option<RecordLimit>,
}

/// A limit on records.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordLimit {
    /// JSONPath of the record array(s) (default `$`).
    #[serde(default = "root_path")]
    pub path: String,
    pub max: u64,
}

fn root_path() -> String {
    "$".to_string()
}

/// What a scope violation does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ViolationAction {
    /// Refuse the body (403).
    Block,
    /// Redact the values outside the scope and pass the rest.
    Redact,
}

/// What a body error does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ErrorAction {
    /// Fail closed.
    Block,
    /// Fail open: pass the body unchanged (logged and counted).
    Allow,
}

/// How a body is parsed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum BodyKind {
    Json,
    Ndjson,
    Text,
    Form,
}

impl BodyKind {
    /// The body kind for a `content-type` header value. Unknown types are text: never skipped.
    pub fn from_content_type(content_type: &str) -> BodyKind {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/json-seq" => BodyKind::Ndjson,
            "application/x-www-form-urlencoded" => BodyKind::Form,
            e if e == "application/json" || e.ends_with("+json") || e == "text/json" => {
                BodyKind::Json
            }
            _ => BodyKind::Text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ActionKind;

    #[test]
    fn action_names_are_the_names_policies_use() {
        use ActionKind::*;
        for k in [Redact, Mask, Hash, Tokenize, Drop, Block, Allow] {
            let serde_name = serde_json::to_string(&k).expect("serialize");
            assert_eq!(serde_name, format!("\"{}\"", k.name()));
        }
    }
}
