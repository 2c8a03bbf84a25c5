// An example user worker in the local "production" dispatch namespace (Workers for Platforms).
// It answers with what it saw, so the platform's routing can be checked end to end.
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/throw") throw new Error("user worker failed on purpose");
    if (url.pathname === "/login") {
      // A login form's answer: the api passes the redirect and its cookie on, never follows it.
      return new Response(null, { status: 303, headers: { location: "/hello", "set-cookie": "myapp_session=demo; Path=/; HttpOnly" } });
    }
    if (url.pathname === "/ws" && request.headers.get("upgrade") === "websocket") {
      // A WebSocket echo, reached through the api like any other request.
      const [client, server] = Object.values(new WebSocketPair());
      server.accept();
      server.addEventListener("message", (event) => server.send(`myapp echo: ${event.data}`));
      return new Response(null, { status: 101, webSocket: client });
    }
    return Response.json({
      worker: "myapp",
      namespace: "production",
      method: request.method,
      host: request.headers.get("host"),
      path: url.pathname,
      requestId: request.headers.get("x-request-id"),
      traceparent: request.headers.get("traceparent"),
      dispatchLimits: request.headers.get("x-local-dispatch-limits"),
    });
  },
};
