//! Abuse limits on payment prompts: nobody can push-bomb a phone through checkout
//! links, pay forms cannot be posted from another site, and the page never shows a full
//! phone number.

use crate::helpers::{Db, TestApp, prompts, seed_session, spawn_app, spawn_app_with};
use malipo::{
    domain::{Mode, SessionId},
    payments::{Limit, PayError},
    store::EventFilter,
};

fn location(res: &reqwest::Response) -> String {
    assert_eq!(res.status(), 303, "{res:?}");
    res.headers()["location"].to_str().unwrap().to_owned()
}

async fn refusals(app: &TestApp, session: &str) -> Vec<serde_json::Value> {
    let s = app
        .store
        .session(&SessionId::parse(session).unwrap())
        .await
        .unwrap()
        .unwrap();
    app.store
        .events(
            &s.merchant_id,
            Mode::Test,
            &EventFilter {
                kind: Some("payment.refused".into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap()
        .iter()
        .map(|e| e.object().unwrap().data.object)
        .collect()
}

#[tokio::test]
async fn one_phone_gets_three_prompts_per_ten_minutes_across_every_shop() {
    let app = spawn_app().await;
    for shop in ["Lodge A", "Lodge B", "Lodge C"] {
        let (_, id) = seed_session(&app, shop, 900).await;
        let res = app.post_pay_form(&id, "", &[("phone", "0712345678")]).await;
        assert_eq!(location(&res), format!("/pay/{id}"));
    }
    // A fourth shop's page, same number: refused, with when to retry.
    let (_, id) = seed_session(&app, "Lodge D", 900).await;
    let res = app
        .post_pay_form(&id, "", &[("phone", "+254 712 345 678")])
        .await;
    let to = location(&res);
    let retry: i64 = to
        .strip_prefix(&format!("/pay/{id}?error=phone_limit&retry_after="))
        .unwrap_or_else(|| panic!("{to}"))
        .parse()
        .unwrap();
    assert!((590..=600).contains(&retry), "{retry}");
    assert_eq!(
        prompts(&app.client, &app.addr, "254712345678").await.len(),
        3,
        "no fourth prompt"
    );
    let page = app
        .client
        .get(format!("{}{to}", app.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Too many payment prompts"), "{page}");
    assert!(page.contains("try again in about 10 minutes"), "{page}");
    // The merchant sees the refusal, once however often it is hammered.
    app.post_pay_form(&id, "", &[("phone", "0712345678")]).await;
    let seen = refusals(&app, &id).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["reason"], "phone_limit");
    assert_eq!(seen[0]["payer"], "2547•••••678");
    // Another number is not affected.
    let res = app.post_pay_form(&id, "", &[("phone", "0708374149")]).await;
    assert_eq!(location(&res), format!("/pay/{id}"));
}

#[tokio::test]
async fn a_session_gets_a_bounded_number_of_attempts() {
    let app = spawn_app_with(Db::Sqlite, |c| c.limits.attempts_per_session = 2).await;
    let (_, id) = seed_session(&app, "Few Tries Lodge", 900).await;
    let sid = SessionId::parse(&id).unwrap();
    // Two prompts that fail at once (the sandbox refuses these numbers immediately).
    for phone in ["0700000001", "0700002001"] {
        let a = app.payments.start_mpesa(&sid, phone).await.unwrap();
        crate::helpers::wait_for("the attempt to fail", 15, async || {
            app.store
                .attempt(&a.id)
                .await
                .unwrap()
                .filter(|a| a.status.is_final())
        })
        .await;
    }
    let third = app.payments.start_mpesa(&sid, "0708374149").await;
    assert!(
        matches!(
            third,
            Err(PayError::Limited {
                limit: Limit::Session,
                retry_after: None
            })
        ),
        "{third:?}"
    );
    let res = app.post_pay_form(&id, "", &[("phone", "0708374149")]).await;
    assert_eq!(location(&res), format!("/pay/{id}?error=session_limit"));
    assert!(
        prompts(&app.client, &app.addr, "254708374149")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn one_address_gets_a_bounded_number_of_pay_requests() {
    let app = spawn_app_with(Db::Sqlite, |c| c.limits.requests_per_ip = 2).await;
    let (_, id) = seed_session(&app, "Busy Lodge", 900).await;
    for _ in 0..2 {
        let res = app.post_pay_form(&id, "", &[("phone", "12")]).await;
        assert!(location(&res).ends_with("error=invalid_phone"));
    }
    let res = app.post_pay_form(&id, "", &[("phone", "0708374149")]).await;
    assert!(
        location(&res).starts_with(&format!("/pay/{id}?error=ip_limit&retry_after=")),
        "{}",
        location(&res)
    );
    assert!(
        prompts(&app.client, &app.addr, "254708374149")
            .await
            .is_empty()
    );
    assert_eq!(refusals(&app, &id).await[0]["reason"], "ip_limit");
}

#[tokio::test]
async fn cross_site_and_tokenless_posts_start_nothing() {
    let app = spawn_app().await;
    let (_, id) = seed_session(&app, "Guarded Lodge", 900).await;
    let url = format!("{}/pay/{id}/mpesa", app.addr);
    let token = app.checkout.form_token(&SessionId::parse(&id).unwrap());
    let form = [("phone", "0708374149"), ("form_token", token.as_str())];
    // A browser says where the post came from: another site is refused, even with a
    // token it somehow had.
    for (header, value) in [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "https://evil.example"),
    ] {
        let res = app
            .client
            .post(&url)
            .header(header, value)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{header}: {value}");
    }
    // No token (a blind cross-site form, or a proxy browser that sends no headers and
    // a forged form): nothing is sent.
    let res = app
        .client
        .post(&url)
        .form(&[
            ("phone", "0708374149"),
            ("form_token", "0".repeat(32).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), format!("/pay/{id}?error=form_expired"));
    let other = seed_session(&app, "Other Lodge", 900).await.1;
    let wrong_session = app.checkout.form_token(&SessionId::parse(&other).unwrap());
    let res = app
        .client
        .post(&url)
        .form(&[
            ("phone", "0708374149"),
            ("form_token", wrong_session.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        location(&res),
        format!("/pay/{id}?error=form_expired"),
        "a token is bound to its session"
    );
    assert!(
        prompts(&app.client, &app.addr, "254708374149")
            .await
            .is_empty()
    );
    // Our own page's post goes through: same origin (its no-referrer policy makes the
    // browser send `Origin: null`), or no headers at all (Opera Mini).
    let res = app
        .client
        .post(&url)
        .header("sec-fetch-site", "same-origin")
        .header("origin", "null")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), format!("/pay/{id}"));
    assert_eq!(
        prompts(&app.client, &app.addr, "254708374149").await.len(),
        1
    );
}

#[tokio::test]
async fn the_merchants_customer_phone_is_prefilled_masked_and_still_pays() {
    let app = spawn_app().await;
    let created = malipo::merchants::create(&app.store, "Masked Lodge")
        .await
        .unwrap();
    let session = app
        .checkout
        .create(malipo::checkout::CreateSession {
            merchant_id: created.merchant.id.clone(),
            mode: Mode::Test,
            amount: malipo::domain::Money::new(150_000, malipo::domain::money::Currency::Kes)
                .unwrap(),
            reference: "MASK-1".into(),
            description: "Lodge deposit".into(),
            success_url: "https://lodge.example/ok".into(),
            cancel_url: "https://lodge.example/no".into(),
            customer_phone: Some("254708374149".into()),
            customer_email: None,
            metadata: Default::default(),
            expires_in_secs: 900,
            payment_method_types: None,
            travel: None,
        })
        .await
        .unwrap();
    let id = session.id.to_string();
    let html = app.page(&id).await;
    assert!(html.contains("0708•••149"), "masked prefill");
    for full in ["0708374149", "254708374149", "708374149"] {
        assert!(!html.contains(full), "{full} must not be in the page");
    }
    // Sent back as shown, it means the merchant's number.
    let res = app.post_pay_form(&id, "", &[("phone", "0708•••149")]).await;
    assert_eq!(location(&res), format!("/pay/{id}"));
    assert_eq!(
        prompts(&app.client, &app.addr, "254708374149").await.len(),
        1
    );
    // A masked value that matches nothing stored is not a number.
    let (_, other) = seed_session(&app, "Plain Lodge", 900).await;
    let res = app
        .post_pay_form(&other, "", &[("phone", "0708•••149")])
        .await;
    assert_eq!(location(&res), format!("/pay/{other}?error=invalid_phone"));
}

/// Parallel pay requests for one phone on many sessions are counted one after another:
/// the cap holds under a race, on both databases.
#[tokio::test]
async fn the_phone_cap_holds_under_parallel_requests() {
    for db in [Db::Sqlite, Db::Postgres] {
        let app = crate::helpers::spawn_app_on(db).await;
        let mut sessions = Vec::new();
        for i in 0..12 {
            let (_, id) = seed_session(&app, &format!("Race Lodge {i}"), 900).await;
            sessions.push(SessionId::parse(&id).unwrap());
        }
        let tasks: Vec<_> = sessions
            .into_iter()
            .map(|sid| {
                let payments = app.payments.clone();
                tokio::spawn(async move { payments.start_mpesa(&sid, "0722000333").await })
            })
            .collect();
        let mut started = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => started += 1,
                Err(PayError::Limited {
                    limit: Limit::Phone,
                    ..
                }) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(started, 3, "{db:?}");
        assert_eq!(
            prompts(&app.client, &app.addr, "254722000333").await.len(),
            3,
            "{db:?}"
        );
    }
}
