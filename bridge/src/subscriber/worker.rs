//! The consumer thread of one PullMessages stream.
//!
//! librdkafka calls rebalance callbacks from inside `poll`, on the polling thread. A revoke
//! must wait (bounded) for daprd's outstanding acks and commit before the partitions go,
//! which means blocking; so each stream polls a `BaseConsumer` on a thread of its own and
//! never blocks the async runtime. The task that reads daprd's side of the stream applies
//! each ack and nack to the stream's state itself (it never waits for the thread, so acks
//! are read however busy the thread is) and, after an ack, if a fetched message is waiting
//! in the prefetch, hands it to daprd at once: the ack→next round trip crosses no thread. It
//! then wakes the thread (wake-ups merge while one is pending) to refill the prefetch from
//! librdkafka. A nack may start a dead-letter publish, a task on the runtime whose outcome
//! the thread applies. The thread sleeps by parking ([`Wakeup`]): no async runtime is
//! involved in its waits, which stay cheap per turn and still work while the runtime shuts
//! down. The runtime thread that reads acks also writes every response to daprd's
//! connection, and on a drain it is the busiest thread, so the stream thread does the
//! per-record work around it: it encodes each response once, as it takes the record from
//! librdkafka, and frees the acked records it allocated. Messages
//! leave over the gRPC response channel, which is only ever `try_send` to: what does not fit
//! waits in an outbox, so the thread never stops polling (a consumer that stops polling for
//! `max.poll.interval.ms` is thrown out of the group) and always sees cancellation. Both the
//! thread and the reader deliver, each taking the outbox's lock before the state's, so
//! messages enter the outbox in the order the state released them. While partitions are
//! revoked, and once the stream ends, acks only update the state (`hold_delivery`).
//!
//! ```text
//!  daprd acks ──► reader task: ack → deliver the next prefetched message ─► outbox
//!  daprd nacks ─►     │ nack → schedule a redelivery, or dead-letter (a runtime task)
//!                     │ wake (merged)
//!  librdkafka "queue not empty" ├─► Wakeup (unpark) ───┐ (the thread parks here)
//!  dead-letter outcomes ────────┘                      ▼
//!  loop: apply outcomes → take from the partition queues while there is room
//!        → deliver → commit (interval) → serve the main queue without waiting
//!          (rebalance callbacks run here: drain acks, commit, release)
//!                                                      │
//!  daprd ◄── response stream (holds while Paused) ◄─ outbox ◄┘
//! ```
//!
//! Each assigned partition gets its own librdkafka queue: messages stay there (librdkafka
//! stops fetching at `queued.max.messages.kbytes`) until the stream has room, so prefetch
//! needs no pause/resume, whose refetch made one-message-in-flight streams wait. The queue is
//! split off in the rebalance callback *before* the partition is assigned: `assign` starts the
//! fetcher, which forwards the partition's messages to the consumer's main queue unless the
//! application already took that queue over. Splitting after `assign` (as this module once
//! did) let the first fetched batch land in the main queue and later ones in the split queue;
//! the split queue was served first, and the earlier batch then looked like a repeat of
//! offsets already delivered and was dropped, so acking the rest committed past it.
//!
//! librdkafka keeps an application's pause of a partition across unassign and assign. So a
//! revoke resumes in librdkafka every partition it takes away, and an assignment resumes what
//! it gives, or a partition paused before a rebalance would never fetch again.
//!
//! No Kafka error ends a stream: daprd never reopens one. Authorisation errors (ACLs still
//! propagating) and group protocol errors (a rolling change of assignor) are logged, counted
//! and retried by librdkafka underneath; a fatal consumer error makes the thread build a new
//! consumer after a backoff. Only cancellation or daprd leaving ends the stream.
//!
//! Stopping (daprd closed the stream, the bridge shuts down, re-Init): stop delivering, give
//! outstanding acks `revokeAckTimeout` to arrive, commit the acked prefix, close the
//! consumer. That drain happens once: the revoke that closing triggers only commits.
//! Whatever was not acked is delivered again later, by this group.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use dapr_kafka_proto::EncodedPullResponse;
use rdkafka::client::ClientContext;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc as async_mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::DeadLettered;
use super::dead_letter::DeadLetter;
use super::message::{Fetched, MessageId};
use super::state::{AfterNack, Block, Released, StreamState};
use super::wakeup::Wakeup;
use crate::offsets::Ack;
use crate::telemetry::metrics::{self, AckOutcome, StreamLabels};

