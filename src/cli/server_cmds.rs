//! CLI commands that run or talk to a server: `serve`, `token`, `trust add`, `log`, and the
//! server side of `sign` and `verify`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};

use crate::core::dsse::encode_base64;
use crate::core::keys::public_key_from_base64;
use crate::core::logproof::{hashes_from_bytes, open_checkpoint};
use crate::core::manifest::{check_domain, Timestamp};
use crate::core::merkle::{leaf_hash, verify_inclusion};
use crate::proto as pb;
use crate::service::grpc::Limits;
use crate::service::log::{SequencerSettings, DEFAULT_BATCH_WAIT};
use crate::service::{auth, ServeConfig};
use crate::storage::Store;

use super::files::{load_trust, save_trust};
use super::remote::{connect, status_message};
use super::{EXIT_NOT_VERIFIED, EXIT_OK};

/// `byline serve` settings; each can also come from the environment or a TOML file.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// A TOML file with any of these settings (flags and environment win over it).
    #[arg(long, env = "BYLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:50051].
    #[arg(long, env = "BYLINE_LISTEN")]
    listen: Option<SocketAddr>,
    /// sqlite://PATH [default: sqlite://data/byline.db].
    #[arg(long, env = "BYLINE_DATABASE")]
    database: Option<String>,
    /// The key directory [default: keys].
    #[arg(long, env = "BYLINE_KEYS")]
    keys: Option<PathBuf>,
    /// The log's origin line [default: byline.localhost/log].
    #[arg(long, env = "BYLINE_LOG_ORIGIN")]
    log_origin: Option<String>,
    /// Largest article accepted, in bytes [default: 4194304].
    #[arg(long, env = "BYLINE_MAX_ARTICLE_BYTES")]
    max_article_bytes: Option<usize>,
    /// Calls in flight before new ones get RESOURCE_EXHAUSTED [default: 1024].
    #[arg(long, env = "BYLINE_MAX_CONCURRENT")]
    max_concurrent: Option<usize>,
    /// Most entries per group-commit batch [default: 256].
    #[arg(long, env = "BYLINE_BATCH_MAX")]
    batch_max: Option<usize>,
    /// How long a batch waits for more entries (after a batch of more than one), in
    /// milliseconds; fractions are kept to the microsecond, 0 takes only what is queued
    /// [default: 0.25].
    #[arg(long, env = "BYLINE_BATCH_WAIT_MS")]
    batch_wait_ms: Option<f64>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464).
    #[arg(long, env = "BYLINE_METRICS")]
    metrics: Option<SocketAddr>,
    /// Threads that run calls [default: the cores this process may use]. With 1, calls run on
    /// a single-threaded scheduler, which does less bookkeeping per call than a work-stealing
    /// pool of one.
    #[arg(long, env = "BYLINE_WORKER_THREADS")]
    worker_threads: Option<usize>,
    /// TLS certificate chain (PEM).
    #[arg(long, env = "BYLINE_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "BYLINE_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

#[derive(serde::Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct ServeFile {
    listen: Option<SocketAddr>,
    database: Option<String>,
    keys: Option<PathBuf>,
    log_origin: Option<String>,
    max_article_bytes: Option<usize>,
    max_concurrent: Option<usize>,
    batch_max: Option<usize>,
    batch_wait_ms: Option<f64>,
    metrics: Option<SocketAddr>,
    worker_threads: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// Settings that shape the process rather than the service.
struct ProcessSettings {
    /// Threads that run calls.
    worker_threads: usize,
}

fn resolve(args: ServeArgs) -> Result<(ServeConfig, ProcessSettings)> {
    let file: ServeFile = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("in config file {}", path.display()))?
        }
        None => ServeFile::default(),
    };
    let worker_threads = match args.worker_threads.or(file.worker_threads) {
        Some(0) => bail!("worker_threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let max_article_bytes = args
        .max_article_bytes
        .or(file.max_article_bytes)
        .unwrap_or(crate::core::constants::DEFAULT_MAX_ARTICLE_BYTES);
    let config = ServeConfig {
        listen: args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50051))),
        database: args
            .database
            .or(file.database)
            .unwrap_or_else(|| "sqlite://data/byline.db".into()),
        keys: args
            .keys
            .or(file.keys)
            .unwrap_or_else(|| PathBuf::from("keys")),
        log_origin: args
            .log_origin
            .or(file.log_origin)
            .unwrap_or_else(|| "byline.localhost/log".into()),
        limits: Limits {
            max_article_bytes,
            max_concurrent: args.max_concurrent.or(file.max_concurrent).unwrap_or(1024),
            stream_window: 64,
        },
        sequencer: SequencerSettings {
            max_batch: args.batch_max.or(file.batch_max).unwrap_or(256).max(1),
            max_wait: match args.batch_wait_ms.or(file.batch_wait_ms) {
                Some(ms) => batch_wait(ms)?,
                None => DEFAULT_BATCH_WAIT,
            },
            queue: 4096,
        },
        metrics: args.metrics.or(file.metrics),
        tls_cert: args.tls_cert.or(file.tls_cert),
        tls_key: args.tls_key.or(file.tls_key),
        // Room for the article, its protobuf framing and the authorship fields.
        max_message_bytes: max_article_bytes + 1024 * 1024,
    };
    Ok((config, ProcessSettings { worker_threads }))
}

