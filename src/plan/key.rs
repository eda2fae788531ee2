//! THE one place a step's key is computed.
//!
//! A key is blake3 over one canonical JSON encoding of [`KeyInputs`]. Every field
//! of that struct is there because changing it can change the step's result;
//! anything that cannot (the step's name, descriptions, the backend) stays out,
//! so renaming a step or reviewing on a CPU what was computed on a GPU reuses the
//! cache. How matrix products are computed (exact f32 or TF32) is in: it changes
//! results.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::Precision;
use crate::digest::{ContentDigest, StepKey};

/// Version of this encoding. Bump it only when the struct's meaning changes:
/// doing so invalidates every cached entry.
pub const KEY_SCHEMA: u32 = 1;

/// Prepended to the encoding so an xp key can never collide with a blake3 of
/// some other JSON document.
const DOMAIN: &[u8] = b"xp step key\0";

/// Everything that determines a step's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyInputs {
    /// The encoding itself: a new encoding must never match an old key.
    pub key_schema: u32,
    /// Which computation runs: a different kind is a different result.
    pub kind: String,
    /// The kind's implementation version: bumped when its code changes results.
    pub kind_version: u32,
    /// Every parameter, defaults filled in (so stating a default explicitly does
    /// not change the key), input slots removed (they are in `inputs`). Object
    /// keys are sorted when encoded, so the order in the file does not matter.
    pub params: Value,
    /// The experiment seed, only for kinds whose results depend on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// How f32 matrix products are computed, for kinds that run a model (TF32
    /// tensor cores change results beyond the backends' tested tolerances); `f32`
    /// for the others. Omitted from the encoding when `f32`, so every key made
    /// before this field existed (all exact f32) is unchanged; unambiguous, because
    /// a non-default precision is always written (`"precision":"tf32"`) and an absent
    /// field reads back as `f32`.
    #[serde(default, skip_serializing_if = "is_exact_f32")]
    pub precision: Precision,
    /// What each input slot holds, by slot name (sorted); within a slot the
    /// order is kept, because it is meaningful (e.g. generation order).
    pub inputs: BTreeMap<String, Vec<InputDigest>>,
}

/// The identity of one input: the content of a source, or the output of another
/// step identified by that step's key (which already covers its own inputs).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputDigest {
    /// A `[sources]` entry: a local file/dir content digest, or an `hf:` repo's
    /// resolved revision and file digests folded into one digest.
    Source { digest: ContentDigest },
    /// Output `output` of the step whose key is `step`.
    Output { step: StepKey, output: String },
}

fn is_exact_f32(precision: &Precision) -> bool {
    *precision == Precision::F32
}

impl KeyInputs {
    /// The canonical encoding: compact JSON with object keys sorted at every level.
    pub fn canonical_json(&self) -> String {
        let value = serde_json::to_value(self).expect("key inputs serialise to JSON");
        let mut out = String::new();
        write_canonical(&value, &mut out);
        out
    }

    /// The step key.
    pub fn key(&self) -> StepKey {
        let mut hasher = blake3::Hasher::new();
        hasher.update(DOMAIN);
        hasher.update(self.canonical_json().as_bytes());
        StepKey::from_hash(hasher.finalize())
    }
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn example(params: Value) -> KeyInputs {
        let mut inputs = BTreeMap::new();
        inputs.insert(
            "data".to_string(),
            vec![InputDigest::Source {
                digest: ContentDigest::of_bytes(b"corpus"),
            }],
        );
        inputs.insert(
            "tokenizer".to_string(),
            vec![InputDigest::Output {
                step: StepKey::from_hash(blake3::hash(b"tok")),
                output: "tokenizer".into(),
            }],
        );
        KeyInputs {
            key_schema: KEY_SCHEMA,
            kind: "tokenize".into(),
            kind_version: 1,
            params,
            seed: None,
            precision: Precision::F32,
            inputs,
        }
    }

    // Golden value: if this changes, every user's cache is invalidated. Change it
    // only together with KEY_SCHEMA (or a deliberate kind version bump).
    const GOLDEN: &str = "a958b655850cc92c418f8f3ac5a0fd37c5096c007317042994c029e2ca0ef136";

