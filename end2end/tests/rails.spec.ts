import { expect, test } from "@playwright/test";
import { seedSession } from "./support";

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