/// The batch wait of `batch_wait_ms`: 0 to 1,000 milliseconds, kept to the microsecond.
fn batch_wait(ms: f64) -> Result<std::time::Duration> {
    if !(0.0..=1000.0).contains(&ms) {
        bail!("batch_wait_ms must be a number of milliseconds from 0 to 1000, not {ms}");
    }
    Ok(std::time::Duration::from_micros(
        (ms * 1000.0).round() as u64
    ))
}

/// A runtime for one blocking CLI command that talks to a server.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `byline serve`.
pub fn serve(args: ServeArgs) -> Result<u8> {
    let (config, process) = resolve(args)?;
    init_tracing();
    let runtime = if process.worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(process.worker_threads)
            .enable_all()
            .build()
    }
    .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = crate::service::shutdown_signal()?;
        crate::service::serve(config, shutdown, |addr| {
            eprintln!("byline: listening on {addr}")
        })
        .await
    })?;
    Ok(EXIT_OK)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BYLINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(super::render::use_colour())
        .try_init();
}

/// `byline token …`.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token for a publisher (printed once).
    Create {
        /// The publisher's domain.
        #[arg(long)]
        publisher: String,
        /// The publisher's display name.
        #[arg(long)]
        name: Option<String>,
        /// May call administrative RPCs.
        #[arg(long)]
        admin: bool,
        /// Expires after this long: e.g. 90d, 12h, 30m.
        #[arg(long)]
        expires: Option<String>,
        /// The database.
        #[arg(
            long,
            env = "BYLINE_DATABASE",
            default_value = "sqlite://data/byline.db"
        )]
        database: String,
    },
    /// List tokens (ids and publishers; secrets are never stored).
    List {
        /// The database.
        #[arg(
            long,
            env = "BYLINE_DATABASE",
            default_value = "sqlite://data/byline.db"
        )]
        database: String,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token id (the part after `byl_`, before the second `_`).
        id: String,
        /// The database.
        #[arg(
            long,
            env = "BYLINE_DATABASE",
            default_value = "sqlite://data/byline.db"
        )]
        database: String,
    },
}

/// Parses `90d`, `12h`, `30m`, `45s`.
pub fn parse_duration_secs(text: &str) -> Result<i64> {
    let (num, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = num
        .parse()
        .map_err(|_| anyhow!("duration {text:?} must look like 90d, 12h, 30m or 45s"))?;
    let mult = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => bail!("duration {text:?} must end in d, h, m or s"),
    };
    n.checked_mul(mult)
        .filter(|s| *s > 0)
        .ok_or_else(|| anyhow!("duration {text:?} is out of range"))
}

/// `byline token …`.
pub fn token(cmd: TokenCommand) -> Result<u8> {
    runtime()?.block_on(async {
        match cmd {
            TokenCommand::Create {
                publisher,
                name,
                admin,
                expires,
                database,
            } => {
                check_domain(&publisher).map_err(|_| {
                    anyhow!("--publisher {publisher:?} is not a lowercase domain name")
                })?;
                if publisher == crate::service::LOG_KEY_NAME {
                    bail!("--publisher {publisher:?} is reserved: keys/log.key is the transparency log's key");
                }
                let store = crate::service::open_store(&database).await?;
                let now = Timestamp::now();
                let expires_at = match expires {
                    Some(e) => Some(
                        Timestamp::from_unix(now.unix() + parse_duration_secs(&e)?)
                            .ok_or_else(|| anyhow!("--expires is out of range"))?,
                    ),
                    None => None,
                };
                let known = store
                    .publishers()
                    .await?
                    .into_iter()
                    .find(|(d, _)| *d == publisher);
                let display = name
                    .or_else(|| known.map(|(_, n)| n))
                    .unwrap_or_else(|| publisher.clone());
                store.upsert_publisher(&publisher, &display).await?;
                let token = auth::create_token(&publisher, admin, expires_at, now);
                store.insert_token(&token.record).await?;
                eprintln!(
                    "token {} for {publisher}{}{} (shown once; keep it secret):",
                    token.record.id,
                    if admin { ", admin" } else { "" },
                    expires_at
                        .map(|e| format!(", expires {e}"))
                        .unwrap_or_default()
                );
                println!("{}", token.text.as_str());
                Ok(EXIT_OK)
            }
            TokenCommand::List { database } => {
                let store = crate::service::open_store(&database).await?;
                for t in store.tokens().await? {
                    println!(
                        "{}  {}  {}{}{}",
                        t.id,
                        t.publisher,
                        t.created_at,
                        if t.admin { "  admin" } else { "" },
                        if t.revoked {
                            "  REVOKED".to_string()
                        } else {
                            t.expires_at
                                .map(|e| format!("  expires {e}"))
                                .unwrap_or_default()
                        }
                    );
                }
                Ok(EXIT_OK)
            }
            TokenCommand::Revoke { id, database } => {
                let store = crate::service::open_store(&database).await?;
                if store.revoke_token(&id).await? {
                    println!("revoked token {id}");
                    Ok(EXIT_OK)
                } else {
                    bail!("no token with id {id}")
                }
            }
        }
    })
}

