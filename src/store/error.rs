//! Store failures, classified by cause: callers decide on the cause (fail
//! closed, answer 503, retry), never on the text.

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot read or write right now (disk failing or full,
    /// database unreachable). Temporary: the same call may succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored record does not decode.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// Another process holds the embedded store.
    #[error("the store at {} is locked by another process (is stopgate running?)", .0.display())]
    InUse(std::path::PathBuf),
}

pub type Result<T> = std::result::Result<T, StoreError>;
