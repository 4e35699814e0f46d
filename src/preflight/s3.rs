//! The S3 probe: does every configured bucket answer, with these credentials, and can each user's
//! home be listed? One `HeadBucket` per bucket and one `ListObjectsV2` (one key) per home, each
//! failure turned into the S3 error and the setting that most likely fixes it.
//!
//! Uses the server's own client builder (`vfs::s3::build_client`), so it sees exactly the
//! endpoint, region, addressing style and credential chain `serve` will use, with one attempt
//! per request (a probe should report, not retry) and a time limit per request.

use std::{collections::BTreeMap, time::Duration};

use aws_sdk_s3::{
    error::{ProvideErrorMetadata, SdkError},
    Client,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::{auth::UserStore, config::Config};

/// Each probe request gets this long (connect timeout 10 s included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What one bucket's probe found.
#[derive(Debug)]
pub struct BucketReport {
    pub bucket: String,
    /// The config key that names the bucket: `s3.bucket`, or `bucket of user "x"`.
    pub named_by: String,
    /// `None`: reachable, and every home in it could be listed.
    pub problem: Option<String>,
}

impl std::fmt::Display for BucketReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.problem {
            None => write!(f, "s3: bucket {:?} ({}): OK", self.bucket, self.named_by),
            Some(p) => write!(f, "s3: bucket {:?} ({}): {p}", self.bucket, self.named_by),
        }
    }
}

/// Probes the default bucket and every user's bucket and home (or each folder's).
pub async fn probe(config: &Config, users: &UserStore) -> Vec<BucketReport> {
    let mut s3 = config.s3.clone();
    s3.max_attempts = 1;
    let client = crate::vfs::s3::build_client(&s3).await;
    // bucket -> (who names it, homes in it)
    let mut buckets: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    buckets.insert(
        config.s3.bucket.clone(),
        ("s3.bucket".to_string(), Vec::new()),
    );
    for user in users.iter() {
        // A user's home, or each of their folders (a user with folders has no home).
        let roots: Vec<(Option<&String>, &String)> = if user.folders.is_empty() {
            vec![(user.bucket.as_ref(), &user.home)]
        } else {
            (user.folders.iter())
                .map(|f| (f.bucket.as_ref(), &f.prefix))
                .collect()
        };
        for (bucket, home) in roots {
            // The default bucket is in the map already, so only a user's own bucket is inserted.
            let bucket = bucket.unwrap_or(&config.s3.bucket);
            let entry = buckets
                .entry(bucket.clone())
                .or_insert_with(|| (format!("bucket of user {:?}", user.name), Vec::new()));
            entry.1.push(home.clone());
        }
    }
    let mut reports = Vec::new();
    for (bucket, (named_by, mut homes)) in buckets {
        homes.sort();
        homes.dedup();
        let problem = probe_bucket(&client, config, &bucket, &named_by, &homes).await;
        reports.push(BucketReport {
            bucket,
            named_by,
            problem,
        });
    }
    reports
}

async fn probe_bucket(
    client: &Client,
    config: &Config,
    bucket: &str,
    named_by: &str,
    homes: &[String],
) -> Option<String> {
    let head =
        tokio::time::timeout(REQUEST_TIMEOUT, client.head_bucket().bucket(bucket).send()).await;
    match head {
        Err(_) => return Some(timed_out(config)),
        Ok(Err(e)) => {
            let failure = Failure::from_sdk(&e);
            // HEAD answers carry no error code; a listing's answer does, so ask again for it.
            if failure.code.is_none() && failure.status.is_some() {
                let home = homes.first().map(String::as_str).unwrap_or("");
                if let Some(Err(list)) = list_one(client, bucket, home).await {
                    let detailed = Failure::from_sdk(&list);
                    if detailed.code.is_some() {
                        return Some(detailed.advice(config, bucket, named_by, "HeadBucket"));
                    }
                }
            }
            return Some(failure.advice(config, bucket, named_by, "HeadBucket"));
        }
        Ok(Ok(_)) => {}
    }
    for home in homes {
        match list_one(client, bucket, home).await {
            None => return Some(timed_out(config)),
            Some(Err(e)) => {
                let what = format!("ListObjectsV2 under home {home:?}");
                return Some(Failure::from_sdk(&e).advice(config, bucket, named_by, &what));
            }
            Some(Ok(())) => {}
        }
    }
    None
}

/// `None`: timed out.
async fn list_one(
    client: &Client,
    bucket: &str,
    prefix: &str,
) -> Option<
    Result<(), SdkError<aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Error, HttpResponse>>,
> {
    let request = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .max_keys(1)
        .send();
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Err(_) => None,
        Ok(r) => Some(r.map(|_| ())),
    }
}

fn timed_out(config: &Config) -> String {
    format!(
        "no answer within {}s: check that {} is reachable from here (firewall, proxy, VPC endpoint)",
        REQUEST_TIMEOUT.as_secs(),
        endpoint_key(config)
    )
}

fn endpoint_key(config: &Config) -> String {
    match &config.s3.endpoint {
        Some(e) => format!("s3.endpoint = {e:?}"),
        None => format!("the AWS S3 endpoint of s3.region = {:?}", config.s3.region),
    }
}

/// An S3 failure, reduced to what decides the advice.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Failure {
    status: Option<u16>,
    code: Option<String>,
    /// The error and its causes, for what the code does not say (connection errors).
    text: String,
}

impl Failure {
    fn from_sdk<E>(e: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        // HEAD answers have no body: the SDK makes up a code from the status ("NotFound",
        // "Forbidden"), which says nothing the status does not.
        let code = e
            .code()
            .filter(|c| {
                !matches!(
                    *c,
                    "NotFound" | "Forbidden" | "BadRequest" | "MovedPermanently"
                )
            })
            .map(str::to_string);
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        Failure {
            status: e.raw_response().map(|r| r.status().as_u16()),
            code,
            text,
        }
    }

