//! A blocking TCP connection with a bounded read buffer and deadline-based reads, shared by the
//! text-protocol drivers (Redis RESP, NATS).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::DriverError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
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
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Ok(false);
        }
        let timeout = Some(remaining.max(Duration::from_micros(1)));
        if self.read_timeout != timeout {
            let set = self.stream.set_read_timeout(timeout);
            set.map_err(|e| self.io(e))?;
            self.read_timeout = timeout;
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    return Err(DriverError::Closed {
                        target: self.target,
                        addr: self.addr.clone(),
                    })
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(false)
                }
                Err(e) => return Err(self.io(e)),
            }
        }
    }
}

/// Position of the first `\r\n` in `bytes`.
pub fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}
