//! `tokenizer`: provide a tokenizer.json, either loaded from an HF model/tokenizer
//! (tokenizer.json, or vocab.json + merges.txt as OPT ships it) or trained as a
//! byte-level BPE on a dataset.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{InputRef, InputSlot, KindParams};

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Load the tokenizer of this source or step output (an HF model repo or a
    /// directory with tokenizer files). Exactly one of `from` and `train_on`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<InputRef>,
    /// Train a byte-level BPE on the rows of this dataset (its `train` split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_on: Option<InputRef>,
    /// Vocabulary size when training (special tokens included).
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    /// A pair must occur this often to be merged when training.
    #[serde(default = "default_min_frequency")]
    pub min_frequency: u64,
    /// The column or JSON field holding the text when training.
    #[serde(default = "default_text_field")]
    pub text_field: String,
}

fn default_vocab_size() -> usize {
    2048
}
fn default_min_frequency() -> u64 {
    2
}
pub(crate) fn default_text_field() -> String {
    "text".to_string()
}

impl KindParams for Params {
    const KIND: &'static str = "tokenizer";
    const VERSION: u32 = 1;
    const INPUT_SLOTS: &'static [&'static str] = &["from", "train_on"];
    const USES_SEED: bool = false;

    fn inputs(&self) -> Vec<InputSlot<'_>> {
        let mut slots = Vec::new();
        if let Some(r) = &self.from {
            slots.push(InputSlot { slot: "from", refs: vec![r] });
        }
        if let Some(r) = &self.train_on {
            slots.push(InputSlot { slot: "train_on", refs: vec![r] });
        }
        slots
    }

    fn outputs(&self) -> Vec<(String, String)> {
        vec![("tokenizer".into(), "tokenizer".into())]
    }
}
