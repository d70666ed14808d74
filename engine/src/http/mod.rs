//! The HTTP stats port: hyper (HTTP/1.1) on shard 0's reactor.
//!
//! Served from shard 0, which also owns the catalog, the admin lock and the analytics shard: a
//! scrape gathers every shard's histograms and counters over the mesh, and a REST publish is
//! handed to the owning shard exactly like a binary-protocol produce. Connections are capped,
//! request heads are bounded by hyper's buffer limit and bodies by `BODY_BYTES_MAX`.

mod analytics;
pub mod rest;
mod routes;

use std::cell::Cell;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::{TcpListener, TcpStream};
use http_body_util::Full;

use crate::shard::Shard;

/// HTTP connections served at once; more are closed at accept.
const HTTP_CONNECTIONS_MAX: usize = 256;
/// Bytes copied per read into hyper's buffer.
const READ_CHUNK_BYTES: usize = 16 << 10;

/// Adapts a glommio stream to hyper's I/O traits.
struct HyperIo(TcpStream);

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
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
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
            let service = hyper::service::service_fn(move |req| {
                let shard = shard.clone();
                async move { Ok::<_, Infallible>(routes::handle(&shard, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .max_buf_size(64 << 10)
                .serve_connection(HyperIo(stream), service)
                .await;
            open.set(open.get() - 1);
        })
        .detach();
    }
}

/// A response with a body and content type.
pub fn respond(
    status: u16,
    content_type: &str,
    body: impl Into<Bytes>,
) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::from_static(b"internal error"))))
}
