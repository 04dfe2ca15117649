//! `SqlTokenStore`: captures and owed conversions in SQLite or Postgres.
