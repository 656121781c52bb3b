//! Published bundle vectors: `tests/vectors/bundles/<case>/`, one directory per case, each
//! with the article as displayed (`article.md` or `article.html`), the bundle (`bundle.json`),
//! the verifier's trust store (`trust.toml`) and the expected verdict (`expect.toml`:
//! `verified`, `code` = `Failure::code()` when not verified, `binding` when verified, and a
//! `comment` saying what the case checks). See `tests/vectors/bundles/README.md`.
//!
//! The files are data: `bundle_vectors` only reads them, so another implementation can run
//! the same directories and a change in byline that breaks a published bundle fails here.
//! They were written once by [`generate_bundle_vectors`], which is `#[ignore]`d and must not be
//! run again unless a case is added on purpose:
//!
//! ```text
//! cargo test --test bundle_vectors -- --ignored generate_bundle_vectors
//! ```
//!
//! Signing is deterministic (Ed25519, fixed seeds, fixed times), so regenerating an unchanged
//! case gives the same bytes. Keys: RFC 8032 §7.1 TEST 1 (the trusted publisher key) and
//! TEST 2 (an untrusted key); verification time is fixed at [`NOW`].

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use byline::core::canonical::MediaType;
use byline::core::constants::DEFAULT_MAX_ARTICLE_BYTES;
use byline::core::trust::TrustStore;
use byline::core::verify::{verify_article, Binding, VerifyOptions};

/// The time every vector is verified at (trust windows lie far before or after it).
const NOW: &str = "2030-01-01T00:00:00Z";

/// Every case that must be present (the brief's list, plus the extra cases after it).
const CASES: [&str; 18] = [
    "valid_text_binding",
    "valid_exact_binding",
    "digest_mismatch",
    "signature_invalid",
    "key_not_trusted",
    "publisher_mismatch",
    "key_revoked",
    "key_expired",
    "require_log_offline",
    "malformed_bundle_truncated",
    "duplicate_key_in_bundle",
    "unknown_predicate_field",
    "no_signatures",
    "payload_type_changed",
    // Extra cases.
    "duplicate_key_in_statement",
    "payload_type_unsupported",
    "signature_malleated_s_plus_l",
    "malformed_bundle_not_json",
];

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    verified: bool,
    code: Option<String>,
    binding: Option<String>,
    comment: String,
}

fn bundles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/bundles")
}

struct Case {
    name: String,
    article_name: String,
    article: Vec<u8>,
    media: MediaType,
    bundle: Vec<u8>,
    trust_text: String,
    expect: Expect,
}

fn load_cases() -> Vec<Case> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(bundles_dir())
        .expect("tests/vectors/bundles exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().to_string();
            let articles: Vec<PathBuf> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.file_stem().is_some_and(|s| s == "article"))
                .collect();
            assert_eq!(articles.len(), 1, "{name}: one article file");
            let article_name = articles[0]
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            let media = MediaType::from_file_name(&article_name)
                .unwrap_or_else(|| panic!("{name}: media type of {article_name}"));
            let expect: Expect =
                toml::from_str(&fs::read_to_string(dir.join("expect.toml")).unwrap())
                    .unwrap_or_else(|e| panic!("{name}/expect.toml: {e}"));
            Case {
                article: fs::read(&articles[0]).unwrap(),
                article_name,
                media,
                bundle: fs::read(dir.join("bundle.json")).unwrap(),
                trust_text: fs::read_to_string(dir.join("trust.toml")).unwrap(),
                expect,
                name,
            }
        })
        .collect()
}

