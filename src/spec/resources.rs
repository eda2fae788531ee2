//! `[steps.NAME.resources]` (and `[defaults.KIND.resources]`,
//! `[loop.L.steps.NAME.resources]`): what a cluster job running the step asks
//! the scheduler for. Resources never change a result, so they are carried on
//! the step's declaration, outside its parameters, and never enter its key.

use std::ops::Range;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use super::error::{Problem, SpecError};
use super::location::SourceMap;
use super::raw::Value;

/// What a step's cluster job asks for. Every field is optional: an unset one
/// falls back to `[defaults.KIND.resources]`, then to the executor's default
/// for the kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// GPUs for the job (`--gres=gpu:N`).
    pub gpus: Option<u32>,
    /// CPU cores for the job (`--cpus-per-task`).
    #[schemars(range(min = 1))]
    pub cpus: Option<u32>,
    /// Memory for the job, as Slurm writes it: `16G`, `512M` (`--mem`).
    #[schemars(regex(pattern = r"^[0-9]+[KMGT]?$"))]
    pub mem: Option<String>,
    /// Wall-clock limit, as Slurm writes it: `30`, `4:00:00`, `1-12:00:00` (`--time`).
    #[schemars(regex(pattern = r"^[0-9]+(-[0-9]+)?(:[0-9]+){0,2}$"))]
    pub time: Option<String>,
    /// The partition to submit to (`--partition`).
    pub partition: Option<String>,
    /// Further `sbatch` options, one per item: `["--qos=high", "--constraint=a100"]`.
    pub sbatch_args: Option<Vec<String>>,
}

impl Resources {
    /// Each field of `self`, or `fallback`'s where `self` leaves it unset.
    pub fn or(&self, fallback: &Resources) -> Resources {
        Resources {
            gpus: self.gpus.or(fallback.gpus),
            cpus: self.cpus.or(fallback.cpus),
            mem: self.mem.clone().or_else(|| fallback.mem.clone()),
            time: self.time.clone().or_else(|| fallback.time.clone()),
            partition: self
                .partition
                .clone()
                .or_else(|| fallback.partition.clone()),
            sbatch_args: self
                .sbatch_args
                .clone()
                .or_else(|| fallback.sbatch_args.clone()),
        }
    }
}

/// Reads a `resources` table; `path` is where it is (`steps.blocks.resources`,
/// `defaults.tokenize.resources`), for error messages.
pub(crate) fn parse(
    value: Value<'_>,
    path: &str,
    map: &SourceMap<'_>,
) -> Result<Resources, SpecError> {
    let span = value.span();
    if !matches!(value.get_ref(), DeValue::Table(_)) {
        let problem = Problem::WrongType {
            what: path.to_string(),
            expected: "a table".into(),
            found: super::overrides::a_type(value.get_ref()),
        };
        return Err(map.error(&span, problem));
    }
    let bad = |span: &Range<usize>, message: String| {
        map.error(
            span,
            Problem::Resources {
                path: path.to_string(),
                message,
            },
        )
    };
    let fields = field_spans(&value);
    let de = ValueDeserializer::from(Spanned::new(span.clone(), value.into_inner()));
    let resources = Resources::deserialize(de).map_err(|e| {
        let at = e.span().unwrap_or_else(|| span.clone());
        bad(&at, e.message().to_string())
    })?;
    let at = |field: &str| {
        fields
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, s)| s.clone())
    };
    if let Some(mem) = &resources.mem
        && !is_mem(mem)
    {
        let why = format!(
            "`mem = \"{mem}\"`: expected a number with an optional unit K, M, G or T (`16G`)"
        );
        return Err(bad(&at("mem").unwrap_or(span), why));
    }
    if let Some(time) = &resources.time
        && !is_time(time)
    {
        let why =
            format!("`time = \"{time}\"`: expected minutes, `H:MM:SS` or `D-HH:MM:SS` (`4:00:00`)");
        return Err(bad(&at("time").unwrap_or(span), why));
    }
    if resources.cpus == Some(0) {
        return Err(bad(
            &at("cpus").unwrap_or(span),
            "`cpus = 0`: a job needs at least one CPU".into(),
        ));
    }
    Ok(resources)
}

/// (field, span of its value) of a table.
fn field_spans(value: &Value<'_>) -> Vec<(String, Range<usize>)> {
    match value.get_ref() {
        DeValue::Table(table) => table
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), v.span()))
            .collect(),
        _ => Vec::new(),
    }
}

