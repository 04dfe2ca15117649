//! A delivery's end: [`Delivery::shutdown`], and the refusals once it began.

use std::time::Duration;

use super::{Delivery, DeliveryReport};
use crate::error::SovendusError;

impl Delivery {
    /// Stops the workers: no more claims, the deliveries under way may end until `deadline`;
    /// then those waiting between two calls are cut off, and what they were sending stays owed
    /// in the store, due at once for the next instance to start. A call under way is never cut:
    /// Sovendus may have booked it. It ends within the request timeout and is recorded, so the
    /// shutdown takes at most `deadline` plus the request timeout (and the store's timeout for
    /// the last settlements). Call it after the server has stopped taking requests:
    /// [`send_in_background`](crate::SovendusConversion::send_in_background) answers
    /// [`SovendusError::ShuttingDown`] from now on. A 200 whose settlement waits for the store
    /// is waited for until `deadline` too; the report lists any still unrecorded then
    /// ([`DeliveryReport::unrecorded`]). Calling it again reports again.
    pub async fn shutdown(&self, deadline: Duration) -> DeliveryReport {
        let until = tokio::time::Instant::now() + deadline;
        let left = self.inner.workers.stop(deadline).await;
        // 200s whose settlement waits for the store: recorded by then, or reported.
        while !self.inner.sender.unrecorded().is_empty() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let unrecorded = self.inner.sender.unrecorded();
        let report = self.inner.workers.report(left, unrecorded);
        tracing::info!(
            sent = report.sent,
            failed = report.failed,
            dropped = report.dropped,
            left = report.left.len(),
            unrecorded = report.unrecorded.len(),
            "Sovendus delivery stopped"
        );
        for pending in &report.unrecorded {
            tracing::error!(token = %pending.token(), product = %pending.product_id(),
                "Sovendus accepted this conversion, and the store could not record it before the shutdown: \
                 the store still holds it owed, and the next delivery sends it again (Sovendus then books it twice)");
        }
        report
    }

    /// [`SovendusError::ShuttingDown`] once the shutdown began: the token stays with the visitor.
    pub(super) fn refuse_if_stopping(&self) -> Result<(), SovendusError> {
        if !self.inner.workers.stop.is_cancelled() {
            return Ok(());
        }
        self.inner.workers.count_dropped("shutting_down");
        tracing::warn!("Sovendus delivery is shutting down; the token stays with the visitor");
        Err(SovendusError::ShuttingDown)
    }
}
