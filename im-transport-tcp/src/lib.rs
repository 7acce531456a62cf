#![doc = include_str!("../README.md")]

mod client;
mod config;
mod connection;
mod server;
mod socket;

pub use client::connect;
#[cfg(feature = "tls")]
pub use client::connect_tls;
pub use config::TcpConfig;
pub use connection::TcpConnection;
pub use server::TcpTransport;
/// The rustls this crate's TLS is built on (feature `tls`), for building its
/// `ServerConfig` and `ClientConfig`.
#[cfg(feature = "tls")]
pub use tokio_rustls::{self, rustls};
