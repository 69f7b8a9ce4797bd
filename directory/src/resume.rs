//! Resuming streams: a watch or a revocation feed that survives the end or
//! failure of its underlying subscription by opening a new one after the
//! last item it delivered.
//!
//! Both backends use it: the NATS backend when a consumer fails (server
//! restart, missed heartbeats, lost connection), the embedded backend when a
//! slow watcher falls behind its broadcast channel. Items are deduplicated by
//! sequence, so an overlapping re-subscription never delivers twice.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::directory::RevocationEvent;
use crate::error::Result;
use crate::kv::Change;

/// An item with a position in a totally ordered sequence.
pub(crate) trait Sequenced {
    /// The item's position: a bucket revision or a stream sequence.
    fn sequence(&self) -> u64;
}

impl Sequenced for Change {
    fn sequence(&self) -> u64 {
        self.revision
    }
}

impl Sequenced for RevocationEvent {
    fn sequence(&self) -> u64 {
        self.sequence
    }
}

/// One subscription: items in sequence order, ending or failing when the
/// subscription is lost.
pub(crate) type Subscription<T> = BoxStream<'static, Result<T>>;

/// A future opening a subscription.
pub(crate) type Opening<T> = Pin<Box<dyn Future<Output = Result<Subscription<T>>> + Send>>;

/// Opens a subscription delivering the items after the given sequence.
pub(crate) type Opener<T> = Arc<dyn Fn(u64) -> Opening<T> + Send + Sync>;

/// Delay between attempts to re-open a subscription.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Backoff {
    fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.min(16)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

struct State<T> {
    open: Opener<T>,
    what: &'static str,
    backoff: Backoff,
    last: u64,
    current: Option<Subscription<T>>,
    failures: u32,
}

/// Opens a subscription after `after` now (its failure is returned), and
/// returns a stream that re-opens it after the last delivered item whenever
/// it ends or fails, waiting with `backoff` between attempts. The stream
/// itself never ends.
pub(crate) async fn resuming<T>(
    what: &'static str,
    after: u64,
    backoff: Backoff,
    open: Opener<T>,
) -> Result<Pin<Box<dyn Stream<Item = T> + Send>>>
where
    T: Sequenced + Send + 'static,
{
    let first = open(after).await?;
    let state = State {
        open,
        what,
        backoff,
        last: after,
        current: Some(first),
        failures: 0,
    };
    Ok(Box::pin(futures::stream::unfold(state, next_item)))
}

async fn next_item<T>(mut state: State<T>) -> Option<(T, State<T>)>
where
    T: Sequenced + Send + 'static,
{
    loop {
        let Some(current) = state.current.as_mut() else {
            match (state.open)(state.last).await {
                Ok(subscription) => {
                    tracing::info!(
                        what = state.what,
                        after = state.last,
                        "subscription resumed"
                    );
                    state.current = Some(subscription);
                }
                Err(error) => {
                    let delay = state.backoff.delay(state.failures);
                    state.failures = state.failures.saturating_add(1);
                    tracing::debug!(what = state.what, %error, ?delay, "re-subscribing failed");
                    tokio::time::sleep(delay).await;
                }
            }
            continue;
        };
        match current.next().await {
            Some(Ok(item)) => {
                if item.sequence() <= state.last {
                    continue;
                }
                state.last = item.sequence();
                state.failures = 0;
                return Some((item, state));
            }
            Some(Err(error)) => {
                tracing::warn!(what = state.what, %error, after = state.last, "subscription failed, resuming");
            }
            None => {
                tracing::debug!(
                    what = state.what,
                    after = state.last,
                    "subscription ended, resuming"
                );
            }
        }
        state.current = None;
        let delay = state.backoff.delay(state.failures);
        state.failures = state.failures.saturating_add(1);
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;

    use super::*;
    use crate::error::DirectoryError;

    fn event(sequence: u64) -> RevocationEvent {
        RevocationEvent {
            sequence,
            payload: Bytes::new(),
        }
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let backoff = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
        };
        assert_eq!(backoff.delay(0), Duration::from_millis(10));
        assert_eq!(backoff.delay(2), Duration::from_millis(40));
        assert_eq!(backoff.delay(40), Duration::from_millis(100));
    }

    /// Each subscription re-delivers the last item seen, delivers one or two
    /// new ones, then fails or ends; every second open attempt fails.
    #[tokio::test(start_paused = true)]
    async fn resumes_after_the_last_item_without_duplicates() {
        let opens = Arc::new(AtomicUsize::new(0));
        let counter = opens.clone();
        let open: Opener<RevocationEvent> = Arc::new(move |after| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n % 2 == 1 {
                    return Err(DirectoryError::Unavailable("down".into()));
                }
                let items = vec![
                    Ok(event(after)),
                    Ok(event(after + 1)),
                    if matches!(n % 4, 0) {
                        Err(DirectoryError::Unavailable("lost".into()))
                    } else {
                        Ok(event(after + 2))
                    },
                ];
                let subscription: Subscription<RevocationEvent> =
                    Box::pin(futures::stream::iter(items));
                Ok(subscription)
            })
        });
        let backoff = Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(50),
        };
        let stream = resuming("test", 0, backoff, open).await.unwrap();
        let got: Vec<u64> = stream.take(8).map(|e| e.sequence).collect().await;
        assert_eq!(got, (1..=8).collect::<Vec<_>>());
        assert!(opens.load(Ordering::SeqCst) > 2);
    }

    #[tokio::test]
    async fn the_first_open_failure_is_returned() {
        let open: Opener<Change> =
            Arc::new(|_| Box::pin(async { Err(DirectoryError::Unavailable("down".into())) }));
        let backoff = Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(1),
        };
        let result = resuming("test", 0, backoff, open).await;
        assert!(matches!(result, Err(DirectoryError::Unavailable(_))));
    }
}
