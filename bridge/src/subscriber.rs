//! The subscribe path: PullMessages streams with at-least-once delivery.
//!
//! Each PullMessages stream is one Kafka group member subscribed to one topic, with its own
//! consumer thread ([`worker`]), its ack tracker per partition ([`crate::offsets`]) and its
//! flow control ([`state`]). daprd's first request names the topic; later requests carry acks
//! (`ack_message_id`, with `ack_error` for a failure). The bridge commits only offsets whose
//! messages daprd acked, so a crash, a cancelled stream or a rebalance redelivers what was not
//! acked and loses nothing.
//!
//! A stream may open before its topic exists (apps subscribe at boot). Before its first poll
//! it notes which partitions the topic has; a partition that appears later has nothing in it
//! from before the subscription, so without a committed offset it starts at the beginning
//! rather than at `initialOffset` (see `worker::Shared::starts`). With
//! `autoCreateTopics` the stream creates a missing topic then, as its metadata overrides say.
//!
//! A stream never ends because of a recoverable Kafka error (daprd would not re-open it);
//! only an unrecoverable one (authorisation, fatal client error) ends it with a status.

pub(crate) mod dead_letter;
mod headers;
pub mod message;
pub(crate) mod state;
mod wakeup;
mod worker;

use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use dapr_kafka_proto::EncodedPullResponse;
use dapr_kafka_proto::components::{PullMessagesRequest, Topic};
use futures::Stream;
use rdkafka::ClientConfig;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::sync::{mpsc as async_mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Status, Streaming};

use self::dead_letter::DeadLetter;
use self::state::StreamState;
use self::wakeup::Wakeup;
use self::worker::{Outcome, Shared, StreamContext};
use crate::config::{ComponentConfig, InitialOffset, TopicSpec};
use crate::error::{Error, Result};
use crate::producer::Publisher;
use crate::telemetry::metrics::StreamLabels;

pub use self::dead_letter::{ERROR_HEADER, OFFSET_HEADER, PARTITION_HEADER, TOPIC_HEADER};

/// A dead-letter publish that finished, for the stream thread to apply.
#[derive(Debug)]
pub(crate) struct DeadLettered {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) epoch: u64,
    pub(crate) outcome: Result<(), String>,
}

/// A stream that opened; [`Opened::established`] hands it over once it has taken stock of
/// its topic.
pub struct Opened {
    stream: MessageStream,
    ready: oneshot::Receiver<()>,
}

/// How long PullMessages waits for a new stream to take stock of its topic (which partitions
/// exist; creating it with `autoCreateTopics`) before answering anyway.
const ESTABLISH_WAIT: Duration = Duration::from_secs(10);

/// How long one look at the topic's partitions may take.
const STOCK_TIMEOUT: Duration = Duration::from_secs(5);

impl Opened {
    /// The response stream, once the stream knows which partitions its topic has (or after
    /// a bounded wait, if the cluster does not answer). What is published to the topic
    /// after this returns is delivered, whether or not the topic existed.
    pub async fn established(self) -> MessageStream {
        let _ = tokio::time::timeout(ESTABLISH_WAIT, self.ready).await;
        self.stream
    }
}

/// The response stream handed to tonic.
pub type MessageStream = Pin<Box<dyn Stream<Item = Result<EncodedPullResponse, Status>> + Send + 'static>>;

/// The streams of one component instance, and its Pause/Resume switch.
pub struct Subscriptions {
    paused: watch::Sender<bool>,
    cancel: CancellationToken,
    /// Stream threads; `None` once closed, after which no stream may open here.
    threads: Mutex<Option<Vec<JoinHandle<()>>>>,
    readers: TaskTracker,
    limits: StreamLimits,
}

/// Why a stream did not open.
pub enum OpenError {
    /// The instance was re-initialised or closed: here is daprd's request stream back, to
    /// open on the instance that replaced it.
    Retired(Box<Streaming<PullMessagesRequest>>),
    /// Anything else.
    Failed(Error),
}

