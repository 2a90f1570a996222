//! Waking a stream's thread: a flag, and `Thread::unpark`.
//!
//! The stream thread sleeps between turns of its loop; acks, nacks and dead-letter outcomes
//! (on the runtime), librdkafka's "queue became non-empty" callbacks (on librdkafka's threads)
//! and the rebalance callback (on the thread itself) wake it. Wake-ups merge: only the first
//! one after the thread last looked unparks it, the rest only find the flag already set. The
//! flag is a hint, never data: whatever woke the thread is in the stream's shared state,
//! which the thread reads in full each turn, so a wake-up that merges into another loses
//! nothing. Parking needs no async runtime, so the thread sleeps the same way when the
//! runtime is shutting down.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Wakes one thread, the one that called [`Wakeup::bind_current`].
#[derive(Debug, Default)]
pub(crate) struct Wakeup {
    pending: AtomicBool,
    thread: OnceLock<Thread>,
}

impl Wakeup {
    /// Makes the calling thread the one to wake. Wake-ups before this only set the flag,
    /// which the thread's first [`Wakeup::wait`] sees.
    pub(crate) fn bind_current(&self) {
        let _ = self.thread.set(std::thread::current());
    }

    /// Wakes the thread, from any thread (merged while one is pending).
    pub(crate) fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            if let Some(thread) = self.thread.get() {
                thread.unpark();
            }
        }
    }

    /// Takes a pending wake-up, if any: the caller is about to look at everything anyway.
    pub(crate) fn take(&self) -> bool {
        self.pending.swap(false, Ordering::AcqRel)
    }

    /// Sleeps until woken or until `timeout` has passed; returns at once (taking it) if a
    /// wake-up came since the last [`Wakeup::take`] or wait. Returns whether it was woken.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.take() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::park_timeout(deadline - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_wake_up_before_the_wait_is_kept_and_merged() {
        let wakeup = Wakeup::default();
        wakeup.wake(); // before any thread is bound: the flag alone
        wakeup.bind_current();
        wakeup.wake();
        assert!(wakeup.wait(Duration::from_secs(60)), "returns at once");
        assert!(!wakeup.wait(Duration::from_millis(1)), "the two merged into one");
    }

    #[test]
    fn another_thread_wakes_a_sleeping_one() {
        let wakeup = Arc::new(Wakeup::default());
        wakeup.bind_current();
        let waker = wakeup.clone();
        let other = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            waker.wake();
        });
        // Would take a minute without the wake-up; no timing is asserted.
        assert!(wakeup.wait(Duration::from_secs(60)));
        other.join().unwrap();
        assert!(!wakeup.take());
    }
}
