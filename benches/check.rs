//! `byline check` throughput: 10,000 generated articles (Markdown and HTML, 2–4 KB each, with
//! sidecars signed through the library), measured against the single-core rate of the same
//! work done by hand (read the article and its sidecar, `verify_article`) in the same run.
//!
//! A plain `fn main` (no criterion): each case runs over every file a few times and prints the
//! median. Run with
//!
//! ```text
//! cargo bench --bench check
//! ```
//!
//! Environment knobs (all optional):
//! - `BYLINE_BENCH_DIR`: where to put the generated tree (default: the system temp dir).
//! - `BYLINE_BENCH_QUICK=1`: 1,000 articles and one round, for checking that the bench runs.
//! - `BYLINE_BENCH_ARTICLES=N`: the number of small articles (default 10,000).
//!
//! The target (docs/BENCHMARKS.md): `check` with one job per core runs at close to
//! (cores × the single-core hash+verify rate), with memory flat in the number and size of files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use byline::cli::check::{check_all, find_articles, Status, DEFAULT_EXTENSIONS};
use byline::core::bundle::Bundle;
use byline::core::canonical::MediaType;
use byline::core::constants::DEFAULT_MAX_ARTICLE_BYTES;
use byline::core::keys::SigningKey;
use byline::core::manifest::{AiSystem, AuthorshipClass, Human, Publisher, Timestamp};
use byline::core::sign::{build_statement, prepare_article, sign_statement, Authorship};
use byline::core::trust::TrustStore;
use byline::core::verify::{verify_article, VerifyOptions};

const PUBLISHER: &str = "news.example";

/// Words the generated articles are made of (an invented coastal news beat).
const WORDS: &[&str] = &[
    "harbour",
    "council",
    "ferry",
    "storm",
    "repairs",
    "tuesday",
    "residents",
    "budget",
    "bridge",
    "river",
    "school",
    "library",
    "market",
    "fishermen",
    "quay",
    "tide",
    "weather",
    "road",
    "closed",
    "reopened",
    "approved",
    "rejected",
    "mayor",
    "spokesperson",
    "said",
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "on",
    "after",
    "before",
    "week",
    "month",
    "kilometres",
    "euros",
    "new",
    "old",
    "plans",
    "vote",
    "meeting",
    "traffic",
    "lighthouse",
    "volunteers",
    "festival",
];

/// A small deterministic generator (xorshift64*), so every run writes the same tree.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One paragraph of 20–60 words ending in a full stop.
fn paragraph(rng: &mut Rng, n: usize) -> String {
    let words = 20 + rng.below(40);
    let mut p = String::new();
    for w in 0..words {
        if w > 0 {
            p.push(' ');
        }
        p.push_str(WORDS[rng.below(WORDS.len())]);
        if rng.below(12) == 0 {
            p.push_str(&format!(" {}", n * 7 + w));
        }
    }
    p.push('.');
    p
}

/// Article `n`: its path inside the tree and its bytes, `body_bytes` of paragraphs (about).
fn article(n: usize, body_bytes: usize) -> (String, Vec<u8>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1).wrapping_mul(0x1000_0000_01b3));
    let target = body_bytes + rng.below(body_bytes.max(2));
    let mut paras = Vec::new();
    let mut len = 0;
    while len < target {
        let p = paragraph(&mut rng, n);
        len += p.len() + 8;
        paras.push(p);
    }
    let title = format!("Harbour report {n}");
    let html = n % 2 == 1;
    let ext = match n % 10 {
        3 => "htm",
        4 => "markdown",
        _ if html => "html",
        _ => "md",
    };
    let text = if ext.starts_with("htm") {
        let body: String = paras.iter().map(|p| format!("<p>{p}</p>\n")).collect();
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
             <script>var story = {n};</script></head>\n<body><nav><a href=\"/\">Home</a></nav>\n\
             <article>\n<h1>{title}</h1>\n{body}</article>\n<footer>&copy; 2026 News Example</footer>\n\
             </body></html>\n"
        )
    } else {
        format!(
            "---\nslug: story-{n}\n---\n# {title}\n\n{}\n",
            paras.join("\n\n")
        )
    };
    let rel = format!(
        "part-{:02}/desk-{}/{:02}/story-{n:05}.{ext}",
        n / 1000,
        n % 5,
        n % 12 + 1
    );
    (rel, text.into_bytes())
}

