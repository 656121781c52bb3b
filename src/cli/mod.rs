//! The `byline` command line: parses arguments, calls the core, renders results.
//!
//! Exit codes: 0 verified (or the command succeeded), 1 not verified (tampered, wrong key,
//! revoked, untrusted, missing or malformed manifest), 2 usage or I/O error.

pub mod bench;
pub mod check;
pub mod files;
pub mod remote;
pub mod render;
pub mod revoke;
pub mod server_cmds;
pub mod server_metrics;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::core::bundle::Bundle;
use crate::core::canonical::MediaType;
use crate::core::embed::{embed, strip_embedded};
use crate::core::keys::{keyid, public_key_to_pem, SigningKey};
use crate::core::manifest::{check_domain, AiSystem, AuthorshipClass, Human, Publisher, Timestamp};
use crate::core::sign::{
    build_statement, prepare_article, segments_from_labels, sign_statement, Authorship,
};
use crate::core::verify::{verify_article, VerifyOptions};
use files::{
    find_bundle, load_signing_key, load_trust, media_type_for, read_article, save_trust,
    sidecar_path, write_atomic, write_secret,
};

/// Exit status: verified, or the command did what was asked.
pub const EXIT_OK: u8 = 0;
/// Exit status: not verified.
pub const EXIT_NOT_VERIFIED: u8 = 1;
/// Exit status: usage or I/O error.
pub const EXIT_USAGE: u8 = 2;

const AFTER_HELP: &str =
    "Exit codes: 0 verified (or done), 1 not verified (tampered, wrong key, revoked, untrusted, \
missing or malformed manifest), 2 usage or I/O error.";

/// byline: sign and verify who wrote an article — a person, an AI, or both.
#[derive(Parser, Debug)]
#[command(name = "byline", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a publisher signing key and trust it in the key directory's trust store.
    Keygen(KeygenArgs),
    /// Sign articles: writes ARTICLE.byline.json next to each.
    Sign(Box<SignArgs>),
    /// Verify an article against its bundle and print a plain verdict.
    Verify(VerifyArgs),
    /// Verify every article of a content tree (for CI); exit 0 only when all pass.
    Check(check::CheckArgs),
    /// Embed a bundle in an HTML or Markdown article.
    Embed(EmbedArgs),
    /// Print the bundle embedded in an article.
    Extract(ExtractArgs),
    /// Print an article's text and exact digests (and, with --canonical, the canonical text).
    Digest(DigestArgs),
    /// Run the gRPC service (embedded SQLite, dev keys under keys/, 127.0.0.1:50051 by default).
    Serve(server_cmds::ServeArgs),
    /// Manage API tokens in the service's database.
    #[command(subcommand)]
    Token(server_cmds::TokenCommand),
    /// Create or upgrade the database schema (serve does this on start).
    Migrate(server_cmds::MigrateArgs),
    /// Manage the trust store.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Read the transparency log of a server.
    #[command(subcommand)]
    Log(server_cmds::LogCommand),
    /// Retract a manifest (--log-index) or revoke a publisher key (--keyid) through a server;
    /// the revocation is itself logged.
    Revoke(revoke::RevokeArgs),
    /// Measure a server: a load generator with the raw rate of the same work for comparison.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Drive Sign or SignStream and report throughput, latency and the ratio to the raw rate.
    Sign(bench::BenchSignArgs),
}

#[derive(Subcommand, Debug)]
enum TrustCommand {
    /// Pin a publisher's keys and the log key from a server (trust on first use).
    Add(server_cmds::TrustAddArgs),
}

