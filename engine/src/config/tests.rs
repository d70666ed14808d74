use super::*;

#[test]
fn flags_override_env_override_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sprawl.toml");
    std::fs::write(&file, "port = 7100\nhttp_port = 8100\nnode_id = 3\n").unwrap();
    let mut env = HashMap::new();
    env.insert("SPRAWL_HTTP_PORT".to_string(), "8200".to_string());
    env.insert("SPRAWL_NODE_ID".to_string(), "4".to_string());
    let flags = Overrides {
        config: Some(file),
        node_id: Some(5),
        shards: Some(1),
        ..Overrides::default()
    };
    let cfg = resolve(&flags, &env).unwrap();
    assert_eq!(cfg.port, 7100, "file value");
    assert_eq!(cfg.http_port, 8200, "env beats file");
    assert_eq!(cfg.node_id, 5, "flag beats env");
}

#[test]
fn bad_values_name_the_setting() {
    let mut env = HashMap::new();
    env.insert("SPRAWL_PORT".to_string(), "70x".to_string());
    let err = resolve(&Overrides::default(), &env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("port") && err.contains("SPRAWL_PORT"), "{err}");

    let flags = Overrides {
        shards: Some(10_000),
        ..Overrides::default()
    };
    let err = resolve(&flags, &HashMap::new()).unwrap_err().to_string();
    assert!(err.contains("shards"), "{err}");
}

#[test]
fn every_file_key_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.toml");
    std::fs::write(
        &file,
        "frame_read_timeout_ms = 1234\nconnections_per_shard_max = 7\nhttp_idle_timeout_ms = 4321\n\
         analytics = \"advise\"\nanalytics_shard_capacity_msgs_per_s = 5.0\n\
         analytics_partition_capacity_msgs_per_s = 3.0\nanalytics_key_window_s = 9\n\
         ring_memory_bytes_max = 1048576\nsegment_bytes_default = 2097152\n",
    )
    .unwrap();
    let flags = Overrides {
        config: Some(file),
        shards: Some(1),
        ..Overrides::default()
    };
    let cfg = resolve(&flags, &HashMap::new()).unwrap();
    assert_eq!(cfg.frame_read_timeout_ms, 1234);
    assert_eq!(cfg.connections_per_shard_max, 7);
    assert_eq!(cfg.http_idle_timeout_ms, 4321);
    assert_eq!(cfg.analytics, crate::analytics_shard::Mode::Advise);
    assert_eq!(cfg.analytics_shard_capacity_msgs_per_s, 5.0);
    assert_eq!(cfg.analytics_partition_capacity_msgs_per_s, 3.0);
    assert_eq!(cfg.analytics_key_window_s, 9);
    assert_eq!(cfg.ring_memory_bytes_max, 1 << 20);
    assert_eq!(cfg.segment_bytes_default, 2 << 20);
}

#[test]
fn unknown_file_keys_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "prot = 1\n").unwrap();
    let flags = Overrides {
        config: Some(file),
        ..Overrides::default()
    };
    let err = resolve(&flags, &HashMap::new()).unwrap_err().to_string();
    assert!(err.contains("prot"), "{err}");
}

