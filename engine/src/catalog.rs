//! The topic catalog: which topics exist, their ids and settings, persisted in `<data-dir>/catalog`.
//!
//! The file is small and rewritten whole on every change (write to a temporary file, fdatasync,
//! rename, fsync the directory), so a crash leaves either the old or the new catalog. Its last line
//! carries a CRC32C of everything before it; a damaged catalog is refused with a message rather than
//! silently dropping topics. Format: `docs/catalog-format.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

const HEADER: &str = "sprawl-catalog v1";
/// Longest topic name accepted.
pub const TOPIC_NAME_BYTES_MAX: usize = 200;
/// Most partitions one topic may have.
pub const PARTITIONS_MAX: u32 = 4096;

/// Settings of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicSettings {
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub segment_bytes: Option<u64>,
    pub compacted: bool,
    pub default_ttl_ms: Option<u64>,
    /// Cold tier: upload sealed segments once their newest record is this old.
    pub tier_after_ms: Option<u64>,
    /// Cold tier: keep at most this many bytes of sealed segments locally.
    pub local_retention_bytes: Option<u64>,
}

/// One topic as recorded in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    /// Random id chosen at creation; a deleted and re-created topic gets a new one, so message
    /// ids and data directories never collide across incarnations.
    pub topic_id: u64,
    pub partitions: u32,
    pub settings: TopicSettings,
    /// Created through the cluster's metadata controller (its topic id is the metadata's); the
    /// node adds and removes such topics as the metadata does. `false`: this node's own topic.
    pub cluster: bool,
}

impl TopicMeta {
    /// Directory holding this topic's partitions, below the data directory.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        data_dir
            .join("topics")
            .join(format!("{}-{:016x}", self.name, self.topic_id))
    }
}