/// Everything the thread and its rebalance callbacks share.
pub(crate) struct Shared {
    pub(crate) topic: String,
    pub(crate) labels: StreamLabels,
    pub(crate) stream: String,
    pub(crate) state: Mutex<StreamState>,
    pub(crate) runtime: Handle,
    pub(crate) paused: watch::Receiver<bool>,
    pub(crate) inbound_closed: AtomicBool,
    /// Set once the final drain is done: a revoke after it only commits.
    pub(crate) closing: AtomicBool,
    /// Set while partitions are revoked and once the stream ends: acks do not deliver then.
    pub(crate) hold_delivery: AtomicBool,
    pub(crate) revoke_ack_timeout: Duration,
    pub(crate) commit_interval: Duration,
    pub(crate) escape_headers: bool,
    pub(crate) dead_letter: Option<DeadLetter>,
    pub(crate) outbound: async_mpsc::Sender<Result<EncodedPullResponse, Status>>,
    /// Responses ready for daprd that did not fit in the response channel yet.
    pub(crate) outbox: Mutex<VecDeque<EncodedPullResponse>>,
    /// Acked positions of revoked partitions whose commit did not land (some brokers refuse
    /// commits while a rebalance is in progress). Used once, by the next assignment.
    pub(crate) unsaved: Mutex<HashMap<i32, i64>>,
    /// Gauge values this stream last reported, to report deltas (several streams share labels).
    pub(crate) reported: Mutex<Gauges>,
    /// Wakes the stream thread: acks, nacks and dead-letter outcomes, the rebalance
    /// callback, and librdkafka's queues when they become non-empty.
    pub(crate) wakeup: Arc<Wakeup>,
    /// Dead-letter publishes that finished, for the thread to apply.
    pub(crate) dead_lettered: Arc<Mutex<Vec<DeadLettered>>>,
    /// One librdkafka queue per assigned partition: messages wait there (librdkafka keeps
    /// fetching up to its queue bounds) until the stream has room for them.
    pub(crate) queues: Mutex<BTreeMap<i32, PartitionQueue<StreamContext>>>,
    /// The stream's current consumer, for the rebalance callback: splitting a partition's
    /// queue needs the consumer's `Arc`, and the callback is only handed a reference. Weak:
    /// the consumer's context holds this struct.
    pub(crate) consumer: Mutex<Weak<BaseConsumer<StreamContext>>>,
    /// The topic's partitions when the stream opened (empty if the topic did not exist). A
    /// partition outside it appeared later: everything in it was written after the
    /// subscription began, so without a committed offset it starts at the beginning.
    pub(crate) partitions_at_start: OnceLock<HashSet<i32>>,
    /// With `initialOffset: newest`, each partition's end (high watermark) when the stream
    /// opened: where a partition with no committed offset starts. See
    /// [`Shared::starts`].
    pub(crate) newest_at_start: Option<OnceLock<HashMap<i32, i64>>>,
    /// The topic is missing and that was logged: librdkafka's repeats of it are not.
    pub(crate) topic_missing: AtomicBool,
}

/// The per-stream gauge values last reported.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Gauges {
    in_flight: f64,
    held: f64,
    paused: f64,
    capped: f64,
    oversized: f64,
}

/// Where an assigned partition starts when not at the group's committed offset (see
/// [`Shared::starts`]).
#[derive(Debug, Clone, Copy)]
enum Start {
    /// The acked position a failed commit held.
    Saved(i64),
    /// The beginning: the partition appeared after the stream opened.
    Beginning,
    /// Its end when the stream opened (`initialOffset: newest`, no committed offset).
    Newest(i64),
}

/// Each partition's end offset now (one ListOffsets "latest" per broker, not one per
/// partition); partitions that did not answer are left out. Blocking.
pub(crate) fn partition_ends(
    consumer: &BaseConsumer<StreamContext>,
    topic: &str,
    partitions: &[i32],
) -> HashMap<i32, i64> {
    let mut latest = TopicPartitionList::new();
    for &p in partitions {
        // As a timestamp, END (-1) asks for the latest offset.
        let _ = latest.add_partition_offset(topic, p, Offset::End);
    }
    match consumer.offsets_for_times(latest, COMMITTED_LOOKUP_TIMEOUT) {
        Ok(ends) => ends
            .elements_for_topic(topic)
            .iter()
            .filter(|e| e.error().is_ok())
            .filter_map(|e| match e.offset() {
                Offset::Offset(end) if end >= 0 => Some((e.partition(), end)),
                _ => None,
            })
            .collect(),
        Err(_) => HashMap::new(),
    }
}

/// How long the rebalance callback waits for the committed offsets of new partitions.
const COMMITTED_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The consumer's librdkafka context: rebalance hooks, errors, statistics.
pub(crate) struct StreamContext {
    pub(crate) shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClientContext for StreamContext {
    fn error(&self, error: KafkaError, reason: &str) {
        metrics::kafka_error("consumer");
        // A missing topic was logged once when the stream opened.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::UnknownTopicOrPartition)
            && self.shared.topic_missing.load(Ordering::Acquire)
        {
            tracing::debug!(stream = %self.shared.stream, %error, reason, "the topic is still missing");
            return;
        }
        tracing::warn!(stream = %self.shared.stream, %error, reason, "librdkafka consumer error");
    }

    /// Consumer lag and committed offsets per assigned partition, from librdkafka's statistics.
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.shared.topic) else { return };
        let assigned = lock(&self.shared.state).assigned();
        for (p, partition) in &topic.partitions {
            if assigned.contains(p) && partition.committed_offset >= 0 {
                self.shared.labels.partition_offsets(*p, partition.consumer_lag.max(0), partition.committed_offset);
            }
        }
    }
}

