//! The payment page's scripts, accounted for: the build-time inventory lists every one
//! with why (and the hash of Malipo's own), the server publishes it, and the tamper check
//! records a baseline, then reports a changed script or header.

use crate::helpers::{seed_session, spawn_app};
use malipo::tamper::{Finding, compare, inventory, observe};

#[tokio::test]
async fn a_changed_script_is_reported_against_the_inventory_and_the_baseline() {
    let app = spawn_app().await;
    // A built site: the islands' loader and WebAssembly.
    let pkg = app.site.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("malipo.js"), "export default function init() {}").unwrap();
    std::fs::write(pkg.join("malipo_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let listed = inventory(&app.site).unwrap();
    let names: Vec<&str> = listed["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"/pkg/malipo.js") && names.contains(&"/card.js"),
        "{names:?}"
    );
    assert!(
        listed["scripts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["justification"].as_str().is_some_and(|j| j.len() > 40)),
        "every script says why it is there"
    );
    // Published by the server, as written at build time.
    std::fs::write(app.site.join("script-inventory.json"), listed.to_string()).unwrap();
    let published: serde_json::Value = app
        .client
        .get(format!("{}/script-inventory.json", app.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(published, listed);

    let (_, session) = seed_session(&app, "Tamper Lodge", 900).await;
    let url = format!("{}/pay/{session}", app.addr);
    let first = observe(&app.client, &url).await.unwrap();
    // The inline scripts (the import map, the island loader, Leptos's own) are the
    // same on every response, nonce aside; the import map pins the module's hash (SRI).
    assert!(first.scripts.contains_key("inline #1"));
    let page = app.page(&session).await;
    let sri = malipo::tamper::sri(b"export default function init() {}");
    assert!(
        page.contains(r#"<script type="importmap" nonce="#)
            && page.contains(&format!(r#"{{"integrity":{{"/pkg/malipo.js":"{sri}"}}}}"#)),
        "{page}"
    );
    // The page's own scripts, the card script and the processor's session.js are seen.
    assert!(first.scripts.contains_key("/pkg/malipo.js"), "{first:?}");
    assert!(first.scripts.contains_key("/card.js"));
    assert!(first.scripts.keys().any(|k| k.ends_with("/session.js")));
    assert!(first.headers["content-security-policy"].contains("'nonce-…'"));
    let ok = compare(&first, &listed, None);
    assert!(ok.iter().all(|f| matches!(f, Finding::Same(_))), "{ok:?}");
    // Unchanged a second time, nonce and all.
    let again = observe(&app.client, &url).await.unwrap();
    assert!(
        compare(&again, &listed, Some(&first))
            .iter()
            .all(|f| matches!(f, Finding::Same(_)))
    );
    // Someone changes the served script: reported against the inventory and the baseline.
    std::fs::write(
        pkg.join("malipo.js"),
        "export default function init() { skim() }",
    )
    .unwrap();
    let tampered = observe(&app.client, &url).await.unwrap();
    let findings = compare(&tampered, &listed, Some(&first));
    let changed: Vec<&String> = findings
        .iter()
        .filter_map(|f| match f {
            Finding::Changed(w) => Some(w),
            Finding::Same(_) => None,
        })
        .collect();
    assert!(
        changed
            .iter()
            .any(|w| w.starts_with("/pkg/malipo.js: not the script Malipo was built with")),
        "{changed:?}"
    );
    assert!(
        changed
            .iter()
            .any(|w| w.starts_with("script /pkg/malipo.js: content changed"))
    );
}
