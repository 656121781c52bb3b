//! Runs the hand-written `byline-text/v1` vectors in `tests/vectors/canonical/`: each input is
//! canonicalized and compared byte for byte with the expected text and digest.

use std::fs;
use std::path::Path;

use byline::core::canonical::{canonicalize, invisible_characters, InvisibleKind, MediaType};
use byline::core::digest::Sha256Digest;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    comment: String,
    media_type: String,
    expect: String,
    digest: Option<String>,
    paragraphs: Option<usize>,
    warns_bidi: Option<bool>,
    error_contains: Option<String>,
}

#[test]
fn canonical_vectors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/canonical");
    let mut dirs: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let v: Vector =
            toml::from_str(&fs::read_to_string(dir.join("vector.toml")).unwrap()).unwrap();
        let media: MediaType = v.media_type.parse().unwrap();
        let input = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_stem().is_some_and(|s| s == "input"))
            .unwrap();
        let bytes = fs::read(&input).unwrap();
        let got = canonicalize(&bytes, media);
        match (v.expect.as_str(), got) {
            ("ok", Ok(c)) => {
                let expected = fs::read_to_string(dir.join("canonical.txt")).unwrap();
                if c.text != expected {
                    failures.push(format!(
                        "{name}: text differs\n  got:      {:?}\n  expected: {:?}\n  ({})",
                        c.text, expected, v.comment
                    ));
                    continue;
                }
                assert_eq!(
                    Sha256Digest::of(c.text.as_bytes()).to_hex(),
                    v.digest.clone().unwrap(),
                    "{name}: digest"
                );
                assert_eq!(
                    c.paragraphs().count(),
                    v.paragraphs.unwrap(),
                    "{name}: paragraph count"
                );
                let bidi = invisible_characters(&c.text)
                    .iter()
                    .any(|i| i.kind == InvisibleKind::Bidi);
                assert_eq!(bidi, v.warns_bidi.unwrap_or(false), "{name}: bidi warning");
            }
            ("error", Err(e)) => {
                let want = v.error_contains.clone().unwrap();
                if !e.to_string().contains(&want) {
                    failures.push(format!("{name}: error {e:?} does not contain {want:?}"));
                }
            }
            (expect, got) => failures.push(format!(
                "{name}: expected {expect}, got {got:?} ({})",
                v.comment
            )),
        }
    }
    assert!(dirs.len() >= 20, "only {} vectors found", dirs.len());
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}

#[test]
fn markdown_and_html_pair_canonicalize_identically() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/canonical");
    let md = canonicalize(
        &fs::read(root.join("same_article_markdown/input.md")).unwrap(),
        MediaType::Markdown,
    )
    .unwrap();
    let html = canonicalize(
        &fs::read(root.join("same_article_html/input.html")).unwrap(),
        MediaType::Html,
    )
    .unwrap();
    assert_eq!(md.text, html.text);
    assert!(md.paragraphs().count() > 3);
}
