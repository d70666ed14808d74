//! The node metadata spread by gossip, its wire layout and its foca `Identity`.
//!
//! Wire layout of one [`Member`] (little-endian, no padding):
//!
//! ```text
//! offset size field
//! 0      4    node_id            u32
//! 4      4    incarnation        u32
//! 8      2    shard_count        u16
//! 10     4    load_msgs_per_s    f32 (IEEE-754 bits; finite, >= 0)
//! 14     1    client_addr_len    u8 (<= ADDR_BYTES_MAX)
//! 15     n    client_addr        UTF-8
//! ..     1    http_addr_len      u8 (<= ADDR_BYTES_MAX)
//! ..     n    http_addr          UTF-8
//! ..     1    gossip_addr_len    u8 (<= ADDR_BYTES_MAX)
//! ..     n    gossip_addr        UTF-8
//! ```
//!
//! The numeric part is fixed-width; addresses are length-prefixed with a bound
//! that is checked before anything is allocated, so an encoded member is never
//! longer than [`MEMBER_BYTES_MAX`] bytes.

use crate::error::CodecError;

/// Longest accepted advertised address, in bytes (`[v6 address%scope]:port` fits).
pub const ADDR_BYTES_MAX: usize = 64;
/// Size of the fixed-width numeric prefix of an encoded member.
pub const MEMBER_FIXED_BYTES: usize = 4 + 4 + 2 + 4;
/// Largest possible encoded member.
pub const MEMBER_BYTES_MAX: usize = MEMBER_FIXED_BYTES + 3 * (1 + ADDR_BYTES_MAX);

/// Node id of [`Member::seed`] stand-ins: never a real node's id.
pub const SEED_NODE_ID: u32 = u32::MAX;

/// One cluster node as seen by gossip: its identity plus the metadata others need
/// to reach it and to weigh it for placement.
///
/// Two members with the same `gossip_addr` are the same node (foca's `Addr`); the
/// one with the higher `(incarnation, node_id)` wins a conflict, so a node that
/// restarts must come back with a higher incarnation (boot time in seconds works).
#[derive(Debug, Clone)]
pub struct Member {
    node_id: u32,
    incarnation: u32,
    client_addr: String,
    http_addr: String,
    gossip_addr: String,
    shard_count: u16,
    load_msgs_per_s: f32,
}

impl PartialEq for Member {
    fn eq(&self, other: &Self) -> bool {
        self.node_id == other.node_id
            && self.incarnation == other.incarnation
            && self.client_addr == other.client_addr
            && self.http_addr == other.http_addr
            && self.gossip_addr == other.gossip_addr
            && self.shard_count == other.shard_count
            // Bit equality keeps `Eq` lawful; constructors reject NaN anyway.
            && self.load_msgs_per_s.to_bits() == other.load_msgs_per_s.to_bits()
    }
}

impl Eq for Member {}

/// Builder-style parameters for [`Member::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct MemberSpec<'a> {
    /// Cluster-unique node id (must not be [`SEED_NODE_ID`]).
    pub node_id: u32,
    /// Incarnation of this identity; bump it on every restart.
    pub incarnation: u32,
    /// Advertised address of the client protocol listener.
    pub client_addr: &'a str,
    /// Advertised address of the HTTP/stats listener.
    pub http_addr: &'a str,
    /// Advertised address of the UDP gossip socket; datagrams for this member go here.
    pub gossip_addr: &'a str,
    /// Number of shards (cores) this node runs.
    pub shard_count: u16,
    /// Recent ingest rate, messages per second (finite, >= 0).
    pub load_msgs_per_s: f32,
}

impl Member {
    /// Validates and builds a member.
    pub fn new(spec: MemberSpec<'_>) -> Result<Self, CodecError> {
        if spec.node_id == SEED_NODE_ID {
            return Err(CodecError::ReservedNodeId {
                node_id: spec.node_id,
            });
        }
        check_load(spec.load_msgs_per_s)?;
        for (field, addr) in [
            ("client_addr", spec.client_addr),
            ("http_addr", spec.http_addr),
            ("gossip_addr", spec.gossip_addr),
        ] {
            check_addr_len(field, addr.len())?;
        }
        Ok(Self {
            node_id: spec.node_id,
            incarnation: spec.incarnation,
            client_addr: spec.client_addr.to_owned(),
            http_addr: spec.http_addr.to_owned(),
            gossip_addr: spec.gossip_addr.to_owned(),
            shard_count: spec.shard_count,
            load_msgs_per_s: spec.load_msgs_per_s,
        })
    }

    /// A stand-in for a seed known only by its gossip address (`--seeds host:port`).
    ///
    /// Announcing to it works because foca accepts an `Announce` whose destination
    /// shares the receiver's address; the real identity is learned from the reply.
    pub fn seed(gossip_addr: &str) -> Result<Self, CodecError> {
        check_addr_len("gossip_addr", gossip_addr.len())?;
        Ok(Self {
            node_id: SEED_NODE_ID,
            incarnation: 0,
            client_addr: String::new(),
            http_addr: String::new(),
            gossip_addr: gossip_addr.to_owned(),
            shard_count: 0,
            load_msgs_per_s: 0.0,
        })
    }

