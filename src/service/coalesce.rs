//! A connection wrapper that gathers the server's writes into fewer, larger socket writes.
//!
//! The HTTP/2 library (`h2`) writes every DATA frame longer than 256 bytes with a system call
//! of its own: it hands such a payload to the socket as a separate buffer of a vectored write,
//! and it must write that buffer out before it can encode the next frame. A `Sign` answer is
//! one DATA frame of about 2.5 KB, so a server answering a batch of a hundred calls made a
//! hundred `writev`s, and on loopback each one also pays for the receiving side's TCP work on
//! the sending core: about a tenth of the server's CPU per unary call
//! (`docs/BENCHMARKS.md`, eleventh session).
//!
//! [`CoalescingIo`] accepts every write into its own buffer. A flush holds the bytes for one
//! turn of the scheduler, waking its task and reporting the flush as done. The task runs again
//! once the tasks already queued have run (those that answer the other calls of the batch),
//! and the first thing it does with the connection, reading from it, writes everything held in
//! one system call. On an idle server the task runs again at once, so a lone call waits for a
//! turn of nothing. Held bytes are also written on shutdown, and at once when more than
//! [`HOLD_LIMIT`] are held, which is also where a slow reader's back-pressure starts.
//!
//! Until the eighteenth session a connection held its writes only in a turn that asked for
//! more than four flushes, or after such a turn, and a quiet connection's answers went out at
//! once. At half the unary peak, where a batch's few answers spread over the connections, that
//! left about one `sendto` per call; holding every turn cut the server's CPU per call there by
//! 5.7 % in eight interleaved runs (`docs/BENCHMARKS.md`, eighteenth session).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held before a write goes to the socket at once, and the most a slow reader makes
/// the server keep per connection before writes wait.
pub const HOLD_LIMIT: usize = 256 * 1024;

/// The buffer capacity kept by a quiet connection; a larger one, grown by a busy turn (one
/// that wrote more than this), is kept until [`QUIET_TURNS`] quiet turns in a row.
const KEPT_CAPACITY: usize = 64 * 1024;

/// Quiet turns in a row after which a connection gives back a buffer its busy turns grew.
const QUIET_TURNS: u32 = 32;

/// A connection whose writes are gathered until the next read, shutdown or [`HOLD_LIMIT`].
#[derive(Debug)]
pub struct CoalescingIo<T> {
    inner: T,
    /// Bytes accepted and not yet written; `held[..written]` already went to `inner`.
    held: Vec<u8>,
    written: usize,
    /// The task was woken to write the held bytes and has not done so yet.
    wake_pending: bool,
    /// Turns in a row that wrote no more than [`KEPT_CAPACITY`] bytes.
    quiet_turns: u32,
}

impl<T> CoalescingIo<T> {
    /// Wraps a connection.
    pub fn new(inner: T) -> Self {
        CoalescingIo {
            inner,
            held: Vec::new(),
            written: 0,
            wake_pending: false,
            quiet_turns: 0,
        }
    }

    /// The wrapped connection; the tests read what their recording connection was sent.
    #[cfg(test)]
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// How many accepted bytes have not reached the connection yet.
    fn held(&self) -> usize {
        self.held.len() - self.written
    }
}

