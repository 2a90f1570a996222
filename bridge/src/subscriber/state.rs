//! What one PullMessages stream knows, without any I/O: assigned partitions with their ack
//! trackers, messages in flight, messages fetched but held back, retries and flow control.
//! The worker thread feeds it Kafka messages and daprd's acks; it answers with messages to
//! deliver, offsets safe to commit and partitions to pause. Kept pure so it is unit-tested
//! with a clock in hand.
//!
//! ```text
//!   Kafka poll ──► held (per partition, FIFO) ──room?──► in flight ──ack──► released
//!                                                          │  ▲             (tracker)
//!                                                     nack │  │ redeliver at backoff
//!                                                          ▼  │
//!                                   retries left? ─no─► dead-letter topic ─ok─► acked
//!                                                       (or redeliver forever without one)
//! ```
//!
//! Flow control has two stages. Delivery: at most `maxInFlightPerStream` messages (and
//! `maxInFlightPerPartition` per partition) are delivered and un-acked; nothing is delivered
//! while daprd asked to Pause. Prefetch: what Kafka returns beyond that waits in `held`, so
//! the next message goes out the moment an ack makes room (no fetch round trip); once a
//! partition holds as many messages as its in-flight bound (at least [`MIN_PREFETCH`]), or
//! the stream as many as the stream's bound (at least [`MIN_PREFETCH`]), the partition is
//! paused in librdkafka. Paused partitions are still polled (the group membership stays
//! alive); librdkafka just fetches nothing for them. Memory is bounded by the in-flight
//! bounds plus the prefetch bounds, whatever daprd does.
//!
//! Two things stop a partition from delivering while it stays assigned, each reported once
//! through [`StreamState::block_changes`] so the worker logs and meters it:
//! - **the uncommitted cap**: the ack tracker keeps every delivered offset from the oldest
//!   un-acked one on. A poison message that is never acked (no dead-letter topic) would make
//!   that window, and what a restart redelivers, grow without end; at
//!   `maxUncommittedPerPartition` the partition delivers nothing new until it moves;
//! - **an oversized record**: a response above `maxDeliveryBytes` would kill daprd's stream
//!   (and again after every restart). It goes to the dead-letter topic if there is one;
//!   otherwise it holds its partition, never skipped.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use dapr_kafka_proto::EncodedPullResponse;
use tokio::time::Instant;

use super::message::{Fetched, MessageId};
use crate::config::{OnNack, SubscriberSettings};
use crate::offsets::{Ack, PartitionOffsets};

/// The smallest prefetch per partition and per stream: even with one message in flight,
/// the next ones wait in memory, so an ack releases the next message without a fetch.
pub(crate) const MIN_PREFETCH: usize = 64;

/// What to do after a nack.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AfterNack {
    /// Redeliver at this time.
    Redeliver { at: Instant, retry: u32 },
    /// Retries are used up: publish to the dead-letter topic.
    DeadLetter(Box<Fetched>),
    /// Retries are used up and there is no dead-letter topic: redeliver anyway, later.
    RedeliverExhausted { at: Instant, retry: u32 },
    /// `consumeRetryEnabled: false` and no dead-letter topic: the message counts as handled.
    Dropped,
    /// Unknown, stale or repeated id: nothing to do.
    Ignored,
}

/// Why a partition delivers nothing new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Block {
    /// `maxUncommittedPerPartition` delivered messages wait behind the un-acked `offset`.
    UncommittedCap { offset: i64, held: usize },
    /// The record at `offset` is larger than daprd can receive, and there is no dead-letter topic.
    Oversized { offset: i64, bytes: usize },
}

/// What the worker should send now.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    /// Responses for daprd.
    pub(crate) messages: Vec<EncodedPullResponse>,
    /// Records to dead-letter without delivering them (too large for daprd), with the reason.
    pub(crate) dead_letters: Vec<(Fetched, u64, String)>,
}

#[derive(Debug)]
enum Next {
    AwaitingAck,
    RedeliverAt(Instant),
    DeadLettering,
}

#[derive(Debug)]
struct InFlight {
    message: Box<Fetched>,
    attempt: u32,
    next: Next,
}

#[derive(Debug)]
struct Partition {
    epoch: u64,
    offsets: PartitionOffsets,
    in_flight: HashMap<i64, InFlight>,
    held: VecDeque<Box<Fetched>>,
    /// Whether librdkafka was asked to stop fetching it.
    fetch_paused: bool,
    /// Why it delivers nothing new, if it does not; `reported` once logged.
    block: Option<Block>,
    reported: Option<Block>,
}

