// Headless Chromium driven over the DevTools protocol (a WebSocket), for
// browser tests. Uses the machine's Chromium (Debian's `chromium`, or the path
// in CHROMIUM); never downloads one.

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

/** The Chromium to use, or why there is none. */
export async function findChromium(): Promise<{ path: string } | { reason: string }> {
  const env = Deno.env.get("CHROMIUM");
  for (const p of env ? [env] : CANDIDATES) {
    try {
      if ((await Deno.stat(p)).isFile) return { path: p };
    } catch { /* next */ }
  }
  return {
    reason: `no Chromium at ${
      env ?? CANDIDATES.join(", ")
    } (install Debian's chromium, or set CHROMIUM)`,
  };
}

interface Pending {
  resolve: (v: Record<string, unknown>) => void;
  reject: (e: Error) => void;
}

/** One Chromium process and its DevTools connection. */
export class Chromium implements AsyncDisposable {
  readonly #proc: Deno.ChildProcess;
  readonly #ws: WebSocket;
  readonly #dir: string;
  readonly #drain: Promise<void>;
  readonly #pending = new Map<number, Pending>();
  #next = 1;

  private constructor(proc: Deno.ChildProcess, ws: WebSocket, dir: string, drain: Promise<void>) {
    this.#proc = proc;
    this.#ws = ws;
    this.#dir = dir;
    this.#drain = drain;
    ws.onmessage = (e) => {
      const m = JSON.parse(String(e.data));
      if (typeof m.id !== "number") return; // an event
      const p = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      if (m.error) p?.reject(new Error(`DevTools: ${m.error.message}`));
      else p?.resolve(m.result ?? {});
    };
  }

  /** Starts headless Chromium (as the machine notes say: no sandbox as root, no background networking). */
  static async launch(path: string, timeoutMs = 15_000): Promise<Chromium> {
    const dir = await Deno.makeTempDir({ prefix: "murmur-chromium-" });
    // Its own TMPDIR inside the profile, removed with it: Chromium puts its singleton
    // socket's directory (org.chromium.Chromium.*) there, and left one per run in /tmp.
    const tmp = `${dir}/tmp`;
    await Deno.mkdir(tmp);
    const proc = new Deno.Command(path, {
      env: { TMPDIR: tmp },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        `--user-data-dir=${dir}`,
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "about:blank",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Read stderr until the DevTools address shows, then keep draining it.
    const found = Promise.withResolvers<string>();
    const drain = (async () => {
      const dec = new TextDecoderStream();
      let buf = "";
      let seen = false;
      for await (const chunk of proc.stderr.pipeThrough(dec)) {
        if (seen) continue;
        buf += chunk;
        const m = buf.match(/DevTools listening on (ws:\/\/\S+)/);
        if (m) {
          seen = true;
          found.resolve(m[1]!);
        } else if (buf.length > 1 << 20) buf = buf.slice(-4096);
      }
      if (!seen) {
        found.reject(new Error(`chromium exited before DevTools listened: ${buf.slice(-2000)}`));
      }
    })();
    const timer = setTimeout(
      () => found.reject(new Error(`chromium did not start within ${timeoutMs} ms`)),
      timeoutMs,
    );
    let url: string;
    try {
      url = await found.promise;
    } catch (e) {
      clearTimeout(timer);
      try {
        proc.kill("SIGKILL");
      } catch { /* gone */ }
      await proc.status;
      await drain.catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw e;
    }
    clearTimeout(timer);
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`cannot open ${url}`));
    });
    return new Chromium(proc, ws, dir, drain.catch(() => {}));
  }

  /** Sends one DevTools command (to a page when `sessionId` is given). */
  send(method: string, params: Record<string, unknown> = {}, sessionId?: string) {
    const id = this.#next++;
    const p = Promise.withResolvers<Record<string, unknown>>();
    this.#pending.set(id, p);
    this.#ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    return p.promise;
  }

  /** Opens `url` in a new tab of `width` x `height` and returns its session. */
  async open(url: string, width = 1280, height = 1000): Promise<Page> {
    const { targetId } = await this.send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await this.send("Target.attachToTarget", { targetId, flatten: true });
    const page = new Page(this, String(sessionId));
    await page.send("Emulation.setDeviceMetricsOverride", {
      width,
      height,
      deviceScaleFactor: 1,
      mobile: false,
    });
    await page.send("Page.enable");
    await page.send("Page.navigate", { url });
    return page;
  }

  /** Closes the browser and removes its profile. */
  async close(): Promise<void> {
    try {
      await Promise.race([
        this.send("Browser.close"),
        new Promise((r) => setTimeout(r, 2000)),
      ]);
    } catch { /* closing anyway */ }
    const closed = new Promise((r) => this.#ws.onclose = r);
    if (this.#ws.readyState === WebSocket.OPEN || this.#ws.readyState === WebSocket.CONNECTING) {
      this.#ws.close();
      await closed;
    }
    for (const p of this.#pending.values()) p.reject(new Error("browser closed"));
    this.#pending.clear();
    try {
      this.#proc.kill("SIGKILL");
    } catch { /* already gone */ }
    await this.#proc.status;
    await this.#drain;
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** One tab. */
export class Page {
  readonly #browser: Chromium;
  readonly #session: string;

  constructor(browser: Chromium, session: string) {
    this.#browser = browser;
    this.#session = session;
  }

  /** A DevTools command for this tab. */
  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return this.#browser.send(method, params, this.#session);
  }

  /** Evaluates `expression` in the page (awaiting a promise) and returns its value. */
  async evaluate(expression: string): Promise<unknown> {
    const r = await this.send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    }) as {
      result?: { value?: unknown };
      exceptionDetails?: { exception?: { description?: string }; text?: string };
    };
    if (r.exceptionDetails) {
      throw new Error(
        `in the page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`,
      );
    }
    return r.result?.value;
  }

  /**
   * Waits until the page's `predicate` (a JS expression) is truthy: checked at
   * every DOM change, bounded by `timeoutMs`. Returns the time it took (ms).
   */
  async waitFor(predicate: string, timeoutMs: number, what: string): Promise<number> {
    const expr = `new Promise((resolve, reject) => {
      const t0 = performance.now();
      const check = () => { try { return Boolean(${predicate}); } catch { return false; } };
      if (check()) return resolve(0);
      const obs = new MutationObserver(() => {
        if (check()) { obs.disconnect(); clearTimeout(timer); resolve(performance.now() - t0); }
      });
      obs.observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
      const timer = setTimeout(() => { obs.disconnect(); reject(new Error("timed out")); }, ${timeoutMs});
    })`;
    try {
      return await this.evaluate(expr) as number;
    } catch (e) {
      throw new Error(`page: waiting for ${what}: ${(e as Error).message}`);
    }
  }

  /** A PNG of the whole page (beyond the viewport, up to 4000 px high). */
  async screenshot(): Promise<Uint8Array> {
    const m = await this.send("Page.getLayoutMetrics") as {
      cssContentSize: { width: number; height: number };
    };
    const { width, height } = m.cssContentSize;
    const { data } = await this.send("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
      clip: {
        x: 0,
        y: 0,
        width: Math.ceil(width),
        height: Math.min(4000, Math.ceil(height)),
        scale: 1,
      },
    });
    return Uint8Array.from(atob(String(data)), (c) => c.charCodeAt(0));
  }
}
