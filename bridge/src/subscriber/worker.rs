//! The consumer thread of one PullMessages stream.
//!
//! librdkafka calls rebalance callbacks from inside `poll`, on the polling thread. A revoke
//! must wait (bounded) for daprd's outstanding acks and commit before the partitions go,
//! which means blocking; so each stream polls a `BaseConsumer` on a thread of its own and
//! never blocks the async runtime. Acks reach the thread over a channel; messages leave it
//! over the gRPC response channel.
//!
//! ```text
//!  daprd acks ─► reader task ─► events (std mpsc) ─┐
//!                                                   ▼
//!  loop: apply events → deliver (room?) → pause/resume partitions → commit (interval)
//!        → poll Kafka (rebalance callbacks run here: drain acks, commit, release)
//!                                                   │
//!  daprd ◄── gRPC response stream ◄─────────────────┘
//! ```
//!
//! Stopping (daprd closed the stream, the bridge shuts down, re-Init): stop delivering, give
//! outstanding acks `revokeAckTimeout` to arrive, commit the acked prefix, close the
//! consumer. Whatever was not acked is delivered again later, by this group.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dapr_kafka_proto::components::PullMessagesResponse;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc as async_mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::Event;
use super::dead_letter::DeadLetter;
use super::message::{Fetched, MessageId};
use super::state::{AfterNack, StreamState};
use crate::offsets::Ack;
use crate::telemetry::metrics::{self, StreamLabels};

/// Everything the thread and its rebalance callbacks share.
pub(crate) struct Shared {
    pub(crate) topic: String,
    pub(crate) labels: StreamLabels,
    pub(crate) stream: String,
    pub(crate) state: Mutex<StreamState>,
    pub(crate) events: Mutex<mpsc::Receiver<Event>>,
    pub(crate) paused: Arc<AtomicBool>,
    pub(crate) inbound_closed: AtomicBool,
    pub(crate) revoke_ack_timeout: Duration,
    pub(crate) commit_interval: Duration,
    pub(crate) escape_headers: bool,
    pub(crate) dead_letter: Option<DeadLetter>,
    pub(crate) outbound: async_mpsc::Sender<Result<PullMessagesResponse, Status>>,
    pub(crate) librdkafka_paused: Mutex<HashSet<i32>>,
    /// Acked positions of revoked partitions whose commit did not land (some brokers refuse
    /// commits while a rebalance is in progress). Used once, by the next assignment.
    pub(crate) unsaved: Mutex<HashMap<i32, i64>>,
}

/// The consumer's librdkafka context: rebalance hooks.
pub(crate) struct StreamContext {
    pub(crate) shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClientContext for StreamContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(stream = %self.shared.stream, %error, reason, "librdkafka consumer error");
        metrics::kafka_error("consumer");
    }
}

