//! What `byline bench sign --metrics ADDR` reads from the server's Prometheus endpoint (`byline
//! serve --metrics ADDR`): the log's batch counters, its commit-time histogram and the
//! server's own latency histogram of the RPC driven, and how long the canonicalizing and
//! verifying threads' tasks waited for them, before and after the measured load, so that a
//! run's tail latency can be read beside how long its calls took inside the server, how long
//! its commits took (waiting on the disk), how many entries shared each and (in content mode)
//! how long articles queued for a thread.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// How long one scrape may take; the endpoint answers from memory.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// One histogram as served: its cumulative buckets as (upper bound in seconds, count), in the
/// order served, the last one `+Inf`, and the sum of what it observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServedHistogram {
    /// (upper bound, observations at most that long), the last bound infinite.
    pub buckets: Vec<(f64, f64)>,
    /// The sum of all observations, in seconds.
    pub sum: f64,
}

/// A lane's histogram before its first task: what a lane that the first scrape did not list
/// had observed.
static NO_TASKS: ServedHistogram = ServedHistogram {
    buckets: Vec::new(),
    sum: 0.0,
};

/// The counters a bench run reads, as one scrape read them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogCounters {
    /// Batches committed (`byline_log_batches_total`).
    pub batches: f64,
    /// Entries over all batches (`byline_log_batch_entries_total`).
    pub entries: f64,
    /// How long each batch took to commit (`byline_log_commit_duration_seconds`).
    pub commits: ServedHistogram,
    /// How long the RPC named took inside the server (`byline_rpc_duration_seconds` of it;
    /// empty when none was named).
    pub calls: ServedHistogram,
    /// How long the CPU pool's tasks waited for a thread
    /// (`byline_cpu_queue_wait_seconds`), by lane.
    pub cpu_lanes: BTreeMap<String, ServedHistogram>,
}

/// What a histogram observed between two scrapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// How many observations.
    pub count: f64,
    /// Their mean, in seconds.
    pub mean: f64,
    /// Their median and 99th percentile, each as the upper bound of the bucket it falls in
    /// (infinite past the last finite bound), in seconds.
    pub p50: f64,
    /// See `p50`.
    pub p99: f64,
    /// How many took longer than [`TAIL_BOUND_SECONDS`], when the histogram has that bound
    /// (exact, unlike a percentile read off the buckets).
    pub over_tail_bound: Option<f64>,
}

pub use crate::service::metrics::TAIL_BOUND_SECONDS;

/// What the server did between two scrapes.
#[derive(Clone, Debug, PartialEq)]
pub struct LogActivity {
    /// Batches committed in between.
    pub batches: f64,
    /// Entries appended in between.
    pub entries: f64,
    /// The batches' commit times, if any batch was committed in between (a load of lookups
    /// commits none).
    pub commits: Option<Observed>,
    /// The calls' times inside the server, if any call finished in between.
    pub calls: Option<Observed>,
    /// How long the CPU pool's tasks that started in between waited for a thread, for each
    /// lane that ran one.
    pub cpu_lanes: Vec<(String, Observed)>,
}

/// Reads `GET /metrics` from `addr` (`HOST:PORT`, as given to `byline serve --metrics`; an
/// `http://` prefix and a `/metrics` suffix are accepted too), with the server's latency
/// histogram of RPC `rpc` when one is named.
pub fn scrape(addr: &str, rpc: Option<&str>) -> Result<LogCounters> {
    let hostport = addr
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .trim_end_matches("/metrics");
    let target = hostport
        .to_socket_addrs()
        .with_context(|| format!("--metrics {addr}: not a HOST:PORT address"))?
        .next()
        .ok_or_else(|| anyhow!("--metrics {addr}: the name resolves to no address"))?;
    let read = || -> std::io::Result<Vec<u8>> {
        let mut socket = TcpStream::connect_timeout(&target, SCRAPE_TIMEOUT)?;
        socket.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
        socket.set_write_timeout(Some(SCRAPE_TIMEOUT))?;
        socket.write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )?;
        let mut response = Vec::new();
        socket.read_to_end(&mut response)?;
        Ok(response)
    };
    let response = read().with_context(|| format!("cannot read the server's metrics at {addr}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("the metrics at {addr} are not an HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") {
        let status = head.lines().next().unwrap_or_default();
        bail!("the metrics at {addr} answered {status:?}");
    }
    let counters = parse_log_counters(body, rpc);
    if counters.commits.buckets.is_empty() {
        bail!(
            "the metrics at {addr} have no byline_log_commit_duration_seconds histogram \
             (is it a byline server of this version?)"
        );
    }
    Ok(counters)
}