/// Bounds on what one instance's streams may take.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// PullMessages streams open at once.
    pub max_streams: usize,
    /// How long closing waits for a stream thread before leaving it behind.
    pub join_deadline: Duration,
}

impl Subscriptions {
    /// No streams yet; `cancel` ends them all when cancelled.
    pub fn new(cancel: CancellationToken, limits: StreamLimits) -> Self {
        Self {
            paused: watch::Sender::new(false),
            cancel,
            threads: Mutex::new(Some(Vec::new())),
            readers: TaskTracker::new(),
            limits,
        }
    }

    /// daprd's Pause: deliver nothing new on any stream, and hold what is queued for daprd;
    /// membership and acks go on.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// daprd's Resume.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// Opens a stream for `topic` with daprd's request stream `inbound`. If this instance
    /// was re-initialised or closed meanwhile, hands `inbound` back ([`OpenError::Retired`]).
    pub fn open(
        &self,
        instance: &str,
        config: &ComponentConfig,
        bootstrap: &str,
        publisher: &Arc<Publisher>,
        topic: Topic,
        inbound: Streaming<PullMessagesRequest>,
    ) -> Result<Opened, OpenError> {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let Some(threads) = threads.as_mut() else { return Err(OpenError::Retired(Box::new(inbound))) };
        self.open_locked(threads, instance, config, bootstrap, publisher, topic, inbound).map_err(OpenError::Failed)
    }