fn sidecar(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".byline.json");
    PathBuf::from(name)
}

/// Writes `count` articles under `root` with offline-signed sidecars; returns their paths.
fn generate(
    root: &Path,
    first: usize,
    count: usize,
    body_bytes: usize,
    key: &SigningKey,
) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::with_capacity(count);
    for n in first..first + count {
        let (rel, bytes) = article(n, body_bytes);
        let path = root.join(rel);
        fs::create_dir_all(path.parent().expect("a parent folder"))?;
        let media = MediaType::from_file_name(&path.to_string_lossy())
            .ok_or_else(|| anyhow!("media type"))?;
        let prepared = prepare_article(&bytes, media, DEFAULT_MAX_ARTICLE_BYTES)?;
        let authorship = Authorship {
            subject_name: format!("https://{PUBLISHER}/stories/{n}"),
            byline: "By AI".into(),
            authorship: if n % 4 == 0 {
                AuthorshipClass::AiAssisted
            } else {
                AuthorshipClass::AiGenerated
            },
            ai_systems: vec![AiSystem {
                name: "example-model".into(),
                version: Some("1".into()),
                provider: None,
            }],
            humans: vec![Human {
                name: "Ben Editor".into(),
                role: "editor".into(),
            }],
            publisher: Publisher {
                name: "News Example".into(),
                domain: PUBLISHER.into(),
            },
            title: None,
            language: Some("en".into()),
            published_at: None,
            segments: None,
            editorial_responsibility: None,
            supersedes: None,
        };
        let statement = build_statement(
            &authorship,
            prepared.digests,
            Some(prepared.paragraph_digests),
            Timestamp::now(),
        )?;
        let envelope = sign_statement(&statement, key)?;
        fs::write(&path, &bytes)?;
        fs::write(sidecar(&path), Bundle::offline(envelope).to_json_pretty())?;
        paths.push(path);
    }
    Ok(paths)
}

/// (a) The single-core rate of hash+verify: read the article and its sidecar, verify.
fn hash_and_verify(paths: &[PathBuf], trust: &TrustStore) -> Result<Duration> {
    let options = VerifyOptions::default();
    let now = Timestamp::now();
    let start = Instant::now();
    for path in paths {
        let bytes = fs::read(path)?;
        let media = MediaType::from_file_name(&path.to_string_lossy())
            .ok_or_else(|| anyhow!("media type"))?;
        let bundle = fs::read(sidecar(path))?;
        let verdict = verify_article(&bytes, media, &bundle, trust, &options, now);
        if !verdict.verified() {
            bail!("{} did not verify: {:?}", path.display(), verdict.failure);
        }
    }
    Ok(start.elapsed())
}

/// (b) `check_all` with `jobs` threads.
fn check_in_process(paths: &[PathBuf], trust: &TrustStore, jobs: usize) -> Result<Duration> {
    let start = Instant::now();
    let results = check_all(paths, trust, &VerifyOptions::default(), jobs, None);
    let elapsed = start.elapsed();
    if let Some(bad) = results.iter().find(|r| r.status != Status::Verified) {
        bail!("{} did not verify: {:?}", bad.path, bad.reason);
    }
    Ok(elapsed)
}

/// Peak resident memory of this process so far (VmHWM), in KiB.
fn own_peak_kib() -> Option<u64> {
    proc_status_kib("/proc/self/status", "VmHWM:")
}

