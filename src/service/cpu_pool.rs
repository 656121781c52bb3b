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
//! pool owns its threads: a fixed number, started with it, taking work from a queue.
//!
//! One queue made a large article (up to 4 MiB by default, tens of milliseconds to canonicalize)
//! hold up every small one queued behind it on that CPU, so large inputs have a lane of their
//! own, with threads of their own.

use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc, Mutex, PoisonError};

use tonic::Status;

use crate::service::metrics;

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

/// What a thread of the pool runs: the work and the sending of its outcome.
type Job = Box<dyn FnOnce() + Send>;

/// Two lanes of threads running CPU-bound tasks: `byline-cpu` for small inputs and
/// `byline-cpu-big` for those over [`LARGE_TASK_BYTES`], so that a large article delays only
/// the large ones queued behind it. Tasks waiting for a thread hold no thread. The threads end
/// when the pool is dropped and their queue is empty.
#[derive(Debug)]
pub struct CpuPool {
    small: Lane,
    large: Lane,
}

impl CpuPool {
    /// A pool with `threads` threads in each lane (at least one).
    pub fn new(threads: usize) -> Self {
        CpuPool {
            small: Lane::new("byline-cpu", threads),
            large: Lane::new("byline-cpu-big", threads),
        }
    }

    /// [`THREADS_PER_CORE`] threads in each lane for each CPU this process may run on.
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
        lane.run(what, work).await
    }
}

/// A fixed set of threads of one name taking tasks from one queue.
#[derive(Debug)]
struct Lane {
    /// Its threads' name, which also names the lane in the metrics.
    name: &'static str,
    queue: mpsc::Sender<Job>,
    /// The threads that started. The queue's receiver lives as long as one of them does, so
    /// while the lane exists a task can be refused only when none started; `run` says so
    /// before trying.
    threads: usize,
}

impl Lane {
    /// A lane of `threads` threads named `name` (at least one). A thread the operating system
    /// refuses to start is logged and left out; with none started, every task is refused with
    /// an error that says so.
    fn new(name: &'static str, threads: usize) -> Self {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let mut started = 0;
        for _ in 0..threads.max(1) {
            let jobs = jobs.clone();
            let spawned = std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || loop {
                    // The lock is held only while waiting: the thread that takes a job lets
                    // the next idle thread wait for the following one.
                    let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    match next {
                        // A job catches its work's panic; one from sending the answer or
                        // dropping it is caught here, so the pool keeps its threads.
                        Ok(job) => {
                            if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
                                tracing::warn!("a {name} task panicked outside its work");
                            }
                        }
                        Err(mpsc::RecvError) => break,
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::warn!("cannot start a {name} thread: {e}"),
            }
        }
        Lane {
            name,
            queue,
            threads: started,
        }
    }

