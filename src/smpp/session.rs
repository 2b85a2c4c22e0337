//! The SMPP session state machine, shared by the front (we are the SMSC)
//! and the upstream (we are the ESME). Pure: no I/O, no clock of its own;
//! every method that cares about time takes `now`.
//!
//! It knows the bind state, hands out sequence numbers, keeps the window of
//! our outstanding requests with their response deadlines, and says when an
//! `enquire_link` is due or the peer has been silent for too long. What to
//! do about it (write a PDU, close the socket) is the driver's job
//! ([`super::link`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rusmpp_core::{CommandId, CommandStatus};

/// Which side of the bind we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We accept binds (the front).
    Smsc,
    /// We bind to an SMSC (the upstream).
    Esme,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindMode {
    Transmitter,
    Receiver,
    Transceiver,
}

impl BindMode {
    pub fn of_request(id: CommandId) -> Option<BindMode> {
        match id {
            CommandId::BindTransmitter => Some(BindMode::Transmitter),
            CommandId::BindReceiver => Some(BindMode::Receiver),
            CommandId::BindTransceiver => Some(BindMode::Transceiver),
            _ => None,
        }
    }

    /// May the ESME submit messages on this bind?
    pub fn transmits(self) -> bool {
        matches!(self, BindMode::Transmitter | BindMode::Transceiver)
    }

    /// May the SMSC deliver messages (receipts, MO) on this bind?
    pub fn receives(self) -> bool {
        matches!(self, BindMode::Receiver | BindMode::Transceiver)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BindMode::Transmitter => "transmitter",
            BindMode::Receiver => "receiver",
            BindMode::Transceiver => "transceiver",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connected, not bound yet.
    Open,
    Bound(BindMode),
    /// An unbind was sent or received: only responses and the unbind_resp now.
    Unbinding,
    Closed,
}

#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// How long we wait for the response to one of our requests.
    pub response: Duration,
    /// Silence from the peer after which we send an enquire_link.
    pub enquire_link: Duration,
    /// Silence from the peer after which the session is closed.
    pub inactivity: Duration,
    /// Time from connect to bind (front) before the socket is closed.
    pub bind: Duration,
}

/// One of our requests waiting for its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outstanding {
    pub command: CommandId,
    pub deadline: Instant,
}

/// Something the driver must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// No response to this request in time (it is no longer outstanding).
    TimedOut { sequence: u32, command: CommandId },
    /// Send an enquire_link now ([`Session::begin_request`] it like any other).
    EnquireLinkDue,
    /// The peer has been silent for [`Timers::inactivity`]: close.
    Inactive,
    /// Connected for [`Timers::bind`] without binding: close.
    BindTimeout,
}

/// Why we cannot send a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// As many requests as the window allows are outstanding.
    WindowFull,
    /// Not bound (or unbinding) for this request.
    NotBound,
}

pub struct Session {
    role: Role,
    state: State,
    timers: Timers,
    window: usize,
    next_sequence: u32,
    outstanding: BTreeMap<u32, Outstanding>,
    opened: Instant,
    last_heard: Instant,
}

