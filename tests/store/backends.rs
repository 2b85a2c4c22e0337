//! The backends the contract runs against, each fresh for one test.

use std::path::PathBuf;
use std::sync::Arc;

use stopgate::store::{SledStore, Store};

pub struct Backend {
    pub store: Arc<dyn Store>,
    reopen: Box<dyn Fn() -> Arc<dyn Store> + Send + Sync>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// The same data through a new handle, as after a restart (the old
    /// handle must be dropped first: sled allows one per process).
    pub fn reopen(self) -> Backend {
        let Backend {
            store,
            reopen,
            _dir,
        } = self;
        drop(store);
        Backend {
            store: reopen(),
            reopen,
            _dir,
        }
    }
}

/// sled in a temporary directory, with bulk chunks of 3 numbers and import
/// rounds of 5, so that a few numbers split chunks and run several merges.
pub fn sled() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("db");
    let open =
        move || -> Arc<dyn Store> { Arc::new(SledStore::open_with(&path, 16, 3, 5).unwrap()) };
    Backend {
        store: open(),
        reopen: Box::new(open),
        _dir: Some(dir),
    }
}
