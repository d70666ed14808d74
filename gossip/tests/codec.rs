//! Wire codec: golden bytes, property round trips, adversarial input.

use std::time::Duration;

use foca::{Header, Message, State};
use gossip::codec::{decode_header, decode_update, encode_header, encode_update};
use gossip::{
    CodecError, Member, MemberSpec, Membership, ADDR_BYTES_MAX, DATAGRAM_BYTES_MAX,
    MEMBER_BYTES_MAX, MEMBER_FIXED_BYTES, WIRE_VERSION,
};
use proptest::prelude::*;

const _: () = assert!(MEMBER_FIXED_BYTES == 14);
const _: () = assert!(MEMBER_BYTES_MAX == 14 + 3 * 65);
// A header (two members + target member + fixed bytes) always fits a datagram.
const _: () = assert!(3 * MEMBER_BYTES_MAX + 1 + 2 + 1 + 1 < DATAGRAM_BYTES_MAX);

fn member(node_id: u32, incarnation: u32, gossip_addr: &str) -> Member {
    Member::new(MemberSpec {
        node_id,
        incarnation,
        client_addr: "c:1",
        http_addr: "h:2",
        gossip_addr,
        shard_count: 3,
        load_msgs_per_s: 1.5,
    })
    .expect("valid member")
}

#[test]
fn member_golden_bytes() {
    let mut out = Vec::new();
    member(0x0102_0304, 7, "g:3").encode(&mut out);
    #[rustfmt::skip]
    let golden: &[u8] = &[
        0x04, 0x03, 0x02, 0x01,       // node_id LE
        0x07, 0x00, 0x00, 0x00,       // incarnation LE
        0x03, 0x00,                   // shard_count LE
        0x00, 0x00, 0xC0, 0x3F,       // 1.5f32 LE
        3, b'c', b':', b'1',          // client_addr
        3, b'h', b':', b'2',          // http_addr
        3, b'g', b':', b'3',          // gossip_addr
    ];
    assert_eq!(out, golden);
    assert_eq!(out.len(), member(0x0102_0304, 7, "g:3").encoded_len());
    let (decoded, used) = Member::decode(&out).expect("decode golden");
    assert_eq!(used, golden.len());
    assert_eq!(decoded, member(0x0102_0304, 7, "g:3"));
}

#[test]
fn header_golden_prefix_and_tag() {
    let header = Header {
        src: member(1, 1, "a"),
        src_incarnation: 0x0203,
        dst: member(2, 1, "b"),
        message: Message::Ping(9),
    };
    let mut out = Vec::new();
    encode_header(&header, &mut out);
    assert_eq!(out[0], WIRE_VERSION);
    let src_len = header.src.encoded_len();
    assert_eq!(&out[1 + src_len..1 + src_len + 2], &[0x03, 0x02]);
    assert_eq!(&out[out.len() - 2..], &[0, 9]); // tag Ping, probe 9
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let header = Header {
        src: member(1, 1, "127.0.0.1:7946"),
        src_incarnation: 4,
        dst: member(2, 9, "127.0.0.2:7946"),
        message: Message::PingReq {
            target: member(3, 2, "127.0.0.3:7946"),
            probe_number: 5,
        },
    };
    let mut out = Vec::new();
    encode_header(&header, &mut out);
    for cut in 0..out.len() {
        let err = decode_header(&out[..cut]).expect_err("truncated header must fail");
        assert!(
            matches!(err, CodecError::Truncated { .. }),
            "cut {cut}: {err}"
        );
    }
    let mut update = Vec::new();
    encode_update(
        &foca::Member::new(member(4, 1, "x"), 3, State::Suspect),
        &mut update,
    );
    for cut in 0..update.len() {
        assert!(decode_update(&update[..cut]).is_err(), "cut {cut}");
    }
}

