//! PostgreSQL for tests: a database of its own per test, created through the server named by
//! `BYLINE_TEST_DATABASE_URL` and dropped afterwards; without that variable a test says
//! SKIPPED (past the harness's capture) and does not run.
#![allow(dead_code)]

use std::io::Write;

use rand_core::RngCore;
use sqlx::{Connection, Executor, PgConnection};

/// What a test prints when no PostgreSQL server is configured.
pub const SKIPPED: &str = "SKIPPED: BYLINE_TEST_DATABASE_URL is not set (no PostgreSQL)";

/// Writes to standard error past the test harness's capture, so the line shows in `cargo test`.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A database of its own on the PostgreSQL server, dropped (forcibly) when this is dropped,
/// even after a failed assertion.
pub struct TempDatabase {
    /// The administrator URL the test database was made with.
    pub admin: String,
    /// The test database's name.
    pub name: String,
    /// A URL for the test database.
    pub url: String,
}

/// `url` with its database replaced by `name` (the query, if any, kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..authority_end])
}

impl TempDatabase {
    /// Creates the database, or says the test is skipped and returns `None` when no server is
    /// configured.
    pub async fn create(test: &str) -> Option<TempDatabase> {
        let Ok(admin) = std::env::var("BYLINE_TEST_DATABASE_URL") else {
            say(&format!("{SKIPPED}: {test}"));
            return None;
        };
        let name = format!("byline_test_{:016x}", rand_core::OsRng.next_u64());
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("BYLINE_TEST_DATABASE_URL is set but unusable: {e}"));
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        let _ = conn.close().await;
        let url = with_database(&admin, &name);
        Some(TempDatabase { admin, name, url })
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside a runtime; a thread of its own can block on one.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = conn.execute(sql.as_str()).await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