#[derive(Args, Debug)]
struct KeygenArgs {
    /// The publisher's domain, e.g. news.example.
    #[arg(long)]
    publisher: String,
    /// The publisher's display name for the trust store (defaults to the domain).
    #[arg(long)]
    name: Option<String>,
    /// The key directory.
    #[arg(long, default_value = "keys")]
    keys: PathBuf,
    /// Overwrite an existing key file.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct AuthorshipArgs {
    /// The byline exactly as displayed, e.g. "By AI".
    #[arg(long)]
    byline: String,
    /// human, ai-assisted, ai-generated or mixed.
    #[arg(long)]
    authorship: String,
    /// The publisher's domain (defaults to the one the key is trusted for).
    #[arg(long)]
    publisher: Option<String>,
    /// The publisher's display name (defaults to the trust store's name, else the domain).
    #[arg(long)]
    publisher_name: Option<String>,
    /// An AI system involved: NAME, NAME@VERSION or NAME@VERSION@PROVIDER (repeatable).
    #[arg(long = "model")]
    models: Vec<String>,
    /// A person involved: "NAME:ROLE" (repeatable).
    #[arg(long = "human")]
    humans: Vec<String>,
    /// The article's URL or id (defaults to the file name).
    #[arg(long)]
    url: Option<String>,
    /// The article's title (public forever once logged; omit to keep it private).
    #[arg(long)]
    title: Option<String>,
    /// BCP 47 language tag of the text, e.g. en.
    #[arg(long)]
    language: Option<String>,
    /// Per-paragraph authorship, e.g. "0-2:ai-generated,3:human" (zero-based canonical
    /// paragraphs; HTML blocks marked data-byline-authorship are picked up without it).
    #[arg(long)]
    segments: Option<String>,
    /// The person holding editorial responsibility: "NAME:ROLE".
    #[arg(long)]
    editor: Option<String>,
    /// When the editor reviewed the text (RFC 3339 UTC; default: now).
    #[arg(long, requires = "editor")]
    reviewed_at: Option<String>,
    /// The publisher's AI policy URL, shown with the editorial statement.
    #[arg(long, requires = "editor")]
    policy_url: Option<String>,
    /// The bundle of the manifest this one corrects or replaces.
    #[arg(long)]
    supersedes: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct SignArgs {
    /// The articles to sign.
    #[arg(required = true)]
    articles: Vec<PathBuf>,
    #[command(flatten)]
    authorship: AuthorshipArgs,
    /// The publisher's private key (PKCS#8 PEM, mode 0600), to sign offline.
    #[arg(long, conflicts_with = "server", required_unless_present = "server")]
    key: Option<PathBuf>,
    /// Sign through this server (token from BYLINE_TOKEN); the bundle carries a log proof.
    #[arg(long)]
    server: Option<String>,
    /// A CA certificate (PEM) for the server's TLS certificate.
    #[arg(long, env = "BYLINE_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// The trust store used to find the key's publisher.
    #[arg(long, default_value = "keys/trust.toml")]
    trust: PathBuf,
    /// The media type, when the file name does not say it.
    #[arg(long)]
    media_type: Option<String>,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The article as displayed (.md, .html, .txt).
    article: PathBuf,
    /// The bundle (defaults to the embedded one, then ARTICLE.byline.json).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// The trust store.
    #[arg(long, default_value = "keys/trust.toml")]
    trust: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Only the exact binding counts.
    #[arg(long, value_parser = ["exact", "text"])]
    require_binding: Option<String>,
    /// Fail bundles without a transparency-log proof.
    #[arg(long)]
    require_logged: bool,
    /// Only keys trusted for this publisher domain count.
    #[arg(long)]
    publisher: Option<String>,
    /// The media type, when the file name does not say it.
    #[arg(long)]
    media_type: Option<String>,
    /// When the article carries no bundle, look its manifests up on this server (the verdict
    /// is still decided here, against the local trust store).
    #[arg(long)]
    server: Option<String>,
    /// A CA certificate (PEM) for the server's TLS certificate.
    #[arg(long, env = "BYLINE_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Where the largest checkpoint seen of each log is remembered (fork detection).
    #[arg(long, env = "BYLINE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Print the article's paragraphs with each one's authorship label in the margin.
    #[arg(long)]
    show: bool,
    /// Show the article's edit history from the server (earlier versions it corrects, later
    /// ones that correct it); a superseded manifest still verifies, with a warning.
    #[arg(long, requires = "server")]
    history: bool,
    /// Check that this quoted excerpt appears verbatim in the signed article (needs --bundle;
    /// ARTICLE is then the excerpt).
    #[arg(long, requires = "bundle")]
    excerpt: bool,
}

#[derive(Args, Debug)]
struct EmbedArgs {
    /// The article to embed the bundle in (rewritten in place unless --output is given).
    article: PathBuf,
    /// The bundle to embed.
    bundle: PathBuf,
    /// Write the result here instead of rewriting the article ("-" for standard output).
    #[arg(long)]
    output: Option<PathBuf>,
    /// The media type, when the file name does not say it.
    #[arg(long)]
    media_type: Option<String>,
}

#[derive(Args, Debug)]
struct ExtractArgs {
    /// The article carrying an embedded bundle.
    article: PathBuf,
    /// The media type, when the file name does not say it.
    #[arg(long)]
    media_type: Option<String>,
}

#[derive(Args, Debug)]
struct DigestArgs {
    /// The article.
    article: PathBuf,
    /// Also print the canonical text itself, exactly as hashed.
    #[arg(long)]
    canonical: bool,
    /// The media type, when the file name does not say it.
    #[arg(long)]
    media_type: Option<String>,
}

/// Runs the CLI and maps every outcome to an exit code; errors are printed with their causes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("byline: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Keygen(a) => keygen(a),
        Command::Sign(a) => sign(*a),
        Command::Verify(a) => verify(a),
        Command::Check(a) => check::run(a),
        Command::Embed(a) => embed_cmd(a),
        Command::Extract(a) => extract(a),
        Command::Digest(a) => digest(a),
        Command::Serve(a) => server_cmds::serve(a),
        Command::Token(c) => server_cmds::token(c),
        Command::Migrate(a) => server_cmds::migrate(a),
        Command::Trust(TrustCommand::Add(a)) => server_cmds::trust_add(a),
        Command::Log(c) => server_cmds::log(c),
        Command::Bench(BenchCommand::Sign(a)) => bench::bench_sign(a),
        Command::Revoke(a) => revoke::revoke(a),
    }
}

