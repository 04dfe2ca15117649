//! What Sovendus' answer to a delivery makes of its conversion.

use crate::error::SovendusError;

/// Where a failed delivery leaves its conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Sovendus failed or did not answer: still owed, retried on the schedule.
    Owed,
    /// Sovendus refused the shop's configuration, for this cause: parked, retried on the
    /// schedule and at every start.
    Parked(&'static str),
    /// Sovendus does not know the token, or refused the call's parameters: dead.
    Dead(&'static str),
}

impl Verdict {
    /// The verdict on a delivery that ended in `error`.
    pub(crate) fn of(error: &SovendusError) -> Self {
        match error {
            SovendusError::InvalidApiKey => Self::Parked("invalid_api_key"),
            SovendusError::WrongUrl { .. } => Self::Parked("wrong_url"),
            SovendusError::InvalidProductOrToken { message } => Self::of_422(message),
            // An answer the API is not known to give: the configuration points somewhere wrong.
            SovendusError::UnexpectedStatus { .. } => Self::Parked("unexpected_status"),
            _ => Self::Owed,
        }
    }

    /// A 422 by its message: Sovendus' own words tell a wrong product from a dead token.
    fn of_422(message: &str) -> Self {
        let message = message.to_ascii_lowercase();
        if message.contains("external product id not found") {
            Self::Parked("unknown_product")
        } else if message.contains("token not found") {
            Self::Dead("unknown_token")
        } else if message.contains("invalid api parameters") {
            Self::Dead("invalid_parameters")
        } else {
            // Not one of the documented messages: kept, not lost, until someone looks.
            Self::Parked("unexpected_422")
        }
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    fn verdict(status: u16, body: &str) -> Verdict {
        Verdict::of(&SovendusError::from_response(StatusCode::from_u16(status).unwrap(), body.as_bytes()))
    }

    #[test]
    fn answers_decide_the_state() {
        assert_eq!(verdict(403, "This API call is unauthorized."), Verdict::Parked("invalid_api_key"));
        assert_eq!(verdict(404, "Invalid API call."), Verdict::Parked("wrong_url"));
        assert_eq!(verdict(405, "Invalid API call."), Verdict::Parked("wrong_url"));
        assert_eq!(
            verdict(422, r#"{"message":"External product id not found."}"#),
            Verdict::Parked("unknown_product")
        );
        assert_eq!(verdict(422, r#"{"message":"Token not found."}"#), Verdict::Dead("unknown_token"));
        assert_eq!(verdict(422, "Invalid API parameters."), Verdict::Dead("invalid_parameters"));
        assert_eq!(verdict(422, "Something new."), Verdict::Parked("unexpected_422"));
        assert_eq!(verdict(418, ""), Verdict::Parked("unexpected_status"));
        for status in [500, 502, 503, 429] {
            assert_eq!(verdict(status, ""), Verdict::Owed, "{status}");
        }
        assert_eq!(Verdict::of(&SovendusError::Timeout), Verdict::Owed);
    }
}
