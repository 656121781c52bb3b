//! Prometheus text metrics: calls and errors by RPC and status code, latency histograms,
//! manifests stored, log size, batch sizes, how long each batch took to commit, and how long
//! CPU-bound tasks waited for a thread. Kept in process-wide counters (one server per process)
//! and served over plain HTTP on `--metrics ADDR`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The latency that unary `Sign`'s p99 at half its peak should stay under (10 ms; the
/// half-load target in `docs/BENCHMARKS.md`). Both histograms have a bucket bound here, so
/// `byline bench sign --metrics` counts how many calls or commits took longer rather than
/// estimating it: a run whose client p99 is over it can tell whether the calls were slow
/// inside the server.
pub const TAIL_BOUND_SECONDS: f64 = 0.010;

/// Latency bucket bounds in seconds.
const BUCKETS: &[f64] = &[
    0.0005,
    0.001,
    0.0025,
    0.005,
    TAIL_BOUND_SECONDS,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
];

/// Commit-time bucket bounds in seconds. A batch's commit is usually well under a
/// millisecond to a few milliseconds (its `fsync`), so the low end is finer than the calls':
/// a call's tail latency is read against these.
const COMMIT_BUCKETS: &[f64] = &[
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    TAIL_BOUND_SECONDS,
    0.02,
    0.05,
    0.1,
    0.25,
    1.0,
];

/// A Prometheus histogram: per-bucket counts (each counting the observations at most its
/// bound, so cumulative as the format wants), their sum and number.
#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], elapsed: Duration) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        let secs = elapsed.as_secs_f64();
        for (count, bound) in self.counts.iter_mut().zip(bounds) {
            if secs <= *bound {
                *count += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }

    /// Writes the histogram's series `name` with `labels` (`key="value"` pairs joined by
    /// commas, or empty); one that has observed nothing yet has every bucket at zero.
    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in bounds.iter().enumerate() {
            let n = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braced} {}", self.count);
    }
}

#[derive(Default)]
struct Registry {
    calls: BTreeMap<(String, String), u64>,
    latency: BTreeMap<String, Histogram>,
    /// How long each CPU task waited for a thread, by the pool lane's thread name.
    cpu_queue_wait: BTreeMap<&'static str, Histogram>,
    manifests: u64,
    log_size: u64,
    batches: u64,
    batch_entries: u64,
    commits: Histogram,
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
        r.latency
            .entry(rpc.to_string())
            .or_default()
            .observe(BUCKETS, elapsed);
    });
}

/// Records that a task of the CPU pool's `lane` (its threads' name) started after waiting
/// `waited` for a thread. The count says which lane an input's size chose; the wait says
/// whether canonicalizing and verifying are queued behind each other, which the calls'
/// latency alone does not tell apart from their own work.
pub fn record_cpu_task(lane: &'static str, waited: Duration) {
    with(|r| {
        r.cpu_queue_wait
            .entry(lane)
            .or_default()
            .observe(BUCKETS, waited)
    });
}

