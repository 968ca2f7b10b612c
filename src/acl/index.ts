/** The ACL: compiled once at load, decided per request by `AccessPolicy.decide` (DESIGN.md §9). */
export { AccessPolicy, type AccessPolicyOptions, type AclSubject } from './decide.js';
export { compileToolFilter, type AclDecision, type ItemKind } from './compile.js';
