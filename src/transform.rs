//! De-identification operators and their keys: redact, mask, hash, tokenize.
//!
//! Operators only transform the value they are given; deciding *which* spans to transform is the
//! inspector's job (the Presidio split between analysis and anonymisation).

use std::collections::HashMap;

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::PolicyError;
use crate::manifest::{ActionDetail, ActionKind, ActionSpec, KeySpec};
use crate::matcher::{self, Matcher};

type HmacSha256 = Hmac<Sha256>;

/// Secrets shorter than this are refused.
pub const MIN_SECRET_BYTES: usize = 16;

/// Key material derived from one secret.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) id: String,
    hash_key: [u8; 32],
    siv_key: [u8; 64],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn derive(secret: &[u8], label: &[u8]) -> [u8; 32] {
    // HMAC as a KDF (HKDF-Expand with a single block).
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

impl Key {
    /// Derives independent hash and tokenization keys from a secret.
    pub fn from_secret(id: &str, secret: &[u8]) -> Key {
        let mut siv_key = [0u8; 64];
        siv_key[..32].copy_from_slice(&derive(secret, b"meshdlp/tokenize/1"));
        siv_key[32..].copy_from_slice(&derive(secret, b"meshdlp/tokenize/2"));
        Key {
            id: id.to_string(),
            hash_key: derive(secret, b"meshdlp/hash"),
            siv_key,
        }
    }

    fn hash(&self, value: &[u8]) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.hash_key).expect("32-byte key");
        mac.update(value);
        let tag = mac.finalize().into_bytes();
        let hex: String = tag[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("hmac:{}:{hex}", self.id)
    }

    fn tokenize(&self, value: &[u8]) -> Result<String, TransformError> {
        let mut cipher = Aes256Siv::new((&self.siv_key).into());
        let sealed = cipher
            .encrypt([self.id.as_bytes()], value)
            .map_err(|_| TransformError::Crypto)?;
        Ok(format!(
            "tok:{}:{}",
            self.id,
            URL_SAFE_NO_PAD.encode(sealed)
        ))
    }

    fn detokenize(&self, payload: &str) -> Result<Vec<u8>, TransformError> {
        let sealed = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TransformError::BadToken)?;
        let mut cipher = Aes256Siv::new((&self.siv_key).into());
        cipher
            .decrypt([self.id.as_bytes()], &sealed)
            .map_err(|_| TransformError::BadToken)
    }
}

/// Keys by id.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyRing {
    keys: Vec<Key>,
}

/// Something the policy author should know that does not stop compilation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub location: String,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

pub(crate) fn valid_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

impl KeyRing {
    pub(crate) fn compile(
        specs: &[KeySpec],
        env: &dyn Fn(&str) -> Option<String>,
        warnings: &mut Vec<Warning>,
    ) -> Result<KeyRing, PolicyError> {
        let mut keys: Vec<Key> = Vec::new();
        for (i, k) in specs.iter().enumerate() {
            let loc = format!("keys[{i}]");
            if !valid_key_id(&k.id) {
                return Err(PolicyError::new(
                    format!("{loc}.id"),
                    format!("`{}` is not a valid key id ([A-Za-z0-9-], 1 to 32)", k.id),
                ));
            }
            if keys.iter().any(|x| x.id == k.id) {
                return Err(PolicyError::new(
                    format!("{loc}.id"),
                    format!("duplicate key id `{}`", k.id),
                ));
            }
            let given = [k.env.is_some(), k.secret_ref.is_some(), k.inline.is_some()];
            if given.iter().filter(|g| **g).count() != 1 {
                return Err(PolicyError::new(
                    loc,
                    "a key needs exactly one of `env`, `secretRef` or `inline`",
                ));
            }
            let secret = if let Some(inline) = &k.inline {
                warnings.push(Warning {
                    location: format!("{loc}.inline"),
                    message: "inline key: for local testing only; use `env` in production".into(),
                });
                inline.clone()
            } else {
                let var = k.env_var().unwrap_or_default();
                if let Some(r) = &k.secret_ref {
                    if r.name.is_empty() || r.key.is_empty() {
                        return Err(PolicyError::new(
                            format!("{loc}.secretRef"),
                            "`name` and `key` must not be empty",
                        ));
                    }
                    // Ids differing only in case would share the controller's variable.
                    if let Some(other) = specs[..i]
                        .iter()
                        .find(|o| o.secret_ref.is_some() && o.env_var().as_deref() == Some(&var))
                    {
                        return Err(PolicyError::new(
                            format!("{loc}.id"),
                            format!(
                                "keys `{}` and `{}` would share the environment variable `{var}`",
                                other.id, k.id
                            ),
                        ));
                    }
                }
                let field = if k.env.is_some() { "env" } else { "secretRef" };
                env(&var).ok_or_else(|| {
                    PolicyError::new(
                        format!("{loc}.{field}"),
                        format!("environment variable `{var}` is not set"),
                    )
                })?
            };
            if secret.len() < MIN_SECRET_BYTES {
                return Err(PolicyError::new(
                    loc,
                    format!("the secret is shorter than {MIN_SECRET_BYTES} bytes"),
                ));
            }
            keys.push(Key::from_secret(&k.id, secret.as_bytes()));
        }
        Ok(KeyRing { keys })
    }

