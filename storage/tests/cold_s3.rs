//! The rust-s3 object store against a real S3-compatible server (moto, started by the test on
//! loopback): the start-up check's typed errors and every operation the tier uses.

mod cold_support;

use cold_support::{bucket_name, moto_auth};
use storage::cold::{put_multipart, ObjectStore, S3Config, S3Store, StoreError};

#[test]
fn check_tells_unreachable_bad_credentials_and_missing_bucket_apart() {
    let Some(m) = moto_auth() else { return };
    let good = m.bucket(&bucket_name("check"));
    good.check().expect("a good configuration passes");

    // Nothing listens on a port we just bound and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut c = m.config(&bucket_name("check"));
    c.endpoint = format!("http://127.0.0.1:{port}");
    let e = S3Store::new(c).unwrap().check().unwrap_err();
    assert!(matches!(e, StoreError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(e.is_transient());

    let mut c = m.config(&bucket_name("check"));
    c.secret_key = "wrong-secret".into();
    let e = S3Store::new(c).unwrap().check().unwrap_err();
    assert!(
        matches!(&e, StoreError::BadCredentials { code, .. } if code == "SignatureDoesNotMatch"),
        "{e}"
    );
    assert!(e.to_string().contains("--s3-secret-key"), "{e}");
    assert!(!e.is_transient());

    let mut c = m.config(&bucket_name("check"));
    c.access_key = "AKIANOSUCHKEY0000000".into();
    let e = S3Store::new(c).unwrap().check().unwrap_err();
    assert!(
        matches!(&e, StoreError::BadCredentials { code, .. } if code == "InvalidAccessKeyId"),
        "{e}"
    );

    let e = S3Store::new(m.config("sprawl-no-such-bucket"))
        .unwrap()
        .check()
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::NoSuchBucket { bucket, .. } if bucket == "sprawl-no-such-bucket"),
        "{e}"
    );
    assert!(e.to_string().contains("create it"), "{e}");

    let bad = S3Config::new("127.0.0.1:9", "r", "b", "a", "s");
    assert!(matches!(S3Store::new(bad), Err(StoreError::Config { .. })));
    let tls = S3Config::new("https://s3.example.com", "r", "b", "a", "s");
    let e = S3Store::new(tls).unwrap_err();
    assert!(e.to_string().contains("sync-rustls-tls"), "{e}");
}

#[test]
fn put_range_head_list_delete_and_multipart() {
    // The authenticating server (one moto per test binary); list prefixes here hold no `/`,
    // which that server's signature check mishandles (see cold_support).
    let Some(m) = moto_auth() else { return };
    let s = m.bucket(&bucket_name("ops"));
    let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    s.put("p/a", &body).unwrap();
    assert_eq!(s.get_range("p/a", 100, 50).unwrap(), &body[100..150]);
    assert_eq!(s.head("p/a").unwrap().unwrap().size_bytes, 10_000);
    assert_eq!(s.head("p/missing").unwrap(), None);
    assert!(matches!(
        s.get_range("p/missing", 0, 1),
        Err(StoreError::NotFound { .. })
    ));
    // A range past the end is an error, never a short buffer.
    assert!(s.get_range("p/a", 9_990, 20).is_err());

    // Three parts of 4 KiB (moto's minimum in these tests) and a short last one.
    let big: Vec<u8> = (0..14_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(put_multipart(&*s, "p/b", &big, 4096).unwrap(), 4);
    assert_eq!(s.get_range("p/b", 0, 14_000).unwrap(), big);

    // A multipart upload that never completes is not an object.
    let id = s.multipart_begin("p/torn").unwrap();
    s.multipart_part("p/torn", &id, 1, &big[..4096]).unwrap();
    assert_eq!(s.head("p/torn").unwrap(), None);
    s.multipart_abort("p/torn", &id).unwrap();

    s.put("q", b"another prefix").unwrap();
    let keys: Vec<String> = s
        .list("p", 10)
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["p/a", "p/b"]);
    assert!(s.list("p", 1).is_err(), "over the limit is an error");
    s.delete("p/a").unwrap();
    s.delete("p/a").unwrap();
    assert_eq!(s.head("p/a").unwrap(), None);
}
