// `node --import ./node20-register.mjs node_modules/@modelcontextprotocol/conformance/dist/index.js ...`
// lets the conformance CLI load on Node 20. Harmless on Node >= 22 (the shim re-exports the real globSync).
import { register } from 'node:module';

register('./node20-hooks.mjs', import.meta.url);