#[test]
fn hostile_lengths_and_tags_are_rejected() {
    let mut out = Vec::new();
    member(1, 1, "a").encode(&mut out);
    // client_addr length byte claims 255 bytes: rejected by the bound, not by running out.
    out[MEMBER_FIXED_BYTES] = 255;
    assert_eq!(
        Member::decode(&out),
        Err(CodecError::AddrTooLong {
            field: "client_addr",
            len: 255,
            max: ADDR_BYTES_MAX
        })
    );

    let mut bad_utf8 = Vec::new();
    member(1, 1, "a").encode(&mut bad_utf8);
    bad_utf8[MEMBER_FIXED_BYTES + 1] = 0xFF;
    assert_eq!(
        Member::decode(&bad_utf8),
        Err(CodecError::InvalidUtf8 {
            field: "client_addr"
        })
    );

    let mut nan = Vec::new();
    member(1, 1, "a").encode(&mut nan);
    nan[10..14].copy_from_slice(&f32::NAN.to_bits().to_le_bytes());
    assert!(matches!(
        Member::decode(&nan),
        Err(CodecError::InvalidLoad { .. })
    ));

    let header = Header {
        src: member(1, 1, "a"),
        src_incarnation: 0,
        dst: member(2, 1, "b"),
        message: Message::Gossip,
    };
    let mut out = Vec::new();
    encode_header(&header, &mut out);
    let mut wrong_version = out.clone();
    wrong_version[0] = WIRE_VERSION + 1;
    assert_eq!(
        decode_header(&wrong_version).map(|_| ()),
        Err(CodecError::WrongVersion {
            found: WIRE_VERSION + 1,
            expected: WIRE_VERSION
        })
    );
    let last = out.len() - 1;
    out[last] = 200;
    assert_eq!(
        decode_header(&out).map(|_| ()),
        Err(CodecError::UnknownMessage { tag: 200 })
    );

    let mut update = Vec::new();
    encode_update(
        &foca::Member::new(member(4, 1, "x"), 3, State::Alive),
        &mut update,
    );
    let last = update.len() - 1;
    update[last] = 3;
    assert_eq!(
        decode_update(&update).map(|_| ()),
        Err(CodecError::UnknownState { tag: 3 })
    );
}

#[test]
fn constructors_enforce_the_wire_limits() {
    let long = "x".repeat(ADDR_BYTES_MAX + 1);
    let spec = MemberSpec {
        node_id: 1,
        incarnation: 0,
        client_addr: &long,
        http_addr: "h",
        gossip_addr: "g",
        shard_count: 1,
        load_msgs_per_s: 0.0,
    };
    assert!(matches!(
        Member::new(spec.clone()),
        Err(CodecError::AddrTooLong {
            field: "client_addr",
            ..
        })
    ));
    let spec = MemberSpec {
        client_addr: "c",
        load_msgs_per_s: -1.0,
        ..spec
    };
    assert!(matches!(
        Member::new(spec.clone()),
        Err(CodecError::InvalidLoad { .. })
    ));
    let spec = MemberSpec {
        load_msgs_per_s: 0.0,
        node_id: gossip::SEED_NODE_ID,
        ..spec
    };
    assert!(matches!(
        Member::new(spec),
        Err(CodecError::ReservedNodeId { .. })
    ));
    assert!(Member::seed(&long).is_err());
}

#[test]
fn membership_rejects_garbage_and_oversized_datagrams_and_keeps_working() {
    let mut node = Membership::new(member(1, 1, "a"), Membership::recommended_config(), 1);
    let now = Duration::ZERO;
    assert!(node.handle_datagram(&[], now).is_err());
    assert!(node.handle_datagram(&[WIRE_VERSION, 0xFF], now).is_err());
    assert!(node
        .handle_datagram(&vec![0u8; DATAGRAM_BYTES_MAX + 1], now)
        .is_err());
    // Still usable afterwards: an announce from a peer is accepted.
    let mut peer = Membership::new(member(2, 1, "b"), Membership::recommended_config(), 2);
    let announce = peer
        .join(&[Member::seed("a").expect("seed")], now)
        .expect("join");
    let feed = node
        .handle_datagram(&announce.datagrams[0].bytes, now)
        .expect("announce accepted");
    assert_eq!(feed.datagrams.len(), 1);
    assert_eq!(node.active_members(), vec![peer.identity().clone()]);
}

fn arb_addr() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-z0-9.:\\[\\]]{0,64}").expect("regex")
}

prop_compose! {
    fn arb_member()(
        node_id in 0u32..u32::MAX,
        incarnation in any::<u32>(),
        client in arb_addr(),
        http in arb_addr(),
        gossip in arb_addr(),
        shard_count in any::<u16>(),
        load in 0.0f32..1.0e9,
    ) -> Member {
        Member::new(MemberSpec {
            node_id, incarnation, client_addr: &client, http_addr: &http, gossip_addr: &gossip,
            shard_count, load_msgs_per_s: load,
        }).expect("strategy yields valid members")
    }
}

