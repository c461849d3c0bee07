// Restate's TypeScript ingress client (@restatedev/restate-sdk-clients) against Reprise:
// call, object call, send + attach (result), and resolving an awakeable. Prints one JSON line.
// Usage: node client_test.mjs <ingress url> <effects dir>
import * as clients from "@restatedev/restate-sdk-clients";
import { readFileSync, existsSync } from "node:fs";

const [url, effects] = process.argv.slice(2);
const rs = clients.connect({ url });
const out = {};

const steps = rs.serviceClient({ name: "Steps" });
out.call = await steps.three("tsc");
out.objectCall = await rs.objectClient({ name: "Counter" }, "tsc").add(3);

const handle = await rs.serviceSendClient({ name: "Steps" }).three("tss", clients.SendOpts.from({ idempotencyKey: `ts-${Date.now()}` }));
out.send = typeof handle.invocationId === "string" && handle.invocationId.startsWith("inv_1");
out.attach = await rs.result(handle);

const waiting = rs.serviceClient({ name: "Waiter" }).awake("tsa");
const file = `${effects}/tsa.awakeable`;
for (let i = 0; i < 300 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 100));
await rs.resolveAwakeable(readFileSync(file, "utf8").trim(), "from-ts");
out.awakeable = await waiting;

console.log(JSON.stringify(out));
