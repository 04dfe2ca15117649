//! The hot path, counted: a request without a token costs the layer one allocation, and only
//! that one: its handle for the extractor, boxed into the request's extensions (as
//! tower-sessions' own handle is).
//!
//! A counting global allocator (its own test binary) counts this thread's allocations.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    convert::Infallible,
    future::{Future, Ready, ready},
    pin::pin,
    task::{Context, Poll, Waker},
};

use http::{Request, Response};
use tower::{Service, service_fn};
use tower_layer::Layer;
use tower_sovendus::{SovendusConfig, SovendusLayer};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Something the session layer would have put in the extensions before us.
#[derive(Clone)]
struct SessionLike;

fn handler(_: Request<()>) -> Ready<Result<Response<()>, Infallible>> {
    ready(Ok(Response::new(())))
}

/// Allocations made by one call of `service`, the request built beforehand.
fn allocations_of<S>(service: &mut S, uri: &str) -> usize
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    let mut request = Request::builder().uri(uri).body(()).unwrap();
    request.extensions_mut().insert(SessionLike);
    let mut context = Context::from_waker(Waker::noop());
    let before = allocations();
    assert!(service.poll_ready(&mut context).is_ready());
    let future = pin!(service.call(request));
    let Poll::Ready(Ok(response)) = future.poll(&mut context) else { panic!("the handler is ready at once") };
    let after = allocations();
    drop(response);
    after - before
}

#[test]
fn a_request_without_a_token_allocates_only_the_handle() {
    let config = SovendusConfig::new("product-a", "XXXX-XXXXX").unwrap();
    let mut bare = service_fn(handler);
    let mut layered = SovendusLayer::new(config).layer(service_fn(handler));

    for uri in ["/", "/products/1?page=2&q=red%20shoes", "/search?q=sovReqTokens&sovReqTokenX=1"] {
        // Warm up once (lazy statics, thread-locals), then count.
        allocations_of(&mut layered, uri);
        let baseline = allocations_of(&mut bare, uri);
        let cost = allocations_of(&mut layered, uri) - baseline;
        assert_eq!(cost, 1, "{uri}: the layer allocated more than its handle");
    }
}
