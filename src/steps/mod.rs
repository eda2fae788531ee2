//! Step kinds. Each kind lives in its own file with its `Params` (serde, with the
//! kind's defaults), its declared inputs and outputs, and its `run`.
//!
//! Adding a kind: write the module, then add one line to `step_kinds!` below.
//! The enum, the JSON schema, the parser dispatch, the key, the cluster
//! resources and docs/kinds.md all follow from it (see ARCHITECTURE.md).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// Declares a kind's input slots, once: `INPUT_SLOTS` (the names) and `inputs()`
/// (the references they hold) both follow from the list. Each named field is an
/// [`InputRef`], an `Option<InputRef>`, a `Vec<InputRef>` or a
/// `BTreeMap<String, InputRef>` (named inputs, as `command` declares them); an
/// unset option and an empty list or map are left out of `inputs()`. Used inside
/// `impl KindParams`.
macro_rules! input_slots {
    ($($field:ident),* $(,)?) => {
        const INPUT_SLOTS: &'static [&'static str] = &[$(stringify!($field)),*];

        fn inputs(&self) -> Vec<$crate::steps::InputSlot<'_>> {
            #[allow(unused_mut)]
            let mut slots = Vec::new();
            $($crate::steps::push_slot(&mut slots, stringify!($field), &self.$field);)*
            slots
        }
    };
}

pub mod command;
pub mod context;
pub mod corpus;
mod dataset;
pub mod decoding;
pub mod evaluate;
pub mod finetune;
pub mod init;
pub mod mix;
pub mod prompts;
pub mod report;
pub mod select;
pub mod synthesize;
pub mod tokenize;
pub mod tokenizer;

/// A reference from a step to one of its inputs, as written in the experiment file
/// (after loop expansion): a source name (`"opt"`), another step's output
/// (`"blocks.train"`, `"finetune@0.model"`) or a file or folder of the repository
/// (`"file:scripts/filter.py"`), which the spec declares as a source of that name.
/// The file may also say `finetune@last.model`, `carry.X` and, in a list,
/// `synthesize@*.blocks` (every generation) or, in a loop step,
/// `synthesize@earlier.blocks` (the generations before the current one);
/// docs/dsl.md, "References".
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct InputRef(pub String);

/// What an [`InputRef`] points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefTarget<'a> {
    /// A name declared under `[sources]`.
    Source(&'a str),
    /// The output `output` of step `step` (step names may contain `@g`).
    Output { step: &'a str, output: &'a str },
}

impl InputRef {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The repository path of a `file:PATH` reference.
    pub fn file_path(&self) -> Option<&str> {
        self.0.strip_prefix(FILE_PREFIX)
    }

    pub fn is_file(&self) -> bool {
        self.file_path().is_some()
    }

    /// `step.output` when there is a dot, else a source name. Output names never
    /// contain dots, so the last dot separates them. A repository file
    /// (`file:PATH`, whose path may hold dots) is a source.
    pub fn target(&self) -> RefTarget<'_> {
        if self.is_file() {
            return RefTarget::Source(&self.0);
        }
        match self.0.rsplit_once('.') {
            Some((step, output)) => RefTarget::Output { step, output },
            None => RefTarget::Source(&self.0),
        }
    }
}

/// How a reference to a file or folder of the repository begins.
pub const FILE_PREFIX: &str = "file:";

impl fmt::Display for InputRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One input slot of a step: the parameter name and the references it holds
/// (list-valued slots hold several, in order; order is meaningful).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputSlot<'a> {
    pub slot: &'static str,
    pub refs: Vec<&'a InputRef>,
    /// For a map-valued slot, each reference's name (same order as `refs`, which
    /// is the names' sorted order); empty otherwise. The key holds each named input
    /// apart (`inputs.script`), so `xp plan` can say which one changed.
    pub names: Vec<&'a str>,
}

impl InputSlot<'_> {
    /// How each reference is called in the key and in `xp plan`: the slot's name,
    /// or `slot.name` for the entries of a map-valued slot.
    pub fn labels(&self) -> Vec<String> {
        if self.names.is_empty() {
            vec![self.slot.to_string()]
        } else {
            self.names
                .iter()
                .map(|name| format!("{}.{name}", self.slot))
                .collect()
        }
    }
}

/// A field that holds input references: one, maybe one, a list, or named ones.
pub trait SlotRefs {
    fn refs(&self) -> Vec<&InputRef>;