#[test]
fn bundle_vectors() {
    let cases = load_cases();
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        CASES.into_iter().collect(),
        "the published set of cases"
    );
    let now = NOW.parse().unwrap();
    let mut verified = 0;
    for case in &cases {
        let name = &case.name;
        let e = &case.expect;
        assert!(!e.comment.trim().is_empty(), "{name}: comment");
        assert_eq!(
            e.code.is_some(),
            !e.verified,
            "{name}: code iff not verified"
        );
        assert_eq!(
            e.binding.is_some(),
            e.verified,
            "{name}: binding iff verified"
        );
        let trust = TrustStore::from_toml(&case.trust_text)
            .unwrap_or_else(|err| panic!("{name}/trust.toml: {err}"));
        let verdict = verify_article(
            &case.article,
            case.media,
            &case.bundle,
            &trust,
            &VerifyOptions::default(),
            now,
        );
        let code = verdict.failure.as_ref().map(|f| f.code());
        assert_eq!(
            (verdict.verified(), code),
            (e.verified, e.code.as_deref()),
            "{name}: {}\n  failure: {:?}",
            e.comment,
            verdict.failure.as_ref().map(ToString::to_string)
        );
        if e.verified {
            let binding = match verdict.binding {
                Some(Binding::Exact) => "exact",
                Some(Binding::Text) => "text",
                None => "none",
            };
            assert_eq!(Some(binding), e.binding.as_deref(), "{name}: binding");
            let statement = verdict.statement.as_ref().unwrap();
            assert_eq!(statement.predicate.byline, "By AI", "{name}");
            verified += 1;
        }
    }
    assert_eq!(cases.len(), CASES.len());
    assert_eq!(verified, 2);
}

#[test]
fn bundle_vectors_through_the_cli() {
    // The same verdicts from the binary (which judges at the present time: the trust windows
    // of the vectors run from 2000 to 2100, so the present gives the same answers as NOW).
    let cases = load_cases();
    let mut ran = 0;
    for case in &cases {
        let s = common::Scratch::new();
        s.write(&case.article_name, &case.article);
        s.write("bundle.json", &case.bundle);
        s.write("trust.toml", &case.trust_text);
        let run = s.byline(&[
            "verify",
            &case.article_name,
            "--bundle",
            "bundle.json",
            "--trust",
            "trust.toml",
            "--json",
        ]);
        let e = &case.expect;
        run.expect_code(if e.verified { 0 } else { 1 });
        let v: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|err| panic!("{}: {err}: {}", case.name, run.stdout));
        assert_eq!(v["verified"], e.verified, "{}", case.name);
        match &e.code {
            Some(code) => assert_eq!(v["failure"]["code"], code.as_str(), "{}", case.name),
            None => assert_eq!(v["binding"], e.binding.as_deref().unwrap(), "{}", case.name),
        }
        ran += 1;
    }
    assert_eq!(ran, CASES.len());
}

// ---------------------------------------------------------------------------------------------
// The generator (run once; kept so that the cases can be read as code and extended)
// ---------------------------------------------------------------------------------------------

mod generate {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use byline::core::bundle::Bundle;
    use byline::core::dsse::{sign_envelope, Envelope};
    use byline::core::keys::{keyid, public_key_to_base64, SigningKey};
    use byline::core::manifest::{AiSystem, AuthorshipClass, Human, Publisher, Timestamp};
    use byline::core::sign::{build_statement, prepare_article, sign_statement, Authorship};

    /// RFC 8032 §7.1 TEST 1 secret key: the trusted publisher key.
    const TEST1_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    /// RFC 8032 §7.1 TEST 2 secret key: a key no vector trusts.
    const TEST2_SEED: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
    /// The time every vector claims to have been signed at.
    const SIGNED_AT: &str = "2026-03-02T08:30:00Z";
    const IN_TOTO: &str = "application/vnd.in-toto+json";

    /// The Ed25519 group order L, little-endian.
    const GROUP_ORDER_LE: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x10,
    ];

    /// An invented article (Ashvale and its library are made up), as its Markdown source.
    const ARTICLE_MD: &str = "\
# Ashvale library reopens after flood repairs

The public library on Mill Street reopened on Monday, eight months after floodwater
reached its ground floor.

Repairs cost 1.2 million euros, the town council said. About 14,000 books were lost;
donations have replaced roughly half of them.