    pub(crate) fn get(&self, id: Option<&str>) -> Option<&Key> {
        match id {
            Some(id) => self.keys.iter().find(|k| k.id == id),
            None => self.keys.first(),
        }
    }
}

/// A compiled action.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    Redact {
        placeholder: String,
    },
    Mask {
        mask: char,
        keep_first: usize,
        keep_last: usize,
        keep_separators: bool,
    },
    Hash {
        key: usize,
    },
    Tokenize {
        key: usize,
    },
    Drop,
    Block,
    Allow,
}

impl Action {
    pub(crate) fn kind(&self) -> ActionKind {
        match self {
            Action::Redact { .. } => ActionKind::Redact,
            Action::Mask { .. } => ActionKind::Mask,
            Action::Hash { .. } => ActionKind::Hash,
            Action::Tokenize { .. } => ActionKind::Tokenize,
            Action::Drop => ActionKind::Drop,
            Action::Block => ActionKind::Block,
            Action::Allow => ActionKind::Allow,
        }
    }

    pub(crate) fn redact() -> Action {
        Action::Redact {
            placeholder: "[REDACTED:{class}]".to_string(),
        }
    }

    pub(crate) fn compile(
        spec: &ActionSpec,
        keys: &KeyRing,
        loc: &str,
    ) -> Result<Action, PolicyError> {
        let d = match spec {
            ActionSpec::Name(kind) => ActionDetail {
                kind: *kind,
                placeholder: None,
                mask_char: None,
                keep_first: None,
                keep_last: None,
                keep_separators: None,
                key: None,
            },
            ActionSpec::Detailed(d) => d.clone(),
        };
        let key_index = |kind: &str| -> Result<usize, PolicyError> {
            let key = keys.get(d.key.as_deref()).ok_or_else(|| {
                PolicyError::new(
                    loc,
                    match &d.key {
                        Some(id) => format!("{kind} refers to unknown key `{id}`"),
                        None => format!("{kind} needs a key: add one under `keys`"),
                    },
                )
            })?;
            Ok(keys.keys.iter().position(|k| k.id == key.id).unwrap_or(0))
        };
        Ok(match d.kind {
            ActionKind::Redact => Action::Redact {
                placeholder: d
                    .placeholder
                    .unwrap_or_else(|| "[REDACTED:{class}]".to_string()),
            },
            ActionKind::Mask => Action::Mask {
                mask: d.mask_char.unwrap_or('*'),
                keep_first: d.keep_first.unwrap_or(0),
                keep_last: d.keep_last.unwrap_or(0),
                keep_separators: d.keep_separators.unwrap_or(false),
            },
            ActionKind::Hash => Action::Hash {
                key: key_index("hash")?,
            },
            ActionKind::Tokenize => Action::Tokenize {
                key: key_index("tokenize")?,
            },
            ActionKind::Drop => Action::Drop,
            ActionKind::Block => Action::Block,
            ActionKind::Allow => Action::Allow,
        })
    }

