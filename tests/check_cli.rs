//! `byline check` and bulk `byline sign`, end to end: the real binary over trees of invented
//! articles (Markdown and HTML in nested folders), in fresh temporary directories. Each test
//! asserts the exit status (0 every article passes, 1 some article does not, 2 usage or I/O
//! error) and that every report format names the right files with the right reasons.

mod common;
mod server_harness;

use std::collections::BTreeSet;
use std::fs;
use std::process::{Command, Stdio};

use common::{ferry_html, Run, Scratch, FERRY_MD};
use serde_json::Value;
use server_harness::{bin, pin_trust, Server};

/// Towns, desks and events the invented articles are made of (all made up).
const TOWNS: [&str; 6] = [
    "Kellsport",
    "Saltmere",
    "Brackenfold",
    "Ashby Cross",
    "Wrenhaven",
    "Dunmoor",
];
const DESKS: [&str; 5] = ["local", "politics", "sport", "weather", "culture"];
const EVENTS: [&str; 5] = [
    "the council approved a new footbridge over the river",
    "the regional assembly approved next year's transport budget",
    "the rowing club approved plans for a second boathouse",
    "forecasters approved the reopening of the coastal path after the gales",
    "the library trustees approved a winter programme of readings",
];

/// Article `n` as Markdown source, with front matter (which is not part of the signed text).
fn md_article(n: usize) -> String {
    let town = TOWNS[n % TOWNS.len()];
    let event = EVENTS[n % EVENTS.len()];
    format!(
        "---\nslug: story-{n}\ndesk: {desk}\n---\n\
         # {town} report no. {n}\n\n\
         In {town} on Monday {event}, by {votes} votes to {against}.\n\n\
         The work is expected to take {weeks} weeks and to cost about {cost} thousand euros,\n\
         a spokesperson said.\n\n\
         Residents have until the end of the month to comment. *Story {n} of the series.*\n",
        desk = DESKS[n % DESKS.len()],
        votes = 7 + n % 5,
        against = n % 4,
        weeks = 3 + n % 20,
        cost = 40 + n * 3,
    )
}

/// Article `n` as a rendered page: site chrome around one `<article>`.
fn html_article(n: usize) -> String {
    let town = TOWNS[n % TOWNS.len()];
    let event = EVENTS[n % EVENTS.len()];
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{town} {n}</title>\
         <style>p {{ margin: 0 }}</style></head>\n<body>\n\
         <nav><a href=\"/\">Home</a> | <a href=\"/{desk}\">{desk}</a></nav>\n\
         <article>\n<h1>{town} report no.&nbsp;{n}</h1>\n\
         <p>In {town} on Monday {event}, by {votes} votes to {against}.</p>\n\
         <p>The work is expected to take {weeks}&nbsp;weeks and to cost about {cost} thousand euros,\n\
         a spokesperson said.</p>\n\
         <p>Residents have until the end of the month to comment. <em>Story {n} of the series.</em></p>\n\
         </article>\n<footer><p>&copy; 2026 The {town} Courier</p></footer>\n\
         <script>window.story = {n};</script>\n</body>\n</html>\n",
        desk = DESKS[n % DESKS.len()],
        votes = 7 + n % 5,
        against = n % 4,
        weeks = 3 + n % 20,
        cost = 40 + n * 3,
    )
}

/// Where article `n` of a generated tree lives (relative to the tree) and its text: a mix of
/// `.md`, `.markdown`, `.html` and `.htm`, one to four folders deep.
fn tree_article(n: usize) -> (String, String) {
    let ext = match n % 10 {
        3 => "htm",
        4 => "markdown",
        d if d % 2 == 0 => "md",
        _ => "html",
    };
    let desk = DESKS[n % DESKS.len()];
    let dir = match n % 3 {
        0 => format!("{desk}/2026/{:02}", n % 12 + 1),
        1 => format!(
            "{desk}/archive/{}/{:02}/week-{}",
            2020 + n % 6,
            n % 12 + 1,
            n % 4
        ),
        _ => desk.to_string(),
    };
    let text = if ext.starts_with("htm") {
        html_article(n)
    } else {
        md_article(n)
    };
    (format!("{dir}/story-{n}.{ext}"), text)
}

/// Writes `count` articles under `root` (relative to the scratch directory); returns their
/// paths as `check` reports them (`root/…`).
fn write_tree(s: &Scratch, root: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|n| {
            let (rel, text) = tree_article(n);
            let path = format!("{root}/{rel}");
            s.write(&path, text);
            path
        })
        .collect()
}