fn arb_message() -> impl Strategy<Value = Message<Member>> {
    prop_oneof![
        any::<u8>().prop_map(Message::Ping),
        any::<u8>().prop_map(Message::Ack),
        (arb_member(), any::<u8>()).prop_map(|(target, probe_number)| Message::PingReq {
            target,
            probe_number
        }),
        (arb_member(), any::<u8>()).prop_map(|(origin, probe_number)| Message::IndirectPing {
            origin,
            probe_number
        }),
        (arb_member(), any::<u8>()).prop_map(|(target, probe_number)| Message::IndirectAck {
            target,
            probe_number
        }),
        (arb_member(), any::<u8>()).prop_map(|(origin, probe_number)| Message::ForwardedAck {
            origin,
            probe_number
        }),
        Just(Message::Announce),
        Just(Message::Feed),
        Just(Message::Gossip),
        Just(Message::Broadcast),
        Just(Message::TurnUndead),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn member_round_trips(m in arb_member(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut out = Vec::new();
        m.encode(&mut out);
        prop_assert_eq!(out.len(), m.encoded_len());
        prop_assert!(out.len() <= MEMBER_BYTES_MAX);
        out.extend_from_slice(&tail);
        let (back, used) = Member::decode(&out).expect("round trip");
        prop_assert_eq!(back, m.clone());
        prop_assert_eq!(used, m.encoded_len());
    }

    #[test]
    fn header_round_trips(src in arb_member(), dst in arb_member(), inc in any::<u16>(), message in arb_message()) {
        let header = Header { src, src_incarnation: inc, dst, message };
        let mut out = Vec::new();
        encode_header(&header, &mut out);
        let (back, used) = decode_header(&out).expect("round trip");
        prop_assert_eq!(used, out.len());
        prop_assert_eq!(back, header);
    }

    #[test]
    fn update_round_trips(m in arb_member(), inc in any::<u16>(), state in 0u8..3) {
        let state = [State::Alive, State::Suspect, State::Down][usize::from(state)];
        let update = foca::Member::new(m, inc, state);
        let mut out = Vec::new();
        encode_update(&update, &mut out);
        let (back, used) = decode_update(&out).expect("round trip");
        prop_assert_eq!(used, out.len());
        prop_assert_eq!(back, update);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode_header(&bytes);
        let _ = decode_update(&bytes);
        let _ = Member::decode(&bytes);
        let mut node = Membership::new(member(1, 1, "a"), Membership::recommended_config(), 1);
        let _ = node.handle_datagram(&bytes, Duration::ZERO);
    }

    #[test]
    fn corrupted_valid_datagrams_never_panic(src in arb_member(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let header = Header { src, src_incarnation: 1, dst: member(1, 1, "a"), message: Message::Gossip };
        let mut out = Vec::new();
        encode_header(&header, &mut out);
        for (pos, value) in flips {
            let len = out.len();
            out[pos % len] = value;
        }
        let mut node = Membership::new(member(1, 1, "a"), Membership::recommended_config(), 1);
        let _ = node.handle_datagram(&out, Duration::ZERO);
    }
}

#[test]
fn a_node_restarted_on_another_gossip_address_replaces_its_old_identity() {
    let now = Duration::ZERO;
    let mut a = Membership::new(member(1, 1, "a"), Membership::recommended_config(), 1);
    let mut b = Membership::new(member(2, 1, "b"), Membership::recommended_config(), 2);
    let announce = b
        .join(&[Member::seed("a").expect("seed")], now)
        .expect("join");
    a.handle_datagram(&announce.datagrams[0].bytes, now)
        .expect("announce accepted");
    assert_eq!(a.active_members(), vec![b.identity().clone()]);
    // Node 2 restarts: a new process, a later incarnation, another gossip port.
    let mut b2 = Membership::new(member(2, 5, "b2"), Membership::recommended_config(), 3);
    let announce = b2
        .join(&[Member::seed("a").expect("seed")], now)
        .expect("join");
    a.handle_datagram(&announce.datagrams[0].bytes, now)
        .expect("announce accepted");
    let twos: Vec<Member> = a
        .members()
        .into_iter()
        .map(|(m, _)| m)
        .filter(|m| m.node_id() == 2)
        .collect();
    assert_eq!(
        twos,
        vec![b2.identity().clone()],
        "one identity per node id"
    );
}
