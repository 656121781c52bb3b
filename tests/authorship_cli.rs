//! Authorship readers can see, through the real binary: per-paragraph labels (`--show`,
//! `--json`), paragraph-level change reports, quoted excerpts, editorial responsibility, the
//! displayed-byline check for HTML, and the link to a superseded manifest.

mod server_harness;

use std::path::Path;
use std::process::{Command, Output};

fn byline(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_byline"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn all(o: &Output) -> String {
    format!("{}{}", stdout(o), String::from_utf8_lossy(&o.stderr))
}

const THREE_PART: &str = "# Tide tables move online\n\n\
The harbour office will publish tide tables online from next month.\n\n\
Printed tables remain available at the office on Quay Street.\n\n\
Fishers said the change had been requested for years.\n";

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = byline(
        dir.path(),
        &[
            "keygen",
            "--publisher",
            "news.example",
            "--name",
            "News Example",
        ],
    );
    assert!(out.status.success(), "{}", all(&out));
    dir
}

fn sign(dir: &Path, file: &str, extra: &[&str]) -> Output {
    let mut args = vec!["sign", file, "--key", "keys/news.example.key"];
    args.extend_from_slice(extra);
    byline(dir, &args)
}

#[test]
fn three_part_article_shows_a_label_per_paragraph_and_names_a_changed_one() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(d.join("tide.md"), THREE_PART).unwrap();
    let out = sign(
        d,
        "tide.md",
        &[
            "--byline",
            "By AI, edited by Mara Quist",
            "--authorship",
            "mixed",
            "--segments",
            "0-1:ai-generated,2:human,3:ai-assisted",
            "--editor",
            "Mara Quist:news editor",
            "--policy-url",
            "https://news.example/ai",
        ],
    );
    assert!(out.status.success(), "{}", all(&out));

    let out = byline(d, &["verify", "tide.md", "--show"]);
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("VERIFIED tide.md: mixed"),
        "the verdict leads with the class:\n{text}"
    );
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("Tide tables move online").starts_with("[AI]"),
        "{text}"
    );
    assert!(line("publish tide tables").starts_with("[AI]"), "{text}");
    assert!(line("Printed tables").starts_with("[human]"), "{text}");
    assert!(line("Fishers said").starts_with("[AI-edited]"), "{text}");
    assert!(
        text.contains("Mara Quist (news editor)") && text.contains("https://news.example/ai"),
        "{text}"
    );

    let out = byline(d, &["verify", "tide.md", "--show", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let labels: Vec<&str> = v["paragraphs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["AI", "AI", "human", "AI-edited"]);
    assert_eq!(v["editorialResponsibility"]["name"], "Mara Quist");

    // Change one paragraph: the verdict names it.
    std::fs::write(
        d.join("tide.md"),
        THREE_PART.replace("Quay Street", "Dock Street"),
    )
    .unwrap();
    let out = byline(d, &["verify", "tide.md", "--show"]);
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    let text = stdout(&out);
    assert!(text.contains("paragraph 3 changed"), "{text}");
    assert!(line_starts(&text, "Dock Street", "[changed]"), "{text}");
    let out = byline(d, &["verify", "tide.md", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["paragraphChanges"][0]["change"], "changed");
    assert_eq!(v["paragraphChanges"][0]["signed"], 2);
}

fn line_starts(text: &str, needle: &str, prefix: &str) -> bool {
    text.lines()
        .any(|l| l.contains(needle) && l.starts_with(prefix))
}

#[test]
fn excerpt_of_two_paragraphs_is_confirmed_with_its_labels_and_an_altered_one_is_not() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(d.join("tide.md"), THREE_PART).unwrap();
    let out = sign(
        d,
        "tide.md",
        &[
            "--byline",
            "By AI",
            "--authorship",
            "mixed",
            "--segments",
            "0-1:ai-generated,2:human,3:ai-assisted",
        ],
    );
    assert!(out.status.success(), "{}", all(&out));
    std::fs::write(
        d.join("quote.txt"),
        "Printed tables remain available at the office on Quay Street.\n\nFishers said the change had been requested for years.\n",
    )
    .unwrap();
    let out = byline(
        d,
        &[
            "verify",
            "quote.txt",
            "--excerpt",
            "--bundle",
            "tide.md.byline.json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    assert!(
        stdout(&out).contains("CONFIRMED") && stdout(&out).contains("[human, AI-edited]"),
        "{}",
        all(&out)
    );

    std::fs::write(
        d.join("bad.txt"),
        "Printed tables remain available at the office on Dock Street.\n",
    )
    .unwrap();
    let out = byline(
        d,
        &[
            "verify",
            "bad.txt",
            "--excerpt",
            "--bundle",
            "tide.md.byline.json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    assert!(
        stdout(&out).contains("does not appear verbatim"),
        "{}",
        all(&out)
    );
}

#[test]
fn html_page_whose_visible_byline_contradicts_the_signed_one_fails_naming_both() {
    let dir = setup();
    let d = dir.path();
    let page = |shown: &str| {
        format!(
            "<html><body><header><span data-byline>{shown}</span></header><article><h1>Ferry timetable changes</h1>\
             <p>The winter timetable starts on the first of December.</p></article></body></html>"
        )
    };
    std::fs::write(d.join("ferry.html"), page("By AI")).unwrap();
    let out = sign(
        d,
        "ferry.html",
        &["--byline", "By AI", "--authorship", "ai-generated"],
    );
    assert!(out.status.success(), "{}", all(&out));
    let out = byline(d, &["verify", "ferry.html"]);
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));

    // The page now shows a human byline over the same manifest (text binding only).
    std::fs::write(d.join("lying.html"), page("By Jane Doe")).unwrap();
    let out = byline(
        d,
        &["verify", "lying.html", "--bundle", "ferry.html.byline.json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    let text = stdout(&out);
    assert!(
        text.contains("\"By Jane Doe\"") && text.contains("\"By AI\""),
        "{text}"
    );

    // No data-byline element: the verdict says the displayed byline was not checked.
    std::fs::write(
        d.join("plain.html"),
        "<html><body><article><p>The winter timetable starts on the first of December.</p></article></body></html>",
    )
    .unwrap();
    let out = sign(
        d,
        "plain.html",
        &["--byline", "By AI", "--authorship", "ai-generated"],
    );
    assert!(out.status.success(), "{}", all(&out));
    let out = byline(d, &["verify", "plain.html"]);
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    assert!(
        stdout(&out).contains("displayed byline not checked"),
        "{}",
        all(&out)
    );
}

#[test]
fn html_authorship_marks_become_segments_and_a_human_article_cannot_hold_ai_paragraphs() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(
        d.join("marked.html"),
        "<article><p data-byline-authorship=\"ai-generated\">Drafted paragraph.</p>\
         <p data-byline-authorship=\"human\">Reported paragraph.</p></article>",
    )
    .unwrap();
    let out = sign(
        d,
        "marked.html",
        &["--byline", "By AI and Jo Park", "--authorship", "mixed"],
    );
    assert!(out.status.success(), "{}", all(&out));
    let out = byline(d, &["verify", "marked.html", "--show"]);
    let text = stdout(&out);
    assert!(line_starts(&text, "Drafted paragraph", "[AI]"), "{text}");
    assert!(
        line_starts(&text, "Reported paragraph", "[human]"),
        "{text}"
    );

    let out = sign(
        d,
        "marked.html",
        &["--byline", "By Jo Park", "--authorship", "human"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    assert!(all(&out).contains("signed human"), "{}", all(&out));
}

#[test]
fn a_correction_names_the_manifest_it_supersedes() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(d.join("v1.md"), THREE_PART).unwrap();
    assert!(sign(
        d,
        "v1.md",
        &["--byline", "By AI", "--authorship", "ai-generated"]
    )
    .status
    .success());
    std::fs::write(d.join("v2.md"), THREE_PART.replace("next month", "1 March")).unwrap();
    let out = sign(
        d,
        "v2.md",
        &[
            "--byline",
            "By AI",
            "--authorship",
            "ai-generated",
            "--supersedes",
            "v1.md.byline.json",
        ],
    );
    assert!(out.status.success(), "{}", all(&out));
    let decode = |file: &str| -> serde_json::Value {
        let b: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join(file)).unwrap()).unwrap();
        let payload = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            b["dsseEnvelope"]["payload"].as_str().unwrap(),
        )
        .unwrap();
        serde_json::json!({"payload": payload, "statement": serde_json::from_slice::<serde_json::Value>(&payload).unwrap()})
    };
    let v1 = decode("v1.md.byline.json");
    let v2 = decode("v2.md.byline.json");
    let v1_payload: Vec<u8> = serde_json::from_value(v1["payload"].clone()).unwrap();
    let expected = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&v1_payload));
    assert_eq!(
        v2["statement"]["predicate"]["supersedes"]["statementSha256"],
        expected.as_str()
    );
    // Both versions still verify on their own.
    assert_eq!(byline(d, &["verify", "v1.md"]).status.code(), Some(0));
    assert_eq!(byline(d, &["verify", "v2.md"]).status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_editor_and_supersedes_travel_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = server_harness::Server::start(d, &[]);
    server_harness::pin_trust(&server, &d.join("reader.toml"));
    std::fs::write(d.join("v1.md"), THREE_PART).unwrap();
    let sign_remote = |file: &str, extra: &[&str]| {
        let mut args = vec![
            "sign",
            file,
            "--server",
            &server.url,
            "--byline",
            "By AI",
            "--authorship",
            "mixed",
        ];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_byline"))
            .current_dir(d)
            .env("BYLINE_TOKEN", &server.token)
            .args(&args)
            .output()
            .unwrap()
    };
    let out = sign_remote(
        "v1.md",
        &[
            "--segments",
            "0-1:ai-generated,2-3:human",
            "--editor",
            "Mara Quist:news editor",
        ],
    );
    assert!(out.status.success(), "{}", all(&out));
    std::fs::write(d.join("v2.md"), THREE_PART.replace("next month", "1 March")).unwrap();
    let out = sign_remote(
        "v2.md",
        &[
            "--segments",
            "0-3:ai-assisted",
            "--supersedes",
            "v1.md.byline.json",
        ],
    );
    assert!(out.status.success(), "{}", all(&out));

    let out = byline(d, &["verify", "v1.md", "--trust", "reader.toml", "--show"]);
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    let text = stdout(&out);
    assert!(line_starts(&text, "Printed tables", "[human]"), "{text}");
    assert!(line_starts(&text, "publish tide tables", "[AI]"), "{text}");
    assert!(text.contains("Mara Quist (news editor)"), "{text}");
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("v2.md.byline.json")).unwrap())
            .unwrap();
    let payload = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        b["dsseEnvelope"]["payload"].as_str().unwrap(),
    )
    .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(st["predicate"]["supersedes"]["logIndex"], 0);
    assert_eq!(st["predicate"]["segments"][0]["authorship"], "ai-assisted");
    server.assert_no_panic();
}

