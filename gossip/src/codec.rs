//! A hand-written, fixed-width foca [`Codec`](foca::Codec): no serde.
//!
//! foca frames a datagram as `header, [u16 BE update count, updates...]`; it owns
//! the count (big-endian, its choice) and calls this codec for the header and
//! for each update. Our parts are little-endian:
//!
//! ```text
//! header := u8 WIRE_VERSION | member src | u16 src_incarnation | member dst
//!           | u8 tag | body
//! body   := Ping/Ack: u8 probe
//!         | PingReq/IndirectPing/IndirectAck/ForwardedAck: member | u8 probe
//!         | Announce/Feed/Gossip/Broadcast/TurnUndead: (empty)
//! update := member | u16 incarnation (foca's) | u8 state (0 alive, 1 suspect, 2 down)
//! ```

use bytes::{Buf, BufMut};
use foca::{Header, Message, State};

use crate::error::CodecError;
use crate::member::{Member, Reader};

/// Version byte that opens every datagram.
pub const WIRE_VERSION: u8 = 1;

const TAG_PING: u8 = 0;
const TAG_ACK: u8 = 1;
const TAG_PING_REQ: u8 = 2;
const TAG_INDIRECT_PING: u8 = 3;
const TAG_INDIRECT_ACK: u8 = 4;
const TAG_FORWARDED_ACK: u8 = 5;
const TAG_ANNOUNCE: u8 = 6;
const TAG_FEED: u8 = 7;
const TAG_GOSSIP: u8 = 8;
const TAG_BROADCAST: u8 = 9;
const TAG_TURN_UNDEAD: u8 = 10;

/// The codec handed to foca.
#[derive(Debug, Default, Clone, Copy)]
pub struct WireCodec;

/// Encodes a foca header (exposed for golden-byte tests and tooling).
pub fn encode_header(header: &Header<Member>, out: &mut Vec<u8>) {
    out.push(WIRE_VERSION);
    header.src.encode(out);
    out.extend_from_slice(&header.src_incarnation.to_le_bytes());
    header.dst.encode(out);
    let (tag, target, probe) = match &header.message {
        Message::Ping(p) => (TAG_PING, None, Some(*p)),
        Message::Ack(p) => (TAG_ACK, None, Some(*p)),
        Message::PingReq {
            target,
            probe_number,
        } => (TAG_PING_REQ, Some(target), Some(*probe_number)),
        Message::IndirectPing {
            origin,
            probe_number,
        } => (TAG_INDIRECT_PING, Some(origin), Some(*probe_number)),
        Message::IndirectAck {
            target,
            probe_number,
        } => (TAG_INDIRECT_ACK, Some(target), Some(*probe_number)),
        Message::ForwardedAck {
            origin,
            probe_number,
        } => (TAG_FORWARDED_ACK, Some(origin), Some(*probe_number)),
        Message::Announce => (TAG_ANNOUNCE, None, None),
        Message::Feed => (TAG_FEED, None, None),
        Message::Gossip => (TAG_GOSSIP, None, None),
        Message::Broadcast => (TAG_BROADCAST, None, None),
        Message::TurnUndead => (TAG_TURN_UNDEAD, None, None),
    };
    out.push(tag);
    if let Some(member) = target {
        member.encode(out);
    }
    if let Some(probe) = probe {
        out.push(probe);
    }
}