/// `byline migrate` settings.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// sqlite://PATH or postgres://USER@HOST/DATABASE.
    #[arg(
        long,
        env = "BYLINE_DATABASE",
        default_value = "sqlite://data/byline.db"
    )]
    database: String,
}

/// `byline migrate`: creates or upgrades the database schema (`serve` also does this on start).
pub fn migrate(args: MigrateArgs) -> Result<u8> {
    runtime()?.block_on(async {
        crate::service::open_store(&args.database).await?;
        eprintln!(
            "byline: the schema of {} is up to date",
            crate::storage::redact_url(&args.database)
        );
        Ok(EXIT_OK)
    })
}

/// `byline trust add`.
#[derive(Args, Debug)]
pub struct TrustAddArgs {
    /// The server to pin from.
    #[arg(long)]
    server: String,
    /// The publisher whose keys to pin.
    #[arg(long)]
    publisher: String,
    /// The expected key id (fingerprint) or its first 16+ hex digits; refuse if it differs.
    #[arg(long)]
    expect: Option<String>,
    /// The trust store to add to.
    #[arg(long, default_value = "keys/trust.toml")]
    trust: PathBuf,
    /// A CA certificate (PEM) for the server's TLS certificate.
    #[arg(long, env = "BYLINE_CA_CERT")]
    ca_cert: Option<PathBuf>,
}

/// `byline trust add`: trust on first use, pinning one publisher's keys and the log key.
pub fn trust_add(a: TrustAddArgs) -> Result<u8> {
    runtime()?.block_on(async {
        let mut client = connect(&a.server, a.ca_cert.as_deref()).await?;
        let keys = client
            .get_keys(pb::GetKeysRequest {
                publisher_domain: a.publisher.clone(),
            })
            .await
            .map_err(|s| anyhow!("GetKeys failed: {}", status_message(&s)))?
            .into_inner();
        let wanted: Vec<&pb::PublisherKey> = keys
            .publisher_keys
            .iter()
            .filter(|k| k.publisher_domain == a.publisher)
            .collect();
        if wanted.is_empty() {
            bail!("{} has no keys for publisher {}", a.server, a.publisher);
        }
        if let Some(expect) = &a.expect {
            let expect = expect.to_ascii_lowercase();
            if expect.len() < 16 || !wanted.iter().any(|k| k.keyid.starts_with(&expect)) {
                let got: Vec<&str> = wanted.iter().map(|k| k.keyid.as_str()).collect();
                bail!(
                    "fingerprint mismatch: expected {expect} but {} serves {} for {}; nothing was pinned",
                    a.server,
                    got.join(", "),
                    a.publisher
                );
            }
        }
        let mut trust = load_trust(&a.trust, true)?;
        let source = format!("trust add {} at {}", a.server, Timestamp::now());
        for k in &wanted {
            let vk = public_key_from_base64(&k.public_key)?;
            let added = trust.add_publisher_key(&a.publisher, Some(&k.publisher_name), &vk, true, &source)?;
            println!(
                "{} {} key {}",
                if added { "pinned" } else { "already pinned" },
                a.publisher,
                k.keyid
            );
        }
        crate::core::note::NoteVerifier::parse(&keys.log_verifier_key)
            .map_err(|e| anyhow!("the server's log key is malformed: {e}"))?;
        if !trust.logs.iter().any(|l| l.verifier_key == keys.log_verifier_key) {
            trust.logs.push(crate::core::trust::LogEntryTrust {
                origin: keys.log_origin.clone(),
                verifier_key: keys.log_verifier_key.clone(),
                source: Some(source),
            });
        }
        println!("pinned log {} key {}", keys.log_origin, keys.log_verifier_key);
        save_trust(&a.trust, &trust)?;
        println!("saved {}", a.trust.display());
        Ok(EXIT_OK)
    })
}

