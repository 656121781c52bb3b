//! Helpers shared by the integration tests that drive the real `byline` binary: a scratch
//! directory per test, a runner that captures exit status and output, and two renderings of one
//! invented news article (Kellsport is a made-up town).
//!
//! Each test file includes this module with `mod common;` and uses only part of it.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use tempfile::TempDir;

/// The article as its Markdown source (LF line ends, one soft line break in paragraph 2).
pub const FERRY_MD: &str = "\
# Ferry returns to Kellsport harbour after storm repairs

The Kellsport harbour ferry resumed service on Tuesday after 12 days of repairs
to its loading ramp, the port authority said.

Crossings will run every 40 minutes until the end of March. A second vessel is due in May.

Commuters welcomed the news. Some had been driving 90 kilometres around the bay each day.
";

/// The canonical text of [`FERRY_MD`] (and of [`ferry_html`]), worked out by hand from
/// `byline-text/v1`: four paragraphs joined by LF, white space folded, no trailing newline.
pub const FERRY_CANONICAL: &str = "\
Ferry returns to Kellsport harbour after storm repairs
The Kellsport harbour ferry resumed service on Tuesday after 12 days of repairs to its loading ramp, the port authority said.
Crossings will run every 40 minutes until the end of March. A second vessel is due in May.
Commuters welcomed the news. Some had been driving 90 kilometres around the bay each day.";

/// The same article as a rendered page: site chrome (nav, masthead with the displayed byline,
/// footer, scripts, styles) around one `<article>`, CRLF line ends and `&nbsp;` entities.
pub fn ferry_html() -> String {
    [
        "<!DOCTYPE html>",
        "<html lang=\"en\">",
        "<head>",
        "<meta charset=\"utf-8\">",
        "<title>Ferry returns | The Kellsport Courier</title>",
        "<style>body { font-family: serif; }</style>",
        "<script>window.dataLayer = [{\"page\": \"ferry\"}];</script>",
        "</head>",
        "<body>",
        "<nav><a href=\"/\">Home</a> | <a href=\"/local\">Local</a> | <a href=\"/sport\">Sport</a></nav>",
        "<header class=\"masthead\"><p>The Kellsport Courier</p><p class=\"byline\" data-byline>By&nbsp;AI</p></header>",
        "<article>",
        "<h1>Ferry returns to Kellsport harbour after storm&nbsp;repairs</h1>",
        "<p>The Kellsport harbour ferry resumed service on Tuesday after 12&nbsp;days of repairs",
        "to its loading ramp, the port authority said.</p>",
        "<p>Crossings will run every 40&nbsp;minutes until the end of March.  A second vessel is due in May.</p>",
        "<p>Commuters welcomed the news. Some had been driving 90&nbsp;kilometres around the bay each day.</p>",
        "</article>",
        "<footer><p>&copy; 2026 The Kellsport Courier</p><p><a href=\"/ai-policy\">Our AI policy</a></p></footer>",
        "<script src=\"/assets/app.js\"></script>",
        "</body>",
        "</html>",
        "",
    ]
    .join("\r\n")
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    /// The exit status (never a signal: the runner panics on one).
    pub code: i32,
    /// Standard output, as text.
    pub stdout: String,
    /// Standard error, as text.
    pub stderr: String,
}

impl Run {
    /// Asserts the exit status, showing both streams when it is wrong.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit status\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts that standard output contains `needle`.
    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that standard error contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// The first line of standard output (the verdict's head line).
    pub fn head(&self) -> &str {
        self.stdout.lines().next().unwrap_or("")
    }
}

/// A scratch directory for one test; the binary runs with it as its working directory.
pub struct Scratch {
    dir: TempDir,
}

impl Scratch {
    /// A fresh, empty directory, removed when the test ends.
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file inside the directory (creating parent folders).
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create parent folder");
        }
        fs::write(&p, contents).expect("write test file");
        p
    }

    /// Reads a file inside the directory.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// Reads a text file inside the directory.
    pub fn read_text(&self, rel: &str) -> String {
        String::from_utf8(self.read(rel)).expect("UTF-8 file")
    }

    /// Runs `byline ARGS…` here, with colour off and no service token in the environment.
    pub fn byline(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_byline"))
            .current_dir(self.root())
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("BYLINE_TOKEN")
            .output()
            .expect("run the byline binary");
        let run = Run {
            code: out
                .status
                .code()
                .unwrap_or_else(|| panic!("byline {args:?} was killed by a signal")),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !run.stderr.contains("panicked") && run.code != 101,
            "byline {args:?} panicked:\n{}",
            run.stderr
        );
        run
    }

    /// `byline keygen --publisher P --keys DIR`, which must succeed.
    pub fn keygen(&self, publisher: &str, keys: &str) -> Run {
        let run = self.byline(&["keygen", "--publisher", publisher, "--keys", keys]);
        run.expect_code(0);
        run
    }

    /// `byline sign ARTICLE --byline "By AI" --authorship ai-generated --key K --trust T EXTRA…`,
    /// which must succeed.
    pub fn sign_ai(&self, article: &str, key: &str, trust: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "sign",
            article,
            "--byline",
            "By AI",
            "--authorship",
            "ai-generated",
            "--key",
            key,
            "--trust",
            trust,
        ];
        args.extend_from_slice(extra);
        let run = self.byline(&args);
        run.expect_code(0);
        run
    }

    /// A directory with `keys/` for news.example and `article.md` signed "By AI" with its
    /// sidecar `article.md.byline.json`.
    pub fn signed_markdown() -> Self {
        let s = Scratch::new();
        s.keygen("news.example", "keys");
        s.write("article.md", FERRY_MD);
        s.sign_ai(
            "article.md",
            "keys/news.example.key",
            "keys/trust.toml",
            &[],
        );
        s
    }

    /// Reads a bundle file as a JSON value.
    pub fn bundle(&self, rel: &str) -> Value {
        serde_json::from_slice(&self.read(rel)).expect("bundle is JSON")
    }

    /// Writes a JSON value as a bundle file.
    pub fn write_bundle(&self, rel: &str, bundle: &Value) -> PathBuf {
        self.write(rel, serde_json::to_vec_pretty(bundle).expect("serialize"))
    }
}

/// The decoded payload bytes of a bundle's envelope.
pub fn payload_bytes(bundle: &Value) -> Vec<u8> {
    let b64 = bundle["dsseEnvelope"]["payload"]
        .as_str()
        .expect("payload is a string");
    STANDARD.decode(b64).expect("payload is standard base64")
}

/// The decoded payload of a bundle's envelope, as JSON.
pub fn payload_json(bundle: &Value) -> Value {
    serde_json::from_slice(&payload_bytes(bundle)).expect("payload is JSON")
}

/// Replaces a bundle's payload (without re-signing it).
pub fn set_payload(bundle: &mut Value, payload: &[u8]) {
    bundle["dsseEnvelope"]["payload"] = Value::String(STANDARD.encode(payload));
}
