//! PostgreSQL-only tests: migrations, the batching writer, secrets.
