// What every browser test needs: the real omnigent binary serving on a loopback port with its own data dir, and
// Debian's chromium-headless-shell driven by playwright-core. Offline: sessions use the `scripted` provider.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.env.OMNIGENT_BIN;
const BROWSER = process.env.OMNIGENT_CHROMIUM ?? '/usr/bin/chromium-headless-shell';
if (!BIN) throw new Error('OMNIGENT_BIN must name the omnigent binary (tests/webui.rs sets it)');

/** A server process on a data dir; `restart()` and `kill()` keep the data dir and, once bound, the port. */
export class Server {
  constructor({ token } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'omnigent-ui-'));
    this.token = token;
    this.port = 0;
    this.log = '';
  }

  async start() {
    const args = ['server', '--bind', `127.0.0.1:${this.port}`, '--data-dir', this.dir];
    const env = { ...process.env, RUST_LOG: 'info', OMNIGENT_AUTH_TOKEN: this.token ?? '' };
    if (!this.token) delete env.OMNIGENT_AUTH_TOKEN;
    this.child = spawn(BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
    const url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the server did not start:\n${this.log}`)), 30_000);
      const read = (chunk) => {
        this.log += chunk;
        const m = /listening[^\n]*url=(http:\/\/127\.0\.0\.1:(\d+))/.exec(this.log);
        if (m) {
          clearTimeout(timer);
          this.port = Number(m[2]);
          resolve(m[1]);
        }
      };
      this.child.stdout.on('data', read);
      this.child.stderr.on('data', read);
      this.child.once('exit', (code) => reject(new Error(`the server exited (${code}):\n${this.log}`)));
    });
    this.url = url;
    return url;
  }

  /** SIGKILL, and wait until the process is gone (a restart on the same data dir needs that). */
  async kill() {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      await this.exited;
    }
  }

  async restart() {
    await this.kill();
    return this.start();
  }

  async cleanup() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A call to the API, as another client would make it. */
  async api(method, path, body) {
    const headers = { 'content-type': 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const response = await fetch(this.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  /** A session from one of the repository's example configs (YAML), optionally changed first. */
  async session(example, { change, title } = {}) {
    const yaml = readFileSync(new URL(`../../../examples/${example}`, import.meta.url), 'utf8');
    return this.api('POST', '/v1/sessions', { config_yaml: change ? change(yaml) : yaml, title });
  }
}

/** A server and a browser for one test file: `before(async () => ({ server, b } = await start()))`. */
export async function start(options) {
  const server = new Server(options);
  await server.start();
  return { server, b: await browser() };
}

/** Closes what `start` opened (either may be missing if `start` failed). */
export async function stop({ server, b }) {
  await b?.close();
  await server?.cleanup();
}

export async function browser() {
  return chromium.launch({ executablePath: BROWSER, args: ['--no-sandbox'] });
}

/** A fresh page (its own context: own cookies) that fails the test on any uncaught page error. */
export async function page(b, { errors = [] } = {}) {
  const context = await b.newContext({ viewport: { width: 1280, height: 800 } });
  const p = await context.newPage();
  p.on('pageerror', (e) => errors.push(e));
  p.setDefaultTimeout(15_000);
  return p;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
