//! `byline check`: verify every article of a content tree, in parallel, for publishers' CI.
//!
//! Articles are found by extension (respecting `.gitignore`, following no symlinks), each is
//! verified with exactly the code of `byline verify`, and the results are reported as text,
//! JSON, JUnit XML or GitHub workflow annotations. The exit status is 0 only when every
//! article passes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::core::manifest::{AuthorshipClass, Timestamp};
use crate::core::trust::TrustStore;
use crate::core::verify::{verify_article, Binding, VerifyOptions};

use super::files::{find_bundle, load_trust, media_type_for, read_article, MalformedEmbedded};
use super::{EXIT_NOT_VERIFIED, EXIT_OK};

/// The extensions `check` treats as articles unless told otherwise.
pub const DEFAULT_EXTENSIONS: &[&str] = &["md", "markdown", "html", "htm", "txt"];

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A line per problem and a summary table.
    Text,
    /// One JSON document with a result per file.
    Json,
    /// JUnit XML, one test case per article.
    Junit,
    /// GitHub Actions workflow annotations.
    Github,
}

/// `byline check` arguments.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Directories (or files) to check.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The trust store (default: byline.toml's `trust`, else keys/trust.toml).
    #[arg(long)]
    trust: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Articles verified at once (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Demand the exact binding (the text binding alone is not enough).
    #[arg(long, value_parser = ["exact", "text"])]
    require_binding: Option<String>,
    /// Fail bundles without a transparency-log proof.
    #[arg(long)]
    require_logged: bool,
    /// Only this publisher's keys count.
    #[arg(long)]
    publisher: Option<String>,
    /// Fail signatures older than this (by the log's integratedTime): e.g. 365d, 12h.
    #[arg(long)]
    max_age: Option<String>,
    /// Skip files matching this glob (repeatable), e.g. 'drafts/**'.
    #[arg(long = "ignore")]
    ignore: Vec<String>,
    /// Article extensions, comma-separated (default: md,markdown,html,htm,txt).
    #[arg(long, value_delimiter = ',')]
    extensions: Vec<String>,
}

/// `byline.toml` in the checked tree: the same settings, so CI needs no flags.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    check: CheckConfig,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckConfig {
    trust: Option<PathBuf>,
    format: Option<Format>,
    jobs: Option<usize>,
    require_binding: Option<String>,
    require_logged: Option<bool>,
    publisher: Option<String>,
    max_age: Option<String>,
    #[serde(default)]
    ignore: Vec<String>,
    extensions: Option<Vec<String>>,
}

/// What happened to one article.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Verified.
    Verified,
    /// A manifest is there but does not verify.
    Failed,
    /// No manifest at all.
    Unsigned,
    /// The article could not be read.
    Error,
}

/// The result for one article.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileResult {
    /// The article's path as found.
    pub path: String,
    /// The outcome.
    pub status: Status,
    /// The failure code (`digest-mismatch`, `unsigned`, …), when not verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Why it did not verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The signed authorship class, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorship: Option<AuthorshipClass>,
    /// The signed byline, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byline: Option<String>,
    /// Which binding matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<Binding>,
}

impl FileResult {
    fn passed(&self) -> bool {
        self.status == Status::Verified
    }
}

