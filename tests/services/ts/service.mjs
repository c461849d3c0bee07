// A service written with Restate's TypeScript SDK, served by its own serve() (Node's http2: h2c,
// BIDI_STREAM), as a user would deploy it. Side effects are lines appended to files under
// $REPRISE_TEST_EFFECTS, one file per effect name, so the test can prove a step ran exactly once.
// Usage: PORT=<port> REPRISE_TEST_EFFECTS=<dir> node service.mjs
import "./node20.mjs";
import * as restate from "@restatedev/restate-sdk";
import { appendFileSync } from "node:fs";

const effects = process.env.REPRISE_TEST_EFFECTS ?? "/tmp/reprise-effects";
const effect = (name, value = "x") => {
  appendFileSync(`${effects}/${name}`, `${value}\n`);
  return value;
};
const failedOnce = new Set();

const counter = restate.object({
  name: "TsCounter",
  handlers: {
    add: async (ctx, delta) => {
      const value = ((await ctx.get("value")) ?? 0) + delta;
      ctx.set("value", value);
      return value;
    },
  },
});

const greeter = restate.service({
  name: "TsGreeter",
  handlers: {
    // three journaled steps, then a call to a virtual object and a big result
    steps: async (ctx, name) => {
      const parts = [];
      for (const step of ["a", "b", "c"]) {
        parts.push(await ctx.run(step, () => effect(`${name}.${step}`, step.toUpperCase())));
      }
      const total = await ctx.objectClient(counter, name).add(parts.length);
      return { greeting: `${name}:${parts.join("")}`, total, padding: "p".repeat(100_000) };
    },
    // a step that throws on its first try: the invocation is retried and the step's effect repeats
    flaky: async (ctx, name) => {
      const value = await ctx.run("flaky", () => {
        effect(`${name}.try`);
        if (!failedOnce.has(name)) {
          failedOnce.add(name);
          throw new Error("transient failure");
        }
        return "recovered";
      });
      return value;
    },
    // longer than the stream's idle limit: the handler suspends and a timer resumes it
    nap: async (ctx, req) => {
      await ctx.run("before", () => effect(`${req.name}.before`));
      await ctx.sleep(req.ms);
      await ctx.run("after", () => effect(`${req.name}.after`));
      return "rested";
    },
    refuse: async () => {
      throw new restate.TerminalError("not allowed", { errorCode: 403 });
    },
  },
});

restate.serve({ services: [greeter, counter], port: Number(process.env.PORT ?? 9080) });
