//! `[cache]`: where the experiment's remote cache is. Never part of a key: the
//! same step has the same key with any cache or none.

use std::ops::Range;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use super::error::{Problem, SpecError};
use super::location::SourceMap;
use super::raw::{Value, expect_table};
use crate::remote::{RemoteSettings, RemoteUrl};

/// `[cache]` as written (also the `[cache]` table of the user configuration,
/// `$XDG_CONFIG_HOME/xp/config.toml`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheTable {
    /// A remote cache shared with others: `s3://BUCKET` or `s3://BUCKET/PREFIX`.
    /// `xp run` downloads a step found there instead of computing it; `xp push`
    /// and `xp pull` copy entries. `--remote` overrides it.
    pub remote: Option<String>,
    /// The S3 endpoint of a server other than AWS (`http://127.0.0.1:8333` for a
    /// SeaweedFS or MinIO server); else `AWS_ENDPOINT_URL` or the AWS profile's
    /// `endpoint_url`, else AWS's for the region.
    pub endpoint: Option<String>,
    /// The bucket's region; else `AWS_REGION` or the AWS profile's, else `us-east-1`.
    pub region: Option<String>,
}

impl CacheTable {
    /// The remote's settings, `remote` overriding the table's URL; `None`
    /// without a remote. An invalid URL is an error naming it.
    pub fn settings(
        &self,
        remote: Option<&str>,
    ) -> Result<Option<RemoteSettings>, crate::remote::RemoteError> {
        let Some(url) = remote.or(self.remote.as_deref()) else {
            return Ok(None);
        };
        Ok(Some(RemoteSettings {
            url: url.parse()?,
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
        }))
    }

    /// This table's values, each absent one taken from `under`.
    pub fn over(&self, under: &CacheTable) -> CacheTable {
        CacheTable {
            remote: self.remote.clone().or_else(|| under.remote.clone()),
            endpoint: self.endpoint.clone().or_else(|| under.endpoint.clone()),
            region: self.region.clone().or_else(|| under.region.clone()),
        }
    }
}

/// Reads `[cache]`, checking its URL where it is written.
pub(crate) fn parse(
    key_span: Range<usize>,
    value: Value<'_>,
    map: &SourceMap<'_>,
) -> Result<CacheTable, SpecError> {
    let (table, span) = expect_table(value, "cache", map)?;
    let url_span = table.get("remote").map(|v| v.span());
    let de = ValueDeserializer::from(Spanned::new(span, DeValue::Table(table)));
    let cache = CacheTable::deserialize(de).map_err(|e| {
        map.error(
            &e.span().unwrap_or(key_span.clone()),
            Problem::Cache {
                message: e.message().to_string(),
            },
        )
    })?;
    if let Some(url) = &cache.remote
        && let Err(e) = url.parse::<RemoteUrl>()
    {
        let message = e.to_string();
        return Err(map.error(&url_span.unwrap_or(key_span), Problem::Cache { message }));
    }
    Ok(cache)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    const STEPS: &str = "\n[steps.c]\nkind = \"corpus\"\n";

    fn load(cache: &str) -> Result<super::CacheTable, String> {
        let text = format!("[experiment]\nname = \"x\"\n\n{cache}{STEPS}");
        crate::spec::load_str(&text, Path::new("x.toml"), &[])
            .map(|e| e.cache)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_table_is_read_and_checked_where_it_is_written() {
        assert_eq!(load("").unwrap(), super::CacheTable::default());
        let table = load("[cache]\nremote = \"s3://team/xp\"\nregion = \"eu-west-1\"\n").unwrap();
        assert_eq!(table.remote.as_deref(), Some("s3://team/xp"));
        let settings = table.settings(None).unwrap().unwrap();
        assert_eq!(settings.url.prefix, "xp");
        assert_eq!(settings.region.as_deref(), Some("eu-west-1"));
        // --remote wins over the file.
        let flag = table.settings(Some("s3://other")).unwrap().unwrap();
        assert_eq!(flag.url.bucket, "other");
        for (cache, expected) in [
            ("[cache]\nremote = \"/tmp/cache\"\n", "x.toml:5:"),
            ("[cache]\nremote = \"s3://B\"\n", "bucket name"),
            ("[cache]\nbucket = \"b\"\n", "unknown field `bucket`"),
            ("[cache]\nremote = 3\n", "in [cache]: invalid type"),
        ] {
            let err = load(cache).unwrap_err();
            assert!(err.contains(expected), "{cache:?}: {err}");
        }
    }

    #[test]
    fn the_files_table_wins_over_the_users() {
        let file = super::CacheTable {
            remote: Some("s3://mine".into()),
            ..Default::default()
        };
        let user = super::CacheTable {
            remote: Some("s3://team".into()),
            endpoint: Some("http://127.0.0.1:1".into()),
            region: None,
        };
        let both = file.over(&user);
        assert_eq!(both.remote.as_deref(), Some("s3://mine"));
        assert_eq!(both.endpoint.as_deref(), Some("http://127.0.0.1:1"));
    }
}