fn proc_status_kib(file: &str, field: &str) -> Option<u64> {
    let text = fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// What one run of the real binary did.
struct BinaryRun {
    wall: Duration,
    peak_kib: Option<u64>,
    how: &'static str,
    articles: u64,
}

/// (c) `byline check DIR --format json --trust T EXTRA…`: wall time and peak RSS (from GNU
/// time when installed, else sampled from /proc every 2 ms).
fn run_binary(dir: &Path, trust: &Path, extra: &[&str]) -> Result<BinaryRun> {
    let out_path = dir.with_extension("report.json");
    let out = fs::File::create(&out_path)?;
    let gnu_time = Path::new("/usr/bin/time");
    let rss_path = dir.with_extension("rss");
    let mut cmd = if gnu_time.exists() {
        let mut c = Command::new(gnu_time);
        c.arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&rss_path)
            .arg(env!("CARGO_BIN_EXE_byline"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_byline"))
    };
    cmd.arg("check")
        .arg(dir)
        .args(["--format", "json", "--trust"])
        .arg(trust)
        .args(extra)
        .env("CI", "true")
        .stdout(out)
        .stderr(Stdio::inherit());
    let start = Instant::now();
    let mut child = cmd.spawn().context("run byline check")?;
    let mut sampled = 0u64;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if !gnu_time.exists() {
            if let Some(k) = proc_status_kib(&format!("/proc/{}/status", child.id()), "VmHWM:") {
                sampled = sampled.max(k);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let wall = start.elapsed();
    if status.code() != Some(0) {
        bail!("byline check exited {status}");
    }
    let report: serde_json::Value = serde_json::from_slice(&fs::read(&out_path)?)?;
    let articles = report["summary"]["verified"].as_u64().unwrap_or(0);
    let (peak_kib, how) = if gnu_time.exists() {
        (
            fs::read_to_string(&rss_path)
                .ok()
                .and_then(|t| t.trim().lines().last()?.trim().parse().ok()),
            "GNU time %M",
        )
    } else {
        (Some(sampled).filter(|k| *k > 0), "sampled VmHWM")
    };
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&rss_path);
    Ok(BinaryRun {
        wall,
        peak_kib,
        how,
        articles,
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rate(files: usize, d: Duration) -> f64 {
    files as f64 / d.as_secs_f64()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() -> Result<()> {
    let quick = std::env::var("BYLINE_BENCH_QUICK").is_ok_and(|v| v == "1");
    let count: usize = match std::env::var("BYLINE_BENCH_ARTICLES") {
        Ok(v) => v.parse().context("BYLINE_BENCH_ARTICLES")?,
        Err(_) if quick => 1_000,
        Err(_) => 10_000,
    };
    let rounds = if quick { 1 } else { 3 };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let base = std::env::var_os("BYLINE_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let tmp = tempfile::Builder::new()
        .prefix("byline-check-bench")
        .tempdir_in(&base)?;
    let root = tmp.path().join("content");
    let big_root = tmp.path().join("long-reads");

    println!("byline check benchmark");
    println!(
        "  machine: {cores} cores (available_parallelism), CPU {}",
        cpu_model()
    );
    println!("  load average at start: {}", loadavg());

    let key = SigningKey::generate();
    let mut trust = TrustStore::default();
    trust.add_publisher_key(
        PUBLISHER,
        Some("News Example"),
        &key.verifying_key(),
        false,
        "bench",
    )?;
    let trust_path = tmp.path().join("trust.toml");
    fs::write(&trust_path, trust.to_toml())?;

    let t = Instant::now();
    let paths = generate(&root, 0, count, 2_048, &key)?;
    let gen = t.elapsed();
    let bytes: u64 = paths
        .iter()
        .map(|p| fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    println!(
        "  generated and signed {count} articles ({:.1} MiB, mean {} bytes) in {:.2} s ({:.0} signed/s, one core)",
        bytes as f64 / (1 << 20) as f64,
        bytes / count as u64,
        gen.as_secs_f64(),
        rate(count, gen)
    );

    // The walk alone (what `check` does before verifying).
    let exts: Vec<String> = DEFAULT_EXTENSIONS.iter().map(|s| s.to_string()).collect();
    let t = Instant::now();
    let found = find_articles(std::slice::from_ref(&root), &exts, &[])?;
    let walk = t.elapsed();
    if found.len() != count {
        bail!("the walk found {} articles, not {count}", found.len());
    }
    println!(
        "  walk (find_articles): {:.3} s ({:.0} files/s)",
        walk.as_secs_f64(),
        rate(count, walk)
    );

    // Interleaved rounds, so a slow moment on a shared machine hits every case alike.
    let (mut a, mut b1, mut bn) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        a.push(hash_and_verify(&found, &trust)?);
        b1.push(check_in_process(&found, &trust, 1)?);
        bn.push(check_in_process(&found, &trust, cores)?);
        println!(
            "  round {}: hash+verify 1 core {:.0}/s, check_all jobs=1 {:.0}/s, jobs={cores} {:.0}/s",
            round + 1,
            rate(count, a[round]),
            rate(count, b1[round]),
            rate(count, bn[round])
        );
    }
    let (a, b1, bn) = (median(a), median(b1), median(bn));
    let (ra, rb1, rbn) = (rate(count, a), rate(count, b1), rate(count, bn));
    println!();
    println!("results over {count} articles (median of {rounds}):");
    println!("  (a) hash+verify, one core            {ra:>8.0} files/s");
    println!(
        "  (b) check_all, jobs=1                {rb1:>8.0} files/s   ({:.2} × a)",
        rb1 / ra
    );
    println!("  (b) check_all, jobs={cores:<2}               {rbn:>8.0} files/s   ({:.2} × a; target close to {cores})", rbn / ra);
    println!("      speed-up jobs={cores} over jobs=1: {:.2}", rbn / rb1);
    println!(
        "  bench process peak RSS (VmHWM, includes generation): {}",
        mib(own_peak_kib())
    );

    // (c) The real binary, including start-up, the walk, and the JSON report.
    let full = run_binary(&root, &trust_path, &[])?;
    let one = run_binary(&root, &trust_path, &["--jobs", "1"])?;
    let part = run_binary(&root.join("part-00"), &trust_path, &[])?;
    for (label, r) in [
        (
            format!("byline check ({count} articles, jobs={cores})"),
            &full,
        ),
        (format!("byline check ({count} articles, jobs=1)"), &one),
        (
            format!(
                "byline check (part-00: {} articles, jobs={cores})",
                part.articles
            ),
            &part,
        ),
    ] {
        println!(
            "  (c) {label:<44} {:>6.2} s  {:>8.0} files/s  peak RSS {} ({})",
            r.wall.as_secs_f64(),
            rate(r.articles as usize, r.wall),
            mib(r.peak_kib),
            r.how
        );
    }

    // Memory against article size: a few long reads of about 1 MiB each.
    let big_count = if quick { 8 } else { 48 };
    let big = generate(&big_root, 900_000, big_count, 1 << 20, &key)?;
    let big_bytes: u64 = big
        .iter()
        .map(|p| fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let big_run = run_binary(&big_root, &trust_path, &[])?;
    println!(
        "  (c) byline check ({} long reads, mean {:.2} MiB, jobs={cores}) {:>6.2} s  {:>6.1} MiB/s  peak RSS {} ({})",
        big_run.articles,
        big_bytes as f64 / big_count as f64 / (1 << 20) as f64,
        big_run.wall.as_secs_f64(),
        big_bytes as f64 / (1 << 20) as f64 / big_run.wall.as_secs_f64(),
        mib(big_run.peak_kib),
        big_run.how
    );
    println!("  load average at end: {}", loadavg());
    Ok(())
}
