//! The hosted page's payment flow over HTTP: form posts (no JavaScript needed), the page
//! states, and the server-sent events that turn the page green.

use crate::helpers::{TestApp, accept, prompts, seed_session, shown, spawn_app};
use std::time::Duration;

async fn post_form(app: &TestApp, id: &str, phone: &str) -> reqwest::Response {
    app.post_pay_form(id, "", &[("phone", phone)]).await
}

async fn page(app: &TestApp, path: &str) -> String {
    app.client
        .get(format!("{}{path}", app.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_form_posts_and_redirects_back_to_the_page() {
    let app = spawn_app().await;
    let (_, id) = seed_session(&app, "Form Lodge", 900).await;
    let html = page(&app, &format!("/pay/{id}")).await;
    assert!(
        html.contains(&format!(r#"action="/pay/{id}/mpesa""#)),
        "the form posts without JS"
    );
    assert!(html.contains("Pay KES 1,500"));
    assert!(!shown(&html, "waiting") && !shown(&html, "paid") && !shown(&html, "failed"));
    assert!(html.contains(r#"type="tel""#));

    let res = post_form(&app, &id, "12345").await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        format!("/pay/{id}?error=invalid_phone")
    );
    let html = page(&app, &format!("/pay/{id}?error=invalid_phone")).await;
    assert!(
        html.contains("doesn&#x27;t look like a Kenyan mobile number")
            || html.contains("doesn't look like a Kenyan mobile number"),
        "{html}"
    );
    let html = page(&app, &format!("/pay/{id}?error=<script>")).await;
    assert!(
        !html.contains("data-reason"),
        "unknown error codes are ignored"
    );

    let res = post_form(&app, &id, "0712 345 678").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], format!("/pay/{id}"));
    let html = page(&app, &format!("/pay/{id}")).await;
    assert!(shown(&html, "waiting"), "{html}");
    assert!(!shown(&html, "failed"));
    assert!(html.contains("2547•••••678"), "the number, masked");
    assert!(
        html.contains(r#"<noscript><meta http-equiv="refresh" content="3">"#),
        "no-JS pages refresh: {html}"
    );
    assert!(
        !html.contains("Cancel and go back"),
        "no cancelling while the prompt is out"
    );
    // A second post (a double tap without JS) sends no second push.
    assert_eq!(post_form(&app, &id, "0712 345 678").await.status(), 303);
    assert_eq!(
        prompts(&app.client, &app.addr, "254712345678").await.len(),
        1
    );
}

#[tokio::test]
async fn failures_read_in_plain_words_with_a_retry() {
    let app = spawn_app().await;
    let (_, id) = seed_session(&app, "Broke Lodge", 900).await;
    post_form(&app, &id, "0700000001").await;
    let mut html = String::new();
    for _ in 0..60 {
        html = page(&app, &format!("/pay/{id}")).await;
        if shown(&html, "failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        html.contains(r#"data-reason="insufficient_funds""#),
        "{html}"
    );
    assert!(html.contains("Not enough money in your M-PESA account"));
    assert!(html.contains("Send the prompt again"));
    assert!(
        html.contains(r#"value="0700•••001""#),
        "the number is kept for the retry, masked"
    );
    assert!(!html.contains("0700000001"), "never the full number");
}

#[tokio::test]
async fn events_stream_from_waiting_to_paid() {
    let app = spawn_app().await;
    let (_, id) = seed_session(&app, "Live Lodge", 900).await;
    let mut stream = app
        .client
        .get(format!("{}/pay/{id}/events", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let mut next_data = async || -> String {
        loop {
            if let Some(i) = seen.find("\n\n") {
                let frame: String = seen.drain(..i + 2).collect();
                if let Some(line) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return line.to_owned();
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    assert_eq!(next_data().await, "idle:");
    post_form(&app, &id, "0708374149").await;
    let waiting = next_data().await;
    assert!(
        waiting.starts_with("waiting:") && waiting.ends_with(":2547•••••149"),
        "{waiting}"
    );
    let waiting_prompts = prompts(&app.client, &app.addr, "254708374149").await;
    let receipt = accept(
        &app.client,
        &app.addr,
        "254708374149",
        waiting_prompts[0]["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(next_data().await, format!("paid:mpesa:{receipt}"));

    let html = page(&app, &format!("/pay/{id}")).await;
    assert!(shown(&html, "paid") && !shown(&html, "waiting"));
    assert!(html.contains(receipt.as_str()));
    assert!(
        html.contains(r#"content="5;url=https://lodge.example/paid""#),
        "no-JS shoppers go on to the merchant: {html}"
    );
    let missing = app
        .client
        .get(format!(
            "{}/pay/cs_000000000000000000000000/events",
            app.addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn event_streams_are_capped_and_share_one_state() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Db::Sqlite, |c| {
        c.limits.streams_per_session = 2;
        c.limits.streams_per_ip = 3;
    })
    .await;
    let (_, id) = seed_session(&app, "Busy Page Lodge", 900).await;
    let open = async |id: &str| {
        app.client
            .get(format!("{}/pay/{id}/events", app.addr))
            .send()
            .await
            .unwrap()
    };
    let mut a = open(&id).await;
    let mut b = open(&id).await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let third = open(&id).await;
    assert_eq!(third.status(), 429, "a session's streams are capped");
    assert_eq!(third.headers()["retry-after"], "30");
    // Another session from the same address: the per-address cap applies.
    let (_, other) = seed_session(&app, "Other Page Lodge", 900).await;
    let held = open(&other).await;
    assert_eq!(held.status(), 200);
    assert_eq!(open(&other).await.status(), 429, "per-address cap");
    // Both streams of the first session see the same change, pushed once.
    for s in [&mut a, &mut b] {
        let first = tokio::time::timeout(Duration::from_secs(5), s.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&first).contains("data: idle:"));
    }
    post_form(&app, &id, "0708374149").await;
    for s in [&mut a, &mut b] {
        let next = tokio::time::timeout(Duration::from_secs(5), s.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&next).contains("data: waiting:"),
            "{next:?}"
        );
    }
    // A client that goes away frees its place (noticed at the latest by the next
    // keep-alive write).
    drop(a);
    drop(held);
    let again = crate::helpers::wait_for("the place to be freed", 20, async || {
        let res = open(&id).await;
        (res.status() == 200).then_some(res)
    })
    .await;
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn rails_we_do_not_speak_are_not_there() {
    let app = spawn_app().await;
    let (_, id) = seed_session(&app, "Rail Lodge", 900).await;
    let sid = malipo::domain::SessionId::parse(&id).unwrap();
    let token = app.checkout.form_token(&sid);
    for rail in ["bitpesa", "MPESA", "mpesa2"] {
        let res = app
            .client
            .post(format!("{}/pay/{id}/{rail}", app.addr))
            .form(&[("form_token", token.as_str()), ("phone", "0712345678")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "pay on {rail}");
        let res = app
            .client
            .post(format!(
                "{}/callbacks/{rail}/pa_000000000000000000000000/t",
                app.addr
            ))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "callback on {rail}");
    }
    // Nothing was pushed.
    assert!(
        prompts(&app.client, &app.addr, "254712345678")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_session_no_rail_can_take_offers_no_form() {
    use malipo::domain::{Mode, Money, money::Currency};
    let app = spawn_app().await;
    let merchant = malipo::merchants::create(&app.store, "Accra Coaches")
        .await
        .unwrap();
    let session = app
        .checkout
        .create(crate::helpers::open_session(
            &merchant.merchant.id,
            Mode::Test,
            Money::new(75_000, Currency::Ghs).unwrap(),
        ))
        .await
        .unwrap();
    let html = page(&app, &format!("/pay/{}", session.id)).await;
    assert!(
        html.contains("can't be paid with mobile money here yet"),
        "{html}"
    );
    // The form is in the page (the island switches blocks), but hidden, and the words
    // name no rail that cannot take it.
    assert!(html.contains(r#"data-live="unpayable""#));
    assert!(!html.contains("M-PESA phone number"));
    // A KES session offers M-PESA, worded for it.
    let (_, id) = seed_session(&app, "Nairobi Lodge", 900).await;
    let html = page(&app, &format!("/pay/{id}")).await;
    assert!(html.contains("M-PESA phone number"));
    assert!(html.contains(&format!(r#"action="/pay/{id}/mpesa""#)));
}
