//! What the layer asks of the session store: nothing on the hot path, and a failing store
//! never fails the shop's page.

use crate::common;

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use async_trait::async_trait;
use common::TestShop;
use tower_sessions::{
    MemoryStore, SessionStore,
    session::{Id, Record},
    session_store,
};
use tower_sovendus::sandbox::Sandbox;

/// A MemoryStore that counts its calls and can be made to fail.
#[derive(Debug, Clone, Default)]
struct CountingStore {
    inner: MemoryStore,
    loads: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

impl CountingStore {
    fn check(&self) -> session_store::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(session_store::Error::Backend("store is down".into()));
        }
        Ok(())
    }

    fn calls(&self) -> (usize, usize) {
        (self.loads.load(Ordering::SeqCst), self.writes.load(Ordering::SeqCst))
    }
}

#[async_trait]
impl SessionStore for CountingStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.create(record).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.save(record).await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.load(id).await
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.check()?;
        self.inner.delete(id).await
    }
}

/// A test shop whose sessions live in a fresh counting store.
async fn shop() -> (TestShop, CountingStore) {
    let store = CountingStore::default();
    let shop = TestShop::with_store(Sandbox::start().await.unwrap(), |config| config, store.clone()).await;
    (shop, store)
}

#[tokio::test]
async fn requests_without_a_token_never_touch_the_session_store() {
    let (shop, store) = shop().await;
    shop.get("/cart/add?item=shoe").await; // the visitor has a session
    let before = store.calls();

    for path in ["/", "/products/1?page=2&q=red%20shoes", "/landing?sovReqTokenX=1&utm_source=mail"] {
        assert_eq!(shop.get(path).await.0, 200);
    }
    assert_eq!(store.calls(), before, "no load, no write");

    shop.get("/landing?sovReqToken=12345-test-123-12345").await;
    let after = store.calls();
    assert!(after.0 > before.0, "a token loads the session");
}

#[tokio::test]
async fn a_failing_store_never_fails_the_landing_page() {
    let (shop, store) = shop().await;
    store.failing.store(true, Ordering::SeqCst);
    let (status, body) = shop.get("/landing?sovReqToken=12345-test-123-12345").await;
    assert_eq!((status, body.as_str()), (200, "landing"));

    // The store is back: the lost capture is not there, and nothing is sent for it.
    store.failing.store(false, Ordering::SeqCst);
    assert_eq!(shop.order().await, "no_token");
    assert!(shop.sandbox.conversions().is_empty());

    // A later landing captures as usual.
    shop.get("/landing?sovReqToken=12345-test-123-12345").await;
    assert_eq!(shop.order().await, "sent");
}
