//! A single-threaded "something changed" signal for tasks on one shard.
//!
//! Waiters capture the generation when they start waiting and complete once it has moved on, so a
//! notification between "check the condition" and "start waiting" is never missed as long as the
//! waiter calls [`Notify::generation`] before checking.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes every task waiting on it; not `Send` by design (one per shard object).
#[derive(Debug, Default)]
pub struct Notify {
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl Notify {
    /// The current generation; pass it to [`Notify::changed_since`].
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Bumps the generation and wakes every waiter.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Completes once the generation differs from `seen`.
    pub fn changed_since(&self, seen: u64) -> Changed<'_> {
        Changed { notify: self, seen }
    }
}

/// Future returned by [`Notify::changed_since`].
#[derive(Debug)]
pub struct Changed<'a> {
    notify: &'a Notify,
    seen: u64,
}

impl Future for Changed<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.seen {
            return Poll::Ready(());
        }
        let mut waiters = self.notify.waiters.borrow_mut();
        // Bound the list: a waiter polled repeatedly must not add itself again and again.
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn wakes_after_notify_and_not_before() {
        let n = Notify::default();
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let seen = n.generation();
        let mut fut = Box::pin(n.changed_since(seen));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            n.waiters.borrow().len(),
            1,
            "re-polling must not grow the list"
        );
        n.notify_all();
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert!(fut.as_mut().poll(&mut cx).is_ready());
        // A notification that happened before waiting started is not missed.
        let seen = n.generation();
        n.notify_all();
        assert!(Box::pin(n.changed_since(seen))
            .as_mut()
            .poll(&mut cx)
            .is_ready());
    }
}
