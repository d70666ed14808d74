//! When a routed request may be sent again, and how long to wait first.

use crate::client::ClientError;
use crate::codec::ErrorCode;

/// Routing and retry settings of a [`super::ClusterClient`]. `Default` gives the documented
/// values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingConfig {
    /// How many times a failed request is sent again (after a metadata refresh) before the last
    /// error is returned. Default 5.
    pub retries: u32,
    /// The wait before the first retry; doubles per retry. Default 50 ms.
    pub retry_backoff_ms: u64,
    /// The longest wait between two retries. Default 1000 ms.
    pub retry_backoff_max_ms: u64,
    /// Metadata is loaded at most once per this interval; a refresh asked for sooner waits for
    /// the rest of it. Default 100 ms.
    pub metadata_refresh_min_ms: u64,
    /// The most brokers (and so connections) the client keeps. Default 1024.
    pub brokers_max: usize,
    /// For this long after [`super::ClusterClient::create_topic`] created a topic,
    /// `UNKNOWN_TOPIC` / `UNKNOWN_PARTITION` for it are taken for metadata lag and retried.
    /// Default 5000 ms.
    pub created_topic_grace_ms: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            retries: 5,
            retry_backoff_ms: 50,
            retry_backoff_max_ms: 1_000,
            metadata_refresh_min_ms: 100,
            brokers_max: 1_024,
            created_topic_grace_ms: 5_000,
        }
    }
}

/// The longest `retry_after_ms` from a server that is honoured; a larger value is cut to this.
pub(crate) const RETRY_AFTER_MS_MAX: u64 = 10_000;

/// Doubling waits between retries, capped.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    next_ms: u64,
    max_ms: u64,
}

impl Backoff {
    pub fn new(config: &RoutingConfig) -> Self {
        Backoff {
            next_ms: config.retry_backoff_ms.min(config.retry_backoff_max_ms),
            max_ms: config.retry_backoff_max_ms,
        }
    }

    /// The wait before the next retry.
    pub fn next_ms(&mut self) -> u64 {
        let wait_ms = self.next_ms;
        self.next_ms = self.next_ms.saturating_mul(2).clamp(1, self.max_ms.max(1));
        wait_ms
    }
}

/// Where a routed request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Before anything was sent: no leader known, or connecting (and its handshake) failed.
    NotSent,
    /// After the request was (at least partly) written.
    Sent,
}

/// Whether a request whose outcome is unknown (the connection failed after it was written, or
/// the server could not say whether it completed) may be sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resend {
    /// Reads, offset commits, produce with a `ProducerIdent` (the server drops duplicates).
    Safe,
    /// Produce without a `ProducerIdent`: sent again only when the server refused it unwritten.
    OnlyIfRefused,
}

/// What to do after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Refresh the metadata, then retry.
    Refresh,
    /// The server is overloaded: retry the same node after at least `retry_after_ms`.
    Wait { retry_after_ms: u64 },
    /// `UNKNOWN_TOPIC` / `UNKNOWN_PARTITION`: retry only if the partition is known to exist, i.e.
    /// the answering node's metadata lags.
    IfPartitionExists,
    /// Return the error.
    GiveUp,
}

pub(crate) fn classify(error: &ClientError, stage: Stage, resend: Resend) -> Decision {
    // Refused unread, whether it answered the request or the handshake of a new connection.
    if let ClientError::Server {
        code: ErrorCode::Throttled,
        retry_after_ms,
        ..
    } = error
    {
        let retry_after_ms = u64::from(retry_after_ms.unwrap_or(0)).min(RETRY_AFTER_MS_MAX);
        return Decision::Wait { retry_after_ms };
    }
    if stage == Stage::NotSent {
        return match error {
            ClientError::Resolve { .. } => Decision::Refresh,
            e if e.is_retriable() => Decision::Refresh,
            _ => Decision::GiveUp,
        };
    }
    let outcome_unknown = match error {
        // Refused before anything was written: resending cannot duplicate the request. (A
        // node that does not coordinate a group answers NOT_COORDINATOR before acting.)
        ClientError::Server {
            code: ErrorCode::NotLeader | ErrorCode::NotEnoughReplicas | ErrorCode::NotCoordinator,
            ..
        } => return Decision::Refresh,
        ClientError::Server {
            code: ErrorCode::UnknownTopic | ErrorCode::UnknownPartition,
            ..
        } => return Decision::IfPartitionExists,
        // The node is draining or a forwarded write timed out / failed in storage: the write
        // may or may not have happened.
        ClientError::Server {
            code: ErrorCode::ShuttingDown | ErrorCode::Timeout | ErrorCode::StorageError,
            ..
        }
        | ClientError::Io { .. }
        | ClientError::Closed { .. }
        | ClientError::Timeout { .. } => true,
        _ => false,
    };
    if outcome_unknown && resend == Resend::Safe {
        Decision::Refresh
    } else {
        Decision::GiveUp
    }
}