    #[allow(clippy::too_many_arguments)]
    fn open_locked(
        &self,
        threads: &mut Vec<JoinHandle<()>>,
        instance: &str,
        config: &ComponentConfig,
        bootstrap: &str,
        publisher: &Arc<Publisher>,
        topic: Topic,
        mut inbound: Streaming<PullMessagesRequest>,
    ) -> Result<Opened> {
        crate::topic::validate(&topic.name).map_err(Error::InvalidRequest)?;
        // With autoCreateTopics, the subscription's metadata may say how to create its topic.
        let create = publisher.auto_create_defaults().map(|d| d.with_overrides(&topic.metadata)).transpose()?;
        let group = config.consumer_group.as_deref().ok_or_else(|| Error::InvalidMetadata {
            key: "consumerGroup".into(),
            reason: "(or consumerID) is required to subscribe".into(),
        })?;
        threads.retain(|t| !t.is_finished());
        if threads.len() >= self.limits.max_streams {
            return Err(Error::Limit(format!(
                "{} PullMessages streams are open on this component (--max-streams-per-instance)",
                threads.len()
            )));
        }
        let settings = config.subscriber.clone();
        let component = crate::instances::display_name(instance);
        let stream_name = format!("{component}/{}", topic.name);
        let wakeup = Arc::new(Wakeup::default());
        let dead_lettered = Arc::new(Mutex::new(Vec::new()));
        let (outbound, responses) = async_mpsc::channel(settings.max_in_flight_per_stream + 1);
        let runtime = tokio::runtime::Handle::current();
        let dead_letter = settings.dead_letter_topic.clone().map(|dlq| DeadLetter {
            topic: dlq,
            source: topic.name.clone(),
            publisher: publisher.clone(),
            runtime: runtime.clone(),
            tasks: TaskTracker::new(),
            outcomes: dead_lettered.clone(),
            wakeup: wakeup.clone(),
        });
        let shared = Arc::new(Shared {
            topic: topic.name.clone(),
            labels: StreamLabels::new(component, &topic.name),
            stream: stream_name.clone(),
            state: Mutex::new(StreamState::new(settings.clone())),
            runtime,
            paused: self.paused.subscribe(),
            inbound_closed: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            hold_delivery: AtomicBool::new(false),
            revoke_ack_timeout: settings.revoke_ack_timeout,
            commit_interval: settings.commit_interval,
            escape_headers: settings.escape_headers,
            dead_letter,
            outbound,
            outbox: Mutex::default(),
            unsaved: Mutex::default(),
            reported: Mutex::default(),
            wakeup,
            dead_lettered,
            queues: Mutex::default(),
            consumer: Mutex::default(),
            partitions_at_start: OnceLock::new(),
            newest_at_start: (settings.initial_offset == InitialOffset::Newest).then(OnceLock::new),
            topic_missing: AtomicBool::new(false),
        });
        let mut client_config = config.consumer_config(bootstrap, group);
        client_config.set("enable.partition.eof", "false");
        let make = ConsumerFactory { config: client_config, topic: topic.name.clone(), shared: shared.clone() };
        let consumer = make.create()?;
        tracing::info!(stream = %stream_name, group, "stream opened");

        let cancel = self.cancel.child_token();
        let thread_cancel = cancel.clone();
        // Cancelled when the thread has ended, however it ends (its closure drops the guard):
        // until then the reader applies daprd's acks, which the closing stream waits for.
        let thread_ended = CancellationToken::new();
        let thread_ending = thread_ended.clone().drop_guard();
        let (ready_tx, ready) = oneshot::channel();
        let create = create.map(|spec| (publisher.clone(), spec));
        let thread = std::thread::Builder::new()
            .name(format!("pull-{}", topic.name))
            .spawn(move || {
                let _ending = thread_ending;
                make.shared.wakeup.bind_current();
                let stocked = take_stock(&consumer, &make.shared, &thread_cancel, create);
                let _ = ready_tx.send(());
                if !stocked {
                    worker::close(consumer, &make.shared);
                    thread_cancel.cancel();
                    return;
                }
                run_stream(consumer, &make, &thread_cancel);
                // The reader stops when the worker does.
                thread_cancel.cancel();
            })
            .map_err(|e| Error::io("starting the stream thread", e))?;
        threads.push(thread);

        // Pause or Resume: the thread acts on it at once, not at its next interval. A task of
        // its own, off the ack path.
        let (waker, mut pause_changes, ended) = (shared.clone(), self.paused.subscribe(), thread_ended.clone());
        self.readers.spawn(async move {
            loop {
                tokio::select! {
                    changed = pause_changes.changed() => match changed {
                        Ok(()) => waker.wakeup.wake(),
                        Err(_) => break,
                    },
                    () = ended.cancelled() => break,
                }
            }
        });
        let acks = shared.clone();
        // Acks and nacks are applied here, never queued for the thread: however busy the
        // thread is, daprd's acks are read (unread ones would fill the HTTP/2 connection).
        self.readers.spawn(async move {
            let mut ending = false;
            loop {
                let request = tokio::select! {
                    request = inbound.message() => request,
                    () = cancel.cancelled(), if !ending => {
                        // The stream is ending (the bridge shuts down): the thread ends sooner
                        // for the wake-up, and waits up to revokeAckTimeout for the acks of
                        // what daprd holds, then commits. Keep applying them until it is done.
                        ending = true;
                        acks.wakeup.wake();
                        continue;
                    }
                    () = thread_ended.cancelled() => break,
                };
                match request {
                    Ok(Some(request)) if request.ack_message_id.is_empty() => {}
                    Ok(Some(request)) => match request.ack_error {
                        Some(error) => acks.nack(&request.ack_message_id, &error.message),
                        None => acks.ack(&request.ack_message_id),
                    },
                    Ok(None) | Err(_) => {
                        acks.daprd_closed();
                        break;
                    }
                }
            }
        });
        let live = lock_state(&shared).live_epochs();
        Ok(Opened { stream: held_while_paused(responses, self.paused.subscribe(), live), ready })
    }

    /// Ends every stream (each commits its acked prefix) and waits for them, all together up
    /// to the join deadline (they end in parallel: each commits on a consumer of its own). No
    /// stream can open here afterwards.
    pub async fn close(&self) {
        self.cancel.cancel();
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
        let deadline = tokio::time::Instant::now() + self.limits.join_deadline;
        let mut joins = tokio::task::JoinSet::new();
        for thread in threads {
            joins.spawn_blocking(move || drop(thread.join()));
        }
        while !joins.is_empty() {
            if tokio::time::timeout_at(deadline, joins.join_next()).await.is_err() {
                tracing::error!(left = joins.len(), deadline = ?self.limits.join_deadline, "stream threads did not end in time; leaving them behind");
                joins.detach_all();
            }
        }
        self.readers.close();
        let _ = tokio::time::timeout(self.limits.join_deadline, self.readers.wait()).await;
    }
}