impl ConsumerContext for StreamContext {
    /// Replaces rdkafka's default rebalance handling to do three things around it:
    ///
    /// - on revoke, before the partitions go: stop delivering them, wait (bounded) for their
    ///   outstanding acks, commit the acked prefix, and lift librdkafka's pause of them;
    /// - on assign, under the eager protocol: if that commit did not land, start the
    ///   partitions at the acked position it held, so nothing acked is delivered again;
    /// - on assign: lift any pause librdkafka kept from an earlier assignment.
    fn rebalance(
        &self,
        base_consumer: &rdkafka::consumer::BaseConsumer<Self>,
        err: RDKafkaRespErr,
        list: &mut TopicPartitionList,
    ) {
        let shared = &self.shared;
        let consumer = base_consumer;
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions = shared.partitions_of(list);
                tracing::info!(stream = %shared.stream, ?partitions, "partitions revoked: draining acks, committing");
                shared.hold_delivery.store(true, Ordering::Release);
                shared.labels.rebalance("revoke", partitions.len());
                let committed = if shared.closing.load(Ordering::Acquire) {
                    shared.commit(consumer, Some(&partitions))
                } else {
                    shared.drain_and_commit(consumer, Some(&partitions))
                };
                if !committed && !cooperative {
                    let positions = lock(&shared.state).uncommitted(Some(&partitions));
                    lock(&shared.unsaved).extend(positions);
                }
                lock(&shared.state).revoke(&partitions);
                // Their queues are split off again, before librdkafka fetches, if they return.
                lock(&shared.queues).retain(|p, _| !partitions.contains(p));
                lock(&shared.outbox)
                    .retain(|m| MessageId::parse(m.id()).is_some_and(|id| !partitions.contains(&id.partition)));
                // librdkafka keeps an application pause across unassign/assign: lift it now.
                let _ = consumer.resume(list);
                if !shared.closing.load(Ordering::Acquire) {
                    shared.hold_delivery.store(false, Ordering::Release);
                }
                if cooperative { consumer.incremental_unassign(list) } else { consumer.unassign() }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let partitions = shared.partitions_of(list);
                let unsaved = std::mem::take(&mut *lock(&shared.unsaved));
                let starts = shared.starts(consumer, &partitions, &unsaved);
                shared.topic_missing.store(false, Ordering::Release);
                let mut state = lock(&shared.state);
                for &p in &partitions {
                    match starts.get(&p) {
                        Some(&Start::Saved(position)) => {
                            tracing::info!(stream = %shared.stream, partition = p, position, "resuming at the acked position its failed commit held");
                            let _ = list.set_partition_offset(&shared.topic, p, Offset::Offset(position));
                            state.assign_at(p, position);
                        }
                        Some(Start::Beginning) => {
                            tracing::info!(stream = %shared.stream, partition = p, "partition appeared after the subscription began: reading it from the beginning");
                            let _ = list.set_partition_offset(&shared.topic, p, Offset::Beginning);
                            state.assign(p);
                        }
                        Some(&Start::Newest(start)) => {
                            tracing::info!(stream = %shared.stream, partition = p, start, "no committed offset: starting at the end the partition had when the stream opened (initialOffset: newest), committed at the next commit");
                            let _ = list.set_partition_offset(&shared.topic, p, Offset::Offset(start));
                            state.assign_at(p, start);
                        }
                        None => state.assign(p),
                    }
                }
                drop(state);
                // Before `assign` starts fetching: see the module's docs.
                shared.split_queues(&partitions);
                tracing::info!(stream = %shared.stream, ?partitions, "partitions assigned");
                shared.labels.rebalance("assign", partitions.len());
                let assigned = if cooperative { consumer.incremental_assign(list) } else { consumer.assign(list) };
                let _ = consumer.resume(list);
                shared.wakeup.wake();
                assigned
            }
            other => {
                let error = KafkaError::Rebalance(other.into());
                tracing::warn!(stream = %shared.stream, %error, "rebalance error; releasing the assignment");
                consumer.unassign()
            }
        };
        if let Err(error) = result {
            tracing::error!(stream = %shared.stream, %error, "applying the rebalance failed");
        }
    }
}

impl Shared {
    fn partitions_of(&self, list: &TopicPartitionList) -> Vec<i32> {
        list.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect()
    }