/// Signs articles through a server with one `SignStream`, writing each bundle as a sidecar;
/// a failure on one article is reported and does not stop the others.
pub fn sign_remote(
    server: &str,
    ca_cert: Option<&Path>,
    requests: Vec<(PathBuf, pb::SignRequest)>,
    failed_before: usize,
) -> Result<u8> {
    let token = super::remote::token_from_env()?;
    runtime()?.block_on(async {
        let mut client = connect(server, ca_cert).await?;
        let total = requests.len();
        let (paths, mut reqs): (Vec<PathBuf>, Vec<pb::SignRequest>) = requests.into_iter().unzip();
        for (i, r) in reqs.iter_mut().enumerate() {
            r.request_id = i as u64;
        }
        let request = super::remote::authorized(tokio_stream::iter(reqs), &token)?;
        let mut answers = client
            .sign_stream(request)
            .await
            .map_err(|s| anyhow!("SignStream failed: {}", status_message(&s)))?
            .into_inner();
        let bar = super::progress_bar(total);
        let mut failed = failed_before;
        let mut answered = 0usize;
        while let Some(answer) = answers.message().await.map_err(|s| {
            anyhow!(
                "SignStream failed after {answered} answers: {}",
                status_message(&s)
            )
        })? {
            answered += 1;
            let Some(path) = paths.get(answer.request_id as usize) else {
                bail!(
                    "the server answered an unknown request {}",
                    answer.request_id
                );
            };
            match answer.result {
                Some(pb::sign_stream_response::Result::Signed(signed)) => {
                    let out = super::files::sidecar_path(path);
                    super::files::write_atomic(&out, signed.bundle_json.as_bytes())?;
                    match &bar {
                        Some(bar) => bar.inc(1),
                        None => println!(
                            "signed {} -> {} (log index {})",
                            path.display(),
                            out.display(),
                            signed.log_index
                        ),
                    }
                }
                Some(pb::sign_stream_response::Result::Error(e)) => {
                    failed += 1;
                    let line = format!(
                        "byline: error: {}: {:?}: {}",
                        path.display(),
                        tonic::Code::from_i32(e.code),
                        e.message
                    );
                    match &bar {
                        Some(bar) => bar.println(line),
                        None => eprintln!("{line}"),
                    }
                }
                None => failed += 1,
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if answered < total {
            failed += total - answered;
            eprintln!("byline: the server answered {answered} of {total} requests");
        }
        let total = total + failed_before;
        eprintln!(
            "signed {} of {total} articles{}",
            total - failed,
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        );
        Ok(if failed > 0 {
            EXIT_NOT_VERIFIED
        } else {
            EXIT_OK
        })
    })
}

/// Looks an article's manifests up on a server by its text digest (newest first).
pub fn lookup_bundles(
    server: &str,
    ca_cert: Option<&Path>,
    text_sha256: &str,
) -> Result<Vec<String>> {
    runtime()?.block_on(async {
        let mut client = connect(server, ca_cert).await?;
        let resp = client
            .lookup(pb::LookupRequest {
                digest: Some(pb::lookup_request::Digest::TextSha256(
                    text_sha256.to_string(),
                )),
            })
            .await
            .map_err(|s| anyhow!("Lookup failed: {}", status_message(&s)))?
            .into_inner();
        Ok(resp
            .entries
            .into_iter()
            .rev()
            .map(|e| e.bundle_json)
            .collect())
    })
}

/// `byline log …`.
#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Print the log's latest checkpoint, after checking its signature with the pinned log key.
    Checkpoint {
        /// The server.
        #[arg(long)]
        server: String,
        /// The trust store holding the pinned log key.
        #[arg(long, default_value = "keys/trust.toml")]
        trust: PathBuf,
        /// A CA certificate (PEM) for the server's TLS certificate.
        #[arg(long, env = "BYLINE_CA_CERT")]
        ca_cert: Option<PathBuf>,
    },
    /// Prove that the entry at an index is in the log's latest checkpoint, and check the proof.
    Prove {
        /// The server.
        #[arg(long)]
        server: String,
        /// The log index.
        #[arg(long)]
        index: u64,
        /// The trust store holding the pinned log key.
        #[arg(long, default_value = "keys/trust.toml")]
        trust: PathBuf,
        /// A CA certificate (PEM) for the server's TLS certificate.
        #[arg(long, env = "BYLINE_CA_CERT")]
        ca_cert: Option<PathBuf>,
    },
    /// Read every entry since an index, check them against the latest checkpoint, and list
    /// each one made under a publisher's keys (or claiming that publisher).
    Monitor {
        /// The server.
        #[arg(long)]
        server: String,
        /// The publisher to watch (its keys come from the trust store).
        #[arg(long)]
        publisher: String,
        /// The first log index to read.
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// The trust store with the publisher's keys and the pinned log key.
        #[arg(long, default_value = "keys/trust.toml")]
        trust: PathBuf,
        /// A CA certificate (PEM) for the server's TLS certificate.
        #[arg(long, env = "BYLINE_CA_CERT")]
        ca_cert: Option<PathBuf>,
    },
    /// Print the consistency proof between two tree sizes.
    Consistency {
        /// The server.
        #[arg(long)]
        server: String,
        /// The older size.
        #[arg(long)]
        from: u64,
        /// The newer size (default: the latest).
        #[arg(long, default_value_t = 0)]
        to: u64,
        /// A CA certificate (PEM) for the server's TLS certificate.
        #[arg(long, env = "BYLINE_CA_CERT")]
        ca_cert: Option<PathBuf>,
    },
}

/// `byline log …`.
pub fn log(cmd: LogCommand) -> Result<u8> {
    runtime()?.block_on(async {
        match cmd {
            LogCommand::Checkpoint {
                server,
                trust,
                ca_cert,
            } => {
                let trust = load_trust(&trust, false)?;
                let mut client = connect(&server, ca_cert.as_deref()).await?;
                let cp = client
                    .get_checkpoint(pb::GetCheckpointRequest {})
                    .await
                    .map_err(|s| anyhow!("GetCheckpoint failed: {}", status_message(&s)))?
                    .into_inner();
                let checkpoint = open_checkpoint(&cp.checkpoint, &trust.logs)?;
                print!("{}", cp.checkpoint);
                eprintln!(
                    "checkpoint of {} verified: size {}, root {}",
                    checkpoint.origin,
                    checkpoint.size,
                    encode_base64(&checkpoint.root_hash)
                );
                Ok(EXIT_OK)
            }
            LogCommand::Prove {
                server,
                index,
                trust,
                ca_cert,
            } => {
                let trust = load_trust(&trust, false)?;
                let mut client = connect(&server, ca_cert.as_deref()).await?;
                let proof = client
                    .get_inclusion_proof(pb::GetInclusionProofRequest {
                        leaf: Some(pb::get_inclusion_proof_request::Leaf::LogIndex(index)),
                        tree_size: 0,
                    })
                    .await
                    .map_err(|s| anyhow!("GetInclusionProof failed: {}", status_message(&s)))?
                    .into_inner();
                let entries = client
                    .get_entries(pb::GetEntriesRequest {
                        start: index,
                        count: 1,
                    })
                    .await
                    .map_err(|s| anyhow!("GetEntries failed: {}", status_message(&s)))?
                    .into_inner();
                let leaf = entries
                    .leaves
                    .first()
                    .filter(|l| l.log_index == index)
                    .ok_or_else(|| anyhow!("the server returned no entry {index}"))?;
                let checkpoint = open_checkpoint(&proof.checkpoint, &trust.logs)?;
                let hashes = hashes_from_bytes(&proof.hashes)?;
                let verdict = verify_inclusion(
                    index,
                    checkpoint.size,
                    &leaf_hash(&leaf.leaf),
                    &hashes,
                    &checkpoint.root_hash,
                );
                for h in &hashes {
                    println!("{}", encode_base64(h));
                }
                match verdict {
                    Ok(()) => {
                        eprintln!(
                            "entry {index} is included in {} at size {}",
                            checkpoint.origin, checkpoint.size
                        );
                        Ok(EXIT_OK)
                    }
                    Err(e) => {
                        eprintln!("inclusion proof for entry {index} does NOT verify: {e}");
                        Ok(EXIT_NOT_VERIFIED)
                    }
                }
            }
            LogCommand::Monitor {
                server,
                publisher,
                since,
                trust,
                ca_cert,
            } => {
                monitor(
                    &server,
                    &publisher,
                    since,
                    &load_trust(&trust, false)?,
                    ca_cert.as_deref(),
                )
                .await
            }
            LogCommand::Consistency {
                server,
                from,
                to,
                ca_cert,
            } => {
                let mut client = connect(&server, ca_cert.as_deref()).await?;
                let proof = client
                    .get_consistency_proof(pb::GetConsistencyProofRequest {
                        from_size: from,
                        to_size: to,
                    })
                    .await
                    .map_err(|s| anyhow!("GetConsistencyProof failed: {}", status_message(&s)))?
                    .into_inner();
                println!("from {} to {}", proof.from_size, proof.to_size);
                for h in &proof.hashes {
                    println!("{}", encode_base64(h));
                }
                Ok(EXIT_OK)
            }
        }
    })
}

/// Where the CLI remembers the largest checkpoint it has seen of each log: `BYLINE_STATE_DIR`,
/// else `$XDG_STATE_HOME/byline`, else `~/.local/state/byline`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BYLINE_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("byline");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/byline"),
        None => PathBuf::from(".byline-state"),
    }
}

