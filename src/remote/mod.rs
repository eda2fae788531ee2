//! A remote cache on S3, or any server that speaks its API (SeaweedFS, MinIO,
//! Cloudflare R2): the client only. It reads and writes named objects under the
//! remote's prefix and knows nothing of entries: `src/store/` decides the names
//! (its layout) and what goes in them (`store/remote.rs`).
//!
//! Requests are signed by `rusty-s3` (query-string signatures, no I/O of its own)
//! and sent by `ureq`, the blocking HTTP client the `hf:` sources already use;
//! BENCHMARKS.md has the build cost of this against `object_store`. Credentials,
//! region and endpoint come from the standard AWS configuration ([`aws`]); a
//! request's URL carries a signature, so no message ever shows one.

mod aws;

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub use aws::AwsConfig;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

/// How long a signed request stays valid: longer than any upload of one file.
const SIGNATURE_VALIDITY: Duration = Duration::from_secs(6 * 3600);
/// Starts of a request that failed before its response: a busy server (503) or
/// a dropped connection gets this many tries in all.
const TRIES: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("`{url}` is not a remote cache: {why} (expected s3://BUCKET or s3://BUCKET/PREFIX)")]
    BadUrl { url: String, why: String },
    #[error("the remote endpoint `{endpoint}` is not an http(s) URL: {why}")]
    BadEndpoint { endpoint: String, why: String },
    #[error("{}:{line}: {why}", path.display())]
    Config {
        path: std::path::PathBuf,
        line: usize,
        why: String,
    },
    #[error("{method} {object} on {remote}: the server answered {status} {reason}{hint}")]
    Status {
        method: &'static str,
        object: String,
        remote: String,
        status: u16,
        reason: String,
        hint: &'static str,
    },
    #[error("{method} {object} on {remote}: {message} (is the endpoint {endpoint} reachable?)")]
    Transport {
        method: &'static str,
        object: String,
        remote: String,
        endpoint: String,
        message: String,
    },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
}

/// `s3://BUCKET/PREFIX`: a bucket and the prefix every object name gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteUrl {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
}

impl FromStr for RemoteUrl {
    type Err = RemoteError;