/// Builds the consumer of one stream (again, after a fatal error).
struct ConsumerFactory {
    config: ClientConfig,
    topic: String,
    shared: Arc<Shared>,
}

impl ConsumerFactory {
    fn create(&self) -> Result<Arc<BaseConsumer<StreamContext>>> {
        let mut consumer =
            BaseConsumer::from_config_and_context(&self.config, StreamContext { shared: self.shared.clone() })
                .map_err(|e| Error::kafka("creating the consumer", e))?;
        // Rebalances, errors and not-yet-split messages arrive on the main queue: wake the
        // worker for them too.
        let wakeup = self.shared.wakeup.clone();
        consumer.set_nonempty_callback(move || wakeup.wake());
        let consumer = Arc::new(consumer);
        // Before `subscribe`: the first assignment's callback needs it.
        *self.shared.consumer.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&consumer);
        consumer.subscribe(&[&self.topic]).map_err(|e| Error::kafka(format!("subscribing to `{}`", self.topic), e))?;
        Ok(consumer)
    }
}

/// Before the stream's first poll: notes which partitions its topic has (see
/// `Shared::partitions_at_start`) and, if the topic is missing and the instance creates
/// topics, creates it (`create`: how). Retries until the cluster answers. Returns false if
/// the stream ended first.
fn take_stock(
    consumer: &BaseConsumer<StreamContext>,
    shared: &Shared,
    cancel: &CancellationToken,
    create: Option<(Arc<Publisher>, TopicSpec)>,
) -> bool {
    let mut logged = false;
    loop {
        match crate::topic::admin::partitions_now(consumer.client(), &shared.topic, STOCK_TIMEOUT) {
            Ok(Some(partitions)) => {
                if let Some(newest) = &shared.newest_at_start {
                    // Each partition's end now: with no committed offset, a partition starts
                    // there (see `Shared::starts`), so what is published from here on
                    // is delivered. One that does not answer is looked at when assigned.
                    let _ = newest.set(worker::partition_ends(consumer, &shared.topic, &partitions));
                }
                let _ = shared.partitions_at_start.set(partitions.into_iter().collect());
                return true;
            }
            Ok(None) => {
                let _ = shared.partitions_at_start.set(Default::default());
                let created = match create {
                    Some((publisher, spec)) => match create_on_runtime(shared, cancel, publisher, spec) {
                        Some(created) => created,
                        None => return false,
                    },
                    None => false,
                };
                if created {
                    return true;
                }
                tracing::warn!(
                    stream = %shared.stream, topic = %shared.topic,
                    "topic does not exist (yet): the stream waits for it, and reads its partitions from the beginning when they appear"
                );
                shared.topic_missing.store(true, std::sync::atomic::Ordering::Release);
                return true;
            }
            Err(error) => {
                if !logged {
                    tracing::warn!(stream = %shared.stream, %error, "cannot see the topic's partitions yet; retrying");
                    logged = true;
                }
                if sleep_unless_cancelled(shared, cancel, Duration::from_secs(1)) {
                    return false;
                }
                shared.apply_pending();
                if shared.inbound_closed.load(std::sync::atomic::Ordering::Acquire) {
                    return false;
                }
            }
        }
    }
}

