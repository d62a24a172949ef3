//! The importing side's flows of one UDP listener, by client address. Pure
//! state: the caller feeds it datagrams, flow events and the time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Datagrams a flow holds while its stream is being set up; more are dropped.
pub const OPENING_QUEUE: usize = 16;

enum State<S> {
    /// The flow's stream is being set up; its first datagrams wait here.
    Opening(Vec<Bytes>),
    Open(S),
    /// No cluster took the flow: its datagrams are dropped until then, so a
    /// refused client cannot make us open a stream per datagram.
    Refused(Instant),
}

struct Entry<S> {
    /// Tells this flow from a later one of the same client.
    seq: u64,
    state: State<S>,
}

/// What to do with a client's datagram.
pub enum Verdict<'a, S> {
    Send(&'a S),
    /// Start flow `seq` for this client (the datagram is queued for it).
    Start(u64),
    Queued,
    Drop(&'static str),
}

pub struct Table<S> {
    flows: HashMap<SocketAddr, Entry<S>>,
    next: u64,
}

impl<S> Default for Table<S> {
    fn default() -> Self {
        Self {
            flows: HashMap::new(),
            next: 0,
        }
    }
}

impl<S> Table<S> {
    /// A datagram from `from`; `full` when no new flow may start (cap reached).
    pub fn datagram(
        &mut self,
        from: SocketAddr,
        d: &[u8],
        full: bool,
        now: Instant,
    ) -> Verdict<'_, S> {
        let expired = match self.flows.get(&from).map(|e| &e.state) {
            Some(State::Refused(until)) => now >= *until,
            Some(_) => false,
            None => true,
        };
        if expired {
            self.flows.remove(&from);
            if full {
                return Verdict::Drop("flow_cap");
            }
            self.next += 1;
            let state = State::Opening(vec![Bytes::copy_from_slice(d)]);
            self.flows.insert(
                from,
                Entry {
                    seq: self.next,
                    state,
                },
            );
            return Verdict::Start(self.next);
        }
        match self.flows.get_mut(&from).map(|e| &mut e.state) {
            Some(State::Open(s)) => Verdict::Send(s),
            Some(State::Opening(q)) if q.len() < OPENING_QUEUE => {
                q.push(Bytes::copy_from_slice(d));
                Verdict::Queued
            }
            Some(State::Opening(_)) => Verdict::Drop("queue_full"),
            _ => Verdict::Drop("refused"),
        }
    }

    /// Flow `seq` is open: returns the datagrams that waited for it, or gives
    /// `sink` back when the flow is no longer wanted.
    pub fn opened(&mut self, from: SocketAddr, seq: u64, sink: S) -> Result<Vec<Bytes>, S> {
        match self.flows.get_mut(&from) {
            Some(e) if e.seq == seq => match std::mem::replace(&mut e.state, State::Open(sink)) {
                State::Opening(q) => Ok(q),
                _ => Ok(Vec::new()),
            },
            _ => Err(sink),
        }
    }

    /// No cluster took flow `seq`: drop the client's datagrams for `hold`.
    pub fn refused(&mut self, from: SocketAddr, seq: u64, until: Instant) {
        if let Some(e) = self.flows.get_mut(&from).filter(|e| e.seq == seq) {
            e.state = State::Refused(until);
        }
    }

    /// Flow `seq` ended (its stream or connection did): the next datagram starts a new one.
    pub fn ended(&mut self, from: SocketAddr, seq: u64) -> Option<S> {
        if self.flows.get(&from).is_some_and(|e| e.seq == seq) {
            return match self.flows.remove(&from)?.state {
                State::Open(s) => Some(s),
                _ => None,
            };
        }
        None
    }

    /// Removes open flows idle for `idle` (by `idle_of`) and refusals past
    /// their time; returns the flows removed, to be closed.
    pub fn sweep(
        &mut self,
        now: Instant,
        idle: Duration,
        idle_of: impl Fn(&S) -> Duration,
    ) -> Vec<S> {
        let gone: Vec<SocketAddr> = self
            .flows
            .iter()
            .filter(|(_, e)| match &e.state {
                State::Open(s) => idle_of(s) >= idle,
                State::Refused(until) => now >= *until,
                State::Opening(_) => false,
            })
            .map(|(a, _)| *a)
            .collect();
        gone.iter()
            .filter_map(|a| match self.flows.remove(a)?.state {
                State::Open(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// Every open flow, removed (the listener is closing).
    pub fn drain(&mut self) -> Vec<S> {
        self.flows
            .drain()
            .filter_map(|(_, e)| match e.state {
                State::Open(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// The open flow of `from`, if any.
    pub fn open(&self, from: SocketAddr) -> Option<&S> {
        match &self.flows.get(&from)?.state {
            State::Open(s) => Some(s),
            _ => None,
        }
    }

    /// Flows held: opening, open or refused.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.flows.len()
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