fn remembered_checkpoint_path(state_dir: &Path, origin: &str) -> PathBuf {
    let safe: String = origin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    state_dir.join("checkpoints").join(format!("{safe}.note"))
}

/// Proves the bundle's checkpoint and the largest one remembered consistent with the log's
/// latest checkpoint, then remembers the latest. Returns the latest size, or why the log forked.
pub fn check_log_consistency(
    server: &str,
    ca_cert: Option<&Path>,
    trust: &crate::core::trust::TrustStore,
    bundle_checkpoint: &crate::core::note::Checkpoint,
    state_dir: &Path,
) -> Result<std::result::Result<u64, String>> {
    use crate::core::logproof::check_consistent;
    use crate::core::note::Checkpoint;
    runtime()?.block_on(async {
        let mut client = connect(server, ca_cert).await?;
        let latest_note = client
            .get_checkpoint(pb::GetCheckpointRequest {})
            .await
            .map_err(|s| anyhow!("GetCheckpoint failed: {}", status_message(&s)))?
            .into_inner()
            .checkpoint;
        let latest = match open_checkpoint(&latest_note, &trust.logs) {
            Ok(cp) => cp,
            Err(e) => {
                return Ok(Err(format!(
                    "the server's latest checkpoint does not verify: {e}"
                )))
            }
        };
        let remembered_path = remembered_checkpoint_path(state_dir, &latest.origin);
        let remembered: Option<Checkpoint> = std::fs::read_to_string(&remembered_path)
            .ok()
            .and_then(|note| open_checkpoint(&note, &trust.logs).ok());
        let mut older: Vec<(&str, Checkpoint)> =
            vec![("the bundle's checkpoint", bundle_checkpoint.clone())];
        if let Some(r) = remembered.clone() {
            older.push(("the largest checkpoint seen before", r));
        }
        for (what, old) in older {
            let proof = if old.size > 0 && old.size < latest.size {
                let p = client
                    .get_consistency_proof(pb::GetConsistencyProofRequest {
                        from_size: old.size,
                        to_size: latest.size,
                    })
                    .await
                    .map_err(|s| anyhow!("GetConsistencyProof failed: {}", status_message(&s)))?
                    .into_inner();
                hashes_from_bytes(&p.hashes)?
            } else {
                Vec::new()
            };
            if let Err(e) = check_consistent(&old, &latest, &proof) {
                return Ok(Err(format!(
                    "{e} ({what} of size {} vs the server's latest of size {})",
                    old.size, latest.size
                )));
            }
        }
        if remembered.as_ref().is_none_or(|r| latest.size > r.size) {
            if let Some(dir) = remembered_path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            super::files::write_atomic(&remembered_path, latest_note.as_bytes())?;
        }
        Ok(Ok(latest.size))
    })
}