/// `byline sign DIR --byline "By AI" --authorship ai-generated --key K --trust T` (one call).
fn sign_dir(s: &Scratch, dir: &str) -> Run {
    s.byline(&[
        "sign",
        dir,
        "--byline",
        "By AI",
        "--authorship",
        "ai-generated",
        "--model",
        "example-model@1",
        "--key",
        "keys/news.example.key",
        "--trust",
        "keys/trust.toml",
    ])
}

/// A scratch directory with news.example's key and `count` articles under `content/`, signed
/// in bulk with one call.
fn signed_tree(count: usize) -> (Scratch, Vec<String>) {
    let s = Scratch::new();
    s.keygen("news.example", "keys");
    let paths = write_tree(&s, "content", count);
    sign_dir(&s, "content")
        .expect_code(0)
        .stderr_has(&format!("signed {count} of {count} articles"));
    (s, paths)
}

/// `byline check ARGS… --trust keys/trust.toml`.
fn check(s: &Scratch, args: &[&str]) -> Run {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--trust", "keys/trust.toml"]);
    s.byline(&all)
}

/// `byline check ARGS… --format json`, parsed.
fn check_json(s: &Scratch, args: &[&str], code: i32) -> Value {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--format", "json"]);
    let run = check(s, &all);
    run.expect_code(code);
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("check --format json is not JSON ({e}):\n{}", run.stdout))
}

/// The results of a JSON report, by path.
fn results_by_path(doc: &Value) -> std::collections::BTreeMap<String, Value> {
    doc["results"]
        .as_array()
        .expect("results is an array")
        .iter()
        .map(|r| (r["path"].as_str().expect("path").to_string(), r.clone()))
        .collect()
}

