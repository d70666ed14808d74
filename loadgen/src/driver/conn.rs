//! A blocking TCP connection with a bounded read buffer and deadline-based reads, shared by the
//! text-protocol drivers (Redis RESP, NATS), and [`read_until`], the one read-with-deadline every
//! driver's connection uses: it blocks in `read(2)` with a receive timeout, or, with `--busy-poll`,
//! spins on non-blocking `recv(MSG_DONTWAIT)` until bytes arrive or the deadline passes.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::DriverError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Set once, before any connection is opened, from `--busy-poll`.
static BUSY_POLL: AtomicBool = AtomicBool::new(false);

/// Makes every later wait for bytes spin instead of sleeping (`--busy-poll`).
pub fn set_busy_poll(on: bool) {
    BUSY_POLL.store(on, Ordering::Relaxed);
}

/// Whether waits spin ([`set_busy_poll`]).
pub fn busy_poll() -> bool {
    BUSY_POLL.load(Ordering::Relaxed)
}

/// Reads into `buf` until at least one byte arrived (`Some(n)`, `Some(0)` = closed by the peer)
/// or `deadline` passed (`None`). `read_timeout` caches the socket's receive timeout so that a
/// blocking wait sets it only when it changes.
pub(super) fn read_until(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    read_timeout: &mut Option<Duration>,
) -> std::io::Result<Option<usize>> {
    if busy_poll() {
        return spin_read(stream, buf, deadline);
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Ok(None);
    }
    // Round up so that short waits stay short but a wait is never zero (which means "block").
    let timeout = Some(remaining.max(Duration::from_micros(1)));
    if *read_timeout != timeout {
        stream.set_read_timeout(timeout)?;
        *read_timeout = timeout;
    }
    loop {
        match stream.read(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
    }
}

/// `recv(MSG_DONTWAIT)` in a loop: the socket stays blocking for writes.
fn spin_read(
    stream: &TcpStream,
    buf: &mut [u8],
    deadline: Instant,
) -> std::io::Result<Option<usize>> {
    let fd = stream.as_raw_fd();
    loop {
        // SAFETY: `buf` is a live, exclusively borrowed slice of `buf.len()` bytes and `fd` is
        // the open socket borrowed through `stream` for the duration of the call.
        let rc = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if rc >= 0 {
            return Ok(Some(rc as usize));
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            ErrorKind::Interrupted => continue,
            ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                std::hint::spin_loop();
            }
            _ => return Err(e),
        }
    }
}
const READ_CHUNK_BYTES: usize = 256 * 1024;

pub struct BufConn {
    pub target: &'static str,
    pub addr: String,
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Largest message the buffer may grow to hold.
    buffered_bytes_max: usize,
    read_timeout: Option<Duration>,
    pub write_buf: Vec<u8>,
}

impl BufConn {
    pub fn connect(
        target: &'static str,
        addr: &str,
        buffered_bytes_max: usize,
    ) -> Result<Self, DriverError> {
        let error = |source| DriverError::Connect {
            target,
            addr: addr.to_owned(),
            source,
        };
        let mut last = std::io::Error::new(ErrorKind::NotFound, "the name resolved to no address");
        for candidate in addr.to_socket_addrs().map_err(error)? {
            match TcpStream::connect_timeout(&candidate, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_nodelay(true).map_err(error)?;
                    return Ok(BufConn {
                        target,
                        addr: addr.to_owned(),
                        stream,
                        buf: vec![0; READ_CHUNK_BYTES],
                        start: 0,
                        end: 0,
                        buffered_bytes_max,
                        read_timeout: None,
                        write_buf: Vec::with_capacity(64 * 1024),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(error(last))
    }

    pub fn io(&self, source: std::io::Error) -> DriverError {
        DriverError::Io {
            target: self.target,
            addr: self.addr.clone(),
            source,
        }
    }

    pub fn protocol(&self, reason: impl Into<String>) -> DriverError {
        DriverError::Protocol {
            target: self.target,
            addr: self.addr.clone(),
            reason: reason.into(),
        }
    }

    /// Writes and clears `write_buf`.
    pub fn flush(&mut self) -> Result<(), DriverError> {
        let result = self.stream.write_all(&self.write_buf);
        self.write_buf.clear();
        result.map_err(|e| self.io(e))
    }

    /// The unconsumed bytes.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
    }

    /// Reads at least one more byte before `deadline`; false on timeout.
    pub fn fill(&mut self, deadline: Instant) -> Result<bool, DriverError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= self.buffered_bytes_max {
                return Err(self.protocol(format!(
                    "a message exceeds {} buffered bytes",
                    self.buffered_bytes_max
                )));
            }
            let grown = (self.buf.len() * 2).min(self.buffered_bytes_max);
            self.buf.resize(grown, 0);
        }
        let read = read_until(
            &mut self.stream,
            &mut self.buf[self.end..],
            deadline,
            &mut self.read_timeout,
        );
        match read.map_err(|e| self.io(e))? {
            None => Ok(false),
            Some(0) => Err(DriverError::Closed {
                target: self.target,
                addr: self.addr.clone(),
            }),
            Some(n) => {
                self.end += n;
                Ok(true)
            }
        }
    }
}

/// Position of the first `\r\n` in `bytes`.
pub fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}