impl ConsumerContext for StreamContext {
    /// Replaces rdkafka's default rebalance handling to do two things around it:
    ///
    /// - on revoke, before the partitions go: stop delivering them, wait (bounded) for their
    ///   outstanding acks, commit the acked prefix;
    /// - on assign, under the eager protocol: if that commit did not land, start the
    ///   partitions we get back at the acked position instead of the older committed one.
    ///   This is safe because with eager rebalancing the revoke and the next assignment are
    ///   consecutive generations: nobody else consumed the partition in between, and every
    ///   offset below the position was acked by daprd. Partitions that went elsewhere are
    ///   redelivered from the committed offset by their new owner (at-least-once).
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, list: &mut TopicPartitionList) {
        let shared = &self.shared;
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions = shared.partitions_of(list);
                tracing::info!(stream = %shared.stream, ?partitions, "partitions revoked: draining acks, committing");
                shared.labels.rebalance("revoke", partitions.len());
                let committed = shared.drain_and_commit(consumer, Some(&partitions));
                if !committed && !cooperative {
                    let positions = lock(&shared.state).uncommitted(Some(&partitions));
                    lock(&shared.unsaved).extend(positions);
                }
                lock(&shared.state).revoke(&partitions);
                let mut paused = lock(&shared.librdkafka_paused);
                for p in &partitions {
                    paused.remove(p);
                }
                drop(paused);
                if cooperative { consumer.incremental_unassign(list) } else { consumer.unassign() }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let partitions = shared.partitions_of(list);
                let unsaved = std::mem::take(&mut *lock(&shared.unsaved));
                let mut state = lock(&shared.state);
                for &p in &partitions {
                    match unsaved.get(&p) {
                        Some(&position) => {
                            tracing::info!(stream = %shared.stream, partition = p, position, "resuming at the acked position its failed commit held");
                            let _ = list.set_partition_offset(&shared.topic, p, Offset::Offset(position));
                            state.assign_at(p, position);
                        }
                        None => state.assign(p),
                    }
                }
                drop(state);
                tracing::info!(stream = %shared.stream, ?partitions, "partitions assigned");
                shared.labels.rebalance("assign", partitions.len());
                if cooperative { consumer.incremental_assign(list) } else { consumer.assign(list) }
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

    /// Applies one event from daprd or from a dead-letter publish.
    fn apply(&self, event: Event) {
        let now = Instant::now();
        match event {
            Event::Ack(id) => match MessageId::parse(&id).map(|id| lock(&self.state).ack(&id)) {
                Some(Ack::Acked) => {
                    tracing::trace!(stream = %self.stream, id, "acked");
                    self.labels.ack("acked");
                }
                outcome => {
                    tracing::debug!(stream = %self.stream, id, ?outcome, "ack ignored (unknown, stale or repeated)");
                    self.labels.ack("ignored");
                }
            },
            Event::Nack { id, error } => {
                let Some(parsed) = MessageId::parse(&id) else {
                    tracing::debug!(stream = %self.stream, id, "nack with a malformed id ignored");
                    return;
                };
                let mut state = lock(&self.state);
                let after = state.nack(&parsed, now);
                self.labels.ack(if after == AfterNack::Ignored { "ignored" } else { "nacked" });
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
                    AfterNack::DeadLetter(message) => {
                        let epoch = state.epoch(parsed.partition).unwrap_or_default();
                        drop(state);
                        let dead_letter = self.dead_letter.as_ref().expect("DeadLetter only with a topic");
                        tracing::warn!(stream = %self.stream, id, dlq = %dead_letter.topic, %error, "retries used up: dead-lettering");
                        dead_letter.send(*message, epoch, error);
                    }
                    AfterNack::Ignored => {
                        tracing::debug!(stream = %self.stream, id, "nack ignored (unknown, stale or repeated)")
                    }
                }
            }
            Event::DeadLettered { partition, offset, epoch, outcome } => {
                if let Err(error) = &outcome {
                    tracing::error!(stream = %self.stream, partition, offset, %error, "dead-letter publish failed; will redeliver");
                }
                self.labels.dead_lettered(outcome.is_ok());
                lock(&self.state).dead_lettered(partition, offset, epoch, outcome.map_err(|_| ()), now);
            }
            Event::InboundClosed => self.inbound_closed.store(true, Ordering::Release),
        }
    }

    fn apply_pending(&self) {
        let events = lock(&self.events);
        while let Ok(event) = events.try_recv() {
            self.apply(event);
        }
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
            let wait = (deadline - now).min(Duration::from_millis(50));
            let received = lock(&self.events).recv_timeout(wait);
            match received {
                Ok(event) => self.apply(event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
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
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => {
                tracing::debug!(stream = %self.stream, ?positions, "committed");
                self.labels.commit(true);
                lock(&self.state).committed(&positions);
                true
            }
            Err(error) => {
                tracing::warn!(stream = %self.stream, %error, "commit failed; will retry");
                self.labels.commit(false);
                false
            }
        }
    }

    /// Sends what can be delivered now. Returns false when daprd is gone.
    fn deliver(&self) -> bool {
        let paused = self.paused.load(Ordering::Acquire);
        let ready = lock(&self.state).deliverable(Instant::now(), paused);
        self.labels.delivered(ready.len());
        if !ready.is_empty() {
            tracing::trace!(stream = %self.stream, count = ready.len(), first = %ready[0].id, "delivering");
        }
        // The channel holds at most maxInFlightPerStream messages, which is also the most
        // the state lets be in flight, so this send does not wait on a slow reader.
        ready.into_iter().all(|message| self.outbound.blocking_send(Ok(message)).is_ok())
    }

    /// Pauses or resumes partitions in librdkafka to match the flow-control state.
    fn apply_flow_control(&self, consumer: &BaseConsumer<StreamContext>) {
        let (to_pause, to_resume) = {
            let state = lock(&self.state);
            let librdkafka_paused = lock(&self.librdkafka_paused);
            let mut to_pause = TopicPartitionList::new();
            let mut to_resume = TopicPartitionList::new();
            for p in state.assigned() {
                let paused_now = librdkafka_paused.contains(&p);
                match (state.wants_pause(p, paused_now), paused_now) {
                    (true, false) => to_pause.add_partition(&self.topic, p),
                    (false, true) => to_resume.add_partition(&self.topic, p),
                    _ => continue,
                };
            }
            (to_pause, to_resume)
        };
        let mut librdkafka_paused = lock(&self.librdkafka_paused);
        if to_pause.count() > 0 && consumer.pause(&to_pause).is_ok() {
            librdkafka_paused.extend(self.partitions_of(&to_pause));
        }
        if to_resume.count() > 0 && consumer.resume(&to_resume).is_ok() {
            for p in self.partitions_of(&to_resume) {
                librdkafka_paused.remove(&p);
            }
        }
    }
}

