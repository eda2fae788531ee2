//! Whatever the bytes, `load_str` returns `Ok` or `Err`; it never panics.

use std::path::Path;

use proptest::prelude::*;

const VALID: &str = include_str!("../fixtures/spec/loop.toml");

/// One way to damage a file.
#[derive(Clone, Debug)]
enum Edit {
    Truncate(usize),
    FlipByte(usize, u8),
    Delete(usize, usize),
    Insert(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let len = VALID.len();
    // Insertions favour the characters TOML and the DSL care about.
    let fragment = prop_oneof![
        Just("[".to_string()),
        Just("]".to_string()),
        Just("\"".to_string()),
        Just("=".to_string()),
        Just(".".to_string()),
        Just("@".to_string()),
        Just("@*".to_string()),
        Just("\n".to_string()),
        Just("carry.".to_string()),
        Just("{ }".to_string()),
        Just("[[steps]]\n".to_string()),
        Just("é".to_string()),
        "[ -~]{0,8}".prop_map(|s| s),
    ];
    prop_oneof![
        (0..=len).prop_map(Edit::Truncate),
        (0..len, any::<u8>()).prop_map(|(i, b)| Edit::FlipByte(i, b)),
        (0..len, 1..40usize).prop_map(|(i, n)| Edit::Delete(i, n)),
        (0..=len, fragment).prop_map(|(i, s)| Edit::Insert(i, s)),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    match edit {
        Edit::Truncate(n) => bytes.truncate(*n),
        Edit::FlipByte(i, b) => {
            if let Some(x) = bytes.get_mut(*i) {
                *x ^= b | 1;
            }
        }
        Edit::Delete(i, n) => {
            let start = (*i).min(bytes.len());
            let end = (start + n).min(bytes.len());
            bytes.drain(start..end);
        }
        Edit::Insert(i, s) => {
            let at = (*i).min(bytes.len());
            bytes.splice(at..at, s.bytes());
        }
    }
}

const OVERRIDES: &[&str] = &[
    "loop.gen.count=2",
    "steps.real.block_size=abc",
    "loop.gen.steps.tok=1",
    "steps=[]",
    "a..b=1",
    "=",
    "sources.opt=[1,",
    "loop.gen.next.data=\"tok@*.tokenizer\"",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

    #[test]
    fn mangled_files_never_panic(edits in prop::collection::vec(edit(), 1..6), overrides in prop::collection::vec(0..OVERRIDES.len(), 0..3)) {
        let mut bytes = VALID.as_bytes().to_vec();
        for e in &edits {
            apply(&mut bytes, e);
        }
        let text = String::from_utf8_lossy(&bytes);
        let overrides: Vec<String> = overrides.into_iter().map(|i| OVERRIDES[i].to_string()).collect();
        // Both outcomes are fine; rendering the error must not panic either.
        match xp::spec::load_str(&text, Path::new("mangled.toml"), &overrides) {
            Ok(experiment) => prop_assert!(!experiment.meta.name.is_empty()),
            Err(error) => prop_assert!(error.to_string().starts_with("error: ")),
        }
    }
}

#[test]
fn the_unmangled_fixture_loads() {
    xp::spec::load_str(VALID, Path::new("loop.toml"), &[]).unwrap();
}
