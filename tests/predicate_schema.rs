//! `docs/predicate.schema.json` against real manifests: statements that the `byline` CLI signed
//! (the decoded payloads of their bundles) validate; a statement with an unknown predicate
//! field, and the other defects the schema can express, do not. Where the schema and the code
//! both judge a statement, they agree.

mod common;

use std::fs;
use std::path::Path;

use byline::core::manifest::AuthorshipStatement;
use common::{ferry_html, payload_bytes, payload_json, Scratch, FERRY_MD};
use jsonschema::Validator;
use serde_json::{json, Value};

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/predicate.schema.json");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (the schema is part of the docs)", path.display()));
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn validator() -> Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema())
        .expect("the schema compiles")
}

fn errors(v: &Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

#[test]
fn schema_is_a_valid_draft_2020_12_schema() {
    let s = schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    jsonschema::meta::validate(&s).expect("valid against its meta-schema");
}

/// Signs articles with the CLI in several shapes and returns each statement's payload bytes.
fn cli_manifests() -> Vec<(String, Vec<u8>)> {
    let s = Scratch::new();
    s.keygen("news.example", "keys");
    let sign = |name: &str, args: &[&str]| {
        let mut all = vec![
            "sign",
            name,
            "--key",
            "keys/news.example.key",
            "--trust",
            "keys/trust.toml",
        ];
        all.extend_from_slice(args);
        s.byline(&all).expect_code(0);
        let bundle = s.bundle(&format!("{name}.byline.json"));
        (name.to_string(), payload_bytes(&bundle))
    };
    s.write("minimal.md", FERRY_MD);
    s.write("full.md", FERRY_MD);
    s.write("page.html", ferry_html());
    s.write(
        "human.txt",
        "Council approves new cycle lane\n\nThe vote was 7 to 2.\n",
    );
    s.write(
        "segments.html",
        concat!(
            "<article>",
            "<h1 data-byline-authorship=\"human\">Tide tables for the week</h1>",
            "<p data-byline-authorship=\"human\">Our harbour master explains the spring tides.</p>",
            "<div data-byline-authorship=\"ai-generated\"><p>Monday: high water 06:12, 18:31.</p>",
            "<p>Tuesday: high water 06:58, 19:20.</p></div>",
            "</article>"
        ),
    );
    vec![
        sign(
            "minimal.md",
            &["--byline", "By AI", "--authorship", "ai-generated"],
        ),
        sign(
            "full.md",
            &[
                "--byline",
                "By AI, edited by Jane Doe",
                "--authorship",
                "ai-assisted",
                "--model",
                "example-model@2026-01@Example Labs",
                "--model",
                "spellcheck",
                "--human",
                "Jane Doe:editor",
                "--human",
                "Sam Lee:fact-checker",
                "--url",
                "https://news.example/2026/11/ferry-returns",
                "--title",
                "Ferry returns to Kellsport harbour",
                "--language",
                "en-GB",
                "--publisher-name",
                "News Example Ltd",
            ],
        ),
        sign(
            "page.html",
            &["--byline", "By AI", "--authorship", "ai-generated"],
        ),
        sign(
            "human.txt",
            &["--byline", "By Jane Doe", "--authorship", "human"],
        ),
        sign(
            "segments.html",
            &[
                "--byline",
                "By the harbour desk and AI",
                "--authorship",
                "mixed",
            ],
        ),
    ]
}

#[test]
fn manifests_signed_by_the_cli_validate() {
    let v = validator();
    let manifests = cli_manifests();
    let mut fields_seen = std::collections::BTreeSet::new();
    for (name, payload) in &manifests {
        let statement: Value = serde_json::from_slice(payload).unwrap();
        let errs = errors(&v, &statement);
        assert!(errs.is_empty(), "{name}: {errs:#?}\n{statement:#}");
        // And byline reads it back.
        AuthorshipStatement::from_payload(payload).unwrap();
        fields_seen.extend(statement["predicate"].as_object().unwrap().keys().cloned());
    }
    assert_eq!(manifests.len(), 5);
    // The optional fields the CLI can write were all exercised.
    for field in [
        "aiSystems",
        "humans",
        "title",
        "language",
        "paragraphs",
        "segments",
    ] {
        assert!(
            fields_seen.contains(field),
            "{field} not exercised: {fields_seen:?}"
        );
    }
}

/// A statement the CLI signed, as JSON.
fn cli_statement() -> Value {
    let s = Scratch::signed_markdown();
    payload_json(&s.bundle("article.md.byline.json"))
}

#[test]
fn unknown_predicate_field_fails_the_schema() {
    let v = validator();
    let mut st = cli_statement();
    assert!(v.is_valid(&st));
    st["predicate"]["factChecked"] = json!(true);
    let errs = errors(&v, &st);
    assert!(!errs.is_empty(), "accepted an unknown predicate field");
    assert!(
        errs.iter().any(|e| e.contains("factChecked")),
        "the error names the field: {errs:#?}"
    );
    // The code refuses it too.
    assert!(AuthorshipStatement::from_payload(&serde_json::to_vec(&st).unwrap()).is_err());
}

#[test]
fn schema_and_code_agree_on_defects_the_schema_can_express() {
    let v = validator();
    let base = cli_statement();
    type Edit = fn(&mut Value);
    let cases: [(&str, bool, Edit); 14] = [
        // (what, valid, edit)
        ("unchanged", true, |_| {}),
        ("unknown Statement field is ignored (in-toto)", true, |s| {
            s["futureField"] = json!({"x": 1})
        }),
        ("unknown predicate field", false, |s| {
            s["predicate"]["rating"] = json!(5)
        }),
        ("unknown publisher field", false, |s| {
            s["predicate"]["publisher"]["country"] = json!("NZ")
        }),
        ("unknown digests field", false, |s| {
            s["predicate"]["digests"]["sha512"] = json!("00")
        }),
        ("missing byline", false, |s| {
            s["predicate"].as_object_mut().unwrap().remove("byline");
        }),
        ("empty byline", false, |s| {
            s["predicate"]["byline"] = json!("")
        }),
        ("unknown authorship class", false, |s| {
            s["predicate"]["authorship"] = json!("robot")
        }),
        ("source type that does not match the class", false, |s| {
            s["predicate"]["digitalSourceType"] =
                json!("http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation")
        }),
        ("time with an offset instead of Z", false, |s| {
            s["predicate"]["signedAt"] = json!("2026-11-28T17:00:00+00:00")
        }),
        ("upper-case digest", false, |s| {
            let d = s["predicate"]["digests"]["exact"]
                .as_str()
                .unwrap()
                .to_uppercase();
            s["predicate"]["digests"]["exact"] = json!(d);
        }),
        ("upper-case publisher domain", false, |s| {
            s["predicate"]["publisher"]["domain"] = json!("News.Example")
        }),
        ("another predicate type", false, |s| {
            s["predicateType"] = json!("https://slsa.dev/provenance/v1")
        }),
        ("two subjects", false, |s| {
            let first = s["subject"][0].clone();
            s["subject"].as_array_mut().unwrap().push(first);
        }),
    ];
    let mut ran = 0;
    for (what, want, edit) in cases {
        let mut st = base.clone();
        edit(&mut st);
        let schema_ok = v.is_valid(&st);
        let code = AuthorshipStatement::from_payload(&serde_json::to_vec(&st).unwrap());
        assert_eq!(schema_ok, want, "schema on {what}: {:#?}", errors(&v, &st));
        assert_eq!(code.is_ok(), want, "code on {what}: {code:?}");
        ran += 1;
    }
    assert_eq!(ran, 14);
}

#[test]
fn bundle_vector_statements_agree_with_the_code() {
    // Every signed statement among the published bundle vectors: the schema accepts exactly
    // those the code accepts, except a duplicate key, which JSON Schema cannot see (it works
    // on the parsed value; the schema's $comment says so).
    let v = validator();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/bundles");
    let mut dirs: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut judged = 0;
    for d in &dirs {
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        let Ok(bundle) = serde_json::from_slice::<Value>(&fs::read(d.join("bundle.json")).unwrap())
        else {
            continue; // truncated or not JSON
        };
        let Some(payload) = bundle["dsseEnvelope"]["payload"].as_str() else {
            continue;
        };
        let bytes = payload_bytes(&bundle);
        assert!(!payload.is_empty());
        let code_ok = AuthorshipStatement::from_payload(&bytes).is_ok();
        let instance: Value = serde_json::from_slice(&bytes).unwrap();
        let schema_ok = v.is_valid(&instance);
        if name == "duplicate_key_in_statement" {
            assert!(!code_ok && schema_ok, "{name}");
        } else {
            assert_eq!(schema_ok, code_ok, "{name}: {:#?}", errors(&v, &instance));
        }
        if name == "unknown_predicate_field" {
            assert!(!schema_ok, "{name}");
        }
        judged += 1;
    }
    // All but the two that are not JSON (malformed_bundle_truncated, malformed_bundle_not_json).
    assert_eq!(judged, dirs.len() - 2);
    assert!(judged >= 16);
}