    /// Runs `work` on one of the lane's threads once one is free (see [`CpuPool::run`]).
    async fn run<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Status> {
        if self.threads == 0 {
            return Err(Status::unavailable(format!(
                "{what}: the server could not start a thread for it; see its log"
            )));
        }
        let (answer, outcome) = tokio::sync::oneshot::channel();
        let (lane, queued) = (self.name, std::time::Instant::now());
        let job: Job = Box::new(move || {
            if answer.is_closed() {
                return;
            }
            metrics::record_cpu_task(lane, queued.elapsed());
            // A panic is the call's error, not the thread's end.
            let _ = answer.send(std::panic::catch_unwind(AssertUnwindSafe(work)));
        });
        // The lane is alive (`self`), so its queue is closed only if every thread has ended,
        // which nothing but a failed start does.
        self.queue.send(job).map_err(|_| {
            Status::unavailable(format!(
                "{what}: no thread is left to run it; see the server's log"
            ))
        })?;
        match outcome.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => Err(Status::internal(format!(
                "{what} task failed: {}",
                crate::panic_message(panic.as_ref())
            ))),
            Err(_) => Err(Status::internal(format!(
                "{what} task failed: it ended without an answer"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_every_task_on_its_own_few_named_threads() {
        let pool = Arc::new(CpuPool::new(3));
        assert_eq!((pool.small.threads, pool.large.threads), (3, 3));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..48)
            .map(|i| {
                let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    pool.run("test", 0, move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        running.fetch_sub(1, Ordering::SeqCst);
                        let thread = std::thread::current();
                        (i * 2, thread.id(), thread.name().map(str::to_owned))
                    })
                    .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        let mut threads = HashSet::new();
        for task in tasks {
            let (answer, id, name) = task.await.expect("task").expect("pool");
            assert_eq!(name.as_deref(), Some("byline-cpu"));
            answers.push(answer);
            threads.insert(id);
        }
        assert_eq!(answers, (0..48).map(|i| i * 2).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!((1..=3).contains(&most), "{most} tasks ran at once");
        // The memory a thread's allocator keeps is bounded only if the threads are.
        assert!(
            (1..=3).contains(&threads.len()),
            "48 tasks ran on {} threads",
            threads.len()
        );
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
    async fn a_pool_whose_threads_did_not_start_says_so() {
        // What `new` leaves when no thread starts: a queue whose receiver is gone.
        let (queue, jobs) = mpsc::channel();
        drop(jobs);
        let lane = Lane {
            name: "byline-cpu",
            queue,
            threads: 0,
        };
        let err = lane
            .run("canonicalization", || 1)
            .await
            .expect_err("no thread to run it");
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert_eq!(
            err.message(),
            "canonicalization: the server could not start a thread for it; see its log"
        );
    }

    #[tokio::test]
    async fn a_task_whose_call_went_away_while_queued_does_not_run() {
        let pool = CpuPool::new(1);
        let (release, held) = std::sync::mpsc::channel::<()>();
        let ran = Arc::new(AtomicUsize::new(0));
        // The first task holds the only thread until it is released.
        let first = pool.run("first", 0, move || held.recv().is_ok());
        tokio::pin!(first);
        assert!(futures_util::poll!(&mut first).is_pending());
        {
            let ran = ran.clone();
            let mut gone =
                Box::pin(pool.run("gone", 0, move || ran.fetch_add(1, Ordering::SeqCst)));
            assert!(futures_util::poll!(&mut gone).is_pending(), "queued");
        }
        release.send(()).expect("the first task waits");
        assert!(first.await.expect("the first task answers"));
        // One thread, one queue: this task runs after the dropped one's turn.
        assert_eq!(pool.run("after", 0, || 7).await.expect("runs"), 7);
        assert_eq!(ran.load(Ordering::SeqCst), 0, "the dropped call's work ran");
    }

    #[tokio::test]
    async fn its_threads_end_when_the_pool_is_dropped() {
        /// Tells the test, when the thread that holds it ends, that it has ended.
        struct Ended(std::sync::mpsc::Sender<()>);
        impl Drop for Ended {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        thread_local! {
            static ON_END: std::cell::RefCell<Option<Ended>> = const { std::cell::RefCell::new(None) };
        }
        let pool = CpuPool::new(2);
        let (ended, ends) = std::sync::mpsc::channel();
        let mut marked = HashSet::new();
        // Mark the four threads, two in each lane (a task may land on either thread of its
        // lane, so keep going until all are marked).
        for i in 0..10_000 {
            if marked.len() == 4 {
                break;
            }
            let ended = ended.clone();
            let bytes = if i % 2 == 0 { 0 } else { LARGE_TASK_BYTES + 1 };
            let id = pool
                .run("mark", bytes, move || {
                    ON_END.with(|end| {
                        // A second mark, made and dropped, would tell of an end too early.
                        end.borrow_mut().get_or_insert_with(|| Ended(ended));
                    });
                    std::thread::sleep(Duration::from_millis(1));
                    std::thread::current().id()
                })
                .await
                .expect("runs");
            marked.insert(id);
        }
        assert_eq!(marked.len(), 4, "tasks ran on all four threads");
        drop(ended);
        drop(pool);
        for _ in 0..4 {
            ends.recv_timeout(Duration::from_secs(30))
                .expect("a thread of the dropped pool ended");
        }
    }
}
