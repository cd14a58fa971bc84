//! The hosted page in the shopper's language: how it is chosen (`?lang=`, the cookie,
//! `Accept-Language`, the merchant's default), what the answer says about it, and the
//! pieces that travel apart from the page (the event stream's failure words, the no-JS
//! form's return).

use crate::helpers::{TestApp, seed_session, spawn_app};
use malipo::{
    connectors::RailId,
    domain::{Money, SessionId, money::Currency},
    store::{AttemptOutcome, AttemptStatus, NewAttempt},
};
use reqwest::header::{HeaderMap, HeaderValue};

/// GET `path` with `headers`: (status, headers, body).
async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, String) {
    let send = async || {
        let mut req = app.client.get(format!("{}{path}", app.addr));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    };
    let mut res = send().await;
    if res.status() == reqwest::StatusCode::REQUEST_TIMEOUT {
        // As `TestApp::page`: a page that did not start within 30 s on a loaded 2-core
        // machine is asked once more; a second time fails the test.
        eprintln!("{path}: 408, asking once more");
        res = send().await;
    }
    let status = res.status().as_u16();
    let h = res.headers().clone();
    (status, h, res.text().await.unwrap())
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    h.get_all(name)
        .iter()
        .filter_map(|v: &HeaderValue| v.to_str().ok())
        .collect()
}

