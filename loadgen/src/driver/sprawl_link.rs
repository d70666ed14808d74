//! One pipelined socket to one Sprawl node, speaking `net`'s codec directly: frames are written
//! as encoded and replies decoded out of one bounded read buffer, with sub-millisecond read
//! deadlines (which `net::client::Client`'s millisecond request timeout cannot express).
//!
//! [`wait_readable`] waits on several links at once (`ppoll(2)`), so a producer routing to
//! several leaders still sleeps in one system call.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use net::codec::{decode, encode, Body, Decoded, Frame, Limits, Request, Response};

use super::conn::{busy_poll, read_until};
use super::DriverError;

pub(super) const TARGET: &str = "sprawl";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const READ_CHUNK_BYTES: usize = 256 * 1024;

/// A connected, handshaken socket to one node.
pub(super) struct Link {
    pub addr: String,
    stream: TcpStream,
    send_limits: Limits,
    recv_limits: Limits,
    read_buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes the frame being decoded still needs (from the last `Decoded::Incomplete`).
    needed: usize,
    read_timeout: Option<Duration>,
    /// Batches written on this link and not answered yet.
    pub in_flight: usize,
}

impl Link {
    /// Connects and performs the `ApiVersions` handshake (which sets the frame size limit).
    pub fn connect(addr: &str) -> Result<Link, DriverError> {
        let stream = connect(addr)?;
        let mut link = Link {
            addr: addr.to_owned(),
            stream,
            send_limits: Limits::pre_handshake(),
            recv_limits: Limits::new(Limits::FRAME_BYTES_MAX_DEFAULT),
            read_buf: vec![0; READ_CHUNK_BYTES],
            start: 0,
            end: 0,
            needed: 0,
            read_timeout: None,
            in_flight: 0,
        };
        let name = format!("loadgen/{}", env!("CARGO_PKG_VERSION"));
        let mut buf = bytes::BytesMut::with_capacity(256);
        let hello = Frame::request(0, Request::ApiVersions { client_name: &name });
        encode(&hello, &mut buf, &link.send_limits)
            .map_err(|e| link.protocol(format!("cannot encode the handshake: {e}")))?;
        link.write(&buf)?;
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let frame_bytes_max = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let reply = link.next_frame(remaining, |response| match response {
                Response::ApiVersions {
                    frame_bytes_max, ..
                } => Ok(*frame_bytes_max),
                other => Err(format!("expected ApiVersions, got {:?}", other.api_key())),
            })?;
            if let Some((_, result)) = reply {
                break result.map_err(|reason| link.protocol(reason))?;
            }
            if remaining.is_zero() {
                return Err(DriverError::Timeout {
                    target: TARGET,
                    addr: link.addr.clone(),
                    timeout_ms: HANDSHAKE_TIMEOUT.as_millis() as u64,
                });
            }
        };
        link.send_limits = Limits::new(frame_bytes_max);
        Ok(link)
    }

    /// The limits frames sent on this link must respect (learned in the handshake).
    pub fn send_limits(&self) -> &Limits {
        &self.send_limits
    }

    pub fn protocol(&self, reason: String) -> DriverError {
        DriverError::Protocol {
            target: TARGET,
            addr: self.addr.clone(),
            reason,
        }
    }

    fn io(&self, source: std::io::Error) -> DriverError {
        DriverError::Io {
            target: TARGET,
            addr: self.addr.clone(),
            source,
        }
    }

    /// Writes one or more whole encoded frames.
    pub fn write(&mut self, frame: &[u8]) -> Result<(), DriverError> {
        let written = self.stream.write_all(frame);
        written.map_err(|e| self.io(e))
    }

    /// Decodes the next frame already buffered, without reading: its correlation id and what
    /// `interpret` made of its response, or `None` when no whole frame is buffered.
    pub fn buffered_frame<T>(
        &mut self,
        mut interpret: impl FnMut(&Response<'_>) -> T,
    ) -> Result<Option<(u32, T)>, DriverError> {
        match decode(&self.read_buf[self.start..self.end], &self.recv_limits) {
            Ok(Decoded::Frame(frame, used)) => {
                let correlation_id = frame.header.correlation_id;
                let Body::Response(response) = &frame.body else {
                    return Err(self.protocol("the server sent a request frame".into()));
                };
                let value = interpret(response);
                self.start += used;
                self.needed = 0;
                Ok(Some((correlation_id, value)))
            }
            Ok(Decoded::Incomplete { needed }) => {
                self.needed = needed;
                Ok(None)
            }
            Err(e) => Err(self.protocol(format!("undecodable reply: {e}"))),
        }
    }

    /// The next frame, reading for at most `timeout`; `None` on timeout.
    pub fn next_frame<T>(
        &mut self,
        timeout: Duration,
        mut interpret: impl FnMut(&Response<'_>) -> T,
    ) -> Result<Option<(u32, T)>, DriverError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(frame) = self.buffered_frame(&mut interpret)? {
                return Ok(Some(frame));
            }
            if !self.fill(deadline)? {
                return Ok(None);
            }
        }
    }

    /// Reads at least one byte before `deadline`; false on timeout.
    pub fn fill(&mut self, deadline: Instant) -> Result<bool, DriverError> {
        if self.start > 0 {
            self.read_buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // decode() checked the length prefix against the limit, so this stays bounded.
        let want = self.end + self.needed.max(READ_CHUNK_BYTES);
        if self.read_buf.len() < want {
            self.read_buf.resize(want, 0);
        }
        let read = read_until(
            &mut self.stream,
            &mut self.read_buf[self.end..],
            deadline,
            &mut self.read_timeout,
        );
        match read.map_err(|e| self.io(e))? {
            None => Ok(false),
            Some(0) => Err(DriverError::Closed {
                target: TARGET,
                addr: self.addr.clone(),
            }),
            Some(n) => {
                self.end += n;
                Ok(true)
            }
        }
    }
}

