//! `corpus`: English-like text from a seeded stochastic grammar whose open word
//! classes have Zipf-distributed frequencies, so rare words exist and their
//! true probabilities are known. The miniature experiment's data, needing
//! nothing outside the repository.

use std::collections::HashSet;
use std::fmt::Write as _;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::context::{StepContext, StepError, StepOutcome};
use super::{KindParams, ResourceHint};

/// English-like text from a seeded grammar with Zipf-distributed word frequencies (rare
/// words exist; their true probabilities are in `truth.json`): data that needs nothing
/// outside the repository.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Rows in the train split (validation and test get `eval_rows` each).
    #[serde(default = "default_train_rows")]
    pub train_rows: usize,
    #[serde(default = "default_eval_rows")]
    pub eval_rows: usize,
    /// Distinct nouns, verbs and adjectives together.
    #[serde(default = "default_vocab")]
    pub vocab: usize,
    /// Zipf exponent s of the open word classes: P(rank r) ∝ r^-s.
    #[serde(default = "default_zipf")]
    pub zipf_exponent: f64,
    /// Share of rows that are empty, as WikiText's blank lines.
    #[serde(default = "default_empty_rows")]
    pub empty_rows: f64,
}

fn default_train_rows() -> usize {
    2000
}
fn default_eval_rows() -> usize {
    200
}
fn default_vocab() -> usize {
    1000
}
fn default_zipf() -> f64 {
    1.1
}
fn default_empty_rows() -> f64 {
    0.1
}

impl KindParams for Params {
    const KIND: &'static str = "corpus";
    const VERSION: u32 = 1;
    const USES_SEED: bool = true;
    const REPLICATED: bool = false; // data: the replicates share it
    const USES_PRECISION: bool = false; // no model
    const RESOURCES: ResourceHint = ResourceHint::DATA;
    input_slots!();

    fn outputs(&self) -> Vec<(String, String)> {
        vec![
            ("data".into(), "data".into()),
            ("truth".into(), "truth.json".into()),
        ]
    }
}

const DETERMINERS: &[&str] = &["the", "a", "this", "every", "some", "her", "his", "their"];
const PREPOSITIONS: &[&str] = &[
    "in", "on", "near", "under", "with", "after", "before", "through",
];
const ONSETS: &[&str] = &[
    "b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "v", "w", "br", "st", "tr",
    "pl", "gr", "sh", "ch", "th",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "ou", "io"];
const CODAS: &[&str] = &["", "", "n", "r", "s", "t", "l", "nd", "st", "m"];

/// A word class whose members are drawn by Zipf rank.
struct WordClass {
    words: Vec<String>,
    cdf: Vec<f64>,
    probabilities: Vec<f64>,
}

impl WordClass {
    fn new(words: Vec<String>, exponent: f64) -> Self {
        let weights: Vec<f64> = (1..=words.len())
            .map(|r| (r as f64).powf(-exponent))
            .collect();
        let total: f64 = weights.iter().sum();
        let probabilities: Vec<f64> = weights.iter().map(|w| w / total).collect();
        let mut acc = 0.0;
        let cdf = probabilities
            .iter()
            .map(|p| {
                acc += p;
                acc
            })
            .collect();
        WordClass {
            words,
            cdf,
            probabilities,
        }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> &str {
        let u: f64 = rng.random();
        let i = self
            .cdf
            .partition_point(|&c| c < u)
            .min(self.words.len() - 1);
        &self.words[i]
    }
}

/// Pronounceable made-up words, shorter for frequent ranks (as in English).
fn invent_words(
    n: usize,
    suffix: &str,
    taken: &mut HashSet<String>,
    rng: &mut ChaCha8Rng,
) -> Vec<String> {
    let mut words = Vec::with_capacity(n);
    while words.len() < n {
        let syllables = 1
            + usize::from(words.len() >= 30)
            + usize::from(words.len() >= 300)
            + rng.random_range(0..2);
        let mut w = String::new();
        for _ in 0..syllables {
            w += ONSETS[rng.random_range(0..ONSETS.len())];
            w += VOWELS[rng.random_range(0..VOWELS.len())];
        }
        w += CODAS[rng.random_range(0..CODAS.len())];
        w += suffix;
        if taken.insert(w.clone()) {
            words.push(w);
        }
    }
    words
}

struct Grammar {
    nouns: WordClass,
    verbs: WordClass,
    adjectives: WordClass,
}

impl Grammar {
    fn new(p: &Params, rng: &mut ChaCha8Rng) -> Self {
        let mut taken: HashSet<String> = DETERMINERS
            .iter()
            .chain(PREPOSITIONS)
            .map(|s| s.to_string())
            .collect();
        let n_verbs = (p.vocab / 4).max(1);
        let n_adjectives = (p.vocab * 3 / 20).max(1);
        let n_nouns = p.vocab.saturating_sub(n_verbs + n_adjectives).max(1);
        Grammar {
            nouns: WordClass::new(invent_words(n_nouns, "", &mut taken, rng), p.zipf_exponent),
            verbs: WordClass::new(invent_words(n_verbs, "s", &mut taken, rng), p.zipf_exponent),
            adjectives: WordClass::new(
                invent_words(n_adjectives, "y", &mut taken, rng),
                p.zipf_exponent,
            ),
        }
    }