    /// Where each of the `assigned` partitions starts, decided with at most one lookup of the
    /// group's committed offsets (a blocking call: this runs in the rebalance callback, on the
    /// stream thread). `unsaved` holds acked positions whose commit failed at a revoke.
    ///
    /// - **A saved position** is resumed unless the group's committed offset is already at or
    ///   past it: while the partition was away another member may have committed further, and
    ///   resuming behind that would redeliver the stretch and move the group's offset back.
    /// - **A partition that appeared** after the stream opened, with no committed offset,
    ///   starts at the beginning, whatever `initialOffset` says: everything in it was written
    ///   after the subscription began (up to `metadataRefreshInterval` plus a rebalance would
    ///   otherwise be skipped).
    /// - **With `initialOffset: newest`**, a partition with no committed offset starts at the
    ///   end it had when the stream opened (or now, for one not seen then), given to librdkafka
    ///   explicitly and committed at the next commit. librdkafka resolves "latest" when it
    ///   starts fetching, and nothing is committed until daprd acks; so a partition whose
    ///   messages were delivered but not acked before it moved (a rebalance, a closed stream, a
    ///   rebuilt consumer, a crash) would be resolved to "latest" again by its next owner,
    ///   skipping them, and what was published between the stream's opening and its first
    ///   assignment would be skipped too.
    ///
    /// If the lookup fails: saved positions are resumed and appeared partitions start at the
    /// beginning (duplicates, never loss); other partitions are left to librdkafka.
    fn starts(
        &self,
        consumer: &BaseConsumer<StreamContext>,
        assigned: &[i32],
        unsaved: &HashMap<i32, i64>,
    ) -> HashMap<i32, Start> {
        let at_start = self.partitions_at_start.get();
        let appeared = |p: &i32| at_start.is_some_and(|s| !s.contains(p));
        let needs_lookup =
            self.newest_at_start.is_some() || assigned.iter().any(|p| unsaved.contains_key(p) || appeared(p));
        if !needs_lookup {
            return HashMap::new();
        }
        let mut list = TopicPartitionList::new();
        for &p in assigned {
            list.add_partition(&self.topic, p);
        }
        let committed: Option<HashMap<i32, i64>> = match consumer.committed_offsets(list, COMMITTED_LOOKUP_TIMEOUT) {
            Ok(committed) => Some(
                committed
                    .elements_for_topic(&self.topic)
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) if o >= 0 => Some((e.partition(), o)),
                        _ => None,
                    })
                    .collect(),
            ),
            Err(error) => {
                tracing::warn!(stream = %self.stream, %error, "could not read the group's committed offsets: resuming saved positions, reading new partitions from the beginning, leaving the others to librdkafka");
                None
            }
        };
        let mut starts = HashMap::new();
        let mut newest = Vec::new();
        for &p in assigned {
            let committed_at = committed.as_ref().and_then(|c| c.get(&p).copied());
            if let Some(&saved) = unsaved.get(&p) {
                if committed_at.is_none_or(|c| c < saved) {
                    starts.insert(p, Start::Saved(saved));
                }
            } else if appeared(&p) {
                if committed_at.is_none() {
                    starts.insert(p, Start::Beginning);
                }
            } else if committed.is_some() && committed_at.is_none() && self.newest_at_start.is_some() {
                newest.push(p);
            }
        }
        if !newest.is_empty() {
            let sampled = self.newest_at_start.as_ref().and_then(OnceLock::get);
            let unsampled: Vec<i32> =
                newest.iter().copied().filter(|p| !sampled.is_some_and(|s| s.contains_key(p))).collect();
            let now =
                if unsampled.is_empty() { HashMap::new() } else { partition_ends(consumer, &self.topic, &unsampled) };
            for p in newest {
                match sampled.and_then(|s| s.get(&p)).or_else(|| now.get(&p)) {
                    Some(&end) => {
                        starts.insert(p, Start::Newest(end));
                    }
                    None => {
                        tracing::warn!(stream = %self.stream, partition = p, "could not read the partition's end: it starts at librdkafka's latest")
                    }
                }
            }
        }
        starts
    }

    /// Applies an ack from daprd on the task that reads daprd's side of the stream, and hands
    /// daprd the next message at once if one is waiting in the prefetch (so the ack→next round
    /// trip crosses no thread). Then wakes the stream thread, off that path, to refill the
    /// prefetch from librdkafka; wake-ups that come while one is pending are merged.
    ///
    /// While partitions are being revoked or the stream is ending (`hold_delivery`), the ack
    /// is only applied: nothing new is delivered then, as on the thread.
    pub(crate) fn ack(&self, id: &str) {
        let Some(parsed) = MessageId::parse(id) else {
            tracing::debug!(stream = %self.stream, id, "ack with a malformed id ignored");
            self.labels.ack(AckOutcome::Ignored);
            return;
        };
        let outcome = if self.hold_delivery.load(Ordering::Acquire) {
            lock(&self.state).ack(&parsed)
        } else {
            // One pass under the locks (outbox, then state, as `deliver` takes them): the ack
            // and the deliveries it allows.
            let mut outbox = lock(&self.outbox);
            let mut state = lock(&self.state);
            let outcome = state.ack(&parsed);
            if outcome == Ack::Acked && !self.deliver_locked(&mut outbox, state) {
                self.inbound_closed.store(true, Ordering::Release);
            }
            outcome
        };
        if outcome == Ack::Acked {
            tracing::trace!(stream = %self.stream, id, "acked");
            self.labels.ack(AckOutcome::Acked);
        } else {
            tracing::debug!(stream = %self.stream, id, ?outcome, "ack ignored (unknown, stale or repeated)");
            self.labels.ack(AckOutcome::Ignored);
        }
        // An ignored ack changed nothing the thread could act on.
        if outcome == Ack::Acked {
            self.wakeup.wake();
        }
    }

    /// Applies a nack from daprd on the task that reads daprd's side of the stream: schedules
    /// the redelivery (or drops the message, or starts its dead-letter publish, as the
    /// settings say), then wakes the thread, whose sleep may now end at that redelivery.
    pub(crate) fn nack(&self, id: &str, error: &str) {
        let now = Instant::now();
        let Some(parsed) = MessageId::parse(id) else {
            tracing::debug!(stream = %self.stream, id, "nack with a malformed id ignored");
            self.labels.ack(AckOutcome::Ignored);
            return;
        };
        let mut state = lock(&self.state);
        let after = state.nack(&parsed, now);
        self.labels.ack(if after == AfterNack::Ignored { AckOutcome::Ignored } else { AckOutcome::Nacked });
        match after {
            AfterNack::Redeliver { at, retry } => {
                tracing::info!(stream = %self.stream, id, retry, delay = ?(at - now), %error, "nacked: redelivering");
                self.labels.redelivery("retry");
            }
            AfterNack::RedeliverExhausted { at, retry } => {
                tracing::warn!(
                    stream = %self.stream, id, retry, delay = ?(at - now), %error,
                    "poison message: retries used up and no deadLetterTopic; redelivering (its partition's commits wait for it)"
                );
                self.labels.redelivery("exhausted");
            }
            AfterNack::Dropped => {
                tracing::error!(
                    stream = %self.stream, topic = %self.topic, partition = parsed.partition, offset = parsed.offset, %error,
                    "nacked with consumeRetryEnabled=false and no deadLetterTopic: dropped, as pubsub.kafka does"
                );
                self.labels.redelivery("dropped");
            }
            AfterNack::DeadLetter(message) => {
                let epoch = state.epoch(parsed.partition).unwrap_or_default();
                drop(state);
                let dead_letter = self.dead_letter.as_ref().expect("DeadLetter only with a topic");
                tracing::warn!(stream = %self.stream, id, dlq = %dead_letter.topic, %error, "retries used up: dead-lettering");
                dead_letter.send(*message, epoch, error.to_owned());
            }
            AfterNack::Ignored => {
                tracing::debug!(stream = %self.stream, id, "nack ignored (unknown, stale or repeated)")
            }
        }
        self.wakeup.wake();
    }

    /// daprd closed its side of the stream: no more acks will come.
    pub(crate) fn daprd_closed(&self) {
        self.inbound_closed.store(true, Ordering::Release);
        self.wakeup.wake();
    }

    /// Applies the outcome of a dead-letter publish.
    fn apply_dead_lettered(&self, done: DeadLettered, now: Instant) {
        let DeadLettered { partition, offset, epoch, outcome } = done;
        if let Err(error) = &outcome {
            tracing::error!(
                stream = %self.stream, partition, offset, %error,
                "dead-letter publish failed; after maxRetryBackoff the message is delivered again (a record above \
                 maxDeliveryBytes is dead-lettered again instead); a record larger than the producer allows needs \
                 maxMessageBytes raised"
            );
        }
        self.labels.dead_lettered(outcome.is_ok());
        lock(&self.state).dead_lettered(partition, offset, epoch, outcome.map_err(|_| ()), now);
    }

    /// Takes a pending wake-up (this turn looks at everything) and applies what finished.
    pub(crate) fn apply_pending(&self) {
        self.wakeup.take();
        let done = std::mem::take(&mut *lock(&self.dead_lettered));
        if !done.is_empty() {
            let now = Instant::now();
            for one in done {
                self.apply_dead_lettered(one, now);
            }
        }
    }

    /// Frees the records acked since the last call here, on the thread that allocated them
    /// (see `StreamState::take_released`); `spare` is the empty buffer traded for them.
    fn free_released(&self, spare: &mut Released) {
        lock(&self.state).take_released(spare);
        spare.clear();
    }

    /// Sleeps until woken or `wait` has passed, then applies what is pending.
    fn wait_for_event(&self, wait: Duration) {
        if !wait.is_zero() {
            self.wakeup.wait(wait);
        }
        self.apply_pending();
    }

    /// Waits up to `revokeAckTimeout` for acks of messages in `partitions` (all if `None`),
    /// then commits the acked prefix. Returns early once nothing is outstanding or daprd
    /// has closed its side (no more acks can come). Returns whether the commit landed.
    fn drain_and_commit(&self, consumer: &BaseConsumer<StreamContext>, partitions: Option<&[i32]>) -> bool {
        let deadline = Instant::now() + self.revoke_ack_timeout;
        loop {
            self.apply_pending();
            let outstanding = lock(&self.state).unacked(partitions);
            if outstanding == 0 || self.inbound_closed.load(Ordering::Acquire) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(stream = %self.stream, outstanding, "acks still outstanding at the deadline; they will be redelivered");
                break;
            }
            self.wait_for_event((deadline - now).min(Duration::from_millis(50)));
        }
        self.commit(consumer, partitions)
    }

    /// Commits the acked prefix of `partitions` (all if `None`), synchronously. Returns
    /// whether it landed (true when there was nothing to commit).
    fn commit(&self, consumer: &BaseConsumer<StreamContext>, partitions: Option<&[i32]>) -> bool {
        let positions = lock(&self.state).uncommitted(partitions);
        if positions.is_empty() {
            return true;
        }
        let mut list = TopicPartitionList::new();
        for (p, position) in &positions {
            let _ = list.add_partition_offset(&self.topic, *p, Offset::Offset(*position));
        }
        let started = std::time::Instant::now();
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => {
                tracing::debug!(stream = %self.stream, ?positions, "committed");
                self.labels.commit(true, started.elapsed());
                lock(&self.state).committed(&positions);
                true
            }
            Err(error) => {
                tracing::warn!(stream = %self.stream, %error, "commit failed; will retry");
                self.labels.commit(false, started.elapsed());
                false
            }
        }
    }

    /// Moves what can be delivered now into the response channel, as far as it has room.
    /// Never waits. Returns false when daprd is gone.
    fn deliver(&self) -> bool {
        // The outbox first: the thread and the ack reader both deliver, and whoever takes
        // messages from the state puts them in the outbox before the other can.
        let mut outbox = lock(&self.outbox);
        let state = lock(&self.state);
        self.deliver_locked(&mut outbox, state)
    }

    /// `deliver` with the outbox and the state locked; lets go of the state before sending.
    fn deliver_locked(
        &self,
        outbox: &mut MutexGuard<'_, VecDeque<EncodedPullResponse>>,
        mut state: MutexGuard<'_, StreamState>,
    ) -> bool {
        let paused = *self.paused.borrow();
        let ready = state.deliverable(Instant::now(), paused);
        drop(state);
        self.labels.delivered(ready.messages.len());
        for (message, epoch, reason) in ready.dead_letters {
            tracing::error!(stream = %self.stream, partition = message.partition, offset = message.offset, %reason, "dead-lettering a record daprd cannot receive");
            if let Some(dead_letter) = &self.dead_letter {
                dead_letter.send(message, epoch, reason);
            }
        }
        outbox.extend(ready.messages);
        if paused {
            return true;
        }
        while let Some(message) = outbox.pop_front() {
            match self.outbound.try_send(Ok(message)) {
                Ok(()) => {}
                Err(TrySendError::Full(Ok(message))) => {
                    outbox.push_front(message);
                    break;
                }
                Err(TrySendError::Full(Err(_))) => break,
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        true
    }

    /// Pauses or resumes partitions in librdkafka to match the flow-control state.
    fn apply_flow_control(&self, consumer: &BaseConsumer<StreamContext>) {
        let (pause, resume) = lock(&self.state).fetch_changes();
        let list = |partitions: &[i32]| {
            let mut list = TopicPartitionList::new();
            for &p in partitions {
                list.add_partition(&self.topic, p);
            }
            list
        };
        if !pause.is_empty() {
            if let Err(error) = consumer.pause(&list(&pause)) {
                tracing::warn!(stream = %self.stream, %error, ?pause, "pausing partitions failed");
            }
        }
        if !resume.is_empty() {
            if let Err(error) = consumer.resume(&list(&resume)) {
                tracing::warn!(stream = %self.stream, %error, ?resume, "resuming partitions failed");
            }
        }
    }

    /// Logs partitions that stopped (or started again) delivering, and updates the gauges.
    fn report(&self) {
        let (changes, now) = {
            let mut state = lock(&self.state);
            let changes = state.block_changes();
            let (in_flight, held) = state.counts();
            let (mut capped, mut oversized) = (0.0, 0.0);
            for (_, block) in state.blocked() {
                match block {
                    Block::UncommittedCap { .. } => capped += 1.0,
                    Block::Oversized { .. } => oversized += 1.0,
                }
            }
            let now = Gauges {
                in_flight: in_flight as f64,
                held: held as f64,
                paused: state.fetch_paused() as f64,
                capped,
                oversized,
            };
            (changes, now)
        };
        for (partition, change) in changes {
            match change {
                Some(Block::UncommittedCap { offset, held }) => tracing::error!(
                    stream = %self.stream, topic = %self.topic, partition, offset, held,
                    "partition STOPPED delivering: {held} delivered messages wait behind un-acked offset {offset} \
                     (maxUncommittedPerPartition). A poison message without a deadLetterTopic? \
                     Set deadLetterTopic, or fix the app; the committed offset cannot move past it"
                ),
                Some(Block::Oversized { offset, bytes }) => tracing::error!(
                    stream = %self.stream, topic = %self.topic, partition, offset, bytes,
                    "partition STOPPED delivering: the record at offset {offset} is {bytes} bytes, above maxDeliveryBytes \
                     (daprd's gRPC receive limit is 4 MiB). Set deadLetterTopic to move it aside"
                ),
                None => {
                    tracing::info!(stream = %self.stream, topic = %self.topic, partition, "partition delivers again")
                }
            }
        }
        let mut reported = lock(&self.reported);
        if *reported != now {
            self.labels.flow(
                now.in_flight - reported.in_flight,
                now.held - reported.held,
                now.paused - reported.paused,
            );
            self.labels.blocked("uncommitted_cap", now.capped - reported.capped);
            self.labels.blocked("oversized", now.oversized - reported.oversized);
            *reported = now;
        }
    }

    /// Takes every gauge this stream reported back out (the stream ended).
    fn clear_gauges(&self) {
        let mut reported = lock(&self.reported);
        self.labels.flow(-reported.in_flight, -reported.held, -reported.paused);
        self.labels.blocked("uncommitted_cap", -reported.capped);
        self.labels.blocked("oversized", -reported.oversized);
        *reported = Gauges::default();
    }
}

impl Shared {
    /// Takes the queue of each of `partitions` out of the consumer's main queue, with a
    /// callback that wakes the worker when messages arrive in it. Called in the rebalance
    /// callback before the partitions are assigned. librdkafka remembers that the application
    /// took a partition's queue over, for as long as it knows the partition. A partition
    /// whose queue cannot be split (the consumer is being dropped) is read from the main
    /// queue, in order.
    fn split_queues(&self, partitions: &[i32]) {
        let Some(consumer) = lock(&self.consumer).upgrade() else { return };
        let mut queues = lock(&self.queues);
        for &partition in partitions {
            if let Some(mut queue) = consumer.split_partition_queue(&self.topic, partition) {
                let wakeup = self.wakeup.clone();
                queue.set_nonempty_callback(move || wakeup.wake());
                queues.insert(partition, queue);
            }
        }
    }

    /// Moves messages from the partition queues into the stream's prefetch, as far as it has
    /// room. Returns an error that needs a new consumer.
    ///
    /// The state's lock is taken once to size a partition's share and once to hand over what
    /// was taken, not per message: the ack reader contends for it, and a contended lock on a
    /// busy machine puts a thread to sleep.
    fn fill(&self) -> Option<KafkaError> {
        let queues = lock(&self.queues);
        let mut taken = Vec::new();
        for (&partition, queue) in queues.iter() {
            let room = lock(&self.state).room(partition);
            let mut failed = None;
            while taken.len() < room {
                match queue.poll(Duration::ZERO) {
                    Some(Ok(message)) => taken.push(Fetched::from_kafka(&message, self.escape_headers)),
                    Some(Err(error)) => {
                        failed = Some(error);
                        break;
                    }
                    None => break,
                }
            }
            if !taken.is_empty() {
                let mut state = lock(&self.state);
                for message in taken.drain(..) {
                    // Taken while the partition is assigned (a revoke runs on this thread).
                    state.fetched(message);
                }
            }
            if let Some(error) = failed {
                if survivable(&error).is_none() {
                    return Some(error);
                }
                tracing::warn!(stream = %self.stream, partition, %error, "partition error; retrying underneath");
            }
        }
        None
    }
}

/// How one consumer's run ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Cancelled, or daprd left: the stream is over (acks drained, committed).
    Finished,
    /// The consumer hit a fatal error: build a new one and go on.
    Rebuild,
}

