//! Versioned migrations of a PostgreSQL database: the versions a database has not had apply
//! in one transaction, so a version that fails leaves the database as it was, and the next
//! start applies them all, once.

mod common;
#[path = "common/pg.rs"]
mod pg;

#[tokio::test]
async fn a_failing_version_leaves_the_database_as_it_was_and_the_next_start_applies_all() {
    let Some(cluster) = pg::cluster() else { return };
    let url = cluster.fresh_database().await;
    let password = dropfolder::config::SecretRef::Env("DATABASE_PASSWORD".into());
    let broken: &[(i64, &str)] = &[
        (1, "CREATE TABLE a (x int)"),
        (2, "CREATE TABLE b (y no_such_type)"),
    ];
    let Err(error) = dropfolder::postgres::connect(&url, Some(&password), 2, broken).await else {
        panic!("version 2 must fail");
    };
    let text = error.to_string();
    assert!(text.contains("migration 2 failed"), "{text}");
    assert!(text.contains("no_such_type"), "{text}");

    let client = cluster.client(&url).await;
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('a', 'b', 'schema_migrations')",
            &[],
        )
        .await
        .expect("count tables")
        .get(0);
    assert_eq!(left, 0, "nothing of the failed start is left");

    let fixed: &[(i64, &str)] = &[(1, "CREATE TABLE a (x int)"), (2, "CREATE TABLE b (y int)")];
    drop(cluster.pool(&url, fixed).await);
    // A start that finds every version applied applies none again (`CREATE TABLE a` would
    // fail).
    drop(cluster.pool(&url, fixed).await);
    let versions: Vec<i64> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("versions")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [1, 2]);
}