    fn noun_phrase(&self, rng: &mut ChaCha8Rng, out: &mut String) {
        out.push_str(DETERMINERS[rng.random_range(0..DETERMINERS.len())]);
        if rng.random_bool(0.35) {
            out.push(' ');
            out.push_str(self.adjectives.sample(rng));
        }
        out.push(' ');
        out.push_str(self.nouns.sample(rng));
    }

    /// NP V NP (P NP)? , sometimes two clauses joined by "and".
    fn sentence(&self, rng: &mut ChaCha8Rng, out: &mut String) {
        let clauses = if rng.random_bool(0.2) { 2 } else { 1 };
        for c in 0..clauses {
            if c > 0 {
                out.push_str(" and ");
            }
            self.noun_phrase(rng, out);
            out.push(' ');
            out.push_str(self.verbs.sample(rng));
            out.push(' ');
            self.noun_phrase(rng, out);
            if rng.random_bool(0.3) {
                out.push(' ');
                out.push_str(PREPOSITIONS[rng.random_range(0..PREPOSITIONS.len())]);
                out.push(' ');
                self.noun_phrase(rng, out);
            }
        }
        out.push_str(" .");
    }

    /// One row: empty, a heading (` = word word = `, as WikiText), or 1-4 sentences.
    fn row(&self, p: &Params, rng: &mut ChaCha8Rng) -> String {
        let mut row = String::new();
        if rng.random_bool(p.empty_rows.clamp(0.0, 1.0)) {
            return row;
        }
        if rng.random_bool(0.05) {
            let _ = write!(
                row,
                " = {} {} = ",
                self.adjectives.sample(rng),
                self.nouns.sample(rng)
            );
            return row;
        }
        let sentences = rng.random_range(1..=4);
        for _ in 0..sentences {
            row.push(' ');
            self.sentence(rng, &mut row);
        }
        row
    }
}

pub fn run(p: &Params, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
    if p.vocab < 3 || p.train_rows == 0 || p.eval_rows == 0 || p.zipf_exponent <= 0.0 {
        return Err(StepError::Invalid(format!(
            "step `{}`: corpus needs vocab >= 3, train_rows and eval_rows > 0 and zipf_exponent > 0",
            ctx.step
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed);
    let grammar = Grammar::new(p, &mut rng);
    let data_dir = ctx.out_path("data");
    std::fs::create_dir_all(&data_dir).map_err(StepError::io(&data_dir))?;
    let splits = [
        ("train", p.train_rows),
        ("validation", p.eval_rows),
        ("test", p.eval_rows),
    ];
    let total: usize = splits.iter().map(|s| s.1).sum();
    let mut done = 0;
    for (split, rows) in splits {
        let mut text = String::new();
        for _ in 0..rows {
            text += &grammar.row(p, &mut rng);
            text.push('\n');
        }
        done += rows;
        ctx.progress(done as u64, Some(total as u64), "rows", split);
        let path = data_dir.join(format!("{split}.txt"));
        std::fs::write(&path, text).map_err(StepError::io(&path))?;
    }
    let class =
        |c: &WordClass| serde_json::json!({"words": c.words, "probabilities": c.probabilities});
    let truth = serde_json::json!({
        "zipf_exponent": p.zipf_exponent,
        "nouns": class(&grammar.nouns),
        "verbs": class(&grammar.verbs),
        "adjectives": class(&grammar.adjectives),
    });
    let path = ctx.out_path("truth.json");
    std::fs::write(&path, serde_json::to_string_pretty(&truth).expect("JSON"))
        .map_err(StepError::io(&path))?;
    Ok(StepOutcome {
        metrics: serde_json::json!({"train_rows": p.train_rows, "eval_rows": p.eval_rows, "vocab": p.vocab}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            train_rows: 10,
            eval_rows: 2,
            vocab: 200,
            zipf_exponent: 1.1,
            empty_rows: 0.1,
        }
    }

    #[test]
    fn zipf_frequencies_follow_rank() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let g = Grammar::new(&params(), &mut rng);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..50_000 {
            *counts
                .entry(g.nouns.sample(&mut rng).to_string())
                .or_insert(0usize) += 1;
        }
        let top = counts[&g.nouns.words[0]] as f64 / 50_000.0;
        // Within 10% of the exact probability of rank 1.
        assert!(
            (top - g.nouns.probabilities[0]).abs() < 0.1 * g.nouns.probabilities[0],
            "{top}"
        );
        // Rare words exist: the rarest rank is far rarer than the first.
        assert!(g.nouns.probabilities.last().unwrap() * 50.0 < g.nouns.probabilities[0]);
    }

    #[test]
    fn same_seed_same_text() {
        let rows = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let g = Grammar::new(&params(), &mut rng);
            (0..20)
                .map(|_| g.row(&params(), &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(rows(1), rows(1));
        assert_ne!(rows(1), rows(2));
    }
}