/// The paths a JSON report gives a status other than `verified`, with their codes.
fn not_verified(doc: &Value) -> Vec<(String, String, String)> {
    results_by_path(doc)
        .into_iter()
        .filter(|(_, r)| r["status"] != "verified")
        .map(|(p, r)| {
            (
                p,
                r["status"].as_str().unwrap_or_default().to_string(),
                r["code"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Acceptance 1: 300 articles signed in bulk, one altered, one unsigned, four formats
// ---------------------------------------------------------------------------------------------

#[test]
fn three_hundred_articles_signed_in_bulk_then_one_altered_and_one_unsigned() {
    let (s, paths) = signed_tree(300);
    let exts: BTreeSet<&str> = paths.iter().filter_map(|p| p.rsplit('.').next()).collect();
    assert_eq!(
        exts,
        BTreeSet::from(["htm", "html", "markdown", "md"]),
        "the tree mixes Markdown and HTML"
    );
    for p in &paths {
        assert!(
            s.path(&format!("{p}.byline.json")).exists(),
            "no sidecar for {p}"
        );
    }

    // All signed: every format passes.
    check(&s, &["content"])
        .expect_code(0)
        .stdout_has("300 articles: 300 verified, 0 failed, 0 unsigned, 0 errors")
        .stdout_has("ai-generated 300");
    let doc = check_json(&s, &["content"], 0);
    assert_eq!(doc["summary"]["verified"], 300, "{doc:#}");
    assert_eq!(doc["summary"]["verifiedByAuthorship"]["ai-generated"], 300);
    assert_eq!(results_by_path(&doc).len(), 300);
    for r in doc["results"].as_array().unwrap() {
        assert_eq!(r["byline"], "By AI", "{r}");
        assert_eq!(r["binding"], "exact", "{r}");
    }

    // One HTML article altered (one word), one Markdown article added without a manifest.
    let altered = paths
        .iter()
        .find(|p| p.ends_with(".html") && p.matches('/').count() >= 4)
        .expect("a deeply nested HTML article")
        .clone();
    let text = s.read_text(&altered);
    assert!(text.contains(" approved "), "{text}");
    s.write(&altered, text.replacen(" approved ", " rejected ", 1));
    let unsigned = "content/culture/reviews/unsigned-review.md";
    // 300 signed (one of them now altered) and one unsigned: 301 articles in all.
    s.write(unsigned, md_article(1000));

    // text: exit 1, each problem on a line naming the file and the reason.
    let run = check(&s, &["content"]);
    run.expect_code(1)
        .stdout_has(&format!("FAIL {altered}: digest mismatch"))
        .stdout_has("(paragraph 2 changed)")
        .stdout_has(&format!("UNSIGNED {unsigned}: unsigned"))
        .stdout_has("301 articles: 299 verified, 1 failed, 1 unsigned, 0 errors")
        .stdout_has("ai-generated 299,");
    let problems: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL ") || l.starts_with("UNSIGNED ") || l.starts_with("ERROR "))
        .collect();
    assert_eq!(problems.len(), 2, "{}", run.stdout);

    // json: one document, a result per file, naming both.
    let doc = check_json(&s, &["content"], 1);
    assert_eq!(results_by_path(&doc).len(), 301);
    assert_eq!(doc["summary"]["articles"], 301);
    assert_eq!(doc["summary"]["verified"], 299);
    assert_eq!(doc["summary"]["failed"], 1);
    assert_eq!(doc["summary"]["unsigned"], 1);
    assert_eq!(doc["summary"]["errors"], 0);
    assert_eq!(
        not_verified(&doc),
        {
            let mut v = vec![
                (
                    altered.clone(),
                    "failed".to_string(),
                    "digest-mismatch".to_string(),
                ),
                (
                    unsigned.to_string(),
                    "unsigned".to_string(),
                    "unsigned".to_string(),
                ),
            ];
            v.sort();
            v
        },
        "{doc:#}"
    );
    let by_path = results_by_path(&doc);
    let reason = by_path[&altered]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("digest mismatch"), "{reason}");
    // What was signed is still shown for the altered article (from the verified payload).
    assert_eq!(by_path[&altered]["byline"], "By AI");

    // junit: well-formed XML, one test case per article, exactly the two failures.
    let run = check(&s, &["content", "--format", "junit"]);
    run.expect_code(1);
    let xml = roxmltree::Document::parse(&run.stdout)
        .unwrap_or_else(|e| panic!("JUnit output is not well-formed XML: {e}\n{}", run.stdout));
    let cases: Vec<roxmltree::Node> = xml
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 301);
    let names: BTreeSet<&str> = cases.iter().filter_map(|c| c.attribute("name")).collect();
    assert_eq!(
        names.len(),
        301,
        "test case names are the 301 distinct paths"
    );
    assert!(names.contains(altered.as_str()) && names.contains(unsigned));
    let failed: BTreeSet<&str> = xml
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .map(|f| {
            f.parent_element()
                .filter(|p| p.has_tag_name("testcase"))
                .and_then(|p| p.attribute("name"))
                .expect("a failure sits in a named test case")
        })
        .collect();
    assert_eq!(failed, BTreeSet::from([altered.as_str(), unsigned]));
    assert_eq!(
        xml.descendants()
            .filter(|n| n.has_tag_name("failure"))
            .count(),
        2
    );
    let suite = xml
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a testsuite");
    assert_eq!(suite.attribute("tests"), Some("301"));
    assert_eq!(suite.attribute("failures"), Some("2"));
    let failure_of = |name: &str| {
        cases
            .iter()
            .find(|c| c.attribute("name") == Some(name))
            .and_then(|c| c.children().find(|n| n.has_tag_name("failure")))
            .expect("a failure element")
    };
    assert_eq!(
        failure_of(&altered).attribute("type"),
        Some("digest-mismatch")
    );
    assert!(failure_of(&altered)
        .attribute("message")
        .is_some_and(|m| m.starts_with("digest mismatch")));
    assert_eq!(failure_of(unsigned).attribute("type"), Some("unsigned"));

    // github: one annotation per problem, carrying the file path.
    let run = check(&s, &["content", "--format", "github"]);
    run.expect_code(1);
    let annotations: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("::")).collect();
    assert_eq!(annotations.len(), 2, "{}", run.stdout);
    assert!(
        annotations
            .iter()
            .any(|a| a.starts_with(&format!("::error file={altered},"))
                && a.contains("::digest mismatch")),
        "{}",
        run.stdout
    );
    assert!(
        annotations
            .iter()
            .any(|a| a.starts_with(&format!("::error file={unsigned},")) && a.contains("unsigned")),
        "{}",
        run.stdout
    );

    // Restoring the article makes only the unsigned one fail.
    s.write(&altered, text);
    let doc = check_json(&s, &["content"], 1);
    assert_eq!(
        not_verified(&doc),
        vec![(unsigned.to_string(), "unsigned".into(), "unsigned".into())]
    );
}

// ---------------------------------------------------------------------------------------------
// Which files are checked
// ---------------------------------------------------------------------------------------------

#[test]
fn gitignore_ignore_globs_and_byline_toml_skip_files() {
    let (s, _) = signed_tree(6);
    // Unsigned files in three places, each skipped by a different rule.
    s.write("content/.gitignore", "drafts/\n*.tmp.md\n");
    s.write("content/drafts/next-week.md", md_article(900));
    s.write("content/local/half-written.tmp.md", md_article(901));
    s.write("content/scratch/notes.md", md_article(902));
    // Hidden folders are skipped too (as git tools do).
    s.write("content/.drafts/hidden.md", md_article(904));
    s.write("content/archive-2019/old-page.html", html_article(903));
    // Not an article at all (extension not in the list).
    s.write("content/local/photo-credits.csv", "name,credit\n");

    // .gitignore always applies (no git repository needed); the others are still found.
    let doc = check_json(&s, &["content"], 1);
    let failing: Vec<String> = not_verified(&doc).into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(
        failing,
        vec![
            "content/archive-2019/old-page.html".to_string(),
            "content/scratch/notes.md".to_string()
        ]
    );
    assert_eq!(doc["summary"]["articles"], 8);

    // --ignore GLOB (repeatable), relative to the checked directory.
    let doc = check_json(&s, &["content", "--ignore", "scratch/**"], 1);
    let failing: Vec<String> = not_verified(&doc).into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(
        failing,
        vec!["content/archive-2019/old-page.html".to_string()]
    );
    check(
        &s,
        &[
            "content",
            "--ignore",
            "scratch/**",
            "--ignore",
            "archive-*/**",
        ],
    )
    .expect_code(0)
    .stdout_has("6 articles: 6 verified");

    // byline.toml in the tree holds the same, and --ignore adds to it.
    s.write(
        "content/byline.toml",
        "[check]\nignore = [\"archive-*/**\"]\n",
    );
    let doc = check_json(&s, &["content"], 1);
    let failing: Vec<String> = not_verified(&doc).into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(failing, vec!["content/scratch/notes.md".to_string()]);
    check(&s, &["content", "--ignore", "scratch/**"])
        .expect_code(0)
        .stdout_has("6 articles: 6 verified");
}

#[test]
fn symlinks_out_of_the_tree_are_not_followed() {
    use std::os::unix::fs::symlink;
    let (s, _) = signed_tree(4);
    // Unsigned articles outside the tree, linked into it as a folder and as a file.
    s.write("elsewhere/secret/leaked.md", md_article(500));
    s.write("elsewhere/loose.html", html_article(501));
    symlink(
        s.path("elsewhere/secret"),
        s.path("content/local/linked-folder"),
    )
    .unwrap();
    symlink(
        s.path("elsewhere/loose.html"),
        s.path("content/linked-page.html"),
    )
    .unwrap();
    symlink("../../elsewhere", s.path("content/sport/relative-link")).unwrap();

    let run = check(&s, &["content", "--format", "json"]);
    run.expect_code(0);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["summary"]["articles"], 4, "{doc:#}");
    assert!(
        !run.stdout.contains("linked") && !run.stdout.contains("leaked"),
        "{}",
        run.stdout
    );
}

#[test]
fn extensions_are_configurable() {
    let (s, _) = signed_tree(4);
    s.write("content/notes/readme.txt", "Plain notes, never signed.\n");
    s.write(
        "content/notes/page.xhtml",
        "<p>not an article by default</p>\n",
    );
    // By default .txt is an article (and unsigned); .xhtml is not looked at.
    let doc = check_json(&s, &["content"], 1);
    assert_eq!(
        not_verified(&doc),
        vec![(
            "content/notes/readme.txt".to_string(),
            "unsigned".into(),
            "unsigned".into()
        )]
    );
    // --extensions narrows the set (with or without dots).
    check(&s, &["content", "--extensions", ".md,html"])
        .expect_code(0)
        .stdout_has("3 articles: 3 verified");
    // …and byline.toml can hold it.
    s.write(
        "content/byline.toml",
        "[check]\nextensions = [\"md\", \"htm\"]\n",
    );
    check(&s, &["content"])
        .expect_code(0)
        .stdout_has("3 articles: 3 verified");
}

// ---------------------------------------------------------------------------------------------
// Policy flags
// ---------------------------------------------------------------------------------------------

#[test]
fn require_binding_exact_fails_a_re_rendered_article() {
    let s = Scratch::new();
    s.keygen("news.example", "keys");
    s.write("site/ferry.md", FERRY_MD);
    sign_dir(&s, "site").expect_code(0);
    // The same story as a rendered page, next to a copy of the Markdown's manifest: it
    // verifies by the text binding only.
    s.write("site/ferry.html", ferry_html());
    fs::copy(
        s.path("site/ferry.md.byline.json"),
        s.path("site/ferry.html.byline.json"),
    )
    .unwrap();
    // A page with its own manifest embedded verifies exactly.
    s.write("site/embedded.html", html_article(7));
    sign_dir(&s, "site/embedded.html").expect_code(0);
    s.byline(&[
        "embed",
        "site/embedded.html",
        "site/embedded.html.byline.json",
    ])
    .expect_code(0);
    fs::remove_file(s.path("site/embedded.html.byline.json")).unwrap();

    let doc = check_json(&s, &["site"], 0);
    let by_path = results_by_path(&doc);
    assert_eq!(by_path["site/ferry.html"]["binding"], "text", "{doc:#}");
    assert_eq!(by_path["site/ferry.md"]["binding"], "exact");
    assert_eq!(by_path["site/embedded.html"]["binding"], "exact");

    let doc = check_json(&s, &["site", "--require-binding", "exact"], 1);
    assert_eq!(
        not_verified(&doc),
        vec![(
            "site/ferry.html".to_string(),
            "failed".into(),
            "exact-binding-required".into()
        )]
    );
    check_json(&s, &["site", "--require-binding", "text"], 0);

    // The same policy from byline.toml.
    s.write("site/byline.toml", "[check]\nrequire_binding = \"exact\"\n");
    check(&s, &["site"])
        .expect_code(1)
        .stdout_has("FAIL site/ferry.html: exact binding required");
    s.write(
        "site/byline.toml",
        "[check]\nrequire_binding = \"exactly\"\n",
    );
    check(&s, &["site"])
        .expect_code(2)
        .stderr_has("require_binding");
}

#[test]
fn require_logged_fails_offline_bundles() {
    let (s, paths) = signed_tree(5);
    let doc = check_json(&s, &["content", "--require-logged"], 1);
    let failing = not_verified(&doc);
    assert_eq!(failing.len(), 5, "{doc:#}");
    assert!(failing
        .iter()
        .all(|(_, st, code)| st == "failed" && code == "not-logged"));
    check(&s, &["content", "--require-logged", "--format", "github"])
        .expect_code(1)
        .stdout_has(&format!("::error file={},", paths[0]))
        .stdout_has("not logged");
    s.write("content/byline.toml", "[check]\nrequire_logged = true\n");
    check(&s, &["content"])
        .expect_code(1)
        .stdout_has("5 failed");
}

#[test]
fn publisher_flag_counts_only_that_publishers_keys() {
    let (s, _) = signed_tree(5);
    check(&s, &["content", "--publisher", "news.example"]).expect_code(0);
    let doc = check_json(&s, &["content", "--publisher", "other.example"], 1);
    let failing = not_verified(&doc);
    assert_eq!(failing.len(), 5, "{doc:#}");
    assert!(
        failing.iter().all(|(_, _, code)| code == "key-not-trusted"),
        "{failing:?}"
    );
    let reason = doc["results"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("other.example"), "{reason}");
}

#[test]
fn max_age_fails_offline_bundles_by_their_claimed_signing_time() {
    let (s, _) = signed_tree(3);
    check(&s, &["content", "--max-age", "1d"]).expect_code(0);
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    let doc = check_json(&s, &["content", "--max-age", "1s"], 1);
    let failing = not_verified(&doc);
    assert_eq!(failing.len(), 3, "{doc:#}");
    assert!(
        failing.iter().all(|(_, _, code)| code == "too-old"),
        "{failing:?}"
    );
    check(&s, &["content", "--max-age", "1h"]).expect_code(0);
    check(&s, &["content", "--max-age", "soon"])
        .expect_code(2)
        .stderr_has("duration");
}

// ---------------------------------------------------------------------------------------------
// Parallelism, progress and configuration errors
// ---------------------------------------------------------------------------------------------

#[test]
fn jobs_1_and_jobs_4_give_identical_json() {
    let (s, paths) = signed_tree(60);
    // Some failures, so that the reports carry reasons too.
    let victim = &paths[17];
    let text = s.read_text(victim);
    s.write(victim, text.replacen("Monday", "Tuesday", 1));
    s.write("content/weather/unsigned.html", html_article(77));
    s.write("content/sport/broken.md", md_article(78));
    s.write("content/sport/broken.md.byline.json", "{\"mediaType\": 1}");
    let one = check(&s, &["content", "--format", "json", "--jobs", "1"]);
    let four = check(&s, &["content", "--format", "json", "--jobs", "4"]);
    one.expect_code(1);
    four.expect_code(1);
    assert_eq!(one.stdout, four.stdout, "--jobs changes the report");
    let doc: Value = serde_json::from_str(&one.stdout).unwrap();
    assert_eq!(doc["summary"]["articles"], 62);
    assert_eq!(not_verified(&doc), {
        let mut v = vec![
            (
                victim.clone(),
                "failed".to_string(),
                "digest-mismatch".to_string(),
            ),
            (
                "content/sport/broken.md".to_string(),
                "failed".into(),
                "malformed-bundle".into(),
            ),
            (
                "content/weather/unsigned.html".to_string(),
                "unsigned".into(),
                "unsigned".into(),
            ),
        ];
        v.sort();
        v
    });
    check(&s, &["content", "--jobs", "0"])
        .expect_code(2)
        .stderr_has("--jobs");
}

/// Runs `byline ARGS…` in the scratch directory on a pseudo-terminal (util-linux `script`),
/// with `CI` set to `ci` (or unset); returns the exit status and everything the terminal
/// showed (stdout and stderr together). `None` when `script` is not installed.
fn on_terminal(s: &Scratch, args: &[&str], ci: Option<&str>) -> Option<(i32, String)> {
    let quote = |a: &str| format!("'{}'", a.replace('\'', "'\\''"));
    let line = std::iter::once(quote(bin()))
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("script");
    cmd.current_dir(s.root())
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env_remove("BYLINE_TOKEN")
        .env_remove("CI")
        .stdin(Stdio::null());
    if let Some(v) = ci {
        cmd.env("CI", v);
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("run script: {e}"),
    };
    Some((
        out.status.code().expect("script exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// What a progress bar leaves on a terminal: bar glyphs, carriage returns, erase-line.
fn has_bar(output: &str) -> bool {
    output.contains('█') || output.contains('░') || output.contains("\x1b[2K")
}

#[test]
fn progress_bar_only_on_a_terminal_outside_ci() {
    let (s, _) = signed_tree(40);
    // Not a terminal (a pipe, as in CI): no bar, whatever CI says.
    let run = check(&s, &["content"]);
    run.expect_code(0);
    assert!(
        !has_bar(&run.stderr) && !run.stderr.contains('\r'),
        "{:?}",
        run.stderr
    );

    let Some((code, shown)) = on_terminal(
        &s,
        &["check", "content", "--trust", "keys/trust.toml"],
        Some("true"),
    ) else {
        eprintln!("skipped the terminal half: util-linux `script` is not installed");
        return;
    };
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("40 articles: 40 verified"), "{shown}");
    assert!(
        !has_bar(&shown),
        "CI=true on a terminal still drew a bar: {shown:?}"
    );

    // A terminal outside CI does show one (drawn on stderr, cleared at the end).
    let (code, shown) = on_terminal(
        &s,
        &["check", "content", "--trust", "keys/trust.toml"],
        None,
    )
    .unwrap();
    assert_eq!(code, 0, "{shown}");
    assert!(
        has_bar(&shown) && shown.contains("/40 articles"),
        "no bar on a terminal: {shown:?}"
    );
    assert!(shown.contains("40 articles: 40 verified"), "{shown}");
}

#[test]
fn a_bad_byline_toml_is_a_usage_error() {
    let (s, _) = signed_tree(2);
    s.write("content/byline.toml", "[check]\nrequire_loged = true\n");
    check(&s, &["content"])
        .expect_code(2)
        .stderr_has("byline.toml")
        .stderr_has("require_loged");
    s.write("content/byline.toml", "[chek]\nrequire_logged = true\n");
    check(&s, &["content"]).expect_code(2).stderr_has("chek");
    s.write("content/byline.toml", "[check]\nrequire_logged = \"yes\"\n");
    check(&s, &["content"])
        .expect_code(2)
        .stderr_has("byline.toml");
    s.write("content/byline.toml", "[check\n");
    check(&s, &["content"])
        .expect_code(2)
        .stderr_has("byline.toml");
    // A good one is used.
    s.write("content/byline.toml", "[check]\nformat = \"github\"\n");
    check(&s, &["content"])
        .expect_code(0)
        .stdout_has("byline check: 2 articles, 2 verified");
}

#[test]
fn usage_errors_exit_2() {
    let (s, _) = signed_tree(2);
    check(&s, &["missing-dir"])
        .expect_code(2)
        .stderr_has("missing-dir");
    s.write("empty/readme.csv", "nothing,here\n");
    check(&s, &["empty"])
        .expect_code(2)
        .stderr_has("no articles found");
    s.byline(&["check", "content", "--trust", "keys/nope.toml"])
        .expect_code(2)
        .stderr_has("trust store");
    check(&s, &["content", "--format", "yaml"]).expect_code(2);
}

// ---------------------------------------------------------------------------------------------
// Bulk signing
// ---------------------------------------------------------------------------------------------

#[test]
fn bulk_signing_reports_bad_files_and_signs_the_others() {
    let s = Scratch::new();
    s.keygen("news.example", "keys");
    let good = write_tree(&s, "content", 8);
    // Not UTF-8, and a page with two <article> roots and no marked one.
    s.write(
        "content/local/latin1.md",
        b"# Caf\xe9 opens\n\nA new caf\xe9 opened.\n",
    );
    s.write(
        "content/local/two-roots.html",
        "<html><body><article><p>One.</p></article><article><p>Two.</p></article></body></html>",
    );
    let run = sign_dir(&s, "content");
    run.expect_code(1)
        .stderr_has("content/local/latin1.md: invalid UTF-8")
        .stderr_has("content/local/two-roots.html: ambiguous article root")
        .stderr_has("signed 8 of 10 articles, 2 failed");
    for p in &good {
        assert!(
            s.path(&format!("{p}.byline.json")).exists(),
            "{p} not signed"
        );
        assert!(
            run.stdout
                .contains(&format!("signed {p} -> {p}.byline.json")),
            "{}",
            run.stdout
        );
    }
    assert!(!s.path("content/local/latin1.md.byline.json").exists());
    assert!(!s.path("content/local/two-roots.html.byline.json").exists());

    // check agrees: the good ones verify, the two carry no manifest.
    let doc = check_json(&s, &["content"], 1);
    assert_eq!(doc["summary"]["verified"], 8);
    let failing: Vec<String> = not_verified(&doc).into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(
        failing,
        vec![
            "content/local/latin1.md".to_string(),
            "content/local/two-roots.html".to_string()
        ]
    );
}

#[test]
fn bulk_signing_takes_files_and_folders_together() {
    let s = Scratch::new();
    s.keygen("news.example", "keys");
    write_tree(&s, "a", 3);
    s.write("b/one.md", md_article(11));
    s.write("b/two.html", html_article(12));
    let run = s.byline(&[
        "sign",
        "a",
        "b/one.md",
        "b/two.html",
        "--byline",
        "By AI",
        "--authorship",
        "ai-generated",
        "--key",
        "keys/news.example.key",
        "--trust",
        "keys/trust.toml",
    ]);
    run.expect_code(0).stderr_has("signed 5 of 5 articles");
    s.byline(&["check", "a", "b", "--trust", "keys/trust.toml"])
        .expect_code(0)
        .stdout_has("5 articles: 5 verified");
}

/// `byline sign DIR --server URL` with the server's development token.
fn sign_via_server(dir: &std::path::Path, server: &Server, target: &str) -> Run {
    let out = Command::new(bin())
        .current_dir(dir)
        .env("BYLINE_TOKEN", &server.token)
        .env("NO_COLOR", "1")
        .args([
            "sign",
            target,
            "--server",
            &server.url,
            "--byline",
            "By AI",
            "--authorship",
            "ai-generated",
            "--model",
            "example-model@1",
        ])
        .output()
        .expect("run byline sign --server");
    Run {
        code: out.status.code().expect("exit status"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn bulk_signing_through_a_server_then_check_require_logged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let s = Scratch::new();
    let paths = write_tree(&s, "content", 50);

    let run = sign_via_server(s.root(), &server, "content");
    run.expect_code(0).stderr_has("signed 50 of 50 articles");
    // Answers come back through SignStream, each with its log index.
    let mut indexes = BTreeSet::new();
    for p in &paths {
        let bundle = s.bundle(&format!("{p}.byline.json"));
        let index = bundle["logEntry"]["logIndex"]
            .as_u64()
            .unwrap_or_else(|| panic!("{p}: no log entry in {bundle}"));
        indexes.insert(index);
        assert!(
            run.stdout.contains(&format!(
                "signed {p} -> {p}.byline.json (log index {index})"
            )),
            "{}",
            run.stdout
        );
    }
    assert_eq!(indexes.len(), 50, "one log entry per article");

    // A reader pins the publisher and the log, then checks with the log required.
    pin_trust(&server, &s.path("keys/trust.toml"));
    check(&s, &["content", "--require-logged"])
        .expect_code(0)
        .stdout_has("50 articles: 50 verified, 0 failed");
    check(
        &s,
        &[
            "content",
            "--require-logged",
            "--publisher",
            "localhost",
            "--max-age",
            "1h",
        ],
    )
    .expect_code(0);

    // One bad file in a bulk run through the server: reported, the others signed, exit 1.
    s.write("more/ok-1.md", md_article(301));
    s.write("more/ok-2.html", html_article(302));
    s.write("more/latin1.md", b"# Caf\xe9\n\nCaf\xe9 au lait.\n");
    let run = sign_via_server(s.root(), &server, "more");
    run.expect_code(1)
        .stderr_has("more/latin1.md")
        .stderr_has("signed 2 of 3 articles, 1 failed");
    assert!(s.path("more/ok-1.md.byline.json").exists());
    assert!(s.path("more/ok-2.html.byline.json").exists());
    assert!(!s.path("more/latin1.md.byline.json").exists());
    server.assert_no_panic();
}

/// An article over the 4 MiB limit (Markdown, valid UTF-8).
fn oversized_article() -> String {
    let para = "The harbour board met again and talked about the moorings for a long time.\n\n";
    let mut text = String::from("# A very long report\n\n");
    while text.len() <= 5 << 20 {
        text.push_str(para);
    }
    text
}

#[test]
fn bulk_signing_locally_goes_on_past_an_oversized_or_missing_file() {
    let s = Scratch::new();
    s.keygen("news.example", "keys");
    let good = write_tree(&s, "content", 4);
    s.write("content/local/too-long.md", oversized_article());
    let run = sign_dir(&s, "content");
    run.expect_code(1)
        .stderr_has("content/local/too-long.md")
        .stderr_has("more than the limit")
        .stderr_has("signed 4 of 5 articles, 1 failed");
    for p in &good {
        assert!(
            s.path(&format!("{p}.byline.json")).exists(),
            "{p} not signed"
        );
    }
    // check reports the file it cannot take as an error, by name.
    check(&s, &["content"])
        .expect_code(1)
        .stdout_has("ERROR content/local/too-long.md:")
        .stdout_has("5 articles: 4 verified, 0 failed, 0 unsigned, 1 errors");

    // A file named on the command line that is not there: reported, the others still signed.
    // (An article that cannot be read at all is an I/O error, so this run exits 2, not 1.)
    fs::remove_file(s.path("content/local/too-long.md")).unwrap();
    for p in &good {
        fs::remove_file(s.path(&format!("{p}.byline.json"))).unwrap();
    }
    let run = s.byline(&[
        "sign",
        "content",
        "content/gone.md",
        "--byline",
        "By AI",
        "--authorship",
        "ai-generated",
        "--key",
        "keys/news.example.key",
        "--trust",
        "keys/trust.toml",
    ]);
    run.expect_code(2)
        .stderr_has("content/gone.md")
        .stderr_has("signed 4 of 5 articles, 1 failed");
    for p in &good {
        assert!(
            s.path(&format!("{p}.byline.json")).exists(),
            "{p} not signed"
        );
    }
}

#[test]
fn bulk_signing_through_a_server_goes_on_past_an_oversized_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let s = Scratch::new();
    let good = write_tree(&s, "content", 4);
    s.write("content/local/too-long.md", oversized_article());
    let run = sign_via_server(s.root(), &server, "content");
    run.expect_code(1)
        .stderr_has("content/local/too-long.md")
        .stderr_has("signed 4 of 5 articles, 1 failed");
    for p in &good {
        assert!(
            s.path(&format!("{p}.byline.json")).exists(),
            "{p} not signed"
        );
    }
    server.assert_no_panic();
}

#[test]
fn trust_path_in_byline_toml_is_relative_to_the_file() {
    let (s, _) = signed_tree(3);
    fs::create_dir_all(s.path("content/.byline")).unwrap();
    fs::copy(
        s.path("keys/trust.toml"),
        s.path("content/.byline/trust.toml"),
    )
    .unwrap();
    s.write(
        "content/byline.toml",
        "[check]\ntrust = \".byline/trust.toml\"\n",
    );
    // From the folder holding byline.toml, and from its parent: the same trust store.
    let inside = Command::new(bin())
        .current_dir(s.path("content"))
        .args(["check", "."])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(
        inside.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&inside.stderr)
    );
    s.byline(&["check", "content"])
        .expect_code(0)
        .stdout_has("3 articles: 3 verified");
}
