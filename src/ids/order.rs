//! [`OrderRef`]: the shop's reference of an order, kept with its conversion.

use std::{fmt, str::FromStr};

/// The shop's reference of an order, kept with its conversion so that the shop can find the
/// token again (Sovendus asks for it on a cancellation): 1 to 128 characters, none a control
/// character.
///
/// ```
/// use tower_sovendus::OrderRef;
///
/// let order: OrderRef = "A-10427".parse()?;
/// assert_eq!(order.as_str(), "A-10427");
/// assert!("".parse::<OrderRef>().is_err());
/// assert!("a\nb".parse::<OrderRef>().is_err());
/// # Ok::<(), tower_sovendus::InvalidOrderRef>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderRef(Box<str>);

/// The most characters of an [`OrderRef`].
const MAX_ORDER_CHARS: usize = 128;

impl OrderRef {
    /// Checks `value` as an order reference.
    pub fn new(value: impl AsRef<str>) -> Result<Self, InvalidOrderRef> {
        let value = value.as_ref();
        let count = value.chars().count();
        if count == 0 || count > MAX_ORDER_CHARS {
            return Err(InvalidOrderRef::Length(count));
        }
        if value.chars().any(char::is_control) {
            return Err(InvalidOrderRef::ControlCharacter);
        }
        Ok(Self(value.into()))
    }

    /// The reference.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for OrderRef {
    type Err = InvalidOrderRef;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::new(value)
    }
}

impl fmt::Display for OrderRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

super::serde_as_str!(OrderRef);

/// Why a value is not a valid [`OrderRef`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidOrderRef {
    /// Empty, or longer than 128 characters.
    #[error("an order reference must be 1 to 128 characters long, not {0}")]
    Length(usize),
    /// It holds a control character.
    #[error("an order reference must not hold control characters")]
    ControlCharacter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_references_are_checked() {
        assert_eq!(OrderRef::new("x".repeat(129)), Err(InvalidOrderRef::Length(129)));
        assert_eq!(OrderRef::new("é".repeat(128)).unwrap().as_str().chars().count(), 128);
        assert_eq!(OrderRef::new("a\u{7}"), Err(InvalidOrderRef::ControlCharacter));
    }
}
