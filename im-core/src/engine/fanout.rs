//! Fan-out: getting one frame to every session of a set of users, wherever they are.
//!
//! Every push goes through here: messages and events to users or to a group's members,
//! call signals to one device, and kicks. A frame is encoded at most once per codec in
//! use (JSON, and MessagePack if some session asked for it) and the same bytes —
//! reference-counted, not copied — are queued for every recipient session on this node
//! (a group's through its room, see `registry`). When other nodes are up, a few
//! recipients there are found through `Presence` and reached with one envelope per node,
//! carrying the recipient list; many (a group) with one envelope to every node. Envelopes
//! go out through the `relay`, many per broker call; a single node asks presence nothing
//! per message.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::Shared;
use super::access::Access;
use super::membership::GroupMembers;
use super::session::SessionHandle;
use crate::broker::Envelope;
use crate::model::{DeviceId, GroupId, Seq, UserId};
use crate::protocol::{Codec, Event, FrameClass, KickCode, ServerFrame};

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

/// Who a push is for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Recipients<'a> {
    /// Every session of these users (each user once, please).
    Users(&'a [UserId]),
    /// Every member of a group as the caller's view of it has them: here through the
    /// group's room, elsewhere through the broker.
    Group(&'a Arc<GroupMembers>),
    /// One device's sessions (a call signal).
    Device(UserId, &'a DeviceId),
}

/// Above this many recipients, a fan-out to other nodes is one broadcast rather than a
/// presence lookup per recipient and a publish per node: a group's message costs one
/// publish, whatever its size (measured in docs/benchmarks.md, "Cluster mode").
pub(crate) const BROADCAST_OVER: usize = 16;

/// Whom a push leaves out.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Skip<'a> {
    /// Nobody.
    Nobody,
    /// The session that caused the push (it gets a reply instead): by id here, by its
    /// device on other nodes.
    Session(u64, UserId, &'a DeviceId),
    /// Every session of this user (typing is not echoed to the typist's devices).
    User(UserId),
}

impl Skip<'_> {
    /// Whether `session` is left out.
    pub(crate) fn skips(&self, session: &SessionHandle) -> bool {
        match *self {
            Skip::Nobody => false,
            Skip::Session(id, ..) => session.id == id,
            Skip::User(user) => session.user == user,
        }
    }
}

impl Recipients<'_> {
    fn users(&self) -> &[UserId] {
        match self {
            Recipients::Users(users) => users,
            Recipients::Group(members) => &members.ids,
            Recipients::Device(user, _) => std::slice::from_ref(user),
        }
    }
}

impl Shared {
    /// Pushes an event about message `seq` of a conversation (a reaction, a pin) to
    /// everyone in it who can read that message, but the session that caused it: both
    /// users of a direct chat; in a group, the members who joined at or before `seq` (a
    /// later member learns nothing of messages from before their join).
    pub(super) async fn push_about_message(
        &self,
        me: &SessionHandle,
        access: &Access,
        seq: Seq,
        out: &Outgoing,
    ) {
        match access {
            Access::Direct { peer } => {
                let pair = [me.user, *peer];
                self.fan_out(Recipients::Users(&pair), me.skip(), out, false)
                    .await;
            }
            Access::Group { members, .. } => {
                let later = |m: &&crate::model::Member| m.joined_seq > seq;
                if members.members.values().any(|m| later(&m)) {
                    let readers: Vec<UserId> = members
                        .members
                        .values()
                        .filter(|m| !later(m))
                        .map(|m| m.user)
                        .collect();
                    self.fan_out(Recipients::Users(&readers), me.skip(), out, false)
                        .await;
                } else {
                    self.fan_out(Recipients::Group(members), me.skip(), out, false)
                        .await;
                }
            }
        };
    }

