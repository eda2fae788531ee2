//! The standard AWS configuration, read the way the AWS CLI reads it: the
//! environment first (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION`,
//! `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`), then the profile `AWS_PROFILE`
//! (default `default`) of `~/.aws/credentials` and `~/.aws/config` (or
//! `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::RemoteError;

/// What the AWS configuration says; the secret is never shown (`Debug` hides it).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AwsConfig {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    /// Where the credentials were found, for messages ("environment", a file).
    pub credentials_from: Option<String>,
}

impl std::fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsConfig")
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "…"),
            )
            .field("session_token", &self.session_token.as_ref().map(|_| "…"))
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("credentials_from", &self.credentials_from)
            .finish()
    }
}

impl AwsConfig {
    /// Reads this process's environment and the user's AWS files.
    pub fn from_environment() -> Result<Self, RemoteError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::read(
            &|name| std::env::var(name).ok().filter(|v| !v.is_empty()),
            home.as_deref(),
        )
    }

    /// The configuration given the environment `var` and the home directory.
    pub(crate) fn read(
        var: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<Self, RemoteError> {
        let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let in_home = |rel: &str| home.map(|h| h.join(".aws").join(rel));
        let credentials_file = var("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| in_home("credentials"));
        let config_file = var("AWS_CONFIG_FILE")
            .map(PathBuf::from)
            .or_else(|| in_home("config"));
        // The credentials file names a profile `[name]`; the config file
        // `[profile name]`, except `[default]`.
        let from_credentials = match &credentials_file {
            Some(path) => read_ini(path)?.remove(&profile).unwrap_or_default(),
            None => BTreeMap::new(),
        };
        let config_section = if profile == "default" {
            profile.clone()
        } else {
            format!("profile {profile}")
        };
        let from_config = match &config_file {
            Some(path) => read_ini(path)?.remove(&config_section).unwrap_or_default(),
            None => BTreeMap::new(),
        };
        let mut config = AwsConfig {
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .or_else(|| from_config.get("region").cloned()),
            endpoint_url: var("AWS_ENDPOINT_URL_S3")
                .or_else(|| var("AWS_ENDPOINT_URL"))
                .or_else(|| from_config.get("endpoint_url").cloned()),
            ..AwsConfig::default()
        };
        let sources = [
            (
                var("AWS_ACCESS_KEY_ID"),
                var("AWS_SECRET_ACCESS_KEY"),
                var("AWS_SESSION_TOKEN"),
                "the environment (AWS_ACCESS_KEY_ID)".to_string(),
            ),
            from_file(&from_credentials, credentials_file.as_deref(), &profile),
            from_file(&from_config, config_file.as_deref(), &profile),
        ];
        for (key, secret, token, from) in sources {
            if let (Some(key), Some(secret)) = (key, secret) {
                config.access_key_id = Some(key);
                config.secret_access_key = Some(secret);
                config.session_token = token;
                config.credentials_from = Some(from);
                break;
            }
        }
        Ok(config)
    }
}

type Found = (Option<String>, Option<String>, Option<String>, String);

fn from_file(section: &BTreeMap<String, String>, path: Option<&Path>, profile: &str) -> Found {
    (
        section.get("aws_access_key_id").cloned(),
        section.get("aws_secret_access_key").cloned(),
        section.get("aws_session_token").cloned(),
        format!(
            "profile `{profile}` of {}",
            path.map_or("?".into(), |p| p.display().to_string())
        ),
    )
}

/// The sections of an INI file, each a map of its `key = value` lines; a
/// missing file has none.
fn read_ini(path: &Path) -> Result<BTreeMap<String, BTreeMap<String, String>>, RemoteError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(RemoteError::Config {
                path: path.to_path_buf(),
                line: 0,
                why: source.to_string(),
            });
        }
    };
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_string();
            sections.entry(name.clone()).or_default();
            current = Some(name);
        } else if let Some((key, value)) = line.split_once('=') {
            // An indented line under `s3 =` belongs to a nested block xp does not read.
            if let Some(section) = &current {
                sections
                    .entry(section.clone())
                    .or_default()
                    .insert(key.trim().to_string(), value.trim().to_string());
            }
        } else if current.is_some() && !line.starts_with(char::is_whitespace) {
            return Err(RemoteError::Config {
                path: path.to_path_buf(),
                line: number + 1,
                why: "expected `[section]` or `key = value`".into(),
            });
        }
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_environment_wins_over_the_files() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = filesecret\n\
             [team]\naws_access_key_id = TEAMKEY\naws_secret_access_key = teamsecret\n",
        )
        .unwrap();
        std::fs::write(
            home.path().join(".aws/config"),
            "[default]\nregion = eu-west-1\n[profile team]\nregion = eu-north-1\n\
             endpoint_url = http://127.0.0.1:9000\n",
        )
        .unwrap();
        let from_env = AwsConfig::read(
            &env(&[
                ("AWS_ACCESS_KEY_ID", "ENVKEY"),
                ("AWS_SECRET_ACCESS_KEY", "envsecret"),
                ("AWS_REGION", "us-west-2"),
            ]),
            Some(home.path()),
        )
        .unwrap();
        assert_eq!(from_env.access_key_id.as_deref(), Some("ENVKEY"));
        assert_eq!(from_env.region.as_deref(), Some("us-west-2"));
        let default = AwsConfig::read(&env(&[]), Some(home.path())).unwrap();
        assert_eq!(default.access_key_id.as_deref(), Some("FILEKEY"));
        assert_eq!(default.region.as_deref(), Some("eu-west-1"));
        assert_eq!(default.endpoint_url, None);
        let team = AwsConfig::read(&env(&[("AWS_PROFILE", "team")]), Some(home.path())).unwrap();
        assert_eq!(team.access_key_id.as_deref(), Some("TEAMKEY"));
        assert_eq!(team.region.as_deref(), Some("eu-north-1"));
        assert_eq!(team.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(!format!("{team:?}").contains("teamsecret"));
    }

    #[test]
    fn no_configuration_means_anonymous() {
        let config = AwsConfig::read(&env(&[]), None).unwrap();
        assert_eq!(config, AwsConfig::default());
    }
}