The children's reading room will open in April.
";

    /// The same article as the site renders it: chrome around one `<article>`, CRLF line ends.
    fn article_html() -> String {
        [
            "<!DOCTYPE html>",
            "<html lang=\"en\">",
            "<head><meta charset=\"utf-8\"><title>Library reopens | Ashvale Post</title>",
            "<script>var pageId = 4471;</script></head>",
            "<body>",
            "<nav><a href=\"/\">Ashvale Post</a> <a href=\"/town\">Town</a></nav>",
            "<p class=\"byline\" data-byline>By AI</p>",
            "<article>",
            "<h1>Ashvale library reopens after flood&nbsp;repairs</h1>",
            "<p>The public library on Mill Street reopened on Monday, eight months after floodwater reached its ground floor.</p>",
            "<p>Repairs cost 1.2&nbsp;million euros, the town council said. About 14,000 books were lost; donations have replaced roughly half of them.</p>",
            "<p>The children&#39;s reading room will open in April.</p>",
            "</article>",
            "<footer>&copy; 2026 Ashvale Post</footer>",
            "</body>",
            "</html>",
            "",
        ]
        .join("\r\n")
    }

    fn key(seed_hex: &str) -> SigningKey {
        SigningKey::danger_from_seed(&hex::decode(seed_hex).unwrap().try_into().unwrap())
    }

    /// A trust store for news.example trusting TEST 1, with `extra` lines in its entry.
    fn trust_toml(window: &str, extra: &str) -> String {
        let vk = key(TEST1_SEED).verifying_key();
        format!(
            "# Trust store of the verifier for this vector (docs/trust.md).\n\n\
             [[publisher_key]]\n\
             publisher = \"news.example\"\n\
             name = \"News Example\"\n\
             public_key = \"{}\"\n\
             keyid = \"{}\"\n\
             {window}\
             {extra}\
             source = \"byline test vectors: RFC 8032 section 7.1 TEST 1 key\"\n",
            public_key_to_base64(&vk),
            keyid(&vk),
        )
    }

    const WIDE_WINDOW: &str =
        "not_before = \"2000-01-01T00:00:00Z\"\nnot_after = \"2100-01-01T00:00:00Z\"\n";

    fn authorship(domain: &str) -> Authorship {
        Authorship {
            subject_name: "https://news.example/2026/03/ashvale-library-reopens".into(),
            byline: "By AI".into(),
            authorship: AuthorshipClass::AiGenerated,
            ai_systems: vec![AiSystem {
                name: "example-model".into(),
                version: Some("2026-01".into()),
                provider: None,
            }],
            humans: vec![Human {
                name: "Dana Whitlock".into(),
                role: "editor".into(),
            }],
            publisher: Publisher {
                name: "News Example".into(),
                domain: domain.into(),
            },
            title: Some("Ashvale library reopens after flood repairs".into()),
            language: Some("en".into()),
            published_at: None,
            segments: None,
            editorial_responsibility: None,
            supersedes: None,
        }
    }

    /// The statement's payload bytes for the Markdown article.
    fn payload(domain: &str) -> Vec<u8> {
        let prepared = prepare_article(
            ARTICLE_MD.as_bytes(),
            MediaType::Markdown,
            DEFAULT_MAX_ARTICLE_BYTES,
        )
        .unwrap();
        let signed_at: Timestamp = SIGNED_AT.parse().unwrap();
        build_statement(
            &authorship(domain),
            prepared.digests,
            Some(prepared.paragraph_digests),
            signed_at,
        )
        .unwrap()
        .to_payload()
        .unwrap()
    }

    fn envelope_with(seed: &str, domain: &str) -> Envelope {
        let prepared = prepare_article(
            ARTICLE_MD.as_bytes(),
            MediaType::Markdown,
            DEFAULT_MAX_ARTICLE_BYTES,
        )
        .unwrap();
        let st = build_statement(
            &authorship(domain),
            prepared.digests,
            Some(prepared.paragraph_digests),
            SIGNED_AT.parse().unwrap(),
        )
        .unwrap();
        sign_statement(&st, &key(seed)).unwrap()
    }

    fn good_envelope() -> Envelope {
        envelope_with(TEST1_SEED, "news.example")
    }

    fn bundle_json(envelope: Envelope) -> String {
        Bundle::offline(envelope).to_json_pretty()
    }

    /// `doc` with `insert` spliced in right after the first occurrence of `after`.
    fn splice(doc: &str, after: &str, insert: &str) -> String {
        let at = doc.find(after).unwrap() + after.len();
        format!("{}{insert}{}", &doc[..at], &doc[at..])
    }

    struct Out<'a> {
        name: &'a str,
        article: (&'a str, String),
        bundle: String,
        trust: String,
        expect: String,
    }

    fn expect_fail(code: &str, comment: &str) -> String {
        format!("verified = false\ncode = \"{code}\"\ncomment = \"{comment}\"\n")
    }

    fn expect_ok(binding: &str, comment: &str) -> String {
        format!("verified = true\nbinding = \"{binding}\"\ncomment = \"{comment}\"\n")
    }

    fn write(out: &Out) {
        let dir = bundles_dir().join(out.name);
        if dir.exists() {
            fs::remove_dir_all(&dir).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(out.article.0), &out.article.1).unwrap();
        fs::write(dir.join("bundle.json"), &out.bundle).unwrap();
        fs::write(dir.join("trust.toml"), &out.trust).unwrap();
        fs::write(dir.join("expect.toml"), &out.expect).unwrap();
    }

    const README: &str = r#"# Bundle vectors

