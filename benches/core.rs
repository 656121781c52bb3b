//! Criterion benchmarks of the library core, no I/O: canonicalization (MB/s for plain text,
//! Markdown and HTML), Ed25519 signing and strict verification, signing a manifest end to end
//! (digests, statement, DSSE), the JCS log leaf, and Merkle inclusion proofs (built from stored
//! nodes as the server does, and verified). `cargo bench --bench core`; results and how to read
//! them are in docs/BENCHMARKS.md.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use byline::core::canonical::{canonicalize, MediaType};
use byline::core::constants::PAYLOAD_TYPE_IN_TOTO;
use byline::core::dsse::sign_envelope;
use byline::core::keys::SigningKey;
use byline::core::logproof::leaf_bytes;
use byline::core::manifest::{AiSystem, AuthorshipClass, Human, Publisher, Timestamp};
use byline::core::merkle::{
    inclusion_proof_plan, leaf_hash, verify_inclusion, CompactRange, Hash, NodeId,
};
use byline::core::sign::{build_statement, prepare_article, Authorship};
use ed25519_dalek::Signer;

/// An invented article of about `paragraphs` paragraphs (~120 bytes each), in three formats.
fn article(paragraphs: usize) -> (String, String, String) {
    let sentence = |n: usize| {
        format!(
            "The Ashby council voted {n} to 3 on Tuesday to rebuild the footbridge over the \
             Mill Lane stream before the spring floods."
        )
    };
    let plain: Vec<String> = (0..paragraphs).map(sentence).collect();
    let markdown = format!(
        "# Footbridge to be rebuilt\n\n{}\n",
        plain
            .iter()
            .enumerate()
            .map(|(i, p)| if i % 5 == 4 {
                format!("- **{p}**")
            } else {
                p.clone()
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    let html = format!(
        "<!doctype html><html><head><title>Footbridge</title><script>var x = 1;</script></head>\
         <body><nav><a href=\"/\">Home</a></nav><article><h1>Footbridge to be rebuilt</h1>\
         <p class=\"byline\" data-byline>By AI</p>{}</article><footer>Contact</footer></body></html>",
        plain
            .iter()
            .map(|p| format!("<p>{p} <a href=\"/more\">More</a>.</p>"))
            .collect::<String>()
    );
    (plain.join("\n\n"), markdown, html)
}

fn authorship() -> Authorship {
    Authorship {
        subject_name: "https://ashby.example/2026/11/footbridge".into(),
        byline: "By AI".into(),
        authorship: AuthorshipClass::AiGenerated,
        ai_systems: vec![AiSystem {
            name: "example-model".into(),
            version: Some("2026-10".into()),
            provider: Some("Example AI".into()),
        }],
        humans: vec![Human {
            name: "Priya Shah".into(),
            role: "editor".into(),
        }],
        publisher: Publisher {
            name: "Ashby Gazette".into(),
            domain: "ashby.example".into(),
        },
        title: Some("Footbridge to be rebuilt".into()),
        language: Some("en".into()),
        published_at: None,
        segments: None,
        editorial_responsibility: None,
        supersedes: None,
    }
}

fn canonicalization(c: &mut Criterion) {
    let (plain, markdown, html) = article(160); // ~20 KB
    let mut group = c.benchmark_group("canonicalize");
    for (name, text, media) in [
        ("plain", &plain, MediaType::Plain),
        ("markdown", &markdown, MediaType::Markdown),
        ("html", &html, MediaType::Html),
    ] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| canonicalize(black_box(text.as_bytes()), media).unwrap())
        });
    }
    group.finish();
}

fn ed25519(c: &mut Criterion) {
    // A fixed test key, used directly through ed25519-dalek (what byline's keys wrap).
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let message = vec![0x5au8; 1600]; // about a statement's payload
    let signature = key.sign(&message);
    let public = key.verifying_key();
    let mut group = c.benchmark_group("ed25519");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign_1600B", |b| b.iter(|| key.sign(black_box(&message))));
    group.bench_function("verify_strict_1600B", |b| {
        b.iter(|| {
            public
                .verify_strict(black_box(&message), &signature)
                .unwrap()
        })
    });
    group.finish();
}

