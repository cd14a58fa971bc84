import { expect, test } from "@playwright/test";
import { approveOnHandset, seedSession } from "./support";

// Every rail beside M-PESA, on the hosted page and the sandbox handset page, with
// JavaScript on and off (the two projects).
const base = process.env.MALIPO_E2E_URL ?? "http://127.0.0.1:3000";

test("a UGX session is paid with MTN MoMo, approved on the handset page", async ({ page, context }, info) => {
  const s = seedSession({ amount: 75000, currency: "UGX" });
  // One handset per project, so parallel runs never answer each other's prompt.
  const phone = info.project.name === "js" ? "256772100001" : "256772100002";
  await page.goto(s.path);
  await expect(page.locator(".amount")).toHaveText("UGX 75,000");
  await page.getByLabel("MTN MoMo phone number").fill(`0${phone.slice(3, 6)} ${phone.slice(6, 9)} ${phone.slice(9)}`);
  await page.getByRole("button", { name: /^Pay UGX/ }).click();
  await expect(page.getByText("Check your phone and enter your MTN MoMo PIN")).toBeVisible();

  const handset = await context.newPage();
  await handset.goto(`${base}/sandbox/phone/${phone}`);
  const prompt = handset.locator("form.prompt", { hasText: s.reference });
  await expect(prompt).toContainText("MTN · MoMo");
  await expect(prompt).toContainText("wants UGX 75,000 from your MoMo account");
  await prompt.locator("input[name=pin]").fill("24680");
  await prompt.getByRole("button", { name: "OK" }).click();
  await expect(handset.locator("[data-sms=paid]")).toBeVisible();

  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 15_000 });
  await expect(page.locator("[data-live=paid]")).toContainText("MTN MoMo receipt");
});

test("an MTN number with no MoMo account reads as such and offers another try", async ({ page }) => {
  const s = seedSession({ amount: 75000, currency: "UGX" });
  await page.goto(s.path);
  await page.getByLabel("MTN MoMo phone number").fill("0770 123 455");
  await page.getByRole("button", { name: /^Pay UGX/ }).click();
  const problem = page.locator("[data-live=failed][data-reason=not_registered]");
  await expect(problem).toContainText("This number has no MTN MoMo account", { timeout: 15_000 });
  await expect(page.getByRole("button", { name: "Send the prompt again" })).toBeVisible();
});

test("a KES session offers M-PESA and Airtel Money; an Airtel number picks Airtel", async ({ page }, info) => {
  const s = seedSession();
  const js = info.project.name === "js";
  const phone = js ? "254733100011" : "254733100012";
  await page.goto(s.path);
  const picker = page.getByRole("group", { name: "Pay with" });
  await expect(picker.getByLabel("M-PESA")).toBeChecked();
  if (js) {
    await expect(page.locator(".live[data-hydrated=true]")).toBeVisible();
    // Typing the number pre-selects its network's wallet (the shopper can change it).
    await page.locator("#phone").pressSequentially(`0${phone.slice(3, 6)} ${phone.slice(6, 9)} ${phone.slice(9)}`);
    await expect(picker.getByLabel("Airtel Money")).toBeChecked();
    await expect(page.getByLabel("Airtel Money phone number")).toBeVisible();
  } else {
    // Without JavaScript the shopper picks it.
    await picker.getByLabel("Airtel Money").check();
    await page.locator("#phone").fill(`0${phone.slice(3, 6)} ${phone.slice(6, 9)} ${phone.slice(9)}`);
  }
  await page.getByRole("button", { name: /^Pay KES/ }).click();
  await expect(page.getByText("Check your phone and enter your Airtel Money PIN")).toBeVisible();
  const receipt = await approveOnHandset(phone, s.reference);
  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 15_000 });
  await expect(page.locator(".receipt")).toHaveText(receipt);
});

test("a UGX session is paid with Airtel Money", async ({ page }, info) => {
  const s = seedSession({ amount: 75000, currency: "UGX" });
  const phone = info.project.name === "js" ? "256750100021" : "256750100022";
  await page.goto(s.path);
  await page.getByRole("group", { name: "Pay with" }).getByLabel("Airtel Money").check();
  await page.locator("#phone").fill(`0${phone.slice(3)}`);
  await page.getByRole("button", { name: /^Pay UGX/ }).click();
  await expect(page.getByText("Check your phone and enter your Airtel Money PIN")).toBeVisible();
  await approveOnHandset(phone, s.reference);
  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 15_000 });
});

test("a TZS session is paid with Mixx by Yas; a Yas number picks it", async ({ page }, info) => {
  const s = seedSession({ amount: 5000000, currency: "TZS" });
  const js = info.project.name === "js";
  const phone = js ? "255713100031" : "255713100032";
  await page.goto(s.path);
  await expect(page.locator(".amount")).toHaveText("TZS 50,000");
  const picker = page.getByRole("group", { name: "Pay with" });
  const typed = `0${phone.slice(3, 6)} ${phone.slice(6, 9)} ${phone.slice(9)}`;
  if (js) {
    await expect(page.locator(".live[data-hydrated=true]")).toBeVisible();
    await page.locator("#phone").pressSequentially(typed);
    await expect(picker.getByLabel("Mixx by Yas")).toBeChecked();
  } else {
    await picker.getByLabel("Mixx by Yas").check();
    await page.locator("#phone").fill(typed);
  }
  await page.getByRole("button", { name: /^Pay TZS/ }).click();
  await expect(page.getByText("Check your phone and enter your Mixx by Yas PIN")).toBeVisible();
  await approveOnHandset(phone, s.reference);
  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 15_000 });
});

test("a TZS session is paid with Vodacom M-Pesa; a Vodacom number picks it", async ({ page }, info) => {
  // The first Vodacom payment after the server starts may wait for its OpenAPI session
  // to go live (30 s, as at Vodacom; Malipo fetches one at start-up).
  test.setTimeout(90_000);
  const s = seedSession({ amount: 5000000, currency: "TZS" });
  const js = info.project.name === "js";
  const phone = js ? "255754100041" : "255754100042";
  await page.goto(s.path);
  const picker = page.getByRole("group", { name: "Pay with" });
  await expect(picker.getByLabel("Vodacom M-Pesa")).toBeVisible();
  const typed = `0${phone.slice(3, 6)} ${phone.slice(6, 9)} ${phone.slice(9)}`;
  if (js) {
    await expect(page.locator(".live[data-hydrated=true]")).toBeVisible();
    await page.locator("#phone").pressSequentially(typed);
    await expect(picker.getByLabel("Vodacom M-Pesa")).toBeChecked();
  } else {
    await picker.getByLabel("Vodacom M-Pesa").check();
    await page.locator("#phone").fill(typed);
  }
  await page.getByRole("button", { name: /^Pay TZS/ }).click();
  // The page waits at once: the payment call itself answers only after the handset.
  await expect(page.getByText("Check your phone and enter your Vodacom M-Pesa PIN")).toBeVisible();
  const receipt = await approveOnHandset(phone, s.reference, 60_000);
  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 15_000 });
  await expect(page.locator(".receipt")).toHaveText(receipt);
});
