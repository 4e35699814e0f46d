//! OTLP export end to end: the real binary, a real upload with curl to SeaweedFS, and an
//! in-test OTLP/HTTP receiver that decodes what arrives. Shows that spans and metrics leave the
//! process, and that the span tree is session → command → S3 call.

use std::{collections::HashMap, process::Stdio, sync::Arc, time::Duration};

use opentelemetry_proto::tonic::{
    collector::{metrics::v1::ExportMetricsServiceRequest, trace::v1::ExportTraceServiceRequest},
    common::v1::{any_value::Value, KeyValue},
    trace::v1::Span,
};
use prost::Message;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::Mutex,
};

use crate::common::clients::{self, assert_ok, curl, random_bytes};
use crate::common::seaweedfs;
use crate::common::users::{self, UserToml};

/// Bodies received, by request path.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A minimal OTLP/HTTP receiver: HTTP/1.1 POSTs with a Content-Length, answered 200.
async fn receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let received: Received = Arc::default();
    let keep = received.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp, keep.clone()));
        }
    });
    (url, received)
}

async fn serve(tcp: TcpStream, received: Received) {
    let mut r = BufReader::new(tcp);
    loop {
        let mut request_line = String::new();
        if r.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if r.read_exact(&mut body).await.is_err() {
            return;
        }
        received.lock().await.push((path, body));
        let ok =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if r.get_mut().write_all(ok).await.is_err() {
            return;
        }
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn attr_str(span: &Span, key: &str) -> Option<String> {
    match attr(&span.attributes, key)? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

#[tokio::test]
async fn otlp_exports_the_session_command_and_s3_spans_and_the_metrics() {
    let sw = seaweedfs::s3().await;
    let bucket = sw.new_bucket().await;
    let (otlp, received) = receiver().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = ftps_s3::tls::ensure_self_signed(dir.path()).expect("cert");
    let users = dir.path().join("users.toml");
    users::write(
        &users,
        &[UserToml::new("otel")
            .password("otel-pass")
            .home("otel/")
            .permissions(&["list", "read", "write"])],
    );
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[listeners]\nexplicit = \"127.0.0.1:0\"\nimplicit = \"off\"\n\
             [tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
             [auth]\nusers_file = \"{}\"\n\
             [passive]\nports = \"40000-44999\"\n\
             [s3]\nbucket = \"{bucket}\"\nregion = \"{}\"\nendpoint = \"{}\"\n\
             force_path_style = true\npart_size_mib = 5\n\
             [shutdown]\ngrace_seconds = 2\n\
             [telemetry]\notlp_endpoint = \"{otlp}\"\nmetrics_interval_secs = 1\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n",
            cert.display(),
            key.display(),
            users.display(),
            seaweedfs::REGION,
            sw.endpoint(),
        ),
    )
    .expect("config");
    let mut cmd = crate::common::binary::server_command();
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .env("AWS_ACCESS_KEY_ID", seaweedfs::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", seaweedfs::SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut addr = None;
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await
    {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["message"] == "listening" {
            addr = v["addr"].as_str().map(str::to_string);
            break;
        }
    }
    let addr = addr.expect("listening address");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // 6 MiB with 5 MiB parts: a multipart upload (several S3 calls under one STOR).
    let src = dir.path().join("up.bin");
    std::fs::write(&src, random_bytes(6 * 1024 * 1024)).expect("write");
    let mut up = curl("otel", "otel-pass");
    up.arg("-T").arg(&src).arg(format!("ftp://{addr}/up.bin"));
    assert_ok(&clients::run(up).await, "upload");
    // Metrics go out every second; then SIGTERM flushes the spans on the way out.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = child.id().expect("pid");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert!(status.success(), "{status:?}");

    let received = received.lock().await.clone();
    let mut spans: Vec<Span> = Vec::new();
    let mut metric_names = Vec::new();
    for (path, body) in &received {
        match path.as_str() {
            "/v1/traces" => {
                let req =
                    ExportTraceServiceRequest::decode(body.as_slice()).expect("trace protobuf");
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        spans.extend(ss.spans);
                    }
                }
            }
            "/v1/metrics" => {
                let req =
                    ExportMetricsServiceRequest::decode(body.as_slice()).expect("metrics protobuf");
                for rm in req.resource_metrics {
                    for sm in rm.scope_metrics {
                        metric_names.extend(sm.metrics.into_iter().map(|m| m.name));
                    }
                }
            }
            other => panic!("unexpected OTLP path {other}"),
        }
    }
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();

    let stor = spans
        .iter()
        .find(|s| s.name == "command" && attr_str(s, "command").as_deref() == Some("STOR"))
        .unwrap_or_else(|| panic!("no STOR command span among {names:?}"));
    assert_eq!(attr_str(stor, "reply_code").as_deref(), Some("226"));
    let session = by_id
        .get(stor.parent_span_id.as_slice())
        .unwrap_or_else(|| panic!("the STOR span's parent was not exported: {names:?}"));
    assert_eq!(session.name, "session");
    assert_eq!(session.trace_id, stor.trace_id);
    assert_eq!(attr_str(session, "user").as_deref(), Some("otel"));
    assert_eq!(attr_str(session, "listener").as_deref(), Some("explicit"));
    assert!(attr_str(session, "client_addr").is_some_and(|a| a.starts_with("127.0.0.1:")));
    assert!(attr_str(session, "tls_version").is_some(), "{session:?}");

    // Every S3 call made for the upload hangs under the STOR span.
    let under_stor = |s: &Span| {
        let mut parent = s.parent_span_id.as_slice();
        while let Some(p) = by_id.get(parent) {
            if std::ptr::eq(*p, stor) {
                return true;
            }
            parent = p.parent_span_id.as_slice();
        }
        false
    };
    let s3: Vec<&str> = spans
        .iter()
        .filter(|s| s.name.starts_with("S3.") && under_stor(s))
        .map(|s| s.name.as_str())
        .collect();
    for op in [
        "S3.CreateMultipartUpload",
        "S3.UploadPart",
        "S3.CompleteMultipartUpload",
    ] {
        assert!(
            s3.contains(&op),
            "{op} not under STOR; S3 spans there: {s3:?}"
        );
    }
    // OpenTelemetry names; /metrics shows them the Prometheus way (ftps_transfers_total, …).
    for m in ["ftps.transfers", "ftps.logins", "ftps.s3.request.duration"] {
        assert!(
            metric_names.iter().any(|n| n == m),
            "{m} not exported: {metric_names:?}"
        );
    }
}