fn sign_manifest(c: &mut Criterion) {
    let key = SigningKey::generate();
    let (_, markdown, _) = article(12); // a short news item, ~1.5 KB
    let a = authorship();
    let now = Timestamp::now();
    let mut group = c.benchmark_group("sign_manifest");
    group.throughput(Throughput::Elements(1));
    // What the server does in digest mode: the statement from digests, then DSSE.
    let digests = prepare_article(markdown.as_bytes(), MediaType::Markdown, 1 << 22)
        .unwrap()
        .digests;
    group.bench_function("digest_mode", |b| {
        b.iter(|| {
            let s = build_statement(&a, black_box(digests), None, now).unwrap();
            let payload = s.to_payload().unwrap();
            sign_envelope(PAYLOAD_TYPE_IN_TOTO, &payload, &key)
        })
    });
    // Content mode: canonicalize and hash the article first, with paragraph digests.
    group.bench_function("content_mode_markdown_1_5KB", |b| {
        b.iter(|| {
            let p = prepare_article(black_box(markdown.as_bytes()), MediaType::Markdown, 1 << 22)
                .unwrap();
            let s = build_statement(&a, p.digests, Some(p.paragraph_digests), now).unwrap();
            let payload = s.to_payload().unwrap();
            sign_envelope(PAYLOAD_TYPE_IN_TOTO, &payload, &key)
        })
    });
    group.finish();
}

fn jcs_leaf(c: &mut Criterion) {
    let key = SigningKey::generate();
    let (_, markdown, _) = article(12);
    let p = prepare_article(markdown.as_bytes(), MediaType::Markdown, 1 << 22).unwrap();
    let s = build_statement(
        &authorship(),
        p.digests,
        Some(p.paragraph_digests),
        Timestamp::now(),
    )
    .unwrap();
    let envelope = sign_envelope(PAYLOAD_TYPE_IN_TOTO, &s.to_payload().unwrap(), &key);
    let time = Timestamp::now().to_string();
    let leaf = leaf_bytes(&envelope, &time);
    let mut group = c.benchmark_group("log_leaf");
    group.throughput(Throughput::Elements(1));
    group.bench_function("jcs_leaf_bytes", |b| {
        b.iter(|| leaf_bytes(black_box(&envelope), &time))
    });
    group.bench_function("leaf_hash", |b| b.iter(|| leaf_hash(black_box(&leaf))));
    group.finish();
}

fn merkle_proofs(c: &mut Criterion) {
    // A 1,000,000-leaf tree's stored nodes, in memory (the server reads them from its store).
    const SIZE: u64 = 1_000_000;
    let mut range = CompactRange::new();
    let mut nodes: HashMap<NodeId, Hash> = HashMap::with_capacity(2 * SIZE as usize);
    for i in 0..SIZE {
        let h = leaf_hash(&i.to_be_bytes());
        nodes.insert(NodeId::new(0, i), h);
        nodes.extend(range.append(h));
    }
    let root = range.root();
    let mut group = c.benchmark_group("merkle_1M_leaves");
    group.throughput(Throughput::Elements(1));
    let mut next = 0u64;
    group.bench_function("inclusion_proof_build", |b| {
        b.iter_batched(
            || {
                next = (next + 7_919) % SIZE;
                next
            },
            |index| {
                let plan = inclusion_proof_plan(index, SIZE).unwrap();
                let hashes: Vec<Hash> = plan.ids().iter().map(|id| nodes[id]).collect();
                plan.assemble(&hashes).unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    let index = 765_432u64;
    let plan = inclusion_proof_plan(index, SIZE).unwrap();
    let proof = plan
        .assemble(&plan.ids().iter().map(|id| nodes[id]).collect::<Vec<_>>())
        .unwrap();
    let leaf = leaf_hash(&index.to_be_bytes());
    group.bench_function("inclusion_proof_verify", |b| {
        b.iter(|| verify_inclusion(index, SIZE, black_box(&leaf), &proof, &root).unwrap())
    });
    group.finish();
}

criterion_group!(
    benches,
    canonicalization,
    ed25519,
    sign_manifest,
    jcs_leaf,
    merkle_proofs
);
criterion_main!(benches);
