//! The signals that stop a shop gracefully.

/// Listens for SIGTERM (systemd, Docker, Kubernetes) and Ctrl-C from now on; the future
/// resolves on the first. Call it before the shop listens, so that a stop sent as soon as it
/// accepts connections is graceful too.
pub fn stop() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let signals = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
        async move {
            match signals {
                (Ok(mut terminate), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = terminate.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(%error, "SIGTERM cannot be caught; only Ctrl-C stops gracefully");
                    tokio::signal::ctrl_c().await.unwrap_or(());
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        tokio::signal::ctrl_c().await.unwrap_or(());
    }
}
