//! The `malipo` binary's subcommands, run as a user would.

use crate::helpers::{Db, test_db};
use serde_json::{Value, json};
use std::process::Command;

fn malipo(db_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_malipo"))
        .args(args)
        .env("MALIPO_DATABASE_URL", db_url)
        .env("MALIPO_MASTER_KEY", crate::helpers::TEST_MASTER_KEY)
        .env("MALIPO_LOG", "warn")
        .env_remove("MALIPO_CONFIG")
        .output()
        .expect("run malipo")
}

#[tokio::test]
async fn merchant_create_prints_keys_once_and_stores_only_a_hash() {
    let db = test_db(Db::Sqlite).await;
    let out = malipo(
        &db.url,
        &["merchant", "create", "--name", "Amboseli Camp", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value =
        serde_json::from_slice(&out.stdout).expect("stdout is exactly one JSON object");
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["id", "name", "test_publishable_key", "test_secret_key"]
    );
    assert_eq!(json["name"], "Amboseli Camp");
    assert!(json["id"].as_str().unwrap().starts_with("mer_"));
    let secret = json["test_secret_key"].as_str().unwrap();
    assert!(secret.starts_with("sk_test_"));
    assert!(
        json["test_publishable_key"]
            .as_str()
            .unwrap()
            .starts_with("pk_test_")
    );

    // The secret is nowhere in the database file (nor its WAL), only its hash is.
    let dir = db.url.trim_start_matches("sqlite://");
    let dir = std::path::Path::new(dir).parent().unwrap();
    let mut found_hash = false;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&secret[8..]), "secret key stored in clear");
        found_hash |= text.contains(&malipo::domain::keys::hash_token(secret));
    }
    assert!(found_hash, "the key's hash is stored");
}

