#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
pub mod broker;
pub mod client;
pub mod engine;
pub mod gate;
pub mod hooks;
pub mod invites;
pub mod memory;
pub mod model;
pub mod presence;
pub mod protocol;
pub mod storage;
pub mod transport;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use engine::{Engine, EngineBuilder, EngineConfig};
