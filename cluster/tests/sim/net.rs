//! The simulated network: bounded, lossy, duplicating and reordering (every message gets its own
//! random delay), with isolation of single nodes.

use cluster::{BatchSpan, FetchAnswer, FetchRequest, IsrChange};

use super::rng::Rng;

/// One stored record of the model log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rec {
    pub epoch: u32,
    pub payload: u64,
}

/// The controller's node id in messages (not a replica).
pub const CONTROLLER: u32 = 0;

#[derive(Debug, Clone)]
pub enum Msg {
    Fetch(FetchRequest),
    Answer {
        answer: FetchAnswer,
        batches: Vec<(BatchSpan, Vec<Rec>)>,
    },
    Propose(IsrChange),
}

#[derive(Debug, Clone)]
pub struct Envelope {
    pub deliver_at: u64,
    pub seq: u64,
    pub from: u32,
    pub to: u32,
    pub msg: Msg,
}

/// Messages in flight at most; more are dropped, like a full socket buffer.
pub const IN_FLIGHT_MAX: usize = 512;

pub struct Faults {
    pub drop_per_mille: u64,
    pub dup_per_mille: u64,
    pub delay_ticks_max: u64,
}

/// Which of an isolated node's messages are lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Everything to and from it.
    Both,
    /// What it sends (one-way).
    Outbound,
    /// What it receives (one-way).
    Inbound,
}

/// A node cut off until a tick.
#[derive(Debug, Clone, Copy)]
pub struct Isolation {
    pub node: u32,
    pub until: u64,
    pub cut: Cut,
}

impl Isolation {
    fn drops(&self, from: u32, to: u32, now: u64) -> bool {
        now < self.until
            && match self.cut {
                Cut::Both => self.node == from || self.node == to,
                Cut::Outbound => self.node == from,
                Cut::Inbound => self.node == to,
            }
    }
}

pub struct Net {
    pub in_flight: Vec<Envelope>,
    seq: u64,
    pub faults: Faults,
    pub isolated: Option<Isolation>,
}

impl Net {
    pub fn new(faults: Faults) -> Self {
        Self {
            in_flight: Vec::new(),
            seq: 0,
            faults,
            isolated: None,
        }
    }

    fn cut(&self, from: u32, to: u32, now: u64) -> bool {
        self.isolated.is_some_and(|i| i.drops(from, to, now))
    }

    pub fn send(&mut self, rng: &mut Rng, now: u64, from: u32, to: u32, msg: Msg) {
        if self.cut(from, to, now) || rng.chance(self.faults.drop_per_mille) {
            return;
        }
        let copies = if rng.chance(self.faults.dup_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.in_flight.len() >= IN_FLIGHT_MAX {
                return;
            }
            self.seq += 1;
            let deliver_at = now + rng.between(1, self.faults.delay_ticks_max.max(1));
            self.in_flight.push(Envelope {
                deliver_at,
                seq: self.seq,
                from,
                to,
                msg: msg.clone(),
            });
        }
    }

    /// Removes and returns the messages due at `now`, in (time, send order).
    pub fn due(&mut self, now: u64) -> Vec<Envelope> {
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            if self.in_flight[i].deliver_at <= now {
                due.push(self.in_flight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|e| (e.deliver_at, e.seq));
        due.retain(|e| !self.cut(e.from, e.to, now));
        due
    }
}
