//! Threads of the process's own that run blocking or CPU-bound work for async callers.
//!
//! Two parts of the server need this: the service's CPU lanes (canonicalizing articles,
//! verifying bundles) and the SQLite store's readers (each thread with its connection). Both
//! first ran on tokio's blocking threads behind a semaphore, and under load both spread over
//! dozens of threads: a permit came back when the work ended, before its thread was idle
//! again, so tokio started another for the next call (about thirty threads under content-mode
//! `SignStream`, 51–64 under a `Lookup` load; docs/BENCHMARKS.md, twentieth and twenty-first
//! sessions). Each thread kept an allocator heap, and the calls cost more CPU. A pool whose
//! threads are its own keeps the bound. The two pools were one mechanism written twice; this
//! is it, once.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a thread waits for work before it ends, as tokio's blocking threads do: a burst's
/// threads, and what their states hold (a connection and its page cache), do not stay for
/// the life of the process. The free threads take turns waiting on the queue, so with no work
/// they end one after another, each after this long; a load that brings work more often than
/// this keeps them all.
pub(crate) const IDLE_THREAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What a thread runs: the work, given the thread's state, and the sending of its outcome.
/// Before it answers, it counts its thread spare again (the pool's `spare`, given to it), so
/// that a caller who queues its next call on that answer finds the thread counted free
/// rather than start another. It answers whether the work panicked, so that the thread
/// starts over with fresh state.
type Job<S> = Box<dyn FnOnce(&mut S, &AtomicIsize) -> Panicked + Send>;

/// Whether a job's work panicked.
type Panicked = bool;

/// Why a [`WorkerPool`] did not return the work's value. Each pool's owner words these for its
/// own callers (a gRPC status, a store error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WorkerError {
    /// The pool had no thread and the operating system refused to start one.
    #[error("cannot start a thread to run it: {0}")]
    NoThread(String),
    /// The work panicked; the panic's message, which says which bug it was.
    #[error("it panicked: {0}")]
    Panicked(String),
    /// The work's thread went away without answering (never, while the pool lives).
    #[error("it ended without an answer")]
    NoAnswer,
}

/// Up to `max_threads` threads of one name, started as calls need them, taking work from one
/// queue; each thread keeps a state of type `S` (a database connection, or nothing) from one
/// call to the next, and ends after [`IDLE_THREAD_TIMEOUT`] without work.
///
/// - A call waiting for a thread holds no thread; the work of a call dropped while it waits
///   stays queued until a thread takes it, and is then skipped.
/// - A panic in the work is that call's [`WorkerError::Panicked`], not the thread's end; the
///   thread's state, which the work may have left halfway, is replaced with a new one.
/// - Dropping the pool closes the queue and waits for the threads to finish what they took,
///   so that whatever their states hold (a connection to a file) is released when the pool
///   is gone.
pub(crate) struct WorkerPool<S> {
    /// The threads' name, which `ps`, `perf` and the bench's thread split show.
    name: &'static str,
    /// Taken by `Drop`, which closes the queue so that the threads end.
    queue: Option<mpsc::Sender<Job<S>>>,
    jobs: Arc<Mutex<mpsc::Receiver<Job<S>>>>,
    /// Makes a thread's state, when it starts and after a panic.
    new_state: Arc<dyn Fn() -> S + Send + Sync>,
    max_threads: usize,
    /// The threads running, and every thread's handle for `Drop`.
    threads: Arc<Mutex<Threads>>,
    /// The threads waiting for work less the calls' work waiting for a thread: below zero,
    /// a call found no thread free, and another is started if there is room.
    spare: Arc<AtomicIsize>,
    /// The threads' stack size, when not the platform's (a test's way to make starts fail).
    #[cfg(test)]
    stack_size: Option<usize>,
    /// How long a thread waits for work before it ends ([`IDLE_THREAD_TIMEOUT`]).
    idle_timeout: Duration,
    /// How long a thread that has chosen to end holds the threads' lock before it lets go: a
    /// test's way to have a call come at that moment.
    #[cfg(test)]
    ending_pause: Option<Duration>,
}

