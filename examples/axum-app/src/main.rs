//! Runs the axum app of this example on 127.0.0.1:3000 (or the address given as the first
//! argument) with in-memory storage, until Ctrl-C.

use anyhow::Context as _;
use im_core::Engine;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let engine = Engine::builder().start().await?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    println!("axum-app listening on http://{}", listener.local_addr()?);
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum_app::serve(listener, axum_app::app(engine.clone()), stop).await?;
    engine.shutdown().await;
    Ok(())
}
