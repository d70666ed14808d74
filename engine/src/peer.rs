//! Node-to-node connections: an asynchronous client of the Sprawl protocol on the shard's own
//! glommio executor, for the cluster's internode traffic (metadata, replication, forwarding;
//! `docs/cluster.md`).
//!
//! One [`PeerConn`] is one TCP connection to another node's client port: it performs the
//! `ApiVersions` handshake, then carries pipelined requests matched to their replies by
//! correlation id. A single writer task batches outgoing frames; a single reader task routes
//! replies to their callers. Everything is bounded: requests in flight (`inflight_max`, callers
//! wait for a slot), the write queue, and the reply size (the peer's announced frame limit). When
//! the connection breaks, every waiting caller gets [`PeerError::Closed`] at once, never a hang,
//! and each call has a deadline.
//!
//! Replies are handed back as whole frames (`Bytes`): the caller decodes them with
//! [`net::codec::decode`] and borrows from them, as a shard does with requests.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use net::codec::{
    decode, encode, Body, Decoded, Frame, Limits, Request, Response, LENGTH_FIELD_BYTES,
};

/// Frames queued for the writer task.
const WRITE_QUEUE_FRAMES: usize = 256;
/// Bytes the writer gathers into one `write` when several frames are queued.
const WRITE_BATCH_BYTES: usize = 256 << 10;
/// Bytes asked of the kernel per read.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// Offset of the correlation id in an encoded frame (after length, api key and version).
const CORRELATION_ID_AT: usize = 8;

/// How a peer connection behaves.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Sent in the handshake, shown in the peer's logs.
    pub client_name: String,
    /// Deadline of connect plus handshake.
    pub connect_timeout: Duration,
    /// Deadline of one request, from the moment it has a slot to its reply.
    pub request_timeout: Duration,
    /// Requests in flight on this connection; further callers wait for a slot.
    pub inflight_max: u64,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            client_name: format!("sprawl-node/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            inflight_max: 256,
        }
    }
}

/// Why a peer call failed. Every variant names the peer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    #[error("cannot connect to peer {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("peer {addr} refused the handshake: {reason}")]
    Handshake { addr: String, reason: String },
    #[error("connection to peer {addr} is closed{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed {
        addr: String,
        reason: Option<String>,
    },
    #[error("peer {addr} did not answer {api} within {after_ms} ms")]
    Timeout {
        addr: String,
        api: &'static str,
        after_ms: u64,
    },
    #[error("cannot encode {api} for peer {addr}: {reason}")]
    Encode {
        addr: String,
        api: &'static str,
        reason: String,
    },
}

/// One connection to another node.
pub struct PeerConn {
    addr: String,
    config: PeerConfig,
    limits: Cell<Limits>,
    /// The only sender of the write queue: dropping the connection ends the writer, which closes
    /// the socket and so ends the reader.
    tx: LocalSender<Bytes>,
    pending: Rc<RefCell<HashMap<u32, LocalSender<Bytes>>>>,
    next_correlation: Cell<u32>,
    slots: Rc<Semaphore>,
    closed: Rc<RefCell<Option<String>>>,
}

impl std::fmt::Debug for PeerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConn")
            .field("addr", &self.addr)
            .finish()
    }
}

impl PeerConn {
    /// Connects to `addr` (`host:port` of a node's client port) and performs the handshake.
    pub async fn connect(addr: &str, config: PeerConfig) -> Result<Rc<PeerConn>, PeerError> {
        let connect_err = |reason: String| PeerError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let stream = TcpStream::connect_timeout(addr, config.connect_timeout)
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (reader, writer) = futures_lite::io::split(stream);
        let (tx, rx) = local_channel::new_bounded(WRITE_QUEUE_FRAMES);
        let conn = Rc::new(PeerConn {
            addr: addr.to_string(),
            slots: Rc::new(Semaphore::new(config.inflight_max.max(1))),
            config,
            limits: Cell::new(Limits::pre_handshake()),
            tx,
            pending: Rc::new(RefCell::new(HashMap::new())),
            next_correlation: Cell::new(1),
            closed: Rc::new(RefCell::new(None)),
        });
        glommio::spawn_local(write_loop(writer, rx, conn.closed.clone())).detach();
        glommio::spawn_local(read_loop(
            reader,
            conn.pending.clone(),
            conn.closed.clone(),
            conn.slots.clone(),
        ))
        .detach();
        let reply = glommio::timer::timeout(conn.config.connect_timeout, async {
            Ok(conn
                .call(&Request::ApiVersions {
                    client_name: &conn.config.client_name,
                })
                .await)
        })
        .await
        .map_err(|_| PeerError::Handshake {
            addr: addr.to_string(),
            reason: "no ApiVersions answer in time".into(),
        })??;
        let limits = match decode(&reply, &Limits::pre_handshake()) {
            Ok(Decoded::Frame(
                Frame {
                    body:
                        Body::Response(Response::ApiVersions {
                            frame_bytes_max, ..
                        }),
                    ..
                },
                _,
            )) => Limits::new(frame_bytes_max),
            other => {
                return Err(PeerError::Handshake {
                    addr: addr.to_string(),
                    reason: format!("unexpected answer to ApiVersions: {other:?}"),
                })
            }
        };
        conn.limits.set(limits);
        Ok(conn)
    }

    /// The peer's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// True once the connection broke; a new one must be made.
    pub fn is_closed(&self) -> bool {
        self.closed.borrow().is_some()
    }

