//! The tonic server: start-up (store, log key, development publisher), the gRPC service with
//! health and reflection, metrics, TLS and graceful shutdown.

pub mod auth;
mod batch_timer;
pub mod coalesce;
pub mod codec;
pub mod cpu_pool;
pub mod grpc;
pub mod log;
pub mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::core::keys::{public_key_to_pem, SigningKey};
use crate::core::manifest::Timestamp;
use crate::core::merkle::empty_root;
use crate::keyfile::{load_signing_key, write_secret};
use crate::proto::byline_server::BylineServer;
use crate::storage::{redact_url, AnyStore, LogMeta, Store};
use grpc::{BylineService, Limits};
use log::{LogSigner, Sequencer, SequencerSettings};

/// The development publisher created on first start when none exists.
pub const DEV_PUBLISHER: &str = "localhost";

/// Everything `byline serve` can be told.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// `sqlite://PATH` (embedded) or `postgres://…` (shared by several replicas).
    pub database: String,
    /// The key directory (publisher keys, `log.key`, `trust.toml`).
    pub keys: PathBuf,
    /// The log's origin line (also its note key name).
    pub log_origin: String,
    /// Service limits.
    pub limits: Limits,
    /// Group-commit settings.
    pub sequencer: SequencerSettings,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// TLS certificate chain (PEM), with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The largest gRPC message accepted, in bytes.
    pub max_message_bytes: usize,
}

/// The file stem of the log key under the key directory; no publisher may be named so.
pub const LOG_KEY_NAME: &str = "log";

/// The log key file inside the key directory.
pub fn log_key_path(keys: &Path) -> PathBuf {
    keys.join(format!("{LOG_KEY_NAME}.key"))
}

/// Opens the log key and the stored log together, creating both on first start, and refuses
/// to start when one is found without the other or they do not match (DESIGN.md).
pub async fn bind_log<S: Store>(store: &S, keys: &Path, origin: &str) -> Result<LogSigner> {
    let key_path = log_key_path(keys);
    let meta = store.log_meta().await?;
    let key_exists = key_path.exists();
    match (meta, key_exists) {
        (None, false) => {
            let state = store.log_state().await?;
            if state.range.size() > 0 {
                bail!("the database holds log entries but no log identity; refusing to start");
            }
            std::fs::create_dir_all(keys).with_context(|| format!("cannot create {}", keys.display()))?;
            let key = SigningKey::generate();
            write_secret(&key_path, key.to_pkcs8_pem()?.as_bytes(), false)?;
            std::fs::write(keys.join("log.pub"), public_key_to_pem(&key.verifying_key())?)?;
            let signer = LogSigner::new(key, origin)?;
            store
                .init_log_meta(&LogMeta {
                    origin: origin.to_string(),
                    verifier_key: signer.verifier_key(),
                })
                .await?;
            let note = signer.sign_checkpoint(0, empty_root())?;
            store.insert_checkpoint(0, &empty_root(), &note).await?;
            tracing::info!(origin, verifier_key = %signer.verifier_key(), "created a new transparency log");
            Ok(signer)
        }
        (None, true) => bail!(
            "found the log key {} but the database has no log: a log key without its log. \
             Point --database at the log this key belongs to, or move the key away to start a new log",
            key_path.display()
        ),
        (Some(meta), false) => bail!(
            "the database holds the log {:?} (key {}) but its key {} is missing; restore the key file",
            meta.origin,
            meta.verifier_key,
            key_path.display()
        ),
        (Some(meta), true) => {
            let key = load_signing_key(&key_path)?;
            let signer = LogSigner::new(key, &meta.origin)?;
            if signer.verifier_key() != meta.verifier_key {
                bail!(
                    "the log key {} ({}) does not match the database's log key {}; refusing to start",
                    key_path.display(),
                    signer.verifier_key(),
                    meta.verifier_key
                );
            }
            if meta.origin != origin {
                tracing::warn!(stored = %meta.origin, configured = origin, "the configured log origin differs from the stored log's; using the stored one");
            }
            Ok(signer)
        }
    }
}

/// Signs a checkpoint for the current tree if the newest stored one is older (after a crash
/// between a commit and its checkpoint).
async fn catch_up_checkpoint<S: Store>(store: &S, signer: &LogSigner) -> Result<()> {
    let state = store.log_state().await?;
    let latest = store.latest_checkpoint().await?.map(|(s, _)| s);
    if latest != Some(state.range.size()) {
        let note = signer.sign_checkpoint(state.range.size(), state.range.root())?;
        store
            .insert_checkpoint(state.range.size(), &state.range.root(), &note)
            .await?;
        tracing::info!(
            size = state.range.size(),
            "signed a checkpoint for entries committed before a restart"
        );
    }
    Ok(())
}

