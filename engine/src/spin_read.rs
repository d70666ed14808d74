//! Spinning on a client socket for its next request instead of parking the shard.
//!
//! A connection that sends one request at a time (a latency-bound client) is otherwise served
//! like this: the reply goes out, the read waits on an io_uring poll, the shard parks in
//! `io_uring_enter`, and the next request wakes it through the kernel's task work. On a virtual
//! machine that round costs more than the request itself (`docs/benchmarks/peers-g1g4g5.md`,
//! "What limits Sprawl"). glommio's own spin-before-park does not help: it polls its completion
//! queues in memory, and a socket's readiness does not reach them until the thread enters the
//! kernel (`docs/decisions.md`).
//!
//! So when one connection is the only one sending requests to a shard ([`SpinGate`]) and has
//! nothing in flight, its reader tries a non-blocking `recv` on the socket, yields to the shard's
//! other tasks (the reply's writer first), and tries again, for up to `spin_read_us`; then it
//! falls back to the ordinary read. It is not: a spin while other connections are sending (while
//! the reader spins, the shard reaps no io_uring completion, so the others' I/O would wait), nor
//! while a request of the connection is waiting (an `acks=all` fdatasync or a long-poll, whose
//! completion the spin would delay), nor while the shard's idle-priority background thread has
//! work pending (prefaulting: with the node on one core, a reactor that never parks starves it,
//! and appends then fault their pages in; measured, see `docs/decisions.md`), unless that work
//! is starved anyway ([`background_holds_off`]), nor while a flush runs ([`BlockingRunning`]).
//! Idle connections (a client's metadata connection) do not count. glommio's stream keeps no
//! buffer of its own, so reading the descriptor directly loses nothing; a stream that does (TLS,
//! a buffered reader) must not be read this way.

use std::cell::Cell;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use bytes::BytesMut;

/// After a request from a second connection, how long spinning stays off for everyone.
pub const CONTENDED_FOR: Duration = Duration::from_millis(10);
/// While a reader spins, the shard's tasks keep it busy and glommio reaps no completion (timers,
/// other sockets, fdatasyncs) until its preemption timer fires, 100 ms by default; so a reader
/// that has spun this long since the last such pass sleeps once to give the shard one.
pub const POLL_EVERY: Duration = Duration::from_millis(1);

/// Which connection of a shard may spin: the one that sent the shard's last requests, while no
/// other connection has sent one for [`CONTENDED_FOR`].
#[derive(Debug)]
pub struct SpinGate {
    last_sender: Cell<u64>,
    contended_until: Cell<Instant>,
    polled_at: Cell<Instant>,
}

impl Default for SpinGate {
    fn default() -> Self {
        SpinGate {
            last_sender: Cell::new(0),
            contended_until: Cell::new(Instant::now()),
            polled_at: Cell::new(Instant::now()),
        }
    }
}

impl SpinGate {
    /// Connection `conn` (ids start at 1) sent a request at `now`.
    pub fn request(&self, conn: u64, now: Instant) {
        let last = self.last_sender.replace(conn);
        if last != 0 && last != conn {
            self.contended_until.set(now + CONTENDED_FOR);
        }
    }

    /// Whether connection `conn` may spin at `now`.
    pub fn may_spin(&self, conn: u64, now: Instant) -> bool {
        self.last_sender.get() == conn && now >= self.contended_until.get()
    }

    /// Whether a spinning reader should give the shard a pass over its completions now (and, if
    /// so, counts that pass as given).
    pub fn poll_due(&self, now: Instant) -> bool {
        if now.duration_since(self.polled_at.get()) < POLL_EVERY {
            return false;
        }
        self.polled_at.set(now);
        true
    }
}

/// What a spin found.
#[derive(Debug, PartialEq, Eq)]
pub enum Spun {
    /// Bytes were appended to the buffer.
    Data,
    /// The peer closed the connection or the socket failed.
    Closed,
    /// Nothing arrived within the budget: read the ordinary way.
    Missed,
    /// Spinning was not allowed (or stopped being: another connection sent, the shard is
    /// stopping, a request of this connection stays in flight): read the ordinary way.
    Skipped,
}

/// Tries before giving up when the connection still has a request in flight: enough for an
/// immediate reply to leave through the writer task, far too few to wait for an fdatasync.
const YIELDS_WHILE_IN_FLIGHT_MAX: u32 = 8;

thread_local! {
    static BLOCKING_RUNNING: Cell<usize> = const { Cell::new(0) };
}

/// Marks a blocking-pool job the shard started as running until dropped; no reader of the shard
/// spins meanwhile. For jobs that are heavy on the CPU and may share the shard's core: a periodic
/// flush writes back a second of appends, and a spinning reactor (always runnable) would take
/// half the core from it for as long as it runs, while requests queue behind the shrunken shard
/// (measured: open loop at 123k msgs/s, p99 6.5-41 ms spinning against 3.3-3.9 ms parking;
/// without the periodic flush 0.55-0.72 ms spinning; `docs/decisions.md`).
pub struct BlockingRunning(());

impl BlockingRunning {
    pub fn start() -> Self {
        BLOCKING_RUNNING.with(|n| n.set(n.get() + 1));
        BlockingRunning(())
    }
}

impl Drop for BlockingRunning {
    fn drop(&mut self) {
        BLOCKING_RUNNING.with(|n| n.set(n.get() - 1));
    }
}

/// Whether a [`BlockingRunning`] job is running on this thread's behalf.
pub fn blocking_running() -> bool {
    BLOCKING_RUNNING.with(Cell::get) > 0
}

