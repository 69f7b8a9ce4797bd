//! Background tasks owned by a value, and the back-off between retries.

use std::time::Duration;

use tokio::task::{AbortHandle, JoinHandle};

/// Aborts the tasks it holds when dropped, so a follower never outlives the
/// view or index it feeds.
#[derive(Debug, Default)]
pub(crate) struct TaskGuard {
    tasks: Vec<AbortHandle>,
}

impl TaskGuard {
    /// Takes ownership of a spawned task.
    pub(crate) fn push<T>(&mut self, task: JoinHandle<T>) {
        self.tasks.push(task.abort_handle());
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Exponential back-off: 50 ms doubling up to 5 s.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    const INITIAL: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(5);

    /// The delay before the next attempt; each call doubles the next one.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let factor = 1u32 << self.failures.min(10);
        self.failures = self.failures.saturating_add(1);
        Self::INITIAL.saturating_mul(factor).min(Self::MAX)
    }

    /// Starts again from the shortest delay after a success.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        assert_eq!(b.next_delay(), Duration::from_millis(50));
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        for _ in 0..20 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), Duration::from_secs(5));
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(50));
    }

    #[tokio::test]
    async fn dropping_the_guard_aborts_its_tasks() {
        let mut guard = TaskGuard::default();
        let task = tokio::spawn(futures::future::pending::<()>());
        let abort = task.abort_handle();
        guard.push(task);
        drop(guard);
        tokio::task::yield_now().await;
        for _ in 0..100 {
            if abort.is_finished() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("task still running");
    }
}