Published test vectors for byline bundles (`application/vnd.byline.bundle.v1+json`): an article,
its bundle, a verifier's trust store, and the verdict byline must reach. Written for this
project (the articles are invented; Ashvale is a made-up town); licence: the project's own
(Apache-2.0). Run by `tests/bundle_vectors.rs` (through the library and through the CLI).

## Layout

One directory per case, named after what it checks:

    <case>/
      article.md | article.html   the article as displayed (exact bytes)
      bundle.json                 the bundle to verify it with
      trust.toml                  the verifier's trust store (docs/trust.md)
      expect.toml                 the expected verdict

`expect.toml` keys:

| key        | meaning |
|------------|---------|
| `verified` | `true` or `false` |
| `code`     | (not verified) the failure's stable code, as `byline verify --json` gives it in `failure.code` |
| `binding`  | (verified) the binding that matched: `exact` or `text` |
| `comment`  | what the case checks |

## Keys and times

- Publisher key: RFC 8032 §7.1 TEST 1 (secret `9d61b19d…7f60`, public `d75a9801…511a`),
  trusted for `news.example`. `key_not_trusted` is signed with RFC 8032 TEST 2.
- Every statement claims `signedAt` 2026-03-02T08:30:00Z. Every bundle is offline (no log
  entry), so trust is judged at the verification time. The tests verify at
  2030-01-01T00:00:00Z (library) and at the present time (CLI); trust windows run from
  2000-01-01 to 2100-01-01, except where a case narrows one (ending in 2001), so both agree.
- Signing is deterministic: the bundles were generated once by the ignored test
  `generate_bundle_vectors` in `tests/bundle_vectors.rs` and are kept as data.
