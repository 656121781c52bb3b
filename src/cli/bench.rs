//! `byline bench sign`: a load generator any user can run against a server. It drives `Sign`
//! or `SignStream` with realistic articles over several HTTP/2 connections and prints the
//! request rate, latency percentiles, the server's CPU and memory (when its pid is given), and,
//! measured in the same run, the raw single-thread rate of the same cryptographic work, with
//! the ratio of the two; with the server's metrics address, also how many batches the log
//! committed, how long its commits took and (unary `Sign`) how long the calls took inside the
//! server.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use tonic::transport::{Channel, Endpoint};

use crate::core::canonical::MediaType;
use crate::core::keys::SigningKey;
use crate::core::manifest::{AiSystem, AuthorshipClass, Publisher, Timestamp};
use crate::core::sign::{build_statement, prepare_article, sign_statement, Authorship};
use crate::proto as pb;

use super::server_metrics::{scrape, LogActivity, LogCounters, Observed, TAIL_BOUND_SECONDS};
use super::EXIT_OK;

/// What the server is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The client sends digests; the server builds, signs and logs the statement.
    Digest,
    /// The client sends the article; the server canonicalizes it too.
    Content,
}

/// What each call of a run asks of the server, decided once from the flags (which clap keeps
/// to one of `--stream`, `--echo` and `--lookup`): the header, the calls sent, whether the
/// raw rate is read and which RPC the server times all follow from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Load {
    /// Unary `Sign`.
    Sign,
    /// `SignStream`, one stream per connection.
    SignStream,
    /// The bare `grpc.health.v1.Health/Check`: the transport's own cost.
    Echo,
    /// Unary `Lookup` by each article's text digest: the store's reads.
    Lookup,
}

impl Load {
    fn of(a: &BenchSignArgs) -> Load {
        if a.stream {
            Load::SignStream
        } else if a.echo {
            Load::Echo
        } else if a.lookup {
            Load::Lookup
        } else {
            Load::Sign
        }
    }

    /// Whether the calls sign, and so whether the raw rate of signing is the yardstick.
    fn signs(self) -> bool {
        matches!(self, Load::Sign | Load::SignStream)
    }

    /// The RPC whose calls the server times one by one, for the `in the server` line: a
    /// stream's time is recorded once per stream, as it opens, and the echo's not at all.
    fn timed_rpc(self) -> Option<&'static str> {
        match self {
            Load::Sign => Some("Sign"),
            Load::Lookup => Some("Lookup"),
            Load::SignStream | Load::Echo => None,
        }
    }

    /// The load as the report's first line names it.
    fn describe(self) -> &'static str {
        match self {
            Load::Sign => "unary Sign",
            Load::SignStream => "SignStream",
            Load::Echo => "unary Health/Check (bare transport echo, no signing)",
            Load::Lookup => "unary Lookup by text digest (the store's reads, no signing)",
        }
    }
}

/// `byline bench sign` arguments.
#[derive(Args, Debug)]
pub struct BenchSignArgs {
    /// The server (token from BYLINE_TOKEN).
    #[arg(long)]
    server: String,
    /// Requests in flight at once (unary), or per stream (SignStream: sent and not yet
    /// answered).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections to spread the load over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Seconds of measured load (after a one-second warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Digest mode or content mode.
    #[arg(long, value_enum, default_value_t = Mode::Digest)]
    mode: Mode,
    /// Use SignStream (one stream per connection) instead of unary Sign.
    #[arg(long)]
    stream: bool,
    /// The server's process id, to report its CPU time and resident memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The publisher to sign as (the token's).
    #[arg(long, default_value = "localhost")]
    publisher: String,
    /// Pace unary calls to about this many per second in all (default: as fast as answers
    /// come back), e.g. half the peak rate to measure latency below saturation. A call held
    /// back by a slow answer counts its latency from when it was due. A paced `Sign` run is
    /// followed by a bare echo at the same pace and for as long (`bare echo` in the report).
    #[arg(
        long,
        conflicts_with = "stream",
        value_parser = positive_rate,
        allow_negative_numbers = true
    )]
    rate: Option<f64>,
    /// Call the server's bare `grpc.health.v1.Health/Check` instead of `Sign`: the transport's
    /// own cost per unary call on the same server and connections, for comparison.
    #[arg(long, conflicts_with = "stream")]
    echo: bool,
    /// Call `Lookup` by each article's text digest instead of `Sign` (digest mode only): the
    /// store's reads under load (its threads and connections), with no signing. On a fresh
    /// server the digests are not in the log, and each lookup still reads the index to find
    /// that out.
    #[arg(long, conflicts_with_all = ["stream", "echo"])]
    lookup: bool,
    /// The server's metrics address (as given to `byline serve --metrics`), to report the
    /// log's batches and commit times during the load beside the calls' latency.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

/// A `--rate`: a number of calls per second above zero (0, a negative number or NaN would
/// leave the calls unpaced, or never sent, without saying so). A rate too low for the run is
/// refused later, by [`pacing_period`], which knows the workers and the duration.
fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{text:?} is not a rate: give the calls per second as a number above 0"
        )),
    }
}