/// A pool's threads, under one lock: a thread that ends for want of work counts itself out of
/// `spare` and out of `running` under it, so a caller that found no thread spare and comes to
/// start one sees the count without it.
struct Threads {
    /// The threads started and not ended for want of work; at most `max_threads`.
    running: usize,
    /// Every thread started and not yet joined, an ending one too, so that `Drop` waits for
    /// each (and for the state it drops) to end.
    handles: Vec<JoinHandle<()>>,
}

impl<S> std::fmt::Debug for WorkerPool<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("name", &self.name)
            .field("max_threads", &self.max_threads)
            .field("spare", &self.spare)
            .finish_non_exhaustive()
    }
}

impl<S: 'static> WorkerPool<S> {
    /// A pool of up to `max_threads` threads (at least one) named `name`, each starting with
    /// the state `new_state` makes; no thread starts until a call needs it. `new_state` must
    /// not panic: a thread whose state it cannot make ends still counted against the bound,
    /// and work queued for it waits for another thread. (Both states in use, nothing and a
    /// connection opened on first use, are made without a fallible step.)
    pub(crate) fn new(
        name: &'static str,
        max_threads: usize,
        new_state: impl Fn() -> S + Send + Sync + 'static,
    ) -> Self {
        let (queue, jobs) = mpsc::channel();
        WorkerPool {
            name,
            queue: Some(queue),
            jobs: Arc::new(Mutex::new(jobs)),
            new_state: Arc::new(new_state),
            max_threads: max_threads.max(1),
            threads: Arc::new(Mutex::new(Threads {
                running: 0,
                handles: Vec::new(),
            })),
            spare: Arc::new(AtomicIsize::new(0)),
            #[cfg(test)]
            stack_size: None,
            idle_timeout: IDLE_THREAD_TIMEOUT,
            #[cfg(test)]
            ending_pause: None,
        }
    }

    /// The threads' name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Runs `work` with the state of one of the pool's threads once one is free, starting a
    /// thread if none is free and fewer than the most have started.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut S) -> T + Send + 'static,
    ) -> Result<T, WorkerError> {
        let (answer, outcome) = tokio::sync::oneshot::channel();
        let job: Job<S> = Box::new(move |state: &mut S, spare: &AtomicIsize| {
            if answer.is_closed() {
                spare.fetch_add(1, Ordering::AcqRel);
                return false;
            }
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(state)));
            let panicked = result.is_err();
            let result = result
                .map_err(|panic| WorkerError::Panicked(panic_message(panic.as_ref()).to_owned()));
            // Nothing after this can panic but the answer's drop, when its caller has gone.
            spare.fetch_add(1, Ordering::AcqRel);
            let _ = answer.send(result);
            panicked
        });
        // This work takes a thread that waits, or needs another.
        if self.spare.fetch_sub(1, Ordering::AcqRel) <= 0 {
            if let Err(e) = self.start_thread() {
                self.spare.fetch_add(1, Ordering::AcqRel);
                return Err(e);
            }
        }
        // The pool holds the queue's receiver, and `Drop` alone takes the sender, so the queue
        // takes every job while `self` lives. Were one refused, it would drop its answer, and
        // the call would end with `NoAnswer`.
        if let Some(queue) = &self.queue {
            let _ = queue.send(job);
        }
        outcome.await.unwrap_or(Err(WorkerError::NoAnswer))
    }

    /// Starts another thread unless `max_threads` are running. A thread the operating system
    /// refuses is an error only when there is none to take the call; otherwise it is logged
    /// and the call waits for a thread that runs.
    fn start_thread(&self) -> Result<(), WorkerError> {
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        if threads.running >= self.max_threads {
            return Ok(());
        }
        let thread = PoolThread {
            jobs: self.jobs.clone(),
            spare: self.spare.clone(),
            threads: self.threads.clone(),
            new_state: self.new_state.clone(),
            idle_timeout: self.idle_timeout,
            #[cfg(test)]
            ending_pause: self.ending_pause,
        };
        let builder = std::thread::Builder::new().name(self.name.to_owned());
        #[cfg(test)]
        let builder = match self.stack_size {
            Some(bytes) => builder.stack_size(bytes),
            None => builder,
        };
        let spawned = builder.spawn(move || thread.serve());
        match spawned {
            Ok(handle) => {
                threads.running += 1;
                // Threads that ended for want of work leave finished handles behind.
                threads.handles.retain(|handle| !handle.is_finished());
                threads.handles.push(handle);
                Ok(())
            }
            Err(e) if threads.running == 0 => Err(WorkerError::NoThread(e.to_string())),
            Err(e) => {
                tracing::warn!("cannot start another {} thread: {e}", self.name);
                Ok(())
            }
        }
    }

    /// The same pool, except that the operating system refuses to start its threads: their
    /// stacks would be larger than any address space.
    #[cfg(test)]
    pub(crate) fn that_cannot_start_threads(mut self) -> Self {
        self.stack_size = Some(usize::MAX & !0xffff);
        self
    }

    /// The same pool with threads that end after `idle` without work.
    #[cfg(test)]
    pub(crate) fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// How many threads are running.
    #[cfg(test)]
    pub(crate) fn running_threads(&self) -> usize {
        self.threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .running
    }
}

