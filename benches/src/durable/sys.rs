//! Linux facts the measurements rely on: which file system a directory is on (memory file
//! systems are refused), a thread's minor faults, load and pressure.

use std::path::{Path, PathBuf};

use super::{io_err, DurableError};

/// File systems whose fdatasync reaches no disk: a durable throughput measured there is not one.
const MEMORY_FILE_SYSTEMS: [&str; 2] = ["tmpfs", "ramfs"];

/// Undoes the octal escapes (`\040` for a space) of a path field in `/proc/self/mounts`.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let s = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(s, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The file system type of the mount holding `path` (absolute, canonical) according to `mounts`
/// (the text of `/proc/self/mounts`): the longest mount point containing it, the later line
/// among equals (a later mount hides an earlier one on the same point).
pub fn fs_type_of(mounts: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_device), Some(point), Some(fs_type)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let point = PathBuf::from(unescape_mount_field(point));
        if !path.starts_with(&point) {
            continue;
        }
        let depth = point.components().count();
        if best.as_ref().is_none_or(|(d, _)| depth >= *d) {
            best = Some((depth, fs_type.to_string()));
        }
    }
    best.map(|(_, t)| t)
}

/// Refuses a memory-backed file system type.
pub fn check_disk_backed(dir: &Path, fs_type: &str) -> Result<(), DurableError> {
    if MEMORY_FILE_SYSTEMS.contains(&fs_type) {
        return Err(DurableError::MemoryFileSystem {
            dir: dir.to_path_buf(),
            fs_type: fs_type.to_string(),
        });
    }
    Ok(())
}

/// Creates `dir` if needed and returns its canonical path and file system type, refusing tmpfs.
pub fn prepare_dir(dir: &Path) -> Result<(PathBuf, String), DurableError> {
    std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let dir = dir.canonicalize().map_err(io_err("canonicalize", dir))?;
    let mounts_path = Path::new("/proc/self/mounts");
    let mounts = std::fs::read_to_string(mounts_path).map_err(io_err("read", mounts_path))?;
    let fs_type =
        fs_type_of(&mounts, &dir).ok_or_else(|| DurableError::UnknownMount { dir: dir.clone() })?;
    check_disk_backed(&dir, &fs_type)?;
    Ok((dir, fs_type))
}

/// Minor faults (`minflt`, field 10) from the text of a `/proc/.../stat` file.
pub fn parse_minor_faults(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name, so field 10 is the eighth.
    rest.split_whitespace().nth(7)?.parse().ok()
}

/// Minor faults taken so far by the calling thread; `None` if `/proc` is not readable.
pub fn thread_minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    parse_minor_faults(&stat)
}

/// The `avg10` of the "some" line of a `/proc/pressure/*` file.
pub fn pressure_some_avg10(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("some"))?;
    let field = line.split_whitespace().find(|f| f.starts_with("avg10="))?;
    field["avg10=".len()..].parse().ok()
}

fn read_or_empty(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Load and pressure just before a measurement (NaN where `/proc` does not say).
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    pub load_1m: f64,
    pub cpu_some_avg10: f64,
    pub io_some_avg10: f64,
}

impl Machine {
    pub fn now() -> Machine {
        let load = read_or_empty("/proc/loadavg");
        Machine {
            load_1m: load
                .split_whitespace()
                .next()
                .and_then(|f| f.parse().ok())
                .unwrap_or(f64::NAN),
            cpu_some_avg10: pressure_some_avg10(&read_or_empty("/proc/pressure/cpu"))
                .unwrap_or(f64::NAN),
            io_some_avg10: pressure_some_avg10(&read_or_empty("/proc/pressure/io"))
                .unwrap_or(f64::NAN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
/dev/vda / ext4 rw,relatime 0 0
proc /proc proc rw,nosuid 0 0
tmpfs /tmp tmpfs rw,nosuid 0 0
/dev/vdb /tmp/disk xfs rw 0 0
tmpfs /mnt/my\\040disk tmpfs rw 0 0
/dev/vdc /data ext4 rw 0 0
/dev/vdd /data btrfs rw 0 0
";

    #[test]
    fn the_longest_and_latest_mount_point_names_the_file_system() {
        let fs = |p: &str| fs_type_of(MOUNTS, Path::new(p));
        assert_eq!(fs("/work/main/target").as_deref(), Some("ext4"));
        assert_eq!(fs("/tmp/x").as_deref(), Some("tmpfs"));
        assert_eq!(fs("/tmp/disk/bench").as_deref(), Some("xfs"));
        // Component-wise: /tmp/diskette is not under /tmp/disk.
        assert_eq!(fs("/tmp/diskette").as_deref(), Some("tmpfs"));
        assert_eq!(fs("/mnt/my disk/bench").as_deref(), Some("tmpfs"));
        // Two mounts on one point: the later one hides the earlier.
        assert_eq!(fs("/data/logs").as_deref(), Some("btrfs"));
        assert_eq!(
            fs_type_of("tmpfs /tmp tmpfs rw 0 0\n", Path::new("/work")),
            None
        );
    }

    #[test]
    fn memory_file_systems_are_refused_with_the_directory_named() {
        let dir = Path::new("/tmp/bench");
        match check_disk_backed(dir, "tmpfs") {
            Err(DurableError::MemoryFileSystem { dir: d, fs_type }) => {
                assert_eq!((d.as_path(), fs_type.as_str()), (dir, "tmpfs"));
            }
            other => panic!("tmpfs accepted: {other:?}"),
        }
        assert!(check_disk_backed(dir, "ramfs").is_err());
        assert!(check_disk_backed(dir, "ext4").is_ok());
        assert!(check_disk_backed(dir, "xfs").is_ok());
        assert_eq!(unescape_mount_field("a\\040b\\011c\\\\x"), "a b\tc\\\\x");
    }

    #[test]
    fn minor_faults_are_field_ten_even_with_parentheses_in_the_name() {
        let stat = "4242 (we ird) name) S 1 4242 4242 0 -1 4194304 1234 0 5 0 7 3 0 0 20 0 1";
        assert_eq!(parse_minor_faults(stat), Some(1234));
        assert_eq!(parse_minor_faults("4242 (x) S 1"), None);
        assert_eq!(parse_minor_faults("no name"), None);
        assert!(thread_minor_faults().is_some());
    }

    #[test]
    fn pressure_avg10_comes_from_the_some_line() {
        let text = "some avg10=46.25 avg60=40.00 avg300=30.00 total=1\n\
                    full avg10=12.00 avg60=1.00 avg300=1.00 total=1\n";
        assert_eq!(pressure_some_avg10(text), Some(46.25));
        assert_eq!(pressure_some_avg10("full avg10=1.00\n"), None);
        assert_eq!(pressure_some_avg10(""), None);
    }
}