impl Partition {
    fn new(epoch: u64, offsets: PartitionOffsets) -> Self {
        Self {
            epoch,
            offsets,
            in_flight: HashMap::new(),
            held: VecDeque::new(),
            fetch_paused: false,
            block: None,
            reported: None,
        }
    }
}

/// The epoch of each partition this stream owns now, readable outside the worker: the
/// response stream drops a message queued for daprd before its partition was revoked (the
/// new owner delivers it; handing it to daprd as well would only make a duplicate).
#[derive(Debug, Default)]
pub(crate) struct LiveEpochs(std::sync::RwLock<HashMap<i32, u64>>);

impl LiveEpochs {
    /// Whether a delivery with this id still belongs to a current assignment.
    pub(crate) fn is_live(&self, id: &str) -> bool {
        MessageId::parse(id)
            .is_some_and(|id| self.0.read().unwrap_or_else(|e| e.into_inner()).get(&id.partition) == Some(&id.epoch))
    }

    fn set(&self, partition: i32, epoch: Option<u64>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        match epoch {
            Some(epoch) => map.insert(partition, epoch),
            None => map.remove(&partition),
        };
    }
}

/// The state of one stream.
#[derive(Debug)]
pub(crate) struct StreamState {
    settings: SubscriberSettings,
    partitions: BTreeMap<i32, Partition>,
    next_epoch: u64,
    in_flight: usize,
    held: usize,
    live: std::sync::Arc<LiveEpochs>,
    /// Rotates the partition served first.
    next_first: usize,
    /// The partitions in the order of the delivery pass under way (a buffer kept for reuse).
    order: Vec<i32>,
    /// Redeliveries by due time: `(at, partition, offset)`. An entry is acted on only if the
    /// message still waits for exactly that redelivery (acked, revoked or rescheduled ones
    /// are skipped when they come up), so nothing else has to keep it in step, and finding
    /// what is due costs nothing per in-flight message.
    schedule: BTreeSet<(Instant, i32, i64)>,
    /// Acked records, for the stream thread to free: it allocated them, and an allocator
    /// frees a thread's own memory faster than another thread's (mimalloc hands a foreign
    /// free back to the owning thread). Acks are applied on the runtime thread that also
    /// sends every response to daprd, a drain's busiest thread; this keeps the frees off it.
    released: Released,
}

/// Acked records on their way back to the thread that allocated them. The boxes are the
/// point: each is one of the allocations to free there.
#[allow(clippy::vec_box)]
pub(crate) type Released = Vec<Box<Fetched>>;

impl StreamState {
    pub(crate) fn new(settings: SubscriberSettings) -> Self {
        Self {
            settings,
            partitions: BTreeMap::new(),
            next_epoch: 1,
            in_flight: 0,
            held: 0,
            live: std::sync::Arc::default(),
            next_first: 0,
            order: Vec::new(),
            schedule: BTreeSet::new(),
            released: Vec::new(),
        }
    }

    /// The current epochs, shared with the response stream.
    pub(crate) fn live_epochs(&self) -> std::sync::Arc<LiveEpochs> {
        self.live.clone()
    }

    /// A partition was assigned to this stream: it starts a new epoch.
    pub(crate) fn assign(&mut self, partition: i32) {
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        self.live.set(partition, Some(epoch));
        if let Some(old) = self.partitions.insert(partition, Partition::new(epoch, PartitionOffsets::default())) {
            self.in_flight -= old.in_flight.len();
            self.held -= old.held.len();
        }
    }

    /// A partition was assigned and starts at `position`, which daprd acked up to but which
    /// is not committed yet: the next commit writes it.
    pub(crate) fn assign_at(&mut self, partition: i32, position: i64) {
        self.assign(partition);
        if let Some(state) = self.partitions.get_mut(&partition) {
            state.offsets = PartitionOffsets::starting_at(position);
        }
    }

