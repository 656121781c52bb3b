//! Operating `byline serve`: the log key bound to its log, settings from the environment and a
//! config file, token management, secrets kept out of the logs, Prometheus metrics, TLS, and the
//! rules of `byline trust add` (TLS except on loopback, `--expect`, what a pinned entry records).

mod server_harness;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use byline::proto as pb;
use byline::proto::byline_client::BylineClient;
use server_harness::{bin, content_request, with_token, Server};
use tonic::Code;

/// Settings that a developer's shell might hold and that would change what a test runs.
const BYLINE_ENV: &[&str] = &[
    "BYLINE_CONFIG",
    "BYLINE_LISTEN",
    "BYLINE_DATABASE",
    "BYLINE_KEYS",
    "BYLINE_LOG_ORIGIN",
    "BYLINE_METRICS",
    "BYLINE_TLS_CERT",
    "BYLINE_TLS_KEY",
    "BYLINE_CA_CERT",
    "BYLINE_TOKEN",
    "BYLINE_STATE_DIR",
];

/// `byline` run in `dir`, with none of the byline settings inherited from the environment.
fn byline(dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir);
    for var in BYLINE_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs a command that must finish (it is killed, and the test fails, after `limit`).
fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run byline");
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `byline serve` started by this file (for settings the harness always passes as flags).
struct Serve {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Serve {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What became of a `byline serve` started by [`start_serve`].
enum Started {
    Serving(Serve),
    Exited(ExitStatus, String),
}

/// Starts `byline serve ARGS` in `dir` with `envs`, and waits until it listens or exits.
fn start_serve(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Started {
    let mut cmd = byline(dir);
    cmd.arg("serve")
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if !envs.iter().any(|(k, _)| *k == "BYLINE_LOG") {
        cmd.env("BYLINE_LOG", "info");
    }
    let mut child = cmd.spawn().expect("start byline serve");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel::<Option<String>>();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
            let _ = tx.send(Some(line));
        }
        let _ = tx.send(None);
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Some(line)) => {
                if let Some(addr) = line.strip_prefix("byline: listening on ") {
                    let addr = addr.trim().parse().expect("bound address");
                    return Started::Serving(Serve { child, addr, log });
                }
            }
            Ok(None) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                // Standard error closed: the process is ending.
                let status = child.wait().expect("wait");
                let log = log.lock().unwrap().clone();
                return Started::Exited(status, log);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "byline serve neither listened nor exited; its log:\n{}",
                    log.lock().unwrap()
                );
            }
        }
    }
}

fn expect_serving(started: Started) -> Serve {
    match started {
        Started::Serving(s) => s,
        Started::Exited(status, log) => panic!("byline serve exited ({status}):\n{log}"),
    }
}