/// How often each worker sends a call under `--rate` (none without it), or an error naming the
/// flags when that period is longer than the run: such a run would send a call or none per
/// worker, and take as long as the period rather than `--duration`.
fn pacing_period(a: &BenchSignArgs) -> Result<Option<Duration>> {
    let Some(rate) = a.rate else {
        return Ok(None);
    };
    let workers = a.concurrency.max(1);
    let seconds = workers as f64 / rate;
    if seconds > a.duration as f64 {
        bail!(
            "at --rate {rate} each of the {workers} workers (--concurrency) would send a call \
             every {seconds:.3} s, longer than the --duration of {} s: raise --rate or lower \
             --concurrency",
            a.duration
        );
    }
    Ok(Some(Duration::from_secs_f64(seconds)))
}

fn article(n: usize) -> String {
    let mut s = format!("# Council budget update {n}\n\n");
    for p in 0..6 {
        s.push_str(&format!(
            "Paragraph {p} of report {n}: the finance committee reviewed the quarterly figures, \
             noted a rise in maintenance costs for the harbour and the library, and asked the \
             treasurer to publish a revised forecast before the next full council meeting. \
             Residents may comment in writing until the end of the month.\n\n"
        ));
    }
    s
}

fn authorship(publisher: &str, n: usize) -> pb::Authorship {
    pb::Authorship {
        subject: format!("https://{publisher}/bench/{n}"),
        byline: "By AI".into(),
        authorship: pb::AuthorshipClass::AiGenerated as i32,
        ai_systems: vec![pb::AiSystem {
            name: "bench-model".into(),
            version: "1".into(),
            provider: String::new(),
        }],
        humans: vec![],
        publisher_domain: publisher.to_string(),
        publisher_name: String::new(),
        title: String::new(),
        language: "en".into(),
        published_at: None,
        ..Default::default()
    }
}

struct Workload {
    requests: Vec<pb::SignRequest>,
}

impl Workload {
    fn new(mode: Mode, publisher: &str, count: usize) -> Result<Self> {
        let mut requests = Vec::with_capacity(count);
        for n in 0..count {
            let text = article(n);
            let article = match mode {
                Mode::Content => pb::sign_request::Article::Content(pb::Article {
                    content: text.into_bytes(),
                    media_type: "text/markdown".into(),
                }),
                Mode::Digest => {
                    let p = prepare_article(text.as_bytes(), MediaType::Markdown, 1 << 22)?;
                    pb::sign_request::Article::Digests(pb::Digests {
                        text_sha256: p.digests.text.to_hex(),
                        exact_sha256: p.digests.exact.to_hex(),
                    })
                }
            };
            requests.push(pb::SignRequest {
                article: Some(article),
                authorship: Some(authorship(publisher, n)),
                idempotency_key: String::new(),
                request_id: n as u64,
            });
        }
        Ok(Workload { requests })
    }

    /// The text digest request `i` carries (digest mode; empty in content mode, which
    /// `--lookup` refuses).
    fn text_digest(&self, i: usize) -> String {
        match &self.requests[i % self.requests.len()].article {
            Some(pb::sign_request::Article::Digests(d)) => d.text_sha256.clone(),
            _ => String::new(),
        }
    }

    fn get(&self, i: usize) -> pb::SignRequest {
        let mut r = self.requests[i % self.requests.len()].clone();
        r.request_id = i as u64;
        r
    }
}

/// The single-thread rate of the same work: SHA-256 of the article, building the statement,
/// and the Ed25519 signature, in requests per second.
pub fn raw_rate(duration: Duration) -> Result<f64> {
    let key = SigningKey::generate();
    let texts: Vec<String> = (0..64).map(article).collect();
    let started = Instant::now();
    let mut done = 0usize;
    while started.elapsed() < duration {
        for (n, text) in texts.iter().enumerate() {
            let digest = crate::core::digest::Sha256Digest::of(text.as_bytes());
            let a = Authorship {
                subject_name: format!("https://localhost/bench/{n}"),
                byline: "By AI".into(),
                authorship: AuthorshipClass::AiGenerated,
                ai_systems: vec![AiSystem {
                    name: "bench-model".into(),
                    version: Some("1".into()),
                    provider: None,
                }],
                humans: vec![],
                publisher: Publisher {
                    name: "localhost".into(),
                    domain: "localhost".into(),
                },
                title: None,
                language: Some("en".into()),
                published_at: None,
                segments: None,
                editorial_responsibility: None,
                supersedes: None,
            };
            let digests = crate::core::digest::ArticleDigests {
                text: digest,
                exact: digest,
            };
            let st = build_statement(&a, digests, None, Timestamp::now())?;
            std::hint::black_box(sign_statement(&st, &key)?);
            done += 1;
        }
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

/// How long each reading of the raw rate runs.
const RAW_RATE_WINDOW: Duration = Duration::from_secs(2);

/// The raw rate measured on the CPUs the server may run on (when its pid is known and this is
/// Linux), so that the ratio compares the server with the same core doing the bare work: on a
/// shared or virtual machine two cores can differ by a third. Returns the rate and where it
/// was measured.
fn raw_rate_beside(server_pid: Option<u32>, duration: Duration) -> Result<(f64, String)> {
    let cpus = server_pid.and_then(allowed_cpus);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let pinned = cpus.as_deref().is_some_and(pin_this_thread);
                let rate = raw_rate(duration)?;
                let place = match (&cpus, pinned) {
                    (Some(list), true) => format!("on the server's CPUs {}", format_cpus(list)),
                    _ => "this process".to_string(),
                };
                Ok((rate, place))
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the raw-rate thread panicked")))
    })
}

/// The value of one field (`Name:`) of process `pid`'s `/proc/PID/status`, trimmed.
fn status_field(pid: u32, name: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        Some(value.trim().to_string())
    })
}

