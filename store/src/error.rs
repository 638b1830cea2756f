//! What can go wrong talking to the round's Redis, as one type.
//!
//! A Redis failure (down, slow, a script error) is kept as it came, so a
//! caller can tell an unclear outcome (retry with the same id) from a refusal.
//! The other variants are disagreements between what is stored and what this
//! crate expects: a bug or tampering, never a client's mistake, so they are
//! errors and never defaults.

/// A failure of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// A script answered with a verdict name its wrapper does not know.
    #[error("{script} answered with an unknown verdict {verdict:?}")]
    UnknownVerdict {
        script: &'static str,
        verdict: String,
    },
    /// A stored value could not be decoded.
    #[error("{key} field {field} holds {value:?}, which is not {expected}")]
    Corrupt {
        key: String,
        field: String,
        value: String,
        expected: &'static str,
    },
    /// The round has no data in Redis (never seeded, or deleted).
    #[error("round {round:?} has no data in Redis")]
    NotSeeded { round: String },
    /// The write is on the primary, but fewer replicas than required
    /// confirmed it in time: it must not be reported as done (a failover
    /// now could lose it). A retry with the same id confirms it again.
    #[error("{acked} of {wanted} replicas confirmed the write in time")]
    NotReplicated { acked: u32, wanted: u32 },
}

/// The result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// The call may or may not have reached Redis (the connection broke or
    /// timed out): only a call that is idempotent by design may be retried.
    pub fn is_unclear(&self) -> bool {
        match self {
            StoreError::Redis(err) => {
                err.is_io_error()
                    || err.is_connection_dropped()
                    || err.is_timeout()
                    || err.is_connection_refusal()
            }
            _ => false,
        }
    }

    /// Redis is down, busy or loading, or the node cannot take writes now
    /// (`NOREPLICAS`: no replica in reach; `READONLY`: a replica, mid
    /// failover): worth waiting out, as opposed to an operation that fails
    /// on its data.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::NotReplicated { .. } => true,
            StoreError::Redis(err) => {
                self.is_unclear()
                    || matches!(
                        err.code(),
                        Some(
                            "LOADING"
                                | "BUSY"
                                | "TRYAGAIN"
                                | "MASTERDOWN"
                                | "CLUSTERDOWN"
                                | "NOREPLICAS"
                                | "READONLY"
                        )
                    )
            }
            _ => false,
        }
    }
}
