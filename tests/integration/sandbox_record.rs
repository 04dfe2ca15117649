//! The sandbox keeps only the latest calls, and still counts, answers and waits for every one.

use std::time::Duration;

use tower_sovendus::{
    SovReqToken, SovendusClient,
    sandbox::{Fault, Sandbox},
};

fn token(n: u32) -> SovReqToken {
    format!("1095752fb409-457a-{n:04}").parse().unwrap()
}

#[tokio::test]
async fn keeps_the_latest_calls_and_counts_every_one() {
    let sandbox = Sandbox::builder().keep_calls(3).start().await.unwrap();
    let client = SovendusClient::new(&sandbox.config().build().unwrap());

    // The first call is still being answered when four more arrive and push it out.
    sandbox.fault_next(1, Fault::Delay(Duration::from_millis(300)));
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.send(&token(0)).await }
    });
    while sandbox.calls_received() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for n in 1..=4 {
        client.send(&token(n)).await.unwrap();
    }
    assert_eq!(sandbox.calls_received(), 5);
    assert_eq!(sandbox.conversions().len(), 3, "the slow call, still being answered, is let go");

    // Waiting counts the call let go of once it finishes: without it, this would wait an hour.
    let wait = sandbox.wait_for_conversions(5, Duration::from_secs(3_600));
    let calls = tokio::time::timeout(Duration::from_secs(60), wait).await.expect("the slow call counted");
    assert!(slow.await.unwrap().is_ok(), "a call let go of is still answered");
    assert_eq!(sandbox.calls_received(), 5);
    let kept: Vec<_> = calls.iter().map(|call| call.token().unwrap().to_owned()).collect();
    assert_eq!(kept, [token(2), token(3), token(4)].map(|token| token.as_str().to_owned()));
    assert!(calls.iter().all(|call| call.status() == Some(http::StatusCode::OK)));
}
