#![doc = include_str!("../README.md")]

mod client;
mod config;
mod connection;
mod server;

pub use client::connect;
pub use config::TcpConfig;
pub use connection::TcpConnection;
pub use server::TcpTransport;