    /// The references' names, for a map; empty for the others.
    fn names(&self) -> Vec<&str> {
        Vec::new()
    }
}

impl SlotRefs for InputRef {
    fn refs(&self) -> Vec<&InputRef> {
        vec![self]
    }
}

impl SlotRefs for Option<InputRef> {
    fn refs(&self) -> Vec<&InputRef> {
        self.iter().collect()
    }
}

impl SlotRefs for Vec<InputRef> {
    fn refs(&self) -> Vec<&InputRef> {
        self.iter().collect()
    }
}

impl SlotRefs for std::collections::BTreeMap<String, InputRef> {
    fn refs(&self) -> Vec<&InputRef> {
        self.values().collect()
    }

    fn names(&self) -> Vec<&str> {
        self.keys().map(String::as_str).collect()
    }
}

/// Adds slot `slot` to `slots` when `value` holds a reference (for [`input_slots!`]).
pub fn push_slot<'a>(slots: &mut Vec<InputSlot<'a>>, slot: &'static str, value: &'a impl SlotRefs) {
    let refs = value.refs();
    if !refs.is_empty() {
        let names = value.names();
        slots.push(InputSlot { slot, refs, names });
    }
}

/// What a step of a kind asks a cluster node for when the experiment file says
/// nothing (`[steps.NAME.resources]` and `[defaults.KIND.resources]` override it).
/// Declared by every kind, so a new kind cannot silently inherit another's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceHint {
    /// The kind runs a model: it gets one GPU when the experiment's backend is a
    /// GPU backend (and the executor's larger CPU and memory share for GPU jobs).
    /// Otherwise one CPU and a little memory.
    pub gpu: bool,
    /// Wall-clock limit, as Slurm writes it (`H:MM:SS`).
    pub time: &'static str,
}

impl ResourceHint {
    /// Reads and writes data: one CPU, an hour.
    pub const DATA: ResourceHint = ResourceHint {
        gpu: false,
        time: "1:00:00",
    };
    /// Trains, generates with or scores with a model: a GPU where there is one, a day.
    pub const MODEL: ResourceHint = ResourceHint {
        gpu: true,
        time: "24:00:00",
    };
}

/// A document for people that a kind writes (the report): `xp report` lists where
/// it is. Paths are relative to the directory of output `output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Document {
    /// The output (a directory) that holds the document.
    pub output: &'static str,
    pub html: &'static str,
    pub markdown: &'static str,
    /// The figures' directory.
    pub figures: &'static str,
}

/// What every kind declares about itself. Implemented by each kind's `Params`.
pub trait KindParams: Serialize + JsonSchema + Clone + fmt::Debug {
    /// The `kind = "..."` name in the experiment file.
    const KIND: &'static str;
    /// The implementation version. Bump it whenever a change to the kind alters
    /// its results: it is part of every key of this kind.
    const VERSION: u32;
    /// Names of the parameters that are input references (their values are
    /// rewritten by loop expansion and replaced by digests in the key). Declared
    /// with [`input_slots!`], which also writes `inputs()`.
    const INPUT_SLOTS: &'static [&'static str];
    /// Whether results depend on the experiment seed (then the seed is in the key).
    const USES_SEED: bool;
    /// Whether results depend on how f32 matrix products are computed (the kind
    /// runs a model); then the experiment's precision is in the key.
    const USES_PRECISION: bool;
    /// Whether, with replicate seeds (`experiment.seeds`), each replicate runs this
    /// kind's steps with its own seed. The data kinds say no: their steps keep
    /// `experiment.seed` and the replicates share them. A step may say otherwise
    /// (`replicate = true|false`). Moot for kinds that do not use the seed.
    const REPLICATED: bool = true;
    /// Whether one step of this kind gathers every replicate: its list inputs hold
    /// the outputs of every seed (a report with mean and interval over seeds)
    /// instead of one step per seed.
    const GATHERS_REPLICATES: bool = false;
    /// What a cluster job of this kind asks for by default.
    const RESOURCES: ResourceHint;
    /// The numeric parameters whose product its time grows with, beside the size
    /// of its inputs (a finetune's `epochs`): `xp plan`'s estimates from earlier
    /// runs scale by them.
    const WORK_PARAMS: &'static [&'static str] = &[];
    /// The document for people this kind writes, if any (`xp report` finds it).
    const DOCUMENT: Option<Document> = None;

    /// The input references, one entry per slot in `INPUT_SLOTS` that is set
    /// (written by [`input_slots!`]).
    fn inputs(&self) -> Vec<InputSlot<'_>>;

    /// Declared outputs: (name used in references, path relative to the entry's
    /// output dir). Known before running, so dangling references are caught early.
    fn outputs(&self) -> Vec<(String, String)>;

    /// Checks that involve several parameters together, when the file is loaded (so
    /// the error points at the file's line rather than surfacing when the step
    /// runs). Types, unknown keys and references are checked elsewhere.
    fn check(&self) -> Result<(), ParamProblem> {
        Ok(())
    }
}