/// The kind of a Kafka error a stream survives, for logs and metrics; `None` for errors that
/// need a new consumer.
fn survivable(error: &KafkaError) -> Option<&'static str> {
    use RDKafkaErrorCode as K;
    match error.rdkafka_error_code() {
        Some(K::Fatal) => None,
        Some(
            K::GroupAuthorizationFailed
            | K::TopicAuthorizationFailed
            | K::ClusterAuthorizationFailed
            | K::SaslAuthenticationFailed
            | K::Authentication,
        ) => Some("authorization"),
        Some(K::InvalidGroupId | K::InconsistentGroupProtocol | K::UnknownMemberId | K::RebalanceInProgress) => {
            Some("group")
        }
        _ => Some("other"),
    }
}

/// Runs the stream on `consumer` until it is cancelled, daprd goes away, or the consumer
/// fails fatally.
///
/// Event-driven: the loop parks until acks, nacks, dead-letter outcomes or librdkafka's
/// "queue not empty" callbacks wake it, so an ack releases the next message
/// (already prefetched) at once and a fetch is acted on when it lands. Without events it
/// still wakes every 100 ms to serve the consumer's main queue (rebalances, errors).
pub(crate) fn run(consumer: &BaseConsumer<StreamContext>, shared: &Shared, cancel: &CancellationToken) -> Outcome {
    let mut last_commit = Instant::now();
    let mut last_error: Option<String> = None;
    let mut released = Vec::new();
    loop {
        if cancel.is_cancelled() || shared.inbound_closed.load(Ordering::Acquire) {
            return Outcome::Finished;
        }
        shared.apply_pending();
        shared.free_released(&mut released);
        if let Some(error) = shared.fill() {
            tracing::error!(stream = %shared.stream, %error, "fatal consumer error: building a new consumer");
            shared.labels.stream_error("fatal");
            return Outcome::Rebuild;
        }
        if !shared.deliver() {
            shared.inbound_closed.store(true, Ordering::Release);
            return Outcome::Finished;
        }
        shared.apply_flow_control(consumer);
        shared.report();
        if last_commit.elapsed() >= shared.commit_interval {
            shared.commit(consumer, None);
            last_commit = Instant::now();
        }
        // The main queue: rebalance callbacks, errors, and messages of partitions whose queue
        // is not split off yet. Never waits here.
        let mut polled = 0;
        let mut next = consumer.poll(Duration::ZERO);
        while let Some(result) = next {
            match result {
                Ok(message) => {
                    // Built before the lock is taken: the ack reader contends for it.
                    let fetched = Fetched::from_kafka(&message, shared.escape_headers);
                    let (partition, offset) = (fetched.partition, fetched.offset);
                    if !lock(&shared.state).fetched(fetched) {
                        tracing::debug!(stream = %shared.stream, partition, offset, "dropped a message of a partition no longer assigned");
                    }
                    last_error = None;
                }
                Err(error) => {
                    let Some(kind) = survivable(&error) else {
                        tracing::error!(stream = %shared.stream, %error, "fatal consumer error: building a new consumer");
                        shared.labels.stream_error("fatal");
                        return Outcome::Rebuild;
                    };
                    shared.labels.stream_error(kind);
                    // librdkafka retries underneath (broker down, leader moving, topic not
                    // there yet, ACLs not there yet); the stream stays open. Log each new
                    // kind of error once; a missing topic once until it appears (the
                    // stream-open check may have logged it already).
                    let text = error.to_string();
                    let missing = error.rdkafka_error_code() == Some(RDKafkaErrorCode::UnknownTopicOrPartition);
                    if missing && shared.topic_missing.swap(true, Ordering::AcqRel) {
                        tracing::debug!(stream = %shared.stream, %error, "the topic is still missing");
                    } else if last_error.as_deref() != Some(text.as_str()) {
                        tracing::warn!(stream = %shared.stream, %error, kind, "Kafka error; the stream stays open and retries");
                        last_error = Some(text);
                    }
                }
            }
            polled += 1;
            next = if polled < 256 { consumer.poll(Duration::ZERO) } else { None };
        }
        if polled > 0 {
            continue; // something changed: act on it before sleeping
        }
        // Sleep until an event, the next redelivery, the next commit, or the main-queue
        // service interval. Responses waiting for room in the response channel: look again
        // soon, unless daprd paused the component (they wait for Resume, seen within the
        // interval).
        let mut timeout = Duration::from_millis(100);
        let paused = *shared.paused.borrow();
        if !lock(&shared.outbox).is_empty() && !paused {
            timeout = Duration::from_millis(1);
        }
        // Paused, a due redelivery waits for Resume: waking for it would spin.
        if let Some(at) = lock(&shared.state).next_redelivery().filter(|_| !paused) {
            timeout = timeout.min(at.saturating_duration_since(Instant::now()));
        }
        timeout = timeout.min(shared.commit_interval.saturating_sub(last_commit.elapsed()));
        shared.wait_for_event(timeout);
    }
}

