//! What the ring is built on: a cursor atomic and a slot that owns one immutable entry behind an
//! atomically replaceable pointer, with safe memory reclamation.
//!
//! Normally the slot is a `crossbeam_epoch::Atomic` and an unlinked entry is freed once every
//! thread that was pinned when it was unlinked has unpinned ([`Guard`]). Under `--cfg loom` the
//! atomics are loom's, so the model checker explores every interleaving and weak-memory outcome of
//! the ring protocol, and an unlinked entry is kept in its slot's graveyard until the slot is
//! dropped. That keeps the model small and sound (nothing is freed while the ring exists);
//! crossbeam-epoch's own reclamation is model-checked upstream.

#[cfg(loom)]
pub(super) use loom::sync::atomic::AtomicU64;
#[cfg(not(loom))]
pub(super) use std::sync::atomic::AtomicU64;

use std::sync::atomic::Ordering;

/// While a guard lives, no entry the current thread loaded from a slot is freed.
pub(super) struct Guard {
    #[cfg(not(loom))]
    inner: crossbeam_epoch::Guard,
}

/// Pins the current thread (crossbeam-epoch: a thread-local counter update, no lock).
pub(super) fn pin() -> Guard {
    Guard {
        #[cfg(not(loom))]
        inner: crossbeam_epoch::pin(),
    }
}

/// One ring slot: empty or one published, immutable `T`.
///
/// Only the ring's single writer calls [`Slot::publish`] and [`Slot::unlink`]; any thread may
/// call [`Slot::load`].
pub(super) struct Slot<T> {
    #[cfg(not(loom))]
    ptr: crossbeam_epoch::Atomic<T>,
    #[cfg(loom)]
    ptr: loom::sync::atomic::AtomicPtr<T>,
    /// Entries unlinked under loom, freed when the slot is dropped.
    #[cfg(loom)]
    graveyard: std::sync::Mutex<Vec<Box<T>>>,
}

#[cfg(not(loom))]
impl<T> Slot<T> {
    pub(super) fn new() -> Slot<T> {
        Slot {
            ptr: crossbeam_epoch::Atomic::null(),
        }
    }

    /// Acquire-loads the entry: everything the writer did before publishing it is visible.
    pub(super) fn load<'g>(&'g self, guard: &'g Guard) -> Option<&'g T> {
        let p = self.ptr.load(Ordering::Acquire, &guard.inner);
        // SAFETY: the slot holds null or a pointer made by `Owned::new` in `publish`. An entry is
        // freed only through `defer_destroy` after `unlink` took it out of the slot, and
        // crossbeam-epoch runs that destructor only once every thread pinned at that time (this
        // one included, through `guard`, which outlives the returned reference) has unpinned.
        unsafe { p.as_ref() }
    }

    /// Release-stores `value` into the empty slot.
    pub(super) fn publish(&self, value: T, guard: &Guard) {
        debug_assert!(
            self.ptr.load(Ordering::Relaxed, &guard.inner).is_null(),
            "publish into an occupied ring slot"
        );
        self.ptr
            .store(crossbeam_epoch::Owned::new(value), Ordering::Release);
    }

    /// Empties the slot (Release) and hands the entry to reclamation. The returned reference is
    /// valid while `guard` lives.
    pub(super) fn unlink<'g>(&'g self, guard: &'g Guard) -> Option<&'g T> {
        let old = self.ptr.swap(
            crossbeam_epoch::Shared::null(),
            Ordering::Release,
            &guard.inner,
        );
        if old.is_null() {
            return None;
        }
        // SAFETY: `old` was published by `publish` and is no longer reachable from the slot, so
        // no thread can load it after this point; threads that loaded it earlier are pinned and
        // the destructor waits for them. Only the single writer unlinks, so it is retired once.
        unsafe { guard.inner.defer_destroy(old) };
        // SAFETY: the destructor deferred above cannot run while `guard` (this thread's pin) lives.
        unsafe { old.as_ref() }
    }
}

#[cfg(not(loom))]
impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no other thread can reach this slot any more, so the entry
        // still in it (if any) is owned here alone; unlinked entries were retired separately.
        unsafe {
            let p = self
                .ptr
                .load(Ordering::Relaxed, crossbeam_epoch::unprotected());
            if !p.is_null() {
                drop(p.into_owned());
            }
        }
    }
}

#[cfg(loom)]
impl<T> Slot<T> {
    pub(super) fn new() -> Slot<T> {
        Slot {
            ptr: loom::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
            graveyard: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub(super) fn load<'g>(&'g self, _guard: &'g Guard) -> Option<&'g T> {
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: the slot holds null or a pointer from `Box::into_raw` in `publish`; under loom
        // an unlinked entry stays in the graveyard until the slot is dropped, which cannot happen
        // while `&'g self` is borrowed.
        unsafe { p.as_ref() }
    }

    pub(super) fn publish(&self, value: T, _guard: &Guard) {
        let old = self
            .ptr
            .swap(Box::into_raw(Box::new(value)), Ordering::Release);
        assert!(old.is_null(), "publish into an occupied ring slot");
    }

    pub(super) fn unlink<'g>(&'g self, _guard: &'g Guard) -> Option<&'g T> {
        let p = self.ptr.swap(std::ptr::null_mut(), Ordering::Release);
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` came from `Box::into_raw` in `publish` and the swap above took the only
        // owning pointer out of the slot, so rebuilding the box is the sole ownership of it.
        let entry = unsafe { Box::from_raw(p) };
        let mut graveyard = self
            .graveyard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        graveyard.push(entry);
        // SAFETY: the box's heap allocation does not move when the box moves into the graveyard,
        // and the graveyard is only emptied by dropping the slot, excluded by `&'g self`.
        Some(unsafe { &*p })
    }
}

#[cfg(loom)]
impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        let p = self
            .ptr
            .with_mut(|p| std::mem::replace(p, std::ptr::null_mut()));
        if !p.is_null() {
            // SAFETY: `&mut self`: the pointer in the slot is owned here alone (from `publish`).
            drop(unsafe { Box::from_raw(p) });
        }
    }
}
