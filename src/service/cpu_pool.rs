//! A bound on the CPU-bound work the service moves off its async threads.
//!
//! Canonicalizing an article and verifying a bundle take tens to hundreds of microseconds, too
//! long to run between two awaits, so they go to threads of their own. Unbounded, every call in
//! flight got a thread of its own: hundreds under a `SignStream` window, each with its own stack
//! and allocator caches, and none of them finished sooner for it on a machine with a core or
//! two. Bounded by a semaphore in front of tokio's blocking threads, the work still spread over
//! about thirty of them under that load: a permit comes back when the call resumes, before the
//! thread that did the work is idle again, so tokio started another. Each thread's allocator
//! heap keeps the memory it freed, and content-mode `SignStream` peaked above 100 MiB. So the
//! pool owns its threads (a `worker_pool::WorkerPool`): at most a fixed number, started as
//! tasks need them, taking work from a queue.
//!
//! One queue made a large article (up to 4 MiB by default, tens of milliseconds to canonicalize)
//! hold up every small one queued behind it on that CPU, so large inputs have a lane of their
//! own, with threads of their own.

use tonic::Status;

use crate::service::metrics;
use crate::worker_pool::{WorkerError, WorkerPool};

/// Threads per CPU that run such work. A task queued behind another is taken by the thread
/// that finishes it, without a hand-off to a sleeping thread. Measured on one core under
/// SignStream in content mode, one thread cost 83–92 µs of CPU per call and 52–56 MiB
/// resident at the peak, four 101–106 µs and 57–66 MiB, and the semaphore in front of tokio's
/// blocking threads 108–115 µs and 94–113 MiB (docs/BENCHMARKS.md, twentieth session). A
/// long task holds up the tasks queued behind it until it ends, so large inputs have a lane
/// of their own ([`LARGE_TASK_BYTES`]).
pub const THREADS_PER_CORE: usize = 1;

/// Inputs larger than this (an article, with its bundle when verifying) go to the large lane.
/// News articles are a few to some tens of kilobytes, and a web page with its site chrome a
/// few hundred; at about 100 MiB/s of canonicalization, a task at this size holds its thread
/// for about a millisecond.
pub const LARGE_TASK_BYTES: usize = 128 * 1024;

/// Two lanes of threads running CPU-bound tasks: `byline-cpu` for small inputs and
/// `byline-cpu-big` for those over [`LARGE_TASK_BYTES`], so that a large article delays only
/// the large ones queued behind it. Each lane is a `worker_pool::WorkerPool`: its threads
/// start as tasks need them and end after 10 s without any, tasks waiting for a thread hold
/// no thread, and the threads end when the pool is dropped.
#[derive(Debug)]
pub struct CpuPool {
    small: WorkerPool<()>,
    large: WorkerPool<()>,
}

impl CpuPool {
    /// A pool of up to `threads` threads in each lane (at least one).
    pub fn new(threads: usize) -> Self {
        CpuPool {
            small: WorkerPool::new("byline-cpu", threads, || ()),
            large: WorkerPool::new("byline-cpu-big", threads, || ()),
        }
    }

    /// Up to [`THREADS_PER_CORE`] threads in each lane for each CPU this process may run on.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(THREADS_PER_CORE * cores)
    }

    /// Runs `work`, whose input is `input_bytes` long, on a thread of the lane for its size
    /// once one is free; `what` names the work in the error when it fails (a panic inside it).
    /// The task of a call dropped while it waits in the queue (its client went away) stays
    /// there until a thread takes it, and is then skipped: the work does not run.
    pub async fn run<T: Send + 'static>(
        &self,
        what: &str,
        input_bytes: usize,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Status> {
        let lane = if input_bytes > LARGE_TASK_BYTES {
            &self.large
        } else {
            &self.small
        };
        let (name, queued) = (lane.name(), std::time::Instant::now());
        lane.run(move |_| {
            metrics::record_cpu_task(name, queued.elapsed());
            work()
        })
        .await
        .map_err(|e| match e {
            WorkerError::NoThread(e) => Status::unavailable(format!(
                "{what}: the server could not start a thread for it ({e}); see its log"
            )),
            WorkerError::Panicked(panic) => {
                Status::internal(format!("{what} task failed: {panic}"))
            }
            e @ WorkerError::NoAnswer => Status::internal(format!("{what} task failed: {e}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Small tasks run in the small lane's threads, no more of them than the lane has, and
    /// start no thread in the large lane. (How a lane bounds and reuses its threads is the
    /// worker pool's, tested there.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_tasks_run_in_the_small_lane_alone() {
        let pool = Arc::new(CpuPool::new(3));
        let tasks: Vec<_> = (0..48)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    pool.run("test", LARGE_TASK_BYTES, move || {
                        std::thread::sleep(Duration::from_millis(1));
                        (i * 2, std::thread::current().name().map(str::to_owned))
                    })
                    .await
                })
            })
            .collect();
        for (i, task) in (0..).zip(tasks) {
            let (answer, name) = task.await.expect("task").expect("pool");
            assert_eq!(answer, i * 2);
            assert_eq!(name.as_deref(), Some("byline-cpu"));
        }
        assert!((1..=3).contains(&pool.small.running_threads()));
        assert_eq!(pool.large.running_threads(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_task_does_not_hold_up_small_ones() {
        let pool = CpuPool::new(1);
        let (release, held) = std::sync::mpsc::channel::<()>();
        let thread_name = || std::thread::current().name().map(str::to_owned);
        let large = pool.run("large", LARGE_TASK_BYTES + 1, move || {
            let _ = held.recv();
            thread_name()
        });
        tokio::pin!(large);
        assert!(futures_util::poll!(&mut large).is_pending());
        // While the large task holds its lane's one thread, a small one runs on the other.
        let small = tokio::time::timeout(
            Duration::from_secs(30),
            pool.run("small", LARGE_TASK_BYTES, thread_name),
        )
        .await
        .expect("the small task did not wait for the large one")
        .expect("runs");
        assert_eq!(small.as_deref(), Some("byline-cpu"));
        release.send(()).expect("the large task waits");
        let large = large.await.expect("runs");
        assert_eq!(large.as_deref(), Some("byline-cpu-big"));
    }

    #[tokio::test]
    async fn a_panicking_task_is_an_internal_error_naming_the_work_and_the_panic() {
        let pool = CpuPool::new(1);
        let err = pool
            .run("canonicalization", 0, || -> u8 { panic!("boom") })
            .await
            .expect_err("a panic is an error");
        assert_eq!(err.code(), tonic::Code::Internal);
        assert_eq!(err.message(), "canonicalization task failed: boom");
        let err = pool
            .run("verification", 0, || -> u8 { panic!("{} went wrong", 2) })
            .await
            .expect_err("a panic is an error");
        assert_eq!(err.message(), "verification task failed: 2 went wrong");
        // The pool's one thread outlived both panics: it still runs work.
        assert_eq!(pool.run("next", 0, || 7).await.expect("runs"), 7);
    }

    #[tokio::test]
    async fn a_lane_that_cannot_start_a_thread_says_so() {
        let refused = |name| WorkerPool::new(name, 1, || ()).that_cannot_start_threads();
        let pool = CpuPool {
            small: refused("byline-cpu"),
            large: refused("byline-cpu-big"),
        };
        let err = pool
            .run("canonicalization", 0, || 1)
            .await
            .expect_err("no thread to run it");
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert!(
            err.message()
                .starts_with("canonicalization: the server could not start a thread for it ("),
            "{}",
            err.message()
        );
        assert!(
            err.message().ends_with("); see its log"),
            "{}",
            err.message()
        );
    }
}
