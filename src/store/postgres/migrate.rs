//! Schema migrations: SQL files embedded in the binary, applied in order at
//! startup (and by `stopgate migrate`), each recorded in `schema_migrations`.
//!
//! Safe when several nodes start at once, without advisory locks (which
//! CockroachDB and YugabyteDB lack): a migration runs in one transaction
//! that first inserts its version row. A second node doing the same blocks
//! on that primary key until the first commits, then gets a unique
//! violation: the migration is applied, it moves on. If the first rolls
//! back, the second's insert goes through and it applies the migration
//! itself. Migrations are additive (new tables, columns, indexes), so a node
//! of the previous release keeps working on the newer schema during a
//! rolling upgrade.

use deadpool_postgres::Pool;
use tokio_postgres::error::SqlState;

use super::{Failure, PgResult};
use crate::domain::now_millis;
use crate::store::{Result, StoreError};

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration this binary knows, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "messages_and_outbox",
        sql: include_str!("migrations/0002_messages_and_outbox.sql"),
    },
    Migration {
        version: 3,
        name: "schedule",
        sql: include_str!("migrations/0003_schedule.sql"),
    },
    Migration {
        version: 4,
        name: "consents_and_subjects",
        sql: include_str!("migrations/0004_consents_and_subjects.sql"),
    },
];

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    bigint PRIMARY KEY,
    name       text   NOT NULL,
    applied_at bigint NOT NULL
)";

/// Attempts at creating `schema_migrations` when nodes race on it.
const CREATE_ATTEMPTS: usize = 5;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Versions this run applied.
    pub applied: Vec<i64>,
    /// The highest version in the database afterwards.
    pub current: i64,
}

/// Two `CREATE TABLE IF NOT EXISTS` at once can both miss the table and
/// then collide in the catalog (a unique violation on `pg_type`): the
/// loser finds it there on its next try.
fn lost_a_race(f: &Failure) -> bool {
    matches!(f, Failure::Db(e) if e.code().is_some_and(|c| {
        *c == SqlState::UNIQUE_VIOLATION
            || *c == SqlState::DUPLICATE_TABLE
            || *c == SqlState::DUPLICATE_OBJECT
    }))
}

/// Applies the migrations the database lacks. An up-to-date database is
/// only read (a node may start while the database refuses writes).
pub async fn run(pool: &Pool) -> Result<Report> {
    let mut client = pool.get().await.map_err(Failure::from)?;
    let mut done = match applied(&client).await {
        Ok(v) => v,
        Err(Failure::Db(e)) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => {
            create_table(&client).await?;
            Vec::new()
        }
        Err(f) => return Err(f.into()),
    };
    let mut report = Report::default();
    for m in MIGRATIONS {
        if done.contains(&m.version) {
            continue;
        }
        let applied_here = apply(&mut client, m).await.map_err(|f| {
            let e = StoreError::from(f);
            StoreError::Unavailable(format!("migration {:04}_{}: {e}", m.version, m.name))
        })?;
        if applied_here {
            tracing::info!(
                version = m.version,
                name = m.name,
                "schema migration applied"
            );
            report.applied.push(m.version);
        }
        done.push(m.version);
    }
    report.current = done.iter().copied().max().unwrap_or(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if report.current > known {
        tracing::warn!(
            database = report.current,
            binary = known,
            "the database schema is newer than this binary's: running on it (migrations are additive)"
        );
    }
    Ok(report)
}

async fn create_table(client: &deadpool_postgres::Object) -> Result<()> {
    for attempt in 1..=CREATE_ATTEMPTS {
        match client
            .batch_execute(CREATE_TABLE)
            .await
            .map_err(Failure::from)
        {
            Ok(()) => return Ok(()),
            Err(f) if lost_a_race(&f) && attempt < CREATE_ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt as u64)).await;
            }
            Err(f) => return Err(f.into()),
        }
    }
    unreachable!("the last attempt returns")
}

/// The versions recorded in the database.
async fn applied(client: &deadpool_postgres::Object) -> PgResult<Vec<i64>> {
    let rows = client
        .query("SELECT version FROM schema_migrations", &[])
        .await?;
    rows.iter()
        .map(|r| r.try_get::<_, i64>(0).map_err(Failure::from))
        .collect()
}

/// One migration in one transaction; `false` if another node applied it.
async fn apply(client: &mut deadpool_postgres::Object, m: &Migration) -> PgResult<bool> {
    let tx = client.transaction().await?;
    // A migration on a big table may take long; so may waiting for another
    // node's migration to commit.
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    let claimed = tx
        .execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &now_millis()],
        )
        .await;
    match claimed {
        Ok(_) => {}
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            tx.rollback().await?;
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    }
    tx.batch_execute(m.sql).await?;
    tx.commit().await?;
    Ok(true)
}
