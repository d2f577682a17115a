// The pipeline's browser client: one dependency-free ES module (docs/clients.md "Browser").
//
//   import { connect } from "./client.js";
//   const client = connect("wss://abc.execute-api.eu-west-1.amazonaws.com/prod", { token });
//   client.addEventListener("message", (e) => console.log(e.detail));
//   client.addEventListener("state", (e) => console.log(e.detail.state, e.detail.reason));
//   client.send({ action: "join", room: "lobby" });
//   await client.sendAcked({ action: "send", room: "lobby", text: "hi" });
//
// What it does for you, against API Gateway's WebSocket limits
// (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html):
// - reconnects after a drop with capped exponential backoff and full jitter, and re-joins the
//   rooms it had joined;
// - sends {"action":"ping"} (answered "pong" by the gateway, no stream record) before the
//   10-minute idle timeout;
// - replaces the connection before the 2-hour limit: the new one is opened (and its rooms
//   joined) before the old one is closed;
// - passes the token as ?token= (browsers cannot set headers on a WebSocket);
// - sendAcked() follows the retry rule of docs/acks.md: one frame in flight per acked route, resent with the
//   same id on a retryable nack or a timeout, rejected on a non-retryable nack;
// - stops (state "closed", reason "unauthorized") when $connect is refused. A browser never sees
//   the HTTP status of a refused upgrade, so a handshake that fails while the token is expired
//   (its exp claim, read locally) counts as refused; other handshake failures are retried.

const DEFAULTS = {
  token: null, // string, or a function returning a string or a Promise of one (called per attempt)
  pingIntervalMs: 5 * 60 * 1000, // API Gateway closes a connection idle for 10 minutes
  maxConnectionMs: 110 * 60 * 1000, // API Gateway closes every connection after 2 hours
  backoffBaseMs: 250,
  backoffCapMs: 30 * 1000,
  ackRoutes: ["send"], // the acked routes (consumers' "ackRoutes")
  ackTimeoutMs: 5000,
  ackAttempts: 4,
  ackBackoffBaseMs: 50,
  ackBackoffCapMs: 1000,
  maxQueued: 1000, // frames kept while not connected
  WebSocket: globalThis.WebSocket,
};
const CLOCK_SKEW_S = 30;

/** Full jitter: uniform(0, min(cap, base * 2^attempt)). */
export function backoffDelay(attempt, baseMs, capMs, random = Math.random) {
  return random() * Math.min(capMs, baseMs * 2 ** attempt);
}

/** Whether a JWT's exp claim (read, not verified) is in the past. */
export function tokenExpired(token, nowMs = Date.now()) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
    return typeof claims.exp === "number" && claims.exp + CLOCK_SKEW_S < nowMs / 1000;
  } catch {
    return false;
  }
}

function joinedRoom(text) {
  try {
    const frame = JSON.parse(text);
    return frame.action === "join" ? frame.room : null;
  } catch {
    return null;
  }
}

/**
 * A presence frame as one line of text (issue 22: one frame per room per window, listing the
 * window's joins and leaves; rooms above presenceMaxMembers get none: ask `who`).
 * `{"action":"presence","room":R,"joined":[{connectionId,principal}],"left":[{connectionId,reason}]}`
 */
export function presenceText(frame) {
  const name = (m) => m.principal || `${String(m.connectionId).slice(0, 6)}…`;
  const parts = [];
  if (frame.joined?.length) parts.push(`${frame.joined.map(name).join(", ")} joined`);
  if (frame.left?.length) parts.push(`${frame.left.map(name).join(", ")} left`);
  return `${frame.room}: ${parts.join("; ") || "no change"}`;
}

/** Open a client on `url` (ws:// or wss://, without the token). */
export function connect(url, options = {}) {
  return new PipelineClient(url, options);
}