    /// "<what failed>: <S3 error>: <the likely fix>".
    pub(crate) fn advice(
        &self,
        config: &Config,
        bucket: &str,
        named_by: &str,
        operation: &str,
    ) -> String {
        let text = self.text.to_ascii_lowercase();
        let path_style_hint = if config.s3.endpoint.is_some() && !config.s3.force_path_style {
            "; with an s3.endpoint most S3-compatible stores need s3.force_path_style = true"
        } else {
            ""
        };
        let (error, fix) = match (self.code.as_deref(), self.status) {
            (Some("NoSuchBucket"), _) | (None, Some(404)) => (
                "NoSuchBucket".to_string(),
                format!(
                    "{named_by} = {bucket:?} does not exist at {}: create it, or correct the name{path_style_hint}",
                    endpoint_key(config)
                ),
            ),
            (Some("InvalidAccessKeyId"), _) => (
                "InvalidAccessKeyId".to_string(),
                "the store does not know this access key: check AWS_ACCESS_KEY_ID (or the profile or role that supplies credentials)".to_string(),
            ),
            (Some("SignatureDoesNotMatch"), _) => (
                "SignatureDoesNotMatch".to_string(),
                "the secret key does not match the access key: check AWS_SECRET_ACCESS_KEY".to_string(),
            ),
            (Some(c @ ("PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException")), _)
            | (Some(c @ "Redirect"), _) => (
                c.to_string(),
                format!(
                    "the bucket is in another region than s3.region = {:?}: set s3.region to the bucket's region",
                    config.s3.region
                ),
            ),
            (None, Some(301)) => (
                "HTTP 301".to_string(),
                format!(
                    "the bucket is in another region than s3.region = {:?}: set s3.region to the bucket's region",
                    config.s3.region
                ),
            ),
            (Some(c @ ("AccessDenied" | "AllAccessDisabled")), _) | (Some(c), Some(403)) => (
                c.to_string(),
                format!(
                    "the credentials may not {operation} in {bucket:?}: grant s3:ListBucket, s3:GetObject, s3:PutObject, s3:DeleteObject, s3:AbortMultipartUpload, s3:ListBucketMultipartUploads, s3:ListMultipartUploadParts on it (README, \"Running against S3\"), or check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
                ),
            ),
            (None, Some(403)) => (
                "HTTP 403".to_string(),
                "access denied: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy".to_string(),
            ),
            _ if text.contains("credential") => (
                "no credentials".to_string(),
                "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or a role: IRSA, instance profile)".to_string(),
            ),
            _ if text.contains("dns error") || text.contains("failed to lookup") || text.contains("name or service not known") => (
                "host not found".to_string(),
                if path_style_hint.is_empty() {
                    format!("check {}", endpoint_key(config))
                } else {
                    format!(
                        "the client addressed {bucket:?}.<endpoint host> (virtual-hosted style), which does not resolve: set s3.force_path_style = true, or check {}",
                        endpoint_key(config)
                    )
                },
            ),
            _ if text.contains("connection refused") => (
                "connection refused".to_string(),
                format!("nothing listens at {}: check the URL and port", endpoint_key(config)),
            ),
            _ if text.contains("timeout") || text.contains("timed out") => (
                "timeout".to_string(),
                format!("check that {} is reachable from here", endpoint_key(config)),
            ),
            (code, status) => (
                match (code, status) {
                    (Some(c), _) => c.to_string(),
                    (None, Some(s)) => format!("HTTP {s}"),
                    (None, None) => "error".to_string(),
                },
                format!("{}{path_style_hint}", self.text),
            ),
        };
        format!("{operation} failed: {error}: {fix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoint: Option<&str>, path_style: bool) -> Config {
        let mut c = Config::default();
        c.s3.bucket = "b".into();
        c.s3.endpoint = endpoint.map(str::to_string);
        c.s3.force_path_style = path_style;
        c
    }

    fn advice(f: Failure, c: &Config) -> String {
        f.advice(c, "b", "s3.bucket", "HeadBucket")
    }

    #[test]
    fn each_failure_names_its_fix() {
        let c = config(Some("http://localhost:8333"), true);
        let code = |code: &str, status| Failure {
            status: Some(status),
            code: Some(code.into()),
            text: String::new(),
        };
        let a = advice(code("NoSuchBucket", 404), &c);
        assert!(
            a.contains("NoSuchBucket: s3.bucket = \"b\" does not exist"),
            "{a}"
        );
        let a = advice(code("SignatureDoesNotMatch", 403), &c);
        assert!(a.contains("AWS_SECRET_ACCESS_KEY"), "{a}");
        let a = advice(code("InvalidAccessKeyId", 403), &c);
        assert!(a.contains("AWS_ACCESS_KEY_ID"), "{a}");
        let a = advice(code("PermanentRedirect", 301), &c);
        assert!(a.contains("s3.region"), "{a}");
        let refused = Failure {
            text: "dispatch failure: io error: Connection refused (os error 111)".into(),
            ..Failure::default()
        };
        let a = advice(refused, &c);
        assert!(
            a.contains("connection refused")
                && a.contains("s3.endpoint = \"http://localhost:8333\""),
            "{a}"
        );
        let dns = Failure {
            text: "dispatch failure: dns error: failed to lookup address information".into(),
            ..Failure::default()
        };
        let a = advice(dns, &config(Some("http://localhost:8333"), false));
        assert!(a.contains("s3.force_path_style = true"), "{a}");
    }
}