    fn from_str(url: &str) -> Result<Self, RemoteError> {
        let bad = |why: &str| RemoteError::BadUrl {
            url: url.to_string(),
            why: why.to_string(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("only s3:// remotes are supported"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !valid_bucket {
            return Err(bad(
                "a bucket name has 3 to 63 lowercase letters, digits, `-` and `.`",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|part| part == "." || part == "..") {
            return Err(bad("the prefix may not contain `.` or `..` components"));
        }
        Ok(RemoteUrl {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Which remote, and the settings given with it (`[cache]`); what they leave
/// open comes from the AWS configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSettings {
    pub url: RemoteUrl,
    /// The S3 endpoint (`http://127.0.0.1:8333`); else `AWS_ENDPOINT_URL` or the
    /// profile's `endpoint_url`; else AWS's for the region.
    pub endpoint: Option<String>,
    /// Else `AWS_REGION` or the profile's; else `us-east-1`.
    pub region: Option<String>,
}

/// A connected remote: the bucket, the credentials and an HTTP agent.
pub struct Remote {
    url: RemoteUrl,
    endpoint: String,
    bucket: Bucket,
    credentials: Option<Credentials>,
    agent: ureq::Agent,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credentials.
        f.debug_struct("Remote")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Remote {
    /// The remote of `settings`, with what they leave open taken from `aws`.
    /// Nothing is sent yet.
    pub fn connect(settings: &RemoteSettings, aws: &AwsConfig) -> Result<Remote, RemoteError> {
        let region = settings
            .region
            .clone()
            .or_else(|| aws.region.clone())
            .unwrap_or_else(|| "us-east-1".into());
        let custom = settings
            .endpoint
            .clone()
            .or_else(|| aws.endpoint_url.clone());
        let endpoint = custom
            .clone()
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let bad = |why: String| RemoteError::BadEndpoint {
            endpoint: endpoint.clone(),
            why,
        };
        let parsed: url::Url = endpoint.parse().map_err(|e| bad(format!("{e}")))?;
        // Other servers than AWS's (and a bucket with dots, whose name breaks
        // TLS host names) are addressed by path.
        let style = if custom.is_some() || settings.url.bucket.contains('.') {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(parsed, style, settings.url.bucket.clone(), region)
            .map_err(|e| bad(format!("{e:?}")))?;
        let credentials = match (&aws.access_key_id, &aws.secret_access_key) {
            (Some(key), Some(secret)) => Some(match &aws.session_token {
                Some(token) => Credentials::new_with_token(key, secret, token),
                None => Credentials::new(key, secret),
            }),
            _ => None,
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(60))
            .timeout_write(Duration::from_secs(60))
            .build();
        Ok(Remote {
            url: settings.url.clone(),
            endpoint,
            bucket,
            credentials,
            agent,
        })
    }

    pub fn url(&self) -> &RemoteUrl {
        &self.url
    }

    /// `name` under the prefix.
    fn object(&self, name: &str) -> String {
        if self.url.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.url.prefix)
        }
    }

    /// Whether the object `name` exists.
    pub fn exists(&self, name: &str) -> Result<bool, RemoteError> {
        let object = self.object(name);
        let signed = self
            .bucket
            .head_object(self.credentials.as_ref(), &object)
            .sign(SIGNATURE_VALIDITY);
        match self.send("HEAD", name, || Ok(self.agent.head(signed.as_str()).call()))? {
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }

    /// Copies the object `name` into `into`; `None` when there is no such
    /// object. A transfer cut short is an error, never a short copy.
    pub fn get_into(&self, name: &str, into: &mut dyn Write) -> Result<Option<u64>, RemoteError> {
        let object = self.object(name);
        let signed = self
            .bucket
            .get_object(self.credentials.as_ref(), &object)
            .sign(SIGNATURE_VALIDITY);
        let Some(response) =
            self.send("GET", name, || Ok(self.agent.get(signed.as_str()).call()))?
        else {
            return Ok(None);
        };
        let expected: Option<u64> = response
            .header("Content-Length")
            .and_then(|v| v.parse().ok());
        let copied = io::copy(&mut response.into_reader(), into)
            .map_err(|e| self.transport("GET", name, e.to_string()))?;
        if let Some(expected) = expected
            && copied != expected
        {
            let message = format!("the transfer ended after {copied} of {expected} bytes");
            return Err(self.transport("GET", name, message));
        }
        Ok(Some(copied))
    }

    /// The object `name` in memory (a manifest); `None` when there is none.
    pub fn get_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        let mut bytes = Vec::new();
        Ok(self.get_into(name, &mut bytes)?.map(|_| bytes))
    }

    /// Writes the object `name` from the file at `path`. One PUT: S3 makes it
    /// visible whole or not at all.
    pub fn put_file(&self, name: &str, path: &Path) -> Result<(), RemoteError> {
        let io_err = |source| RemoteError::Io {
            what: "reading",
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(io_err)?.len();
        self.put(name, len, &|| {
            std::fs::File::open(path)
                .map(|f| Box::new(f) as Box<dyn Read>)
                .map_err(io_err)
        })
    }

    /// Writes the object `name` with `bytes`.
    pub fn put_bytes(&self, name: &str, bytes: &[u8]) -> Result<(), RemoteError> {
        self.put(name, bytes.len() as u64, &|| {
            Ok(Box::new(io::Cursor::new(bytes.to_vec())) as Box<dyn Read>)
        })
    }

    fn put(
        &self,
        name: &str,
        len: u64,
        body: &dyn Fn() -> Result<Box<dyn Read>, RemoteError>,
    ) -> Result<(), RemoteError> {
        let object = self.object(name);
        let signed = self
            .bucket
            .put_object(self.credentials.as_ref(), &object)
            .sign(SIGNATURE_VALIDITY);
        let sent = self.send("PUT", name, || {
            // With a length, ureq sends it as is rather than chunked (S3 refuses
            // chunked uploads without its own signed chunk encoding).
            Ok(self
                .agent
                .put(signed.as_str())
                .set("Content-Length", &len.to_string())
                .send(body()?))
        });
        match sent? {
            Some(_) => Ok(()),
            None => Err(RemoteError::Status {
                method: "PUT",
                object: name.to_string(),
                remote: self.url.to_string(),
                status: 404,
                reason: "Not Found".into(),
                hint: " (does the bucket exist?)",
            }),
        }
    }

    /// Sends a request, trying again after a server error or a dropped
    /// connection; `None` for 404. The error never contains the signed URL.
    fn send(
        &self,
        method: &'static str,
        name: &str,
        mut request: impl FnMut() -> Result<Result<ureq::Response, ureq::Error>, RemoteError>,
    ) -> Result<Option<ureq::Response>, RemoteError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let last = tries >= TRIES;
            match request()? {
                Ok(response) => return Ok(Some(response)),
                Err(ureq::Error::Status(404, _)) => return Ok(None),
                Err(ureq::Error::Status(status, response)) if status < 500 || last => {
                    let hint = match status {
                        401 | 403 => {
                            " (check the credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                             or AWS_PROFILE and ~/.aws/credentials)"
                        }
                        _ => "",
                    };
                    return Err(RemoteError::Status {
                        method,
                        object: name.to_string(),
                        remote: self.url.to_string(),
                        status,
                        reason: s3_error_code(response),
                        hint,
                    });
                }
                Err(ureq::Error::Transport(transport)) if last => {
                    let message = match transport.message() {
                        Some(detail) => format!("{}: {detail}", transport.kind()),
                        None => transport.kind().to_string(),
                    };
                    return Err(self.transport(method, name, message));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100 << (2 * (tries - 1)))),
            }
        }
    }

    fn transport(&self, method: &'static str, name: &str, message: String) -> RemoteError {
        RemoteError::Transport {
            method,
            object: name.to_string(),
            remote: self.url.to_string(),
            endpoint: self.endpoint.clone(),
            message,
        }
    }
}

/// S3's error code (`AccessDenied`, `NoSuchBucket`) from an error response's
/// XML body, else the HTTP reason phrase.
fn s3_error_code(response: ureq::Response) -> String {
    let reason = response.status_text().to_string();
    let mut body = String::new();
    let _ = response.into_reader().take(4096).read_to_string(&mut body);
    match body
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
    {
        Some((code, _)) => format!("{reason} ({code})"),
        None => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_bucket_and_prefix() {
        let url: RemoteUrl = "s3://team-cache/xp/runs/".parse().unwrap();
        assert_eq!(url.bucket, "team-cache");
        assert_eq!(url.prefix, "xp/runs");
        assert_eq!(url.to_string(), "s3://team-cache/xp/runs");
        let bare: RemoteUrl = "s3://bucket".parse().unwrap();
        assert_eq!(bare.prefix, "");
        for bad in [
            "gs://bucket/x",
            "s3://",
            "s3://UPPER/x",
            "s3://b/../x",
            "/tmp/cache",
        ] {
            let err = bad.parse::<RemoteUrl>().unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn objects_go_under_the_prefix_and_debug_hides_the_secret() {
        let aws = AwsConfig {
            access_key_id: Some("KEY".into()),
            secret_access_key: Some("very-secret".into()),
            ..AwsConfig::default()
        };
        let settings = RemoteSettings {
            url: "s3://bucket/team/xp".parse().unwrap(),
            endpoint: Some("http://127.0.0.1:8333".into()),
            region: None,
        };
        let remote = Remote::connect(&settings, &aws).unwrap();
        assert_eq!(
            remote.object("manifests/ab.json"),
            "team/xp/manifests/ab.json"
        );
        assert!(!format!("{remote:?}").contains("very-secret"));
        let bad = RemoteSettings {
            endpoint: Some("ftp://x".into()),
            ..settings
        };
        assert!(Remote::connect(&bad, &aws).is_err());
    }
}