/// `byline log monitor`: every entry since `since`, checked against the latest checkpoint.
async fn monitor(
    server: &str,
    publisher: &str,
    since: u64,
    trust: &crate::core::trust::TrustStore,
    ca_cert: Option<&Path>,
) -> Result<u8> {
    use crate::core::dsse::{verify_envelope, Envelope};
    use crate::core::manifest::AuthorshipStatement;
    let keys: Vec<_> = trust
        .trusted_keys()?
        .into_iter()
        .filter(|k| k.entry.publisher == publisher)
        .collect();
    if keys.is_empty() {
        bail!("the trust store has no keys for {publisher}; pin them with `byline trust add`");
    }
    let mut client = connect(server, ca_cert).await?;
    let note = client
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .map_err(|s| anyhow!("GetCheckpoint failed: {}", status_message(&s)))?
        .into_inner()
        .checkpoint;
    let checkpoint = open_checkpoint(&note, &trust.logs)?;
    let log_keys: Vec<ed25519_dalek::VerifyingKey> =
        crate::core::logproof::pinned_log_verifiers(&trust.logs)?
            .into_iter()
            .filter(|(_, pin)| pin.origin == checkpoint.origin)
            .map(|(v, _)| *v.key())
            .collect();
    let revocation_line = |envelope: &Envelope,
                           parsed: Result<
        crate::core::revocation::RevocationStatement,
        crate::core::revocation::RevocationError,
    >,
                           keys: &[crate::core::trust::TrustedKey],
                           log_keys: &[ed25519_dalek::VerifyingKey]|
     -> Option<(String, bool)> {
        use crate::core::revocation::RevocationAction;
        let statement = match parsed {
            Ok(s) => s,
            Err(e) => return Some((format!("MALFORMED REVOCATION: {e}"), true)),
        };
        let p = &statement.predicate;
        if p.publisher_domain != publisher {
            return None;
        }
        match p.action {
            RevocationAction::RetractManifest => {
                let target = p.manifest.as_ref().map(|m| m.log_index).unwrap_or_default();
                match verify_envelope(envelope, keys, |k| &k.key) {
                    Ok(_) => Some((
                        format!("RETRACTION of entry {target}: {:?}", p.reason),
                        false,
                    )),
                    Err(_) => Some((
                        format!(
                            "RETRACTION of entry {target} CLAIMS {publisher} BUT IS NOT SIGNED BY ITS KEYS"
                        ),
                        true,
                    )),
                }
            }
            RevocationAction::RevokeKey => {
                let (id, since) = p
                    .key
                    .as_ref()
                    .map(|k| (k.keyid.clone(), k.revoked_since.to_string()))
                    .unwrap_or_default();
                let short = crate::core::dsse::short_keyid(&id).to_string();
                match verify_envelope(envelope, log_keys, |k| k) {
                    Ok(_) => Some((
                        format!("KEY REVOKED {short} from {since}: {:?}", p.reason),
                        false,
                    )),
                    Err(_) => Some((
                        format!("KEY REVOCATION of {short} NOT SIGNED BY THE LOG"),
                        true,
                    )),
                }
            }
        }
    };
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Leaf {
        dsse_envelope: Envelope,
        integrated_time: String,
    }
    let mut index = since;
    let mut mine = 0usize;
    let mut bad = 0usize;
    let mut leaves_seen = Vec::new();
    while index < checkpoint.size {
        let page = client
            .get_entries(pb::GetEntriesRequest {
                start: index,
                count: 1000,
            })
            .await
            .map_err(|s| anyhow!("GetEntries failed: {}", status_message(&s)))?
            .into_inner();
        if page.leaves.is_empty() {
            bail!(
                "the server returned no entries at {index} although its checkpoint has {}",
                checkpoint.size
            );
        }
        for leaf in page.leaves {
            if leaf.log_index != index || index >= checkpoint.size {
                break;
            }
            let hash = leaf_hash(&leaf.leaf);
            if since > 0 {
                // Without the earlier leaves, each entry is proved on its own.
                let proof = client
                    .get_inclusion_proof(pb::GetInclusionProofRequest {
                        leaf: Some(pb::get_inclusion_proof_request::Leaf::LogIndex(index)),
                        tree_size: checkpoint.size,
                    })
                    .await
                    .map_err(|s| anyhow!("GetInclusionProof failed: {}", status_message(&s)))?
                    .into_inner();
                let hashes = hashes_from_bytes(&proof.hashes)?;
                if let Err(e) = verify_inclusion(
                    index,
                    checkpoint.size,
                    &hash,
                    &hashes,
                    &checkpoint.root_hash,
                ) {
                    println!("{index}\tNOT IN CHECKPOINT: {e}");
                    bad += 1;
                }
            }
            leaves_seen.push(hash);
            let parsed: Option<Leaf> = serde_json::from_slice(&leaf.leaf).ok();
            let Some(parsed) = parsed else {
                println!("{index}\tMALFORMED LEAF");
                bad += 1;
                index += 1;
                continue;
            };
            let payload = crate::core::dsse::decode_base64_any(&parsed.dsse_envelope.payload);
            if let Some(revocation) = payload
                .as_deref()
                .filter(|p| crate::core::revocation::is_revocation_payload(p))
                .map(crate::core::revocation::from_payload)
            {
                let line = revocation_line(&parsed.dsse_envelope, revocation, &keys, &log_keys);
                if let Some((line, problem)) = line {
                    if problem {
                        bad += 1;
                    }
                    println!("{index}\t{}\t{line}", parsed.integrated_time);
                }
                index += 1;
                continue;
            }
            let statement = payload.and_then(|p| AuthorshipStatement::from_payload(&p).ok());
            let claims_publisher = statement
                .as_ref()
                .is_some_and(|s| s.predicate.publisher.domain == publisher);
            match verify_envelope(&parsed.dsse_envelope, &keys, |k| &k.key) {
                Ok(v) => {
                    mine += 1;
                    let what = statement
                        .as_ref()
                        .map(|s| {
                            format!(
                                "{}\t{}\t{:?}",
                                s.subject_name(),
                                s.predicate.authorship,
                                s.predicate.byline
                            )
                        })
                        .unwrap_or_else(|| "(not an authorship statement)".into());
                    let flag = if claims_publisher {
                        ""
                    } else {
                        "\tNAMES ANOTHER PUBLISHER"
                    };
                    println!(
                        "{index}\t{}\tkey {}\t{what}{flag}",
                        parsed.integrated_time,
                        crate::core::dsse::short_keyid(&v.signer.keyid)
                    );
                }
                Err(_) if claims_publisher => {
                    bad += 1;
                    println!(
                        "{index}\t{}\tCLAIMS {publisher} BUT IS NOT SIGNED BY ITS KEYS",
                        parsed.integrated_time
                    );
                }
                Err(_) => {}
            }
            index += 1;
        }
    }
    if since == 0 {
        let root = crate::core::merkle::root_from_leaf_hashes(&leaves_seen);
        if root != checkpoint.root_hash {
            println!("the entries do NOT hash to the checkpoint's root: the log is inconsistent");
            bad += 1;
        }
    }
    eprintln!(
        "{} entries read ({since}..{}) against the checkpoint of size {}; {mine} under {publisher}'s keys; {bad} problem(s)",
        checkpoint.size.saturating_sub(since),
        checkpoint.size,
        checkpoint.size
    );
    Ok(if bad == 0 { EXIT_OK } else { EXIT_NOT_VERIFIED })
}