"#;

    pub fn all() -> usize {
        let md = || ("article.md", ARTICLE_MD.to_string());
        let trust = || trust_toml(WIDE_WINDOW, "");
        let good = bundle_json(good_envelope());
        let envelope_json = |mut f: Box<dyn FnMut(&mut serde_json::Value)>| {
            let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
            f(&mut v);
            serde_json::to_string_pretty(&v).unwrap() + "\n"
        };
        let signed_payload = |payload: &[u8], payload_type: &str| {
            bundle_json(sign_envelope(payload_type, payload, &key(TEST1_SEED)))
        };
        let statement = String::from_utf8(payload("news.example")).unwrap();

        let outs = vec![
            Out {
                name: "valid_text_binding",
                article: ("article.html", article_html()),
                bundle: good.clone(),
                trust: trust(),
                expect: expect_ok(
                    "text",
                    "the bundle was signed over the Markdown source; the published HTML page (site chrome, CRLF, &nbsp;, &#39;) has the same canonical text, so the text binding matches and the exact one does not",
                ),
            },
            Out {
                name: "valid_exact_binding",
                article: md(),
                bundle: good.clone(),
                trust: trust(),
                expect: expect_ok("exact", "the article is byte for byte the one signed"),
            },
            Out {
                name: "digest_mismatch",
                article: ("article.md", ARTICLE_MD.replacen("1.2 million", "2.1 million", 1)),
                bundle: good.clone(),
                trust: trust(),
                expect: expect_fail(
                    "digest-mismatch",
                    "one number of the article changed after signing (1.2 million became 2.1 million); neither binding matches",
                ),
            },
            Out {
                name: "signature_invalid",
                article: md(),
                bundle: envelope_json(Box::new(|v| {
                    let env = &mut v["dsseEnvelope"];
                    let body = STANDARD.decode(env["payload"].as_str().unwrap()).unwrap();
                    let body = String::from_utf8(body)
                        .unwrap()
                        .replacen("\"byline\":\"By AI\"", "\"byline\":\"By Dana Whitlock\"", 1)
                        .replacen("\"authorship\":\"ai-generated\"", "\"authorship\":\"human\"", 1)
                        .replacen("trainedAlgorithmicMedia", "digitalCreation", 1);
                    env["payload"] = STANDARD.encode(body).into();
                })),
                trust: trust(),
                expect: expect_fail(
                    "signature-invalid",
                    "the byline inside the signed payload was rewritten (By AI to a person, ai-generated to human) without re-signing",
                ),
            },
            Out {
                name: "key_not_trusted",
                article: md(),
                bundle: bundle_json(envelope_with(TEST2_SEED, "news.example")),
                trust: trust(),
                expect: expect_fail(
                    "key-not-trusted",
                    "a valid signature by RFC 8032 TEST 2, a key the trust store does not hold (its keyid names it honestly)",
                ),
            },
            Out {
                name: "publisher_mismatch",
                article: md(),
                bundle: bundle_json(envelope_with(TEST1_SEED, "other.example")),
                trust: trust(),
                expect: expect_fail(
                    "publisher-mismatch",
                    "signed by the key trusted for news.example, but the statement names other.example as publisher",
                ),
            },
            Out {
                name: "key_revoked",
                article: md(),
                bundle: good.clone(),
                trust: trust_toml(WIDE_WINDOW, "revoked_since = \"2001-01-01T00:00:00Z\"\n"),
                expect: expect_fail(
                    "key-not-valid",
                    "the key is revoked (revoked_since 2001) and the bundle is offline: with no log time to prove the signature came first, it fails",
                ),
            },
            Out {
                name: "key_expired",
                article: md(),
                bundle: good.clone(),
                trust: trust_toml(
                    "not_before = \"2000-01-01T00:00:00Z\"\nnot_after = \"2001-01-01T00:00:00Z\"\n",
                    "",
                ),
                expect: expect_fail(
                    "key-not-valid",
                    "the key's validity window closed in 2001; an offline bundle is judged at the present time, past it",
                ),
            },
            Out {
                name: "require_log_offline",
                article: md(),
                bundle: good.clone(),
                trust: trust_toml(WIDE_WINDOW, "require_log = true\n"),
                expect: expect_fail(
                    "key-not-valid",
                    "the trust entry says require_log and the bundle has no log entry",
                ),
            },
            Out {
                name: "malformed_bundle_truncated",
                article: md(),
                bundle: good[..good.len() / 2].to_string(),
                trust: trust(),
                expect: expect_fail("malformed-bundle", "the bundle file is cut off halfway"),
            },
            Out {
                name: "malformed_bundle_not_json",
                article: md(),
                bundle: "mediaType: application/vnd.byline.bundle.v1+json\ndsseEnvelope: ~\n"
                    .to_string(),
                trust: trust(),
                expect: expect_fail("malformed-bundle", "the bundle is YAML-like text, not JSON"),
            },
            Out {
                name: "duplicate_key_in_bundle",
                article: md(),
                bundle: splice(
                    &good,
                    "\"dsseEnvelope\": {",
                    "\n    \"payloadType\": \"application/json\",",
                ),
                trust: trust(),
                expect: expect_fail(
                    "malformed-bundle",
                    "the envelope has payloadType twice; a first-key and a last-key parser would disagree",
                ),
            },
            Out {
                name: "unknown_predicate_field",
                article: md(),
                bundle: signed_payload(
                    splice(&statement, "\"predicate\":{", "\"factChecked\":true,").as_bytes(),
                    IN_TOTO,
                ),
                trust: trust(),
                expect: expect_fail(
                    "malformed-statement",
                    "correctly signed, but the predicate has a field the authorship/v1 predicate does not define (factChecked)",
                ),
            },
            Out {
                name: "duplicate_key_in_statement",
                article: md(),
                bundle: signed_payload(
                    splice(&statement, "\"predicate\":{", "\"byline\":\"By Dana Whitlock\",")
                        .as_bytes(),
                    IN_TOTO,
                ),
                trust: trust(),
                expect: expect_fail(
                    "malformed-statement",
                    "correctly signed, but the predicate has byline twice (By Dana Whitlock, then By AI)",
                ),
            },
            Out {
                name: "no_signatures",
                article: md(),
                bundle: envelope_json(Box::new(|v| {
                    v["dsseEnvelope"]["signatures"] = serde_json::json!([]);
                })),
                trust: trust(),
                expect: expect_fail(
                    "no-signatures",
                    "the envelope's signature list is empty: nothing vouches for it",
                ),
            },
            Out {
                name: "payload_type_changed",
                article: md(),
                bundle: envelope_json(Box::new(|v| {
                    v["dsseEnvelope"]["payloadType"] = "application/json".into();
                })),
                trust: trust(),
                expect: expect_fail(
                    "signature-invalid",
                    "payloadType changed after signing; it is covered by the signature through PAE",
                ),
            },
            Out {
                name: "payload_type_unsupported",
                article: md(),
                bundle: signed_payload(statement.as_bytes(), "application/json"),
                trust: trust(),
                expect: expect_fail(
                    "unsupported-payload-type",
                    "the statement correctly signed under payloadType application/json: the signature verifies, the type is refused",
                ),
            },
            Out {
                name: "signature_malleated_s_plus_l",
                article: md(),
                bundle: envelope_json(Box::new(|v| {
                    let sig = &mut v["dsseEnvelope"]["signatures"][0]["sig"];
                    let mut bytes = STANDARD.decode(sig.as_str().unwrap()).unwrap();
                    let mut carry = 0u16;
                    for (b, l) in bytes[32..].iter_mut().zip(GROUP_ORDER_LE) {
                        let x = u16::from(*b) + u16::from(l) + carry;
                        *b = x as u8;
                        carry = x >> 8;
                    }
                    assert_eq!(carry, 0);
                    *sig = STANDARD.encode(bytes).into();
                })),
                trust: trust(),
                expect: expect_fail(
                    "signature-invalid",
                    "the signature's S replaced by S + L (R kept): it satisfies the verification equation, but S is not canonical",
                ),
            },
        ];
        fs::create_dir_all(bundles_dir()).unwrap();
        fs::write(bundles_dir().join("README.md"), README).unwrap();
        for out in &outs {
            write(out);
        }
        outs.len()
    }
}

#[test]
#[ignore = "writes tests/vectors/bundles/; run only to add a case on purpose"]
fn generate_bundle_vectors() {
    assert_eq!(generate::all(), CASES.len());
}
