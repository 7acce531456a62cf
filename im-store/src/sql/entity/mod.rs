//! The SeaORM entities: one file per table. All ids and seqs are `BIGINT`; conversation
//! ids are their wire form (`d:1:2`, `g:3`); times are milliseconds since the epoch.
#![allow(missing_docs, unreachable_pub)]

pub mod block;
pub mod conversation;
pub mod cursor;
pub mod device;
pub mod friend;
pub mod friend_request;
pub mod group;
pub mod hidden;
pub mod invite;
pub mod member;
pub mod message;
pub mod pin;
pub mod reaction;
pub mod user;
pub mod user_conversation;