impl Session {
    pub fn new(role: Role, timers: Timers, window: usize, now: Instant) -> Session {
        Session {
            role,
            state: State::Open,
            timers,
            window: window.max(1),
            next_sequence: 1,
            outstanding: BTreeMap::new(),
            opened: now,
            last_heard: now,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn mode(&self) -> Option<BindMode> {
        match self.state {
            State::Bound(m) => Some(m),
            _ => None,
        }
    }

    /// Our requests waiting for a response.
    pub fn in_flight(&self) -> usize {
        self.outstanding.len()
    }

    pub fn window(&self) -> usize {
        self.window
    }

    pub fn bound(&mut self, mode: BindMode) {
        if self.state == State::Open {
            self.state = State::Bound(mode);
        }
    }

    pub fn unbinding(&mut self) {
        if self.state != State::Closed {
            self.state = State::Unbinding;
        }
    }

    /// Closes the session; the requests still outstanding come back.
    pub fn close(&mut self) -> Vec<(u32, Outstanding)> {
        self.state = State::Closed;
        std::mem::take(&mut self.outstanding).into_iter().collect()
    }

    /// A PDU arrived: the peer is alive.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// Whether the peer may send us this request now, else the status to
    /// answer it with.
    pub fn check_request(&self, id: CommandId) -> Result<(), CommandStatus> {
        let mode = self.mode();
        let ok = match (self.role, id) {
            (_, CommandId::EnquireLink) => self.state != State::Closed,
            (_, CommandId::Unbind) => mode.is_some(),
            (Role::Smsc, CommandId::BindTransmitter)
            | (Role::Smsc, CommandId::BindReceiver)
            | (Role::Smsc, CommandId::BindTransceiver) => {
                if mode.is_some() {
                    return Err(CommandStatus::EsmeRalybnd);
                }
                self.state == State::Open
            }
            (Role::Smsc, CommandId::SubmitSm) => mode.is_some_and(BindMode::transmits),
            (Role::Esme, CommandId::DeliverSm) => mode.is_some_and(BindMode::receives),
            (Role::Smsc, CommandId::DataSm) => mode.is_some_and(BindMode::transmits),
            (Role::Esme, CommandId::DataSm) => mode.is_some_and(BindMode::receives),
            _ => return Err(CommandStatus::EsmeRinvcmdid),
        };
        if ok {
            Ok(())
        } else {
            Err(CommandStatus::EsmeRinvbndsts)
        }
    }

    /// A sequence number for a request of ours, tracked until its response
    /// or its deadline. Binds, unbind and enquire_link are always allowed;
    /// anything else needs a bind that allows it and room in the window.
    pub fn begin_request(&mut self, command: CommandId, now: Instant) -> Result<u32, Busy> {
        let control = matches!(
            command,
            CommandId::EnquireLink
                | CommandId::Unbind
                | CommandId::BindTransmitter
                | CommandId::BindReceiver
                | CommandId::BindTransceiver
        );
        if !control {
            if self.mode().is_none() {
                return Err(Busy::NotBound);
            }
            if self.outstanding.len() >= self.window {
                return Err(Busy::WindowFull);
            }
        }
        let sequence = self.allocate();
        self.outstanding.insert(
            sequence,
            Outstanding {
                command,
                deadline: now + self.timers.response,
            },
        );
        Ok(sequence)
    }

    /// 1 to 0x7FFFFFFF (SMPP 3.4 §5.1.4), skipping numbers still outstanding.
    fn allocate(&mut self) -> u32 {
        loop {
            let s = self.next_sequence;
            self.next_sequence = if s >= 0x7FFF_FFFF { 1 } else { s + 1 };
            if !self.outstanding.contains_key(&s) {
                return s;
            }
        }
    }

    /// A response arrived: the request it answers, if it was ours and of the
    /// matching kind (`generic_nack` answers anything).
    pub fn on_response(&mut self, sequence: u32, id: CommandId) -> Option<Outstanding> {
        let o = self.outstanding.get(&sequence)?;
        let matches = id == CommandId::GenericNack
            || u32::from(id) == super::pdu::response_id(u32::from(o.command));
        if !matches {
            return None;
        }
        self.outstanding.remove(&sequence)
    }

    /// What is due at `now`. Timed-out requests are removed.
    pub fn poll(&mut self, now: Instant) -> Vec<Event> {
        let mut events: Vec<Event> = Vec::new();
        let late: Vec<u32> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        for sequence in late {
            if let Some(o) = self.outstanding.remove(&sequence) {
                events.push(Event::TimedOut {
                    sequence,
                    command: o.command,
                });
            }
        }
        if self.state == State::Closed {
            return events;
        }
        if self.state == State::Open && now >= self.opened + self.timers.bind {
            events.push(Event::BindTimeout);
        }
        let silent = now.saturating_duration_since(self.last_heard);
        if silent >= self.timers.inactivity {
            events.push(Event::Inactive);
        } else if silent >= self.timers.enquire_link
            && matches!(self.state, State::Bound(_))
            && !self.enquiring()
        {
            events.push(Event::EnquireLinkDue);
        }
        events
    }

    fn enquiring(&self) -> bool {
        self.outstanding
            .values()
            .any(|o| o.command == CommandId::EnquireLink)
    }

    /// When [`Session::poll`] next has something to say.
    pub fn next_deadline(&self) -> Instant {
        let mut next = self.last_heard + self.timers.inactivity;
        if matches!(self.state, State::Bound(_)) && !self.enquiring() {
            next = next.min(self.last_heard + self.timers.enquire_link);
        }
        if self.state == State::Open {
            next = next.min(self.opened + self.timers.bind);
        }
        if let Some(o) = self.outstanding.values().map(|o| o.deadline).min() {
            next = next.min(o);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timers() -> Timers {
        Timers {
            response: Duration::from_secs(5),
            enquire_link: Duration::from_secs(30),
            inactivity: Duration::from_secs(90),
            bind: Duration::from_secs(10),
        }
    }

    #[test]
    fn requests_need_the_right_bind() {
        let now = Instant::now();
        let mut s = Session::new(Role::Smsc, timers(), 2, now);
        assert_eq!(
            s.check_request(CommandId::SubmitSm),
            Err(CommandStatus::EsmeRinvbndsts)
        );
        assert_eq!(s.check_request(CommandId::EnquireLink), Ok(()));
        assert_eq!(s.check_request(CommandId::BindTransmitter), Ok(()));
        s.bound(BindMode::Receiver);
        assert_eq!(
            s.check_request(CommandId::SubmitSm),
            Err(CommandStatus::EsmeRinvbndsts),
            "a receiver does not submit"
        );
        assert_eq!(
            s.check_request(CommandId::BindTransceiver),
            Err(CommandStatus::EsmeRalybnd)
        );
        assert_eq!(
            s.check_request(CommandId::QuerySm),
            Err(CommandStatus::EsmeRinvcmdid)
        );
        let mut e = Session::new(Role::Esme, timers(), 2, now);
        e.bound(BindMode::Transceiver);
        assert_eq!(e.check_request(CommandId::DeliverSm), Ok(()));
        assert_eq!(
            e.check_request(CommandId::SubmitSm),
            Err(CommandStatus::EsmeRinvcmdid)
        );
    }

    #[test]
    fn the_window_bounds_outstanding_requests_and_responses_free_it() {
        let now = Instant::now();
        let mut s = Session::new(Role::Smsc, timers(), 2, now);
        assert_eq!(
            s.begin_request(CommandId::DeliverSm, now),
            Err(Busy::NotBound)
        );
        s.bound(BindMode::Transceiver);
        let a = s.begin_request(CommandId::DeliverSm, now).unwrap();
        let b = s.begin_request(CommandId::DeliverSm, now).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            s.begin_request(CommandId::DeliverSm, now),
            Err(Busy::WindowFull)
        );
        // enquire_link is never held back by the window.
        let e = s.begin_request(CommandId::EnquireLink, now).unwrap();
        assert!(
            s.on_response(a, CommandId::SubmitSmResp).is_none(),
            "wrong kind"
        );
        assert!(s.on_response(a, CommandId::DeliverSmResp).is_some());
        assert!(
            s.on_response(a, CommandId::DeliverSmResp).is_none(),
            "only once"
        );
        assert!(s.on_response(e, CommandId::EnquireLinkResp).is_some());
        assert!(s.on_response(b, CommandId::GenericNack).is_some());
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn sequence_numbers_wrap_and_skip_outstanding_ones() {
        let now = Instant::now();
        let mut s = Session::new(Role::Esme, timers(), 10, now);
        s.next_sequence = 0x7FFF_FFFF;
        let last = s.begin_request(CommandId::EnquireLink, now).unwrap();
        assert_eq!(last, 0x7FFF_FFFF);
        assert_eq!(s.begin_request(CommandId::Unbind, now).unwrap(), 1);
        s.next_sequence = 0x7FFF_FFFF;
        assert_eq!(s.begin_request(CommandId::Unbind, now).unwrap(), 2);
    }

    #[test]
    fn timers_fire_in_order() {
        let t0 = Instant::now();
        let mut s = Session::new(Role::Smsc, timers(), 4, t0);
        assert_eq!(s.next_deadline(), t0 + Duration::from_secs(10));
        assert_eq!(s.poll(t0 + Duration::from_secs(10)), [Event::BindTimeout]);
        s.bound(BindMode::Transmitter);
        s.heard(t0 + Duration::from_secs(10));
        let d = s
            .begin_request(CommandId::DeliverSm, t0 + Duration::from_secs(11))
            .unwrap();
        assert_eq!(s.next_deadline(), t0 + Duration::from_secs(16));
        assert_eq!(
            s.poll(t0 + Duration::from_secs(16)),
            [Event::TimedOut {
                sequence: d,
                command: CommandId::DeliverSm
            }]
        );
        assert_eq!(s.next_deadline(), t0 + Duration::from_secs(40));
        assert_eq!(
            s.poll(t0 + Duration::from_secs(40)),
            [Event::EnquireLinkDue]
        );
        s.begin_request(CommandId::EnquireLink, t0 + Duration::from_secs(40))
            .unwrap();
        // While an enquire_link is out, none other is due.
        assert!(s.poll(t0 + Duration::from_secs(41)).is_empty());
        s.heard(t0 + Duration::from_secs(42));
        assert_eq!(
            s.poll(t0 + Duration::from_secs(200)).last(),
            Some(&Event::Inactive)
        );
        let left = s.close();
        assert!(left.is_empty());
        assert!(s.poll(t0 + Duration::from_secs(300)).is_empty());
    }
}