/// Records how long the store took to commit one batch (or to fail it). Every signing call
/// waits for one or two of these, so their tail is the floor of the calls' tail latency, and
/// shows whether a slow call waited on the disk or on the CPU.
pub fn record_commit(elapsed: Duration) {
    with(|r| r.commits.observe(COMMIT_BUCKETS, elapsed));
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
            h.render(
                &mut out,
                "byline_rpc_duration_seconds",
                &format!("rpc=\"{rpc}\""),
                BUCKETS,
            );
        }
        let _ = writeln!(out, "# HELP byline_log_entries_appended_total Entries appended by this process.\n# TYPE byline_log_entries_appended_total counter\nbyline_log_entries_appended_total {}", r.manifests);
        let _ = writeln!(out, "# HELP byline_log_size Largest tree size this process has signed.\n# TYPE byline_log_size gauge\nbyline_log_size {}", r.log_size);
        let _ = writeln!(out, "# HELP byline_log_batches_total Group-commit batches.\n# TYPE byline_log_batches_total counter\nbyline_log_batches_total {}", r.batches);
        let _ = writeln!(out, "# HELP byline_log_batch_entries_total Entries over all batches (divide by batches for the mean size).\n# TYPE byline_log_batch_entries_total counter\nbyline_log_batch_entries_total {}", r.batch_entries);
        out.push_str("# HELP byline_log_commit_duration_seconds Time for the store to commit one batch durably (or to fail it).\n# TYPE byline_log_commit_duration_seconds histogram\n");
        r.commits.render(
            &mut out,
            "byline_log_commit_duration_seconds",
            "",
            COMMIT_BUCKETS,
        );
        out.push_str("# HELP byline_cpu_queue_wait_seconds How long a task of the canonicalizing and verifying threads waited for one, by lane (its count: the tasks the lane ran).\n# TYPE byline_cpu_queue_wait_seconds histogram\n");
        for (lane, h) in &r.cpu_queue_wait {
            h.render(
                &mut out,
                "byline_cpu_queue_wait_seconds",
                &format!("lane=\"{lane}\""),
                BUCKETS,
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `text` for series `name`, as (labels, value).
    fn series<'a>(text: &'a str, name: &str) -> Vec<(&'a str, f64)> {
        text.lines()
            .filter_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                let labels = key.strip_prefix(name)?;
                Some((labels, value.parse().ok()?))
            })
            .collect()
    }

    #[test]
    fn a_histogram_counts_each_observation_in_every_bucket_at_or_above_it() {
        let mut h = Histogram::default();
        for micros in [200, 250, 900, 4_000, 2_000_000] {
            h.observe(COMMIT_BUCKETS, Duration::from_micros(micros));
        }
        let mut out = String::new();
        h.render(&mut out, "t", "", COMMIT_BUCKETS);
        let buckets = series(&out, "t_bucket");
        assert_eq!(buckets.len(), COMMIT_BUCKETS.len() + 1, "{out}");
        assert_eq!(buckets[0], ("{le=\"0.00025\"}", 2.0), "{out}");
        assert_eq!(buckets[1], ("{le=\"0.0005\"}", 2.0), "{out}");
        assert_eq!(buckets[2], ("{le=\"0.001\"}", 3.0), "{out}");
        assert_eq!(buckets[5], ("{le=\"0.005\"}", 4.0), "{out}");
        // Two seconds is over the last bound: only +Inf counts it.
        assert_eq!(buckets[COMMIT_BUCKETS.len() - 1].1, 4.0, "{out}");
        assert_eq!(
            buckets[COMMIT_BUCKETS.len()],
            ("{le=\"+Inf\"}", 5.0),
            "{out}"
        );
        assert_eq!(series(&out, "t_count"), vec![("", 5.0)], "{out}");
        let sum = series(&out, "t_sum")[0].1;
        assert!((sum - 2.00535).abs() < 1e-9, "{out}");
    }

    /// `byline bench sign --metrics` counts the calls and commits over 10 ms by that bucket
    /// bound; without it here (or if the rendered bound stopped reading back as the same
    /// number) the count would silently vanish from its report.
    #[test]
    fn both_histograms_have_the_bound_the_bench_counts_past() {
        use crate::cli::server_metrics::{parse_log_counters, Observed, ServedHistogram};
        let mut calls = Histogram::default();
        let mut commits = Histogram::default();
        for millis in [5, 20] {
            calls.observe(BUCKETS, Duration::from_millis(millis));
            commits.observe(COMMIT_BUCKETS, Duration::from_millis(millis));
        }
        let mut out = String::new();
        calls.render(
            &mut out,
            "byline_rpc_duration_seconds",
            "rpc=\"Sign\"",
            BUCKETS,
        );
        commits.render(
            &mut out,
            "byline_log_commit_duration_seconds",
            "",
            COMMIT_BUCKETS,
        );
        let served = parse_log_counters(&out, Some("Sign"));
        for (what, histogram) in [("calls", &served.calls), ("commits", &served.commits)] {
            let observed = Observed::between(&ServedHistogram::default(), histogram)
                .unwrap_or_else(|| panic!("{what}: nothing read from {out}"));
            assert_eq!(observed.over_tail_bound, Some(1.0), "{what}: {out}");
        }
    }

    #[test]
    fn a_histogram_with_labels_and_no_observations_renders_zeros() {
        let mut out = String::new();
        Histogram::default().render(&mut out, "t", "rpc=\"Sign\"", BUCKETS);
        let buckets = series(&out, "t_bucket");
        assert_eq!(buckets.len(), BUCKETS.len() + 1, "{out}");
        assert!(buckets.iter().all(|(_, n)| *n == 0.0), "{out}");
        assert_eq!(buckets[0].0, "{rpc=\"Sign\",le=\"0.0005\"}", "{out}");
        assert_eq!(
            series(&out, "t_count"),
            vec![("{rpc=\"Sign\"}", 0.0)],
            "{out}"
        );
    }
}
