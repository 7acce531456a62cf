//! Length-delimited frames over TCP for the [`im_core`] engine: a server-side
//! [`TcpTransport`] and a client-side [`connect`].
//!
//! Each frame is a 4-byte big-endian length followed by that many bytes of one encoded
//! protocol frame (JSON unless MessagePack was negotiated). Frames over
//! [`TcpConfig::max_frame_bytes`] are refused with `too_large` and the connection is
//! closed. Writes are batched by the engine: many frames, one flush.
//!
//! ```
//! use im_core::{Engine, client::Client};
//! use im_transport_tcp::{TcpConfig, TcpTransport, connect};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let engine = Engine::builder().start().await.unwrap();
//! let transport = TcpTransport::bind("127.0.0.1:0", TcpConfig::default()).await.unwrap();
//! let addr = transport.local_addr();
//! tokio::spawn({
//!     let engine = engine.clone();
//!     async move { engine.serve(&transport).await }
//! });
//!
//! let conn = connect(addr, &TcpConfig::default()).await.unwrap();
//! let (client, _events) = Client::connect(conn).await.unwrap();
//! client.register("bob", "hunter22-long", "Bob").await.unwrap();
//! engine.shutdown().await;
//! # });
//! ```

mod client;
mod config;
mod connection;
mod server;

pub use client::connect;
pub use config::TcpConfig;
pub use connection::TcpConnection;
pub use server::TcpTransport;