#[tokio::test]
async fn session_create_prints_a_working_link() {
    let db = test_db(Db::Sqlite).await;
    let out = malipo(
        &db.url,
        &["merchant", "create", "--name", "Tsavo Buses", "--json"],
    );
    let merchant: Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = malipo(
        &db.url,
        &[
            "session",
            "create",
            "--merchant",
            merchant["id"].as_str().unwrap(),
            "--amount",
            "250000",
            "--currency",
            "kes",
            "--description",
            "Nairobi → Mombasa",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let session: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = session["id"].as_str().unwrap();
    assert!(id.starts_with("cs_"));
    assert_eq!(session["url"], format!("http://127.0.0.1:3000/pay/{id}"));
}

#[tokio::test]
async fn bad_input_fails_with_a_clear_message_and_writes_nothing() {
    let db = test_db(Db::Sqlite).await;
    let out = malipo(&db.url, &["merchant", "create", "--name", "   ", "--json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("merchant name"));
    assert!(out.stdout.is_empty());

    let out = malipo(
        &db.url,
        &[
            "session",
            "create",
            "--merchant",
            "mer_nope",
            "--amount",
            "1",
            "--description",
            "x",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--merchant"));

    let out = malipo("mysql://nope", &["migrate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("database_url"));
}

#[tokio::test]
async fn migrate_creates_the_sqlite_file() {
    let db = test_db(Db::Sqlite).await;
    let out = malipo(&db.url, &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "migrations applied (sqlite)"
    );
    assert!(std::path::Path::new(db.url.trim_start_matches("sqlite://")).exists());
}

#[tokio::test]
async fn log_format_flag_switches_to_json_lines() {
    let db = test_db(Db::Sqlite).await;
    let out = Command::new(env!("CARGO_BIN_EXE_malipo"))
        .args([
            "--log-format",
            "json",
            "session",
            "create",
            "--merchant",
            "mer_000000000000000000000000",
            "--amount",
            "100",
            "--description",
            "x",
        ])
        .env("MALIPO_DATABASE_URL", &db.url)
        .env("MALIPO_MASTER_KEY", crate::helpers::TEST_MASTER_KEY)
        .env("MALIPO_LOG", "info")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    // Unknown merchant: fails, but only after connecting and migrating, which logs.
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json_lines: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        !json_lines.is_empty(),
        "expected JSON log lines on stderr, got: {stderr}"
    );
    assert!(
        json_lines
            .iter()
            .all(|l| l.get("level").is_some() && l.get("timestamp").is_some())
    );
}

#[tokio::test]
async fn keys_and_webhook_endpoints_are_managed_from_the_cli() {
    let db = test_db(Db::Sqlite).await;
    let run = |args: &[&str]| {
        let out = malipo(&db.url, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let merchant: Value = serde_json::from_str(&run(&[
        "merchant",
        "create",
        "--name",
        "Lamu Dhows",
        "--json",
    ]))
    .unwrap();
    let mer = merchant["id"].as_str().unwrap();

    let live: Value = serde_json::from_str(&run(&[
        "key",
        "create",
        "--merchant",
        mer,
        "--mode",
        "live",
        "--json",
    ]))
    .unwrap();
    let live_key = live["key"].as_str().unwrap();
    assert!(live_key.starts_with("sk_live_"), "{live}");
    let listed: Value =
        serde_json::from_str(&run(&["key", "list", "--merchant", mer, "--json"])).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(
        listed.len(),
        3,
        "test secret, test publishable, live secret"
    );
    let text = serde_json::to_string(listed).unwrap();
    assert!(!text.contains(&live_key[8..]), "keys are listed masked");
    let entry = listed.iter().find(|k| k["id"] == live["id"]).unwrap();
    assert_eq!(
        (&entry["mode"], &entry["revoked"]),
        (&json!("live"), &Value::Null)
    );

    run(&["key", "revoke", live["id"].as_str().unwrap()]);
    let listed: Value =
        serde_json::from_str(&run(&["key", "list", "--merchant", mer, "--json"])).unwrap();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == live["id"])
        .unwrap()
        .clone();
    assert!(entry["revoked"].as_i64().is_some());
    let again = malipo(&db.url, &["key", "revoke", live["id"].as_str().unwrap()]);
    assert!(!again.status.success(), "revoking twice is an error");

    let endpoint: Value = serde_json::from_str(&run(&[
        "webhook",
        "create",
        "--merchant",
        mer,
        "--url",
        "http://127.0.0.1:9/hooks",
        "--events",
        "checkout.session.completed,payment.failed",
        "--json",
    ]))
    .unwrap();
    assert!(endpoint["secret"].as_str().unwrap().starts_with("whsec_"));
    let live_http = malipo(
        &db.url,
        &[
            "webhook",
            "create",
            "--merchant",
            mer,
            "--mode",
            "live",
            "--url",
            "http://lodge.example/h",
        ],
    );
    assert!(!live_http.status.success(), "live endpoints need https");
    let list: Value =
        serde_json::from_str(&run(&["webhook", "list", "--merchant", mer, "--json"])).unwrap();
    assert_eq!(list[0]["id"], endpoint["id"]);
    assert!(list[0].get("secret").is_none());
    let rotated: Value = serde_json::from_str(&run(&[
        "webhook",
        "rotate",
        endpoint["id"].as_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_ne!(rotated["secret"], endpoint["secret"]);
    run(&["webhook", "delete", endpoint["id"].as_str().unwrap()]);
    let list: Value =
        serde_json::from_str(&run(&["webhook", "list", "--merchant", mer, "--json"])).unwrap();
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn reconcile_lists_unknown_outcomes_and_duplicates() {
    let db = test_db(Db::Sqlite).await;
    let out = malipo(&db.url, &["reconcile"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "nothing to reconcile"
    );

    let store = malipo::store::Store::connect(&secrecy::SecretString::from(db.url.clone()), 1)
        .await
        .unwrap();
    let checkout = malipo::checkout::CheckoutService::new(store.clone(), "http://x".into());
    let (_, session) =
        crate::helpers::open_kes_session(&store, &checkout, "Reconcile Lodge", 900).await;
    let attempt = crate::helpers::attempt_with_token(
        &store,
        &session.id,
        "reconcile",
        None,
        malipo::time::now_ms(),
    )
    .await;
    store
        .mark_unknown(&attempt.id, "no answer", None, malipo::time::now_ms())
        .await
        .unwrap();
    store.close().await;

    let out = malipo(&db.url, &["reconcile", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["payment"], attempt.id.as_str());
    assert_eq!(rows[0]["why"], "unknown");
    assert_eq!(rows[0]["payer"], "2547•••••678", "never a full number");
    assert_eq!(rows[0]["resolved"], Value::Null);

    // A person resolves it, saying what they found: it leaves the list, and is kept.
    let id = attempt.id.as_str();
    let out = malipo(&db.url, &["reconcile", "--resolve", id]);
    assert!(!out.status.success(), "a resolution needs a note");
    let out = malipo(
        &db.url,
        &[
            "reconcile",
            "--resolve",
            id,
            "--note",
            "not on the M-PESA statement",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = malipo(&db.url, &["reconcile", "--resolve", id, "--note", "again"]);
    assert!(!out.status.success(), "resolved once");
    let out = malipo(&db.url, &["reconcile"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "nothing to reconcile"
    );
    let out = malipo(&db.url, &["reconcile", "--all", "--json"]);
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["resolved"]["note"], "not on the M-PESA statement");
    let store = malipo::store::Store::connect(&secrecy::SecretString::from(db.url.clone()), 1)
        .await
        .unwrap();
    let logged: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payment_events WHERE kind = 'attempt.reconciled' AND attempt_id = $1",
    )
    .bind(id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(logged, 1);
}

/// A Pay Bill payment M-PESA did not confirm is listed for a person, and
/// `--recheck RECEIPT` puts it back to be checked with M-PESA again.
#[tokio::test]
async fn reconcile_lists_an_unconfirmed_paybill_payment_and_rechecks_it() {
    use malipo::{
        connectors::{PaybillPayment, RailId},
        domain::{Money, money::Currency},
        store::{PaybillClosed, PaybillRecorded},
    };
    let db = test_db(Db::Sqlite).await;
    // Migrates the new database.
    assert!(malipo(&db.url, &["reconcile"]).status.success());
    let store = malipo::store::Store::connect(&secrecy::SecretString::from(db.url.clone()), 1)
        .await
        .unwrap();
    let checkout = malipo::checkout::CheckoutService::new(store.clone(), "http://x".into());
    let (_, session) =
        crate::helpers::open_kes_session(&store, &checkout, "Recheck Lodge", 900).await;
    let p = PaybillPayment {
        receipt: "QRECHECK01".into(),
        amount: Money::new(150_000, Currency::Kes).unwrap(),
        business: "174379".into(),
        account: store.pay_code(&session.id).await.unwrap().unwrap(),
        payer: Some("254712345678".into()),
        from_menu: true,
    };
    let now = malipo::time::now_ms();
    let kept = store
        .record_paybill(RailId::Mpesa, &p, Some(&session.id), "{}", true, now)
        .await
        .unwrap();
    assert_eq!(kept, PaybillRecorded::Verifying);
    assert!(
        store
            .close_paybill(
                "QRECHECK01",
                PaybillClosed::Unverified,
                "no answer for a day"
            )
            .await
            .unwrap()
    );
    store.close().await;

    let out = malipo(&db.url, &["reconcile", "--json"]);
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["receipt"] == "QRECHECK01")
        .unwrap_or_else(|| panic!("{rows}"));
    assert_eq!(row["why"], "paybill_unverified");
    assert!(
        !row.to_string().contains("254712345678"),
        "never a full number: {row}"
    );

    let out = malipo(&db.url, &["reconcile", "--recheck", "qrecheck01"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = malipo(&db.url, &["reconcile", "--recheck", "QRECHECK01"]);
    assert!(!out.status.success(), "already being checked");
    let out = malipo(&db.url, &["reconcile", "--recheck", "not a receipt!"]);
    assert!(!out.status.success());
    let store = malipo::store::Store::connect(&secrecy::SecretString::from(db.url.clone()), 1)
        .await
        .unwrap();
    let (status, misses, _) = store.paybill_status("QRECHECK01").await.unwrap().unwrap();
    assert_eq!((status.as_str(), misses), ("verifying", 0));
    store.close().await;
}
