//! The revocation stream as a JetStream stream with a maximum age: the server
//! drops events older than that, and readers resume by stream sequence.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream::{
    Config as StreamConfig, DiscardPolicy, RetentionPolicy, StorageType, Stream as JsStream,
};
use async_nats::jetstream::Context;
use async_nats::Client;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{watch, OnceCell};

use super::consumer::{
    after_sequence, bounded, ordered, reconnect_marker, unavailable, until_reconnect,
};
use crate::directory::{RevocationEvent, RevocationStream};
use crate::error::Result;
use crate::resume::{resuming, Backoff, Opener, Subscription};

/// What the revocation stream handle needs from its directory.
pub(super) struct StreamSettings {
    pub client: Client,
    pub jetstream: Context,
    /// The JetStream stream name.
    pub name: String,
    /// The one subject events are published on.
    pub subject: String,
    pub max_age: Duration,
    pub replicas: usize,
    pub timeout: Duration,
    pub backoff: Backoff,
    /// The connection's reconnect count (see [`until_reconnect`]).
    pub reconnects: watch::Receiver<u64>,
}

/// Handle on the revocation stream, created on first use.
#[derive(Clone)]
pub(super) struct NatsRevocations {
    inner: Arc<Inner>,
}

struct Inner {
    settings: StreamSettings,
    stream: OnceCell<JsStream>,
}

impl NatsRevocations {
    pub(super) fn new(settings: StreamSettings) -> Self {
        NatsRevocations {
            inner: Arc::new(Inner {
                settings,
                stream: OnceCell::new(),
            }),
        }
    }

    /// The stream, looked up or created on first success. Its maximum age is
    /// set at creation; change it on the server to change it later.
    async fn stream(&self) -> Result<&JsStream> {
        self.inner
            .stream
            .get_or_try_init(|| async {
                let settings = &self.inner.settings;
                let config = StreamConfig {
                    name: settings.name.clone(),
                    description: Some("keyfed revocation events".to_owned()),
                    subjects: vec![settings.subject.clone()],
                    max_age: settings.max_age,
                    retention: RetentionPolicy::Limits,
                    discard: DiscardPolicy::Old,
                    storage: StorageType::File,
                    num_replicas: settings.replicas,
                    ..StreamConfig::default()
                };
                settings
                    .jetstream
                    .get_or_create_stream(config)
                    .await
                    .map_err(|e| unavailable("opening the revocation stream", e))
            })
            .await
    }

    pub(super) async fn publish(&self, payload: Bytes) -> Result<u64> {
        let settings = &self.inner.settings;
        bounded(settings.timeout, "publishing a revocation", async {
            self.stream().await?;
            let ack = async {
                settings
                    .jetstream
                    .publish(settings.subject.clone(), payload)
                    .await?
                    .await
            };
            ack.await
                .map(|ack| ack.sequence)
                .map_err(|e| unavailable("publishing a revocation", e))
        })
        .await
    }

    pub(super) async fn events_from(&self, after: u64) -> Result<RevocationStream> {
        let handle = self.clone();
        let open: Opener<RevocationEvent> = Arc::new(move |after| {
            let handle = handle.clone();
            Box::pin(async move { handle.subscribe(after).await })
        });
        let backoff = self.inner.settings.backoff;
        resuming("revocation stream", after, backoff, open).await
    }

    async fn subscribe(&self, after: u64) -> Result<Subscription<RevocationEvent>> {
        let settings = &self.inner.settings;
        let marker = reconnect_marker(&settings.reconnects);
        let (messages, _) = bounded(settings.timeout, "reading revocations", async {
            let stream = self.stream().await?;
            ordered(
                &settings.client,
                stream,
                settings.subject.clone(),
                after_sequence(after),
            )
            .await
        })
        .await?;
        let events = messages.map(|message| {
            let message = message.map_err(|e| unavailable("reading revocations", e))?;
            let info = message
                .info()
                .map_err(|e| unavailable("reading message metadata", e))?;
            Ok(RevocationEvent {
                sequence: info.stream_sequence,
                payload: message.payload.clone(),
            })
        });
        Ok(until_reconnect(events, marker).boxed())
    }
}