/// Errors after which the stream cannot go on: reported to daprd as a status.
fn fatal(error: &KafkaError) -> Option<Status> {
    use RDKafkaErrorCode as K;
    match error.rdkafka_error_code()? {
        K::GroupAuthorizationFailed | K::TopicAuthorizationFailed | K::SaslAuthenticationFailed | K::Authentication => {
            Some(Status::permission_denied(format!("Kafka refused the subscription: {error}")))
        }
        K::Fatal | K::InvalidGroupId | K::InconsistentGroupProtocol => {
            Some(Status::failed_precondition(format!("unrecoverable Kafka error: {error}")))
        }
        _ => None,
    }
}

/// Runs the stream until it is cancelled, daprd goes away, or a fatal error.
pub(crate) fn run(consumer: BaseConsumer<StreamContext>, shared: Arc<Shared>, cancel: CancellationToken) {
    let mut last_commit = Instant::now();
    let mut last_error: Option<String> = None;
    loop {
        if cancel.is_cancelled() || shared.inbound_closed.load(Ordering::Acquire) {
            break;
        }
        shared.apply_pending();
        if !shared.deliver() {
            break;
        }
        shared.apply_flow_control(&consumer);
        if last_commit.elapsed() >= shared.commit_interval {
            shared.commit(&consumer, None);
            last_commit = Instant::now();
        }
        // Wait for whatever can make progress. When the stream is full (or paused), only an
        // ack can: wait on the ack channel so it is acted on at once, then service the
        // consumer without blocking (rebalances, heartbeats-by-poll). Otherwise wait on Kafka.
        let (full, flow_paused, next_redelivery) = {
            let state = lock(&shared.state);
            (
                state.is_full() || shared.paused.load(Ordering::Acquire),
                !lock(&shared.librdkafka_paused).is_empty(),
                state.next_redelivery(),
            )
        };
        let mut timeout = if flow_paused { Duration::from_millis(5) } else { Duration::from_millis(50) };
        if let Some(at) = next_redelivery {
            timeout = timeout.min(at.saturating_duration_since(Instant::now()));
        }
        if full {
            let received = lock(&shared.events).recv_timeout(timeout.min(Duration::from_millis(20)));
            if let Ok(event) = received {
                shared.apply(event);
            }
            timeout = Duration::ZERO;
        }
        let mut polled = 0;
        let mut next = consumer.poll(timeout);
        while let Some(result) = next {
            match result {
                Ok(message) => {
                    lock(&shared.state).fetched(Fetched::from_kafka(&message, shared.escape_headers));
                    last_error = None;
                }
                Err(error) => {
                    if let Some(status) = fatal(&error) {
                        tracing::error!(stream = %shared.stream, %error, "unrecoverable; ending the stream");
                        let _ = shared.outbound.blocking_send(Err(status));
                        let _ = shared.drain_and_commit(&consumer, None);
                        return;
                    }
                    // Recoverable (broker down, leader moving, topic not there yet): librdkafka
                    // retries underneath; the stream stays open. Log each new kind once.
                    let text = error.to_string();
                    if last_error.as_deref() != Some(text.as_str()) {
                        tracing::warn!(stream = %shared.stream, %error, "Kafka error; retrying underneath");
                        last_error = Some(text);
                    }
                }
            }
            polled += 1;
            // Take what is already fetched without waiting, up to a bound.
            next = if polled < 256 { consumer.poll(Duration::ZERO) } else { None };
        }
    }
    tracing::info!(stream = %shared.stream, "stream ending: draining acks and committing");
    if !shared.drain_and_commit(&consumer, None) {
        tracing::warn!(stream = %shared.stream, "final commit failed: un-committed acked messages will be delivered again");
    }
    consumer.unsubscribe();
    drop(consumer);
    if let Some(dead_letter) = &shared.dead_letter {
        dead_letter.tasks.close();
        let _ = dead_letter.runtime.block_on(tokio::time::timeout(Duration::from_secs(10), dead_letter.tasks.wait()));
    }
    tracing::info!(stream = %shared.stream, "stream closed");
}
