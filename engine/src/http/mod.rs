//! The HTTP stats port: hyper (HTTP/1.1) on shard 0's reactor.
//!
//! Served by every shard on the same port (SO_REUSEPORT, like the client port). A REST publish is
//! handed to the owning shard exactly like a binary-protocol produce; a scrape gathers every
//! shard's histograms and counters over the mesh; topic admin, partition moves and the analytics
//! views run on shard 0, which owns the catalog, the admin lock and the analytics shard, and are
//! asked of it over the mesh. Connections are capped per shard, request heads are bounded by
//! hyper's buffer limit and bodies by `BODY_BYTES_MAX`.

mod analytics;
pub mod groups;
pub mod rest;
pub mod routes;
pub mod sse;
pub mod ws;

use std::cell::Cell;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::{TcpListener, TcpStream};

use crate::shard::Shard;

/// HTTP connections served at once; more are closed at accept.
const HTTP_CONNECTIONS_MAX: usize = 256;
/// Bytes copied per read into hyper's buffer.
const READ_CHUNK_BYTES: usize = 16 << 10;

/// Longest request line looked at to tell a WebSocket upgrade from a plain request.
const SNIFF_BYTES_MAX: usize = 8 << 10;
/// How long a new connection may take to send its request line.
const SNIFF_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A TCP stream whose first bytes were already read (to route the request): reads return them
/// first, then continue from the socket.
pub struct Prefixed {
    prefix: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.len());
            buf[..n].copy_from_slice(&self.prefix[self.pos..self.pos + n]);
            self.pos += n;
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// Reads the request line; `Some((stream, is_websocket))`, or `None` if the client sent none.
async fn sniff(mut stream: TcpStream) -> Option<(Prefixed, bool)> {
    use futures_lite::AsyncReadExt;
    let mut prefix = Vec::with_capacity(512);
    let read = glommio::timer::timeout(SNIFF_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        while !prefix.contains(&b'\n') && prefix.len() < SNIFF_BYTES_MAX {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Ok(false),
                Ok(n) => prefix.extend_from_slice(&chunk[..n]),
            }
        }
        Ok(true)
    })
    .await;
    if !matches!(read, Ok(true)) {
        return None;
    }
    let mut is_ws = prefix.starts_with(b"GET /ws?") || prefix.starts_with(b"GET /ws ");
    if is_ws {
        // Only a real upgrade goes to the WebSocket server; a plain GET gets hyper's 400.
        let read = glommio::timer::timeout(SNIFF_TIMEOUT, async {
            let mut chunk = [0u8; 1024];
            while !prefix.windows(4).any(|w| w == b"\r\n\r\n") && prefix.len() < SNIFF_BYTES_MAX {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return Ok(false),
                    Ok(n) => prefix.extend_from_slice(&chunk[..n]),
                }
            }
            Ok(true)
        })
        .await;
        if !matches!(read, Ok(true)) {
            return None;
        }
        let head = String::from_utf8_lossy(&prefix).to_ascii_lowercase();
        is_ws = head.contains("upgrade: websocket");
    }
    Some((
        Prefixed {
            prefix,
            pos: 0,
            inner: stream,
        },
        is_ws,
    ))
}

/// Adapts a stream to hyper's I/O traits, noting when a byte last moved.
struct HyperIo(Prefixed, Rc<Cell<std::time::Instant>>);

impl HyperIo {
    fn touch<T>(&self, p: &Poll<io::Result<T>>) {
        if matches!(p, Poll::Ready(Ok(_))) {
            self.1.set(std::time::Instant::now());
        }
    }
}