#[test]
fn s3_settings_layer_and_must_come_together() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s3.toml");
    std::fs::write(
        &file,
        "s3_endpoint = \"http://127.0.0.1:9000/\"\ns3_bucket = \"from-file\"\n\
         s3_access_key = \"file-key\"\ns3_secret_key = \"file-secret\"\n\
         s3_cache_bytes = 2097152\ns3_threads = 3\ns3_request_timeout_ms = 5000\n",
    )
    .unwrap();
    let mut env = HashMap::new();
    env.insert("SPRAWL_S3_BUCKET".to_string(), "from-env".to_string());
    env.insert(
        "SPRAWL_S3_SECRET_KEY".to_string(),
        "env-secret\n".to_string(),
    );
    let flags = Overrides {
        config: Some(file),
        shards: Some(1),
        s3: ColdOverrides {
            access_key: Some("flag-key".into()),
            ..ColdOverrides::default()
        },
        ..Overrides::default()
    };
    let cfg = resolve(&flags, &env).unwrap();
    let c = &cfg.cold;
    assert!(c.enabled());
    assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(c.bucket.as_deref(), Some("from-env"), "env beats file");
    assert_eq!(c.access_key.as_deref(), Some("flag-key"), "flag beats file");
    assert_eq!(c.secret_key.as_deref(), Some("env-secret"), "trimmed");
    assert_eq!(c.region, DEFAULT_S3_REGION);
    assert_eq!(
        (c.cache_bytes, c.threads, c.request_timeout_ms),
        (2 << 20, 3, 5000)
    );
    let s3 = c.s3_config().unwrap();
    assert_eq!(
        (s3.bucket.as_str(), s3.request_timeout_ms),
        ("from-env", 5000)
    );
    assert!(
        !format!("{c:?}").contains("env-secret"),
        "Debug redacts the secret"
    );

    // No settings: no cold tier, no error.
    let plain = Overrides {
        shards: Some(1),
        ..Overrides::default()
    };
    assert!(!resolve(&plain, &HashMap::new()).unwrap().cold.enabled());

    // Partial, HTTPS, a path, a bad bucket: each refused naming the setting.
    let with = |endpoint: &str, bucket: Option<&str>| Overrides {
        shards: Some(1),
        s3: ColdOverrides {
            endpoint: Some(endpoint.into()),
            bucket: bucket.map(Into::into),
            access_key: Some("k".into()),
            secret_key: Some("s".into()),
            region: None,
        },
        ..Overrides::default()
    };
    for (flags, needle) in [
        (with("http://h:1", None), "s3-bucket"),
        (with("https://h:1", Some("b-1")), "TLS"),
        (with("http://h:1/bucket", Some("b-1")), "no path"),
        (with("h:1", Some("b-1")), "http://HOST"),
        (with("http://h:1", Some("Bad_Bucket")), "s3-bucket"),
    ] {
        let err = resolve(&flags, &HashMap::new()).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn spin_before_park_follows_the_shard_count_unless_set() {
    let with = |shards: usize, env: &[(&str, &str)], flag: Option<u64>| {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let flags = Overrides {
            shards: Some(shards),
            spin_before_park_us: flag,
            ..Overrides::default()
        };
        resolve(&flags, &env)
            .unwrap()
            .effective_spin_before_park_us()
    };
    assert_eq!(with(1, &[], None), 0, "one shard parks at once");
    assert_eq!(
        with(2, &[], None),
        50,
        "shards hear each other faster spinning"
    );
    assert_eq!(with(1, &[("SPRAWL_SPIN_BEFORE_PARK_US", "200")], None), 200);
    assert_eq!(with(2, &[("SPRAWL_SPIN_BEFORE_PARK_US", "0")], None), 0);
    assert_eq!(
        with(2, &[("SPRAWL_SPIN_BEFORE_PARK_US", "0")], Some(30)),
        30,
        "the flag wins"
    );
}

#[test]
fn the_socket_spin_is_set_from_file_env_and_flag_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spin.toml");
    std::fs::write(&file, "spin_read_us = 7\n").unwrap();
    let from_file = Overrides {
        config: Some(file),
        shards: Some(1),
        ..Overrides::default()
    };
    assert_eq!(
        resolve(&from_file, &HashMap::new()).unwrap().spin_read_us,
        7
    );
    let mut env = HashMap::new();
    env.insert("SPRAWL_SPIN_READ_US".to_string(), "0".to_string());
    assert_eq!(resolve(&from_file, &env).unwrap().spin_read_us, 0);
    let flag = Overrides {
        spin_read_us: Some(SPIN_READ_US_MAX + 1),
        shards: Some(1),
        ..Overrides::default()
    };
    let err = resolve(&flag, &env).unwrap_err().to_string();
    assert!(err.contains("spin-read-us"), "{err}");
    let default = Overrides {
        shards: Some(1),
        ..Overrides::default()
    };
    assert_eq!(
        resolve(&default, &HashMap::new()).unwrap().spin_read_us,
        DEFAULT_SPIN_READ_US
    );
}
