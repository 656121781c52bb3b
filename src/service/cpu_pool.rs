//! A bound on the CPU-bound work the service moves off its async threads.
//!
//! Canonicalizing an article and verifying a bundle take tens to hundreds of microseconds, too
//! long to run between two awaits, so they go to tokio's blocking threads. Unbounded, every
//! call in flight got a thread of its own: hundreds under a `SignStream` window, each with its
//! own stack and allocator caches, and none of them finished sooner for it on a machine with a
//! core or two.

use tokio::sync::Semaphore;
use tonic::Status;

/// Blocking threads per CPU that run such work at once. One per CPU made every task a hand-off
/// to a sleeping thread and back (SignStream in content mode on one core: 130 µs of CPU per
/// call, against 107 µs unbounded); four keep a queue in front of each thread, so a thread that
/// finishes one task takes the next without sleeping (100 µs per call, and 32 MiB resident at
/// the peak against 43 MiB with about 200 threads unbounded, both with the C library's
/// allocator; since the binary uses mimalloc the peak there is about 100 MiB, and unbounded it
/// was several hundred).
pub const SLOTS_PER_CORE: usize = 4;

/// At most a fixed number of CPU-bound tasks on blocking threads at once; the rest wait their
/// turn without a thread.
#[derive(Debug)]
pub struct CpuPool {
    slots: Semaphore,
}

impl CpuPool {
    /// A pool running at most `slots` tasks at once (at least one).
    pub fn new(slots: usize) -> Self {
        CpuPool {
            slots: Semaphore::new(slots.max(1)),
        }
    }

    /// [`SLOTS_PER_CORE`] slots for each CPU this process may run on.
    pub fn for_this_machine() -> Self {
        Self::new(SLOTS_PER_CORE * std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Runs `work` on a blocking thread once a slot is free; `what` names the work in the
    /// error when its thread fails (a panic inside it).
    pub async fn run<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Status> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| Status::unavailable("the server is shutting down"))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Status::internal(format!("{what} task failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_runs_more_tasks_at_once_than_it_has_slots() {
        let pool = Arc::new(CpuPool::new(3));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..48)
            .map(|i| {
                let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    pool.run("test", move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        running.fetch_sub(1, Ordering::SeqCst);
                        i * 2
                    })
                    .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.expect("task").expect("pool"));
        }
        assert_eq!(answers, (0..48).map(|i| i * 2).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!((1..=3).contains(&most), "{most} tasks ran at once");
    }

    #[tokio::test]
    async fn a_panicking_task_is_an_internal_error_naming_the_work() {
        let pool = CpuPool::new(1);
        let err = pool
            .run("canonicalization", || -> u8 { panic!("boom") })
            .await
            .expect_err("a panic is an error");
        assert_eq!(err.code(), tonic::Code::Internal);
        assert!(err.message().starts_with("canonicalization task failed"));
        // The slot came back: the pool still runs work.
        assert_eq!(pool.run("next", || 7).await.expect("runs"), 7);
    }
}