impl hyper::rt::Read for HyperIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let mut tmp = [0u8; READ_CHUNK_BYTES];
        let want = buf.remaining().min(READ_CHUNK_BYTES);
        match Pin::new(&mut self.0).poll_read(cx, &mut tmp[..want]) {
            Poll::Ready(Ok(n)) => {
                buf.put_slice(&tmp[..n]);
                if n > 0 {
                    self.1.set(std::time::Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl hyper::rt::Write for HyperIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut self.0).poll_write(cx, buf);
        self.touch(&p);
        p
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// Completes once `last` is older than `limit`.
async fn idle_for(last: Rc<Cell<std::time::Instant>>, limit: std::time::Duration) {
    loop {
        let idle = last.get().elapsed();
        if idle >= limit {
            return;
        }
        glommio::timer::sleep(limit - idle).await;
    }
}

/// Accepts and serves HTTP connections until the shard stops.
pub async fn serve(shard: Rc<Shard>, listener: TcpListener) {
    let open = Rc::new(Cell::new(0usize));
    loop {
        let stream = match shard.accept_or_stop(&listener).await {
            None => return,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                eprintln!("sprawl: http accept failed: {e}");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if open.get() >= HTTP_CONNECTIONS_MAX {
            continue;
        }
        open.set(open.get() + 1);
        let (shard, open) = (shard.clone(), open.clone());
        glommio::spawn_local(async move {
            let Some((stream, is_ws)) = sniff(stream).await else {
                open.set(open.get() - 1);
                return;
            };
            if is_ws {
                ws::serve(shard, stream).await;
                open.set(open.get() - 1);
                return;
            }
            let shard_idle_ms = shard.config.http_idle_timeout_ms;
            let service = hyper::service::service_fn(move |req| {
                let shard = shard.clone();
                async move { Ok::<_, Infallible>(routes::handle(&shard, req).await) }
            });
            let last = Rc::new(Cell::new(std::time::Instant::now()));
            let conn = hyper::server::conn::http1::Builder::new()
                .max_buf_size(64 << 10)
                .serve_connection(HyperIo(stream, last.clone()), service);
            // Whichever ends first: the connection, or its idle timer (dropping it closes it).
            let _ = futures_lite::future::or(async { conn.await.map(drop) }, async {
                // A connection that moves no byte for `http_idle_timeout_ms` (default 60 s, longer
                // than the longest long-poll; event streams send a comment every 15 s) is closed,
                // so a slow-loris client cannot keep one of the HTTP_CONNECTIONS_MAX slots.
                let limit = std::time::Duration::from_millis(shard_idle_ms);
                idle_for(last, limit).await;
                Ok(())
            })
            .await;
            open.set(open.get() - 1);
        })
        .detach();
    }
}

/// An analytics view kept on shard 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalyticsView {
    Forecast,
    Hot,
    Anomalies,
    Decisions,
    /// The analytics lines of `/metrics`.
    Prometheus,
}

/// An analytics view's content.
#[derive(Debug, Clone)]
pub enum AnalyticsReply {
    Json(serde_json::Value),
    Text(String),
}

/// Renders a view from this shard's analytics state; `None` when there is none (analytics off,
/// or not shard 0).
pub fn analytics_view(shard: &Shard, view: AnalyticsView) -> Option<AnalyticsReply> {
    let a = shard.analytics.borrow().clone()?;
    Some(match view {
        AnalyticsView::Forecast => AnalyticsReply::Json(analytics::forecast(&a)),
        AnalyticsView::Hot => AnalyticsReply::Json(analytics::hot(&a)),
        AnalyticsView::Anomalies => AnalyticsReply::Json(analytics::anomalies(&a)),
        AnalyticsView::Decisions => AnalyticsReply::Json(analytics::decisions(&a)),
        AnalyticsView::Prometheus => {
            let mut text = String::new();
            analytics::prometheus(&a, shard.config.node_id, &mut text);
            AnalyticsReply::Text(text)
        }
    })
}

/// The view from shard 0, asked over the mesh from any other shard.
pub async fn analytics_from_shard0(
    shard: &Rc<Shard>,
    view: AnalyticsView,
) -> Option<AnalyticsReply> {
    if shard.id == 0 {
        return analytics_view(shard, view);
    }
    match shard.call(0, crate::shard::CallBody::Analytics(view)).await {
        Some(crate::shard::ReplyBody::Analytics(r)) => r,
        _ => None,
    }
}

/// Response body: a whole buffer, or a stream of chunks (Server-Sent Events). Not `Send`: it
/// lives on this shard (hyper's boxed bodies require `Send`).
pub enum Body {
    Full(Option<Bytes>),
    Stream(Pin<Box<dyn futures_lite::Stream<Item = Bytes>>>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(hyper::body::Frame::data(b)))),
            Body::Stream(s) => s
                .as_mut()
                .poll_next(cx)
                .map(|c| c.map(|b| Ok(hyper::body::Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            Body::Full(Some(b)) => hyper::body::SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => hyper::body::SizeHint::with_exact(0),
            Body::Stream(_) => hyper::body::SizeHint::default(),
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Full(b) => write!(f, "Body::Full({} bytes)", b.as_ref().map_or(0, Bytes::len)),
            Body::Stream(_) => write!(f, "Body::Stream"),
        }
    }
}

/// A response with a body and content type.
pub fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> hyper::Response<Body> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Body::Full(Some(body.into())))
        .unwrap_or_else(|_| {
            hyper::Response::new(Body::Full(Some(Bytes::from_static(b"internal error"))))
        })
}
