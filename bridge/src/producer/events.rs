//! librdkafka's producer events (delivery reports, errors) served on the async runtime.
//!
//! librdkafka hands a delivery report to the application through the client's main queue:
//! its broker thread enqueues the report when the broker answers, and someone must poll the
//! queue to run the delivery callback. rdkafka's `ThreadedProducer` polls from a thread of
//! its own, so each report crossed two threads before the Publish call that waited for it
//! could answer: broker thread → poll thread → runtime. On a small node each of those
//! wake-ups costs tens of microseconds, more when the CPUs are busy.
//!
//! Here the queue wakes the runtime directly. librdkafka calls a "queue became non-empty"
//! callback (`rd_kafka_queue_cb_event_enable`) on the enqueuing thread, under the queue's
//! lock, whenever the queue goes from empty to one event; the callback only signals a
//! `Notify`. A task on the runtime then polls the queue until it is empty (yielding every
//! [`EVENTS_PER_TURN`] events), which runs the delivery callbacks there and wakes the
//! waiting calls on the same thread:
//!
//! ```text
//!  rdk:broker thread ── report ──► main queue ──(empty → 1: callback)──► Notify
//!                                                                          │
//!  runtime: events task ◄──────────────────────────────────────────────────┘
//!     poll until empty → DeliveryContext::delivery → Batch::complete → Publish answers
//! ```
//!
//! A `Notify` keeps one permit, so a report enqueued while the task is polling is not lost:
//! the task looks at the queue again before it sleeps. Flushing and dropping the producer
//! poll the queue themselves (rdkafka's `BaseProducer::flush`), so shutdown does not depend on
//! the task.
//!
//! With `subscriber::headers`, this is the crate's only `unsafe` code: three librdkafka calls
//! rdkafka does not wrap for producers (it does for consumers, with the same callback shape).
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::ops::Deref;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::producer::{BaseProducer, Producer};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::context::DeliveryContext;

/// Events handled before the task yields to other tasks on its thread.
const EVENTS_PER_TURN: usize = 64;

/// A librdkafka producer whose delivery reports are served on the async runtime.
pub(crate) struct EventProducer {
    producer: BaseProducer<DeliveryContext>,
    /// librdkafka's main queue (a handle of our own on it, for its length and its callback).
    queue: *mut rdsys::rd_kafka_queue_t,
    /// What the callback signals: librdkafka holds a pointer to it until `drop` disables the
    /// callback (fields drop after that), and this reference keeps it alive until then.
    _ready: Arc<Notify>,
    stop: CancellationToken,
}

// SAFETY: the queue handle is used only through librdkafka's thread-safe queue API (length,
// callback registration, destroy once in `drop`).
unsafe impl Send for EventProducer {}
unsafe impl Sync for EventProducer {}

impl Deref for EventProducer {
    type Target = BaseProducer<DeliveryContext>;

    fn deref(&self) -> &Self::Target {
        &self.producer
    }
}

/// librdkafka calls this on the thread that made the main queue non-empty, under its lock:
/// it must not call back into the queue, and only signals the events task.
unsafe extern "C" fn queue_became_non_empty(_: *mut rdsys::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Notify` an `EventProducer` keeps alive until the callback is
    // disabled (in `drop`, under the same lock librdkafka calls us under).
    let ready = unsafe { &*(opaque as *const Notify) };
    ready.notify_one();
}

impl EventProducer {
    /// Wraps `producer` and starts the task that serves its events on `runtime`.
    pub(crate) fn start(producer: BaseProducer<DeliveryContext>, runtime: &tokio::runtime::Handle) -> Arc<Self> {
        let notify = Arc::new(Notify::new());
        let opaque = Arc::as_ptr(&notify) as *mut c_void;
        // SAFETY: the client pointer is valid while `producer` lives; the returned handle is
        // destroyed in `drop`, before `producer` (fields drop after `drop` runs).
        let queue = unsafe { rdsys::rd_kafka_queue_get_main(producer.client().native_ptr()) };
        let stop = CancellationToken::new();
        let this = Arc::new(Self { producer, queue, _ready: notify.clone(), stop: stop.clone() });
        // SAFETY: `queue` is valid (above); `opaque` is the `Notify` that `_ready` keeps alive
        // until `drop` has disabled the callback.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(queue, Some(queue_became_non_empty), opaque);
        }
        // Events enqueued before the callback was set (an early error) wake no one: look now.
        notify.notify_one();
        runtime.spawn(serve(Arc::downgrade(&this), notify, stop));
        this
    }

    /// Events waiting in the main queue.
    fn queued(&self) -> usize {
        // SAFETY: `queue` is valid until `drop`.
        unsafe { rdsys::rd_kafka_queue_length(self.queue) }
    }
}

impl Drop for EventProducer {
    fn drop(&mut self) {
        self.stop.cancel();
        // SAFETY: disabling takes the queue's lock, so no callback runs once this returns and
        // `_ready` may go with the other fields; the handle is destroyed once, here, while the
        // client lives.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue, None, std::ptr::null_mut());
            rdsys::rd_kafka_queue_destroy(self.queue);
        }
        // The fields drop next; dropping the producer purges what is still queued and polls for
        // those reports itself (up to 500 ms), so every waiting call gets an answer.
    }
}

/// The events task: polls the main queue until it is empty each time it is signalled.
async fn serve(producer: Weak<EventProducer>, ready: Arc<Notify>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = ready.notified() => {}
        }
        loop {
            let Some(strong) = producer.upgrade() else { return };
            let mut served = 0;
            while served < EVENTS_PER_TURN && strong.queued() > 0 {
                strong.poll(Duration::ZERO);
                served += 1;
            }
            if served > 0 {
                // The served events are destroyed by now: their records left the queue.
                strong.context().room_made();
            }
            let more = served == EVENTS_PER_TURN;
            if Arc::strong_count(&strong) == 1 {
                // The publisher let go meanwhile: dropping flushes, which may block.
                tokio::task::spawn_blocking(move || drop(strong));
                return;
            }
            drop(strong);
            if !more {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}
