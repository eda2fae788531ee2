//! Where the Hub is and where its cache lives, from the standard HF variables.

use std::path::PathBuf;

/// The public Hugging Face Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How Hub sources are fetched and cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubOptions {
    /// The hub cache directory (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`): the layout huggingface_hub and hf-hub share.
    pub cache_dir: PathBuf,
    /// `$HF_ENDPOINT` or [`DEFAULT_ENDPOINT`].
    pub endpoint: String,
    /// `$HF_HUB_OFFLINE` is true: use only the cache, never the network.
    pub offline: bool,
    /// `$HF_TOKEN`; when None, hf-hub reads the token file next to the cache.
    pub token: Option<String>,
    /// Let hf-hub draw download progress bars on stderr.
    pub progress: bool,
}

/// Options for [`super::resolve`] and [`super::plan_status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveOptions {
    /// Relative local paths are resolved against this (the experiment file's directory).
    pub base_dir: PathBuf,
    pub hub: HubOptions,
}

/// huggingface_hub's `_is_true`: 1, ON, YES, TRUE in any case.
fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_uppercase().as_str(),
        "1" | "ON" | "YES" | "TRUE"
    )
}

impl HubOptions {
    /// From the process environment (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME,
    /// HOME, HF_ENDPOINT, HF_HUB_OFFLINE, HF_TOKEN).
    pub fn from_env() -> Self {
        Self::from_lookup(|key| std::env::var(key).ok().filter(|v| !v.is_empty()))
    }

    /// Like [`HubOptions::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let cache_dir = if let Some(hub_cache) = lookup("HF_HUB_CACHE") {
            PathBuf::from(hub_cache)
        } else {
            let hf_home = lookup("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
                let cache = lookup("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| lookup("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .unwrap_or_else(|| PathBuf::from(".cache"));
                cache.join("huggingface")
            });
            hf_home.join("hub")
        };
        Self {
            cache_dir,
            endpoint: lookup("HF_ENDPOINT")
                .map(|e| e.trim_end_matches('/').to_string())
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
            offline: lookup("HF_HUB_OFFLINE").is_some_and(|v| is_true(&v)),
            token: lookup("HF_TOKEN"),
            progress: false,
        }
    }
}

impl ResolveOptions {
    /// Hub options from the environment, local paths relative to `base_dir`.
    pub fn from_env(base_dir: impl Into<PathBuf>) -> Self {
        Self {
            base_dir: base_dir.into(),
            hub: HubOptions::from_env(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn opts(vars: &[(&str, &str)]) -> HubOptions {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubOptions::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn follows_the_hf_variables() {
        let o = opts(&[("HOME", "/home/u")]);
        assert_eq!(o.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(o.endpoint, DEFAULT_ENDPOINT);
        assert!(!o.offline && o.token.is_none());

        let o = opts(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")]);
        assert_eq!(o.cache_dir, PathBuf::from("/xdg/huggingface/hub"));

        let o = opts(&[("HOME", "/home/u"), ("HF_HOME", "/hf")]);
        assert_eq!(o.cache_dir, PathBuf::from("/hf/hub"));

        let o = opts(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/elsewhere")]);
        assert_eq!(o.cache_dir, PathBuf::from("/elsewhere"));

        let o = opts(&[("HF_ENDPOINT", "http://127.0.0.1:9/"), ("HF_TOKEN", "t")]);
        assert_eq!(o.endpoint, "http://127.0.0.1:9");
        assert_eq!(o.token.as_deref(), Some("t"));

        for (value, offline) in [
            ("1", true),
            ("true", true),
            ("YES", true),
            ("on", true),
            ("0", false),
            ("no", false),
        ] {
            assert_eq!(
                opts(&[("HF_HUB_OFFLINE", value)]).offline,
                offline,
                "{value}"
            );
        }
    }
}
