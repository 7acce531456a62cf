//! Fan-out: getting one frame to every session of a set of users, wherever they are.
//!
//! A frame is encoded at most once per codec in use (JSON, and MessagePack if some
//! session asked for it) and the same bytes — reference-counted, not copied — are queued
//! for every recipient session on this node. Recipients on other nodes are found through
//! `Presence` and reached with one broker publish per node, carrying the recipient list.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::OnceLock;

use bytes::Bytes;

use super::Shared;
use crate::broker::Envelope;
use crate::model::{DeviceId, UserId};
use crate::protocol::{Codec, FrameClass, ServerFrame};

/// A frame on its way to many sessions, encoded lazily and once per codec.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The frame; decoded from `json` on first use when it came from another node.
    frame: OnceLock<Option<ServerFrame>>,
    class: FrameClass,
    json: OnceLock<Option<Bytes>>,
    msgpack: OnceLock<Option<Bytes>>,
}

impl Outgoing {
    pub(crate) fn new(frame: ServerFrame) -> Self {
        Outgoing {
            class: frame.class(),
            frame: OnceLock::from(Some(frame)),
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
        }
    }

    /// A frame that arrived already JSON-encoded from another node: its JSON bytes go to
    /// JSON sessions as they are, and it is decoded only if a session needs another
    /// codec.
    fn from_json(class: FrameClass, json: Bytes) -> Self {
        Outgoing {
            frame: OnceLock::new(),
            class,
            json: OnceLock::from(Some(json)),
            msgpack: OnceLock::new(),
        }
    }

    /// The frame itself (`None` if it came from another node and does not decode).
    pub(crate) fn frame(&self) -> Option<&ServerFrame> {
        self.frame
            .get_or_init(|| {
                let json = self.json.get()?.as_ref()?;
                metrics::counter!("im_frames_decoded_total").increment(1);
                Codec::Json
                    .decode(json)
                    .map_err(|e| tracing::warn!(error = %e, "undecodable frame from the broker"))
                    .ok()
            })
            .as_ref()
    }

    pub(crate) fn class(&self) -> FrameClass {
        self.class
    }

    /// The frame's bytes in `codec`, encoding on first use.
    pub(crate) fn bytes(&self, codec: Codec) -> Option<Bytes> {
        let cell = match codec {
            Codec::Json => &self.json,
            Codec::MessagePack => &self.msgpack,
        };
        cell.get_or_init(|| {
            let frame = self.frame()?;
            metrics::counter!("im_frames_encoded_total").increment(1);
            codec
                .encode(frame)
                .map_err(|e| tracing::error!(error = %e, "failed to encode a pushed frame"))
                .ok()
        })
        .clone()
    }
}

impl Shared {
    /// Pushes `frame` to every session of `users` (each user once, please), except the
    /// session `skip` (the sender's, which gets a reply instead). Never waits on a
    /// session; waits only on the presence lookup and the broker for remote nodes.
    ///
    /// Returns the users with no session on any node (if presence cannot be asked, those
    /// with none here: a push notification too many beats one too few).
    pub(crate) async fn fan_out(
        &self,
        users: &[UserId],
        skip: Option<(u64, &UserId, &DeviceId)>,
        out: &Outgoing,
    ) -> Vec<UserId> {
        let mut offline = Vec::new();
        self.sessions
            .deliver(users, skip.map(|(id, _, _)| id), out, &mut offline);

        let entries = match self.presence.online_elsewhere(users, &self.node).await {
            Ok(entries) => entries,
            Err(e) => {
                // Pushes are best effort; sync recovers what remote devices miss.
                tracing::warn!(error = %e, "presence lookup failed; remote pushes skipped");
                return offline;
            }
        };
        let mut by_node: BTreeMap<_, BTreeSet<UserId>> = BTreeMap::new();
        if !entries.is_empty() {
            let remote: HashSet<UserId> = entries.iter().map(|e| e.user).collect();
            offline.retain(|u| !remote.contains(u));
        }
        for e in entries {
            by_node.entry(e.node).or_default().insert(e.user);
        }
        if by_node.is_empty() {
            return offline;
        }
        let Some(json) = out.bytes(Codec::Json) else {
            return offline;
        };
        for (node, users) in by_node {
            let envelope = Envelope::Deliver {
                users: users.into_iter().collect(),
                skip: skip.map(|(_, u, d)| (*u, d.clone())),
                device: None,
                class: out.class(),
                frame: json.clone(),
            };
            if let Err(e) = self.broker.publish(&node, envelope).await {
                tracing::warn!(%node, error = %e, "broker publish failed");
            }
        }
        offline
    }

    /// Acts on an envelope from another node.
    pub(crate) fn handle_envelope(&self, envelope: Envelope) {
        match envelope {
            Envelope::Deliver {
                users,
                skip,
                device,
                class,
                frame,
            } => {
                let out = Outgoing::from_json(class, frame);
                self.sessions
                    .deliver_skip_device(&users, skip.as_ref(), device.as_ref(), &out);
            }
            Envelope::InvalidateGroup { group, origin } => {
                if origin != self.node {
                    self.members.invalidate(group);
                }
            }
            Envelope::Kick {
                user,
                device,
                keep,
                started_before,
                code,
                origin,
            } => {
                if origin != self.node {
                    self.sessions
                        .kick(user, device.as_ref(), keep.as_ref(), started_before, code);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserId;
    use crate::protocol::Event;

    #[test]
    fn frames_from_other_nodes_are_decoded_only_when_a_codec_needs_it() {
        let frame = ServerFrame::Event {
            event: Event::FriendAdded { user: UserId(7) },
        };
        let json = Codec::Json.encode(&frame).unwrap();
        let out = Outgoing::from_json(FrameClass::Durable, json.clone());
        // JSON sessions get the very bytes that arrived, with no decode.
        let sent = out.bytes(Codec::Json).unwrap();
        assert_eq!(sent.as_ptr(), json.as_ptr());
        assert!(out.frame.get().is_none(), "decoded for a JSON session");
        // Anything else decodes once, on demand.
        assert_eq!(out.frame(), Some(&frame));
        // A frame that does not decode is not sent to anyone needing another codec.
        let broken = Outgoing::from_json(FrameClass::Durable, Bytes::from_static(b"{"));
        assert!(broken.frame().is_none());
    }
}
