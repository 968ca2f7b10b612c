// Heap figures of a process started with `--inspect=127.0.0.1:0`, read over the Chrome DevTools
// Protocol: force a full GC, then read `process.memoryUsage()` inside the process.
import { WebSocket } from 'undici';
import { waitForOutput } from './lib.mjs';

/** Connects to the inspector of `child` (its stderr must be piped: the URL is printed there). */
export async function inspector(child) {
  const [, url] = await waitForOutput(child, /Debugger listening on (ws:\/\/\S+)/);
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true });
    ws.addEventListener('error', (e) => reject(new Error(`inspector: ${e.message ?? 'connection failed'}`)), { once: true });
  });
  const waiting = new Map();
  let id = 0;
  ws.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data));
    const waiter = waiting.get(message.id);
    if (!waiter) return;
    waiting.delete(message.id);
    if (message.error) waiter.reject(new Error(`${message.error.message}`));
    else waiter.resolve(message.result);
  });
  const send = (method, params = {}) => new Promise((resolve, reject) => {
    const messageId = ++id;
    waiting.set(messageId, { resolve, reject });
    ws.send(JSON.stringify({ id: messageId, method, params }));
  });
  return {
    /** Full GC, then `process.memoryUsage()` of the inspected process (bytes). */
    async memoryAfterGc() {
      await send('HeapProfiler.collectGarbage');
      const { result, exceptionDetails } = await send('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
      if (exceptionDetails) throw new Error(`inspector evaluate: ${exceptionDetails.text}`);
      return JSON.parse(result.value);
    },
    close: () => ws.close(),
  };
}
