//! The wire itself as an attacker uses it: bytes that are not a valid protobuf message, messages
//! nested past prost's limit, hostile nesting inside the fields (HTML, JSON), and deadlines.
//! Each is answered with a precise status — never INTERNAL, never a panic — and a call whose
//! deadline passes leaves no log entry that nobody can receive.

mod server_harness;

use std::time::Duration;

use byline::proto as pb;
use bytes::{Buf, BufMut};
use server_harness::{with_token, Server};
use std::error::Error as _;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use tonic::{Code, Status};

/// Sends and receives raw message bytes, so a test can put anything on the wire.
#[derive(Clone, Default)]
struct RawCodec;
struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut out = vec![0; buf.remaining()];
        buf.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

async fn raw_call(server: &Server, method: &'static str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let channel = server.channel().await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    grpc.unary(
        with_token(body, &server.token),
        http::uri::PathAndQuery::from_static(method),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_deeply_nested_protobuf_is_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    // Field 99 as a start-group tag, 200 deep: past prost's recursion limit of 100.
    let mut nested = Vec::new();
    for _ in 0..200 {
        nested.extend_from_slice(&[0x9b, 0x06]);
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a length that runs past the end", vec![0x0a, 0xff]),
        ("wire type 7, which does not exist", vec![0x0f, 0x00]),
        // authorship (field 3) { subject (field 1) = the byte 0xFF }: not UTF-8.
        (
            "a string that is not UTF-8",
            vec![0x1a, 0x03, 0x0a, 0x01, 0xff],
        ),
        ("groups nested 200 deep", nested),
    ];
    for method in ["/byline.v1.Byline/Sign", "/byline.v1.Byline/Lookup"] {
        for (what, bytes) in &cases {
            let status = raw_call(&server, method, bytes.clone())
                .await
                .expect_err(what);
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{method}, {what}: {status:?}"
            );
            assert!(
                status.message().starts_with("malformed protobuf message"),
                "{method}, {what}: {}",
                status.message()
            );
        }
    }
    // A well-formed message still works on the same server after all that.
    let mut client = server.client().await;
    client
        .sign(with_token(
            server_harness::content_request(1),
            &server.token,
        ))
        .await
        .expect("a valid request after the malformed ones");
    server.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_nesting_inside_fields_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.client().await;
    // HTML nested 5,000 deep: refused before tree construction, naming the field.
    let html = format!(
        "<html><body>{}deep{}</body></html>",
        "<div>".repeat(5000),
        "</div>".repeat(5000)
    );
    let request = server_harness::content_request_of(2, html.clone().into_bytes(), "text/html");
    let status = client
        .sign(with_token(request, &server.token))
        .await
        .expect_err("deep HTML");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with("article.content"),
        "{}",
        status.message()
    );
    assert!(status.message().contains("nest"), "{}", status.message());
    // A bundle whose JSON nests 10,000 arrays deep: a malformed-bundle verdict, not an error.
    let answer = client
        .verify(pb::VerifyRequest {
            article: Some(pb::Article {
                content: b"Some text.".to_vec(),
                media_type: "text/plain".into(),
            }),
            bundle_json: format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
            require_exact: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.verified);
    assert_eq!(answer.failure_code, "malformed-bundle", "{answer:?}");
    server.assert_no_panic();
}

fn digest_request(n: usize, key: &str) -> pb::SignRequest {
    let hex =
        |tag: &str| byline::core::digest::Sha256Digest::of(format!("{tag}{n}").as_bytes()).to_hex();
    pb::SignRequest {
        article: Some(pb::sign_request::Article::Digests(pb::Digests {
            text_sha256: hex("text"),
            exact_sha256: hex("exact"),
        })),
        authorship: Some(server_harness::ai_authorship(&format!(
            "https://localhost/deadline/{n}"
        ))),
        idempotency_key: key.to_string(),
        request_id: n as u64,
    }
}