/// Finds the articles under `roots` (files given directly are taken as they are).
pub fn find_articles(
    roots: &[PathBuf],
    extensions: &[String],
    ignore: &[String],
) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for root in roots {
        let meta = std::fs::symlink_metadata(root)
            .with_context(|| format!("cannot read {}", root.display()))?;
        if meta.is_file() {
            out.push(root.clone());
            continue;
        }
        let mut overrides = ignore::overrides::OverrideBuilder::new(root);
        for glob in ignore {
            overrides
                .add(&format!("!{glob}"))
                .with_context(|| format!("bad --ignore glob {glob:?}"))?;
        }
        let overrides = overrides.build().context("bad --ignore globs")?;
        let walker = ignore::WalkBuilder::new(root)
            .follow_links(false)
            .git_ignore(true)
            .git_exclude(true)
            .require_git(false)
            .overrides(overrides)
            .build();
        for entry in walker {
            let entry = entry.with_context(|| format!("cannot walk {}", root.display()))?;
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let path = entry.into_path();
            let ext = path
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            if extensions.contains(&ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Verifies one article with the same code as `byline verify`.
pub fn check_one(
    path: &Path,
    trust: &TrustStore,
    options: &VerifyOptions,
    now: Timestamp,
) -> FileResult {
    let name = path.display().to_string();
    let error = |reason: String| FileResult {
        path: name.clone(),
        status: Status::Error,
        code: Some("io-error".into()),
        reason: Some(reason),
        authorship: None,
        byline: None,
        binding: None,
    };
    let bytes = match read_article(path) {
        Ok(b) => b,
        Err(e) => return error(format!("{e:#}")),
    };
    let media = match media_type_for(path, None) {
        Ok(m) => m,
        Err(e) => return error(format!("{e:#}")),
    };
    let bundle = match find_bundle(path, &bytes, media, None) {
        Ok(Some((b, _))) => b,
        Ok(None) => {
            return FileResult {
                path: name,
                status: Status::Unsigned,
                code: Some("unsigned".into()),
                reason: Some("unsigned: no embedded bundle and no sidecar".into()),
                authorship: None,
                byline: None,
                binding: None,
            }
        }
        Err(e) => match e.downcast::<MalformedEmbedded>() {
            Ok(m) => {
                return FileResult {
                    path: name,
                    status: Status::Failed,
                    code: Some("malformed-bundle".into()),
                    reason: Some(m.to_string()),
                    authorship: None,
                    byline: None,
                    binding: None,
                }
            }
            Err(e) => return error(format!("{e:#}")),
        },
    };
    let verdict = verify_article(&bytes, media, &bundle, trust, options, now);
    FileResult {
        path: name,
        status: if verdict.verified() {
            Status::Verified
        } else {
            Status::Failed
        },
        code: verdict.failure.as_ref().map(|f| f.code().to_string()),
        reason: verdict.failure.as_ref().map(|f| f.to_string()),
        authorship: verdict.authorship(),
        byline: verdict
            .statement
            .as_ref()
            .map(|s| s.predicate.byline.clone()),
        binding: verdict.binding,
    }
}

/// Verifies every article on `jobs` threads; results come back in the articles' order.
pub fn check_all(
    articles: &[PathBuf],
    trust: &TrustStore,
    options: &VerifyOptions,
    jobs: usize,
    progress: Option<&indicatif::ProgressBar>,
) -> Vec<FileResult> {
    let now = Timestamp::now();
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<FileResult>>> =
        articles.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = articles.get(i) else { break };
                let r = check_one(path, trust, options, now);
                *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                if let Some(bar) = progress {
                    bar.inc(1);
                }
            });
        }
    });
    results
        .into_iter()
        .zip(articles)
        .map(|(slot, path)| {
            slot.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(|| FileResult {
                    path: path.display().to_string(),
                    status: Status::Error,
                    code: Some("internal".into()),
                    reason: Some("not checked".into()),
                    authorship: None,
                    byline: None,
                    binding: None,
                })
        })
        .collect()
}

/// Whether to show a progress bar: a terminal, and not in CI.
pub fn show_progress() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var("CI").map_or(true, |v| v.is_empty() || v == "false")
}

fn read_config(roots: &[PathBuf]) -> Result<CheckConfig> {
    for root in roots {
        let path = if root.is_dir() {
            root.join("byline.toml")
        } else {
            continue;
        };
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mut file: ConfigFile =
                toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
            // A relative trust path in byline.toml is relative to the file, as its globs are,
            // so a CI step gives the same result from any working directory.
            if let Some(trust) = file.check.trust.as_mut() {
                if trust.is_relative() {
                    *trust = root.join(&*trust);
                }
            }
            return Ok(file.check);
        }
    }
    Ok(CheckConfig::default())
}

/// `byline check`.
pub fn run(a: CheckArgs) -> Result<u8> {
    let config = read_config(&a.paths)?;
    let format = a.format.or(config.format).unwrap_or(Format::Text);
    let trust_path = a
        .trust
        .or(config.trust)
        .unwrap_or_else(|| PathBuf::from("keys/trust.toml"));
    let trust = load_trust(&trust_path, false)?;
    let jobs = a
        .jobs
        .or(config.jobs)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let require_binding = a.require_binding.or(config.require_binding);
    if let Some(b) = &require_binding {
        if b != "exact" && b != "text" {
            bail!("require_binding must be \"exact\" or \"text\", not {b:?}");
        }
    }
    let max_age = a.max_age.or(config.max_age);
    let options = VerifyOptions {
        require_exact: require_binding.as_deref() == Some("exact"),
        require_logged: a.require_logged || config.require_logged.unwrap_or(false),
        publisher: a.publisher.or(config.publisher),
        max_age_secs: max_age
            .as_deref()
            .map(super::server_cmds::parse_duration_secs)
            .transpose()?,
        ..VerifyOptions::default()
    };
    let extensions: Vec<String> = if !a.extensions.is_empty() {
        a.extensions
    } else if let Some(e) = config.extensions {
        e
    } else {
        DEFAULT_EXTENSIONS.iter().map(|s| s.to_string()).collect()
    };
    let extensions: Vec<String> = extensions
        .iter()
        .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .collect();
    let mut ignore = config.ignore;
    ignore.extend(a.ignore);
    let articles = find_articles(&a.paths, &extensions, &ignore)?;
    if articles.is_empty() {
        bail!(
            "no articles found under {} (extensions: {})",
            a.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            extensions.join(", ")
        );
    }
    let bar = show_progress().then(|| {
        let bar = indicatif::ProgressBar::new(articles.len() as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} articles {elapsed}")
        {
            bar.set_style(style);
        }
        bar
    });
    let results = check_all(&articles, &trust, &options, jobs, bar.as_ref());
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    print!("{}", render(&results, format));
    Ok(if results.iter().all(FileResult::passed) {
        EXIT_OK
    } else {
        EXIT_NOT_VERIFIED
    })
}