fn keygen(a: KeygenArgs) -> Result<u8> {
    check_domain(&a.publisher).map_err(|_| {
        anyhow!(
            "--publisher {:?} is not a lowercase domain name such as news.example",
            a.publisher
        )
    })?;
    if a.publisher == crate::service::LOG_KEY_NAME {
        bail!(
            "--publisher {:?} is reserved: keys/log.key is the transparency log's key",
            a.publisher
        );
    }
    std::fs::create_dir_all(&a.keys)
        .with_context(|| format!("cannot create {}", a.keys.display()))?;
    let key = SigningKey::generate();
    let key_path = a.keys.join(format!("{}.key", a.publisher));
    let pub_path = a.keys.join(format!("{}.pub", a.publisher));
    write_secret(&key_path, key.to_pkcs8_pem()?.as_bytes(), a.force)?;
    let vk = key.verifying_key();
    write_atomic(&pub_path, public_key_to_pem(&vk)?.as_bytes())?;
    let trust_path = a.keys.join("trust.toml");
    let mut trust = load_trust(&trust_path, true)?;
    let source = format!("keygen {}", Timestamp::now());
    trust.add_publisher_key(&a.publisher, a.name.as_deref(), &vk, false, &source)?;
    save_trust(&trust_path, &trust)?;
    println!(
        "created {} (private, mode 0600) and {}",
        key_path.display(),
        pub_path.display()
    );
    println!("trusted for {} in {}", a.publisher, trust_path.display());
    println!("key id {}", keyid(&vk));
    Ok(EXIT_OK)
}

/// Parses `NAME[@VERSION[@PROVIDER]]`.
fn parse_model(spec: &str) -> AiSystem {
    let mut parts = spec.splitn(3, '@');
    let name = parts.next().unwrap_or_default().to_string();
    AiSystem {
        name,
        version: parts.next().filter(|s| !s.is_empty()).map(str::to_string),
        provider: parts.next().filter(|s| !s.is_empty()).map(str::to_string),
    }
}

fn parse_human(spec: &str) -> Result<Human> {
    let (name, role) = spec
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("--human {spec:?} must be NAME:ROLE, e.g. \"Jane Doe:editor\""))?;
    Ok(Human {
        name: name.trim().to_string(),
        role: role.trim().to_string(),
    })
}