/// The counters in a Prometheus text exposition, with the latency histogram of RPC `rpc` when
/// one is named; series it lacks read as zero (or empty).
pub fn parse_log_counters(text: &str, rpc: Option<&str>) -> LogCounters {
    let mut counters = LogCounters::default();
    // The RPC's bucket prefix and sum series.
    let call_series = rpc.map(|rpc| {
        (
            format!("byline_rpc_duration_seconds_bucket{{rpc=\"{rpc}\",le=\""),
            format!("byline_rpc_duration_seconds_sum{{rpc=\"{rpc}\"}}"),
        )
    });
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        if let Some((lane, part)) = cpu_lane_series(series) {
            let histogram = counters.cpu_lanes.entry(lane.to_string()).or_default();
            match part {
                LanePart::Sum => histogram.sum = value,
                LanePart::Bucket(bound) => histogram.buckets.push((bound, value)),
            }
            continue;
        }
        match series {
            "byline_log_batches_total" => counters.batches = value,
            "byline_log_batch_entries_total" => counters.entries = value,
            "byline_log_commit_duration_seconds_sum" => counters.commits.sum = value,
            s if call_series.as_ref().is_some_and(|(_, sum)| s == sum) => {
                counters.calls.sum = value
            }
            s => {
                let (histogram, bound) = if let Some(rest) =
                    s.strip_prefix("byline_log_commit_duration_seconds_bucket{le=\"")
                {
                    (&mut counters.commits, rest)
                } else if let Some(rest) = call_series
                    .as_ref()
                    .and_then(|(buckets, _)| s.strip_prefix(buckets.as_str()))
                {
                    (&mut counters.calls, rest)
                } else {
                    continue;
                };
                if let Some(bound) = bucket_bound(bound) {
                    histogram.buckets.push((bound, value));
                }
            }
        }
    }
    counters
}

/// The upper bound of a bucket from what follows `le="` in its series (`0.005"}`, `+Inf"}`).
fn bucket_bound(rest: &str) -> Option<f64> {
    match rest.strip_suffix("\"}")? {
        "+Inf" => Some(f64::INFINITY),
        b => b.parse().ok(),
    }
}

/// Which series of a lane's queue-wait histogram a line is.
enum LanePart {
    /// A bucket, with its upper bound in seconds.
    Bucket(f64),
    /// The sum of the waits.
    Sum,
}

/// The lane and part of a `byline_cpu_queue_wait_seconds` bucket or sum series; `None` for
/// any other series (the count is the `+Inf` bucket).
fn cpu_lane_series(series: &str) -> Option<(&str, LanePart)> {
    if let Some(rest) = series.strip_prefix("byline_cpu_queue_wait_seconds_bucket{lane=\"") {
        let (lane, bound) = rest.split_once("\",le=\"")?;
        Some((lane, LanePart::Bucket(bucket_bound(bound)?)))
    } else {
        let lane = series
            .strip_prefix("byline_cpu_queue_wait_seconds_sum{lane=\"")?
            .strip_suffix("\"}")?;
        Some((lane, LanePart::Sum))
    }
}

impl Observed {
    /// What `after` observed since `before` (two scrapes of one histogram); `None` if nothing.
    pub fn between(before: &ServedHistogram, after: &ServedHistogram) -> Option<Observed> {
        // Per bucket, the observations in between that took at most its bound.
        let deltas: Vec<(f64, f64)> = after
            .buckets
            .iter()
            .map(|&(bound, n)| {
                let earlier = before
                    .buckets
                    .iter()
                    .find(|(b, _)| *b == bound)
                    .map_or(0.0, |(_, m)| *m);
                (bound, n - earlier)
            })
            .collect();
        let count = deltas.last().map_or(0.0, |(_, n)| *n);
        if count <= 0.0 {
            return None;
        }
        let quantile = |q: f64| {
            deltas
                .iter()
                .find(|(_, n)| *n >= q * count)
                .map_or(f64::INFINITY, |(bound, _)| *bound)
        };
        let over_tail_bound = deltas
            .iter()
            .find(|(bound, _)| *bound == TAIL_BOUND_SECONDS)
            .map(|(_, within)| count - within);
        Some(Observed {
            count,
            mean: (after.sum - before.sum) / count,
            p50: quantile(0.50),
            p99: quantile(0.99),
            over_tail_bound,
        })
    }
}

