// The SDK (1.17) calls Promise.withResolvers, which Node gained in 22; Debian's Node is 20. Imported
// first by service.mjs, before the SDK is evaluated. (Environment shim only: the service is unchanged.)
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