impl<T: AsyncWrite + Unpin> CoalescingIo<T> {
    /// Writes the held bytes to the connection and flushes it.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.held.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.held[self.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        if self.held.len() > KEPT_CAPACITY {
            self.quiet_turns = 0;
        } else {
            self.quiet_turns = self.quiet_turns.saturating_add(1);
        }
        self.held.clear();
        self.written = 0;
        self.wake_pending = false;
        if self.held.capacity() > KEPT_CAPACITY && self.quiet_turns >= QUIET_TURNS {
            // A busy connection keeps the buffer its turns grew: at the unary peak most turns
            // of a busy connection hold more than the kept size (about 190 KB at 64 calls a
            // connection), with smaller ones between, and giving the buffer back after each
            // made the next busy turn grow a new one again, a `realloc` and a copy at each
            // doubling and fresh pages from the kernel (about 1 % of the server's CPU per call
            // in a profile). It is given back as a new buffer rather than by `shrink_to`: the
            // allocator's shrink (a `realloc`) of a buffer past twice the kept size copied its
            // first `KEPT_CAPACITY` bytes, all of them already written, and one under that it
            // kept whole.
            self.held = Vec::with_capacity(KEPT_CAPACITY);
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// Makes room for more bytes: past the limit, the held bytes go out first.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.held() >= HOLD_LIMIT {
            self.poll_write_held(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for CoalescingIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.held() > 0 {
            // Written now, before the answer to them is read; if the socket is full, its
            // readiness wakes the task to go on.
            if let Poll::Ready(Err(e)) = this.poll_write_held(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescingIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_room(cx))?;
        let mut n = 0;
        for buf in bufs {
            this.held.extend_from_slice(buf);
            n += buf.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.held() == 0 {
            return Pin::new(&mut this.inner).poll_flush(cx);
        }
        if this.held() >= HOLD_LIMIT {
            return this.poll_write_held(cx);
        }
        // Held for one turn: the task runs again after the tasks already queued, and its
        // next read (or flush past the limit, or shutdown) writes everything held.
        if !this.wake_pending {
            this.wake_pending = true;
            cx.waker().wake_by_ref();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected
    for CoalescingIo<T>
{
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    /// A connection that records each write it is given (one per system call it stands for)
    /// and can refuse writes, as a full socket does.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        full: bool,
        failing: bool,
        shut_down: bool,
    }

    impl Recorder {
        fn bytes(&self) -> Vec<u8> {
            self.writes.concat()
        }
    }

    impl AsyncRead for Recorder {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            if this.failing {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            if this.full {
                return Poll::Pending;
            }
            this.writes.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().shut_down = true;
            Poll::Ready(Ok(()))
        }
    }

    /// Counts how often the task was woken.
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct Harness {
        io: CoalescingIo<Recorder>,
        wakes: Arc<Wakes>,
        waker: Waker,
    }

    impl Harness {
        fn new() -> Self {
            let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
            Harness {
                io: CoalescingIo::new(Recorder::default()),
                waker: Waker::from(wakes.clone()),
                wakes,
            }
        }

        /// A connection whose turn answered `answers` calls and holds them.
        fn holding(answers: u8) -> Self {
            let mut h = Harness::new();
            for n in 0..answers {
                assert!(matches!(h.answer(n), Poll::Ready(Ok(()))));
            }
            assert!(h.io.held() > 0, "{answers} answers left nothing held");
            h
        }

        fn wakes(&self) -> usize {
            self.wakes.0.load(Ordering::SeqCst)
        }

        fn writes(&self) -> usize {
            self.io.get_ref().writes.len()
        }

        /// One answer as h2 writes it: the frame head and the chained payload in one
        /// vectored write, then a flush.
        fn answer(&mut self, n: u8) -> Poll<io::Result<()>> {
            let mut cx = Context::from_waker(&self.waker);
            let head = [n; 9];
            let payload = vec![n; 100];
            let slices = [io::IoSlice::new(&head), io::IoSlice::new(&payload)];
            match Pin::new(&mut self.io).poll_write_vectored(&mut cx, &slices) {
                Poll::Ready(Ok(written)) => assert_eq!(written, 109),
                other => return other.map(|r| r.map(|_| ())),
            }
            Pin::new(&mut self.io).poll_flush(&mut cx)
        }

        /// The start of the next turn: the connection is read.
        fn read(&mut self) -> Poll<io::Result<()>> {
            let mut cx = Context::from_waker(&self.waker);
            let mut space = [0u8; 16];
            let mut buf = ReadBuf::new(&mut space);
            Pin::new(&mut self.io).poll_read(&mut cx, &mut buf)
        }
    }

    /// Answers `count` calls of 109 bytes in one turn, then starts the next turn.
    fn busy_turn(h: &mut Harness, count: u32) {
        for n in 0..count {
            assert!(matches!(h.answer(n as u8), Poll::Ready(Ok(()))));
        }
        assert!(h.read().is_pending());
        assert_eq!(h.io.held(), 0, "all written");
    }

    #[test]
    fn busy_turns_keep_their_buffer_and_quiet_turns_in_a_row_give_it_back() {
        let mut h = Harness::new();
        // 700 answers of 109 bytes: more than the capacity kept, less than the hold limit.
        busy_turn(&mut h, 700);
        assert_eq!(h.io.get_ref().bytes().len(), 700 * 109);
        let grown = h.io.held.capacity();
        assert!(grown > KEPT_CAPACITY, "grew to {grown} bytes");
        // Further busy turns write from the same buffer rather than grow a new one each.
        let buffer = h.io.held.as_ptr();
        for turn in 0..3 {
            busy_turn(&mut h, 700);
            assert_eq!(h.io.held.as_ptr(), buffer, "busy turn {turn}");
            assert_eq!(h.io.held.capacity(), grown, "busy turn {turn}");
        }
        // So do quiet turns between busy ones, and quiet turns short of the limit in a row.
        busy_turn(&mut h, 1);
        busy_turn(&mut h, 700);
        for turn in 0..QUIET_TURNS - 1 {
            busy_turn(&mut h, 1);
            assert_eq!(h.io.held.as_ptr(), buffer, "quiet turn {turn}");
        }
        assert_eq!(
            h.io.get_ref().bytes().len(),
            5 * 700 * 109 + 109 * QUIET_TURNS as usize
        );
        // The last of QUIET_TURNS quiet turns in a row gives the large buffer back.
        busy_turn(&mut h, 1);
        let kept = h.io.held.capacity();
        assert!(
            kept > 0 && kept <= KEPT_CAPACITY,
            "kept {kept} bytes after a quiet turn"
        );
        // The next quiet turns reuse that buffer rather than allocate one each.
        let buffer = h.io.held.as_ptr();
        for turn in 0..3 {
            busy_turn(&mut h, 1);
            assert_eq!(h.io.held.as_ptr(), buffer, "quiet turn {turn}");
            assert_eq!(h.io.held.capacity(), kept, "quiet turn {turn}");
        }
    }

    fn expected(answers: std::ops::Range<u8>) -> Vec<u8> {
        answers.flat_map(|n| std::iter::repeat_n(n, 109)).collect()
    }

    #[test]
    fn a_lone_answer_waits_one_turn_and_leaves_with_the_next_read() {
        let mut h = Harness::new();
        for turn in 0..3u8 {
            assert!(matches!(h.answer(turn), Poll::Ready(Ok(()))));
            assert_eq!(
                h.writes(),
                usize::from(turn),
                "turn {turn}: held, not written"
            );
            assert_eq!(h.io.held(), 109);
            assert_eq!(h.wakes(), usize::from(turn) + 1, "woken to write it");
            assert!(h.read().is_pending());
            assert_eq!(
                h.writes(),
                usize::from(turn) + 1,
                "turn {turn}: written by the read"
            );
            assert_eq!(h.io.held(), 0);
        }
        assert_eq!(h.io.get_ref().bytes(), expected(0..3));
    }

    #[test]
    fn a_turns_answers_are_held_and_leave_in_one_write() {
        let mut h = Harness::holding(40);
        assert_eq!(h.writes(), 0);
        assert_eq!(h.io.held(), 40 * 109);
        assert_eq!(h.wakes(), 1, "woken once to write what it holds");
        // A second flush before the read neither writes nor wakes the task again.
        let mut cx = Context::from_waker(&h.waker);
        assert!(matches!(
            Pin::new(&mut h.io).poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!((h.writes(), h.wakes()), (0, 1));
        // The next turn starts with a read, which writes everything held in one go.
        assert!(h.read().is_pending());
        assert_eq!(h.writes(), 1);
        assert_eq!(h.io.held(), 0);
        assert_eq!(h.io.get_ref().bytes(), expected(0..40));
        // The next turn holds again, and is woken again.
        assert!(h.answer(40).is_ready());
        assert_eq!(h.writes(), 1);
        assert_eq!(h.io.held(), 109);
        assert_eq!(h.wakes(), 2);
        assert!(h.read().is_pending());
        assert_eq!(h.io.get_ref().bytes(), expected(0..41));
    }

    #[test]
    fn shutting_down_writes_what_is_held_first() {
        let mut h = Harness::holding(10);
        let mut cx = Context::from_waker(&h.waker);
        assert!(matches!(
            Pin::new(&mut h.io).poll_shutdown(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert!(h.io.get_ref().shut_down);
        assert_eq!(h.io.get_ref().bytes(), expected(0..10));
    }

    #[test]
    fn past_the_hold_limit_a_full_socket_makes_writes_wait() {
        let mut h = Harness::holding(10);
        h.io.inner.full = true;
        // Held bytes pile up to the limit, then a write must wait for the socket.
        let mut n = 10u8;
        let waited = loop {
            match h.answer(n) {
                Poll::Ready(Ok(())) => n = n.wrapping_add(1),
                Poll::Pending => break true,
                Poll::Ready(Err(e)) => panic!("{e}"),
            }
            assert!(h.io.held() < HOLD_LIMIT + 109, "held {}", h.io.held());
        };
        assert!(waited);
        assert!(h.io.held() >= HOLD_LIMIT);
        // A read while the socket is full still reads; the bytes stay held, none lost.
        let held = h.io.held();
        assert!(h.read().is_pending());
        assert_eq!(h.io.held(), held);
        h.io.inner.full = false;
        assert!(h.read().is_pending());
        assert_eq!(h.io.held(), 0);
        let bytes = h.io.get_ref().bytes();
        assert_eq!(bytes.len() % 109, 0);
        assert!(bytes.len() >= HOLD_LIMIT);
    }

    #[test]
    fn a_failed_write_of_held_bytes_is_reported_by_the_read() {
        let mut h = Harness::holding(10);
        h.io.inner.failing = true;
        match h.read() {
            Poll::Ready(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::BrokenPipe),
            other => panic!("expected the write's error, got {other:?}"),
        }
    }
}
