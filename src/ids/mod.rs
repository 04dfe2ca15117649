//! The identifiers every other module trades in, each checked when it is made: the visitor's
//! [`SovReqToken`], the [`ProductId`] it is booked for, and the shop's [`OrderRef`].

mod order;
mod product;
mod token;

pub(crate) use self::token::is_unreserved;
pub use self::{
    order::{InvalidOrderRef, OrderRef},
    product::{InvalidProductId, ProductId},
    token::{InvalidToken, SovReqToken},
};

/// Serialises an identifier as its string and deserialises it through its checks, so a store
/// never reads back a value the type would refuse.
macro_rules! serde_as_str {
    ($identifier:ty) => {
        impl serde::Serialize for $identifier {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $identifier {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::new(value).map_err(serde::de::Error::custom)
            }
        }
    };
}
use serde_as_str;
