//! [`Conversion`]: a call the sandbox received, and the record of the latest ones.

use std::{collections::VecDeque, fmt, time::SystemTime};

use bytes::Bytes;
use http::{Method, StatusCode};

/// One call the sandbox received.
///
/// ```
/// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sandbox = Sandbox::start().await?;
/// SovendusClient::new(&sandbox.config().build()?).send(&Sandbox::TEST_TOKEN.parse()?).await?;
/// let call = &sandbox.conversions()[0];
/// assert_eq!(call.token(), Some(Sandbox::TEST_TOKEN));
/// // Debug leaves out the body, which holds the API key.
/// assert!(!format!("{call:?}").contains(Sandbox::API_KEY));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Conversion {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) content_type: Option<String>,
    pub(super) body: Bytes,
    pub(super) status: Option<StatusCode>,
    pub(super) received_at: SystemTime,
    pub(super) finished: bool,
}

impl Conversion {
    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request path, e.g. `/ext/{product}/{token}/api`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `Content-Type` header, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The raw request body (it holds the API key).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The product ID and token from the path, if it had the API's shape.
    pub fn product_and_token(&self) -> Option<(&str, &str)> {
        parse_path(&self.path)
    }

    /// The token from the path, if it had the API's shape.
    pub fn token(&self) -> Option<&str> {
        self.product_and_token().map(|(_, token)| token)
    }

    /// The status answered, or `None` if the call was refused, or its client hung up before
    /// the answer (or it is still being answered).
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// When the call arrived.
    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }
}

impl fmt::Debug for Conversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conversion")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("status", &self.status)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

/// The calls received: the latest `kept` in full, and how many came before them.
pub(super) struct Recorded {
    pub(super) latest: VecDeque<Conversion>,
    kept: usize,
    /// Calls let go to keep the record within `kept`.
    forgotten: usize,
    /// Calls finished, whether still kept or not.
    pub(super) finished: usize,
}

impl Recorded {
    pub(super) fn new(kept: usize) -> Self {
        Self { latest: VecDeque::new(), kept, forgotten: 0, finished: 0 }
    }

    /// Records a call and returns its number (counting every call received).
    pub(super) fn push(&mut self, conversion: Conversion) -> usize {
        if self.latest.len() == self.kept {
            self.latest.pop_front();
            self.forgotten += 1;
        }
        self.latest.push_back(conversion);
        self.received() - 1
    }

    /// How many calls were received, including those let go.
    pub(super) fn received(&self) -> usize {
        self.forgotten + self.latest.len()
    }

    /// Call `number`, unless it has been let go.
    pub(super) fn get_mut(&mut self, number: usize) -> Option<&mut Conversion> {
        let index = number.checked_sub(self.forgotten)?;
        self.latest.get_mut(index)
    }
}

/// The product ID and token of an `/ext/{product}/{token}/api` path.
pub(super) fn parse_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/ext/")?.strip_suffix("/api")?;
    let (product, token) = rest.split_once('/')?;
    (!product.is_empty() && !token.is_empty() && !token.contains('/')).then_some((product, token))
}