/// Decodes a foca header from the front of `buf`, returning it and the bytes used.
pub fn decode_header(buf: &[u8]) -> Result<(Header<Member>, usize), CodecError> {
    let mut reader = Reader::new(buf);
    let version = reader.u8("wire_version")?;
    if version != WIRE_VERSION {
        return Err(CodecError::WrongVersion {
            found: version,
            expected: WIRE_VERSION,
        });
    }
    let mut used = reader.used();
    let (src, n) = Member::decode(&buf[used..])?;
    used += n;
    let mut reader = Reader::new(&buf[used..]);
    let src_incarnation = u16::from_le_bytes(reader.array("src_incarnation")?);
    used += reader.used();
    let (dst, n) = Member::decode(&buf[used..])?;
    used += n;
    let mut reader = Reader::new(&buf[used..]);
    let tag = reader.u8("message_tag")?;
    used += reader.used();
    let message = match tag {
        TAG_PING | TAG_ACK => {
            let probe = Reader::new(&buf[used..]).u8("probe_number")?;
            used += 1;
            if tag == TAG_PING {
                Message::Ping(probe)
            } else {
                Message::Ack(probe)
            }
        }
        TAG_PING_REQ | TAG_INDIRECT_PING | TAG_INDIRECT_ACK | TAG_FORWARDED_ACK => {
            let (member, n) = Member::decode(&buf[used..])?;
            used += n;
            let probe_number = Reader::new(&buf[used..]).u8("probe_number")?;
            used += 1;
            match tag {
                TAG_PING_REQ => Message::PingReq {
                    target: member,
                    probe_number,
                },
                TAG_INDIRECT_PING => Message::IndirectPing {
                    origin: member,
                    probe_number,
                },
                TAG_INDIRECT_ACK => Message::IndirectAck {
                    target: member,
                    probe_number,
                },
                _ => Message::ForwardedAck {
                    origin: member,
                    probe_number,
                },
            }
        }
        TAG_ANNOUNCE => Message::Announce,
        TAG_FEED => Message::Feed,
        TAG_GOSSIP => Message::Gossip,
        TAG_BROADCAST => Message::Broadcast,
        TAG_TURN_UNDEAD => Message::TurnUndead,
        other => return Err(CodecError::UnknownMessage { tag: other }),
    };
    Ok((
        Header {
            src,
            src_incarnation,
            dst,
            message,
        },
        used,
    ))
}

/// Encodes one foca cluster update.
pub fn encode_update(update: &foca::Member<Member>, out: &mut Vec<u8>) {
    update.id().encode(out);
    out.extend_from_slice(&update.incarnation().to_le_bytes());
    out.push(match update.state() {
        State::Alive => 0,
        State::Suspect => 1,
        State::Down => 2,
    });
}

/// Decodes one foca cluster update, returning it and the bytes used.
pub fn decode_update(buf: &[u8]) -> Result<(foca::Member<Member>, usize), CodecError> {
    let (id, mut used) = Member::decode(buf)?;
    let mut reader = Reader::new(&buf[used..]);
    let incarnation = u16::from_le_bytes(reader.array("update_incarnation")?);
    let state = match reader.u8("update_state")? {
        0 => State::Alive,
        1 => State::Suspect,
        2 => State::Down,
        tag => return Err(CodecError::UnknownState { tag }),
    };
    used += reader.used();
    Ok((foca::Member::new(id, incarnation, state), used))
}

/// Copies `bytes` into `buf` only if all of them fit (foca's "never leave it dirty").
fn put_all(bytes: &[u8], mut buf: impl BufMut) -> Result<(), CodecError> {
    let available = buf.remaining_mut();
    if bytes.len() > available {
        return Err(CodecError::BufferFull {
            needed: bytes.len(),
            available,
        });
    }
    buf.put_slice(bytes);
    Ok(())
}

impl foca::Codec<Member> for WireCodec {
    type Error = CodecError;

    fn encode_header(
        &mut self,
        header: &Header<Member>,
        buf: impl BufMut,
    ) -> Result<(), CodecError> {
        let mut scratch = Vec::with_capacity(crate::member::MEMBER_BYTES_MAX * 3 + 8);
        encode_header(header, &mut scratch);
        put_all(&scratch, buf)
    }

    fn decode_header(&mut self, mut buf: impl Buf) -> Result<Header<Member>, CodecError> {
        // foca hands us a contiguous slice (documented on `Codec`).
        let (header, used) = decode_header(buf.chunk())?;
        buf.advance(used);
        Ok(header)
    }

    fn encode_member(
        &mut self,
        member: &foca::Member<Member>,
        buf: impl BufMut,
    ) -> Result<(), CodecError> {
        let mut scratch = Vec::with_capacity(crate::member::MEMBER_BYTES_MAX + 3);
        encode_update(member, &mut scratch);
        put_all(&scratch, buf)
    }

    fn decode_member(&mut self, mut buf: impl Buf) -> Result<foca::Member<Member>, CodecError> {
        let (update, used) = decode_update(buf.chunk())?;
        buf.advance(used);
        Ok(update)
    }
}