    /// The replacement text for `value` of `class`; `None` for actions that replace nothing.
    pub(crate) fn replacement(
        &self,
        class: &str,
        value: &[u8],
        keys: &KeyRing,
    ) -> Result<Option<String>, TransformError> {
        Ok(Some(match self {
            Action::Redact { placeholder } => fill_class(placeholder, class),
            Action::Mask {
                mask,
                keep_first,
                keep_last,
                keep_separators,
            } => {
                let text = String::from_utf8_lossy(value);
                mask_text(&text, *mask, *keep_first, *keep_last, *keep_separators)
            }
            Action::Hash { key } => keys.keys[*key].hash(value),
            Action::Tokenize { key } => keys.keys[*key].tokenize(value)?,
            Action::Drop | Action::Block | Action::Allow => return Ok(None),
        }))
    }
}

/// `placeholder` with each `{class}` replaced by `class`, as `str::replace` does it, without
/// building a substring searcher per finding (it was 1.5% of the corpus's instructions).
fn fill_class(placeholder: &str, class: &str) -> String {
    const SLOT: &str = "{class}";
    let mut out = String::with_capacity(placeholder.len() + class.len());
    let mut rest = placeholder;
    while let Some(i) = memchr::memchr(b'{', rest.as_bytes()) {
        out.push_str(&rest[..i]);
        match rest[i..].strip_prefix(SLOT) {
            Some(after) => {
                out.push_str(class);
                rest = after;
            }
            None => {
                out.push('{');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn mask_text(
    text: &str,
    mask: char,
    keep_first: usize,
    keep_last: usize,
    keep_separators: bool,
) -> String {
    let chars: Vec<char> = text.chars().collect();
    let is_sep = |c: &char| keep_separators && !c.is_alphanumeric();
    // keep_first / keep_last count the characters that would otherwise be masked.
    let maskable: Vec<usize> = (0..chars.len()).filter(|i| !is_sep(&chars[*i])).collect();
    let n = maskable.len();
    let mut out = String::with_capacity(text.len());
    let mut rank = 0;
    for c in &chars {
        if is_sep(c) {
            out.push(*c);
            continue;
        }
        let keep = rank < keep_first || (n >= keep_last && rank >= n - keep_last);
        // Never reveal everything: if keep_first + keep_last covers the value, mask it all.
        let reveal_all = keep_first + keep_last >= n;
        out.push(if keep && !reveal_all { *c } else { mask });
        rank += 1;
    }
    out
}

/// Failures while transforming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransformError {
    Crypto,
    BadToken,
    UnknownKey,
}

impl std::fmt::Display for TransformError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransformError::Crypto => "encryption failed",
            TransformError::BadToken => {
                "token does not decrypt with this key (tampered, truncated or another key)"
            }
            TransformError::UnknownKey => "token names a key id that is not loaded",
        })
    }
}

impl std::error::Error for TransformError {}

/// Reverses `tok:<keyId>:<payload>` tokens in text, for authorised use (the CLI's `detokenize`).
pub struct Detokenizer {
    keys: HashMap<String, Key>,
    any: Option<Key>,
}

impl Detokenizer {
    /// With `key_id`, the secret is used for tokens of that key id only; without, for any.
    pub fn new(secret: &[u8], key_id: Option<&str>) -> Detokenizer {
        match key_id {
            Some(id) => Detokenizer {
                keys: HashMap::from([(id.to_string(), Key::from_secret(id, secret))]),
                any: None,
            },
            None => Detokenizer {
                keys: HashMap::new(),
                any: Some(Key::from_secret("", secret)),
            },
        }
    }

