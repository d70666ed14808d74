//! Reuse of large response-frame buffers on a shard's thread.
//!
//! A fetch or push of many records is encoded into a buffer of up to a megabyte or so, written to
//! the socket and dropped. Freshly allocated, such a buffer is fresh memory: the allocator hands
//! large blocks back to the kernel when they are freed, so every push paid for faulting its pages
//! in again (page faults and page zeroing were ~12% of a shard replaying a log to one consumer,
//! perf). The connection's write loop hands a written large frame back here ([`recycle`]) and the
//! next large frame is encoded into it ([`buffer`]).
//!
//! A consumer's credit lets a subscription queue many pushes ahead of the socket (32k records of
//! 1 KiB are ~32 frames of 1 MiB), so the pool keeps up to [`POOL_BYTES_MAX`] per shard thread:
//! about what those queued frames hold anyway, kept instead of handed back. Bounded: buffers of
//! at most [`POOLED_MAX_BYTES`] each, [`POOL_BYTES_MAX`] in all; a frame that is still shared (a
//! clone held elsewhere), small or too large is simply dropped.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// Frames at least this large are taken from and returned to the pool (the write loop writes
/// such frames directly, without copying them into its batch).
pub const POOLED_MIN_BYTES: usize = 64 << 10;
/// Larger buffers are freed, not kept.
pub const POOLED_MAX_BYTES: usize = 4 << 20;
/// Bytes of buffer capacity kept per shard thread.
pub const POOL_BYTES_MAX: usize = 32 << 20;

struct Pool {
    buffers: Vec<BytesMut>,
    /// Sum of the capacities of `buffers`.
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            buffers: Vec::new(),
            bytes: 0,
        })
    };
}

/// An empty buffer with room for `capacity` bytes: a pooled one when `capacity` is large.
pub fn buffer(capacity: usize) -> BytesMut {
    if capacity >= POOLED_MIN_BYTES {
        let pooled = POOL.with(|p| {
            let mut pool = p.borrow_mut();
            let buf = pool.buffers.pop()?;
            pool.bytes -= buf.capacity();
            Some(buf)
        });
        if let Some(mut buf) = pooled {
            buf.reserve(capacity);
            return buf;
        }
    }
    BytesMut::with_capacity(capacity)
}

/// Takes back a frame that has been written, when nothing else holds it and its size is one the
/// pool keeps.
pub fn recycle(frame: Bytes) {
    if frame.len() < POOLED_MIN_BYTES {
        return;
    }
    let Ok(mut buf) = frame.try_into_mut() else {
        return;
    };
    if buf.capacity() > POOLED_MAX_BYTES {
        return;
    }
    buf.clear();
    POOL.with(|p| {
        let mut pool = p.borrow_mut();
        if pool.bytes + buf.capacity() <= POOL_BYTES_MAX {
            pool.bytes += buf.capacity();
            pool.buffers.push(buf);
        }
    });
}

/// Buffers and bytes of capacity pooled on this thread.
pub fn pooled() -> (usize, usize) {
    POOL.with(|p| {
        let pool = p.borrow();
        (pool.buffers.len(), pool.bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Bytes {
        let mut b = buffer(len);
        b.resize(len, 7);
        b.freeze()
    }

    #[test]
    fn a_written_large_frame_is_reused() {
        let f = frame(POOLED_MIN_BYTES + 10);
        let addr = f.as_ptr();
        recycle(f);
        assert_eq!(pooled().0, 1);
        let b = buffer(POOLED_MIN_BYTES);
        assert_eq!(pooled(), (0, 0));
        assert!(b.is_empty());
        assert_eq!(b.as_ptr(), addr, "the same memory comes back");
        assert!(b.capacity() >= POOLED_MIN_BYTES + 10);
    }

    #[test]
    fn shared_small_and_huge_frames_are_not_kept() {
        let shared = frame(POOLED_MIN_BYTES);
        let clone = shared.clone();
        recycle(shared);
        recycle(frame(POOLED_MIN_BYTES - 1));
        recycle(frame(POOLED_MAX_BYTES + 1));
        assert_eq!(pooled(), (0, 0));
        drop(clone);
    }

    #[test]
    fn the_pool_is_bounded() {
        let frames = POOL_BYTES_MAX / POOLED_MAX_BYTES + 3;
        // All in flight at once (as pushes queued behind a slow socket), then written.
        let written: Vec<Bytes> = (0..frames).map(|_| frame(POOLED_MAX_BYTES)).collect();
        for f in written {
            recycle(f);
        }
        let (buffers, bytes) = pooled();
        assert!(bytes <= POOL_BYTES_MAX, "{bytes} bytes pooled");
        assert!(buffers < frames && buffers >= POOL_BYTES_MAX / POOLED_MAX_BYTES - 1);
        // A small request never takes a pooled buffer.
        let small = buffer(100);
        assert!(small.capacity() < POOLED_MIN_BYTES);
        assert_eq!(pooled(), (buffers, bytes));
    }
}
