// ESM resolve hook, registered by node20-register.mjs. @modelcontextprotocol/conformance imports
// `globSync` from "fs", which Node 20 does not export, so its CLI fails at load ("does not provide an
// export named 'globSync'"). For modules of that package only, "fs" resolves to node20-fs-shim.mjs.
const SHIM = new URL('./node20-fs-shim.mjs', import.meta.url).href;
const PACKAGE_DIR = '/node_modules/@modelcontextprotocol/conformance/';

export async function resolve(specifier, context, nextResolve) {
  if ((specifier === 'fs' || specifier === 'node:fs') && context.parentURL?.includes(PACKAGE_DIR)) {
    return { url: SHIM, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
