//! [`Staff`]: who is looking at the console, and whether they may act, as the shop's own auth
//! says.

use axum::extract::FromRequestParts;
use http::request::Parts;

use super::refusal::Refusal;

/// Who is using the console, and what they may do: put into the request's extensions by the
/// shop's own auth, in front of the console. The console answers 403 to a request without one,
/// so a console mounted without auth shows nothing.
///
/// ```
/// use tower_sovendus::console::Staff;
///
/// let reader = Staff::read_only("finance@shop.example");
/// assert!(!reader.can_act());
/// assert_eq!(Staff::admin("ops").actor(), "ops");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    actor: String,
    can_act: bool,
}

impl Staff {
    /// `actor` may look, never act: every POST is refused.
    pub fn read_only(actor: impl Into<String>) -> Self {
        Self { actor: actor.into(), can_act: false }
    }

    /// `actor` may look and act: retry, revive and void conversions.
    pub fn admin(actor: impl Into<String>) -> Self {
        Self { actor: actor.into(), can_act: true }
    }

    /// Who it is, as the shop named them: every action is logged with it.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Whether they may act.
    pub fn can_act(&self) -> bool {
        self.can_act
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Staff {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Staff>().cloned().ok_or(Refusal::NoStaff)
    }
}