    fn key_for(&self, id: &str) -> Option<Key> {
        self.keys.get(id).cloned().or_else(|| {
            self.any.as_ref().map(|k| {
                let mut k = k.clone();
                k.id = id.to_string();
                k
            })
        })
    }

    /// Decrypts one token.
    pub fn detokenize_one(&self, token: &str) -> Result<Vec<u8>, TransformError> {
        let rest = token.strip_prefix("tok:").ok_or(TransformError::BadToken)?;
        let (id, payload) = rest.split_once(':').ok_or(TransformError::BadToken)?;
        let key = self.key_for(id).ok_or(TransformError::UnknownKey)?;
        key.detokenize(payload)
    }

    /// Replaces every token in `text` by its plaintext; returns the text and how many were
    /// replaced. Tokens that do not decrypt are left as they are and counted in the error list.
    pub fn detokenize_text(&self, text: &str) -> (String, usize, Vec<TransformError>) {
        static TOKEN: once_cell::sync::Lazy<Matcher> = once_cell::sync::Lazy::new(|| {
            let options = matcher::Options {
                utf8: true,
                ..matcher::Options::bytes(10 << 20, 2 << 20)
            };
            Matcher::new(r"tok:[A-Za-z0-9-]{1,32}:[A-Za-z0-9_-]{22,}", options)
                .expect("static regex")
        });
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let mut n = 0;
        let mut errors = Vec::new();
        // Matches are ASCII and never empty: each search starts where the last match ended.
        while let Some((start, end)) = TOKEN.find_at(text.as_bytes(), last) {
            out.push_str(&text[last..start]);
            let token = &text[start..end];
            match self.detokenize_one(token) {
                Ok(plain) => {
                    out.push_str(&String::from_utf8_lossy(&plain));
                    n += 1;
                }
                Err(e) => {
                    out.push_str(token);
                    errors.push(e);
                }
            }
            last = end;
        }
        out.push_str(&text[last..]);
        (out, n, errors)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_placeholder_is_filled_as_str_replace_fills_it() {
        let parts = [
            "{class}", "{", "}", "{{class}", "{class}}", "x", "é", "{clas", "class}",
        ];
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..5000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 6) as usize;
            let placeholder: String = (0..n)
                .map(|k| parts[((seed >> (8 * k)) % parts.len() as u64) as usize])
                .collect();
            assert_eq!(
                super::fill_class(&placeholder, "email"),
                placeholder.replace("{class}", "email"),
                "{placeholder:?}"
            );
        }
    }

    use super::*;

    #[test]
    fn mask_keeps_what_is_asked() {
        assert_eq!(
            mask_text("4111-1111-1111-1234", '*', 0, 4, true),
            "****-****-****-1234"
        );
        assert_eq!(
            mask_text("4111111111111234", '#', 0, 4, false),
            "############1234"
        );
        assert_eq!(mask_text("jo@x.io", '*', 1, 0, true), "j*@*.**");
        assert_eq!(
            mask_text("abc", '*', 2, 2, false),
            "***",
            "never reveals the whole value"
        );
    }

    #[test]
    fn tokens_round_trip_and_hashes_are_deterministic() {
        let k = Key::from_secret("k1", b"0123456789abcdef0123");
        let t = k.tokenize(b"123-45-6789").unwrap();
        assert!(t.starts_with("tok:k1:"));
        assert_eq!(t, k.tokenize(b"123-45-6789").unwrap(), "deterministic");
        let d = Detokenizer::new(b"0123456789abcdef0123", None);
        assert_eq!(d.detokenize_one(&t).unwrap(), b"123-45-6789");
        let wrong = Detokenizer::new(b"another secret of 16+ bytes", None);
        assert_eq!(wrong.detokenize_one(&t), Err(TransformError::BadToken));
        assert_eq!(k.hash(b"a@b.io"), k.hash(b"a@b.io"));
        assert_ne!(
            k.hash(b"a@b.io"),
            Key::from_secret("k1", b"other secret 0123456").hash(b"a@b.io")
        );
    }
}
