//! Talking to a byline server from the CLI: connecting (TLS except on loopback), the API token,
//! and the calls the commands make.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Request;

use crate::proto::byline_client::BylineClient;

/// Whether a URL's host is a loopback address (the only place plain HTTP is allowed).
pub fn is_loopback(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let host_port = rest.split('/').next().unwrap_or("");
    let host = if let Some(stripped) = host_port.strip_prefix('[') {
        stripped.split(']').next().unwrap_or("")
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Connects to a server. Plain `http://` is refused except on loopback, so that keys and
/// tokens never cross a network in the clear; `--ca-cert` (or `BYLINE_CA_CERT`) adds a root.
pub async fn connect(url: &str, ca_cert: Option<&Path>) -> Result<BylineClient<Channel>> {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("bad server URL {url:?}"))?;
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_webpki_roots();
        if let Some(ca) = ca_cert {
            let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls).context("TLS configuration")?;
    } else if url.starts_with("http://") {
        if !is_loopback(url) {
            bail!("refusing plain http:// to {url}: TLS (https://) is required except on loopback");
        }
    } else {
        bail!("server URL {url:?} must start with https:// (or http:// on loopback)");
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    Ok(BylineClient::new(channel)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024))
}

/// The API token from `BYLINE_TOKEN`.
pub fn token_from_env() -> Result<String> {
    match std::env::var("BYLINE_TOKEN") {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        _ => bail!("set BYLINE_TOKEN to an API token (create one with `byline token create --publisher DOMAIN`)"),
    }
}

/// Wraps a message with the bearer token.
pub fn authorized<T>(message: T, token: &str) -> Result<Request<T>> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .context("BYLINE_TOKEN holds characters that cannot be sent")?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// A readable message for a failed call.
pub fn status_message(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("http://127.0.0.1:50051"));
        assert!(is_loopback("http://localhost:1"));
        assert!(is_loopback("http://[::1]:50051"));
        assert!(!is_loopback("http://10.0.0.1:50051"));
        assert!(!is_loopback("http://news.example:443"));
    }
}
