//! Unit tests of the fault disk's model (durability, directory operations, failed syncs, ENOSPC).

use super::*;
use crate::crash::CrashOptions;

fn crash_files(disk: &FaultDisk, seed: u64) -> BTreeMap<String, Vec<u8>> {
    let into = tempfile::tempdir().expect("tempdir");
    let options = CrashOptions {
        tear_pages: false,
        flip_bits: false,
    };
    disk.crash_state()
        .expect("state")
        .materialize(seed, into.path(), options)
        .expect("materialize");
    std::fs::read_dir(into.path())
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().into_string().expect("utf-8 name");
            (name, std::fs::read(e.path()).expect("read"))
        })
        .collect()
}

/// Every outcome `f` produces over many crash seeds.
fn outcomes<T: Ord>(disk: &FaultDisk, f: impl Fn(&BTreeMap<String, Vec<u8>>) -> T) -> Vec<T> {
    let set: BTreeSet<T> = (0..64).map(|seed| f(&crash_files(disk, seed))).collect();
    set.into_iter().collect()
}

#[test]
fn synced_data_survives_and_unsynced_data_may_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = FaultDisk::new(dir.path()).expect("disk");
    let path = dir.path().join("a");
    let f = disk.create_new(&path).expect("create");
    f.write_all_at(b"durable", 0).expect("write");
    disk.sync_file(&path, &f).expect("sync");
    disk.sync_dir(dir.path()).expect("sync dir");
    f.write_all_at(b"DURABLE", 0).expect("write");
    let seen = outcomes(&disk, |files| files["a"].clone());
    assert_eq!(seen, vec![b"DURABLE".to_vec(), b"durable".to_vec()]);
}

#[test]
fn directory_operations_need_a_directory_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = FaultDisk::new(dir.path()).expect("disk");
    let a = dir.path().join("a");
    let f = disk.write_file(&a, &[b"x"]).expect("write");
    disk.sync_file(&a, &f).expect("sync");
    // Created and synced, but its entry is not durable yet.
    let names = |files: &BTreeMap<String, Vec<u8>>| files.keys().cloned().collect::<Vec<_>>();
    assert_eq!(outcomes(&disk, names), vec![vec![], vec!["a".to_string()]]);
    disk.sync_dir(dir.path()).expect("sync dir");
    let b = dir.path().join("b");
    disk.rename(&a, &b).expect("rename");
    disk.remove_file(&b).expect("unlink");
    // A prefix of (rename, unlink) survives; never the unlink without the rename.
    assert_eq!(
        outcomes(&disk, names),
        vec![vec![], vec!["a".to_string()], vec!["b".to_string()]]
    );
    disk.sync_dir(dir.path()).expect("sync dir");
    assert_eq!(outcomes(&disk, names), vec![Vec::<String>::new()]);
}

#[test]
fn a_failed_sync_loses_the_pages_it_marked_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = FaultDisk::new(dir.path()).expect("disk");
    let path = dir.path().join("seg");
    let f = disk.create_new(&path).expect("create");
    disk.set_len(&path, &f, 2 * 4096).expect("allocate");
    disk.sync_file(&path, &f).expect("sync");
    disk.sync_dir(dir.path()).expect("sync dir");
    f.write_all_at(&[1u8; 4096], 0).expect("write page 0");
    disk.fail_sync(disk.syncs());
    let err = disk.sync_file(&path, &f).expect_err("injected failure");
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    // Page 1 is written after the failure; the later sync succeeds but skips page 0.
    f.write_all_at(&[2u8; 4096], 4096).expect("write page 1");
    disk.sync_file(&path, &f).expect("sync");
    let seen = outcomes(&disk, |files| {
        let b = &files["seg"];
        (b[0], b[4096])
    });
    assert_eq!(seen, vec![(0, 2)]);
}

#[test]
fn growth_past_the_capacity_is_enospc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = FaultDisk::new(dir.path()).expect("disk");
    disk.set_capacity_bytes(Some(5000));
    let path = dir.path().join("seg");
    let f = disk.create_new(&path).expect("create");
    disk.set_len(&path, &f, 4096).expect("fits");
    let err = disk.set_len(&path, &f, 8192).expect_err("does not fit");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    let err = disk
        .write_file(&dir.path().join("index"), &[&[0u8; 1000]])
        .expect_err("does not fit");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    assert_eq!(disk.used_bytes().expect("used"), 4096);
    disk.set_capacity_bytes(Some(4096));
    let err = disk
        .create_new(&dir.path().join("more"))
        .expect_err("no room for a file");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
}
