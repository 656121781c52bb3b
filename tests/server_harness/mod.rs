//! Starts the real `byline serve` binary on a loopback port for integration tests, captures
//! its standard error (to read the bound address and the development token, and to check that
//! nothing panicked), and stops it with SIGTERM or SIGKILL.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use byline::proto::byline_client::BylineClient;
use tonic::transport::Channel;

/// A running server.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The development token printed on first start (empty after a restart).
    pub token: String,
    /// Everything the server wrote to standard error so far.
    pub log: Arc<Mutex<String>>,
    /// The directory holding `keys/` and `data/`.
    pub dir: PathBuf,
}

/// The `byline` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_byline")
}

impl Server {
    /// Starts a server in `dir` (keys in `dir/keys`, database `dir/data/byline.db`).
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(bin())
            .current_dir(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("BYLINE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start byline serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut url = None;
        let mut token = String::new();
        while url.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!("server did not start; its log:\n{}", log.lock().unwrap())
            });
            if let Some(t) = line.trim().strip_prefix("export BYLINE_TOKEN=") {
                token = t.to_string();
            }
            if let Some(addr) = line.strip_prefix("byline: listening on ") {
                url = Some(format!("http://{}", addr.trim()));
            }
        }
        Server {
            child,
            url: url.unwrap(),
            token,
            log,
            dir: dir.to_path_buf(),
        }
    }

    /// One HTTP/2 connection to the server, for tests that put many calls on it at once.
    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(self.url.clone())
            .expect("server URL")
            .connect()
            .await
            .expect("connect")
    }

    /// A gRPC client.
    pub async fn client(&self) -> BylineClient<Channel> {
        BylineClient::connect(self.url.clone())
            .await
            .expect("connect")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait(Duration::from_secs(30))
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("server did not exit in time; its log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts the server never panicked.
    pub fn assert_no_panic(&self) {
        let log = self.log();
        assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Adds `authorization: Bearer TOKEN` to a request.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// A short invented article with a number that makes it unique.
pub fn article(n: usize) -> String {
    format!(
        "# Harbour council report {n}\n\nThe Saltmere harbour council met on day {n} and approved {n} new moorings.\n\n\
         Fees stay the same until spring, the clerk said.\n"
    )
}

/// Authorship for the development publisher.
pub fn ai_authorship(subject: &str) -> byline::proto::Authorship {
    byline::proto::Authorship {
        subject: subject.to_string(),
        byline: "By AI".into(),
        authorship: byline::proto::AuthorshipClass::AiGenerated as i32,
        ai_systems: vec![byline::proto::AiSystem {
            name: "example-model".into(),
            version: "1".into(),
            provider: String::new(),
        }],
        humans: vec![],
        publisher_domain: "localhost".into(),
        publisher_name: String::new(),
        title: String::new(),
        language: "en".into(),
        published_at: None,
        ..Default::default()
    }
}

/// A content-mode sign request for article `n`.
pub fn content_request(n: usize) -> byline::proto::SignRequest {
    content_request_of(n, article(n).into_bytes(), "text/markdown")
}

/// `content_request(n)` carrying `content` of `media_type` as its article instead.
pub fn content_request_of(
    n: usize,
    content: Vec<u8>,
    media_type: &str,
) -> byline::proto::SignRequest {
    byline::proto::SignRequest {
        article: Some(byline::proto::sign_request::Article::Content(
            byline::proto::Article {
                content,
                media_type: media_type.into(),
            },
        )),
        authorship: Some(ai_authorship(&format!("https://localhost/articles/{n}"))),
        idempotency_key: String::new(),
        request_id: n as u64,
    }
}

/// A trust store pinned from the server with the real CLI (`byline trust add`).
pub fn pin_trust(server: &Server, path: &Path) -> byline::core::trust::TrustStore {
    let out = Command::new(bin())
        .args([
            "trust",
            "add",
            "--server",
            &server.url,
            "--publisher",
            "localhost",
            "--trust",
        ])
        .arg(path)
        .output()
        .expect("trust add");
    assert!(
        out.status.success(),
        "trust add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    byline::core::trust::TrustStore::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap()
}