    /// Sends `request` and waits for its reply frame (a response or the generic error body).
    pub async fn call(&self, request: &Request<'_>) -> Result<Bytes, PeerError> {
        let api = request.api_key().name();
        let mut buf = BytesMut::new();
        encode(
            &Frame::request(0, request.clone()),
            &mut buf,
            &self.limits.get(),
        )
        .map_err(|e| PeerError::Encode {
            addr: self.addr.clone(),
            api,
            reason: e.to_string(),
        })?;
        self.call_encoded(buf, api).await
    }

    /// Sends an already encoded request frame (its correlation id is replaced), e.g. a client's
    /// frame forwarded unchanged, and waits for the reply frame.
    pub async fn call_frame(&self, frame: &[u8], api: &'static str) -> Result<Bytes, PeerError> {
        if frame.len() < CORRELATION_ID_AT + 4
            || frame.len() - LENGTH_FIELD_BYTES > self.limits.get().frame_bytes_max as usize
        {
            return Err(PeerError::Encode {
                addr: self.addr.clone(),
                api,
                reason: format!(
                    "a {}-byte frame does not fit the peer's limits",
                    frame.len()
                ),
            });
        }
        self.call_encoded(BytesMut::from(frame), api).await
    }

    async fn call_encoded(
        &self,
        mut frame: BytesMut,
        api: &'static str,
    ) -> Result<Bytes, PeerError> {
        let closed = |reason: Option<String>| PeerError::Closed {
            addr: self.addr.clone(),
            reason,
        };
        let Ok(_slot) = self.slots.acquire_permit(1).await else {
            return Err(closed(self.closed.borrow().clone()));
        };
        if let Some(reason) = self.closed.borrow().clone() {
            return Err(closed(Some(reason)));
        }
        let id = self.next_correlation.get();
        self.next_correlation.set(id.wrapping_add(1).max(1));
        frame[CORRELATION_ID_AT..CORRELATION_ID_AT + 4].copy_from_slice(&id.to_le_bytes());
        let (reply_tx, reply_rx): (_, LocalReceiver<Bytes>) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(id, reply_tx);
        if self.tx.send(frame.freeze()).await.is_err() {
            self.pending.borrow_mut().remove(&id);
            return Err(closed(self.closed.borrow().clone()));
        }
        let timeout = self.config.request_timeout;
        match glommio::timer::timeout(timeout, async { Ok(reply_rx.recv().await) }).await {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err(closed(self.closed.borrow().clone())),
            Err(_) => {
                self.pending.borrow_mut().remove(&id);
                Err(PeerError::Timeout {
                    addr: self.addr.clone(),
                    api,
                    after_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                })
            }
        }
    }
}

fn mark_closed(closed: &RefCell<Option<String>>, reason: String) {
    let mut c = closed.borrow_mut();
    if c.is_none() {
        *c = Some(reason);
    }
}

async fn write_loop(
    mut writer: futures_lite::io::WriteHalf<TcpStream>,
    rx: LocalReceiver<Bytes>,
    closed: Rc<RefCell<Option<String>>>,
) {
    let mut batch = BytesMut::with_capacity(WRITE_BATCH_BYTES);
    while let Some(first) = rx.recv().await {
        batch.clear();
        batch.extend_from_slice(&first);
        while batch.len() < WRITE_BATCH_BYTES {
            match futures_lite::future::poll_once(rx.recv()).await {
                Some(Some(more)) => batch.extend_from_slice(&more),
                _ => break,
            }
        }
        if let Err(e) = writer.write_all(&batch).await {
            mark_closed(&closed, format!("write failed: {e}"));
            break;
        }
    }
    let _ = writer.close().await;
}

async fn read_loop(
    mut reader: futures_lite::io::ReadHalf<TcpStream>,
    pending: Rc<RefCell<HashMap<u32, LocalSender<Bytes>>>>,
    closed: Rc<RefCell<Option<String>>>,
    slots: Rc<Semaphore>,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let reason = loop {
        // A frame is complete when its length prefix says so; replies are bounded by the
        // largest frame a node accepts (64 MiB, the configuration's ceiling).
        let need = match buf.first_chunk::<LENGTH_FIELD_BYTES>() {
            Some(p) => {
                let len = u32::from_le_bytes(*p) as usize;
                if len > 64 << 20 {
                    break format!("reply frame of {len} bytes exceeds 64 MiB");
                }
                LENGTH_FIELD_BYTES + len
            }
            None => LENGTH_FIELD_BYTES,
        };
        if buf.len() >= need && need > LENGTH_FIELD_BYTES {
            let frame = buf.split_to(need).freeze();
            let Some(id) = frame
                .get(CORRELATION_ID_AT..CORRELATION_ID_AT + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            else {
                break "reply frame shorter than its header".to_string();
            };
            if let Some(tx) = pending.borrow_mut().remove(&id) {
                // The caller may have timed out and gone; then the reply is dropped.
                let _ = tx.try_send(frame);
            }
            continue;
        }
        let start = buf.len();
        buf.resize(start + READ_CHUNK_BYTES.max(need - start), 0);
        match reader.read(&mut buf[start..]).await {
            Ok(0) => {
                buf.truncate(start);
                break "the peer closed the connection".to_string();
            }
            Ok(n) => buf.truncate(start + n),
            Err(e) => {
                buf.truncate(start);
                break format!("read failed: {e}");
            }
        }
    };
    mark_closed(&closed, reason);
    // Dropping the senders wakes every waiting caller with `Closed`; closing the slots wakes
    // callers still waiting for a slot.
    pending.borrow_mut().clear();
    slots.close();
}