fn sign(mut a: SignArgs) -> Result<u8> {
    a.articles = check::expand_articles(&a.articles)?;
    if let Some(server) = &a.server {
        return sign_via_server(server, &a);
    }
    let key_path = a
        .key
        .clone()
        .ok_or_else(|| anyhow!("give --key FILE or --server URL"))?;
    let key = load_signing_key(&key_path)?;
    let vk = key.verifying_key();
    let trust = load_trust(&a.trust, true)?;
    let trusted = trust.trusted_keys()?;
    let entry = trusted.iter().find(|k| {
        k.key == vk
            && a.authorship
                .publisher
                .as_ref()
                .is_none_or(|p| *p == k.entry.publisher)
    });
    if let Some(p) = &a.authorship.publisher {
        let others: Vec<&str> = trusted
            .iter()
            .filter(|k| k.key == vk && k.entry.publisher != *p)
            .map(|k| k.entry.publisher.as_str())
            .collect();
        if entry.is_none() && !others.is_empty() {
            bail!(
                "the key {} is trusted for {} in {}, not for {p}; verifiers would reject the manifest",
                key_path.display(),
                others.join(", "),
                a.trust.display()
            );
        }
    }
    let domain = match (&a.authorship.publisher, entry) {
        (Some(p), _) => p.clone(),
        (None, Some(e)) => e.entry.publisher.clone(),
        (None, None) => bail!(
            "the key {} is not in {}; pass --publisher DOMAIN or trust the key first",
            key_path.display(),
            a.trust.display()
        ),
    };
    let publisher_name = a
        .authorship
        .publisher_name
        .clone()
        .or_else(|| entry.and_then(|e| e.entry.name.clone()))
        .unwrap_or_else(|| domain.clone());
    let class: AuthorshipClass = a.authorship.authorship.parse()?;
    let humans = a
        .authorship
        .humans
        .iter()
        .map(|h| parse_human(h))
        .collect::<Result<Vec<_>>>()?;
    let mut failed = 0usize;
    let mut io_failed = false;
    let bar = progress_bar(a.articles.len());
    for path in &a.articles {
        match sign_one(path, &a, &key, &domain, &publisher_name, class, &humans) {
            Ok(out) => match &bar {
                Some(bar) => bar.inc(1),
                None => println!("signed {} -> {}", path.display(), out.display()),
            },
            Err(e) => {
                failed += 1;
                io_failed |= e.chain().any(|c| c.is::<std::io::Error>());
                let line = format!("byline: error: {}: {e:#}", path.display());
                match &bar {
                    Some(bar) => bar.println(line),
                    None => eprintln!("{line}"),
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    eprintln!(
        "signed {} of {} articles{}",
        a.articles.len() - failed,
        a.articles.len(),
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
    if failed > 0 {
        // An article that could not be read is an I/O error (2); one that could not be signed
        // (bad metadata, not canonicalizable) is a failure of that article (1).
        return Ok(if io_failed {
            EXIT_USAGE
        } else {
            EXIT_NOT_VERIFIED
        });
    }
    Ok(EXIT_OK)
}

fn editorial(a: &AuthorshipArgs) -> Result<Option<crate::core::manifest::EditorialResponsibility>> {
    let Some(editor) = &a.editor else {
        return Ok(None);
    };
    let person = parse_human(editor)?;
    let reviewed_at = match &a.reviewed_at {
        Some(t) => t
            .parse()
            .map_err(|e: String| anyhow!("--reviewed-at: {e}"))?,
        None => Timestamp::now(),
    };
    Ok(Some(crate::core::manifest::EditorialResponsibility {
        name: person.name,
        role: person.role,
        reviewed_at,
        policy_url: a.policy_url.clone(),
    }))
}

/// What a new manifest says about the one it replaces: its statement digest and log index.
fn supersedes_of(path: &Path) -> Result<crate::core::manifest::Supersedes> {
    let bytes = files::read_limited(path, crate::core::constants::MAX_BUNDLE_BYTES)?;
    let bundle =
        Bundle::from_json(&bytes).with_context(|| format!("in --supersedes {}", path.display()))?;
    let payload = crate::core::dsse::decode_base64_any(&bundle.dsse_envelope.payload)
        .ok_or_else(|| anyhow!("--supersedes {}: the payload is not base64", path.display()))?;
    crate::core::manifest::AuthorshipStatement::from_payload(&payload).with_context(|| {
        format!(
            "--supersedes {} is not an authorship manifest",
            path.display()
        )
    })?;
    Ok(crate::core::manifest::Supersedes {
        statement_sha256: crate::core::sign::statement_digest(&payload),
        log_index: bundle.log_entry.map(|e| e.log_index),
    })
}

/// A progress bar on a terminal outside CI, for long runs.
pub fn progress_bar(len: usize) -> Option<indicatif::ProgressBar> {
    (check::show_progress() && len > 1).then(|| {
        let bar = indicatif::ProgressBar::new(len as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} {elapsed}")
        {
            bar.set_style(style);
        }
        bar
    })
}

fn sign_one(
    path: &Path,
    a: &SignArgs,
    key: &SigningKey,
    domain: &str,
    publisher_name: &str,
    class: AuthorshipClass,
    humans: &[Human],
) -> Result<PathBuf> {
    let bytes = read_article(path)?;
    let media = media_type_for(path, a.media_type.as_deref())?;
    let prepared = prepare_article(
        &bytes,
        media,
        crate::core::constants::DEFAULT_MAX_ARTICLE_BYTES,
    )?;
    let subject = a.authorship.url.clone().unwrap_or_else(|| {
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    });
    let authorship = Authorship {
        subject_name: subject,
        byline: a.authorship.byline.clone(),
        authorship: class,
        ai_systems: a.authorship.models.iter().map(|m| parse_model(m)).collect(),
        humans: humans.to_vec(),
        publisher: Publisher {
            name: publisher_name.to_string(),
            domain: domain.to_string(),
        },
        title: a.authorship.title.clone(),
        language: a.authorship.language.clone(),
        published_at: None,
        segments: match &a.authorship.segments {
            Some(spec) => Some(crate::core::sign::parse_segments(spec)?),
            None => segments_from_labels(&prepared.canonical.paragraph_labels)?,
        },
        editorial_responsibility: editorial(&a.authorship)?,
        supersedes: a
            .authorship
            .supersedes
            .as_deref()
            .map(supersedes_of)
            .transpose()?,
    };
    let statement = build_statement(
        &authorship,
        prepared.digests,
        Some(prepared.paragraph_digests.clone()),
        Timestamp::now(),
    )?;
    let envelope = sign_statement(&statement, key)?;
    let bundle = Bundle::offline(envelope);
    let out = sidecar_path(path);
    write_atomic(&out, bundle.to_json_pretty().as_bytes())?;
    Ok(out)
}

fn sign_via_server(server: &str, a: &SignArgs) -> Result<u8> {
    use crate::proto as pb;
    let class: AuthorshipClass = a.authorship.authorship.parse()?;
    let humans = a
        .authorship
        .humans
        .iter()
        .map(|h| parse_human(h))
        .collect::<Result<Vec<_>>>()?;
    let mut requests = Vec::new();
    let mut unreadable = 0usize;
    for path in &a.articles {
        // A file that cannot be read is reported and the others are still signed.
        let read = read_article(path)
            .and_then(|b| Ok((b, media_type_for(path, a.media_type.as_deref())?)));
        let (bytes, media) = match read {
            Ok(ok) => ok,
            Err(e) => {
                unreadable += 1;
                eprintln!("byline: error: {}: {e:#}", path.display());
                continue;
            }
        };
        let subject = a.authorship.url.clone().unwrap_or_else(|| {
            path.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        });
        let authorship = pb::Authorship {
            subject,
            byline: a.authorship.byline.clone(),
            authorship: crate::service::grpc::class_to_pb(class) as i32,
            ai_systems: a
                .authorship
                .models
                .iter()
                .map(|m| {
                    let s = parse_model(m);
                    pb::AiSystem {
                        name: s.name,
                        version: s.version.unwrap_or_default(),
                        provider: s.provider.unwrap_or_default(),
                    }
                })
                .collect(),
            humans: humans
                .iter()
                .map(|h| pb::Human {
                    name: h.name.clone(),
                    role: h.role.clone(),
                })
                .collect(),
            publisher_domain: a.authorship.publisher.clone().unwrap_or_default(),
            publisher_name: a.authorship.publisher_name.clone().unwrap_or_default(),
            title: a.authorship.title.clone().unwrap_or_default(),
            language: a.authorship.language.clone().unwrap_or_default(),
            published_at: None,
            segments: match &a.authorship.segments {
                Some(spec) => crate::core::sign::parse_segments(spec)?
                    .into_iter()
                    .map(|seg| pb::Segment {
                        start: seg.start,
                        end: seg.end,
                        authorship: crate::service::grpc::class_to_pb(seg.authorship) as i32,
                    })
                    .collect(),
                None => Vec::new(),
            },
            editorial_responsibility: editorial(&a.authorship)?.map(|e| {
                pb::EditorialResponsibility {
                    name: e.name,
                    role: e.role,
                    reviewed_at: Some(prost_types::Timestamp {
                        seconds: e.reviewed_at.unix(),
                        nanos: 0,
                    }),
                    policy_url: e.policy_url.unwrap_or_default(),
                }
            }),
            supersedes: a
                .authorship
                .supersedes
                .as_deref()
                .map(supersedes_of)
                .transpose()?
                .map(|s| pb::Supersedes {
                    statement_sha256: s.statement_sha256.to_hex(),
                    log_index: s.log_index,
                }),
        };
        requests.push((
            path.clone(),
            pb::SignRequest {
                article: Some(pb::sign_request::Article::Content(pb::Article {
                    content: bytes,
                    media_type: media.as_str().to_string(),
                })),
                authorship: Some(authorship),
                idempotency_key: String::new(),
                request_id: 0,
            },
        ));
    }
    if requests.is_empty() {
        eprintln!(
            "signed 0 of {} articles, {unreadable} failed",
            a.articles.len()
        );
        return Ok(EXIT_NOT_VERIFIED);
    }
    server_cmds::sign_remote(server, a.ca_cert.as_deref(), requests, unreadable)
}

fn verify(a: VerifyArgs) -> Result<u8> {
    let bytes = read_article(&a.article)?;
    let media = media_type_for(&a.article, a.media_type.as_deref())?;
    let trust = load_trust(&a.trust, false)?;
    let name = a.article.display().to_string();
    let options = VerifyOptions {
        require_exact: a.require_binding.as_deref() == Some("exact"),
        require_logged: a.require_logged,
        publisher: a.publisher.clone(),
        ..VerifyOptions::default()
    };
    if a.excerpt {
        return verify_excerpt_cmd(&a, &bytes, media, &trust, &options);
    }
    let mut found = match find_bundle(&a.article, &bytes, media, a.bundle.as_deref()) {
        Ok(found) => found.map(|(b, _)| vec![b]),
        Err(e) => match e.downcast::<files::MalformedEmbedded>() {
            Ok(malformed) => {
                let verdict = crate::core::verify::Verdict {
                    failure: Some(crate::core::verify::Failure::MalformedBundle(
                        malformed.to_string(),
                    )),
                    ..Default::default()
                };
                if a.json {
                    println!("{}", render::verdict_json(&verdict, &name));
                } else {
                    print!(
                        "{}",
                        render::verdict_text(&verdict, &name, render::use_colour())
                    );
                }
                return Ok(EXIT_NOT_VERIFIED);
            }
            Err(e) => return Err(e),
        },
    };
    if found.is_none() {
        if let Some(server) = &a.server {
            let prepared = prepare_article(
                &bytes,
                media,
                crate::core::constants::DEFAULT_MAX_ARTICLE_BYTES,
            )?;
            let bundles = server_cmds::lookup_bundles(
                server,
                a.ca_cert.as_deref(),
                &prepared.digests.text.to_hex(),
            )?;
            if !bundles.is_empty() {
                found = Some(bundles.into_iter().map(String::into_bytes).collect());
            }
        }
    }
    let Some(candidates) = found else {
        let message = format!(
            "no manifest: {name} carries no embedded bundle and has no sidecar {}",
            sidecar_path(&a.article).display()
        );
        if a.json {
            println!(
                "{}",
                serde_json::json!({"article": name, "verified": false,
                    "failure": {"code": "unsigned", "message": message}})
            );
        } else {
            println!("NOT VERIFIED {name}: {message}");
        }
        return Ok(EXIT_NOT_VERIFIED);
    };
    // With several manifests (a server lookup), the first that verifies decides; otherwise
    // the newest one's failure is reported.
    let now = Timestamp::now();
    let verdicts: Vec<_> = candidates
        .iter()
        .map(|b| verify_article(&bytes, media, b, &trust, &options, now))
        .collect();
    let chosen = verdicts.iter().position(|v| v.verified()).unwrap_or(0);
    let mut verdict = verdicts.get(chosen).cloned().unwrap_or_default();
    // With a server, the log's revocations of this statement (retractions) and of its key
    // count too: the verdict is judged again with those that verify under the trust store.
    // A server that cannot answer (an older one, say) gets a warning, not an error: a server
    // can always withhold revocations, so their absence never proves anything either way.
    if let (Some(server), Some(_)) = (&a.server, &verdict.statement_sha256) {
        let (revocations, warnings) = revoke::fetch_revocations(
            server,
            a.ca_cert.as_deref(),
            &trust,
            &crate::core::verify::revocation_targets(&verdict),
        )
        .unwrap_or_else(|e| (Vec::new(), vec![format!("revocations not checked: {e:#}")]));
        if !revocations.is_empty() {
            if let Some(bundle) = candidates
                .get(chosen)
                .and_then(|b| Bundle::from_json(b).ok())
            {
                verdict = crate::core::verify::verify_bundle_with_revocations(
                    &bytes,
                    media,
                    &bundle,
                    &trust,
                    &revocations,
                    &options,
                    now,
                );
            }
        }
        verdict.warnings.extend(warnings);
    }
    // With a server, the bundle's checkpoint (and the largest one seen before) must be
    // consistent with the log's latest: a log showing two histories is a failure.
    if let (Some(server), Some(log), true) = (&a.server, &verdict.log, verdict.verified()) {
        let state_dir = a
            .state_dir
            .clone()
            .unwrap_or_else(server_cmds::default_state_dir);
        match server_cmds::check_log_consistency(
            server,
            a.ca_cert.as_deref(),
            &trust,
            &log.checkpoint,
            &state_dir,
        )? {
            Ok(size) => verdict.consistency_checked_to = Some(size),
            Err(fork) => verdict.failure = Some(crate::core::verify::Failure::LogFork(fork)),
        }
    }
    let mut history = None;
    if let (true, Some(server), Some(_)) = (a.history, &a.server, &verdict.statement) {
        // The statement's own bytes, from the bundle whose signature verified.
        let payload = candidates
            .iter()
            .filter_map(|b| Bundle::from_json(b).ok())
            .filter_map(|b| crate::core::dsse::decode_base64_any(&b.dsse_envelope.payload))
            .find(|p| {
                crate::core::manifest::AuthorshipStatement::from_payload(p)
                    .ok()
                    .as_ref()
                    == verdict.statement.as_ref()
            });
        if let Some(payload) = payload {
            let h = server_cmds::edit_history(server, a.ca_cert.as_deref(), &trust, &payload)?;
            if let Some(newest) = h.later.last() {
                verdict.warnings.push(format!(
                    "superseded: a newer version exists (log index {}, {})",
                    newest.log_index, newest.integrated_time
                ));
            }
            history = Some(h);
        }
    }
    if a.json {
        let mut doc = render::verdict_json(&verdict, &name);
        if a.show {
            doc["paragraphs"] = render::paragraphs_json(&verdict);
        }
        if let Some(h) = &history {
            doc["history"] = serde_json::json!(h);
            doc["superseded"] = serde_json::json!(!h.later.is_empty());
        }
        println!("{doc}");
    } else {
        print!(
            "{}",
            render::verdict_text(&verdict, &name, render::use_colour())
        );
        if a.show {
            print!("{}", render::paragraphs_text(&verdict));
        }
        if let Some(h) = &history {
            print!("{}", render::history_text(h, &verdict));
        }
    }
    Ok(if verdict.verified() {
        EXIT_OK
    } else {
        EXIT_NOT_VERIFIED
    })
}

fn verify_excerpt_cmd(
    a: &VerifyArgs,
    excerpt: &[u8],
    media: MediaType,
    trust: &crate::core::trust::TrustStore,
    options: &VerifyOptions,
) -> Result<u8> {
    let path = a
        .bundle
        .as_deref()
        .ok_or_else(|| anyhow!("--excerpt needs --bundle FILE"))?;
    let bytes = files::read_limited(path, crate::core::constants::MAX_BUNDLE_BYTES)?;
    let name = a.article.display().to_string();
    let bundle = match Bundle::from_json(&bytes) {
        Ok(b) => b,
        Err(e) => {
            println!("NOT CONFIRMED {name}: {e}");
            return Ok(EXIT_NOT_VERIFIED);
        }
    };
    let result = crate::core::verify::verify_excerpt(
        excerpt,
        media,
        &bundle,
        trust,
        options,
        Timestamp::now(),
    );
    let byline = result
        .verdict
        .statement
        .as_ref()
        .map(|s| s.predicate.byline.clone());
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "excerpt": name,
                "confirmed": result.confirmed(),
                "problem": result.problem,
                "byline": byline,
                "startParagraph": result.found.as_ref().map(|f| f.start),
                "labels": result.found.as_ref().map(|f| f.classes.clone()),
                "publisher": result.verdict.signer.as_ref().map(|s| s.publisher_display().to_string()),
            })
        );
    } else {
        match (&result.found, &result.problem) {
            (Some(found), None) => {
                let labels: Vec<&str> = found.classes.iter().map(|c| c.margin_label()).collect();
                println!(
                    "CONFIRMED {name}: paragraphs {}–{} of the signed article, verbatim; labelled [{}]; signed byline {:?} by {}",
                    found.start + 1,
                    found.start + found.classes.len(),
                    labels.join(", "),
                    byline.unwrap_or_default(),
                    result.verdict.signer.as_ref().map(|s| s.publisher_display()).unwrap_or("")
                );
            }
            (_, problem) => println!(
                "NOT CONFIRMED {name}: {}",
                problem
                    .as_deref()
                    .unwrap_or("the excerpt does not appear verbatim in the signed article")
            ),
        }
    }
    Ok(if result.confirmed() {
        EXIT_OK
    } else {
        EXIT_NOT_VERIFIED
    })
}

fn embed_cmd(a: EmbedArgs) -> Result<u8> {
    let bytes = read_article(&a.article)?;
    let media = media_type_for(&a.article, a.media_type.as_deref())?;
    let bundle_bytes = files::read_limited(&a.bundle, crate::core::constants::MAX_BUNDLE_BYTES)?;
    let bundle = Bundle::from_json(&bundle_bytes)?;
    let out = embed(&bytes, media, &bundle)?;
    match a.output.as_deref() {
        Some(p) if p == Path::new("-") => {
            use std::io::Write;
            std::io::stdout().write_all(&out)?;
        }
        Some(p) => write_atomic(p, &out)?,
        None => {
            write_atomic(&a.article, &out)?;
            eprintln!("embedded the bundle in {}", a.article.display());
        }
    }
    Ok(EXIT_OK)
}

fn extract(a: ExtractArgs) -> Result<u8> {
    let bytes = read_article(&a.article)?;
    let media = media_type_for(&a.article, a.media_type.as_deref())?;
    match strip_embedded(&bytes, media)? {
        (_, Some(json)) => {
            let bundle = Bundle::from_json(&json)?;
            print!("{}", bundle.to_json_pretty());
            Ok(EXIT_OK)
        }
        (_, None) => {
            eprintln!("byline: {} carries no embedded bundle", a.article.display());
            Ok(EXIT_NOT_VERIFIED)
        }
    }
}

fn digest(a: DigestArgs) -> Result<u8> {
    let bytes = read_article(&a.article)?;
    let media: MediaType = media_type_for(&a.article, a.media_type.as_deref())?;
    let prepared = prepare_article(
        &bytes,
        media,
        crate::core::constants::DEFAULT_MAX_ARTICLE_BYTES,
    )?;
    println!("text  sha256:{}", prepared.digests.text);
    println!("exact sha256:{}", prepared.digests.exact);
    println!("paragraphs {}", prepared.paragraph_digests.len());
    if a.canonical {
        println!("--- canonical text (byline-text/v1) ---");
        println!("{}", prepared.canonical.text);
    }
    Ok(EXIT_OK)
}
