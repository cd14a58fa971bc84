import { expect, test } from "@playwright/test";
import { approveOnHandset, readSession, seedSession } from "./support";

// Priced in one currency, paid in another: a dollar price paid from an M-PESA wallet in
// shillings, at the quote the page shows, with JavaScript on and off (the two projects).
test("a USD session is paid with M-PESA in KES at the quote shown", async ({ page }, info) => {
  const s = seedSession({ amount: 35000, currency: "USD" });
  const js = info.project.name === "js";
  const phone = js ? "254712300031" : "254712300032";
  await page.goto(s.path);
  await expect(page.locator(".amount")).toHaveText("USD 350");
  // The sandbox's fixed rate, 129.00 KES per USD; M-PESA charges whole shillings.
  await expect(page.locator(".quote", { hasText: "KES" })).toContainText(
    /^USD 350 = KES 45,150 at 129\.00 KES per USD, valid until \d\d:\d\d EAT$/,
  );
  // The picker shows each wallet's amount, in its own currency.
  const picker = page.getByRole("group", { name: "Pay with" });
  await expect(picker.getByLabel("M-PESA · KES 45,150", { exact: true })).toBeChecked();
  await expect(picker.getByLabel("Mixx by Yas · TZS 857,500", { exact: true })).toBeVisible();
  if (js) {
    await expect(page.locator(".live[data-hydrated=true]")).toBeVisible();
  }
  await page.locator("#phone").fill(`0${phone.slice(3, 6)} ${phone.slice(6, 9)} ${phone.slice(9)}`);
  // The button names the chosen wallet's amount once the page runs; without JavaScript
  // it cannot know the choice, and the amounts are in the picker.
  await page.getByRole("button", { name: js ? "Pay KES 45,150" : "Pay now" }).click();
  await expect(page.getByText("Check your phone and enter your M-PESA PIN")).toBeVisible();
  await approveOnHandset(phone, s.reference);
  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 15_000 });

  // The merchant reads both amounts and the quote.
  const session = await readSession(s);
  expect(session.payment_status).toBe("paid");
  expect([session.amount, session.currency]).toEqual([35000, "USD"]);
  expect([session.payment.amount, session.payment.currency]).toEqual([4515000, "KES"]);
  expect(session.payment.quote).toMatchObject({
    amount: 35000,
    currency: "USD",
    converted_amount: 4515000,
    converted_currency: "KES",
    rate: "129.00",
    rate_pair: "USD/KES",
    rate_source: "sandbox",
  });
});