/// Whether a shard holds off spinning because of background work pending for `pending_for`: for
/// [`BACKGROUND_STARVED_AFTER`] it does (parking between requests gives the idle-priority thread
/// the gaps); past that, the client leaves no gaps worth giving (it sends as soon as it is
/// answered), the work is starved either way, and the spin is allowed again.
pub fn background_holds_off(pending_for: Option<Duration>) -> bool {
    pending_for.is_some_and(|d| d < BACKGROUND_STARVED_AFTER)
}

/// See [`background_holds_off`]. Prefaulting a 1 MiB window is 256 first touches, 0.7-3.3 ms at
/// the 2.6-13 us per page `benches/peers/first_touch.c` measured on the benchmark VM.
pub const BACKGROUND_STARVED_AFTER: Duration = Duration::from_millis(20);

/// What a reader spins for, and on behalf of whom.
pub struct Spin<'a> {
    pub fd: RawFd,
    /// This connection's id on the shard.
    pub conn: u64,
    pub gate: &'a SpinGate,
    /// Longest spin.
    pub budget: Duration,
}

/// Spins on `spin.fd` for up to `spin.budget`, appending what arrives to `buf` (at most `chunk`
/// bytes), while the gate lets this connection spin and `hold_off(now)` is false (the shard is
/// stopping, or has work pending that the spin would keep off the core); `idle` says whether the
/// connection has nothing in flight.
pub async fn spin_recv(
    spin: &Spin<'_>,
    buf: &mut BytesMut,
    chunk: usize,
    hold_off: impl Fn(Instant) -> bool,
    idle: impl Fn() -> bool,
) -> Spun {
    let start = buf.len();
    let deadline = Instant::now() + spin.budget;
    let mut busy_tries = 0u32;
    buf.reserve(chunk);
    loop {
        let mut now = Instant::now();
        if hold_off(now) || !spin.gate.may_spin(spin.conn, now) {
            return Spun::Skipped;
        }
        if spin.gate.poll_due(now) {
            // Every task pending: glommio reaps its completions and fires due timers.
            glommio::timer::sleep(Duration::from_micros(1)).await;
            now = Instant::now();
        }
        if !idle() {
            busy_tries += 1;
            if busy_tries > YIELDS_WHILE_IN_FLIGHT_MAX {
                return Spun::Skipped;
            }
        }
        let spare = buf.spare_capacity_mut();
        let len = spare.len().min(chunk);
        // SAFETY: `recv` writes at most `len` bytes into the spare capacity it is given, which
        // `reserve` made at least `chunk` long; only the bytes it reports are marked initialised.
        let n = unsafe {
            libc::recv(
                spin.fd,
                spare.as_mut_ptr().cast::<libc::c_void>(),
                len,
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => return Spun::Closed,
            n if n > 0 => {
                // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
                unsafe { buf.set_len(start + n as usize) };
                return Spun::Data;
            }
            _ => {
                let errno = std::io::Error::last_os_error().raw_os_error();
                if errno != Some(libc::EAGAIN) && errno != Some(libc::EINTR) {
                    return Spun::Closed;
                }
            }
        }
        if now >= deadline {
            return Spun::Missed;
        }
        futures_lite::future::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_sender_may_spin_and_a_second_sender_stops_everyone_for_a_while() {
        let gate = SpinGate::default();
        let t0 = Instant::now();
        assert!(!gate.may_spin(1, t0), "nobody has sent yet");
        gate.request(1, t0);
        assert!(gate.may_spin(1, t0));
        assert!(!gate.may_spin(2, t0));
        // Connection 1 keeps sending alone: still allowed.
        gate.request(1, t0 + Duration::from_millis(1));
        assert!(gate.may_spin(1, t0 + Duration::from_millis(1)));
        // Connection 2 sends: now it is the last sender, but contended.
        let t2 = t0 + Duration::from_millis(2);
        gate.request(2, t2);
        assert!(!gate.may_spin(1, t2));
        assert!(!gate.may_spin(2, t2));
        assert!(!gate.may_spin(2, t2 + CONTENDED_FOR - Duration::from_micros(1)));
        assert!(gate.may_spin(2, t2 + CONTENDED_FOR));
        // Back to 1 alone: contended again from its request on.
        let t3 = t2 + CONTENDED_FOR;
        gate.request(1, t3);
        assert!(!gate.may_spin(1, t3));
        assert!(gate.may_spin(1, t3 + CONTENDED_FOR));
    }

    #[test]
    fn background_work_holds_the_spin_off_until_it_looks_starved() {
        assert!(!background_holds_off(None));
        assert!(background_holds_off(Some(Duration::ZERO)));
        assert!(background_holds_off(Some(
            BACKGROUND_STARVED_AFTER - Duration::from_micros(1)
        )));
        assert!(!background_holds_off(Some(BACKGROUND_STARVED_AFTER)));
    }

    #[test]
    fn a_running_blocking_job_is_counted_until_dropped() {
        assert!(!blocking_running());
        let a = BlockingRunning::start();
        let b = BlockingRunning::start();
        assert!(blocking_running());
        drop(a);
        assert!(blocking_running());
        drop(b);
        assert!(!blocking_running());
    }

    #[test]
    fn a_pass_over_completions_is_due_once_per_interval() {
        let gate = SpinGate::default();
        let t0 = gate.polled_at.get();
        assert!(!gate.poll_due(t0));
        assert!(!gate.poll_due(t0 + POLL_EVERY - Duration::from_micros(1)));
        assert!(gate.poll_due(t0 + POLL_EVERY));
        assert!(!gate.poll_due(t0 + POLL_EVERY), "counted as given");
        assert!(gate.poll_due(t0 + POLL_EVERY * 2));
    }
}