/// Waits until one of `links` has bytes to read (or was closed), for at most `timeout`. Returns
/// the indexes (into `links`) of those that are ready; empty on timeout.
pub(super) fn wait_readable(
    links: &[&Link],
    timeout: Duration,
    ready: &mut Vec<usize>,
) -> Result<(), DriverError> {
    ready.clear();
    let mut fds: Vec<libc::pollfd> = links
        .iter()
        .map(|l| libc::pollfd {
            fd: l.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // With --busy-poll: ppoll without waiting, again and again until something is ready or the
    // time is up.
    let spin = busy_poll();
    let wait = if spin { Duration::ZERO } else { timeout };
    let spec = libc::timespec {
        tv_sec: wait.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(wait.subsec_nanos() as i32),
    };
    let deadline = Instant::now() + timeout;
    let rc = loop {
        // SAFETY: `fds` is a live, exclusively borrowed array of `fds.len()` initialised pollfd
        // structs (ppoll writes only their `revents`); `spec` is a valid timespec that outlives
        // the call; a null signal mask means "leave the mask unchanged". The descriptors belong
        // to streams borrowed through `links` for the duration of the call.
        let rc = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &spec,
                std::ptr::null(),
            )
        };
        if !spin || rc != 0 || Instant::now() >= deadline {
            break rc;
        }
        std::hint::spin_loop();
    };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == ErrorKind::Interrupted {
            return Ok(());
        }
        return Err(DriverError::Io {
            target: TARGET,
            addr: links
                .iter()
                .map(|l| l.addr.as_str())
                .collect::<Vec<_>>()
                .join(","),
            source: e,
        });
    }
    ready.extend(
        fds.iter()
            .enumerate()
            .filter(|(_, fd)| fd.revents != 0)
            .map(|(i, _)| i),
    );
    Ok(())
}

fn connect(addr: &str) -> Result<TcpStream, DriverError> {
    use std::net::ToSocketAddrs;
    let error = |source| DriverError::Connect {
        target: TARGET,
        addr: addr.to_owned(),
        source,
    };
    let mut last = std::io::Error::new(ErrorKind::NotFound, "the name resolved to no address");
    for candidate in addr.to_socket_addrs().map_err(error)? {
        match TcpStream::connect_timeout(&candidate, CONNECT_TIMEOUT) {
            Ok(stream) => {
                stream.set_nodelay(true).map_err(error)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(error(last))
}