    /// Partitions were taken away: forget their messages (un-acked ones are delivered again
    /// by whoever owns the partition next, from the committed offset).
    pub(crate) fn revoke(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.live.set(*p, None);
            if let Some(old) = self.partitions.remove(p) {
                self.in_flight -= old.in_flight.len();
                self.held -= old.held.len();
            }
        }
    }

    /// Assigned partitions.
    pub(crate) fn assigned(&self) -> Vec<i32> {
        self.partitions.keys().copied().collect()
    }

    /// A message came from Kafka; it waits in `held` until there is room to deliver it.
    ///
    /// One of a partition the stream does not own is dropped (returns false): it was fetched
    /// for an assignment that has ended, and the partition's owner reads it from the committed
    /// offset. Taking it would start an assignment that Kafka never made, whose acks could
    /// commit past messages this stream never delivered.
    pub(crate) fn fetched(&mut self, message: Box<Fetched>) -> bool {
        let Some(partition) = self.partitions.get_mut(&message.partition) else { return false };
        partition.held.push_back(message);
        self.held += 1;
        true
    }

    /// Messages to send now: due redeliveries, then held messages while there is room.
    pub(crate) fn deliverable(&mut self, now: Instant, paused: bool) -> Deliveries {
        let mut out = Deliveries::default();
        if paused {
            return out;
        }
        let max_bytes = self.settings.max_delivery_bytes;
        while let Some(&(at, partition, offset)) = self.schedule.first() {
            if at > now {
                break;
            }
            self.schedule.pop_first();
            let Some(state) = self.partitions.get_mut(&partition) else { continue };
            let Some(entry) = state.in_flight.get_mut(&offset) else { continue };
            if matches!(entry.next, Next::RedeliverAt(due) if due == at) {
                if entry.message.size > max_bytes {
                    // Its dead-letter publish failed: try that again; daprd never gets it.
                    entry.next = Next::DeadLettering;
                    let reason = oversized(entry.message.size, max_bytes);
                    out.dead_letters.push(((*entry.message).clone(), state.epoch, reason));
                    continue;
                }
                entry.attempt += 1;
                entry.next = Next::AwaitingAck;
                let id = MessageId { partition, offset, epoch: state.epoch, attempt: entry.attempt };
                out.messages.push(entry.message.response(id.to_id()));
            }
        }
        // Round-robin over partitions so one busy partition does not starve the others; the
        // first partition served changes each time, or with one message in flight the lowest
        // partition would always win. (The order's buffer is kept: this runs for every ack.)
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        order.extend(self.partitions.keys().copied());
        if !order.is_empty() {
            let start = self.next_first % order.len();
            order.rotate_left(start);
        }
        self.next_first = self.next_first.wrapping_add(1);
        let out = self.deliver_in_order(&order, out);
        self.order = order;
        out
    }

    /// Held messages while there is room, taking partitions in `order` round after round.
    fn deliver_in_order(&mut self, order: &[i32], mut out: Deliveries) -> Deliveries {
        let (stream_limit, partition_limit, cap, max_bytes, has_dead_letter) = (
            self.settings.max_in_flight_per_stream,
            self.settings.max_in_flight_per_partition,
            self.settings.max_uncommitted_per_partition,
            self.settings.max_delivery_bytes,
            self.settings.dead_letter_topic.is_some(),
        );
        loop {
            let mut delivered_any = false;
            for &partition in order {
                let Some(state) = self.partitions.get_mut(&partition) else { continue };
                if self.in_flight >= stream_limit {
                    return out;
                }
                state.block = None;
                if state.in_flight.len() >= partition_limit {
                    continue;
                }
                if state.offsets.uncommitted_len() >= cap {
                    let offset = state.offsets.first_unacked().unwrap_or_default();
                    state.block = Some(Block::UncommittedCap { offset, held: state.offsets.uncommitted_len() });
                    continue;
                }
                let Some(front) = state.held.front() else { continue };
                if front.size > max_bytes && !has_dead_letter {
                    state.block = Some(Block::Oversized { offset: front.offset, bytes: front.size });
                    continue;
                }
                let message = state.held.pop_front().expect("front exists");
                self.held -= 1;
                let late = state.offsets.newest().is_some_and(|newest| message.offset < newest);
                if !state.offsets.delivered(message.offset) {
                    continue; // a repeat of something delivered (or acked) before
                }
                if late {
                    // Never expected (librdkafka hands a partition's records over in order);
                    // delivered and tracked all the same, so no commit passes it.
                    tracing::warn!(
                        partition,
                        offset = message.offset,
                        "a record arrived after later ones of its partition"
                    );
                }
                if message.size > max_bytes {
                    let reason = oversized(message.size, max_bytes);
                    out.dead_letters.push(((*message).clone(), state.epoch, reason));
                    state.in_flight.insert(message.offset, InFlight { message, attempt: 1, next: Next::DeadLettering });
                    self.in_flight += 1;
                    delivered_any = true;
                    continue;
                }
                let id = MessageId { partition, offset: message.offset, epoch: state.epoch, attempt: 1 };
                out.messages.push(message.response(id.to_id()));
                state.in_flight.insert(message.offset, InFlight { message, attempt: 1, next: Next::AwaitingAck });
                self.in_flight += 1;
                delivered_any = true;
            }
            if !delivered_any {
                return out;
            }
        }
    }

    /// Partitions whose block started or ended since the last call: `(partition, Some(why))`
    /// when it started, `(partition, None)` when it ended.
    pub(crate) fn block_changes(&mut self) -> Vec<(i32, Option<Block>)> {
        let mut changes = Vec::new();
        for (&p, state) in &mut self.partitions {
            let kind = |b: &Option<Block>| b.map(|b| std::mem::discriminant(&b));
            if kind(&state.block) != kind(&state.reported) {
                changes.push((p, state.block));
                state.reported = state.block;
            }
        }
        changes
    }

    /// Partitions delivering nothing new, and why.
    pub(crate) fn blocked(&self) -> impl Iterator<Item = (i32, Block)> + '_ {
        self.partitions.iter().filter_map(|(p, s)| s.block.map(|b| (*p, b)))
    }

    fn entry(&mut self, id: &MessageId) -> Option<&mut InFlight> {
        let partition = self.partitions.get_mut(&id.partition).filter(|p| p.epoch == id.epoch)?;
        partition.in_flight.get_mut(&id.offset).filter(|e| e.attempt == id.attempt)
    }

    /// daprd acked a message.
    pub(crate) fn ack(&mut self, id: &MessageId) -> Ack {
        if self.entry(id).is_none() {
            return Ack::Unknown;
        }
        self.release(id.partition, id.offset)
    }

    fn release(&mut self, partition: i32, offset: i64) -> Ack {
        let Some(state) = self.partitions.get_mut(&partition) else { return Ack::Unknown };
        if let Some(entry) = state.in_flight.remove(&offset) {
            self.in_flight -= 1;
            self.released.push(entry.message);
        }
        state.offsets.ack(offset)
    }

    /// Swaps the acked records out, into `spare` (empty), for the stream thread to free. The
    /// two buffers trade places, so neither side allocates one per call.
    pub(crate) fn take_released(&mut self, spare: &mut Released) {
        debug_assert!(spare.is_empty());
        std::mem::swap(&mut self.released, spare);
    }

    /// daprd nacked a message (the app failed it after daprd's own retries).
    pub(crate) fn nack(&mut self, id: &MessageId, now: Instant) -> AfterNack {
        let settings = self.settings.clone();
        let Some(entry) = self.entry(id) else { return AfterNack::Ignored };
        if !matches!(entry.next, Next::AwaitingAck) {
            return AfterNack::Ignored;
        }
        let retry = entry.attempt; // retries done so far = attempt - 1; this would be retry #attempt
        let exhausted = settings.on_nack == OnNack::GiveUp || settings.max_retries.is_some_and(|max| retry > max);
        if exhausted && settings.dead_letter_topic.is_some() {
            entry.next = Next::DeadLettering;
            return AfterNack::DeadLetter(entry.message.clone());
        }
        if settings.on_nack == OnNack::GiveUp {
            let (partition, offset) = (id.partition, id.offset);
            self.release(partition, offset);
            return AfterNack::Dropped;
        }
        let at = now + backoff(&settings, retry);
        entry.next = Next::RedeliverAt(at);
        self.schedule.insert((at, id.partition, id.offset));
        if exhausted { AfterNack::RedeliverExhausted { at, retry } } else { AfterNack::Redeliver { at, retry } }
    }

    /// The dead-letter publish of a message finished.
    pub(crate) fn dead_lettered(
        &mut self,
        partition: i32,
        offset: i64,
        epoch: u64,
        outcome: Result<(), ()>,
        now: Instant,
    ) {
        if self.epoch(partition) != Some(epoch) {
            return;
        }
        match outcome {
            Ok(()) => {
                self.release(partition, offset);
            }
            Err(()) => {
                // Try the whole cycle again later: redeliver, and dead-letter on the next nack
                // (a record too large for daprd is dead-lettered again, never delivered).
                let retry_at = now + self.settings.max_retry_backoff;
                if let Some(entry) = self.partitions.get_mut(&partition).and_then(|p| p.in_flight.get_mut(&offset)) {
                    entry.next = Next::RedeliverAt(retry_at);
                    self.schedule.insert((retry_at, partition, offset));
                }
            }
        }
    }

    /// The epoch of a partition (for dead-letter completions).
    pub(crate) fn epoch(&self, partition: i32) -> Option<u64> {
        self.partitions.get(&partition).map(|p| p.epoch)
    }

    /// When the next redelivery is due, if any.
    /// (Possibly one that no longer applies: waking for it once is harmless.)
    pub(crate) fn next_redelivery(&self) -> Option<Instant> {
        self.schedule.first().map(|&(at, _, _)| at)
    }

    /// Positions safe to commit that moved since the last commit, for `partitions` (all if
    /// `None`).
    pub(crate) fn uncommitted(&self, partitions: Option<&[i32]>) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .filter(|(p, _)| partitions.is_none_or(|only| only.contains(p)))
            .filter_map(|(p, state)| state.offsets.uncommitted().map(|pos| (*p, pos)))
            .collect()
    }

    /// Records a successful commit.
    pub(crate) fn committed(&mut self, positions: &[(i32, i64)]) {
        for (p, pos) in positions {
            if let Some(state) = self.partitions.get_mut(p) {
                state.offsets.committed(*pos);
            }
        }
    }

    /// Messages whose outcome can still come, in `partitions` (all if `None`): those daprd
    /// holds (an ack or nack) and those being dead-lettered (Kafka's answer). A message
    /// waiting for its redelivery is not counted: nothing answers for it until it is sent
    /// again, which a draining stream does not do.
    pub(crate) fn unacked(&self, partitions: Option<&[i32]>) -> usize {
        self.partitions
            .iter()
            .filter(|(p, _)| partitions.is_none_or(|only| only.contains(p)))
            .map(|(_, s)| s.in_flight.values().filter(|e| !matches!(e.next, Next::RedeliverAt(_))).count())
            .sum()
    }

    /// Whether librdkafka should stop fetching for `partition`: its prefetch is full.
    /// A paused partition resumes only once its prefetch is down to half (hysteresis), so a
    /// steady consumer does not toggle pause/resume (and librdkafka's fetch) per message.
    pub(crate) fn wants_pause(&self, partition: i32, paused_now: bool) -> bool {
        let Some(state) = self.partitions.get(&partition) else { return false };
        let stream_limit = self.settings.max_in_flight_per_stream.max(MIN_PREFETCH);
        let partition_limit = self.settings.max_in_flight_per_partition.max(MIN_PREFETCH);
        if paused_now {
            self.held > stream_limit / 2 || state.held.len() > partition_limit / 2
        } else {
            self.held >= stream_limit || state.held.len() >= partition_limit
        }
    }

    /// How many more messages of `partition` to take out of librdkafka's partition queue now:
    /// what is left of its share of the prefetch (none while it is blocked). Messages left in
    /// librdkafka stay there (bounded by `queued.max.messages.kbytes`), with no pause.
    pub(crate) fn room(&self, partition: i32) -> usize {
        let Some(state) = self.partitions.get(&partition) else { return 0 };
        if state.block.is_some() {
            return 0;
        }
        let stream_limit = self.settings.max_in_flight_per_stream.max(MIN_PREFETCH);
        let partition_limit = self.settings.max_in_flight_per_partition.max(MIN_PREFETCH);
        let share = (stream_limit / self.partitions.len().max(1)).clamp(8, partition_limit);
        (share - 1).saturating_sub(state.held.len()).min((stream_limit - 1).saturating_sub(self.held))
    }

    /// Partitions to pause and to resume in librdkafka so fetching matches the prefetch;
    /// the state records them as done.
    pub(crate) fn fetch_changes(&mut self) -> (Vec<i32>, Vec<i32>) {
        let (mut pause, mut resume) = (Vec::new(), Vec::new());
        let wanted: Vec<(i32, bool, bool)> = self
            .partitions
            .iter()
            .map(|(&p, s)| (p, s.fetch_paused, self.wants_pause(p, s.fetch_paused)))
            .filter(|(_, now, want)| now != want)
            .collect();
        for (p, _, want) in wanted {
            if let Some(state) = self.partitions.get_mut(&p) {
                state.fetch_paused = want;
            }
            if want { pause.push(p) } else { resume.push(p) }
        }
        (pause, resume)
    }

    /// Partitions librdkafka was asked to stop fetching.
    pub(crate) fn fetch_paused(&self) -> usize {
        self.partitions.values().filter(|s| s.fetch_paused).count()
    }

    /// Messages delivered and not acked, and messages held, in the whole stream.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.in_flight, self.held)
    }

    /// Delivered-and-un-acked plus held messages: what the stream holds in memory.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> (usize, usize) {
        self.counts()
    }
}

