import { expect, test } from "@playwright/test";
import { approveOnHandset, readSession, seedSession } from "./support";

// A KES 400,000 safari: more than M-PESA takes in one payment (KES 250,000). The page
// offers to pay in parts; the traveller pays KES 250,000 from their phone, a relative
// the rest from theirs, and the page turns green once the total is in; the receipt
// lists both parts. JavaScript on and off.

test("a KES 400,000 booking is paid in two parts", async ({ page }) => {
  const s = seedSession({ amount: 40_000_000 });
  await page.goto(s.path);
  await expect(page.locator("[data-parts=field]")).toContainText("M-PESA takes in one payment (KES 250,000)");
  await expect(page.getByLabel("Amount to pay now (KES)")).toHaveValue("250000");
  await page.getByLabel("M-PESA phone number").fill("0712 000 601");
  await page.getByRole("button", { name: "Pay now" }).click();
  const first = await approveOnHandset("254712000601", s.reference);

  // The first part is in: the page says what is left, and asks for it.
  await expect(page.locator("[data-parts=progress]")).toHaveText(
    "KES 250,000 received · KES 150,000 left to pay",
    { timeout: 15_000 },
  );
  let session = await readSession(s);
  expect([session.payment_status, session.amount_received]).toEqual(["unpaid", 25_000_000]);

  await page.getByLabel("M-PESA phone number").fill("0712 000 602");
  await page.getByRole("button", { name: "Pay KES 150,000" }).click();
  const second = await approveOnHandset("254712000602", s.reference);
  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 15_000 });
  session = await readSession(s);
  expect([session.payment_status, session.amount_received]).toEqual(["paid", 40_000_000]);

  // The receipt lists both parts, each with its amount, M-PESA receipt and phone.
  await page.goto(`${s.path}/receipt`);
  await expect(page.getByRole("heading", { name: "Paid in 2 parts" })).toBeVisible();
  const parts = page.locator("[data-part=true]");
  await expect(parts).toHaveCount(2);
  await expect(parts.nth(0)).toContainText("KES 250,000");
  await expect(parts.nth(0).locator(".receipt-number")).toHaveText(first);
  await expect(parts.nth(1)).toContainText("KES 150,000");
  await expect(parts.nth(1).locator(".receipt-number")).toHaveText(second);
});