    /// Pushes `frame` to `to`, except the session `skip` (the sender's, which gets a
    /// reply instead). Never waits on a session; waits only on presence and the broker
    /// when other nodes are up.
    ///
    /// Returns the recipients with no session on any node (for a group, only when
    /// `want_offline`: it costs a look at every member). If presence cannot be asked,
    /// those with none here: a push notification too many beats one too few.
    pub(crate) async fn fan_out(
        &self,
        to: Recipients<'_>,
        skip: Skip<'_>,
        out: &Outgoing,
        want_offline: bool,
    ) -> Vec<UserId> {
        let mut offline = Vec::new();
        match to {
            Recipients::Users(users) => {
                self.sessions.deliver(users, skip, out, Some(&mut offline));
            }
            Recipients::Group(members) => self.sessions.deliver_group(
                members,
                skip,
                out,
                want_offline.then_some(&mut offline),
            ),
            Recipients::Device(user, device) => {
                if self
                    .sessions
                    .deliver_skip_device(&[user], None, Some(device), out)
                {
                    return offline;
                }
                offline.push(user);
            }
        }

        let users = to.users();
        if users.len() > BROADCAST_OVER && !matches!(to, Recipients::Device(..)) {
            return self
                .broadcast_deliver(users, skip, out, offline, want_offline)
                .await;
        }
        // One node (the common case) needs no lookup per recipient.
        if !self.others_online().await {
            return offline;
        }
        let mut entries = match self.presence.online_elsewhere(users, &self.node).await {
            Ok(entries) => entries,
            Err(e) => {
                // Pushes are best effort; sync recovers what remote devices miss.
                tracing::warn!(error = %e, "presence lookup failed; remote pushes skipped");
                return offline;
            }
        };
        let device = match to {
            Recipients::Device(_, device) => {
                entries.retain(|e| &e.device == device);
                Some(device.clone())
            }
            _ => None,
        };
        if !entries.is_empty() {
            let remote: HashSet<UserId> = entries.iter().map(|e| e.user).collect();
            offline.retain(|u| !remote.contains(u));
        }
        let mut by_node: BTreeMap<_, BTreeSet<UserId>> = BTreeMap::new();
        for e in entries {
            if let Skip::User(user) = skip
                && e.user == user
            {
                continue;
            }
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
                skip: match skip {
                    Skip::Session(_, user, device) => Some((user, device.clone())),
                    Skip::Nobody | Skip::User(_) => None,
                },
                device: device.clone(),
                class: out.class(),
                frame: json.clone(),
                origin: None,
            };
            self.relay.publish(node, envelope).await;
        }
        offline
    }

    /// Whether another node is up (false when presence cannot tell: pushes are best
    /// effort, and sync recovers what remote devices miss).
    async fn others_online(&self) -> bool {
        self.presence
            .others_online(&self.node)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "presence lookup failed; remote pushes skipped");
                false
            })
    }

    /// The remote half of a fan-out to many users: one broadcast that every other node
    /// delivers to the sessions it holds, instead of a presence lookup per user, queued on
    /// the relay (which drops it if no other node is up). With `want_offline`, presence is
    /// still asked about the users `offline` holds (those with no session here), to leave
    /// out those online elsewhere.
    async fn broadcast_deliver(
        &self,
        users: &[UserId],
        skip: Skip<'_>,
        out: &Outgoing,
        mut offline: Vec<UserId>,
        want_offline: bool,
    ) -> Vec<UserId> {
        let Some(frame) = out.bytes(Codec::Json) else {
            return offline;
        };
        let users: Vec<UserId> = match skip {
            Skip::User(user) => users.iter().copied().filter(|u| *u != user).collect(),
            Skip::Nobody | Skip::Session(..) => users.to_vec(),
        };
        self.relay
            .broadcast_if_others(Envelope::Deliver {
                users,
                skip: match skip {
                    Skip::Session(_, user, device) => Some((user, device.clone())),
                    Skip::Nobody | Skip::User(_) => None,
                },
                device: None,
                class: out.class(),
                frame,
                origin: Some(self.node.clone()),
            })
            .await;
        if want_offline && !offline.is_empty() && self.others_online().await {
            match self.presence.online_elsewhere(&offline, &self.node).await {
                Ok(entries) => {
                    let remote: HashSet<UserId> = entries.into_iter().map(|e| e.user).collect();
                    offline.retain(|u| !remote.contains(u));
                }
                Err(e) => tracing::warn!(error = %e, "presence lookup failed; offline list kept"),
            }
        }
        offline
    }

    /// Kicks sessions here and asks the other nodes to do the same; with
    /// `started_before`, only sessions that started no later.
    pub(crate) async fn kick(
        &self,
        user: UserId,
        device: Option<&DeviceId>,
        keep: Option<&DeviceId>,
        started_before: Option<crate::model::Timestamp>,
        code: KickCode,
    ) {
        self.sessions.kick(user, device, keep, started_before, code);
        self.broadcast(Envelope::Kick {
            user,
            device: device.cloned(),
            keep: keep.cloned(),
            started_before,
            code,
            origin: self.node.clone(),
        })
        .await;
    }

    /// Forgets a group's cached membership (and its room) here and on the other nodes.
    pub(crate) async fn invalidate_group(&self, group: GroupId) {
        self.forget_group(group);
        self.broadcast(Envelope::InvalidateGroup {
            group,
            origin: self.node.clone(),
        })
        .await;
    }

    /// Forgets the cached tie between two users here and on the other nodes (their
    /// friendship or blocks changed).
    pub(crate) async fn invalidate_contacts(&self, a: UserId, b: UserId) {
        self.contacts.invalidate(a, b);
        self.broadcast(Envelope::InvalidateContacts {
            a,
            b,
            origin: self.node.clone(),
        })
        .await;
    }

    fn forget_group(&self, group: GroupId) {
        self.members.invalidate(group);
        self.sessions.forget_room(group);
    }

    /// Queues `envelope` for every node (see `relay`).
    pub(crate) async fn broadcast(&self, envelope: Envelope) {
        self.relay.broadcast(envelope).await;
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
                origin,
            } => {
                if origin.as_ref() == Some(&self.node) {
                    return;
                }
                let out = Outgoing::from_json(class, frame);
                self.sessions
                    .deliver_skip_device(&users, skip.as_ref(), device.as_ref(), &out);
            }
            Envelope::InvalidateGroup { group, origin } => {
                if origin != self.node {
                    self.forget_group(group);
                }
            }
            Envelope::InvalidateContacts { a, b, origin } => {
                if origin != self.node {
                    self.contacts.invalidate(a, b);
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
            Envelope::Missed { reason } => {
                tracing::warn!(%reason, "pushes from other nodes may have been lost; every session resyncs");
                metrics::counter!("im_broker_gaps_total").increment(1);
                let resync = Outgoing::new(ServerFrame::Event {
                    event: Event::Resync { reason },
                });
                for session in self.sessions.all() {
                    session.deliver(&resync);
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