/// Starts `byline serve --listen 127.0.0.1:0` in `dir`, which must refuse to start; returns
/// its standard error.
fn refused_start(dir: &Path) -> String {
    match start_serve(dir, &["--listen", "127.0.0.1:0"], &[]) {
        Started::Serving(mut s) => {
            s.terminate();
            panic!(
                "byline serve started although it should have refused:\n{}",
                s.log()
            )
        }
        Started::Exited(status, log) => {
            assert!(!status.success(), "refused start exited 0:\n{log}");
            assert!(!log.contains("panicked"), "panicked:\n{log}");
            log
        }
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[cfg(unix)]
fn set_mode_0600(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[cfg(not(unix))]
fn set_mode_0600(_path: &Path) {}

/// The secret part of `byl_<id>_<secret>`.
fn secret_of(token: &str) -> &str {
    token
        .strip_prefix("byl_")
        .and_then(|rest| rest.split_once('_'))
        .map(|(_, secret)| secret)
        .unwrap_or_else(|| panic!("not a byline token: {token:?}"))
}

/// The base64 body lines of a PEM file (what must never be logged).
fn pem_body_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.trim().len() >= 16)
        .map(|l| l.trim().to_string())
        .collect()
}

/// A content request signed as `publisher`.
fn request_for(n: usize, publisher: &str) -> pb::SignRequest {
    let mut r = content_request(n);
    let a = r.authorship.as_mut().unwrap();
    a.publisher_domain = publisher.to_string();
    a.subject = format!("https://{publisher}/articles/{n}");
    r
}

async fn connect(url: &str) -> BylineClient<tonic::transport::Channel> {
    BylineClient::connect(url.to_string())
        .await
        .expect("connect")
}

// ---------------------------------------------------------------------------------------------

/// The log key and the log are created together and refused at start when they are apart.
#[test]
fn log_key_and_log_are_bound() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut server = Server::start(d, &[]);
    let status = server.terminate();
    assert!(status.success(), "{}", server.log());
    let log_key = d.join("keys/log.key");
    let db = d.join("data/byline.db");
    assert!(log_key.exists(), "first start created no keys/log.key");
    assert!(db.exists(), "first start created no data/byline.db");
    drop(server);

    let backup = d.join("data.backup");
    copy_dir(&d.join("data"), &backup);
    let restore_db = || {
        std::fs::remove_dir_all(d.join("data")).unwrap();
        copy_dir(&backup, &d.join("data"));
    };

    // (a) The database is gone, the key is there: a key without its log.
    std::fs::remove_dir_all(d.join("data")).unwrap();
    let err = refused_start(d);
    assert!(
        err.contains("log.key") && err.contains("without its log"),
        "the refusal does not name the key without its log:\n{err}"
    );
    // Nothing was created in its place: the key is still the one that was there.
    assert!(log_key.exists());

    // (b) The database is back, the key is gone: the log's key is missing.
    restore_db();
    let original_key = std::fs::read(&log_key).unwrap();
    std::fs::remove_file(&log_key).unwrap();
    let err = refused_start(d);
    assert!(
        err.contains("log.key") && err.contains("missing"),
        "the refusal does not name the missing key:\n{err}"
    );
    assert!(
        !log_key.exists(),
        "a refused start must not create a new log key in place of the missing one"
    );

    // (c) Another key in place of the log key: it does not match.
    let out = run(
        byline(d).args(["keygen", "--publisher", "x.example", "--keys", "other"]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::copy(d.join("other/x.example.key"), &log_key).unwrap();
    set_mode_0600(&log_key);
    let err = refused_start(d);
    assert!(
        err.contains("log.key") && err.contains("does not match"),
        "the refusal does not say the key does not match:\n{err}"
    );

    // With the right key back, the same database starts again.
    std::fs::write(&log_key, &original_key).unwrap();
    set_mode_0600(&log_key);
    let mut server = Server::start(d, &[]);
    assert!(
        server.token.is_empty(),
        "a restart created a second development setup:\n{}",
        server.log()
    );
    assert!(server.terminate().success());
    server.assert_no_panic();
}

/// Every setting can come from the environment or a TOML config file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_from_environment_and_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cwd = d.join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();

    // From the environment.
    let port = free_port();
    let env_db = d.join("env-data/env.db");
    let env_keys = d.join("env-keys");
    let listen = format!("127.0.0.1:{port}");
    let db_url = format!("sqlite://{}", env_db.display());
    let mut server = expect_serving(start_serve(
        &cwd,
        &[],
        &[
            ("BYLINE_LISTEN", &listen),
            ("BYLINE_DATABASE", &db_url),
            ("BYLINE_KEYS", env_keys.to_str().unwrap()),
        ],
    ));
    assert_eq!(server.addr.port(), port, "BYLINE_LISTEN was not used");
    let mut client = connect(&server.url()).await;
    let cp = client
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .expect("GetCheckpoint")
        .into_inner();
    assert!(!cp.checkpoint.is_empty());
    assert!(env_db.exists(), "BYLINE_DATABASE was not used");
    assert!(
        env_keys.join("log.key").exists(),
        "BYLINE_KEYS was not used"
    );
    assert!(env_keys.join("localhost.key").exists());
    assert!(
        !cwd.join("data").exists() && !cwd.join("keys").exists(),
        "the defaults were used despite the environment"
    );
    assert!(server.terminate().success(), "{}", server.log());

    // From a config file.
    let port = free_port();
    let file_db = d.join("file-data/file.db");
    let file_keys = d.join("file-keys");
    let config = d.join("byline.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase = \"sqlite://{}\"\nkeys = \"{}\"\n",
            file_db.display(),
            file_keys.display()
        ),
    )
    .unwrap();
    let mut server = expect_serving(start_serve(
        &cwd,
        &["--config", config.to_str().unwrap()],
        &[],
    ));
    assert_eq!(
        server.addr.port(),
        port,
        "the config file's listen was not used"
    );
    let mut client = connect(&server.url()).await;
    client
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .expect("GetCheckpoint");
    assert!(file_db.exists(), "the config file's database was not used");
    assert!(
        file_keys.join("log.key").exists(),
        "the config file's keys were not used"
    );
    assert!(!cwd.join("data").exists() && !cwd.join("keys").exists());
    assert!(server.terminate().success(), "{}", server.log());

    // Flags and the environment win over the file.
    let flag_port = free_port();
    let flag_listen = format!("127.0.0.1:{flag_port}");
    let other_db = d.join("other-data/other.db");
    let other_url = format!("sqlite://{}", other_db.display());
    let other_keys = d.join("other-keys");
    let mut server = expect_serving(start_serve(
        &cwd,
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &flag_listen,
        ],
        &[
            ("BYLINE_DATABASE", &other_url),
            ("BYLINE_KEYS", other_keys.to_str().unwrap()),
        ],
    ));
    assert_eq!(
        server.addr.port(),
        flag_port,
        "--listen did not win over the file"
    );
    assert!(
        other_db.exists(),
        "BYLINE_DATABASE did not win over the file"
    );
    assert!(other_keys.join("log.key").exists());
    assert!(server.terminate().success(), "{}", server.log());

    // An unknown key in the config file is refused, naming it.
    let bad = d.join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"127.0.0.1:0\"\nlisten_adress = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let out = run(
        byline(&cwd).args(["serve", "--config", bad.to_str().unwrap()]),
        Duration::from_secs(60),
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("listen_adress"),
        "the unknown key is not named:\n{err}"
    );
    assert!(
        err.contains("bad.toml"),
        "the config file is not named:\n{err}"
    );
}

