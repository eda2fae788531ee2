//! `retry = { max = N }` on a step (or under `[defaults.KIND]`): how many times
//! a step whose process was killed (a signal, a preempted or failed cluster node,
//! a cluster time limit) is started again. A retry cannot change a result, so,
//! like `resources`, it is carried on the step's declaration and never enters
//! its key.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use super::error::{Problem, SpecError};
use super::location::SourceMap;
use super::raw::Value;

/// The most retries a step may ask for: enough for any flaky cluster, few enough
/// that a typo (`max = 1000`) does not hide a step that can never finish.
pub const MAX_RETRIES: u32 = 100;

/// How often a step is started again after its process was killed. Only deaths
/// from outside are retried: a step that fails with its own error (bad input, a
/// NaN loss, a program's non-zero exit) would fail the same way again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Further attempts after the first: `max = 2` runs the step at most 3 times.
    #[schemars(range(max = MAX_RETRIES))]
    pub max: u32,
}

/// Reads a `retry` table; `path` is where it is (`steps.train.retry`,
/// `defaults.finetune.retry`), for error messages.
pub(crate) fn parse(value: Value<'_>, path: &str, map: &SourceMap<'_>) -> Result<Retry, SpecError> {
    let span = value.span();
    if !matches!(value.get_ref(), DeValue::Table(_)) {
        let problem = Problem::WrongType {
            what: path.to_string(),
            expected: "a table (`retry = { max = 2 }`)".into(),
            found: super::overrides::a_type(value.get_ref()),
        };
        return Err(map.error(&span, problem));
    }
    let bad = |span: &std::ops::Range<usize>, message: String| {
        map.error(
            span,
            Problem::Retry {
                path: path.to_string(),
                message,
            },
        )
    };
    let max_span = match value.get_ref() {
        DeValue::Table(table) => table.get("max").map(|v| v.span()),
        _ => None,
    };
    let de = ValueDeserializer::from(Spanned::new(span.clone(), value.into_inner()));
    let retry = Retry::deserialize(de).map_err(|e| {
        let at = e.span().unwrap_or_else(|| span.clone());
        bad(&at, e.message().to_string())
    })?;
    if retry.max > MAX_RETRIES {
        let why = format!(
            "`max = {}`: at most {MAX_RETRIES} retries (a step killed that often has a cause to fix)",
            retry.max
        );
        return Err(bad(&max_span.unwrap_or(span), why));
    }
    Ok(retry)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[experiment]
name = "r"
[sources]
corpus = "corpus"
[defaults.tokenizer]
retry = { max = 1 }
[steps.tok]
kind = "tokenizer"
train_on = "corpus"
retry = { max = 3 }
[steps.other]
kind = "tokenizer"
train_on = "corpus"
vocab_size = 300
[steps.blocks]
kind = "tokenize"
data = "corpus"
tokenizer = "tok.tokenizer"
"#;

    fn load(text: &str, overrides: &[&str]) -> Result<crate::spec::Experiment, SpecError> {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        crate::spec::load_str(text, std::path::Path::new("r.toml"), &overrides)
    }

    #[test]
    fn retry_merges_step_over_kind_defaults_and_stays_out_of_params() {
        let experiment = load(FILE, &[]).unwrap();
        assert_eq!(experiment.step("tok").unwrap().retry, Retry { max: 3 });
        assert_eq!(experiment.step("other").unwrap().retry, Retry { max: 1 });
        assert_eq!(experiment.step("blocks").unwrap().retry, Retry { max: 0 });
        let params = experiment
            .step("tok")
            .unwrap()
            .params
            .params_without_inputs();
        assert!(params.get("retry").is_none(), "{params}");
    }

    #[test]
    fn bad_retries_are_located_errors() {
        for (edit, expected) in [
            ("steps.tok.retry.max=-1", "steps.tok.retry"),
            ("steps.tok.retry.max=1000", "at most 100 retries"),
            ("steps.tok.retry.tries=2", "unknown field `tries`"),
            ("steps.tok.retry=2", "a table (`retry = { max = 2 }`)"),
            (
                "defaults.tokenizer.retry.max=\"x\"",
                "defaults.tokenizer.retry",
            ),
        ] {
            let error = load(FILE, &[edit]).unwrap_err().to_string();
            assert!(error.contains(expected), "{edit}: {error}");
        }
        // Written in the file, the error points at the line of `max`.
        let text = FILE.replace("retry = { max = 3 }", "retry = { max = 500 }");
        let error = load(&text, &[]).unwrap_err();
        assert_eq!(error.location().unwrap().to_string(), "r.toml:11:17");
        assert!(error.to_string().contains("steps.tok.retry"), "{error}");
    }
}
