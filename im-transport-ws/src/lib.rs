//! WebSocket and HTTP/JSON transport for [`im_core`] over warp, with a tokio-tungstenite
//! client connector.
//!
//! **Not implemented yet.** This crate is a placeholder in the workspace layout; use
//! `im-transport-tcp` until it lands. It will carry the same frames as the TCP
//! transport, so a client can switch between them without other changes.
