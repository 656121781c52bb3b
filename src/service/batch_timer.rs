//! The end of a batch's wait for more entries, to the tens of microseconds.
//!
//! tokio's timer counts in whole milliseconds, so a wait of 1 ms lasted 1–2 ms, and one of a
//! quarter of a millisecond up to a whole one. The 1 ms wait made the calls' median latency
//! 2.5 ms longer at half load (ninth session), more than the CPU it saved was worth; a wait of
//! a quarter of a millisecond, kept to that, made batches half as large again (two commits
//! where there were three) at no cost in median latency (tenth session, `docs/BENCHMARKS.md`).
//! On Linux the wait is a `timerfd` watched by the runtime's own reactor: no thread of its
//! own and no hand-off. Elsewhere, or if the kernel refuses a timer, it falls back to tokio's
//! timer.

use std::time::Duration;

/// One timer, started for each batch that waits and stopped when the batch is cut.
pub(crate) struct BatchTimer {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
    /// When the current wait ends, for the fallback.
    deadline: Option<tokio::time::Instant>,
}

impl BatchTimer {
    /// A stopped timer. Must be called inside the runtime that awaits it (the reactor
    /// registers the timer's descriptor).
    pub(crate) fn new() -> BatchTimer {
        BatchTimer {
            #[cfg(target_os = "linux")]
            fd: linux::timer_fd()
                .map_err(
                    |e| tracing::warn!(error = %e, "no timerfd; batch waits use millisecond steps"),
                )
                .ok(),
            deadline: None,
        }
    }

    /// Starts a wait of `wait` from now, replacing any wait not yet over.
    pub(crate) fn start(&mut self, wait: Duration) {
        self.deadline = Some(tokio::time::Instant::now() + wait);
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            if linux::set(fd, wait).is_err() {
                // The fallback deadline above still ends the wait.
                self.fd = None;
            }
        }
    }

    /// Stops the wait, so that an expiry not yet seen cannot end the next one early.
    pub(crate) fn stop(&mut self) {
        self.deadline = None;
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            if linux::set(fd, Duration::ZERO).is_err() {
                self.fd = None;
            } else {
                linux::take_expiry(fd);
            }
        }
    }

    /// Completes when the wait started last is over (at once if none was started). Safe to
    /// drop before it completes (in a `select!`) and to await again.
    pub(crate) async fn expired(&self) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            if self.deadline.is_none() {
                return;
            }
            loop {
                let Ok(mut ready) = fd.readable().await else {
                    break;
                };
                if linux::take_expiry(fd) {
                    return;
                }
                ready.clear_ready();
            }
        }
        if let Some(deadline) = self.deadline {
            tokio::time::sleep_until(deadline).await;
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::Duration;

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    /// A non-blocking monotonic timerfd, disarmed, registered with the runtime's reactor.
    pub(super) fn timer_fd() -> io::Result<AsyncFd<OwnedFd>> {
        // SAFETY: timerfd_create takes no pointers; a negative result is an error, anything
        // else a new descriptor that only this function owns.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is open and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the OwnedFd keeps the descriptor open, and always the same one, for as long
        // as the AsyncFd that owns it.
        unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| e.into())
    }

    /// Arms the timer to expire once, `wait` from now; zero disarms it.
    pub(super) fn set(fd: &AsyncFd<OwnedFd>, wait: Duration) -> io::Result<()> {
        // A zero `it_value` disarms, so a non-zero wait is at least a nanosecond.
        let nanos = if wait.is_zero() {
            0
        } else {
            wait.subsec_nanos().max(1)
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: wait.as_secs().try_into().unwrap_or(libc::time_t::MAX),
                tv_nsec: nanos.into(),
            },
        };
        // SAFETY: `spec` is a valid itimerspec for the duration of the call; the old value
        // is not asked for (null).
        let done = unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if done == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Reads the timer's expiry count, if it has expired since the last read: true if so.
    pub(super) fn take_expiry(fd: &AsyncFd<OwnedFd>) -> bool {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into an 8-byte buffer; the descriptor is non-blocking,
        // so a timer that has not expired returns EAGAIN at once.
        let read = unsafe { libc::read(fd.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
        read == 8
    }
}

#[cfg(test)]
mod tests {
    use super::BatchTimer;
    use std::time::Duration;

    /// A started wait ends; a stopped one does not end the next wait early, even if it had
    /// expired unseen; and a wait can be abandoned half way (as `select!` does) and awaited
    /// again. A broken timer would hang here, so each wait has a generous limit.
    #[tokio::test(flavor = "current_thread")]
    async fn a_wait_ends_and_a_stopped_one_does_not_end_the_next() {
        let limit = Duration::from_secs(10);
        let mut timer = BatchTimer::new();
        timer.start(Duration::from_micros(200));
        tokio::time::timeout(limit, timer.expired())
            .await
            .expect("a 200 us wait ends");
        // Expires unseen, then is stopped.
        timer.start(Duration::from_micros(1));
        std::thread::sleep(Duration::from_millis(2));
        timer.stop();
        timer.start(Duration::from_secs(3600));
        let early = tokio::time::timeout(Duration::from_millis(50), timer.expired()).await;
        assert!(early.is_err(), "a stale expiry ended an hour's wait");
        timer.start(Duration::from_micros(300));
        tokio::time::timeout(limit, timer.expired())
            .await
            .expect("a restarted wait ends after one was abandoned");
        timer.stop();
        tokio::time::timeout(limit, timer.expired())
            .await
            .expect("with no wait started, nothing is awaited");
    }
}