/// True when the connection that produced `error` must not be used again: it is broken, the
/// server closes it (THROTTLED, SHUTTING_DOWN), or a late reply may still arrive on it.
pub(crate) fn drops_connection(error: &ClientError) -> bool {
    match error {
        ClientError::Server { code, .. } => {
            matches!(code, ErrorCode::Throttled | ErrorCode::ShuttingDown)
        }
        ClientError::Io { .. }
        | ClientError::Closed { .. }
        | ClientError::Timeout { .. }
        | ClientError::Protocol { .. }
        | ClientError::UnexpectedReply { .. }
        | ClientError::BadReply { .. }
        | ClientError::UnknownCorrelation { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: ErrorCode) -> ClientError {
        ClientError::Server {
            code,
            message: String::new(),
            retry_after_ms: None,
        }
    }

    fn closed() -> ClientError {
        ClientError::Closed {
            addr: "127.0.0.1:1".to_owned(),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = RoutingConfig {
            retry_backoff_ms: 50,
            retry_backoff_max_ms: 300,
            ..RoutingConfig::default()
        };
        let mut backoff = Backoff::new(&config);
        let waits: Vec<u64> = (0..5).map(|_| backoff.next_ms()).collect();
        assert_eq!(waits, [50, 100, 200, 300, 300]);
    }

    #[test]
    fn not_leader_is_retried_even_without_a_producer_ident() {
        for resend in [Resend::Safe, Resend::OnlyIfRefused] {
            let decision = classify(&server(ErrorCode::NotLeader), Stage::Sent, resend);
            assert_eq!(decision, Decision::Refresh);
        }
    }

    #[test]
    fn not_enough_replicas_is_retried_even_without_a_producer_ident() {
        let error = server(ErrorCode::NotEnoughReplicas);
        assert!(error.is_retriable());
        for resend in [Resend::Safe, Resend::OnlyIfRefused] {
            assert_eq!(classify(&error, Stage::Sent, resend), Decision::Refresh);
        }
        assert!(!drops_connection(&error));
    }

    #[test]
    fn an_unknown_outcome_is_retried_only_when_resending_is_safe() {
        for error in [closed(), server(ErrorCode::Timeout)] {
            assert_eq!(
                classify(&error, Stage::Sent, Resend::Safe),
                Decision::Refresh
            );
            assert_eq!(
                classify(&error, Stage::Sent, Resend::OnlyIfRefused),
                Decision::GiveUp
            );
        }
    }

    #[test]
    fn a_connection_that_never_formed_is_always_retried() {
        let error = ClientError::Connect {
            addr: "127.0.0.1:1".to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        let decision = classify(&error, Stage::NotSent, Resend::OnlyIfRefused);
        assert_eq!(decision, Decision::Refresh);
    }

    #[test]
    fn throttled_waits_for_the_servers_retry_after_capped() {
        let error = ClientError::Server {
            code: ErrorCode::Throttled,
            message: String::new(),
            retry_after_ms: Some(u32::MAX),
        };
        for stage in [Stage::NotSent, Stage::Sent] {
            let decision = classify(&error, stage, Resend::OnlyIfRefused);
            assert_eq!(
                decision,
                Decision::Wait {
                    retry_after_ms: RETRY_AFTER_MS_MAX
                }
            );
        }
        assert!(drops_connection(&error));
    }

    #[test]
    fn not_coordinator_is_retried_and_group_state_errors_are_returned() {
        for resend in [Resend::Safe, Resend::OnlyIfRefused] {
            let decision = classify(&server(ErrorCode::NotCoordinator), Stage::Sent, resend);
            assert_eq!(decision, Decision::Refresh);
        }
        // REBALANCE_IN_PROGRESS is retriable by the code table (call SyncGroup), but resending
        // the same request does not help: the caller must act on it.
        for code in [
            ErrorCode::RebalanceInProgress,
            ErrorCode::UnknownMember,
            ErrorCode::IllegalGeneration,
        ] {
            let decision = classify(&server(code), Stage::Sent, Resend::Safe);
            assert_eq!(decision, Decision::GiveUp, "{code}");
            assert!(!drops_connection(&server(code)));
        }
    }

    #[test]
    fn other_server_errors_are_returned() {
        for code in [ErrorCode::InvalidRequest, ErrorCode::DuplicateSequence] {
            let decision = classify(&server(code), Stage::Sent, Resend::Safe);
            assert_eq!(decision, Decision::GiveUp, "{code}");
            assert!(!drops_connection(&server(code)));
        }
    }
}
