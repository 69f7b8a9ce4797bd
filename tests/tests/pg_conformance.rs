//! `PgStore` against a real PostgreSQL (`KEYFED_TEST_PG`, see
//! `keyfed_tests::pg`): the store conformance suite, migrations, and what
//! only a shared database can show (concurrent writers, error hygiene).
#![allow(clippy::unwrap_used)]

use keyfed_shard::store::postgres::PgStore;
use keyfed_shard::store::{conformance, Store, StoreError};
use keyfed_shared::ids::DomainId;
use keyfed_shared::model::Domain;
use keyfed_tests::pg::{connect, drop_database, fresh_database};
use std::str::FromStr;

async fn versions(url: &str) -> Vec<i32> {
    let client = connect(&tokio_postgres::Config::from_str(url).unwrap())
        .await
        .unwrap();
    let rows = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn postgres_store_passes_the_conformance_suite() {
    let url = fresh_database().await.unwrap();
    let store = PgStore::connect(&url, 4).await.unwrap();
    conformance::run_all(&store).await;
    // Again on the same database: the suite needs no clean slate.
    conformance::run_all(&store).await;
    drop(store);
    drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn outbox_entries_survive_a_new_store_on_the_same_database() {
    let url = fresh_database().await.unwrap();
    let store = PgStore::connect(&url, 2).await.unwrap();
    let written = conformance::write_pending(&store).await;
    drop(store);
    let reopened = PgStore::connect(&url, 2).await.unwrap();
    conformance::still_pending(&reopened, &written).await;
    drop(reopened);
    drop_database(&url).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_are_idempotent_and_race_free() {
    let url = fresh_database().await.unwrap();
    let (a, b) = tokio::join!(PgStore::connect(&url, 1), PgStore::connect(&url, 1));
    let (a, b) = (a.unwrap(), b.unwrap());
    let again = PgStore::connect(&url, 1).await.unwrap();
    let applied = versions(&url).await;
    assert!(!applied.is_empty());
    assert_eq!(
        applied,
        (1..=applied.len() as i32).collect::<Vec<_>>(),
        "each once"
    );
    // All three see one schema.
    let d = Domain {
        id: DomainId::generate(),
        name: "shared".into(),
        description: String::new(),
        enabled: true,
    };
    a.create_domain(&d).await.unwrap();
    assert_eq!(b.get_domain(&d.id).await.unwrap(), Some(d.clone()));
    assert_eq!(again.get_domain(&d.id).await.unwrap(), Some(d));
    drop((a, b, again));
    drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let url = fresh_database().await.unwrap();
    drop(PgStore::connect(&url, 1).await.unwrap());
    let client = connect(&tokio_postgres::Config::from_str(&url).unwrap())
        .await
        .unwrap();
    client
        .execute("INSERT INTO schema_migrations (version) VALUES (9999)", &[])
        .await
        .unwrap();
    let err = PgStore::connect(&url, 1).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("9999")),
        "{err:?}"
    );
    drop(client);
    drop_database(&url).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_get_one_winner() {
    let url = fresh_database().await.unwrap();
    let store = PgStore::connect(&url, 8).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let d = Domain {
                    id: DomainId::generate(),
                    name: "contested".into(),
                    description: String::new(),
                    enabled: true,
                };
                store.create_domain(&d).await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    drop(store);
    drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn connection_errors_do_not_leak_the_password() {
    let url = "host=127.0.0.1 port=1 user=postgres password=s3cr3t-pw connect_timeout=2";
    let err = PgStore::connect(url, 1).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Backend(_)), "{text}");
    assert!(!text.contains("s3cr3t-pw"), "{text}");
    let bad = PgStore::connect("host=127.0.0.1 nonsense=1 password=s3cr3t-pw", 1)
        .await
        .unwrap_err();
    assert!(!bad.to_string().contains("s3cr3t-pw"), "{bad}");
    assert!(
        PgStore::connect("host=127.0.0.1", 0).await.is_err(),
        "empty pool"
    );
}
