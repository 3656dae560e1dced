//! Graceful drain and upgrade: what espace-ps does with SIGTERM and SIGQUIT
//! instead of Pingora's defaults.
//!
//! Pingora closes its listeners as soon as its shutdown signal watch
//! answers; espace-ps answers it itself ([`DrainSignal`], given to
//! `Server::run` as `RunArgs::shutdown_signal`):
//!
//! - SIGTERM: `/-/readyz` answers 503 at once ([`draining`]) while new
//!   connections are still accepted for `server.drain_delay_secs` (the
//!   gateway's time to notice); then Pingora stops accepting, and requests
//!   in flight have up to `server.grace_period_secs` to finish. The process
//!   exits as soon as none is left ([`exit_when_idle`]) rather than
//!   sleeping out the whole grace period, as Pingora would.
//! - SIGQUIT: Pingora's graceful upgrade: the listening sockets go to the
//!   new process (started with `serve --upgrade`) over
//!   `server.upgrade_sock`, then the same drain of requests in flight.
//! - SIGINT: a fast shutdown (development).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ExecutionPhase, ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

static DRAINING: AtomicBool = AtomicBool::new(false);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// True once SIGTERM was received: `/-/readyz` answers 503.
pub fn draining() -> bool {
    DRAINING.load(Ordering::Relaxed)
}

/// Requests of the proxy service being answered now.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// One request in flight, counted while it lives (held by the request's
/// context, so that a request ended any way is uncounted).
pub struct InFlight(());

impl InFlight {
    #[allow(clippy::new_without_default)]
    pub fn new() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// espace-ps's shutdown signal watch (see the module's documentation).
pub struct DrainSignal {
    pub drain_delay: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for DrainSignal {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut quit), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::quit()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("signal handlers could not be installed: stopping now");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = quit.recv() => {
                tracing::info!("SIGQUIT: graceful upgrade, handing the listening sockets over");
                ShutdownSignal::GracefulUpgrade
            }
            _ = int.recv() => ShutdownSignal::FastShutdown,
            _ = term.recv() => {
                DRAINING.store(true, Ordering::Relaxed);
                tracing::info!(
                    drain_delay_secs = self.drain_delay.as_secs(),
                    in_flight = in_flight(),
                    "SIGTERM: draining; /-/readyz answers 503, new connections still accepted until the drain delay ends"
                );
                tokio::select! {
                    _ = tokio::time::sleep(self.drain_delay) => {}
                    _ = int.recv() => return ShutdownSignal::FastShutdown,
                }
                tracing::info!(
                    in_flight = in_flight(),
                    "drain delay over: no new connections; requests in flight finish"
                );
                ShutdownSignal::GracefulTerminate
            }
        }
    }
}

/// Watches the server's phases: once Pingora has stopped accepting and
/// waits out its grace period, exits the process as soon as no request is
/// in flight (checked twice, `settle` apart, so that a connection accepted
/// just before the listeners closed gets its request counted first).
pub fn exit_when_idle(
    mut phases: tokio::sync::broadcast::Receiver<ExecutionPhase>,
    settle: Duration,
) {
    let watcher = std::thread::Builder::new()
        .name("espace-drain".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(rt) => rt,
                Err(_) => return,
            };
            rt.block_on(async move {
                loop {
                    match phases.recv().await {
                        Ok(ExecutionPhase::ShutdownGracePeriod) => break,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
                loop {
                    if in_flight() == 0 {
                        tokio::time::sleep(settle).await;
                        if in_flight() == 0 {
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tracing::info!("drained: no request in flight, exiting");
                std::process::exit(0);
            });
        });
    if let Err(e) = watcher {
        tracing::warn!(error = %e, "no drain watcher: the whole grace period is waited out");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_while_they_live() {
        // No other unit test makes a request context.
        assert_eq!(in_flight(), 0);
        let a = InFlight::new();
        let b = InFlight::new();
        assert_eq!(in_flight(), 2);
        drop(a);
        assert_eq!(in_flight(), 1);
        drop(b);
        assert_eq!(in_flight(), 0);
    }
}
