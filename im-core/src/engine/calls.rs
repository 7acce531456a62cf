//! Call signalling: WebRTC offers, answers, ICE candidates and hang-ups relayed between
//! devices, never stored.
//!
//! A signal goes to one device of the other party (answers and candidates, which name
//! the device they answer) or to all of them (an offer rings every device). Only friends
//! or members of a shared group may signal each other, and a block either way stops it.
//! When a device answers or hangs up, the same user's other devices get `call_handled`
//! so they stop ringing.

use std::sync::Arc;

use super::Shared;
use super::connection::Conn;
use super::error::{ApiError, ApiResult};
use super::fanout::{Outgoing, Recipients, Skip};
use super::session::SessionHandle;
use crate::protocol::{Event, ServerFrame, Signal, reply, request};

impl Shared {
    pub(super) async fn signal(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::Signal,
    ) -> ApiResult<reply::Signaled> {
        let request::Signal {
            to,
            device,
            call_id,
            signal,
        } = request;
        self.limits.send(me.user)?;
        if call_id.is_empty() || call_id.len() > 64 || call_id.chars().any(char::is_control) {
            return Err(ApiError::invalid("call_id: 1 to 64 characters"));
        }
        let size = serde_json::to_vec(&signal).map_or(usize::MAX, |v| v.len());
        if size > self.config.max_body_bytes {
            return Err(ApiError::too_large(format!(
                "signal: {size} bytes encoded, the limit is {}",
                self.config.max_body_bytes
            )));
        }
        if to == me.user {
            return Err(ApiError::invalid("to: cannot call yourself"));
        }
        self.may_call(me.user, to).await?;

        let settles = signal.settles_call();
        let answered = matches!(signal, Signal::Answer { .. });
        let out = Outgoing::new(ServerFrame::Event {
            event: Event::Signal {
                from: me.user,
                from_device: me.device.clone(),
                call_id: call_id.clone(),
                signal,
            },
        });
        let recipients = match &device {
            Some(device) => Recipients::Device(to, device),
            None => Recipients::Users(std::slice::from_ref(&to)),
        };
        let online = self
            .fan_out(recipients, Skip::Nobody, &out, true)
            .await
            .is_empty();
        if settles {
            let handled = Outgoing::new(ServerFrame::Event {
                event: Event::CallHandled {
                    call_id,
                    device: me.device.clone(),
                    answered,
                },
            });
            self.fan_out(Recipients::Users(&[me.user]), me.skip(), &handled, false)
                .await;
        }
        Ok(reply::Signaled { online })
    }
}
