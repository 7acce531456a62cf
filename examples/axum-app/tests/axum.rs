//! The gateway mounted in axum: the app's own route and the im WebSocket and HTTP API
//! answer on one port.

use std::time::Duration;

use im_core::auth::HashCost;
use im_core::client::Client;
use im_core::{Engine, EngineConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_answers_beside_the_apps_routes() {
    let config = EngineConfig::default().with_hash_cost(HashCost::CHEAPEST);
    let engine = Engine::builder().config(config).start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(axum_app::serve(
        listener,
        axum_app::app(engine.clone()),
        async {
            let _ = stopped.await;
        },
    ));

    // The app's own route.
    let hello = reqwest::get(format!("http://{addr}/hello"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(hello, "hello from the app");

    // The gateway's WebSocket, through axum's upgrade.
    let socket = im_transport_ws::connect(&format!("ws://{addr}/ws"), 64 * 1024)
        .await
        .unwrap();
    let (client, _events) = Client::connect(socket).await.unwrap();
    client
        .register("alice", "correct horse", "Alice")
        .await
        .unwrap();
    let session = client
        .login("alice", "correct horse", "laptop")
        .await
        .unwrap();
    assert_eq!(session.user.username, "alice");

    // And its HTTP API, with the token from that login.
    let token = session.token.unwrap();
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/v1/friends"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let unknown = reqwest::get(format!("http://{addr}/nowhere"))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    drop(client);
    engine.shutdown().await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