/// Creates the stream's topic (`autoCreateTopics`) with the instance's admin client, which
/// is async: the creation runs on the runtime, and the thread waits for its answer without
/// entering the runtime (which may be shutting down: then the task never runs, and the topic
/// counts as not created). `None` if the stream ended first.
fn create_on_runtime(
    shared: &Shared,
    cancel: &CancellationToken,
    publisher: Arc<Publisher>,
    spec: TopicSpec,
) -> Option<bool> {
    use std::sync::mpsc::RecvTimeoutError;
    let (answer, created) = std::sync::mpsc::channel();
    let topic = shared.topic.clone();
    shared.runtime.spawn(async move {
        let _ = answer.send(publisher.create_if_missing(&topic, Some(spec)).await);
    });
    loop {
        match created.recv_timeout(Duration::from_millis(100)) {
            Ok(created) => return Some(created),
            Err(RecvTimeoutError::Disconnected) => return Some(false),
            Err(RecvTimeoutError::Timeout) if cancel.is_cancelled() => return None,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// The stream thread: runs the consumer; after a fatal error, builds a new one with backoff.
fn run_stream(consumer: Arc<BaseConsumer<StreamContext>>, make: &ConsumerFactory, cancel: &CancellationToken) {
    let shared = &make.shared;
    shared.labels.stream_open(1.0);
    let mut consumer = Some(consumer);
    let mut backoff = Duration::from_secs(1);
    loop {
        let current = match consumer.take().map_or_else(|| make.create(), Ok) {
            Ok(current) => current,
            Err(error) => {
                tracing::error!(stream = %shared.stream, %error, ?backoff, "could not build a consumer; retrying");
                if sleep_unless_cancelled(shared, cancel, backoff) {
                    break;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        // A panic in the loop (a bug; librdkafka data rdkafka cannot convert was one) must not
        // leave daprd a stream that never delivers again: daprd does not reopen streams. It
        // is handled as a dead consumer: what daprd did not ack is delivered again.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker::run(&current, shared, cancel)))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(stream = %shared.stream, panic = what, "the stream's consumer loop panicked: building a new consumer");
                Outcome::Rebuild
            });
        match outcome {
            Outcome::Finished => {
                worker::close(current, shared);
                break;
            }
            Outcome::Rebuild => {
                worker::abandon(current, shared);
                if sleep_unless_cancelled(shared, cancel, backoff) {
                    break;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    if let Some(dead_letter) = &shared.dead_letter {
        dead_letter.tasks.close();
        // Waited for without the runtime, which may be shutting down by now.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !dead_letter.tasks.is_empty() && std::time::Instant::now() < deadline {
            shared.wakeup.wait(Duration::from_millis(10));
        }
    }
    shared.labels.stream_open(-1.0);
    tracing::info!(stream = %shared.stream, "stream closed");
}

/// Sleeps `duration` unless cancelled first, or daprd closed its side of the stream; returns
/// whether the stream is over. Needs no async runtime (a stream may still be backing off while
/// the bridge shuts down).
fn sleep_unless_cancelled(shared: &Shared, cancel: &CancellationToken, duration: Duration) -> bool {
    let deadline = std::time::Instant::now() + duration;
    while !cancel.is_cancelled() && !shared.inbound_closed.load(std::sync::atomic::Ordering::Acquire) {
        let now = std::time::Instant::now();
        if now >= deadline {
            return false;
        }
        // Cancellation wakes the thread; the slices bound the wait if that wake-up is missed.
        shared.wakeup.wait((deadline - now).min(Duration::from_millis(100)));
    }
    true
}

fn lock_state(shared: &Shared) -> std::sync::MutexGuard<'_, StreamState> {
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The response stream: what the worker queued, except that nothing leaves while daprd has
/// paused the component, and nothing whose partition was revoked meanwhile. Messages queued
/// before the Pause stay queued (un-acked, so they are delivered again later if the stream
/// ends) instead of reaching a draining daprd; messages of a revoked partition are dropped
/// (their new owner delivers them; this stream's ack for them would be ignored anyway).
fn held_while_paused(
    responses: async_mpsc::Receiver<Result<EncodedPullResponse, Status>>,
    paused: watch::Receiver<bool>,
    live: Arc<state::LiveEpochs>,
) -> MessageStream {
    Box::pin(futures::stream::unfold((responses, paused, live), |(mut responses, mut paused, live)| async move {
        let item = loop {
            let _ = paused.wait_for(|p| !*p).await;
            let item = responses.recv().await?;
            let _ = paused.wait_for(|p| !*p).await;
            match &item {
                Ok(message) if !live.is_live(message.id()) => continue,
                _ => break item,
            }
        };
        Some((item, (responses, paused, live)))
    }))
}
