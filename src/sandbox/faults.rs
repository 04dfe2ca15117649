//! [`Fault`]: the misbehaviours a sandbox can be scripted with, and the script itself.

use std::{collections::VecDeque, time::Duration};

use http::StatusCode;

/// A scripted misbehaviour for the next calls.
///
/// ```
/// use std::time::Duration;
/// use tower_sovendus::{SovReqToken, SovendusClient, SovendusError, sandbox::{Fault, Sandbox}};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sandbox = Sandbox::start().await?;
/// let client = SovendusClient::new(&sandbox.config().request_timeout(Duration::from_millis(100)).build()?);
/// let token: SovReqToken = Sandbox::TEST_TOKEN.parse()?;
/// sandbox.fault_next(1, Fault::Delay(Duration::from_secs(1)));
/// assert!(matches!(client.send(&token).await, Err(SovendusError::Timeout)));
/// sandbox.fault_next(1, Fault::Refuse);
/// assert!(matches!(client.send(&token).await, Err(SovendusError::Connection(_))));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer this status with the real API's body for it.
    Status(StatusCode),
    /// Answer 429 with `Retry-After` in whole seconds (rounded up).
    RateLimited(Duration),
    /// Wait this long, then answer normally. A client that hangs up meanwhile gets nothing,
    /// and nothing is booked: the call stays without a status.
    Delay(Duration),
    /// Close the connection without answering.
    Refuse,
    /// Process the call, send this status and half its body, then reset the connection. A
    /// 200 cut off this way is booked.
    CutOff(StatusCode),
}

/// The scripted faults, then the periodic ones.
#[derive(Default)]
pub(super) struct Faults {
    pub(super) next: VecDeque<Fault>,
    /// Every `period`-th call gets the next of `cycle`, in turn.
    pub(super) period: usize,
    pub(super) cycle: Vec<Fault>,
    pub(super) calls: usize,
}

impl Faults {
    pub(super) fn for_next_call(&mut self) -> Option<Fault> {
        self.calls += 1;
        if let Some(fault) = self.next.pop_front() {
            return Some(fault);
        }
        if self.period == 0 || self.cycle.is_empty() || self.calls % self.period != 0 {
            return None;
        }
        let turn = (self.calls / self.period - 1) % self.cycle.len();
        Some(self.cycle[turn].clone())
    }
}
