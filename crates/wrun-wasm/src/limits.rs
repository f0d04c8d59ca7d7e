//! Resource limits on a store: linear memory, wall-clock time, fuel.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wrun_core::Limits;

use crate::Error;

/// Caps the total linear memory of every instance in a store.
///
/// Growth past the cap is refused, which the guest sees as `memory.grow`
/// returning -1 (and `malloc` returning NULL): a recoverable failure, not a
/// trap. The total counts every memory, because a component has several.
/// [`refused`](Self::refused) remembers a refusal, so an embedder can tell
/// a trap that follows one (a guest that gave up for want of memory) from
/// any other trap.
///
/// Install it with `Store::limiter`; `wrun run` and `wrun-plugin` both do.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: Option<u64>,
    used: usize,
    refused: bool,
}

impl MemoryLimiter {
    /// A limiter allowing `limit` bytes in total; `None` only enforces each
    /// memory's declared maximum.
    pub fn new(limit: Option<u64>) -> MemoryLimiter {
        MemoryLimiter {
            limit,
            used: 0,
            refused: false,
        }
    }

    /// The limit it enforces, in bytes.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Whether it has refused a growth.
    pub fn refused(&self) -> bool {
        self.refused
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = self
            .limit
            .map(|limit| usize::try_from(limit).unwrap_or(usize::MAX));
        let grown = self.used.saturating_add(desired.saturating_sub(current));
        if maximum.is_some_and(|max| desired > max) || limit.is_some_and(|limit| grown > limit) {
            self.refused = true;
            return Ok(false);
        }
        self.used = grown;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}

/// Store data that carries a [`MemoryLimiter`].
pub(crate) trait Limited: 'static {
    fn limiter(&mut self) -> &mut MemoryLimiter;
}

/// Applies `limits` to `store`: the memory limiter, fuel (when the engine
/// meters it), and an epoch deadline that interrupts the guest once
/// `limits.timeout` has passed.
pub(crate) fn apply<T: Limited>(store: &mut Store<T>, limits: &Limits) -> wasmtime::Result<()> {
    store.limiter(|data| data.limiter());
    if let Some(fuel) = limits.fuel {
        store.set_fuel(fuel)?;
    }
    // The engine's epoch is shared by every store of the engine, so a tick
    // may come from another run's timer: each store checks its own deadline
    // and carries on until that has passed.
    let deadline = limits.timeout.map(|after| Instant::now() + after);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| match deadline {
        Some(deadline) if Instant::now() >= deadline => Ok(UpdateDeadline::Interrupt),
        _ => Ok(UpdateDeadline::Continue(1)),
    });
    Ok(())
}

/// Ticks the engine's epoch once `after` has passed, then every 10 ms, until
/// dropped. Dropping it wakes and joins the thread at once.
pub(crate) struct Timer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Timer {
    /// Starts a timer for `timeout`; `None` starts nothing.
    pub(crate) fn start(engine: &Engine, timeout: Option<Duration>) -> Result<Timer, Error> {
        let Some(after) = timeout else {
            return Ok(Timer {
                stop: None,
                thread: None,
            });
        };
        let (stop, stopped) = mpsc::channel::<()>();
        let engine = engine.clone();
        let thread = std::thread::Builder::new()
            .name("wrun-wasm-timeout".into())
            .spawn(move || {
                let mut wait = after;
                // Ends when the sender is dropped (Disconnected).
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                    engine.increment_epoch();
                    wait = Duration::from_millis(10);
                }
            })
            .map_err(|source| Error::Timer { source })?;
        Ok(Timer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_counts_every_memory() {
        let mut limiter = MemoryLimiter::new(Some(100));
        assert!(limiter.memory_growing(0, 60, None).expect("grow"));
        assert!(!limiter.memory_growing(0, 50, None).expect("grow"));
        assert!(limiter.memory_growing(0, 40, None).expect("grow"));
        assert!(!limiter.memory_growing(60, 61, None).expect("grow"));
        assert!(limiter.refused());
    }

    #[test]
    fn no_limit_still_respects_the_declared_maximum() {
        let mut limiter = MemoryLimiter::new(None);
        assert!(limiter.memory_growing(0, 1 << 40, None).expect("grow"));
        assert!(!limiter.refused());
        assert!(!limiter.memory_growing(0, 10, Some(5)).expect("grow"));
        assert!(limiter.refused());
    }
}
