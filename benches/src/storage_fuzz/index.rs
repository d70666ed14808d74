//! Fuzzed `.index` / `.timeindex` files beside real, sealed and checkpointed segments.

use std::sync::OnceLock;

use storage::format::{
    IndexFileHeader, SegmentHeader, INDEX_FILE_HEADER_BYTES, OFFSET_INDEX_ENTRY_BYTES,
    OFFSET_INDEX_MAGIC, TIME_INDEX_ENTRY_BYTES, TIME_INDEX_MAGIC,
};
use storage::{LogConfig, PartitionLog, Record};

use super::{read_everything, scratch_dir, HarnessError, Outcome};

/// `(file name, contents)` of every file in a partition directory.
pub(super) type Files = Vec<(String, Vec<u8>)>;

/// Segments of the template log. It is closed, so every segment is sealed, indexed and below the
/// checkpoint, which is what makes recovery trust (load) the index files instead of scanning.
const TEMPLATE_SEGMENTS: u64 = 3;
/// Timestamp of the template's first record; each batch is 10 ms later.
const TEMPLATE_FIRST_TS_MS: i64 = 1_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096,
        // Small enough that every sealed segment has several index entries.
        index_interval_bytes: 400,
        ..LogConfig::default()
    }
}

/// The files of a partition directory, captured once per process.
pub(super) fn template() -> &'static [(String, Vec<u8>)] {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| build_template().expect("build the template log"))
}

fn build_template() -> Result<Files, HarnessError> {
    let dir = scratch_dir()?;
    let (mut log, _) = PartitionLog::open(dir.path(), config())?;
    let value = [0x5au8; 100];
    let mut batch = 0i64;
    while log.stats().segments < TEMPLATE_SEGMENTS {
        let ts = TEMPLATE_FIRST_TS_MS + batch * 10;
        let keys: [&[u8]; 3] = [b"a", b"b", b"c"];
        let records = keys.map(|k| Record {
            key: Some(k),
            value: &value,
            headers: &[],
            timestamp_ms: ts,
            ttl_ms: 0,
        });
        log.append(&records, None, ts)?;
        batch += 1;
    }
    if let Some(job) = log.begin_flush() {
        let done = job.run()?;
        log.complete_flush(done);
    }
    log.close()?;
    let mut files = Vec::new();
    let listing = std::fs::read_dir(dir.path()).map_err(HarnessError::io("list", dir.path()))?;
    for entry in listing {
        let entry = entry.map_err(HarnessError::io("list", dir.path()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).map_err(HarnessError::io("read", entry.path()))?;
        files.push((name, bytes));
    }
    files.sort();
    Ok(files)
}

/// Bytes of one index file: raw input, or input entries under a header that verifies.
fn index_file(
    magic: u64,
    seq: u64,
    entry_bytes: usize,
    raw: &[u8],
    fix: bool,
    segment: &SegmentHeader,
) -> Vec<u8> {
    if !fix {
        return raw.to_vec();
    }
    let entries = &raw[..raw.len() - raw.len() % entry_bytes];
    let mut file = vec![0u8; INDEX_FILE_HEADER_BYTES];
    IndexFileHeader {
        magic,
        segment_seq: seq,
        entry_count: (entries.len() / entry_bytes) as u32,
        entries_crc32c: crc32c::crc32c(entries),
        // The segment header's CRC binds the index to this version of the segment.
        segment_header_crc32c: segment.crc32c(),
    }
    .encode(&mut file);
    file.extend_from_slice(entries);
    file
}

/// Replaces the index files of one sealed segment of a real log with `data` (after optional
/// fix-ups), then opens the log, reads and decodes everything, and checks
/// `offset_for_timestamp` against a full scan. Input: byte 0 = mode (bit 0: valid headers bound to
/// the segment, bit 1: which sealed segment), bytes 1..3 = u16 LE length of the `.index` part,
/// bytes 3.. = the `.index` part, then the `.timeindex` part.
pub fn check_index_files(data: &[u8]) -> Outcome {
    let mode = data.first().copied().unwrap_or(0);
    let split = match data.get(1..3) {
        Some(b) => usize::from(u16::from_le_bytes([b[0], b[1]])),
        None => 0,
    };
    let rest = data.get(3..).unwrap_or(&[]);
    let (offset_raw, time_raw) = rest.split_at(split.min(rest.len()));
    let fix = mode & 1 != 0;
    let seq = u64::from(mode >> 1 & 1);

    let dir = scratch_dir().expect("scratch dir for the fuzzed partition");
    let seg_name = format!("{seq:020}.seg");
    let mut segment = None;
    for (name, bytes) in template() {
        std::fs::write(dir.path().join(name), bytes).expect("write template file");
        if *name == seg_name {
            segment = SegmentHeader::decode(bytes).ok();
        }
    }
    let segment = segment.expect("the template has this sealed segment, with a valid header");
    let offset_file = index_file(
        OFFSET_INDEX_MAGIC,
        seq,
        OFFSET_INDEX_ENTRY_BYTES,
        offset_raw,
        fix,
        &segment,
    );
    let time_file = index_file(
        TIME_INDEX_MAGIC,
        seq,
        TIME_INDEX_ENTRY_BYTES,
        time_raw,
        fix,
        &segment,
    );
    std::fs::write(dir.path().join(format!("{seq:020}.index")), offset_file).expect("write index");
    std::fs::write(dir.path().join(format!("{seq:020}.timeindex")), time_file)
        .expect("write timeindex");

    let mut out = Outcome::default();
    let log = match PartitionLog::open(dir.path(), config()) {
        Ok((log, _report)) => log,
        Err(e) => {
            out.note_error(&e);
            return out;
        }
    };
    out.opened = true;
    let Some(scanned) = read_everything(&log, &mut out) else {
        return out;
    };
    let probes = [
        i64::MIN,
        TEMPLATE_FIRST_TS_MS,
        TEMPLATE_FIRST_TS_MS + 155,
        TEMPLATE_FIRST_TS_MS + 10_000,
        i64::from_le_bytes(
            rest.get(..8)
                .and_then(|b| b.try_into().ok())
                .unwrap_or([0; 8]),
        ),
    ];
    for ts in probes {
        let expected = scanned.iter().find(|(_, t)| *t >= ts).map(|(o, _)| *o);
        match log.offset_for_timestamp(ts) {
            Ok(found) => assert_eq!(found, expected, "offset_for_timestamp({ts})"),
            Err(e) => out.note_error(&e),
        }
    }
    out
}
