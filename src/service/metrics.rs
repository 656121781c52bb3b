//! Prometheus text metrics: calls and errors by RPC and status code, latency histograms,
//! manifests stored, log size and batch sizes. Kept in process-wide counters (one server per
//! process) and served over plain HTTP on `--metrics ADDR`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Latency bucket bounds in seconds.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Registry {
    calls: BTreeMap<(String, String), u64>,
    latency: BTreeMap<String, Histogram>,
    manifests: u64,
    log_size: u64,
    batches: u64,
    batch_entries: u64,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut guard = REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    f(guard.get_or_insert_with(Registry::default))
}

/// Records one finished call.
pub fn record_call(rpc: &str, code: tonic::Code, elapsed: Duration) {
    with(|r| {
        *r.calls
            .entry((rpc.to_string(), format!("{code:?}")))
            .or_default() += 1;
        let h = r.latency.entry(rpc.to_string()).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    });
}

/// Records one appended batch.
pub fn record_batch(entries: usize, tree_size: u64) {
    with(|r| {
        r.batches += 1;
        r.batch_entries += entries as u64;
        r.manifests += entries as u64;
        r.log_size = r.log_size.max(tree_size);
    });
}

/// The metrics in Prometheus text exposition format.
pub fn render() -> String {
    with(|r| {
        let mut out = String::new();
        out.push_str("# HELP byline_rpc_calls_total Calls by RPC and gRPC status code.\n# TYPE byline_rpc_calls_total counter\n");
        for ((rpc, code), n) in &r.calls {
            let _ = writeln!(
                out,
                "byline_rpc_calls_total{{rpc=\"{rpc}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP byline_rpc_duration_seconds Call latency.\n# TYPE byline_rpc_duration_seconds histogram\n");
        for (rpc, h) in &r.latency {
            for (bound, n) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(
                    out,
                    "byline_rpc_duration_seconds_bucket{{rpc=\"{rpc}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "byline_rpc_duration_seconds_bucket{{rpc=\"{rpc}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "byline_rpc_duration_seconds_sum{{rpc=\"{rpc}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "byline_rpc_duration_seconds_count{{rpc=\"{rpc}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(out, "# HELP byline_log_entries_appended_total Entries appended by this process.\n# TYPE byline_log_entries_appended_total counter\nbyline_log_entries_appended_total {}", r.manifests);
        let _ = writeln!(out, "# HELP byline_log_size Largest tree size this process has signed.\n# TYPE byline_log_size gauge\nbyline_log_size {}", r.log_size);
        let _ = writeln!(out, "# HELP byline_log_batches_total Group-commit batches.\n# TYPE byline_log_batches_total counter\nbyline_log_batches_total {}", r.batches);
        let _ = writeln!(out, "# HELP byline_log_batch_entries_total Entries over all batches (divide by batches for the mean size).\n# TYPE byline_log_batch_entries_total counter\nbyline_log_batch_entries_total {}", r.batch_entries);
        out
    })
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            // Read the whole request head (it may arrive in pieces), bounded in size and time.
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                match tokio::time::timeout_at(deadline, socket.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
            let request = String::from_utf8_lossy(&buf);
            let (status, body) = if request.starts_with("GET /metrics") {
                ("200 OK", render())
            } else {
                ("404 Not Found", "try /metrics\n".to_string())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}