    /// Cluster-unique node id.
    pub fn node_id(&self) -> u32 {
        self.node_id
    }
    /// Incarnation of this identity.
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }
    /// Advertised client protocol address.
    pub fn client_addr(&self) -> &str {
        &self.client_addr
    }
    /// Advertised HTTP/stats address.
    pub fn http_addr(&self) -> &str {
        &self.http_addr
    }
    /// Advertised UDP gossip address (where datagrams for this member go).
    pub fn gossip_addr(&self) -> &str {
        &self.gossip_addr
    }
    /// Number of shards this node runs.
    pub fn shard_count(&self) -> u16 {
        self.shard_count
    }
    /// Ingest rate advertised by the node, messages per second.
    pub fn load_msgs_per_s(&self) -> f32 {
        self.load_msgs_per_s
    }
    /// True for a [`Member::seed`] address-only seed.
    pub fn is_address_only_seed(&self) -> bool {
        self.node_id == SEED_NODE_ID
    }

    /// The same node with new load metadata and the next incarnation, or `None`
    /// when the incarnation is exhausted or the load is not a finite rate >= 0.
    pub fn with_load(&self, load_msgs_per_s: f32) -> Option<Self> {
        check_load(load_msgs_per_s).ok()?;
        let mut next = self.clone();
        next.incarnation = self.incarnation.checked_add(1)?;
        next.load_msgs_per_s = load_msgs_per_s;
        Some(next)
    }

    /// Exact encoded size of this member.
    pub fn encoded_len(&self) -> usize {
        MEMBER_FIXED_BYTES
            + 3
            + self.client_addr.len()
            + self.http_addr.len()
            + self.gossip_addr.len()
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.node_id.to_le_bytes());
        out.extend_from_slice(&self.incarnation.to_le_bytes());
        out.extend_from_slice(&self.shard_count.to_le_bytes());
        out.extend_from_slice(&self.load_msgs_per_s.to_bits().to_le_bytes());
        for addr in [&self.client_addr, &self.http_addr, &self.gossip_addr] {
            // Constructors and the decoder bound every address by ADDR_BYTES_MAX (< 256).
            let len = u8::try_from(addr.len()).expect("address length bounded at construction");
            out.push(len);
            out.extend_from_slice(addr.as_bytes());
        }
    }

    /// Decodes one member from the front of `buf`, returning it and the bytes used.
    pub fn decode(buf: &[u8]) -> Result<(Self, usize), CodecError> {
        let mut reader = Reader::new(buf);
        let node_id = u32::from_le_bytes(reader.array("node_id")?);
        let incarnation = u32::from_le_bytes(reader.array("incarnation")?);
        let shard_count = u16::from_le_bytes(reader.array("shard_count")?);
        let load_msgs_per_s = f32::from_bits(u32::from_le_bytes(reader.array("load_msgs_per_s")?));
        check_load(load_msgs_per_s)?;
        let client_addr = reader.addr("client_addr")?;
        let http_addr = reader.addr("http_addr")?;
        let gossip_addr = reader.addr("gossip_addr")?;
        let member = Self {
            node_id,
            incarnation,
            client_addr,
            http_addr,
            gossip_addr,
            shard_count,
            load_msgs_per_s,
        };
        Ok((member, reader.used()))
    }
}

/// A member as a foca identity: renewable, and the same member as another identity when their
/// [`MemberAddr`]s match.
impl foca::Identity for Member {
    type Addr = MemberAddr;

    /// Auto-rejoin after being declared down: the same node, next incarnation.
    fn renew(&self) -> Option<Self> {
        let mut next = self.clone();
        next.incarnation = self.incarnation.checked_add(1)?;
        Some(next)
    }

    fn addr(&self) -> MemberAddr {
        MemberAddr {
            node_id: self.node_id,
            gossip_addr: self.gossip_addr.clone(),
        }
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.incarnation, self.node_id) > (adversary.incarnation, adversary.node_id)
    }
}

/// Foca's notion of "the same member": the same node id, or (for seeds, which have no node id
/// yet) the same gossip address. So a node that restarts replaces its previous identity (the
/// higher incarnation wins) even when it comes back on another gossip address, instead of
/// leaving it behind: a stale identity stayed in everyone's probe rotation as a suspect until
/// declared down, and with a few of them a crashed node's current identity was probed only
/// every several seconds, delaying its detection. Foca only ever compares two of these with
/// `==`.
#[derive(Clone, Debug)]
pub struct MemberAddr {
    node_id: u32,
    gossip_addr: String,
}

impl PartialEq for MemberAddr {
    fn eq(&self, other: &Self) -> bool {
        let real = self.node_id != SEED_NODE_ID && other.node_id != SEED_NODE_ID;
        if real {
            self.node_id == other.node_id
        } else {
            self.gossip_addr == other.gossip_addr
        }
    }
}

fn check_load(load_msgs_per_s: f32) -> Result<(), CodecError> {
    if load_msgs_per_s.is_finite() && load_msgs_per_s >= 0.0 {
        Ok(())
    } else {
        Err(CodecError::InvalidLoad {
            bits: load_msgs_per_s.to_bits(),
        })
    }
}

fn check_addr_len(field: &'static str, len: usize) -> Result<(), CodecError> {
    if len > ADDR_BYTES_MAX {
        Err(CodecError::AddrTooLong {
            field,
            len,
            max: ADDR_BYTES_MAX,
        })
    } else {
        Ok(())
    }
}

/// Bounds-checked cursor over a received datagram.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn used(&self) -> usize {
        self.pos
    }

    pub(crate) fn bytes(
        &mut self,
        field: &'static str,
        len: usize,
    ) -> Result<&'a [u8], CodecError> {
        let available = self.buf.len() - self.pos;
        if len > available {
            return Err(CodecError::Truncated {
                field,
                needed: len,
                available,
            });
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(field, N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, CodecError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn addr(&mut self, field: &'static str) -> Result<String, CodecError> {
        let len = usize::from(self.u8(field)?);
        // Checked before the copy: a hostile length never drives an allocation.
        check_addr_len(field, len)?;
        let raw = self.bytes(field, len)?;
        let text = std::str::from_utf8(raw).map_err(|_| CodecError::InvalidUtf8 { field })?;
        Ok(text.to_owned())
    }
}
