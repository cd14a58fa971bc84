import { expect, test } from "@playwright/test";
import { approveOnHandset, seedSession } from "./support";

// "Ask someone to pay": the shopper shares the page; a relative opens it on their own
// phone and pays from their own number; the shopper's page turns green too (live with
// JavaScript, on its next load without).

const jsOn = (name: string) => name === "js";

test("a relative pays from another number", async ({ page, browser }, info) => {
  const s = seedSession();
  await page.goto(s.path);
  if (jsOn(info.project.name)) await expect(page.locator(".live[data-hydrated=true]")).toBeVisible();
  await page.getByText("Ask someone to pay").click();
  const link = await page.getByLabel("Or copy this link").inputValue();
  expect(link).toMatch(new RegExp(`/pay/${s.sessionId}$`));
  // The WhatsApp and SMS links carry the page's address and what to pay.
  const whatsapp = await page.getByRole("link", { name: "Send on WhatsApp" }).getAttribute("href");
  expect(decodeURIComponent(whatsapp ?? "")).toContain(link);
  expect(decodeURIComponent(whatsapp ?? "")).toContain("KES 1,500");
  await expect(page.getByRole("link", { name: "Send by SMS" })).toHaveAttribute("href", /^sms:/);

  // The relative, on their own phone (another browser), pays from their number.
  const relative = await browser.newContext({
    javaScriptEnabled: jsOn(info.project.name),
    viewport: { width: 360, height: 640 },
    locale: "en-US",
  });
  const theirs = await relative.newPage();
  await theirs.goto(link);
  const phone = jsOn(info.project.name) ? "254711000051" : "254711000052";
  await theirs.getByLabel("M-PESA phone number").fill(`0${phone.slice(3)}`);
  await theirs.getByRole("button", { name: /^Pay KES/ }).click();
  await expect(theirs.getByText("Check your phone and enter your M-PESA PIN")).toBeVisible();
  const receipt = await approveOnHandset(phone, s.reference);
  await expect(theirs.locator("[data-live=paid]")).toBeVisible({ timeout: 10_000 });

  // The shopper's page turns green too.
  if (!jsOn(info.project.name)) await page.reload();
  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 10_000 });
  await expect(page.locator(".receipt")).toHaveText(receipt);
  await relative.close();
});
