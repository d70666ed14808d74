//! Helpers of the cold tier tests: a real S3-compatible server (moto in server mode, started on
//! loopback by the tests themselves), a fault-injecting TCP proxy, and log helpers.
//!
//! moto missing: the tests fail when `SPRAWL_E2E_REQUIRED` is set (CI installs it with
//! `pip install 'moto[server]==5.2.1'`, which brings boto3) and are skipped with a note otherwise.
#![allow(dead_code)]

pub mod proxy;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use storage::cold::{S3Config, S3Store};
use storage::{LogConfig, PartitionLog, Record};

/// Boots moto in-process in a Python child: 4 KiB minimum multipart parts, port chosen by the OS.
/// With `auth` (argv[1] == "auth") IAM authentication is enforced after the three bootstrap
/// calls that create the test user. Prints one line `port access_key secret_key`, then lives
/// until its stdin closes (when the test binary exits).
///
/// Why two servers: moto verifies SigV4 against the *decoded* query string, so a signed request
/// whose query holds an encoded `/` (a list with prefix `topics/t/0/`) fails its check although
/// it is signed as AWS specifies. The authenticating server is used only by the credential test.
const MOTO_BOOT: &str = r#"
import os, sys
auth = len(sys.argv) > 1 and sys.argv[1] == "auth"
if auth:
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
os.environ["S3_UPLOAD_PART_MIN_SIZE"] = "4096"
from moto.server import ThreadedMotoServer
import boto3
srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
srv.start()
port = srv.get_host_and_port()[1]
url = "http://127.0.0.1:%d" % port
if auth:
    iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="sprawl")
    key = iam.create_access_key(UserName="sprawl")["AccessKey"]
    iam.put_user_policy(UserName="sprawl", PolicyName="all", PolicyDocument=
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}')
    print(port, key["AccessKeyId"], key["SecretAccessKey"], flush=True)
else:
    print(port, "sprawl-test-key", "sprawl-test-secret", flush=True)
# Booted: silence the tracebacks moto prints for the requests the fault proxy cuts.
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 2)
sys.stderr = open(os.devnull, "w")
sys.stdin.read()
"#;

pub const REGION: &str = "eu-west-1";

/// A running moto server shared by the tests of one binary.
pub struct Moto {
    pub endpoint: String,
    pub port: u16,
    pub access_key: String,
    pub secret_key: String,
    _child: Mutex<Child>,
    _stdin: Mutex<ChildStdin>,
}

fn moto_installed() -> bool {
    Command::new("python3")
        .args(["-c", "import moto.server, boto3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn boot(auth: bool) -> Option<Moto> {
    if !moto_installed() {
        assert!(
            std::env::var_os("SPRAWL_E2E_REQUIRED").is_none(),
            "moto is missing: pip install 'moto[server]'"
        );
        eprintln!(
            "skipped: moto is not installed (pip install 'moto[server]'; .ci/run installs it)"
        );
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", MOTO_BOOT, if auth { "auth" } else { "open" }])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn python3");
    let stdin = child.stdin.take().expect("stdin");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read moto's ready line");
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.len(), 3, "moto boot failed: {line:?}");
    let port: u16 = parts[0].parse().expect("port");
    Some(Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        port,
        access_key: parts[1].to_string(),
        secret_key: parts[2].to_string(),
        _child: Mutex::new(child),
        _stdin: Mutex::new(stdin),
    })
}

/// The binary's moto server (credentials not checked), started on first use; `None` when moto
/// is absent (skip).
pub fn moto() -> Option<&'static Moto> {
    static MOTO: OnceLock<Option<Moto>> = OnceLock::new();
    MOTO.get_or_init(|| boot(false)).as_ref()
}

/// A moto server that enforces credentials (IAM user created at boot).
pub fn moto_auth() -> Option<&'static Moto> {
    static MOTO: OnceLock<Option<Moto>> = OnceLock::new();
    MOTO.get_or_init(|| boot(true)).as_ref()
}

impl Moto {
    pub fn config(&self, bucket: &str) -> S3Config {
        let mut c = S3Config::new(
            &self.endpoint,
            REGION,
            bucket,
            &self.access_key,
            &self.secret_key,
        );
        c.request_timeout_ms = 5_000;
        c.part_bytes_min = 4096;
        c
    }

    /// A store on a fresh bucket (created here).
    pub fn bucket(&self, bucket: &str) -> Arc<S3Store> {
        let store = S3Store::new(self.config(bucket)).expect("client");
        store.create_bucket().expect("create bucket");
        Arc::new(store)
    }
}

/// Small segments so a few batches fill one.
pub fn log_config(segment_bytes_max: u64) -> LogConfig {
    LogConfig {
        segment_bytes_max,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

pub fn open_log(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).expect("open log").0
}

/// Value of record `offset`: deterministic, poorly compressible, `len` bytes.
pub fn value(offset: u64, len: usize) -> Vec<u8> {
    let mut x = offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Appends one batch of `count` records at timestamp `ts`; returns its last offset.
pub fn append(log: &mut PartitionLog, count: usize, len: usize, ts: i64) -> u64 {
    let end = log.end_offset();
    let values: Vec<Vec<u8>> = (0..count).map(|i| value(end + i as u64, len)).collect();
    let records: Vec<Record<'_>> = values
        .iter()
        .map(|v| Record {
            key: Some(b"k"),
            value: v,
            headers: &[],
            timestamp_ms: ts,
            ttl_ms: 0,
        })
        .collect();
    match log.append(&records, None, ts).expect("append") {
        storage::AppendOutcome::Appended { last_offset, .. } => last_offset,
        other => panic!("unexpected {other:?}"),
    }
}

/// Group commit to completion (seals rolled segments and advances the checkpoint).
pub fn flush(log: &mut PartitionLog) {
    if let Some(job) = log.begin_flush() {
        let done = job.run().expect("flush");
        log.complete_flush(done);
    }
}

/// Every stored batch of the local log from `from`, as raw bytes.
pub fn local_batches(log: &PartitionLog, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < log.end_offset() {
        let r = log.read(at, 1 << 20).expect("local read");
        for b in &r.batches {
            out.push((b.base_offset(), b.bytes().to_vec()));
        }
        at = r.next_offset;
    }
    out
}

/// A unique bucket name per test (moto keeps them for the life of the server).
pub fn bucket_name(test: &str) -> String {
    format!("sprawl-{}-{}", test.replace('_', "-"), std::process::id())
}