/// What [`KindParams::check`] found wrong: the parameter it is about (the error
/// points at its value) and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamProblem {
    pub key: &'static str,
    pub message: String,
}

/// Replaces one reference of a single or named slot (for `StepParams::with_refs`).
fn rename_one(
    slot: &str,
    text: &mut String,
    rename: &mut impl FnMut(&str, &[InputRef]) -> Vec<InputRef>,
    changed: &mut bool,
) -> Result<(), String> {
    let old = InputRef(text.clone());
    match rename(slot, std::slice::from_ref(&old)).as_slice() {
        [new] => {
            *changed |= *new != old;
            *text = new.0.clone();
            Ok(())
        }
        other => Err(format!("`{slot}` takes one reference, not {}", other.len())),
    }
}

macro_rules! step_kinds {
    ($($variant:ident => $module:ident),* $(,)?) => {
        /// The parameters of one step, by kind. `kind` is the tag in the file.
        #[derive(Clone, Debug, Serialize, JsonSchema)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum StepParams {
            $($variant($module::Params)),*
        }

        /// Every kind name, for error messages that list the valid ones.
        pub const KIND_NAMES: &[&str] = &[$(<$module::Params as KindParams>::KIND),*];

        impl StepParams {
            /// Deserialises the parameters of a step whose `kind` is `kind`
            /// (the table without its `kind` key). `Ok(None)` for an unknown kind.
            pub fn deserialize_kind<'de, D: Deserializer<'de>>(
                kind: &str,
                de: D,
            ) -> Result<Option<Self>, D::Error> {
                match kind {
                    $(<$module::Params as KindParams>::KIND =>
                        <$module::Params as Deserialize>::deserialize(de).map(|p| Some(Self::$variant(p))),)*
                    _ => Ok(None),
                }
            }

            /// The input slot names of a kind, known before its parameters are parsed
            /// (loop expansion rewrites references in the raw table).
            pub fn input_slots_of(kind: &str) -> Option<&'static [&'static str]> {
                match kind {
                    $(<$module::Params as KindParams>::KIND => Some(<$module::Params as KindParams>::INPUT_SLOTS),)*
                    _ => None,
                }
            }

            /// [`KindParams::WORK_PARAMS`] of a kind.
            pub fn work_params_of(kind: &str) -> Option<&'static [&'static str]> {
                match kind {
                    $(<$module::Params as KindParams>::KIND => Some(<$module::Params as KindParams>::WORK_PARAMS),)*
                    _ => None,
                }
            }

            pub fn kind(&self) -> &'static str {
                match self { $(Self::$variant(_) => <$module::Params as KindParams>::KIND),* }
            }

            pub fn version(&self) -> u32 {
                match self { $(Self::$variant(_) => <$module::Params as KindParams>::VERSION),* }
            }

            pub fn uses_seed(&self) -> bool {
                match self { $(Self::$variant(_) => <$module::Params as KindParams>::USES_SEED),* }
            }

            /// [`KindParams::REPLICATED`].
            pub fn replicated(&self) -> bool {
                match self { $(Self::$variant(_) => <$module::Params as KindParams>::REPLICATED),* }
            }

            /// [`KindParams::GATHERS_REPLICATES`].
            pub fn gathers_replicates(&self) -> bool {
                match self { $(Self::$variant(_) => <$module::Params as KindParams>::GATHERS_REPLICATES),* }
            }

            /// The same parameters with the references of every input slot replaced
            /// by `rename(slot, its references)`: a list slot takes whatever it gives, a
            /// single reference (and each entry of a named one) exactly one. Unchanged
            /// references keep the parameters as they are.
            pub fn with_refs(&self, mut rename: impl FnMut(&str, &[InputRef]) -> Vec<InputRef>) -> Result<Self, String> {
                let (value, slots) = match self {
                    $(Self::$variant(p) => (
                        serde_json::to_value(p).expect("step params serialise to JSON"),
                        <$module::Params as KindParams>::INPUT_SLOTS,
                    )),*
                };
                let mut value = value;
                let mut changed = false;
                let map = value.as_object_mut().expect("step params are a table");
                for slot in slots {
                    match map.get_mut(*slot) {
                        Some(serde_json::Value::String(text)) => {
                            rename_one(slot, text, &mut rename, &mut changed)?
                        }
                        Some(serde_json::Value::Object(named)) => {
                            for item in named.values_mut() {
                                if let serde_json::Value::String(text) = item {
                                    rename_one(slot, text, &mut rename, &mut changed)?;
                                }
                            }
                        }
                        Some(serde_json::Value::Array(items)) => {
                            let old: Vec<InputRef> = items
                                .iter()
                                .filter_map(|item| item.as_str().map(|t| InputRef(t.to_string())))
                                .collect();
                            let new = rename(slot, &old);
                            changed |= new != old;
                            *items = new.into_iter().map(|r| serde_json::Value::String(r.0)).collect();
                        }
                        _ => {}
                    }
                }
                if !changed {
                    return Ok(self.clone());
                }
                Self::deserialize_kind(self.kind(), value)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("unknown kind `{}`", self.kind()))
            }

            pub fn uses_precision(&self) -> bool {
                match self { $(Self::$variant(_) => <$module::Params as KindParams>::USES_PRECISION),* }
            }

            /// What a cluster job of this step asks for when the file says nothing.
            pub fn resources(&self) -> ResourceHint {
                match self { $(Self::$variant(_) => <$module::Params as KindParams>::RESOURCES),* }
            }

            /// The document for people this step writes, if any.
            pub fn document(&self) -> Option<Document> {
                match self { $(Self::$variant(_) => <$module::Params as KindParams>::DOCUMENT),* }
            }

            /// The kinds that write a document for people (for messages).
            pub fn document_kinds() -> Vec<&'static str> {
                let mut kinds = Vec::new();
                $(if <$module::Params as KindParams>::DOCUMENT.is_some() {
                    kinds.push(<$module::Params as KindParams>::KIND);
                })*
                kinds
            }

            pub fn inputs(&self) -> Vec<InputSlot<'_>> {
                match self { $(Self::$variant(p) => p.inputs()),* }
            }

            pub fn outputs(&self) -> Vec<(String, String)> {
                match self { $(Self::$variant(p) => p.outputs()),* }
            }

            /// The kind's own checks across parameters ([`KindParams::check`]).
            pub fn check(&self) -> Result<(), ParamProblem> {
                match self { $(Self::$variant(p) => p.check()),* }
            }

            /// Runs the step (the executor has prepared `ctx`).
            pub fn run(&self, ctx: &context::StepContext<'_>) -> Result<context::StepOutcome, context::StepError> {
                match self { $(Self::$variant(p) => $module::run(p, ctx)),* }
            }

            /// The parameters as JSON with every default filled in and the input
            /// slots removed (inputs enter the key as digests, not as names).
            pub fn params_without_inputs(&self) -> serde_json::Value {
                let (value, slots) = match self {
                    $(Self::$variant(p) => (
                        serde_json::to_value(p).expect("step params serialise to JSON"),
                        <$module::Params as KindParams>::INPUT_SLOTS,
                    )),*
                };
                let mut value = value;
                if let Some(map) = value.as_object_mut() {
                    for slot in slots {
                        map.remove(*slot);
                    }
                }
                value
            }
        }
    };
}

step_kinds! {
    Corpus => corpus,
    Tokenizer => tokenizer,
    Tokenize => tokenize,
    Init => init,
    Finetune => finetune,
    Evaluate => evaluate,
    Report => report,
    Synthesize => synthesize,
    Prompts => prompts,
    Command => command,
    Mix => mix,
    Select => select,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_split_on_the_last_dot() {
        assert_eq!(InputRef("opt".into()).target(), RefTarget::Source("opt"));
        assert_eq!(
            InputRef("finetune@2.model".into()).target(),
            RefTarget::Output {
                step: "finetune@2",
                output: "model"
            }
        );
    }
}
