//! `byline revoke` (retract a manifest or revoke a key through a server), and the verifier's
//! side: fetching the revocations a server has logged for a statement or a key, and believing
//! only those that verify locally.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use crate::core::bundle::Bundle;
use crate::core::manifest::Timestamp;
use crate::core::revocation::{verify_revocation, VerifiedRevocation};
use crate::core::trust::TrustStore;
use crate::proto as pb;

use super::remote::{authorized, connect, status_message, token_from_env};
use super::server_cmds::runtime;
use super::EXIT_OK;

/// `byline revoke`: exactly one of `--log-index` (retract a manifest) or `--keyid` (revoke a
/// publisher key; admin token).
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["log_index", "keyid"])))]
pub struct RevokeArgs {
    /// The server (token from BYLINE_TOKEN).
    #[arg(long)]
    server: String,
    /// Retract the manifest at this log index (its publisher's token, or an admin token).
    #[arg(long)]
    log_index: Option<u64>,
    /// Revoke the publisher key with this keyid (admin token).
    #[arg(long)]
    keyid: Option<String>,
    /// For a key: signatures logged at or after this RFC 3339 time stop counting (default: now).
    #[arg(long, requires = "keyid")]
    since: Option<String>,
    /// Why: corrected, withdrawn, compromised, ... (recorded in the log for good).
    #[arg(long)]
    reason: String,
    /// Also write the revocation's bundle to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A CA certificate (PEM) for the server's TLS certificate.
    #[arg(long, env = "BYLINE_CA_CERT")]
    ca_cert: Option<PathBuf>,
}

/// Runs `byline revoke`.
pub fn revoke(a: RevokeArgs) -> Result<u8> {
    let token = token_from_env()?;
    let since = a
        .since
        .as_deref()
        .map(|s| {
            s.parse::<Timestamp>().map_err(|e| {
                anyhow!("--since {s:?}: {e} (write RFC 3339 UTC, e.g. 2026-11-28T09:00:00Z)")
            })
        })
        .transpose()?;
    let (target, what) = match (a.log_index, &a.keyid) {
        (Some(i), None) => (
            pb::revoke_request::Target::ManifestLogIndex(i),
            format!("retracted the manifest at log index {i}"),
        ),
        (None, Some(k)) => (
            pb::revoke_request::Target::Keyid(k.clone()),
            format!(
                "revoked key {} from {}",
                crate::core::dsse::short_keyid(k),
                since.map(|t| t.to_string()).unwrap_or_else(|| "now".into())
            ),
        ),
        _ => bail!("give exactly one of --log-index and --keyid"),
    };
    let request = pb::RevokeRequest {
        target: Some(target),
        reason: a.reason.clone(),
        since: since.map(|t| prost_types::Timestamp {
            seconds: t.unix(),
            nanos: 0,
        }),
    };
    let resp = runtime()?.block_on(async {
        let mut client = connect(&a.server, a.ca_cert.as_deref()).await?;
        client
            .revoke(authorized(request, &token)?)
            .await
            .map_err(|s| anyhow!("Revoke failed: {}", status_message(&s)))
            .map(tonic::Response::into_inner)
    })?;
    if let Some(out) = &a.out {
        super::files::write_atomic(out, resp.bundle_json.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let at = resp
        .integrated_time
        .and_then(|t| Timestamp::from_unix(t.seconds))
        .map(|t| t.to_string())
        .unwrap_or_default();
    println!(
        "{what} ({:?}); the revocation is log entry {} at {at}",
        a.reason, resp.log_index
    );
    Ok(EXIT_OK)
}

/// The revocations a server has logged against `targets` (statement digests, keyids) that
/// verify under the local trust store, and a warning for each one that does not (a server
/// cannot make a reader believe a revocation its trust store would not).
pub fn fetch_revocations(
    server: &str,
    ca_cert: Option<&Path>,
    trust: &TrustStore,
    targets: &[String],
) -> Result<(Vec<VerifiedRevocation>, Vec<String>)> {
    runtime()?.block_on(async {
        let mut client = connect(server, ca_cert).await?;
        let mut verified = Vec::new();
        let mut warnings = Vec::new();
        for target in targets {
            let entries = client
                .lookup(pb::LookupRequest {
                    digest: Some(pb::lookup_request::Digest::RevokingSha256(target.clone())),
                })
                .await
                .map_err(|s| anyhow!("Lookup of revocations failed: {}", status_message(&s)))?
                .into_inner()
                .entries;
            for entry in entries {
                let checked = Bundle::from_json(entry.bundle_json.as_bytes())
                    .map_err(|e| e.to_string())
                    .and_then(|b| verify_revocation(&b, trust).map_err(|e| e.to_string()));
                match checked {
                    Ok(v) => verified.push(v),
                    Err(e) => warnings.push(format!(
                        "ignored the revocation at log index {}: {e}",
                        entry.log_index
                    )),
                }
            }
        }
        Ok((verified, warnings))
    })
}