/// The CPUs process `pid` may run on (its `Cpus_allowed_list`).
fn allowed_cpus(pid: u32) -> Option<Vec<usize>> {
    parse_cpu_list(&status_field(pid, "Cpus_allowed_list")?)
}

/// Parses a kernel CPU list such as `0`, `0-3` or `0,2-3`.
fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.trim().parse::<usize>().ok()?..=b.trim().parse().ok()?),
            None => cpus.push(part.trim().parse().ok()?),
        }
    }
    (!cpus.is_empty()).then_some(cpus)
}

fn format_cpus(cpus: &[usize]) -> String {
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Restricts the calling thread to `cpus`; false if the system refused.
#[cfg(target_os = "linux")]
fn pin_this_thread(cpus: &[usize]) -> bool {
    // SAFETY: `set` is a plain bit mask initialised by CPU_ZERO, CPU_SET only writes bits
    // below CPU_SETSIZE (checked), and sched_setaffinity reads `size_of::<cpu_set_t>()` bytes
    // of it for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for &cpu in cpus {
            if cpu >= libc::CPU_SETSIZE as usize {
                return false;
            }
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_this_thread(_cpus: &[usize]) -> bool {
    false
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat_name_and_cpu(&stat)?.1)
}

/// A `/proc/…/stat` line's command name and its user + system CPU in seconds (at the kernel's
/// 100 ticks a second). The name is between the first `(` and the last `)`, and may itself
/// hold spaces and parentheses.
fn stat_name_and_cpu(stat: &str) -> Option<(String, f64)> {
    let (head, after) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_string();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / 100.0))
}

/// The CPU seconds of each live thread of process `pid`, by thread id, with its name (the
/// main thread, whose id is the process's, is named `main`).
fn thread_cpu_seconds(pid: u32) -> Option<BTreeMap<u32, (String, f64)>> {
    let mut threads = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Some(tid) = task
            .ok()
            .and_then(|t| t.file_name().to_str()?.parse::<u32>().ok())
        else {
            continue;
        };
        // A thread may end between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")) else {
            continue;
        };
        if let Some((name, cpu)) = stat_name_and_cpu(&stat) {
            let name = if tid == pid { "main".to_string() } else { name };
            threads.insert(tid, (name, cpu));
        }
    }
    Some(threads)
}

/// The report line that splits the server's CPU per call among its threads, named as the
/// kernel keeps them (at most 15 bytes: the SQLite store's append thread is
/// `byline-sqlite-a`, its WAL checkpoint thread `byline-sqlite-c`), busiest first. Threads of
/// one name are added up; CPU of threads that ended during the load, and of threads that used
/// less than 0.05 us per call, is under `other`.
fn thread_split_line(
    before: &BTreeMap<u32, (String, f64)>,
    after: &BTreeMap<u32, (String, f64)>,
    process_cpu: f64,
    calls: usize,
) -> String {
    let per_call = |secs: f64| secs * 1e6 / calls.max(1) as f64;
    let mut by_name: BTreeMap<&str, f64> = BTreeMap::new();
    for (tid, (name, cpu)) in after {
        let earlier = before.get(tid).map_or(0.0, |(_, c)| *c);
        *by_name.entry(name).or_default() += (cpu - earlier).max(0.0);
    }
    let mut named: Vec<(&str, f64)> = by_name
        .into_iter()
        .filter(|(_, secs)| per_call(*secs) >= 0.05)
        .collect();
    named.sort_by(|a, b| b.1.total_cmp(&a.1));
    let listed: f64 = named.iter().map(|(_, secs)| secs).sum();
    let mut parts: Vec<String> = named
        .iter()
        .map(|(name, secs)| format!("{name} {:.1}", per_call(*secs)))
        .collect();
    parts.push(format!(
        "other {:.1}",
        per_call((process_cpu - listed).max(0.0))
    ));
    format!("server threads  us of CPU per call: {}", parts.join(", "))
}