/// `16G`, `512M`, `1024`: what `sbatch --mem` accepts.
fn is_mem(text: &str) -> bool {
    let digits = text.trim_end_matches(['K', 'M', 'G', 'T']);
    text.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `30`, `30:00`, `4:00:00`, `2-0`, `1-12:00:00`: what `sbatch --time` accepts.
fn is_time(text: &str) -> bool {
    let (days, clock) = match text.split_once('-') {
        Some((days, clock)) => (Some(days), clock),
        None => (None, text),
    };
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = clock.split(':').collect();
    days.is_none_or(number) && parts.len() <= 3 && parts.iter().all(|p| number(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_and_time_accept_what_sbatch_accepts() {
        for ok in ["16G", "512M", "1024", "1T"] {
            assert!(is_mem(ok), "{ok}");
        }
        for bad in ["", "G", "16GB", "1.5G", "-1G"] {
            assert!(!is_mem(bad), "{bad}");
        }
        for ok in ["30", "30:00", "4:00:00", "2-0", "1-12:00:00"] {
            assert!(is_time(ok), "{ok}");
        }
        for bad in ["", "4h", "1:2:3:4", "-1", "1-", ":30"] {
            assert!(!is_time(bad), "{bad}");
        }
    }

    const FILE: &str = r#"
[experiment]
name = "r"
[sources]
corpus = "corpus"
[defaults.tokenizer.resources]
cpus = 2
mem = "2G"
[steps.tok]
kind = "tokenizer"
train_on = "corpus"
resources = { cpus = 4, partition = "cpu", sbatch_args = ["--qos=low"] }
[loop.gen]
count = 2
[loop.gen.steps.t]
kind = "tokenizer"
from = "tok.tokenizer"
[loop.gen.steps.t.resources]
time = "1:00:00"
"#;

    fn load(text: &str, overrides: &[&str]) -> Result<crate::spec::Experiment, SpecError> {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        crate::spec::load_str(text, std::path::Path::new("r.toml"), &overrides)
    }

    #[test]
    fn resources_merge_step_over_kind_defaults_and_stay_out_of_params() {
        let experiment = load(FILE, &[]).unwrap();
        let tok = experiment.step("tok").unwrap();
        assert_eq!(
            tok.resources,
            Resources {
                cpus: Some(4),
                mem: Some("2G".into()),
                partition: Some("cpu".into()),
                sbatch_args: Some(vec!["--qos=low".into()]),
                ..Default::default()
            }
        );
        let t1 = experiment.step("t@1").unwrap();
        assert_eq!(t1.resources.time.as_deref(), Some("1:00:00"));
        assert_eq!(t1.resources.cpus, Some(2));
        let params = tok.params.params_without_inputs();
        assert!(params.get("resources").is_none(), "{params}");

        // An override changes the resources, not the parameters.
        let changed = load(FILE, &["steps.tok.resources.cpus=8"]).unwrap();
        let tok2 = changed.step("tok").unwrap();
        assert_eq!(tok2.resources.cpus, Some(8));
        assert_eq!(tok2.params.params_without_inputs(), params);
    }

    #[test]
    fn bad_resources_are_located_errors() {
        for (edit, expected) in [
            ("steps.tok.resources.mem=\"16GB\"", "`mem = \"16GB\"`"),
            ("steps.tok.resources.time=\"4h\"", "`time = \"4h\"`"),
            ("steps.tok.resources.gpu=1", "unknown field `gpu`"),
            ("steps.tok.resources.cpus=0", "at least one CPU"),
            ("steps.tok.resources=3", "must be a table"),
            (
                "defaults.tokenizer.resources.mem=\"x\"",
                "defaults.tokenizer.resources",
            ),
        ] {
            let error = load(FILE, &[edit]).unwrap_err().to_string();
            assert!(error.contains(expected), "{edit}: {error}");
        }
    }

    #[test]
    fn a_step_field_wins_over_the_default() {
        let step = Resources {
            cpus: Some(4),
            ..Default::default()
        };
        let defaults = Resources {
            cpus: Some(1),
            mem: Some("2G".into()),
            ..Default::default()
        };
        let merged = step.or(&defaults);
        assert_eq!(merged.cpus, Some(4));
        assert_eq!(merged.mem.as_deref(), Some("2G"));
    }
}