/// Creates the development publisher `localhost` (key, trust entry, token) when the database
/// has no publisher at all, and prints its token once.
async fn ensure_dev_publisher<S: Store>(store: &S, keys: &Path) -> Result<()> {
    if !store.publishers().await?.is_empty() {
        return Ok(());
    }
    let key_path = keys.join(format!("{DEV_PUBLISHER}.key"));
    let trust_path = keys.join("trust.toml");
    let mut trust = crate::cli::files::load_trust(&trust_path, true)?;
    if !key_path.exists() {
        let key = SigningKey::generate();
        write_secret(&key_path, key.to_pkcs8_pem()?.as_bytes(), false)?;
        std::fs::write(
            keys.join(format!("{DEV_PUBLISHER}.pub")),
            public_key_to_pem(&key.verifying_key())?,
        )?;
        trust.add_publisher_key(
            DEV_PUBLISHER,
            Some("Development publisher"),
            &key.verifying_key(),
            false,
            "serve (development setup)",
        )?;
        crate::cli::files::save_trust(&trust_path, &trust)?;
    }
    store
        .upsert_publisher(DEV_PUBLISHER, "Development publisher")
        .await?;
    let token = auth::create_token(DEV_PUBLISHER, true, None, Timestamp::now());
    store.insert_token(&token.record).await?;
    eprintln!(
        "\nDEVELOPMENT SETUP: created the publisher `{DEV_PUBLISHER}` with key {} and this API token \
         (shown once; it can sign for {DEV_PUBLISHER} and administer this server):\n\n    export BYLINE_TOKEN={}\n\n\
         For a real publisher: `byline keygen --publisher news.example` and \
         `byline token create --publisher news.example`.\n",
        key_path.display(),
        token.text.as_str()
    );
    Ok(())
}

/// Opens the store a URL names (`sqlite://PATH` or `postgres://…`) and brings its schema up to
/// date (idempotent; replicas starting together take turns).
pub async fn open_store(url: &str) -> Result<AnyStore> {
    let store = AnyStore::open(url)
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(url)))?;
    store
        .migrate()
        .await
        .with_context(|| format!("cannot migrate the database {}", redact_url(url)))?;
    Ok(store)
}

/// Runs the server until `shutdown` resolves, then drains in-flight calls. `on_bound` is told
/// the address actually bound (useful with port 0).
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<()> {
    let store = open_store(&config.database).await?;
    tracing::info!(backend = store.backend(), database = %redact_url(&config.database), "opened the store");
    run_with_store(store, config, shutdown, on_bound).await
}

async fn run_with_store<S: Store>(
    store: S,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<()> {
    // TLS settings are checked before anything is created, so a bad setup changes nothing.
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .tcp_nodelay(true);
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let cert =
                std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
            let key =
                std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
            builder = builder
                .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
                .context("invalid TLS certificate or key")?;
        }
        (None, None) => {}
        _ => bail!("TLS needs both --tls-cert and --tls-key"),
    }
    let signer = Arc::new(bind_log(&store, &config.keys, &config.log_origin).await?);
    catch_up_checkpoint(&store, &signer).await?;
    ensure_dev_publisher(&store, &config.keys).await?;
    let trust = crate::cli::files::load_trust(&config.keys.join("trust.toml"), true)?;
    let sequencer = Sequencer::start(store.clone(), signer.clone(), config.sequencer);
    let service = Arc::new(BylineService::new(
        store,
        config.limits,
        config.keys.clone(),
        signer.clone(),
        sequencer,
        trust,
    ));
    let byline = BylineServer::new(service)
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<BylineServer<Arc<BylineService<S>>>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| anyhow!("reflection: {e}"))?;

    if let Some(addr) = config.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for metrics on {addr}"))?;
        tracing::info!(%addr, "metrics on /metrics");
        tokio::spawn(metrics::serve(listener));
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, origin = signer.origin(), log_key = %signer.verifier_key(), "serving byline.v1");
    on_bound(bound);
    // Each connection's writes are gathered for one turn of the scheduler, so that the
    // answers completed together leave in one system call (`coalesce`).
    let incoming = futures_util::StreamExt::map(
        TcpIncoming::from(listener).with_nodelay(Some(true)),
        |connection| connection.map(coalesce::CoalescingIo::new),
    );
    builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(byline)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .context("server failed")?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Registers SIGTERM and SIGINT handlers now (so a signal that arrives during start-up is not
/// lost to the default action) and returns a future that resolves on either. Must be called
/// inside the runtime.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            tracing::info!("shutdown requested; draining in-flight calls");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutdown requested; draining in-flight calls");
        })
    }
}