/// The resident memory of process `pid` (its `VmRSS`, which the kernel gives in kB).
fn rss_mib(pid: u32) -> Option<f64> {
    let kib: f64 = status_field(pid, "VmRSS")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// How long after the measured load paced calls that fell due before its end are still sent.
const LATE_CALLS_GRACE: Duration = Duration::from_secs(1);

/// When a paced call's latency starts: when it was sent, unless its worker was still waiting
/// for the previous answer when the call fell due, in which case when it fell due.
///
/// A worker sends one call at a time. Measured only from the send, a server that stalls holds
/// back the calls that should have been sent meanwhile and hides their wait (coordinated
/// omission): the p99 of a stalled run would look like a calm one's. Measured always from the
/// schedule, every call would also carry the timer's own lateness (tokio's timer has
/// millisecond steps), which is the load generator's, not the server's. Unpaced calls
/// (`due` is `None`) start when sent.
fn latency_start(due: Option<Instant>, previous_answer: Option<Instant>, sent: Instant) -> Instant {
    match (due, previous_answer) {
        (Some(due), Some(answered)) if answered > due => due.min(sent),
        _ => sent,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn channels(url: &str, n: usize) -> Result<Vec<Channel>> {
    if !super::remote::is_loopback(url) {
        bail!("the load generator only targets loopback servers");
    }
    let mut out = Vec::new();
    for _ in 0..n.max(1) {
        out.push(
            Endpoint::from_shared(url.to_string())?
                .tcp_nodelay(true)
                .connect()
                .await
                .with_context(|| format!("cannot connect to {url}"))?,
        );
    }
    Ok(out)
}

struct Run {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

/// Drives `load` until `until`: `SignStream` over its streams, any other load as unary calls,
/// each worker sending one every `period` when paced.
async fn run_load(
    a: &BenchSignArgs,
    load: Load,
    period: Option<Duration>,
    token: &str,
    work: Arc<Workload>,
    until: Instant,
) -> Result<Run> {
    if load == Load::SignStream {
        run_stream(a, token, work, until).await
    } else {
        run_unary(a, load, period, token, work, until).await
    }
}

async fn run_unary(
    a: &BenchSignArgs,
    load: Load,
    period: Option<Duration>,
    token: &str,
    work: Arc<Workload>,
    until: Instant,
) -> Result<Run> {
    let chans = channels(&a.server, a.connections).await?;
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let workers = a.concurrency.max(1);
    // With a target rate, each worker sends one call per period (later if its last answer
    // came late), spread over the period so the calls do not arrive in bursts.
    for w in 0..workers {
        let chan = chans[w % chans.len()].clone();
        let mut client = pb::byline_client::BylineClient::new(chan.clone());
        let mut health = tonic_health::pb::health_client::HealthClient::new(chan);
        let token = token.to_string();
        let work = work.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            // Ticks keep their schedule after a slow answer (`Burst`): the calls a stalled
            // worker could not send go out as soon as it is free, and count from when they
            // were due (see `latency_start`).
            let mut ticker = period.map(|p| {
                let start = tokio::time::Instant::now() + p.mul_f64(w as f64 / workers as f64);
                let mut t = tokio::time::interval_at(start, p);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            let mut previous_answer: Option<Instant> = None;
            loop {
                let due = match &mut ticker {
                    // A tick that falls after the end is not waited for: in the one-second
                    // warm-up, a worker's first tick can come later than that.
                    Some(t) => tokio::select! {
                        biased;
                        due = t.tick() => Some(due.into_std()),
                        _ = tokio::time::sleep_until(until.into()) => break,
                    },
                    None => None,
                };
                // A paced call that fell due before the end is still sent when late, up to
                // `LATE_CALLS_GRACE` past the end: leaving it out would hide a stall at the end
                // of the run, and a rate the server cannot keep must not run on for ever.
                let now = Instant::now();
                if due.unwrap_or(now) >= until || now >= until + LATE_CALLS_GRACE {
                    break;
                }
                let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let t = latency_start(due, previous_answer, now);
                let ok = match load {
                    Load::Echo => health
                        .check(tonic_health::pb::HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .is_ok(),
                    Load::Lookup => client
                        .lookup(pb::LookupRequest {
                            digest: Some(pb::lookup_request::Digest::TextSha256(
                                work.text_digest(i),
                            )),
                        })
                        .await
                        .is_ok(),
                    Load::Sign | Load::SignStream => {
                        let Ok(req) = super::remote::authorized(work.get(i), &token) else {
                            break;
                        };
                        client.sign(req).await.is_ok()
                    }
                };
                let answered = Instant::now();
                if ok {
                    lat.push(answered.duration_since(t));
                } else {
                    errors += 1;
                }
                previous_answer = Some(answered);
            }
            (lat, errors)
        }));
    }
    let mut run = Run {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (lat, errors) = t.await.map_err(|e| anyhow!("worker failed: {e}"))?;
        run.latencies.extend(lat);
        run.errors += errors;
    }
    run.elapsed = started.elapsed();
    Ok(run)
}

async fn run_stream(
    a: &BenchSignArgs,
    token: &str,
    work: Arc<Workload>,
    until: Instant,
) -> Result<Run> {
    let chans = channels(&a.server, a.connections).await?;
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for chan in chans {
        let mut client = pb::byline_client::BylineClient::new(chan);
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::SignRequest>(a.concurrency.max(1));
        let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let feeder_sent = sent.clone();
        let work = work.clone();
        let counter = counter.clone();
        // The window: at most `concurrency` requests sent and not yet answered on this stream.
        // Without it the feeder ran ahead of the server by whatever HTTP/2 flow control let
        // through, and the latency measured that backlog (over a second) instead of the calls.
        let window = Arc::new(tokio::sync::Semaphore::new(a.concurrency.max(1)));
        let feeder_window = window.clone();
        let feeder = tokio::spawn(async move {
            while Instant::now() < until {
                // Closed when the answers end, so a failed stream does not leave this waiting.
                let Ok(slot) = feeder_window.acquire().await else {
                    break;
                };
                slot.forget();
                let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let req = work.get(i);
                feeder_sent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(i as u64, Instant::now());
                if tx.send(req).await.is_err() {
                    break;
                }
            }
        });
        let request =
            super::remote::authorized(tokio_stream::wrappers::ReceiverStream::new(rx), token)?;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut answers = match client.sign_stream(request).await {
                Ok(r) => r.into_inner(),
                Err(_) => {
                    window.close();
                    let _ = feeder.await;
                    return (lat, 1usize);
                }
            };
            while let Ok(Some(answer)) = answers.message().await {
                window.add_permits(1);
                let t = sent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&answer.request_id);
                match (answer.result, t) {
                    (Some(pb::sign_stream_response::Result::Signed(_)), Some(t)) => {
                        lat.push(t.elapsed())
                    }
                    _ => errors += 1,
                }
            }
            window.close();
            let _ = feeder.await;
            (lat, errors)
        }));
    }
    let mut run = Run {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (lat, errors) = t.await.map_err(|e| anyhow!("stream failed: {e}"))?;
        run.latencies.extend(lat);
        run.errors += errors;
    }
    run.elapsed = started.elapsed();
    Ok(run)
}