#[test]
fn the_log_key_name_cannot_be_a_publisher() {
    let dir = tempfile::tempdir().unwrap();
    let out = byline(dir.path(), &["keygen", "--publisher", "log"]);
    assert_eq!(out.status.code(), Some(2), "{}", all(&out));
    assert!(all(&out).contains("reserved"), "{}", all(&out));
    assert!(!dir.path().join("keys/log.key").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_chain_of_three_is_shown_in_order_and_the_oldest_is_superseded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = server_harness::Server::start(d, &[]);
    server_harness::pin_trust(&server, &d.join("reader.toml"));
    let versions = [
        THREE_PART.to_string(),
        THREE_PART.replace("next month", "1 March"),
        THREE_PART
            .replace("next month", "1 March")
            .replace("for years", "since 2019"),
    ];
    for (i, text) in versions.iter().enumerate() {
        let file = format!("v{}.md", i + 1);
        std::fs::write(d.join(&file), text).unwrap();
        let mut args = vec![
            "sign".to_string(),
            file.clone(),
            "--server".into(),
            server.url.clone(),
            "--byline".into(),
            "By AI".into(),
            "--authorship".into(),
            "ai-generated".into(),
            "--url".into(),
            "https://localhost/tide".into(),
        ];
        if i > 0 {
            args.push("--supersedes".into());
            args.push(format!("v{i}.md.byline.json"));
        }
        let out = Command::new(env!("CARGO_BIN_EXE_byline"))
            .current_dir(d)
            .env("BYLINE_TOKEN", &server.token)
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", all(&out));
    }
    let verify = |file: &str| {
        byline(
            d,
            &[
                "verify",
                file,
                "--trust",
                "reader.toml",
                "--server",
                &server.url,
                "--history",
                "--state-dir",
                "state",
            ],
        )
    };
    // The oldest still verifies, says it is superseded, and lists all three in order.
    let out = verify("v1.md");
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    let text = stdout(&out);
    assert!(
        text.contains("superseded: a newer version exists (log index 2"),
        "{text}"
    );
    let chain: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("log index"))
        .collect();
    assert_eq!(chain.len(), 3, "{text}");
    assert!(
        chain[0].contains("log index 0") && chain[0].ends_with("<- this article"),
        "{text}"
    );
    assert!(
        chain[1].contains("log index 1") && chain[2].contains("log index 2"),
        "{text}"
    );
    // The newest shows the same chain, ending with itself, and no newer version.
    let out = verify("v3.md");
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    let text = stdout(&out);
    assert!(!text.contains("superseded"), "{text}");
    let chain: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("log index"))
        .collect();
    assert_eq!(chain.len(), 3, "{text}");
    assert!(
        chain[2].contains("log index 2") && chain[2].ends_with("<- this article"),
        "{text}"
    );
    // JSON carries the same.
    let out = byline(
        d,
        &[
            "verify",
            "v2.md",
            "--trust",
            "reader.toml",
            "--server",
            &server.url,
            "--history",
            "--json",
            "--state-dir",
            "state",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["superseded"], true);
    assert_eq!(v["history"]["earlier"][0]["logIndex"], 0);
    assert_eq!(v["history"]["later"][0]["logIndex"], 2);
    server.assert_no_panic();
}