/// `byline token create | list | revoke`, and `--expires`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_list_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d, &[]);
    // The server signs for news.example with keys/news.example.key (loaded on first use).
    let out = run(
        byline(d).args(["keygen", "--publisher", "news.example"]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = run(
        byline(d).args(["token", "create", "--publisher", "news.example"]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "token create must print the token alone:\n{stdout}"
    );
    let token = lines[0].trim().to_string();
    let secret = secret_of(&token).to_string();
    let id = token["byl_".len()..].split_once('_').unwrap().0.to_string();
    assert!(
        !text(&out.stderr).contains(&secret),
        "the secret was printed twice"
    );

    let mut client = server.client().await;
    client
        .sign(with_token(request_for(1, "news.example"), &token))
        .await
        .expect("the new token signs for news.example");

    // `token list` shows the id and the publisher, never the secret.
    let out = run(byline(d).args(["token", "list"]), Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = text(&out.stdout);
    let line = list
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("token list does not show {id}:\n{list}"));
    assert!(line.contains("news.example"), "{line}");
    assert!(!line.contains("REVOKED"), "{line}");
    assert!(
        !list.contains(&secret),
        "token list shows the secret:\n{list}"
    );
    assert!(
        list.lines().any(|l| l.contains("localhost")),
        "the development token is not listed:\n{list}"
    );

    // Revoked: refused once the server's short token cache has expired.
    let out = run(
        byline(d).args(["token", "revoke", &id]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let revoked_at = Instant::now();
    loop {
        match client
            .sign(with_token(request_for(2, "news.example"), &token))
            .await
        {
            Err(s) if s.code() == Code::Unauthenticated => break,
            Err(s) => panic!("a revoked token got {s:?}"),
            Ok(_) => {
                assert!(
                    revoked_at.elapsed() < Duration::from_secs(7),
                    "a revoked token still signs after {:?}",
                    revoked_at.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    let out = run(byline(d).args(["token", "list"]), Duration::from_secs(60));
    let list = text(&out.stdout);
    assert!(
        list.lines()
            .any(|l| l.contains(&id) && l.contains("REVOKED")),
        "token list does not mark the token revoked:\n{list}"
    );
    // Other tokens are untouched.
    client
        .sign(with_token(content_request(3), &server.token))
        .await
        .expect("the development token still signs");
    // Revoking an unknown id is an error.
    let out = run(
        byline(d).args(["token", "revoke", "000000000000"]),
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("000000000000"),
        "{}",
        text(&out.stderr)
    );

    // --expires: a malformed duration is a usage error.
    let out = run(
        byline(d).args([
            "token",
            "create",
            "--publisher",
            "news.example",
            "--expires",
            "5x",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("5x"), "{}", text(&out.stderr));
    assert!(
        out.stdout.is_empty(),
        "a token was printed for a bad --expires"
    );

    // A token that expires signs until then and is refused after.
    let out = run(
        byline(d).args([
            "token",
            "create",
            "--publisher",
            "news.example",
            "--expires",
            "4s",
        ]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let created = Instant::now();
    let short = text(&out.stdout).trim().to_string();
    let short_id = short["byl_".len()..].split_once('_').unwrap().0.to_string();
    client
        .sign(with_token(request_for(4, "news.example"), &short))
        .await
        .expect("a token signs before it expires");
    let out = run(byline(d).args(["token", "list"]), Duration::from_secs(60));
    let list = text(&out.stdout);
    assert!(
        list.lines()
            .any(|l| l.contains(&short_id) && l.contains("expires")),
        "token list does not show the expiry:\n{list}"
    );
    loop {
        match client
            .sign(with_token(request_for(5, "news.example"), &short))
            .await
        {
            Err(s) if s.code() == Code::Unauthenticated => break,
            Err(s) => panic!("an expired token got {s:?}"),
            Ok(_) => {
                assert!(
                    created.elapsed() < Duration::from_secs(8),
                    "a token made to expire in 4s still signs after {:?}",
                    created.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    server.assert_no_panic();
}

/// No token secret and no private key ever reaches the server's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut server = Server::start(d, &[]);
    let secret = secret_of(&server.token).to_string();
    let mut client = server.client().await;
    for n in 0..3 {
        client
            .sign(with_token(content_request(n), &server.token))
            .await
            .expect("sign");
    }
    // A wrong secret for a real token id, and a garbled header.
    let token = server.token.clone();
    let id = token["byl_".len()..].split_once('_').unwrap().0;
    let wrong = format!("byl_{id}_{}", "Q".repeat(43));
    let err = client
        .sign(with_token(content_request(9), &wrong))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = client
        .sign(with_token(content_request(9), "not-a-token-Zm9vYmFyYmF6"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.terminate().success());

    let log = server.log();
    // The development token is shown once, in the setup banner, and nowhere else.
    let hits: Vec<&str> = log.lines().filter(|l| l.contains(&secret)).collect();
    assert_eq!(
        hits.len(),
        1,
        "the token's secret appears outside the one-time setup banner:\n{log}"
    );
    assert!(
        hits[0].trim().starts_with("export BYLINE_TOKEN="),
        "{}",
        hits[0]
    );
    assert!(
        !log.contains(&"Q".repeat(43)),
        "a presented secret was logged:\n{log}"
    );
    assert!(
        !log.contains("Zm9vYmFyYmF6"),
        "a presented header was logged:\n{log}"
    );
    assert!(
        !log.contains("PRIVATE KEY"),
        "a private key was logged:\n{log}"
    );
    for key in ["keys/log.key", "keys/localhost.key"] {
        for line in pem_body_lines(&d.join(key)) {
            assert!(!log.contains(&line), "{key} appears in the log:\n{log}");
        }
    }
    server.assert_no_panic();
    drop(server);

    // After a restart, with every library's debug logging on, still nothing secret.
    let mut server = expect_serving(start_serve(
        d,
        &["--listen", "127.0.0.1:0"],
        &[("BYLINE_LOG", "debug")],
    ));
    let mut client = connect(&server.url()).await;
    client
        .sign(with_token(content_request(20), &token))
        .await
        .expect("sign after restart");
    std::thread::sleep(Duration::from_millis(300));
    server.terminate();
    let log = server.log();
    assert!(
        !log.contains(&secret),
        "the token's secret is in the debug log:\n{log}"
    );
    assert!(
        !log.contains("PRIVATE KEY"),
        "a private key is in the debug log"
    );
    for key in ["keys/log.key", "keys/localhost.key"] {
        for line in pem_body_lines(&d.join(key)) {
            assert!(!log.contains(&line), "{key} appears in the debug log");
        }
    }
}

/// Fetches `path` from a plain HTTP server.
fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // One write, so that the request arrives whole (see `metrics_request_split_in_two_writes`).
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read metrics");
    response
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
}

/// `--metrics ADDR` serves Prometheus text metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let server = Server::start(dir.path(), &["--metrics", &metrics_addr]);
    let mut client = server.client().await;
    for n in 0..3 {
        client
            .sign(with_token(content_request(n), &server.token))
            .await
            .expect("sign");
    }
    let err = client.sign(content_request(7)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let response = http_get(port, "/metrics");
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP response:\n{response}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain"),
            "{head}"
        );
        let appended = sample(body, "byline_log_entries_appended_total").unwrap_or(0.0);
        if appended >= 3.0 || Instant::now() > deadline {
            break body.to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert_eq!(
        sample(&body, r#"byline_rpc_calls_total{rpc="Sign",code="Ok"}"#),
        Some(3.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            r#"byline_rpc_calls_total{rpc="Sign",code="Unauthenticated"}"#
        ),
        Some(1.0),
        "{body}"
    );
    assert!(
        body.contains("# TYPE byline_rpc_calls_total counter"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE byline_rpc_duration_seconds histogram"),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            r#"byline_rpc_duration_seconds_bucket{rpc="Sign",le="+Inf"}"#
        ),
        Some(4.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, r#"byline_rpc_duration_seconds_count{rpc="Sign"}"#),
        Some(4.0),
        "{body}"
    );
    assert!(
        sample(&body, r#"byline_rpc_duration_seconds_sum{rpc="Sign"}"#).is_some_and(|s| s > 0.0),
        "{body}"
    );
    // Buckets are cumulative: never decreasing, the last finite one at most the count.
    let buckets: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with(r#"byline_rpc_duration_seconds_bucket{rpc="Sign","#))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(buckets.len() >= 2, "{body}");
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "buckets not cumulative:\n{body}"
    );
    assert!(
        sample(&body, "byline_log_entries_appended_total").is_some_and(|n| n >= 3.0),
        "{body}"
    );
    assert!(
        sample(&body, "byline_log_size").is_some_and(|n| n >= 3.0),
        "{body}"
    );
    assert!(
        sample(&body, "byline_log_batches_total").is_some_and(|n| n >= 1.0),
        "{body}"
    );
    // Every batch's commit is timed, and each took some time.
    assert!(
        body.contains("# TYPE byline_log_commit_duration_seconds histogram"),
        "{body}"
    );
    assert_eq!(
        sample(&body, "byline_log_commit_duration_seconds_count"),
        sample(&body, "byline_log_batches_total"),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            r#"byline_log_commit_duration_seconds_bucket{le="+Inf"}"#
        ),
        sample(&body, "byline_log_batches_total"),
        "{body}"
    );
    assert!(
        sample(&body, "byline_log_commit_duration_seconds_sum").is_some_and(|s| s > 0.0),
        "{body}"
    );

    let response = http_get(port, "/elsewhere");
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    server.assert_no_panic();
}

/// Canonicalizing and verifying run on threads of the lane for their input's size, so that a
/// large article queues only behind other large ones. The metrics count each lane's tasks: a
/// `Sign` or `Verify` that passed its handler the wrong size would be counted in the other lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_calls_run_in_the_cpu_lane_for_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start(dir.path(), &["--metrics", &format!("127.0.0.1:{port}")]);
    let mut client = server.client().await;
    // About 200 KiB of Markdown: over the 128 KiB from which inputs take the large lane.
    let mut large = String::from("# The harbour council's year in full\n\n");
    let mut item = 0;
    while large.len() < 200 * 1024 {
        item += 1;
        large.push_str(&format!(
            "Item {item}: the council renewed mooring {item} at the fee set in spring.\n\n"
        ));
    }
    let small = server_harness::article(1).into_bytes();
    for (n, content) in [small, large.into_bytes()].into_iter().enumerate() {
        let signed = client
            .sign(with_token(
                server_harness::content_request_of(n, content.clone(), "text/markdown"),
                &server.token,
            ))
            .await
            .expect("sign")
            .into_inner();
        let verdict = client
            .verify(pb::VerifyRequest {
                article: Some(pb::Article {
                    content,
                    media_type: "text/markdown".into(),
                }),
                bundle_json: signed.bundle_json,
                require_exact: false,
            })
            .await
            .expect("verify")
            .into_inner();
        assert!(verdict.verified, "article {n}: {verdict:?}");
    }
    // A task is counted when it starts, before its call is answered.
    let body = http_get(port, "/metrics");
    for lane in ["byline-cpu", "byline-cpu-big"] {
        let tasks = format!("byline_cpu_queue_wait_seconds_count{{lane=\"{lane}\"}}");
        assert_eq!(sample(&body, &tasks), Some(2.0), "{lane}: {body}");
    }
    server.assert_no_panic();
}

/// Writes a self-signed certificate for localhost and 127.0.0.1; returns (cert, key) paths.
fn write_test_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("generate a certificate");
    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    set_mode_0600(&key);
    (cert, key)
}

/// `--tls-cert`/`--tls-key` serve over TLS; the CLI pins and signs through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serving() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let certs = d.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (cert, key) = write_test_certificate(&certs);
    let server = Server::start(
        d,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let port = port_of(&server.url);
    let https = format!("https://localhost:{port}");
    let trust = d.join("reader/trust.toml");

    // Without the CA the certificate is not trusted, and nothing is pinned.
    let out = run(
        byline(d).args([
            "trust",
            "add",
            "--server",
            &https,
            "--publisher",
            "localhost",
            "--trust",
            trust.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    assert!(
        !out.status.success(),
        "an untrusted certificate was accepted"
    );
    assert!(
        text(&out.stderr).contains("certificate"),
        "the failure does not say the certificate is not trusted: {}",
        text(&out.stderr)
    );
    assert!(!trust.exists());

    // With it, trust add pins over TLS.
    let out = run(
        byline(d).args([
            "trust",
            "add",
            "--server",
            &https,
            "--publisher",
            "localhost",
            "--trust",
            trust.to_str().unwrap(),
            "--ca-cert",
            cert.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "trust add over TLS failed: {}",
        text(&out.stderr)
    );
    let pinned =
        byline::core::trust::TrustStore::from_toml(&std::fs::read_to_string(&trust).unwrap())
            .unwrap();
    assert!(pinned
        .publisher_keys
        .iter()
        .any(|k| k.publisher == "localhost"));
    assert_eq!(pinned.logs.len(), 1);

    // sign --server https://… with BYLINE_TOKEN, then verify offline with the pinned keys.
    std::fs::write(d.join("a.md"), server_harness::article(1)).unwrap();
    let out = run(
        byline(d).env("BYLINE_TOKEN", &server.token).args([
            "sign",
            "a.md",
            "--server",
            &https,
            "--ca-cert",
            cert.to_str().unwrap(),
            "--byline",
            "By AI",
            "--authorship",
            "ai-generated",
        ]),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "sign over TLS failed: {}",
        text(&out.stderr)
    );
    assert!(d.join("a.md.byline.json").exists());
    let out = run(
        byline(d).args(["verify", "a.md", "--trust", trust.to_str().unwrap()]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // Plain HTTP/2 to the TLS port gets nowhere.
    let plain = async {
        let mut client = BylineClient::connect(format!("http://127.0.0.1:{port}")).await?;
        client.get_checkpoint(pb::GetCheckpointRequest {}).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    };
    let result = tokio::time::timeout(Duration::from_secs(20), plain).await;
    assert!(
        !matches!(result, Ok(Ok(()))),
        "a plain http:// call to the TLS port succeeded"
    );
    // And the CLI over plain http:// to it fails too, pinning nothing.
    let plain_trust = d.join("plain-trust.toml");
    let out = run(
        byline(d).args([
            "trust",
            "add",
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "--publisher",
            "localhost",
            "--trust",
            plain_trust.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    assert!(!plain_trust.exists());
    server.assert_no_panic();
}

/// With one worker thread the server runs its calls on a single-threaded scheduler: concurrent
/// signs are each logged once, at distinct indices. Zero threads is refused at start, naming
/// the setting, from a flag or from the config file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_thread_setting_one_serves_and_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--worker-threads", "1"]);
    let client = server.client().await;
    let calls: Vec<_> = (0..16)
        .map(|n| {
            let mut client = client.clone();
            let request = with_token(content_request(n), &server.token);
            tokio::spawn(async move { client.sign(request).await })
        })
        .collect();
    let mut indices = std::collections::BTreeSet::new();
    for call in calls {
        let signed = call.await.unwrap().expect("Sign on one worker thread");
        assert!(indices.insert(signed.into_inner().log_index));
    }
    assert_eq!(indices, (0..16).collect(), "{}", server.log());
    assert!(server.terminate().success(), "{}", server.log());
    server.assert_no_panic();

    let config = dir.path().join("zero.toml");
    std::fs::write(&config, "worker_threads = 0\n").unwrap();
    assert_each_refused_at_start(
        dir.path(),
        &[
            &["--worker-threads", "0"],
            &["--config", config.to_str().unwrap()],
        ],
        "worker_threads must be at least 1",
    );
}

/// The batch wait takes fractions of a millisecond, and a whole number from a config file
/// written before it did: signs 4 ms apart are each logged once, and with a wait long enough
/// to gather them (50 ms), in fewer batches than calls (their proofs name fewer tree sizes). A
/// negative or huge wait is refused at start, naming the setting, from a flag or from the
/// config file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_wait_setting_takes_fractions_and_refuses_nonsense() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wait.toml");
    std::fs::write(&config, "batch_wait_ms = 50\n").unwrap();
    for (args, gathers) in [
        (vec!["--batch-wait-ms", "0.5"], false),
        (vec!["--config", config.to_str().unwrap()], true),
    ] {
        // A fresh directory each, so that each start prints its development token.
        let home = tempfile::tempdir().unwrap();
        let mut server = Server::start(home.path(), &args);
        let client = server.client().await;
        let calls: Vec<_> = (0..8)
            .map(|n| {
                let mut client = client.clone();
                let request = with_token(content_request(n), &server.token);
                // Spread over 28 ms: without a wait each call would mostly commit alone.
                let delay = Duration::from_millis(4 * n as u64);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    client.sign(request).await
                })
            })
            .collect();
        let (mut indices, mut tree_sizes) = (BTreeSet::new(), BTreeSet::new());
        for call in calls {
            let signed = call.await.unwrap().expect("Sign with a batch wait");
            let signed = signed.into_inner();
            assert!(indices.insert(signed.log_index));
            let bundle = byline::core::bundle::Bundle::from_json(signed.bundle_json.as_bytes())
                .expect("the bundle parses");
            let entry = bundle.log_entry.expect("a logged bundle");
            tree_sizes.insert(entry.inclusion_proof.tree_size);
        }
        assert_eq!(indices.len(), 8, "{args:?}: {}", server.log());
        if gathers {
            assert!(
                tree_sizes.len() < 8,
                "eight calls in eight batches despite a 50 ms wait: {tree_sizes:?}"
            );
        }
        assert!(server.terminate().success(), "{}", server.log());
        server.assert_no_panic();
    }

    let negative = dir.path().join("negative.toml");
    std::fs::write(&negative, "batch_wait_ms = -2.5\n").unwrap();
    assert_each_refused_at_start(
        dir.path(),
        &[
            &["--batch-wait-ms=-1"],
            &["--batch-wait-ms", "5000"],
            &["--config", negative.to_str().unwrap()],
        ],
        "batch_wait_ms must be a number of milliseconds from 0 to 1000",
    );
}

/// A TLS setting that cannot work stops the server at start, saying why, instead of serving
/// plain text or failing every handshake later.
#[test]
fn tls_misconfiguration_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = write_test_certificate(d);
    let garbage = d.join("garbage.key");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let cases: [(&str, Vec<&str>, &str); 3] = [
        (
            "a certificate without a key",
            vec!["--tls-cert", cert.to_str().unwrap()],
            "--tls-key",
        ),
        (
            "a key without a certificate",
            vec!["--tls-key", key.to_str().unwrap()],
            "--tls-cert",
        ),
        (
            "a key that is not a key",
            vec![
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                garbage.to_str().unwrap(),
            ],
            "TLS",
        ),
    ];
    for (what, flags, needle) in cases {
        let case_dir = tempfile::tempdir().unwrap();
        assert_refused_at_start(case_dir.path(), &flags, what, needle);
    }
}

/// `byline serve --listen 127.0.0.1:0` with `flags` in `dir` exits at start, unsuccessfully
/// and without a panic, saying `needle`; `what` names the case in failures.
fn assert_refused_at_start(dir: &Path, flags: &[&str], what: &str, needle: &str) {
    let mut args = vec!["--listen", "127.0.0.1:0"];
    args.extend_from_slice(flags);
    match start_serve(dir, &args, &[]) {
        Started::Serving(mut s) => {
            s.terminate();
            panic!("byline serve started with {what}:\n{}", s.log());
        }
        Started::Exited(status, log) => {
            assert!(!status.success(), "{what}: exited 0\n{log}");
            assert!(!log.contains("panicked"), "{what}: panicked\n{log}");
            assert!(
                log.contains(needle),
                "{what}: the refusal does not say {needle}:\n{log}"
            );
        }
    }
}

/// Each of `cases` (flags) is refused at start, saying `needle`.
fn assert_each_refused_at_start(dir: &Path, cases: &[&[&str]], needle: &str) {
    for flags in cases {
        assert_refused_at_start(dir, flags, &format!("{flags:?}"), needle);
    }
}

/// `trust add`: TLS except on loopback, `--expect`, and what the pinned entries record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_add_rules() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let trust = d.join("reader/trust.toml");
    let trust_arg = trust.to_str().unwrap().to_string();

    // Plain http:// off loopback is refused before any connection is tried.
    for url in ["http://10.1.2.3:50051", "http://news.example:50051"] {
        let started = Instant::now();
        let out = run(
            byline(d).args([
                "trust",
                "add",
                "--server",
                url,
                "--publisher",
                "news.example",
                "--trust",
                &trust_arg,
            ]),
            Duration::from_secs(60),
        );
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{url} was accepted");
        assert!(
            err.contains("TLS"),
            "the refusal for {url} does not mention TLS:\n{err}"
        );
        assert!(
            !err.contains("cannot connect"),
            "{url} was connected to before the refusal:\n{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the refusal for {url} took {:?}: it must come before connecting",
            started.elapsed()
        );
        assert!(!trust.exists());
    }

    let server = Server::start(d, &[]);
    let mut client = server.client().await;
    let keys = client
        .get_keys(pb::GetKeysRequest {
            publisher_domain: "localhost".into(),
        })
        .await
        .expect("GetKeys")
        .into_inner();
    let keyid = keys
        .publisher_keys
        .iter()
        .find(|k| k.publisher_domain == "localhost")
        .expect("the server has a localhost key")
        .keyid
        .clone();
    assert_eq!(keyid.len(), 64);

    let trust_add = |expect: Option<&str>| {
        let mut cmd = byline(d);
        cmd.args([
            "trust",
            "add",
            "--server",
            &server.url,
            "--publisher",
            "localhost",
            "--trust",
            &trust_arg,
        ]);
        if let Some(e) = expect {
            cmd.args(["--expect", e]);
        }
        run(&mut cmd, Duration::from_secs(60))
    };

    // A wrong fingerprint pins nothing.
    let mut wrong: Vec<char> = keyid[..16].chars().collect();
    wrong[0] = if wrong[0] == '0' { '1' } else { '0' };
    let wrong: String = wrong.into_iter().collect();
    let out = trust_add(Some(&wrong));
    assert!(!out.status.success(), "a wrong --expect was accepted");
    let err = text(&out.stderr);
    assert!(
        err.contains(&keyid),
        "the refusal does not show the served fingerprint:\n{err}"
    );
    assert!(!trust.exists(), "a wrong --expect wrote the trust store");

    // Too short a prefix is not enough to check anything.
    let out = trust_add(Some(&keyid[..8]));
    assert!(!out.status.success(), "an 8-digit --expect was accepted");
    assert!(!trust.exists());

    // The right 16-hex prefix (in upper case, as people copy it) pins and prints.
    let out = trust_add(Some(&keyid[..16].to_ascii_uppercase()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&keyid),
        "the fingerprint is not printed:\n{stdout}"
    );
    assert!(
        stdout.contains(&keys.log_verifier_key),
        "the log key is not printed:\n{stdout}"
    );
    let toml_text = std::fs::read_to_string(&trust).unwrap();
    let pinned = byline::core::trust::TrustStore::from_toml(&toml_text).unwrap();
    let entries: Vec<_> = pinned
        .publisher_keys
        .iter()
        .filter(|k| k.publisher == "localhost")
        .collect();
    assert_eq!(entries.len(), 1, "{toml_text}");
    let entry = entries[0];
    assert!(
        entry.require_log,
        "a pinned key must require the log:\n{toml_text}"
    );
    assert!(
        entry
            .source
            .as_deref()
            .is_some_and(|s| s.contains(&server.url)),
        "the entry does not name the server it came from:\n{toml_text}"
    );
    assert!(toml_text.contains("require_log = true"), "{toml_text}");
    assert_eq!(pinned.logs.len(), 1, "{toml_text}");
    assert_eq!(pinned.logs[0].verifier_key, keys.log_verifier_key);
    assert_eq!(pinned.logs[0].origin, keys.log_origin);
    assert!(
        pinned.logs[0]
            .source
            .as_deref()
            .is_some_and(|s| s.contains(&server.url)),
        "the log entry does not name the server it came from:\n{toml_text}"
    );

    // Pinning again adds nothing twice.
    let out = trust_add(None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again =
        byline::core::trust::TrustStore::from_toml(&std::fs::read_to_string(&trust).unwrap())
            .unwrap();
    assert_eq!(again.publisher_keys.len(), pinned.publisher_keys.len());
    assert_eq!(again.logs.len(), 1);

    // A publisher the server has no keys for pins nothing.
    let other = d.join("other-trust.toml");
    let out = run(
        byline(d).args([
            "trust",
            "add",
            "--server",
            &server.url,
            "--publisher",
            "unknown.example",
            "--trust",
            other.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    assert!(!other.exists());
    server.assert_no_panic();
}

/// A scrape whose request line arrives in two TCP segments is still a scrape: HTTP is a byte
/// stream, and a proxy or a slow client may split a request anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_request_split_in_two_writes() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let server = Server::start(dir.path(), &["--metrics", &metrics_addr]);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"GET /met").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let _ = stream.write_all(b"rics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut response = Vec::new();
    let read = stream.read_to_end(&mut response);
    let response = text(&response);
    assert!(
        response.starts_with("HTTP/1.1 200") && response.contains("byline_rpc_calls_total"),
        "a split request got {read:?}:\n{response}"
    );
    server.assert_no_panic();
}

/// The line of a `byline bench sign` report that starts with `label`; a report without it
/// fails the test, showing the whole report.
fn report_line<'a>(report: &'a str, label: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label} line:\n{report}"))
}

/// `byline bench sign` drives the real server, over SignStream and over unary Sign, and counts
/// as answered only calls the log holds: no errors, a non-zero count in each mode, and no more
/// calls counted than entries logged (its warm-up calls are logged but not counted). A stream
/// whose window is full waits for answers instead of queueing without bound, so the run ends
/// on time. Given the server's metrics address, it reports the batches committed during the
/// load (at least one, of at least one entry each) and, for unary calls, their time in the
/// server. Paced faster than the server can answer, it ends and says it fell short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_sign_counts_only_logged_calls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let metrics = format!("127.0.0.1:{}", free_port());
    let server = Server::start(d, &["--metrics", &metrics]);
    let pid = server.pid().to_string();
    // `byline bench sign` against this server, with the given flags.
    let bench = |flags: &[&str], limit: u64| {
        run(
            byline(d)
                .env("BYLINE_TOKEN", &server.token)
                .args(["bench", "sign", "--server", &server.url])
                .args(flags),
            Duration::from_secs(limit),
        )
    };
    let mut counted = 0u64;
    for stream in [true, false] {
        let mut args = vec![
            "--concurrency",
            "4",
            "--connections",
            "2",
            "--duration",
            "1",
            "--server-pid",
            &pid,
            "--metrics",
            &metrics,
        ];
        if stream {
            args.push("--stream");
        }
        let out = bench(&args, 120);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "stream {stream}: {stdout}{}",
            text(&out.stderr)
        );
        let requests = report_line(&stdout, "requests");
        assert!(requests.contains(" ok, 0 errors"), "{requests}");
        let ok: u64 = requests.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(ok > 0, "stream {stream}: nothing was signed:\n{stdout}");
        assert!(stdout.contains("ratio"), "no ratio printed:\n{stdout}");
        // The server's CPU split among its threads: the SQLite store's append thread wrote
        // every logged entry, so it has a share.
        let threads = report_line(&stdout, "server threads");
        assert!(threads.contains("byline-sqlite-a "), "{threads}");
        // The server's metrics, read before and after the load: the batches it committed.
        let log = report_line(&stdout, "log commits");
        let batches: u64 = log
            .split_whitespace()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no batch count in {log:?}"));
        let per_batch: f64 = log
            .split_whitespace()
            .nth(4)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no batch size in {log:?}"));
        assert!(batches > 0 && per_batch >= 1.0, "{log}\n{stdout}");
        // Unary calls are also timed inside the server; a stream's calls are not one each.
        let in_server = stdout.lines().find(|l| l.starts_with("in the server"));
        assert_eq!(in_server.is_some(), !stream, "{stdout}");
        // Only a paced run is followed by a bare echo.
        assert!(!stdout.contains("bare echo "), "{stdout}");
        counted += ok;
    }
    let size = server
        .client()
        .await
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .expect("GetCheckpoint")
        .into_inner()
        .tree_size;
    assert!(
        size >= counted,
        "the bench counted {counted} signed calls but the log holds {size} entries"
    );
    // `--lookup` drives the store's reads instead, on the store's own reader threads, and
    // signs nothing. (The bench counts every answered lookup, found or not; the articles were
    // just signed, so these find entries, but the bench does not check that.)
    let out = bench(
        &[
            "--lookup",
            "--concurrency",
            "16",
            "--duration",
            "1",
            "--server-pid",
            &pid,
            "--metrics",
            &metrics,
        ],
        120,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("unary Lookup by text digest"), "{stdout}");
    let requests = report_line(&stdout, "requests");
    assert!(requests.contains(" ok, 0 errors"), "{requests}");
    assert!(!requests.starts_with("requests        0 ok"), "{requests}");
    let answered: u64 = requests
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {requests:?}"));
    assert!(answered > 0, "{requests}");
    let threads = report_line(&stdout, "server threads");
    assert!(threads.contains("byline-sqlite-r "), "{threads}");
    assert!(stdout.contains("server memory"), "{stdout}");
    // Lookups commit nothing, and their time in the server is still reported.
    assert!(
        stdout.contains("log commits     none during the load"),
        "{stdout}"
    );
    // The line is printed only for calls seen; its count must be the lookups'.
    let in_server = report_line(&stdout, "in the server");
    assert!(
        !in_server.starts_with("in the server   0 calls"),
        "{in_server}"
    );
    let served: u64 = in_server
        .split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {in_server:?}"));
    assert!(served >= answered, "{in_server} against {requests}");
    assert!(
        !stdout.contains("ratio"),
        "a lookup run has no signing ratio:\n{stdout}"
    );
    // A paced echo names its pace in the report's first line, as a paced Sign run does (a
    // bare call's latency at the same rate, to read beside Sign's), and reports no signing
    // ratio.
    let out = bench(
        &[
            "--echo",
            "--rate",
            "200",
            "--concurrency",
            "4",
            "--duration",
            "1",
        ],
        60,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let header = report_line(&stdout, "byline bench sign:");
    assert!(
        header.contains("unary Health/Check (bare transport echo, no signing) paced to 200/s"),
        "{header}"
    );
    assert!(
        !stdout.contains("ratio"),
        "an echo has no signing ratio:\n{stdout}"
    );
    assert!(!stdout.contains("bare echo "), "{stdout}");
    // A rate that is not a number of calls per second is refused before any load.
    let out = bench(&["--rate", "0", "--duration", "1"], 60);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("\"0\" is not a rate"),
        "{}",
        text(&out.stderr)
    );
    // Content mode carries no text digests to look up: refused before any load.
    let out = bench(&["--lookup", "--mode", "content", "--duration", "1"], 60);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--lookup looks articles up by the text digests of digest mode"),
        "{stderr}"
    );
    // Paced at a rate no server keeps with four calls in flight, the run still ends, and says
    // that the throughput fell short of the rate (its latency then counts the calls' wait to
    // be sent).
    let out = bench(
        &["--concurrency", "4", "--duration", "1", "--rate", "1000000"],
        120,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("below the 1000000 req/s asked for: the server did not keep up"),
        "{stdout}"
    );
    // A paced Sign run is followed by a bare echo at the same pace, which the report gives
    // beside Sign's latency, and whose calls are answered.
    let echo = report_line(&stdout, "bare echo");
    assert!(echo.contains("Health/Check at the same pace"), "{echo}");
    let echoed: u64 = echo
        .split(" s after the load: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {echo:?}"));
    assert!(echoed > 0 && echo.contains(" ok, 0 errors;"), "{echo}");
    // A metrics address where nothing answers is an error naming it, before any load.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let out = bench(&["--duration", "1", "--metrics", &nowhere], 60);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot read the server's metrics at {nowhere}")),
        "{stderr}"
    );
    assert!(
        !text(&out.stdout).contains("requests"),
        "{}",
        text(&out.stdout)
    );
    server.assert_no_panic();
}