/// `byline bench sign`.
pub fn bench_sign(a: BenchSignArgs) -> Result<u8> {
    let load = Load::of(&a);
    if load == Load::Lookup && a.mode != Mode::Digest {
        bail!("--lookup looks articles up by the text digests of digest mode: use --mode digest");
    }
    let period = pacing_period(&a)?;
    let token = super::remote::token_from_env()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let work = Arc::new(Workload::new(a.mode, &a.publisher, 4096)?);
    let paced = a
        .rate
        .map(|r| format!(" paced to {r}/s"))
        .unwrap_or_default();
    println!(
        "byline bench sign: {} mode, {}{paced}, concurrency {}, {} connections, {} s",
        if a.mode == Mode::Digest {
            "digest"
        } else {
            "content"
        },
        load.describe(),
        a.concurrency,
        a.connections,
        a.duration
    );
    let rpc = load.timed_rpc();
    let scrape_now = || {
        a.metrics
            .as_deref()
            .map(|addr| scrape(addr, rpc))
            .transpose()
    };
    // A metrics address that does not answer is reported now, not after the warm-up.
    scrape_now()?;
    let idle_rss = a.server_pid.and_then(rss_mib);
    // The raw rate is read twice, with the server idle before and after the load: on a shared
    // machine one reading can be off by a third, and the spread shows how far to trust the ratio.
    let raw_before = if load.signs() {
        Some(raw_rate_beside(a.server_pid, RAW_RATE_WINDOW)?)
    } else {
        None
    };
    // Warm-up, not measured.
    let until = Instant::now() + Duration::from_secs(1);
    rt.block_on(run_load(&a, load, period, &token, work.clone(), until))?;
    let log_before = scrape_now()?;
    let cpu_before = a.server_pid.and_then(cpu_seconds);
    let threads_before = a.server_pid.and_then(thread_cpu_seconds);
    let peak_rss = Arc::new(Mutex::new(0f64));
    let sampler = a.server_pid.map(|pid| {
        let peak = peak_rss.clone();
        let stop = Instant::now() + Duration::from_secs(a.duration);
        std::thread::spawn(move || {
            while Instant::now() < stop {
                if let Some(r) = rss_mib(pid) {
                    let mut p = peak.lock().unwrap_or_else(|e| e.into_inner());
                    *p = p.max(r);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    });
    let until = Instant::now() + Duration::from_secs(a.duration);
    let run = rt.block_on(run_load(&a, load, period, &token, work.clone(), until))?;
    if let Some(s) = sampler {
        let _ = s.join();
    }
    let cpu_after = a.server_pid.and_then(cpu_seconds);
    let threads_after = a.server_pid.and_then(thread_cpu_seconds);
    let log_after = scrape_now()?;
    // A paced Sign run is followed by a bare echo at the same rate, as many calls in flight
    // and for as long: the latency the host and the transport add without any signing, to
    // read the half-load target's p99 beside (on a virtual machine it can be most of it).
    // After the server's CPU and metrics are read, so that it is not counted in them.
    let echo_beside = if load == Load::Sign && a.rate.is_some() {
        let until = Instant::now() + Duration::from_secs(a.duration);
        let mut echo = rt.block_on(run_load(
            &a,
            Load::Echo,
            period,
            &token,
            work.clone(),
            until,
        ))?;
        echo.latencies.sort_unstable();
        Some(echo)
    } else {
        None
    };
    let mut lat = run.latencies;
    lat.sort_unstable();
    let rate = lat.len() as f64 / run.elapsed.as_secs_f64();
    println!(
        "requests        {} ok, {} errors in {:.2} s",
        lat.len(),
        run.errors,
        run.elapsed.as_secs_f64()
    );
    println!("throughput      {rate:.0} req/s");
    if let Some(asked) = a.rate.filter(|r| rate < 0.95 * r) {
        println!(
            "                below the {asked} req/s asked for: the server did not keep up, and \
             the latency includes the calls' wait to be sent"
        );
    }
    println!(
        "latency         p50 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms",
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        percentile(&lat, 0.999).as_secs_f64() * 1e3
    );
    if let Some(echo) = &echo_beside {
        let ms = |p: f64| percentile(&echo.latencies, p).as_secs_f64() * 1e3;
        println!(
            "bare echo       p50 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms (Health/Check at the same \
             pace for {:.0} s after the load: {} ok, {} errors; a call with no signing, on the same \
             host and transport)",
            ms(0.50),
            ms(0.99),
            ms(0.999),
            echo.elapsed.as_secs_f64(),
            echo.latencies.len(),
            echo.errors
        );
    }
    if let (Some(before), Some(after)) = (&log_before, &log_after) {
        println!("{}", log_lines(before, after));
    }
    let thread_split = match (cpu_before, cpu_after, &threads_before, &threads_after) {
        (Some(before), Some(after), Some(tb), Some(ta)) => {
            Some(thread_split_line(tb, ta, after - before, lat.len()))
        }
        _ => None,
    };
    let print_memory = || {
        if let Some(idle) = idle_rss {
            let peak = *peak_rss.lock().unwrap_or_else(|e| e.into_inner());
            println!("server memory   {idle:.1} MiB resident idle, {peak:.1} MiB peak under load");
        }
    };
    // The server's cores busy during the load, when its pid was given.
    let cores = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => Some((after - before) / run.elapsed.as_secs_f64()),
        _ => None,
    };
    if !load.signs() {
        if let Some(cores) = cores {
            println!(
                "server CPU      {cores:.2} cores busy; {:.1} us of server CPU per call",
                cores * 1e6 / rate.max(1e-9)
            );
        }
        if let Some(line) = &thread_split {
            println!("{line}");
        }
        print_memory();
        return Ok(EXIT_OK);
    }
    let (raw_after, where_measured) = raw_rate_beside(a.server_pid, RAW_RATE_WINDOW)?;
    let raw_before = raw_before.map_or(raw_after, |(rate, _)| rate);
    let raw = (raw_before + raw_after) / 2.0;
    println!(
        "raw rate        {raw:.0} /s single-thread (sha256 + statement + Ed25519 sign, {where_measured}; \
         the mean of {raw_before:.0} /s before the load and {raw_after:.0} /s after it)"
    );
    if let Some(cores) = cores {
        let per_core = if cores > 0.0 { rate / cores } else { 0.0 };
        println!(
            "server CPU      {cores:.2} cores busy; {per_core:.0} req/s per server core \
             ({:.1} us per call; the raw work is {:.1} us)",
            1e6 / per_core.max(1e-9),
            1e6 / raw
        );
        println!(
            "ratio           {:.2} of the raw rate per server core ({:.2} to {:.2} against either reading)",
            per_core / raw,
            per_core / raw_before.max(raw_after),
            per_core / raw_before.min(raw_after)
        );
        if let Some(line) = &thread_split {
            println!("{line}");
        }
    } else {
        println!(
            "ratio           {:.2} of the raw rate (whole server; pass --server-pid for per-core)",
            rate / raw
        );
    }
    print_memory();
    Ok(EXIT_OK)
}

/// The `log` lines of the report: the batches and commit times between two scrapes, and the
/// calls' time inside the server, each with how many took longer than the half-load target's
/// bound.
fn log_lines(before: &LogCounters, after: &LogCounters) -> String {
    let ms = |secs: f64| {
        if secs.is_finite() {
            format!("{:.2} ms", secs * 1e3)
        } else {
            "over the last bucket".to_string()
        }
    };
    let none = "log commits     none during the load (the server's metrics)".to_string();
    let Some(log) = LogActivity::between(before, after) else {
        return none;
    };
    // How many took longer than the half-load target's bound, counted by the server.
    let over = |observed: &Observed| match observed.over_tail_bound {
        Some(n) => format!(
            "; {n:.0} ({:.2} %) over {}",
            100.0 * n / observed.count,
            ms(TAIL_BOUND_SECONDS)
        ),
        None => String::new(),
    };
    let mut lines = match &log.commits {
        Some(commits) => format!(
            "log commits     {:.0} batches, {:.1} entries each on average; commit time mean {}, \
             p50 <= {}, p99 <= {}{} (the server's metrics; p50/p99 as bucket bounds)",
            log.batches,
            log.entries / log.batches,
            ms(commits.mean),
            ms(commits.p50),
            ms(commits.p99),
            over(commits)
        ),
        None => none,
    };
    if let Some(calls) = log.calls {
        lines.push_str(&format!(
            "\nin the server   {:.0} calls: mean {}, p50 <= {}, p99 <= {}{}",
            calls.count,
            ms(calls.mean),
            ms(calls.p50),
            ms(calls.p99),
            over(&calls)
        ));
    }
    for (lane, waits) in &log.cpu_lanes {
        lines.push_str(&format!(
            "\ncpu queue       {lane}: {:.0} tasks waited for a thread: mean {}, p50 <= {}, \
             p99 <= {}{}",
            waits.count,
            ms(waits.mean),
            ms(waits.p50),
            ms(waits.p99),
            over(waits)
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `byline bench sign` as clap parses it, without a process.
    #[derive(clap::Parser)]
    struct Bench {
        #[command(flatten)]
        args: BenchSignArgs,
    }

    fn parse(flags: &[&str]) -> Result<BenchSignArgs, clap::Error> {
        use clap::Parser;
        let argv = ["bench", "--server", "http://127.0.0.1:1"].into_iter();
        Bench::try_parse_from(argv.chain(flags.iter().copied())).map(|b| b.args)
    }

    #[test]
    fn each_flag_picks_one_load_and_what_follows_from_it() {
        let load = |flags: &[&str]| Load::of(&parse(flags).unwrap());
        assert_eq!(load(&[]), Load::Sign);
        assert_eq!(load(&["--stream"]), Load::SignStream);
        assert_eq!(load(&["--echo"]), Load::Echo);
        assert_eq!(load(&["--lookup"]), Load::Lookup);
        assert_eq!(load(&["--echo", "--rate", "50"]), Load::Echo);
        // Only signing loads read the raw rate; only Sign and Lookup calls are timed one by
        // one in the server.
        assert!(Load::Sign.signs() && Load::SignStream.signs());
        assert!(!Load::Echo.signs() && !Load::Lookup.signs());
        assert_eq!(Load::Sign.timed_rpc(), Some("Sign"));
        assert_eq!(Load::Lookup.timed_rpc(), Some("Lookup"));
        assert_eq!(Load::SignStream.timed_rpc(), None);
        assert_eq!(Load::Echo.timed_rpc(), None);
        // Two loads at once are refused, not one of them picked.
        for both in [
            &["--stream", "--echo"][..],
            &["--stream", "--lookup"],
            &["--echo", "--lookup"],
            &["--stream", "--rate", "10"],
        ] {
            assert!(parse(both).is_err(), "{both:?} was accepted");
        }
    }

    #[test]
    fn a_rate_must_be_a_number_of_calls_per_second_above_zero() {
        assert_eq!(parse(&["--rate", "4800"]).unwrap().rate, Some(4800.0));
        assert_eq!(parse(&["--rate", "0.5"]).unwrap().rate, Some(0.5));
        assert_eq!(parse(&[]).unwrap().rate, None);
        for bad in ["0", "-5", "NaN", "inf", "fast", ""] {
            for flags in [vec!["--rate", bad], vec![&*format!("--rate={bad}")]] {
                let e = match parse(&flags) {
                    Ok(a) => panic!("{flags:?} was accepted as {:?}", a.rate),
                    Err(e) => e.to_string(),
                };
                assert!(
                    e.contains(&format!(
                        "{bad:?} is not a rate: give the calls per second as a number above 0"
                    )),
                    "{flags:?}: {e}"
                );
            }
        }
    }

    #[test]
    fn a_rate_too_low_for_the_run_is_refused_with_the_flags_to_change() {
        let period = |flags: &[&str]| pacing_period(&parse(flags).unwrap());
        assert_eq!(period(&[]).unwrap(), None);
        // 64 workers (the default) at 6,400 /s: a call each every 10 ms.
        assert_eq!(
            period(&["--rate", "6400"]).unwrap(),
            Some(Duration::from_millis(10))
        );
        // A call each every 10 s fits a 10 s run; every 12.8 s does not.
        assert_eq!(
            period(&["--rate", "8", "--concurrency", "80", "--duration", "10"]).unwrap(),
            Some(Duration::from_secs(10))
        );
        for flags in [
            &["--rate", "5", "--duration", "10"][..],
            &["--rate", "1e-300"],
            &["--rate", "100", "--concurrency", "2000", "--duration", "1"],
        ] {
            let e = period(flags).unwrap_err().to_string();
            assert!(
                e.contains("workers (--concurrency) would send a call every")
                    && e.contains("raise --rate or lower --concurrency"),
                "{flags:?}: {e}"
            );
        }
    }

    #[test]
    fn a_paced_call_held_back_by_a_slow_answer_counts_from_when_it_was_due() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Unpaced calls, and a worker's first call: from the send.
        assert_eq!(latency_start(None, Some(at(50)), at(50)), at(50));
        assert_eq!(latency_start(Some(at(10)), None, at(11)), at(11));
        // The worker was free when the call fell due and the timer fired late: the lateness
        // is the load generator's, so from the send.
        assert_eq!(latency_start(Some(at(10)), Some(at(5)), at(11)), at(11));
        // The previous answer came at 40 ms and the call was due at 10: the server held it
        // back for 30 ms, which counts.
        assert_eq!(latency_start(Some(at(10)), Some(at(40)), at(40)), at(10));
    }

    #[test]
    fn the_log_lines_count_what_took_longer_than_the_half_load_bound() {
        use super::super::server_metrics::ServedHistogram;
        let histogram = |buckets: &[(f64, f64)], sum: f64| ServedHistogram {
            buckets: buckets.to_vec(),
            sum,
        };
        let before = LogCounters {
            batches: 10.0,
            entries: 100.0,
            commits: histogram(&[(0.005, 10.0), (0.01, 10.0), (f64::INFINITY, 10.0)], 0.01),
            calls: histogram(&[(0.005, 90.0), (0.01, 95.0), (f64::INFINITY, 100.0)], 0.2),
            cpu_lanes: BTreeMap::new(),
        };
        // 20 batches, two of them over 10 ms; 400 calls, 8 of them over 10 ms.
        let after = LogCounters {
            batches: 30.0,
            entries: 500.0,
            commits: histogram(&[(0.005, 27.0), (0.01, 28.0), (f64::INFINITY, 30.0)], 0.09),
            calls: histogram(
                &[(0.005, 480.0), (0.01, 487.0), (f64::INFINITY, 500.0)],
                1.0,
            ),
            cpu_lanes: BTreeMap::new(),
        };
        let lines = log_lines(&before, &after);
        assert!(
            lines.contains("; 2 (10.00 %) over 10.00 ms (the server's metrics"),
            "{lines}"
        );
        assert!(lines.contains("400 calls: "), "{lines}");
        assert!(lines.ends_with("; 8 (2.00 %) over 10.00 ms"), "{lines}");
        // A histogram without the bound prints no count.
        let no_bound = |c: &LogCounters| LogCounters {
            calls: histogram(
                &[(0.005, c.calls.buckets[0].1), c.calls.buckets[2]],
                c.calls.sum,
            ),
            ..c.clone()
        };
        let lines = log_lines(&no_bound(&before), &no_bound(&after));
        assert!(
            lines.ends_with("p99 <= over the last bucket") && !lines.contains("8 (2.00 %)"),
            "{lines}"
        );
    }

    #[test]
    fn a_cpu_lane_that_ran_tasks_during_the_load_gets_a_line_of_its_waits() {
        use super::super::server_metrics::ServedHistogram;
        let histogram = |buckets: &[(f64, f64)], sum: f64| ServedHistogram {
            buckets: buckets.to_vec(),
            sum,
        };
        let log = |commits: f64, small: ServedHistogram| LogCounters {
            batches: commits,
            entries: commits,
            commits: histogram(&[(0.01, commits), (f64::INFINITY, commits)], commits),
            calls: ServedHistogram::default(),
            cpu_lanes: BTreeMap::from([
                ("byline-cpu".into(), small),
                (
                    "byline-cpu-big".into(),
                    histogram(&[(0.01, 1.0), (f64::INFINITY, 1.0)], 0.5),
                ),
            ]),
        };
        let before = log(
            1.0,
            histogram(&[(0.001, 5.0), (0.01, 5.0), (f64::INFINITY, 5.0)], 0.0),
        );
        // 100 small tasks in between, waiting 0.2 ms on average, four of them over 10 ms; the
        // large lane ran none.
        let after = log(
            2.0,
            histogram(
                &[(0.001, 95.0), (0.01, 101.0), (f64::INFINITY, 105.0)],
                0.02,
            ),
        );
        let lines = log_lines(&before, &after);
        assert!(
            lines.ends_with(
                "\ncpu queue       byline-cpu: 100 tasks waited for a thread: mean 0.20 ms, \
                 p50 <= 1.00 ms, p99 <= over the last bucket; 4 (4.00 %) over 10.00 ms"
            ),
            "{lines}"
        );
        assert!(!lines.contains("byline-cpu-big"), "{lines}");

        // A load that commits nothing (lookups) still reports its calls' time in the server.
        let calls = |within: f64, all: f64, sum: f64| LogCounters {
            calls: histogram(&[(0.01, within), (f64::INFINITY, all)], sum),
            ..log(1.0, ServedHistogram::default())
        };
        let lines = log_lines(&calls(10.0, 10.0, 0.01), &calls(108.0, 110.0, 0.21));
        assert_eq!(
            lines,
            "log commits     none during the load (the server's metrics)\n\
             in the server   100 calls: mean 2.00 ms, p50 <= 10.00 ms, \
             p99 <= over the last bucket; 2 (2.00 %) over 10.00 ms"
        );
    }

    #[test]
    fn stat_lines_give_the_thread_name_and_its_cpu() {
        // utime 250 and stime 50 ticks are the 14th and 15th fields.
        let line = "4242 (tokio (rt) w) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(
            stat_name_and_cpu(line),
            Some(("tokio (rt) w".to_string(), 3.0))
        );
        assert_eq!(stat_name_and_cpu("4242 (cut short) S 1 2"), None);
    }

    #[test]
    fn the_thread_split_adds_threads_of_one_name_and_puts_the_rest_under_other() {
        let t = |pairs: &[(u32, &str, f64)]| -> BTreeMap<u32, (String, f64)> {
            pairs
                .iter()
                .map(|(tid, name, cpu)| (*tid, (name.to_string(), *cpu)))
                .collect()
        };
        let before = t(&[
            (1, "main", 10.0),
            (2, "byline-sqlite-a", 1.0),
            (3, "gone", 1.0),
        ]);
        let after = t(&[
            (1, "main", 13.0),
            (2, "byline-sqlite-a", 2.0),
            (4, "worker", 0.5),
            (5, "worker", 0.5),
            (6, "idle", 0.0),
        ]);
        // 100,000 calls; the process used 5.5 s, of which 0.5 s in a thread that ended.
        assert_eq!(
            thread_split_line(&before, &after, 5.5, 100_000),
            "server threads  us of CPU per call: main 30.0, byline-sqlite-a 10.0, worker 10.0, \
             other 5.0"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_threads_are_read_by_name() {
        let me = std::process::id();
        let named = std::thread::Builder::new()
            .name("split-probe".into())
            .spawn(|| {
                let threads = thread_cpu_seconds(std::process::id()).expect("readable");
                threads.values().any(|(name, _)| name == "split-probe")
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(
            named,
            "a named thread of this process was listed by its name"
        );
        assert!(thread_cpu_seconds(me)
            .expect("readable")
            .values()
            .any(|(name, _)| name == "main"));
    }

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("0-3"), Some(vec![0, 1, 2, 3]));
        assert_eq!(parse_cpu_list("0,2-3,7"), Some(vec![0, 2, 3, 7]));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(format_cpus(&[0, 2, 3]), "0,2,3");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn status_fields_are_found_by_their_whole_name() {
        let me = std::process::id();
        let rss = status_field(me, "VmRSS").expect("this process has a VmRSS");
        assert!(rss.ends_with(" kB"), "{rss}");
        // A name is matched whole: `Vm` is not `VmRSS` (nor `VmPeak`, the first `Vm` line).
        assert_eq!(status_field(me, "Vm"), None);
        assert_eq!(status_field(me, "NoSuchField"), None);
        let mib = rss_mib(me).expect("this process's resident memory");
        assert!(mib > 0.5 && mib < 64.0 * 1024.0, "{mib} MiB");
        let pid: u32 = status_field(me, "Pid").unwrap().parse().unwrap();
        assert_eq!(pid, me);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_raw_rate_runs_on_the_cpus_of_the_process_named() {
        let me = std::process::id();
        let cpus = allowed_cpus(me).expect("this process has a CPU list");
        let (rate, place) = raw_rate_beside(Some(me), Duration::from_millis(50)).unwrap();
        assert!(rate > 0.0);
        assert_eq!(
            place,
            format!("on the server's CPUs {}", format_cpus(&cpus))
        );
    }
}