struct Summary {
    verified: usize,
    failed: usize,
    unsigned: usize,
    errors: usize,
    by_class: Vec<(AuthorshipClass, usize)>,
}

fn summarize(results: &[FileResult]) -> Summary {
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    Summary {
        verified: count(Status::Verified),
        failed: count(Status::Failed),
        unsigned: count(Status::Unsigned),
        errors: count(Status::Error),
        by_class: AuthorshipClass::ALL
            .iter()
            .map(|c| {
                (
                    *c,
                    results
                        .iter()
                        .filter(|r| r.passed() && r.authorship == Some(*c))
                        .count(),
                )
            })
            .collect(),
    }
}

/// Renders results in a format.
pub fn render(results: &[FileResult], format: Format) -> String {
    let s = summarize(results);
    match format {
        Format::Text => {
            let mut out = String::new();
            for r in results.iter().filter(|r| !r.passed()) {
                let label = match r.status {
                    Status::Unsigned => "UNSIGNED",
                    Status::Error => "ERROR",
                    _ => "FAIL",
                };
                out.push_str(&format!(
                    "{label} {}: {}\n",
                    r.path,
                    r.reason.as_deref().unwrap_or("")
                ));
            }
            out.push_str(&format!(
                "\n{} articles: {} verified, {} failed, {} unsigned, {} errors\n",
                results.len(),
                s.verified,
                s.failed,
                s.unsigned,
                s.errors
            ));
            out.push_str("verified by authorship:");
            for (class, n) in &s.by_class {
                out.push_str(&format!(" {class} {n},"));
            }
            out.pop();
            out.push('\n');
            out
        }
        Format::Json => {
            let by_class: serde_json::Map<String, serde_json::Value> = s
                .by_class
                .iter()
                .map(|(c, n)| (c.to_string(), json!(n)))
                .collect();
            let doc = json!({
                "summary": {
                    "articles": results.len(),
                    "verified": s.verified,
                    "failed": s.failed,
                    "unsigned": s.unsigned,
                    "errors": s.errors,
                    "verifiedByAuthorship": by_class,
                },
                "results": results,
            });
            format!("{doc:#}\n")
        }
        Format::Junit => {
            let failures = results.len() - s.verified;
            let mut out = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"byline check\" tests=\"{}\" failures=\"{failures}\">\n  <testsuite name=\"byline check\" tests=\"{}\" failures=\"{failures}\">\n",
                results.len(),
                results.len()
            );
            for r in results {
                out.push_str(&format!(
                    "    <testcase classname=\"byline\" name=\"{}\"",
                    xml_escape(&r.path)
                ));
                if r.passed() {
                    out.push_str("/>\n");
                } else {
                    let reason = r.reason.as_deref().unwrap_or("");
                    out.push_str(&format!(
                        ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>\n",
                        xml_escape(r.code.as_deref().unwrap_or("failed")),
                        xml_escape(reason),
                        xml_escape(reason)
                    ));
                }
            }
            out.push_str("  </testsuite>\n</testsuites>\n");
            out
        }
        Format::Github => {
            let mut out = String::new();
            for r in results.iter().filter(|r| !r.passed()) {
                out.push_str(&format!(
                    "::error file={},title=byline {}::{}\n",
                    github_property(&r.path),
                    github_property(r.code.as_deref().unwrap_or("failed")),
                    github_data(r.reason.as_deref().unwrap_or(""))
                ));
            }
            out.push_str(&format!(
                "byline check: {} articles, {} verified, {} failed, {} unsigned, {} errors\n",
                results.len(),
                s.verified,
                s.failed,
                s.unsigned,
                s.errors
            ));
            out
        }
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn github_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn github_property(s: &str) -> String {
    github_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Expands directories into the articles they hold, for bulk signing.
pub fn expand_articles(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let extensions: Vec<String> = DEFAULT_EXTENSIONS.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(find_articles(std::slice::from_ref(p), &extensions, &[])?);
        } else {
            out.push(p.clone());
        }
    }
    if out.is_empty() {
        return Err(anyhow!("no articles to sign"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_for_xml_and_github() {
        assert_eq!(
            xml_escape("a<b & \"c\"\u{1}"),
            "a&lt;b &amp; &quot;c&quot;\u{FFFD}"
        );
        assert_eq!(github_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        assert_eq!(github_data("x: y\r\n"), "x: y%0D%0A");
    }
}