async fn tree_size(client: &mut pb::byline_client::BylineClient<tonic::transport::Channel>) -> u64 {
    client
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .map(|r| r.into_inner().tree_size)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_deadline_is_cancelled_and_leaves_no_orphaned_entry() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.client().await;
    client
        .sign(with_token(digest_request(0, ""), &server.token))
        .await
        .unwrap();
    let before = tree_size(&mut client).await;
    // Canonicalizing 3 MB of HTML takes far longer than the 1 ms this caller will wait.
    let html = format!(
        "<html><body><article>{}</article></body></html>",
        "<p>The Ashby library extends its opening hours on weekdays.</p>".repeat(48_000)
    );
    let request = server_harness::content_request_of(3, html.into_bytes(), "text/html");
    let mut request = with_token(request, &server.token);
    request.set_timeout(Duration::from_millis(1));
    let status = client.sign(request).await.expect_err("past its deadline");
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );
    // The next entry takes the very next index: the abandoned call logged nothing.
    std::thread::sleep(Duration::from_millis(500));
    let next = client
        .sign(with_token(digest_request(1, ""), &server.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        next.log_index, before,
        "an abandoned call left an entry behind"
    );
    server.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_tight_deadlines_every_logged_entry_reaches_its_caller_on_retry() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let channel = server.channel().await;
    let mut client = pb::byline_client::BylineClient::new(channel.clone());
    let before = tree_size(&mut client).await;
    const CALLS: usize = 200;
    let mut calls = Vec::new();
    for n in 0..CALLS {
        let mut client = pb::byline_client::BylineClient::new(channel.clone());
        let token = server.token.clone();
        calls.push(tokio::spawn(async move {
            let mut request = with_token(digest_request(n, &format!("deadline-{n}")), &token);
            request.set_timeout(Duration::from_millis(2 + (n % 8) as u64));
            client.sign(request).await.map(|r| r.into_inner().log_index)
        }));
    }
    let mut first = Vec::new();
    for c in calls {
        match c.await.unwrap() {
            Ok(index) => first.push(Some(index)),
            Err(s) if matches!(s.code(), Code::Cancelled | Code::DeadlineExceeded) => {
                first.push(None)
            }
            // Each abandoned call resets its HTTP/2 stream; past h2's limit on resets the
            // server closes the connection (rapid-reset protection), failing the calls still
            // on it.
            Err(s)
                if matches!(
                    s.code(),
                    Code::ResourceExhausted | Code::Unavailable | Code::Unknown
                ) && s.source().is_some() =>
            {
                first.push(None)
            }
            Err(s) => panic!("unexpected status {s:?}"),
        }
    }
    // Every caller retries with its idempotency key and no deadline (on a new connection):
    // those whose entry was logged get that entry (the same index), the others get a new one,
    // and the log ends with exactly one entry per caller.
    let mut client = server.client().await;
    let mut indices = std::collections::BTreeSet::new();
    for (n, earlier) in first.iter().enumerate() {
        let index = client
            .sign(with_token(
                digest_request(n, &format!("deadline-{n}")),
                &server.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .log_index;
        if let Some(earlier) = earlier {
            assert_eq!(index, *earlier, "call {n} got a second entry on retry");
        }
        assert!(indices.insert(index), "index {index} answered twice");
    }
    assert_eq!(tree_size(&mut client).await, before + CALLS as u64);
    server.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_transport_limit_is_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    // The transport limit is the article limit plus 1 MiB for the rest of the message.
    let server = Server::start(dir.path(), &["--max-article-bytes", "1000"]);
    let limit = 1000 + 1024 * 1024;
    let request = server_harness::content_request_of(4, vec![b'x'; limit + 1], "text/plain");
    let mut client = server
        .client()
        .await
        .max_encoding_message_size(8 << 20)
        .max_decoding_message_size(8 << 20);
    let status = client
        .sign(with_token(request, &server.token))
        .await
        .expect_err("over the limit");
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    assert!(
        status
            .message()
            .contains(&format!("the limit is: {limit} bytes")),
        "{}",
        status.message()
    );
    // Just under the transport limit, the article limit answers, by field.
    let request = server_harness::content_request_of(5, vec![b'x'; 1001], "text/plain");
    let status = client
        .sign(with_token(request, &server.token))
        .await
        .expect_err("over the article limit");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with("article.content"),
        "{}",
        status.message()
    );
    server.assert_no_panic();
}
