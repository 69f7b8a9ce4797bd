//! JetStream plumbing shared by buckets and the revocation stream: the call
//! timeout, error mapping, and ordered push consumers (server-side cursors
//! that deliver a stream's messages in sequence order).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::consumer::push::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::{DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::stream::Stream as JsStream;
use async_nats::Client;
use futures::{Stream, StreamExt};
use tokio::sync::watch;

use crate::error::{DirectoryError, Result};

/// Runs one directory call, failing with `Unavailable` if it takes longer than
/// `timeout`. Every NATS call goes through here, so a dead server never hangs
/// a caller.
pub(super) async fn bounded<T>(
    timeout: Duration,
    what: &str,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(DirectoryError::Unavailable(format!(
            "{what}: no answer from NATS within {timeout:?}"
        ))),
    }
}

/// An `Unavailable` error naming the failed step.
pub(super) fn unavailable(what: &str, error: impl Display) -> DirectoryError {
    DirectoryError::Unavailable(format!("{what}: {error}"))
}

/// A receiver of the connection's reconnect count, with the current count
/// marked as seen. Take it before creating a consumer, and pass it to
/// [`until_reconnect`].
pub(super) fn reconnect_marker(reconnects: &watch::Receiver<u64>) -> watch::Receiver<u64> {
    let mut marker = reconnects.clone();
    marker.borrow_and_update();
    marker
}

/// Ends `stream` when the client reconnects after `marker` was taken, so
/// the resuming layer re-subscribes at once with a fresh consumer instead of
/// waiting for the old consumer's own, slower, recovery.
pub(super) fn until_reconnect<S>(
    stream: S,
    mut marker: watch::Receiver<u64>,
) -> impl Stream<Item = S::Item> + Send + 'static
where
    S: Stream + Send + 'static,
{
    stream.take_until(async move {
        if marker.changed().await.is_err() {
            // The connection is gone for good: keep the stream as it is.
            std::future::pending::<()>().await;
        }
    })
}

/// An ordered consumer on `stream` over the subjects matching `filter`, and
/// the number of messages it had pending when created.
pub(super) async fn ordered(
    client: &Client,
    stream: &JsStream,
    filter: String,
    deliver_policy: DeliverPolicy,
) -> Result<(Ordered, u64)> {
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: filter,
            deliver_policy,
            replay_policy: ReplayPolicy::Instant,
            ..OrderedConfig::default()
        })
        .await
        .map_err(|e| unavailable("creating a consumer", e))?;
    let pending = consumer.cached_info().num_pending;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| unavailable("subscribing to a consumer", e))?;
    Ok((messages, pending))
}

/// The policy delivering the messages with a sequence greater than `after`.
pub(super) fn after_sequence(after: u64) -> DeliverPolicy {
    DeliverPolicy::ByStartSequence {
        start_sequence: after.saturating_add(1),
    }
}

/// The last sequence of `stream`, fetched from the server.
pub(super) async fn last_sequence(stream: &JsStream) -> Result<u64> {
    stream
        .get_info()
        .await
        .map(|info| info.state.last_sequence)
        .map_err(|e| unavailable("reading stream state", e))
}
