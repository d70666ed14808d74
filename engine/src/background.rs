//! Background work that no request waits for: write-prefaulting the next window of the active
//! segment and rewarming the pages a flush's writeback cleaned. It runs
//! on one thread per shard under the `SCHED_IDLE` policy, so that it only ever takes a core the
//! shard's reactor does not want: when the reactor wakes (a request arrived), the kernel preempts
//! an idle-policy thread at once, where a normal thread on the same core keeps it until the
//! scheduler's next decision. With the server on one core (the benchmark method) that is the
//! difference between requests waiting behind a `MADV_POPULATE_WRITE` and not
//! (`docs/decisions.md`, "Background work at idle priority").
//!
//! Work that a request does wait for (the fdatasync of a group commit behind an `acks=all` reply,
//! opening a log, writing an offset commit) stays on glommio's blocking pool at normal priority:
//! at idle priority a busy reactor would starve it (measured: `acks=all` throughput -15%). So
//! does preparing the next segment: starved, the roll creates it inline on the reactor. Starved
//! prefault work costs less: the append reserves its window inline (one fallocate) and faults
//! its pages in.
//!
//! The queue is bounded ([`QUEUE_MAX`]); a job that finds it full, or a shard without a
//! background thread (one that could not be started), runs on the blocking pool instead, so
//! nothing is refused and nothing waits for room. Callers already keep at most one job of each
//! kind in flight per partition.

use std::cell::{Cell, RefCell};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

/// Jobs queued for a shard's background thread before new ones go to the blocking pool.
pub const QUEUE_MAX: usize = 1_024;

type Job = Box<dyn FnOnce() + Send>;

/// A shard's background thread: dropping it lets the thread finish its queue and exit.
pub struct Background {
    jobs: flume::Sender<Job>,
}

impl Background {
    /// Starts the thread `sprawl-bg-<shard>`. Call it outside the shard's executor thread, so the
    /// new thread keeps the process's CPU set rather than the shard's pinned core. A thread whose
    /// policy cannot be set still runs the jobs, at normal priority, after one warning.
    pub fn start(shard: usize) -> std::io::Result<Background> {
        let (jobs, queue) = flume::bounded::<Job>(QUEUE_MAX);
        std::thread::Builder::new()
            .name(format!("sprawl-bg-{shard}"))
            .spawn(move || {
                if let Err(e) = set_idle_policy() {
                    eprintln!(
                        "sprawl: shard {shard}: background work runs at normal priority \
                         (SCHED_IDLE refused: {e}); requests may wait behind it"
                    );
                }
                while let Ok(job) = queue.recv() {
                    job();
                }
            })?;
        Ok(Background { jobs })
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Background>> = const { RefCell::new(None) };
    static PENDING: Cell<usize> = const { Cell::new(0) };
    static PENDING_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Jobs this (executor) thread handed to its background thread whose callers still wait for
/// them.
pub fn pending() -> usize {
    PENDING.with(Cell::get)
}

/// How long this thread has had background jobs pending without a break (`None`: none now). A
/// shard holds off spinning on a socket for a while when there are any (`crate::spin_read`):
/// with the node on one core, a spinning reactor would starve the idle-priority thread.
pub fn pending_for(now: Instant) -> Option<Duration> {
    PENDING_SINCE
        .with(Cell::get)
        .map(|t| now.saturating_duration_since(t))
}

/// Counts one job as pending for as long as it lives.
struct PendingJob;

impl PendingJob {
    fn new() -> Self {
        PENDING.with(|p| {
            if p.get() == 0 {
                PENDING_SINCE.with(|s| s.set(Some(Instant::now())));
            }
            p.set(p.get() + 1)
        });
        PendingJob
    }
}

impl Drop for PendingJob {
    fn drop(&mut self) {
        PENDING.with(|p| {
            p.set(p.get() - 1);
            if p.get() == 0 {
                PENDING_SINCE.with(|s| s.set(None));
            }
        });
    }
}

/// Makes `background` the one [`run`] uses on this (executor) thread.
pub fn install(background: Background) {
    CURRENT.with(|c| *c.borrow_mut() = Some(background));
}

/// Runs `f` on this shard's background thread and returns its result; on the blocking pool when
/// the shard has none or its queue is full. A panic in `f` resumes here, as on the blocking pool.
pub async fn run<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (done_tx, done_rx) = flume::bounded::<std::thread::Result<R>>(1);
    let job: Job = Box::new(move || {
        let result = std::panic::catch_unwind(AssertUnwindSafe(f));
        // The waiting task may be gone (its shard stopping): nothing to hand the result to.
        let _ = done_tx.send(result);
    });
    let refused = CURRENT.with(|c| match c.borrow().as_ref() {
        Some(bg) => bg.jobs.try_send(job).err().map(|e| e.into_inner()),
        None => Some(job),
    });
    let _pending = match refused {
        Some(job) => {
            glommio::executor().spawn_blocking(job).await;
            None
        }
        None => Some(PendingJob::new()),
    };
    match done_rx.recv_async().await {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        // The job was dropped unrun: only when the thread died, which catch_unwind prevents.
        Err(_) => panic!("background job dropped without running (background thread gone)"),
    }
}

/// Puts the calling thread under `SCHED_IDLE` (no privilege needed).
fn set_idle_policy() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 = the calling thread; `param` is a valid sched_param for SCHED_IDLE.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::FutureExt;

    #[test]
    fn jobs_run_on_an_idle_policy_thread_and_fall_back_without_one() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                // No background thread installed: the blocking pool runs it, at normal policy.
                let policy = run(|| unsafe { libc::sched_getscheduler(0) }).await;
                assert_eq!(policy, libc::SCHED_OTHER);
                install(Background::start(0).unwrap());
                let (policy, name) = run(|| {
                    let name = std::thread::current().name().map(str::to_owned);
                    (unsafe { libc::sched_getscheduler(0) }, name)
                })
                .await;
                assert_eq!(policy, libc::SCHED_IDLE);
                assert_eq!(name.as_deref(), Some("sprawl-bg-0"));
                // A panicking job panics the caller, and the thread keeps serving.
                let caught = AssertUnwindSafe(run(|| panic!("job failed")))
                    .catch_unwind()
                    .await;
                assert!(caught.is_err());
                assert_eq!(run(|| 7).await, 7);
                // A job counts as pending while its caller waits for it.
                assert_eq!(pending(), 0);
                let (go_tx, go_rx) = flume::bounded::<()>(1);
                let waiting = glommio::spawn_local(run(move || go_rx.recv().unwrap()));
                glommio::yield_if_needed().await;
                futures_lite::future::yield_now().await;
                assert_eq!(pending(), 1);
                assert!(pending_for(Instant::now()).is_some());
                go_tx.send(()).unwrap();
                waiting.await;
                assert_eq!(pending(), 0);
                assert_eq!(pending_for(Instant::now()), None);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