/// Exponential backoff: `retryBackoff * 2^(retry-1)`, at most `maxRetryBackoff`.
fn backoff(settings: &SubscriberSettings, retry: u32) -> Duration {
    let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(20));
    settings.retry_backoff.saturating_mul(factor).min(settings.max_retry_backoff)
}

/// Why a record goes to the dead-letter topic instead of daprd.
fn oversized(size: usize, max_bytes: usize) -> String {
    format!("record of {size} bytes exceeds maxDeliveryBytes {max_bytes} (daprd's gRPC receive limit); not delivered")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap as Map;

    use super::*;
    use crate::config::ComponentConfig;
    use crate::subscriber::message::Record;

    fn settings(pairs: &[(&str, &str)]) -> SubscriberSettings {
        let map: Map<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ComponentConfig::parse(&map).unwrap().subscriber
    }

    fn record(partition: i32, offset: i64, value: &[u8]) -> Record<'_> {
        Record { topic: "t", partition, offset, key: None, headers: vec![], timestamp: None, value }
    }

    fn fetched(partition: i32, offset: i64) -> Box<Fetched> {
        let value = format!("{partition}/{offset}");
        Box::new(Fetched::new(record(partition, offset, value.as_bytes()), false))
    }

    fn ids(responses: &[EncodedPullResponse]) -> Vec<MessageId> {
        responses.iter().map(|r| MessageId::parse(r.id()).unwrap()).collect()
    }

    #[test]
    fn in_flight_bounds_hold_and_acks_make_room() {
        let mut s = StreamState::new(settings(&[("maxInFlightPerStream", "4"), ("maxInFlightPerPartition", "3")]));
        s.assign(0);
        s.assign(1);
        for o in 0..5 {
            s.fetched(fetched(0, o));
        }
        s.fetched(fetched(1, 0));
        let now = Instant::now();
        let first = ids(&s.deliverable(now, false).messages);
        assert_eq!(first.len(), 4, "stream bound");
        assert_eq!(first.iter().filter(|i| i.partition == 0).count(), 3, "partition bound");
        assert!(!s.wants_pause(0, false), "2 held: the prefetch has room");
        // Partition 0's share of the 64-message prefetch is 32: 31 held at most, 2 held now.
        assert_eq!(s.room(0), 29);
        assert_eq!(s.room(7), 0, "not assigned");
        for o in 5..5 + MIN_PREFETCH as i64 - 2 {
            s.fetched(fetched(0, o));
        }
        assert!(s.wants_pause(0, false), "a full prefetch: partition 0 stops fetching");
        assert!(s.wants_pause(1, false), "the stream's prefetch is full too");
        assert!(s.wants_pause(0, true), "stays paused until the prefetch is down to half");
        assert!(s.deliverable(now, false).messages.is_empty());
        assert_eq!(s.ack(&first[0]), Ack::Acked);
        let next = ids(&s.deliverable(now, false).messages);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].partition, 0);
        assert_eq!(s.buffered(), (4, MIN_PREFETCH - 1));
    }

    #[test]
    fn pause_delivers_nothing_but_accepts_acks() {
        let mut s = StreamState::new(settings(&[]));
        s.assign(0);
        s.fetched(fetched(0, 0));
        s.fetched(fetched(0, 1));
        let now = Instant::now();
        let delivered = ids(&s.deliverable(now, false).messages);
        s.fetched(fetched(0, 2));
        assert!(s.deliverable(now, true).messages.is_empty());
        assert_eq!(s.ack(&delivered[0]), Ack::Acked);
        assert_eq!(s.uncommitted(None), vec![(0, 1)]);
        assert_eq!(s.deliverable(now, false).messages.len(), 1, "resume continues");
    }

    #[test]
    fn nack_retries_with_backoff_then_dead_letters() {
        let mut s =
            StreamState::new(settings(&[("maxRetries", "2"), ("retryBackoff", "100ms"), ("deadLetterTopic", "dlq")]));
        s.assign(0);
        s.fetched(fetched(0, 7));
        let t0 = Instant::now();
        let mut id = ids(&s.deliverable(t0, false).messages)[0];
        assert_eq!(s.nack(&id, t0), AfterNack::Redeliver { at: t0 + Duration::from_millis(100), retry: 1 });
        assert!(s.deliverable(t0 + Duration::from_millis(99), false).messages.is_empty(), "not before the backoff");
        assert_eq!(s.unacked(None), 0, "a drain does not wait for a message waiting for its redelivery");
        assert_eq!(s.next_redelivery(), Some(t0 + Duration::from_millis(100)));
        let t1 = t0 + Duration::from_millis(100);
        id = ids(&s.deliverable(t1, false).messages)[0];
        assert_eq!(id.attempt, 2);
        assert_eq!(s.unacked(Some(&[0])), 1, "daprd holds it again");
        assert_eq!(s.nack(&id, t1), AfterNack::Redeliver { at: t1 + Duration::from_millis(200), retry: 2 });
        let t2 = t1 + Duration::from_millis(200);
        id = ids(&s.deliverable(t2, false).messages)[0];
        assert_eq!(s.uncommitted(None), vec![], "a message in retry holds the commit position");
        match s.nack(&id, t2) {
            AfterNack::DeadLetter(message) => assert_eq!(message.offset, 7),
            other => panic!("expected dead-letter, got {other:?}"),
        }
        assert_eq!(s.nack(&id, t2), AfterNack::Ignored, "no double dead-lettering");
        let epoch = s.epoch(0).unwrap();
        s.dead_lettered(0, 7, epoch, Ok(()), t2);
        assert_eq!(s.uncommitted(None), vec![(0, 8)], "dead-lettered counts as handled");
    }

    #[test]
    fn an_oversized_record_whose_dead_letter_failed_is_dead_lettered_again_never_delivered() {
        let mut s = StreamState::new(settings(&[
            ("maxDeliveryBytes", "1024"),
            ("deadLetterTopic", "dlq"),
            ("maxRetryBackoff", "1s"),
        ]));
        s.assign(0);
        s.fetched(Box::new(Fetched::new(record(0, 4, &[7; 2048]), false)));
        let t0 = Instant::now();
        let first = s.deliverable(t0, false);
        assert!(first.messages.is_empty());
        assert_eq!(first.dead_letters.len(), 1);
        let epoch = s.epoch(0).unwrap();
        // The dead-letter producer refused it (e.g. its message.max.bytes is lower).
        s.dead_lettered(0, 4, epoch, Err(()), t0);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(s.next_redelivery(), Some(t1));
        let again = s.deliverable(t1, false);
        assert!(again.messages.is_empty(), "daprd never gets a record above maxDeliveryBytes");
        let (message, e, reason) = &again.dead_letters[0];
        assert_eq!((message.offset, *e), (4, epoch));
        assert!(reason.contains("maxDeliveryBytes 1024"), "{reason}");
        assert_eq!(s.uncommitted(None), vec![], "it holds the commit position meanwhile");
        s.dead_lettered(0, 4, epoch, Ok(()), t1);
        assert_eq!(s.uncommitted(None), vec![(0, 5)]);
    }

    #[test]
    fn a_redelivery_carries_the_first_deliverys_metadata_and_stale_schedules_are_skipped() {
        let mut s = StreamState::new(settings(&[("retryBackoff", "100ms")]));
        s.assign(0);
        let record = Record { key: Some(b"k"), headers: vec![("h".into(), b"v".to_vec())], ..record(0, 3, b"3") };
        s.fetched(Box::new(Fetched::new(record, false)));
        let t0 = Instant::now();
        let first = s.deliverable(t0, false).messages.remove(0).to_message().unwrap();
        assert_eq!(first.metadata.get("__key").map(String::as_str), Some("k"));
        assert_eq!(first.metadata.get("h").map(String::as_str), Some("v"));
        let id = MessageId::parse(&first.id).unwrap();
        assert!(matches!(s.nack(&id, t0), AfterNack::Redeliver { .. }));
        let due = t0 + Duration::from_millis(100);
        let again = s.deliverable(due, false).messages.remove(0).to_message().unwrap();
        assert_eq!(again.metadata, first.metadata, "built again, the same");
        assert_eq!((again.data.clone(), MessageId::parse(&again.id).unwrap().attempt), (first.data.clone(), 2));
        assert_eq!(s.next_redelivery(), None);

        // Nacked, then the partition goes and comes back: the old schedule entry is stale.
        let id = MessageId::parse(&again.id).unwrap();
        assert!(matches!(s.nack(&id, due), AfterNack::Redeliver { .. }));
        let stale = s.next_redelivery().expect("scheduled");
        s.revoke(&[0]);
        s.assign(0);
        s.fetched(fetched(0, 3));
        assert_eq!(ids(&s.deliverable(due, false).messages)[0].attempt, 1, "the new owner's first delivery");
        assert!(s.deliverable(stale, false).messages.is_empty(), "the stale entry redelivers nothing");
        assert_eq!(s.next_redelivery(), None, "and is gone");
    }

    #[test]
    fn without_dead_letter_topic_poison_is_redelivered_forever_never_skipped() {
        let mut s =
            StreamState::new(settings(&[("maxRetries", "0"), ("retryBackoff", "1s"), ("maxRetryBackoff", "4s")]));
        s.assign(0);
        s.fetched(fetched(0, 0));
        let mut now = Instant::now();
        for attempt in 1..6 {
            let id = ids(&s.deliverable(now, false).messages)[0];
            assert_eq!(id.attempt, attempt);
            match s.nack(&id, now) {
                AfterNack::RedeliverExhausted { at, .. } => now = at,
                other => panic!("{other:?}"),
            }
            assert!(s.uncommitted(None).is_empty());
        }
    }

    #[test]
    fn a_record_fetched_after_later_ones_is_delivered_and_holds_the_commit() {
        let mut s = StreamState::new(settings(&[]));
        s.assign(0);
        s.fetched(fetched(0, 12));
        s.fetched(fetched(0, 13));
        let now = Instant::now();
        let first = ids(&s.deliverable(now, false).messages);
        s.fetched(fetched(0, 5));
        let late = ids(&s.deliverable(now, false).messages);
        assert_eq!(late.iter().map(|i| i.offset).collect::<Vec<_>>(), vec![5], "delivered, not dropped as a repeat");
        for id in &first {
            assert_eq!(s.ack(id), Ack::Acked);
        }
        assert!(s.uncommitted(None).iter().all(|(_, position)| *position <= 5), "no commit past the late record");
        assert_eq!(s.ack(&late[0]), Ack::Acked);
        assert_eq!(s.uncommitted(None), vec![(0, 14)]);
    }

    #[test]
    fn a_message_of_a_partition_not_assigned_is_dropped() {
        let mut s = StreamState::new(settings(&[]));
        assert!(!s.fetched(fetched(3, 12)), "fetched before any assignment");
        s.assign(0);
        s.revoke(&[0]);
        assert!(!s.fetched(fetched(0, 12)), "fetched for an assignment that ended");
        assert!(s.assigned().is_empty(), "no assignment Kafka did not make");
        assert!(s.deliverable(Instant::now(), false).messages.is_empty());
        assert_eq!(s.counts(), (0, 0));
        s.assign(0);
        assert!(s.fetched(fetched(0, 5)));
        assert_eq!(s.deliverable(Instant::now(), false).messages.len(), 1);
    }

    #[test]
    fn stale_unknown_and_repeated_acks_are_ignored() {
        let mut s = StreamState::new(settings(&[]));
        s.assign(0);
        s.fetched(fetched(0, 0));
        let now = Instant::now();
        let id = ids(&s.deliverable(now, false).messages)[0];
        // A rebalance gives the partition back: the old id belongs to an old epoch.
        s.revoke(&[0]);
        s.assign(0);
        assert_eq!(s.ack(&id), Ack::Unknown);
        assert!(s.uncommitted(None).is_empty());
        s.fetched(fetched(0, 0));
        let fresh = ids(&s.deliverable(now, false).messages)[0];
        assert_ne!(fresh.epoch, id.epoch);
        assert_eq!(s.ack(&MessageId { attempt: 9, ..fresh }), Ack::Unknown, "wrong attempt");
        assert_eq!(s.ack(&fresh), Ack::Acked);
        assert_eq!(s.ack(&fresh), Ack::Unknown, "repeated");
        assert_eq!(s.uncommitted(None), vec![(0, 1)]);
        assert_eq!(s.buffered(), (0, 0));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = settings(&[("retryBackoff", "1s"), ("maxRetryBackoff", "5s")]);
        let secs: Vec<u64> = (1..6).map(|r| backoff(&s, r).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 5, 5]);
    }
}