/// What one thread of a pool holds: the pool's queue and counts, and how to make its state.
struct PoolThread<S> {
    jobs: Arc<Mutex<mpsc::Receiver<Job<S>>>>,
    spare: Arc<AtomicIsize>,
    threads: Arc<Mutex<Threads>>,
    new_state: Arc<dyn Fn() -> S + Send + Sync>,
    idle_timeout: Duration,
    /// See [`WorkerPool`]'s field of the name.
    #[cfg(test)]
    ending_pause: Option<Duration>,
}

impl<S> PoolThread<S> {
    /// The thread's life: run jobs until the pool closes its queue, or until no job comes for
    /// the idle timeout and the thread may end.
    fn serve(self) {
        let mut state = (self.new_state)();
        self.spare.fetch_add(1, Ordering::AcqRel);
        loop {
            // The lock is held only while waiting: the thread that takes a job lets the next
            // idle thread wait for the following one. Taking a job leaves `spare` as it is: the
            // job counted itself off when it was queued, and counts its thread back in before
            // it answers.
            let next = self
                .jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .recv_timeout(self.idle_timeout);
            match next {
                Ok(job) => self.run_job(job, &mut state),
                Err(mpsc::RecvTimeoutError::Timeout) if self.may_end() => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    /// Runs one job, with a new state after a panic. A job catches its work's panic; one from
    /// dropping an answer nobody waits for is caught here, so the pool keeps its threads.
    fn run_job(&self, job: Job<S>, state: &mut S) {
        let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| job(state, &self.spare)))
            .unwrap_or_else(|panic| {
                tracing::warn!(
                    "a worker thread's task panicked outside its work: {}",
                    panic_message(panic.as_ref())
                );
                true
            });
        if panicked {
            *state = (self.new_state)();
        }
    }

    /// Whether a thread whose wait for work ran out may end, counting itself out if so. It may
    /// only while more threads are counted spare than jobs wait (`spare` above zero, itself
    /// included): a job queued after the wait ran out counted on a thread being free, and
    /// finds one. Both counts change under the threads' lock (see `Threads`); the thread's
    /// handle stays for `Drop`, which then waits for its state too.
    fn may_end(&self) -> bool {
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        let leaving = self
            .spare
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > 0).then(|| n - 1)
            })
            .is_ok();
        if leaving {
            #[cfg(test)]
            if let Some(pause) = self.ending_pause {
                std::thread::sleep(pause);
            }
            threads.running -= 1;
        }
        leaving
    }
}

