//! A logged-in session, as the registry and the fan-out see it: who it is, and the
//! connection's outbox that pushes go into.

use super::fanout::{Outgoing, Skip};
use super::outbox::Outbox;
use crate::model::{DeviceId, Platform, Timestamp, UserId};
use crate::protocol::{Codec, Event, KickCode, ServerFrame};

/// A logged-in session.
#[derive(Debug)]
pub(crate) struct SessionHandle {
    pub(crate) id: u64,
    pub(crate) user: UserId,
    pub(crate) device: DeviceId,
    pub(crate) platform: Platform,
    pub(crate) codec: Codec,
    pub(crate) since: Timestamp,
    /// A session with no connection (a request handled on its own, as over HTTP).
    pub(crate) detached: bool,
    pub(crate) outbox: Outbox,
}

impl SessionHandle {
    /// What a push this session caused skips: the session itself, which gets a reply
    /// instead; for a detached session nothing, since its caller gets no pushes and the
    /// same device's live sessions (here or elsewhere) should.
    pub(crate) fn skip(&self) -> Skip<'_> {
        if self.detached {
            Skip::Nobody
        } else {
            Skip::Session(self.id, self.user, &self.device)
        }
    }

    /// Queues a pushed frame without waiting (see [`Outbox::push`]).
    pub(crate) fn deliver(&self, frame: &Outgoing) {
        self.outbox.push(frame, self.codec);
    }

    /// Tells the client why and closes the session.
    pub(crate) fn kick(&self, code: KickCode) {
        let frame = ServerFrame::Event {
            event: Event::Kicked {
                code,
                reason: code.reason().to_owned(),
            },
        };
        if let Ok(bytes) = self.codec.encode(&frame) {
            self.outbox.close(Some(bytes));
        }
    }
}
