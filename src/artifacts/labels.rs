//! How step names carry a sweep point, as the files above record them (a set's
//! label, a scorer's name, a report input's origin): `finetune@2[lr=3e-4,seed=1]`
//! is generation 2 of `finetune` at the point where axis `lr` is `3e-4` and the
//! replicate seed is 1. The spec writes these names; the report and `xp show`
//! read the replicate seed back to pool replicates.

/// The replicate axis's name in point labels.
pub const SEED_AXIS: &str = "seed";

/// The `[...]` part of a label, as (start, end) byte offsets of the brackets.
fn brackets(label: &str) -> Option<(usize, usize)> {
    let open = label.find('[')?;
    let close = open + label[open..].rfind(']')?;
    Some((open, close))
}

/// The replicate seed in a label: `test@2[lr=1e-3,seed=1].scores` → `1`.
pub fn replicate_of(label: &str) -> Option<&str> {
    let (open, close) = brackets(label)?;
    label[open + 1..close]
        .split(',')
        .find_map(|part| part.strip_prefix(SEED_AXIS)?.strip_prefix('='))
}

/// The label without its replicate seed: `test@2[lr=1e-3,seed=1].scores` →
/// `test@2[lr=1e-3].scores`, `test@2[seed=1].scores` → `test@2.scores`.
pub fn without_replicate(label: &str) -> String {
    let Some((open, close)) = brackets(label) else {
        return label.to_string();
    };
    let kept: Vec<&str> = label[open + 1..close]
        .split(',')
        .filter(|part| {
            part.strip_prefix(SEED_AXIS)
                .is_none_or(|rest| !rest.starts_with('='))
        })
        .collect();
    let point = if kept.is_empty() {
        String::new()
    } else {
        format!("[{}]", kept.join(","))
    };
    format!("{}{point}{}", &label[..open], &label[close + 1..])
}

/// The step name without its point: `finetune@2[lr=3e-4,seed=1]` → `finetune@2`.
pub fn without_point(name: &str) -> &str {
    name.split_once('[').map_or(name, |(base, _)| base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replicate_seed_is_read_from_and_removed_from_labels() {
        assert_eq!(replicate_of("test@2[lr=1e-3,seed=1].scores"), Some("1"));
        assert_eq!(replicate_of("finetune@0[seed=12].model"), Some("12"));
        assert_eq!(replicate_of("test@2[lr=1e-3].scores"), None);
        assert_eq!(replicate_of("blocks.test"), None);
        assert_eq!(replicate_of("x[seedling=3].y"), None);
        assert_eq!(
            without_replicate("test@2[lr=1e-3,seed=1].scores"),
            "test@2[lr=1e-3].scores"
        );
        assert_eq!(without_replicate("test@2[seed=1].scores"), "test@2.scores");
        assert_eq!(without_replicate("blocks.test"), "blocks.test");
        assert_eq!(without_point("finetune@2[lr=3e-4,seed=1]"), "finetune@2");
        assert_eq!(without_point("corpus"), "corpus");
    }
}