#[tokio::test]
async fn the_page_speaks_the_browsers_language_and_says_so() {
    let app = spawn_app().await;
    let (_, id) = seed_session(&app, "Mara Serena Lodge", 900).await;
    let (status, h, html) = get(
        &app,
        &format!("/pay/{id}"),
        &[("accept-language", "sw-KE,sw;q=0.9,en;q=0.8")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"<html lang="sw""#), "{html}");
    assert_eq!(header(&h, "content-language"), ["sw"]);
    let vary = header(&h, "vary").join(", ").to_lowercase();
    assert!(
        vary.contains("accept-language") && vary.contains("cookie"),
        "{vary}"
    );
    // The browser's language is not a choice: nothing is remembered.
    assert!(header(&h, "set-cookie").is_empty());
    assert!(html.contains("<title>Lipa KES 1,500 kwa Mara Serena Lodge · Malipo</title>"));
    assert!(html.contains("Muda uliobaki:"), "the countdown, in Swahili");
    assert!(html.contains("Kumbukumbu MARA-0042"), "the reference");
    assert!(html.contains("MAJARIBIO"), "the test-mode banner");
    assert!(html.contains("Hatutakuomba PIN yako"), "the footer");
    // The island's texts travel in its props, in Swahili, and no English is left.
    assert!(html.contains("Nambari ya simu ya M-PESA"), "{html}");
    for english in [
        "Expires in",
        "Reference",
        "Pay with",
        "Secured by Malipo",
        "Phone number",
    ] {
        assert!(!html.contains(english), "{english} left in English");
    }
    // The switcher: plain links, the current language marked.
    assert!(html.contains(r#"href="?lang=fr""#), "{html}");
    assert!(html.contains(r#"aria-current="true""#));
}

#[tokio::test]
async fn the_query_beats_the_cookie_which_beats_the_browser() {
    let app = spawn_app().await;
    let (_, id) = seed_session(&app, "Coast Bus", 900).await;
    let path = format!("/pay/{id}");
    // `?lang=` wins and is remembered (for this path only, and not for scripts).
    let (_, h, html) = get(
        &app,
        &format!("{path}?lang=fr"),
        &[("accept-language", "sw")],
    )
    .await;
    assert!(html.contains(r#"<html lang="fr""#));
    assert!(html.contains("Payer KES 1"), "{html}");
    let cookie = header(&h, "set-cookie").join("; ");
    assert!(
        cookie.contains("malipo_lang=fr") && cookie.contains("Path=/pay"),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    // The cookie then beats the browser.
    let (_, h, html) = get(
        &app,
        &path,
        &[("accept-language", "sw"), ("cookie", "malipo_lang=fr")],
    )
    .await;
    assert!(html.contains(r#"<html lang="fr""#));
    assert_eq!(header(&h, "content-language"), ["fr"]);
    // A language Malipo does not speak is ignored, wherever it comes from.
    let (_, h, html) = get(
        &app,
        &format!("{path}?lang=de"),
        &[("accept-language", "de"), ("cookie", "malipo_lang=<x>")],
    )
    .await;
    assert!(html.contains(r#"<html lang="en""#));
    assert!(header(&h, "set-cookie").is_empty());
}

#[tokio::test]
async fn without_a_language_it_speaks_the_merchants_default() {
    let app = spawn_app().await;
    let (merchant, id) = seed_session(&app, "Serengeti Air", 900).await;
    let mut profile = app.store.merchant_profile(&merchant).await.unwrap();
    assert_eq!(profile.default_locale, "en", "English until set");
    profile.default_locale = "sw".into();
    app.store
        .set_merchant_profile(&merchant, "Serengeti Air", &profile)
        .await
        .unwrap();
    let path = format!("/pay/{id}");
    let (_, _, html) = get(&app, &path, &[("accept-language", "de-DE,de")]).await;
    assert!(html.contains(r#"<html lang="sw""#), "{html}");
    let (_, _, html) = get(&app, &path, &[]).await;
    assert!(html.contains(r#"<html lang="sw""#));
    // The browser's own language still comes first.
    let (_, _, html) = get(&app, &path, &[("accept-language", "en-GB")]).await;
    assert!(html.contains(r#"<html lang="en""#));
}

#[tokio::test]
async fn a_failure_reads_in_the_pages_language_on_the_page_and_its_stream() {
    let app = spawn_app().await;
    let (_, id) = seed_session(&app, "Mara Serena Lodge", 900).await;
    let sid = SessionId::parse(&id).unwrap();
    let attempt = app
        .store
        .insert_attempt(
            &NewAttempt {
                credit_minor: None,
                session_id: sid,
                quote: None,
                rail: RailId::Mpesa,
                amount: Money::new(150_000, Currency::Kes).unwrap(),
                payer: Some("254712345678".into()),
                callback_token_hash: None,
                next_poll_at: None,
            },
            malipo::time::now_ms(),
        )
        .await
        .unwrap()
        .unwrap();
    let outcome = AttemptOutcome {
        failure_code: Some("wrong_pin".into()),
        ..Default::default()
    };
    app.store
        .finalize_attempt(
            &attempt.id,
            AttemptStatus::Failed,
            &outcome,
            "test",
            malipo::time::now_ms(),
        )
        .await
        .unwrap();
    let words = "PIN ya M-PESA uliyoweka si sahihi.";
    let (_, _, html) = get(&app, &format!("/pay/{id}?lang=sw"), &[]).await;
    assert!(html.contains(words), "{html}");
    // The stream, asked in Swahili, sends the code and its words; in English, English.
    for (lang, expected) in [
        ("sw", format!("idle:mpesa:wrong_pin\t{words}")),
        (
            "en",
            "idle:mpesa:wrong_pin\tThe M-PESA PIN was wrong.".to_owned(),
        ),
        (
            "xx",
            "idle:mpesa:wrong_pin\tThe M-PESA PIN was wrong.".to_owned(),
        ),
    ] {
        let mut res = app
            .client
            .get(format!("{}/pay/{id}/events?lang={lang}", app.addr))
            .send()
            .await
            .unwrap();
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), res.chunk())
            .await
            .expect("a first event")
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&chunk).into_owned();
        assert!(
            text.starts_with(&format!("data: {expected}")),
            "{lang}: {text}"
        );
    }
}

#[tokio::test]
async fn the_no_js_form_keeps_a_chosen_language_across_its_return() {
    let app = spawn_app().await;
    let (_, id) = seed_session(&app, "Coast Bus", 900).await;
    let res = app
        .post_pay_form(&id, "", &[("phone", "12"), ("lang", "sw")])
        .await;
    assert_eq!(res.status(), 303);
    let back = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        back.contains("error=invalid_phone") && back.contains("lang=sw"),
        "{back}"
    );
    let (_, _, html) = get(&app, &back, &[]).await;
    assert!(
        html.contains("Hii haionekani kuwa nambari ya simu ya Kenya."),
        "{html}"
    );
    // The page chosen by `?lang=` carries it in its form, for the next return.
    let field = html
        .split(r#"name="lang""#)
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .unwrap_or_default();
    assert!(
        field.contains(r#"value="sw""#) && !field.contains("disabled"),
        "{html}"
    );
    // A made-up language is not carried back.
    let res = app
        .post_pay_form(&id, "", &[("phone", "12"), ("lang", "sw&x=1")])
        .await;
    let back = res.headers()["location"].to_str().unwrap();
    assert!(!back.contains("lang="), "{back}");
    // Only the browser's language: the field is there but disabled, so not posted
    // (nothing was chosen).
    let (_, _, html) = get(&app, &format!("/pay/{id}"), &[("accept-language", "sw")]).await;
    let fields: Vec<&str> = html
        .match_indices(r#"name="lang""#)
        .map(|(i, _)| html[i..].split('>').next().unwrap())
        .collect();
    assert_eq!(fields.len(), 1, "{html}");
    assert!(fields[0].contains("disabled"), "{}", fields[0]);
}

#[tokio::test]
async fn the_pages_with_nothing_to_show_speak_the_request_language() {
    let app = spawn_app().await;
    let (status, h, html) = get(
        &app,
        "/pay/cs_00000000000000000000000000",
        &[("accept-language", "fr-FR")],
    )
    .await;
    assert_eq!(status, 404);
    assert!(html.contains(r#"<html lang="fr""#), "{html}");
    assert!(html.contains("Nous ne trouvons pas ce paiement"));
    assert_eq!(header(&h, "content-language"), ["fr"]);
}