impl LogActivity {
    /// What the server did from `before` to `after` (two scrapes of one server); `None` if it
    /// committed no batch, finished no call of the RPC read and ran no CPU task in between.
    pub fn between(before: &LogCounters, after: &LogCounters) -> Option<LogActivity> {
        let batches = after.batches - before.batches;
        let activity = LogActivity {
            batches,
            entries: after.entries - before.entries,
            commits: if batches > 0.0 {
                Observed::between(&before.commits, &after.commits)
            } else {
                None
            },
            calls: Observed::between(&before.calls, &after.calls),
            cpu_lanes: after
                .cpu_lanes
                .iter()
                .filter_map(|(lane, histogram)| {
                    let earlier = before.cpu_lanes.get(lane).unwrap_or(&NO_TASKS);
                    Some((lane.clone(), Observed::between(earlier, histogram)?))
                })
                .collect(),
        };
        let idle =
            activity.commits.is_none() && activity.calls.is_none() && activity.cpu_lanes.is_empty();
        (!idle).then_some(activity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An exposition like the server's: the batch counters, the commit histogram with
    /// `commits` buckets summing to `commit_sum`, and Sign's latency with `calls` buckets.
    fn exposition(
        batches: u64,
        entries: u64,
        commits: &[(&str, u64)],
        commit_sum: f64,
        calls: &[(&str, u64)],
    ) -> String {
        let mut text = format!(
            "# HELP byline_log_batches_total Group-commit batches.\n\
             byline_log_batches_total {batches}\n\
             byline_log_batch_entries_total {entries}\n\
             byline_rpc_duration_seconds_bucket{{rpc=\"Verify\",le=\"0.001\"}} 99\n\
             byline_rpc_duration_seconds_sum{{rpc=\"Verify\"}} 99\n\
             # TYPE byline_log_commit_duration_seconds histogram\n"
        );
        for (le, n) in commits {
            text.push_str(&format!(
                "byline_log_commit_duration_seconds_bucket{{le=\"{le}\"}} {n}\n"
            ));
        }
        text.push_str(&format!(
            "byline_log_commit_duration_seconds_sum {commit_sum}\n"
        ));
        for (le, n) in calls {
            text.push_str(&format!(
                "byline_rpc_duration_seconds_bucket{{rpc=\"Sign\",le=\"{le}\"}} {n}\n"
            ));
        }
        let count = calls.last().map_or(0, |(_, n)| *n);
        text.push_str(&format!(
            "byline_rpc_duration_seconds_sum{{rpc=\"Sign\"}} {}\n",
            count as f64 * 0.002
        ));
        text
    }

    #[test]
    fn the_counters_are_read_from_the_exposition_for_the_rpc_named() {
        let text = exposition(
            7,
            70,
            &[("0.001", 5), ("0.01", 6), ("+Inf", 7)],
            0.5,
            &[("0.005", 60), ("+Inf", 70)],
        );
        let counters = parse_log_counters(&text, Some("Sign"));
        assert_eq!(counters.batches, 7.0);
        assert_eq!(counters.entries, 70.0);
        assert_eq!(counters.commits.sum, 0.5);
        assert_eq!(
            counters.commits.buckets,
            vec![(0.001, 5.0), (0.01, 6.0), (f64::INFINITY, 7.0)]
        );
        // Sign's histogram, not Verify's.
        assert_eq!(
            counters.calls.buckets,
            vec![(0.005, 60.0), (f64::INFINITY, 70.0)]
        );
        assert!((counters.calls.sum - 0.14).abs() < 1e-12);
        assert_eq!(
            parse_log_counters(&text, None).calls,
            ServedHistogram::default()
        );
        assert_eq!(
            parse_log_counters("garbage\n\n", Some("Sign")),
            LogCounters::default()
        );
    }

    #[test]
    fn activity_is_the_difference_between_two_scrapes() {
        let before = parse_log_counters(
            &exposition(
                10,
                100,
                &[("0.001", 9), ("0.01", 9), ("+Inf", 10)],
                0.005,
                &[("0.005", 100), ("+Inf", 100)],
            ),
            Some("Sign"),
        );
        // 100 more batches: 90 within 1 ms, 9 more within 10 ms, one over (and one was over
        // before the load); 1,000 more calls, 980 of them within 5 ms.
        let after = parse_log_counters(
            &exposition(
                110,
                1100,
                &[("0.001", 99), ("0.01", 108), ("+Inf", 110)],
                0.305,
                &[("0.005", 1080), ("+Inf", 1100)],
            ),
            Some("Sign"),
        );
        let activity = LogActivity::between(&before, &after).expect("batches were committed");
        assert_eq!(activity.batches, 100.0);
        assert_eq!(activity.entries, 1000.0);
        let commits = activity.commits.as_ref().expect("commits observed");
        assert_eq!(commits.count, 100.0);
        assert!((commits.mean - 0.003).abs() < 1e-12, "{activity:?}");
        assert_eq!(commits.p50, 0.001);
        assert_eq!(commits.p99, 0.01);
        // The one batch past 10 ms in between; the one before the load is not counted.
        assert_eq!(commits.over_tail_bound, Some(1.0));
        let calls = activity.calls.expect("calls finished");
        assert_eq!(calls.count, 1000.0);
        assert_eq!(calls.p50, 0.005);
        // Sign's histogram here has no 10 ms bound: no count rather than a guess.
        assert_eq!(calls.over_tail_bound, None);
        // The slowest two percent are past the last finite bound: infinite, not 5 ms.
        assert_eq!(calls.p99, f64::INFINITY);
        assert!((calls.mean - 0.002).abs() < 1e-12, "{calls:?}");
        assert_eq!(LogActivity::between(&after, &after), None);
    }

    #[test]
    fn each_cpu_lane_s_queue_waits_are_read_and_differenced_on_their_own() {
        let lanes = |small: (u64, u64, f64), big: Option<(u64, f64)>, batches: u64| {
            let (within, all, sum) = small;
            let mut text = format!(
                "# TYPE byline_cpu_queue_wait_seconds histogram\n\
                 byline_cpu_queue_wait_seconds_bucket{{lane=\"byline-cpu\",le=\"0.01\"}} {within}\n\
                 byline_cpu_queue_wait_seconds_bucket{{lane=\"byline-cpu\",le=\"+Inf\"}} {all}\n\
                 byline_cpu_queue_wait_seconds_sum{{lane=\"byline-cpu\"}} {sum}\n\
                 byline_cpu_queue_wait_seconds_count{{lane=\"byline-cpu\"}} {all}\n"
            );
            if let Some((all, sum)) = big {
                text.push_str(&format!(
                    "byline_cpu_queue_wait_seconds_bucket{{lane=\"byline-cpu-big\",le=\"+Inf\"}} {all}\n\
                     byline_cpu_queue_wait_seconds_sum{{lane=\"byline-cpu-big\"}} {sum}\n"
                ));
            }
            // Batches, so that the log was active in between.
            text + &exposition(batches, batches, &[("+Inf", batches)], 0.0, &[])
        };
        let before = parse_log_counters(&lanes((4, 5, 0.5), None, 1), None);
        assert_eq!(
            before.cpu_lanes,
            BTreeMap::from([(
                "byline-cpu".to_string(),
                ServedHistogram {
                    buckets: vec![(0.01, 4.0), (f64::INFINITY, 5.0)],
                    sum: 0.5
                }
            )])
        );
        // The small lane ran 10 more tasks, one over 10 ms; the large lane's first two tasks
        // came after the first scrape.
        let after = parse_log_counters(&lanes((13, 15, 0.6), Some((2, 0.25)), 2), None);
        let activity = LogActivity::between(&before, &after).expect("batches were committed");
        let seen: Vec<_> = activity
            .cpu_lanes
            .iter()
            .map(|(lane, waits)| (lane.as_str(), waits.count, waits.over_tail_bound))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("byline-cpu", 10.0, Some(1.0)),
                ("byline-cpu-big", 2.0, None)
            ]
        );
        assert!((activity.cpu_lanes[0].1.mean - 0.01).abs() < 1e-12);
        assert!((activity.cpu_lanes[1].1.mean - 0.125).abs() < 1e-12);
        // A lane that ran nothing in between has no line.
        let idle = parse_log_counters(&lanes((4, 5, 0.5), None, 3), None);
        let activity = LogActivity::between(&before, &idle).expect("batches were committed");
        assert!(activity.cpu_lanes.is_empty(), "{activity:?}");
    }

    #[test]
    fn a_scrape_of_nothing_listening_names_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let e = scrape(&addr, Some("Sign")).unwrap_err();
        assert!(
            format!("{e:#}").contains(&format!("cannot read the server's metrics at {addr}")),
            "{e:#}"
        );
        let e = scrape("not an address", None).unwrap_err();
        assert!(
            format!("{e:#}").contains("not a HOST:PORT address"),
            "{e:#}"
        );
    }
}