impl<S> Drop for WorkerPool<S> {
    /// Closes the queue and waits for the threads to finish what they took.
    fn drop(&mut self) {
        drop(self.queue.take());
        let threads = std::mem::take(
            &mut self
                .threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .handles,
        );
        let me = std::thread::current().id();
        for handle in threads {
            // A pool dropped by its own work cannot wait for itself.
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
    }
}

/// The message a panic carried, when it was a string: what says which bug it was.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "it panicked"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Many calls at once run on at most the pool's few threads, all of its name, and each
    /// gets its own answer back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_calls_run_on_at_most_its_own_few_threads() {
        let pool = Arc::new(WorkerPool::new("test-pool", 3, || ()));
        assert_eq!(
            pool.running_threads(),
            0,
            "a thread started before any call"
        );
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let calls: Vec<_> = (0..64)
            .map(|i| {
                let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    pool.run(move |_: &mut ()| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(1));
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
        for call in calls {
            let (answer, id, name) = call.await.expect("call").expect("pool");
            assert_eq!(name.as_deref(), Some("test-pool"));
            answers.push(answer);
            threads.insert(id);
        }
        assert_eq!(answers, (0..64).map(|i| i * 2).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!((1..=3).contains(&most), "{most} calls ran at once");
        assert!(
            (1..=3).contains(&threads.len()),
            "64 calls ran on {} threads",
            threads.len()
        );
        assert!((1..=3).contains(&pool.running_threads()));
    }

    /// One call after another needs one thread, not one each: a thread is started only when
    /// none is free, and a thread that has answered counts as free even before it waits for
    /// the next call (counted after, a caller quick to queue its next call started another).
    #[tokio::test]
    async fn calls_one_after_another_start_one_thread() {
        let pool = WorkerPool::new("test-pool", 4, || ());
        let mut threads = HashSet::new();
        for _ in 0..200 {
            threads.insert(pool.run(|_| std::thread::current().id()).await.unwrap());
        }
        assert_eq!(threads.len(), 1);
        assert_eq!(pool.running_threads(), 1);
    }

    /// A thread keeps its state from one call to the next, and a panic is that call's error:
    /// the thread goes on with a new state, since the panic may have left the old one halfway.
    #[tokio::test]
    async fn a_panic_is_the_call_s_error_and_the_thread_starts_over_with_new_state() {
        let made = Arc::new(AtomicUsize::new(0));
        let pool = {
            let made = made.clone();
            WorkerPool::new("test-pool", 1, move || {
                made.fetch_add(1, Ordering::SeqCst);
                Vec::<u32>::new()
            })
        };
        pool.run(|calls| calls.push(1)).await.unwrap();
        assert_eq!(pool.run(|calls| calls.clone()).await.unwrap(), vec![1]);
        let err = pool
            .run(|calls| -> u8 {
                calls.push(2);
                panic!("{} went wrong", "the read")
            })
            .await
            .expect_err("a panic is an error");
        assert_eq!(err, WorkerError::Panicked("the read went wrong".into()));
        let err = pool
            .run(|_| -> u8 { panic!("boom") })
            .await
            .expect_err("a panic is an error");
        assert_eq!(err, WorkerError::Panicked("boom".into()));
        // The one thread outlived both panics, with a new state after each.
        assert_eq!(
            pool.run(|calls| calls.clone()).await.unwrap(),
            Vec::<u32>::new()
        );
        assert_eq!(made.load(Ordering::SeqCst), 3);
        assert_eq!(pool.running_threads(), 1);
    }

    #[tokio::test]
    async fn a_call_whose_caller_went_away_while_queued_does_not_run() {
        let pool = WorkerPool::new("test-pool", 1, || ());
        let (release, held) = std::sync::mpsc::channel::<()>();
        let ran = Arc::new(AtomicUsize::new(0));
        // The first call holds the only thread until it is released.
        let first = pool.run(move |_| held.recv().is_ok());
        tokio::pin!(first);
        assert!(futures_util::poll!(&mut first).is_pending());
        {
            let ran = ran.clone();
            let mut gone = Box::pin(pool.run(move |_| ran.fetch_add(1, Ordering::SeqCst)));
            assert!(futures_util::poll!(&mut gone).is_pending(), "queued");
        }
        release.send(()).expect("the first call waits");
        assert!(first.await.expect("the first call answers"));
        // One thread, one queue: this call runs after the dropped one's turn.
        assert_eq!(pool.run(|_| 7).await.expect("runs"), 7);
        assert_eq!(ran.load(Ordering::SeqCst), 0, "the dropped call's work ran");
    }

    #[tokio::test]
    async fn a_pool_that_cannot_start_a_thread_says_so_and_tries_again() {
        let pool = WorkerPool::new("test-pool", 2, || ()).that_cannot_start_threads();
        for _ in 0..2 {
            let err = pool.run(|_| 1).await.expect_err("no thread to run it");
            assert!(matches!(err, WorkerError::NoThread(_)), "{err:?}");
            assert!(
                err.to_string()
                    .starts_with("cannot start a thread to run it: "),
                "{err}"
            );
        }
        assert_eq!(pool.running_threads(), 0);
        // The refused calls were not counted as waiting: `spare` is back where it began.
        assert_eq!(pool.spare.load(Ordering::SeqCst), 0);
    }

    /// A thread's state that tells the test when it is dropped.
    struct Ended(std::sync::mpsc::Sender<()>);
    impl Drop for Ended {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }

    /// A pool of two threads whose states tell `ends` when dropped, with both threads started:
    /// two calls at once, each holding its thread until both run.
    async fn pool_with_two_threads_running(
        idle_timeout: Duration,
    ) -> (Arc<WorkerPool<Ended>>, std::sync::mpsc::Receiver<()>) {
        let (ended, ends) = std::sync::mpsc::channel();
        let pool = Arc::new(
            WorkerPool::new("test-pool", 2, move || Ended(ended.clone()))
                .with_idle_timeout(idle_timeout),
        );
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let calls: Vec<_> = (0..2)
            .map(|_| {
                let (pool, barrier) = (pool.clone(), barrier.clone());
                tokio::spawn(async move {
                    pool.run(move |_| {
                        barrier.wait();
                    })
                    .await
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        (pool, ends)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_thread_ends_with_its_state_and_a_later_call_starts_another() {
        let (pool, ends) = pool_with_two_threads_running(Duration::from_millis(50)).await;
        // A hundred times the timeout: long enough on a loaded machine, and well short of the
        // ten seconds that threads without a timeout of their own wait.
        for _ in 0..2 {
            ends.recv_timeout(Duration::from_secs(5))
                .expect("an idle thread's state was dropped");
        }
        // A thread takes itself out of the pool before its state is dropped.
        assert_eq!(pool.running_threads(), 0);
        assert_eq!(pool.run(|_| 5).await.expect("a new thread runs it"), 5);
        // The new thread, with a state of its own, ends in its turn.
        ends.recv_timeout(Duration::from_secs(5))
            .expect("the new thread's state was dropped");
    }

    /// Threads ending for want of work while calls come and go never leave a queued call
    /// without a thread: every call is answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_that_come_while_threads_end_are_all_answered() {
        // With one thread, a call that met its thread ending has no other to fall back on.
        for max_threads in [1, 3] {
            let pool = Arc::new(
                // Threads all but never wait, so that their choices to end fall between calls
                // being queued.
                WorkerPool::new("test-pool", max_threads, || ())
                    .with_idle_timeout(Duration::from_micros(1)),
            );
            let rounds = async {
                for round in 0..300u64 {
                    let calls: Vec<_> = (0..round % 4 + 1)
                        .map(|i| {
                            let pool = pool.clone();
                            tokio::spawn(async move { pool.run(move |_| round * 4 + i).await })
                        })
                        .collect();
                    for (i, call) in (0..).zip(calls) {
                        assert_eq!(call.await.unwrap().unwrap(), round * 4 + i);
                    }
                    // Pauses of different lengths, so that the rounds' calls meet threads in
                    // every step of ending.
                    tokio::time::sleep(Duration::from_micros(100 * (round % 5))).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(60), rounds)
                .await
                .expect("a call waited with no thread to run it");
        }
    }

    /// A call that finds no thread spare while the last thread is ending starts another: the
    /// ending thread is no longer counted against the bound.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_that_comes_while_the_last_thread_ends_starts_another() {
        let mut pool =
            WorkerPool::new("test-pool", 1, || ()).with_idle_timeout(Duration::from_millis(1));
        // A thread that has chosen to end holds that moment long enough for the next call.
        pool.ending_pause = Some(Duration::from_millis(20));
        let calls = async {
            for i in 0..10u32 {
                assert_eq!(pool.run(move |_| i).await.expect("runs"), i);
                // Past the idle timeout, into the ending thread's pause.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), calls)
            .await
            .expect("a call waited with no thread to run it");
    }

    #[tokio::test]
    async fn dropping_the_pool_ends_its_threads_and_their_state() {
        let (pool, ends) = pool_with_two_threads_running(IDLE_THREAD_TIMEOUT).await;
        assert_eq!(pool.running_threads(), 2);
        let pool = Arc::into_inner(pool).expect("the calls are done");
        drop(pool);
        // Drop joined the threads, so both states are gone by now.
        for _ in 0..2 {
            ends.try_recv()
                .expect("a thread's state was dropped with the pool");
        }
    }
}