/// Ends a consumer's membership: drains acks once, commits, leaves the group.
pub(crate) fn close(consumer: Arc<BaseConsumer<StreamContext>>, shared: &Shared) {
    tracing::info!(stream = %shared.stream, "stream ending: draining acks and committing");
    shared.hold_delivery.store(true, Ordering::Release);
    if !shared.drain_and_commit(&consumer, None) {
        tracing::warn!(stream = %shared.stream, "final commit failed: un-committed acked messages will be delivered again");
    }
    // The partition queues hold the consumer too: let them go first.
    lock(&shared.queues).clear();
    shared.closing.store(true, Ordering::Release);
    consumer.unsubscribe();
    drop(consumer);
    shared.clear_gauges();
}

/// Forgets a dead consumer's partitions (it cannot commit; their un-acked and un-committed
/// messages are delivered again by whoever gets them next).
pub(crate) fn abandon(consumer: Arc<BaseConsumer<StreamContext>>, shared: &Shared) {
    lock(&shared.queues).clear();
    let partitions = lock(&shared.state).assigned();
    lock(&shared.state).revoke(&partitions);
    lock(&shared.outbox).clear();
    shared.closing.store(true, Ordering::Release);
    drop(consumer);
    shared.closing.store(false, Ordering::Release);
    // A revoke run by that drop held delivery for a closing stream: the stream goes on, and
    // acks deliver the next message again.
    shared.hold_delivery.store(false, Ordering::Release);
}
