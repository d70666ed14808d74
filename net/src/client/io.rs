//! The socket side of the client: a bounded read buffer that the codec decodes in place.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use bytes::Bytes;

use super::error::ClientError;
use super::types::{to_push, to_reply, PushBatch, Reply};
use crate::codec::{decode, Body, Decoded, Limits, LENGTH_FIELD_BYTES};

/// Bytes asked of the kernel per read when the buffer has room.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// How long a caller is prepared to wait, and for what (named in the timeout error).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wait {
    pub deadline: Instant,
    pub timeout_ms: u64,
    pub operation: &'static str,
}

impl Wait {
    pub fn new(timeout: std::time::Duration, operation: &'static str) -> Self {
        Wait {
            deadline: Instant::now() + timeout,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            operation,
        }
    }
}

/// A frame received from the server, decoded from its own copy of the frame bytes.
pub(crate) enum Incoming {
    Reply {
        correlation_id: u32,
        api_key: u16,
        result: Result<Reply, ClientError>,
    },
    Push(PushBatch),
}

pub(crate) struct Connection {
    addr: String,
    stream: TcpStream,
    recv_limits: Limits,
    /// Holds at most one partial frame plus one read chunk: `[start, end)` is unconsumed.
    read_buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Connection {
    /// `write_timeout` bounds a write blocked by a server that stopped reading (backpressure
    /// that never ends); a frame may then be half written, so the connection is unusable.
    pub fn new(
        addr: String,
        stream: TcpStream,
        recv_limits: Limits,
        write_timeout: std::time::Duration,
    ) -> Result<Self, ClientError> {
        let setup = stream
            .set_nodelay(true)
            .and_then(|()| stream.set_write_timeout(Some(write_timeout)));
        setup.map_err(|source| ClientError::Io {
            addr: addr.clone(),
            source,
        })?;
        Ok(Self {
            addr,
            stream,
            recv_limits,
            read_buf: Vec::new(),
            start: 0,
            end: 0,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn io_error(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let result = self.stream.write_all(bytes);
        result.map_err(|e| self.io_error(e))
    }

    /// Reads until one whole frame is buffered, then copies it out of the read buffer in one
    /// piece (a `Bytes` the decoded records slice, see [`super::types::Record`]) and decodes it.
    pub fn read_incoming(&mut self, wait: Wait) -> Result<Incoming, ClientError> {
        loop {
            let buffered = &self.read_buf[self.start..self.end];
            // Decode only once the whole frame is here: decoding builds the record list, which
            // a partial frame would throw away.
            let whole = buffered
                .first_chunk::<LENGTH_FIELD_BYTES>()
                .and_then(|prefix| {
                    let bytes = LENGTH_FIELD_BYTES + u32::from_le_bytes(*prefix) as usize;
                    (buffered.len() >= bytes).then_some(bytes)
                });
            let needed = match whole {
                Some(bytes) => {
                    let frame = Bytes::copy_from_slice(&buffered[..bytes]);
                    self.start += bytes;
                    return self.incoming(&frame);
                }
                // Incomplete, or a length prefix the limits refuse.
                None => match decode(buffered, &self.recv_limits) {
                    Ok(Decoded::Incomplete { needed }) => needed,
                    Ok(Decoded::Frame(_, _)) => unreachable!("a frame decoded before it was whole"),
                    Err(source) => {
                        return Err(ClientError::Protocol {
                            addr: self.addr.clone(),
                            source,
                        })
                    }
                },
            };
            self.fill(needed, wait)?;
        }
    }

    /// Decodes one whole frame held in `frame`.
    fn incoming(&self, frame: &Bytes) -> Result<Incoming, ClientError> {
        let protocol = |source| ClientError::Protocol {
            addr: self.addr.clone(),
            source,
        };
        let decoded = match decode(frame, &self.recv_limits).map_err(protocol)? {
            Decoded::Frame(decoded, _) => decoded,
            // `read_incoming` found this frame whole in the read buffer.
            Decoded::Incomplete { .. } => unreachable!("a whole frame decodes whole"),
        };
        let correlation_id = decoded.header.correlation_id;
        match &decoded.body {
            Body::Response(response) => Ok(match to_push(frame, response) {
                Some(push) => Incoming::Push(push),
                None => Incoming::Reply {
                    correlation_id,
                    api_key: decoded.header.api_key,
                    result: to_reply(frame, response, &self.addr, correlation_id),
                },
            }),
            Body::Request(_) => Err(ClientError::BadReply {
                addr: self.addr.clone(),
                correlation_id,
                reason: "the server sent a request frame",
            }),
        }
    }

    /// Makes room for `needed` more bytes and reads at least one byte before `deadline`.
    fn fill(&mut self, needed: usize, wait: Wait) -> Result<(), ClientError> {
        if self.start > 0 {
            self.read_buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // `decode` already rejected a length prefix above the limit, so this stays bounded by
        // one maximal frame plus one chunk.
        let frame_max = LENGTH_FIELD_BYTES + self.recv_limits.frame_bytes_max as usize;
        let want = (self.end + needed.max(READ_CHUNK_BYTES)).min(frame_max + READ_CHUNK_BYTES);
        if self.read_buf.len() < want {
            self.read_buf.resize(want, 0);
        }
        let now = Instant::now();
        let timeout_error = || ClientError::Timeout {
            addr: self.addr.clone(),
            operation: wait.operation,
            timeout_ms: wait.timeout_ms,
        };
        if now >= wait.deadline {
            return Err(timeout_error());
        }
        self.stream
            .set_read_timeout(Some(wait.deadline - now))
            .map_err(|e| self.io_error(e))?;
        loop {
            match self.stream.read(&mut self.read_buf[self.end..]) {
                Ok(0) => {
                    return Err(ClientError::Closed {
                        addr: self.addr.clone(),
                    })
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(timeout_error())
                }
                Err(e) => return Err(self.io_error(e)),
            }
        }
    }
}