export class PipelineClient extends EventTarget {
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.options = { ...DEFAULTS, ...options };
    this.state = "idle";
    this.rooms = new Set();
    this.connectionId = null; // the current connection's id, once asked (whoami())
    this._whoami = []; // resolvers waiting for the gateway's whoami answer
    this._socket = null;
    this._attempt = 0;
    this._queue = [];
    this._acked = new Map(); // route -> { pending: [], inflight: null }
    this._nextId = 1;
    this._timers = new Set();
    this._closed = false;
    this._switch = null; // a replacement connection waiting for its rooms' "joined"
    // Started after the caller's synchronous code: its listeners see "connecting" too.
    queueMicrotask(() => this._open(false));
  }

  /** Send a frame (an object or a string); queued while (re)connecting. */
  send(frame) {
    const text = typeof frame === "string" ? frame : JSON.stringify(frame);
    this._track(text);
    if (this.state === "open" && this._socket) {
      this._socket.send(text);
    } else if (!this._closed && this._queue.length < this.options.maxQueued) {
      this._queue.push(text);
    } else {
      return false;
    }
    return true;
  }

  /** Send a frame on an acked route; resolves with the ack, rejects on a non-retryable nack. */
  sendAcked(frame) {
    const route = frame.action;
    if (this._closed) return Promise.reject(Object.assign(new Error("closed"), { error: "closed", retryable: false }));
    if (!this.options.ackRoutes.includes(route)) {
      return Promise.reject(new Error(`route ${route} is not acked`));
    }
    const withId = { ...frame, id: frame.id ?? this._nextId++ };
    return new Promise((resolve, reject) => {
      const lane = this._lane(route);
      lane.pending.push({ frame: withId, resolve, reject, attempts: 0, timer: null });
      this._pump(route);
    });
  }

  /** The current connection's id, answered by the gateway itself (the whoami route: no stream
   * record, no Lambda); also kept in `connectionId` until the connection is replaced. */
  whoami(timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const waiter = { resolve, timer: null };
      waiter.timer = setTimeout(() => {
        this._whoami = this._whoami.filter((w) => w !== waiter);
        reject(new Error("whoami: no answer"));
      }, timeoutMs);
      this._whoami.push(waiter);
      this.send('{"action":"whoami"}');
    });
  }

  /** Close for good (state "closed", reason "client"). */
  close() {
    this._finish("client");
  }

  // --- connection ----------------------------------------------------------------------------

  async _open(replacing) {
    if (this._closed) return;
    if (this.state === "idle") this._setState("connecting");
    let token = this.options.token;
    try {
      if (typeof token === "function") token = await token();
    } catch (error) {
      this._finish("unauthorized", String(error));
      return;
    }
    if (this._closed) return;
    const target = token ? `${this.url}${this.url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : this.url;
    const socket = new this.options.WebSocket(target);
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this._attempt = 0;
      const queued = new Set(this._queue.map(joinedRoom).filter(Boolean)); // joined by the flush below
      const rejoin = [...this.rooms].filter((room) => !queued.has(room));
      for (const room of rejoin) socket.send(JSON.stringify({ action: "join", room }));
      const old = this._socket;
      if (replacing && old && old.readyState === 1 && rejoin.length) {
        // Replacing a live connection: switch once the new one is in every room (its "joined"
        // replies), so no room message falls between the old one leaving and the new one
        // joining; meanwhile both receive (a message may then arrive twice, never not at all).
        const switchOver = { socket, waiting: new Set(rejoin), done: () => this._adopt(socket) };
        this._switch = switchOver;
        this._schedule(() => this._switch === switchOver && this._adopt(socket), this.options.ackTimeoutMs);
      } else {
        this._adopt(socket);
      }
    };
    socket.onmessage = (event) => this._receive(event.data, socket);
    socket.onclose = (event) => {
      if (this._switch && this._switch.socket === socket) this._switch = null; // the replacement died
      if (this._closed || (this._socket !== socket && opened)) return; // a replaced socket
      if (this._switch && this._switch.socket.readyState === 1) {
        this._adopt(this._switch.socket); // the old one dropped during the switch-over
        return;
      }
      if (!opened && this._socket && this._socket !== socket) return; // a failed replacement: keep the old one
      this._socket = null;
      if (!opened && token && tokenExpired(token)) {
        this._finish("unauthorized", "the token has expired");
        return;
      }
      this._retry(opened ? `dropped (${event.code})` : "handshake failed");
    };
  }

  _adopt(socket) {
    const old = this._socket;
    this._switch = null;
    this._socket = socket;
    this.connectionId = null; // a new connection has a new id
    this._schedule(() => this._rotate(socket), this.options.maxConnectionMs);
    this._heartbeat(socket);
    if (old && old !== socket) old.close(1000, "replaced");
    if (this.state !== "open") this._setState("open");
    this._flush(); // queued frames, an acked route's in-flight frame among them
  }

  _retry(reason) {
    if (this._closed) return;
    this._setState("reconnecting", reason);
    const delay = backoffDelay(this._attempt++, this.options.backoffBaseMs, this.options.backoffCapMs);
    this._schedule(() => this._open(false), delay);
  }

  _rotate(socket) {
    if (!this._closed && this._socket === socket) this._open(true);
  }

  _heartbeat(socket) {
    const beat = () => {
      if (this._closed || this._socket !== socket || socket.readyState !== 1) return;
      socket.send('{"action":"ping"}');
      this._schedule(beat, this.options.pingIntervalMs);
    };
    this._schedule(beat, this.options.pingIntervalMs);
  }

  _flush() {
    const queued = this._queue;
    this._queue = [];
    for (const text of queued) this._socket.send(text);
  }

  _track(text) {
    try {
      const frame = JSON.parse(text);
      if (frame.action === "join" && typeof frame.room === "string") this.rooms.add(frame.room);
      if (frame.action === "leave") this.rooms.delete(frame.room);
    } catch {
      // not JSON: nothing to remember
    }
  }

  _receive(data, socket) {
    let frame = data;
    try {
      frame = JSON.parse(data);
    } catch {
      // delivered as text
    }
    const pending = this._switch;
    if (pending && pending.socket === socket && frame && frame.action === "joined") {
      pending.waiting.delete(frame.room);
      if (pending.waiting.size === 0) pending.done();
    }
    if (frame && frame.action === "pong") return;
    if (frame && frame.action === "whoami" && socket === this._socket) {
      this.connectionId = frame.connectionId;
      const waiting = this._whoami;
      this._whoami = [];
      for (const w of waiting) {
        clearTimeout(w.timer);
        w.resolve(frame.connectionId);
      }
    }
    if (frame && (frame.action === "ack" || frame.action === "nack") && this._answer(frame)) return;
    this.dispatchEvent(new CustomEvent("message", { detail: frame }));
  }

  // --- acked routes: docs/acks.md "The retry rule" ---------------------------------------------------

  _lane(route) {
    if (!this._acked.has(route)) this._acked.set(route, { pending: [], inflight: null });
    return this._acked.get(route);
  }

  _pump(route) {
    const lane = this._lane(route);
    if (lane.inflight || lane.pending.length === 0) return;
    lane.inflight = lane.pending.shift();
    this._transmit(route);
  }

  _transmit(route) {
    const lane = this._lane(route);
    const entry = lane.inflight;
    if (!entry) return;
    entry.attempts += 1;
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => this._again(route, "timeout"), this.options.ackTimeoutMs);
    this.send(entry.frame);
  }

  _again(route, error) {
    const lane = this._lane(route);
    const entry = lane.inflight;
    if (!entry) return;
    clearTimeout(entry.timer);
    if (entry.attempts >= this.options.ackAttempts) {
      lane.inflight = null;
      entry.reject(Object.assign(new Error(`gave up after ${entry.attempts} attempts: ${error}`), { error, retryable: true }));
      this._pump(route);
      return;
    }
    const delay = backoffDelay(entry.attempts, this.options.ackBackoffBaseMs, this.options.ackBackoffCapMs);
    entry.timer = setTimeout(() => this._transmit(route), delay);
  }

  _answer(frame) {
    const lane = this._acked.get(frame.route);
    const entry = lane && lane.inflight;
    if (!entry) return false;
    if (frame.action === "ack") {
      clearTimeout(entry.timer);
      lane.inflight = null;
      entry.resolve(frame);
      this._pump(frame.route);
    } else if (frame.retryable) {
      this._again(frame.route, frame.error);
    } else {
      clearTimeout(entry.timer);
      lane.inflight = null;
      entry.reject(Object.assign(new Error(frame.error), { error: frame.error, retryable: false }));
      this._pump(frame.route);
    }
    return true;
  }

  // --- bookkeeping -----------------------------------------------------------------------------

  _schedule(fn, ms) {
    const timer = setTimeout(() => {
      this._timers.delete(timer);
      fn();
    }, ms);
    this._timers.add(timer);
  }

  _setState(state, reason = "") {
    if (this.state === state && state !== "reconnecting") return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, reason } }));
  }

  _finish(reason, detail = "") {
    if (this._closed) return;
    this._closed = true;
    for (const timer of this._timers) clearTimeout(timer);
    this._timers.clear();
    if (this._socket) this._socket.close(1000, "client");
    if (this._switch) this._switch.socket.close(1000, "client");
    this._socket = null;
    this._switch = null;
    for (const lane of this._acked.values()) {
      for (const entry of [lane.inflight, ...lane.pending].filter(Boolean)) {
        clearTimeout(entry.timer);
        entry.reject(Object.assign(new Error(`closed: ${reason}`), { error: reason, retryable: false }));
      }
    }
    this._acked.clear();
    this.state = "closed";
    this.dispatchEvent(new CustomEvent("state", { detail: { state: "closed", reason, detail } }));
  }
}