/// Errors reading or writing the catalog. The in-memory catalog is unchanged when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog I/O on {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("catalog {path} is damaged at line {line}: {reason}; restore it from a backup or move it away to start empty (topic data stays in {path}/../topics)")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Checks a topic name: 1 to 200 bytes of ASCII letters, digits, `.`, `_` and `-`, not `.`/`..`,
/// and not starting with `__` (reserved for internal topics; the one internal topic, the consumer
/// group offsets of a cluster, is accepted).
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(format!(
            "topic name must be 1 to {TOPIC_NAME_BYTES_MAX} bytes long, got {}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be '.' or '..'".into());
    }
    if name.starts_with("__") && name != crate::groups::OFFSETS_TOPIC {
        return Err("topic names starting with '__' are reserved for internal topics".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name {name:?} contains {c:?}; use only ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// The set of topics, keyed by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub version: u64,
    pub topics: BTreeMap<String, TopicMeta>,
}

impl Catalog {
    /// Loads `<data_dir>/catalog`; a missing file is an empty catalog.
    pub fn load(data_dir: &Path) -> Result<Catalog, CatalogError> {
        let path = data_dir.join("catalog");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Catalog::default()),
            Err(source) => {
                return Err(CatalogError::Io {
                    path,
                    op: "read",
                    source,
                })
            }
        };
        parse(&text).map_err(|(line, reason)| CatalogError::Corrupt { path, line, reason })
    }

    /// Writes the catalog atomically to `<data_dir>/catalog`.
    pub fn store(&self, data_dir: &Path) -> Result<(), CatalogError> {
        let path = data_dir.join("catalog");
        let tmp = data_dir.join("catalog.tmp");
        let io = |op: &'static str, p: &Path| {
            let p = p.to_path_buf();
            move |source| CatalogError::Io {
                path: p,
                op,
                source,
            }
        };
        let text = render(self);
        let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
        f.sync_data().map_err(io("fdatasync", &tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io("rename", &path))?;
        File::open(data_dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync directory", data_dir))?;
        Ok(())
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn render(c: &Catalog) -> String {
    let mut s = format!("{HEADER}\nversion {}\n", c.version);
    for t in c.topics.values() {
        let st = &t.settings;
        let _ = writeln!(
            s,
            "topic {} id={:016x} partitions={} retention_ms={} retention_bytes={} segment_bytes={} compacted={} default_ttl_ms={} tier_after_ms={} local_retention_bytes={} cluster={}",
            t.name,
            t.topic_id,
            t.partitions,
            opt(st.retention_ms),
            opt(st.retention_bytes),
            opt(st.segment_bytes),
            u8::from(st.compacted),
            opt(st.default_ttl_ms),
            opt(st.tier_after_ms),
            opt(st.local_retention_bytes),
            u8::from(t.cluster),
        );
    }
    let crc = crc32c::crc32c(s.as_bytes());
    let _ = writeln!(s, "crc32c {crc:08x}");
    s
}

fn parse(text: &str) -> Result<Catalog, (usize, String)> {
    let body_end = text
        .rfind("crc32c ")
        .ok_or((0, "missing crc32c line (file truncated?)".to_string()))?;
    let (body, crc_line) = text.split_at(body_end);
    let lines_before = body.lines().count();
    let want = u32::from_str_radix(crc_line.trim().trim_start_matches("crc32c "), 16)
        .map_err(|_| (lines_before + 1, "unreadable checksum".to_string()))?;
    let got = crc32c::crc32c(body.as_bytes());
    if want != got {
        return Err((
            lines_before + 1,
            format!("checksum mismatch (stored {want:08x}, computed {got:08x})"),
        ));
    }
    let mut lines = body.lines().enumerate();
    match lines.next() {
        Some((_, HEADER)) => {}
        _ => return Err((1, format!("first line must be {HEADER:?}"))),
    }
    let mut cat = Catalog::default();
    for (i, line) in lines {
        let n = i + 1;
        let mut words = line.split_whitespace();
        match words.next() {
            Some("version") => {
                cat.version = words
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or((n, "bad version line".to_string()))?;
            }
            Some("topic") => {
                let t = parse_topic(words).map_err(|r| (n, r))?;
                cat.topics.insert(t.name.clone(), t);
            }
            Some(other) => return Err((n, format!("unknown record {other:?}"))),
            None => {}
        }
    }
    Ok(cat)
}

fn parse_topic<'a>(mut words: impl Iterator<Item = &'a str>) -> Result<TopicMeta, String> {
    let name = words.next().ok_or("topic line without a name")?.to_string();
    validate_topic_name(&name)?;
    let mut fields = BTreeMap::new();
    for w in words {
        let (k, v) = w.split_once('=').ok_or(format!("field {w:?} has no '='"))?;
        fields.insert(k, v);
    }
    let get = |k: &str| fields.get(k).copied().ok_or(format!("missing field {k}"));
    let num = |k: &str| -> Result<Option<u64>, String> {
        match get(k)? {
            "-" => Ok(None),
            v => v
                .parse()
                .map(Some)
                .map_err(|_| format!("field {k}={v} is not a number")),
        }
    };
    let topic_id = u64::from_str_radix(get("id")?, 16).map_err(|_| "bad id".to_string())?;
    let partitions: u32 = get("partitions")?
        .parse()
        .map_err(|_| "bad partitions".to_string())?;
    if partitions == 0 || partitions > PARTITIONS_MAX {
        return Err(format!("partitions={partitions} out of range"));
    }
    Ok(TopicMeta {
        name,
        topic_id,
        partitions,
        settings: TopicSettings {
            retention_ms: num("retention_ms")?,
            retention_bytes: num("retention_bytes")?,
            segment_bytes: num("segment_bytes")?,
            compacted: get("compacted")? == "1",
            default_ttl_ms: num("default_ttl_ms")?,
            // Added with the cold tier: catalogs written before it lack them (not tiered).
            tier_after_ms: fields
                .contains_key("tier_after_ms")
                .then(|| num("tier_after_ms"))
                .transpose()?
                .flatten(),
            local_retention_bytes: fields
                .contains_key("local_retention_bytes")
                .then(|| num("local_retention_bytes"))
                .transpose()?
                .flatten(),
        },
        // Added with cluster topics: absent in older catalogs (the node's own topics).
        cluster: fields.get("cluster").is_some_and(|v| *v == "1"),
    })
}

/// A fresh random topic id (never 0).
pub fn new_topic_id() -> u64 {
    let mut buf = [0u8; 8];
    let from_urandom = File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .is_ok();
    let mut id = u64::from_le_bytes(buf);
    if !from_urandom || id == 0 {
        // Fall back to the clock mixed with the process id; ids only need to differ per data dir.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        id = nanos ^ (u64::from(std::process::id()) << 40) | 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Catalog {
        let mut c = Catalog {
            version: 7,
            ..Catalog::default()
        };
        for (name, p) in [("orders", 3), ("logs.v2", 1)] {
            c.topics.insert(
                name.to_string(),
                TopicMeta {
                    name: name.to_string(),
                    topic_id: new_topic_id(),
                    partitions: p,
                    settings: TopicSettings {
                        retention_ms: Some(60_000),
                        retention_bytes: None,
                        segment_bytes: Some(1 << 20),
                        compacted: p == 1,
                        default_ttl_ms: None,
                        tier_after_ms: (p == 3).then_some(60_000),
                        local_retention_bytes: (p == 3).then_some(1 << 30),
                    },
                    cluster: p == 3,
                },
            );
        }
        c
    }

    #[test]
    fn store_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let c = sample();
        c.store(dir.path()).unwrap();
        assert_eq!(Catalog::load(dir.path()).unwrap(), c);
    }

    #[test]
    fn damage_is_detected_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        sample().store(dir.path()).unwrap();
        let path = dir.path().join("catalog");
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("partitions=3", "partitions=4")).unwrap();
        let err = Catalog::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        fs::write(&path, &text[..text.len() / 2]).unwrap();
        assert!(Catalog::load(dir.path()).is_err());
    }

    #[test]
    fn catalogs_from_before_the_cold_tier_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!(
            "{HEADER}\nversion 3\ntopic old id=00000000000000aa partitions=2 retention_ms=- \
             retention_bytes=5 segment_bytes=- compacted=0 default_ttl_ms=-\n"
        );
        let text = format!("{body}crc32c {:08x}\n", crc32c::crc32c(body.as_bytes()));
        fs::write(dir.path().join("catalog"), text).unwrap();
        let c = Catalog::load(dir.path()).unwrap();
        let s = &c.topics["old"].settings;
        assert_eq!(s.retention_bytes, Some(5));
        assert_eq!((s.tier_after_ms, s.local_retention_bytes), (None, None));
    }

    #[test]
    fn topic_names_are_checked() {
        assert!(validate_topic_name("orders-2024.eu_west").is_ok());
        for bad in ["", ".", "..", "__internal", "a b", "a/b", "ü"] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_topic_name(&"x".repeat(201)).is_err());
    }
}
