//! The backends the contract runs against, each fresh for one test.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use stopgate::store::{PgStore, SledStore, Store};

use crate::pg::{self, Cluster};

type Open = Box<dyn Fn() -> BoxFuture<'static, Arc<dyn Store>> + Send + Sync>;

pub struct Backend {
    pub store: Arc<dyn Store>,
    reopen: Open,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// The same data through a new handle, as after a restart (the old
    /// handle is dropped first: sled allows one per process).
    pub async fn reopen(self) -> Backend {
        let Backend {
            store,
            reopen,
            _dir,
        } = self;
        drop(store);
        Backend {
            store: reopen().await,
            reopen,
            _dir,
        }
    }
}

/// sled in a temporary directory, with bulk chunks of 3 numbers and import
/// rounds of 5, so that a few numbers split chunks and run several merges.
pub async fn sled() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("db");
    let open: Open = Box::new(move || {
        let path = path.clone();
        Box::pin(async move {
            Arc::new(SledStore::open_with(&path, 16, 3, 5).unwrap()) as Arc<dyn Store>
        })
    });
    Backend {
        store: open().await,
        reopen: open,
        _dir: Some(dir),
    }
}

/// A fresh database on the test binary's PostgreSQL server, with import
/// rounds of 5 numbers, so that one import runs several rounds.
pub async fn postgres() -> Backend {
    let url = Cluster::shared().database().await;
    let open: Open = Box::new(move || {
        let cfg = pg::storage(&url);
        Box::pin(
            async move { Arc::new(PgStore::open_with(&cfg, 5).await.unwrap()) as Arc<dyn Store> },
        )
    });
    Backend {
        store: open().await,
        reopen: open,
        _dir: None,
    }
}