/// One manifest of an edit chain, as `verify --history` shows it.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// Its log index.
    pub log_index: u64,
    /// The log's time for it.
    pub integrated_time: String,
    /// The article's URL or id.
    pub subject: String,
    /// The signed byline.
    pub byline: String,
    /// The signed authorship class.
    pub authorship: crate::core::manifest::AuthorshipClass,
    /// SHA-256 of its statement payload.
    pub statement_sha256: String,
    /// Whether its signature verifies under the local trust store.
    pub signature_trusted: bool,
}

/// An article's edit chain around one manifest: the versions it replaced and those that
/// replaced it, each oldest first.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct History {
    /// Earlier versions, oldest first.
    pub earlier: Vec<HistoryEntry>,
    /// Later versions, oldest first.
    pub later: Vec<HistoryEntry>,
}

/// Walks an edit chain on a server from a manifest's statement payload, back through
/// `supersedes` and forward through the manifests that supersede it (at most 100 each way).
pub fn edit_history(
    server: &str,
    ca_cert: Option<&Path>,
    trust: &crate::core::trust::TrustStore,
    payload: &[u8],
) -> Result<History> {
    use crate::core::digest::Sha256Digest;
    use crate::core::manifest::AuthorshipStatement;
    let keys = trust.trusted_keys()?;
    runtime()?.block_on(async {
        let client = connect(server, ca_cert).await?;
        let keys = &keys;
        let fetch = |digest: pb::lookup_request::Digest| {
            let mut client = client.clone();
            async move {
                let found = client
                    .lookup(pb::LookupRequest {
                        digest: Some(digest),
                    })
                    .await
                    .map_err(|s| anyhow!("Lookup failed: {}", status_message(&s)))?
                    .into_inner();
                let Some(entry) = found.entries.into_iter().next() else {
                    return Ok::<_, anyhow::Error>(None);
                };
                let bundle = crate::core::bundle::Bundle::from_json(entry.bundle_json.as_bytes())?;
                let payload = crate::core::dsse::decode_base64_any(&bundle.dsse_envelope.payload)
                    .ok_or_else(|| {
                    anyhow!("a manifest in the chain has a payload that is not base64")
                })?;
                let trusted =
                    crate::core::dsse::verify_envelope(&bundle.dsse_envelope, keys, |k| &k.key)
                        .is_ok();
                let statement = AuthorshipStatement::from_payload(&payload)?;
                let item = HistoryEntry {
                    log_index: entry.log_index,
                    integrated_time: bundle
                        .log_entry
                        .as_ref()
                        .map(|l| l.integrated_time.clone())
                        .unwrap_or_default(),
                    subject: statement.subject_name().to_string(),
                    byline: statement.predicate.byline.clone(),
                    authorship: statement.predicate.authorship,
                    statement_sha256: Sha256Digest::of(&payload).to_hex(),
                    signature_trusted: trusted,
                };
                Ok(Some((item, statement)))
            }
        };
        let mut history = History::default();
        let own = AuthorshipStatement::from_payload(payload)?;
        let mut back = own.predicate.supersedes.clone();
        while let Some(link) = back.take() {
            if history.earlier.len() >= 100 {
                break;
            }
            let digest =
                pb::lookup_request::Digest::StatementSha256(link.statement_sha256.to_hex());
            let Some((item, statement)) = fetch(digest).await? else {
                break;
            };
            history.earlier.push(item);
            back = statement.predicate.supersedes.clone();
        }
        history.earlier.reverse();
        let mut current = Sha256Digest::of(payload).to_hex();
        while history.later.len() < 100 {
            let digest = pb::lookup_request::Digest::SupersedesSha256(current.clone());
            let Some((item, _)) = fetch(digest).await? else {
                break;
            };
            current = item.statement_sha256.clone();
            history.later.push(item);
        }
        Ok(history)
    })
}

