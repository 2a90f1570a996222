//! The subscribe path: PullMessages streams with at-least-once delivery.
//!
//! Each PullMessages stream is one Kafka group member subscribed to one topic, with its own
//! consumer thread ([`worker`]), its ack tracker per partition ([`crate::offsets`]) and its
//! flow control ([`state`]). daprd's first request names the topic; later requests carry acks
//! (`ack_message_id`, with `ack_error` for a failure). The bridge commits only offsets whose
//! messages daprd acked, so a crash, a cancelled stream or a rebalance redelivers what was not
//! acked and loses nothing.
//!
//! A stream never ends because of a recoverable Kafka error (daprd would not re-open it);
//! only an unrecoverable one (authorisation, fatal client error) ends it with a status.

pub(crate) mod dead_letter;
pub(crate) mod message;
pub(crate) mod state;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use dapr_kafka_proto::components::{PullMessagesRequest, PullMessagesResponse, Topic};
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::sync::mpsc as async_mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Status, Streaming};

use self::dead_letter::DeadLetter;
use self::state::StreamState;
use self::worker::{Shared, StreamContext};
use crate::config::ComponentConfig;
use crate::error::{Error, Result};
use crate::producer::Publisher;
use crate::telemetry::metrics::StreamLabels;

pub use self::dead_letter::{ERROR_HEADER, OFFSET_HEADER, PARTITION_HEADER, TOPIC_HEADER};

/// What reaches a stream's consumer thread.
#[derive(Debug)]
pub(crate) enum Event {
    /// daprd acked a message.
    Ack(String),
    /// daprd reported that the app failed a message.
    Nack { id: String, error: String },
    /// A dead-letter publish finished.
    DeadLettered { partition: i32, offset: i64, epoch: u64, outcome: Result<(), String> },
    /// daprd closed its side of the stream: no more acks will come.
    InboundClosed,
}

/// The response stream handed to tonic.
pub type MessageStream = ReceiverStream<Result<PullMessagesResponse, Status>>;

/// The streams of one component instance, and its Pause/Resume switch.
pub struct Subscriptions {
    paused: Arc<AtomicBool>,
    cancel: CancellationToken,
    threads: Mutex<Vec<JoinHandle<()>>>,
    readers: TaskTracker,
}

impl Subscriptions {
    /// No streams yet; `cancel` ends them all when cancelled.
    pub fn new(cancel: CancellationToken) -> Self {
        Self { paused: Arc::default(), cancel, threads: Mutex::default(), readers: TaskTracker::new() }
    }

    /// daprd's Pause: deliver nothing new on any stream; membership and acks go on.
    pub fn pause(&self) {
        self.paused.store(true, Ordering::Release);
    }

    /// daprd's Resume.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::Release);
    }

    /// Opens a stream for `topic` with daprd's request stream `inbound`.
    pub fn open(
        &self,
        instance: &str,
        config: &ComponentConfig,
        bootstrap: &str,
        publisher: &Arc<Publisher>,
        topic: Topic,
        mut inbound: Streaming<PullMessagesRequest>,
    ) -> Result<MessageStream> {
        if topic.name.is_empty() {
            return Err(Error::InvalidRequest("the first PullMessagesRequest must name a topic".into()));
        }
        let group = config.consumer_group.as_deref().ok_or_else(|| Error::InvalidMetadata {
            key: "consumerGroup".into(),
            reason: "(or consumerID) is required to subscribe".into(),
        })?;
        let settings = config.subscriber.clone();
        let stream_name = format!("{}/{}", crate::instances::display_name(instance), topic.name);
        let (events_tx, events_rx) = mpsc::channel();
        let (outbound, responses) = async_mpsc::channel(settings.max_in_flight_per_stream + 1);
        let runtime = tokio::runtime::Handle::current();
        let dead_letter = settings.dead_letter_topic.clone().map(|dlq| DeadLetter {
            topic: dlq,
            publisher: publisher.clone(),
            runtime: runtime.clone(),
            tasks: TaskTracker::new(),
            events: events_tx.clone(),
        });
        let shared = Arc::new(Shared {
            topic: topic.name.clone(),
            labels: StreamLabels {
                instance: crate::instances::display_name(instance).to_owned(),
                topic: topic.name.clone(),
            },
            stream: stream_name.clone(),
            state: Mutex::new(StreamState::new(settings.clone())),
            events: Mutex::new(events_rx),
            paused: self.paused.clone(),
            inbound_closed: AtomicBool::new(false),
            revoke_ack_timeout: settings.revoke_ack_timeout,
            commit_interval: settings.commit_interval,
            escape_headers: settings.escape_headers,
            dead_letter,
            outbound,
            librdkafka_paused: Mutex::default(),
            unsaved: Mutex::default(),
        });
        let mut client_config = config.consumer_config(bootstrap, group);
        client_config.set("enable.partition.eof", "false");
        let consumer = BaseConsumer::from_config_and_context(&client_config, StreamContext { shared: shared.clone() })
            .map_err(|e| Error::kafka("creating the consumer", e))?;
        consumer.subscribe(&[&topic.name]).map_err(|e| Error::kafka(format!("subscribing to `{}`", topic.name), e))?;
        tracing::info!(stream = %stream_name, group, "stream opened");

        let cancel = self.cancel.child_token();
        let thread_cancel = cancel.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pull-{}", topic.name))
            .spawn(move || {
                worker::run(consumer, shared, thread_cancel.clone());
                // The reader stops when the worker does.
                thread_cancel.cancel();
            })
            .map_err(|e| Error::io("starting the stream thread", e))?;
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        threads.retain(|t| !t.is_finished());
        threads.push(thread);

        self.readers.spawn(async move {
            loop {
                let request = tokio::select! {
                    request = inbound.message() => request,
                    () = cancel.cancelled() => break,
                };
                let event = match request {
                    Ok(Some(request)) if request.ack_message_id.is_empty() => continue,
                    Ok(Some(request)) => match request.ack_error {
                        Some(error) => Event::Nack { id: request.ack_message_id, error: error.message },
                        None => Event::Ack(request.ack_message_id),
                    },
                    Ok(None) | Err(_) => Event::InboundClosed,
                };
                let closed = matches!(event, Event::InboundClosed);
                if events_tx.send(event).is_err() || closed {
                    break;
                }
            }
        });
        Ok(ReceiverStream::new(responses))
    }

    /// Ends every stream (each commits its acked prefix) and waits for them.
    pub async fn close(&self) {
        self.cancel.cancel();
        let threads: Vec<_> = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in threads {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        self.readers.close();
        self.readers.wait().await;
    }
}
