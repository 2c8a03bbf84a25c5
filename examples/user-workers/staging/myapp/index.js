// An example user worker in the local "staging" dispatch namespace (Workers for Platforms).
// It answers with what it saw, so the platform's routing can be checked end to end.
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/throw") throw new Error("user worker failed on purpose");
    return Response.json({
      worker: "myapp",
      namespace: "staging",
      method: request.method,
      host: request.headers.get("host"),
      path: url.pathname,
      requestId: request.headers.get("x-request-id"),
      traceparent: request.headers.get("traceparent"),
      dispatchLimits: request.headers.get("x-local-dispatch-limits"),
    });
  },
};