    #[test]
    fn golden_key_is_stable() {
        let key = example(json!({"block_size": 64, "grouping": "global"})).key();
        assert_eq!(key.to_hex(), GOLDEN);
    }

    #[test]
    fn key_resists_parameter_order() {
        // serde_json preserves insertion order; the encoding must not.
        let mut a = serde_json::Map::new();
        a.insert("block_size".into(), json!(64));
        a.insert("grouping".into(), json!({"x": 1, "y": 2}));
        let mut b = serde_json::Map::new();
        b.insert("grouping".into(), json!({"y": 2, "x": 1}));
        b.insert("block_size".into(), json!(64));
        assert_eq!(
            example(Value::Object(a)).key(),
            example(Value::Object(b)).key()
        );
        assert_eq!(
            example(json!({"block_size": 64, "grouping": {"x": 1, "y": 2}}))
                .key()
                .to_hex(),
            GOLDEN_NESTED
        );
    }

    const GOLDEN_NESTED: &str = "7ad001cf9c8e22c5ae7be3a77ab40ad4543d054542cd6d8c30c8878b637d829b";

    #[test]
    fn every_field_changes_the_key() {
        let base = example(json!({"block_size": 64}));
        let mut changed = vec![];
        let mut k = base.clone();
        k.kind_version = 2;
        changed.push(k);
        let mut k = base.clone();
        k.kind = "other".into();
        changed.push(k);
        let mut k = base.clone();
        k.params = json!({"block_size": 65});
        changed.push(k);
        let mut k = base.clone();
        k.seed = Some(0);
        changed.push(k);
        let mut k = base.clone();
        k.precision = Precision::Tf32;
        changed.push(k);
        let mut k = base.clone();
        k.inputs.get_mut("data").unwrap()[0] = InputDigest::Source {
            digest: ContentDigest::of_bytes(b"corpus2"),
        };
        changed.push(k);
        let mut k = base.clone();
        k.key_schema += 1;
        changed.push(k);
        for c in changed {
            assert_ne!(c.key(), base.key(), "{c:?}");
        }
    }

    // The default precision leaves the encoding, hence every existing key, as it was
    // before precision existed; tf32 is written and changes the key.
    #[test]
    fn precision_f32_keeps_old_keys_and_tf32_changes_them() {
        let f32_key = example(json!({"block_size": 64, "grouping": "global"}));
        assert_eq!(f32_key.precision, Precision::F32);
        assert!(!f32_key.canonical_json().contains("precision"));
        assert_eq!(f32_key.key().to_hex(), GOLDEN);

        let mut tf32 = f32_key.clone();
        tf32.precision = Precision::Tf32;
        assert!(tf32.canonical_json().contains("\"precision\":\"tf32\""));
        assert_eq!(tf32.key().to_hex(), GOLDEN_TF32);
        assert_ne!(tf32.key(), f32_key.key());

        // Key inputs recorded in manifests before precision existed read back as f32.
        let old: KeyInputs = serde_json::from_str(&f32_key.canonical_json()).unwrap();
        assert_eq!(old, f32_key);
        let back: KeyInputs = serde_json::from_str(&tf32.canonical_json()).unwrap();
        assert_eq!(back.precision, Precision::Tf32);
    }

    const GOLDEN_TF32: &str = "142c8177122a5385224a0bc6e5caf619a0a2394dcf8400015f27f1973c992fad";

    #[test]
    fn list_order_within_a_slot_matters() {
        let a = InputDigest::Source {
            digest: ContentDigest::of_bytes(b"a"),
        };
        let b = InputDigest::Source {
            digest: ContentDigest::of_bytes(b"b"),
        };
        let mut x = example(json!({}));
        x.inputs.insert("data".into(), vec![a.clone(), b.clone()]);
        let mut y = x.clone();
        y.inputs.insert("data".into(), vec![b, a]);
        assert_ne!(x.key(), y.key());
    }

    #[test]
    fn canonical_json_is_compact_and_sorted() {
        let k = example(json!({"z": 1, "a": [true, null, 1.5, "s"]}));
        let json = k.canonical_json();
        assert!(json.starts_with("{\"inputs\":"));
        assert!(json.contains("\"params\":{\"a\":[true,null,1.5,\"s\"],\"z\":1}"));
        assert!(!json.contains(' '));
    }
}
