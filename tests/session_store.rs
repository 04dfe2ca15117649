//! What the layer asks of the session store: nothing on the hot path, and a failing store
//! never fails the shop's page.

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use async_trait::async_trait;
use tower_sessions::{
    MemoryStore, SessionManagerLayer, SessionStore,
    cookie::SameSite,
    session::{Id, Record},
    session_store,
};
use tower_sovendus::{SovendusLayer, sandbox::Sandbox};

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

struct Shop {
    addr: std::net::SocketAddr,
    client: reqwest::Client,
    store: CountingStore,
    sandbox: Sandbox,
}

impl Shop {
    async fn start() -> Self {
        let sandbox = Sandbox::start().await.unwrap();
        let store = CountingStore::default();
        let app = common::shop_routes()
            .layer(SovendusLayer::new(sandbox.config().build().unwrap()))
            .layer(SessionManagerLayer::new(store.clone()).with_same_site(SameSite::Lax).with_secure(false));
        let addr = common::serve(app).await;
        let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
        Self { addr, client, store, sandbox }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self.client.get(format!("http://{}{path}", self.addr)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

#[tokio::test]
async fn requests_without_a_token_never_touch_the_session_store() {
    let shop = Shop::start().await;
    shop.get("/cart/add?item=shoe").await; // the visitor has a session
    let before = shop.store.calls();

    for path in ["/", "/products/1?page=2&q=red%20shoes", "/landing?sovReqTokenX=1&utm_source=mail"] {
        assert_eq!(shop.get(path).await.0, 200);
    }
    assert_eq!(shop.store.calls(), before, "no load, no write");

    shop.get("/landing?sovReqToken=12345-test-123-12345").await;
    let after = shop.store.calls();
    assert!(after.0 > before.0, "a token loads the session");
}

#[tokio::test]
async fn a_failing_store_never_fails_the_landing_page() {
    let shop = Shop::start().await;
    shop.store.failing.store(true, Ordering::SeqCst);
    let (status, body) = shop.get("/landing?sovReqToken=12345-test-123-12345").await;
    assert_eq!((status, body.as_str()), (200, "landing"));

    // The store is back: the lost capture is not there, and nothing is sent for it.
    shop.store.failing.store(false, Ordering::SeqCst);
    let response = shop.client.post(format!("http://{}/order", shop.addr)).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "no_token");
    assert!(shop.sandbox.conversions().is_empty());

    // A later landing captures as usual.
    shop.get("/landing?sovReqToken=12345-test-123-12345").await;
    let response = shop.client.post(format!("http://{}/order", shop.addr)).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "sent");
}