#[cfg(test)]
mod tests {
    use super::{batch_wait, SequencerSettings, DEFAULT_BATCH_WAIT};
    use std::time::Duration;

    /// `serve --help` states the batch defaults by hand (the flags are options, so that a
    /// config file's value can come between them and the default); they must be the ones the
    /// sequencer uses.
    #[test]
    fn serve_help_states_the_batch_defaults_the_sequencer_uses() {
        use clap::CommandFactory;
        let mut cli = crate::cli::Cli::command();
        let serve = cli.find_subcommand_mut("serve").expect("a serve command");
        let help = serve.render_long_help().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let defaults = SequencerSettings::default();
        let wait_ms = defaults.max_wait.as_secs_f64() * 1000.0;
        assert_eq!(defaults.max_wait, DEFAULT_BATCH_WAIT);
        for stated in [
            format!("0 takes only what is queued [default: {wait_ms}]"),
            format!(
                "Most entries per group-commit batch [default: {}]",
                defaults.max_batch
            ),
        ] {
            assert!(
                help.contains(&stated),
                "serve --help lacks {stated:?}:\n{help}"
            );
        }
    }

    /// A batch wait is read in milliseconds with fractions to the microsecond; a negative,
    /// huge or non-numeric value is refused with a message that names the setting.
    #[test]
    fn batch_wait_reads_fractions_of_a_millisecond_and_refuses_nonsense() {
        assert_eq!(batch_wait(0.25).unwrap(), Duration::from_micros(250));
        assert_eq!(batch_wait(1.0).unwrap(), Duration::from_millis(1));
        assert_eq!(batch_wait(0.0).unwrap(), Duration::ZERO);
        assert_eq!(batch_wait(0.0004).unwrap(), Duration::ZERO);
        for bad in [-1.0, 1000.5, f64::NAN, f64::INFINITY] {
            let e = batch_wait(bad).unwrap_err().to_string();
            assert!(e.contains("batch_wait_ms"), "{bad}: {e}");
        }
    }
}
