//! AlterInSync (api 17) bodies: a partition leader asking the metadata controller to commit a
//! new in-sync replica set, and the controller's answer. Both carry an `in_sync` node list
//! capped at [`PartitionPlacement::NODES_MAX`] entries (checked before anything is allocated
//! when decoding, refused when encoding).

use super::error::EncodeError;
use super::request::Request;
use super::response::Response;
use super::types::{ApiKey, ErrorCode, PartitionPlacement};
use super::wire::{ReadResult, Reader, WriteResult, Writer};

/// Encoded size of one node id of an `in_sync` list.
const NODE_ID_BYTES: usize = 4;

/// Writes `in_sync: list<u32>`, refusing more than [`PartitionPlacement::NODES_MAX`] entries.
pub(crate) fn write_nodes(w: &mut Writer<'_>, in_sync: &[u32]) -> WriteResult {
    w.capped_count("in_sync", in_sync.len(), PartitionPlacement::NODES_MAX)?;
    for node in in_sync {
        w.u32(*node);
    }
    Ok(())
}

fn read_nodes(r: &mut Reader<'_>) -> ReadResult<Vec<u32>> {
    r.capped_list(
        "in_sync",
        PartitionPlacement::NODES_MAX,
        NODE_ID_BYTES,
        |r| r.u32("in_sync"),
    )
}

/// Writes the request's `successor u32` from
/// [`ApiKey::ALTER_IN_SYNC_SUCCESSOR_VERSION`] on; below it a successor cannot be expressed.
pub(crate) fn write_successor(w: &mut Writer<'_>, version: u16, successor: u32) -> WriteResult {
    if version >= ApiKey::ALTER_IN_SYNC_SUCCESSOR_VERSION {
        w.u32(successor);
        return Ok(());
    }
    if successor == 0 {
        return Ok(());
    }
    Err(EncodeError::FieldNeedsVersion {
        api: ApiKey::AlterInSync,
        version,
        field: "successor",
        required_version: ApiKey::ALTER_IN_SYNC_SUCCESSOR_VERSION,
    })
}

/// Decodes an AlterInSync request body: `topic str, partition u32, leader u32, leader_epoch
/// u32, isr_version u32, in_sync list<u32>`, then from v1 on `successor u32`.
pub(crate) fn read_request<'a>(r: &mut Reader<'a>, version: u16) -> ReadResult<Request<'a>> {
    Ok(Request::AlterInSync {
        topic: r.str("topic")?,
        partition: r.u32("partition")?,
        leader: r.u32("leader")?,
        leader_epoch: r.u32("leader_epoch")?,
        isr_version: r.u32("isr_version")?,
        in_sync: read_nodes(r)?,
        successor: if version >= ApiKey::ALTER_IN_SYNC_SUCCESSOR_VERSION {
            r.u32("successor")?
        } else {
            0
        },
    })
}

/// Decodes an AlterInSync answer after its common head: `isr_version u32, in_sync list<u32>`.
pub(crate) fn read_response<'a>(
    r: &mut Reader<'a>,
    error: ErrorCode,
    message: &'a str,
) -> ReadResult<Response<'a>> {
    Ok(Response::AlterInSync {
        error,
        message,
        isr_version: r.u32("isr_version")?,
        in_sync: read_nodes(r)?,
    })
}
